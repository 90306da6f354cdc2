//! The data directory and its registry of knowledge bases.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use luodi_core::{Backend, Error, KbStats, Result, SearchHit, SearchQuery};
use luodi_index::{AnalyzerConfig, EmbeddedStore, StoreOptions};
use luodi_ingest::ChunkConfig;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

const REGISTRY_MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE kbs(
        name TEXT PRIMARY KEY,
        created_at INTEGER NOT NULL,
        config TEXT NOT NULL
    );
",
    crate::conversation::MIGRATION,
    crate::access::MIGRATION,
    crate::glossary::MIGRATION,
    crate::faq::MIGRATION,
    crate::glossary::REJECTIONS_MIGRATION,
    crate::faq::MODE_MIGRATION,
];

/// Settings fixed when a knowledge base is created.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct KbConfig {
    pub analyzer: AnalyzerConfig,
    pub target_chars: usize,
    pub max_chars: usize,
    pub overlap_chars: usize,
}

impl Default for KbConfig {
    fn default() -> Self {
        let c = ChunkConfig::default();
        KbConfig {
            analyzer: AnalyzerConfig::default(),
            target_chars: c.target_chars,
            max_chars: c.max_chars,
            overlap_chars: c.overlap_chars,
        }
    }
}

impl KbConfig {
    pub fn chunk_config(&self) -> ChunkConfig {
        ChunkConfig {
            target_chars: self.target_chars,
            max_chars: self.max_chars,
            overlap_chars: self.overlap_chars,
        }
    }
}

/// A knowledge base as listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KbInfo {
    pub name: String,
    pub created_at: i64,
    pub config: KbConfig,
}

/// A data directory.
pub struct Home {
    root: PathBuf,
    registry: Mutex<Connection>,
}

fn sql(context: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |e| Error::internal(context, e)
}

/// Checks a knowledge-base name: letters (any script), digits, `-` and `_`, 1–64 characters.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.chars().count() <= 64
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "invalid knowledge base name {name:?}: use 1-64 letters, digits, '-' or '_' (not starting with '-')"
        )))
    }
}

impl Home {
    /// Opens (creating if needed) the data directory at `root`.
    pub fn open(root: &Path) -> Result<Home> {
        std::fs::create_dir_all(root.join("kb")).map_err(|e| Error::io(root, e))?;
        let path = root.join("luodi.sqlite");
        let mut conn = Connection::open(&path).map_err(|e| Error::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql("registry"))?;
        // WAL with NORMAL: a killed process loses nothing committed; only a power cut can
        // lose the last transactions, never corrupt the file
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql("registry"))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sql("registry"))?;
        let version: usize = conn
            .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
            .map_err(sql("registry"))? as usize;
        if version > REGISTRY_MIGRATIONS.len() {
            return Err(Error::Corrupt {
                path,
                reason: format!(
                    "registry schema version {version} is newer than this luodi; upgrade luodi"
                ),
            });
        }
        for (i, m) in REGISTRY_MIGRATIONS.iter().enumerate().skip(version) {
            let tx = conn.transaction().map_err(sql("registry"))?;
            tx.execute_batch(m).map_err(sql("registry migration"))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(sql("registry"))?;
            tx.commit().map_err(sql("registry"))?;
        }
        Ok(Home {
            root: root.to_owned(),
            registry: Mutex::new(conn),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn kb_dir(&self, name: &str) -> PathBuf {
        self.root.join("kb").join(name)
    }

    /// Where documents uploaded to `name` through the API are kept (they are ingested from
    /// there, so the knowledge base can be rebuilt from its own files).
    pub fn files_dir(&self, name: &str) -> PathBuf {
        self.root.join("files").join(name)
    }

    pub(crate) fn registry(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        self.registry
            .lock()
            .map_err(|_| Error::internal("registry", "lock poisoned"))
    }

    pub fn get(&self, name: &str) -> Result<Option<KbInfo>> {
        let row: Option<(i64, String)> = self
            .registry()?
            .query_row(
                "SELECT created_at, config FROM kbs WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(sql("registry"))?;
        match row {
            None => Ok(None),
            Some((created_at, cfg)) => Ok(Some(KbInfo {
                name: name.to_owned(),
                created_at,
                config: serde_json::from_str(&cfg).map_err(|e| Error::Corrupt {
                    path: self.root.join("luodi.sqlite"),
                    reason: format!("config of {name}: {e}"),
                })?,
            })),
        }
    }

    /// Creates a knowledge base. Its store is created before it is registered, so a crash
    /// leaves at worst an unregistered directory that the next create reuses.
    pub fn create(&self, name: &str, config: KbConfig) -> Result<KbInfo> {
        validate_name(name)?;
        if self.get(name)?.is_some() {
            return Err(Error::KbExists(name.to_owned()));
        }
        let dir = self.kb_dir(name);
        if dir.exists() {
            // leftover of a crashed create or delete: not registered, so not anyone's data
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        EmbeddedStore::open(&dir, store_options(&config))?;
        let created_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let cfg = serde_json::to_string(&config).map_err(|e| Error::internal("config", e))?;
        self.registry()?
            .execute(
                "INSERT INTO kbs(name, created_at, config) VALUES(?1, ?2, ?3)",
                params![name, created_at, cfg],
            )
            .map_err(sql("registry"))?;
        Ok(KbInfo {
            name: name.to_owned(),
            created_at,
            config,
        })
    }

    pub fn list(&self) -> Result<Vec<KbInfo>> {
        let names: Vec<String> = {
            let reg = self.registry()?;
            let mut st = reg
                .prepare("SELECT name FROM kbs ORDER BY name")
                .map_err(sql("registry"))?;
            let rows = st.query_map([], |r| r.get(0)).map_err(sql("registry"))?;
            rows.collect::<std::result::Result<_, _>>()
                .map_err(sql("registry"))?
        };
        let mut out = Vec::new();
        for n in names {
            if let Some(info) = self.get(&n)? {
                out.push(info);
            }
        }
        Ok(out)
    }

    /// Deletes a knowledge base: unregistered first (atomic), then its directory removed.
    pub fn delete(&self, name: &str) -> Result<()> {
        if self.get(name)?.is_none() {
            return Err(Error::UnknownKb(name.to_owned()));
        }
        {
            // the knowledge base and its conversations go together
            let mut conn = self.registry()?;
            let tx = conn.transaction().map_err(sql("registry"))?;
            tx.execute(
                "DELETE FROM turns WHERE conversation_id IN (SELECT id FROM conversations WHERE kb = ?1)",
                [name],
            )
            .map_err(sql("registry"))?;
            tx.execute("DELETE FROM conversations WHERE kb = ?1", [name])
                .map_err(sql("registry"))?;
            tx.execute("DELETE FROM kbs WHERE name = ?1", [name])
                .map_err(sql("registry"))?;
            tx.execute("DELETE FROM feedback WHERE kb = ?1", [name])
                .map_err(sql("registry"))?;
            tx.execute("DELETE FROM glossary WHERE kb = ?1", [name])
                .map_err(sql("registry"))?;
            tx.execute("DELETE FROM glossary_history WHERE kb = ?1", [name])
                .map_err(sql("registry"))?;
            tx.execute("DELETE FROM faqs WHERE kb = ?1", [name])
                .map_err(sql("registry"))?;
            tx.execute("DELETE FROM glossary_rejected WHERE kb = ?1", [name])
                .map_err(sql("registry"))?;
            tx.execute("DELETE FROM kb_words WHERE kb = ?1", [name])
                .map_err(sql("registry"))?;
            tx.execute("DELETE FROM faq_modes WHERE kb = ?1", [name])
                .map_err(sql("registry"))?;
            Home::forget_kb_scopes(&tx, name)?;
            tx.commit().map_err(sql("registry"))?;
        }
        for dir in [self.kb_dir(name), self.files_dir(name)] {
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            }
        }
        Ok(())
    }

    /// A number raised by every change to the glossary or the FAQs of `kb`, from this process
    /// or another (the CLI beside a running server): an open knowledge base older than it
    /// should be reopened.
    pub fn words_version(&self, kb: &str) -> Result<i64> {
        self.registry()?
            .query_row(
                "SELECT COALESCE((SELECT version FROM kb_words WHERE kb = ?1), 0)",
                [kb],
                |r| r.get(0),
            )
            .map_err(sql("registry"))
    }

    /// The same knowledge base (its store shared, not opened again: a writer may hold it) with
    /// its glossary and FAQs read anew.
    pub fn reload_words(&self, kb: &Kb) -> Result<Kb> {
        self.with_words(kb.info.clone(), kb.store.clone())
    }

    /// Opens a registered knowledge base.
    pub fn open_kb(&self, name: &str) -> Result<Kb> {
        let info = self
            .get(name)?
            .ok_or_else(|| Error::UnknownKb(name.to_owned()))?;
        let store = std::sync::Arc::new(EmbeddedStore::open(
            &self.kb_dir(name),
            store_options(&info.config),
        )?);
        self.with_words(info, store)
    }

    /// A knowledge base over `store` with its glossary and FAQs as they are now (the version
    /// read first, so a change made meanwhile leaves it older, never newer, than its words).
    fn with_words(&self, info: KbInfo, store: std::sync::Arc<EmbeddedStore>) -> Result<Kb> {
        let words_version = self.words_version(&info.name)?;
        let glossary = self.glossary(&info.name)?;
        let faqs = self.faqs(&info.name)?;
        let faq_mode = self.faq_mode(&info.name)?;
        Ok(Kb {
            info,
            store,
            words_version,
            glossary,
            faqs,
            faq_mode,
            faq_vectors: Default::default(),
            script: Default::default(),
            match_script: true,
        })
    }
}

pub(crate) fn store_options(config: &KbConfig) -> StoreOptions {
    StoreOptions {
        analyzer: config.analyzer,
        ..StoreOptions::default()
    }
}

/// An open knowledge base.
pub struct Kb {
    pub info: KbInfo,
    /// Shared by the copies [`Home::reload_words`] makes.
    pub store: std::sync::Arc<EmbeddedStore>,
    /// The version of its glossary and FAQs when opened ([`Home::words_version`]).
    pub words_version: i64,
    /// Its glossary as it was when opened: searches read questions in its words.
    pub glossary: crate::glossary::Glossary,
    /// Its vetted FAQs as they were when opened: answered first.
    pub faqs: Vec<crate::faq::Faq>,
    /// How readily it answers from them.
    pub faq_mode: crate::faq::FaqMode,
    /// The FAQs' vectors, computed at the first question that needs them.
    pub faq_vectors: std::sync::OnceLock<crate::faq::FaqVectors>,
    /// The script most of its documents are in, once known ([`Kb::documents_script`]).
    pub script: std::sync::OnceLock<luodi_text::Script>,
    /// Embed a question written in the other Chinese script in the documents' script
    /// (on by default; off to measure without).
    pub match_script: bool,
}

impl Kb {
    /// Opens a store directly (for throw-away evaluation stores outside any registry).
    pub fn open_at(dir: &Path, name: &str, config: KbConfig) -> Result<Kb> {
        let store = std::sync::Arc::new(EmbeddedStore::open(dir, store_options(&config))?);
        Ok(Kb {
            info: KbInfo {
                name: name.to_owned(),
                created_at: 0,
                config,
            },
            store,
            words_version: 0,
            glossary: Default::default(),
            faqs: Vec::new(),
            faq_mode: Default::default(),
            faq_vectors: Default::default(),
            script: Default::default(),
            match_script: true,
        })
    }

    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// BM25 search, the question read with the glossary (full forms and synonyms added).
    pub fn search(&self, query: &SearchQuery) -> Result<Vec<SearchHit>> {
        let x = self.glossary.expand(&query.text);
        if x.lexical == query.text {
            return self.store.search(query);
        }
        self.store.search(&SearchQuery {
            text: x.lexical,
            ..query.clone()
        })
    }

    pub fn stats(&self) -> Result<KbStats> {
        self.store.stats()
    }
}
