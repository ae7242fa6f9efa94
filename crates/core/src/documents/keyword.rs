//! Keyword search terms, for Korean as well as English.
//!
//! Three FTS5 tables serve keyword search:
//! - `chunks_fts` (trigram tokenizer) finds any substring of 3 or more characters, so "대통령"
//!   finds "대통령은". Hangul/CJK terms of 3+ characters go there.
//! - `chunks_words` (unicode61) holds whole words. Latin-script terms of 3+ characters go there as
//!   prefix queries ("report" finds "reports"): a trigram phrase query for an English word reads
//!   the long posting lists of its common trigrams, several times slower in a large library.
//! - `chunks_bigram` (contentless, unicode61) holds what the trigram index cannot answer: every
//!   two-character piece of Hangul/CJK words and the 1–2 character words of other scripts
//!   ([`bigram_text`]). Terms of 1–2 characters ("서울", "HR") go there.
//!
//! User text never reaches `MATCH` raw: every term is a quoted FTS5 string with its quotes
//! doubled ([`quote`]), so `AND`, `NEAR`, `*`, `"` or `(` in a query are searched for, not obeyed.
//! Korean particles are cut off the end of a word ("국회의" → "국회") because a question and a
//! document rarely inflect a noun alike; the stem is a substring of the word, so nothing the word
//! would have matched is lost.

/// Particles and endings cut from the end of a Korean word, longest first.
const KO_SUFFIXES: &[&str] = &[
    "에서는",
    "으로는",
    "에게서",
    "이라는",
    "입니까",
    "인가요",
    "이란",
    "에서",
    "에게",
    "으로",
    "까지",
    "부터",
    "이나",
    "라는",
    "처럼",
    "보다",
    "하고",
    "이다",
    "인가",
    "은",
    "는",
    "이",
    "가",
    "을",
    "를",
    "의",
    "에",
    "로",
    "와",
    "과",
    "도",
    "만",
];

/// Question words and function words that would match nearly every passage.
const STOP_WORDS: &[&str] = &[
    "무엇",
    "무엇인가",
    "무엇인가요",
    "무엇입니까",
    "어떻게",
    "언제",
    "어디",
    "누구",
    "누가",
    "몇",
    "어떤",
    "있나요",
    "있습니까",
    "합니까",
    "하나요",
    "되나요",
    "됩니까",
    "알려",
    "주세요",
    "the",
    "a",
    "an",
    "of",
    "to",
    "in",
    "on",
    "for",
    "is",
    "are",
    "was",
    "were",
    "be",
    "what",
    "which",
    "who",
    "whom",
    "how",
    "when",
    "where",
    "why",
    "do",
    "does",
    "did",
    "and",
    "or",
    "by",
    "with",
    "at",
    "from",
    "as",
    "it",
    "its",
    "this",
    "that",
    "can",
    "i",
    "you",
    "me",
    "my",
    "about",
    "there",
    "their",
    "have",
    "has",
];

pub fn is_hangul_or_cjk(c: char) -> bool {
    matches!(c as u32,
        0xAC00..=0xD7A3   // Hangul syllables
        | 0x1100..=0x11FF // Hangul jamo
        | 0x3130..=0x318F // Hangul compatibility jamo
        | 0x4E00..=0x9FFF // CJK unified ideographs
        | 0x3040..=0x30FF // Hiragana, Katakana
    )
}

/// The words of a text: runs of letters and digits, lowercased.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

fn strip_particle(word: &str) -> &str {
    if !word.chars().any(is_hangul_or_cjk) {
        return word;
    }
    for suffix in KO_SUFFIXES {
        if let Some(stem) = word.strip_suffix(suffix) {
            if stem.chars().count() >= 2 {
                return stem;
            }
        }
    }
    word
}

/// The search terms of a query, in order, without duplicates or stop words.
pub fn query_terms(query: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in words(query) {
        if STOP_WORDS.contains(&word.as_str()) {
            continue;
        }
        let term = strip_particle(&word).to_owned();
        if !terms.contains(&term) {
            terms.push(term);
        }
    }
    // A query of nothing but stop words still searches for something.
    if terms.is_empty() {
        terms = words(query).take(8).collect();
        terms.dedup();
    }
    terms
}

/// An FTS5 string literal: the text in double quotes, inner quotes doubled.
pub fn quote(term: &str) -> String {
    format!("\"{}\"", term.replace('"', "\"\""))
}

fn is_wide(term: &str) -> bool {
    term.chars().any(is_hangul_or_cjk)
}

/// The `MATCH` expression for the trigram table: the Hangul/CJK terms of 3+ characters.
pub fn trigram_match(terms: &[String]) -> Option<String> {
    let long: Vec<String> = terms
        .iter()
        .filter(|t| t.chars().count() >= 3 && is_wide(t))
        .map(|t| quote(t))
        .collect();
    (!long.is_empty()).then(|| long.join(" OR "))
}

/// The `MATCH` expression for the word table: the other terms of 3+ characters, as prefixes.
pub fn word_match(terms: &[String]) -> Option<String> {
    let words: Vec<String> = terms
        .iter()
        .filter(|t| t.chars().count() >= 3 && !is_wide(t))
        .map(|t| format!("{}*", quote(t)))
        .collect();
    (!words.is_empty()).then(|| words.join(" OR "))
}

/// The `MATCH` expression for the bigram table: the 2-character terms, and 1-character ones as
/// prefixes of a bigram (only when the query has nothing longer, as they match too much).
pub fn bigram_match(terms: &[String]) -> Option<String> {
    let only_short = terms.iter().all(|t| t.chars().count() <= 2);
    let short: Vec<String> = terms
        .iter()
        .filter_map(|t| match t.chars().count() {
            2 => Some(quote(t)),
            1 if only_short => Some(format!("{}*", quote(t))),
            _ => None,
        })
        .collect();
    (!short.is_empty()).then(|| short.join(" OR "))
}

/// What `chunks_bigram` indexes for a chunk: each two-character piece of a Hangul/CJK word, a
/// one-character Hangul/CJK word whole, and other words of one or two characters.
pub fn bigram_text(text: &str) -> String {
    let mut out = String::new();
    for word in words(text) {
        let chars: Vec<char> = word.chars().collect();
        if chars.iter().any(|&c| is_hangul_or_cjk(c)) {
            if chars.len() == 1 {
                push_token(&mut out, &word);
            }
            for pair in chars.windows(2) {
                push_token(&mut out, &pair.iter().collect::<String>());
            }
        } else if chars.len() <= 2 {
            push_token(&mut out, &word);
        }
    }
    out
}

fn push_token(out: &mut String, token: &str) {
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(token);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn korean_particles_are_cut_to_a_stem_of_at_least_two_characters() {
        assert_eq!(
            query_terms("대통령은 국회의 동의를"),
            ["대통령", "국회", "동의"]
        );
        // A stem would be one character: the word stays as it is.
        assert_eq!(query_terms("아이"), ["아이"]);
        assert_eq!(query_terms("서울은 어디"), ["서울"]);
    }

    #[test]
    fn stop_words_go_but_a_query_of_only_stop_words_still_searches() {
        assert_eq!(query_terms("What is the budget of HR?"), ["budget", "hr"]);
        assert_eq!(query_terms("what is it"), ["what", "is", "it"]);
    }

    #[test]
    fn fts5_syntax_in_a_query_is_quoted_not_obeyed() {
        let terms = query_terms(r#"budget" OR NEAR(x* AND "y"#);
        let expr = word_match(&terms).unwrap();
        // Every term is one quoted string: no operator survives outside quotes.
        assert_eq!(expr, r#""budget"* OR "near"*"#);
        assert_eq!(trigram_match(&terms), None);
        assert_eq!(quote(r#"a"b"#), r#""a""b""#);
        // One-character words only count when the query has nothing longer.
        assert_eq!(bigram_match(&terms), None);
    }

    #[test]
    fn short_terms_go_to_the_bigram_table_long_korean_to_trigrams_and_words_to_the_word_table() {
        let terms = query_terms("서울 인구 population 대한민국");
        assert_eq!(trigram_match(&terms).as_deref(), Some(r#""대한민국""#));
        assert_eq!(word_match(&terms).as_deref(), Some(r#""population"*"#));
        assert_eq!(bigram_match(&terms).as_deref(), Some(r#""서울" OR "인구""#));
        let one = query_terms("법");
        assert_eq!(bigram_match(&one).as_deref(), Some(r#""법"*"#));
    }

    #[test]
    fn bigram_text_holds_every_korean_pair_and_short_latin_words() {
        assert_eq!(bigram_text("서울은 크다, HR team"), "서울 울은 크다 hr");
        assert_eq!(bigram_text("법 a"), "법 a");
    }
}
