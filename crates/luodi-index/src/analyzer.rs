//! The Chinese analyzer behind BM25.
//!
//! Text is folded first (NFKC, lowercase, 繁→简, so 臺灣 meets 台湾 and ＶＰＮ meets vpn), then
//! cut into terms: jieba search-mode words, and optionally character unigrams and bigrams of
//! every run of Han characters. Words give precision on vocabulary jieba knows; bigrams give
//! recall on names, abbreviations and colloquial spellings it does not. Latin and digit runs
//! are kept as lowercase words. The same function analyzes documents and queries.

use luodi_text::{fold_for_search, is_han, Segmenter};
use serde::{Deserialize, Serialize};

/// Which terms the analyzer emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalyzerConfig {
    pub words: bool,
    pub unigrams: bool,
    pub bigrams: bool,
    /// Character trigrams of Latin words of four letters or more, so that `merits` meets
    /// `merit` and `NSFNET` meets `NSFNet's`: the partial matching of names and English words
    /// that bigrams give Chinese. Absent in stores created before it existed (read as off).
    #[serde(default)]
    pub latin_trigrams: bool,
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        // words + unigrams + bigrams measured best on the tuning halves of all five
        // retrieval sets (see ARCHITECTURE.md, "Analyzer")
        AnalyzerConfig {
            words: true,
            unigrams: true,
            bigrams: true,
            latin_trigrams: true,
        }
    }
}

impl AnalyzerConfig {
    /// A short stable name, used to register the tantivy tokenizer.
    pub fn name(&self) -> String {
        // stores made before trigrams registered the name without `t`: it must not change
        format!(
            "luodi_w{}u{}b{}{}",
            self.words as u8,
            self.unigrams as u8,
            self.bigrams as u8,
            if self.latin_trigrams { "t1" } else { "" }
        )
    }

    /// The letters of `--analyzer`: w, u, b, t.
    pub fn letters(&self) -> String {
        [
            (self.words, 'w'),
            (self.unigrams, 'u'),
            (self.bigrams, 'b'),
            (self.latin_trigrams, 't'),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, c)| *c)
        .collect()
    }

    /// Parses the letters of `--analyzer` (any of w, u, b, t; not t alone).
    pub fn from_letters(s: &str) -> Option<AnalyzerConfig> {
        if s.is_empty() || !s.chars().all(|c| "wubt".contains(c)) || s == "t" {
            return None;
        }
        Some(AnalyzerConfig {
            words: s.contains('w'),
            unigrams: s.contains('u'),
            bigrams: s.contains('b'),
            latin_trigrams: s.contains('t'),
        })
    }
}

/// Emits the character trigrams of a lowercase ASCII word of four letters or more (trigrams
/// measured best against bigrams and 4-grams on the tuning halves). Digits are not cut: 1964
/// must not meet 1965.
fn latin_trigrams(word: &str, from: usize, emit: &mut impl FnMut(&str, usize, usize)) {
    let b = word.as_bytes();
    if b.len() < 4 || !b.iter().all(u8::is_ascii_alphabetic) {
        return;
    }
    for k in 0..b.len() - 2 {
        emit(&word[k..k + 3], from + k, from + k + 3);
    }
}

fn is_term_char(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric()
    } else {
        is_han(c) || c.is_alphanumeric()
    }
}

/// Question and function words that say how a question is asked, not what it is about.
/// Dropped from queries (never from documents) when the query has other terms.
const QUERY_STOPWORDS: &[&str] = &[
    "的",
    "了",
    "是",
    "吗",
    "呢",
    "吧",
    "啊",
    "么",
    "什么",
    "什",
    "多少",
    "哪",
    "哪些",
    "哪个",
    "哪里",
    "谁",
    "几",
    "怎么",
    "怎样",
    "如何",
    "为什么",
    "为何",
    "请问",
    "有",
    "在",
    "和",
    "与",
    "及",
    "或",
    "被",
    "把",
    "对",
    "中",
    "上",
    "这",
    "那",
    "个",
    "些",
    "一个",
    "么的",
    "是什",
    "什么是",
    "的是",
    "是多",
    "是哪",
    "是谁",
    "有多",
    "有哪",
    "多少的",
    "呢？",
    "吗？",
];

pub fn is_query_stopword(term: &str) -> bool {
    QUERY_STOPWORDS.contains(&term)
}

/// A token with its byte span in the folded text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub text: String,
    pub from: usize,
    pub to: usize,
}

/// The analyzer. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Analyzer {
    pub config: AnalyzerConfig,
    segmenter: Segmenter,
}

impl Analyzer {
    pub fn new(config: AnalyzerConfig) -> Self {
        Analyzer {
            config,
            segmenter: Segmenter::shared().clone(),
        }
    }

    pub fn with_segmenter(config: AnalyzerConfig, segmenter: Segmenter) -> Self {
        Analyzer { config, segmenter }
    }

    /// Folds and analyzes `text`; spans refer to the folded text.
    pub fn analyze(&self, text: &str) -> Vec<Term> {
        let folded = fold_for_search(text);
        self.analyze_folded(&folded)
    }

    /// Analyzes text that is already folded.
    pub fn analyze_folded(&self, folded: &str) -> Vec<Term> {
        let mut out = Vec::new();
        self.for_each_term(folded, |text, from, to| {
            out.push(Term {
                text: text.to_owned(),
                from,
                to,
            })
        });
        out
    }

    /// Calls `emit(term, from, to)` for each term of already folded text, allocating nothing
    /// per term (indexing emits ~3 terms per Han character).
    pub fn for_each_term(&self, folded: &str, mut emit: impl FnMut(&str, usize, usize)) {
        let base = folded.as_ptr() as usize;
        if self.config.words {
            for w in self.segmenter.cut_dict(folded) {
                if !w.chars().any(is_term_char) {
                    continue;
                }
                let from = w.as_ptr() as usize - base;
                // Latin and digit words are indexed even when n-grams are on; Han words only
                // when longer than one char if unigrams already cover them.
                // a one- or two-character Han word is exactly a unigram or bigram the n-gram pass
                // emits anyway; indexing it twice would only double its term frequency
                let n = w.chars().count();
                let all_han = w.chars().all(is_han);
                if all_han && ((n == 1 && self.config.unigrams) || (n == 2 && self.config.bigrams))
                {
                    continue;
                }
                emit(w, from, from + w.len());
                if self.config.latin_trigrams {
                    latin_trigrams(w, from, &mut emit);
                }
            }
        }
        let cfg = self.config;
        let chars: Vec<(usize, char)> = folded.char_indices().collect();
        let mut i = 0;
        while i < chars.len() {
            let (pos, c) = chars[i];
            if is_han(c) {
                let start = i;
                while i < chars.len() && is_han(chars[i].1) {
                    i += 1;
                }
                let run = &chars[start..i];
                let end_of = |k: usize| run[k].0 + run[k].1.len_utf8();
                // a lone Han character needs a term of its own unless jieba gave it one
                let lone = run.len() == 1 && !cfg.words;
                if cfg.unigrams || lone {
                    for (k, (p, _)) in run.iter().enumerate() {
                        emit(&folded[*p..end_of(k)], *p, end_of(k));
                    }
                }
                if cfg.bigrams {
                    for k in 0..run.len().saturating_sub(1) {
                        emit(&folded[run[k].0..end_of(k + 1)], run[k].0, end_of(k + 1));
                    }
                }
            } else if !cfg.words && is_term_char(c) {
                while i < chars.len() && is_term_char(chars[i].1) && !is_han(chars[i].1) {
                    i += 1;
                }
                let end = chars.get(i).map_or(folded.len(), |x| x.0);
                emit(&folded[pos..end], pos, end);
                if cfg.latin_trigrams {
                    latin_trigrams(&folded[pos..end], pos, &mut emit);
                }
            } else {
                i += 1;
            }
        }
    }

    /// Term strings only.
    pub fn terms(&self, text: &str) -> Vec<String> {
        self.analyze(text).into_iter().map(|t| t.text).collect()
    }
}

/// tantivy adapter.
#[derive(Clone)]
pub(crate) struct TantivyAnalyzer {
    pub analyzer: Analyzer,
    tokens: Vec<tantivy::tokenizer::Token>,
}

impl TantivyAnalyzer {
    pub fn new(analyzer: Analyzer) -> Self {
        TantivyAnalyzer {
            analyzer,
            tokens: Vec::new(),
        }
    }
}

pub(crate) struct VecTokenStream<'a> {
    tokens: &'a mut [tantivy::tokenizer::Token],
    idx: usize,
}

impl tantivy::tokenizer::TokenStream for VecTokenStream<'_> {
    fn advance(&mut self) -> bool {
        if self.idx < self.tokens.len() {
            self.idx += 1;
            true
        } else {
            false
        }
    }
    fn token(&self) -> &tantivy::tokenizer::Token {
        &self.tokens[self.idx - 1]
    }
    fn token_mut(&mut self) -> &mut tantivy::tokenizer::Token {
        &mut self.tokens[self.idx - 1]
    }
}

impl tantivy::tokenizer::Tokenizer for TantivyAnalyzer {
    type TokenStream<'a> = VecTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> VecTokenStream<'a> {
        // token strings are reused across calls: no allocation per term
        let folded = fold_for_search(text);
        let tokens = &mut self.tokens;
        let mut n = 0usize;
        self.analyzer.for_each_term(&folded, |term, from, to| {
            if n == tokens.len() {
                tokens.push(tantivy::tokenizer::Token::default());
            }
            let t = &mut tokens[n];
            t.text.clear();
            t.text.push_str(term);
            t.offset_from = from;
            t.offset_to = to;
            t.position = n;
            t.position_length = 1;
            n += 1;
        });
        VecTokenStream {
            tokens: &mut self.tokens[..n],
            idx: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traditional_and_simplified_share_terms() {
        let a = Analyzer::default();
        let t = a.terms("員工請假");
        let s = a.terms("员工请假");
        assert_eq!(t, s);
        assert!(s.contains(&"员工".to_string()) && s.contains(&"工请".to_string()));
    }

    #[test]
    fn latin_words_and_width() {
        let a = Analyzer::default();
        assert!(a.terms("ＶＰＮ密码").contains(&"vpn".to_string()));
    }

    #[test]
    fn bigram_only_mode() {
        let a = Analyzer::new(AnalyzerConfig {
            words: false,
            unigrams: true,
            bigrams: true,
            latin_trigrams: false,
        });
        assert_eq!(a.terms("请假 VPN"), vec!["请", "假", "请假", "vpn"]);
    }

    #[test]
    fn latin_trigrams_match_word_forms() {
        let a = Analyzer::default();
        let t = a.terms("Merits的NSFNET 1964");
        for want in [
            "merits", "mer", "eri", "rit", "its", "nsfnet", "nsf", "net", "1964",
        ] {
            assert!(t.contains(&want.to_string()), "{want} missing from {t:?}");
        }
        assert!(!t.contains(&"196".to_string()), "digits are not cut");
        let old: AnalyzerConfig =
            serde_json::from_str(r#"{"words":true,"unigrams":true,"bigrams":true}"#).unwrap();
        assert!(
            !old.latin_trigrams,
            "stores created before trigrams keep their analyzer"
        );
    }
}
