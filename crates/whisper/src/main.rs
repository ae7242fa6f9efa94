//! `deskmate-whisper`: whisper.cpp behind a process boundary.
//!
//! Why a helper process and not a `cdylib`: llama-cpp-2 and whisper-rs each vendor their own
//! ggml, and the two cannot share one binary (duplicate symbols; a forced link runs the wrong
//! ggml and aborts). A process keeps whisper's ggml private without symbol-visibility tricks
//! that differ per platform, and it also isolates the app from whisper.cpp's `GGML_ASSERT`
//! aborts and makes cancelling a transcription a plain kill. The cost is one process start
//! (milliseconds) and a copy of the audio through a pipe (64 KB per second of 16 kHz audio).
//!
//! Protocol (stdin → stdout, one request at a time, the helper lives until stdin closes):
//! a request is one JSON line, `{"transcribe": {"model", "language", "threads", "samples"}}`,
//! followed by `samples` little-endian `f32` values (16 kHz mono); or `{"ping": {}}`.
//! Every request gets exactly one JSON line back: `{"ok": …}` or `{"error": {"code",
//! "message"}}`. The loaded model stays loaded until a request names another file.
//! whisper.cpp's own log goes to stderr, which the app keeps for error messages.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

/// Longest audio accepted in one request: 10 minutes at 16 kHz, matching the app's limit.
const MAX_SAMPLES: usize = 16_000 * 600;

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Request {
    Ping {},
    Transcribe(TranscribeRequest),
}

#[derive(Deserialize)]
struct TranscribeRequest {
    model: PathBuf,
    /// `"ko"`, `"en"`, … or `"auto"` for whisper's own detection.
    language: String,
    threads: u32,
    samples: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Response {
    Ok(Reply),
    Error { code: &'static str, message: String },
}

#[derive(Serialize)]
#[serde(untagged)]
enum Reply {
    Pong { version: &'static str },
    Transcript(Transcript),
}

#[derive(Serialize)]
struct Transcript {
    text: String,
    language: String,
    segments: Vec<Segment>,
    /// Milliseconds spent loading the model for this request (0 when it was loaded already).
    load_ms: u64,
    transcribe_ms: u64,
}

#[derive(Serialize)]
struct Segment {
    start_ms: i64,
    end_ms: i64,
    text: String,
}

struct Failure {
    code: &'static str,
    message: String,
}

impl Failure {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
}

struct LoadedModel {
    path: PathBuf,
    context: WhisperContext,
}

fn main() {
    let stdin = io::stdin();
    let mut input = BufReader::new(stdin.lock());
    let mut output = io::stdout().lock();
    let mut model: Option<LoadedModel> = None;
    let mut line = String::new();
    loop {
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) => return, // the app closed the pipe: done
            Ok(_) => {}
            Err(e) => {
                eprintln!("deskmate-whisper: cannot read a request: {e}");
                return;
            }
        }
        if line.trim().is_empty() {
            continue;
        }
        let response = match serde_json::from_str::<Request>(&line) {
            Ok(Request::Ping {}) => Response::Ok(Reply::Pong {
                version: env!("CARGO_PKG_VERSION"),
            }),
            Ok(Request::Transcribe(request)) => {
                match read_samples(&mut input, request.samples)
                    .and_then(|samples| transcribe(&mut model, &request, &samples))
                {
                    Ok(transcript) => Response::Ok(Reply::Transcript(transcript)),
                    Err(f) => Response::Error {
                        code: f.code,
                        message: f.message,
                    },
                }
            }
            // The stream can no longer be trusted to be at a request boundary: answer, then stop.
            Err(e) => {
                let _ = write_response(
                    &mut output,
                    &Response::Error {
                        code: "protocol",
                        message: format!("bad request: {e}"),
                    },
                );
                return;
            }
        };
        if write_response(&mut output, &response).is_err() {
            return;
        }
    }
}

fn write_response(output: &mut impl Write, response: &Response) -> io::Result<()> {
    let mut text = serde_json::to_string(response).map_err(io::Error::other)?;
    text.push('\n');
    output.write_all(text.as_bytes())?;
    output.flush()
}

fn read_samples(input: &mut impl Read, count: usize) -> Result<Vec<f32>, Failure> {
    if count > MAX_SAMPLES {
        return Err(Failure::new(
            "protocol",
            format!("{count} samples is over the limit of {MAX_SAMPLES}"),
        ));
    }
    let mut bytes = vec![0u8; count * 4];
    input
        .read_exact(&mut bytes)
        .map_err(|e| Failure::new("protocol", format!("audio cut short: {e}")))?;
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

fn load<'m>(
    model: &'m mut Option<LoadedModel>,
    path: &Path,
) -> Result<(&'m WhisperContext, u64), Failure> {
    let started = Instant::now();
    let reuse = model.as_ref().is_some_and(|m| m.path == path);
    if !reuse {
        *model = None; // free the old model before the new one is read
        if !path.is_file() {
            return Err(Failure::new(
                "speech_model_missing",
                format!("{}: file not found", path.display()),
            ));
        }
        let context = WhisperContext::new_with_params(path, WhisperContextParameters::default())
            .map_err(|e| {
                Failure::new(
                    "speech_model_invalid",
                    format!("{}: whisper.cpp cannot load it ({e})", path.display()),
                )
            })?;
        *model = Some(LoadedModel {
            path: path.to_owned(),
            context,
        });
    }
    let load_ms = if reuse {
        0
    } else {
        started.elapsed().as_millis() as u64
    };
    match model {
        Some(m) => Ok((&m.context, load_ms)),
        None => Err(Failure::new("speech_failed", "no model loaded")),
    }
}

fn transcribe(
    model: &mut Option<LoadedModel>,
    request: &TranscribeRequest,
    samples: &[f32],
) -> Result<Transcript, Failure> {
    if samples.is_empty() {
        return Err(Failure::new("speech_failed", "no audio"));
    }
    let (context, load_ms) = load(model, &request.model)?;
    let language = effective_language(context.is_multilingual(), &request.language)?;
    let started = Instant::now();
    let mut state = context
        .create_state()
        .map_err(|e| Failure::new("speech_failed", format!("whisper state: {e}")))?;
    let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
    params.set_n_threads(request.threads.clamp(1, 64) as i32);
    params.set_language(language);
    params.set_translate(false);
    params.set_no_context(true);
    params.set_print_special(false);
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_timestamps(false);
    state
        .full(params, samples)
        .map_err(|e| Failure::new("speech_failed", format!("whisper.cpp: {e}")))?;
    let mut segments = Vec::new();
    for segment in state.as_iter() {
        let text = segment
            .to_str_lossy()
            .map_err(|e| Failure::new("speech_failed", format!("segment text: {e}")))?;
        // whisper.cpp timestamps are in centiseconds.
        segments.push(Segment {
            start_ms: segment.start_timestamp() * 10,
            end_ms: segment.end_timestamp() * 10,
            text: text.trim().to_owned(),
        });
    }
    let detected = whisper_rs::get_lang_str(state.full_lang_id_from_state())
        .unwrap_or("en")
        .to_owned();
    let text = join_segments(&segments);
    Ok(Transcript {
        text,
        language: language.map(str::to_owned).unwrap_or(detected),
        segments,
        load_ms,
        transcribe_ms: started.elapsed().as_millis() as u64,
    })
}

/// The language whisper is told to use: `None` lets it detect. An English-only model asked
/// for another language would transcribe nonsense, so that is refused with a clear reason.
fn effective_language(multilingual: bool, requested: &str) -> Result<Option<&str>, Failure> {
    match (multilingual, requested) {
        (_, "auto") if !multilingual => Ok(Some("en")),
        (_, "auto") => Ok(None),
        (false, "en") => Ok(Some("en")),
        (false, other) => Err(Failure::new(
            "speech_language_unsupported",
            format!("the speech model is English-only and cannot transcribe \"{other}\"; choose a multilingual model such as ggml-base.bin (speech.model) or the language \"en\""),
        )),
        (true, other) => Ok(Some(other)),
    }
}

/// Segments joined with single spaces; whisper puts a leading space on most segments.
fn join_segments(segments: &[Segment]) -> String {
    segments
        .iter()
        .map(|s| s.text.as_str())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_english_only_model_refuses_korean_but_takes_auto_as_english() {
        assert!(matches!(effective_language(false, "auto"), Ok(Some("en"))));
        assert!(matches!(effective_language(false, "en"), Ok(Some("en"))));
        assert!(effective_language(false, "ko").is_err());
        assert!(matches!(effective_language(true, "auto"), Ok(None)));
        assert!(matches!(effective_language(true, "ko"), Ok(Some("ko"))));
    }

    #[test]
    fn samples_are_read_as_little_endian_floats_and_a_short_stream_is_refused() {
        let bytes: Vec<u8> = [0.5f32, -1.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let samples = read_samples(&mut bytes.as_slice(), 2).ok();
        assert_eq!(samples, Some(vec![0.5, -1.0]));
        assert!(read_samples(&mut bytes.as_slice(), 3).is_err());
        assert!(read_samples(&mut bytes.as_slice(), MAX_SAMPLES + 1).is_err());
    }
}
