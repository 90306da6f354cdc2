//! Rows of an import (glossary entries, FAQs): CSV with a header, or JSON lines. Both come out
//! as one shape — (row number, the row's fields as a JSON object, or why the row could not be
//! read) — and each kind maps the fields to its own type, so a bad row is reported by its
//! number and the others go in.

use luodi_core::{Error, Result};
use serde_json::{Map, Value};

/// A row that could not be imported.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportProblem {
    /// 1-based (the header of a CSV is row 1).
    pub row: usize,
    pub reason: String,
}

/// What an import did: rows added, and the rows left out with why.
#[derive(Debug, Clone, serde::Serialize, Default)]
pub struct ImportReport {
    pub added: usize,
    pub problems: Vec<ImportProblem>,
    /// [`Parsed::unread_columns`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unread_columns: Vec<String>,
}

/// How an import is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    /// By a file's extension: `.jsonl`/`.json` are JSON lines, anything else CSV.
    pub fn of_path(path: &std::path::Path) -> Format {
        if path
            .extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("jsonl") || x.eq_ignore_ascii_case("json"))
        {
            Format::Jsonl
        } else {
            Format::Csv
        }
    }

    /// `csv`, `jsonl` (or `json`, `ndjson`), or a content type naming one of them.
    pub fn parse(s: &str) -> Option<Format> {
        let s = s
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match s.as_str() {
            "csv" | "text/csv" => Some(Format::Csv),
            "jsonl"
            | "json"
            | "ndjson"
            | "application/jsonl"
            | "application/x-ndjson"
            | "application/x-jsonlines"
            | "application/json" => Some(Format::Jsonl),
            _ => None,
        }
    }
}

/// One row: its number (1-based; a CSV's header is row 1) and its fields.
pub type Row = (usize, std::result::Result<Map<String, Value>, String>);

/// Reads the rows of `text`, and the columns a CSV header names (none for JSON lines). A CSV
/// header must name one column of each group in `required` (alternatives: `&["question",
/// "title"]`); `origin` names the input in that error.
pub fn read(
    text: &str,
    format: Format,
    origin: &str,
    required: &[&[&str]],
) -> Result<(Vec<Row>, Vec<String>)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = Vec::new();
    if format == Format::Jsonl {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let row = match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(m)) => Ok(m),
                Ok(_) => Err("not a JSON object".to_owned()),
                Err(e) => Err(format!("not JSON: {e}")),
            };
            rows.push((i + 1, row));
        }
        return Ok((rows, Vec::new()));
    }
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = r
        .headers()
        .map_err(|e| Error::InvalidInput(format!("{origin}: {e}")))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    for group in required {
        if !group.iter().any(|c| headers.iter().any(|h| h == c)) {
            return Err(Error::InvalidInput(format!(
                "{origin}: the header must name the column {} (it names {})",
                group.join(" or "),
                if headers.is_empty() {
                    "none".to_owned()
                } else {
                    headers.join(", ")
                }
            )));
        }
    }
    for (i, rec) in r.records().enumerate() {
        let row = match rec {
            Ok(rec) => Ok(headers
                .iter()
                .zip(rec.iter())
                .map(|(h, v)| (h.clone(), Value::String(v.trim().to_owned())))
                .collect()),
            Err(e) => Err(e.to_string()),
        };
        rows.push((i + 2, row));
    }
    Ok((rows, headers))
}

/// What an import makes of a row.
pub trait FromRow: Sized {
    /// The columns a CSV header must name (one of each group).
    const REQUIRED: &'static [&'static [&'static str]];
    /// Every column the import reads (the required ones included).
    const COLUMNS: &'static [&'static str];
    /// The value of one row's fields, or why the row cannot be imported.
    fn from_row(row: &Map<String, Value>) -> std::result::Result<Self, String>;
}

/// Rows read as `T`, and what of the input they leave unread.
pub struct Parsed<T> {
    /// (row number, value or why not).
    pub rows: Vec<(usize, std::result::Result<T, String>)>,
    /// Columns of a CSV header the import does not read, as written (a misspelt `forms` would
    /// otherwise show only as rows without forms); none for JSON lines, whose objects often
    /// carry fields of their own.
    pub unread_columns: Vec<String>,
}

/// Reads `text` (an upload) as rows of `T`; `origin` names it in errors.
pub fn parse<T: FromRow>(text: &str, format: Format, origin: &str) -> Result<Parsed<T>> {
    let (rows, header) = read(text, format, origin, T::REQUIRED)?;
    Ok(Parsed {
        rows: rows
            .into_iter()
            .map(|(n, r)| (n, r.and_then(|m| T::from_row(&m))))
            .collect(),
        unread_columns: header
            .into_iter()
            .filter(|h| !h.is_empty() && !T::COLUMNS.contains(&h.as_str()))
            .collect(),
    })
}

/// Reads a file as rows of `T`, its format by its extension.
pub fn parse_file<T: FromRow>(path: &std::path::Path) -> Result<Parsed<T>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse(&text, Format::of_path(path), &path.display().to_string())
}

/// The note an import prints about [`Parsed::unread_columns`]: which were left out and which
/// it reads.
pub fn unread_note<T: FromRow>(unread: &[String]) -> Option<String> {
    (!unread.is_empty()).then(|| {
        format!(
            "column{} {} not read (the columns read are {})",
            if unread.len() == 1 { "" } else { "s" },
            unread.join(", "),
            T::COLUMNS.join(", ")
        )
    })
}

/// The first of `names` the row holds as non-empty text.
pub fn text(row: &Map<String, Value>, names: &[&str]) -> Option<String> {
    names
        .iter()
        .filter_map(|n| row.get(*n)?.as_str())
        .map(str::trim)
        .find(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A list field: a JSON array of strings, or text split on `|`.
pub fn list(row: &Map<String, Value>, name: &str) -> std::result::Result<Vec<String>, String> {
    match row.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s
            .split('|')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(|s| s.trim().to_owned())
                    .ok_or_else(|| format!("{name}: {v} is not text"))
            })
            .collect(),
        Some(v) => Err(format!("{name}: {v} is neither text nor a list")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_json_lines_read_alike_and_bad_rows_keep_their_numbers() {
        let csv = "question,answer\n年假几天,五天\n\"坏,行\n";
        let (rows, _) = read(csv, Format::Csv, "f.csv", &[&["question"], &["answer"]]).unwrap();
        assert_eq!(rows[0].0, 2);
        assert_eq!(
            text(rows[0].1.as_ref().unwrap(), &["question"]).as_deref(),
            Some("年假几天")
        );
        let jl = "{\"question\":\"年假几天\",\"answer\":\"五天\"}\n\n[1]\n{oops\n";
        let (rows, _) = read(jl, Format::Jsonl, "f.jsonl", &[]).unwrap();
        assert_eq!(rows.len(), 3);
        assert!(rows[0].1.is_ok());
        assert_eq!((rows[1].0, rows[1].1.is_err()), (3, true));
        assert_eq!((rows[2].0, rows[2].1.is_err()), (4, true));
        let e = read("q,a\n", Format::Csv, "f.csv", &[&["question", "title"]]).unwrap_err();
        assert!(e.to_string().contains("f.csv") && e.to_string().contains("question or title"));
    }

    #[test]
    fn lists_come_from_arrays_or_pipes() {
        let m: Map<String, Value> =
            serde_json::from_str(r#"{"a":"x| y |","b":["p","q"],"c":3}"#).unwrap();
        assert_eq!(list(&m, "a").unwrap(), vec!["x", "y"]);
        assert_eq!(list(&m, "b").unwrap(), vec!["p", "q"]);
        assert!(list(&m, "c").is_err());
        assert!(list(&m, "d").unwrap().is_empty());
    }
}
