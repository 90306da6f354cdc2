//! Chinese-aware sentence splitting.
//!
//! A sentence ends at 。！？；… (and `!?;` or a `.` followed by a space or the end), keeping any
//! closing quotes or brackets with it, and at line breaks. A `.` between digits (3.5) or inside
//! an abbreviation-like token (e.g., v2.1) never ends a sentence, so numbers stay whole.

/// Splits `text` into sentences; each keeps its terminating punctuation. Whitespace-only
/// pieces are dropped. Returned slices borrow from `text` and cover it in order.
pub fn split_sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0usize;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0usize;
    while i < chars.len() {
        let (pos, c) = chars[i];
        let ends = match c {
            '。' | '！' | '？' | '；' | '!' | '?' | ';' | '\n' => true,
            '…' => !matches!(chars.get(i + 1), Some((_, '…'))),
            '.' => match chars.get(i + 1) {
                None => true,
                Some((_, n)) => n.is_whitespace(),
            },
            _ => false,
        };
        if ends {
            let mut end = pos + c.len_utf8();
            // keep closing quotes/brackets and repeated terminators with the sentence
            while let Some(&(p, n)) = chars.get(i + 1) {
                if matches!(
                    n,
                    '”' | '’'
                        | '」'
                        | '』'
                        | '）'
                        | ')'
                        | '"'
                        | '\''
                        | '】'
                        | '》'
                        | '。'
                        | '！'
                        | '？'
                        | '!'
                        | '?'
                ) {
                    end = p + n.len_utf8();
                    i += 1;
                } else {
                    break;
                }
            }
            push_trimmed(&mut out, &text[start..end]);
            start = end;
        }
        i += 1;
    }
    if start < text.len() {
        push_trimmed(&mut out, &text[start..]);
    }
    out
}

fn push_trimmed<'a>(out: &mut Vec<&'a str>, s: &'a str) {
    let t = s.trim();
    if !t.is_empty() {
        out.push(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_chinese_and_keeps_numbers_whole() {
        let s = split_sentences("报销上限为3.5万元。需要发票吗？“需要。”请在v2.1系统中提交!");
        assert_eq!(
            s,
            vec![
                "报销上限为3.5万元。",
                "需要发票吗？",
                "“需要。”",
                "请在v2.1系统中提交!"
            ]
        );
    }

    #[test]
    fn english_sentences() {
        assert_eq!(
            split_sentences("Reset it. Then log in.\nDone"),
            vec!["Reset it.", "Then log in.", "Done"]
        );
    }
}
