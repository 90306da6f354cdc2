//! Unicode normalization, width folding and whitespace/control-character cleanup.
//!
//! Two levels exist on purpose. [`clean`] is for text people will read again (stored chunks,
//! answers): it keeps Chinese punctuation as written, folds full-width Latin letters and digits
//! to half-width, removes control and zero-width characters and tidies whitespace. The
//! search-key level, [`fold_for_search`], goes further (NFKC, lowercase, 繁→简) and is only
//! ever compared, never shown.

use unicode_normalization::UnicodeNormalization;

/// Unicode NFKC normalization.
pub fn nfkc(text: &str) -> String {
    text.nfkc().collect()
}

/// Folds full-width ASCII variants (U+FF01..U+FF5E) and the ideographic space to half-width,
/// keeping CJK punctuation that has no ASCII twin (、。「」) as it is. Full-width forms of
/// `，：；！？（）` are Chinese punctuation and are kept when `keep_cjk_punct` is true.
pub fn to_half_width(text: &str, keep_cjk_punct: bool) -> String {
    text.chars()
        .map(|c| half_width_char(c, keep_cjk_punct))
        .collect()
}

fn half_width_char(c: char, keep_cjk_punct: bool) -> char {
    match c {
        '\u{3000}' => ' ',
        '\u{FF01}'..='\u{FF5E}' => {
            if keep_cjk_punct && matches!(c, '，' | '：' | '；' | '！' | '？' | '（' | '）')
            {
                c
            } else {
                char::from_u32(c as u32 - 0xFEE0).unwrap_or(c)
            }
        }
        _ => c,
    }
}

fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}'
    )
}

/// Cleans text for storage and display: half-width letters and digits, Chinese punctuation
/// kept, control and zero-width characters removed, `\r\n` → `\n`, runs of spaces collapsed,
/// trailing spaces removed, at most one blank line between paragraphs.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_lines = 0usize;
    let mut first = true;
    for raw_line in text.split('\n') {
        let mut line = String::with_capacity(raw_line.len());
        let mut last_space = false;
        for c in raw_line.chars() {
            let c = half_width_char(c, true);
            if is_invisible(c) {
                continue;
            }
            let c = if c == '\t' || c == '\u{00A0}' || (c.is_whitespace() && c != '\n') {
                ' '
            } else {
                c
            };
            if c.is_control() {
                continue;
            }
            if c == ' ' {
                if last_space || line.is_empty() {
                    // collapse runs; leading indentation is not meaningful in prose
                    last_space = true;
                    continue;
                }
                last_space = true;
            } else {
                last_space = false;
            }
            line.push(c);
        }
        let line = line.trim_end();
        if line.is_empty() {
            blank_lines += 1;
            continue;
        }
        if !first {
            out.push('\n');
            if blank_lines > 0 {
                out.push('\n');
            }
        }
        first = false;
        blank_lines = 0;
        out.push_str(line);
    }
    out
}

/// The search key of a text: NFKC, lowercase, 繁→简, whitespace kept as single spaces. Two
/// texts that a reader would call the same word fold to the same key, whatever their width,
/// case or script.
pub fn fold_for_search(text: &str) -> String {
    let folded: String = text
        .nfkc()
        .flat_map(|c| c.to_lowercase())
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                ' '
            } else {
                c
            }
        })
        .collect();
    crate::script::fold_to_simplified(&folded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_width_keeps_chinese_punctuation() {
        assert_eq!(to_half_width("ＡＢＣ１２３，。", true), "ABC123，。");
        assert_eq!(to_half_width("ＡＢＣ１２３，", false), "ABC123,");
    }

    #[test]
    fn clean_tidies_whitespace_and_controls() {
        assert_eq!(
            clean("  a\u{200B}b\t\tc \r\n\r\n\r\n第二段\u{0007}  "),
            "ab c\n\n第二段"
        );
    }

    #[test]
    fn fold_unifies_width_case_and_script() {
        assert_eq!(fold_for_search("ＩＴ服務台"), fold_for_search("it服务台"));
    }
}
