//! `luodi eval faq`: FAQ-first on the Taipei FAQ — resident-style paraphrases of FAQ titles
//! (`evalsets/taipei-faq-paraphrases.jsonl`, written before the matching code) matched against
//! every FAQ of `faq.zh-hans.jsonl`.
//!
//! The questions are split by the SHA-256 of their id: the tuning half fits the matcher (the
//! right FAQ against the other candidates) and picks the threshold (the most hits less three for
//! each wrong answer); the report half is measured — a hit is the right FAQ on top at or above
//! the threshold, a wrong answer another FAQ on top at or above it; below it the question
//! falls back to generation.

use std::path::PathBuf;

use luodi_core::{Embedder, Error, Result};
use luodi_engine::faq::{candidates, Faq, FaqPolicy};
use luodi_engine::matching::Matcher;
use luodi_engine::EmbedCache;
use serde::Serialize;

use crate::retrieval::{field, read_jsonl};
use crate::Half;

#[derive(Debug, Clone, Serialize)]
pub struct FaqReport {
    pub faqs: usize,
    pub questions_tune: usize,
    pub questions_report: usize,
    /// Report half.
    pub hit_rate: f64,
    pub wrong_rate: f64,
    pub fallback_rate: f64,
    /// The right FAQ ranked first, whatever its score (matcher; cosine alone).
    pub top1: f64,
    pub cosine_top1: f64,
    /// The right FAQ among the candidates scored.
    pub recall_candidates: f64,
    pub policy: FaqPolicy,
    pub seconds: f64,
}

pub struct FaqEval {
    pub data: PathBuf,
    pub questions: PathBuf,
    pub embed_cache: PathBuf,
    pub threads: usize,
    /// Smoke runs: only the FAQs the questions name and this many others.
    pub limit_faqs: Option<usize>,
}

struct Question {
    id: String,
    faq: String,
    text: String,
}

/// Per question: its candidates (FAQ index, features) and the index of the right FAQ.
type Scored = (Vec<(usize, Vec<f64>)>, usize, Option<usize>);

pub fn run(ev: &FaqEval) -> Result<FaqReport> {
    let started = std::time::Instant::now();
    let rows = read_jsonl(&ev.data.join("faq.zh-hans.jsonl"))?;
    let mut ids = Vec::new();
    let mut faqs = Vec::new();
    for r in &rows {
        let (Some(id), Some(q), Some(a)) = (field(r, "id"), field(r, "title"), field(r, "text"))
        else {
            continue;
        };
        ids.push(id.to_owned());
        faqs.push(Faq {
            id: faqs.len() as i64,
            question: q.to_owned(),
            answer: a.to_owned(),
            source: "import".into(),
            created_at: 0,
            created_by: String::new(),
        });
    }
    let questions: Vec<Question> = read_jsonl(&ev.questions)?
        .iter()
        .filter_map(|v| {
            Some(Question {
                id: field(v, "id")?,
                faq: field(v, "faq")?,
                text: field(v, "question")?,
            })
        })
        .collect();
    if let Some(n) = ev.limit_faqs {
        let named: std::collections::HashSet<&str> =
            questions.iter().map(|q| q.faq.as_str()).collect();
        let mut others = 0;
        let keep: Vec<bool> = ids
            .iter()
            .map(|id| {
                named.contains(id.as_str()) || {
                    others += 1;
                    others <= n
                }
            })
            .collect();
        let mut k = keep.iter();
        ids.retain(|_| *k.next().unwrap_or(&false));
        let mut k = keep.iter();
        faqs.retain(|_| *k.next().unwrap_or(&false));
    }
    let embedder = luodi_engine::E5Embedder::load(ev.threads)?;
    let cache = EmbedCache::open(&ev.embed_cache)?;
    let vectors: Vec<Vec<f32>> = faqs
        .iter()
        .map(|f| cache.query(&embedder as &dyn Embedder, &f.question))
        .collect::<Result<_>>()?;
    let mut answers: Vec<Vec<f32>> = Vec::with_capacity(faqs.len());
    for chunk in faqs.chunks(32) {
        let texts: Vec<&str> = chunk.iter().map(|f| f.answer.as_str()).collect();
        answers.extend(cache.passages(&embedder as &dyn Embedder, &texts)?);
    }
    // every question's candidates, with features (the matcher is fitted afterwards)
    let mut scored: Vec<Scored> = Vec::new();
    for q in &questions {
        let Some(right) = ids.iter().position(|i| *i == q.faq) else {
            return Err(Error::InvalidInput(format!(
                "{}: {} names FAQ {} that {} does not hold",
                ev.questions.display(),
                q.id,
                q.faq,
                ev.data.display()
            )));
        };
        let qv = cache.query(&embedder as &dyn Embedder, &q.text)?;
        let cos_top = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| (i, v.iter().zip(&qv).map(|(a, b)| a * b).sum::<f32>()))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|x| x.0);
        let cands = candidates(
            &q.text,
            &qv,
            &faqs,
            &vectors,
            &answers,
            luodi_text::Segmenter::shared(),
        );
        scored.push((cands, right, cos_top));
    }
    let tune: Vec<usize> = (0..questions.len())
        .filter(|&i| Half::Tune.contains(&questions[i].id))
        .collect();
    let report: Vec<usize> = (0..questions.len())
        .filter(|&i| !Half::Tune.contains(&questions[i].id))
        .collect();
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for &i in &tune {
        let (cands, right, _) = &scored[i];
        for (j, x) in cands {
            xs.push(x.clone());
            ys.push(j == right);
        }
    }
    let matcher = Matcher::fit(&xs, &ys);
    // per question: (top FAQ right?, its probability)
    let top = |i: usize, m: &Matcher| -> (bool, f64) {
        let (cands, right, _) = &scored[i];
        let probs: Vec<(usize, f64)> = cands.iter().map(|(j, x)| (*j, m.prob(x))).collect();
        let ranked = luodi_engine::faq::decide(&probs);
        (ranked.0 == Some(*right), ranked.1)
    };
    let tops: Vec<(bool, f64)> = tune.iter().map(|&i| top(i, &matcher)).collect();
    // the threshold: the most hits less three for each wrong answer, on the tuning half (a
    // wrong FAQ answer costs more than a fall-back to generation)
    let mut threshold = 1.0;
    let mut best_gain = 0i64;
    let mut ts: Vec<f64> = tops.iter().map(|t| t.1).collect();
    ts.sort_by(f64::total_cmp);
    for t in ts {
        let hits = tops.iter().filter(|(r, p)| *r && *p >= t).count();
        let wrong = tops.iter().filter(|(r, p)| !*r && *p >= t).count();
        let gain = hits as i64 - 3 * wrong as i64;
        if gain > best_gain {
            best_gain = gain;
            threshold = t;
        }
    }
    let policy = FaqPolicy { matcher, threshold };
    let n = report.len().max(1) as f64;
    let rep: Vec<(bool, f64)> = report.iter().map(|&i| top(i, &policy.matcher)).collect();
    let hits = rep.iter().filter(|(r, p)| *r && *p >= threshold).count() as f64;
    let wrong = rep.iter().filter(|(r, p)| !*r && *p >= threshold).count() as f64;
    Ok(FaqReport {
        faqs: faqs.len(),
        questions_tune: tune.len(),
        questions_report: report.len(),
        hit_rate: hits / n,
        wrong_rate: wrong / n,
        fallback_rate: (n - hits - wrong) / n,
        top1: rep.iter().filter(|(r, _)| *r).count() as f64 / n,
        cosine_top1: report
            .iter()
            .filter(|&&i| scored[i].2 == Some(scored[i].1))
            .count() as f64
            / n,
        recall_candidates: report
            .iter()
            .filter(|&&i| scored[i].0.iter().any(|(j, _)| *j == scored[i].1))
            .count() as f64
            / n,
        policy,
        seconds: started.elapsed().as_secs_f64(),
    })
}
