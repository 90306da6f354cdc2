//! Quality filters on one document, and boilerplate lines across documents.

use rustc_hash::{FxHashMap, FxHashSet};
use serde::Deserialize;

use crate::{CorpusStep, Doc, DocStep, Verdict};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityParams {
    #[serde(default = "d_min_chars")]
    min_chars: usize,
    #[serde(default = "d_max_chars")]
    max_chars: usize,
    #[serde(default = "d_min_content")]
    min_content_ratio: f64,
    #[serde(default = "d_max_symbol")]
    max_symbol_ratio: f64,
    #[serde(default = "d_repeat")]
    max_repeated_lines: f64,
    #[serde(default = "d_repeat")]
    max_repeated_ngrams: f64,
    #[serde(default)]
    max_control_chars: usize,
}

fn d_min_chars() -> usize {
    10
}
fn d_max_chars() -> usize {
    1_000_000
}
fn d_min_content() -> f64 {
    0.5
}
fn d_max_symbol() -> f64 {
    0.25
}
fn d_repeat() -> f64 {
    0.3
}

pub struct Quality {
    p: QualityParams,
}

fn share(name: &str, v: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(format!("{name}: give a share between 0 and 1, not {v}"))
    }
}

impl Quality {
    pub fn new(p: QualityParams) -> Result<Quality, String> {
        share("min_content_ratio", p.min_content_ratio)?;
        share("max_symbol_ratio", p.max_symbol_ratio)?;
        share("max_repeated_lines", p.max_repeated_lines)?;
        share("max_repeated_ngrams", p.max_repeated_ngrams)?;
        if p.min_chars > p.max_chars {
            return Err(format!(
                "min_chars ({}) is above max_chars ({})",
                p.min_chars, p.max_chars
            ));
        }
        Ok(Quality { p })
    }
}

fn is_content(c: char) -> bool {
    c.is_alphanumeric()
}

/// Symbols that are not sentence punctuation: markup and decoration.
fn is_symbol(c: char) -> bool {
    !c.is_alphanumeric()
        && !c.is_whitespace()
        && !matches!(
            c,
            '，' | '。'
                | '、'
                | '；'
                | '：'
                | '？'
                | '！'
                | '“'
                | '”'
                | '‘'
                | '’'
                | '（'
                | '）'
                | '《'
                | '》'
                | '【'
                | '】'
                | '…'
                | '—'
                | '·'
                | ','
                | '.'
                | ';'
                | ':'
                | '?'
                | '!'
                | '"'
                | '\''
                | '('
                | ')'
                | '-'
                | '%'
                | '/'
                | '「'
                | '」'
                | '『'
                | '』'
        )
}

/// Share of the characters of lines that repeat an earlier line of the document.
fn repeated_line_share(text: &str) -> f64 {
    let mut seen = FxHashSet::default();
    let (mut total, mut repeated) = (0usize, 0usize);
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        let n = l.chars().count();
        total += n;
        if !seen.insert(l) {
            repeated += n;
        }
    }
    if total == 0 {
        0.0
    } else {
        repeated as f64 / total as f64
    }
}

/// Share of character 10-grams (spaces left out) that occur earlier in the document.
fn repeated_ngram_share(text: &str) -> f64 {
    const N: usize = 10;
    let chars: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    if chars.len() < N * 2 {
        return 0.0;
    }
    let mut seen = FxHashSet::default();
    let mut repeated = 0usize;
    let total = chars.len() - N + 1;
    for w in chars.windows(N) {
        let h = super::fnv1a(super::FNV_START, w.iter().map(|c| *c as u64));
        if !seen.insert(h) {
            repeated += 1;
        }
    }
    repeated as f64 / total as f64
}

impl DocStep for Quality {
    fn name(&self) -> &str {
        "quality"
    }

    fn apply(&self, doc: &mut Doc) -> Verdict {
        let p = &self.p;
        let (mut n, mut content, mut symbols, mut control) = (0usize, 0usize, 0usize, 0usize);
        for c in doc.text.chars() {
            if c.is_control() && c != '\n' && c != '\t' && c != '\r' {
                control += 1;
            }
            if c.is_whitespace() {
                continue;
            }
            n += 1;
            if is_content(c) {
                content += 1;
            } else if is_symbol(c) {
                symbols += 1;
            }
        }
        if control > p.max_control_chars {
            return Verdict::drop("control_chars", format!("{control} control characters"));
        }
        if n < p.min_chars {
            return Verdict::drop(
                "too_short",
                format!("{n} characters < min_chars {}", p.min_chars),
            );
        }
        if n > p.max_chars {
            return Verdict::drop(
                "too_long",
                format!("{n} characters > max_chars {}", p.max_chars),
            );
        }
        let content_ratio = content as f64 / n as f64;
        if content_ratio < p.min_content_ratio {
            return Verdict::drop(
                "low_content",
                format!(
                    "content characters {content_ratio:.2} < {}",
                    p.min_content_ratio
                ),
            );
        }
        let symbol_ratio = symbols as f64 / n as f64;
        if symbol_ratio > p.max_symbol_ratio {
            return Verdict::drop(
                "symbols",
                format!("symbols {symbol_ratio:.2} > {}", p.max_symbol_ratio),
            );
        }
        let rl = repeated_line_share(&doc.text);
        if rl > p.max_repeated_lines {
            return Verdict::drop(
                "repeated_lines",
                format!("repeated lines {rl:.2} > {}", p.max_repeated_lines),
            );
        }
        let rn = repeated_ngram_share(&doc.text);
        if rn > p.max_repeated_ngrams {
            return Verdict::drop(
                "repeated_ngrams",
                format!("repeated 10-grams {rn:.2} > {}", p.max_repeated_ngrams),
            );
        }
        Verdict::Keep
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoilerplateParams {
    #[serde(default = "d_min_docs")]
    min_docs: u32,
    #[serde(default = "d_min_line")]
    min_line_chars: usize,
    #[serde(default = "d_max_lines")]
    max_lines_tracked: usize,
}

fn d_min_docs() -> u32 {
    20
}
fn d_min_line() -> usize {
    4
}
fn d_max_lines() -> usize {
    2_000_000
}

/// Lines seen in many documents, removed from the documents that follow (online: the first
/// `min_docs - 1` documents holding a line keep it).
pub struct Boilerplate {
    p: BoilerplateParams,
    counts: FxHashMap<u64, u32>,
}

impl Boilerplate {
    pub fn new(p: BoilerplateParams) -> Result<Boilerplate, String> {
        if p.min_docs < 2 {
            return Err("min_docs: give at least 2".into());
        }
        Ok(Boilerplate {
            p,
            counts: FxHashMap::default(),
        })
    }
}

fn line_key(line: &str) -> u64 {
    let h = blake3::hash(line.as_bytes());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap_or([0; 8]))
}

impl CorpusStep for Boilerplate {
    fn name(&self) -> &str {
        "boilerplate"
    }

    fn apply_batch(&mut self, docs: &mut [Doc], verdicts: &mut [Verdict]) {
        for (doc, v) in docs.iter_mut().zip(verdicts.iter_mut()) {
            if *v != Verdict::Keep {
                continue;
            }
            let mut kept = Vec::new();
            let mut removed = 0usize;
            let mut seen_here = FxHashSet::default();
            for line in doc.text.split('\n') {
                let t = line.trim();
                if t.chars().count() < self.p.min_line_chars {
                    kept.push(line);
                    continue;
                }
                let k = line_key(t);
                let count = if seen_here.insert(k) {
                    let tracked = self.counts.len() < self.p.max_lines_tracked;
                    match self.counts.get_mut(&k) {
                        Some(c) => {
                            *c += 1;
                            *c
                        }
                        None if tracked => {
                            self.counts.insert(k, 1);
                            1
                        }
                        None => 1,
                    }
                } else {
                    self.counts.get(&k).copied().unwrap_or(1)
                };
                if count >= self.p.min_docs {
                    removed += 1;
                } else {
                    kept.push(line);
                }
            }
            if removed > 0 {
                let text = kept.join("\n").trim().to_owned();
                if text.is_empty() {
                    *v = Verdict::drop(
                        "boilerplate",
                        format!("all {removed} lines are boilerplate"),
                    );
                    continue;
                }
                doc.provenance
                    .push(format!("boilerplate: {removed} lines removed"));
                doc.text = text;
            }
        }
    }

    fn commit(&mut self) -> std::io::Result<Vec<u64>> {
        Ok(Vec::new())
    }

    fn restore(&mut self, _marks: &[u64]) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> Quality {
        Quality::new(toml::from_str::<QualityParams>("").unwrap()).unwrap()
    }

    fn verdict(text: &str) -> Verdict {
        q().apply(&mut Doc {
            text: text.into(),
            ..Doc::default()
        })
    }

    fn reason(v: Verdict) -> String {
        match v {
            Verdict::Drop { reason, .. } => reason,
            Verdict::Keep => "keep".into(),
        }
    }

    #[test]
    fn quality_reasons() {
        assert_eq!(
            reason(verdict("员工入职满一年后享有带薪年假，年假须提前申请。")),
            "keep"
        );
        assert_eq!(reason(verdict("短")), "too_short");
        assert_eq!(
            reason(verdict("#### **** |||| ==== #### **** 年")),
            "low_content"
        );
        assert_eq!(
            reason(verdict(&"点击这里下载\n".repeat(10))),
            "repeated_lines"
        );
        assert_eq!(
            reason(verdict(&"哈哈哈哈哈哈哈哈哈哈哈哈".repeat(10))),
            "repeated_ngrams"
        );
        assert_eq!(
            reason(verdict("正文内容\u{7}\u{7}很多文字在这里写着")),
            "control_chars"
        );
    }

    #[test]
    fn boilerplate_lines_go_once_common() {
        let mut b = Boilerplate::new(BoilerplateParams {
            min_docs: 3,
            min_line_chars: 4,
            max_lines_tracked: 100,
        })
        .unwrap();
        let mut docs: Vec<Doc> = (0..4)
            .map(|i| Doc {
                text: format!("第{i}篇正文的内容不同\n版权所有 青禾科技"),
                ..Doc::default()
            })
            .collect();
        let mut v = vec![Verdict::Keep; 4];
        b.apply_batch(&mut docs, &mut v);
        assert!(docs[1].text.contains("版权所有"));
        assert_eq!(docs[2].text, "第2篇正文的内容不同");
        assert_eq!(docs[3].text, "第3篇正文的内容不同");
    }
}
