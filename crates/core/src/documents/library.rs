//! The document library: import jobs, the indexes, hybrid search under the active profile's
//! clearance.
//!
//! Invariants:
//! - **One file, one transaction.** A file's document row, its chunks (with their embeddings),
//!   their keyword rows and its `import_files` status are committed together. A crash mid-import
//!   leaves every file either done or still `pending`; the next [`Library::run_jobs`] (the app
//!   calls it at start) carries on with the pending ones.
//! - **The database is the truth.** The vector index ([`super::vectors`]) is a cache of
//!   `chunks.embedding`, saved at the end of a job; if it does not reflect the database's
//!   `vector_epoch` it is rebuilt from the stored embeddings.
//! - **Clearance is applied here, never by the caller.** Every listing, search and passage
//!   lookup reads the active profile from the database and filters by its clearance, in SQL for
//!   keyword search and in the vector filter for vector search, and once more in SQL when the
//!   passages are read.
//! - Without an embedding model or ONNX Runtime, import stores chunks without embeddings and
//!   search is keyword-only with a `notice`; the embeddings are made later
//!   ([`Library::embed_missing`], run at the end of every job).
//!
//! - **Jobs belong to one process.** Several processes may import into one database at once;
//!   each runs the jobs it created, and claims a job only when its owner is gone
//!   ([`crate::owner`]). A job keeps the clearance of the profile that created it: a file
//!   already imported at a level above it is refused (never re-levelled nor replaced), a level
//!   above it is refused, and a new document defaults to `internal` or that clearance if lower.
//! - **Another writer may change the chunks at any time.** Each transaction that changes chunks
//!   reads `vector_epoch` before and after its writes; the in-memory index follows only when it
//!   reflected the "before", otherwise it is dropped and rebuilt from the database when next
//!   needed. So a saved index never claims an epoch whose chunks it lacks. Level changes bump
//!   `levels_epoch`, and a search that finds it moved reads the levels again (not the vectors).
//!
//! Threading: every method blocks (file parsing, embedding, SQLite); call from a worker thread
//! or `spawn_blocking`. One job runner at a time ([`Error::ImportInProgress`] otherwise);
//! searches may run while it works (they share the store and index mutexes, held briefly).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::chunk::{chunk_sections, ApproxTokens, Chunk, ModelTokenizer, TokenCounter};
use super::embed::{from_blob, to_blob, Embedder, OnnxEmbedder};
use super::extract::{extract_bytes, read_document, DocKind};
use super::keyword;
use super::vectors::{Header, VectorIndex};
use crate::config::{Config, DocumentsConfig, EmbeddingConfig};
use crate::owner::Owner;
use crate::store::{found, now_ms, store_err, AccessLevel, Store};
use crate::{Error, Result};

/// A document as the Documents page lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Document {
    pub id: i64,
    pub path: String,
    pub file_name: String,
    pub kind: String,
    pub size_bytes: i64,
    pub level: AccessLevel,
    /// `indexed` or `failed` (a file that could never be read).
    pub status: String,
    /// Why the last import of this file failed; an indexed document keeps its chunks.
    pub error: Option<String>,
    pub chunk_count: i64,
    /// Chunks with an embedding; fewer than `chunk_count` until the embedding model has run.
    pub embedded_chunks: i64,
    pub imported_at: i64,
    pub indexed_at: Option<i64>,
}

/// What happened to one file of an import.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileOutcome {
    pub path: String,
    /// `added`, `replaced`, `unchanged` or `failed`.
    pub status: String,
    pub chunks: i64,
    pub error_code: Option<String>,
    pub error: Option<String>,
}

/// Sent before each file and after it, and once when the job ends.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportProgress {
    pub job_id: i64,
    pub files_total: i64,
    pub files_done: i64,
    pub chunks_done: i64,
    /// The file being read now.
    pub current: Option<String>,
    /// The file just finished.
    pub finished_file: Option<FileOutcome>,
    /// Progress inside the current file: chunks embedded and stored of its total (both 0 until
    /// the file has been read and cut into chunks).
    pub current_chunks_done: i64,
    pub current_chunks_total: i64,
    pub done: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobReport {
    pub job_id: i64,
    pub cancelled: bool,
    pub files: Vec<FileOutcome>,
    pub added: usize,
    pub replaced: usize,
    pub unchanged: usize,
    pub failed: usize,
    pub chunks: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    Hybrid,
    Keyword,
    Vector,
}

/// A ranked chunk with its source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Passage {
    pub chunk_id: i64,
    pub document_id: i64,
    pub path: String,
    pub file_name: String,
    pub kind: String,
    pub level: AccessLevel,
    pub page: Option<u32>,
    pub section: Option<String>,
    pub text: String,
    pub score: f64,
    /// Cosine similarity to the query, when vector search found the chunk.
    pub similarity: Option<f32>,
    /// 1-based ranks in the keyword and vector lists, where the chunk was in them.
    pub keyword_rank: Option<usize>,
    pub vector_rank: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResult {
    pub query: String,
    /// The terms keyword search looked for (for highlighting).
    pub terms: Vec<String>,
    /// What actually ran: `hybrid`, or `keyword` when vectors are unavailable.
    pub mode: SearchMode,
    /// Why vector search was not used, when it was wanted.
    pub notice: Option<Error>,
    /// Problems that did not stop the search (the vector index file cannot be saved, so it is
    /// rebuilt in memory at every start).
    pub warnings: Vec<Error>,
    pub passages: Vec<Passage>,
}

enum EmbedderSlot {
    NotLoaded,
    Ready(Box<dyn Embedder>),
    /// The last load failed; it is tried again after [`EMBEDDER_RETRY`].
    Failed(Error, Instant),
}

/// How long a failed embedder load is remembered before the next search tries again (the user
/// may have installed the model meanwhile).
const EMBEDDER_RETRY: Duration = Duration::from_secs(30);

struct VectorState {
    index: VectorIndex,
    /// Each indexed chunk's document level, for the search filter.
    levels: HashMap<i64, AccessLevel>,
    /// The database `vector_epoch` the index reflects.
    epoch: i64,
    /// The database `levels_epoch` that `levels` reflects.
    levels_epoch: i64,
    /// The epoch of the index as last read from or written to `deskmate.vectors`, so an index
    /// that is already on disk is not written again.
    saved_epoch: Option<i64>,
}

/// Words found in more than this share of all chunks are left out of keyword search.
const COMMON_WORD_SHARE: f64 = 0.2;
/// ... and in more than this many chunks.
const COMMON_WORD_MIN_CHUNKS: f64 = 200.0;

/// How many candidates each method contributes to the fusion.
const CANDIDATES: usize = 50;

pub struct Library {
    store: Mutex<Store>,
    vectors_path: PathBuf,
    documents: DocumentsConfig,
    embedding: EmbeddingConfig,
    model_dir: PathBuf,
    runtime_library: PathBuf,
    embedder: Mutex<EmbedderSlot>,
    vectors: Mutex<Option<VectorState>>,
    tokenizer: OnceLock<Box<dyn TokenCounter + Send + Sync>>,
    running: AtomicBool,
    cancel: AtomicBool,
    owner: Owner,
    /// Why the vector index could not be saved (it works from memory meanwhile).
    vectors_unsaved: Mutex<Option<Error>>,
}

/// A job as its runner needs it.
struct JobSpec {
    /// The level given for its files (`None`: the default for new ones, unchanged for known ones).
    level: Option<AccessLevel>,
    /// The clearance of the profile that created it.
    clearance: AccessLevel,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these leaves data that is still consistent (every write is
    // a finished transaction or a whole index operation), so a poisoned lock is taken over.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Library {
    /// Opens the library on the database at `db_path` (its own connection), with the vector
    /// index saved at `vectors_path` and the embedding model under `models_dir`.
    pub fn open(
        db_path: &Path,
        vectors_path: &Path,
        config: &Config,
        models_dir: &Path,
    ) -> Result<Library> {
        let store = Store::open(db_path)?;
        // A per-connection view of the word index's vocabulary (chunks per word), to leave out
        // words that are in most chunks; TEMP, so the schema is unchanged.
        store
            .conn()
            .execute_batch(
                "CREATE VIRTUAL TABLE IF NOT EXISTS temp.chunks_words_vocab USING fts5vocab(main, chunks_words, 'row');",
            )
            .map_err(|e| store_err(db_path, e))?;
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                models_dir.join(p)
            }
        };
        Ok(Library {
            store: Mutex::new(store),
            vectors_path: vectors_path.to_path_buf(),
            documents: config.documents.clone(),
            embedding: config.embedding.clone(),
            model_dir: resolve(&config.embedding.model),
            runtime_library: resolve(&config.embedding.runtime_library),
            embedder: Mutex::new(EmbedderSlot::NotLoaded),
            vectors: Mutex::new(None),
            tokenizer: OnceLock::new(),
            running: AtomicBool::new(false),
            cancel: AtomicBool::new(false),
            owner: Owner::new(db_path, Owner::IMPORTS),
            vectors_unsaved: Mutex::new(None),
        })
    }

    /// Uses `embedder` instead of loading the configured model (tests, benchmarks).
    pub fn with_embedder(self, embedder: Box<dyn Embedder>) -> Library {
        *lock(&self.embedder) = EmbedderSlot::Ready(embedder);
        self
    }

    fn err(&self, store: &Store, e: rusqlite::Error) -> Error {
        store_err(store.path(), e)
    }

    /// Every row of a query, mapped.
    fn rows<T>(
        &self,
        store: &Store,
        sql: &str,
        params: impl rusqlite::Params,
        map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        store
            .conn()
            .prepare_cached(sql)
            .and_then(|mut stmt| stmt.query_map(params, map)?.collect())
            .map_err(|e| self.err(store, e))
    }

    fn clearance(&self, store: &Store) -> Result<AccessLevel> {
        Ok(store.active_profile()?.clearance)
    }

    fn counter(&self) -> &(dyn TokenCounter + Send + Sync) {
        self.tokenizer
            .get_or_init(|| {
                match ModelTokenizer::from_file(&self.model_dir.join("tokenizer.json")) {
                    Ok(t) => Box::new(t),
                    Err(e) => {
                        tracing::warn!(error = %e, "no embedding tokenizer; chunk sizes are estimated");
                        Box::new(ApproxTokens)
                    }
                }
            })
            .as_ref()
    }

    /// Loads the embedding model if it is not loaded; `Err` says why vectors are unavailable.
    fn with_embedder_ready<T>(
        &self,
        f: impl FnOnce(&mut dyn Embedder) -> Result<T>,
    ) -> std::result::Result<Result<T>, Error> {
        let mut slot = lock(&self.embedder);
        let retry = match &*slot {
            EmbedderSlot::Failed(_, at) => at.elapsed() >= EMBEDDER_RETRY,
            EmbedderSlot::NotLoaded => true,
            EmbedderSlot::Ready(_) => false,
        };
        if retry {
            *slot = match OnnxEmbedder::load(
                &self.model_dir,
                &self.runtime_library,
                &self.embedding,
            ) {
                Ok(e) => {
                    tracing::info!(model = %self.model_dir.display(), "embedding model loaded");
                    EmbedderSlot::Ready(Box::new(e))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "embedding model unavailable; keyword search only");
                    EmbedderSlot::Failed(e, Instant::now())
                }
            };
        }
        match &mut *slot {
            EmbedderSlot::Ready(e) => Ok(f(e.as_mut())),
            EmbedderSlot::Failed(why, _) => Err(why.clone()),
            EmbedderSlot::NotLoaded => Err(Error::EmbeddingModelMissing {
                path: self.model_dir.clone(),
            }),
        }
    }

    /// Passages a grounded answer gets (`documents.top_k`).
    pub fn top_k(&self) -> usize {
        self.documents.top_k.max(1) as usize
    }

    /// Whether any document is indexed (a grounded answer is not attempted otherwise).
    pub fn has_documents(&self) -> Result<bool> {
        let store = lock(&self.store);
        store
            .conn()
            .query_row("SELECT EXISTS (SELECT 1 FROM chunks)", [], |r| r.get(0))
            .map_err(|e| self.err(&store, e))
    }

    /// Like `with_embedder_ready`, for callers that need the model: its absence is an error.
    fn with_embedder_required<T>(
        &self,
        f: impl FnOnce(&mut dyn Embedder) -> Result<T>,
    ) -> Result<T> {
        self.with_embedder_ready(f)?
    }

    /// Why vector search is unavailable, or `None` when it works.
    pub fn vector_notice(&self) -> Option<Error> {
        self.with_embedder_ready(|_| Ok(())).err()
    }

    // --- listing and editing ---

    /// The documents the active profile may see, newest first.
    pub fn documents(&self) -> Result<Vec<Document>> {
        let store = lock(&self.store);
        let clearance = self.clearance(&store)?;
        self.rows(
            &store,
            &format!("SELECT {DOCUMENT_COLUMNS} FROM documents d WHERE d.access_level <= ?1 ORDER BY d.imported_at DESC, d.id DESC"),
            [clearance as i64],
            document_from_row,
        )
    }

    /// One document, if the active profile may see it (otherwise it does not exist for them).
    pub fn document(&self, id: i64) -> Result<Document> {
        let store = lock(&self.store);
        let clearance = self.clearance(&store)?;
        store
            .conn()
            .query_row(
                &format!("SELECT {DOCUMENT_COLUMNS} FROM documents d WHERE d.id = ?1 AND d.access_level <= ?2"),
                params![id, clearance as i64],
                document_from_row,
            )
            .optional()
            .map_err(|e| self.err(&store, e))?
            .ok_or(Error::NotFound {
                what: "document",
                id,
            })
    }

    /// Opens a document's original file in the system viewer (at `page` for a PDF where the
    /// viewer can), if the active profile may see it.
    pub fn open_original(&self, id: i64, page: Option<u32>) -> Result<super::open::Opened> {
        let doc = self.document(id)?;
        super::open::open_original(Path::new(&doc.path), page)
    }

    /// Removes a document with its chunks from both indexes (not the file itself).
    pub fn delete_document(&self, id: i64) -> Result<()> {
        self.document(id)?;
        let mut store = lock(&self.store);
        let path = store.path().to_path_buf();
        let tx = store
            .conn_mut()
            .transaction()
            .map_err(|e| store_err(&path, e))?;
        let epoch_before = read_epoch(&tx).map_err(|e| store_err(&path, e))?;
        let chunk_ids = chunk_ids_of(&tx, id).map_err(|e| store_err(&path, e))?;
        let changed = tx
            .execute("DELETE FROM documents WHERE id = ?1", [id])
            .map_err(|e| store_err(&path, e))?;
        found(changed, "document", id)?;
        let epoch_after = read_epoch(&tx).map_err(|e| store_err(&path, e))?;
        tx.commit().map_err(|e| store_err(&path, e))?;
        drop(store);
        self.apply_to_vectors(&chunk_ids, &[], None, epoch_before, epoch_after)?;
        self.save_vectors()
    }

    /// Changes a document's access level. A profile cannot raise a document above its own
    /// clearance (it could no longer see or undo it), nor touch one it cannot see.
    pub fn set_level(&self, id: i64, level: AccessLevel) -> Result<Document> {
        self.document(id)?;
        {
            let store = lock(&self.store);
            if level > self.clearance(&store)? {
                return Err(Error::InvalidInput {
                    field: "level",
                    message: format!("{} is above this profile's clearance", level.as_str()),
                });
            }
            store
                .conn()
                .execute(
                    "UPDATE documents SET access_level = ?2 WHERE id = ?1",
                    params![id, level as i64],
                )
                .map_err(|e| self.err(&store, e))?;
            // The vector filter's copy of the levels follows through `levels_epoch`, which the
            // update bumped, at the next search.
        }
        self.document(id)
    }

    // --- import jobs ---

    /// Records an import of `paths` (files, and folders walked recursively) as a job whose
    /// files are all `pending`; [`Library::run_jobs`] does the work. In folders only supported
    /// files are taken (hidden files and folders are skipped); a file named explicitly is always
    /// taken, so an unsupported one is reported with its reason.
    ///
    /// The job belongs to this library (no other process runs it while this one lives) and
    /// keeps the active profile's clearance.
    pub fn create_job(&self, paths: &[PathBuf], level: Option<AccessLevel>) -> Result<i64> {
        let clearance = {
            let store = lock(&self.store);
            self.clearance(&store)?
        };
        if let Some(level) = level {
            if level > clearance {
                return Err(Error::InvalidInput {
                    field: "level",
                    message: format!("{} is above this profile's clearance", level.as_str()),
                });
            }
        }
        let owner = self.owner.token()?;
        let mut files = Vec::new();
        for path in paths {
            let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
            if meta.is_dir() {
                walk(path, &mut files)?;
            } else {
                files.push(absolute(path));
            }
        }
        files.dedup();
        let mut store = lock(&self.store);
        let db = store.path().to_path_buf();
        let tx = store
            .conn_mut()
            .transaction()
            .map_err(|e| store_err(&db, e))?;
        tx.execute(
            "INSERT INTO import_jobs (level, created_at, owner, clearance) VALUES (?1, ?2, ?3, ?4)",
            params![level.map(|l| l as i64), now_ms(), owner, clearance as i64],
        )
        .map_err(|e| store_err(&db, e))?;
        let job = tx.last_insert_rowid();
        for file in &files {
            tx.execute(
                "INSERT OR IGNORE INTO import_files (job_id, path) VALUES (?1, ?2)",
                params![job, file.to_string_lossy()],
            )
            .map_err(|e| store_err(&db, e))?;
        }
        tx.commit().map_err(|e| store_err(&db, e))?;
        Ok(job)
    }

    /// Jobs this library would run now: its own, and those whose process is gone (interrupted
    /// by an exit or a crash) that the active profile may see. Jobs another live process runs
    /// are not listed.
    pub fn unfinished_jobs(&self) -> Result<Vec<i64>> {
        let store = lock(&self.store);
        Ok(self
            .runnable_jobs(&store)?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    /// `(job, its owner when it must be claimed from that owner first)`, oldest first.
    #[allow(clippy::type_complexity)]
    fn runnable_jobs(&self, store: &Store) -> Result<Vec<(i64, Option<Option<String>>)>> {
        let clearance = self.clearance(store)?;
        let jobs: Vec<(i64, Option<String>, Option<i64>)> = self.rows(
            store,
            "SELECT id, owner, clearance FROM import_jobs WHERE status = 'running' ORDER BY id",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok(jobs
            .into_iter()
            .filter_map(|(id, owner, job_clearance)| match owner {
                Some(o) if self.owner.is_me(&o) => Some((id, None)),
                Some(o) if self.owner.is_alive(&o) => None,
                // An orphan is resumed only by a profile that may see what it imports, so its
                // file names and errors never reach a lower one.
                _ if job_clearance.is_some_and(|c| AccessLevel::from_i64(c) > clearance) => None,
                owner => Some((id, Some(owner))),
            })
            .collect())
    }

    /// The next job to run, claimed for this library; `None` when there is none.
    fn next_job(&self) -> Result<Option<i64>> {
        let token = self.owner.token()?.to_owned();
        let store = lock(&self.store);
        let db = store.path().to_path_buf();
        loop {
            let Some((job, claim)) = self.runnable_jobs(&store)?.into_iter().next() else {
                return Ok(None);
            };
            let Some(previous) = claim else {
                return Ok(Some(job));
            };
            // Taken only from the owner it was found with: when two processes find the same
            // orphan, the second one's update changes nothing and it looks again.
            let claimed = store
                .conn()
                .execute(
                    "UPDATE import_jobs SET owner = ?2 WHERE id = ?1 AND status = 'running' AND owner IS ?3",
                    params![job, token, previous],
                )
                .map_err(|e| store_err(&db, e))?;
            if claimed == 1 {
                tracing::info!(job, "resuming an import whose process has ended");
                return Ok(Some(job));
            }
        }
    }

    pub fn is_importing(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// Asks the running job to stop after the file (or embedding batch) in hand; the files not
    /// started stay recorded as not done and the job is marked cancelled.
    pub fn cancel_import(&self) {
        if self.is_importing() {
            self.cancel.store(true, Ordering::SeqCst);
        }
    }

    /// Imports `paths` now: [`Library::create_job`] then [`Library::run_jobs`].
    pub fn import(
        &self,
        paths: &[PathBuf],
        level: Option<AccessLevel>,
        progress: &mut dyn FnMut(&ImportProgress),
    ) -> Result<Vec<JobReport>> {
        self.create_job(paths, level)?;
        self.run_jobs(progress)
    }

    /// Runs every unfinished job in order, then embeds chunks still without a vector, then
    /// saves the vector index.
    pub fn run_jobs(&self, progress: &mut dyn FnMut(&ImportProgress)) -> Result<Vec<JobReport>> {
        if self
            .running
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            let job = self.unfinished_jobs()?.first().copied().unwrap_or(0);
            return Err(Error::ImportInProgress { job });
        }
        self.cancel.store(false, Ordering::SeqCst);
        let result = (|| {
            // With a job to run, the index is brought up to date first, so the job's changes are
            // applied to it as they commit and one save at the end suffices. Without one (most app
            // starts) the embedding model is not loaded here at all: `embed_missing` loads it
            // only when chunks lack vectors. Without a model there is no index.
            if !self.unfinished_jobs()?.is_empty() {
                if let Ok(Err(e)) = self.ensure_vectors() {
                    tracing::warn!(error = %e, "vector index unavailable during import");
                }
            }
            let mut reports = Vec::new();
            while let Some(job) = self.next_job()? {
                let report = self.run_job(job, progress)?;
                let cancelled = report.cancelled;
                reports.push(report);
                if cancelled {
                    break;
                }
            }
            if !self.cancel.load(Ordering::SeqCst) {
                self.embed_missing()?;
            }
            if !reports.is_empty() {
                // Another process's writes may have made this one's index stale mid-job; the
                // saved file is brought up to the database once, here, instead of by the next
                // search.
                if let Ok(Err(e)) = self.ensure_vectors() {
                    tracing::warn!(error = %e, "vector index not brought up to date");
                }
            }
            self.save_vectors()?;
            Ok(reports)
        })();
        self.running.store(false, Ordering::SeqCst);
        result
    }

    fn run_job(&self, job: i64, progress: &mut dyn FnMut(&ImportProgress)) -> Result<JobReport> {
        let (spec, files) = {
            let store = lock(&self.store);
            let (level, clearance): (Option<i64>, Option<i64>) = store
                .conn()
                .query_row(
                    "SELECT level, clearance FROM import_jobs WHERE id = ?1",
                    [job],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(|e| self.err(&store, e))?;
            // Jobs from before clearances were recorded run under the active profile's.
            let clearance = match clearance {
                Some(c) => AccessLevel::from_i64(c),
                None => self.clearance(&store)?,
            };
            let spec = JobSpec {
                level: level.map(AccessLevel::from_i64),
                clearance,
            };
            let mut stmt = store
                .conn()
                .prepare("SELECT id, path, status, chunks, error_code, error FROM import_files WHERE job_id = ?1 ORDER BY id")
                .map_err(|e| self.err(&store, e))?;
            let rows = stmt
                .query_map([job], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        FileOutcome {
                            path: r.get(1)?,
                            status: r.get(2)?,
                            chunks: r.get(3)?,
                            error_code: r.get(4)?,
                            error: r.get(5)?,
                        },
                    ))
                })
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(|e| self.err(&store, e))?;
            (spec, rows)
        };
        let files_total = files.len() as i64;
        let mut report = JobReport {
            job_id: job,
            cancelled: false,
            files: Vec::new(),
            added: 0,
            replaced: 0,
            unchanged: 0,
            failed: 0,
            chunks: 0,
        };
        let mut files_done = files.iter().filter(|(_, f)| f.status != "pending").count() as i64;
        let mut chunks_done: i64 = files.iter().map(|(_, f)| f.chunks).sum();
        for (file_id, outcome) in files {
            if outcome.status != "pending" {
                report.files.push(outcome);
                continue;
            }
            if self.cancel.load(Ordering::SeqCst) {
                report.cancelled = true;
                break;
            }
            let current = outcome.path.clone();
            let at = |file_done: i64, file_total: i64| ImportProgress {
                job_id: job,
                files_total,
                files_done,
                chunks_done,
                current: Some(current.clone()),
                finished_file: None,
                current_chunks_done: file_done,
                current_chunks_total: file_total,
                done: false,
            };
            progress(&at(0, 0));
            let imported = self.import_file(
                file_id,
                Path::new(&outcome.path),
                &spec,
                &mut |done, total| progress(&at(done, total)),
            )?;
            let Some(outcome) = imported else {
                report.cancelled = true;
                break;
            };
            files_done += 1;
            chunks_done += outcome.chunks;
            progress(&ImportProgress {
                job_id: job,
                files_total,
                files_done,
                chunks_done,
                current: None,
                finished_file: Some(outcome.clone()),
                current_chunks_done: 0,
                current_chunks_total: 0,
                done: false,
            });
            report.files.push(outcome);
        }
        for f in &report.files {
            match f.status.as_str() {
                "added" => report.added += 1,
                "replaced" => report.replaced += 1,
                "unchanged" => report.unchanged += 1,
                "failed" => report.failed += 1,
                _ => {}
            }
            report.chunks += f.chunks;
        }
        {
            let store = lock(&self.store);
            store
                .conn()
                .execute(
                    "UPDATE import_jobs SET status = ?2, finished_at = ?3 WHERE id = ?1",
                    params![
                        job,
                        if report.cancelled {
                            "cancelled"
                        } else {
                            "done"
                        },
                        now_ms()
                    ],
                )
                .map_err(|e| self.err(&store, e))?;
        }
        progress(&ImportProgress {
            job_id: job,
            files_total,
            files_done,
            chunks_done,
            current: None,
            finished_file: None,
            current_chunks_done: 0,
            current_chunks_total: 0,
            done: true,
        });
        Ok(report)
    }

    /// Reads, chunks, embeds and stores one file. `Ok(None)`: cancelled before it was stored.
    /// A file that cannot be read, or that the job's profile may not import, is an outcome
    /// (`failed`), not an error; only database and index errors (a full disk among them) end
    /// the job. `progress(done, total)` follows the file's chunks as they are embedded.
    fn import_file(
        &self,
        file_id: i64,
        path: &Path,
        spec: &JobSpec,
        progress: &mut dyn FnMut(i64, i64),
    ) -> Result<Option<FileOutcome>> {
        let path_text = path.to_string_lossy().into_owned();
        // Checked before any work, and again in the write transaction (the level may change
        // meanwhile), which is the check that counts.
        let known_level = {
            let store = lock(&self.store);
            self.known_level(store.conn(), &path_text)
                .map_err(|e| self.err(&store, e))?
        };
        if let Err(e) = import_level(path, known_level, spec) {
            return self.record_failure(file_id, path, &e, spec).map(Some);
        }
        let prepared = match self.prepare_file(path) {
            Ok(p) => p,
            Err(e) => {
                return self.record_failure(file_id, path, &e, spec).map(Some);
            }
        };
        let Prepared::Changed {
            kind,
            sha256,
            size_bytes,
            chunks,
        } = prepared
        else {
            return self.record_unchanged(file_id, path, spec).map(Some);
        };

        // Embeddings are made before the transaction, so the database is locked only briefly.
        let total = chunks.len() as i64;
        progress(0, total);
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        let mut embeddings: Option<Vec<Vec<f32>>> = None;
        let batch = self.embedding.batch_size.max(1) as usize;
        let embedded = self.with_embedder_ready(|embedder| {
            let mut all = Vec::with_capacity(texts.len());
            for group in texts.chunks(batch) {
                if self.cancel.load(Ordering::SeqCst) {
                    return Ok(None);
                }
                all.extend(embedder.embed_passages(group)?);
                progress(all.len() as i64, total);
            }
            Ok(Some((all, embedder.model_id().to_owned())))
        });
        let mut model_id = None;
        match embedded {
            Ok(Ok(Some((vectors, model)))) => {
                embeddings = Some(vectors);
                model_id = Some(model);
            }
            Ok(Ok(None)) => return Ok(None),
            Ok(Err(e)) => {
                // The model loaded but failed on this text: store the chunks without vectors
                // (keyword search still finds them) and say why in the log.
                tracing::warn!(path = %path.display(), error = %e, "embedding failed; chunks kept for keyword search");
            }
            Err(_) => {}
        }

        let mut store = lock(&self.store);
        let db = store.path().to_path_buf();
        let tx = store
            .conn_mut()
            .transaction()
            .map_err(|e| store_err(&db, e))?;
        let epoch_before = read_epoch(&tx).map_err(|e| store_err(&db, e))?;
        let existing: Option<(i64, i64)> = tx
            .query_row(
                "SELECT id, access_level FROM documents WHERE path = ?1",
                [&path_text],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| store_err(&db, e))?;
        let level = match import_level(path, existing.map(|(_, l)| AccessLevel::from_i64(l)), spec)
        {
            Ok(level) => level,
            Err(e) => {
                drop(tx);
                drop(store);
                return self.record_failure(file_id, path, &e, spec).map(Some);
            }
        };
        let now = now_ms();
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path_text.clone());
        let (doc_id, removed) = match existing {
            Some((id, _)) => {
                let removed = chunk_ids_of(&tx, id).map_err(|e| store_err(&db, e))?;
                tx.execute("DELETE FROM chunks WHERE document_id = ?1", [id])
                    .map_err(|e| store_err(&db, e))?;
                tx.execute(
                    "UPDATE documents SET kind = ?2, content_sha256 = ?3, size_bytes = ?4, status = 'indexed',
                        error = NULL, chunk_count = ?5, indexed_at = ?6, access_level = ?7 WHERE id = ?1",
                    params![id, kind.as_str(), sha256, size_bytes, chunks.len() as i64, now, level as i64],
                )
                .map_err(|e| store_err(&db, e))?;
                (id, removed)
            }
            None => {
                tx.execute(
                    "INSERT INTO documents (path, file_name, kind, content_sha256, size_bytes, access_level, status, chunk_count, imported_at, indexed_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'indexed', ?7, ?8, ?8)",
                    params![path_text, file_name, kind.as_str(), sha256, size_bytes,
                        level as i64, chunks.len() as i64, now],
                )
                .map_err(|e| store_err(&db, e))?;
                (tx.last_insert_rowid(), Vec::new())
            }
        };
        let mut added = Vec::with_capacity(chunks.len());
        {
            let mut insert_chunk = tx
                .prepare_cached(
                    "INSERT INTO chunks (document_id, ordinal, text, page, section, char_start, char_end, token_count, embedding)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(|e| store_err(&db, e))?;
            let mut insert_terms = tx
                .prepare_cached("INSERT INTO chunks_bigram (rowid, terms) VALUES (?1, ?2)")
                .map_err(|e| store_err(&db, e))?;
            for (i, chunk) in chunks.iter().enumerate() {
                let vector = embeddings.as_ref().and_then(|v| v.get(i));
                insert_chunk
                    .execute(params![
                        doc_id,
                        chunk.ordinal as i64,
                        chunk.text,
                        chunk.page,
                        chunk.section,
                        chunk.char_start as i64,
                        chunk.char_end as i64,
                        chunk.token_count as i64,
                        vector.map(|v| to_blob(v)),
                    ])
                    .map_err(|e| store_err(&db, e))?;
                let chunk_id = tx.last_insert_rowid();
                insert_terms
                    .execute(params![chunk_id, keyword::bigram_text(&chunk.text)])
                    .map_err(|e| store_err(&db, e))?;
                if let Some(v) = vector {
                    added.push((chunk_id, v.clone()));
                }
            }
        }
        if let Some(model) = &model_id {
            tx.execute(
                "UPDATE documents_state SET embedding_model = ?1 WHERE id = 1 AND embedding_model IS NULL",
                [model],
            )
            .map_err(|e| store_err(&db, e))?;
        }
        let status = if existing.is_some() {
            "replaced"
        } else {
            "added"
        };
        tx.execute(
            "UPDATE import_files SET status = ?2, document_id = ?3, chunks = ?4, error_code = NULL, error = NULL WHERE id = ?1",
            params![file_id, status, doc_id, chunks.len() as i64],
        )
        .map_err(|e| store_err(&db, e))?;
        let epoch_after = read_epoch(&tx).map_err(|e| store_err(&db, e))?;
        tx.commit().map_err(|e| store_err(&db, e))?;
        drop(store);
        progress(total, total);
        self.apply_to_vectors(&removed, &added, Some(level), epoch_before, epoch_after)?;
        Ok(Some(FileOutcome {
            path: path_text,
            status: status.to_owned(),
            chunks: chunks.len() as i64,
            error_code: None,
            error: None,
        }))
    }

    /// The level of the document already imported from `path`, if any.
    fn known_level(
        &self,
        conn: &rusqlite::Connection,
        path: &str,
    ) -> rusqlite::Result<Option<AccessLevel>> {
        conn.query_row(
            "SELECT access_level FROM documents WHERE path = ?1",
            [path],
            |r| r.get::<_, i64>(0),
        )
        .optional()
        .map(|l| l.map(AccessLevel::from_i64))
    }

    /// A file whose content is already indexed: only its level may change (to the job's).
    fn record_unchanged(&self, file_id: i64, path: &Path, spec: &JobSpec) -> Result<FileOutcome> {
        let path_text = path.to_string_lossy().into_owned();
        let mut store = lock(&self.store);
        let db = store.path().to_path_buf();
        let tx = store
            .conn_mut()
            .transaction()
            .map_err(|e| store_err(&db, e))?;
        let known = self
            .known_level(&tx, &path_text)
            .map_err(|e| store_err(&db, e))?;
        let level = match import_level(path, known, spec) {
            Ok(level) => level,
            Err(e) => {
                drop(tx);
                drop(store);
                return self.record_failure(file_id, path, &e, spec);
            }
        };
        let relevelled = known != Some(level);
        if relevelled {
            tx.execute(
                "UPDATE documents SET access_level = ?2 WHERE path = ?1",
                params![path_text, level as i64],
            )
            .map_err(|e| store_err(&db, e))?;
        }
        let chunks: i64 = tx
            .query_row(
                "SELECT chunk_count FROM documents WHERE path = ?1",
                [&path_text],
                |r| r.get(0),
            )
            .map_err(|e| store_err(&db, e))?;
        tx.execute(
            "UPDATE import_files SET status = 'unchanged', chunks = 0 WHERE id = ?1",
            [file_id],
        )
        .map_err(|e| store_err(&db, e))?;
        tx.commit().map_err(|e| store_err(&db, e))?;
        drop(store);
        Ok(FileOutcome {
            path: path_text,
            status: "unchanged".to_owned(),
            chunks,
            error_code: None,
            error: None,
        })
    }

    fn prepare_file(&self, path: &Path) -> Result<Prepared> {
        let limit = u64::from(self.documents.max_file_mb) * 1024 * 1024;
        let (kind, bytes) = read_document(path, limit)?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        {
            let store = lock(&self.store);
            let known: Option<(String, String)> = store
                .conn()
                .query_row(
                    "SELECT content_sha256, status FROM documents WHERE path = ?1",
                    [path.to_string_lossy()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(|e| self.err(&store, e))?;
            if matches!(&known, Some((sha, status)) if *sha == sha256 && status == "indexed") {
                return Ok(Prepared::Unchanged);
            }
        }
        let extracted = extract_bytes(path, kind, &bytes)?;
        let chunks = chunk_sections(
            &extracted.sections,
            self.counter(),
            self.documents.chunk_tokens as usize,
            self.documents.chunk_overlap as usize,
        );
        if chunks.is_empty() {
            return Err(Error::DocumentEmpty {
                path: path.to_path_buf(),
            });
        }
        Ok(Prepared::Changed {
            kind,
            sha256,
            size_bytes: bytes.len() as i64,
            chunks,
        })
    }

    /// Marks a file failed. A document already indexed from it keeps its chunks and shows the
    /// error (unless it is above the job's clearance: that one is left alone); a new one is
    /// listed as failed at the level the job would have given it, so it is seen only by those
    /// who could have seen the document. Returns the file's outcome.
    fn record_failure(
        &self,
        file_id: i64,
        path: &Path,
        e: &Error,
        spec: &JobSpec,
    ) -> Result<FileOutcome> {
        let mut store = lock(&self.store);
        let db = store.path().to_path_buf();
        let tx = store
            .conn_mut()
            .transaction()
            .map_err(|e| store_err(&db, e))?;
        let path_text = path.to_string_lossy();
        let message = e.to_string();
        let known = self
            .known_level(&tx, &path_text)
            .map_err(|e| store_err(&db, e))?;
        match known {
            Some(level) if level <= spec.clearance => {
                tx.execute(
                    "UPDATE documents SET error = ?2 WHERE path = ?1",
                    params![path_text, message],
                )
                .map_err(|e| store_err(&db, e))?;
            }
            Some(_) => {}
            None => {
                let size = std::fs::metadata(path).map(|m| m.len() as i64).unwrap_or(0);
                let level = spec
                    .level
                    .unwrap_or_else(|| default_level(spec.clearance))
                    .min(spec.clearance);
                tx.execute(
                    "INSERT INTO documents (path, file_name, kind, content_sha256, size_bytes, access_level, status, error, imported_at)
                     VALUES (?1, ?2, ?3, '', ?4, ?5, 'failed', ?6, ?7)",
                    params![
                        path_text,
                        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                        DocKind::of(path).map(DocKind::as_str).unwrap_or("unknown"),
                        size,
                        level as i64,
                        message,
                        now_ms()
                    ],
                )
                .map_err(|e| store_err(&db, e))?;
            }
        }
        tx.execute(
            "UPDATE import_files SET status = 'failed', error_code = ?2, error = ?3 WHERE id = ?1",
            params![file_id, e.code().as_str(), message],
        )
        .map_err(|e| store_err(&db, e))?;
        tx.commit().map_err(|e| store_err(&db, e))?;
        Ok(failed_outcome(path, e))
    }

    /// Imports one document's file again even if it has not changed (after a new embedding
    /// model, or to pick up a fixed parser). Returns the job.
    pub fn reindex_document(&self, id: i64) -> Result<i64> {
        let doc = self.document(id)?;
        {
            let store = lock(&self.store);
            store
                .conn()
                .execute(
                    "UPDATE documents SET content_sha256 = '' WHERE id = ?1",
                    [id],
                )
                .map_err(|e| self.err(&store, e))?;
        }
        self.create_job(&[PathBuf::from(doc.path)], None)
    }

    /// Embeds the chunks stored without a vector (imported while the model was missing, or
    /// after the model changed). Returns how many were embedded.
    pub fn embed_missing(&self) -> Result<usize> {
        let mut total = 0;
        loop {
            if self.cancel.load(Ordering::SeqCst) {
                return Ok(total);
            }
            let pending: Vec<(i64, String, i64)> = {
                let store = lock(&self.store);
                self.rows(
                    &store,
                    "SELECT c.id, c.text, d.access_level FROM chunks c JOIN documents d ON d.id = c.document_id
                     WHERE c.embedding IS NULL ORDER BY c.id LIMIT 256",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?
            };
            if pending.is_empty() {
                return Ok(total);
            }
            let texts: Vec<&str> = pending.iter().map(|(_, t, _)| t.as_str()).collect();
            let embedded = match self
                .with_embedder_ready(|e| Ok((e.embed_passages(&texts)?, e.model_id().to_owned())))
            {
                Ok(result) => result?,
                // No model: nothing to do until there is one.
                Err(_) => return Ok(total),
            };
            let (vectors, model) = embedded;
            let mut store = lock(&self.store);
            let db = store.path().to_path_buf();
            let tx = store
                .conn_mut()
                .transaction()
                .map_err(|e| store_err(&db, e))?;
            let epoch_before = read_epoch(&tx).map_err(|e| store_err(&db, e))?;
            for ((id, _, _), v) in pending.iter().zip(&vectors) {
                tx.execute(
                    "UPDATE chunks SET embedding = ?2 WHERE id = ?1",
                    params![id, to_blob(v)],
                )
                .map_err(|e| store_err(&db, e))?;
            }
            tx.execute(
                "UPDATE documents_state SET embedding_model = ?1 WHERE id = 1",
                [&model],
            )
            .map_err(|e| store_err(&db, e))?;
            let epoch_after = read_epoch(&tx).map_err(|e| store_err(&db, e))?;
            tx.commit().map_err(|e| store_err(&db, e))?;
            drop(store);
            let mut vectors_state = lock(&self.vectors);
            if let Some(state) = index_at(&mut vectors_state, epoch_before) {
                for ((id, _, level), v) in pending.iter().zip(&vectors) {
                    state.index.add(*id, v)?;
                    state.levels.insert(*id, AccessLevel::from_i64(*level));
                }
                state.epoch = epoch_after;
            }
            total += pending.len();
        }
    }

    /// Stores a synthetic document whose chunks come with their vectors (the benchmark fills a
    /// library with 100k chunks this way; embedding them all would take an hour here).
    #[doc(hidden)]
    pub fn insert_prepared(
        &self,
        name: &str,
        level: AccessLevel,
        chunks: &[(String, Vec<f32>)],
        model: &str,
    ) -> Result<i64> {
        let mut store = lock(&self.store);
        let db = store.path().to_path_buf();
        let tx = store
            .conn_mut()
            .transaction()
            .map_err(|e| store_err(&db, e))?;
        let now = now_ms();
        tx.execute(
            "INSERT INTO documents (path, file_name, kind, content_sha256, size_bytes, access_level, status, chunk_count, imported_at, indexed_at)
             VALUES (?1, ?2, 'txt', '', 0, ?3, 'indexed', ?4, ?5, ?5)",
            params![format!("/synthetic/{name}"), name, level as i64, chunks.len() as i64, now],
        )
        .map_err(|e| store_err(&db, e))?;
        let doc = tx.last_insert_rowid();
        {
            let mut insert_chunk = tx
                .prepare_cached(
                    "INSERT INTO chunks (document_id, ordinal, text, char_start, char_end, token_count, embedding)
                     VALUES (?1, ?2, ?3, 0, 0, 0, ?4)",
                )
                .map_err(|e| store_err(&db, e))?;
            let mut insert_terms = tx
                .prepare_cached("INSERT INTO chunks_bigram (rowid, terms) VALUES (?1, ?2)")
                .map_err(|e| store_err(&db, e))?;
            for (i, (text, vector)) in chunks.iter().enumerate() {
                insert_chunk
                    .execute(params![doc, i as i64, text, to_blob(vector)])
                    .map_err(|e| store_err(&db, e))?;
                let id = tx.last_insert_rowid();
                insert_terms
                    .execute(params![id, keyword::bigram_text(text)])
                    .map_err(|e| store_err(&db, e))?;
            }
        }
        tx.execute(
            "UPDATE documents_state SET embedding_model = ?1 WHERE id = 1",
            [model],
        )
        .map_err(|e| store_err(&db, e))?;
        tx.commit().map_err(|e| store_err(&db, e))?;
        Ok(doc)
    }

    /// Every stored embedding with its chunk id (the benchmark's exact-search reference).
    #[doc(hidden)]
    pub fn stored_embeddings(&self) -> Result<Vec<(i64, Vec<f32>)>> {
        let store = lock(&self.store);
        let rows = self.rows(
            &store,
            "SELECT id, embedding FROM chunks WHERE embedding IS NOT NULL ORDER BY id",
            [],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, blob)| from_blob(&blob).map(|v| (id, v)))
            .collect())
    }

    /// Embeds texts as queries with the library's model (the benchmark's query vectors).
    #[doc(hidden)]
    pub fn embed_queries(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.with_embedder_required(|e| texts.iter().map(|t| e.embed_query(t)).collect())
    }

    /// Every chunk's text, in id order.
    #[doc(hidden)]
    pub fn chunk_texts(&self) -> Result<Vec<String>> {
        let store = lock(&self.store);
        self.rows(&store, "SELECT text FROM chunks ORDER BY id", [], |r| {
            r.get(0)
        })
    }

    /// Embeds passages with the library's model, outside any import (the benchmark's baseline).
    #[doc(hidden)]
    pub fn embed_passages_for_bench(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let batch = self.embedding.batch_size.max(1) as usize;
        self.with_embedder_required(|e| {
            let mut all = Vec::with_capacity(texts.len());
            for group in texts.chunks(batch) {
                all.extend(e.embed_passages(group)?);
            }
            Ok(all)
        })
    }

    /// The HNSW index's nearest chunks to a vector, unfiltered (the benchmark's recall).
    #[doc(hidden)]
    pub fn nearest_chunks(&self, vector: &[f32], k: usize) -> Result<Vec<i64>> {
        self.warm_up()?;
        let guard = lock(&self.vectors);
        let Some(state) = guard.as_ref() else {
            return Ok(Vec::new());
        };
        Ok(state
            .index
            .search(vector, k, |_| true)?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    /// Loads (or rebuilds) the vector index now rather than at the first search.
    #[doc(hidden)]
    pub fn warm_up(&self) -> Result<()> {
        self.ensure_vectors()?
    }

    // --- the vector index ---

    /// Applies one committed transaction's chunk changes to the in-memory index. `epoch_before`
    /// and `epoch_after` are the database's epoch at the start and the end of that transaction:
    /// when the index does not reflect the start, another writer (another process) changed
    /// chunks in between, and the index is dropped to be rebuilt from the database.
    fn apply_to_vectors(
        &self,
        removed: &[i64],
        added: &[(i64, Vec<f32>)],
        level: Option<AccessLevel>,
        epoch_before: i64,
        epoch_after: i64,
    ) -> Result<()> {
        let mut guard = lock(&self.vectors);
        let Some(state) = index_at(&mut guard, epoch_before) else {
            return Ok(());
        };
        for id in removed {
            state.index.remove(*id)?;
            state.levels.remove(id);
        }
        for (id, v) in added {
            state.index.add(*id, v)?;
            state
                .levels
                .insert(*id, level.unwrap_or(AccessLevel::Restricted));
        }
        state.epoch = epoch_after;
        Ok(())
    }

    fn save_vectors(&self) -> Result<()> {
        let mut guard = lock(&self.vectors);
        if let Some(state) = guard.as_mut() {
            if state.saved_epoch != Some(state.epoch)
                && self.save_index(&state.index, state.epoch)?
            {
                state.saved_epoch = Some(state.epoch);
            }
        }
        Ok(())
    }

    /// Saves the index. A full disk is an error (the import stops and says so); any other
    /// failure (the file's place is a directory, or not writable) leaves the index working from
    /// memory and becomes a warning on every search until a save succeeds. Returns whether the
    /// file was written.
    fn save_index(&self, index: &VectorIndex, epoch: i64) -> Result<bool> {
        let outcome = index.save(epoch);
        let mut unsaved = lock(&self.vectors_unsaved);
        match outcome {
            Ok(()) => {
                *unsaved = None;
                Ok(true)
            }
            Err(e) if e.is_disk_full() => Err(e),
            Err(e) => {
                if unsaved.is_none() {
                    tracing::warn!(error = %e, "the vector index cannot be saved; it is kept in memory");
                }
                *unsaved = Some(Error::VectorIndexUnsaved {
                    path: self.vectors_path.clone(),
                    reason: e.to_string(),
                });
                Ok(false)
            }
        }
    }

    /// Makes sure the vector index matches the database: opens the saved one or rebuilds it
    /// from stored embeddings. Needs the embedder (its model id and dimensions).
    fn ensure_vectors(&self) -> std::result::Result<Result<()>, Error> {
        let (model, dimensions) =
            self.with_embedder_ready(|e| Ok((e.model_id().to_owned(), e.dimensions())))??;
        Ok(self.load_vectors(&model, dimensions))
    }

    fn load_vectors(&self, model: &str, dimensions: usize) -> Result<()> {
        let mut guard = lock(&self.vectors);
        let store = lock(&self.store);
        let conn = store.conn();
        let (epoch, levels_epoch, stored_model): (i64, i64, Option<String>) = conn
            .query_row(
                "SELECT vector_epoch, levels_epoch, embedding_model FROM documents_state WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(|e| self.err(&store, e))?;
        if let Some(state) = guard.as_mut() {
            if state.epoch == epoch && state.index.model() == model {
                if state.levels_epoch != levels_epoch {
                    // Levels changed (here, or in another process): the vectors are still
                    // right, only the filter's copy of the levels is read again.
                    let snapshot = rusqlite::Transaction::new_unchecked(
                        conn,
                        rusqlite::TransactionBehavior::Deferred,
                    )
                    .map_err(|e| self.err(&store, e))?;
                    let (levels, levels_epoch) =
                        read_levels(&snapshot).map_err(|e| self.err(&store, e))?;
                    drop(snapshot);
                    state.levels = levels;
                    state.levels_epoch = levels_epoch;
                }
                return Ok(());
            }
        }
        if stored_model.as_deref().is_some_and(|m| m != model) {
            // Vectors from another model are not comparable with this one's queries: forget
            // them; `embed_missing` (at the end of the next job) makes new ones.
            tracing::warn!(from = ?stored_model, to = model, "embedding model changed; stored vectors dropped");
            conn.execute_batch(
                "BEGIN IMMEDIATE;
                 UPDATE chunks SET embedding = NULL WHERE embedding IS NOT NULL;
                 UPDATE documents_state SET embedding_model = NULL WHERE id = 1;
                 COMMIT;",
            )
            .map_err(|e| {
                let _ = conn.execute_batch("ROLLBACK");
                self.err(&store, e)
            })?;
            drop(store);
            drop(guard);
            return self.load_vectors(model, dimensions);
        }
        // One read transaction: the epoch, the levels and the embeddings come from one snapshot
        // even while another process writes.
        let snapshot =
            rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Deferred)
                .map_err(|e| self.err(&store, e))?;
        let epoch: i64 = read_epoch(&snapshot).map_err(|e| self.err(&store, e))?;
        let (mut levels, levels_epoch) = read_levels(&snapshot).map_err(|e| self.err(&store, e))?;
        let wanted = Header {
            model: model.to_owned(),
            dimensions,
            epoch,
            count: levels.len(),
        };
        let (index, saved) = match VectorIndex::open(&self.vectors_path, &wanted)? {
            Ok(index) => (index, true),
            Err(why) => {
                let started = Instant::now();
                let mut index = VectorIndex::new(&self.vectors_path, model, dimensions)?;
                index.reserve(levels.len().max(1024))?;
                let mut stmt = snapshot
                    .prepare("SELECT id, embedding FROM chunks WHERE embedding IS NOT NULL")
                    .map_err(|e| self.err(&store, e))?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
                    .map_err(|e| self.err(&store, e))?;
                for row in rows {
                    let (id, blob) = row.map_err(|e| self.err(&store, e))?;
                    match from_blob(&blob) {
                        Some(v) if v.len() == dimensions => index.add(id, &v)?,
                        _ => {
                            levels.remove(&id);
                        }
                    }
                }
                drop(stmt);
                let saved = self.save_index(&index, epoch)?;
                tracing::info!(
                    ?why,
                    vectors = index.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "vector index rebuilt from stored embeddings"
                );
                (index, saved)
            }
        };
        drop(snapshot);
        *guard = Some(VectorState {
            index,
            levels,
            epoch,
            levels_epoch,
            saved_epoch: saved.then_some(epoch),
        });
        Ok(())
    }

    // --- search ---

    /// Hybrid search under the active profile's clearance.
    pub fn search(&self, query: &str, k: usize) -> Result<SearchResult> {
        self.search_with(query, k, SearchMode::Hybrid)
    }

    /// Search with one method (the benchmark compares them); `Hybrid` falls back to keyword
    /// search with a notice when vectors are unavailable.
    pub fn search_with(&self, query: &str, k: usize, mode: SearchMode) -> Result<SearchResult> {
        let query = query.trim();
        if query.is_empty() {
            return Err(Error::InvalidInput {
                field: "query",
                message: "type something to search for".to_owned(),
            });
        }
        let clearance = {
            let store = lock(&self.store);
            self.clearance(&store)?
        };
        self.search_under(query, k, mode, clearance)
    }

    /// Search as the named profile would (the CLI's `--profile`); its clearance applies.
    pub fn search_for_profile(
        &self,
        profile: &str,
        query: &str,
        k: usize,
        mode: SearchMode,
    ) -> Result<SearchResult> {
        let clearance = {
            let store = lock(&self.store);
            let profiles = store.profiles()?;
            match profiles.iter().find(|p| p.name == profile) {
                Some(p) => p.clearance,
                None => {
                    return Err(Error::InvalidInput {
                        field: "profile",
                        message: format!(
                            "no profile named \"{profile}\"; there are: {}",
                            profiles
                                .iter()
                                .map(|p| p.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    })
                }
            }
        };
        self.search_under(query.trim(), k, mode, clearance)
    }

    fn search_under(
        &self,
        query: &str,
        k: usize,
        mode: SearchMode,
        clearance: AccessLevel,
    ) -> Result<SearchResult> {
        if query.is_empty() {
            return Err(Error::InvalidInput {
                field: "query",
                message: "type something to search for".to_owned(),
            });
        }
        let k = k.clamp(1, 100);
        let terms = keyword::query_terms(query);
        // The two halves run side by side: the query's embedding (the vector half's cost) does
        // not wait for the keyword indexes.
        let n = CANDIDATES.max(k);
        let (keyword_ids, vector_half) = std::thread::scope(|scope| {
            let vector = (mode != SearchMode::Keyword)
                .then(|| scope.spawn(|| self.vector_ranking(query, clearance, n)));
            let keyword = if mode == SearchMode::Vector {
                Ok(Vec::new())
            } else {
                self.keyword_ranking(&terms, clearance, n)
            };
            (keyword, vector.map(|handle| handle.join()))
        });
        let keyword_ids = keyword_ids?;
        let mut notice = None;
        let vector_hits = match vector_half {
            None => Vec::new(),
            Some(Err(_)) => {
                return Err(Error::EmbeddingFailed {
                    message: "the vector search thread panicked".to_owned(),
                })
            }
            Some(Ok(Ok(hits))) => hits?,
            Some(Ok(Err(why))) => {
                notice = Some(why);
                Vec::new()
            }
        };
        let vector_ids: Vec<i64> = vector_hits.iter().map(|(id, _)| *id).collect();
        let similarity: HashMap<i64, f32> = vector_hits.into_iter().collect();
        let ran = match (mode, &notice) {
            (SearchMode::Hybrid, Some(_)) => SearchMode::Keyword,
            (mode, _) => mode,
        };
        let fused = fuse(
            &keyword_ids,
            &vector_ids,
            f64::from(self.documents.keyword_weight),
            f64::from(self.documents.vector_weight),
            f64::from(self.documents.rrf_k),
        );
        let top: Vec<(i64, f64, Option<usize>, Option<usize>)> =
            fused.into_iter().take(k).collect();
        let mut passages = self.passages(&top, clearance)?;
        for p in &mut passages {
            p.similarity = similarity.get(&p.chunk_id).copied();
        }
        let warnings = if mode == SearchMode::Keyword {
            Vec::new()
        } else {
            lock(&self.vectors_unsaved).clone().into_iter().collect()
        };
        Ok(SearchResult {
            query: query.to_owned(),
            terms,
            mode: ran,
            notice,
            warnings,
            passages,
        })
    }

    fn keyword_ranking(
        &self,
        terms: &[String],
        clearance: AccessLevel,
        limit: usize,
    ) -> Result<Vec<i64>> {
        let store = lock(&self.store);
        // FTS5 ranks its matches alone first (fast, no joins), then the access filter reads the
        // best few; only when the filter leaves too few of a full inner list is every match
        // filtered (the slow path, for a profile that may see little).
        let run = |table: &str, expr: &str| -> Result<Vec<i64>> {
            let inner = limit * 4;
            // The table name is one of our two constants; the expression is bound.
            let fast = format!(
                "SELECT c.id FROM (SELECT rowid AS id, rank FROM {table} WHERE {table} MATCH ?1 ORDER BY rank LIMIT ?4) f
                 JOIN chunks c ON c.id = f.id JOIN documents d ON d.id = c.document_id
                 WHERE d.access_level <= ?2 ORDER BY f.rank, c.id LIMIT ?3"
            );
            let inner_count = format!(
                "SELECT count(*) FROM (SELECT rowid FROM {table} WHERE {table} MATCH ?1 LIMIT ?2)"
            );
            let full = format!(
                "SELECT c.id FROM {table} f JOIN chunks c ON c.id = f.rowid JOIN documents d ON d.id = c.document_id
                 WHERE {table} MATCH ?1 AND d.access_level <= ?2 ORDER BY f.rank, c.id LIMIT ?3"
            );
            let conn = store.conn();
            let ids = conn
                .prepare_cached(&fast)
                .and_then(|mut stmt| {
                    stmt.query_map(
                        params![expr, clearance as i64, limit as i64, inner as i64],
                        |r| r.get(0),
                    )?
                    .collect::<rusqlite::Result<Vec<i64>>>()
                })
                .map_err(|e| self.err(&store, e))?;
            if ids.len() >= limit {
                return Ok(ids);
            }
            let matched: i64 = conn
                .prepare_cached(&inner_count)
                .and_then(|mut stmt| stmt.query_row(params![expr, inner as i64], |r| r.get(0)))
                .map_err(|e| self.err(&store, e))?;
            if (matched as usize) < inner {
                return Ok(ids);
            }
            conn.prepare_cached(&full)
                .and_then(|mut stmt| {
                    stmt.query_map(params![expr, clearance as i64, limit as i64], |r| r.get(0))?
                        .collect::<rusqlite::Result<Vec<i64>>>()
                })
                .map_err(|e| self.err(&store, e))
        };
        // A word in more than a fifth of all chunks (and in hundreds of them) ranks almost
        // nothing (BM25 gives it next to no weight) but is the costliest to match: leave it out
        // while other terms remain. Small libraries keep every word: there it costs nothing.
        let mut counts = Vec::with_capacity(terms.len());
        for term in terms {
            let chunks_with: Option<i64> = store
                .conn()
                .prepare_cached("SELECT doc FROM temp.chunks_words_vocab WHERE term = ?1")
                .and_then(|mut stmt| stmt.query_row([term], |r| r.get(0)).optional())
                .map_err(|e| self.err(&store, e))?;
            counts.push(chunks_with.unwrap_or(0) as f64);
        }
        // Counting every chunk costs a scan: only when some word is past the absolute floor.
        let total = if counts.iter().any(|&c| c > COMMON_WORD_MIN_CHUNKS) {
            store
                .conn()
                .query_row("SELECT count(*) FROM chunks", [], |r| r.get::<_, i64>(0))
                .map_err(|e| self.err(&store, e))? as f64
        } else {
            0.0
        };
        let common = (COMMON_WORD_SHARE * total).max(COMMON_WORD_MIN_CHUNKS);
        let informative: Vec<String> = terms
            .iter()
            .zip(&counts)
            .filter(|(_, &count)| count <= common)
            .map(|(term, _)| term.clone())
            .collect();
        let terms: &[String] = if informative.is_empty() {
            terms
        } else {
            &informative
        };
        let mut lists = Vec::new();
        for (table, expr) in [
            ("chunks_fts", keyword::trigram_match(terms)),
            ("chunks_words", keyword::word_match(terms)),
            ("chunks_bigram", keyword::bigram_match(terms)),
        ] {
            if let Some(expr) = expr {
                let ids = run(table, &expr)?;
                if !ids.is_empty() {
                    lists.push(ids);
                }
            }
        }
        // Several kinds of term: a chunk found through more than one index comes first.
        let mut fused: Vec<i64> = match lists.len() {
            0 => Vec::new(),
            1 => lists.swap_remove(0),
            _ => {
                let mut acc = fuse(&lists[0], &lists[1], 1.0, 1.0, 60.0);
                for more in &lists[2..] {
                    let so_far: Vec<i64> = acc.iter().map(|(id, ..)| *id).collect();
                    acc = fuse(&so_far, more, 1.0, 1.0, 60.0);
                }
                acc.into_iter().map(|(id, ..)| id).collect()
            }
        };
        fused.truncate(limit);
        Ok(fused)
    }

    fn vector_ranking(
        &self,
        query: &str,
        clearance: AccessLevel,
        limit: usize,
    ) -> std::result::Result<Result<Vec<(i64, f32)>>, Error> {
        // The query is embedded first: it needs no store lock, so it overlaps the keyword half.
        let vector = match self.with_embedder_ready(|e| e.embed_query(query))? {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        self.ensure_vectors()??;
        let guard = lock(&self.vectors);
        let Some(state) = guard.as_ref() else {
            return Ok(Ok(Vec::new()));
        };
        let hits = state.index.search(&vector, limit, |id| {
            state.levels.get(&id).is_some_and(|l| *l <= clearance)
        });
        Ok(hits)
    }

    fn passages(
        &self,
        ranked: &[(i64, f64, Option<usize>, Option<usize>)],
        clearance: AccessLevel,
    ) -> Result<Vec<Passage>> {
        let store = lock(&self.store);
        let mut stmt = store
            .conn()
            .prepare_cached(
                "SELECT c.id, c.document_id, d.path, d.file_name, d.kind, d.access_level, c.page, c.section, c.text
                 FROM chunks c JOIN documents d ON d.id = c.document_id
                 WHERE c.id = ?1 AND d.access_level <= ?2",
            )
            .map_err(|e| self.err(&store, e))?;
        let mut out = Vec::with_capacity(ranked.len());
        for &(id, score, keyword_rank, vector_rank) in ranked {
            let row = stmt
                .query_row(params![id, clearance as i64], |r| {
                    Ok(Passage {
                        chunk_id: r.get(0)?,
                        document_id: r.get(1)?,
                        path: r.get(2)?,
                        file_name: r.get(3)?,
                        kind: r.get(4)?,
                        level: AccessLevel::from_i64(r.get(5)?),
                        page: r.get(6)?,
                        section: r.get(7)?,
                        text: r.get(8)?,
                        score,
                        similarity: None,
                        keyword_rank,
                        vector_rank,
                    })
                })
                .optional()
                .map_err(|e| self.err(&store, e))?;
            out.extend(row);
        }
        Ok(out)
    }
}

enum Prepared {
    Unchanged,
    Changed {
        kind: DocKind,
        sha256: String,
        size_bytes: i64,
        chunks: Vec<Chunk>,
    },
}

/// Weighted reciprocal-rank fusion: each list adds `weight / (k + rank)` for the items in it.
/// Ties keep the order of the first list, then the second.
pub fn fuse(
    first: &[i64],
    second: &[i64],
    first_weight: f64,
    second_weight: f64,
    k: f64,
) -> Vec<(i64, f64, Option<usize>, Option<usize>)> {
    let mut scored: Vec<(i64, f64, Option<usize>, Option<usize>)> = Vec::new();
    let mut position: HashMap<i64, usize> = HashMap::new();
    for (list, weight, is_first) in [(first, first_weight, true), (second, second_weight, false)] {
        for (i, &id) in list.iter().enumerate() {
            let rank = i + 1;
            let add = weight / (k + rank as f64);
            let slot = *position.entry(id).or_insert_with(|| {
                scored.push((id, 0.0, None, None));
                scored.len() - 1
            });
            let entry = &mut scored[slot];
            entry.1 += add;
            if is_first {
                entry.2 = Some(rank);
            } else {
                entry.3 = Some(rank);
            }
        }
    }
    // A stable sort keeps first-seen order among equal scores.
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored
}

/// The columns `document_from_row` reads, from `documents d`.
const DOCUMENT_COLUMNS: &str = "d.id, d.path, d.file_name, d.kind, d.size_bytes, d.access_level, d.status, d.error,
    d.chunk_count, (SELECT count(*) FROM chunks c WHERE c.document_id = d.id AND c.embedding IS NOT NULL),
    d.imported_at, d.indexed_at";

fn document_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Document> {
    Ok(Document {
        id: r.get(0)?,
        path: r.get(1)?,
        file_name: r.get(2)?,
        kind: r.get(3)?,
        size_bytes: r.get(4)?,
        level: AccessLevel::from_i64(r.get(5)?),
        status: r.get(6)?,
        error: r.get(7)?,
        chunk_count: r.get(8)?,
        embedded_chunks: r.get(9)?,
        imported_at: r.get(10)?,
        indexed_at: r.get(11)?,
    })
}

fn chunk_ids_of(conn: &rusqlite::Connection, document: i64) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached("SELECT id FROM chunks WHERE document_id = ?1")?;
    let rows = stmt.query_map([document], |r| r.get(0))?;
    rows.collect()
}

/// The in-memory index, if it reflects `epoch_before` (the database's epoch before a transaction
/// that changed chunks). Otherwise another writer changed chunks in between (see the module
/// doc): the index is dropped and rebuilt from the database when next needed.
fn index_at(guard: &mut Option<VectorState>, epoch_before: i64) -> Option<&mut VectorState> {
    if guard
        .as_ref()
        .is_some_and(|state| state.epoch != epoch_before)
    {
        tracing::info!("chunks changed by another writer; the vector index will be rebuilt");
        *guard = None;
    }
    guard.as_mut()
}

/// Every embedded chunk's document level, and the `levels_epoch` they reflect (read in the
/// caller's transaction, so both come from one snapshot).
fn read_levels(conn: &rusqlite::Connection) -> rusqlite::Result<(HashMap<i64, AccessLevel>, i64)> {
    let levels_epoch: i64 = conn.query_row(
        "SELECT levels_epoch FROM documents_state WHERE id = 1",
        [],
        |r| r.get(0),
    )?;
    let mut stmt = conn.prepare(
        "SELECT c.id, d.access_level FROM chunks c JOIN documents d ON d.id = c.document_id
         WHERE c.embedding IS NOT NULL",
    )?;
    let levels = stmt
        .query_map([], |r| {
            Ok((r.get::<_, i64>(0)?, AccessLevel::from_i64(r.get(1)?)))
        })?
        .collect::<rusqlite::Result<HashMap<_, _>>>()?;
    Ok((levels, levels_epoch))
}

fn read_epoch(conn: &rusqlite::Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT vector_epoch FROM documents_state WHERE id = 1",
        [],
        |r| r.get(0),
    )
}

/// The level a new document gets when the import names none: `internal`, or the importing
/// profile's clearance when that is lower (it must be able to see what it imported).
fn default_level(clearance: AccessLevel) -> AccessLevel {
    AccessLevel::Internal.min(clearance)
}

/// The level a file of job `spec` is stored at, given the level of the document already
/// imported from it (if any); an error when the job's profile may not import it: the document is
/// above its clearance (it could neither see nor undo the change), or so is the level asked for.
fn import_level(path: &Path, known: Option<AccessLevel>, spec: &JobSpec) -> Result<AccessLevel> {
    if known.is_some_and(|level| level > spec.clearance) {
        return Err(Error::DocumentAboveClearance {
            path: path.to_path_buf(),
        });
    }
    if let Some(level) = spec.level.filter(|l| *l > spec.clearance) {
        return Err(Error::InvalidInput {
            field: "level",
            message: format!("{} is above this profile's clearance", level.as_str()),
        });
    }
    Ok(spec
        .level
        .or(known)
        .unwrap_or_else(|| default_level(spec.clearance)))
}

fn failed_outcome(path: &Path, e: &Error) -> FileOutcome {
    FileOutcome {
        path: path.to_string_lossy().into_owned(),
        status: "failed".to_owned(),
        chunks: 0,
        error_code: Some(e.code().as_str().to_owned()),
        error: Some(e.to_string()),
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The supported files under `dir`, sorted, skipping hidden entries and symbolic links to
/// folders (which could loop).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            walk(&path, out)?;
        } else if DocKind::of(&path).is_some() && (kind.is_file() || path.is_file()) {
            out.push(absolute(&path));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_import_never_touches_a_document_above_its_clearance_nor_sets_a_level_above_it() {
        use AccessLevel::*;
        let path = Path::new("/docs/secret.txt");
        let job = |level, clearance| JobSpec { level, clearance };
        let code = |r: Result<AccessLevel>| r.map_err(|e| e.code().as_str());
        // A public profile: the restricted document is out of reach, with or without a level.
        assert_eq!(
            code(import_level(
                path,
                Some(Restricted),
                &job(Some(Public), Public)
            )),
            Err("document_above_clearance")
        );
        assert_eq!(
            code(import_level(path, Some(Restricted), &job(None, Public))),
            Err("document_above_clearance")
        );
        assert_eq!(
            code(import_level(path, None, &job(Some(Confidential), Internal))),
            Err("invalid_input")
        );
        // New documents: the level asked for, else internal, else the clearance if lower.
        assert_eq!(
            code(import_level(path, None, &job(None, Restricted))),
            Ok(Internal)
        );
        assert_eq!(
            code(import_level(path, None, &job(None, Public))),
            Ok(Public)
        );
        assert_eq!(
            code(import_level(
                path,
                None,
                &job(Some(Confidential), Restricted)
            )),
            Ok(Confidential)
        );
        // Known documents within reach keep their level unless one is given.
        assert_eq!(
            code(import_level(
                path,
                Some(Confidential),
                &job(None, Restricted)
            )),
            Ok(Confidential)
        );
        assert_eq!(
            code(import_level(
                path,
                Some(Confidential),
                &job(Some(Public), Confidential)
            )),
            Ok(Public)
        );
    }

    #[test]
    fn fusion_adds_weighted_reciprocal_ranks_and_keeps_both_ranks() {
        let fused = fuse(&[1, 2, 3], &[3, 4], 1.0, 1.0, 60.0);
        let ids: Vec<i64> = fused.iter().map(|f| f.0).collect();
        // 3 is in both lists, so it leads; 2 and 4 are both rank 2 once: the first list's wins the tie.
        assert_eq!(ids, [3, 1, 2, 4]);
        assert_eq!(fused[0].2, Some(3));
        assert_eq!(fused[0].3, Some(1));
        assert!((fused[0].1 - (1.0 / 63.0 + 1.0 / 61.0)).abs() < 1e-12);
        // A zero weight turns a method off.
        let vector_only = fuse(&[1, 2], &[9], 0.0, 1.0, 60.0);
        assert_eq!(vector_only[0].0, 9);
    }
}
