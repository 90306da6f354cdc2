//! Chinese abbreviations: how a full form (a sequence of words) is shortened — 杭州分公司 →
//! 杭分, 职业教育管理委员会 → 职教管委会 — learned from pairs, then used to rank the full
//! forms an abbreviation may stand for, and to tell whether a term is usually shortened at all.
//!
//! The model: an abbreviation keeps, from each word of the full form, a subsequence of its
//! characters (often the first, sometimes none or all), in order. Which characters a word keeps
//! depends on the word's length, its part of speech and its place in the term; the model counts
//! those patterns in training pairs (each pair's alignments weighted equally) and scores a
//! candidate full form by its best alignment with the abbreviation, under counts interpolated
//! over three back-off levels. A full form the abbreviation is not a subsequence of cannot be
//! its expansion.
//!
//! Whether a term has an abbreviation: naive Bayes over its words, parts of speech and shape.

use std::collections::HashMap;

/// A term as a sequence of words, with their parts of speech (jieba/ICTCLAS tags; empty
/// strings where unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub words: Vec<String>,
    pub pos: Vec<String>,
}

impl Term {
    pub fn new(words: Vec<String>, pos: Vec<String>) -> Term {
        let pos = if pos.len() == words.len() {
            pos
        } else {
            vec![String::new(); words.len()]
        };
        Term { words, pos }
    }

    /// The term as text.
    pub fn text(&self) -> String {
        self.words.concat()
    }
}

/// A training pair: a term and its abbreviation (`None`: it has none).
#[derive(Debug, Clone)]
pub struct Pair {
    pub term: Term,
    pub abbr: Option<String>,
}

/// What a word keeps: a bit mask of its characters for words of up to [`MASK_MAX`] characters;
/// for longer words, none / the first / something else.
type Pattern = u16;
const MASK_MAX: usize = 5;
/// Words longer than this are only ever kept whole, by their first character, or dropped.
const ENUM_MAX: usize = 8;
const LONG_NONE: Pattern = 1000;
const LONG_FIRST: Pattern = 1001;
const LONG_OTHER: Pattern = 1002;
/// Alignments considered per pair.
const MAX_ALIGNMENTS: usize = 64;
const LAMBDA: [f64; 3] = [0.5, 0.3, 0.2];

fn pattern(len: usize, mask: u32) -> Pattern {
    if len <= MASK_MAX {
        mask as Pattern
    } else if mask == 0 {
        LONG_NONE
    } else if mask == 1 {
        LONG_FIRST
    } else {
        LONG_OTHER
    }
}

/// Every way (up to [`MAX_ALIGNMENTS`]) of taking `abbr` from the words in order: per word,
/// the mask of its characters kept.
fn alignments(words: &[Vec<char>], abbr: &[char]) -> Vec<Vec<u32>> {
    fn rec(
        words: &[Vec<char>],
        abbr: &[char],
        i: usize,
        j: usize,
        acc: &mut Vec<u32>,
        out: &mut Vec<Vec<u32>>,
    ) {
        if out.len() >= MAX_ALIGNMENTS {
            return;
        }
        if i == words.len() {
            if j == abbr.len() {
                out.push(acc.clone());
            }
            return;
        }
        let w = &words[i];
        let masks: Vec<u32> = if w.len() <= ENUM_MAX {
            (0..1u32 << w.len()).collect()
        } else {
            vec![0, 1, (1u32 << w.len().min(31)) - 1]
        };
        for m in masks {
            let k = m.count_ones() as usize;
            if j + k > abbr.len() {
                continue;
            }
            let fits = (0..w.len())
                .filter(|t| m >> t & 1 == 1)
                .zip(&abbr[j..j + k])
                .all(|(t, c)| w[t] == *c);
            if fits {
                acc.push(m);
                rec(words, abbr, i + 1, j + k, acc, out);
                acc.pop();
            }
        }
    }
    let mut out = Vec::new();
    if abbr.is_empty() || words.is_empty() {
        return out;
    }
    rec(words, abbr, 0, 0, &mut Vec::new(), &mut out);
    out
}

/// Whether `abbr`'s characters occur in `full` in order.
pub fn is_subsequence(abbr: &str, full: &str) -> bool {
    let mut it = full.chars();
    abbr.chars().all(|c| it.any(|f| f == c))
}

/// The one-character names of provinces and major cities (沪 is 上海, 粤 is 广东): a short
/// form built on one (沪分 for 上海分公司) keeps none of the place's own characters.
pub fn place_names(c: char) -> &'static [&'static str] {
    match c {
        '京' => &["北京"],
        '沪' | '申' => &["上海"],
        '津' => &["天津"],
        '渝' => &["重庆"],
        '冀' => &["河北"],
        '晋' => &["山西"],
        '辽' => &["辽宁"],
        '吉' => &["吉林"],
        '黑' => &["黑龙江"],
        '苏' => &["江苏", "苏州"],
        '浙' => &["浙江"],
        '皖' => &["安徽"],
        '闽' => &["福建"],
        '赣' => &["江西"],
        '鲁' => &["山东"],
        '豫' => &["河南"],
        '鄂' => &["湖北"],
        '湘' => &["湖南"],
        '粤' => &["广东"],
        '桂' => &["广西"],
        '琼' => &["海南"],
        '川' | '蜀' => &["四川"],
        '黔' => &["贵州"],
        '滇' => &["云南"],
        '藏' => &["西藏"],
        '陕' | '秦' => &["陕西"],
        '陇' => &["甘肃"],
        '蒙' => &["内蒙古"],
        '港' => &["香港"],
        '澳' => &["澳门"],
        '穗' => &["广州"],
        '深' => &["深圳"],
        '甬' => &["宁波"],
        '蓉' => &["成都"],
        '榕' => &["福州"],
        '邕' => &["南宁"],
        '汉' => &["武汉"],
        '宁' => &["南京", "宁夏"],
        '杭' => &["杭州"],
        '锡' => &["无锡"],
        '厦' => &["厦门"],
        _ => &[],
    }
}

/// Where in `full` a short form may start: at its first character, or at a place its first
/// character names (沪 → 上海); with the rest of the short form after it in order.
pub fn aligns_at(abbr: &str, full: &str) -> Option<usize> {
    let first = abbr.chars().next()?;
    let rest = &abbr[first.len_utf8()..];
    if let Some(i) = full.find(first) {
        if is_subsequence(rest, &full[i + first.len_utf8()..]) {
            return Some(i);
        }
    }
    place_names(first).iter().find_map(|p| {
        let i = full.find(p)?;
        is_subsequence(rest, &full[i + p.len()..]).then_some(i)
    })
}

type Counts = HashMap<String, HashMap<Pattern, f64>>;

/// The learned model.
#[derive(Debug, Default, Clone)]
pub struct AbbrevModel {
    levels: [Counts; 3],
    has: NaiveBayes,
}

fn context(term: &Term, i: usize) -> [String; 3] {
    let len = term.words[i].chars().count().min(MASK_MAX + 1);
    let pos = &term.pos[i];
    let first = i == 0;
    let last = i + 1 == term.words.len();
    [
        format!("{len}|{pos}|{first}|{last}"),
        format!("{len}|{pos}"),
        format!("{len}"),
    ]
}

impl AbbrevModel {
    /// Learns from pairs (those without an abbreviation teach only [`Self::has_abbreviation`]).
    pub fn train(pairs: &[Pair]) -> AbbrevModel {
        let mut m = AbbrevModel::default();
        for p in pairs {
            m.has.add(&has_features(&p.term), p.abbr.is_some());
            let Some(abbr) = &p.abbr else { continue };
            let words: Vec<Vec<char>> = p.term.words.iter().map(|w| w.chars().collect()).collect();
            let abbr: Vec<char> = abbr.chars().collect();
            let al = alignments(&words, &abbr);
            if al.is_empty() {
                continue;
            }
            let w = 1.0 / al.len() as f64;
            for a in &al {
                for (i, mask) in a.iter().enumerate() {
                    let pat = pattern(words[i].len(), *mask);
                    for (lvl, key) in context(&p.term, i).into_iter().enumerate() {
                        *m.levels[lvl]
                            .entry(key)
                            .or_default()
                            .entry(pat)
                            .or_insert(0.0) += w;
                    }
                }
            }
        }
        m
    }

    fn prob(&self, term: &Term, i: usize, pat: Pattern) -> f64 {
        let mut p = 0.0;
        for (lvl, key) in context(term, i).iter().enumerate() {
            p += LAMBDA[lvl]
                * match self.levels[lvl].get(key) {
                    Some(c) => {
                        let total: f64 = c.values().sum();
                        (c.get(&pat).copied().unwrap_or(0.0) + 0.01) / (total + 0.32)
                    }
                    None => 1e-3,
                };
        }
        p.max(1e-6)
    }

    /// Log-score of `abbr` shortening `term` (its best alignment); `None` when it cannot.
    pub fn score(&self, term: &Term, abbr: &str) -> Option<f64> {
        if !is_subsequence(abbr, &term.text()) {
            return None;
        }
        let words: Vec<Vec<char>> = term.words.iter().map(|w| w.chars().collect()).collect();
        let abbr: Vec<char> = abbr.chars().collect();
        alignments(&words, &abbr)
            .iter()
            .map(|a| {
                a.iter()
                    .enumerate()
                    .map(|(i, m)| self.prob(term, i, pattern(words[i].len(), *m)).ln())
                    .sum::<f64>()
            })
            .max_by(f64::total_cmp)
    }

    /// The candidates `abbr` may stand for, best first (index into `candidates`, score); those
    /// it cannot shorten are left out.
    pub fn expand(&self, abbr: &str, candidates: &[Term]) -> Vec<(usize, f64)> {
        let mut out: Vec<(usize, f64)> = candidates
            .iter()
            .enumerate()
            .filter_map(|(i, t)| self.score(t, abbr).map(|s| (i, s)))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }

    /// Whether a term is usually shortened (probability).
    pub fn has_abbreviation(&self, term: &Term) -> f64 {
        self.has.prob(&has_features(term))
    }
}

fn has_features(t: &Term) -> Vec<String> {
    let n = t.words.len();
    let mut f = vec![
        format!("n={}", n.min(5)),
        format!("len={}", t.text().chars().count().min(10)),
        format!("pp={}", t.pos.join("-")),
    ];
    if let (Some(w0), Some(wl), Some(p0), Some(pl)) =
        (t.words.first(), t.words.last(), t.pos.first(), t.pos.last())
    {
        f.push(format!("first={p0}"));
        f.push(format!("last={pl}"));
        f.push(format!("firstw={w0}"));
        f.push(format!("lastw={wl}"));
    }
    f.extend(t.pos.iter().map(|p| format!("pos={p}")));
    f.extend(t.words.iter().map(|w| format!("w={w}")));
    f
}

/// Multinomial naive Bayes over string features, two classes.
#[derive(Debug, Default, Clone)]
struct NaiveBayes {
    prior: [f64; 2],
    counts: [HashMap<String, f64>; 2],
    totals: [f64; 2],
}

impl NaiveBayes {
    fn add(&mut self, features: &[String], y: bool) {
        let c = y as usize;
        self.prior[c] += 1.0;
        for f in features {
            *self.counts[c].entry(f.clone()).or_insert(0.0) += 1.0;
            self.totals[c] += 1.0;
        }
    }

    fn prob(&self, features: &[String]) -> f64 {
        let vocab = {
            let mut v: std::collections::HashSet<&String> = self.counts[0].keys().collect();
            v.extend(self.counts[1].keys());
            v.len().max(1) as f64
        };
        let n = self.prior[0] + self.prior[1];
        if n == 0.0 {
            return 0.5;
        }
        let lp = |c: usize| -> f64 {
            let mut s = ((self.prior[c] + 1.0) / (n + 2.0)).ln();
            for f in features {
                let k = self.counts[c].get(f).copied().unwrap_or(0.0);
                s += ((k + 0.5) / (self.totals[c] + 0.5 * vocab)).ln();
            }
            s
        };
        let (a, b) = (lp(1), lp(0));
        1.0 / (1.0 + (b - a).exp())
    }
}

impl AbbrevModel {
    /// The most likely abbreviation of a term under the model: per word, its most likely
    /// pattern; `None` when that keeps fewer than two characters or the whole term.
    pub fn generate(&self, term: &Term) -> Option<(String, f64)> {
        let mut out = String::new();
        let mut logp = 0.0;
        for (i, w) in term.words.iter().enumerate() {
            let chars: Vec<char> = w.chars().collect();
            let masks: Vec<u32> = if chars.len() <= MASK_MAX {
                (0..1u32 << chars.len()).collect()
            } else {
                vec![0, 1]
            };
            let (best, p) = masks
                .into_iter()
                .map(|m| (m, self.prob(term, i, pattern(chars.len(), m))))
                .max_by(|a, b| a.1.total_cmp(&b.1))?;
            logp += p.ln();
            out.extend(
                chars
                    .iter()
                    .enumerate()
                    .filter(|(t, _)| best >> t & 1 == 1)
                    .map(|(_, c)| *c),
            );
        }
        let n = out.chars().count();
        (n >= 2 && n < term.text().chars().count()).then_some((out, logp))
    }

    /// A model from the usual rule alone (the first character of each word), for when no
    /// training pairs are at hand.
    pub fn first_characters() -> AbbrevModel {
        let mut pairs = Vec::new();
        for n in 2..=4 {
            for len in 1..=4 {
                let words: Vec<String> = (0..n)
                    .map(|i| {
                        (0..len)
                            .map(|j| char::from_u32(0x4e00 + (i * 7 + j) as u32).unwrap_or('一'))
                            .collect()
                    })
                    .collect();
                let abbr: String = words.iter().filter_map(|w| w.chars().next()).collect();
                pairs.push(Pair {
                    term: Term::new(words, vec![]),
                    abbr: Some(abbr),
                });
            }
        }
        AbbrevModel::train(&pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_name_character_aligns_with_the_place() {
        assert_eq!(aligns_at("杭分", "杭州分公司"), Some(0));
        assert_eq!(aligns_at("沪分", "上海分公司"), Some(0));
        assert_eq!(aligns_at("沪分", "本行上海分公司"), Some("本行".len()));
        assert_eq!(aligns_at("沪分", "北京分公司"), None);
        assert_eq!(aligns_at("粤高速", "广东省高速公路"), Some(0));
    }

    fn term(words: &[&str]) -> Term {
        Term::new(words.iter().map(|w| w.to_string()).collect(), vec![])
    }

    #[test]
    fn first_characters_of_each_word_rank_the_right_full_form_first() {
        let pairs: Vec<Pair> = [
            (&["北京", "大学"][..], Some("北大")),
            (&["清华", "大学"][..], Some("清华")),
            (&["人民", "代表", "大会"][..], Some("人大")),
            (&["上海", "分公司"][..], Some("上分")),
            (&["广州", "分公司"][..], Some("广分")),
            (&["科学", "技术"][..], Some("科技")),
            (&["要", "不然"][..], None),
        ]
        .iter()
        .map(|(w, a)| Pair {
            term: term(w),
            abbr: a.map(str::to_owned),
        })
        .collect();
        let m = AbbrevModel::train(&pairs);
        let cands = vec![
            term(&["杭州", "银行"]),
            term(&["杭州", "分公司"]),
            term(&["杭", "分散", "处理"]),
        ];
        let r = m.expand("杭分", &cands);
        assert_eq!(r[0].0, 1, "{r:?}");
        assert_eq!(r.len(), 2, "杭州银行 cannot give 杭分");
        assert!(m.score(&term(&["北京", "大学"]), "大北").is_none());
    }
}
