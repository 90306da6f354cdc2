//! Knowledge-base storage: the embedded backend (SQLite for metadata and text, tantivy for
//! BM25 with a Chinese analyzer), behind [`luodi_core::Backend`].
//!
//! SQLite is the source of truth; the tantivy index is derived from it and can always be
//! rebuilt. Every [`Backend::apply`](luodi_core::Backend::apply) first commits the SQLite
//! transaction together with a journal row per touched source, then updates and commits the
//! index, then clears the journal. A process killed between the two commits leaves journal
//! rows, and the next open replays them (delete the source's index entries, re-add what
//! SQLite holds), so the two stores always agree and no chunk is duplicated or orphaned.

pub mod analyzer;
mod schema;
mod store;

pub use analyzer::{Analyzer, AnalyzerConfig};
pub use store::{
    passage_text, vector_from_bytes, vector_to_bytes, Bm25Params, EmbeddedStore, Failure,
    StoreOptions, VectorStatus, SCHEMA_VERSION,
};
