//! Chunks for the index: pieces of a document of at most `max_tokens` tokens of the embedding
//! model, cut between sentences (Korean and English), with `overlap_tokens` of the previous
//! chunk repeated at the start of the next so a fact split across a cut is still found.
//!
//! Chunks never cross sections (a PDF page, a heading), so each keeps one page and heading.
//! Positions are character offsets into the document's text with sections joined by a blank
//! line, so `char_start..char_end` points back into what the user would see.

use std::path::Path;

use serde::Serialize;

use super::extract::Section;
use crate::error::{Error, Result};

/// Counts tokens as the embedding model will.
pub trait TokenCounter {
    fn count(&self, text: &str) -> usize;
}

/// The embedding model's own tokenizer (`tokenizer.json` from its folder).
pub struct ModelTokenizer(tokenizers::Tokenizer);

impl ModelTokenizer {
    pub fn from_file(path: &Path) -> Result<ModelTokenizer> {
        tokenizers::Tokenizer::from_file(path)
            .map(ModelTokenizer)
            .map_err(|e| Error::Tokenizer {
                path: path.to_path_buf(),
                message: e.to_string(),
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
}

/// An estimate for when the model's tokenizer is not installed: it errs high (a word of Latin
/// script as 1.5 tokens, a Hangul/CJK character as one), so chunks stay within the model's input.
pub struct ApproxTokens;

impl TokenCounter for ApproxTokens {
    fn count(&self, text: &str) -> usize {
        let wide = text
            .chars()
            .filter(|&c| super::keyword::is_hangul_or_cjk(c))
            .count();
        let words = text
            .split(|c: char| !c.is_alphanumeric() || super::keyword::is_hangul_or_cjk(c))
            .filter(|w| !w.is_empty())
            .count();
        let marks = text.chars().filter(|c| c.is_ascii_punctuation()).count();
        wide + (words * 3).div_ceil(2) + marks
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

/// A sentence (or a piece of an over-long one) with its character range in the document.
struct Piece {
    start: usize,
    end: usize,
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
        let pieces: Vec<Piece> = sentences(&section.text)
            .into_iter()
            .flat_map(|(start, text)| split_long(text, start, counter, max_tokens))
            .map(|(start, text)| Piece {
                start: offset + start,
                end: offset + start + text.chars().count(),
                tokens: counter.count(text),
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
            let text = join(&section.text, &pieces[i..j], offset);
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
fn join(section_text: &str, pieces: &[Piece], offset: usize) -> String {
    let (Some(first), Some(last)) = (pieces.first(), pieces.last()) else {
        return String::new();
    };
    section_text
        .chars()
        .skip(first.start - offset)
        .take(last.end - first.start)
        .collect::<String>()
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
        let ends_sentence = matches!(c, '.' | '!' | '?' | '。' | '！' | '？')
            && next.is_none_or(char::is_whitespace);
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
/// them) into pieces that fit.
fn split_long<'a>(
    text: &'a str,
    start: usize,
    counter: &dyn TokenCounter,
    max_tokens: usize,
) -> Vec<(usize, &'a str)> {
    if counter.count(text) <= max_tokens {
        return vec![(start, text)];
    }
    let mut out = Vec::new();
    let mut rest = text;
    let mut rest_start = start;
    while !rest.is_empty() {
        // The longest prefix that fits, found by halving over character counts.
        let total = rest.chars().count();
        let (mut lo, mut hi) = (1, total);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            let prefix: String = rest.chars().take(mid).collect();
            if counter.count(&prefix) <= max_tokens {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let mut take = lo;
        if take < total {
            let prefix: String = rest.chars().take(take).collect();
            if let Some(space) = prefix.rfind(' ').filter(|&b| b > 0) {
                take = prefix[..space].chars().count();
            }
        }
        let byte = rest.char_indices().nth(take).map_or(rest.len(), |(b, _)| b);
        let piece = &rest[..byte];
        if !piece.trim().is_empty() {
            let lead = piece.len() - piece.trim_start().len();
            out.push((rest_start + piece[..lead].chars().count(), piece.trim()));
        }
        rest_start += take;
        rest = &rest[byte..];
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// One token per whitespace-separated word (Korean words included), for exact budgets.
    struct Words;
    impl TokenCounter for Words {
        fn count(&self, text: &str) -> usize {
            text.split_whitespace().count()
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
