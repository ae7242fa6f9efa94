//! The SQLite store: one file (`deskmate.sqlite3`) in the data directory.
//!
//! Owns the schema and every read and write of it. Invariants:
//! - WAL journal, foreign keys on. Several processes share the file (the window, `deskmate`
//!   commands): a writer waits up to [`BUSY_TIMEOUT`] for another's write to finish, and every
//!   transaction takes the write lock when it begins (`BEGIN IMMEDIATE`), because a read
//!   transaction that later writes cannot wait (SQLite answers `SQLITE_BUSY` at once). A wait
//!   that runs out is [`Error::StoreBusy`]; a full disk is [`Error::DiskFull`].
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
//! Threading: a [`Store`] holds one `rusqlite::Connection` and is `Send` but not `Sync`; callers
//! share it behind a mutex or open one per thread (WAL allows concurrent readers). Calls block:
//! from async code, run them on a blocking thread.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;
use crate::{Error, Result};

/// Schema migrations, in order. Never edit a shipped entry: append a new one.
pub const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    r#"
    CREATE TABLE profiles (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE CHECK (length(trim(name)) > 0),
        -- highest access level this profile may read: 0 public, 1 internal, 2 confidential, 3 restricted
        clearance   INTEGER NOT NULL CHECK (clearance BETWEEN 0 AND 3),
        created_at  INTEGER NOT NULL
    );
    -- The machine's owner: sees everything they import. Shared workstations add lower-clearance profiles.
    INSERT INTO profiles (name, clearance, created_at) VALUES ('default', 3, CAST(unixepoch('subsec') * 1000 AS INTEGER));

    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    INSERT INTO settings (key, value) VALUES ('active_profile_id', '1');

    CREATE TABLE sessions (
        id                 INTEGER PRIMARY KEY,
        profile_id         INTEGER NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
        title              TEXT NOT NULL DEFAULT '',
        title_is_auto      INTEGER NOT NULL DEFAULT 1,
        persona            TEXT NOT NULL CHECK (persona IN ('office', 'character')),
        tone               TEXT CHECK (tone IN ('polite', 'friendly')),
        character_name     TEXT,
        character_greeting TEXT,
        character_context  TEXT,
        created_at         INTEGER NOT NULL,
        updated_at         INTEGER NOT NULL
    );
    CREATE INDEX sessions_by_recency ON sessions (profile_id, updated_at DESC);

    CREATE TABLE messages (
        id                INTEGER PRIMARY KEY,
        session_id        INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        role              TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
        content           TEXT NOT NULL,
        -- interrupted: stopped or failed mid-reply; the partial text is kept
        status            TEXT NOT NULL DEFAULT 'complete' CHECK (status IN ('complete', 'streaming', 'interrupted')),
        model             TEXT,
        prompt_tokens     INTEGER,
        completion_tokens INTEGER,
        created_at        INTEGER NOT NULL
    );
    CREATE INDEX messages_by_session ON messages (session_id, id);

    CREATE TABLE attachments (
        id          INTEGER PRIMARY KEY,
        message_id  INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        kind        TEXT NOT NULL CHECK (kind IN ('image', 'audio', 'file')),
        file_name   TEXT NOT NULL,
        mime        TEXT NOT NULL,
        size_bytes  INTEGER NOT NULL,
        stored_path TEXT NOT NULL,
        width       INTEGER,
        height      INTEGER,
        thumbnail   BLOB,
        created_at  INTEGER NOT NULL
    );
    CREATE INDEX attachments_by_message ON attachments (message_id);

    CREATE TABLE cards (
        id            INTEGER PRIMARY KEY,
        profile_id    INTEGER NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
        message_id    INTEGER REFERENCES messages(id) ON DELETE SET NULL,
        session_id    INTEGER REFERENCES sessions(id) ON DELETE SET NULL,
        session_title TEXT NOT NULL,
        role          TEXT NOT NULL,
        content       TEXT NOT NULL,
        note          TEXT NOT NULL DEFAULT '',
        created_at    INTEGER NOT NULL
    );
    CREATE INDEX cards_by_recency ON cards (profile_id, created_at DESC);

    CREATE TABLE documents (
        id             INTEGER PRIMARY KEY,
        path           TEXT NOT NULL UNIQUE,
        file_name      TEXT NOT NULL,
        kind           TEXT NOT NULL,
        content_sha256 TEXT NOT NULL,
        size_bytes     INTEGER NOT NULL,
        access_level   INTEGER NOT NULL DEFAULT 1 CHECK (access_level BETWEEN 0 AND 3),
        status         TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'indexing', 'indexed', 'failed')),
        error          TEXT,
        chunk_count    INTEGER NOT NULL DEFAULT 0,
        imported_at    INTEGER NOT NULL,
        indexed_at     INTEGER
    );

    CREATE TABLE chunks (
        id          INTEGER PRIMARY KEY,
        document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        ordinal     INTEGER NOT NULL,
        text        TEXT NOT NULL,
        page        INTEGER,
        section     TEXT,
        char_start  INTEGER NOT NULL,
        char_end    INTEGER NOT NULL,
        token_count INTEGER NOT NULL,
        embedding   BLOB,
        UNIQUE (document_id, ordinal)
    );
    CREATE VIRTUAL TABLE chunks_fts USING fts5 (text, content = 'chunks', content_rowid = 'id', tokenize = 'trigram');
    CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
        INSERT INTO chunks_fts (rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
        INSERT INTO chunks_fts (chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END;
    CREATE TRIGGER chunks_fts_update AFTER UPDATE OF text ON chunks BEGIN
        INSERT INTO chunks_fts (chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO chunks_fts (rowid, text) VALUES (new.id, new.text);
    END;

    CREATE TABLE request_log (
        id                INTEGER PRIMARY KEY,
        model             TEXT NOT NULL,
        persona           TEXT,
        started_at        INTEGER NOT NULL,
        outcome           TEXT NOT NULL CHECK (outcome IN ('ok', 'cancelled', 'busy', 'error')),
        error_code        TEXT,
        prompt_tokens     INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        queue_ms          INTEGER,
        ttft_ms           INTEGER,
        prompt_ms         INTEGER,
        generation_ms     INTEGER,
        total_ms          INTEGER
    );
    CREATE INDEX request_log_by_model ON request_log (model, started_at);
    "#,
    // 2: why a reply was interrupted, and the follow-up questions suggested after an answer.
    r#"
    ALTER TABLE messages ADD COLUMN error_code TEXT;
    -- a JSON array of strings
    ALTER TABLE messages ADD COLUMN suggestions TEXT NOT NULL DEFAULT '[]';
    "#,
    // 3: documents: the vector index's epoch, resumable import jobs, the sources of grounded replies.
    r#"
    -- One row. `vector_epoch` changes with every change to chunks, so a saved vector index
    -- that records another epoch is known to be stale and is rebuilt from stored embeddings.
    CREATE TABLE documents_state (
        id              INTEGER PRIMARY KEY CHECK (id = 1),
        vector_epoch    INTEGER NOT NULL DEFAULT 0,
        embedding_model TEXT
    );
    INSERT INTO documents_state (id) VALUES (1);
    CREATE TRIGGER chunks_epoch_insert AFTER INSERT ON chunks BEGIN
        UPDATE documents_state SET vector_epoch = vector_epoch + 1 WHERE id = 1;
    END;
    CREATE TRIGGER chunks_epoch_delete AFTER DELETE ON chunks BEGIN
        UPDATE documents_state SET vector_epoch = vector_epoch + 1 WHERE id = 1;
    END;
    CREATE TRIGGER chunks_epoch_embedding AFTER UPDATE OF embedding ON chunks BEGIN
        UPDATE documents_state SET vector_epoch = vector_epoch + 1 WHERE id = 1;
    END;
    CREATE INDEX chunks_by_document ON chunks (document_id, ordinal);

    CREATE TABLE import_jobs (
        id          INTEGER PRIMARY KEY,
        -- the level given for new documents, NULL: the default (internal) for new ones, unchanged for known ones
        level       INTEGER CHECK (level BETWEEN 0 AND 3),
        status      TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done', 'cancelled')),
        created_at  INTEGER NOT NULL,
        finished_at INTEGER
    );
    CREATE TABLE import_files (
        id          INTEGER PRIMARY KEY,
        job_id      INTEGER NOT NULL REFERENCES import_jobs(id) ON DELETE CASCADE,
        path        TEXT NOT NULL,
        status      TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'added', 'replaced', 'unchanged', 'failed')),
        error_code  TEXT,
        error       TEXT,
        document_id INTEGER REFERENCES documents(id) ON DELETE SET NULL,
        chunks      INTEGER NOT NULL DEFAULT 0,
        UNIQUE (job_id, path)
    );

    -- Whole words (prefix queries) for Latin-script terms: trigram phrase queries over common
    -- trigrams ("pyt", "ion") read long posting lists; a word index answers them in a fraction.
    CREATE VIRTUAL TABLE chunks_words USING fts5 (text, content = 'chunks', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2');
    CREATE TRIGGER chunks_words_insert AFTER INSERT ON chunks BEGIN
        INSERT INTO chunks_words (rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER chunks_words_delete AFTER DELETE ON chunks BEGIN
        INSERT INTO chunks_words (chunks_words, rowid, text) VALUES ('delete', old.id, old.text);
    END;
    CREATE TRIGGER chunks_words_update AFTER UPDATE OF text ON chunks BEGIN
        INSERT INTO chunks_words (chunks_words, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO chunks_words (rowid, text) VALUES (new.id, new.text);
    END;

    -- What the trigram index cannot find: 1–2 character terms (see documents::keyword).
    CREATE VIRTUAL TABLE chunks_bigram USING fts5 (terms, content = '', contentless_delete = 1, tokenize = 'unicode61');
    CREATE TRIGGER chunks_bigram_delete AFTER DELETE ON chunks BEGIN
        DELETE FROM chunks_bigram WHERE rowid = old.id;
    END;

    -- the passages a grounded reply was given, as a JSON array
    ALTER TABLE messages ADD COLUMN sources TEXT NOT NULL DEFAULT '[]';
    "#,
    // 4: import jobs belong to the process running them (see crate::owner), and keep the
    // clearance of the profile that created them: the job's checks use it, whoever resumes it.
    r#"
    ALTER TABLE import_jobs ADD COLUMN owner TEXT;
    ALTER TABLE import_jobs ADD COLUMN clearance INTEGER CHECK (clearance BETWEEN 0 AND 3);
    -- Changes with every change of a document's level, so a process's in-memory copy of the
    -- levels (the vector search filter) notices a change made by another process.
    ALTER TABLE documents_state ADD COLUMN levels_epoch INTEGER NOT NULL DEFAULT 0;
    CREATE TRIGGER documents_levels_epoch AFTER UPDATE OF access_level ON documents BEGIN
        UPDATE documents_state SET levels_epoch = levels_epoch + 1 WHERE id = 1;
    END;
    "#,
    // 5: a reply being written names its writer (see crate::owner), so that a session has one
    // reply at a time across processes, and a reply cut off by an ended process is found.
    r#"
    ALTER TABLE messages ADD COLUMN owner TEXT;
    CREATE INDEX messages_streaming ON messages(session_id) WHERE status = 'streaming';
    "#,
];

/// How long a write waits for another connection's write (another process's import, say)
/// before giving up with [`Error::StoreBusy`].
pub const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The schema version this build writes.
pub fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Persona {
    Office,
    Character,
}

impl Persona {
    pub fn as_str(self) -> &'static str {
        match self {
            Persona::Office => "office",
            Persona::Character => "character",
        }
    }

    fn parse(s: &str) -> Persona {
        if s == "character" {
            Persona::Character
        } else {
            Persona::Office
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    fn parse(s: &str) -> Role {
        match s {
            "system" => Role::System,
            "assistant" => Role::Assistant,
            _ => Role::User,
        }
    }
}

/// How the office persona addresses the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tone {
    Polite,
    Friendly,
}

impl Tone {
    pub fn as_str(self) -> &'static str {
        match self {
            Tone::Polite => "polite",
            Tone::Friendly => "friendly",
        }
    }

    fn parse(s: &str) -> Option<Tone> {
        match s {
            "polite" => Some(Tone::Polite),
            "friendly" => Some(Tone::Friendly),
            _ => None,
        }
    }
}

/// How sensitive a document is; a profile's clearance is the highest level it may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLevel {
    Public = 0,
    Internal = 1,
    Confidential = 2,
    Restricted = 3,
}

impl AccessLevel {
    pub const ALL: [AccessLevel; 4] = [
        AccessLevel::Public,
        AccessLevel::Internal,
        AccessLevel::Confidential,
        AccessLevel::Restricted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AccessLevel::Public => "public",
            AccessLevel::Internal => "internal",
            AccessLevel::Confidential => "confidential",
            AccessLevel::Restricted => "restricted",
        }
    }

    pub fn parse(s: &str) -> Option<AccessLevel> {
        AccessLevel::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// The stored integer (0–3); anything else, which the schema's CHECK prevents, is restricted.
    pub fn from_i64(v: i64) -> AccessLevel {
        match v {
            0 => AccessLevel::Public,
            1 => AccessLevel::Internal,
            2 => AccessLevel::Confidential,
            _ => AccessLevel::Restricted,
        }
    }
}

/// A local profile: its own sessions and cards, and a document clearance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    pub id: i64,
    pub name: String,
    pub clearance: AccessLevel,
    pub created_at: i64,
}

fn profile_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Profile> {
    Ok(Profile {
        id: r.get(0)?,
        name: r.get(1)?,
        clearance: AccessLevel::from_i64(r.get(2)?),
        created_at: r.get(3)?,
    })
}

/// The character persona's sheet, saved with its session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Character {
    pub name: String,
    /// Shown as the first message of the session.
    pub greeting: String,
    /// Background the model is given about the character.
    pub context: String,
}

/// Who answers in a session and how: the persona, the office tone, the character.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSetup {
    pub persona: Persona,
    #[serde(default)]
    pub tone: Option<Tone>,
    #[serde(default)]
    pub character: Option<Character>,
}

impl SessionSetup {
    pub fn of(persona: Persona) -> SessionSetup {
        SessionSetup {
            persona,
            tone: None,
            character: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Session {
    pub id: i64,
    pub profile_id: i64,
    pub title: String,
    pub title_is_auto: bool,
    pub persona: Persona,
    pub tone: Option<Tone>,
    pub character: Option<Character>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Session {
    pub fn setup(&self) -> SessionSetup {
        SessionSetup {
            persona: self.persona,
            tone: self.tone,
            character: self.character.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub id: i64,
    pub session_id: i64,
    pub role: Role,
    pub content: String,
    /// `complete`, `streaming` (being written now) or `interrupted` (stopped or failed).
    pub status: String,
    /// Why an interrupted reply stopped (`cancelled` or an error code).
    pub error_code: Option<String>,
    /// Follow-up questions suggested after an office answer.
    pub suggestions: Vec<String>,
    /// The document passages a grounded office answer was given, numbered as it cites them.
    pub sources: Vec<MessageSource>,
    /// Images sent with a user message, in the order they were attached.
    pub attachments: Vec<Attachment>,
    pub created_at: i64,
}

/// What a reply answers: a new message from the user, or (a retry) the session's last one.
#[derive(Debug, Clone, Copy)]
pub enum ReplyStart<'a> {
    Message {
        text: &'a str,
        attachments: &'a [NewAttachment],
        /// The session's title, set when it has none yet.
        title: Option<&'a str>,
    },
    Retry,
}

/// What [`Store::begin_reply`] stored.
#[derive(Debug, Clone)]
pub struct BegunReply {
    /// The message answered (a retry's is the existing one).
    pub question: Option<Message>,
    /// The `streaming` placeholder.
    pub reply: Message,
    /// The replies a retry deleted.
    pub replaced: Vec<i64>,
}

/// A file sent with a message. The original lives in the data directory's `attachments/`
/// folder (named by its sha256); the thumbnail is stored in the row so a session shows without
/// touching the originals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    pub id: i64,
    pub message_id: i64,
    /// `image` today; the schema also allows `audio` and `file`.
    pub kind: String,
    pub file_name: String,
    pub mime: String,
    pub size_bytes: i64,
    pub stored_path: String,
    pub width: Option<i64>,
    pub height: Option<i64>,
    /// The thumbnail as a `data:image/png;base64,…` URL, ready for an `<img>`.
    pub thumbnail: Option<String>,
    pub created_at: i64,
}

/// What is stored for a new attachment.
#[derive(Debug, Clone)]
pub struct NewAttachment {
    pub kind: &'static str,
    pub file_name: String,
    pub mime: String,
    pub size_bytes: u64,
    pub stored_path: PathBuf,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub thumbnail_png: Option<Vec<u8>>,
}

/// A passage quoted to the model for a grounded answer; `n` is the number it cites (`[n]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSource {
    pub n: usize,
    pub document_id: i64,
    pub chunk_id: i64,
    pub file_name: String,
    pub path: String,
    pub page: Option<u32>,
    pub section: Option<String>,
    /// The start of the passage, to show under the answer.
    pub excerpt: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Card {
    pub id: i64,
    pub message_id: Option<i64>,
    pub session_id: Option<i64>,
    pub session_title: String,
    pub role: String,
    pub content: String,
    pub note: String,
    pub created_at: i64,
}

/// Row counts shown at start (and a cheap proof the database is readable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StoreCounts {
    pub sessions: i64,
    pub cards: i64,
    pub documents: i64,
}

/// One finished (or refused) model request, for the per-model statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RequestRecord {
    pub model: String,
    pub persona: Option<String>,
    pub started_at: i64,
    /// `ok`, `cancelled`, `busy` or `error`.
    pub outcome: String,
    pub error_code: Option<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub queue_ms: Option<i64>,
    pub ttft_ms: Option<i64>,
    pub prompt_ms: Option<i64>,
    pub generation_ms: Option<i64>,
    pub total_ms: Option<i64>,
}

/// Lifetime totals of one model's requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RequestTotals {
    pub requests: i64,
    pub ok: i64,
    pub cancelled: i64,
    pub busy: i64,
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

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
                return Err(Error::StoreTooNew {
                    path,
                    found,
                    supported: latest,
                });
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

    /// The profile whose sessions, cards and document clearance are in use.
    pub fn active_profile_id(&self) -> Result<i64> {
        let value: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM settings WHERE key = 'active_profile_id'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(value.and_then(|v| v.parse().ok()).unwrap_or(1))
    }

    /// The active profile, whose clearance filters every document search and grounded answer.
    pub fn active_profile(&self) -> Result<Profile> {
        let id = self.active_profile_id()?;
        self.conn
            .query_row(
                "SELECT id, name, clearance, created_at FROM profiles WHERE id = ?1",
                [id],
                profile_from_row,
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or(Error::NotFound {
                what: "profile",
                id,
            })
    }

    pub fn profiles(&self) -> Result<Vec<Profile>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, name, clearance, created_at FROM profiles ORDER BY id")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], profile_from_row)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>());
        rows.map_err(|e| self.err(e))
    }

    pub fn create_profile(&mut self, name: &str, clearance: AccessLevel) -> Result<Profile> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 40 {
            return Err(Error::InvalidInput {
                field: "profile.name",
                message: "a profile name is 1 to 40 characters".to_owned(),
            });
        }
        let taken: bool = self
            .conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM profiles WHERE name = ?1)",
                [name],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        if taken {
            return Err(Error::InvalidInput {
                field: "profile.name",
                message: format!("a profile named \"{name}\" already exists"),
            });
        }
        self.conn
            .execute(
                "INSERT INTO profiles (name, clearance, created_at) VALUES (?1, ?2, ?3)",
                params![name, clearance as i64, now_ms()],
            )
            .map_err(|e| self.err(e))?;
        let id = self.conn.last_insert_rowid();
        self.conn
            .query_row(
                "SELECT id, name, clearance, created_at FROM profiles WHERE id = ?1",
                [id],
                profile_from_row,
            )
            .map_err(|e| self.err(e))
    }

    pub fn set_active_profile(&mut self, id: i64) -> Result<Profile> {
        let exists: bool = self
            .conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM profiles WHERE id = ?1)",
                [id],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        found(usize::from(exists), "profile", id)?;
        self.conn
            .execute(
                "INSERT INTO settings (key, value) VALUES ('active_profile_id', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [id.to_string()],
            )
            .map_err(|e| self.err(e))?;
        self.active_profile()
    }

    /// Deletes a profile with its sessions and cards. The active profile cannot be deleted, so
    /// there is always one in use.
    pub fn delete_profile(&mut self, id: i64) -> Result<()> {
        if id == self.active_profile_id()? {
            return Err(Error::InvalidInput {
                field: "profile",
                message: "the active profile cannot be deleted; switch to another first".to_owned(),
            });
        }
        let changed = self
            .conn
            .execute("DELETE FROM profiles WHERE id = ?1", [id])
            .map_err(|e| self.err(e))?;
        found(changed, "profile", id)
    }

    // --- sessions and messages ---

    pub fn create_session(&mut self, persona: Persona, title: &str) -> Result<Session> {
        self.create_session_with(&SessionSetup::of(persona), title)
    }

    /// A new session with its persona, tone and character; an empty `title` is filled in
    /// automatically later. A title given here counts as automatic too (it is the first line of
    /// the first message, refined by the model), so only `rename_session` makes it the user's.
    pub fn create_session_with(&mut self, setup: &SessionSetup, title: &str) -> Result<Session> {
        let profile_id = self.active_profile_id()?;
        let now = now_ms();
        let title = title.trim();
        let c = setup.character.as_ref();
        self.conn
            .execute(
                "INSERT INTO sessions (profile_id, title, title_is_auto, persona, tone, character_name,
                    character_greeting, character_context, created_at, updated_at)
                 VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6, ?7, ?8,
                    max(?8, coalesce((SELECT max(updated_at) + 1 FROM sessions WHERE profile_id = ?1), 0)))",
                params![
                    profile_id,
                    title,
                    setup.persona.as_str(),
                    setup.tone.map(Tone::as_str),
                    c.map(|c| c.name.as_str()),
                    c.map(|c| c.greeting.as_str()),
                    c.map(|c| c.context.as_str()),
                    now
                ],
            )
            .map_err(|e| self.err(e))?;
        self.session(self.conn.last_insert_rowid())
    }

    /// Changes who answers in a session from its next reply on.
    pub fn set_session_setup(&mut self, id: i64, setup: &SessionSetup) -> Result<Session> {
        let c = setup.character.as_ref();
        let changed = self
            .conn
            .execute(
                "UPDATE sessions SET persona = ?2, tone = ?3, character_name = ?4,
                    character_greeting = ?5, character_context = ?6 WHERE id = ?1",
                params![
                    id,
                    setup.persona.as_str(),
                    setup.tone.map(Tone::as_str),
                    c.map(|c| c.name.as_str()),
                    c.map(|c| c.greeting.as_str()),
                    c.map(|c| c.context.as_str()),
                ],
            )
            .map_err(|e| self.err(e))?;
        found(changed, "session", id)?;
        self.session(id)
    }

    /// Sets an automatic title unless the user has renamed the session meanwhile; returns
    /// whether it was set.
    pub fn set_auto_title(&mut self, id: i64, title: &str) -> Result<bool> {
        let title = title.trim();
        if title.is_empty() {
            return Ok(false);
        }
        let changed = self
            .conn
            .execute(
                "UPDATE sessions SET title = ?2 WHERE id = ?1 AND title_is_auto = 1",
                params![id, title],
            )
            .map_err(|e| self.err(e))?;
        Ok(changed > 0)
    }

    pub fn session(&self, id: i64) -> Result<Session> {
        self.conn
            .query_row(
                "SELECT id, profile_id, title, title_is_auto, persona, created_at, updated_at, tone, character_name, character_greeting, character_context FROM sessions WHERE id = ?1",
                [id],
                session_from_row,
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or(Error::NotFound { what: "session", id })
    }

    /// The active profile's sessions, most recently used first; `search` filters titles by substring.
    pub fn sessions(&self, search: Option<&str>) -> Result<Vec<Session>> {
        let profile_id = self.active_profile_id()?;
        let pattern = format!("%{}%", escape_like(search.unwrap_or("").trim()));
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, profile_id, title, title_is_auto, persona, created_at, updated_at, tone, character_name, character_greeting, character_context FROM sessions
                 WHERE profile_id = ?1 AND title LIKE ?2 ESCAPE '\\'
                 ORDER BY updated_at DESC, id DESC",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![profile_id, pattern], session_from_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// Renames one session; a user-given title is never replaced by an automatic one.
    pub fn rename_session(&mut self, id: i64, title: &str) -> Result<Session> {
        let title = title.trim();
        if title.is_empty() {
            return Err(Error::InvalidInput {
                field: "title",
                message: "must not be empty".to_owned(),
            });
        }
        let changed = self
            .conn
            .execute(
                "UPDATE sessions SET title = ?2, title_is_auto = 0 WHERE id = ?1",
                params![id, title],
            )
            .map_err(|e| self.err(e))?;
        found(changed, "session", id)?;
        self.session(id)
    }

    /// Deletes a session with its messages and attachments; its cards stay, detached.
    pub fn delete_session(&mut self, id: i64) -> Result<()> {
        let changed = self
            .conn
            .execute("DELETE FROM sessions WHERE id = ?1", [id])
            .map_err(|e| self.err(e))?;
        found(changed, "session", id)
    }

    /// Appends a message and marks its session as just used, in one transaction.
    pub fn append_message(
        &mut self,
        session_id: i64,
        role: Role,
        content: &str,
        status: &str,
    ) -> Result<Message> {
        let now = now_ms();
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| store_err(&path, e))?;
        let touched = touch_session(&tx, session_id, now).map_err(|e| store_err(&path, e))?;
        found(touched, "session", session_id)?;
        tx.execute(
            "INSERT INTO messages (session_id, role, content, status, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![session_id, role.as_str(), content, status, now],
        )
        .map_err(|e| store_err(&path, e))?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(|e| store_err(&path, e))?;
        Ok(Message {
            id,
            session_id,
            role,
            content: content.to_owned(),
            status: status.to_owned(),
            error_code: None,
            suggestions: Vec::new(),
            sources: Vec::new(),
            attachments: Vec::new(),
            created_at: now,
        })
    }

    /// Appends a user message with its attachments, in one transaction: either all of it is
    /// stored or none.
    pub fn append_message_with_attachments(
        &mut self,
        session_id: i64,
        role: Role,
        content: &str,
        attachments: &[NewAttachment],
    ) -> Result<Message> {
        let now = now_ms();
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| store_err(&path, e))?;
        let touched = touch_session(&tx, session_id, now).map_err(|e| store_err(&path, e))?;
        found(touched, "session", session_id)?;
        let id = insert_message(&tx, session_id, role, content, None, attachments, now)
            .map_err(|e| store_err(&path, e))?;
        tx.commit().map_err(|e| store_err(&path, e))?;
        self.message(id)
    }

    /// The writers (`messages.owner`) of the replies being written in a session.
    pub fn reply_writers(&self, session_id: i64) -> Result<Vec<Option<String>>> {
        let mut stmt = self
            .conn
            .prepare("SELECT owner FROM messages WHERE session_id = ?1 AND status = 'streaming'")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([session_id], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    /// Starts a reply in one write transaction, so that two writers (two processes, or two
    /// chats of one) never both start one in a session: a reply still `streaming` whose
    /// writer is alive (`writer_alive(owner)`) refuses with [`Error::ReplyInProgress`] and
    /// nothing is written; one whose writer is gone is marked interrupted (`app_closed`) first.
    /// Then `start` is stored (the user's message, or for a retry the replies after the last
    /// one deleted) with a `streaming` placeholder owned by `owner`.
    pub fn begin_reply(
        &mut self,
        session_id: i64,
        start: ReplyStart<'_>,
        owner: &str,
        writer_alive: &dyn Fn(&str) -> bool,
    ) -> Result<BegunReply> {
        let now = now_ms();
        let path = self.path.clone();
        let err = |e| store_err(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        let streaming: Vec<(i64, Option<String>)> = {
            let mut stmt = tx
                .prepare(
                    "SELECT id, owner FROM messages WHERE session_id = ?1 AND status = 'streaming'",
                )
                .map_err(err)?;
            let rows = stmt
                .query_map([session_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(err)?
        };
        for (id, writer) in &streaming {
            match writer {
                Some(writer) if writer_alive(writer) => {
                    return Err(Error::ReplyInProgress {
                        session: session_id,
                    })
                }
                _ => {
                    tx.execute(
                        "UPDATE messages SET status = 'interrupted', owner = NULL,
                             error_code = coalesce(error_code, ?2) WHERE id = ?1",
                        params![id, ErrorCode::AppClosed.as_str()],
                    )
                    .map_err(err)?;
                }
            }
        }
        let touched = touch_session(&tx, session_id, now).map_err(err)?;
        found(touched, "session", session_id)?;
        let (user, replaced) = match start {
            ReplyStart::Message {
                text,
                attachments,
                title,
            } => {
                if let Some(title) = title {
                    tx.execute(
                        "UPDATE sessions SET title = ?2 WHERE id = ?1 AND title = '' AND title_is_auto = 1",
                        params![session_id, title],
                    )
                    .map_err(err)?;
                }
                let id = insert_message(&tx, session_id, Role::User, text, None, attachments, now)
                    .map_err(err)?;
                (Some(id), Vec::new())
            }
            ReplyStart::Retry => {
                let last_user: Option<i64> = tx
                    .query_row(
                        "SELECT max(id) FROM messages WHERE session_id = ?1 AND role = 'user'",
                        [session_id],
                        |r| r.get(0),
                    )
                    .map_err(err)?;
                let last_user = last_user.ok_or(Error::NothingToRetry {
                    session: session_id,
                })?;
                let replaced: Vec<i64> = {
                    let mut stmt = tx
                        .prepare(
                            "SELECT id FROM messages WHERE session_id = ?1 AND id > ?2 ORDER BY id",
                        )
                        .map_err(err)?;
                    let rows = stmt
                        .query_map([session_id, last_user], |r| r.get(0))
                        .map_err(err)?;
                    rows.collect::<rusqlite::Result<_>>().map_err(err)?
                };
                tx.execute(
                    "DELETE FROM messages WHERE session_id = ?1 AND id > ?2",
                    [session_id, last_user],
                )
                .map_err(err)?;
                (Some(last_user), replaced)
            }
        };
        let reply = insert_message(&tx, session_id, Role::Assistant, "", Some(owner), &[], now)
            .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(BegunReply {
            question: user.map(|id| self.message(id)).transpose()?,
            reply: self.message(reply)?,
            replaced,
        })
    }

    pub fn messages(&self, session_id: i64) -> Result<Vec<Message>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_id = ?1 ORDER BY id"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([session_id], message_from_row)
            .map_err(|e| self.err(e))?;
        let mut messages = rows
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))?;
        let mut attachments = self.attachments_where(
            "message_id IN (SELECT id FROM messages WHERE session_id = ?1)",
            session_id,
        )?;
        if !attachments.is_empty() {
            for m in &mut messages {
                let (mine, rest): (Vec<_>, Vec<_>) =
                    attachments.into_iter().partition(|a| a.message_id == m.id);
                m.attachments = mine;
                attachments = rest;
            }
        }
        Ok(messages)
    }

    pub fn message(&self, id: i64) -> Result<Message> {
        let mut message = self
            .conn
            .query_row(
                &format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1"),
                [id],
                message_from_row,
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or(Error::NotFound {
                what: "message",
                id,
            })?;
        message.attachments = self.attachments_where("message_id = ?1", id)?;
        Ok(message)
    }

    pub fn attachment(&self, id: i64) -> Result<Attachment> {
        self.attachments_where("id = ?1", id)?
            .pop()
            .ok_or(Error::NotFound {
                what: "attachment",
                id,
            })
    }

    /// The originals no message refers to any more, among `paths` (files shared by several
    /// messages are kept until the last one goes).
    pub fn unreferenced_attachment_files(&self, paths: &[String]) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT 1 FROM attachments WHERE stored_path = ?1 LIMIT 1")
            .map_err(|e| self.err(e))?;
        let mut unused = Vec::new();
        for p in paths {
            if !stmt.exists([p]).map_err(|e| self.err(e))? {
                unused.push(p.clone());
            }
        }
        Ok(unused)
    }

    /// Stored paths of the attachments of a session (to clean up after deleting it).
    pub fn session_attachment_files(&self, session_id: i64) -> Result<Vec<String>> {
        Ok(self
            .attachments_where(
                "message_id IN (SELECT id FROM messages WHERE session_id = ?1)",
                session_id,
            )?
            .into_iter()
            .map(|a| a.stored_path)
            .collect())
    }

    fn attachments_where(&self, condition: &str, value: i64) -> Result<Vec<Attachment>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT id, message_id, kind, file_name, mime, size_bytes, stored_path, width, height, thumbnail, created_at
                 FROM attachments WHERE {condition} ORDER BY id"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([value], |r| {
                let thumbnail: Option<Vec<u8>> = r.get(9)?;
                Ok(Attachment {
                    id: r.get(0)?,
                    message_id: r.get(1)?,
                    kind: r.get(2)?,
                    file_name: r.get(3)?,
                    mime: r.get(4)?,
                    size_bytes: r.get(5)?,
                    stored_path: r.get(6)?,
                    width: r.get(7)?,
                    height: r.get(8)?,
                    thumbnail: thumbnail.map(|png| png_data_url(&png)),
                    created_at: r.get(10)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// Stores how a reply ended: its text, `complete` or `interrupted`, and why.
    pub fn finish_message(
        &mut self,
        id: i64,
        content: &str,
        status: &str,
        error_code: Option<&str>,
    ) -> Result<Message> {
        let changed = self
            .conn
            .execute(
                "UPDATE messages SET content = ?2, status = ?3, error_code = ?4, owner = NULL WHERE id = ?1",
                params![id, content, status, error_code],
            )
            .map_err(|e| self.err(e))?;
        found(changed, "message", id)?;
        self.message(id)
    }

    /// Deletes one message (a reply about to be regenerated); cards of it stay, detached.
    pub fn delete_message(&mut self, id: i64) -> Result<()> {
        let changed = self
            .conn
            .execute("DELETE FROM messages WHERE id = ?1", [id])
            .map_err(|e| self.err(e))?;
        found(changed, "message", id)
    }

    pub fn set_suggestions(&mut self, id: i64, suggestions: &[String]) -> Result<()> {
        let json = serde_json::to_string(suggestions).map_err(|e| Error::InvalidInput {
            field: "suggestions",
            message: e.to_string(),
        })?;
        self.conn
            .execute(
                "UPDATE messages SET suggestions = ?2 WHERE id = ?1",
                params![id, json],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn set_sources(&mut self, id: i64, sources: &[MessageSource]) -> Result<()> {
        let json = serde_json::to_string(sources).map_err(|e| Error::InvalidInput {
            field: "sources",
            message: e.to_string(),
        })?;
        let changed = self
            .conn
            .execute(
                "UPDATE messages SET sources = ?2 WHERE id = ?1",
                params![id, json],
            )
            .map_err(|e| self.err(e))?;
        found(changed, "message", id)
    }

    /// Marks replies left `streaming` by a writer that is gone (a process that ended
    /// mid-reply) as interrupted; returns how many. A reply another running process is writing
    /// is left alone.
    pub fn interrupt_unfinished_replies(
        &mut self,
        writer_alive: &dyn Fn(&str) -> bool,
    ) -> Result<usize> {
        let path = self.path.clone();
        let err = |e| store_err(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        let streaming: Vec<(i64, Option<String>)> = {
            let mut stmt = tx
                .prepare("SELECT id, owner FROM messages WHERE status = 'streaming'")
                .map_err(err)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(err)?
        };
        let mut interrupted = 0;
        for (id, writer) in streaming {
            if writer.as_deref().is_some_and(writer_alive) {
                continue;
            }
            interrupted += tx
                .execute(
                    "UPDATE messages SET status = 'interrupted', owner = NULL,
                         error_code = coalesce(error_code, ?2) WHERE id = ?1",
                    params![id, ErrorCode::AppClosed.as_str()],
                )
                .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(interrupted)
    }

    // --- cards ---

    /// Saves a message as a card, copying its text and its session's title so the card outlives them.
    pub fn save_card(&mut self, message_id: i64, note: &str) -> Result<Card> {
        let now = now_ms();
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| store_err(&path, e))?;
        let source: Option<(i64, i64, String, String, String)> = tx
            .query_row(
                "SELECT m.session_id, s.profile_id, s.title, m.role, m.content
                 FROM messages m JOIN sessions s ON s.id = m.session_id WHERE m.id = ?1",
                [message_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()
            .map_err(|e| store_err(&path, e))?;
        let Some((session_id, profile_id, session_title, role, content)) = source else {
            return Err(Error::NotFound {
                what: "message",
                id: message_id,
            });
        };
        tx.execute(
            "INSERT INTO cards (profile_id, message_id, session_id, session_title, role, content, note, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![profile_id, message_id, session_id, session_title, role, content, note.trim(), now],
        )
        .map_err(|e| store_err(&path, e))?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(|e| store_err(&path, e))?;
        Ok(Card {
            id,
            message_id: Some(message_id),
            session_id: Some(session_id),
            session_title,
            role,
            content,
            note: note.trim().to_owned(),
            created_at: now,
        })
    }

    /// The active profile's cards, newest first; `search` matches text, note or session title.
    pub fn cards(&self, search: Option<&str>) -> Result<Vec<Card>> {
        let profile_id = self.active_profile_id()?;
        let pattern = format!("%{}%", escape_like(search.unwrap_or("").trim()));
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, message_id, session_id, session_title, role, content, note, created_at FROM cards
                 WHERE profile_id = ?1
                   AND (content LIKE ?2 ESCAPE '\\' OR note LIKE ?2 ESCAPE '\\' OR session_title LIKE ?2 ESCAPE '\\')
                 ORDER BY created_at DESC, id DESC",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![profile_id, pattern], |r| {
                Ok(Card {
                    id: r.get(0)?,
                    message_id: r.get(1)?,
                    session_id: r.get(2)?,
                    session_title: r.get(3)?,
                    role: r.get(4)?,
                    content: r.get(5)?,
                    note: r.get(6)?,
                    created_at: r.get(7)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    pub fn delete_card(&mut self, id: i64) -> Result<()> {
        let changed = self
            .conn
            .execute("DELETE FROM cards WHERE id = ?1", [id])
            .map_err(|e| self.err(e))?;
        found(changed, "card", id)
    }

    // --- request log ---

    pub fn log_request(&mut self, r: &RequestRecord) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO request_log (model, persona, started_at, outcome, error_code, prompt_tokens,
                    completion_tokens, queue_ms, ttft_ms, prompt_ms, generation_ms, total_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    r.model,
                    r.persona,
                    r.started_at,
                    r.outcome,
                    r.error_code,
                    r.prompt_tokens,
                    r.completion_tokens,
                    r.queue_ms,
                    r.ttft_ms,
                    r.prompt_ms,
                    r.generation_ms,
                    r.total_ms
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn request_totals(&self, model: &str) -> Result<RequestTotals> {
        self.conn
            .query_row(
                "SELECT count(*),
                        count(*) FILTER (WHERE outcome = 'ok'),
                        count(*) FILTER (WHERE outcome = 'cancelled'),
                        count(*) FILTER (WHERE outcome = 'busy'),
                        count(*) FILTER (WHERE outcome = 'error'),
                        coalesce(sum(prompt_tokens), 0),
                        coalesce(sum(completion_tokens), 0)
                 FROM request_log WHERE model = ?1",
                [model],
                |r| {
                    Ok(RequestTotals {
                        requests: r.get(0)?,
                        ok: r.get(1)?,
                        cancelled: r.get(2)?,
                        busy: r.get(3)?,
                        errors: r.get(4)?,
                        prompt_tokens: r.get(5)?,
                        completion_tokens: r.get(6)?,
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
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::StoreBusy {
            path: path.to_path_buf(),
            seconds: BUSY_TIMEOUT.as_secs(),
            source: std::sync::Arc::new(source),
        },
        Some(ErrorCode::DiskFull) => Error::DiskFull {
            path: path.to_path_buf(),
        },
        _ => Error::Store {
            path: path.to_path_buf(),
            source: std::sync::Arc::new(source),
        },
    }
}

/// Inserts a message with its attachments; with an `owner` it is a `streaming` reply
/// placeholder, otherwise a `complete` message.
fn insert_message(
    tx: &Transaction<'_>,
    session_id: i64,
    role: Role,
    content: &str,
    owner: Option<&str>,
    attachments: &[NewAttachment],
    now: i64,
) -> rusqlite::Result<i64> {
    let status = if owner.is_some() {
        "streaming"
    } else {
        "complete"
    };
    tx.execute(
        "INSERT INTO messages (session_id, role, content, status, owner, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![session_id, role.as_str(), content, status, owner, now],
    )?;
    let id = tx.last_insert_rowid();
    for a in attachments {
        tx.execute(
            "INSERT INTO attachments (message_id, kind, file_name, mime, size_bytes, stored_path, width, height, thumbnail, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                id,
                a.kind,
                a.file_name,
                a.mime,
                a.size_bytes as i64,
                a.stored_path.to_string_lossy(),
                a.width,
                a.height,
                a.thumbnail_png,
                now
            ],
        )?;
    }
    Ok(id)
}

/// Moves a session to the top of its profile's list. `updated_at` is a recency stamp rather than
/// a plain clock reading: two writes in the same millisecond must still order, so the stamp is
/// at least one past the profile's newest.
fn touch_session(tx: &Transaction<'_>, session_id: i64, now: i64) -> rusqlite::Result<usize> {
    tx.execute(
        "UPDATE sessions SET updated_at = max(?2,
            (SELECT max(s.updated_at) + 1 FROM sessions s WHERE s.profile_id = sessions.profile_id))
         WHERE id = ?1",
        params![session_id, now],
    )
}

fn session_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        id: r.get(0)?,
        profile_id: r.get(1)?,
        title: r.get(2)?,
        title_is_auto: r.get(3)?,
        persona: Persona::parse(&r.get::<_, String>(4)?),
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
        tone: r
            .get::<_, Option<String>>(7)?
            .as_deref()
            .and_then(Tone::parse),
        character: match r.get::<_, Option<String>>(8)? {
            Some(name) => Some(Character {
                name,
                greeting: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
                context: r.get::<_, Option<String>>(10)?.unwrap_or_default(),
            }),
            None => None,
        },
    })
}

fn message_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Message> {
    let suggestions: String = r.get(7)?;
    Ok(Message {
        id: r.get(0)?,
        session_id: r.get(1)?,
        role: Role::parse(&r.get::<_, String>(2)?),
        content: r.get(3)?,
        status: r.get(4)?,
        created_at: r.get(5)?,
        error_code: r.get(6)?,
        // Written only by `set_suggestions`; an unreadable value is shown as no suggestions.
        suggestions: serde_json::from_str(&suggestions).unwrap_or_default(),
        // Written only by `set_sources`; likewise.
        sources: serde_json::from_str(&r.get::<_, String>(8)?).unwrap_or_default(),
        attachments: Vec::new(),
    })
}

/// A PNG as a `data:` URL, ready for an `<img>` in the window.
pub(crate) fn png_data_url(png: &[u8]) -> String {
    use base64::Engine as _;
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

const MESSAGE_COLUMNS: &str =
    "id, session_id, role, content, status, created_at, error_code, suggestions, sources";

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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("data").join("deskmate.sqlite3")).unwrap();
        (dir, store)
    }

    fn table_names(store: &Store) -> Vec<String> {
        let mut stmt = store
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type IN ('table') AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'chunks_fts_%' AND name NOT LIKE 'chunks_bigram_%' AND name NOT LIKE 'chunks_words_%' ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    #[test]
    fn a_new_file_gets_the_whole_schema_in_wal_mode_with_foreign_keys() {
        let (_dir, store) = temp_store();
        assert_eq!(store.schema_version().unwrap(), latest_version());
        assert_eq!(
            table_names(&store),
            [
                "attachments",
                "cards",
                "chunks",
                "chunks_bigram",
                "chunks_fts",
                "chunks_words",
                "documents",
                "documents_state",
                "import_files",
                "import_jobs",
                "messages",
                "profiles",
                "request_log",
                "sessions",
                "settings"
            ]
        );
        let mode: String = store
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = store
            .conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
        assert_eq!(store.active_profile_id().unwrap(), 1);
    }

    #[test]
    fn reopening_an_existing_database_keeps_its_data_and_does_not_migrate_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deskmate.sqlite3");
        let session_id = {
            let mut store = Store::open(&path).unwrap();
            let s = store.create_session(Persona::Office, "Budget").unwrap();
            store
                .append_message(s.id, Role::User, "분기 예산 보고서", "complete")
                .unwrap();
            s.id
        };
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), latest_version());
        let profiles: i64 = store
            .conn
            .query_row("SELECT count(*) FROM profiles", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            profiles, 1,
            "the seed rows of migration 1 must not be inserted twice"
        );
        assert_eq!(store.session(session_id).unwrap().title, "Budget");
        assert_eq!(
            store.messages(session_id).unwrap()[0].content,
            "분기 예산 보고서"
        );
    }

    #[test]
    fn a_database_from_a_newer_version_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deskmate.sqlite3");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("CREATE TABLE future (x); PRAGMA user_version = 999;")
                .unwrap();
        }
        let err = Store::open(&path)
            .err()
            .expect("must refuse a newer schema");
        assert_eq!(err.code(), "store_too_new");
        let conn = Connection::open(&path).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 999);
    }

    #[test]
    fn connections_opening_a_new_file_at_once_migrate_it_once_and_all_work() {
        // As the window and several commands starting together on a fresh data folder.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("deskmate.sqlite3");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let path = path.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    let mut store = Store::open(&path).map_err(|e| format!("open: {e:?}"))?;
                    let s = store
                        .create_session(Persona::Office, &format!("session {i}"))
                        .map_err(|e| format!("session: {e:?}"))?;
                    store
                        .append_message(s.id, Role::User, "hello", "complete")
                        .map_err(|e| format!("message: {e:?}"))?;
                    Ok::<_, String>(())
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), latest_version());
        assert_eq!(store.sessions(None).unwrap().len(), 8);
    }

    #[test]
    fn a_writer_waits_for_another_connections_write_instead_of_failing() {
        let (dir, _first) = temp_store();
        let path = dir.path().join("data").join("deskmate.sqlite3");
        let holder = Connection::open(&path).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let waiter = std::thread::spawn(move || {
            let mut store = Store::open(&path)?;
            store.create_session(Persona::Office, "waited")
        });
        std::thread::sleep(std::time::Duration::from_millis(1500));
        holder.execute_batch("COMMIT").unwrap();
        let session = waiter.join().unwrap().unwrap();
        assert_eq!(session.title, "waited");
    }

    #[test]
    fn a_lock_wait_that_runs_out_and_a_full_disk_have_their_own_errors() {
        let failure = |code| {
            rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some("x".into()))
        };
        let path = Path::new("/data/deskmate.sqlite3");
        let busy = store_err(path, failure(rusqlite::ffi::SQLITE_BUSY));
        assert_eq!(busy.code(), "store_busy");
        assert!(busy.to_string().contains("30 s"), "{busy}");
        let full = store_err(path, failure(rusqlite::ffi::SQLITE_FULL));
        assert_eq!(full.code(), "disk_full");
        assert!(full.to_string().contains("disk is full"), "{full}");
        let io = Error::io(path, std::io::Error::from(std::io::ErrorKind::StorageFull));
        assert_eq!(io.code(), "disk_full");
    }

    #[test]
    fn a_file_that_is_not_a_database_is_a_store_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deskmate.sqlite3");
        std::fs::write(
            &path,
            b"this is not sqlite, just text long enough to have a header....",
        )
        .unwrap();
        let err = Store::open(&path).err().expect("garbage must not open");
        assert_eq!(err.code(), "store");
        assert!(err.to_string().contains("deskmate.sqlite3"), "{err}");
    }

    #[test]
    fn sessions_are_listed_newest_first_and_searched_by_literal_title() {
        let (_dir, mut store) = temp_store();
        let a = store.create_session(Persona::Office, "Q3 budget").unwrap();
        let b = store
            .create_session(Persona::Character, "100% done_now")
            .unwrap();
        store
            .append_message(a.id, Role::User, "hi", "complete")
            .unwrap();
        let ids: Vec<i64> = store.sessions(None).unwrap().iter().map(|s| s.id).collect();
        assert_eq!(
            ids,
            [a.id, b.id],
            "appending a message moves its session to the top"
        );
        // Writes within one millisecond must order too (this flaked on CI before the stamp).
        for round in 0..50 {
            let (top, other) = if round % 2 == 0 {
                (b.id, a.id)
            } else {
                (a.id, b.id)
            };
            store
                .append_message(top, Role::User, "again", "complete")
                .unwrap();
            let ids: Vec<i64> = store.sessions(None).unwrap().iter().map(|s| s.id).collect();
            assert_eq!(ids, [top, other], "round {round}");
        }
        let found: Vec<i64> = store
            .sessions(Some("0% d"))
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(found, [b.id]);
        assert!(store
            .sessions(Some("%"))
            .unwrap()
            .iter()
            .all(|s| s.title.contains('%')));
    }

    #[test]
    fn renaming_changes_only_that_session() {
        let (_dir, mut store) = temp_store();
        let a = store.create_session(Persona::Office, "").unwrap();
        let b = store.create_session(Persona::Office, "Keep me").unwrap();
        assert!(a.title_is_auto);
        let renamed = store.rename_session(a.id, "  Renamed ").unwrap();
        assert_eq!(renamed.title, "Renamed");
        assert!(!renamed.title_is_auto);
        assert_eq!(store.session(b.id).unwrap(), b);
        assert_eq!(
            store.rename_session(a.id, " ").unwrap_err().code(),
            "invalid_input"
        );
        assert_eq!(
            store.rename_session(9999, "x").unwrap_err().code(),
            "not_found"
        );
    }

    #[test]
    fn deleting_a_session_removes_its_messages_but_keeps_its_cards_readable() {
        let (_dir, mut store) = temp_store();
        let s = store.create_session(Persona::Office, "Minutes").unwrap();
        let m = store
            .append_message(s.id, Role::Assistant, "The deadline is Friday.", "complete")
            .unwrap();
        let card = store.save_card(m.id, "deadline").unwrap();
        assert_eq!(card.session_title, "Minutes");
        store.delete_session(s.id).unwrap();
        assert!(store.messages(s.id).unwrap().is_empty());
        let cards = store.cards(Some("deadline")).unwrap();
        assert_eq!(cards.len(), 1);
        assert_eq!(cards[0].content, "The deadline is Friday.");
        assert_eq!((cards[0].message_id, cards[0].session_id), (None, None));
        assert_eq!(store.delete_session(s.id).unwrap_err().code(), "not_found");
    }

    #[test]
    fn an_automatic_title_never_replaces_one_the_user_gave() {
        let (_dir, mut store) = temp_store();
        let a = store.create_session(Persona::Office, "first line").unwrap();
        let b = store.create_session(Persona::Office, "other").unwrap();
        assert!(store.set_auto_title(a.id, "Model title").unwrap());
        assert_eq!(store.session(a.id).unwrap().title, "Model title");
        store.rename_session(a.id, "Mine").unwrap();
        assert!(!store.set_auto_title(a.id, "Later model title").unwrap());
        assert_eq!(store.session(a.id).unwrap().title, "Mine");
        assert_eq!(
            store.session(b.id).unwrap().title,
            "other",
            "only a changed"
        );
        assert!(
            !store.set_auto_title(b.id, "  ").unwrap(),
            "blank titles are ignored"
        );
    }

    #[test]
    fn a_reply_is_finished_with_its_status_reason_and_suggestions() {
        let (_dir, mut store) = temp_store();
        let s = store
            .create_session_with(
                &SessionSetup {
                    persona: Persona::Character,
                    tone: None,
                    character: Some(Character {
                        name: "Mochi".into(),
                        greeting: "Mrrp".into(),
                        context: String::new(),
                    }),
                },
                "",
            )
            .unwrap();
        assert_eq!(s.character.as_ref().unwrap().name, "Mochi");
        let reply = store
            .append_message(s.id, Role::Assistant, "", "streaming")
            .unwrap();
        let done = store
            .finish_message(reply.id, "Half a", "interrupted", Some("cancelled"))
            .unwrap();
        assert_eq!(
            (
                done.content.as_str(),
                done.status.as_str(),
                done.error_code.as_deref()
            ),
            ("Half a", "interrupted", Some("cancelled"))
        );
        store
            .set_suggestions(reply.id, &["Why?".to_owned(), "왜요?".to_owned()])
            .unwrap();
        assert_eq!(
            store.message(reply.id).unwrap().suggestions,
            ["Why?", "왜요?"]
        );
        let updated = store
            .set_session_setup(
                s.id,
                &SessionSetup {
                    persona: Persona::Office,
                    tone: Some(Tone::Friendly),
                    character: None,
                },
            )
            .unwrap();
        assert_eq!(
            (updated.persona, updated.tone),
            (Persona::Office, Some(Tone::Friendly))
        );
        store.delete_message(reply.id).unwrap();
        assert_eq!(store.message(reply.id).unwrap_err().code(), "not_found");
    }

    #[test]
    fn replies_cut_off_by_an_exit_are_marked_interrupted_and_a_live_writers_are_left_alone() {
        let (_dir, mut store) = temp_store();
        let s = store.create_session(Persona::Office, "x").unwrap();
        store
            .append_message(s.id, Role::User, "question", "complete")
            .unwrap();
        let live = store
            .begin_reply(s.id, ReplyStart::Retry, "live-writer", &|_| true)
            .unwrap()
            .reply;
        let other = store.create_session(Persona::Office, "y").unwrap();
        let cut = store
            .append_message(other.id, Role::Assistant, "partial", "streaming")
            .unwrap();
        let whole = store
            .append_message(other.id, Role::Assistant, "done", "complete")
            .unwrap();
        let alive = |owner: &str| owner == "live-writer";
        assert_eq!(store.interrupt_unfinished_replies(&alive).unwrap(), 1);
        let cut = store.message(cut.id).unwrap();
        assert_eq!(cut.status, "interrupted");
        assert_eq!(cut.error_code.as_deref(), Some("app_closed"));
        assert_eq!(store.message(whole.id).unwrap().status, "complete");
        assert_eq!(store.message(live.id).unwrap().status, "streaming");
        assert_eq!(store.interrupt_unfinished_replies(&alive).unwrap(), 0);
        // Once its writer is gone, it too was cut off.
        assert_eq!(store.interrupt_unfinished_replies(&|_| false).unwrap(), 1);
    }

    #[test]
    fn a_session_has_one_reply_at_a_time_and_a_refused_start_writes_nothing() {
        let (_dir, mut store) = temp_store();
        let s = store.create_session(Persona::Office, "").unwrap();
        let first = store
            .begin_reply(
                s.id,
                ReplyStart::Message {
                    text: "first",
                    attachments: &[],
                    title: Some("first"),
                },
                "writer-a",
                &|_| true,
            )
            .unwrap();
        assert_eq!(first.question.as_ref().unwrap().content, "first");
        assert_eq!(first.reply.status, "streaming");
        assert_eq!(store.session(s.id).unwrap().title, "first");
        let second = store.begin_reply(
            s.id,
            ReplyStart::Message {
                text: "second",
                attachments: &[],
                title: Some("second"),
            },
            "writer-b",
            &|owner| owner == "writer-a",
        );
        assert_eq!(second.unwrap_err().code(), "reply_in_progress");
        assert_eq!(
            store.messages(s.id).unwrap().len(),
            2,
            "nothing of the second"
        );
        // Writer a finished: the next turn starts.
        store
            .finish_message(first.reply.id, "answer", "complete", None)
            .unwrap();
        let retry = store
            .begin_reply(s.id, ReplyStart::Retry, "writer-b", &|owner| {
                owner == "writer-a"
            })
            .unwrap();
        assert_eq!(retry.question.unwrap().id, first.question.unwrap().id);
        assert_eq!(retry.replaced, vec![first.reply.id]);
        // Writer b died mid-reply: its reply is marked cut off and the next one starts.
        let third = store
            .begin_reply(
                s.id,
                ReplyStart::Message {
                    text: "third",
                    attachments: &[],
                    title: None,
                },
                "writer-c",
                &|owner| owner == "writer-a",
            )
            .unwrap();
        let dead = store.message(retry.reply.id).unwrap();
        assert_eq!(
            (dead.status.as_str(), dead.error_code.as_deref()),
            ("interrupted", Some("app_closed"))
        );
        assert_eq!(third.reply.status, "streaming");
        assert_eq!(store.session(s.id).unwrap().title, "first");
    }

    #[test]
    fn a_version_1_database_keeps_its_messages_through_migration_2() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.sqlite3");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch(
                "PRAGMA user_version = 1;
                 INSERT INTO sessions (profile_id, title, persona, created_at, updated_at)
                     VALUES (1, 'old', 'office', 0, 0);
                 INSERT INTO messages (session_id, role, content, created_at) VALUES (1, 'user', 'kept', 0);",
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), latest_version());
        let messages = store.messages(1).unwrap();
        assert_eq!(messages[0].content, "kept");
        assert!(messages[0].suggestions.is_empty() && messages[0].error_code.is_none());
    }

    #[test]
    fn a_message_for_a_missing_session_is_refused_without_a_partial_write() {
        let (_dir, mut store) = temp_store();
        assert_eq!(
            store
                .append_message(42, Role::User, "x", "complete")
                .unwrap_err()
                .code(),
            "not_found"
        );
        let n: i64 = store
            .conn
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn chunks_are_searchable_through_the_trigram_index_and_leave_it_when_deleted() {
        let (_dir, store) = temp_store();
        store
            .conn
            .execute_batch(
                "INSERT INTO documents (id, path, file_name, kind, content_sha256, size_bytes, imported_at)
                     VALUES (1, '/d/a.txt', 'a.txt', 'txt', 'x', 1, 0);
                 INSERT INTO chunks (document_id, ordinal, text, char_start, char_end, token_count)
                     VALUES (1, 0, '서울은 한국의 수도입니다', 0, 12, 5);",
            )
            .unwrap();
        let hits = |q: &str| -> i64 {
            store
                .conn
                .query_row(
                    "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?1",
                    [q],
                    |r| r.get(0),
                )
                .unwrap()
        };
        assert_eq!(hits("\"서울은\""), 1);
        assert_eq!(hits("\"의 수도\""), 1);
        store
            .conn
            .execute("DELETE FROM documents WHERE id = 1", [])
            .unwrap();
        assert_eq!(
            hits("\"서울은\""),
            0,
            "cascading chunk deletes must reach the FTS index"
        );
    }

    #[test]
    fn request_totals_add_up_by_outcome() {
        let (_dir, mut store) = temp_store();
        for outcome in ["ok", "ok", "cancelled", "busy", "error"] {
            store
                .log_request(&RequestRecord {
                    model: "smollm2".into(),
                    outcome: outcome.into(),
                    prompt_tokens: 10,
                    completion_tokens: 5,
                    started_at: now_ms(),
                    ..RequestRecord::default()
                })
                .unwrap();
        }
        let t = store.request_totals("smollm2").unwrap();
        assert_eq!(
            (t.requests, t.ok, t.cancelled, t.busy, t.errors),
            (5, 2, 1, 1, 1)
        );
        assert_eq!((t.prompt_tokens, t.completion_tokens), (50, 25));
        assert_eq!(
            store.request_totals("other").unwrap(),
            RequestTotals::default()
        );
    }
}
