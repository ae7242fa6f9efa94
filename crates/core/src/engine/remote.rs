//! A persona whose model runs on an OpenAI-compatible server (vLLM, llama-server, Ollama,
//! another Deskmate's `deskmate serve`) instead of this machine.
//!
//! The server sees the conversation: the system prompt, the history and the question (and
//! document passages only when `documents.allow_remote` is on, which the chat decides). Images
//! are never sent. The key, when the server needs one, is read from the environment variable
//! the configuration names, never from config.json.
//!
//! Each request is one `POST {base_url}/chat/completions` with `stream: true`. Its supervisor
//! thread hands all network work (connecting, the retries, every blocking read) to an I/O
//! thread and waits on a channel, so from the moment of submission it answers a cancellation or
//! an unload at once, and ends a reply whose server stays silent longer than `timeout_s`. The
//! I/O thread notices that it was left at its next read or retry and drops the connection,
//! which stops the server's generation; a read gives up a second after `timeout_s`, so no
//! thread outlives that. A connection that is refused or cannot be made (or a 502/503 "not
//! ready") is tried [`CONNECT_ATTEMPTS`] times, then reported as `remote_unreachable` with the
//! last reason; a request the server may have started is never sent twice. At most
//! `parallel + max_queue` requests run at once; more are refused with `busy`, as the local
//! queue does. Every request is counted in the persona's statistics and written to the request
//! log, as for a local model, and its outcome keeps "does the server answer" current.

use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use super::stats::{self, Outcome, RequestSink, Stats, Timings};
use super::text::{Scan, StopScanner};
use super::{
    CancelToken, ChatRequest, Completion, FinishReason, Generation, GenerationEvent, ModelConfig,
};
use crate::config::{RemoteBackend, Sampling};
use crate::error::{EngineError, Error, Result};
use crate::store::{now_ms, Persona};

/// Connection attempts before a request is reported unreachable.
pub const CONNECT_ATTEMPTS: u32 = 3;
/// The wait before the second and third attempts.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_millis(300), Duration::from_millis(1200)];
/// How long connecting to the server may take (per attempt).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the check behind `deskmate models` and the Models page waits for an answer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the supervisor looks at the cancel token while the reader waits.
const POLL: Duration = Duration::from_millis(50);
/// One line of the event stream may not be longer (a piece of text is a few bytes).
const MAX_LINE_BYTES: u64 = 4 << 20;
/// An error body or a non-streamed answer may not be longer.
const MAX_BODY_BYTES: u64 = 16 << 20;

/// What the Models page and `deskmate models` show for a persona on a server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoteReport {
    pub persona: Persona,
    pub base_url: String,
    /// `host[:port]`, as the "remote: host" badge shows it.
    pub host: String,
    pub model: String,
    /// `parallel`: the requests the server is expected to serve at once.
    pub parallel: u32,
    /// Requests sent at once (`parallel + max_queue`; the server queues what it cannot serve
    /// yet); more are refused with `busy`.
    pub max_requests: u32,
    pub timeout_s: u32,
    /// Whether a key is sent (never the key itself).
    pub uses_key: bool,
    /// The latest check of the server.
    pub check: RemoteCheck,
}

/// The answer to `GET {base_url}/models`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoteCheck {
    pub checked_at: i64,
    /// Whether the server answered with a model list.
    pub answers: bool,
    pub latency_ms: Option<f64>,
    /// Whether the configured model is among those listed (`None` when nothing was listed).
    pub model_listed: Option<bool>,
    /// The models the server lists (at most 20).
    pub models: Vec<String>,
    /// Why it does not answer.
    pub error: Option<String>,
}

/// A persona's connection to its server: shared by the engine and every request thread.
pub(crate) struct RemoteModel {
    persona: Persona,
    backend: RemoteBackend,
    api_key: Option<String>,
    agent: ureq::Agent,
    pub(crate) stats: Stats,
    sink: Option<RequestSink>,
    /// Requests that may run at once.
    /// `parallel`: requests the server is expected to serve at once (the rest wait in its queue).
    slots: usize,
    limit: usize,
    running: Mutex<usize>,
    /// Set when the persona is unloaded or reconfigured: running requests end with
    /// `model_unloaded`.
    closed: AtomicBool,
    report: Mutex<RemoteReport>,
}

impl RemoteModel {
    /// A connection to `backend` (nothing is sent yet). Fails only when the key's environment
    /// variable is named but not set.
    pub(crate) fn new(
        persona: Persona,
        backend: &RemoteBackend,
        config: &ModelConfig,
        sink: Option<RequestSink>,
    ) -> Result<Arc<RemoteModel>> {
        let api_key = match &backend.api_key_env {
            None => None,
            Some(variable) => match std::env::var(variable) {
                Ok(key) if !key.trim().is_empty() => Some(key.trim().to_owned()),
                _ => {
                    return Err(Error::Engine(EngineError::RemoteKeyMissing {
                        persona: persona.as_str(),
                        variable: variable.clone(),
                    }))
                }
            },
        };
        let timeout = Duration::from_secs(u64::from(backend.timeout_s));
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(timeout))
            // The supervisor times the silence of an accepted answer; a read gives up a little
            // later, so that a thread it left behind still ends.
            .timeout_per_read(Some(timeout + Duration::from_secs(1)))
            .user_agent(format!("deskmate/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        let report = RemoteReport {
            persona,
            base_url: backend.base_url.clone(),
            host: backend.host().to_owned(),
            model: backend.model.clone(),
            parallel: config.parallel,
            max_requests: (config.parallel + config.max_queue).max(1),
            timeout_s: backend.timeout_s,
            uses_key: api_key.is_some(),
            check: RemoteCheck {
                checked_at: now_ms(),
                answers: false,
                latency_ms: None,
                model_listed: None,
                models: Vec::new(),
                error: Some("not checked yet".to_owned()),
            },
        };
        Ok(Arc::new(RemoteModel {
            persona,
            backend: backend.clone(),
            api_key,
            agent,
            stats: Stats::new(config.parallel as usize),
            sink,
            slots: config.parallel as usize,
            limit: (config.parallel + config.max_queue).max(1) as usize,
            running: Mutex::new(0),
            closed: AtomicBool::new(false),
            report: Mutex::new(report),
        }))
    }

    pub(crate) fn report(&self) -> RemoteReport {
        self.report
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn backend(&self) -> &RemoteBackend {
        &self.backend
    }

    /// Asks the server for its models (one attempt, [`CHECK_TIMEOUT`]) and keeps the answer in
    /// the report.
    pub(crate) fn check(&self) -> RemoteReport {
        let started = Instant::now();
        let url = format!("{}/models", self.backend.base());
        let answer = self
            .authorized(self.agent.get(&url))
            .config()
            .timeout_global(Some(CHECK_TIMEOUT))
            .build()
            .call();
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let check = match answer {
            Ok(response) if response.status().is_success() => {
                let listed = read_limited(response.into_body().into_reader(), MAX_BODY_BYTES)
                    .ok()
                    .and_then(|body| serde_json::from_slice::<Value>(&body).ok())
                    .and_then(|v| {
                        v.get("data").and_then(Value::as_array).map(|models| {
                            models
                                .iter()
                                .filter_map(|m| m.get("id").and_then(Value::as_str))
                                .map(str::to_owned)
                                .collect::<Vec<_>>()
                        })
                    });
                match listed {
                    Some(models) => RemoteCheck {
                        checked_at: now_ms(),
                        answers: true,
                        latency_ms: Some(latency_ms),
                        model_listed: Some(models.contains(&self.backend.model)),
                        models: models.into_iter().take(20).collect(),
                        error: None,
                    },
                    None => failed_check(
                        "it answered, but not with an OpenAI model list (is base_url the API's /v1 address?)",
                    ),
                }
            }
            Ok(response) => {
                let status = response.status().as_u16();
                failed_check(&format!(
                    "HTTP {status}: {}",
                    error_message(response.into_body().into_reader())
                ))
            }
            Err(e) => failed_check(&e.to_string()),
        };
        let mut report = self.report.lock().unwrap_or_else(PoisonError::into_inner);
        report.check = check;
        report.clone()
    }

    fn authorized<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.api_key {
            Some(key) => request.header("Authorization", format!("Bearer {key}")),
            None => request,
        }
    }

    /// Running requests end with `model_unloaded`; new ones are refused.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// Starts a request on a thread of its own, or refuses it at once (`busy` when
    /// `parallel + max_queue` are running).
    pub(crate) fn submit(
        self: &Arc<Self>,
        request: ChatRequest,
        cancel: CancelToken,
    ) -> Result<Generation> {
        let persona = self.persona.as_str();
        if self.closed.load(Ordering::Relaxed) {
            return Err(Error::Engine(EngineError::ModelUnloaded { persona }));
        }
        if request.local_only {
            return Err(Error::Engine(EngineError::RemoteError {
                persona,
                host: self.backend.host().to_owned(),
                status: None,
                message: "not sent: the request quotes documents, which stay on this machine unless documents.allow_remote is on".to_owned(),
            }));
        }
        // Images never leave this machine (the persona reports no vision support, so the chat
        // attaches none; this holds should the persona have moved to a server meanwhile).
        if request.messages.iter().any(|m| !m.images.is_empty()) {
            return Err(Error::Vision(
                crate::error::VisionError::VisionUnavailable {
                    persona,
                    reason: format!(
                        "it runs on the server {}, and images are not sent there",
                        self.backend.host()
                    ),
                },
            ));
        }
        let place = {
            let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            if *running >= self.limit {
                let queued = running.saturating_sub(self.slots);
                drop(running);
                self.account(now_ms(), Instant::now(), Outcome::Busy, None, (0, 0, 0));
                return Err(Error::Engine(EngineError::Busy { persona, queued }));
            }
            *running += 1;
            self.publish_load(*running);
            Place(Arc::clone(self))
        };
        let (events, receiver) = unbounded_channel();
        let model = Arc::clone(self);
        let token = cancel.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("deskmate-remote-{persona}"))
            .spawn(move || {
                // Freed however the request ends, a panic included.
                let _place = place;
                let job = Job {
                    request,
                    events,
                    cancel: token,
                    submitted: Instant::now(),
                    submitted_at_ms: now_ms(),
                };
                model.run(job);
            });
        // A thread that did not start dropped its closure, and with it the place.
        spawned.map_err(|e| Error::Internal {
            what: "a request thread",
            reason: e.to_string(),
        })?;
        Ok(Generation::new(receiver, cancel))
    }

    fn publish_load(&self, running: usize) {
        self.stats
            .set_load(running.saturating_sub(self.slots), running.min(self.slots));
    }

    fn run(self: &Arc<Self>, job: Job) {
        let mut stream = ReplyStream::new(sampling_of(&job.request));
        let result = self.stream_reply(&job, &mut stream);
        self.note_answer(&result);
        let (event, outcome, timings) = match result {
            Ok(reason) => {
                let (tail, reason) = stream.finish(reason);
                if !tail.is_empty() {
                    let _ = job.events.send(GenerationEvent::Text(tail));
                }
                let timings = stream.timings(&job);
                let outcome = if reason == FinishReason::Cancelled {
                    Outcome::Cancelled
                } else {
                    Outcome::Succeeded
                };
                let completion = Completion {
                    text: stream.text.clone(),
                    finish_reason: reason,
                    prompt_tokens: stream.prompt_tokens(),
                    cached_tokens: stream.cached_tokens,
                    restored_tokens: 0,
                    completion_tokens: stream.completion_tokens(),
                    dropped_turns: 0,
                    timings,
                };
                (
                    GenerationEvent::Finished(completion),
                    outcome,
                    Some(timings),
                )
            }
            Err(e) => {
                let outcome = Outcome::Failed(e.code());
                (GenerationEvent::Failed(e), outcome, None)
            }
        };
        self.account(
            job.submitted_at_ms,
            job.submitted,
            outcome,
            timings,
            (
                stream.prompt_tokens(),
                stream.cached_tokens,
                stream.completion_tokens(),
            ),
        );
        let _ = job.events.send(event);
    }

    /// Keeps "does the server answer" (the Models page, `deskmate models`) as the last request
    /// found it: a reply means yes, a server that cannot be reached or stays silent means no.
    fn note_answer(&self, result: &Result<FinishReason>) {
        let answers = match result {
            Ok(FinishReason::Cancelled) => return,
            Ok(_) => None,
            Err(e @ Error::Engine(EngineError::RemoteUnreachable { .. }))
            | Err(e @ Error::Engine(EngineError::RemoteTimeout { .. })) => Some(e.to_string()),
            Err(_) => return,
        };
        let mut report = self.report.lock().unwrap_or_else(PoisonError::into_inner);
        report.check.checked_at = now_ms();
        report.check.answers = answers.is_none();
        if answers.is_some() {
            report.check.latency_ms = None;
        }
        report.check.error = answers;
    }

    /// `tokens`: prompt, cached and completion tokens.
    fn account(
        &self,
        started_at_ms: i64,
        submitted: Instant,
        outcome: Outcome,
        timings: Option<Timings>,
        tokens: (usize, usize, usize),
    ) {
        let (prompt_tokens, cached_tokens, completion_tokens) = tokens;
        stats::account(
            &self.stats,
            self.sink.as_ref(),
            stats::Ended {
                model: &self.backend.model,
                persona: self.persona.as_str(),
                started_at_ms,
                elapsed_ms: submitted.elapsed().as_secs_f64() * 1000.0,
                outcome,
                timings,
                prompt_tokens,
                cached_tokens,
                completion_tokens,
            },
        );
    }

    /// Sends the request (on the I/O thread) and follows its reply to the end; `Ok` with how
    /// it ended (the text is in `stream`).
    fn stream_reply(self: &Arc<Self>, job: &Job, stream: &mut ReplyStream) -> Result<FinishReason> {
        let body = serde_json::to_vec(&request_body(
            &self.backend.model,
            &job.request,
            &stream.sampling,
        ))
        .map_err(|e| Error::Internal {
            what: "the request body",
            reason: e.to_string(),
        })?;
        let (io_tx, io) = mpsc::channel();
        let model = Arc::clone(self);
        let cancel = job.cancel.clone();
        std::thread::Builder::new()
            .name(format!("deskmate-remote-io-{}", self.persona.as_str()))
            .spawn(move || model.io(&body, &cancel, &io_tx))
            .map_err(|e| Error::Internal {
                what: "the remote I/O thread",
                reason: e.to_string(),
            })?;
        let timeout = Duration::from_secs(u64::from(self.backend.timeout_s));
        // Until the server accepts, the I/O thread's own limits apply (connecting, retries,
        // `timeout_s` for the answer's head); from then on, silence is timed here.
        let mut last_heard: Option<Instant> = None;
        loop {
            if job.cancel.is_cancelled() {
                return Ok(FinishReason::Cancelled);
            }
            if self.closed.load(Ordering::Relaxed) {
                return Err(Error::Engine(EngineError::ModelUnloaded {
                    persona: self.persona.as_str(),
                }));
            }
            let message = match io.recv_timeout(POLL) {
                Ok(message) => message,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if last_heard.is_some_and(|t| t.elapsed() > timeout) {
                        return Err(self.timeout());
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // It stops by itself only once cancelled or unloaded (seen at the top).
                    if job.cancel.is_cancelled() || self.closed.load(Ordering::Relaxed) {
                        continue;
                    }
                    return Err(self.protocol("the connection's thread stopped"));
                }
            };
            last_heard = Some(Instant::now());
            match message {
                Io::Accepted => {
                    stream.started = Some(Instant::now());
                    let _ = job.events.send(GenerationEvent::Started {
                        prompt_tokens: 0,
                        cached_tokens: 0,
                        restored_tokens: 0,
                        dropped_turns: 0,
                    });
                }
                Io::Data(data) if data == "[DONE]" => {
                    return Ok(stream.reason.unwrap_or(FinishReason::Stop));
                }
                Io::Data(data) => {
                    let value: Value = serde_json::from_str(&data)
                        .map_err(|e| self.protocol(&format!("an event is not JSON: {e}")))?;
                    match stream.apply(&value, &job.events) {
                        Step::More => {}
                        // A stop string cut the text: the rest of the stream is not needed.
                        Step::End(reason) => return Ok(reason),
                        Step::Failed(message) => return Err(self.protocol(&message)),
                    }
                }
                // A server that ignores `stream: true` sends the whole answer at once.
                Io::Whole(body) => {
                    let value: Value = serde_json::from_slice(&body)
                        .map_err(|e| self.protocol(&format!("the answer is not JSON: {e}")))?;
                    return match stream.apply(&value, &job.events) {
                        Step::More => Ok(stream.reason.unwrap_or(FinishReason::Stop)),
                        Step::End(reason) => Ok(reason),
                        Step::Failed(message) => Err(self.protocol(&message)),
                    };
                }
                // Some servers close without `[DONE]` after the last choice.
                Io::End => {
                    return match stream.reason {
                        Some(reason) => Ok(reason),
                        None => Err(self.protocol("the stream ended before the reply did")),
                    };
                }
                Io::Failed(e) => return Err(e),
            }
        }
    }

    /// The I/O thread: posts the request, trying again while the server cannot be reached or
    /// says it is not ready (502, 503), then reads the answer into `to`. Stops as soon as the
    /// supervisor has gone (the channel is closed), cancelled, or the persona was unloaded.
    fn io(&self, body: &[u8], cancel: &CancelToken, to: &mpsc::Sender<Io>) {
        let url = format!("{}/chat/completions", self.backend.base());
        let left = || cancel.is_cancelled() || self.closed.load(Ordering::Relaxed);
        let mut last_reason = String::new();
        for attempt in 1..=CONNECT_ATTEMPTS {
            if left() {
                return;
            }
            let request = self
                .authorized(self.agent.post(&url))
                .header("Accept", "text/event-stream")
                .header("Content-Type", "application/json");
            let failure = match request.send(body) {
                Ok(response) if response.status().is_success() => {
                    if to.send(Io::Accepted).is_ok() {
                        self.read_answer(response, to);
                    }
                    return;
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    let message = error_message(response.into_body().into_reader());
                    if !matches!(status, 502 | 503) {
                        let _ = to.send(Io::Failed(Error::Engine(EngineError::RemoteError {
                            persona: self.persona.as_str(),
                            host: self.backend.host().to_owned(),
                            status: Some(status),
                            message,
                        })));
                        return;
                    }
                    format!("HTTP {status}: {message}")
                }
                Err(ureq::Error::Timeout(ureq::Timeout::RecvResponse)) => {
                    let _ = to.send(Io::Failed(self.timeout()));
                    return;
                }
                Err(e) if never_reached_the_server(&e) => e.to_string(),
                Err(e) => {
                    let _ = to.send(Io::Failed(self.protocol(&e.to_string())));
                    return;
                }
            };
            last_reason = failure;
            if let Some(delay) = RETRY_DELAYS.get(attempt as usize - 1) {
                sleep_unless(*delay, left);
            }
        }
        let _ = to.send(Io::Failed(Error::Engine(EngineError::RemoteUnreachable {
            persona: self.persona.as_str(),
            host: self.backend.host().to_owned(),
            attempts: CONNECT_ATTEMPTS,
            reason: last_reason,
        })));
    }

    /// Reads an accepted answer: the events of a stream one by one, or a whole JSON answer.
    fn read_answer(&self, response: ureq::http::Response<ureq::Body>, to: &mpsc::Sender<Io>) {
        let streamed = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/event-stream"));
        let reader = response.into_body().into_reader();
        if !streamed {
            let _ = to.send(match read_limited(reader, MAX_BODY_BYTES) {
                Ok(body) => Io::Whole(body),
                Err(e) => Io::Failed(self.protocol(&e)),
            });
            return;
        }
        let mut events = SseEvents::default();
        let mut reader = BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let read = (&mut reader)
                .take(MAX_LINE_BYTES)
                .read_until(b'\n', &mut buf);
            match read {
                Ok(0) => {
                    if let Some(data) = events.finish() {
                        if to.send(Io::Data(data)).is_err() {
                            return;
                        }
                    }
                    let _ = to.send(Io::End);
                    return;
                }
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    for data in events.line(line.trim_end_matches(['\n', '\r'])) {
                        // The supervisor has gone: dropping the reader closes the connection.
                        if to.send(Io::Data(data)).is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let error = if is_timeout(&e) {
                        self.timeout()
                    } else {
                        self.protocol(&format!("the connection broke: {e}"))
                    };
                    let _ = to.send(Io::Failed(error));
                    return;
                }
            }
        }
    }

    fn timeout(&self) -> Error {
        Error::Engine(EngineError::RemoteTimeout {
            persona: self.persona.as_str(),
            host: self.backend.host().to_owned(),
            seconds: self.backend.timeout_s,
        })
    }

    fn protocol(&self, message: &str) -> Error {
        Error::Engine(EngineError::RemoteError {
            persona: self.persona.as_str(),
            host: self.backend.host().to_owned(),
            status: None,
            message: message.to_owned(),
        })
    }
}

fn failed_check(reason: &str) -> RemoteCheck {
    RemoteCheck {
        checked_at: now_ms(),
        answers: false,
        latency_ms: None,
        model_listed: None,
        models: Vec::new(),
        error: Some(reason.to_owned()),
    }
}

/// Whether the request certainly never reached the server, so sending it again cannot make the
/// server do the work twice.
fn never_reached_the_server(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => true,
        ureq::Error::Timeout(t) => matches!(t, ureq::Timeout::Connect | ureq::Timeout::Resolve),
        ureq::Error::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotConnected
        ),
        _ => false,
    }
}

/// Whether a failed read ran out of time (ureq reports its own timeouts inside the I/O error).
fn is_timeout(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::TimedOut
        || e.get_ref()
            .and_then(|inner| inner.downcast_ref::<ureq::Error>())
            .is_some_and(|inner| matches!(inner, ureq::Error::Timeout(_)))
}

/// Sleeps `delay`, waking early once `stop` says so.
fn sleep_unless(delay: Duration, stop: impl Fn() -> bool) {
    let until = Instant::now() + delay;
    while Instant::now() < until && !stop() {
        std::thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
    }
}

/// A request's place among the `parallel + max_queue` that may run at once; dropping it frees
/// the place.
struct Place(Arc<RemoteModel>);

impl Drop for Place {
    fn drop(&mut self) {
        let mut running = self
            .0
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *running = running.saturating_sub(1);
        self.0.publish_load(*running);
    }
}

/// What the I/O thread tells the supervisor.
enum Io {
    /// The server accepted the request; its answer follows.
    Accepted,
    /// The data of one server-sent event.
    Data(String),
    /// An answer that was not streamed.
    Whole(Vec<u8>),
    /// The stream ended.
    End,
    Failed(Error),
}

/// Server-sent events out of lines: `data:` lines up to a blank line make one event (joined
/// with newlines, as the format says). A server that leaves out the blank lines still works:
/// a `data:` line that follows a complete JSON value starts a new event. The data of an
/// `event: error` that is not JSON becomes an OpenAI error object carrying it.
#[derive(Default)]
struct SseEvents {
    data: Option<String>,
    error_event: bool,
}

impl SseEvents {
    /// Takes one line (without its end); returns the events it completes.
    fn line(&mut self, line: &str) -> Vec<String> {
        let mut out = Vec::new();
        if line.is_empty() {
            out.extend(self.finish());
            return out;
        }
        if let Some(value) = line.strip_prefix("data:") {
            let value = value.strip_prefix(' ').unwrap_or(value);
            if self.data.as_deref().is_some_and(is_complete) {
                out.extend(self.finish());
            }
            match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            }
        } else if let Some(name) = line.strip_prefix("event:") {
            // Without blank lines, a field line after complete data starts the next event.
            if self.data.as_deref().is_some_and(is_complete) {
                out.extend(self.finish());
            }
            self.error_event = name.trim() == "error";
        }
        // Comments (`: ping`), `id:` and `retry:` carry nothing for us.
        out
    }

    /// The event being gathered, if any (at a blank line or the end of the stream).
    fn finish(&mut self) -> Option<String> {
        let data = self.data.take()?;
        let error_event = std::mem::take(&mut self.error_event);
        if error_event && serde_json::from_str::<Value>(&data).is_err() {
            return Some(json!({ "error": { "message": data } }).to_string());
        }
        Some(data)
    }
}

fn is_complete(data: &str) -> bool {
    data == "[DONE]" || serde_json::from_str::<serde::de::IgnoredAny>(data).is_ok()
}

struct Job {
    request: ChatRequest,
    events: UnboundedSender<GenerationEvent>,
    cancel: CancelToken,
    submitted: Instant,
    submitted_at_ms: i64,
}

/// The request's sampling: its own, else the defaults (the caller passes the persona's).
fn sampling_of(request: &ChatRequest) -> Sampling {
    request.sampling.clone().unwrap_or_default()
}

/// The OpenAI request body. Only the standard sampling fields are sent (`top_k`, `min_p` and
/// the repeat penalty are not part of the protocol; each server applies its own defaults).
pub(crate) fn request_body(model: &str, request: &ChatRequest, sampling: &Sampling) -> Value {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|m| json!({ "role": m.role.as_str(), "content": m.content }))
        .collect();
    let mut body = json!({
        "model": model,
        "messages": messages,
        "stream": true,
        "stream_options": { "include_usage": true },
        "max_tokens": sampling.max_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
    });
    if let Some(seed) = sampling.seed {
        body["seed"] = json!(seed);
    }
    if !sampling.stop.is_empty() {
        body["stop"] = json!(sampling.stop);
    }
    body
}

/// The reply as it streams in: text (cut at the configured stop strings, which the server
/// should apply too), how it ended, and the usage the server reports.
struct ReplyStream {
    sampling: Sampling,
    stops: StopScanner,
    text: String,
    reason: Option<FinishReason>,
    /// Pieces of text received: the token count when the server reports no usage.
    pieces: usize,
    usage_prompt: Option<usize>,
    usage_completion: Option<usize>,
    cached_tokens: usize,
    started: Option<Instant>,
    first_text: Option<Instant>,
    last_text: Option<Instant>,
}

enum Step {
    More,
    End(FinishReason),
    Failed(String),
}

impl ReplyStream {
    fn new(sampling: Sampling) -> ReplyStream {
        ReplyStream {
            stops: StopScanner::new(&sampling.stop),
            sampling,
            text: String::new(),
            reason: None,
            pieces: 0,
            usage_prompt: None,
            usage_completion: None,
            cached_tokens: 0,
            started: None,
            first_text: None,
            last_text: None,
        }
    }

    /// Takes one chunk (or a whole non-streamed answer).
    fn apply(&mut self, value: &Value, events: &UnboundedSender<GenerationEvent>) -> Step {
        if let Some(error) = value.get("error") {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| error.to_string(), str::to_owned);
            return Step::Failed(message);
        }
        if let Some(usage) = value.get("usage").filter(|u| u.is_object()) {
            let count = |key: &str| usage.get(key).and_then(Value::as_u64).map(|n| n as usize);
            self.usage_prompt = count("prompt_tokens").or(self.usage_prompt);
            self.usage_completion = count("completion_tokens").or(self.usage_completion);
            if let Some(cached) = usage
                .pointer("/prompt_tokens_details/cached_tokens")
                .and_then(Value::as_u64)
            {
                self.cached_tokens = cached as usize;
            }
        }
        let Some(choice) = value
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
        else {
            // The usage chunk has no choices; anything else without them is not a reply.
            return if value.get("usage").is_some() || value.get("object").is_some() {
                Step::More
            } else {
                Step::Failed(format!(
                    "unexpected event: {}",
                    truncate(&value.to_string())
                ))
            };
        };
        let content = choice
            .pointer("/delta/content")
            .or_else(|| choice.pointer("/message/content"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !content.is_empty() {
            let now = Instant::now();
            self.first_text.get_or_insert(now);
            self.last_text = Some(now);
            self.pieces += 1;
            match self.stops.push(content) {
                Scan::Continue(shown) => self.emit(shown, events),
                Scan::Stop(shown) => {
                    self.emit(shown, events);
                    self.reason = Some(FinishReason::StopString);
                    return Step::End(FinishReason::StopString);
                }
            }
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.reason = Some(match reason {
                "length" => FinishReason::Length,
                _ => FinishReason::Stop,
            });
        }
        Step::More
    }

    fn emit(&mut self, shown: String, events: &UnboundedSender<GenerationEvent>) {
        if !shown.is_empty() {
            self.text.push_str(&shown);
            let _ = events.send(GenerationEvent::Text(shown));
        }
    }

    /// Releases text held back as a possible stop string; `reason` unless a stop string ended
    /// the text.
    fn finish(&mut self, reason: FinishReason) -> (String, FinishReason) {
        if reason == FinishReason::StopString {
            return (String::new(), reason);
        }
        let tail = self.stops.finish();
        self.text.push_str(&tail);
        (tail, reason)
    }

    fn prompt_tokens(&self) -> usize {
        self.usage_prompt.unwrap_or(0)
    }

    fn completion_tokens(&self) -> usize {
        self.usage_completion.unwrap_or(self.pieces)
    }

    /// Timings as the local engine reports them. The server's queue and the network are part
    /// of "reading the prompt": from here, they cannot be told apart.
    fn timings(&self, job: &Job) -> Timings {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let now = Instant::now();
        let total_ms = ms(now.duration_since(job.submitted));
        let ttft_ms = self.first_text.map(|t| ms(t.duration_since(job.submitted)));
        let generation_ms = match (self.first_text, self.last_text) {
            (Some(first), Some(last)) => ms(last.duration_since(first)),
            _ => 0.0,
        };
        let prompt_ms = ttft_ms.unwrap_or(total_ms);
        let generated = self.completion_tokens();
        Timings {
            queue_ms: 0.0,
            ttft_ms,
            prompt_ms,
            generation_ms,
            total_ms,
            prompt_tokens_per_s: self
                .usage_prompt
                .filter(|_| prompt_ms > 0.0)
                .map(|n| n as f64 * 1000.0 / prompt_ms),
            // The first token arrives at ttft; the rest take generation_ms.
            generation_tokens_per_s: (generated > 1 && generation_ms > 0.0)
                .then(|| (generated - 1) as f64 * 1000.0 / generation_ms),
            // How the server decodes is not visible from here.
            ..Timings::default()
        }
    }
}

fn read_limited(reader: impl Read, limit: u64) -> std::result::Result<Vec<u8>, String> {
    let mut body = Vec::new();
    reader
        .take(limit)
        .read_to_end(&mut body)
        .map_err(|e| format!("reading the answer failed: {e}"))?;
    Ok(body)
}

/// The message of an OpenAI-shaped error body, else the start of the body as text.
fn error_message(reader: impl Read) -> String {
    let body = read_limited(reader, 64 * 1024).unwrap_or_default();
    if let Ok(value) = serde_json::from_slice::<Value>(&body) {
        let message = value
            .pointer("/error/message")
            .or_else(|| value.get("error"))
            .or_else(|| value.get("message"))
            .and_then(Value::as_str);
        if let Some(message) = message {
            return truncate(message);
        }
    }
    let text = String::from_utf8_lossy(&body);
    if text.trim().is_empty() {
        "no details given".to_owned()
    } else {
        truncate(text.trim())
    }
}

fn truncate(text: &str) -> String {
    const MAX: usize = 300;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::engine::ChatMessage;
    use crate::store::Role;

    /// A connection to `base_url` with the default limits and no request log.
    fn model_at(persona: Persona, base_url: &str) -> Arc<RemoteModel> {
        RemoteModel::new(persona, &backend(base_url), &ModelConfig::default(), None).unwrap()
    }

    fn backend(base_url: &str) -> RemoteBackend {
        RemoteBackend {
            kind: crate::config::RemoteKind::Openai,
            base_url: base_url.to_owned(),
            model: "m".to_owned(),
            api_key_env: None,
            timeout_s: 2,
        }
    }

    #[test]
    fn the_body_carries_the_conversation_and_the_standard_sampling_only() {
        let request = ChatRequest {
            messages: vec![
                ChatMessage::new(Role::System, "be brief"),
                ChatMessage::new(Role::User, "안녕"),
            ],
            sampling: None,
            ignore_eos: false,
            local_only: false,
        };
        let sampling = Sampling {
            seed: Some(7),
            stop: vec!["END".into()],
            ..Sampling::default()
        };
        let body = request_body("big", &request, &sampling);
        assert_eq!(body["model"], "big");
        assert_eq!(body["messages"][1]["content"], "안녕");
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["seed"], 7);
        assert_eq!(body["stop"][0], "END");
        assert!(body.get("top_k").is_none() && body.get("min_p").is_none());
    }

    #[test]
    fn chunks_become_text_a_finish_reason_and_usage() {
        let (events, mut receiver) = unbounded_channel();
        let mut stream = ReplyStream::new(Sampling::default());
        let chunks = [
            json!({"choices":[{"delta":{"role":"assistant"}}]}),
            json!({"choices":[{"delta":{"content":"안"}}]}),
            json!({"choices":[{"delta":{"content":"녕"}, "finish_reason": null}]}),
            json!({"choices":[{"delta":{}, "finish_reason":"length"}]}),
            json!({"choices":[], "usage":{"prompt_tokens":12,"completion_tokens":2}}),
        ];
        for chunk in &chunks {
            assert!(matches!(stream.apply(chunk, &events), Step::More));
        }
        assert_eq!(stream.text, "안녕");
        assert_eq!(stream.reason, Some(FinishReason::Length));
        assert_eq!(
            (stream.prompt_tokens(), stream.completion_tokens()),
            (12, 2)
        );
        let mut pieces = Vec::new();
        while let Ok(GenerationEvent::Text(t)) = receiver.try_recv() {
            pieces.push(t);
        }
        assert_eq!(pieces, ["안", "녕"]);
    }

    #[test]
    fn a_stop_string_split_over_chunks_is_never_shown_and_ends_the_reply() {
        let (events, _receiver) = unbounded_channel();
        let sampling = Sampling {
            stop: vec!["<END>".into()],
            ..Sampling::default()
        };
        let mut stream = ReplyStream::new(sampling);
        assert!(matches!(
            stream.apply(
                &json!({"choices":[{"delta":{"content":"done <E"}}]}),
                &events
            ),
            Step::More
        ));
        assert_eq!(stream.text, "done ");
        assert!(matches!(
            stream.apply(
                &json!({"choices":[{"delta":{"content":"ND> more"}}]}),
                &events
            ),
            Step::End(FinishReason::StopString)
        ));
        assert_eq!(stream.text, "done ");
    }

    #[test]
    fn an_error_event_and_a_foreign_event_fail_the_reply() {
        let (events, _receiver) = unbounded_channel();
        let mut stream = ReplyStream::new(Sampling::default());
        assert!(matches!(
            stream.apply(&json!({"error":{"message":"context too long"}}), &events),
            Step::Failed(m) if m == "context too long"
        ));
        assert!(matches!(
            stream.apply(&json!({"hello":"world"}), &events),
            Step::Failed(_)
        ));
    }

    #[test]
    fn a_non_streamed_answer_is_taken_whole() {
        let (events, _receiver) = unbounded_channel();
        let mut stream = ReplyStream::new(Sampling::default());
        let answer = json!({
            "object": "chat.completion",
            "choices": [{"message": {"role":"assistant","content":"네"}, "finish_reason":"stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1}
        });
        assert!(matches!(stream.apply(&answer, &events), Step::More));
        assert_eq!(stream.text, "네");
        assert_eq!(stream.reason, Some(FinishReason::Stop));
    }

    #[test]
    fn a_named_key_variable_that_is_not_set_is_refused_by_name() {
        let mut b = backend("http://127.0.0.1:9/v1");
        b.api_key_env = Some("DESKMATE_TEST_SURELY_UNSET_KEY".into());
        let err = RemoteModel::new(Persona::Office, &b, &ModelConfig::default(), None)
            .err()
            .unwrap();
        assert_eq!(err.code(), "remote_key_missing");
        assert!(err.to_string().contains("DESKMATE_TEST_SURELY_UNSET_KEY"));
    }

    #[test]
    fn a_request_quoting_documents_is_never_sent_to_a_server() {
        let model = model_at(Persona::Office, &stalling_server());
        let request = ChatRequest {
            local_only: true,
            ..ChatRequest::default()
        };
        let err = model.submit(request, CancelToken::default()).err().unwrap();
        assert_eq!(err.code(), "remote_error");
        assert!(err.to_string().contains("documents.allow_remote"), "{err}");
        assert_eq!(model.stats.snapshot().requests, 0, "nothing was sent");
    }

    #[test]
    fn connect_failures_are_retried_then_reported_unreachable() {
        // Port 9 (discard) on loopback: nothing listens, so each attempt is refused at once.
        let model = model_at(Persona::Office, "http://127.0.0.1:9/v1");
        let started = Instant::now();
        let generation = model
            .submit(ChatRequest::default(), CancelToken::default())
            .unwrap();
        let err = generation.wait(|_| {}).unwrap_err();
        assert_eq!(err.code(), "remote_unreachable", "{err}");
        assert!(err.to_string().contains("127.0.0.1:9"), "{err}");
        assert!(err
            .to_string()
            .contains(&format!("{CONNECT_ATTEMPTS} attempt")));
        // Both retry delays were waited.
        assert!(started.elapsed() >= RETRY_DELAYS.iter().sum::<Duration>());
        let stats = model.stats.snapshot();
        assert_eq!(stats.failed.get("remote_unreachable"), Some(&1));
        assert!(!model.check().check.answers);
    }

    /// A server that answers with one piece of text and then stays silent: what a stalled
    /// GPU server or a broken network looks like from here. Returns its base URL.
    fn stalling_server() -> String {
        stalling_server_that(true)
    }

    /// `answers`: whether it sends the head of its answer and one piece of text before going
    /// silent, or says nothing at all.
    fn stalling_server_that(answers: bool) -> String {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/v1", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                std::thread::spawn(move || {
                    let mut request = Vec::new();
                    let mut byte = [0u8; 1];
                    while !request.ends_with(b"\r\n\r\n") {
                        if stream.read(&mut byte).unwrap_or(0) == 0 {
                            return;
                        }
                        request.push(byte[0]);
                    }
                    let chunk = r#"data: {"choices":[{"delta":{"content":"hi"}}]}"#;
                    if !answers {
                        std::thread::sleep(Duration::from_secs(30));
                        return;
                    }
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{chunk}\n\n\r\n",
                        chunk.len() + 2
                    );
                    let _ = stream.flush();
                    std::thread::sleep(Duration::from_secs(30));
                });
            }
        });
        base
    }

    #[test]
    fn a_server_silent_past_its_timeout_ends_the_reply_with_a_clear_error_keeping_the_text() {
        let model = model_at(Persona::Character, &stalling_server());
        let started = Instant::now();
        let mut text = String::new();
        let err = model
            .submit(ChatRequest::default(), CancelToken::default())
            .unwrap()
            .wait(|t| text.push_str(t))
            .unwrap_err();
        assert_eq!(err.code(), "remote_timeout", "{err}");
        assert!(err.to_string().contains("timeout_s"), "{err}");
        assert_eq!(text, "hi");
        // timeout_s is 2: not a hang, and not before the limit.
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(2) && waited < Duration::from_secs(10),
            "{waited:?}"
        );
    }

    #[test]
    fn a_cancelled_reply_ends_at_once_even_while_the_server_is_silent() {
        let model = model_at(Persona::Office, &stalling_server());
        let mut generation = model
            .submit(ChatRequest::default(), CancelToken::default())
            .unwrap();
        let cancel = generation.cancel_token();
        loop {
            match generation.blocking_next() {
                Some(GenerationEvent::Text(t)) => {
                    assert_eq!(t, "hi");
                    break;
                }
                Some(GenerationEvent::Started { .. }) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        let cancelled_at = Instant::now();
        cancel.cancel();
        match generation.blocking_next() {
            Some(GenerationEvent::Finished(c)) => {
                assert_eq!(c.finish_reason, FinishReason::Cancelled);
                assert_eq!(c.text, "hi");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(cancelled_at.elapsed() < Duration::from_secs(1));
        let stats = model.stats.snapshot();
        assert_eq!((stats.requests, stats.cancelled), (1, 1));
    }

    #[test]
    fn a_reply_is_cancelled_at_once_even_before_the_server_answers_at_all() {
        let model = model_at(Persona::Office, &stalling_server_that(false));
        let generation = model
            .submit(ChatRequest::default(), CancelToken::default())
            .unwrap();
        let cancel = generation.cancel_token();
        std::thread::sleep(Duration::from_millis(300));
        let cancelled_at = Instant::now();
        cancel.cancel();
        let done = generation.wait(|_| {}).unwrap();
        assert_eq!(done.finish_reason, FinishReason::Cancelled);
        assert!(cancelled_at.elapsed() < Duration::from_secs(1));
        // The place is free again.
        assert_eq!(model.stats.snapshot().active_slots, 0);
    }

    #[test]
    fn server_sent_events_are_gathered_as_the_format_says_and_as_servers_send_them() {
        let mut sse = SseEvents::default();
        let mut got = Vec::new();
        for line in [
            ": ping",
            "data: {\"a\":",
            "data: 1}",
            "",
            "data: {\"b\":2}",
            "data: {\"c\":3}",
            "event: error",
            "data: model crashed",
            "",
            "data: [DONE]",
        ] {
            got.extend(sse.line(line));
        }
        got.extend(sse.finish());
        assert_eq!(
            got,
            [
                "{\"a\":\n1}",
                "{\"b\":2}",
                "{\"c\":3}",
                r#"{"error":{"message":"model crashed"}}"#,
                "[DONE]"
            ]
        );
    }
}
