//! Chunks for the index: pieces of a document of at most `max_tokens` tokens of the embedding
//! model, cut between sentences (Korean and English), with `overlap_tokens` of the previous
//! chunk repeated at the start of the next so a fact split across a cut is still found.
//!
//! Chunks never cross sections (a PDF page, a heading), so each keeps one page and heading.
//! Positions are character offsets into the document's text with sections joined by a blank
//! line, so `char_start..char_end` points back into what the user would see.
//!
//! Time is linear in the text's length, whatever its shape: logs, OCR output and text pasted
//! from PDFs come as megabytes without a sentence break. Each token count covers one piece, an
//! over-long run is cut with [`TokenCounter::fitting_prefix`] (which reads only about the
//! prefix it returns), and chunks are sliced from the section by byte offsets.

use crate::error::DocumentsError;
use std::path::Path;

use serde::Serialize;

use super::extract::Section;
use crate::error::{Error, Result};

/// Counts tokens as the embedding model will.
pub trait TokenCounter {
    fn count(&self, text: &str) -> usize;

    /// The byte length of the longest prefix of `text` that holds at most `max_tokens` tokens
    /// (on a character boundary; `text.len()` when all of it fits). Its cost grows with the
    /// prefix, not with `text`, which may be megabytes long.
    fn fitting_prefix(&self, text: &str, max_tokens: usize) -> usize;
}

/// The embedding model's own tokenizer (`tokenizer.json` from its folder).
pub struct ModelTokenizer(tokenizers::Tokenizer);

impl ModelTokenizer {
    pub fn from_file(path: &Path) -> Result<ModelTokenizer> {
        tokenizers::Tokenizer::from_file(path)
            .map(ModelTokenizer)
            .map_err(|e| {
                Error::Documents(DocumentsError::Tokenizer {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })
            })
    }
}

impl TokenCounter for ModelTokenizer {
    fn count(&self, text: &str) -> usize {
        // Special tokens are left out: the budget is for the text itself.
        self.0
            .encode(text, false)
            .map(|e| e.len())
            .unwrap_or_else(|_| text.chars().count())
    }

    fn fitting_prefix(&self, text: &str, max_tokens: usize) -> usize {
        // A window that should hold more than `max_tokens` tokens is encoded, and the cut is
        // where token `max_tokens` starts; a window that holds fewer is doubled. Tokens before
        // the window's last word do not depend on what follows it (the pre-tokenizer splits
        // words first), so the cut is the same as in the whole text.
        let mut window = (max_tokens + 1).saturating_mul(8).max(64);
        loop {
            let end = floor_char_boundary(text, window);
            let Ok(encoding) = self.0.encode(&text[..end], false) else {
                return ApproxTokens.fitting_prefix(text, max_tokens);
            };
            let offsets = encoding.get_offsets();
            if offsets.len() > max_tokens {
                let cut = floor_char_boundary(text, offsets[max_tokens].0);
                return if cut > 0 {
                    cut
                } else {
                    ApproxTokens.fitting_prefix(text, max_tokens)
                };
            }
            if end == text.len() {
                return text.len();
            }
            window = window.saturating_mul(2);
        }
    }
}

/// The largest character boundary of `text` at or below `at`.
fn floor_char_boundary(text: &str, at: usize) -> usize {
    if at >= text.len() {
        return text.len();
    }
    (0..=at)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

/// An estimate for when the model's tokenizer is not installed: it errs high (a word of Latin
/// script as 1.5 tokens, a Hangul/CJK character as one), so chunks stay within the model's input.
pub struct ApproxTokens;

impl TokenCounter for ApproxTokens {
    fn count(&self, text: &str) -> usize {
        let mut tally = ApproxTally::default();
        text.chars().for_each(|c| tally.push(c));
        tally.tokens()
    }

    fn fitting_prefix(&self, text: &str, max_tokens: usize) -> usize {
        let mut tally = ApproxTally::default();
        for (at, c) in text.char_indices() {
            tally.push(c);
            if tally.tokens() > max_tokens {
                return at;
            }
        }
        text.len()
    }
}

/// [`ApproxTokens`]' count, one character at a time.
#[derive(Default)]
struct ApproxTally {
    wide: usize,
    words: usize,
    marks: usize,
    in_word: bool,
}

impl ApproxTally {
    fn push(&mut self, c: char) {
        let wide = super::keyword::is_hangul_or_cjk(c);
        let word_char = c.is_alphanumeric() && !wide;
        if word_char && !self.in_word {
            self.words += 1;
        }
        self.in_word = word_char;
        self.wide += usize::from(wide);
        self.marks += usize::from(c.is_ascii_punctuation());
    }

    fn tokens(&self) -> usize {
        self.wide + (self.words * 3).div_ceil(2) + self.marks
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chunk {
    pub ordinal: usize,
    pub text: String,
    pub page: Option<u32>,
    pub section: Option<String>,
    pub char_start: usize,
    pub char_end: usize,
    pub token_count: usize,
}

/// A sentence (or a piece of an over-long one) with its character range in the document and
/// its byte range in its section's text.
struct Piece {
    start: usize,
    end: usize,
    byte_start: usize,
    byte_end: usize,
    tokens: usize,
}

/// Cuts sections into chunks of at most `max_tokens` with about `overlap_tokens` of overlap.
pub fn chunk_sections(
    sections: &[Section],
    counter: &dyn TokenCounter,
    max_tokens: usize,
    overlap_tokens: usize,
) -> Vec<Chunk> {
    let max_tokens = max_tokens.max(8);
    let overlap_tokens = overlap_tokens.min(max_tokens / 2);
    let mut chunks = Vec::new();
    let mut offset = 0;
    for section in sections {
        let base = section.text.as_ptr() as usize;
        let pieces: Vec<Piece> = sentences(&section.text)
            .into_iter()
            .flat_map(|(start, text)| split_long(text, start, counter, max_tokens))
            .map(|(start, text)| {
                // `text` is a slice of the section's text, so its address gives its place.
                let byte_start = text.as_ptr() as usize - base;
                Piece {
                    start: offset + start,
                    end: offset + start + text.chars().count(),
                    byte_start,
                    byte_end: byte_start + text.len(),
                    tokens: counter.count(text),
                }
            })
            .collect();
        let mut i = 0;
        while i < pieces.len() {
            let mut j = i;
            let mut tokens = 0;
            while j < pieces.len() && (j == i || tokens + pieces[j].tokens <= max_tokens) {
                tokens += pieces[j].tokens;
                j += 1;
            }
            let text = join(&section.text, &pieces[i..j]);
            chunks.push(Chunk {
                ordinal: chunks.len(),
                token_count: counter.count(&text),
                text,
                page: section.page,
                section: section.heading.clone(),
                char_start: pieces[i].start,
                char_end: pieces[j - 1].end,
            });
            if j == pieces.len() {
                break;
            }
            // Start the next chunk with the last sentences that fit in the overlap, but always
            // move forward.
            let mut back = j;
            let mut carried = 0;
            while back > i + 1 && carried + pieces[back - 1].tokens <= overlap_tokens {
                carried += pieces[back - 1].tokens;
                back -= 1;
            }
            i = back;
        }
        offset += section.text.chars().count() + 2;
    }
    chunks
}

/// The document text from the first piece's start to the last piece's end.
fn join(section_text: &str, pieces: &[Piece]) -> String {
    let (Some(first), Some(last)) = (pieces.first(), pieces.last()) else {
        return String::new();
    };
    section_text
        .get(first.byte_start..last.byte_end)
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Sentences with their character offsets: a cut after `.`, `!`, `?` and their full-width
/// forms when whitespace follows (Korean "…다." included), and at paragraph breaks.
fn sentences(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut start_byte = 0;
    let mut start_char = 0;
    for (ci, &(bi, c)) in chars.iter().enumerate() {
        let next = chars.get(ci + 1).map(|&(_, n)| n);
        let ends_sentence = ends_sentence(c, next);
        let paragraph = c == '\n' && next == Some('\n');
        if ends_sentence || paragraph {
            let end_byte = bi + c.len_utf8();
            push_trimmed(&mut out, text, start_byte, end_byte, start_char);
            start_byte = end_byte;
            start_char = ci + 1;
        }
    }
    push_trimmed(&mut out, text, start_byte, text.len(), start_char);
    out
}

/// Whether `c` ends a sentence: `.`, `!`, `?` or their full-width forms with whitespace (or
/// the end of the text) after it, so "3.5" and "example.com" are not cut.
pub(super) fn ends_sentence(c: char, next: Option<char>) -> bool {
    matches!(c, '.' | '!' | '?' | '。' | '！' | '？') && next.is_none_or(char::is_whitespace)
}

fn push_trimmed<'a>(
    out: &mut Vec<(usize, &'a str)>,
    text: &'a str,
    start_byte: usize,
    end_byte: usize,
    start_char: usize,
) {
    let raw = &text[start_byte..end_byte];
    let trimmed_start = raw.trim_start();
    let lead = raw[..raw.len() - trimmed_start.len()].chars().count();
    let piece = trimmed_start.trim_end();
    if !piece.is_empty() {
        out.push((start_char + lead, piece));
    }
}

/// A sentence longer than the budget is cut at spaces (or anywhere, for long runs without
/// them) into pieces that fit. Each cut reads about one piece of text, so a sentence of
/// megabytes costs time in proportion to its length.
fn split_long<'a>(
    text: &'a str,
    start: usize,
    counter: &dyn TokenCounter,
    max_tokens: usize,
) -> Vec<(usize, &'a str)> {
    if counter.fitting_prefix(text, max_tokens) >= text.len() {
        return vec![(start, text)];
    }
    let mut out = Vec::new();
    let mut rest = text;
    let mut rest_start = start;
    while !rest.is_empty() {
        let mut take = counter.fitting_prefix(rest, max_tokens);
        if take == 0 {
            // Not even one character fits: take it anyway, so the cut always moves forward.
            take = rest.chars().next().map_or(rest.len(), char::len_utf8);
        }
        if take < rest.len() {
            if let Some(space) = rest[..take].rfind(' ').filter(|&b| b > 0) {
                take = space;
            }
        }
        let piece = &rest[..take];
        if !piece.trim().is_empty() {
            let lead = piece.len() - piece.trim_start().len();
            out.push((rest_start + piece[..lead].chars().count(), piece.trim()));
        }
        rest_start += piece.chars().count();
        rest = &rest[take..];
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::samples::unbroken_text;
    use super::*;

    /// One token per whitespace-separated word (Korean words included), for exact budgets.
    struct Words;
    impl TokenCounter for Words {
        fn count(&self, text: &str) -> usize {
            text.split_whitespace().count()
        }

        fn fitting_prefix(&self, text: &str, max_tokens: usize) -> usize {
            let mut words = 0;
            let mut in_word = false;
            for (at, c) in text.char_indices() {
                if !c.is_whitespace() && !in_word {
                    words += 1;
                    if words > max_tokens {
                        return at;
                    }
                }
                in_word = !c.is_whitespace();
            }
            text.len()
        }
    }

    /// The best of three runs: the other tests share the machine.
    fn seconds(f: impl Fn() -> Vec<Chunk>) -> (f64, Vec<Chunk>) {
        let mut best = f64::MAX;
        let mut chunks = Vec::new();
        for _ in 0..3 {
            let started = std::time::Instant::now();
            chunks = f();
            best = best.min(started.elapsed().as_secs_f64());
        }
        (best, chunks)
    }

    #[test]
    fn the_estimate_cuts_where_its_count_goes_over_the_budget() {
        for text in ["one two three four", "서울 부산 대구", "a.b,c d", ""] {
            for max in 0..8 {
                let cut = ApproxTokens.fitting_prefix(text, max);
                assert!(ApproxTokens.count(&text[..cut]) <= max, "{text:?} {max}");
                if cut < text.len() {
                    let next = cut + text[cut..].chars().next().unwrap().len_utf8();
                    assert!(ApproxTokens.count(&text[..next]) > max, "{text:?} {max}");
                }
            }
        }
    }

    #[test]
    fn text_without_sentence_breaks_is_chunked_in_time_linear_in_its_length() {
        let tokenizer = e5_tokenizer();
        for counter in [&ApproxTokens as &dyn TokenCounter, &tokenizer] {
            let small = [section(&unbroken_text(200_000))];
            let large = [section(&unbroken_text(1_000_000))];
            let (t1, c1) = seconds(|| chunk_sections(&small, counter, 256, 32));
            let (t5, c5) = seconds(|| chunk_sections(&large, counter, 256, 32));
            // Linear is 5×; the quadratic cut took 25× (and minutes for 5 MB).
            assert!(t5 / t1 < 10.0, "{t1:.3} s → {t5:.3} s");
            assert!(
                (4..=6).contains(&(c5.len() / c1.len())),
                "{} {}",
                c1.len(),
                c5.len()
            );
            for c in &c5 {
                assert!(c.token_count <= 256 + 2, "{} tokens", c.token_count);
            }
            // The pieces cover the text in order, overlapping only by the overlap.
            let text = &large[0].text;
            for pair in c5.windows(2) {
                assert!(pair[0].char_start < pair[1].char_start);
                assert!(pair[1].char_start <= pair[0].char_end + 1);
            }
            assert_eq!(c5[0].char_start, 0);
            assert_eq!(c5.last().unwrap().char_end, text.trim_end().chars().count());
        }
    }

    fn section(text: &str) -> Section {
        Section {
            text: text.to_owned(),
            page: None,
            heading: None,
        }
    }

    fn e5_tokenizer() -> ModelTokenizer {
        let name = "multilingual-e5-small-onnx/tokenizer.json";
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../models")
            .join(name);
        let path = if repo.is_file() {
            repo
        } else {
            std::env::var_os("DESKMATE_MODEL_MIRROR")
                .map(|m| Path::new(&m).join(name))
                .filter(|p| p.is_file())
                .expect("the e5 tokenizer is in models/ (cargo xtask models --set test)")
        };
        ModelTokenizer::from_file(&path).unwrap()
    }

    #[test]
    fn the_embedding_models_tokenizer_sizes_real_korean_and_english_chunks() {
        let tokenizer = e5_tokenizer();
        assert!(tokenizer.count("서울은 대한민국의 수도이다.") >= 5);
        let text = "서울특별시는 대한민국의 수도이자 최대 도시이다. 한강이 도시를 가로지른다. \
                    Seoul is the capital of South Korea. The Han River crosses the city. "
            .repeat(12);
        let chunks = chunk_sections(&[section(&text)], &tokenizer, 64, 16);
        assert!(chunks.len() > 3, "{}", chunks.len());
        for c in &chunks {
            assert!(c.token_count <= 64, "{} tokens: {}", c.token_count, c.text);
            assert!(c.text.ends_with('.'), "cut between sentences: {}", c.text);
        }
        let missing = ModelTokenizer::from_file(Path::new("/nowhere/tokenizer.json"))
            .err()
            .unwrap();
        assert_eq!(missing.code(), "tokenizer");
    }

    #[test]
    fn sentences_are_cut_after_korean_and_english_sentence_ends() {
        let s: Vec<&str> =
            sentences("서울은 수도입니다. 부산은 항구예요! Is it 3.5 km? Yes.\n\nNew para")
                .into_iter()
                .map(|(_, t)| t)
                .collect();
        assert_eq!(
            s,
            [
                "서울은 수도입니다.",
                "부산은 항구예요!",
                "Is it 3.5 km?",
                "Yes.",
                "New para"
            ]
        );
    }

    #[test]
    fn chunks_respect_the_budget_overlap_and_point_back_into_the_text() {
        let text =
            "One two three. Four five six. Seven eight nine. Ten eleven twelve. 열셋 열넷 열다섯.";
        let chunks = chunk_sections(&[section(text)], &Words, 7, 3);
        for c in &chunks {
            assert!(c.token_count <= 7, "{c:?}");
            let slice: String = text
                .chars()
                .skip(c.char_start)
                .take(c.char_end - c.char_start)
                .collect();
            assert_eq!(slice, c.text);
        }
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "One two three. Four five six.",
                "Four five six. Seven eight nine.",
                "Seven eight nine. Ten eleven twelve.",
                "Ten eleven twelve. 열셋 열넷 열다섯."
            ]
        );
        assert_eq!(
            chunks.iter().map(|c| c.ordinal).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
    }

    #[test]
    fn an_over_long_sentence_is_cut_at_spaces_and_sections_are_never_crossed() {
        let long = (1..=25)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let sections = [
            Section {
                text: long.clone(),
                page: Some(1),
                heading: None,
            },
            Section {
                text: "짧은 문장.".into(),
                page: Some(2),
                heading: Some("끝".into()),
            },
        ];
        let chunks = chunk_sections(&sections, &Words, 10, 0);
        assert_eq!(chunks.len(), 4);
        assert!(chunks[..3]
            .iter()
            .all(|c| c.page == Some(1) && c.token_count <= 10));
        assert_eq!(
            chunks[0].text,
            (1..=10)
                .map(|i| format!("w{i}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        assert_eq!(chunks[3].text, "짧은 문장.");
        assert_eq!(chunks[3].section.as_deref(), Some("끝"));
        // The second section starts after the first and a blank line.
        assert_eq!(chunks[3].char_start, long.chars().count() + 2);
    }
}
