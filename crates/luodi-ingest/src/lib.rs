//! Ingestion: readers that turn files into structured text, and the chunker that cuts that
//! text into citable pieces.
//!
//! A reader returns [`Extracted`] documents made of [`Block`]s (headings, paragraphs, table
//! rows with their header) and each block knows its [`Location`](luodi_core::Location) (page,
//! sheet and row, paragraph). Keeping structure until the chunker runs is what lets a chunk
//! carry its heading path and a table row carry its header, so citations point at something
//! a person can find. Readers never panic on bad input: a file that cannot be read is a
//! [`ReadError`] naming the reason, and a partly bad file (one broken JSONL line, a PDF
//! without a text layer) yields warnings beside what could be read.

pub mod chunk;
pub mod readers;

pub use chunk::{chunk_blocks, ChunkConfig};
pub use readers::{read_bytes, FileKind, ReadOptions, ReadOutput, TableMode};

use std::collections::BTreeMap;

use luodi_core::Location;

/// The kind of a block of extracted text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockKind {
    /// A heading of level 1 (top) to 6.
    Heading(u8),
    Paragraph,
    /// One table row, rendered as a Markdown row; `header` is the Markdown header and
    /// separator lines it belongs under.
    TableRow {
        header: String,
    },
}

/// A unit of extracted text with its place in the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub kind: BlockKind,
    pub text: String,
    pub location: Location,
}

impl Block {
    pub fn paragraph(text: impl Into<String>, location: Location) -> Self {
        Block {
            kind: BlockKind::Paragraph,
            text: text.into(),
            location,
        }
    }
}

/// One document extracted from a file (a file may hold several: JSONL records, CSV rows).
#[derive(Debug, Clone, Default)]
pub struct Extracted {
    /// Record id within the file (JSONL id field, CSV row); `None` for whole-file documents.
    pub record: Option<String>,
    pub title: Option<String>,
    pub blocks: Vec<Block>,
    pub metadata: BTreeMap<String, String>,
}

impl Extracted {
    /// The document's plain text (blocks joined by newlines), used for hashing.
    pub fn plain_text(&self) -> String {
        let mut s = String::new();
        for b in &self.blocks {
            if !s.is_empty() {
                s.push('\n');
            }
            s.push_str(&b.text);
        }
        s
    }
}

/// Why a file could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("unsupported file type {0:?}")]
    Unsupported(String),
    #[error("cannot decode text: {0}")]
    Decode(String),
    #[error("damaged {kind} file: {reason}")]
    Parse { kind: &'static str, reason: String },
}

/// blake3 of a text, as lowercase hex.
pub fn content_hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}
