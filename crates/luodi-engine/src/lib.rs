//! The luodi engine: knowledge bases as a library, with no HTTP or CLI code in it.
//!
//! [`Home`] is a data directory (`$LUODI_HOME`): a registry of knowledge bases in
//! `luodi.sqlite` and one store per knowledge base under `kb/<name>/`. A [`Kb`] ingests folders
//! incrementally ([`ingest`]), searches, and exports/imports itself ([`backup`]). The answering
//! pipeline (retrieval fusion, evidence selection, grounded generation) grows here too; the
//! server and the CLI only translate their inputs into calls on this crate.

pub mod access;
pub mod answer;
pub mod backup;
pub mod context;
pub mod conversation;
pub mod faq;
pub mod glossary;
pub mod home;
pub mod ingest;
pub mod matching;
pub mod retrieve;
pub mod rows;
pub mod suggest;
pub mod yes_no;

pub use access::{AuditEntry, Feedback, Job, KeyInfo, KeyRejection, NewKey, Scope};
pub use answer::{Answer, AnswerFormat, AskOptions, Choice, Evidence, Prepared, Signals};
pub use context::PastTurn;
pub use conversation::now_secs;
pub use conversation::{Conversation, ConversationInfo, Turn};
pub use glossary::{Entry, EntryKind, Expansion, Glossary};
pub use home::{Home, Kb, KbConfig, KbInfo};
pub use ingest::{IngestOptions, IngestReport, NoProgress, Progress};
pub use luodi_core::{Error, Result};
pub use retrieve::{e5_model_id, E5Embedder, EmbedCache, EmbedReport, Fusion, Ranked};
