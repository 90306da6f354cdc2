//! JSON (an object or an array of objects) and JSON Lines: each object is a record document.
//! The text, id and title fields are chosen by option or found among common names; other
//! scalar fields become metadata. A bad JSONL line is a warning naming the line, not a failure.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::readers::{decode_text, paragraphs, ReadOptions, ReadOutput};
use crate::{Extracted, ReadError};

const TEXT_FIELDS: &[&str] = &["text", "content", "body", "answer", "passage", "contents"];
const ID_FIELDS: &[&str] = &["id", "_id", "doc_id", "docid"];
const TITLE_FIELDS: &[&str] = &["title", "question", "name", "subject"];

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn pick<'a>(
    obj: &'a Map<String, Value>,
    chosen: Option<&str>,
    defaults: &[&str],
) -> Option<(&'a str, &'a Value)> {
    match chosen {
        Some(f) => obj.get_key_value(f).map(|(k, v)| (k.as_str(), v)),
        None => defaults
            .iter()
            .find_map(|f| obj.get_key_value(*f).map(|(k, v)| (k.as_str(), v))),
    }
}

fn record(
    obj: &Map<String, Value>,
    opts: &ReadOptions,
    fallback_id: usize,
) -> Result<Extracted, String> {
    let (text_key, text) = pick(obj, opts.text_field.as_deref(), TEXT_FIELDS).ok_or_else(|| {
        match &opts.text_field {
            Some(f) => format!("no field {f:?}"),
            None => format!(
                "no text field (looked for {}; choose one with --text-field)",
                TEXT_FIELDS.join(", ")
            ),
        }
    })?;
    let text = match text {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().filter_map(scalar).collect::<Vec<_>>().join("\n"),
        other => scalar(other).ok_or_else(|| format!("field {text_key:?} is not text"))?,
    };
    let id = pick(obj, opts.id_field.as_deref(), ID_FIELDS).and_then(|(_, v)| scalar(v));
    let title = pick(obj, opts.title_field.as_deref(), TITLE_FIELDS);
    let title_key = title.map(|(k, _)| k.to_owned());
    let title = title.and_then(|(_, v)| scalar(v));
    let id_key = pick(obj, opts.id_field.as_deref(), ID_FIELDS).map(|(k, _)| k.to_owned());
    let mut metadata = BTreeMap::new();
    for (k, v) in obj {
        if k == text_key || Some(k) == title_key.as_ref() || Some(k) == id_key.as_ref() {
            continue;
        }
        if let Some(s) = scalar(v) {
            if s.chars().count() <= 200 {
                metadata.insert(k.clone(), s);
            }
        }
    }
    Ok(Extracted {
        record: Some(id.unwrap_or_else(|| fallback_id.to_string())),
        title,
        blocks: paragraphs(&text, 1),
        metadata,
    })
}

pub(crate) fn read_json(bytes: &[u8], opts: &ReadOptions) -> Result<ReadOutput, ReadError> {
    let (text, enc) = decode_text(bytes)?;
    let value: Value = serde_json::from_str(&text).map_err(|e| ReadError::Parse {
        kind: "JSON",
        reason: format!("line {}, column {}: {e}", e.line(), e.column()),
    })?;
    let items: Vec<Value> = match value {
        Value::Array(a) => a,
        Value::Object(_) => vec![value],
        _ => {
            return Err(ReadError::Parse {
                kind: "JSON",
                reason: "expected an object or an array of objects".into(),
            })
        }
    };
    let mut out = ReadOutput {
        encoding: Some(enc),
        ..Default::default()
    };
    for (i, item) in items.iter().enumerate() {
        match item
            .as_object()
            .ok_or_else(|| "not an object".to_string())
            .and_then(|o| record(o, opts, i + 1))
        {
            Ok(d) => out.documents.push(d),
            Err(e) => out.warnings.push(format!("item {}: {e}", i + 1)),
        }
    }
    if out.documents.is_empty() && !out.warnings.is_empty() {
        return Err(ReadError::Parse {
            kind: "JSON",
            reason: out.warnings.swap_remove(0),
        });
    }
    Ok(out)
}

pub(crate) fn read_jsonl(bytes: &[u8], opts: &ReadOptions) -> Result<ReadOutput, ReadError> {
    let (text, enc) = decode_text(bytes)?;
    let mut out = ReadOutput {
        encoding: Some(enc),
        ..Default::default()
    };
    let mut lines = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        lines += 1;
        let parsed = serde_json::from_str::<Value>(line)
            .map_err(|e| e.to_string())
            .and_then(|v| match v {
                Value::Object(o) => record(&o, opts, i + 1),
                _ => Err("not a JSON object".into()),
            });
        match parsed {
            Ok(d) => out.documents.push(d),
            Err(e) => out.warnings.push(format!("line {}: {e}", i + 1)),
        }
    }
    if out.documents.is_empty() && lines > 0 {
        return Err(ReadError::Parse {
            kind: "JSONL",
            reason: out.warnings.first().cloned().unwrap_or_default(),
        });
    }
    Ok(out)
}
