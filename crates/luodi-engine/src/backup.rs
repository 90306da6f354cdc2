//! `luodi kb export` / `luodi kb import`: one JSON-lines file holding a knowledge base's
//! configuration, sources, documents and chunks. The index is rebuilt on import, so a backup
//! does not depend on the index format of the luodi version that wrote it.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use luodi_core::{Change, Chunk, Document, Error, Result, SourceState, SourceUpdate};
use serde::{Deserialize, Serialize};

use crate::home::{Home, Kb, KbConfig, KbInfo};

const FORMAT: &str = "luodi-kb-export";
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    name: String,
    config: KbConfig,
}

#[derive(Serialize, Deserialize)]
struct SourceLine {
    source: SourceState,
    documents: Vec<DocLine>,
}

#[derive(Serialize, Deserialize)]
struct DocLine {
    document: Document,
    chunks: Vec<Chunk>,
}

/// Writes the knowledge base to `file` atomically (a temporary file renamed into place).
pub fn export(kb: &Kb, file: &Path) -> Result<u64> {
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    let mut w = BufWriter::new(tmp.as_file());
    let io = |e: std::io::Error| Error::io(file, e);
    let header = Header {
        format: FORMAT.into(),
        version: VERSION,
        name: kb.info.name.clone(),
        config: kb.info.config,
    };
    serde_json::to_writer(&mut w, &header).map_err(|e| Error::internal("export", e))?;
    w.write_all(b"\n").map_err(io)?;
    let mut n = 0u64;
    kb.store.dump(|source, docs| {
        let line = SourceLine {
            source,
            documents: docs
                .into_iter()
                .map(|(document, chunks)| DocLine { document, chunks })
                .collect(),
        };
        n += line.documents.len() as u64;
        serde_json::to_writer(&mut w, &line).map_err(|e| Error::internal("export", e))?;
        w.write_all(b"\n").map_err(|e| Error::io(file, e))
    })?;
    w.flush().map_err(io)?;
    drop(w);
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(file).map_err(|e| Error::io(file, e.error))?;
    Ok(n)
}

/// Restores a knowledge base from an export, under `name` or the exported name. If the
/// import fails halfway the new knowledge base is removed again.
pub fn import(home: &Home, file: &Path, name: Option<&str>) -> Result<KbInfo> {
    let f = std::fs::File::open(file).map_err(|e| Error::io(file, e))?;
    let mut lines = BufReader::new(f).lines();
    let bad = |line: usize, why: String| {
        Error::InvalidInput(format!("{}: line {line}: {why}", file.display()))
    };
    let first = lines
        .next()
        .ok_or_else(|| bad(1, "empty file".into()))?
        .map_err(|e| Error::io(file, e))?;
    let header: Header = serde_json::from_str(&first)
        .map_err(|e| bad(1, format!("not a luodi export header: {e}")))?;
    if header.format != FORMAT || header.version > VERSION {
        return Err(bad(
            1,
            format!(
                "format {:?} version {} is not one this luodi reads",
                header.format, header.version
            ),
        ));
    }
    let name = name.unwrap_or(&header.name).to_owned();
    let info = home.create(&name, header.config)?;
    let result = (|| -> Result<()> {
        let kb = home.open_kb(&name)?;
        let mut batch = Vec::new();
        for (i, line) in lines.enumerate() {
            let line = line.map_err(|e| Error::io(file, e))?;
            if line.trim().is_empty() {
                continue;
            }
            let s: SourceLine =
                serde_json::from_str(&line).map_err(|e| bad(i + 2, e.to_string()))?;
            batch.push(Change::Upsert(SourceUpdate {
                source: s.source,
                documents: s
                    .documents
                    .into_iter()
                    .map(|d| (d.document, d.chunks))
                    .collect(),
            }));
            if batch.len() >= 500 {
                luodi_core::Backend::apply(&*kb.store, std::mem::take(&mut batch))?;
            }
        }
        luodi_core::Backend::apply(&*kb.store, batch)
    })();
    if let Err(e) = result {
        let _ = home.delete(&name);
        return Err(e);
    }
    Ok(info)
}
