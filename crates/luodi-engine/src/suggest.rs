//! Glossary candidates mined from a knowledge base's own text: abbreviation ↔ full form
//! pairs, each with its evidence and a score, for a person to accept or reject.
//!
//! Three kinds of evidence, strongest first:
//! - **stated**: the text says so — 杭州分公司（以下简称杭分）, 简称, 又称, or a short form in
//!   brackets right after a longer one whose characters it takes in order;
//! - **seen together**: a short word and a longer term it abbreviates (its characters in order,
//!   not one run of them) occur in the same documents, scored by the abbreviation model and by
//!   how often;
//! - **predicted**: a frequent multi-word term the model says is usually shortened, with the
//!   abbreviation the model predicts — never seen in the text, so scored lowest.

use std::collections::HashMap;

pub use luodi_text::abbrev::AbbrevModel;
use luodi_text::abbrev::{aligns_at, is_subsequence, Term};
use serde::Serialize;

/// One candidate.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Suggestion {
    pub abbr: String,
    pub full: String,
    /// `stated`, `together`, `predicted`.
    pub evidence: String,
    pub score: f64,
    /// Documents it was found in (stated, together) or the full form's count (predicted).
    pub count: usize,
    /// A passage showing it (up to ~80 characters).
    pub example: String,
}

fn is_cjk(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c) || ('\u{3400}'..='\u{4dbf}').contains(&c)
}

fn snippet(text: &str, at: usize) -> String {
    let start = text[..at]
        .char_indices()
        .rev()
        .nth(30)
        .map_or(0, |(i, _)| i);
    text[start..].chars().take(80).collect()
}

/// The full form a stated short form refers to: the shortest tail of the CJK run before it
/// that starts with the short form's first character (or a place that character names: 沪 →
/// 上海) and holds the rest of its characters in order.
fn full_before(before: &str, abbr: &str) -> Option<String> {
    let run: Vec<char> = before
        .chars()
        .rev()
        .take_while(|c| is_cjk(*c))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let n = abbr.chars().count();
    for start in (0..run.len()).rev() {
        if run.len() - start <= n {
            continue;
        }
        if run.len() - start > 20 {
            break;
        }
        let cand: String = run[start..].iter().collect();
        if aligns_at(abbr, &cand) == Some(0) {
            return Some(cand);
        }
    }
    None
}

/// Stated pairs: `X（简称Y）`, `X，简称Y`, `X（以下简称Y）`, `X（Y）`.
fn stated(text: &str, out: &mut Vec<(String, String, usize, bool)>) {
    for marker in ["以下简称", "简称", "又称", "亦称", "（", "("] {
        for (at, _) in text.match_indices(marker) {
            let after = &text[at + marker.len()..];
            let after = after.trim_start_matches(['为', '：', ':', '「', '“', '"', '《']);
            let abbr: String = after.chars().take_while(|c| is_cjk(*c)).take(9).collect();
            let n = abbr.chars().count();
            if !(2..=8).contains(&n) {
                continue;
            }
            let bracket = marker == "（" || marker == "(";
            // a bare bracket states a short form only when the form is all it holds (or the
            // first of a list): 两个三配位的硼原子（两个BO三角形） abbreviates nothing
            if bracket && !after[abbr.len()..].starts_with(['）', ')', '，', ',', '、', '；', ';'])
            {
                continue;
            }
            // the text before the marker, its brackets and commas left out
            let before = text[..at].trim_end_matches(['（', '(', '，', ',', '、', ' ']);
            if let Some(full) = full_before(before, &abbr) {
                out.push((abbr, full, at, bracket));
            }
        }
    }
}

/// Stated in a table: a column headed 简称 (or 缩写, 简写, 略称) beside the full forms.
fn tabled(text: &str, out: &mut Vec<(String, String, usize, bool)>) {
    let mut col: Option<usize> = None;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let here = at;
        at += line.len();
        let t = line.trim();
        if !t.starts_with('|') {
            col = None;
            continue;
        }
        let cells: Vec<&str> = t.trim_matches('|').split('|').map(str::trim).collect();
        if let Some(i) = cells
            .iter()
            .position(|c| matches!(*c, "简称" | "簡稱" | "缩写" | "简写" | "略称"))
        {
            col = Some(i);
            continue;
        }
        let Some(i) = col else { continue };
        let Some(abbr) = cells
            .get(i)
            .filter(|a| (2..=8).contains(&a.chars().count()))
        else {
            continue;
        };
        // the cell it shortens in order, else the row's first cell sharing a character with
        // it (沪分 → 上海分公司: a table says so even where the short form takes another name)
        let longer = |j: usize, c: &str| j != i && c.chars().count() > abbr.chars().count();
        let full = cells
            .iter()
            .enumerate()
            .find(|(j, c)| longer(*j, c) && is_subsequence(abbr, c))
            .or_else(|| {
                cells
                    .iter()
                    .enumerate()
                    .find(|(j, c)| longer(*j, c) && abbr.chars().any(|a| c.contains(a)))
            })
            .map(|(_, c)| *c);
        if let Some(full) = full {
            out.push((abbr.to_string(), full.to_owned(), here, false));
        }
    }
}

/// Mines candidates from the documents, and from the questions people asked of them (a
/// short word the documents never use, paired with the documents' term it abbreviates
/// best), best first, at most `limit`.
pub fn suggest(
    docs: &[String],
    questions: &[String],
    model: &AbbrevModel,
    limit: usize,
) -> Vec<Suggestion> {
    let seg = luodi_text::Segmenter::shared();
    // (abbr, full) → (evidence rank, documents, example, model score)
    let mut found: HashMap<(String, String), (u8, usize, String)> = HashMap::new();
    let mut term_count: HashMap<Vec<String>, usize> = HashMap::new();
    // documents each short word occurs in: a common word found beside a term is no evidence
    let mut short_docs: HashMap<String, usize> = HashMap::new();
    for doc in docs {
        let text = doc.as_str();
        let mut st = Vec::new();
        stated(text, &mut st);
        tabled(text, &mut st);
        let mut seen_here = std::collections::HashSet::new();
        for (abbr, full, at, bracket) in st {
            let key = (abbr, full);
            if !seen_here.insert(key.clone()) {
                continue;
            }
            let rank = if bracket { 1 } else { 2 };
            let e = found.entry(key).or_insert((rank, 0, snippet(text, at)));
            e.0 = e.0.max(rank);
            e.1 += 1;
        }
        // terms of 2-3 words (CJK, 3-10 characters) and short words of this document
        let words: Vec<&str> = seg.cut(text);
        let mut terms: Vec<Vec<String>> = Vec::new();
        // one long word (香港小姐, 中国共产党) counts as the words it is made of
        for w in &words {
            let c: Vec<char> = w.chars().collect();
            if (4..=10).contains(&c.len()) && c.iter().all(|x| is_cjk(*x)) {
                terms.push(parts_of(seg, &c));
            }
        }
        for n in 2..=3 {
            for w in words.windows(n) {
                if w.iter().all(|x| x.chars().all(is_cjk)) {
                    let len: usize = w.iter().map(|x| x.chars().count()).sum();
                    if (3..=10).contains(&len) {
                        terms.push(w.iter().map(|s| s.to_string()).collect());
                    }
                }
            }
        }
        terms.sort();
        terms.dedup();
        for t in &terms {
            *term_count.entry(t.clone()).or_insert(0) += 1;
        }
        // terms by each character they hold, so a short form finds those holding its first
        let mut by_char: HashMap<char, Vec<String>> = HashMap::new();
        for t in &terms {
            let full = t.concat();
            let mut cs: Vec<char> = full.chars().collect();
            cs.sort_unstable();
            cs.dedup();
            for c in cs {
                by_char.entry(c).or_default().push(full.clone());
            }
        }
        let shorts = short_words(&words);
        for s in &shorts {
            *short_docs.entry(s.clone()).or_insert(0) += 1;
        }
        for s in shorts.iter().map(String::as_str) {
            let Some(first) = s.chars().next() else {
                continue;
            };
            let Some(cands) = by_char.get(&first) else {
                continue;
            };
            for full in cands {
                if full.chars().count() > s.chars().count()
                    && !full.contains(s)
                    && is_subsequence(s, full)
                    && seen_here.insert((s.to_owned(), full.clone()))
                {
                    let at = text.find(s).unwrap_or(0);
                    let e = found.entry((s.to_owned(), full.clone())).or_insert((
                        0,
                        0,
                        snippet(text, at),
                    ));
                    e.1 += 1;
                }
            }
        }
    }
    let words_of: HashMap<String, Vec<String>> =
        term_count.keys().map(|t| (t.concat(), t.clone())).collect();
    let mut out: Vec<Suggestion> = Vec::new();
    for ((abbr, full), (rank, count, example)) in found {
        let term = Term::new(
            words_of
                .get(&full)
                .cloned()
                .unwrap_or_else(|| seg.cut(&full).into_iter().map(str::to_owned).collect()),
            vec![],
        );
        let fit = model.score(&term, &abbr).unwrap_or(-30.0);
        let (evidence, base) = match rank {
            2 => ("stated", 3.0),
            1 => ("stated", 2.0),
            _ => ("together", 0.0),
        };
        // seen together: in 2+ documents, in at least a fifth of those the short word is in
        // (专业, 院长 are beside many terms: they abbreviate none), and a likely shortening
        let association = count as f64 / short_docs.get(&abbr).copied().unwrap_or(1).max(1) as f64;
        if rank == 0 && (count < 2 || association < 0.2 || fit < -14.0) {
            continue;
        }
        out.push(Suggestion {
            abbr,
            full,
            evidence: evidence.into(),
            score: base + (count as f64).ln() + fit / 10.0,
            count,
            example,
        });
    }
    out.extend(asked(docs, questions, model, &term_count, &short_docs));
    // predicted: frequent terms the model says are shortened
    let mut predicted: HashMap<String, Suggestion> = HashMap::new();
    for (t, n) in &term_count {
        if *n < 3 {
            continue;
        }
        let term = Term::new(t.clone(), vec![]);
        let full = term.text();
        // the model's cheap judgement first: tagging runs the segmenter again
        if model.has_abbreviation(&term) < 0.5 || !names_a_thing(seg, &full) {
            continue;
        }
        let Some((abbr, logp)) = model.generate(&term) else {
            continue;
        };
        // a predicted form that is a word of its own (台北 from 台湾北部) would stand for it
        // wherever the word is used
        if full.contains(&abbr) || seg.has_word(&abbr) || short_docs.contains_key(&abbr) {
            continue;
        }
        let s = Suggestion {
            abbr: abbr.clone(),
            full,
            evidence: "predicted".into(),
            score: -3.0 + (*n as f64).ln() / 2.0 + logp / 10.0,
            count: *n,
            example: String::new(),
        };
        match predicted.get(&abbr) {
            Some(p) if p.count >= s.count => {}
            _ => {
                predicted.insert(abbr, s);
            }
        }
    }
    out.extend(predicted.into_values());
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.abbr.cmp(&b.abbr))
            .then_with(|| a.full.cmp(&b.full))
    });
    // one full form per abbreviation, the best; no full form that is another's abbreviation
    let mut taken: HashMap<String, ()> = HashMap::new();
    let mut kept = Vec::new();
    for s in out {
        if taken.contains_key(&s.abbr) || taken.contains_key(&s.full) {
            continue;
        }
        taken.insert(s.abbr.clone(), ());
        kept.push(s);
        if kept.len() >= limit {
            break;
        }
    }
    kept
}

/// The words a long word is made of: the fewest dictionary words of two or more characters
/// that spell it (中国共产党 → 中国 共产党, 上海证券交易所 → 上海 证券 交易所), or, where none
/// do (以工代赈), its two-character pieces. Short forms take characters word by word (中共),
/// so the split decides which short forms fit.
fn parts_of(seg: &luodi_text::Segmenter, chars: &[char]) -> Vec<String> {
    let n = chars.len();
    // best[j]: the fewest words spelling chars[..j], as the start of the last one
    let mut best: Vec<Option<(usize, usize)>> = vec![None; n + 1];
    best[0] = Some((0, 0));
    for i in 0..n {
        let Some((pieces, _)) = best[i] else {
            continue;
        };
        for j in i + 2..=n {
            if j - i == n {
                break;
            }
            let w: String = chars[i..j].iter().collect();
            if seg.has_word(&w) && best[j].is_none_or(|(p, _)| pieces + 1 < p) {
                best[j] = Some((pieces + 1, i));
            }
        }
    }
    if best[n].is_none() {
        return chars.chunks(2).map(|p| p.iter().collect()).collect();
    }
    let mut out = Vec::new();
    let mut j = n;
    while j > 0 {
        let Some((_, i)) = best[j] else {
            break;
        };
        out.push(chars[i..j].iter().collect());
        j = i;
    }
    out.reverse();
    out
}

/// Whether a term reads as the name of a thing (a noun phrase: 经济学院, 人口普查,
/// 中华人民共和国商务部) rather than a run of words that happen to stand together (不断优化,
/// 一级学科, 专业招生, 发表论文, 优秀校友): jieba tags it ending in a noun and holding no verb,
/// adjective, adverb, numeral, pronoun, preposition, conjunction, particle, measure word or
/// locative. Only names are shortened by habit, so only they get a predicted short form.
/// `eval glossary`'s mined glossaries shrink (CMRC 819 → 432 entries, XQuAD 37 → 23, Taipei
/// 2,108 → 891, DomainRAG 5,000, the cap, → 4,200) with the same table pairs found and the
/// same Recall@5 in both modes.
fn names_a_thing(seg: &luodi_text::Segmenter, term: &str) -> bool {
    let tags = seg.tag(term);
    let noun = |t: &str| t.starts_with('n') || t == "vn";
    let other = |t: &str| {
        ["v", "vd", "a", "ad"].contains(&t)
            || [
                "d", "m", "r", "p", "c", "u", "q", "f", "y", "e", "o", "x", "z",
            ]
            .iter()
            .any(|p| t.starts_with(p))
    };
    tags.last().is_some_and(|(_, t)| noun(t)) && !tags.iter().any(|(_, t)| other(t))
}

/// Short words of 2–4 CJK characters in `words`, and pairs of single characters the
/// segmenter left apart (a short form it does not know: 港 姐).
fn short_words(words: &[&str]) -> Vec<String> {
    let mut shorts: Vec<String> = words
        .iter()
        .filter(|w| (2..=4).contains(&w.chars().count()) && w.chars().all(is_cjk))
        .map(|w| w.to_string())
        .collect();
    for w in words.windows(2) {
        if w.iter()
            .all(|x| x.chars().count() == 1 && x.chars().all(is_cjk))
        {
            shorts.push(w.concat());
        }
    }
    shorts.sort_unstable();
    shorts.dedup();
    shorts
}

/// Whether `abbr` takes at least one character from every word of `words`, in order (北大
/// from 北京 大学; not 省府 from 省政府 决策, where 决策 gives nothing).
fn every_word_gives(words: &[String], abbr: &str) -> bool {
    fn split(words: &[String], abbr: &[char]) -> bool {
        match words {
            [] => abbr.is_empty(),
            [w, rest @ ..] => (1..=abbr.len().saturating_sub(rest.len())).any(|k| {
                let part: String = abbr[..k].iter().collect();
                is_subsequence(&part, w) && split(rest, &abbr[k..])
            }),
        }
    }
    let a: Vec<char> = abbr.chars().collect();
    split(words, &a)
}

/// Asked: a short word of the questions that no document holds (people call something by a
/// name the documents do not use), paired with the documents' term whose first word starts
/// or ends with its first character, whose words give the rest in order, and that the model
/// finds the likeliest to be shortened so (at least as likely as a pair seen together must
/// be).
fn asked(
    docs: &[String],
    questions: &[String],
    model: &AbbrevModel,
    term_count: &HashMap<Vec<String>, usize>,
    short_docs: &HashMap<String, usize>,
) -> Vec<Suggestion> {
    if questions.is_empty() {
        return Vec::new();
    }
    let seg = luodi_text::Segmenter::shared();
    // terms by the first and the last character of their first word: a short form starts
    // with one of them (港姐 with 港 of 香港小姐)
    let mut by_lead: HashMap<char, Vec<(&Vec<String>, usize)>> = HashMap::new();
    for (t, n) in term_count {
        let Some(w) = t.first() else {
            continue;
        };
        let (Some(a), Some(b)) = (w.chars().next(), w.chars().last()) else {
            continue;
        };
        by_lead.entry(a).or_default().push((t, *n));
        if b != a {
            by_lead.entry(b).or_default().push((t, *n));
        }
    }
    // (abbr, full) → (questions, example)
    let mut found: HashMap<(String, String), (usize, f64, String)> = HashMap::new();
    let mut unused: HashMap<String, bool> = HashMap::new();
    for q in questions {
        let words = seg.cut(q);
        // words the segmenter knows only: two single characters side by side in a question
        // are mostly two words (我 还, 时 叫)
        let shorts: Vec<String> = short_words(&words)
            .into_iter()
            .filter(|s| words.contains(&s.as_str()))
            .collect();
        for s in shorts {
            if short_docs.contains_key(&s) {
                continue;
            }
            let never_written = *unused
                .entry(s.clone())
                .or_insert_with(|| !docs.iter().any(|d| d.contains(s.as_str())));
            if !never_written {
                continue;
            }
            let Some(first) = s.chars().next() else {
                continue;
            };
            let n = s.chars().count();
            let best = by_lead
                .get(&first)
                .into_iter()
                .flatten()
                .filter_map(|(t, count)| {
                    // a term that starts or ends with a one-character word (省政府 和) is a
                    // phrase, not a name
                    let edge = |w: Option<&String>| w.is_some_and(|w| w.chars().count() < 2);
                    if edge(t.first()) || edge(t.last()) {
                        return None;
                    }
                    let full = t.concat();
                    if full.chars().count() <= n
                        || full.contains(s.as_str())
                        || q.contains(&full)
                        || !every_word_gives(t, &s)
                    {
                        return None;
                    }
                    let fit = model.score(&Term::new((*t).clone(), vec![]), &s)?;
                    Some((full, fit, *count))
                })
                .max_by(|a, b| {
                    a.1.total_cmp(&b.1)
                        .then(a.2.cmp(&b.2))
                        .then_with(|| b.0.cmp(&a.0))
                });
            if let Some((full, fit, _)) = best.filter(|b| b.1 >= -14.0) {
                let e = found.entry((s, full)).or_insert((0, fit, q.clone()));
                e.0 += 1;
            }
        }
    }
    found
        .into_iter()
        .map(|((abbr, full), (count, fit, example))| Suggestion {
            abbr,
            full,
            evidence: "asked".into(),
            score: 1.0 + (count as f64).ln() + fit / 10.0,
            count,
            example: example.chars().take(80).collect(),
        })
        .collect()
}

impl crate::home::Home {
    /// Candidates for `kb`'s glossary, best first, at most `limit`: mined from its documents
    /// and the questions its conversations asked with `model`, without those turned down
    /// before or clashing with an entry already there.
    pub fn glossary_suggestions(
        &self,
        kb: &str,
        model: &AbbrevModel,
        limit: usize,
    ) -> luodi_core::Result<Vec<Suggestion>> {
        let k = self.open_kb(kb)?;
        let mut docs = Vec::new();
        k.store.dump(|_, ds| {
            for (_, chunks) in ds {
                docs.push(
                    chunks
                        .iter()
                        .map(|c| c.text.as_str())
                        .collect::<Vec<_>>()
                        .join("\n"),
                );
            }
            Ok(())
        })?;
        let questions = self.questions_asked(kb, 10_000)?;
        let existing = self.glossary(kb)?;
        let rejected = self.glossary_rejected(kb)?;
        Ok(suggest(&docs, &questions, model, limit.saturating_mul(4))
            .into_iter()
            .filter(|s| {
                !rejected.contains(&(s.abbr.clone(), s.full.clone()))
                    && existing
                        .check(&crate::glossary::Entry::abbreviation(&s.abbr, &s.full))
                        .is_ok()
            })
            .take(limit)
            .collect())
    }
}

impl Suggestion {
    /// The glossary entry accepting it makes.
    pub fn entry(&self) -> crate::glossary::Entry {
        let mut e = crate::glossary::Entry::abbreviation(&self.abbr, &self.full);
        e.source = format!("suggest:{}", self.evidence);
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_word_people_ask_with_is_paired_with_the_term_it_shortens() {
        let docs: Vec<String> = vec![
            "财政金融学院设有金融学、财政学两个专业。财政金融学院院长由校长任命。".into(),
            "省政府决策因火山喷发而改变。省政府迁往新城。".into(),
            "证券交易所每天上午开盘。华沙证券交易所建于1817年。".into(),
            "台北市市民以工代赈辅导自治条例。以工代赈提供临时工作。".into(),
        ];
        let questions: Vec<String> = vec![
            "财金学院的院长是谁？".into(),
            "华沙证交所什么时候建立？".into(),
            "省府为什么搬迁？".into(),
            "申请工赈临时工要什么文件？".into(),
        ];
        let m = AbbrevModel::first_characters();
        let s = suggest(&docs, &questions, &m, 100);
        let asked: Vec<(&str, &str)> = s
            .iter()
            .filter(|x| x.evidence == "asked")
            .map(|x| (x.abbr.as_str(), x.full.as_str()))
            .collect();
        assert!(asked.contains(&("证交所", "证券交易所")), "{asked:?}");
        assert!(
            asked
                .iter()
                .any(|(a, f)| *a == "财金" && f.starts_with("财政金融")),
            "{asked:?}"
        );
        // a short form may start inside the term's first word (工 of 以工代赈)
        assert!(asked.contains(&("工赈", "以工代赈")), "{asked:?}");
        // 决策 gives 省府 no character: no pair
        assert!(!asked.iter().any(|(a, _)| *a == "省府"), "{asked:?}");
        // without questions, nothing is asked
        assert!(suggest(&docs, &[], &m, 100)
            .iter()
            .all(|x| x.evidence != "asked"));
        assert!(every_word_gives(&["北京".into(), "大学".into()], "北大"));
        assert!(!every_word_gives(&["省政府".into(), "决策".into()], "省府"));
    }

    #[test]
    fn stated_and_seen_together_pairs_are_found() {
        let docs: Vec<String> = vec![
            "杭州分公司（以下简称杭分）负责浙江业务。杭分的地址在文三路。".into(),
            "北京大学（北大）是一所综合性大学。".into(),
            "| 分公司 | 简称 | 电话 |\n| --- | --- | --- |\n| 上海分公司 | 沪分 | 021 |\n| 南京分公司 | 宁分 | 025 |".into(),
            "香港小姐选美比赛每年举行，港姐冠军将代表香港。".into(),
            "第一届香港小姐冠军是谁？港姐的历史很长。".into(),
            "本行广东分公司（以下简称粤分）负责华南业务。".into(),
        ];
        let m = AbbrevModel::first_characters();
        let s = suggest(&docs, &[], &m, 100);
        let has = |a: &str, f: &str| s.iter().any(|x| x.abbr == a && x.full == f);
        assert!(has("杭分", "杭州分公司"), "{s:?}");
        assert!(has("北大", "北京大学"), "{s:?}");
        assert!(has("港姐", "香港小姐"), "{s:?}");
        assert!(has("沪分", "上海分公司"), "{s:?}");
        // a short form built on a place's one-character name: 粤 is 广东
        assert!(has("粤分", "广东分公司"), "{s:?}");
        let first = &s[0];
        assert_eq!(first.evidence, "stated");
    }

    #[test]
    fn a_long_word_is_read_as_the_words_it_is_made_of() {
        let seg = luodi_text::Segmenter::shared();
        let parts = |w: &str| parts_of(seg, &w.chars().collect::<Vec<_>>());
        assert_eq!(parts("中国共产党"), ["中国", "共产党"]);
        assert_eq!(parts("上海证券交易所"), ["上海", "证券", "交易所"]);
        assert_eq!(parts("香港小姐"), ["香港", "小姐"]);
        assert_eq!(parts("以工代赈"), ["以工", "代赈"]);
    }

    #[test]
    fn only_names_get_a_predicted_short_form() {
        let docs: Vec<String> = (0..3)
            .map(|_| {
                "今年开展人口普查。学院不断优化课程，一级学科全部参评，教师发表论文。".to_string()
            })
            .collect();
        let s = suggest(&docs, &[], &AbbrevModel::first_characters(), 100);
        let predicted = |f: &str| s.iter().any(|x| x.full == f && x.evidence == "predicted");
        assert!(predicted("人口普查"), "{s:?}");
        assert!(!predicted("不断优化"), "{s:?}");
        assert!(!predicted("一级学科"), "{s:?}");
        assert!(!predicted("发表论文"), "{s:?}");
    }

    #[test]
    fn a_bracket_that_goes_on_states_no_short_form() {
        let docs: Vec<String> = vec![
            "其中有两个三配位的硼原子（两个BO三角形）。".into(),
            "中国人民大学（人大，Renmin University）位于北京。".into(),
        ];
        let s = suggest(&docs, &[], &AbbrevModel::first_characters(), 100);
        assert!(!s.iter().any(|x| x.abbr == "两个"), "{s:?}");
        // the first of a list in the bracket still counts
        assert!(s.iter().any(|x| x.abbr == "人大"), "{s:?}");
    }
}
