//! llama.cpp's log, kept per model worker so a failure can say why.
//!
//! llama.cpp reports the reason for a failed load or context ("cudaMalloc failed: out of
//! memory", "invalid magic") only in its log; the API returns a bare null. llama-cpp-2 turns
//! that log into `tracing` events with the target `llama-cpp-2`, sent to the thread's current
//! dispatcher. [`ThreadLog::capture`] installs, for the calling thread only, a dispatcher that
//! keeps the last lines in a ring buffer and passes everything on to the dispatcher that was
//! there before (llama.cpp lines only where that one enables their level, since llama-cpp-2
//! bypasses the usual level check). No global subscriber is needed, so the reason is captured
//! in the app, the CLI and the tests alike, and two workers never see each other's lines.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use tracing::dispatcher::DefaultGuard;
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Level, Metadata, Subscriber};

/// The target llama-cpp-2 gives llama.cpp's and ggml's log lines.
const LLAMA_TARGET: &str = "llama-cpp-2";
/// Lines kept per worker; a failed load logs a few dozen.
const KEEP: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: Level,
    pub text: String,
}

#[derive(Default)]
struct Ring {
    lines: VecDeque<(u64, LogLine)>,
    next: u64,
}

/// The capture installed on one thread; dropping it restores the previous dispatcher.
pub struct ThreadLog {
    ring: Arc<Mutex<Ring>>,
    _guard: DefaultGuard,
}

impl ThreadLog {
    pub fn capture() -> ThreadLog {
        let forward = tracing::dispatcher::get_default(Dispatch::clone);
        let ring = Arc::new(Mutex::new(Ring::default()));
        let dispatch = Dispatch::new(CaptureSubscriber {
            ring: Arc::clone(&ring),
            forward,
            max_level: LevelFilter::current(),
        });
        let guard = tracing::dispatcher::set_default(&dispatch);
        ThreadLog {
            ring,
            _guard: guard,
        }
    }

    /// A position in the log: lines logged after it are returned by [`ThreadLog::since`].
    pub fn mark(&self) -> u64 {
        lock(&self.ring).next
    }

    pub fn since(&self, mark: u64) -> Vec<LogLine> {
        lock(&self.ring)
            .lines
            .iter()
            .filter(|(seq, _)| *seq >= mark)
            .map(|(_, line)| line.clone())
            .collect()
    }
}

fn lock(ring: &Mutex<Ring>) -> std::sync::MutexGuard<'_, Ring> {
    ring.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A filter for the process-wide subscriber: `default` for everything, but only errors from
/// llama.cpp (it logs hundreds of lines per load, and its warnings are for developers).
pub fn quiet_llama_filter(default: Level) -> tracing_subscriber::filter::Targets {
    tracing_subscriber::filter::Targets::new()
        .with_default(default)
        .with_target(LLAMA_TARGET, Level::ERROR)
        // llama-cpp-2's own remarks about the log stream it forwards.
        .with_target("llama_cpp_2", Level::ERROR)
}

/// The reason to show for a failure: the warnings and errors logged since the attempt began
/// (the last few informational lines when there are none).
pub fn failure_reason(lines: &[LogLine]) -> String {
    let serious: Vec<&str> = lines
        .iter()
        .filter(|l| l.level <= Level::WARN)
        .map(|l| l.text.trim())
        .filter(|t| !t.is_empty())
        .collect();
    let chosen: Vec<&str> = if serious.is_empty() {
        let all: Vec<&str> = lines.iter().map(|l| l.text.trim()).collect();
        all[all.len().saturating_sub(3)..].to_vec()
    } else {
        serious[serious.len().saturating_sub(6)..].to_vec()
    };
    if chosen.is_empty() {
        "llama.cpp gave no reason".to_owned()
    } else {
        chosen.join("; ")
    }
}

/// Whether a failure's words say memory ran out (the only failure fewer GPU layers can cure).
pub fn looks_like_out_of_memory(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    [
        "out of memory",
        "outofdevicememory",
        "out_of_device_memory",
        "failed to allocate",
        "unable to allocate",
        "cudamalloc failed",
        "not enough memory",
        "insufficient memory",
    ]
    .iter()
    .any(|needle| r.contains(needle))
}

struct CaptureSubscriber {
    ring: Arc<Mutex<Ring>>,
    forward: Dispatch,
    max_level: LevelFilter,
}

#[derive(Default)]
struct MessageVisitor {
    message: String,
}

impl Visit for MessageVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message.push_str(&format!("{value:?}"));
        }
    }
}

impl Subscriber for CaptureSubscriber {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == LLAMA_TARGET || self.forward.enabled(metadata)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // llama-cpp-2 dispatches directly, whatever the hint; keep the process-wide level as it was.
        Some(self.max_level)
    }

    fn event(&self, event: &Event<'_>) {
        let metadata = event.metadata();
        if metadata.target() == LLAMA_TARGET {
            let mut visitor = MessageVisitor::default();
            event.record(&mut visitor);
            let mut ring = lock(&self.ring);
            let seq = ring.next;
            ring.next += 1;
            if ring.lines.len() == KEEP {
                ring.lines.pop_front();
            }
            ring.lines.push_back((
                seq,
                LogLine {
                    level: *metadata.level(),
                    text: visitor.message.trim_end().to_owned(),
                },
            ));
            drop(ring);
            if !self.forward.enabled(metadata) {
                return;
            }
        }
        self.forward.event(event);
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.forward.new_span(span)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        self.forward.record(span, values);
    }

    fn record_follows_from(&self, span: &Id, follows: &Id) {
        self.forward.record_follows_from(span, follows);
    }

    fn enter(&self, span: &Id) {
        self.forward.enter(span);
    }

    fn exit(&self, span: &Id) {
        self.forward.exit(span);
    }

    fn clone_span(&self, id: &Id) -> Id {
        self.forward.clone_span(id)
    }

    fn try_close(&self, id: Id) -> bool {
        self.forward.try_close(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(level: Level, text: &str) -> LogLine {
        LogLine {
            level,
            text: text.to_owned(),
        }
    }

    #[test]
    fn the_reason_prefers_warnings_and_errors() {
        let lines = [
            line(Level::INFO, "llama_model_loader: loaded meta data"),
            line(
                Level::ERROR,
                "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 900.00 MiB on device 0: cudaMalloc failed: out of memory",
            ),
            line(Level::ERROR, "llama_model_load: error loading model"),
        ];
        let reason = failure_reason(&lines);
        assert!(reason.contains("cudaMalloc failed"), "{reason}");
        assert!(!reason.contains("meta data"), "{reason}");
        assert!(looks_like_out_of_memory(&reason));
    }

    #[test]
    fn without_warnings_the_last_lines_are_the_reason() {
        let lines = [line(Level::INFO, "a"), line(Level::DEBUG, "b")];
        assert_eq!(failure_reason(&lines), "a; b");
        assert_eq!(failure_reason(&[]), "llama.cpp gave no reason");
    }

    #[test]
    fn memory_words_from_each_backend_count_as_out_of_memory() {
        for reason in [
            "cudaMalloc failed: out of memory",
            "vk::Device::allocateMemory: ErrorOutOfDeviceMemory",
            "ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer of size 999",
        ] {
            assert!(looks_like_out_of_memory(reason), "{reason}");
        }
        assert!(!looks_like_out_of_memory(
            "gguf_init_from_file_impl: invalid magic characters"
        ));
    }
}
