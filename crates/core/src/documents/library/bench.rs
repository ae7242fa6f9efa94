//! What only the documents benchmark (`deskmate bench-documents`) needs: synthetic documents
//! with their vectors, the stored embeddings, the index's raw nearest neighbours. Behind the
//! `bench` feature so that no front end builds on it.

use super::*;

impl Library {
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

    /// Embeds the sentences of `texts` as the import does (see [`sentence_vectors`]), outside
    /// any import (the benchmark's baseline); returns how many sentences.
    #[doc(hidden)]
    pub fn embed_sentences_for_bench(&self, texts: &[&str]) -> Result<usize> {
        let batch = self.embedding.batch_size.max(1) as usize;
        let count = texts.iter().map(|t| sentence_vectors::units(t).len()).sum();
        self.with_embedder_required(|e| sentence_vectors::embed(e, texts, batch))?;
        Ok(count)
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
}
