//! SQLite schema and migrations of a knowledge-base store.

use rusqlite::Connection;

/// Migrations in order; `user_version` holds how many have run.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: the first release
    "
    CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE sources(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        path TEXT NOT NULL UNIQUE,
        content_hash TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime INTEGER NOT NULL,
        ingested_at INTEGER NOT NULL
    );
    CREATE TABLE documents(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        source_id INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
        key TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL,
        modified INTEGER,
        content_hash TEXT NOT NULL,
        metadata TEXT NOT NULL
    );
    CREATE INDEX documents_source ON documents(source_id);
    CREATE TABLE chunks(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        ordinal INTEGER NOT NULL,
        text TEXT NOT NULL,
        heading_path TEXT NOT NULL,
        location TEXT NOT NULL
    );
    CREATE INDEX chunks_document ON chunks(document_id);
    CREATE TABLE index_journal(path TEXT PRIMARY KEY);
    ",
    // 2: files that could not be read at their last ingest, with the reason
    "
    CREATE TABLE failures(
        path TEXT PRIMARY KEY,
        reason TEXT NOT NULL,
        at INTEGER NOT NULL
    );
    ",
    // 3: chunk vectors for dense retrieval, deleted with their chunk
    "
    CREATE TABLE vectors(
        chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
        model TEXT NOT NULL,
        data BLOB NOT NULL
    );
    CREATE INDEX vectors_model ON vectors(model);
    ",
];

pub(crate) fn migrate(conn: &mut Connection) -> Result<u32, String> {
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if version as usize > MIGRATIONS.len() {
        return Err(format!(
            "schema version {version} is newer than this luodi understands ({}); upgrade luodi",
            MIGRATIONS.len()
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction().map_err(|e| e.to_string())?;
        tx.execute_batch(sql)
            .map_err(|e| format!("migration {}: {e}", i + 1))?;
        tx.pragma_update(None, "user_version", (i + 1) as u32)
            .map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())?;
    }
    Ok(MIGRATIONS.len() as u32)
}
