//! The SQLite store: one file (`deskmate.sqlite3`) in the data directory.
//!
//! Owns the schema and every read and write of it. Invariants:
//! - WAL journal, foreign keys on. Several processes share the file (the window, `deskmate`
//!   commands): a writer waits up to [`BUSY_TIMEOUT`] for another's write to finish, and every
//!   transaction takes the write lock when it begins (`BEGIN IMMEDIATE`), because a read
//!   transaction that later writes cannot wait (SQLite answers `SQLITE_BUSY` at once). A wait
//!   that runs out is [`Error::Store(StoreError::Busy)`]; a full disk is [`Error::DiskFull`].
//! - The schema version is `PRAGMA user_version` and [`MIGRATIONS`] is append-only: migration *n*
//!   takes a database from version *n* to *n + 1* inside one write transaction that reads the
//!   version again once it holds the lock, so processes that open a new file at the same moment
//!   migrate it once, and a failed migration leaves the previous version intact.
//! - A database written by a newer Deskmate (a higher version) is refused, never modified.
//! - Writes that belong together (a message and its session's `updated_at`, a card and the copy of
//!   its text) are one transaction.
//! - Cards keep a copy of their message's text and session title, so deleting a session leaves its
//!   cards readable (`message_id`/`session_id` become NULL).
//! - `chunks_fts` is an external-content FTS5 table (trigram tokenizer, for Korean substrings) that
//!   triggers keep in step with `chunks`.
//!
//! Layout: this file opens the connection and runs the migrations ([`schema`]); the domain types
//! are in [`types`]; each repository is a file of `impl Store`: `profiles`, `sessions`,
//! `messages` (with attachments and the reply being written), `cards`, `request_log`. The
//! documents' tables are read and written by `documents::library` through [`Store::conn`].
//!
//! Threading: a [`Store`] holds one `rusqlite::Connection` and is `Send` but not `Sync`; callers
//! share it behind a mutex or open one per thread (WAL allows concurrent readers). Calls block:
//! from async code, run them on a blocking thread.

use crate::error::StoreError;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;
use crate::{Error, Result};

mod cards;
mod messages;
mod profiles;
mod request_log;
pub mod schema;
mod sessions;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
pub mod types;

pub(crate) use messages::png_data_url;
pub use schema::{latest_version, MIGRATIONS};
use sessions::touch_session;
use types::profile_from_row;
pub use types::*;

/// How long a write waits for another connection's write (another process's import, say)
/// before giving up with [`Error::Store(StoreError::Busy)`].
pub const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let conn = Connection::open(path).map_err(|e| store_err(path, e))?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.configure()?;
        store.migrate()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// For the modules that own other tables of this database (documents).
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    pub(crate) fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        store_err(&self.path, e)
    }

    fn configure(&mut self) -> Result<()> {
        self.conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| self.err(e))?;
        self.conn
            .set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        // journal_mode answers with a row, so it is a query, not an execute. Switching a new
        // file to WAL while another connection is opening it answers SQLITE_BUSY at once,
        // without the busy handler: it is retried here within the same bound.
        let mode: String = retry_busy(|| {
            self.conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        })
        .map_err(|e| self.err(e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %self.path.display(), mode, "database is not in WAL mode");
        }
        self.conn
            .execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
            .map_err(|e| self.err(e))
    }

    pub fn schema_version(&self) -> Result<i64> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    fn migrate(&mut self) -> Result<()> {
        let latest = latest_version();
        let path = self.path.clone();
        loop {
            // Checked without the lock first: an up-to-date database (every start but the first)
            // is not locked at all.
            let found = self.schema_version()?;
            if found > latest {
                return Err(Error::Store(StoreError::TooNew {
                    path,
                    found,
                    supported: latest,
                }));
            }
            if found == latest {
                return Ok(());
            }
            let tx = self.conn.transaction().map_err(|e| store_err(&path, e))?;
            // Another process may have migrated while this one waited for the lock.
            let found: i64 = tx
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(|e| store_err(&path, e))?;
            if found >= latest {
                continue;
            }
            let Some(sql) = MIGRATIONS.get(found.max(0) as usize) else {
                return Ok(());
            };
            tx.execute_batch(sql).map_err(|e| store_err(&path, e))?;
            // user_version cannot be bound as a parameter; the value is our own integer.
            tx.execute_batch(&format!("PRAGMA user_version = {}", found.max(0) + 1))
                .map_err(|e| store_err(&path, e))?;
            tx.commit().map_err(|e| store_err(&path, e))?;
            tracing::info!(path = %path.display(), version = found.max(0) + 1, "database migrated");
        }
    }

    pub fn counts(&self) -> Result<StoreCounts> {
        self.conn
            .query_row(
                "SELECT (SELECT count(*) FROM sessions), (SELECT count(*) FROM cards), (SELECT count(*) FROM documents)",
                [],
                |r| {
                    Ok(StoreCounts {
                        sessions: r.get(0)?,
                        cards: r.get(1)?,
                        documents: r.get(2)?,
                    })
                },
            )
            .map_err(|e| self.err(e))
    }
}

/// `NotFound` when an UPDATE or DELETE by id touched no row.
pub(crate) fn found(changed: usize, what: &'static str, id: i64) -> Result<()> {
    if changed == 0 {
        Err(Error::NotFound { what, id })
    } else {
        Ok(())
    }
}

/// Runs `f` again while SQLite answers `SQLITE_BUSY` without having waited, for at most
/// [`BUSY_TIMEOUT`] in all.
fn retry_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(2);
    loop {
        match f() {
            Err(e)
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && started.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// A SQLite error on the database at `path`. A lock wait that ran out and a full disk get
/// their own errors: they are the two a user can act on.
pub(crate) fn store_err(path: &Path, source: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode;
    match source.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            Error::Store(StoreError::Busy {
                path: path.to_path_buf(),
                seconds: BUSY_TIMEOUT.as_secs(),
                source: std::sync::Arc::new(source),
            })
        }
        Some(ErrorCode::DiskFull) => Error::DiskFull {
            path: path.to_path_buf(),
        },
        _ => Error::Store(StoreError::Sqlite {
            path: path.to_path_buf(),
            source: std::sync::Arc::new(source),
        }),
    }
}

/// Makes user text literal inside a LIKE pattern (with `ESCAPE '\'`).
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
