//! What a question means beyond its words: the earlier turns a follow-up refers to, and the
//! time it asks about.
//!
//! A follow-up such as "那它的截止时间呢？" names nothing: retrieval would look for "截止时间"
//! anywhere. When a question refers back (a pronoun or demonstrative, a leading 那/还有, or
//! hardly any content of its own), the previous standalone question is its context: retrieval
//! searches both, evidence selection weighs the context's terms lower, and the model sees the
//! context beside the question. This needs no model call, so it costs no prompt time.
//!
//! A question about a time ("2018年的招生计划", "今年", "去年") prefers passages of documents
//! from that year: a document's date comes from its `date`-like metadata, a year in its title,
//! or its modification time.

use luodi_core::SearchHit;

/// An earlier turn of a conversation, as a follow-up needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastTurn {
    /// The standalone question of that turn (its own context included).
    pub question: String,
    pub answer: String,
}

/// Words that point back at something said before.
const BACK_REFERENCES: &[&str] = &[
    "它", "他们", "她们", "他", "她", "其", "该", "此", "这个", "那个", "这些", "那些", "这里",
    "那里", "上述", "前者", "后者", "这所", "这家", "那家", "这位", "那位", "這個", "那個", "這些",
    "那些", "這裡", "該", "這所", "這家", "這位",
];

const LEADING_FOLLOWUPS: &[&str] = &["那", "那么", "那麼", "还有", "還有", "另外", "此外", "再问"];

const LATIN_BACK_REFERENCES: &[&str] = &[
    "it", "its", "they", "their", "them", "this", "that", "those", "these", "he", "she", "his",
    "her",
];

/// Question words and particles that say nothing about the subject.
const FUNCTION_CHARS: &str = "的了是吗呢吧啊么什哪几多少怎样如何为个有在和与及或请问呀嘛";

/// Whether `question` depends on an earlier turn to be understood.
pub fn refers_back(question: &str) -> bool {
    let q = question.trim();
    if BACK_REFERENCES.iter().any(|w| q.contains(w)) {
        return true;
    }
    if LEADING_FOLLOWUPS.iter().any(|w| q.starts_with(w)) {
        return true;
    }
    let lower = q.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    if words.iter().any(|w| LATIN_BACK_REFERENCES.contains(w))
        || lower.starts_with("and ")
        || lower.starts_with("what about")
        || lower.starts_with("how about")
    {
        return true;
    }
    // hardly any content of its own: "有哪些专业？", "学费呢？"
    let content = q
        .chars()
        .filter(|c| c.is_alphanumeric() && !FUNCTION_CHARS.contains(*c))
        .count();
    content <= 4
}

/// The context a follow-up needs: the previous turn's standalone question, when `question`
/// refers back to it.
pub fn followup_context(history: &[PastTurn], question: &str) -> Option<String> {
    let last = history.last()?;
    // a chain of follow-ups keeps its first subject, not every question since
    refers_back(question).then(|| last.question.chars().take(80).collect())
}

/// The year a question asks about: an explicit year (2018年, 2018), or 今年/去年/前年/明年
/// relative to `now_year`.
pub fn asked_year(question: &str, now_year: i32) -> Option<i32> {
    for (word, delta) in [
        ("今年", 0),
        ("本年", 0),
        ("去年", -1),
        ("前年", -2),
        ("明年", 1),
        ("this year", 0),
        ("last year", -1),
        ("next year", 1),
    ] {
        if question.contains(word) {
            return Some(now_year + delta);
        }
    }
    years_in(question).into_iter().next()
}

/// Four-digit years 1900–2099 standing alone in `text` (not part of a longer number).
pub fn years_in(text: &str) -> Vec<i32> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 <= chars.len() {
        let alone_before = i == 0 || !chars[i - 1].is_ascii_digit();
        let alone_after = chars.get(i + 4).is_none_or(|c| !c.is_ascii_digit());
        if alone_before && alone_after && chars[i..i + 4].iter().all(|c| c.is_ascii_digit()) {
            let y: i32 = chars[i..i + 4]
                .iter()
                .collect::<String>()
                .parse()
                .unwrap_or(0);
            if (1900..2100).contains(&y) && !out.contains(&y) {
                out.push(y);
            }
            i += 4;
        } else {
            i += 1;
        }
    }
    out
}

/// The civil year of a Unix time (UTC).
pub fn year_of(secs: i64) -> i32 {
    let days = secs.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2)) as i32
}

/// The year a hit's document is about: `date`-like metadata, else the one year its title
/// names, else its modification time.
pub fn document_year(hit: &SearchHit) -> Option<i32> {
    for key in [
        "date",
        "日期",
        "published",
        "publish_date",
        "time",
        "year",
        "发布日期",
        "發布日期",
    ] {
        if let Some(v) = hit.metadata.get(key) {
            if let Some(y) = years_in(v).first() {
                return Some(*y);
            }
        }
    }
    let in_title = years_in(&hit.title);
    if in_title.len() == 1 {
        return Some(in_title[0]);
    }
    hit.modified.map(year_of)
}

/// Puts the hits of documents from `year` first (keeping the order within each group), among
/// those at least half as relevant as the best hit; the others keep their places after them.
pub fn prefer_year(hits: &mut Vec<SearchHit>, year: i32) {
    let best = hits.first().map_or(0.0, |h| h.score);
    let (mut first, rest): (Vec<SearchHit>, Vec<SearchHit>) = std::mem::take(hits)
        .into_iter()
        .partition(|h| h.score >= 0.5 * best && document_year(h) == Some(year));
    first.extend(rest);
    *hits = first;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_ups_are_recognised() {
        assert!(refers_back("那它的截止时间呢？"));
        assert!(refers_back("它成立于哪一年"));
        assert!(refers_back("有哪些专业"));
        assert!(refers_back("該校的學費是多少？"));
        assert!(refers_back("What about its deadline?"));
        assert!(!refers_back("中国人民大学文学院前身是什么"));
        assert!(!refers_back("年假可以顺延到什么时候？"));
        let history = vec![PastTurn {
            question: "外语类保送生什么时候报名".into(),
            answer: "3月1日起".into(),
        }];
        assert_eq!(
            followup_context(&history, "那它的截止时间呢？").as_deref(),
            Some("外语类保送生什么时候报名")
        );
        assert_eq!(followup_context(&history, "差旅住宿标准是多少？"), None);
        assert_eq!(followup_context(&[], "那它的截止时间呢？"), None);
    }

    #[test]
    fn years_are_read_from_questions() {
        assert_eq!(asked_year("2018年音乐表演专业招多少人？", 2026), Some(2018));
        assert_eq!(asked_year("今年的报名时间", 2026), Some(2026));
        assert_eq!(asked_year("去年的學費", 2026), Some(2025));
        assert_eq!(asked_year("招生人数是多少", 2026), None);
        assert_eq!(years_in("电话010-62511234，2023年"), vec![2023]);
        assert_eq!(year_of(1_709_251_200), 2024);
        assert_eq!(year_of(0), 1970);
    }
}
