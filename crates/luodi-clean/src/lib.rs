//! Corpus engineering: raw dumps in, a clean corpus out, with a report of what every step did
//! and why each dropped document was dropped.
//!
//! A [`recipe::Recipe`] is an ordered list of steps. Steps are of two kinds behind two traits:
//! [`DocStep`]s look at one document at a time (decode repair, normalization, 繁简, language
//! and quality filters, chunking, token counts) and run in parallel over a batch;
//! [`CorpusStep`]s see the whole batch in input order with state that outlives it (exact and
//! near-duplicate removal against everything kept before, in this run and earlier ones). The
//! [`run::Runner`] streams documents from files, folders or standard input in batches, so
//! memory stays flat whatever the input size, writes every batch whole (outputs, then the
//! duplicate stores, then a checkpoint renamed into place), and resumes after a kill from the
//! last checkpoint without writing a record twice.

pub mod input;
pub mod parquet_out;
pub mod recipe;
pub mod report;
pub mod run;
pub mod steps;
pub mod store;

use serde::{Deserialize, Serialize};

/// One document on its way through a recipe.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Doc {
    pub id: String,
    /// Where it came from: a file path, `path#record`, or `stdin:LINE`.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub text: String,
    /// Fields of a JSON input record other than id, title and text, passed through.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub meta: serde_json::Map<String, serde_json::Value>,
    /// What each step changed, in order (`normalize: 3 characters`, `script: → simplified`).
    #[serde(default)]
    pub provenance: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<usize>,
}

/// What a step decided about a document.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Keep,
    /// Dropped: a short reason code (`too_short`, `near_duplicate`) and the particulars.
    Drop {
        reason: String,
        detail: String,
    },
}

impl Verdict {
    pub fn drop(reason: &str, detail: impl Into<String>) -> Verdict {
        Verdict::Drop {
            reason: reason.to_owned(),
            detail: detail.into(),
        }
    }
}

/// A step that decides on one document at a time (run in parallel).
pub trait DocStep: Send + Sync {
    fn name(&self) -> &str;
    fn apply(&self, doc: &mut Doc) -> Verdict;
}

/// A step that sees each batch whole, in input order, with state that outlives the batch.
pub trait CorpusStep: Send {
    fn name(&self) -> &str;
    /// Decides on the documents of a batch still kept (`docs[i]` with `verdicts[i] == Keep`);
    /// sets the verdicts of those it drops.
    fn apply_batch(&mut self, docs: &mut [Doc], verdicts: &mut [Verdict]);
    /// Makes the state of everything decided so far durable; returns its size marks (what a
    /// checkpoint records, so a resumed run can cut the state back to them).
    fn commit(&mut self) -> std::io::Result<Vec<u64>>;
    /// Cuts the state back to marks a checkpoint recorded (on resume), and loads it.
    fn restore(&mut self, marks: &[u64]) -> std::io::Result<()>;
    /// Duplicate cluster sizes (representative → documents it stands for), for the report.
    fn clusters(&self) -> Vec<u32> {
        Vec::new()
    }
}

/// A step of either kind, as a recipe lists them.
pub enum Step {
    Doc(Box<dyn DocStep>),
    Corpus(Box<dyn CorpusStep>),
}

impl Step {
    pub fn name(&self) -> &str {
        match self {
            Step::Doc(s) => s.name(),
            Step::Corpus(s) => s.name(),
        }
    }
}

/// Errors of a clean run that stop it (a bad recipe, an unwritable output).
#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    #[error("{0}")]
    Recipe(String),
    #[error("{path}: {source}{}", if source.raw_os_error() == Some(28) { " — free some space and run the same command again: the run resumes from its last checkpoint" } else { "" })]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

impl CleanError {
    pub fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        CleanError::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, CleanError>;
