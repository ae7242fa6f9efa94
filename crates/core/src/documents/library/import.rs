//! Import jobs: recorded, owned by one process, resumed after an exit; each file read,
//! checked against the job's clearance, chunked, embedded and stored in one transaction, then
//! applied to the vector index.

use super::*;
use crate::error::DocumentsError;

impl Library {
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
    pub(super) fn runnable_jobs(
        &self,
        store: &Store,
    ) -> Result<Vec<(i64, Option<Option<String>>)>> {
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
    pub(super) fn next_job(&self) -> Result<Option<i64>> {
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
            return Err(Error::Documents(DocumentsError::ImportInProgress { job }));
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
            // A job created while the vectors are made is run before this runner ends: the
            // app starts no second runner while one runs.
            loop {
                while let Some(job) = self.next_job()? {
                    let report = self.run_job(job, progress)?;
                    let cancelled = report.cancelled;
                    reports.push(report);
                    if cancelled {
                        break;
                    }
                }
                if self.cancel.load(Ordering::SeqCst) {
                    break;
                }
                self.embed_missing()?;
                self.embed_missing_sentences()?;
                if self.cancel.load(Ordering::SeqCst) || self.unfinished_jobs()?.is_empty() {
                    break;
                }
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

    pub(super) fn run_job(
        &self,
        job: i64,
        progress: &mut dyn FnMut(&ImportProgress),
    ) -> Result<JobReport> {
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
        let mut files_done = files
            .iter()
            .filter(|(_, f)| f.status != FileStatus::Pending)
            .count() as i64;
        let mut chunks_done: i64 = files.iter().map(|(_, f)| f.chunks).sum();
        for (file_id, outcome) in files {
            if outcome.status != FileStatus::Pending {
                report.files.push(outcome);
                continue;
            }
            if self.cancel.load(Ordering::SeqCst) {
                report.cancelled = true;
                break;
            }
            let current = outcome.path.clone();
            let at = |step: FileStep| {
                let (chunks, ocr) = match step {
                    FileStep::Ocr { done, total } => ((0, 0), (done, total)),
                    FileStep::Chunks { done, total } => ((done, total), (0, 0)),
                };
                ImportProgress {
                    job_id: job,
                    files_total,
                    files_done,
                    chunks_done,
                    current: Some(current.clone()),
                    finished_file: None,
                    current_chunks_done: chunks.0,
                    current_chunks_total: chunks.1,
                    current_ocr_pages_done: ocr.0,
                    current_ocr_pages_total: ocr.1,
                    done: false,
                }
            };
            progress(&at(FileStep::Chunks { done: 0, total: 0 }));
            let imported =
                self.import_file(file_id, Path::new(&outcome.path), &spec, &mut |step| {
                    progress(&at(step))
                })?;
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
                current_ocr_pages_done: 0,
                current_ocr_pages_total: 0,
                done: false,
            });
            report.files.push(outcome);
        }
        for f in &report.files {
            match f.status {
                FileStatus::Added => report.added += 1,
                FileStatus::Replaced => report.replaced += 1,
                FileStatus::Unchanged => report.unchanged += 1,
                FileStatus::Failed => report.failed += 1,
                FileStatus::Pending => {}
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
            current_ocr_pages_done: 0,
            current_ocr_pages_total: 0,
            done: true,
        });
        Ok(report)
    }

    /// Reads, chunks, embeds and stores one file. `Ok(None)`: cancelled before it was stored.
    /// A file that cannot be read, or that the job's profile may not import, is an outcome
    /// (`failed`), not an error; only database and index errors (a full disk among them) end
    /// the job. `progress` follows the scanned pages as OCR reads them, then the file's chunks
    /// as they are embedded.
    pub(super) fn import_file(
        &self,
        file_id: i64,
        path: &Path,
        spec: &JobSpec,
        progress: &mut dyn FnMut(FileStep),
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
        let prepared = match self.prepare_file(path, &mut |done, total| {
            progress(FileStep::Ocr {
                done: i64::from(done),
                total: i64::from(total),
            })
        }) {
            Ok(Prepared::Cancelled) => return Ok(None),
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
        progress(FileStep::Chunks { done: 0, total });
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        let mut embeddings: Option<Vec<Vec<f32>>> = None;
        let mut sentence_blobs: Vec<Vec<u8>> = Vec::new();
        let batch = self.embedding.batch_size.max(1) as usize;
        let with_sentences = self.sentence_rerank();
        let embedded = self.with_embedder_ready(|embedder| {
            let mut all = Vec::with_capacity(texts.len());
            let mut blobs = Vec::with_capacity(texts.len());
            for group in texts.chunks(batch) {
                if self.cancel.load(Ordering::SeqCst) {
                    return Ok(None);
                }
                all.extend(embedder.embed_passages(group)?);
                if with_sentences {
                    blobs.extend(sentence_vectors::embed(embedder, group, batch)?);
                }
                progress(FileStep::Chunks {
                    done: all.len() as i64,
                    total,
                });
            }
            Ok(Some((all, blobs, embedder.model_id().to_owned())))
        });
        let mut model_id = None;
        match embedded {
            Ok(Ok(Some((vectors, blobs, model)))) => {
                embeddings = Some(vectors);
                sentence_blobs = blobs;
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
                    "INSERT INTO chunks (document_id, ordinal, text, page, section, char_start, char_end, token_count, embedding, sentence_vectors)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
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
                        sentence_blobs.get(i),
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
            FileStatus::Replaced
        } else {
            FileStatus::Added
        };
        tx.execute(
            "UPDATE import_files SET status = ?2, document_id = ?3, chunks = ?4, error_code = NULL, error = NULL WHERE id = ?1",
            params![file_id, status, doc_id, chunks.len() as i64],
        )
        .map_err(|e| store_err(&db, e))?;
        let epoch_after = read_epoch(&tx).map_err(|e| store_err(&db, e))?;
        tx.commit().map_err(|e| store_err(&db, e))?;
        drop(store);
        progress(FileStep::Chunks { done: total, total });
        self.apply_to_vectors(&removed, &added, Some(level), epoch_before, epoch_after)?;
        Ok(Some(FileOutcome {
            path: path_text,
            status,
            chunks: chunks.len() as i64,
            error_code: None,
            error: None,
        }))
    }

    /// The level of the document already imported from `path`, if any.
    pub(super) fn known_level(
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
    pub(super) fn record_unchanged(
        &self,
        file_id: i64,
        path: &Path,
        spec: &JobSpec,
    ) -> Result<FileOutcome> {
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
            status: FileStatus::Unchanged,
            chunks,
            error_code: None,
            error: None,
        })
    }

    /// Reads and chunks a file that changed since its last import; a scanned PDF's pages are
    /// read by OCR first (when `documents.ocr` is on), `ocr_progress(done, total)` following them.
    pub(super) fn prepare_file(
        &self,
        path: &Path,
        ocr_progress: &mut dyn FnMut(u32, u32),
    ) -> Result<Prepared> {
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
        let mut extracted = extract_bytes(path, kind, &bytes)?;
        let ocr = lock(&self.ocr).clone();
        if let (Some(ocr), false) = (ocr, extracted.scanned_pages.is_empty()) {
            let cancelled = || self.cancel.load(Ordering::SeqCst);
            if !extracted.read_scanned_pages(path, &ocr, ocr_progress, &cancelled)? {
                return Ok(Prepared::Cancelled);
            }
        }
        extracted.require_text(path)?;
        let chunks = chunk_sections(
            &extracted.sections,
            self.counter(),
            self.documents.chunk_tokens as usize,
            self.documents.chunk_overlap as usize,
        );
        if chunks.is_empty() {
            return Err(Error::Documents(DocumentsError::Empty {
                path: path.to_path_buf(),
            }));
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
    pub(super) fn record_failure(
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
            let with_sentences = self.sentence_rerank();
            let batch = self.embedding.batch_size.max(1) as usize;
            let embedded = match self.with_embedder_ready(|e| {
                let vectors = e.embed_passages(&texts)?;
                let sentences = if with_sentences {
                    sentence_vectors::embed(e, &texts, batch)?
                } else {
                    Vec::new()
                };
                Ok((vectors, sentences, e.model_id().to_owned()))
            }) {
                Ok(result) => result?,
                // No model: nothing to do until there is one.
                Err(_) => return Ok(total),
            };
            let (vectors, sentences, model) = embedded;
            let mut store = lock(&self.store);
            let db = store.path().to_path_buf();
            let tx = store
                .conn_mut()
                .transaction()
                .map_err(|e| store_err(&db, e))?;
            let epoch_before = read_epoch(&tx).map_err(|e| store_err(&db, e))?;
            for (i, ((id, _, _), v)) in pending.iter().zip(&vectors).enumerate() {
                tx.execute(
                    "UPDATE chunks SET embedding = ?2, sentence_vectors = ?3 WHERE id = ?1",
                    params![id, to_blob(v), sentences.get(i)],
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

    /// Makes the sentence vectors of chunks that have a vector but none for their sentences
    /// (imported before sentence vectors existed, or while `documents.sentence_rerank` was
    /// off). Runs after every job, a batch at a time, and stops at a cancel or when a new job
    /// waits (the runner does it first and comes back); without such chunks the model is not
    /// even loaded. A batch the model fails on is logged and the pass ends: search goes on
    /// without those sentences. Returns how many chunks got them.
    pub fn embed_missing_sentences(&self) -> Result<usize> {
        if !self.sentence_rerank() {
            return Ok(0);
        }
        let batch = self.embedding.batch_size.max(1) as usize;
        let mut total = 0;
        loop {
            if self.cancel.load(Ordering::SeqCst) {
                return Ok(total);
            }
            let pending: Vec<(i64, String)> = {
                let store = lock(&self.store);
                self.rows(
                    &store,
                    "SELECT id, text FROM chunks WHERE embedding IS NOT NULL AND sentence_vectors IS NULL ORDER BY id LIMIT 64",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?
            };
            if pending.is_empty() {
                return Ok(total);
            }
            if !self.unfinished_jobs()?.is_empty() {
                return Ok(total);
            }
            let texts: Vec<&str> = pending.iter().map(|(_, t)| t.as_str()).collect();
            let blobs = match self
                .with_embedder_ready(|e| sentence_vectors::embed(e, &texts, batch))
            {
                Ok(Ok(blobs)) => blobs,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "sentence vectors not made; search goes on without them");
                    return Ok(total);
                }
                Err(_) => return Ok(total),
            };
            let mut store = lock(&self.store);
            let db = store.path().to_path_buf();
            let tx = store
                .conn_mut()
                .transaction()
                .map_err(|e| store_err(&db, e))?;
            for ((id, _), blob) in pending.iter().zip(&blobs) {
                // Only where the chunk still has the vector these were made beside: a model
                // change in another process meanwhile clears both.
                tx.execute(
                    "UPDATE chunks SET sentence_vectors = ?2 WHERE id = ?1 AND embedding IS NOT NULL",
                    params![id, blob],
                )
                .map_err(|e| store_err(&db, e))?;
            }
            tx.commit().map_err(|e| store_err(&db, e))?;
            total += pending.len();
        }
    }
}

pub(super) enum Prepared {
    Unchanged,
    /// The job was cancelled while OCR read the file's pages.
    Cancelled,
    Changed {
        kind: DocKind,
        sha256: String,
        size_bytes: i64,
        chunks: Vec<Chunk>,
    },
}

/// Where the import of one file is.
pub(super) enum FileStep {
    /// Scanned pages read by OCR.
    Ocr { done: i64, total: i64 },
    /// Chunks embedded.
    Chunks { done: i64, total: i64 },
}

/// The level a new document gets when the import names none: `internal`, or the importing
/// profile's clearance when that is lower (it must be able to see what it imported).
pub(super) fn default_level(clearance: AccessLevel) -> AccessLevel {
    AccessLevel::Internal.min(clearance)
}

/// The level a file of job `spec` is stored at, given the level of the document already
/// imported from it (if any); an error when the job's profile may not import it: the document is
/// above its clearance (it could neither see nor undo the change), or so is the level asked for.
pub(super) fn import_level(
    path: &Path,
    known: Option<AccessLevel>,
    spec: &JobSpec,
) -> Result<AccessLevel> {
    if known.is_some_and(|level| level > spec.clearance) {
        return Err(Error::Documents(DocumentsError::AboveClearance {
            path: path.to_path_buf(),
        }));
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

pub(super) fn failed_outcome(path: &Path, e: &Error) -> FileOutcome {
    FileOutcome {
        path: path.to_string_lossy().into_owned(),
        status: FileStatus::Failed,
        chunks: 0,
        error_code: Some(e.code().as_str().to_owned()),
        error: Some(e.to_string()),
    }
}

pub(super) fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The supported files under `dir`, sorted, skipping hidden entries and symbolic links to
/// folders (which could loop).
pub(super) fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
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
