//! File readers, one module per format, all returning [`ReadOutput`].

mod docx;
mod html;
mod json;
mod markdown;
mod pdf;
mod table;
mod text;

use std::path::Path;

use crate::{Extracted, ReadError};

/// The formats luodi reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Text,
    Markdown,
    Html,
    Json,
    Jsonl,
    Csv,
    Xlsx,
    Docx,
    Pdf,
}

impl FileKind {
    /// The kind of a file by its extension; `None` for formats luodi does not read.
    pub fn from_path(path: &Path) -> Option<FileKind> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "txt" | "text" | "log" => FileKind::Text,
            "md" | "markdown" => FileKind::Markdown,
            "html" | "htm" | "xhtml" => FileKind::Html,
            "json" => FileKind::Json,
            "jsonl" | "ndjson" => FileKind::Jsonl,
            "csv" | "tsv" => FileKind::Csv,
            "xlsx" | "xlsm" | "xls" | "ods" => FileKind::Xlsx,
            "docx" => FileKind::Docx,
            "pdf" => FileKind::Pdf,
            _ => return None,
        })
    }
}

/// How spreadsheet-like files become documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TableMode {
    /// One document per sheet; every chunk repeats the header row.
    #[default]
    Sheet,
    /// One document per row, fields as `header: value` lines.
    Row,
}

/// Reader options a person may set.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// JSON/JSONL field holding the text (default: the first of text, content, body, answer).
    pub text_field: Option<String>,
    /// JSON/JSONL field holding the record id (default: id, _id).
    pub id_field: Option<String>,
    /// JSON/JSONL field holding the title (default: title, question, name).
    pub title_field: Option<String>,
    pub table_mode: TableMode,
}

/// What a reader got out of a file.
#[derive(Debug, Default)]
pub struct ReadOutput {
    pub documents: Vec<Extracted>,
    /// Problems that did not stop the read (a bad JSONL line, a PDF page without text).
    pub warnings: Vec<String>,
    /// The text encoding detected, for text formats.
    pub encoding: Option<&'static str>,
}

/// Decodes text of unknown encoding, refusing damaged text with a clear reason.
pub(crate) fn decode_text(bytes: &[u8]) -> Result<(String, &'static str), ReadError> {
    let d = luodi_text::decode(bytes).map_err(|e| ReadError::Decode(e.to_string()))?;
    if let Some(m) = d.mojibake {
        return Err(ReadError::Decode(format!("{} ({})", m, d.encoding)));
    }
    Ok((d.text, d.encoding))
}

/// Reads one file's bytes; `path` gives the format (by extension) and the fallback title.
pub fn read_bytes(path: &Path, bytes: &[u8], opts: &ReadOptions) -> Result<ReadOutput, ReadError> {
    let kind = FileKind::from_path(path).ok_or_else(|| {
        ReadError::Unsupported(
            path.extension()
                .map(|e| e.to_string_lossy().into_owned())
                .unwrap_or_default(),
        )
    })?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = match kind {
        FileKind::Text => text::read(bytes)?,
        FileKind::Markdown => markdown::read(bytes)?,
        FileKind::Html => html::read(bytes)?,
        FileKind::Json => json::read_json(bytes, opts)?,
        FileKind::Jsonl => json::read_jsonl(bytes, opts)?,
        FileKind::Csv => {
            let delim = if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("tsv"))
            {
                b'\t'
            } else {
                b','
            };
            table::read_csv(bytes, delim, &stem, opts)?
        }
        FileKind::Xlsx => table::read_workbook(bytes, &stem, opts)?,
        FileKind::Docx => docx::read(bytes)?,
        FileKind::Pdf => pdf::read(bytes)?,
    };
    for d in &mut out.documents {
        if d.title.as_deref().is_none_or(|t| t.trim().is_empty()) {
            d.title = Some(match &d.record {
                Some(r) if out_is_multi(kind) => format!("{stem} #{r}"),
                _ => stem.clone(),
            });
        }
        for b in &mut d.blocks {
            b.text = luodi_text::clean(&b.text);
        }
        d.blocks.retain(|b| !b.text.is_empty());
    }
    Ok(out)
}

fn out_is_multi(kind: FileKind) -> bool {
    matches!(
        kind,
        FileKind::Json | FileKind::Jsonl | FileKind::Csv | FileKind::Xlsx
    )
}

/// Splits plain text into paragraph blocks at blank lines (or at single line breaks when the
/// text has no blank lines and its lines look like paragraphs, as in many Chinese files).
pub(crate) fn paragraphs(text: &str, first_number: u32) -> Vec<crate::Block> {
    let normalized = text.replace("\r\n", "\n");
    let has_blank = normalized.contains("\n\n");
    let parts: Vec<&str> = if has_blank {
        normalized.split("\n\n").collect()
    } else {
        normalized.split('\n').collect()
    };
    let mut n = first_number;
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let b = crate::Block::paragraph(
                p,
                luodi_core::Location {
                    paragraph: Some(n),
                    ..Default::default()
                },
            );
            n += 1;
            b
        })
        .collect()
}
