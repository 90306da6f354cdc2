//! Abbreviation expansion and has-abbreviation prediction on the PKU Chinese abbreviation set
//! (`train.jsonl`, `dev.jsonl`, `test.jsonl`; rows `{id, full, abbr|null, words, pos}`).
//!
//! The model learns from the train split only. Expansion: for each row of the evaluated split
//! that has an abbreviation, every distinct full form of that split is a candidate; the metric
//! is whether the row's own full form ranks first (top-1) or among the first five (top-5).
//! Has-abbreviation: predicted for every row at probability 0.5, beside the majority class.

use std::path::Path;

use luodi_text::abbrev::{AbbrevModel, Pair, Term};
use serde::{Deserialize, Serialize};

/// A row of the PKU set.
#[derive(Debug, Deserialize)]
pub(crate) struct Row {
    pub full: String,
    pub abbr: Option<String>,
    words: Vec<String>,
    #[serde(default)]
    pos: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AbbrevReport {
    pub split: String,
    pub train_pairs: usize,
    /// Rows with an abbreviation, each ranked against every full form of the split.
    pub expanded: usize,
    pub candidates: usize,
    pub top1: f64,
    pub top5: f64,
    /// Baseline from the same run: the shortest full form the abbreviation is a subsequence of.
    pub baseline_top1: f64,
    /// Rows whose full form the abbreviation is not a subsequence of (no model can rank them
    /// with this candidate rule).
    pub not_subsequence: usize,
    pub rows: usize,
    pub has_accuracy: f64,
    pub has_majority_accuracy: f64,
    /// Share of candidates the subsequence rule leaves, mean over queries.
    pub mean_candidates_left: f64,
    pub seconds: f64,
}

pub(crate) fn load(path: &Path) -> Result<Vec<Row>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("{} line {}: {e}", path.display(), i + 1))
        })
        .collect()
}

fn term(r: &Row) -> Term {
    let words = if r.words.concat() == r.full {
        r.words.clone()
    } else {
        // words that do not spell the full form: one word
        vec![r.full.clone()]
    };
    Term::new(words, r.pos.clone())
}

/// Training pairs from rows.
fn pairs(rows: &[Row]) -> Vec<Pair> {
    rows.iter()
        .map(|r| Pair {
            term: term(r),
            abbr: r.abbr.clone(),
        })
        .collect()
}

/// The abbreviation model learned from the PKU train split under `dir`.
pub fn train_model(dir: &Path) -> Result<AbbrevModel, String> {
    train_model_file(&dir.join("train.jsonl"))
}

/// The abbreviation model learned from one file of pairs (the PKU rows' format).
pub fn train_model_file(path: &Path) -> Result<AbbrevModel, String> {
    Ok(AbbrevModel::train(&pairs(&load(path)?)))
}

/// `pool_all`: candidates are the full forms of all three splits (a harder ranking) instead of
/// the evaluated split's.
pub fn evaluate(
    dir: &Path,
    split: &str,
    limit: Option<usize>,
    pool_all: bool,
) -> Result<AbbrevReport, String> {
    let started = std::time::Instant::now();
    if split == "train" {
        return Err("the model learns from train: evaluate dev or test".into());
    }
    let train = load(&dir.join("train.jsonl"))?;
    let pairs = pairs(&train);
    let model = AbbrevModel::train(&pairs);
    let mut rows = load(&dir.join(format!("{split}.jsonl")))?;
    if rows.is_empty() {
        return Err(format!("{split}.jsonl under {} is empty", dir.display()));
    }
    // candidates: every distinct full form of the whole split (a limit only shortens the queries)
    let mut seen = std::collections::HashSet::new();
    let mut pool: Vec<&Row> = rows.iter().collect();
    let others: Vec<Row> = if pool_all {
        let mut v = train;
        for s in ["dev", "test"].into_iter().filter(|s| *s != split) {
            v.extend(load(&dir.join(format!("{s}.jsonl")))?);
        }
        v
    } else {
        Vec::new()
    };
    pool.extend(others.iter());
    let cands: Vec<Term> = pool
        .into_iter()
        .filter(|r| seen.insert(r.full.clone()))
        .map(term)
        .collect();
    if let Some(n) = limit {
        rows.truncate(n);
    }
    let (mut n, mut top1, mut top5, mut not_sub, mut left) = (0usize, 0usize, 0usize, 0usize, 0f64);
    let mut has_right = 0usize;
    let mut base1 = 0usize;
    let mut with_abbr = 0usize;
    for r in &rows {
        let t = term(r);
        let p = model.has_abbreviation(&t);
        if (p >= 0.5) == r.abbr.is_some() {
            has_right += 1;
        }
        let Some(abbr) = &r.abbr else { continue };
        with_abbr += 1;
        n += 1;
        if !luodi_text::abbrev::is_subsequence(abbr, &r.full) {
            not_sub += 1;
        }
        let shortest = cands
            .iter()
            .filter(|c| luodi_text::abbrev::is_subsequence(abbr, &c.text()))
            .min_by_key(|c| c.text().chars().count());
        if shortest.is_some_and(|c| c.text() == r.full) {
            base1 += 1;
        }
        let ranked = model.expand(abbr, &cands);
        left += ranked.len() as f64;
        let pos = ranked.iter().position(|(i, _)| cands[*i].text() == r.full);
        if pos == Some(0) {
            top1 += 1;
        }
        if pos.is_some_and(|p| p < 5) {
            top5 += 1;
        }
    }
    let rate = |k: usize, of: usize| k as f64 / of.max(1) as f64;
    Ok(AbbrevReport {
        split: split.to_owned(),
        train_pairs: pairs.len(),
        expanded: n,
        candidates: cands.len(),
        top1: rate(top1, n),
        top5: rate(top5, n),
        baseline_top1: rate(base1, n),
        not_subsequence: not_sub,
        rows: rows.len(),
        has_accuracy: rate(has_right, rows.len()),
        has_majority_accuracy: rate(with_abbr.max(rows.len() - with_abbr), rows.len()),
        mean_candidates_left: left / n.max(1) as f64,
        seconds: started.elapsed().as_secs_f64(),
    })
}
