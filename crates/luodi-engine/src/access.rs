//! Who may use which knowledge base: API keys with scopes, an audit log, feedback on answers
//! and background jobs — all in the registry (`luodi.sqlite`), so the server stays a thin
//! translation of HTTP into calls on this module.
//!
//! A key's secret is shown once when it is made and stored only as its BLAKE3 hash; the key
//! is then known by its id (`k` + 10 hex digits), which is safe to log.

use luodi_core::{Error, Result};
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::answer::Evidence;
use crate::conversation::{new_id, now_secs};
use crate::home::Home;

/// The registry migration that adds keys, the audit log, feedback and jobs.
pub(crate) const MIGRATION: &str = "
    CREATE TABLE api_keys(
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        admin INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        revoked_at INTEGER
    );
    CREATE TABLE key_scopes(
        key_id TEXT NOT NULL REFERENCES api_keys(id),
        kb TEXT NOT NULL,
        write INTEGER NOT NULL,
        PRIMARY KEY(key_id, kb)
    ) WITHOUT ROWID;
    CREATE TABLE audit(
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        key_id TEXT,
        method TEXT NOT NULL,
        route TEXT NOT NULL,
        kb TEXT,
        status INTEGER NOT NULL,
        ms REAL NOT NULL,
        detail TEXT
    );
    CREATE INDEX audit_by_time ON audit(at);
    CREATE TABLE feedback(
        id TEXT PRIMARY KEY,
        created_at INTEGER NOT NULL,
        key_id TEXT,
        kb TEXT NOT NULL,
        conversation_id TEXT,
        turn_seq INTEGER,
        question TEXT NOT NULL,
        answer TEXT NOT NULL,
        citations TEXT NOT NULL,
        rating INTEGER NOT NULL,
        correction TEXT,
        comment TEXT
    );
    CREATE INDEX feedback_by_kb ON feedback(kb, created_at);
    CREATE TABLE jobs(
        id TEXT PRIMARY KEY,
        kb TEXT NOT NULL,
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        input TEXT NOT NULL,
        files_done INTEGER NOT NULL DEFAULT 0,
        files_total INTEGER NOT NULL DEFAULT 0,
        report TEXT,
        error TEXT
    );
    CREATE INDEX jobs_by_state ON jobs(state, created_at);
";

fn sql(context: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |e| Error::internal(context, e)
}

/// What a key may do with one knowledge base (`kb` is `*` for all of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    pub kb: String,
    /// Upload and delete documents, start ingest jobs; read is implied.
    pub write: bool,
}

/// A key as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    /// May manage knowledge bases and keys, and use every knowledge base.
    pub admin: bool,
    pub scopes: Vec<Scope>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl KeyInfo {
    /// Whether the key may read `kb`.
    pub fn can_read(&self, kb: &str) -> bool {
        self.admin || self.scopes.iter().any(|s| s.kb == kb || s.kb == "*")
    }

    /// Whether the key may change `kb`'s documents.
    pub fn can_write(&self, kb: &str) -> bool {
        self.admin
            || self
                .scopes
                .iter()
                .any(|s| (s.kb == kb || s.kb == "*") && s.write)
    }
}

/// Why a presented key is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRejection {
    Unknown,
    Revoked,
    Expired,
}

/// A new key: the secret, shown once, and what was stored.
#[derive(Debug, Clone, Serialize)]
pub struct NewKey {
    pub secret: String,
    pub key: KeyInfo,
}

fn key_hash(secret: &str) -> String {
    blake3::hash(secret.as_bytes()).to_hex().to_string()
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).map_err(|e| Error::internal("random key", e))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// One line of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditEntry {
    pub at: i64,
    pub key_id: Option<String>,
    pub method: String,
    /// The route (`/v1/kbs/{kb}/search`), not the URL: no query text is logged.
    pub route: String,
    pub kb: Option<String>,
    pub status: u16,
    pub ms: f64,
    /// More, at the level the policy allows (e.g. the question for a content policy).
    pub detail: Option<String>,
}

/// Feedback on one answer, kept with the question, answer, citations and knowledge base.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Feedback {
    pub id: String,
    pub created_at: i64,
    pub key_id: Option<String>,
    pub kb: String,
    pub conversation_id: Option<String>,
    pub turn_seq: Option<u32>,
    pub question: String,
    pub answer: String,
    pub citations: Vec<Evidence>,
    /// +1 thumbs up, -1 thumbs down, 0 a correction or comment only.
    pub rating: i32,
    pub correction: Option<String>,
    pub comment: Option<String>,
}

/// A background job (ingest of uploaded files).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Job {
    pub id: String,
    pub kb: String,
    pub kind: String,
    /// `queued`, `running`, `done` or `failed`.
    pub state: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// What the job works on (for ingest: the stored files).
    pub input: serde_json::Value,
    pub files_done: u64,
    pub files_total: u64,
    pub report: Option<serde_json::Value>,
    pub error: Option<String>,
}

fn job_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Job> {
    let input: String = r.get(6)?;
    let report: Option<String> = r.get(9)?;
    Ok(Job {
        id: r.get(0)?,
        kb: r.get(1)?,
        kind: r.get(2)?,
        state: r.get(3)?,
        created_at: r.get(4)?,
        updated_at: r.get(5)?,
        input: serde_json::from_str(&input).unwrap_or(serde_json::Value::Null),
        files_done: r.get::<_, i64>(7)? as u64,
        files_total: r.get::<_, i64>(8)? as u64,
        report: report.and_then(|s| serde_json::from_str(&s).ok()),
        error: r.get(10)?,
    })
}

const JOB_COLUMNS: &str = "id, kb, kind, state, created_at, updated_at, input, files_done, \
                           files_total, report, error";

impl Home {
    /// Makes a key. `expires_at`: seconds since the epoch. Scopes must name existing
    /// knowledge bases (or `*`).
    pub fn key_create(
        &self,
        name: &str,
        admin: bool,
        scopes: &[Scope],
        expires_at: Option<i64>,
    ) -> Result<NewKey> {
        if name.trim().is_empty() || name.chars().count() > 100 {
            return Err(Error::InvalidInput(
                "key name: give 1-100 characters".into(),
            ));
        }
        for s in scopes {
            if s.kb != "*" && self.get(&s.kb)?.is_none() {
                return Err(Error::InvalidInput(format!(
                    "scope: no knowledge base {:?}",
                    s.kb
                )));
            }
        }
        let secret = format!("ld-{}", random_hex(24)?);
        let id = format!("k{}", &key_hash(&secret)[..10]);
        let now = now_secs();
        let mut conn = self.registry()?;
        let tx = conn.transaction().map_err(sql("keys"))?;
        tx.execute(
            "INSERT INTO api_keys(id, name, hash, admin, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, name.trim(), key_hash(&secret), admin, now, expires_at],
        )
        .map_err(sql("keys"))?;
        for s in scopes {
            tx.execute(
                "INSERT OR REPLACE INTO key_scopes(key_id, kb, write) VALUES (?1, ?2, ?3)",
                params![id, s.kb, s.write],
            )
            .map_err(sql("keys"))?;
        }
        tx.commit().map_err(sql("keys"))?;
        drop(conn);
        let key = self
            .key(&id)?
            .ok_or_else(|| Error::internal("keys", "key vanished after insert"))?;
        Ok(NewKey { secret, key })
    }

    fn key_scopes(&self, conn: &rusqlite::Connection, id: &str) -> Result<Vec<Scope>> {
        let mut st = conn
            .prepare_cached("SELECT kb, write FROM key_scopes WHERE key_id = ?1 ORDER BY kb")
            .map_err(sql("keys"))?;
        let rows = st
            .query_map([id], |r| {
                Ok(Scope {
                    kb: r.get(0)?,
                    write: r.get(1)?,
                })
            })
            .map_err(sql("keys"))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(sql("keys"))
    }

    fn key_row(conn: &rusqlite::Connection, by: &str, v: &str) -> Result<Option<KeyInfo>> {
        let q = format!(
            "SELECT id, name, admin, created_at, expires_at, revoked_at FROM api_keys WHERE {by} = ?1"
        );
        conn.prepare_cached(&q)
            .map_err(sql("keys"))?
            .query_row([v], |r| {
                Ok(KeyInfo {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    admin: r.get(2)?,
                    scopes: Vec::new(),
                    created_at: r.get(3)?,
                    expires_at: r.get(4)?,
                    revoked_at: r.get(5)?,
                })
            })
            .optional()
            .map_err(sql("keys"))
    }

    /// A key by id.
    pub fn key(&self, id: &str) -> Result<Option<KeyInfo>> {
        let conn = self.registry()?;
        let Some(mut k) = Self::key_row(&conn, "id", id)? else {
            return Ok(None);
        };
        k.scopes = self.key_scopes(&conn, &k.id)?;
        Ok(Some(k))
    }

    /// The key a request presents, if it is known, not revoked and not expired.
    pub fn key_authenticate(
        &self,
        secret: &str,
    ) -> Result<std::result::Result<KeyInfo, KeyRejection>> {
        let conn = self.registry()?;
        let Some(mut k) = Self::key_row(&conn, "hash", &key_hash(secret))? else {
            return Ok(Err(KeyRejection::Unknown));
        };
        if k.revoked_at.is_some() {
            return Ok(Err(KeyRejection::Revoked));
        }
        if k.expires_at.is_some_and(|t| t <= now_secs()) {
            return Ok(Err(KeyRejection::Expired));
        }
        k.scopes = self.key_scopes(&conn, &k.id)?;
        Ok(Ok(k))
    }

    /// Every key, oldest first.
    pub fn keys(&self) -> Result<Vec<KeyInfo>> {
        let ids: Vec<String> = {
            let conn = self.registry()?;
            let mut st = conn
                .prepare_cached("SELECT id FROM api_keys ORDER BY created_at, id")
                .map_err(sql("keys"))?;
            let rows = st.query_map([], |r| r.get(0)).map_err(sql("keys"))?;
            rows.collect::<std::result::Result<_, _>>()
                .map_err(sql("keys"))?
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(k) = self.key(&id)? {
                out.push(k);
            }
        }
        Ok(out)
    }

    /// Whether any admin key that still works exists.
    pub fn has_admin_key(&self) -> Result<bool> {
        let conn = self.registry()?;
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM api_keys WHERE admin = 1 AND revoked_at IS NULL
                 AND (expires_at IS NULL OR expires_at > ?1)",
                [now_secs()],
                |r| r.get(0),
            )
            .map_err(sql("keys"))?;
        Ok(n > 0)
    }

    /// Revokes a key at once; `false` if there was no such key.
    pub fn key_revoke(&self, id: &str) -> Result<bool> {
        let conn = self.registry()?;
        let n = conn
            .execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1",
                params![id, now_secs()],
            )
            .map_err(sql("keys"))?;
        Ok(n > 0)
    }

    /// Forgets the scopes that name `kb` (when it is deleted, so that a knowledge base made
    /// later with the same name is not open to the old keys).
    pub(crate) fn forget_kb_scopes(conn: &rusqlite::Connection, kb: &str) -> Result<()> {
        conn.execute("DELETE FROM key_scopes WHERE kb = ?1", [kb])
            .map_err(sql("keys"))?;
        Ok(())
    }

    /// Appends to the audit log.
    pub fn audit(&self, e: &AuditEntry) -> Result<()> {
        let conn = self.registry()?;
        conn.prepare_cached(
            "INSERT INTO audit(at, key_id, method, route, kb, status, ms, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(sql("audit"))?
        .execute(params![
            e.at, e.key_id, e.method, e.route, e.kb, e.status, e.ms, e.detail
        ])
        .map_err(sql("audit"))?;
        Ok(())
    }

    /// The latest audit entries, newest first; of one key when `key_id` is given.
    pub fn audit_log(&self, key_id: Option<&str>, limit: usize) -> Result<Vec<AuditEntry>> {
        let conn = self.registry()?;
        let mut st = conn
            .prepare_cached(
                "SELECT at, key_id, method, route, kb, status, ms, detail FROM audit
                 WHERE ?1 IS NULL OR key_id = ?1 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(sql("audit"))?;
        let rows = st
            .query_map(params![key_id, limit.min(i64::MAX as usize) as i64], |r| {
                Ok(AuditEntry {
                    at: r.get(0)?,
                    key_id: r.get(1)?,
                    method: r.get(2)?,
                    route: r.get(3)?,
                    kb: r.get(4)?,
                    status: r.get(5)?,
                    ms: r.get(6)?,
                    detail: r.get(7)?,
                })
            })
            .map_err(sql("audit"))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(sql("audit"))
    }

    /// Stores feedback (its `id` and `created_at` are set here).
    pub fn feedback_add(&self, f: &Feedback) -> Result<Feedback> {
        if !(-1..=1).contains(&f.rating) {
            return Err(Error::InvalidInput(format!(
                "rating: {} is not -1, 0 or 1",
                f.rating
            )));
        }
        let mut f = f.clone();
        f.id = new_id();
        f.created_at = now_secs();
        let citations =
            serde_json::to_string(&f.citations).map_err(|e| Error::internal("feedback", e))?;
        let conn = self.registry()?;
        conn.execute(
            "INSERT INTO feedback(id, created_at, key_id, kb, conversation_id, turn_seq, question,
                                  answer, citations, rating, correction, comment)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                f.id,
                f.created_at,
                f.key_id,
                f.kb,
                f.conversation_id,
                f.turn_seq,
                f.question,
                f.answer,
                citations,
                f.rating,
                f.correction,
                f.comment
            ],
        )
        .map_err(sql("feedback"))?;
        Ok(f)
    }

    /// Feedback on `kb`'s answers, newest first.
    pub fn feedback(&self, kb: &str, limit: usize) -> Result<Vec<Feedback>> {
        self.feedback_where(kb, None, limit)
    }

    /// One piece of feedback on `kb`'s answers, by its id (or a unique prefix of it).
    pub fn feedback_get(&self, kb: &str, id: &str) -> Result<Option<Feedback>> {
        let id = id.trim();
        if id.is_empty() {
            return Ok(None);
        }
        let found = self.feedback_where(kb, Some(&id.replace(['%', '_'], "")), 2)?;
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.into_iter().next()),
            _ => Err(Error::InvalidInput(format!(
                "feedback id {id:?} is the start of more than one id: give more of it"
            ))),
        }
    }

    /// `kb`'s feedback, newest first; only ids starting with `prefix` when given.
    fn feedback_where(
        &self,
        kb: &str,
        prefix: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Feedback>> {
        let conn = self.registry()?;
        let mut st = conn
            .prepare_cached(
                "SELECT id, created_at, key_id, kb, conversation_id, turn_seq, question, answer,
                        citations, rating, correction, comment
                 FROM feedback WHERE kb = ?1 AND (?3 IS NULL OR id LIKE ?3 || '%')
                 ORDER BY created_at DESC, id DESC LIMIT ?2",
            )
            .map_err(sql("feedback"))?;
        let rows = st
            .query_map(
                params![kb, limit.min(i64::MAX as usize) as i64, prefix],
                |r| {
                    let citations: String = r.get(8)?;
                    Ok(Feedback {
                        id: r.get(0)?,
                        created_at: r.get(1)?,
                        key_id: r.get(2)?,
                        kb: r.get(3)?,
                        conversation_id: r.get(4)?,
                        turn_seq: r.get(5)?,
                        question: r.get(6)?,
                        answer: r.get(7)?,
                        citations: serde_json::from_str(&citations).unwrap_or_default(),
                        rating: r.get(9)?,
                        correction: r.get(10)?,
                        comment: r.get(11)?,
                    })
                },
            )
            .map_err(sql("feedback"))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(sql("feedback"))
    }

    /// Records a queued job.
    pub fn job_create(&self, kb: &str, kind: &str, input: &serde_json::Value) -> Result<Job> {
        let id = new_id();
        let now = now_secs();
        let conn = self.registry()?;
        conn.execute(
            "INSERT INTO jobs(id, kb, kind, state, created_at, updated_at, input)
             VALUES (?1, ?2, ?3, 'queued', ?4, ?4, ?5)",
            params![id, kb, kind, now, input.to_string()],
        )
        .map_err(sql("jobs"))?;
        drop(conn);
        self.job(&id)?
            .ok_or_else(|| Error::internal("jobs", "job vanished after insert"))
    }

    pub fn job(&self, id: &str) -> Result<Option<Job>> {
        let conn = self.registry()?;
        let job = conn
            .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))
            .map_err(sql("jobs"))?
            .query_row([id], job_from_row)
            .optional()
            .map_err(sql("jobs"))?;
        Ok(job)
    }

    /// Jobs of one knowledge base (or all), newest first.
    pub fn jobs(&self, kb: Option<&str>, limit: usize) -> Result<Vec<Job>> {
        let conn = self.registry()?;
        let mut st = conn
            .prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE ?1 IS NULL OR kb = ?1
                 ORDER BY created_at DESC, id DESC LIMIT ?2"
            ))
            .map_err(sql("jobs"))?;
        let rows = st
            .query_map(
                params![kb, limit.min(i64::MAX as usize) as i64],
                job_from_row,
            )
            .map_err(sql("jobs"))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(sql("jobs"))
    }

    /// Jobs not finished (queued, or running when the process stopped), oldest first: what a
    /// starting server resumes.
    pub fn jobs_unfinished(&self) -> Result<Vec<Job>> {
        let conn = self.registry()?;
        let mut st = conn
            .prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE state IN ('queued', 'running')
                 ORDER BY created_at, id"
            ))
            .map_err(sql("jobs"))?;
        let rows = st.query_map([], job_from_row).map_err(sql("jobs"))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(sql("jobs"))
    }

    /// Moves a job on: its state, progress, and at the end its report or error.
    pub fn job_update(
        &self,
        id: &str,
        state: &str,
        files: (u64, u64),
        report: Option<&serde_json::Value>,
        error: Option<&str>,
    ) -> Result<()> {
        let conn = self.registry()?;
        conn.prepare_cached(
            "UPDATE jobs SET state = ?2, updated_at = ?3, files_done = ?4, files_total = ?5,
                    report = coalesce(?6, report), error = coalesce(?7, error) WHERE id = ?1",
        )
        .map_err(sql("jobs"))?
        .execute(params![
            id,
            state,
            now_secs(),
            files.0 as i64,
            files.1 as i64,
            report.map(|r| r.to_string()),
            error
        ])
        .map_err(sql("jobs"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_decide_read_and_write() {
        let k = KeyInfo {
            id: "k1".into(),
            name: "finance".into(),
            admin: false,
            scopes: vec![
                Scope {
                    kb: "finance".into(),
                    write: true,
                },
                Scope {
                    kb: "hr".into(),
                    write: false,
                },
            ],
            created_at: 0,
            expires_at: None,
            revoked_at: None,
        };
        assert!(k.can_read("finance") && k.can_write("finance"));
        assert!(k.can_read("hr") && !k.can_write("hr"));
        assert!(!k.can_read("sales") && !k.can_write("sales"));
        let all = KeyInfo {
            scopes: vec![Scope {
                kb: "*".into(),
                write: false,
            }],
            ..k.clone()
        };
        assert!(all.can_read("sales") && !all.can_write("sales"));
        let admin = KeyInfo {
            admin: true,
            scopes: vec![],
            ..k
        };
        assert!(admin.can_read("x") && admin.can_write("x"));
    }
}
