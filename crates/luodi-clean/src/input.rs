//! Inputs, streamed: files and folders (JSON lines streamed line by line; text files decoded
//! with encoding detection; HTML, office files and PDF through the knowledge base's readers)
//! and JSON lines on standard input. Anything unreadable becomes a reject with its reason;
//! the run goes on.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::Doc;

/// Where documents come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Path(PathBuf),
    /// JSON lines on standard input.
    Stdin,
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::Path(p) => p.display().to_string(),
            Source::Stdin => "-".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct InputOptions {
    /// JSON field with the text (default: text, content, body).
    pub text_field: Option<String>,
    /// JSON field with the id (default: id, _id).
    pub id_field: Option<String>,
    /// JSON field with the title (default: title).
    pub title_field: Option<String>,
    /// A JSON line longer than this is rejected without being held whole.
    pub max_record_bytes: usize,
    /// A file (other than JSON lines) larger than this is rejected unread.
    pub max_file_bytes: u64,
}

impl Default for InputOptions {
    fn default() -> Self {
        InputOptions {
            text_field: None,
            id_field: None,
            title_field: None,
            max_record_bytes: 64 << 20,
            max_file_bytes: 256 << 20,
        }
    }
}

/// A document that could not be read, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reject {
    pub id: String,
    pub source: String,
    pub step: String,
    pub reason: String,
    pub detail: String,
    pub chars: usize,
    pub preview: String,
}

impl Reject {
    pub fn input(source: &str, reason: &str, detail: impl Into<String>) -> Reject {
        Reject {
            id: source.to_owned(),
            source: source.to_owned(),
            step: "input".into(),
            reason: reason.into(),
            detail: detail.into(),
            chars: 0,
            preview: String::new(),
        }
    }
}

pub enum Item {
    Doc(Doc),
    Reject(Reject),
}

/// Every file to read, in a stable order (folders walked, sorted, hidden files skipped).
pub fn expand(sources: &[Source]) -> Vec<Result<Source, Box<Reject>>> {
    let mut out = Vec::new();
    for s in sources {
        match s {
            Source::Stdin => out.push(Ok(Source::Stdin)),
            Source::Path(p) if p.is_dir() => {
                let mut files: Vec<PathBuf> = Vec::new();
                for e in walkdir::WalkDir::new(p)
                    .sort_by_file_name()
                    .into_iter()
                    .filter_entry(|e| {
                        e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.')
                    })
                {
                    match e {
                        Ok(e) if e.file_type().is_file() => files.push(e.into_path()),
                        Ok(_) => {}
                        Err(err) => {
                            let path = err.path().map_or_else(
                                || p.display().to_string(),
                                |x| x.display().to_string(),
                            );
                            out.push(Err(Box::new(Reject::input(
                                &path,
                                "unreadable",
                                err.to_string(),
                            ))));
                        }
                    }
                }
                out.extend(files.into_iter().map(|f| Ok(Source::Path(f))));
            }
            Source::Path(p) if p.is_file() => out.push(Ok(Source::Path(p.clone()))),
            Source::Path(p) => out.push(Err(Box::new(Reject::input(
                &p.display().to_string(),
                "unreadable",
                "no such file or folder",
            )))),
        }
    }
    out
}

fn ext(p: &Path) -> String {
    p.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The documents of every source, one at a time.
pub struct Inputs {
    files: VecDeque<Result<Source, Box<Reject>>>,
    lines: Option<(String, Box<dyn BufRead>, u64)>,
    pending: VecDeque<Item>,
    opts: InputOptions,
}

impl Inputs {
    pub fn new(sources: &[Source], opts: InputOptions) -> Inputs {
        Inputs {
            files: expand(sources).into(),
            lines: None,
            pending: VecDeque::new(),
            opts,
        }
    }

    /// Reads one line of at most `max` bytes; `Ok(None)` at the end, `Err(len)` for a longer
    /// line (skipped without being held whole).
    fn read_line(
        r: &mut dyn BufRead,
        max: usize,
        buf: &mut Vec<u8>,
    ) -> std::io::Result<Option<Result<(), usize>>> {
        buf.clear();
        let mut total = 0usize;
        let mut too_long = false;
        loop {
            let chunk = r.fill_buf()?;
            if chunk.is_empty() {
                return Ok(if total == 0 {
                    None
                } else if too_long {
                    Some(Err(total))
                } else {
                    Some(Ok(()))
                });
            }
            let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            total += take;
            if !too_long {
                if buf.len() + take > max {
                    too_long = true;
                    buf.clear();
                } else {
                    buf.extend_from_slice(&chunk[..take]);
                }
            }
            r.consume(take);
            if done {
                return Ok(Some(if too_long { Err(total) } else { Ok(()) }));
            }
        }
    }

    fn record(&self, source: &str, n: u64, v: Value) -> Item {
        let at = format!("{source}:{n}");
        let Value::Object(mut obj) = v else {
            return Item::Reject(Reject::input(&at, "bad_record", "not a JSON object"));
        };
        let take_str = |obj: &mut Map<String, Value>, named: &Option<String>, defaults: &[&str]| {
            let keys: Vec<String> = match named {
                Some(k) => vec![k.clone()],
                None => defaults.iter().map(|s| s.to_string()).collect(),
            };
            for k in keys {
                match obj.get(&k) {
                    Some(Value::String(_)) => {
                        if let Some(Value::String(s)) = obj.remove(&k) {
                            return Some(s);
                        }
                    }
                    Some(Value::Number(n)) => {
                        let s = n.to_string();
                        obj.remove(&k);
                        return Some(s);
                    }
                    _ => {}
                }
            }
            None
        };
        let Some(text) = take_str(
            &mut obj,
            &self.opts.text_field,
            &["text", "content", "body"],
        ) else {
            let want = self
                .opts
                .text_field
                .clone()
                .unwrap_or_else(|| "text, content or body".into());
            return Item::Reject(Reject::input(
                &at,
                "no_text",
                format!("no string field {want}"),
            ));
        };
        let id =
            take_str(&mut obj, &self.opts.id_field, &["id", "_id"]).unwrap_or_else(|| at.clone());
        let title = take_str(&mut obj, &self.opts.title_field, &["title"]);
        // what earlier runs wrote (provenance, chunks, tokens) is recomputed, not carried
        obj.remove("provenance");
        obj.remove("chunks");
        obj.remove("tokens");
        obj.remove("source");
        let meta = match obj.remove("meta") {
            Some(Value::Object(m)) => {
                let mut m = m;
                m.extend(obj);
                m
            }
            _ => obj,
        };
        Item::Doc(Doc {
            id,
            source: at,
            title,
            text,
            meta,
            ..Doc::default()
        })
    }

    /// Opens the next file: JSON lines become a line stream; other files are read whole.
    fn open(&mut self, src: Source) {
        let (name, path) = match &src {
            Source::Stdin => {
                self.lines = Some((
                    "stdin".into(),
                    Box::new(BufReader::with_capacity(1 << 20, std::io::stdin())),
                    0,
                ));
                return;
            }
            Source::Path(p) => (p.display().to_string(), p.clone()),
        };
        let e = ext(&path);
        if e == "jsonl" || e == "ndjson" {
            match std::fs::File::open(&path) {
                Ok(f) => {
                    self.lines = Some((name, Box::new(BufReader::with_capacity(1 << 20, f)), 0))
                }
                Err(err) => self.pending.push_back(Item::Reject(Reject::input(
                    &name,
                    "unreadable",
                    err.to_string(),
                ))),
            }
            return;
        }
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if size > self.opts.max_file_bytes {
            self.pending.push_back(Item::Reject(Reject::input(
                &name,
                "too_large",
                format!(
                    "{size} bytes > {} (a file other than JSON lines is read whole)",
                    self.opts.max_file_bytes
                ),
            )));
            return;
        }
        let mut bytes = Vec::new();
        if let Err(err) = std::fs::File::open(&path).and_then(|mut f| f.read_to_end(&mut bytes)) {
            self.pending.push_back(Item::Reject(Reject::input(
                &name,
                "unreadable",
                err.to_string(),
            )));
            return;
        }
        if bytes.is_empty() {
            self.pending
                .push_back(Item::Reject(Reject::input(&name, "empty", "empty file")));
            return;
        }
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        match e.as_str() {
            "json" => match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Array(items)) => {
                    for (i, v) in items.into_iter().enumerate() {
                        let it = self.record(&name, i as u64 + 1, v);
                        self.pending.push_back(it);
                    }
                }
                Ok(v) => {
                    let it = self.record(&name, 1, v);
                    self.pending.push_back(it);
                }
                Err(err) => self.pending.push_back(Item::Reject(Reject::input(
                    &name,
                    "bad_json",
                    err.to_string(),
                ))),
            },
            "html" | "htm" | "xhtml" | "docx" | "pdf" | "xlsx" | "xlsm" | "xls" | "ods" | "csv"
            | "tsv" => {
                match luodi_ingest::read_bytes(&path, &bytes, &luodi_ingest::ReadOptions::default())
                {
                    Ok(out) => {
                        for (i, d) in out.documents.into_iter().enumerate() {
                            let text = d
                                .blocks
                                .iter()
                                .map(|b| b.text.as_str())
                                .collect::<Vec<_>>()
                                .join("\n\n");
                            let id = match &d.record {
                                Some(r) => format!("{name}#{r}"),
                                None if i == 0 => name.clone(),
                                None => format!("{name}#{}", i + 1),
                            };
                            self.pending.push_back(Item::Doc(Doc {
                                id: id.clone(),
                                source: id,
                                title: d.title.or_else(|| stem.clone()),
                                text,
                                meta: d
                                    .metadata
                                    .into_iter()
                                    .map(|(k, v)| (k, Value::String(v)))
                                    .collect(),
                                ..Doc::default()
                            }));
                        }
                    }
                    Err(err) => self.pending.push_back(Item::Reject(Reject::input(
                        &name,
                        "unreadable",
                        err.to_string(),
                    ))),
                }
            }
            // text, Markdown, and files of any other name: decoded as text, or refused as binary
            _ => match luodi_text::decode(&bytes) {
                Ok(d) => self.pending.push_back(Item::Doc(Doc {
                    id: name.clone(),
                    source: name.clone(),
                    title: stem,
                    text: d.text,
                    meta: {
                        let mut m = Map::new();
                        m.insert("encoding".into(), Value::String(d.encoding.into()));
                        m
                    },
                    ..Doc::default()
                })),
                Err(err) => self.pending.push_back(Item::Reject(Reject::input(
                    &name,
                    "binary",
                    err.to_string(),
                ))),
            },
        }
    }
}

impl Iterator for Inputs {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(it) = self.pending.pop_front() {
                return Some(it);
            }
            if let Some((name, mut r, n)) = self.lines.take() {
                let mut buf = Vec::new();
                match Self::read_line(r.as_mut(), self.opts.max_record_bytes, &mut buf) {
                    Ok(None) => continue, // end of this stream
                    Ok(Some(line)) => {
                        let n = n + 1;
                        let at = format!("{name}:{n}");
                        let item = match line {
                            Err(len) => Some(Item::Reject(Reject::input(
                                &at,
                                "too_large",
                                format!("line of {len} bytes > {}", self.opts.max_record_bytes),
                            ))),
                            Ok(()) => {
                                let t = String::from_utf8_lossy(&buf);
                                let t = t.trim();
                                if t.is_empty() {
                                    None
                                } else {
                                    Some(match serde_json::from_str::<Value>(t) {
                                        Ok(v) => self.record(&name, n, v),
                                        Err(e) => Item::Reject(Reject::input(
                                            &at,
                                            "bad_json",
                                            e.to_string(),
                                        )),
                                    })
                                }
                            }
                        };
                        self.lines = Some((name, r, n));
                        if let Some(it) = item {
                            return Some(it);
                        }
                        continue;
                    }
                    Err(e) => {
                        return Some(Item::Reject(Reject::input(
                            &name,
                            "unreadable",
                            e.to_string(),
                        )));
                    }
                }
            }
            match self.files.pop_front()? {
                Ok(src) => self.open(src),
                Err(rej) => return Some(Item::Reject(*rej)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_over_the_cap_are_skipped_whole() {
        let data = format!(
            "{{\"text\":\"短\"}}\n{}\n{{\"text\":\"后\"}}\n",
            "x".repeat(1000)
        );
        let mut r: Box<dyn BufRead> = Box::new(std::io::Cursor::new(data.into_bytes()));
        let mut buf = Vec::new();
        assert!(matches!(
            Inputs::read_line(r.as_mut(), 100, &mut buf).unwrap(),
            Some(Ok(()))
        ));
        assert!(matches!(
            Inputs::read_line(r.as_mut(), 100, &mut buf).unwrap(),
            Some(Err(1001))
        ));
        assert!(matches!(
            Inputs::read_line(r.as_mut(), 100, &mut buf).unwrap(),
            Some(Ok(()))
        ));
        assert_eq!(String::from_utf8_lossy(&buf), "{\"text\":\"后\"}\n");
        assert!(Inputs::read_line(r.as_mut(), 100, &mut buf)
            .unwrap()
            .is_none());
    }
}
