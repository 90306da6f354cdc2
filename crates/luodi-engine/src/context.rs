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
    // a chain of follow-ups keeps its first subject, not every question since: the earliest
    // turn whose question the last one's begins with (a follow-up's is its context + itself)
    let root = history
        .iter()
        .map(|t| t.question.as_str())
        .find(|q| !q.is_empty() && last.question.starts_with(q))
        .unwrap_or(&last.question);
    if let Some(name) = named_by_kind(question, root) {
        return Some(name);
    }
    refers_back(question).then(|| root.chars().take(80).collect())
}

/// The name `question` refers to when it opens with a bare noun that `previous` used as the
/// last part of that name: "学院的院长是谁" after "高瓴人工智能学院是什么时候成立的" means
/// 高瓴人工智能学院, as "the company" after "Acme Company" means Acme Company.
fn named_by_kind(question: &str, previous: &str) -> Option<String> {
    let q = question.trim_start();
    let words = luodi_text::Segmenter::shared().tag(q);
    let (first, tag) = *words.first()?;
    if first.chars().count() < 2 || !first.chars().all(luodi_text::is_han) || !tag.starts_with('n')
    {
        return None;
    }
    // a bare noun: not the first part of a longer one ("农村区域发展专业", "哲学院")
    if words
        .get(1)
        .is_some_and(|(_, t)| t.starts_with('n') || *t == "vn" || t.len() == 1 && "gk".contains(*t))
    {
        return None;
    }
    // the name: the run of characters before the noun back to a particle, a verb of
    // being or having, punctuation or the start
    const STOPS: &str = "的是在有和了于从对向给被把为及或吗呢吧什哪几多少怎如何请问";
    let after = |text: &str, at: usize| text[at + first.len()..].chars().next();
    previous.match_indices(first).find_map(|(i, _)| {
        // the question going on as the name does ("哲学院" after "哲学院") names it itself
        if after(previous, i).is_some_and(|c| !STOPS.contains(c))
            && after(previous, i) == after(q, 0)
        {
            return None;
        }
        let before: Vec<char> = previous[..i]
            .chars()
            .rev()
            .take_while(|c| luodi_text::is_han(*c) && !STOPS.contains(*c))
            .collect();
        (!before.is_empty()).then(|| before.into_iter().rev().chain(first.chars()).collect())
    })
}

/// The text a question is searched with: after the earlier question it refers back to, if
/// it does ([`followup_context`]).
pub fn standalone(history: &[PastTurn], question: &str) -> String {
    with_context(followup_context(history, question).as_deref(), question)
}

/// `question` after the `context` [`followup_context`] found for it, if any.
pub fn with_context(context: Option<&str>, question: &str) -> String {
    match context {
        Some(c) => format!("{c} {question}"),
        None => question.to_owned(),
    }
}

/// The year a question is about, and whether it writes that year out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AskedYear {
    pub year: i32,
    /// Written out ("2018年…"), not implied (今年, the date the question is asked on).
    pub named: bool,
}

/// The year `question` is about ([`asked_year`] relative to the date it is asked on, `as_of`,
/// or else `now_year`), falling back to `as_of`.
pub fn year_of_question(question: &str, as_of: Option<i32>, now_year: i32) -> Option<AskedYear> {
    let year = asked_year(question, as_of.unwrap_or(now_year)).or(as_of)?;
    Some(AskedYear {
        year,
        named: years_in(question).contains(&year),
    })
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

/// The year a hit's document is about: the one year its title names ("2022年外语类保送生招生简章"
/// is about 2022 though published in December 2021), else its `date`-like metadata, else its
/// modification time.
pub fn document_year(hit: &SearchHit) -> Option<i32> {
    let in_title = years_in(&hit.title);
    if in_title.len() == 1 {
        return Some(in_title[0]);
    }
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
    hit.modified.map(year_of)
}

/// Orders `hits` for a question about `year`, among those at least half as relevant as the
/// best hit (the others keep their places after them; the order within each group is kept).
/// A question that only implies the year (今年, the date it is asked on) puts the documents
/// from that year first. One that writes the year out already finds it in the documents' words,
/// and a document merely mentioning it (an article on 1993 for a question about a person in
/// 1993) is no better for it; there, the documents whose titles are about other years go after
/// the rest (a question on the 2022 admissions is not answered by the 2021 notice).
pub fn prefer_year(hits: &mut Vec<SearchHit>, asked: AskedYear) {
    let AskedYear { year, named } = asked;
    let best = hits.first().map_or(0.0, |h| h.score);
    if named
        && !hits
            .iter()
            .any(|h| h.score >= 0.5 * best && years_in(&h.title).contains(&year))
    {
        // no document here is titled for that year: the years in titles are not versions
        // of one another ("张永海 (1979年出生)")
        return;
    }
    let (mut first, rest): (Vec<SearchHit>, Vec<SearchHit>) =
        std::mem::take(hits).into_iter().partition(|h| {
            h.score >= 0.5 * best
                && if named {
                    let in_title = years_in(&h.title);
                    in_title.is_empty() || in_title.contains(&year)
                } else {
                    document_year(h) == Some(year)
                }
        });
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
        assert_eq!(
            standalone(&history, "那它的截止时间呢？"),
            "外语类保送生什么时候报名 那它的截止时间呢？"
        );
        assert_eq!(
            standalone(&history, "差旅住宿标准是多少？"),
            "差旅住宿标准是多少？"
        );
    }

    #[test]
    fn a_bare_noun_refers_to_the_name_it_ends() {
        let turns = |qs: &[&str]| -> Vec<PastTurn> {
            qs.iter()
                .map(|q| PastTurn {
                    question: (*q).into(),
                    answer: String::new(),
                })
                .collect()
        };
        let founded = "高瓴人工智能学院是什么时候成立的";
        let cases: [(&[&str], &str, &str); 6] = [
            (
                &[founded],
                "学院的院长是谁",
                "高瓴人工智能学院 学院的院长是谁",
            ),
            // a chain keeps its first subject, not every question since
            (
                &[founded, "高瓴人工智能学院 学院的院长是谁"],
                "学院与哪些机构有合作项目？",
                "高瓴人工智能学院 学院与哪些机构有合作项目？",
            ),
            (
                &["哲学院有哪些本科专业"],
                "学院有多少位教师？",
                "哲学院 学院有多少位教师？",
            ),
            // a question naming its own subject stands alone: the noun begins a longer
            // name, or the question spells the same name
            (
                &["中国人民大学农业与农村发展学院成立于哪一年"],
                "农村区域发展专业的就业方向",
                "农村区域发展专业的就业方向",
            ),
            (
                &["中国人民大学哲学院有几个本科专业"],
                "哲学院有哪些本科专业",
                "哲学院有哪些本科专业",
            ),
            (&[founded], "差旅住宿标准是多少？", "差旅住宿标准是多少？"),
        ];
        for (history, question, searched) in cases {
            assert_eq!(
                standalone(&turns(history), question),
                searched,
                "{question}"
            );
        }
    }

    fn hit(id: u64, score: f32, title: &str, date: &str) -> SearchHit {
        SearchHit {
            score,
            chunk_id: id,
            doc_key: format!("d{id}"),
            source: String::new(),
            title: title.into(),
            modified: Some(1_709_251_200),
            metadata: [("date".to_owned(), date.to_owned())].into_iter().collect(),
            chunk: luodi_core::Chunk {
                ordinal: 0,
                text: String::new(),
                heading_path: Vec::new(),
                location: Default::default(),
            },
        }
    }

    #[test]
    fn a_document_is_about_the_year_its_title_names() {
        // published in December 2021, about 2022
        let notice = hit(
            1,
            10.0,
            "中国人民大学2022年外语类保送生招生简章",
            "2021-12-17",
        );
        assert_eq!(document_year(&notice), Some(2022));
        // no year in the title: the date; neither: the modification time
        assert_eq!(
            document_year(&hit(2, 1.0, "校长致辞", "2019-06-01")),
            Some(2019)
        );
        let mut bare = hit(3, 1.0, "校长致辞", "");
        bare.metadata.clear();
        assert_eq!(document_year(&bare), Some(2024));
        // two years in the title say nothing about one of them
        assert_eq!(
            document_year(&hit(4, 1.0, "2021—2022学年校历", "2021-07-01")),
            Some(2021)
        );
        // a question about 2022 puts the 2022 notice before the 2021 one it outscored
        let mut hits = vec![
            hit(
                5,
                12.0,
                "中国人民大学2021年外语类保送生招生简章",
                "2021-12-01",
            ),
            notice,
            hit(6, 4.0, "2022年招生工作总结", "2022-12-30"),
        ];
        prefer_year(
            &mut hits,
            AskedYear {
                year: 2022,
                named: false,
            },
        );
        let order: Vec<u64> = hits.iter().map(|h| h.chunk_id).collect();
        // the summary is under half the best score: it keeps its place
        assert_eq!(order, vec![1, 5, 6]);
    }

    #[test]
    fn a_year_written_out_sets_aside_documents_titled_for_other_years() {
        let ranked = || {
            vec![
                hit(
                    1,
                    12.0,
                    "中国人民大学2021年外语类保送生招生简章",
                    "2020-12-01",
                ),
                hit(2, 10.0, "外语类保送生常见问题", "2022-03-01"),
                hit(
                    3,
                    9.0,
                    "中国人民大学2022年外语类保送生招生简章",
                    "2021-12-17",
                ),
            ]
        };
        let order = |hits: &[SearchHit]| hits.iter().map(|h| h.chunk_id).collect::<Vec<_>>();
        // "2022年外语类保送生…": the 2021 notice goes after the others
        let mut hits = ranked();
        prefer_year(
            &mut hits,
            AskedYear {
                year: 2022,
                named: true,
            },
        );
        assert_eq!(order(&hits), vec![2, 3, 1]);
        // "1993年她获得了什么冠军": no document is titled for 1993, so a title's year is
        // no version of another's ("张永海 (1979年出生)" keeps its rank)
        let mut people = vec![
            hit(4, 12.0, "张永海 (1979年出生)", ""),
            hit(5, 10.0, "1994年香港", ""),
        ];
        prefer_year(
            &mut people,
            AskedYear {
                year: 1993,
                named: true,
            },
        );
        assert_eq!(order(&people), vec![4, 5]);
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
