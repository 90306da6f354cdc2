//! `luodi eval match`: question matching on labelled pairs (`{split}.jsonl` of
//! `{id, text1, text2, label}`, e.g. AFQMC, PAWS-X zh), zero-shot for the embedding model.
//!
//! Per the evaluation protocol, pairs are split by the SHA-256 of their id: the tuning half fits
//! the matcher's logistic combination and chooses every threshold (the matcher's, the
//! character-Jaccard baseline's, the majority class); the report half is where everything is
//! measured — ROC-AUC of the matcher and of the cosine alone, accuracy at the tuned threshold,
//! beside the majority class and the Jaccard baseline.

use std::path::Path;

use luodi_core::{Error, Result};
use luodi_engine::matching::{char_jaccard, features, Matcher, LEXICAL_FEATURES};
use serde::Serialize;

use crate::Half;

#[derive(Debug, Clone, Serialize)]
pub struct MatchReport {
    pub data: String,
    pub split: String,
    pub pairs_tune: usize,
    pub pairs_report: usize,
    pub positives_report: usize,
    /// ROC-AUC of the matcher on the report half.
    pub auc: f64,
    pub cosine_auc: f64,
    pub jaccard_auc: f64,
    /// Accuracy on the report half at the threshold that was best on the tuning half.
    pub accuracy: f64,
    pub threshold: f64,
    pub majority_accuracy: f64,
    pub jaccard_accuracy: f64,
    pub matcher: Matcher,
    pub features: Vec<String>,
    pub seconds: f64,
}

struct Pair {
    id: String,
    a: String,
    b: String,
    label: bool,
}

fn load(path: &Path, limit: Option<usize>) -> Result<Vec<Pair>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad =
            |what: &str| Error::InvalidInput(format!("{} line {}: {what}", path.display(), i + 1));
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(&format!("invalid JSON ({e})")))?;
        let s = |k: &str| v[k].as_str().map(str::to_owned);
        let (Some(a), Some(b)) = (s("text1"), s("text2")) else {
            return Err(bad("text1/text2 missing"));
        };
        let label = v["label"]
            .as_i64()
            .or_else(|| v["label"].as_str().and_then(|x| x.parse().ok()))
            .ok_or_else(|| bad("label missing"))?;
        out.push(Pair {
            id: s("id").unwrap_or_else(|| format!("line-{}", i + 1)),
            a,
            b,
            label: label == 1,
        });
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
    }
    Ok(out)
}

/// ROC-AUC: the probability that a random positive scores above a random negative (ties ½).
pub fn roc_auc(scores: &[(f64, bool)]) -> f64 {
    let mut v = scores.to_vec();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut rank_sum, mut n_pos) = (0f64, 0f64);
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j < v.len() && v[j].0 == v[i].0 {
            j += 1;
        }
        let avg = (i + j + 1) as f64 / 2.0;
        for x in &v[i..j] {
            if x.1 {
                rank_sum += avg;
                n_pos += 1.0;
            }
        }
        i = j;
    }
    let n_neg = v.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return f64::NAN;
    }
    (rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg)
}

/// The threshold with the best accuracy on `scores` (predict a match at or above it).
pub fn best_threshold(scores: &[(f64, bool)]) -> f64 {
    let mut v = scores.to_vec();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let pos = v.iter().filter(|x| x.1).count();
    // threshold above everything: all predicted no
    let (mut best, mut best_t) = (v.len() - pos, f64::INFINITY);
    let mut right = v.len() - pos;
    for i in (0..v.len()).rev() {
        // lower the threshold to v[i]: it becomes a predicted match
        right = if v[i].1 { right + 1 } else { right - 1 };
        if i > 0 && v[i - 1].0 == v[i].0 {
            continue;
        }
        if right > best {
            best = right;
            best_t = v[i].0;
        }
    }
    best_t
}

fn accuracy(scores: &[(f64, bool)], t: f64) -> f64 {
    scores.iter().filter(|(s, y)| (*s >= t) == *y).count() as f64 / scores.len().max(1) as f64
}

/// A way of embedding texts (one view of them), named.
pub type View<'a> = (&'a str, &'a dyn Fn(&[&str]) -> Vec<Vec<f32>>);

/// A judge of one pair (e.g. the local model's [`luodi_engine::matching::llm_same`]): its
/// score becomes one more feature, `llm_same`.
pub type Judge<'a> = &'a dyn Fn(&str, &str) -> Result<f64>;

pub fn evaluate(
    data: &Path,
    split: &str,
    limit: Option<usize>,
    views: &[View<'_>],
    judge: Option<Judge<'_>>,
    dump: Option<&Path>,
) -> Result<MatchReport> {
    let started = std::time::Instant::now();
    let pairs = load(&data.join(format!("{split}.jsonl")), limit)?;
    // per view (e.g. both sides embedded as queries, both as passages), in batches
    let mut cosines: Vec<Vec<f32>> = vec![Vec::with_capacity(views.len()); pairs.len()];
    for (_, embed) in views {
        for (ci, chunk) in pairs.chunks(64).enumerate() {
            let left: Vec<&str> = chunk.iter().map(|p| p.a.as_str()).collect();
            let right: Vec<&str> = chunk.iter().map(|p| p.b.as_str()).collect();
            let (l, r) = (embed(&left), embed(&right));
            for (k, (a, b)) in l.iter().zip(&r).enumerate() {
                cosines[ci * 64 + k].push(luodi_models::e5::cosine(a, b));
            }
        }
    }
    let cos: Vec<f32> = cosines
        .iter()
        .map(|c| c.first().copied().unwrap_or(0.0))
        .collect();
    let mut xs: Vec<Vec<f64>> = pairs
        .iter()
        .zip(&cosines)
        .map(|(p, c)| features(&p.a, &p.b, c))
        .collect();
    if let Some(judge) = judge {
        let t0 = std::time::Instant::now();
        for (i, (p, x)) in pairs.iter().zip(&mut xs).enumerate() {
            x.push(judge(&p.a, &p.b)?);
            if (i + 1) % 500 == 0 {
                eprintln!(
                    "judged {}/{} pairs ({:.0} s)",
                    i + 1,
                    pairs.len(),
                    t0.elapsed().as_secs_f64()
                );
            }
        }
    }
    let tune: Vec<usize> = (0..pairs.len())
        .filter(|&i| Half::Tune.contains(&pairs[i].id))
        .collect();
    let report: Vec<usize> = (0..pairs.len())
        .filter(|&i| !Half::Tune.contains(&pairs[i].id))
        .collect();
    if tune.is_empty() || report.is_empty() {
        return Err(Error::InvalidInput(format!(
            "{}: too few pairs for a tuning and a report half",
            data.display()
        )));
    }
    let m = Matcher::fit(
        &tune.iter().map(|&i| xs[i].clone()).collect::<Vec<_>>(),
        &tune.iter().map(|&i| pairs[i].label).collect::<Vec<_>>(),
    );
    let scored = |idx: &[usize], f: &dyn Fn(usize) -> f64| -> Vec<(f64, bool)> {
        idx.iter().map(|&i| (f(i), pairs[i].label)).collect()
    };
    let by_matcher = |i: usize| m.prob(&xs[i]);
    let by_cos = |i: usize| cos[i] as f64;
    let by_jac = |i: usize| char_jaccard(&pairs[i].a, &pairs[i].b);
    let t = best_threshold(&scored(&tune, &by_matcher));
    let tj = best_threshold(&scored(&tune, &by_jac));
    let tune_pos = tune.iter().filter(|&&i| pairs[i].label).count();
    let majority_yes = tune_pos * 2 > tune.len();
    let rep_pos = report.iter().filter(|&&i| pairs[i].label).count();
    let majority_accuracy = if majority_yes {
        rep_pos as f64
    } else {
        (report.len() - rep_pos) as f64
    } / report.len() as f64;
    if let Some(path) = dump {
        let lines: Vec<String> = (0..pairs.len())
            .map(|i| {
                serde_json::json!({"id": pairs[i].id, "label": pairs[i].label,
                    "half": if Half::Tune.contains(&pairs[i].id) { "tune" } else { "report" },
                    "x": xs[i], "p": m.prob(&xs[i])})
                .to_string()
            })
            .collect();
        std::fs::write(path, lines.join("\n") + "\n").map_err(|e| Error::io(path, e))?;
    }
    let rep = scored(&report, &by_matcher);
    Ok(MatchReport {
        data: data.display().to_string(),
        split: split.to_owned(),
        pairs_tune: tune.len(),
        pairs_report: report.len(),
        positives_report: rep_pos,
        auc: roc_auc(&rep),
        cosine_auc: roc_auc(&scored(&report, &by_cos)),
        jaccard_auc: roc_auc(&scored(&report, &by_jac)),
        accuracy: accuracy(&rep, t),
        threshold: t,
        majority_accuracy,
        jaccard_accuracy: accuracy(&scored(&report, &by_jac), tj),
        matcher: m,
        features: views
            .iter()
            .map(|(name, _)| format!("cosine_{name}"))
            .chain(LEXICAL_FEATURES.iter().map(|s| s.to_string()))
            .chain(judge.map(|_| "llm_same".to_string()))
            .collect(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_and_threshold() {
        let s = vec![
            (0.9, true),
            (0.8, true),
            (0.3, false),
            (0.6, false),
            (0.7, true),
        ];
        assert!((roc_auc(&s) - 1.0).abs() < 1e-9);
        let t = best_threshold(&s);
        assert_eq!(accuracy(&s, t), 1.0);
        assert!(t > 0.6 && t <= 0.7, "{t}");
    }
}
