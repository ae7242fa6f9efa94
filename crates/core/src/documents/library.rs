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
//! or `spawn_blocking`. One job runner at a time ([`Error::Documents(DocumentsError::ImportInProgress)`] otherwise);
//! searches may run while it works (they share the store and index mutexes, held briefly).
//!
//! Layout: this file holds the library, its types and the catalog (list, level, delete, open);
//! `import` the jobs and files, `vector_index` the HNSW cache, `search` the hybrid search, and
//! `bench` (feature `bench`) what only the documents benchmark needs.

#[cfg(feature = "bench")]
mod bench;
mod import;
mod search;
mod vector_index;

use crate::error::DocumentsError;
pub use search::fuse;
use vector_index::{index_at, read_epoch};

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
use super::sentence_vectors;
use super::vectors::{Header, VectorIndex};
use crate::config::{Config, DocumentsConfig, EmbeddingConfig};
use crate::owner::Owner;
use crate::store::{found, now_ms, store_err, AccessLevel, DocumentStatus, FileStatus, Store};
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
    pub status: DocumentStatus,
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
    pub status: FileStatus,
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
    /// Scanned pages of the current file read by OCR, of those it has (both 0 for a file
    /// without scanned pages, and once they are read).
    pub current_ocr_pages_done: i64,
    pub current_ocr_pages_total: i64,
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
    /// `documents.ocr` and `documents.ocr_languages`, changed by [`Library::set_ocr`] when the
    /// settings are saved (read once per file, so a change applies from the next file on).
    ocr: Mutex<Option<crate::ocr::Ocr>>,
    /// `documents.sentence_rerank`, changed by [`Library::set_sentence_rerank`] (read once per
    /// file imported and once per search).
    sentence_rerank: AtomicBool,
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
    /// Turns OCR of scanned PDF pages on (with these Tesseract languages) or off, from the
    /// next file imported on.
    pub fn set_ocr(&self, on: bool, languages: &str) {
        *lock(&self.ocr) = on.then(|| crate::ocr::Ocr::new(languages));
    }

    /// Turns the sentence vectors (made at import) and the rerank by them (at search) on or
    /// off, from the next file and the next search on.
    pub fn set_sentence_rerank(&self, on: bool) {
        self.sentence_rerank.store(on, Ordering::SeqCst);
    }

    fn sentence_rerank(&self) -> bool {
        self.sentence_rerank.load(Ordering::SeqCst)
    }

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
            runtime_library: crate::paths::runtime_library_in(
                models_dir,
                &config.embedding.runtime_library,
            ),
            embedder: Mutex::new(EmbedderSlot::NotLoaded),
            vectors: Mutex::new(None),
            ocr: Mutex::new(
                config
                    .documents
                    .ocr
                    .then(|| crate::ocr::Ocr::new(&config.documents.ocr_languages)),
            ),
            sentence_rerank: AtomicBool::new(config.documents.sentence_rerank),
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
            EmbedderSlot::NotLoaded => {
                Err(Error::Documents(DocumentsError::EmbeddingModelMissing {
                    path: self.model_dir.clone(),
                }))
            }
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

    /// Embeds texts with the library's model as e5 queries (`query: ` prefix, e5's advice for
    /// similarity between short texts); one 384-number vector per text. For the local API's
    /// embeddings and the benchmark's query vectors.
    pub fn embed_queries(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.with_embedder_required(|e| texts.iter().map(|t| e.embed_query(t)).collect())
    }

    /// `text`'s length in the embedding model's tokens (estimated when its tokenizer is absent).
    pub fn count_tokens(&self, text: &str) -> usize {
        self.counter().count(text)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::import::import_level;
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
