//! Turning generated token bytes into the text a caller may show.
//!
//! A token is a byte string, not a character: a Korean syllable (three UTF-8 bytes) is often
//! split over two tokens. [`Utf8Stream`] holds an incomplete tail back until the next token
//! completes it, so every piece it emits is valid UTF-8 and concatenating the pieces gives the
//! whole reply. [`StopScanner`] then holds back any tail that could be the start of a stop
//! string, so a stop string is never shown, not even half of it.

/// Bytes in, valid UTF-8 out; invalid bytes become U+FFFD rather than an error.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// Adds `bytes` and returns the text that is now complete.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(text) => {
                    out.push_str(text);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        // An incomplete sequence at the end: wait for the next token.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Whether bytes are being held back for the next token.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Ends the stream: a tail that never completed becomes U+FFFD.
    pub fn finish(&mut self) -> String {
        if self.pending.is_empty() {
            String::new()
        } else {
            self.pending.clear();
            char::REPLACEMENT_CHARACTER.to_string()
        }
    }
}

/// The result of feeding text to a [`StopScanner`].
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// Text that is safe to show; generation goes on.
    Continue(String),
    /// A stop string was found: the text before it, and generation ends.
    Stop(String),
}

/// Finds stop strings in streamed text, across piece boundaries.
#[derive(Debug, Default)]
pub struct StopScanner {
    stops: Vec<String>,
    held: String,
}

impl StopScanner {
    pub fn new(stops: &[String]) -> StopScanner {
        StopScanner {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            held: String::new(),
        }
    }

    pub fn push(&mut self, text: &str) -> Scan {
        self.held.push_str(text);
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|stop| self.held.find(stop.as_str()))
            .min()
        {
            let before = self.held[..at].to_owned();
            self.held.clear();
            return Scan::Stop(before);
        }
        let keep = self
            .stops
            .iter()
            .map(|stop| longest_suffix_prefix(&self.held, stop))
            .max()
            .unwrap_or(0);
        let emit_to = self.held.len() - keep;
        let emitted = self.held[..emit_to].to_owned();
        self.held.drain(..emit_to);
        Scan::Continue(emitted)
    }

    /// Ends the stream: text held back as a possible stop string was not one.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// The length of the longest proper prefix of `stop` that `text` ends with.
fn longest_suffix_prefix(text: &str, stop: &str) -> usize {
    stop.char_indices()
        .map(|(i, _)| i)
        .skip(1)
        .filter(|&len| text.ends_with(&stop[..len]))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn korean_syllables_split_across_tokens_come_out_whole() {
        let bytes = "안녕하세요".as_bytes();
        let mut stream = Utf8Stream::default();
        let mut out = String::new();
        // One byte at a time is the worst possible tokenisation.
        for b in bytes {
            out.push_str(&stream.push(&[*b]));
        }
        out.push_str(&stream.finish());
        assert_eq!(out, "안녕하세요");
    }

    #[test]
    fn an_incomplete_tail_is_held_until_completed() {
        let mut stream = Utf8Stream::default();
        let bytes = "가".as_bytes();
        assert_eq!(stream.push(&[b'a', bytes[0], bytes[1]]), "a");
        assert!(stream.has_pending());
        assert_eq!(stream.push(&bytes[2..]), "가");
        assert!(!stream.has_pending());
    }

    #[test]
    fn invalid_bytes_become_replacement_characters_not_errors() {
        let mut stream = Utf8Stream::default();
        assert_eq!(stream.push(&[b'a', 0xff, b'b']), "a\u{fffd}b");
        // A tail that never completes is replaced at the end.
        assert_eq!(stream.push(&[0xea]), "");
        assert_eq!(stream.finish(), "\u{fffd}");
    }

    #[test]
    fn a_stop_string_split_over_pieces_is_found_and_not_shown() {
        let mut scan = StopScanner::new(&["</answer>".to_owned()]);
        assert_eq!(
            scan.push("The total is 4"),
            Scan::Continue("The total is 4".into())
        );
        assert_eq!(scan.push("2.</an"), Scan::Continue("2.".into()));
        assert_eq!(scan.push("swer> and more"), Scan::Stop(String::new()));
    }

    #[test]
    fn held_text_that_turns_out_not_to_be_a_stop_is_released() {
        let mut scan = StopScanner::new(&["###".to_owned()]);
        assert_eq!(scan.push("a #"), Scan::Continue("a ".into()));
        assert_eq!(scan.push("# b"), Scan::Continue("## b".into()));
        assert_eq!(scan.push("##"), Scan::Continue(String::new()));
        assert_eq!(scan.finish(), "##");
    }

    #[test]
    fn the_earliest_of_several_stops_wins_and_korean_stops_work() {
        let mut scan = StopScanner::new(&["끝".to_owned(), "END".to_owned(), String::new()]);
        assert_eq!(scan.push("답: 42 END 끝"), Scan::Stop("답: 42 ".into()));
        let mut scan = StopScanner::new(&["사용자:".to_owned()]);
        assert_eq!(
            scan.push("좋아요.\n사용"),
            Scan::Continue("좋아요.\n".into())
        );
        assert_eq!(scan.push("자: 다음"), Scan::Stop(String::new()));
    }

    #[test]
    fn without_stops_everything_passes_through() {
        let mut scan = StopScanner::new(&[]);
        assert_eq!(scan.push("abc"), Scan::Continue("abc".into()));
        assert_eq!(scan.finish(), "");
    }
}
