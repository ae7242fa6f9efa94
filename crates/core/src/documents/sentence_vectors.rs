//! Sentence vectors: each chunk's sentences embedded on their own, so a question that matches
//! one sentence of a long chunk is not drowned by the chunk's other sentences.
//!
//! Why: a chunk vector averages everything the chunk says. A question in everyday words
//! ("애들 초등학교 보내는 게 부모 의무야?") matches the one clause that answers it
//! ("…자녀에게 적어도 초등교육과 법률이 정하는 교육을 받게 할 의무를 진다") much better than
//! the article of six clauses around it. The search reranks its best candidates by their best
//! sentence (see [`rerank`]); candidates are still found by the chunk index, so the vector
//! index, its size and its speed are unchanged.
//!
//! Storage: `chunks.sentence_vectors`, one BLOB per chunk, made at import with the chunk's own
//! vector (same model, `passage: ` side) and dropped with it when the model changes. Each
//! sentence is `[scale: f32 LE][dims × i8]`, the vector's components divided by `scale`
//! (its largest magnitude / 127): a quarter of f32's size, and the cosine error (< 0.01) is
//! far below the gaps the rerank acts on. An empty BLOB: made, and the chunk has no sentences
//! of its own (one sentence: its chunk vector is that sentence's). NULL: not made yet (a
//! library from before this, or the embedder failed); `Library::embed_missing` makes them at
//! the end of the next import, and meanwhile such chunks keep their place.

use super::chunk::ends_sentence;
use super::embed::Embedder;
use crate::error::Result;

/// Pieces shorter than this (in characters) are joined to the next: a clause number or a
/// heading alone says too little to be matched on its own.
const MIN_UNIT_CHARS: usize = 12;
/// At most this many sentences per chunk, so the import's extra cost stays bounded for text
/// cut into very short lines (tables, lists).
pub const MAX_UNITS: usize = 24;
/// How many of the fused results the rerank reorders: the measured gain comes from lifting a
/// passage from ranks 6–20 into the top 5 (see `cargo xtask bench documents`).
pub const RERANK_DEPTH: usize = 20;

/// The sentences of a chunk to embed on their own: lines and sentence ends cut it, short pieces
/// join the next. A chunk of one sentence gives none (its chunk vector is that sentence's).
pub fn units(text: &str) -> Vec<&str> {
    let mut pieces: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next = chars.peek().map(|&(_, n)| n);
        let end = i + c.len_utf8();
        let cut = c == '\n' || ends_sentence(c, next);
        if cut {
            pieces.push((start, end));
            start = end;
        }
    }
    pieces.push((start, text.len()));
    let mut units: Vec<&str> = Vec::new();
    let mut pending: Option<usize> = None;
    for (s, e) in pieces {
        let from = pending.unwrap_or(s);
        let piece = text[from..e].trim();
        if piece.is_empty() {
            continue;
        }
        if piece.chars().count() < MIN_UNIT_CHARS {
            pending = Some(from);
            continue;
        }
        pending = None;
        units.push(piece);
    }
    if let Some(from) = pending {
        let rest = text[from..].trim();
        match units.last_mut() {
            // A short tail belongs to the sentence before it.
            Some(last) if !rest.is_empty() => {
                let last_start = last.as_ptr() as usize - text.as_ptr() as usize;
                *last = text[last_start..].trim();
            }
            None if !rest.is_empty() => units.push(rest),
            _ => {}
        }
    }
    if units.len() < 2 {
        return Vec::new();
    }
    units.truncate(MAX_UNITS);
    units
}

/// Each chunk's stored sentence vectors (an empty BLOB for a chunk without sentences of its
/// own). The sentences of all `chunks` are embedded shortest first in batches of `batch`, so a
/// batch pads little.
pub(crate) fn embed(
    embedder: &mut dyn Embedder,
    chunks: &[&str],
    batch: usize,
) -> Result<Vec<Vec<u8>>> {
    let per_chunk: Vec<Vec<&str>> = chunks.iter().map(|t| units(t)).collect();
    let mut flat: Vec<(usize, &str)> = per_chunk
        .iter()
        .enumerate()
        .flat_map(|(chunk, units)| units.iter().map(move |u| (chunk, *u)))
        .collect();
    let position: Vec<usize> = {
        let mut order: Vec<usize> = (0..flat.len()).collect();
        order.sort_by_key(|&i| flat[i].1.len());
        order
    };
    let mut vectors: Vec<Vec<f32>> = vec![Vec::new(); flat.len()];
    for group in position.chunks(batch.max(1)) {
        let texts: Vec<&str> = group.iter().map(|&i| flat[i].1).collect();
        for (&i, v) in group.iter().zip(embedder.embed_passages(&texts)?) {
            vectors[i] = v;
        }
    }
    let mut grouped: Vec<Vec<Vec<f32>>> = vec![Vec::new(); chunks.len()];
    for ((chunk, _), v) in flat.drain(..).zip(vectors) {
        grouped[chunk].push(v);
    }
    Ok(grouped.iter().map(|vs| encode(vs)).collect())
}

/// Packs unit vectors as stored (see the module doc).
pub fn encode(vectors: &[Vec<f32>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(vectors.iter().map(|v| 4 + v.len()).sum());
    for v in vectors {
        let largest = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        let scale = if largest > 0.0 { largest / 127.0 } else { 1.0 };
        out.extend_from_slice(&scale.to_le_bytes());
        out.extend(
            v.iter()
                .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8 as u8),
        );
    }
    out
}

/// The best cosine between `query` (unit length) and any stored sentence; `None` when the
/// BLOB is empty or not of this dimension (another model's, or damaged), which the caller
/// treats as "no sentence vectors".
pub fn best_similarity(blob: &[u8], query: &[f32]) -> Option<f32> {
    let stride = 4 + query.len();
    if query.is_empty() || blob.is_empty() || !blob.len().is_multiple_of(stride) {
        return None;
    }
    let mut best: Option<f32> = None;
    for unit in blob.chunks_exact(stride) {
        let (scale, values) = unit.split_at(4);
        let scale = f32::from_le_bytes([scale[0], scale[1], scale[2], scale[3]]);
        let (mut dot, mut norm) = (0f32, 0f32);
        for (&q, &b) in query.iter().zip(values) {
            let x = f32::from(b as i8) * scale;
            dot += q * x;
            norm += x * x;
        }
        if norm > 0.0 {
            let cosine = dot / norm.sqrt();
            best = Some(best.map_or(cosine, |b| b.max(cosine)));
        }
    }
    best
}

/// Reorders the first [`RERANK_DEPTH`] of `fused` (ids, best first) by reciprocal-rank fusion
/// of their fused order and their best-sentence order, and returns them with that fusion's
/// score, best first; the rest keep their places after them. A candidate without sentence
/// vectors is ranked in the sentence order by `fallback` (its chunk similarity) when it has
/// one, else last, so an old library's chunks are not pushed down just for being old. `k` is
/// the fusion constant of the search.
pub fn rerank(
    fused: &[i64],
    best_sentence: impl Fn(i64) -> Option<f32>,
    fallback: impl Fn(i64) -> Option<f32>,
    k: f64,
) -> Vec<(i64, f64)> {
    let head = &fused[..fused.len().min(RERANK_DEPTH)];
    let scores: Vec<f32> = head
        .iter()
        .map(|&id| {
            best_sentence(id)
                .or_else(|| fallback(id))
                .unwrap_or(f32::NEG_INFINITY)
        })
        .collect();
    let mut by_sentence: Vec<usize> = (0..head.len()).collect();
    // Stable: equal scores keep the fused order.
    by_sentence.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut fused_score: Vec<f64> = (0..head.len())
        .map(|rank| 1.0 / (k + rank as f64 + 1.0))
        .collect();
    for (rank, &i) in by_sentence.iter().enumerate() {
        fused_score[i] += 1.0 / (k + rank as f64 + 1.0);
    }
    let mut order: Vec<usize> = (0..head.len()).collect();
    order.sort_by(|&a, &b| fused_score[b].total_cmp(&fused_score[a]));
    order
        .into_iter()
        .map(|i| (head[i], fused_score[i]))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn units_are_lines_and_sentences_with_short_pieces_joined_to_the_next() {
        let text = "제31조\n① 모든 국민은 능력에 따라 균등하게 교육을 받을 권리를 가진다.\n② 모든 국민은 그 보호하는 자녀에게 적어도 초등교육을 받게 할 의무를 진다. Short. And an English sentence here.";
        assert_eq!(
            units(text),
            [
                "제31조\n① 모든 국민은 능력에 따라 균등하게 교육을 받을 권리를 가진다.",
                "② 모든 국민은 그 보호하는 자녀에게 적어도 초등교육을 받게 할 의무를 진다.",
                "Short. And an English sentence here.",
            ]
        );
    }

    #[test]
    fn a_chunk_of_one_sentence_needs_no_sentence_vectors_and_a_short_tail_joins_the_last() {
        assert!(units("One sentence only, long enough to count.").is_empty());
        assert!(units("").is_empty());
        assert_eq!(
            units("The first sentence is long. The second one is long too. End."),
            [
                "The first sentence is long.",
                "The second one is long too. End."
            ]
        );
        let many: String = (0..40)
            .map(|i| format!("Line number {i} of a list\n"))
            .collect();
        assert_eq!(units(&many).len(), MAX_UNITS);
    }

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn stored_vectors_give_the_cosine_of_the_best_sentence_within_quantisation_error() {
        let a = unit(&[0.1, 0.7, -0.2, 0.05]);
        let b = unit(&[0.9, -0.1, 0.3, 0.2]);
        let q = unit(&[0.8, 0.0, 0.25, 0.3]);
        let exact = |v: &[f32]| v.iter().zip(&q).map(|(x, y)| x * y).sum::<f32>();
        let blob = encode(&[a.clone(), b.clone()]);
        assert_eq!(blob.len(), 2 * (4 + 4));
        let best = best_similarity(&blob, &q).unwrap();
        assert!((best - exact(&b).max(exact(&a))).abs() < 0.01, "{best}");
        // Another model's dimensions, or a damaged BLOB: no answer rather than a wrong one.
        assert_eq!(best_similarity(&blob, &q[..3]), None);
        assert_eq!(best_similarity(&blob[..7], &q), None);
        assert_eq!(best_similarity(&[], &q), None);
    }

    fn ids(ranked: Vec<(i64, f64)>) -> Vec<i64> {
        assert!(ranked.windows(2).all(|w| w[0].1 >= w[1].1), "{ranked:?}");
        ranked.into_iter().map(|(id, _)| id).collect()
    }

    #[test]
    fn the_rerank_lifts_a_candidate_whose_sentence_matches_and_returns_only_the_head() {
        let fused: Vec<i64> = (1..=30).collect();
        // Chunk 8's best sentence is by far the closest; the others tie. At rank 8 of the fused
        // list it rises into the top 5.
        let sentence = |id: i64| Some(if id == 8 { 0.9 } else { 0.5 });
        let order = ids(rerank(&fused, sentence, |_| None, 60.0));
        assert!(
            order.iter().position(|&id| id == 8).unwrap() < 5,
            "{order:?}"
        );
        let mut head = order.clone();
        head.sort_unstable();
        assert_eq!(head, fused[..RERANK_DEPTH]);
    }

    #[test]
    fn without_any_sentence_vectors_the_order_is_kept() {
        let fused: Vec<i64> = vec![5, 3, 9, 1];
        assert_eq!(ids(rerank(&fused, |_| None, |_| None, 60.0)), fused);
        // The chunk similarity stands in for an old chunk's missing sentences.
        let order = ids(rerank(
            &fused,
            |id| (id != 1).then_some(0.5),
            |id| (id == 1).then_some(0.95),
            60.0,
        ));
        assert_eq!(order, [5, 1, 3, 9]);
    }
}
