//! The in-memory HNSW index over the stored embeddings: kept in step with the database by
//! epoch, rebuilt when another process wrote, saved at the end of an import (kept in memory,
//! with a search warning, when the file cannot be written).

use super::*;
use crate::error::DocumentsError;

impl Library {
    /// Applies one committed transaction's chunk changes to the in-memory index. `epoch_before`
    /// and `epoch_after` are the database's epoch at the start and the end of that transaction:
    /// when the index does not reflect the start, another writer (another process) changed
    /// chunks in between, and the index is dropped to be rebuilt from the database.
    pub(super) fn apply_to_vectors(
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

    pub(super) fn save_vectors(&self) -> Result<()> {
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
    pub(super) fn save_index(&self, index: &VectorIndex, epoch: i64) -> Result<bool> {
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
                *unsaved = Some(Error::Documents(DocumentsError::VectorIndexUnsaved {
                    path: self.vectors_path.clone(),
                    reason: e.to_string(),
                }));
                Ok(false)
            }
        }
    }

    /// Makes sure the vector index matches the database: opens the saved one or rebuilds it
    /// from stored embeddings. Needs the embedder (its model id and dimensions).
    pub(super) fn ensure_vectors(&self) -> std::result::Result<Result<()>, Error> {
        let (model, dimensions) =
            self.with_embedder_ready(|e| Ok((e.model_id().to_owned(), e.dimensions())))??;
        Ok(self.load_vectors(&model, dimensions))
    }

    pub(super) fn load_vectors(&self, model: &str, dimensions: usize) -> Result<()> {
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
                 UPDATE chunks SET embedding = NULL, sentence_vectors = NULL WHERE embedding IS NOT NULL OR sentence_vectors IS NOT NULL;
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
}

/// The in-memory index, if it reflects `epoch_before` (the database's epoch before a transaction
/// that changed chunks). Otherwise another writer changed chunks in between (see the module
/// doc): the index is dropped and rebuilt from the database when next needed.
pub(super) fn index_at(
    guard: &mut Option<VectorState>,
    epoch_before: i64,
) -> Option<&mut VectorState> {
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
pub(super) fn read_levels(
    conn: &rusqlite::Connection,
) -> rusqlite::Result<(HashMap<i64, AccessLevel>, i64)> {
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

pub(super) fn read_epoch(conn: &rusqlite::Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT vector_epoch FROM documents_state WHERE id = 1",
        [],
        |r| r.get(0),
    )
}
