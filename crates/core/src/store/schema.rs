//! The schema: its migrations, in order, and the version this build writes.
//!
//! Migration *n* takes a database from `user_version` *n* to *n + 1*; see the store's doc for
//! how they run. The list is append-only: a shipped entry never changes.

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
    // 6: the text OCR read in an attached image, given to a model that cannot see images
    // (NULL: not read; '': read, and no text found).
    r#"
    ALTER TABLE attachments ADD COLUMN ocr_text TEXT;
    "#,
    // 7: each chunk's sentences embedded on their own, for the search's rerank (see
    // documents::sentence_vectors; NULL: not made, the chunk keeps its place).
    r#"
    ALTER TABLE chunks ADD COLUMN sentence_vectors BLOB;
    "#,
];

/// The schema version this build writes.
pub fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}
