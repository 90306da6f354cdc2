//! `luodi eval faq`: FAQ-first on the Taipei FAQ — resident-style paraphrases of FAQ titles
//! (`evalsets/taipei-faq-paraphrases.jsonl`, written before the matching code) matched against
//! every FAQ of `faq.zh-hans.jsonl`.
//!
//! The questions are split by the SHA-256 of their id: the tuning half fits the matcher (the
//! right FAQ against the other candidates) and picks the threshold (the most hits less three for
//! each wrong answer); the report half is measured — a hit is the right FAQ (or one giving the
//! very same answer: the set holds a few answers under two titles) on top at or above
//! the threshold, a wrong answer another FAQ on top at or above it; below it the question
//! falls back to generation.

use std::path::PathBuf;

use luodi_core::{Error, Result};
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
    /// Questions no FAQ answers (another set's questions), per half; the share of the
    /// report half's that got an FAQ answer all the same.
    pub out_of_scope_tune: usize,
    pub out_of_scope_report: usize,
    pub out_of_scope_answered: f64,
    /// The report questions asked with their FAQ (and any giving the same answer) removed:
    /// the share answered with a neighbour's answer.
    pub held_out_answered: f64,
    pub policy: FaqPolicy,
    /// What the threshold maximised on the tuning half: hits − 3 × (wrong answers + answers
    /// to questions no FAQ answers), as rates.
    pub tune_gain: f64,
    /// The same run in the `broad` FAQ mode: the threshold chosen on the tuning half's
    /// paraphrases alone (not kept from answering questions no FAQ answers).
    pub broad: Outcome,
    pub seconds: f64,
}

/// A threshold's outcome on the report half.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub threshold: f64,
    pub hit_rate: f64,
    pub wrong_rate: f64,
    pub out_of_scope_answered: f64,
    /// The report questions asked with their FAQ removed: answered with a neighbour's.
    pub held_out_answered: f64,
    /// hits − 3 × wrong (− 3 × questions no FAQ answers that got one, for the chosen
    /// threshold), rates on the tuning half.
    pub tune_gain: f64,
}

pub struct FaqEval {
    pub data: PathBuf,
    pub questions: PathBuf,
    pub embed_cache: PathBuf,
    pub threads: usize,
    /// Smoke runs: only the FAQs the questions name and this many others.
    pub limit_faqs: Option<usize>,
    /// One JSON line per question: its half, the right FAQ, the top three with probabilities
    /// (then one per question no FAQ answers, with `right` null).
    pub per_query: Option<PathBuf>,
    /// Questions of other sets (JSON lines with `id` and `text`) that no FAQ answers: an FAQ
    /// answer to one of them is a wrong answer too.
    pub negatives: Vec<PathBuf>,
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
    // FAQs that give the same answer (the set holds a few under two titles): answering with
    // either gives the asker the vetted answer
    let mut groups: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let answer_of: Vec<usize> = faqs
        .iter()
        .map(|f| {
            let key: String = f.answer.split_whitespace().collect();
            let n = groups.len();
            *groups.entry(key).or_insert(n)
        })
        .collect();
    let same = |a: usize, b: usize| answer_of[a] == answer_of[b];
    let embedder = luodi_engine::E5Embedder::load(ev.threads)?;
    let cache = EmbedCache::open(&ev.embed_cache)?;
    let vectors = luodi_engine::faq::FaqVectors::compute(&faqs, &embedder, &cache)?;
    // every question's candidates, with features (the matcher is fitted afterwards)
    let mut scored: Vec<Scored> = Vec::new();
    let mut scored_held: Vec<Vec<(usize, Vec<f64>)>> = Vec::new();
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
        let qv = luodi_engine::faq::question_vector(&q.text, &embedder, &cache)?;
        let cos_top = vectors
            .questions
            .iter()
            .enumerate()
            .map(|(i, v)| (i, luodi_core::dot(v, &qv)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|x| x.0);
        let among = |kept: Option<&dyn Fn(usize) -> bool>| {
            candidates(
                &q.text,
                &qv,
                &faqs,
                &vectors,
                luodi_text::Segmenter::shared(),
                kept,
            )
        };
        scored.push((among(None), right, cos_top));
        // the question with its FAQ (and any giving the same answer) taken out, as if the
        // knowledge base did not hold them: a neighbour's answer to it is a wrong answer
        scored_held.push(among(Some(&|j| !same(j, right))));
    }
    // questions no FAQ answers
    let mut negatives: Vec<(String, String)> = Vec::new();
    for path in &ev.negatives {
        for v in read_jsonl(path)? {
            if let (Some(id), Some(text)) = (field(&v, "id"), field(&v, "text")) {
                negatives.push((format!("{}:{id}", path.display()), text));
            }
        }
    }
    let mut neg_scored: Vec<Vec<(usize, Vec<f64>)>> = Vec::new();
    for (_, text) in &negatives {
        let qv = luodi_engine::faq::question_vector(text, &embedder, &cache)?;
        neg_scored.push(candidates(
            text,
            &qv,
            &faqs,
            &vectors,
            luodi_text::Segmenter::shared(),
            None,
        ));
    }
    let neg_tune: Vec<usize> = (0..negatives.len())
        .filter(|&i| Half::Tune.contains(&negatives[i].0))
        .collect();
    let neg_report: Vec<usize> = (0..negatives.len())
        .filter(|&i| !Half::Tune.contains(&negatives[i].0))
        .collect();
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
            ys.push(same(*j, *right));
        }
    }
    let matcher = Matcher::fit(&xs, &ys);
    // per question: (the FAQ on top is the right one?, its probability)
    let top = |cands: &[(usize, Vec<f64>)], right: Option<usize>| -> (bool, f64) {
        let probs: Vec<(usize, f64)> = cands.iter().map(|(j, x)| (*j, matcher.prob(x))).collect();
        let (best, p) = luodi_engine::faq::decide(&probs);
        (best.is_some_and(|b| right.is_some_and(|r| same(b, r))), p)
    };
    let tops = |idx: &[usize]| -> Vec<(bool, f64)> {
        idx.iter()
            .map(|&i| top(&scored[i].0, Some(scored[i].1)))
            .collect()
    };
    let neg_tops = |idx: &[usize]| -> Vec<(bool, f64)> {
        idx.iter().map(|&i| top(&neg_scored[i], None)).collect()
    };
    let held_out = |idx: &[usize]| -> Vec<(bool, f64)> {
        idx.iter().map(|&i| top(&scored_held[i], None)).collect()
    };
    let (tune_in, tune_out) = (tops(&tune), neg_tops(&neg_tune));
    let (rep_in, rep_out) = (tops(&report), neg_tops(&neg_report));
    let (tune_held, rep_held) = (held_out(&tune), held_out(&report));
    // questions no FAQ answers, of either kind (what the threshold keeps out)
    let tune_none: Vec<(bool, f64)> = tune_out.iter().chain(&tune_held).copied().collect();
    // rates at a threshold: (hits, wrong, out of scope answered)
    let rates = |ins: &[(bool, f64)], outs: &[(bool, f64)], t: f64| {
        let n = ins.len().max(1) as f64;
        let hits = ins.iter().filter(|x| x.0 && x.1 >= t).count() as f64 / n;
        let wrong = ins.iter().filter(|x| !x.0 && x.1 >= t).count() as f64 / n;
        let oos = outs.iter().filter(|x| x.1 >= t).count() as f64 / outs.len().max(1) as f64;
        (hits, wrong, oos)
    };
    // the threshold: the most hits less three for each wrong answer (a wrong FAQ answer
    // costs more than a fall-back to generation), as rates on the tuning half; an FAQ answer
    // to a question no FAQ answers is a wrong answer too
    let tune_gain = |t: f64, with_none: bool| -> f64 {
        let (h, w, o) = rates(&tune_in, &tune_none, t);
        h - 3.0 * w - if with_none { 3.0 * o } else { 0.0 }
    };
    let fit_threshold = |with_none: bool| -> f64 {
        let mut best = (1.0, 0.0);
        let mut ts: Vec<f64> = tune_in.iter().map(|x| x.1).collect();
        ts.sort_by(f64::total_cmp);
        for t in ts {
            let g = tune_gain(t, with_none);
            if g > best.1 {
                best = (t, g);
            }
        }
        best.0
    };
    let outcome = |threshold: f64, kept_out: bool| -> Outcome {
        let (hit_rate, wrong_rate, out_of_scope_answered) = rates(&rep_in, &rep_out, threshold);
        Outcome {
            threshold,
            hit_rate,
            wrong_rate,
            out_of_scope_answered,
            held_out_answered: rates(&rep_in, &rep_held, threshold).2,
            tune_gain: tune_gain(threshold, kept_out),
        }
    };
    let chosen = outcome(fit_threshold(true), true);
    // measured beside it: the threshold chosen on the paraphrases alone (`broad` mode)
    let broad = outcome(fit_threshold(false), false);
    let threshold = chosen.threshold;
    let policy = FaqPolicy {
        matcher: matcher.clone(),
        threshold,
        broad_threshold: broad.threshold,
    };
    let n = report.len().max(1) as f64;
    if let Some(path) = &ev.per_query {
        // one line: the question's best three candidates and, for a paraphrase, its right FAQ
        // (`right` is null for a question no FAQ answers)
        let line = |id: &str,
                    text: &str,
                    cands: &[(usize, Vec<f64>)],
                    right: Option<(&str, usize)>|
         -> String {
            let mut probs: Vec<(usize, f64)> = cands
                .iter()
                .map(|(j, x)| (*j, policy.matcher.prob(x)))
                .collect();
            probs.sort_by(|a, b| b.1.total_cmp(&a.1));
            let top: Vec<_> = probs
                .iter()
                .take(3)
                .map(|(j, p)| serde_json::json!({"faq": ids[*j], "question": faqs[*j].question, "prob": p}))
                .collect();
            let right = right.map(|(faq, r)| {
                serde_json::json!({"faq": faq, "question": faqs[r].question,
                    "rank": probs.iter().position(|(j, _)| same(*j, r)).map(|k| k + 1)})
            });
            let row = serde_json::json!({
                "half": if Half::Tune.contains(id) { "tune" } else { "report" },
                "id": id,
                "question": text,
                "right": right,
                "answered": luodi_engine::faq::decide(&probs).1 >= threshold,
                "top": top,
            });
            format!("{row}\n")
        };
        let mut out = String::new();
        for (q, (cands, right, _)) in questions.iter().zip(&scored) {
            out.push_str(&line(&q.id, &q.text, cands, Some((&q.faq, *right))));
        }
        for ((id, text), cands) in negatives.iter().zip(&neg_scored) {
            out.push_str(&line(id, text, cands, None));
        }
        std::fs::write(path, out).map_err(|e| Error::io(path, e))?;
    }
    Ok(FaqReport {
        faqs: faqs.len(),
        questions_tune: tune.len(),
        questions_report: report.len(),
        hit_rate: chosen.hit_rate,
        wrong_rate: chosen.wrong_rate,
        fallback_rate: 1.0 - chosen.hit_rate - chosen.wrong_rate,
        out_of_scope_tune: neg_tune.len(),
        out_of_scope_report: neg_report.len(),
        out_of_scope_answered: chosen.out_of_scope_answered,
        held_out_answered: chosen.held_out_answered,
        top1: rep_in.iter().filter(|x| x.0).count() as f64 / n,
        cosine_top1: report
            .iter()
            .filter(|&&i| scored[i].2.is_some_and(|c| same(c, scored[i].1)))
            .count() as f64
            / n,
        recall_candidates: report
            .iter()
            .filter(|&&i| scored[i].0.iter().any(|(j, _)| same(*j, scored[i].1)))
            .count() as f64
            / n,
        policy,
        tune_gain: chosen.tune_gain,
        broad,
        seconds: started.elapsed().as_secs_f64(),
    })
}
