//! Core types and traits shared by every luodi layer.
//!
//! Documents, chunks and their citation locations; the search request and its hits; and the
//! [`Backend`] trait that a knowledge-base store implements. The embedded store (SQLite +
//! tantivy) and a later PostgreSQL/pgvector store implement the same trait, so the engine and
//! the binaries never learn which one they talk to.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub mod error;
pub use error::{Error, Result};

/// Where in its document a piece of text sits: what a citation points at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// 1-based PDF page.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub page: Option<u32>,
    /// Spreadsheet sheet name.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sheet: Option<String>,
    /// 1-based row (spreadsheet or CSV; the header row is row 1).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub row: Option<u32>,
    /// 1-based paragraph (block) number within the document.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub paragraph: Option<u32>,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(p) = self.page {
            parts.push(format!("page {p}"));
        }
        if let Some(s) = &self.sheet {
            parts.push(format!("sheet {s}"));
        }
        if let Some(r) = self.row {
            parts.push(format!("row {r}"));
        }
        if let Some(p) = self.paragraph {
            parts.push(format!("¶{p}"));
        }
        f.write_str(&parts.join(", "))
    }
}

/// A document as stored: one file, or one record of a JSONL/CSV file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// Unique within a knowledge base: the source path, plus `#record` for records.
    pub key: String,
    /// The file it came from, as given to ingest (relative to the ingest root when possible).
    pub source: String,
    pub title: String,
    /// Modification time, seconds since the Unix epoch.
    pub modified: Option<i64>,
    /// blake3 of the document's extracted text.
    pub content_hash: String,
    /// Free metadata (department, author, record fields, …).
    pub metadata: BTreeMap<String, String>,
}

/// A piece of a document small enough to embed and to cite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// 0-based position of the chunk in its document.
    pub ordinal: u32,
    pub text: String,
    /// Headings above this chunk, outermost first.
    pub heading_path: Vec<String>,
    pub location: Location,
}

/// A source file and the documents extracted from it, ready to be stored.
#[derive(Debug, Clone)]
pub struct SourceUpdate {
    pub source: SourceState,
    pub documents: Vec<(Document, Vec<Chunk>)>,
}

/// What the store remembers about a source file to skip it when it has not changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceState {
    pub path: String,
    pub content_hash: String,
    pub size: u64,
    pub mtime: i64,
}

/// One change to a knowledge base.
#[derive(Debug, Clone)]
pub enum Change {
    /// Insert the source, replacing whatever it held before.
    Upsert(SourceUpdate),
    /// Only the modification time changed (same content): remember it, touch nothing else.
    Touch(SourceState),
    /// Remove the source and everything extracted from it.
    Remove(String),
}

/// A search request.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub text: String,
    pub k: usize,
    /// Metadata equality filters (`department = 财务部`); all must hold.
    pub filters: Vec<(String, String)>,
    /// Only documents modified at or after this time (Unix seconds).
    pub after: Option<i64>,
    /// Only documents modified before this time (Unix seconds).
    pub before: Option<i64>,
    /// Documents (by key) never returned: "everything but these" (what the unanswerable
    /// evaluation asks, and a way to ask again without a document a user rejected).
    pub exclude_docs: Vec<String>,
}

/// A ranked chunk with what a citation needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchHit {
    pub score: f32,
    pub chunk_id: u64,
    pub doc_key: String,
    pub source: String,
    pub title: String,
    pub modified: Option<i64>,
    pub metadata: BTreeMap<String, String>,
    pub chunk: Chunk,
}

/// Counts a user sees in `luodi kb stats`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KbStats {
    pub sources: u64,
    pub failed_sources: u64,
    pub documents: u64,
    pub chunks: u64,
    pub text_bytes: u64,
    pub index_docs: u64,
    pub disk_bytes: u64,
}

/// A knowledge-base store. Implementations keep every [`Backend::apply`] atomic: after a crash
/// at any point, reopening the store yields either the old or the new state of each source,
/// never a mixture, and no duplicated or orphaned chunks.
pub trait Backend: Send + Sync {
    /// The sources stored now, by path.
    fn sources(&self) -> Result<BTreeMap<String, SourceState>>;
    /// Applies a batch of changes atomically per source.
    fn apply(&self, changes: Vec<Change>) -> Result<()>;
    /// Ranked chunks for a query.
    fn search(&self, query: &SearchQuery) -> Result<Vec<SearchHit>>;
    fn stats(&self) -> Result<KbStats>;
}

/// Turns text into unit-length vectors for dense retrieval. The engine stores the vectors of
/// each chunk under [`Embedder::id`], so vectors of different models never meet.
pub trait Embedder: Send + Sync {
    /// The model and its settings (e.g. `multilingual-e5-small-q4@1571fc98`).
    fn id(&self) -> &str;
    fn dim(&self) -> usize;
    /// Vectors of passages (chunks), one per text, in order.
    fn embed_passages(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
    /// The vector of a question.
    fn embed_query(&self, text: &str) -> Result<Vec<f32>>;
}

/// The dot product of two vectors: the cosine of two unit-length ones (what an [`Embedder`]
/// returns). Eight running sums, which the compiler keeps in one SIMD register.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// How a search ranks chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Words and characters (BM25) only.
    Bm25,
    /// Embedding similarity only.
    Dense,
    /// Both, fused; falls back to BM25 where vectors are missing.
    #[default]
    Hybrid,
}

impl std::str::FromStr for SearchMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "bm25" => Ok(SearchMode::Bm25),
            "dense" => Ok(SearchMode::Dense),
            "hybrid" => Ok(SearchMode::Hybrid),
            other => Err(Error::InvalidInput(format!(
                "--mode {other:?}: use bm25, dense or hybrid"
            ))),
        }
    }
}

impl std::fmt::Display for SearchMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SearchMode::Bm25 => "bm25",
            SearchMode::Dense => "dense",
            SearchMode::Hybrid => "hybrid",
        })
    }
}
