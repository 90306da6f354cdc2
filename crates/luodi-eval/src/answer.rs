//! `luodi eval answer`: grounded answers on a retrieval folder that also has `answers.jsonl`
//! (`{id, answers}`; an element of `answers` that is a list needs all of its parts).
//!
//! Each question is asked of a knowledge base built from the folder's corpus, with the local
//! model, exactly as `luodi ask` answers it. An answer is correct when its normalized text
//! (citation markers, punctuation and spaces removed, width, case and script folded)
//! contains a gold answer and is at most max(3 × the gold answer's length, 40) characters.
//! Citation precision is the share of given answers that cite a gold passage (qrels).
//!
//! `--unanswerable` asks the same questions with their gold passages, every passage of the
//! same title and every near-duplicate of a gold passage left out of retrieval: the right
//! output is then a refusal. `--evidence-only` runs no model: whether the evidence shown to
//! the model holds the gold answer, and the refusal decided before generation.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use luodi_core::{Embedder, Error, Result, SearchMode};
use luodi_engine::{AskOptions, KbConfig};
use luodi_models::llm::Generator;
use serde::Serialize;

use crate::retrieval::{corpus_kb, embedder_for, field, load_queries, read_jsonl, EvalQuery};
use crate::{quantile, Half};

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct AnswerEval {
    pub data: PathBuf,
    pub split: Option<String>,
    pub half: Option<Half>,
    /// Only questions whose `task` field is this (DomainRAG: `extractive`, …).
    pub task: Option<String>,
    pub limit: Option<usize>,
    pub unanswerable: bool,
    pub evidence_only: bool,
    pub ask: AskOptions,
    /// `default`, `large`, a GGUF path or an OpenAI-compatible endpoint.
    pub model: String,
    pub remote_model: Option<String>,
    pub threads: usize,
    pub embed_cache: PathBuf,
    pub cache_dir: PathBuf,
    pub config: KbConfig,
    /// One JSON line per question (answer, gold, evidence, signals) for error analysis.
    pub per_query: Option<PathBuf>,
    /// A line on stderr every few questions.
    pub progress: bool,
    /// Ask every question on its own: no conversation history, no date (the baseline that
    /// follow-up handling and time awareness are measured against).
    pub ignore_context: bool,
}

/// The metrics, as printed. Metrics that need the model are `None` with `--evidence-only`.
#[derive(Debug, Clone, Serialize)]
pub struct AnswerReport {
    pub data: String,
    pub mode: SearchMode,
    pub split: String,
    pub half: String,
    pub task: String,
    pub unanswerable: bool,
    pub evidence_only: bool,
    pub model: String,
    pub questions: usize,
    /// Share of questions answered correctly; with `--unanswerable`, share refused.
    pub accuracy: Option<f64>,
    /// Mean character-level F1 of the answer against the best gold answer.
    pub f1: Option<f64>,
    /// Share of given (not refused) answers that cite a gold passage.
    pub citation_precision: Option<f64>,
    /// Share of given answers whose cited passage holds a gold answer (a copy of a gold
    /// page under another id counts here, not in `citation_precision`).
    pub citation_support: Option<f64>,
    /// Share of given answers citing a gold passage or a near-duplicate of one (the same
    /// test `--unanswerable` removes them by: a pooled corpus repeats pages under other ids,
    /// which its qrels do not list).
    pub citation_precision_dup: Option<f64>,
    pub refusal_rate: f64,
    /// Refusals of answerable questions (with `--unanswerable`: the refusals decided before
    /// generation when the gold passages are present).
    pub false_refusal_rate: f64,
    /// Share of questions whose evidence (as shown to the model) holds a gold answer.
    pub evidence_recall: f64,
    /// With `--unanswerable`: the refusal rate among the questions whose evidence holds no
    /// gold answer. A pooled corpus can hold a question's answer in other pages still (then
    /// `evidence_recall` is not zero and answering is not wrong to a user); these are the
    /// questions the knowledge base, as far as retrieval finds, does not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal_without_answer: Option<f64>,
    pub mean_evidence_chars: f64,
    pub mean_answer_chars: Option<f64>,
    pub mean_prompt_tokens: Option<f64>,
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p95_ms: Option<f64>,
    pub latency_p50_ms: Option<f64>,
    pub retrieval_p50_ms: f64,
    pub seconds: f64,
    /// With `--unanswerable`: for each refusal threshold, the share of questions refused
    /// before generation without their gold passages (the right call) and with them (a false
    /// refusal) — the table the shipped threshold is read from on the tuning splits.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refusal_sweep: Vec<SweepPoint>,
}

/// One refusal threshold and what it would do (decided before generation).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SweepPoint {
    pub threshold: f32,
    /// Share of the questions refused with their gold passages left out.
    pub refusal: f64,
    /// Share of the same questions refused with their gold passages present.
    pub false_refusal: f64,
}

/// Thresholds the sweep covers: 0.40 to 0.90 by 0.005 (the shipped threshold, 0.685, sits
/// between two rows of a coarser table).
const SWEEP: std::ops::RangeInclusive<u32> = 80..=180;
const SWEEP_STEP: f32 = 0.005;

/// What each threshold would refuse, from the confidences of the questions with
/// (`answerable`) and without (`unanswerable`) their gold passages; `None` is a question
/// with no evidence at all, refused at any threshold.
pub fn refusal_sweep(answerable: &[Option<f32>], unanswerable: &[Option<f32>]) -> Vec<SweepPoint> {
    let share = |v: &[Option<f32>], t: f32| {
        v.iter().filter(|c| c.is_none_or(|c| c < t)).count() as f64 / v.len().max(1) as f64
    };
    SWEEP
        .map(|i| {
            let t = i as f32 * SWEEP_STEP;
            SweepPoint {
                threshold: t,
                refusal: share(unanswerable, t),
                false_refusal: share(answerable, t),
            }
        })
        .collect()
}

/// The text an answer is compared on: citation markers, spaces and punctuation removed,
/// width, case and script folded (繁→简), dates written 2023-11-04 read as 2023年11月4日.
pub fn normalize_answer(text: &str) -> String {
    let t = luodi_engine::answer::strip_citations(text);
    let t = iso_dates_to_chinese(&t);
    luodi_text::fold_for_search(&t)
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect()
}

/// `2023-11-04` → `2023年11月4日` (the way Chinese text writes a date).
fn iso_dates_to_chinese(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let digits = |from: usize, n: usize| -> Option<u32> {
        let s: String = chars.get(from..from + n)?.iter().collect();
        if s.chars().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    while i < chars.len() {
        let before_ok = i == 0 || !chars[i - 1].is_ascii_digit();
        let after_ok = chars.get(i + 10).is_none_or(|c| !c.is_ascii_digit());
        if before_ok && after_ok && chars.get(i + 4) == Some(&'-') && chars.get(i + 7) == Some(&'-')
        {
            if let (Some(y), Some(m), Some(d)) = (digits(i, 4), digits(i + 5, 2), digits(i + 8, 2))
            {
                if (1..=12).contains(&m) && (1..=31).contains(&d) {
                    out.push_str(&format!("{y}年{m}月{d}日"));
                    i += 10;
                    continue;
                }
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// Tokens for F1: each Han character alone, runs of Latin letters or digits as one token.
fn f1_tokens(norm: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut run = String::new();
    for c in norm.chars() {
        if c.is_ascii_alphanumeric() {
            run.push(c);
        } else {
            if !run.is_empty() {
                out.push(std::mem::take(&mut run));
            }
            out.push(c.to_string());
        }
    }
    if !run.is_empty() {
        out.push(run);
    }
    out
}

fn f1(answer: &str, gold: &str) -> f64 {
    let a = f1_tokens(answer);
    let g = f1_tokens(gold);
    if a.is_empty() || g.is_empty() {
        return 0.0;
    }
    let mut counts: HashMap<&str, i32> = HashMap::new();
    for t in &g {
        *counts.entry(t).or_default() += 1;
    }
    let mut common = 0;
    for t in &a {
        if let Some(c) = counts.get_mut(t.as_str()) {
            if *c > 0 {
                *c -= 1;
                common += 1;
            }
        }
    }
    if common == 0 {
        return 0.0;
    }
    let p = common as f64 / a.len() as f64;
    let r = common as f64 / g.len() as f64;
    2.0 * p * r / (p + r)
}

/// An accepted answer: all of its parts must appear.
type Gold = Vec<String>;

/// Whether `answer` is correct for any accepted answer, and its best F1.
pub fn judge(answer: &str, golds: &[Gold]) -> (bool, f64) {
    let a = normalize_answer(answer);
    let mut correct = false;
    let mut best_f1: f64 = 0.0;
    for g in golds {
        let parts: Vec<String> = g.iter().map(|p| normalize_answer(p)).collect();
        let gold_len: usize = parts.iter().map(|p| p.chars().count()).sum();
        let contains = !parts.is_empty() && parts.iter().all(|p| !p.is_empty() && a.contains(p));
        if contains && a.chars().count() <= (3 * gold_len).max(40) {
            correct = true;
        }
        best_f1 = best_f1.max(f1(&a, &parts.concat()));
    }
    (correct, best_f1)
}

fn evidence_holds(evidence: &str, golds: &[Gold]) -> bool {
    let e = normalize_answer(evidence);
    golds.iter().any(|g| {
        !g.is_empty()
            && g.iter().all(|p| {
                let p = normalize_answer(p);
                !p.is_empty() && e.contains(&p)
            })
    })
}

fn read_answers(data: &Path) -> Result<HashMap<String, Vec<Gold>>> {
    let path = data.join("answers.jsonl");
    if !path.is_file() {
        return Err(Error::InvalidInput(format!(
            "{}: no answers.jsonl (answer evaluation needs the gold answers)",
            data.display()
        )));
    }
    let mut out = HashMap::new();
    for (i, row) in read_jsonl(&path)?.into_iter().enumerate() {
        let id =
            field(&row, "id").ok_or_else(|| crate::retrieval::bad(&path, i + 1, "no \"id\""))?;
        let items = match row.get("answers") {
            Some(serde_json::Value::Array(items)) => items.clone(),
            // one answer given as a string (DomainRAG's multi-document questions)
            Some(s @ serde_json::Value::String(_)) => vec![s.clone()],
            _ => {
                return Err(crate::retrieval::bad(
                    &path,
                    i + 1,
                    "no \"answers\" (a list, or one string)",
                ))
            }
        };
        let mut golds = Vec::new();
        for it in &items {
            match it {
                serde_json::Value::String(s) => golds.push(vec![s.clone()]),
                serde_json::Value::Number(n) => golds.push(vec![n.to_string()]),
                serde_json::Value::Array(parts) => golds.push(
                    parts
                        .iter()
                        .filter_map(|p| match p {
                            serde_json::Value::String(s) => Some(s.clone()),
                            serde_json::Value::Number(n) => Some(n.to_string()),
                            _ => None,
                        })
                        .collect(),
                ),
                _ => {
                    return Err(crate::retrieval::bad(
                        &path,
                        i + 1,
                        "an answer is neither a string nor a list of strings",
                    ))
                }
            }
        }
        out.insert(id, golds);
    }
    Ok(out)
}

/// Character 5-gram shingles of folded text.
fn shingles(text: &str) -> HashSet<u64> {
    let chars: Vec<char> = luodi_text::fold_for_search(text)
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect();
    let mut out = HashSet::new();
    for w in chars.windows(5) {
        let s: String = w.iter().collect();
        out.insert(u64::from_le_bytes(
            blake3::hash(s.as_bytes()).as_bytes()[..8]
                .try_into()
                .unwrap_or([0; 8]),
        ));
    }
    out
}

/// Whether two passages are near-duplicates: 5-gram Jaccard ≥ 0.5, or the smaller one
/// mostly (≥ 80%) inside the larger.
fn near_duplicate(a: &HashSet<u64>, b: &HashSet<u64>) -> bool {
    if a.is_empty() || b.is_empty() {
        return false;
    }
    let inter = a.intersection(b).count() as f64;
    let union = (a.len() + b.len()) as f64 - inter;
    inter / union >= 0.5 || inter / a.len().min(b.len()) as f64 >= 0.8
}

/// The corpus as (id, title, shingles), for the unanswerable variant.
struct Corpus {
    rows: Vec<(String, String, HashSet<u64>)>,
    by_id: HashMap<String, usize>,
}

impl Corpus {
    fn read(data: &Path) -> Result<Corpus> {
        let path = data.join("corpus.jsonl");
        let mut rows = Vec::new();
        let mut by_id = HashMap::new();
        for (i, r) in read_jsonl(&path)?.into_iter().enumerate() {
            let id =
                field(&r, "id").ok_or_else(|| crate::retrieval::bad(&path, i + 1, "no \"id\""))?;
            let title = field(&r, "title").unwrap_or_default();
            let text = field(&r, "text").unwrap_or_default();
            by_id.insert(id.clone(), rows.len());
            rows.push((id, title, shingles(&text)));
        }
        Ok(Corpus { rows, by_id })
    }

    /// Whether corpus row `id` is a gold passage or a near-duplicate of one.
    fn near_gold(&self, id: &str, relevant: &HashMap<String, f64>) -> bool {
        if relevant.contains_key(id) {
            return true;
        }
        let Some(&row) = self.by_id.get(id) else {
            return false;
        };
        relevant
            .keys()
            .filter_map(|k| self.by_id.get(k))
            .any(|&g| near_duplicate(&self.rows[g].2, &self.rows[row].2))
    }

    /// The documents to leave out so that `relevant` cannot be found: the gold passages,
    /// every passage with a gold passage's title, every near-duplicate of a gold passage.
    fn exclusions(&self, relevant: &HashMap<String, f64>) -> Vec<String> {
        let gold: Vec<usize> = relevant
            .keys()
            .filter_map(|k| self.by_id.get(k).copied())
            .collect();
        let titles: HashSet<&str> = gold
            .iter()
            .map(|&i| self.rows[i].1.as_str())
            .filter(|t| !t.trim().is_empty())
            .collect();
        let mut out: Vec<String> = relevant.keys().cloned().collect();
        for (id, title, sh) in &self.rows {
            if relevant.contains_key(id) {
                continue;
            }
            if titles.contains(title.as_str())
                || gold.iter().any(|&g| near_duplicate(&self.rows[g].2, sh))
            {
                out.push(id.clone());
            }
        }
        out
    }
}

/// The document key the evaluation store gives corpus row `id`.
fn doc_key(id: &str) -> String {
    format!("corpus#{id}")
}

pub fn run(ev: &AnswerEval) -> Result<AnswerReport> {
    let started = Instant::now();
    let data = &ev.data;
    let answers = read_answers(data)?;
    let mut questions: Vec<EvalQuery> = load_queries(data, ev.split.as_deref(), ev.half)?
        .into_iter()
        .filter(|q| answers.contains_key(&q.id))
        // a question with no text (two in CMRC's trial split) is not a question
        .filter(|q| !q.text.trim().is_empty())
        .filter(|q| {
            ev.task
                .as_deref()
                .is_none_or(|t| field(&q.row, "task").as_deref() == Some(t))
        })
        .collect();
    if let Some(n) = ev.limit {
        questions.truncate(n);
    }
    if questions.is_empty() {
        return Err(Error::InvalidInput(format!(
            "{}: no questions with answers and qrels for split {:?}, task {:?}",
            data.display(),
            ev.split,
            ev.task
        )));
    }
    let (kb, _, _, _) = corpus_kb(data, ev.config, &ev.cache_dir, true)?;
    let embed = embedder_for(&kb, ev.ask.mode, &ev.embed_cache)?;
    let embed_ref = embed.as_ref().map(|(e, c)| (e as &dyn Embedder, c));
    // passages by id: near-duplicates of gold ones (removed with --unanswerable; counted
    // beside the qrels' own ids in citation precision)
    let all = Corpus::read(data)?;
    let corpus = ev.unanswerable.then_some(&all);
    let generator: Option<Box<dyn Generator>> = if ev.evidence_only {
        None
    } else {
        Some(
            luodi_models::llm::open_generator(
                &ev.model,
                ev.remote_model.as_deref(),
                ev.threads,
                4096,
            )
            .map_err(|e| Error::InvalidInput(e.to_string()))?,
        )
    };
    let mut per_query = match &ev.per_query {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| Error::io(p, e))?,
        )),
        None => None,
    };

    let n = questions.len();
    let (mut correct, mut f1_sum, mut refused, mut answered, mut cited_gold) =
        (0usize, 0.0f64, 0usize, 0usize, 0usize);
    let (mut cited_support, mut cited_dup) = (0usize, 0usize);
    let (mut false_refused, mut evidence_hits, mut evidence_chars) = (0usize, 0usize, 0usize);
    let (mut answer_chars, mut prompt_tokens) = (0usize, 0usize);
    let mut refused_without_answer = 0usize;
    let (mut ttft, mut latency, mut retrieval) = (Vec::new(), Vec::new(), Vec::new());
    // confidences with and without the gold passages (None: no evidence), for the sweep
    let (mut conf_answerable, mut conf_unanswerable) = (Vec::new(), Vec::new());
    for (qi, q) in questions.iter().enumerate() {
        let golds = &answers[&q.id];
        let mut opts = ev.ask.clone();
        // a conversation's earlier turns, and the date a time-sensitive question is asked on
        let history = if ev.ignore_context {
            Vec::new()
        } else {
            q.history()
        };
        opts.as_of_year = q.date_year().filter(|_| !ev.ignore_context);
        let mut answerable_refused = None;
        let mut answerable_signals = None;
        if let Some(c) = &corpus {
            // the same question with its gold passages present: would it be refused?
            let p = kb.prepare_in(&q.text, &history, embed_ref, &opts)?;
            answerable_refused = Some(p.refuse);
            answerable_signals = Some(p.signals);
            conf_answerable.push((!p.evidence.is_empty()).then_some(p.confidence));
            if p.refuse {
                false_refused += 1;
            }
            opts.exclude_docs = c
                .exclusions(&q.relevant)
                .iter()
                .map(|d| doc_key(d))
                .collect();
        }
        let t0 = Instant::now();
        let prepared = kb.prepare_in(&q.text, &history, embed_ref, &opts)?;
        retrieval.push(prepared.retrieval_ms);
        if corpus.is_some() {
            conf_unanswerable.push((!prepared.evidence.is_empty()).then_some(prepared.confidence));
        }
        let ev_text: String = prepared
            .evidence
            .iter()
            .map(|e| e.text.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let holds = evidence_holds(&ev_text, golds);
        evidence_hits += usize::from(holds);
        evidence_chars += ev_text.chars().count();
        let mut line = serde_json::json!({
            "id": q.id,
            "question": q.text,
            "standalone": prepared.standalone,
            "gold": golds,
            "relevant": q.relevant.keys().collect::<Vec<_>>(),
            "evidence_has_answer": holds,
            "signals": prepared.signals,
            "confidence": prepared.confidence,
            "refused_before_generation": prepared.refuse,
            "evidence": prepared.evidence.iter().map(|e| serde_json::json!({"n": e.n, "doc": e.doc_key, "text": e.text})).collect::<Vec<_>>(),
        });
        if let Some(r) = answerable_refused {
            line["answerable_refused"] = serde_json::json!(r);
            line["answerable_signals"] = serde_json::json!(answerable_signals);
        }
        match &generator {
            None => {
                if prepared.refuse {
                    refused += 1;
                    refused_without_answer += usize::from(!holds);
                }
            }
            Some(g) => {
                let answer = kb.generate(prepared, g.as_ref(), &opts, t0, &mut |_| {})?;
                let (ok, f) = judge(&answer.text, golds);
                f1_sum += f;
                if answer.refused {
                    refused += 1;
                    refused_without_answer += usize::from(!holds);
                } else {
                    answered += 1;
                    if answer.citations.iter().any(|c| {
                        q.relevant
                            .contains_key(c.doc_key.strip_prefix("corpus#").unwrap_or(&c.doc_key))
                    }) {
                        cited_gold += 1;
                    }
                    if answer.citations.iter().any(|c| {
                        all.near_gold(
                            c.doc_key.strip_prefix("corpus#").unwrap_or(&c.doc_key),
                            &q.relevant,
                        )
                    }) {
                        cited_dup += 1;
                    }
                    let cited: Vec<(u64, f32)> =
                        answer.citations.iter().map(|c| (c.chunk_id, 0.0)).collect();
                    if kb
                        .store
                        .fetch(&cited)?
                        .iter()
                        .any(|h| evidence_holds(&h.chunk.text, golds))
                    {
                        cited_support += 1;
                    }
                    // an unanswerable question is answered right only by a refusal
                    if ok && !ev.unanswerable {
                        correct += 1;
                    }
                }
                if ev.unanswerable && answer.refused {
                    correct += 1;
                }
                answer_chars += normalize_answer(&answer.text).chars().count();
                prompt_tokens += answer.prompt_tokens;
                ttft.push(answer.ttft_ms);
                latency.push(answer.total_ms);
                line["answer"] = serde_json::json!(answer.text);
                line["correct"] = serde_json::json!(ok);
                line["f1"] = serde_json::json!(f);
                line["refused"] = serde_json::json!(answer.refused);
                line["cited"] = serde_json::json!(answer
                    .citations
                    .iter()
                    .map(|c| c.doc_key.clone())
                    .collect::<Vec<_>>());
                line["prompt_tokens"] = serde_json::json!(answer.prompt_tokens);
                line["span_prob"] = serde_json::json!(answer.span_prob);
                if !answer.alternatives.is_empty() {
                    line["alternatives"] = serde_json::json!(answer
                        .alternatives
                        .iter()
                        .map(|a| {
                            let mut v = serde_json::json!(a);
                            v["correct"] = serde_json::json!(judge(&a.quote, golds).0);
                            v
                        })
                        .collect::<Vec<_>>());
                }
                line["ttft_ms"] = serde_json::json!(answer.ttft_ms);
                line["total_ms"] = serde_json::json!(answer.total_ms);
            }
        }
        if let Some(w) = per_query.as_mut() {
            writeln!(w, "{line}").map_err(|e| Error::internal("per-query output", e))?;
        }
        if ev.progress && ((qi + 1) % 10 == 0 || qi + 1 == n) {
            let done = (qi + 1) as f64;
            if generator.is_some() {
                eprintln!(
                    "  {}/{n}: accuracy {:.3}, refused {:.3}, evidence recall {:.3}",
                    qi + 1,
                    correct as f64 / done,
                    refused as f64 / done,
                    evidence_hits as f64 / done
                );
            } else {
                eprintln!(
                    "  {}/{n}: evidence recall {:.3}, refused {:.3}",
                    qi + 1,
                    evidence_hits as f64 / done,
                    refused as f64 / done
                );
            }
        }
    }
    if let Some(mut w) = per_query {
        w.flush()
            .map_err(|e| Error::internal("per-query output", e))?;
    }
    let nf = n as f64;
    for v in [&mut ttft, &mut latency, &mut retrieval] {
        v.sort_by(|a, b| a.total_cmp(b));
    }
    let with_model = generator.is_some();
    let model_metric = |v: f64| with_model.then_some(v);
    Ok(AnswerReport {
        data: data.display().to_string(),
        mode: ev.ask.mode,
        split: ev.split.clone().unwrap_or_else(|| "all".into()),
        half: match ev.half {
            None => "all".into(),
            Some(Half::Tune) => "tune".into(),
            Some(Half::Report) => "report".into(),
        },
        task: ev.task.clone().unwrap_or_else(|| "all".into()),
        unanswerable: ev.unanswerable,
        evidence_only: ev.evidence_only,
        model: generator
            .as_ref()
            .map_or_else(|| "none".into(), |g| g.name().to_owned()),
        questions: n,
        accuracy: model_metric(correct as f64 / nf),
        f1: model_metric(f1_sum / nf),
        citation_precision: model_metric(if answered == 0 {
            0.0
        } else {
            cited_gold as f64 / answered as f64
        }),
        citation_support: model_metric(if answered == 0 {
            0.0
        } else {
            cited_support as f64 / answered as f64
        }),
        citation_precision_dup: model_metric(if answered == 0 {
            0.0
        } else {
            cited_dup as f64 / answered as f64
        }),
        refusal_rate: refused as f64 / nf,
        false_refusal_rate: if ev.unanswerable {
            false_refused as f64 / nf
        } else {
            refused as f64 / nf
        },
        evidence_recall: evidence_hits as f64 / nf,
        refusal_without_answer: ev
            .unanswerable
            .then(|| refused_without_answer as f64 / (n - evidence_hits).max(1) as f64),
        mean_evidence_chars: evidence_chars as f64 / nf,
        mean_answer_chars: model_metric(answer_chars as f64 / nf),
        mean_prompt_tokens: model_metric(prompt_tokens as f64 / nf),
        ttft_p50_ms: model_metric(quantile(&ttft, 0.5)),
        ttft_p95_ms: model_metric(quantile(&ttft, 0.95)),
        latency_p50_ms: model_metric(quantile(&latency, 0.5)),
        retrieval_p50_ms: quantile(&retrieval, 0.5),
        seconds: started.elapsed().as_secs_f64(),
        refusal_sweep: if ev.unanswerable {
            refusal_sweep(&conf_answerable, &conf_unanswerable)
        } else {
            Vec::new()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_judged_on_normalized_text_within_the_length_limit() {
        let gold = vec![vec!["光荣和ω-force".to_string()]];
        assert!(judge("由光荣和ω-Force开发[1]。", &gold).0);
        assert!(!judge("光荣", &gold).0);
        let long = format!("光荣和ω-force{}", "很长的解释".repeat(10));
        assert!(!judge(&long, &gold).0);
        // every part of a list answer must appear
        let parts = vec![vec!["汉语".into(), "法语".into(), "英语".into()]];
        assert!(judge("汉语、法语和英语", &parts).0);
        assert!(!judge("汉语和法语", &parts).0);
        // 繁體 answers and ISO dates
        assert!(judge("於2023年11月4日舉行", &[vec!["2023-11-04".into()]]).0);
        assert!(judge("資料庫", &[vec!["数据库".into()]]).0);
    }

    #[test]
    fn f1_counts_characters_and_latin_words() {
        assert!((f1("光荣和ωforce", "光荣和ωforce") - 1.0).abs() < 1e-9);
        assert_eq!(f1("abc", "xyz"), 0.0);
        let v = f1("锣鼓点", "锣鼓");
        assert!(v > 0.7 && v < 0.9, "{v}");
    }

    #[test]
    fn the_refusal_sweep_counts_what_each_threshold_refuses() {
        // confidences with the gold passages (answerable) and without them; None: no evidence
        let answerable = [Some(0.9), Some(0.7), Some(0.5), None];
        let unanswerable = [Some(0.3), Some(0.6), Some(0.8), None];
        let sweep = refusal_sweep(&answerable, &unanswerable);
        let at = |t: f32| {
            *sweep
                .iter()
                .find(|p| (p.threshold - t).abs() < 1e-4)
                .expect("threshold swept")
        };
        // below 0.4: only the question with no evidence
        assert_eq!(at(0.4).refusal, 0.5);
        assert_eq!(at(0.4).false_refusal, 0.25);
        // 0.65 refuses 0.3 and 0.6 (and no evidence); of the answerable, 0.5 and no evidence
        assert_eq!(at(0.65).refusal, 0.75);
        assert_eq!(at(0.65).false_refusal, 0.5);
        assert_eq!(at(0.9).refusal, 1.0);
        // more refusals as the threshold rises, never fewer
        assert!(sweep
            .windows(2)
            .all(|w| w[0].refusal <= w[1].refusal && w[0].false_refusal <= w[1].false_refusal));
        // the shipped threshold is one the table shows
        let shipped = luodi_engine::AskOptions::default().refuse_below;
        assert!(sweep.iter().any(|p| (p.threshold - shipped).abs() < 1e-4));
    }

    #[test]
    fn near_duplicates_are_found() {
        let a = shingles("中国人民大学2016年圆梦计划招生计划招收80人，面向农村地区。");
        let b = shingles("中国人民大学2016年圆梦计划招生计划招收80人，面向农村地区！");
        let c = shingles("武警部队与多所学校签订了依托培养协议。");
        assert!(near_duplicate(&a, &b));
        assert!(!near_duplicate(&a, &c));
    }
}
