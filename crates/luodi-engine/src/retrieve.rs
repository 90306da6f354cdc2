//! Dense and hybrid retrieval: chunk vectors made at ingest through an embedding cache,
//! query vectors, and the fusion of BM25 and dense rankings.
//!
//! Vectors are made after the BM25 index is committed, so a knowledge base answers with BM25
//! at once; [`Kb::embed_pending`] fills in the vectors in batches (resumable: each batch is
//! committed, and the next run starts with the chunks still missing one), and hybrid search
//! uses whatever vectors exist. The cache (`$LUODI_HOME/cache/embeddings.sqlite`, keyed by
//! model and text hash) makes re-ingesting, re-creating an evaluation store or asking the same
//! question again cost no model time.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use luodi_core::{Embedder, Error, Result, SearchHit, SearchMode, SearchQuery};
use luodi_index::{vector_from_bytes, vector_to_bytes, VectorStatus};
use rusqlite::{params, Connection, OptionalExtension};

use crate::home::Kb;
use crate::ingest::Progress;

/// Chunks embedded per batch (one committed step of [`Kb::embed_pending`]).
pub const EMBED_BATCH: usize = 64;

/// Candidates each ranking contributes to the fusion.
pub const FUSION_DEPTH: usize = 50;

/// How hybrid search combines its rankings.
///
/// The default is a weighted sum of scores on comparable scales: the BM25 score divided by
/// the query's ideal score (the share of the query a chunk matches, so a top BM25 hit that
/// matches only a stray character scores low) plus `dense_weight` × (cosine − `dense_floor`),
/// over the union of both top-50 lists (the cosine is computed for every candidate). With
/// `rrf_k` set it is reciprocal rank fusion instead. Chosen on the tuning halves of XQuAD,
/// DuReader and DomainRAG (MRR@10): the sum at weight 16 is above BM25 on all three (DuReader
/// 1.39×); reciprocal rank fusion gained more on DuReader (1.54×) but fell below BM25 on
/// DomainRAG, where this embedding model is weak (dense alone 0.29 vs BM25 0.35); weight 32
/// fell below BM25 there too.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fusion {
    pub rrf_k: Option<f32>,
    pub dense_weight: f32,
    pub dense_floor: f32,
    /// Reciprocal rank fusion: BM25 hits matching less than this share of the query (its
    /// ideal score) do not vote; on a small knowledge base BM25 ranks every chunk that shares
    /// a stray character with the question.
    pub bm25_min_share: f32,
}

impl Default for Fusion {
    fn default() -> Self {
        Fusion {
            rrf_k: None,
            dense_weight: 16.0,
            dense_floor: 0.75,
            bm25_min_share: 0.2,
        }
    }
}

/// A ranked chunk and what its score is made of.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Ranked {
    pub id: u64,
    /// The score the ranking is sorted by (its scale depends on the mode).
    pub score: f32,
    /// BM25 ÷ the query's ideal score: the share of the query the chunk matches.
    pub bm25_share: Option<f32>,
    /// Cosine similarity of the chunk's vector to the query's.
    pub cosine: Option<f32>,
}

/// Vectors by (model, blake3 of the text).
pub struct EmbedCache {
    conn: Mutex<Connection>,
}

fn sql(context: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |e| Error::internal(context, e)
}

fn text_key(text: &str) -> Vec<u8> {
    blake3::hash(text.as_bytes()).as_bytes().to_vec()
}

impl EmbedCache {
    pub fn open(path: &Path) -> Result<EmbedCache> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let conn = Connection::open(path).map_err(|e| Error::Corrupt {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql("embedding cache"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql("embedding cache"))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sql("embedding cache"))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS embeddings(
                model TEXT NOT NULL, key BLOB NOT NULL, data BLOB NOT NULL,
                PRIMARY KEY(model, key)) WITHOUT ROWID;",
        )
        .map_err(sql("embedding cache"))?;
        Ok(EmbedCache {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        self.conn
            .lock()
            .map_err(|_| Error::internal("embedding cache", "lock poisoned"))
    }

    pub fn get(&self, model: &str, text: &str) -> Result<Option<Vec<f32>>> {
        let conn = self.conn()?;
        let v: Option<Vec<u8>> = conn
            .prepare_cached("SELECT data FROM embeddings WHERE model = ?1 AND key = ?2")
            .map_err(sql("embedding cache"))?
            .query_row(params![model, text_key(text)], |r| r.get(0))
            .optional()
            .map_err(sql("embedding cache"))?;
        Ok(v.map(|b| vector_from_bytes(&b)))
    }

    pub fn put(&self, model: &str, items: &[(&str, &[f32])]) -> Result<()> {
        let mut conn = self.conn()?;
        let tx = conn.transaction().map_err(sql("embedding cache"))?;
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO embeddings(model, key, data) VALUES(?1, ?2, ?3)",
                )
                .map_err(sql("embedding cache"))?;
            for (text, v) in items {
                st.execute(params![model, text_key(text), vector_to_bytes(v)])
                    .map_err(sql("embedding cache"))?;
            }
        }
        tx.commit().map_err(sql("embedding cache"))
    }

    /// Vectors of `texts` as passages: cached ones read, the others embedded and cached.
    pub fn passages(&self, embedder: &dyn Embedder, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let model = embedder.id();
        let mut out: Vec<Option<Vec<f32>>> = Vec::with_capacity(texts.len());
        for t in texts {
            out.push(self.get(model, t)?);
        }
        let missing: Vec<usize> = (0..texts.len()).filter(|&i| out[i].is_none()).collect();
        if !missing.is_empty() {
            let todo: Vec<&str> = missing.iter().map(|&i| texts[i]).collect();
            let made = embedder.embed_passages(&todo)?;
            if made.len() != todo.len() {
                return Err(Error::internal(
                    "embedding",
                    format!("{} vectors for {} texts", made.len(), todo.len()),
                ));
            }
            let items: Vec<(&str, &[f32])> = todo
                .iter()
                .zip(&made)
                .map(|(t, v)| (*t, v.as_slice()))
                .collect();
            self.put(model, &items)?;
            for (i, v) in missing.into_iter().zip(made) {
                out[i] = Some(v);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// The vector of a question, cached under a `query:` key of its own.
    pub fn query(&self, embedder: &dyn Embedder, text: &str) -> Result<Vec<f32>> {
        let key = format!("\u{0}query\u{0}{text}");
        if let Some(v) = self.get(embedder.id(), &key)? {
            return Ok(v);
        }
        let v = embedder.embed_query(text)?;
        self.put(embedder.id(), &[(&key, &v)])?;
        Ok(v)
    }
}

/// What an embedding run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EmbedReport {
    pub embedded: u64,
    pub total: u64,
    pub seconds: f64,
}

/// Reciprocal rank fusion of rankings of chunk ids, each with its weight, best first.
pub fn fuse(rankings: &[(&[(u64, f32)], f32)], rrf_k: f32) -> Vec<(u64, f32)> {
    let mut score: HashMap<u64, f32> = HashMap::new();
    for (ranking, weight) in rankings {
        for (rank, (id, _)) in ranking.iter().enumerate() {
            *score.entry(*id).or_default() += weight / (rrf_k + rank as f32 + 1.0);
        }
    }
    let mut out: Vec<(u64, f32)> = score.into_iter().collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

fn passes_filters(hit: &SearchHit, q: &SearchQuery) -> bool {
    q.filters
        .iter()
        .all(|(k, v)| hit.metadata.get(k).is_some_and(|x| x == v))
        && q.after.is_none_or(|a| hit.modified.is_some_and(|m| m >= a))
        && q.before.is_none_or(|b| hit.modified.is_some_and(|m| m < b))
}

impl Kb {
    /// How far the vectors of `model` cover this knowledge base's chunks.
    pub fn vector_status(&self, model: &str) -> Result<VectorStatus> {
        self.store.vector_status(model)
    }

    /// Embeds every chunk that has no vector of `embedder` yet, in committed batches.
    pub fn embed_pending(
        &self,
        embedder: &dyn Embedder,
        cache: &EmbedCache,
        progress: &dyn Progress,
    ) -> Result<EmbedReport> {
        let started = std::time::Instant::now();
        let model = embedder.id();
        let status = self.store.vector_status(model)?;
        let mut report = EmbedReport {
            total: status.chunks,
            ..Default::default()
        };
        progress.start(status.missing(), 0);
        loop {
            let batch = self.store.chunks_without_vector(model, EMBED_BATCH)?;
            if batch.is_empty() {
                break;
            }
            let texts: Vec<&str> = batch.iter().map(|(_, t)| t.as_str()).collect();
            let vectors = cache.passages(embedder, &texts)?;
            let bytes: u64 = texts.iter().map(|t| t.len() as u64).sum();
            let items: Vec<(u64, Vec<f32>)> =
                batch.iter().map(|(id, _)| *id).zip(vectors).collect();
            self.store.put_vectors(model, &items)?;
            report.embedded += items.len() as u64;
            progress.advance(items.len() as u64, bytes);
        }
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// The script most of the documents are in (from the first 64 chunks; remembered once
    /// there is Chinese to judge by).
    pub fn documents_script(&self) -> Result<luodi_text::Script> {
        use luodi_text::Script;
        if let Some(s) = self.script.get() {
            return Ok(*s);
        }
        let sample: Vec<String> = self
            .store
            .passages(64)?
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        let s = luodi_text::detect_script(&sample.join("\n"));
        if matches!(s, Script::Simplified | Script::Traditional) {
            let _ = self.script.set(s);
        }
        Ok(s)
    }

    /// `question` as the dense query reads it: a Chinese question in the other script than
    /// the documents' converted to theirs (e5 meets 國民年金保費沒繳會有什麼後果 and its 简体
    /// answer at a far lower cosine than the same pair in one script; BM25 folds scripts
    /// itself). `eval retrieval --query-script` measures it.
    pub fn in_documents_script(&self, question: &str) -> Result<String> {
        use luodi_text::Script;
        if !self.match_script {
            return Ok(question.to_owned());
        }
        let asked = luodi_text::detect_script(question);
        if !matches!(asked, Script::Simplified | Script::Traditional) {
            return Ok(question.to_owned());
        }
        Ok(match (asked, self.documents_script()?) {
            (Script::Traditional, Script::Simplified) => luodi_text::to_simplified(question),
            (Script::Simplified, Script::Traditional) => {
                luodi_text::to_traditional(question, luodi_text::Variant::Taiwan)
            }
            _ => question.to_owned(),
        })
    }

    /// Ranked chunk ids for a query in the given mode. Dense and hybrid need an embedder
    /// (hybrid without one, or without any vector, is BM25).
    pub fn rank(
        &self,
        q: &SearchQuery,
        mode: SearchMode,
        embed: Option<(&dyn Embedder, &EmbedCache)>,
        fusion: Fusion,
    ) -> Result<Vec<(u64, f32)>> {
        Ok(self
            .rank_scored(q, mode, embed, fusion)?
            .into_iter()
            .map(|r| (r.id, r.score))
            .collect())
    }

    /// [`Kb::rank`] with what each score is made of: the BM25 share of the query and the
    /// cosine similarity, where the mode computed them. What answering decides refusal on.
    pub fn rank_scored(
        &self,
        q: &SearchQuery,
        mode: SearchMode,
        embed: Option<(&dyn Embedder, &EmbedCache)>,
        fusion: Fusion,
    ) -> Result<Vec<Ranked>> {
        if q.exclude_docs.is_empty() {
            return self.rank_inner(q, mode, embed, fusion);
        }
        // excluded documents are dropped from a deeper ranking
        let excluded: std::collections::HashSet<&str> =
            q.exclude_docs.iter().map(String::as_str).collect();
        let deeper = SearchQuery {
            k: q.k + 64 + 4 * excluded.len(),
            exclude_docs: Vec::new(),
            ..q.clone()
        };
        let ranked = self.rank_inner(&deeper, mode, embed, fusion)?;
        let ids: Vec<(u64, f32)> = ranked.iter().map(|r| (r.id, r.score)).collect();
        let keep: std::collections::HashSet<u64> = self
            .store
            .fetch(&ids)?
            .into_iter()
            .filter(|h| !excluded.contains(h.doc_key.as_str()))
            .map(|h| h.chunk_id)
            .collect();
        let mut out: Vec<Ranked> = ranked
            .into_iter()
            .filter(|r| keep.contains(&r.id))
            .collect();
        out.truncate(q.k);
        Ok(out)
    }

    fn rank_inner(
        &self,
        q: &SearchQuery,
        mode: SearchMode,
        embed: Option<(&dyn Embedder, &EmbedCache)>,
        fusion: Fusion,
    ) -> Result<Vec<Ranked>> {
        // the question in the glossary's words: full forms and synonyms added for BM25,
        // abbreviations written out for the dense query
        let expansion = self.glossary.expand(&q.text);
        let lexical = SearchQuery {
            text: expansion.lexical.clone(),
            ..q.clone()
        };
        let q = &lexical;
        let dense_text = self.in_documents_script(&expansion.rewritten)?;
        let dense_text = dense_text.as_str();
        let filtered = !q.filters.is_empty() || q.after.is_some() || q.before.is_some();
        // the `depth` chunks nearest to the query vector `v` that pass the filters
        let dense = |model: &str, v: &[f32], depth: usize| -> Result<Vec<(u64, f32)>> {
            // filters are checked on the fetched chunks, so look deeper when there are any
            let want = if filtered { depth * 10 } else { depth };
            let mut ids = self.store.dense_search(model, v, want)?;
            if filtered {
                let hits = self.store.fetch(&ids)?;
                let keep: std::collections::HashSet<u64> = hits
                    .iter()
                    .filter(|h| passes_filters(h, q))
                    .map(|h| h.chunk_id)
                    .collect();
                ids.retain(|(id, _)| keep.contains(id));
                ids.truncate(depth);
            }
            Ok(ids)
        };
        let bm25_only = |q: &SearchQuery| -> Result<Vec<Ranked>> {
            let ideal = self.store.ideal_score(&q.text)?.max(1e-6);
            Ok(self
                .store
                .search_ids(q)?
                .into_iter()
                .map(|(id, s)| Ranked {
                    id,
                    score: s,
                    bm25_share: Some(s / ideal),
                    cosine: None,
                })
                .collect())
        };
        match mode {
            SearchMode::Bm25 => bm25_only(q),
            SearchMode::Dense => {
                let Some((embedder, cache)) = embed else {
                    return Err(Error::InvalidInput(
                        "dense search needs the embedding model: run `luodi models install`".into(),
                    ));
                };
                if !self.store.has_vectors(embedder.id())? {
                    let name = self.name();
                    return Err(Error::InvalidInput(format!(
                        "{name} has no vectors yet: run `luodi kb embed {name}`"
                    )));
                }
                let v = cache.query(embedder, dense_text)?;
                Ok(dense(embedder.id(), &v, q.k)?
                    .into_iter()
                    .map(|(id, c)| Ranked {
                        id,
                        score: c,
                        bm25_share: None,
                        cosine: Some(c),
                    })
                    .collect())
            }
            SearchMode::Hybrid => {
                let (embedder, cache) = match embed {
                    Some((e, c)) if self.store.has_vectors(e.id())? => (e, c),
                    // no model or no vector yet: BM25 alone
                    _ => return bm25_only(q),
                };
                let model = embedder.id();
                let v = cache.query(embedder, dense_text)?;
                let depth = q.k.max(FUSION_DEPTH);
                let mut bm25 = self.store.search_ids(&SearchQuery {
                    k: depth,
                    ..q.clone()
                })?;
                let d = dense(model, &v, depth)?;
                let ideal = self.store.ideal_score(&q.text)?.max(1e-6);
                // (BM25 share of the query, cosine) of every candidate; the dense ranking
                // brings its cosines, the BM25-only candidates get theirs
                let mut parts: HashMap<u64, (f32, Option<f32>)> = HashMap::new();
                for (id, s) in &bm25 {
                    parts.entry(*id).or_insert((0.0, None)).0 = s / ideal;
                }
                for (id, c) in &d {
                    parts.entry(*id).or_insert((0.0, None)).1 = Some(*c);
                }
                let missing: Vec<u64> = parts
                    .iter()
                    .filter(|(_, p)| p.1.is_none())
                    .map(|(id, _)| *id)
                    .collect();
                let cos = self.store.dense_scores(model, &v, &missing)?;
                for (id, c) in missing.iter().zip(cos) {
                    if let Some(p) = parts.get_mut(id) {
                        p.1 = c;
                    }
                }
                let mut fused: Vec<Ranked> = match fusion.rrf_k {
                    Some(rrf_k) => {
                        if fusion.bm25_min_share > 0.0 {
                            let floor = fusion.bm25_min_share * ideal;
                            bm25.retain(|(_, s)| *s >= floor);
                        }
                        fuse(&[(&bm25, 1.0), (&d, fusion.dense_weight)], rrf_k)
                            .into_iter()
                            .map(|(id, score)| {
                                let p = parts.get(&id).copied().unwrap_or((0.0, None));
                                Ranked {
                                    id,
                                    score,
                                    bm25_share: Some(p.0),
                                    cosine: p.1,
                                }
                            })
                            .collect()
                    }
                    None => {
                        let mut out: Vec<Ranked> = parts
                            .into_iter()
                            .map(|(id, (share, c))| {
                                let dense = c.map_or(0.0, |c| (c - fusion.dense_floor).max(0.0));
                                Ranked {
                                    id,
                                    score: share + fusion.dense_weight * dense,
                                    bm25_share: Some(share),
                                    cosine: c,
                                }
                            })
                            .collect();
                        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
                        out
                    }
                };
                fused.truncate(q.k);
                Ok(fused)
            }
        }
    }

    /// [`Kb::rank`], then the chunks with their documents.
    pub fn search_mode(
        &self,
        q: &SearchQuery,
        mode: SearchMode,
        embed: Option<(&dyn Embedder, &EmbedCache)>,
    ) -> Result<Vec<SearchHit>> {
        let ids = self.rank(q, mode, embed, Fusion::default())?;
        self.store.fetch(&ids)
    }
}

/// How likely the local model finds `question` as a question about a passage: the mean
/// log-probability of its tokens written as the reply to the passage (query likelihood;
/// Sachan et al. 2022, "Improving Passage Retrieval with Zero-Shot Question Generation").
/// The instruction is a fixed prefix the model's cache keeps; each passage costs its own
/// tokens and the question's. The passage is cut to `max_chars`.
pub fn question_likelihood(
    generator: &dyn luodi_models::llm::Generator,
    question: &str,
    title: &str,
    passage: &str,
    max_chars: usize,
) -> std::result::Result<f32, luodi_models::ModelError> {
    use luodi_models::llm::ChatMessage;
    let passage: String = passage.chars().take(max_chars).collect();
    let messages = [
        ChatMessage::system("读下面的资料，写出一个能用这段资料回答的问题。"),
        ChatMessage::user(format!("资料：{title}\n{passage}")),
    ];
    let lps = generator.reply_logprobs(&messages, question.trim())?;
    if lps.is_empty() {
        return Ok(f32::MIN);
    }
    Ok(lps.iter().sum::<f32>() / lps.len() as f32)
}

/// How [`rerank`] reorders hits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rerank {
    /// Hits reranked (those below keep their order after them).
    pub depth: usize,
    /// Passage characters the model reads.
    pub max_chars: usize,
    /// Weight of the first stage's rank: score = likelihood − weight × ln(rank).
    pub rank_weight: f32,
}

impl Default for Rerank {
    /// Chosen on 30 questions of DomainRAG's tuning half with the 1.5B model (MRR@10 of
    /// hybrid 0.330 → 0.430; depth 5 gives 0.373, the 0.5B model 0.294: it ranks worse than
    /// the first stage). The gain did not hold on the report half (first 60 questions:
    /// 0.428 → 0.410), so nothing uses it unless asked to.
    fn default() -> Self {
        Rerank {
            depth: 10,
            max_chars: 400,
            rank_weight: 0.1,
        }
    }
}

/// Reorders the first `opts.depth` hits by [`question_likelihood`] (plus a little of their
/// first-stage rank); returns the score of each reranked hit, in the new order.
pub fn rerank(
    generator: &dyn luodi_models::llm::Generator,
    question: &str,
    hits: &mut [SearchHit],
    opts: &Rerank,
) -> std::result::Result<Vec<f32>, luodi_models::ModelError> {
    let depth = opts.depth.min(hits.len());
    let mut scored = Vec::with_capacity(depth);
    for (rank, h) in hits[..depth].iter().enumerate() {
        let lq = question_likelihood(generator, question, &h.title, &h.chunk.text, opts.max_chars)?;
        scored.push((lq - opts.rank_weight * ((rank + 1) as f32).ln(), rank));
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let order: Vec<SearchHit> = scored.iter().map(|&(_, r)| hits[r].clone()).collect();
    for (slot, h) in hits.iter_mut().zip(order) {
        *slot = h;
    }
    Ok(scored.iter().map(|s| s.0).collect())
}

/// The embedding model of `luodi models install` as an [`Embedder`].
pub struct E5Embedder {
    model: luodi_models::e5::E5Model,
    id: String,
}

impl E5Embedder {
    /// Loads the installed e5 model (a clear error naming `luodi models install` if missing).
    pub fn load(threads: usize) -> Result<E5Embedder> {
        use luodi_models::catalog::{E5_SMALL, E5_WEIGHTS};
        let dir = luodi_models::models_dir();
        let path = luodi_models::install::require(&dir, E5_SMALL, E5_WEIGHTS)
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        let model = luodi_models::e5::E5Model::load(&path, threads)
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        Ok(E5Embedder {
            model,
            id: e5_model_id(),
        })
    }
}

/// The id vectors of the installed e5 model are stored under (name and weights' sha256),
/// known without loading the model.
pub fn e5_model_id() -> String {
    use luodi_models::catalog::{find, E5_SMALL, E5_WEIGHTS};
    let sha = find(E5_SMALL)
        .and_then(|m| m.files.iter().find(|f| f.name == E5_WEIGHTS))
        .map_or("unknown", |f| &f.sha256[..8]);
    format!("{E5_SMALL}@{sha}")
}

impl Embedder for E5Embedder {
    fn id(&self) -> &str {
        &self.id
    }
    fn dim(&self) -> usize {
        self.model.dim()
    }
    fn embed_passages(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        Ok(self
            .model
            .embed(texts, luodi_models::e5::EmbedKind::Passage))
    }
    fn embed_query(&self, text: &str) -> Result<Vec<f32>> {
        Ok(self
            .model
            .embed(&[text], luodi_models::e5::EmbedKind::Query)
            .pop()
            .unwrap_or_default())
    }
}
