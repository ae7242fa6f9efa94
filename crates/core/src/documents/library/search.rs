//! Hybrid search: keyword rankings (FTS5 trigram, words, bigrams) and the vector ranking,
//! fused by reciprocal rank, then the passages re-read under the profile's clearance.

use super::*;
use crate::error::DocumentsError;

/// A fused result: chunk id, fusion score, its keyword rank and its vector rank (1-based).
type Ranked = (i64, f64, Option<usize>, Option<usize>);
/// The vector half's hits (chunk id, similarity) and the query's vector.
type VectorHits = (Vec<(i64, f32)>, Vec<f32>);

impl Library {
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
    /// Hybrid search under `clearance` rather than the active profile's (the local API searches
    /// as its key's profile).
    pub fn search_with_clearance(
        &self,
        query: &str,
        k: usize,
        clearance: AccessLevel,
    ) -> Result<SearchResult> {
        self.search_under(query.trim(), k, SearchMode::Hybrid, clearance)
    }

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

    pub(super) fn search_under(
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
        let mut query_vector = None;
        let vector_hits = match vector_half {
            None => Vec::new(),
            Some(Err(_)) => {
                return Err(Error::Documents(DocumentsError::EmbeddingFailed {
                    message: "the vector search thread panicked".to_owned(),
                }))
            }
            Some(Ok(Ok(found))) => {
                let (hits, vector) = found?;
                query_vector = Some(vector);
                hits
            }
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
        let fused = match &query_vector {
            Some(vector) if self.sentence_rerank() => {
                self.rerank_by_sentences(fused, vector, &similarity)?
            }
            _ => fused,
        };
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

    /// The fused results with their first [`sentence_vectors::RERANK_DEPTH`] reordered by
    /// their best sentence's similarity to the query (the rest follow, their scores kept
    /// below the reranked ones so the list stays in score order).
    fn rerank_by_sentences(
        &self,
        fused: Vec<Ranked>,
        query: &[f32],
        similarity: &HashMap<i64, f32>,
    ) -> Result<Vec<Ranked>> {
        let depth = fused.len().min(sentence_vectors::RERANK_DEPTH);
        let ids: Vec<i64> = fused[..depth].iter().map(|(id, ..)| *id).collect();
        let blobs = self.sentence_blobs(&ids)?;
        if blobs.is_empty() {
            return Ok(fused);
        }
        let ranked = sentence_vectors::rerank(
            &ids,
            |id| {
                blobs
                    .get(&id)
                    .and_then(|b| sentence_vectors::best_similarity(b, query))
            },
            |id| similarity.get(&id).copied(),
            f64::from(self.documents.rrf_k),
        );
        let ranks: HashMap<i64, (Option<usize>, Option<usize>)> = fused
            .iter()
            .map(|&(id, _, keyword, vector)| (id, (keyword, vector)))
            .collect();
        let floor = ranked.last().map_or(f64::INFINITY, |(_, s)| *s);
        let mut out: Vec<Ranked> = ranked
            .into_iter()
            .map(|(id, score)| {
                let (keyword, vector) = ranks.get(&id).copied().unwrap_or_default();
                (id, score, keyword, vector)
            })
            .collect();
        out.extend(
            fused
                .into_iter()
                .skip(depth)
                .map(|(id, score, keyword, vector)| (id, score.min(floor), keyword, vector)),
        );
        Ok(out)
    }

    pub(super) fn keyword_ranking(
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

    pub(super) fn vector_ranking(
        &self,
        query: &str,
        clearance: AccessLevel,
        limit: usize,
    ) -> std::result::Result<Result<VectorHits>, Error> {
        // The query is embedded first: it needs no store lock, so it overlaps the keyword half.
        let vector = match self.with_embedder_ready(|e| e.embed_query(query))? {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        self.ensure_vectors()??;
        let guard = lock(&self.vectors);
        let Some(state) = guard.as_ref() else {
            return Ok(Ok((Vec::new(), vector)));
        };
        let hits = state.index.search(&vector, limit, |id| {
            state.levels.get(&id).is_some_and(|l| *l <= clearance)
        });
        Ok(hits.map(|hits| (hits, vector)))
    }

    /// The stored sentence vectors of `ids` (see [`sentence_vectors`]); chunks without them are
    /// absent.
    fn sentence_blobs(&self, ids: &[i64]) -> Result<HashMap<i64, Vec<u8>>> {
        let store = lock(&self.store);
        let mut stmt = store
            .conn()
            .prepare_cached("SELECT sentence_vectors FROM chunks WHERE id = ?1 AND sentence_vectors IS NOT NULL")
            .map_err(|e| self.err(&store, e))?;
        let mut out = HashMap::with_capacity(ids.len());
        for &id in ids {
            let blob: Option<Vec<u8>> = stmt
                .query_row([id], |r| r.get(0))
                .optional()
                .map_err(|e| self.err(&store, e))?;
            if let Some(blob) = blob {
                out.insert(id, blob);
            }
        }
        Ok(out)
    }

    pub(super) fn passages(
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
