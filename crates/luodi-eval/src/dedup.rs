//! Near-duplicate detection quality on a synthetic set built from the shared corpora.
//!
//! Base documents are passages (≥ 120 characters) of the retrieval corpora in `--data`, with
//! their own copies and near copies removed first (so that every duplicate in the set is one
//! this harness made). For half of them a variant is made by known edits — character
//! insertions, deletions, clause swaps, 繁简 conversion, punctuation changes, in rotation —
//! applied until the Jaccard similarity of the two documents' shingle sets (character
//! 5-grams of the folded text, the definition MinHash estimates) falls in a target drawn
//! uniformly from 0.70–0.95; variants that overshoot are dropped. The documents and variants
//! are shuffled into one stream and fed to the near-duplicate step; a drop is correct when the
//! kept document it points to belongs to the same pair.
//!
//! The protocol's halves split the pairs by the original passage's id: thresholds are chosen
//! on `tune`, reported on `report`.

use std::collections::HashMap;
use std::path::Path;

use luodi_clean::steps::dedup::{MinHasher, NearDedup, NearParams, Observed};
use serde::Serialize;

use crate::{Half, Rng};

const SETS: &[&str] = &[
    "cmrc2018-retrieval",
    "dureader2-demo-retrieval",
    "domainrag-ruc-admissions",
    "taipei-gov-faq",
    "xquad-zh-retrieval",
];

#[derive(Debug, Clone)]
struct Item {
    /// The pair it belongs to (`None`: an unrelated document).
    pair: Option<usize>,
    text: String,
}

/// The synthetic set: shuffled documents and the pairs' halves.
pub struct DedupSet {
    items: Vec<Item>,
    /// Per pair: its half, the edit kind, the true Jaccard.
    pairs: Vec<(Half, &'static str, f64)>,
}

fn passages(data: &Path, max: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for set in SETS {
        let Ok(text) = std::fs::read_to_string(data.join(set).join("corpus.jsonl")) else {
            continue;
        };
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let (Some(id), Some(t)) = (v["id"].as_str(), v["text"].as_str()) else {
                continue;
            };
            let n = t.chars().count();
            if (120..=3000).contains(&n) {
                out.push((format!("{set}/{id}"), t.to_owned()));
            }
        }
    }
    // a spread over the sets, whatever their sizes
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for i in (1..out.len()).rev() {
        let j = rng.below(i + 1);
        out.swap(i, j);
    }
    out.truncate(max);
    out
}

fn jaccard(h: &MinHasher, a: &str, b: &str) -> f64 {
    let (x, y) = (h.shingles(a), h.shingles(b));
    let (mut i, mut j, mut inter) = (0, 0, 0usize);
    while i < x.len() && j < y.len() {
        match x[i].cmp(&y[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                inter += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let union = x.len() + y.len() - inter;
    inter as f64 / union.max(1) as f64
}

const KINDS: &[&str] = &["insert", "delete", "swap", "script", "punctuation"];
const PUNCT: &[char] = &['，', '。', '；', '、', '！', '？', ',', '.', ' '];

/// One small edit of the given kind.
fn edit(rng: &mut Rng, kind: &str, text: &str, donor: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() < 10 {
        return text.to_owned();
    }
    let at = rng.below(chars.len());
    let span = 2 + rng.below(6);
    match kind {
        "insert" => {
            let d: Vec<char> = donor.chars().collect();
            let from = rng.below(d.len().saturating_sub(span).max(1));
            let piece: String = d[from..(from + span).min(d.len())].iter().collect();
            let mut s: String = chars[..at].iter().collect();
            s.push_str(&piece);
            s.extend(&chars[at..]);
            s
        }
        "delete" => {
            let end = (at + span).min(chars.len());
            chars[..at].iter().chain(&chars[end..]).collect()
        }
        "swap" => {
            // two clauses trade places
            let parts: Vec<&str> = text.split_inclusive(['，', '。', '；', ',', '.']).collect();
            if parts.len() < 3 {
                return edit(rng, "delete", text, donor);
            }
            let i = rng.below(parts.len() - 1);
            let mut p = parts.clone();
            p.swap(i, i + 1);
            p.concat()
        }
        "script" => {
            // the whole text in the other script (shingles fold it back), plus a deletion
            let converted = if luodi_text::detect_script(text) == luodi_text::Script::Traditional {
                luodi_text::to_simplified(text)
            } else {
                luodi_text::to_traditional(text, luodi_text::Variant::Taiwan)
            };
            edit(rng, "delete", &converted, donor)
        }
        _ => {
            // punctuation swapped, spaces added, and a character changed
            let mut s: Vec<char> = chars
                .iter()
                .map(|c| {
                    if PUNCT.contains(c) && rng.unit() < 0.5 {
                        PUNCT[rng.below(PUNCT.len())]
                    } else {
                        *c
                    }
                })
                .collect();
            let donor_c: Vec<char> = donor.chars().collect();
            if !donor_c.is_empty() {
                s[at] = donor_c[rng.below(donor_c.len())];
            }
            s.into_iter().collect()
        }
    }
}

impl DedupSet {
    /// Builds the set from `--data`: `base` passages, half of them with a variant.
    pub fn build(data: &Path, base: usize) -> Result<DedupSet, String> {
        let hasher = MinHasher::new(&NearParams::default())?;
        let pool = passages(data, base * 2);
        if pool.len() < 100 {
            return Err(format!(
                "too few passages under {} (corpus.jsonl of {})",
                data.display(),
                SETS.join(", ")
            ));
        }
        // the pool's own near copies out first (loose threshold)
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut pre = NearDedup::new(
            NearParams {
                threshold: 0.4,
                ..NearParams::default()
            },
            dir.path(),
        )?;
        let mut clean: Vec<(String, String)> = Vec::new();
        for (id, t) in pool {
            let seen = pre
                .observe(&hasher.signature(&t))
                .map_err(|e| e.to_string())?;
            if matches!(seen, Observed::Kept(_)) {
                clean.push((id, t));
            }
            if clean.len() >= base {
                break;
            }
        }
        let mut rng = Rng(0x0dd_ba11_cafe_f00d);
        let mut items = Vec::new();
        let mut pairs = Vec::new();
        let n = clean.len();
        for (i, (id, text)) in clean.iter().enumerate() {
            if i % 2 == 1 {
                items.push(Item {
                    pair: None,
                    text: text.clone(),
                });
                continue;
            }
            let kind = KINDS[(i / 2) % KINDS.len()];
            let target = 0.70 + rng.unit() * 0.25;
            let donor = &clean[(i + n / 2 + 1) % n].1;
            let mut variant = text.clone();
            let mut j = 1.0;
            for _ in 0..400 {
                let next = edit(&mut rng, kind, &variant, donor);
                let jn = jaccard(&hasher, text, &next);
                if jn < 0.70 {
                    break; // overshoot: keep the last variant above the band
                }
                variant = next;
                j = jn;
                if j <= target {
                    break;
                }
            }
            if !(0.70..=0.95).contains(&j) {
                // no variant in the band: the passage stays, unpaired
                items.push(Item {
                    pair: None,
                    text: text.clone(),
                });
                continue;
            }
            let p = pairs.len();
            let half = if Half::Tune.contains(id) {
                Half::Tune
            } else {
                Half::Report
            };
            pairs.push((half, kind, j));
            items.push(Item {
                pair: Some(p),
                text: text.clone(),
            });
            items.push(Item {
                pair: Some(p),
                text: variant,
            });
        }
        for i in (1..items.len()).rev() {
            let j = rng.below(i + 1);
            items.swap(i, j);
        }
        Ok(DedupSet { items, pairs })
    }
}

/// Precision and recall at one threshold, on one half.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub threshold: f64,
    pub precision: f64,
    pub recall: f64,
    /// Drops (predicted duplicates) and true pairs counted.
    pub predicted: u64,
    pub pairs: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DedupReport {
    pub documents: usize,
    pub pairs_tune: usize,
    pub pairs_report: usize,
    /// Mean true Jaccard of the pairs.
    pub mean_jaccard: f64,
    pub shingle: String,
    pub bands: usize,
    pub rows: usize,
    /// The default threshold, on the report half.
    pub threshold: f64,
    pub precision: f64,
    pub recall: f64,
    /// Recall per edit kind, report half, default threshold.
    pub recall_by_edit: HashMap<String, f64>,
    pub curve_tune: Vec<Point>,
    pub curve_report: Vec<Point>,
    pub seconds: f64,
}

/// Which pairs were caught; (right drops, all drops) on the tune and report halves.
type Caught = (Vec<bool>, [(u64, u64); 2]);

/// Runs the near-duplicate step over the set at each threshold.
pub fn evaluate(
    set: &DedupSet,
    params: &NearParams,
    thresholds: &[f64],
) -> Result<DedupReport, String> {
    let t0 = std::time::Instant::now();
    let hasher = MinHasher::new(params)?;
    let sigs: Vec<Vec<u16>> = {
        use rayon::prelude::*;
        set.items
            .par_iter()
            .map(|it| hasher.signature(&it.text))
            .collect()
    };
    // per threshold: which pairs were caught, and how many drops were right, per half
    let run = |threshold: f64| -> Result<Caught, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut nd = NearDedup::new(
            NearParams {
                threshold,
                ..params.clone()
            },
            dir.path(),
        )?;
        let mut kept_pair: Vec<Option<usize>> = Vec::new();
        let mut caught = vec![false; set.pairs.len()];
        // (right drops, all drops) for tune and report, by the pair of the dropped document
        // (an unrelated document's wrong drop counts against both halves' precision)
        let mut drops = [(0u64, 0u64); 2];
        for (it, sig) in set.items.iter().zip(&sigs) {
            match nd.observe(sig).map_err(|e| e.to_string())? {
                Observed::NoShingles => {}
                Observed::Kept(ord) => {
                    debug_assert_eq!(ord as usize, kept_pair.len());
                    kept_pair.push(it.pair);
                }
                Observed::Duplicate(ord, _) => {
                    let right = it.pair.is_some() && kept_pair[ord as usize] == it.pair;
                    let halves: &[usize] = match it.pair {
                        Some(p) if set.pairs[p].0 == Half::Tune => &[0],
                        Some(_) => &[1],
                        None => &[0, 1],
                    };
                    for h in halves {
                        drops[*h].1 += 1;
                        if right {
                            drops[*h].0 += 1;
                        }
                    }
                    if right {
                        if let Some(p) = it.pair {
                            caught[p] = true;
                        }
                    }
                }
            }
        }
        Ok((caught, drops))
    };
    let point = |threshold: f64, caught: &[bool], drops: (u64, u64), half: Half| {
        let idx: Vec<usize> = (0..set.pairs.len())
            .filter(|p| set.pairs[*p].0 == half)
            .collect();
        let hit = idx.iter().filter(|p| caught[**p]).count();
        Point {
            threshold,
            precision: if drops.1 == 0 {
                1.0
            } else {
                drops.0 as f64 / drops.1 as f64
            },
            recall: hit as f64 / idx.len().max(1) as f64,
            predicted: drops.1,
            pairs: idx.len() as u64,
        }
    };
    let mut curve_tune = Vec::new();
    let mut curve_report = Vec::new();
    for &t in thresholds {
        let (caught, drops) = run(t)?;
        curve_tune.push(point(t, &caught, drops[0], Half::Tune));
        curve_report.push(point(t, &caught, drops[1], Half::Report));
    }
    let (caught, drops) = run(params.threshold)?;
    let at = point(params.threshold, &caught, drops[1], Half::Report);
    let mut by_edit: HashMap<String, (usize, usize)> = HashMap::new();
    for (p, (half, kind, _)) in set.pairs.iter().enumerate() {
        if *half == Half::Report {
            let e = by_edit.entry(kind.to_string()).or_default();
            e.1 += 1;
            if caught[p] {
                e.0 += 1;
            }
        }
    }
    Ok(DedupReport {
        documents: set.items.len(),
        pairs_tune: set.pairs.iter().filter(|p| p.0 == Half::Tune).count(),
        pairs_report: set.pairs.iter().filter(|p| p.0 == Half::Report).count(),
        mean_jaccard: set.pairs.iter().map(|p| p.2).sum::<f64>() / set.pairs.len().max(1) as f64,
        shingle: format!("{}{}", params.shingle, params.n),
        bands: params.bands,
        rows: params.rows,
        threshold: params.threshold,
        precision: at.precision,
        recall: at.recall,
        recall_by_edit: by_edit
            .into_iter()
            .map(|(k, (h, n))| (k, h as f64 / n.max(1) as f64))
            .collect(),
        curve_tune,
        curve_report,
        seconds: t0.elapsed().as_secs_f64(),
    })
}
