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
    let mut folded = String::with_capacity(text.len());
    // Chinese text is mostly ASCII, Han characters, CJK punctuation and full-width forms, whose
    // NFKC is known without the normalizer; only the other runs go through it. A run is cut
    // before such a character only, which never composes with what precedes it, and such a
    // character goes to the normalizer itself when a non-simple one (a combining mark) follows.
    let mut slow_from: Option<usize> = None;
    let mut it = text.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        let fast = is_nfkc_simple(c) && it.peek().is_none_or(|&(_, n)| is_nfkc_simple(n));
        if fast {
            if let Some(s) = slow_from.take() {
                text[s..i].nfkc().for_each(|c| fold_char(c, &mut folded));
            }
            fold_char(half_width_char(c, false), &mut folded);
        } else if slow_from.is_none() {
            slow_from = Some(i);
        }
    }
    if let Some(s) = slow_from {
        text[s..].nfkc().for_each(|c| fold_char(c, &mut folded));
    }
    crate::script::fold_to_simplified(&folded)
}

/// Characters whose NFKC form is themselves, or (full-width forms, the ideographic space) an
/// ASCII character, and which never compose with a preceding character.
fn is_nfkc_simple(c: char) -> bool {
    matches!(c as u32, 0..=0x7F | 0x3000..=0x3029 | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xFF01..=0xFF5E)
}

/// Lowercase, whitespace and controls as a space; Han characters (no case) pass straight.
fn fold_char(c: char, out: &mut String) {
    if c.is_ascii() {
        out.push(if c.is_ascii_whitespace() || c.is_ascii_control() {
            ' '
        } else {
            c.to_ascii_lowercase()
        });
    } else if crate::encoding::is_han(c) {
        out.push(c);
    } else {
        for l in c.to_lowercase() {
            out.push(if l.is_whitespace() || l.is_control() {
                ' '
            } else {
                l
            });
        }
    }
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
        // a stray traditional clause inside simplified text is folded, the rest kept
        assert_eq!(
            fold_for_search("员工手册。資料庫在哪裡？\t请 ＡＢ"),
            "员工手册。数据库在哪里? 请 ab"
        );
    }

    proptest::proptest! {
        #[test]
        fn quick_path_folds_like_the_normalizer(s in "[a-zA-ZＡ-Ｚ０-９！-～\u{3000}-\u{3040}\u{4e00}-\u{4e20}\u{00c0}-\u{00ff}\u{0300}-\u{0310}\u{0391}-\u{03a9}\u{ff5f}-\u{ff70}\u{f900}-\u{f905} \t，。①ﬁ㍿]{0,40}") {
            let slow: String = s
                .nfkc()
                .flat_map(|c| c.to_lowercase())
                .map(|c| if c.is_whitespace() || c.is_control() { ' ' } else { c })
                .collect();
            proptest::prop_assert_eq!(fold_for_search(&s), crate::script::fold_to_simplified(&slow));
        }
    }
}
