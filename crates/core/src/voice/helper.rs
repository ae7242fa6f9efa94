//! The client side of the `deskmate-whisper` helper process (see `crates/whisper`).
//!
//! One helper process at a time, started on first use and kept so the model stays loaded.
//! Requests are strictly sequential (the process handle sits behind a mutex). Cancelling kills
//! the process: whisper.cpp has no cheaper safe way out of a running `whisper_full`, and the
//! next request starts a fresh helper. The helper's stderr (whisper.cpp's log) is drained on a
//! thread into a short tail that explains failures the protocol cannot (a crash, an abort).

use crate::error::VoiceError;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Deserialize;

use crate::error::{Error, Result};

/// The helper's file name on this platform.
pub const HELPER_NAME: &str = if cfg!(windows) {
    "deskmate-whisper.exe"
} else {
    "deskmate-whisper"
};

/// Environment variable that names the helper explicitly (packaging, tests).
pub const HELPER_ENV: &str = "DESKMATE_WHISPER_HELPER";

/// Lines of the helper's stderr kept for error messages.
const STDERR_TAIL: usize = 12;

/// Where the helper is looked for: `DESKMATE_WHISPER_HELPER`, then beside the running
/// executable (the installed app, `cargo run`), then one folder up (test binaries live in
/// `target/<profile>/deps`, the helper in `target/<profile>`).
pub fn locate_helper() -> Result<PathBuf> {
    search_helper().map_err(missing_helper)
}

/// The error for a helper looked for in `searched` and not found.
pub(crate) fn missing_helper(searched: Vec<PathBuf>) -> Error {
    Error::Voice(VoiceError::SpeechHelperMissing {
        name: HELPER_NAME.to_owned(),
        searched,
    })
}

/// [`locate_helper`]'s search: the helper, or every place it was looked for.
pub(crate) fn search_helper() -> std::result::Result<PathBuf, Vec<PathBuf>> {
    let mut searched = Vec::new();
    if let Some(explicit) = std::env::var_os(HELPER_ENV) {
        let path = PathBuf::from(explicit);
        if path.is_file() {
            return Ok(path);
        }
        searched.push(path);
    }
    if let Ok(exe) = std::env::current_exe() {
        let mut dir = exe.parent().map(Path::to_path_buf);
        for _ in 0..2 {
            let Some(d) = dir else { break };
            let candidate = d.join(HELPER_NAME);
            if candidate.is_file() {
                return Ok(candidate);
            }
            searched.push(candidate);
            dir = d.parent().map(Path::to_path_buf);
        }
    }
    Err(searched)
}

/// What the helper returns for one clip.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct Transcript {
    pub text: String,
    /// The language whisper used: the requested one, or the detected one for `auto`.
    pub language: String,
    pub segments: Vec<Segment>,
    pub load_ms: u64,
    pub transcribe_ms: u64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct Segment {
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Response {
    Ok(serde_json::Value),
    Error { code: String, message: String },
}

struct Process {
    child: Arc<Mutex<Child>>,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

/// A long-lived helper process, restarted after a crash or a cancel.
pub struct Helper {
    path: PathBuf,
    process: Mutex<Option<Process>>,
    /// The child of the request in flight, reachable without the process lock so `cancel`
    /// can kill it while `request` is blocked reading.
    running: Mutex<Option<Arc<Mutex<Child>>>>,
    cancelled: AtomicBool,
}

impl Helper {
    pub fn new(path: PathBuf) -> Helper {
        Helper {
            path,
            process: Mutex::new(None),
            running: Mutex::new(None),
            cancelled: AtomicBool::new(false),
        }
    }

    /// Sends one transcription request and waits for its answer.
    pub fn transcribe(
        &self,
        model: &Path,
        language: &str,
        threads: u32,
        samples: &[f32],
    ) -> Result<Transcript> {
        let header = serde_json::json!({"transcribe": {
            "model": model, "language": language, "threads": threads, "samples": samples.len()
        }});
        let mut payload = Vec::with_capacity(samples.len() * 4);
        for s in samples {
            payload.extend_from_slice(&s.to_le_bytes());
        }
        let value = self.request(&header, &payload, model)?;
        serde_json::from_value(value).map_err(|e| {
            Error::Voice(VoiceError::SpeechFailed {
                message: format!("the speech helper answered something unexpected: {e}"),
            })
        })
    }

    /// Kills the helper if a request is in flight; that request returns `Cancelled`.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(child) = running.as_ref() {
            let _ = child.lock().unwrap_or_else(PoisonError::into_inner).kill();
        }
    }

    fn request(
        &self,
        header: &serde_json::Value,
        payload: &[u8],
        model: &Path,
    ) -> Result<serde_json::Value> {
        let mut slot = self.process.lock().unwrap_or_else(PoisonError::into_inner);
        self.cancelled.store(false, Ordering::SeqCst);
        if slot.is_none() {
            *slot = Some(self.spawn()?);
        }
        let Some(process) = slot.as_mut() else {
            return Err(self.failed("the speech helper did not start", None));
        };
        *self.running.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Arc::clone(&process.child));
        let outcome = exchange(process, header, payload);
        *self.running.lock().unwrap_or_else(PoisonError::into_inner) = None;
        let line = match outcome {
            Ok(line) => line,
            Err(e) => {
                // The pipe broke: the helper died (killed by cancel, or crashed). Reap it and
                // start a fresh one next time.
                let tail = slot.take().map(reap).unwrap_or_default();
                if self.cancelled.swap(false, Ordering::SeqCst) {
                    return Err(Error::Cancelled {
                        what: "transcription",
                    });
                }
                return Err(self.failed(&format!("the speech helper stopped: {e}"), Some(&tail)));
            }
        };
        match serde_json::from_str::<Response>(&line) {
            Ok(Response::Ok(value)) => Ok(value),
            Ok(Response::Error { code, message }) => {
                if code == "protocol" {
                    // The helper stops after a protocol error; start a fresh one next time.
                    slot.take().map(reap);
                }
                Err(match code.as_str() {
                    "speech_model_missing" => Error::Voice(VoiceError::SpeechModelMissing {
                        path: model.to_owned(),
                    }),
                    "speech_model_invalid" => Error::Voice(VoiceError::SpeechModelInvalid {
                        path: model.to_owned(),
                        message,
                    }),
                    "speech_language_unsupported" => {
                        Error::Voice(VoiceError::SpeechLanguageUnsupported { message })
                    }
                    _ => Error::Voice(VoiceError::SpeechFailed { message }),
                })
            }
            Err(e) => {
                slot.take().map(reap);
                Err(self.failed(&format!("unreadable answer ({e}): {line}"), None))
            }
        }
    }

    fn spawn(&self) -> Result<Process> {
        let mut child = Command::new(&self.path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                Error::Voice(VoiceError::SpeechFailed {
                    message: format!("{} cannot be started: {e}", self.path.display()),
                })
            })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            return Err(self.failed("the speech helper's pipes are missing", None));
        };
        let stderr_tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
        let tail = Arc::clone(&stderr_tail);
        let drained = std::thread::Builder::new()
            .name("deskmate-whisper-log".into())
            .spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                    let mut tail = tail.lock().unwrap_or_else(PoisonError::into_inner);
                    if tail.len() == STDERR_TAIL {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            });
        if let Err(e) = drained {
            let _ = child.kill();
            return Err(self.failed(&format!("no thread for the helper's log: {e}"), None));
        }
        Ok(Process {
            child: Arc::new(Mutex::new(child)),
            stdin,
            stdout: BufReader::new(stdout),
            stderr_tail,
        })
    }

    fn failed(&self, what: &str, log_tail: Option<&str>) -> Error {
        let mut message = format!("{} ({})", what, self.path.display());
        if let Some(tail) = log_tail.filter(|t| !t.is_empty()) {
            message.push_str("; its last log lines:\n");
            message.push_str(tail);
        }
        Error::Voice(VoiceError::SpeechFailed { message })
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        // Closing stdin ends the helper's loop; reaping avoids a zombie.
        if let Some(process) = self
            .process
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            drop(process.stdin);
            let _ = process
                .child
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .wait();
        }
    }
}

fn exchange(
    process: &mut Process,
    header: &serde_json::Value,
    payload: &[u8],
) -> std::io::Result<String> {
    let mut line = serde_json::to_string(header).map_err(std::io::Error::other)?;
    line.push('\n');
    process.stdin.write_all(line.as_bytes())?;
    process.stdin.write_all(payload)?;
    process.stdin.flush()?;
    let mut answer = String::new();
    if process.stdout.read_line(&mut answer)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "no answer",
        ));
    }
    Ok(answer)
}

/// Ends a helper that is no longer trusted and returns the tail of its log.
fn reap(process: Process) -> String {
    {
        let mut child = process.child.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = child.kill();
        let _ = child.wait();
    }
    // The log thread finishes once the pipe closes; a short grace period lets it catch up.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let tail = process
        .stderr_tail
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    tail.iter().cloned().collect::<Vec<_>>().join("\n")
}
