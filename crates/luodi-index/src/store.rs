//! The embedded store: one directory per knowledge base with `kb.sqlite` and `index/`.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use luodi_core::{
    Backend, Change, Chunk, Error, KbStats, Location, Result, SearchHit, SearchQuery, SourceState,
};
use rusqlite::{params, Connection, OptionalExtension};
use tantivy::collector::TopDocs;
use tantivy::postings::Postings;
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, Occur, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, INDEXED, STRING,
};
use tantivy::{
    DocAddress, DocSet, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term,
    TERMINATED,
};

use crate::analyzer::{Analyzer, AnalyzerConfig, TantivyAnalyzer};
use crate::schema::{migrate, MIGRATIONS};

mod vectors;
pub use vectors::{passage_text, vector_from_bytes, vector_to_bytes, VectorStatus};

/// Candidates gathered by the first search stage (see [`EmbeddedStore::search_ids`]).
pub const RERANK_DEPTH: usize = 100;

/// At most this many of a query's rarest multi-character terms select candidates.
pub const STAGE1_MAX_TERMS: usize = 16;

/// The store's SQLite schema version (number of migrations).
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Options for opening a store. The analyzer is fixed when the store is created and read
/// back from the store afterwards.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub analyzer: AnalyzerConfig,
    /// Memory budget of the index writer, in bytes.
    pub writer_memory: usize,
    /// Indexing threads.
    pub writer_threads: usize,
    /// Weight of title/heading matches relative to body matches.
    pub title_boost: f32,
    /// BM25's term-frequency saturation `k1` and length normalization `b`, applied when the
    /// candidates are scored (a query-time setting: changing it needs no re-indexing).
    pub bm25: Bm25Params,
}

/// BM25 parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bm25Params {
    pub k1: f32,
    pub b: f32,
}

impl Default for Bm25Params {
    /// Chosen on the tuning halves of the five retrieval sets (ARCHITECTURE.md, "BM25"):
    /// between Lucene's 1.2/0.75 and the 0.9/0.4 of later studies; lower `b` helps long
    /// relevant documents (DuReader +0.04 MRR@10), higher `b` short FAQ entries.
    fn default() -> Self {
        Bm25Params { k1: 1.0, b: 0.6 }
    }
}

/// BM25's inverse document frequency (Lucene's and tantivy's form).
fn idf(n_docs: f32, doc_freq: f32) -> f32 {
    (1.0 + (n_docs - doc_freq + 0.5) / (doc_freq + 0.5)).ln()
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            analyzer: AnalyzerConfig::default(),
            writer_memory: 200_000_000,
            writer_threads: std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4)),
            title_boost: 0.5,
            bm25: Bm25Params::default(),
        }
    }
}

#[derive(Clone, Copy)]
struct Fields {
    chunk_id: Field,
    source: Field,
    text: Field,
    title: Field,
    meta: Field,
    modified: Field,
}

fn build_schema(tokenizer: &str) -> (Schema, Fields) {
    let mut b = Schema::builder();
    let indexing = TextFieldIndexing::default()
        .set_tokenizer(tokenizer)
        .set_index_option(IndexRecordOption::WithFreqs);
    let text_opts = TextOptions::default().set_indexing_options(indexing);
    let fields = Fields {
        chunk_id: b.add_u64_field("chunk_id", FAST),
        source: b.add_text_field("source", STRING),
        text: b.add_text_field("text", text_opts.clone()),
        title: b.add_text_field("title", text_opts),
        meta: b.add_text_field("meta", STRING),
        modified: b.add_i64_field("modified", INDEXED | FAST),
    };
    (b.build(), fields)
}

fn meta_term(key: &str, value: &str) -> String {
    format!("{key}\u{1f}{value}")
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn sql_err(context: &str) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::internal(context, e)
}

fn tv_err(context: &str) -> impl Fn(tantivy::TantivyError) -> Error + '_ {
    move |e| Error::internal(context, e)
}

/// A knowledge base stored in one directory.
pub struct EmbeddedStore {
    dir: PathBuf,
    conn: Mutex<Connection>,
    index: Index,
    reader: IndexReader,
    writer: Mutex<Option<IndexWriter>>,
    /// Sources whose index work is queued but not committed.
    pending: Mutex<Vec<String>>,
    /// Vectors of one model in memory for dense search, loaded on first use.
    dense: std::sync::RwLock<Option<vectors::DenseMatrix>>,
    fields: Fields,
    analyzer: Analyzer,
    opts: StoreOptions,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// One chunk ready for the index.
struct IndexEntry {
    chunk_id: u64,
    source: String,
    text: String,
    title: String,
    meta: Vec<String>,
    modified: Option<i64>,
}

impl EmbeddedStore {
    /// Opens the store in `dir`, creating it if needed, and replays any index work a killed
    /// process left unfinished.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<Self> {
        std::fs::create_dir_all(dir.join("index")).map_err(|e| Error::io(dir, e))?;
        let db_path = dir.join("kb.sqlite");
        let mut conn = Connection::open(&db_path).map_err(|e| Error::Corrupt {
            path: db_path.clone(),
            reason: e.to_string(),
        })?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql_err("sqlite"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql_err("sqlite"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sql_err("sqlite"))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sql_err("sqlite"))?;
        migrate(&mut conn).map_err(|reason| Error::Corrupt {
            path: db_path.clone(),
            reason,
        })?;
        // the analyzer is a property of the index: written once, read back afterwards
        let stored: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key='analyzer'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql_err("read analyzer"))?;
        let analyzer_cfg = match stored {
            Some(s) => serde_json::from_str(&s).map_err(|e| Error::Corrupt {
                path: db_path.clone(),
                reason: format!("analyzer setting: {e}"),
            })?,
            None => {
                let s = serde_json::to_string(&opts.analyzer)
                    .map_err(|e| Error::internal("analyzer", e))?;
                conn.execute("INSERT INTO meta(key, value) VALUES('analyzer', ?1)", [s])
                    .map_err(sql_err("write analyzer"))?;
                opts.analyzer
            }
        };
        let tokenizer = analyzer_cfg.name();
        let (schema, fields) = build_schema(&tokenizer);
        let index_dir = dir.join("index");
        let index = if index_dir.join("meta.json").exists() {
            Index::open_in_dir(&index_dir).map_err(|e| Error::Corrupt {
                path: index_dir.clone(),
                reason: e.to_string(),
            })?
        } else {
            Index::create_in_dir(&index_dir, schema).map_err(tv_err("create index"))?
        };
        let analyzer = Analyzer::new(analyzer_cfg);
        index
            .tokenizers()
            .register(&tokenizer, TantivyAnalyzer::new(analyzer.clone()));
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(tv_err("open index reader"))?;
        let store = EmbeddedStore {
            dir: dir.to_owned(),
            conn: Mutex::new(conn),
            index,
            reader,
            writer: Mutex::new(None),
            pending: Mutex::new(Vec::new()),
            dense: std::sync::RwLock::new(None),
            fields,
            analyzer,
            opts: StoreOptions {
                analyzer: analyzer_cfg,
                ..opts
            },
        };
        store.recover()?;
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn analyzer(&self) -> &Analyzer {
        &self.analyzer
    }

    fn conn(&self) -> Result<MutexGuard<'_, Connection>> {
        self.conn
            .lock()
            .map_err(|_| Error::internal("sqlite", "connection lock poisoned"))
    }

    fn with_writer<T>(&self, f: impl FnOnce(&mut IndexWriter) -> Result<T>) -> Result<T> {
        let mut guard = self
            .writer
            .lock()
            .map_err(|_| Error::internal("index", "writer lock poisoned"))?;
        if guard.is_none() {
            let w = self
                .index
                .writer_with_num_threads(self.opts.writer_threads.max(1), self.opts.writer_memory.max(15_000_000 * self.opts.writer_threads.max(1)))
                .map_err(|e| match e {
                    tantivy::TantivyError::LockFailure(..) => Error::InvalidInput(format!(
                        "the knowledge base at {} is being written by another luodi process; wait for it to finish",
                        self.dir.display()
                    )),
                    other => Error::internal("open index writer", other),
                })?;
            *guard = Some(w);
        }
        match guard.as_mut() {
            Some(w) => f(w),
            None => Err(Error::internal("index", "no writer")),
        }
    }

    /// Replays journal entries left by a killed process.
    fn recover(&self) -> Result<()> {
        let paths: Vec<String> = {
            let conn = self.conn()?;
            let mut st = conn
                .prepare("SELECT path FROM index_journal")
                .map_err(sql_err("journal"))?;
            let rows = st.query_map([], |r| r.get(0)).map_err(sql_err("journal"))?;
            rows.collect::<std::result::Result<_, _>>()
                .map_err(sql_err("journal"))?
        };
        if paths.is_empty() {
            return Ok(());
        }
        tracing::info!(sources = paths.len(), "replaying unfinished index work");
        let entries = self.entries_for_sources(&paths)?;
        self.index_entries(&paths, entries)?;
        self.commit_pending()
    }

    fn entries_for_sources(&self, paths: &[String]) -> Result<Vec<IndexEntry>> {
        let conn = self.conn()?;
        let mut st = conn
            .prepare(
                "SELECT c.id, c.text, c.heading_path, d.title, d.metadata, d.modified
                 FROM sources s JOIN documents d ON d.source_id = s.id JOIN chunks c ON c.document_id = d.id
                 WHERE s.path = ?1",
            )
            .map_err(sql_err("read chunks"))?;
        let mut out = Vec::new();
        for p in paths {
            let rows = st
                .query_map([p], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, Option<i64>>(5)?,
                    ))
                })
                .map_err(sql_err("read chunks"))?;
            for row in rows {
                let (id, text, heading, title, meta, modified) =
                    row.map_err(sql_err("read chunks"))?;
                let heading: Vec<String> = serde_json::from_str(&heading).unwrap_or_default();
                let meta: BTreeMap<String, String> =
                    serde_json::from_str(&meta).unwrap_or_default();
                out.push(IndexEntry {
                    chunk_id: id as u64,
                    source: p.clone(),
                    text,
                    title: index_title(&title, &heading),
                    meta: meta.iter().map(|(k, v)| meta_term(k, v)).collect(),
                    modified,
                });
            }
        }
        Ok(out)
    }

    /// Queues index work (deletes of the sources' old entries, new entries) without
    /// committing; the paths stay in the journal until [`EmbeddedStore::commit_pending`].
    fn index_entries(&self, paths: &[String], entries: Vec<IndexEntry>) -> Result<()> {
        let f = self.fields;
        self.with_writer(|w| {
            for p in paths {
                w.delete_term(Term::from_field_text(f.source, p));
            }
            for e in entries {
                let mut doc = TantivyDocument::new();
                doc.add_u64(f.chunk_id, e.chunk_id);
                doc.add_text(f.source, &e.source);
                doc.add_text(f.text, &e.text);
                doc.add_text(f.title, &e.title);
                for m in &e.meta {
                    doc.add_text(f.meta, m);
                }
                doc.add_i64(f.modified, e.modified.unwrap_or(i64::MIN));
                w.add_document(doc).map_err(tv_err("index chunk"))?;
            }
            Ok(())
        })?;
        self.pending
            .lock()
            .map_err(|_| Error::internal("index", "pending lock poisoned"))?
            .extend(paths.iter().cloned());
        Ok(())
    }

    /// Commits queued index work and clears its journal rows. Until this returns, a crash
    /// is repaired by the journal replay at the next open.
    pub fn commit_pending(&self) -> Result<()> {
        let paths: Vec<String> = std::mem::take(
            &mut *self
                .pending
                .lock()
                .map_err(|_| Error::internal("index", "pending lock poisoned"))?,
        );
        if paths.is_empty() {
            return Ok(());
        }
        self.with_writer(|w| {
            let t = std::time::Instant::now();
            w.commit().map_err(tv_err("commit index"))?;
            tracing::debug!(commit_ms = t.elapsed().as_millis() as u64, "index commit");
            Ok(())
        })?;
        #[cfg(feature = "failpoints")]
        crash_point("after-index-commit");
        {
            let mut conn = self.conn()?;
            let tx = conn.transaction().map_err(sql_err("journal"))?;
            {
                let mut st = tx
                    .prepare("DELETE FROM index_journal WHERE path = ?1")
                    .map_err(sql_err("journal"))?;
                for p in &paths {
                    st.execute([p]).map_err(sql_err("journal"))?;
                }
            }
            tx.commit().map_err(sql_err("journal"))?;
        }
        self.reader.reload().map_err(tv_err("reload index"))?;
        Ok(())
    }

    /// Like [`Backend::apply`], but leaves the index commit to a later
    /// [`EmbeddedStore::commit_pending`], so bulk loads keep the indexing threads busy while
    /// the next batch is read and stored.
    pub fn apply_deferred(&self, changes: Vec<Change>) -> Result<()> {
        let (touched, entries) = self.write_sqlite(changes)?;
        if !touched.is_empty() {
            #[cfg(feature = "failpoints")]
            crash_point("after-sqlite-commit");
            self.index_entries(&touched, entries)?;
        }
        Ok(())
    }

    /// Every document with its chunks, in insertion order (for export).
    pub fn dump(
        &self,
        mut visit: impl FnMut(SourceState, Vec<(luodi_core::Document, Vec<Chunk>)>) -> Result<()>,
    ) -> Result<()> {
        let sources = self.sources()?;
        let conn = self.conn()?;
        let mut docs_st = conn
            .prepare("SELECT d.id, d.key, d.title, d.modified, d.content_hash, d.metadata FROM documents d JOIN sources s ON s.id = d.source_id WHERE s.path = ?1 ORDER BY d.id")
            .map_err(sql_err("dump"))?;
        let mut chunks_st = conn
            .prepare("SELECT ordinal, text, heading_path, location FROM chunks WHERE document_id = ?1 ORDER BY id")
            .map_err(sql_err("dump"))?;
        for (path, state) in sources {
            let docs: Vec<(i64, luodi_core::Document)> = docs_st
                .query_map([&path], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        luodi_core::Document {
                            key: r.get(1)?,
                            source: path.clone(),
                            title: r.get(2)?,
                            modified: r.get(3)?,
                            content_hash: r.get(4)?,
                            metadata: serde_json::from_str(&r.get::<_, String>(5)?)
                                .unwrap_or_default(),
                        },
                    ))
                })
                .map_err(sql_err("dump"))?
                .collect::<std::result::Result<_, _>>()
                .map_err(sql_err("dump"))?;
            let mut out = Vec::with_capacity(docs.len());
            for (id, doc) in docs {
                let chunks: Vec<Chunk> = chunks_st
                    .query_map([id], |r| {
                        Ok(Chunk {
                            ordinal: r.get::<_, i64>(0)? as u32,
                            text: r.get(1)?,
                            heading_path: serde_json::from_str(&r.get::<_, String>(2)?)
                                .unwrap_or_default(),
                            location: serde_json::from_str(&r.get::<_, String>(3)?)
                                .unwrap_or_default(),
                        })
                    })
                    .map_err(sql_err("dump"))?
                    .collect::<std::result::Result<_, _>>()
                    .map_err(sql_err("dump"))?;
                out.push((doc, chunks));
            }
            visit(state, out)?;
        }
        Ok(())
    }

    /// Number of entries in the BM25 index (equals the number of chunks when consistent).
    pub fn index_doc_count(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Chunk ids stored in SQLite and in the index, for consistency checks.
    pub fn consistency(&self) -> Result<(u64, u64)> {
        let chunks: i64 = self
            .conn()?
            .query_row("SELECT COUNT(*) FROM chunks", [], |r| r.get(0))
            .map_err(sql_err("count"))?;
        Ok((chunks as u64, self.index_doc_count()))
    }

    /// Query terms: analyzed, deduplicated, question words dropped when others remain.
    fn query_terms(&self, text: &str) -> Vec<String> {
        let mut terms: Vec<String> = self.analyzer.terms(text);
        let mut seen = std::collections::HashSet::new();
        terms.retain(|t| seen.insert(t.clone()));
        let kept: Vec<String> = terms
            .iter()
            .filter(|t| !crate::analyzer::is_query_stopword(t))
            .cloned()
            .collect();
        if kept.is_empty() {
            terms
        } else {
            kept
        }
    }

    /// BM25 over `terms` in body and title, as one disjunction.
    fn terms_query(&self, terms: &[String]) -> Box<dyn Query> {
        let f = self.fields;
        let mut should: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(terms.len() * 2);
        for t in terms {
            should.push((
                Occur::Should,
                Box::new(TermQuery::new(
                    Term::from_field_text(f.text, t),
                    IndexRecordOption::WithFreqs,
                )),
            ));
            if self.opts.title_boost > 0.0 {
                should.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(
                        Box::new(TermQuery::new(
                            Term::from_field_text(f.title, t),
                            IndexRecordOption::WithFreqs,
                        )),
                        self.opts.title_boost,
                    )),
                ));
            }
        }
        Box::new(BooleanQuery::new(should))
    }

    /// `scored` restricted by the query's metadata and date filters.
    fn filtered(&self, scored: Box<dyn Query>, q: &SearchQuery) -> Box<dyn Query> {
        let f = self.fields;
        if q.filters.is_empty() && q.after.is_none() && q.before.is_none() {
            return scored;
        }
        let mut must: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, scored)];
        let zero = |inner: Box<dyn Query>| -> Box<dyn Query> {
            Box::new(ConstScoreQuery::new(inner, 0.0))
        };
        for (k, v) in &q.filters {
            must.push((
                Occur::Must,
                zero(Box::new(TermQuery::new(
                    Term::from_field_text(f.meta, &meta_term(k, v)),
                    IndexRecordOption::Basic,
                ))),
            ));
        }
        if q.after.is_some() || q.before.is_some() {
            let lower = match q.after {
                Some(a) => Bound::Included(Term::from_field_i64(f.modified, a)),
                None => Bound::Excluded(Term::from_field_i64(f.modified, i64::MIN)),
            };
            let upper = match q.before {
                Some(b) => Bound::Excluded(Term::from_field_i64(f.modified, b)),
                None => Bound::Unbounded,
            };
            must.push((Occur::Must, zero(Box::new(RangeQuery::new(lower, upper)))));
        }
        Box::new(BooleanQuery::new(must))
    }

    fn top_addrs(
        &self,
        searcher: &tantivy::Searcher,
        query: &dyn Query,
        k: usize,
    ) -> Result<Vec<(f32, DocAddress)>> {
        searcher
            .search(query, &TopDocs::with_limit(k.max(1)).order_by_score())
            .map_err(tv_err("search"))
    }

    fn chunk_ids(
        &self,
        searcher: &tantivy::Searcher,
        hits: Vec<(f32, DocAddress)>,
    ) -> Result<Vec<(u64, f32)>> {
        let mut columns: HashMap<u32, tantivy::columnar::Column<u64>> = HashMap::new();
        let mut out = Vec::with_capacity(hits.len());
        for (score, addr) in hits {
            let col = match columns.get(&addr.segment_ord) {
                Some(c) => c,
                None => {
                    let c = searcher
                        .segment_reader(addr.segment_ord)
                        .fast_fields()
                        .u64("chunk_id")
                        .map_err(tv_err("chunk id column"))?;
                    columns.entry(addr.segment_ord).or_insert(c)
                }
            };
            if let Some(id) = col.first(addr.doc_id) {
                out.push((id, score));
            }
        }
        Ok(out)
    }

    /// Adds the BM25 contribution of `terms` (body, and title at its boost) to each
    /// candidate's score by seeking the terms' postings to the candidates only. The scoring
    /// is ours, not tantivy's, so that `k1` and `b` are settings ([`Bm25Params`]); idf and
    /// average length are tantivy's (over the whole index), lengths its encoded field norms.
    fn add_term_scores(
        &self,
        searcher: &tantivy::Searcher,
        terms: &[String],
        candidates: &mut [(f32, DocAddress)],
    ) -> Result<()> {
        let f = self.fields;
        let Bm25Params { k1, b } = self.opts.bm25;
        let mut by_segment: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, (_, addr)) in candidates.iter().enumerate() {
            by_segment.entry(addr.segment_ord).or_default().push(i);
        }
        for idx in by_segment.values_mut() {
            idx.sort_by_key(|&i| candidates[i].1.doc_id);
        }
        let fields: Vec<(Field, f32)> = if self.opts.title_boost > 0.0 {
            vec![(f.text, 1.0), (f.title, self.opts.title_boost)]
        } else {
            vec![(f.text, 1.0)]
        };
        let n_docs = searcher.num_docs().max(1) as f32;
        for &(field, boost) in &fields {
            let mut tokens = 0u64;
            for reader in searcher.segment_readers() {
                tokens += reader
                    .inverted_index(field)
                    .map_err(tv_err("postings"))?
                    .total_num_tokens();
            }
            let avg_len = (tokens as f32 / n_docs).max(1.0);
            for t in terms {
                let term = Term::from_field_text(field, t);
                let df = searcher.doc_freq(&term).map_err(tv_err("doc freq"))?;
                if df == 0 {
                    continue;
                }
                let weight = boost * idf(n_docs, df as f32) * (k1 + 1.0);
                for (&seg, idx) in &by_segment {
                    let reader = searcher.segment_reader(seg);
                    let inverted = reader.inverted_index(field).map_err(tv_err("postings"))?;
                    let Some(mut postings) = inverted
                        .read_postings(&term, IndexRecordOption::WithFreqs)
                        .map_err(|e| Error::internal("postings", e))?
                    else {
                        continue;
                    };
                    let norms = reader
                        .get_fieldnorms_reader(field)
                        .map_err(tv_err("fieldnorms"))?;
                    for &i in idx {
                        let doc = candidates[i].1.doc_id;
                        if postings.doc() > doc {
                            continue;
                        }
                        if postings.seek(doc) == doc {
                            let tf = postings.term_freq() as f32;
                            let len = norms.fieldnorm(doc) as f32;
                            candidates[i].0 +=
                                weight * tf / (tf + k1 * (1.0 - b + b * len / avg_len));
                        }
                        if postings.doc() == TERMINATED {
                            break;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Ranked chunk ids and scores, without fetching text (what benchmarks and fusion need).
    ///
    /// Two stages keep latency flat on large knowledge bases: single Han characters have
    /// posting lists nearly as long as the corpus, and a long question has dozens of bigrams.
    /// So candidates are first gathered with the words and bigrams alone, at most the
    /// [`STAGE1_MAX_TERMS`] rarest ([`RERANK_DEPTH`] candidates, at least 5×k); then every
    /// term's BM25 contribution is computed for those candidates only, by seeking its
    /// postings. BM25 is a sum over terms, so a candidate's final score equals its full-query
    /// score. A query made only of single characters, or only of longer terms, or one whose
    /// longer terms match fewer chunks than the depth, gathers its candidates with all terms.
    pub fn search_ids(&self, q: &SearchQuery) -> Result<Vec<(u64, f32)>> {
        let terms = self.query_terms(&q.text);
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let searcher = self.reader.searcher();
        let depth = (q.k * 5).max(RERANK_DEPTH);
        // candidates by tantivy's own BM25, then every candidate scored by ours
        let rescore = |mut candidates: Vec<(f32, DocAddress)>| -> Result<Vec<(u64, f32)>> {
            for c in candidates.iter_mut() {
                c.0 = 0.0;
            }
            self.add_term_scores(&searcher, &terms, &mut candidates)?;
            candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            candidates.truncate(q.k);
            self.chunk_ids(&searcher, candidates)
        };
        let one_stage = || -> Result<Vec<(u64, f32)>> {
            let query = self.filtered(self.terms_query(&terms), q);
            rescore(self.top_addrs(&searcher, &*query, depth)?)
        };
        let is_single_han = |t: &str| {
            let mut c = t.chars();
            matches!((c.next(), c.next()), (Some(ch), None) if !ch.is_ascii())
        };
        let mut long: Vec<String> = terms
            .iter()
            .filter(|t| !is_single_han(t))
            .cloned()
            .collect();
        if long.len() == terms.len() || long.is_empty() {
            return one_stage();
        }
        if long.len() > STAGE1_MAX_TERMS {
            let f = self.fields;
            let mut by_df: Vec<(u64, String)> = long
                .into_iter()
                .map(|t| {
                    let df = searcher
                        .doc_freq(&Term::from_field_text(f.text, &t))
                        .unwrap_or(0);
                    (df, t)
                })
                .collect();
            by_df.sort_by_key(|(df, t)| (*df == 0, *df, t.clone()));
            by_df.truncate(STAGE1_MAX_TERMS);
            long = by_df.into_iter().map(|(_, t)| t).collect();
        }
        let stage1 = self.filtered(self.terms_query(&long), q);
        let candidates = self.top_addrs(&searcher, &*stage1, depth)?;
        if candidates.len() < depth {
            // the longer terms match fewer chunks than the depth: the full query is cheap
            // here, and it also finds chunks that share only single characters with it
            return one_stage();
        }
        rescore(candidates)
    }

    /// The BM25 score of a chunk of average length holding every query term once: what
    /// divides a chunk's score to say how much of the query it matches, whatever the query's
    /// length (fusion with dense scores needs that scale).
    pub fn ideal_score(&self, text: &str) -> Result<f32> {
        let terms = self.query_terms(text);
        let searcher = self.reader.searcher();
        let n_docs = searcher.num_docs().max(1) as f32;
        let Bm25Params { k1, .. } = self.opts.bm25;
        let mut total = 0.0;
        for t in &terms {
            let df = searcher
                .doc_freq(&Term::from_field_text(self.fields.text, t))
                .map_err(tv_err("doc freq"))? as f32;
            // a term absent from the corpus counts as the rarest possible
            total += idf(n_docs, df.max(1.0));
        }
        Ok(total * (k1 + 1.0) / (1.0 + k1))
    }

    /// The content version: 0 for a new store, raised by every write that changes sources.
    /// An answer records it, so that it can be traced to the content it was given.
    pub fn version(&self) -> Result<u64> {
        let conn = self.conn()?;
        let v: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'version'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql_err("version"))?;
        Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    /// The query terms of `text` (as [`EmbeddedStore::search_ids`] uses them) with their idf
    /// in this store (how much finding each term says about a passage) and their document
    /// frequency. A term absent from the store counts as the rarest possible.
    pub fn term_idfs(&self, text: &str) -> Result<Vec<(String, f32, u64)>> {
        let terms = self.query_terms(text);
        let searcher = self.reader.searcher();
        let n_docs = searcher.num_docs().max(1) as f32;
        let mut out = Vec::with_capacity(terms.len());
        for t in terms {
            let df = searcher
                .doc_freq(&Term::from_field_text(self.fields.text, &t))
                .map_err(tv_err("doc freq"))? as f32;
            let w = idf(n_docs, df.max(1.0));
            out.push((t, w, df as u64));
        }
        Ok(out)
    }

    /// Fetches chunks with their documents by id, in the order given.
    pub fn fetch(&self, ids: &[(u64, f32)]) -> Result<Vec<SearchHit>> {
        let conn = self.conn()?;
        let mut st = conn
            .prepare_cached(
                "SELECT c.ordinal, c.text, c.heading_path, c.location, d.key, s.path, d.title, d.modified, d.metadata
                 FROM chunks c JOIN documents d ON d.id = c.document_id JOIN sources s ON s.id = d.source_id
                 WHERE c.id = ?1",
            )
            .map_err(sql_err("fetch"))?;
        let mut out = Vec::with_capacity(ids.len());
        for &(id, score) in ids {
            let row = st
                .query_row([id as i64], |r| {
                    Ok(SearchHit {
                        score,
                        chunk_id: id,
                        chunk: Chunk {
                            ordinal: r.get::<_, i64>(0)? as u32,
                            text: r.get(1)?,
                            heading_path: serde_json::from_str(&r.get::<_, String>(2)?)
                                .unwrap_or_default(),
                            location: serde_json::from_str::<Location>(&r.get::<_, String>(3)?)
                                .unwrap_or_default(),
                        },
                        doc_key: r.get(4)?,
                        source: r.get(5)?,
                        title: r.get(6)?,
                        modified: r.get(7)?,
                        metadata: serde_json::from_str(&r.get::<_, String>(8)?).unwrap_or_default(),
                    })
                })
                .optional()
                .map_err(sql_err("fetch"))?;
            // a chunk deleted between search and fetch (another writer) is simply skipped
            if let Some(hit) = row {
                out.push(hit);
            }
        }
        Ok(out)
    }

    fn dir_size(path: &Path) -> u64 {
        let mut total = 0;
        if let Ok(rd) = std::fs::read_dir(path) {
            for e in rd.flatten() {
                match e.metadata() {
                    Ok(m) if m.is_dir() => total += Self::dir_size(&e.path()),
                    Ok(m) => total += m.len(),
                    Err(_) => {}
                }
            }
        }
        total
    }

    /// Finishes background merges, merges all segments into one and reclaims space (used
    /// after a bulk load; searches are fastest on one segment).
    pub fn optimize(&self) -> Result<()> {
        self.commit_pending()?;
        self.finish_merges()?;
        let ids = self
            .index
            .searchable_segment_ids()
            .map_err(tv_err("segments"))?;
        if ids.len() > 1 {
            self.with_writer(|w| {
                w.merge(&ids).wait().map_err(tv_err("merge"))?;
                Ok(())
            })?;
        }
        self.finish_merges()?;
        self.with_writer(|w| {
            w.garbage_collect_files().wait().map_err(tv_err("gc"))?;
            Ok(())
        })?;
        self.reader.reload().map_err(tv_err("reload"))
    }

    /// Waits for the writer's background merges and releases the writer.
    fn finish_merges(&self) -> Result<()> {
        let writer = self
            .writer
            .lock()
            .map_err(|_| Error::internal("index", "writer lock poisoned"))?
            .take();
        if let Some(w) = writer {
            w.wait_merging_threads().map_err(tv_err("merge"))?;
        }
        Ok(())
    }
}

fn index_title(title: &str, heading: &[String]) -> String {
    let mut t = title.to_owned();
    for h in heading {
        if h != title {
            t.push('\n');
            t.push_str(h);
        }
    }
    t
}

impl Backend for EmbeddedStore {
    fn sources(&self) -> Result<BTreeMap<String, SourceState>> {
        let conn = self.conn()?;
        let mut st = conn
            .prepare("SELECT path, content_hash, size, mtime FROM sources")
            .map_err(sql_err("sources"))?;
        let rows = st
            .query_map([], |r| {
                Ok(SourceState {
                    path: r.get(0)?,
                    content_hash: r.get(1)?,
                    size: r.get::<_, i64>(2)? as u64,
                    mtime: r.get(3)?,
                })
            })
            .map_err(sql_err("sources"))?;
        let mut out = BTreeMap::new();
        for r in rows {
            let s = r.map_err(sql_err("sources"))?;
            out.insert(s.path.clone(), s);
        }
        Ok(out)
    }

    fn apply(&self, changes: Vec<Change>) -> Result<()> {
        self.apply_deferred(changes)?;
        self.commit_pending()
    }

    fn search(&self, query: &SearchQuery) -> Result<Vec<SearchHit>> {
        let ids = self.search_ids(query)?;
        self.fetch(&ids)
    }

    fn stats(&self) -> Result<KbStats> {
        self.stats_impl()
    }
}

impl EmbeddedStore {
    /// Writes changes to SQLite in one transaction, with a journal row per touched source.
    /// Returns the touched sources and the index entries to add.
    fn write_sqlite(&self, changes: Vec<Change>) -> Result<(Vec<String>, Vec<IndexEntry>)> {
        if changes.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let mut touched: Vec<String> = Vec::new();
        let mut entries: Vec<IndexEntry> = Vec::new();
        {
            let mut conn = self.conn()?;
            let tx = conn.transaction().map_err(sql_err("begin"))?;
            {
                let mut del = tx
                    .prepare_cached("DELETE FROM sources WHERE path = ?1")
                    .map_err(sql_err("prepare"))?;
                let mut ins_src = tx
                    .prepare_cached("INSERT INTO sources(path, content_hash, size, mtime, ingested_at) VALUES(?1, ?2, ?3, ?4, ?5)")
                    .map_err(sql_err("prepare"))?;
                let mut ins_doc = tx
                    .prepare_cached("INSERT INTO documents(source_id, key, title, modified, content_hash, metadata) VALUES(?1, ?2, ?3, ?4, ?5, ?6)")
                    .map_err(sql_err("prepare"))?;
                let mut ins_chunk = tx
                    .prepare_cached("INSERT INTO chunks(document_id, ordinal, text, heading_path, location) VALUES(?1, ?2, ?3, ?4, ?5)")
                    .map_err(sql_err("prepare"))?;
                let mut touch = tx
                    .prepare_cached("UPDATE sources SET size = ?2, mtime = ?3 WHERE path = ?1")
                    .map_err(sql_err("prepare"))?;
                let mut journal = tx
                    .prepare_cached("INSERT OR IGNORE INTO index_journal(path) VALUES(?1)")
                    .map_err(sql_err("prepare"))?;
                let mut unfail = tx
                    .prepare_cached("DELETE FROM failures WHERE path = ?1")
                    .map_err(sql_err("prepare"))?;
                let ts = now();
                for change in changes {
                    // a file stored, refreshed or removed has not failed (any more)
                    let path = match &change {
                        Change::Touch(s) => &s.path,
                        Change::Remove(p) => p,
                        Change::Upsert(u) => &u.source.path,
                    };
                    unfail.execute([path]).map_err(sql_err("clear failure"))?;
                    match change {
                        Change::Touch(s) => {
                            touch
                                .execute(params![s.path, s.size as i64, s.mtime])
                                .map_err(sql_err("update source"))?;
                        }
                        Change::Remove(path) => {
                            del.execute([&path]).map_err(sql_err("delete source"))?;
                            journal.execute([&path]).map_err(sql_err("journal"))?;
                            touched.push(path);
                        }
                        Change::Upsert(u) => {
                            let path = u.source.path.clone();
                            del.execute([&path]).map_err(sql_err("delete source"))?;
                            ins_src
                                .execute(params![
                                    path,
                                    u.source.content_hash,
                                    u.source.size as i64,
                                    u.source.mtime,
                                    ts
                                ])
                                .map_err(sql_err("insert source"))?;
                            let source_id = tx.last_insert_rowid();
                            for (doc, chunks) in u.documents {
                                let meta_json = serde_json::to_string(&doc.metadata)
                                    .map_err(|e| Error::internal("metadata", e))?;
                                ins_doc
                                    .execute(params![
                                        source_id,
                                        doc.key,
                                        doc.title,
                                        doc.modified,
                                        doc.content_hash,
                                        meta_json
                                    ])
                                    .map_err(|e| match e {
                                        rusqlite::Error::SqliteFailure(f, _)
                                            if f.code
                                                == rusqlite::ErrorCode::ConstraintViolation =>
                                        {
                                            Error::InvalidInput(format!(
                                                "document key {:?} appears twice",
                                                doc.key
                                            ))
                                        }
                                        other => Error::internal("insert document", other),
                                    })?;
                                let doc_id = tx.last_insert_rowid();
                                let meta_terms: Vec<String> =
                                    doc.metadata.iter().map(|(k, v)| meta_term(k, v)).collect();
                                for c in chunks {
                                    let heading = serde_json::to_string(&c.heading_path)
                                        .map_err(|e| Error::internal("heading", e))?;
                                    let location = serde_json::to_string(&c.location)
                                        .map_err(|e| Error::internal("location", e))?;
                                    ins_chunk
                                        .execute(params![
                                            doc_id,
                                            c.ordinal as i64,
                                            c.text,
                                            heading,
                                            location
                                        ])
                                        .map_err(sql_err("insert chunk"))?;
                                    entries.push(IndexEntry {
                                        chunk_id: tx.last_insert_rowid() as u64,
                                        source: path.clone(),
                                        title: index_title(&doc.title, &c.heading_path),
                                        text: c.text,
                                        meta: meta_terms.clone(),
                                        modified: doc.modified,
                                    });
                                }
                            }
                            journal.execute([&path]).map_err(sql_err("journal"))?;
                            touched.push(path);
                        }
                    }
                }
            }
            if !touched.is_empty() {
                // the content version answers are traced to
                tx.execute(
                    "INSERT INTO meta(key, value) VALUES('version', '1')
                     ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
                    [],
                )
                .map_err(sql_err("version"))?;
            }
            tx.commit().map_err(sql_err("commit"))?;
        }
        if !touched.is_empty() {
            self.forget_dense();
        }
        Ok((touched, entries))
    }

    /// Records files that could not be read (path, reason), replacing earlier reasons.
    pub fn record_failures(&self, failed: &[(String, String)]) -> Result<()> {
        if failed.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn()?;
        let tx = conn.transaction().map_err(sql_err("begin"))?;
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO failures(path, reason, at) VALUES(?1, ?2, ?3)
                     ON CONFLICT(path) DO UPDATE SET reason = excluded.reason, at = excluded.at",
                )
                .map_err(sql_err("prepare"))?;
            let ts = now();
            for (path, reason) in failed {
                st.execute(params![path, reason, ts])
                    .map_err(sql_err("record failure"))?;
            }
        }
        tx.commit().map_err(sql_err("commit"))
    }

    /// Forgets failures of files that no longer exist (`keep` says which paths to keep).
    pub fn prune_failures(&self, keep: impl Fn(&str) -> bool) -> Result<u64> {
        let gone: Vec<String> = self
            .failures()?
            .into_iter()
            .map(|f| f.path)
            .filter(|p| !keep(p))
            .collect();
        let conn = self.conn()?;
        for p in &gone {
            conn.execute("DELETE FROM failures WHERE path = ?1", [p])
                .map_err(sql_err("prune failure"))?;
        }
        Ok(gone.len() as u64)
    }

    /// Files whose last ingest failed, by path.
    pub fn failures(&self) -> Result<Vec<Failure>> {
        let conn = self.conn()?;
        let mut st = conn
            .prepare_cached("SELECT path, reason, at FROM failures ORDER BY path")
            .map_err(sql_err("failures"))?;
        let rows = st
            .query_map([], |r| {
                Ok(Failure {
                    path: r.get(0)?,
                    reason: r.get(1)?,
                    at: r.get(2)?,
                })
            })
            .map_err(sql_err("failures"))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(sql_err("failures"))
    }

    fn stats_impl(&self) -> Result<KbStats> {
        let conn = self.conn()?;
        let count = |sql: &str| -> Result<u64> {
            conn.query_row(sql, [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(sql_err("stats"))
        };
        Ok(KbStats {
            sources: count("SELECT COUNT(*) FROM sources")?,
            failed_sources: count("SELECT COUNT(*) FROM failures")?,
            documents: count("SELECT COUNT(*) FROM documents")?,
            chunks: count("SELECT COUNT(*) FROM chunks")?,
            text_bytes: count("SELECT COALESCE(SUM(LENGTH(CAST(text AS BLOB))), 0) FROM chunks")?,
            index_docs: self.index_doc_count(),
            disk_bytes: Self::dir_size(&self.dir),
        })
    }
}

/// A file that could not be read at its last ingest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    pub path: String,
    pub reason: String,
    /// Unix seconds.
    pub at: i64,
}

/// Test hook: `LUODI_CRASH_AT=<point>` aborts the process at that point, as `kill -9` would.
#[cfg(feature = "failpoints")]
fn crash_point(name: &str) {
    if std::env::var("LUODI_CRASH_AT").is_ok_and(|v| v == name) {
        std::process::abort();
    }
}
