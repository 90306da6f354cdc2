//! Incremental ingestion of files into a knowledge base.
//!
//! A run walks the given paths, and for each file compares size and modification time with
//! what the store remembers: equal means unchanged and the file is not even read. Otherwise
//! the file is read and hashed; an equal hash only refreshes the remembered time, a new hash
//! re-extracts the file and replaces everything it held. Files that disappeared from under
//! the given paths are removed. Work is applied in batches, each one atomic in the store, so
//! a run killed at any point resumes where it stopped when run again.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Instant, UNIX_EPOCH};

use globset::{Glob, GlobSet, GlobSetBuilder};
use luodi_core::{Backend, Change, Chunk, Document, Error, Result, SourceState, SourceUpdate};
use luodi_ingest::{chunk_blocks, read_bytes, ChunkConfig, Extracted, FileKind, ReadOptions};
use rayon::prelude::*;
use serde::Serialize;

use crate::home::Kb;

/// Receives progress; the CLI draws a bar with it, the server reports job status.
pub trait Progress: Sync {
    /// Called once the walk knows how much work there is.
    fn start(&self, _files: u64, _bytes: u64) {}
    /// Called as files are done (read, unchanged or failed).
    fn advance(&self, _files: u64, _bytes: u64) {}
    /// A line for the person watching (a failed file, a warning).
    fn message(&self, _line: &str) {}
}

/// Progress that goes nowhere.
pub struct NoProgress;
impl Progress for NoProgress {}

/// Options of an ingest run.
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    /// Only files matching one of these globs (relative to the given path) are read.
    pub include: Vec<String>,
    /// Files matching one of these globs are skipped.
    pub exclude: Vec<String>,
    pub read: ReadOptions,
    /// Metadata added to every document of the run (`department=财务部`).
    pub metadata: BTreeMap<String, String>,
    /// Remove stored files under the given paths that no longer exist (default on in the CLI).
    pub remove_missing: bool,
    /// Re-read every file even when size and time are unchanged (content hash decides).
    pub rehash: bool,
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestReport {
    pub files_seen: u64,
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub removed: u64,
    pub failed: Vec<(String, String)>,
    pub warnings: Vec<(String, String)>,
    pub documents: u64,
    pub chunks: u64,
    /// Bytes of the files read (not the unchanged ones skipped by time and size).
    pub bytes_read: u64,
    pub seconds: f64,
}

struct FileEntry {
    path: PathBuf,
    key: String,
    size: u64,
    mtime: i64,
}

fn build_globs(patterns: &[String], what: &str) -> Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let g =
            Glob::new(p).map_err(|e| Error::InvalidInput(format!("{what} pattern {p:?}: {e}")))?;
        b.add(g);
        // `*.md` should match at any depth, as people expect from a file filter
        if !p.contains('/') {
            if let Ok(g) = Glob::new(&format!("**/{p}")) {
                b.add(g);
            }
        }
    }
    b.build()
        .map(Some)
        .map_err(|e| Error::InvalidInput(format!("{what} patterns: {e}")))
}

fn mtime_of(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64)
}

/// The key a file is stored under: its absolute path.
pub fn source_key(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn walk(
    roots: &[PathBuf],
    include: &Option<GlobSet>,
    exclude: &Option<GlobSet>,
    report: &mut IngestReport,
) -> Vec<FileEntry> {
    let mut out = Vec::new();
    for root in roots {
        let walker = walkdir::WalkDir::new(root)
            .follow_links(true)
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
        for entry in walker {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    let p = e
                        .path()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    report.failed.push((p, e.to_string()));
                    continue;
                }
            };
            if !entry.file_type().is_file() {
                continue;
            }
            let path = entry.path();
            if FileKind::from_path(path).is_none() {
                continue;
            }
            let rel = path.strip_prefix(root).unwrap_or(path);
            if include.as_ref().is_some_and(|g| !g.is_match(rel))
                || exclude.as_ref().is_some_and(|g| g.is_match(rel))
            {
                continue;
            }
            match entry.metadata() {
                Ok(m) => out.push(FileEntry {
                    key: source_key(path),
                    path: path.to_owned(),
                    size: m.len(),
                    mtime: mtime_of(&m),
                }),
                Err(e) => report
                    .failed
                    .push((path.display().to_string(), e.to_string())),
            }
        }
    }
    out
}

/// Turns extracted documents of one source into stored documents and chunks.
pub fn build_documents(
    source: &str,
    extracted: Vec<Extracted>,
    modified: Option<i64>,
    extra_meta: &BTreeMap<String, String>,
    chunking: ChunkConfig,
) -> Vec<(Document, Vec<Chunk>)> {
    let mut keys = HashSet::new();
    let mut out = Vec::with_capacity(extracted.len());
    for e in extracted {
        let text = e.plain_text();
        let base = match &e.record {
            Some(r) => format!("{source}#{r}"),
            None => source.to_owned(),
        };
        let mut key = base.clone();
        let mut n = 1;
        while !keys.insert(key.clone()) {
            n += 1;
            key = format!("{base}~{n}");
        }
        let mut metadata = extra_meta.clone();
        metadata.extend(e.metadata.clone());
        let chunks = chunk_blocks(&e.blocks, chunking);
        if chunks.is_empty() {
            continue;
        }
        out.push((
            Document {
                key,
                source: source.to_owned(),
                title: e.title.clone().unwrap_or_default(),
                modified,
                content_hash: luodi_ingest::content_hash(text.as_bytes()),
                metadata,
            },
            chunks,
        ));
    }
    out
}

enum Outcome {
    Change(Change, u64, u64, Vec<String>),
    Failed(String),
}

impl Kb {
    /// Ingests files and folders, incrementally.
    pub fn ingest(
        &self,
        paths: &[PathBuf],
        opts: &IngestOptions,
        progress: &dyn Progress,
    ) -> Result<IngestReport> {
        let started = Instant::now();
        let mut report = IngestReport::default();
        let mut roots = Vec::new();
        for p in paths {
            let abs = std::fs::canonicalize(p).map_err(|e| Error::io(p, e))?;
            roots.push(abs);
        }
        let include = build_globs(&opts.include, "--include")?;
        let exclude = build_globs(&opts.exclude, "--exclude")?;
        let files = walk(&roots, &include, &exclude, &mut report);
        report.files_seen = files.len() as u64;
        let stored = self.store.sources()?;

        // files gone from under the given roots
        let seen: HashSet<&str> = files.iter().map(|f| f.key.as_str()).collect();
        let mut removals = Vec::new();
        if opts.remove_missing {
            for key in stored.keys() {
                let under_root = roots.iter().any(|r| Path::new(key).starts_with(r));
                if under_root && !seen.contains(key.as_str()) {
                    removals.push(Change::Remove(key.clone()));
                }
            }
        }
        report.removed = removals.len() as u64;
        self.store.apply(removals)?;
        // failures of files that are gone from under the given roots are forgotten;
        // failures met by the walk itself are recorded
        self.store.prune_failures(|p| {
            !roots.iter().any(|r| Path::new(p).starts_with(r)) || seen.contains(p)
        })?;
        self.store.record_failures(&report.failed)?;

        let mut todo = Vec::new();
        for f in files {
            match stored.get(&f.key) {
                Some(s) if !opts.rehash && s.size == f.size && s.mtime == f.mtime => {
                    report.unchanged += 1
                }
                _ => todo.push(f),
            }
        }
        let total_bytes: u64 = todo.iter().map(|f| f.size).sum();
        progress.start(report.unchanged + todo.len() as u64, total_bytes);
        progress.advance(report.unchanged, 0);

        let chunking = self.info.config.chunk_config();
        // batches bounded by bytes and count, so memory stays flat and commits stay few
        let mut batches: Vec<Vec<FileEntry>> = Vec::new();
        let mut cur = Vec::new();
        let mut cur_bytes = 0u64;
        for f in todo {
            cur_bytes += f.size;
            cur.push(f);
            if cur_bytes >= 32 << 20 || cur.len() >= 2000 {
                batches.push(std::mem::take(&mut cur));
                cur_bytes = 0;
            }
        }
        if !cur.is_empty() {
            batches.push(cur);
        }
        let mut since_commit = 0;
        for batch in batches {
            let t_read = Instant::now();
            let outcomes: Vec<(FileEntry, Outcome)> = batch
                .into_par_iter()
                .map(|f| {
                    let o = self.process_file(&f, stored.get(&f.key), opts, chunking);
                    progress.advance(1, f.size);
                    (f, o)
                })
                .collect();
            let mut changes = Vec::with_capacity(outcomes.len());
            let mut failed = Vec::new();
            for (f, o) in outcomes {
                let shown = f.path.display().to_string();
                match o {
                    Outcome::Failed(reason) => {
                        progress.message(&format!("skipped {shown}: {reason}"));
                        failed.push((f.key.clone(), reason.clone()));
                        report.failed.push((shown, reason));
                    }
                    Outcome::Change(change, docs, chunks, warnings) => {
                        for w in warnings {
                            progress.message(&format!("warning {shown}: {w}"));
                            report.warnings.push((shown.clone(), w));
                        }
                        report.bytes_read += f.size;
                        match &change {
                            Change::Touch(_) => report.unchanged += 1,
                            _ if stored.contains_key(&f.key) => report.updated += 1,
                            _ => report.added += 1,
                        }
                        report.documents += docs;
                        report.chunks += chunks;
                        changes.push(change);
                    }
                }
            }
            let read_ms = t_read.elapsed().as_millis() as u64;
            // the index commits every ~128 MB: its threads keep working while the next batch
            // is read and stored; the journal covers a crash in between
            self.store.apply_deferred(changes)?;
            // kept in the store so that `kb stats` shows them after the run
            self.store.record_failures(&failed)?;
            since_commit += 1;
            if since_commit >= 4 {
                self.store.commit_pending()?;
                since_commit = 0;
            }
            tracing::debug!(
                read_ms,
                total_ms = t_read.elapsed().as_millis() as u64,
                "ingested batch"
            );
        }
        self.store.commit_pending()?;
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    fn process_file(
        &self,
        f: &FileEntry,
        stored: Option<&SourceState>,
        opts: &IngestOptions,
        chunking: ChunkConfig,
    ) -> Outcome {
        let bytes = match std::fs::read(&f.path) {
            Ok(b) => b,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let hash = luodi_ingest::content_hash(&bytes);
        let state = SourceState {
            path: f.key.clone(),
            content_hash: hash,
            size: bytes.len() as u64,
            mtime: f.mtime,
        };
        if stored.is_some_and(|s| s.content_hash == state.content_hash) {
            return Outcome::Change(Change::Touch(state), 0, 0, Vec::new());
        }
        let out = match read_bytes(&f.path, &bytes, &opts.read) {
            Ok(o) => o,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let mut meta = opts.metadata.clone();
        if let Some(enc) = out.encoding {
            if enc != "UTF-8" {
                meta.insert("encoding".into(), enc.to_owned());
            }
        }
        let docs = build_documents(&f.key, out.documents, Some(f.mtime), &meta, chunking);
        let n_chunks = docs.iter().map(|(_, c)| c.len() as u64).sum();
        let n_docs = docs.len() as u64;
        Outcome::Change(
            Change::Upsert(SourceUpdate {
                source: state,
                documents: docs,
            }),
            n_docs,
            n_chunks,
            out.warnings,
        )
    }

    /// Stores documents that did not come from files (evaluation corpora, API uploads of
    /// records) as one source.
    pub fn put_documents(
        &self,
        source: SourceState,
        extracted: Vec<Extracted>,
    ) -> Result<(u64, u64)> {
        let docs = build_documents(
            &source.path,
            extracted,
            None,
            &BTreeMap::new(),
            self.info.config.chunk_config(),
        );
        let n = (
            docs.len() as u64,
            docs.iter().map(|(_, c)| c.len() as u64).sum(),
        );
        self.store.apply(vec![Change::Upsert(SourceUpdate {
            source,
            documents: docs,
        })])?;
        Ok(n)
    }
}
