//! Chunk vectors for dense retrieval.
//!
//! Vectors live in the store's SQLite (`vectors`, one row per chunk, tagged with the model
//! that made it), so they are deleted with their chunk by the same transaction and a killed
//! embedding run resumes with the chunks still missing one. Search is exact: the vectors of
//! the model are loaded once into one contiguous matrix and scanned with a dot product
//! (unit-length vectors, so it is the cosine). At knowledge-base sizes of up to a few hundred
//! thousand chunks this is a few milliseconds on two cores and needs no approximate index.

use luodi_core::{dot, Error, Result};
use rusqlite::params;

use super::{sql_err, EmbeddedStore};

/// All vectors of one model, row-major.
pub(super) struct DenseMatrix {
    model: String,
    dim: usize,
    ids: Vec<u64>,
    data: Vec<f32>,
}

/// How far the vectors of a model cover the chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct VectorStatus {
    pub chunks: u64,
    pub with_vector: u64,
}

impl VectorStatus {
    pub fn missing(&self) -> u64 {
        self.chunks.saturating_sub(self.with_vector)
    }
}

/// A vector as stored: little-endian f32s.
pub fn vector_to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The inverse of [`vector_to_bytes`] (a trailing partial float is ignored).
pub fn vector_from_bytes(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn poisoned<T>(_: T) -> Error {
    Error::internal("vectors", "lock poisoned")
}

impl EmbeddedStore {
    /// Chunks with and without a vector of `model`.
    pub fn vector_status(&self, model: &str) -> Result<VectorStatus> {
        let conn = self.conn()?;
        let chunks: i64 = conn
            .query_row("SELECT COUNT(*) FROM chunks", [], |r| r.get(0))
            .map_err(sql_err("count chunks"))?;
        let with: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM vectors WHERE model = ?1",
                [model],
                |r| r.get(0),
            )
            .map_err(sql_err("count vectors"))?;
        Ok(VectorStatus {
            chunks: chunks as u64,
            with_vector: with as u64,
        })
    }

    /// The first `limit` chunks (in id order), each as the text to embed: title and heading
    /// path (when they add something) before the chunk text.
    pub fn passages(&self, limit: usize) -> Result<Vec<(u64, String)>> {
        self.query_passages(
            "SELECT c.id, d.title, c.heading_path, c.text FROM chunks c
             JOIN documents d ON d.id = c.document_id ORDER BY c.id LIMIT ?1",
            params![i64::try_from(limit).unwrap_or(i64::MAX)],
            "passages",
        )
    }

    /// Up to `limit` chunks without a vector of `model`, in id order, as [`Self::passages`].
    pub fn chunks_without_vector(&self, model: &str, limit: usize) -> Result<Vec<(u64, String)>> {
        self.query_passages(
            "SELECT c.id, d.title, c.heading_path, c.text FROM chunks c
             JOIN documents d ON d.id = c.document_id
             LEFT JOIN vectors v ON v.chunk_id = c.id AND v.model = ?1
             WHERE v.chunk_id IS NULL ORDER BY c.id LIMIT ?2",
            params![model, i64::try_from(limit).unwrap_or(i64::MAX)],
            "pending vectors",
        )
    }

    /// Runs `sql` (selecting id, title, heading path, text) and builds each row's passage text.
    fn query_passages(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
        what: &'static str,
    ) -> Result<Vec<(u64, String)>> {
        let conn = self.conn()?;
        let mut st = conn.prepare_cached(sql).map_err(sql_err(what))?;
        let rows = st
            .query_map(args, |r| {
                let id: i64 = r.get(0)?;
                let title: String = r.get(1)?;
                let headings: String = r.get(2)?;
                let text: String = r.get(3)?;
                Ok((id as u64, title, headings, text))
            })
            .map_err(sql_err(what))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, title, headings, text) = row.map_err(sql_err(what))?;
            let headings: Vec<String> = serde_json::from_str(&headings).unwrap_or_default();
            out.push((id, passage_text(&title, &headings, &text)));
        }
        Ok(out)
    }

    /// Stores vectors of `model` for chunks (replacing another model's vector of a chunk).
    /// Chunks deleted meanwhile are skipped.
    pub fn put_vectors(&self, model: &str, vectors: &[(u64, Vec<f32>)]) -> Result<()> {
        if vectors.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn()?;
        let tx = conn.transaction().map_err(sql_err("begin"))?;
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO vectors(chunk_id, model, data)
                     SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM chunks WHERE id = ?1)",
                )
                .map_err(sql_err("prepare"))?;
            for (id, v) in vectors {
                st.execute(params![*id as i64, model, vector_to_bytes(v)])
                    .map_err(sql_err("store vector"))?;
            }
        }
        tx.commit().map_err(sql_err("commit"))?;
        self.forget_dense();
        Ok(())
    }

    /// Drops the in-memory matrix; the next dense search reloads it.
    pub(super) fn forget_dense(&self) {
        if let Ok(mut m) = self.dense.write() {
            *m = None;
        }
    }

    fn load_dense(&self, model: &str) -> Result<DenseMatrix> {
        let conn = self.conn()?;
        let mut st = conn
            .prepare("SELECT chunk_id, data FROM vectors WHERE model = ?1 ORDER BY chunk_id")
            .map_err(sql_err("load vectors"))?;
        let mut rows = st.query([model]).map_err(sql_err("load vectors"))?;
        let mut m = DenseMatrix {
            model: model.to_owned(),
            dim: 0,
            ids: Vec::new(),
            data: Vec::new(),
        };
        while let Some(r) = rows.next().map_err(sql_err("load vectors"))? {
            let id: i64 = r.get(0).map_err(sql_err("load vectors"))?;
            let blob: Vec<u8> = r.get(1).map_err(sql_err("load vectors"))?;
            let v = vector_from_bytes(&blob);
            if m.dim == 0 {
                m.dim = v.len();
            }
            if v.len() != m.dim || v.is_empty() {
                return Err(Error::Corrupt {
                    path: self.dir.join("kb.sqlite"),
                    reason: format!(
                        "vector of chunk {id} has {} dimensions, not {}",
                        v.len(),
                        m.dim
                    ),
                });
            }
            m.ids.push(id as u64);
            m.data.extend_from_slice(&v);
        }
        Ok(m)
    }

    /// Runs `f` on the in-memory matrix of `model`, loading it first if another model's (or
    /// none) is there. `None` when a write dropped it in between.
    fn with_dense<T>(&self, model: &str, f: impl FnOnce(&DenseMatrix) -> T) -> Result<Option<T>> {
        let loaded = self
            .dense
            .read()
            .map_err(poisoned)?
            .as_ref()
            .is_some_and(|m| m.model == model);
        if !loaded {
            let m = self.load_dense(model)?;
            *self.dense.write().map_err(poisoned)? = Some(m);
        }
        let guard = self.dense.read().map_err(poisoned)?;
        Ok(guard.as_ref().filter(|m| m.model == model).map(f))
    }

    /// True when some chunk has a vector of `model` (answered from the matrix dense search
    /// uses, so asking costs nothing once it is loaded).
    pub fn has_vectors(&self, model: &str) -> Result<bool> {
        Ok(self
            .with_dense(model, |m| !m.ids.is_empty())?
            .unwrap_or(false))
    }

    /// Cosine similarity of `query` to each of `ids` (None for a chunk without a vector).
    pub fn dense_scores(
        &self,
        model: &str,
        query: &[f32],
        ids: &[u64],
    ) -> Result<Vec<Option<f32>>> {
        let scores = self.with_dense(model, |m| {
            if query.len() != m.dim {
                return vec![None; ids.len()];
            }
            // rows are in chunk-id order
            ids.iter()
                .map(|id| {
                    m.ids
                        .binary_search(id)
                        .ok()
                        .map(|row| dot(&m.data[row * m.dim..(row + 1) * m.dim], query))
                })
                .collect()
        })?;
        Ok(scores.unwrap_or_else(|| vec![None; ids.len()]))
    }

    /// The `k` chunks nearest to `query` among those with a vector of `model`, best first,
    /// with their cosine similarity.
    pub fn dense_search(&self, model: &str, query: &[f32], k: usize) -> Result<Vec<(u64, f32)>> {
        self.with_dense(model, |m| nearest(m, query, k))?
            .unwrap_or_else(|| Ok(Vec::new()))
    }
}

/// The `k` rows of `m` nearest to `query`, best first.
fn nearest(m: &DenseMatrix, query: &[f32], k: usize) -> Result<Vec<(u64, f32)>> {
    if m.ids.is_empty() || k == 0 {
        return Ok(Vec::new());
    }
    if query.len() != m.dim {
        return Err(Error::InvalidInput(format!(
            "query vector has {} dimensions, the stored vectors {}",
            query.len(),
            m.dim
        )));
    }
    // a bounded min-heap of the best k
    let mut heap: std::collections::BinaryHeap<std::cmp::Reverse<(OrdF32, u64)>> =
        std::collections::BinaryHeap::with_capacity(k + 1);
    for (row, id) in m.data.chunks_exact(m.dim).zip(&m.ids) {
        let s = dot(row, query);
        if heap.len() < k {
            heap.push(std::cmp::Reverse((OrdF32(s), *id)));
        } else if heap.peek().is_some_and(|w| s > w.0 .0 .0) {
            heap.pop();
            heap.push(std::cmp::Reverse((OrdF32(s), *id)));
        }
    }
    let mut out: Vec<(u64, f32)> = heap.into_iter().map(|r| (r.0 .1, r.0 .0 .0)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(out)
}

#[derive(Clone, Copy, PartialEq)]
struct OrdF32(f32);
impl Eq for OrdF32 {}
impl PartialOrd for OrdF32 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdF32 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The text a chunk is embedded as: its title and headings give a chunk cut from the middle
/// of a document the subject its own text may not name.
pub fn passage_text(title: &str, headings: &[String], text: &str) -> String {
    let mut out = String::new();
    let mut push = |s: &str| {
        let s = s.trim();
        if !s.is_empty() && !text.starts_with(s) && !out.contains(s) {
            out.push_str(s);
            out.push('\n');
        }
    };
    push(title);
    for h in headings {
        push(h);
    }
    out.push_str(text);
    out
}
