//! Questions answered with yes or no ("国家专项计划录取的学生是否可以转专业？", "年假可以顺延吗？",
//! "Can unused leave be carried over?"): what they ask to be so, whether a clause of the
//! evidence says it is or is not, and the reply word that opens the answer ("是，可以。" before
//! the quoted clause) — a person asking "can I" wants the yes or the no first, then the source.

use luodi_text::{fold_for_search, Script, Segmenter};

/// A yes-or-no question: the part asked to be so, and the modal verb the reply repeats
/// ("可以" in 是否可以转专业 → "是，可以。").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YesNo {
    pub predicate: String,
    pub modal: Option<&'static str>,
    pub english: bool,
    /// The predicate's words a negation can govern (with the stem after 有/是), segmented once.
    words: Vec<String>,
    /// Whether the question is itself negated ("是否不需要…"): it flips the polarity.
    negated: bool,
}

/// Words that make a question ask for something other than yes or no (folded: 么 folds to 幺).
const WH_WORDS: &[&str] = &[
    "什么",
    "哪",
    "谁",
    "多少",
    "几",
    "怎",
    "如何",
    "为什么",
    "为何",
    "何时",
    "何年",
    "何地",
    "何处",
    "何种",
    "多久",
    "多长",
    "多大",
    "多高",
    "多远",
    "还是",
];

/// Markers of a yes-or-no question, with the modal verb they hold.
const MARKERS: &[(&str, Option<&str>)] = &[
    ("是不是", None),
    ("是否", None),
    ("能不能", Some("能")),
    ("能否", Some("能")),
    ("可不可以", Some("可以")),
    ("可否", Some("可以")),
    ("有没有", Some("有")),
    ("会不会", Some("会")),
    ("要不要", Some("要")),
    ("需不需要", Some("需要")),
];

/// Modal verbs a reply repeats when the question holds one as a word.
const MODALS: &[&str] = &[
    "可以", "能够", "能", "会", "需要", "要", "应该", "应当", "必须", "允许", "有", "是",
];

const ENGLISH_AUX: &[&str] = &[
    "is", "are", "was", "were", "can", "could", "does", "do", "did", "will", "would", "should",
    "may", "must", "has", "have", "shall",
];

const ENGLISH_WH: &[&str] = &[
    "what", "which", "who", "whom", "when", "where", "why", "how",
];

/// The yes-or-no question `question` is, if it is one.
pub fn yes_no_question(question: &str) -> Option<YesNo> {
    let q = fold_for_search(question);
    let q = q
        .trim()
        .trim_end_matches(['?', '？', '。', '.', '!', '！', ' ']);
    if q.is_empty() {
        return None;
    }
    if q.is_ascii() {
        let words: Vec<&str> = q
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '\'')
            .filter(|w| !w.is_empty())
            .collect();
        let first = words.first()?;
        if !ENGLISH_AUX.contains(first)
            || words.iter().any(|w| ENGLISH_WH.contains(w) || *w == "or")
        {
            return None;
        }
        let predicate = words[1..].join(" ");
        let negated = english_negated(&predicate);
        return Some(YesNo {
            predicate,
            modal: None,
            english: true,
            words: Vec::new(),
            negated,
        });
    }
    // the clause asked about: after the last comma
    let clause = q.rsplit(['，', ',', '；', ';']).next().unwrap_or(q);
    if WH_WORDS
        .iter()
        .any(|w| clause.contains(&fold_for_search(w)))
    {
        return None;
    }
    let (predicate, mut modal) = if let Some((at, (m, modal))) = MARKERS
        .iter()
        .filter_map(|m| clause.find(m.0).map(|i| (i, m)))
        .min_by_key(|(i, m)| (*i, std::cmp::Reverse(m.0.len())))
    {
        (clause[at + m.len()..].to_owned(), *modal)
    } else if let Some(p) = clause.strip_suffix('吗') {
        (p.to_owned(), None)
    } else {
        return None;
    };
    if predicate.chars().count() < 2 {
        return None;
    }
    let cut = Segmenter::shared().cut(&predicate);
    if modal.is_none() {
        modal = cut
            .iter()
            .find_map(|w| MODALS.iter().find(|m| *m == w).copied());
    }
    let mut words: Vec<String> = Vec::new();
    for w in cut {
        if !w.chars().all(char::is_alphanumeric) {
            continue;
        }
        if w.chars().count() >= 2 || MODALS.contains(&w) {
            words.push(w.to_owned());
        }
        // "有毒" is denied by "无毒", "是会员" by "非会员": the word after 有 or 是 too
        if let Some(stem) = w.strip_prefix('有').or_else(|| w.strip_prefix('是')) {
            if !stem.is_empty() {
                words.push(stem.to_owned());
            }
        }
    }
    let negated = denies_words(&words, &predicate);
    Some(YesNo {
        predicate,
        modal,
        english: false,
        words,
        negated,
    })
}

/// Negations, and the words that begin with one without negating ("非常", "不仅").
const NEGATIONS: &[&str] = &["不", "没", "未", "无", "非", "禁止", "勿", "莫"];
const NOT_NEGATIONS: &[&str] = &[
    "不仅", "不断", "不少", "不同", "不论", "不管", "不过", "不久", "不只", "非常", "无论", "未来",
    "无数", "非遗", "无偿",
];
const ENGLISH_NEGATIONS: &[&str] = &["not", "no", "never", "cannot", "none", "neither", "nor"];

/// Whether an English clause holds a negation ("cannot", "isn't", "no").
fn english_negated(clause: &str) -> bool {
    fold_for_search(clause)
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '\'')
        .any(|w| ENGLISH_NEGATIONS.contains(&w) || w.ends_with("n't"))
}

/// Whether `clause` holds a negation right before one of `words` ("不得转专业", "没有开设",
/// "不可以").
fn denies_words(words: &[String], clause: &str) -> bool {
    let clause = fold_for_search(clause);
    for (i, _) in clause.char_indices() {
        let rest = &clause[i..];
        let Some(neg) = NEGATIONS.iter().find(|n| rest.starts_with(**n)) else {
            continue;
        };
        if NOT_NEGATIONS.iter().any(|n| rest.starts_with(n)) {
            continue;
        }
        // the words the negation governs: within the next few characters
        let after = &rest[neg.len()..];
        if after
            .char_indices()
            .take(3)
            .any(|(j, _)| words.iter().any(|w| after[j..].starts_with(w.as_str())))
        {
            return true;
        }
    }
    false
}

impl YesNo {
    /// Whether `clause` (of the evidence) denies the predicate: a negation right before one
    /// of its words ("不得转专业", "没有开设", "不可以").
    pub fn denies(&self, clause: &str) -> bool {
        if self.english {
            english_negated(clause)
        } else {
            denies_words(&self.words, clause)
        }
    }

    /// Whether `clause` says no to the question (a negated question, "是否不需要…", flips it).
    pub fn says_no(&self, clause: &str) -> bool {
        self.denies(clause) != self.negated
    }

    /// The words that open the answer: "是，可以。" / "否，不可以。" ("否，没有。" for 有), "Yes. " / "No. ".
    pub fn reply(&self, no: bool, script: Script) -> String {
        if self.english || script == Script::Latin {
            return if no { "No. " } else { "Yes. " }.to_owned();
        }
        let text = match (no, self.modal) {
            (false, Some("是")) => "是。".to_owned(),
            (false, Some(m)) => format!("是，{m}。"),
            (false, None) => "是。".to_owned(),
            (true, Some("有")) => "否，没有。".to_owned(),
            (true, Some(m)) => format!("否，不{m}。"),
            (true, None) => "否。".to_owned(),
        };
        crate::answer::to_script(&text, script)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yes_no_questions_are_told_from_others() {
        let q = yes_no_question("国家专项计划录取的学生是否可以转专业？").unwrap();
        assert_eq!(q.predicate, "可以转专业");
        assert_eq!(q.modal, Some("可以"));
        let q = yes_no_question("当年没休完的年假可以顺延吗？").unwrap();
        assert_eq!(q.modal, Some("可以"));
        assert_eq!(
            yes_no_question("信息学院是否实施双选认证制度？")
                .unwrap()
                .modal,
            None
        );
        assert!(yes_no_question("年假可以顺延到什么时候？").is_none());
        assert!(yes_no_question("古文字学方向获得了教育部什么优惠吗").is_none());
        assert!(yes_no_question("哲学院有哪些专业？").is_none());
        assert!(yes_no_question("Can unused leave be carried over?").is_some());
        assert!(yes_no_question("How many days of leave do I get?").is_none());
        assert!(yes_no_question("Is it annual leave or sick leave?").is_none());
        // 繁體 too
        assert_eq!(
            yes_no_question("年假可以順延嗎？").unwrap().modal,
            Some("可以")
        );
    }

    #[test]
    fn a_negation_before_the_asked_words_says_no() {
        let q = yes_no_question("试用期员工可以申请年假吗？").unwrap();
        assert!(q.says_no("试用期员工不可以申请年假"));
        assert!(q.says_no("试用期内不得申请年假"));
        assert!(!q.says_no("转正后的员工可以申请年假，不受部门限制"));
        assert!(!q.says_no("员工非常积极地申请年假"));
        let q = yes_no_question("丙烯颜料有毒吗？").unwrap();
        assert!(q.says_no("丙烯颜料无毒"));
        assert!(!q.says_no("丙烯颜料有轻微毒性"));
        let q = yes_no_question("香港羽毛球公开赛每年都有比赛吗？").unwrap();
        assert!(q.says_no("但不是每年都有比赛"));
        let q = yes_no_question("学校是否开设古典学专业？").unwrap();
        assert!(q.says_no("学校没有开设古典学专业"));
        assert!(!q.says_no("学校2011年开设古典学专业"));
        // a question that is itself negated
        let q = yes_no_question("病假是否不需要证明？").unwrap();
        assert!(!q.says_no("三天以内的病假不需要证明"));
        assert!(q.says_no("病假需要医院证明"));
        let q = yes_no_question("Can unused leave be carried over?").unwrap();
        assert!(q.says_no("Unused leave cannot be carried over."));
        assert!(!q.says_no("Unused leave can be carried over to March."));
    }

    #[test]
    fn the_reply_repeats_the_modal_in_the_script_asked() {
        let q = yes_no_question("是否可以转专业？").unwrap();
        assert_eq!(q.reply(false, Script::Simplified), "是，可以。");
        assert_eq!(q.reply(true, Script::Simplified), "否，不可以。");
        let q = yes_no_question("有没有班车？").unwrap();
        assert_eq!(q.reply(true, Script::Simplified), "否，没有。");
        let q = yes_no_question("是否實施雙選認證制度？").unwrap();
        assert_eq!(q.reply(false, Script::Traditional), "是。");
        let q = yes_no_question("事假是有薪假吗？").unwrap();
        assert_eq!(q.reply(true, Script::Simplified), "否，不是。");
        assert_eq!(q.reply(false, Script::Simplified), "是。");
        let q = yes_no_question("Is parking free?").unwrap();
        assert_eq!(q.reply(true, Script::Latin), "No. ");
    }
}
