//! The handlers and the two middlewares (the key, the request log). Each handler parses the
//! OpenAI request, calls one `App` method on the blocking pool and writes OpenAI's response.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{FromRequest, Request, State};
use axum::http::{header, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use deskmate_core::app::{ApiChat, ApiChatRequest, ApiKey};
use deskmate_core::engine::{ChatMessage, Completion, FinishReason, GenerationEvent};
use deskmate_core::error::{EngineError, ErrorCode};
use deskmate_core::store::{now_ms, MessageSource, Persona, RequestOutcome, RequestRecord, Role};
use deskmate_core::Error;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{ApiError, LoggedCode};
use crate::Api;

/// The embedding model's id in `/v1/embeddings` answers.
const EMBEDDING_MODEL: &str = "multilingual-e5-small";

/// Runs core work on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> deskmate_core::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal("a background task", e.to_string()))?
        .map_err(ApiError::from)
}

/// `Json<T>` whose rejections (malformed JSON, a wrong type, a body over the limit) are
/// OpenAI-shaped errors.
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = axum::extract::rejection::JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(ApiError::from_rejection(&rejection)),
        }
    }
}

// --- middlewares ---

/// Refuses a body whose declared length is over the limit before reading any of it, so the
/// client gets its 413 instead of a connection closed mid-upload (a body without a declared
/// length is cut off by the extractor's limit).
pub(crate) async fn refuse_large_bodies(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > crate::MAX_BODY_BYTES as u64) {
        return ApiError::too_large().into_response();
    }
    next.run(request).await
}

/// Lets a `/v1` request through only with `Authorization: Bearer <the key>`; the key (and so
/// its profile) goes with the request.
pub(crate) async fn require_key(
    State(api): State<Api>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|k| k.trim().to_owned());
    let Some(presented) = presented.filter(|k| !k.is_empty()) else {
        return ApiError::unauthorized(
            "no API key: send it as \"Authorization: Bearer KEY\" (see `deskmate api key`)",
        )
        .into_response();
    };
    let app = api.app.clone();
    match blocking(move || app.api_key_for(&presented)).await {
        Ok(Some(key)) => {
            request.extensions_mut().insert(key);
            next.run(request).await
        }
        Ok(None) => ApiError::unauthorized("the API key is not valid").into_response(),
        // The key file's trouble (unreadable, damaged) is for the user at this computer, not for
        // a client without a valid key: the details (paths) stay in the log.
        Err(e) => {
            tracing::warn!(error = %e.message, "the API key could not be checked");
            ApiError::internal("the API key", "see Deskmate's log".into()).into_response()
        }
    }
}

/// How a streamed answer ended, told by its task when it ends; the request log waits for it,
/// since the status line (200) was sent long before.
#[derive(Clone)]
pub(crate) struct StreamEnd(Arc<Mutex<Option<tokio::sync::oneshot::Receiver<Ended>>>>);

type Ended = (RequestOutcome, Option<ErrorCode>);

/// Held by a stream's task: sends `outcome` when the task ends, whichever way it returns (a
/// client that left is the default: cancelled).
struct EndGuard {
    tx: Option<tokio::sync::oneshot::Sender<Ended>>,
    outcome: Ended,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(self.outcome);
        }
    }
}

/// Records every request in the request log: its path as the model, its outcome, how long it
/// took. A streamed answer is recorded when its stream ends.
pub(crate) async fn log_request(State(api): State<Api>, request: Request, next: Next) -> Response {
    let started_at = now_ms();
    let started = Instant::now();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let stream_end = response
        .extensions()
        .get::<StreamEnd>()
        .and_then(|end| end.0.lock().unwrap_or_else(PoisonError::into_inner).take());
    if let Some(end) = stream_end {
        let app = api.app.clone();
        tokio::spawn(async move {
            let (outcome, code) = end.await.unwrap_or((RequestOutcome::Cancelled, None));
            let record = RequestRecord {
                model: format!("api {path}"),
                persona: None,
                started_at,
                outcome,
                error_code: code.map(|c| c.as_str().to_owned()),
                total_ms: Some(started.elapsed().as_millis() as i64),
                ..RequestRecord::default()
            };
            let _ = tokio::task::spawn_blocking(move || app.log_api_request(&record)).await;
        });
        return response;
    }
    let status = response.status();
    let code = response
        .extensions()
        .get::<LoggedCode>()
        .and_then(|c| c.0)
        .map(|c| c.as_str().to_owned());
    let outcome = if status.is_success() {
        RequestOutcome::Ok
    } else if status == StatusCode::TOO_MANY_REQUESTS {
        RequestOutcome::Busy
    } else {
        RequestOutcome::Error
    };
    let record = RequestRecord {
        model: format!("api {path}"),
        persona: None,
        started_at,
        outcome,
        error_code: code,
        total_ms: Some(started.elapsed().as_millis() as i64),
        ..RequestRecord::default()
    };
    let app = api.app.clone();
    tokio::task::spawn_blocking(move || app.log_api_request(&record));
    response
}

// --- handlers ---

pub(crate) async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(uri.path())
}

/// Whether each persona's model and the embeddings can serve now. Needs no key, so it says
/// nothing about the user's data: codes only, never messages (they name files).
pub(crate) async fn health(State(api): State<Api>) -> Json<Value> {
    let app = api.app.clone();
    let report = tokio::task::spawn_blocking(move || {
        let models: Vec<Value> = [Persona::Office, Persona::Character]
            .into_iter()
            .map(|p| match app.api_model_ready(p) {
                Ok(()) => json!({ "id": p.as_str(), "ready": true }),
                Err(e) => json!({ "id": p.as_str(), "ready": false, "error": e.code() }),
            })
            .collect();
        let embeddings = app.api_embeddings_ready().err().map(|e| e.code());
        json!({
            "status": "ok",
            "version": env!("CARGO_PKG_VERSION"),
            "models": models,
            "embeddings": { "ready": embeddings.is_none(), "error": embeddings },
        })
    })
    .await
    .unwrap_or_else(|e| json!({ "status": "error", "error": e.to_string() }));
    Json(report)
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) async fn models() -> Json<Value> {
    let created = unix_seconds();
    let data: Vec<Value> = [Persona::Office, Persona::Character]
        .into_iter()
        .map(|p| json!({ "id": p.as_str(), "object": "model", "created": created, "owned_by": "deskmate" }))
        .collect();
    Json(json!({ "object": "list", "data": data }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChatCompletionRequest {
    model: String,
    messages: Vec<InMessage>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    stop: Option<Stop>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    temperature: Option<f32>,
    seed: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct InMessage {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

fn persona_of(model: &str) -> Result<Persona, ApiError> {
    match model {
        "office" => Ok(Persona::Office),
        "character" => Ok(Persona::Character),
        other => Err(ApiError::model_not_found(other)),
    }
}

/// The conversation in the engine's terms; text parts only (images are not served yet).
fn messages_of(messages: Vec<InMessage>) -> Result<Vec<ChatMessage>, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::invalid("messages", "is empty".into()));
    }
    messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let role = match m.role.as_str() {
                "system" | "developer" => Role::System,
                "user" => Role::User,
                "assistant" => Role::Assistant,
                other => {
                    return Err(ApiError::invalid(
                        "messages",
                        format!("[{i}].role \"{other}\" is not supported (system, developer, user, assistant)"),
                    ))
                }
            };
            let content = match m.content {
                None => String::new(),
                Some(Content::Text(text)) => text,
                Some(Content::Parts(parts)) => {
                    let mut text = String::new();
                    for part in parts {
                        match (part.kind.as_str(), part.text) {
                            ("text", Some(t)) => text.push_str(&t),
                            (kind, _) => {
                                return Err(ApiError::invalid(
                                    "messages",
                                    format!("[{i}].content: parts of type \"{kind}\" are not supported (text only)"),
                                ))
                            }
                        }
                    }
                    text
                }
            };
            Ok(ChatMessage::new(role, content))
        })
        .collect()
}

/// OpenAI's finish reasons: a stop string ends like the model's own end.
fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop | FinishReason::StopString | FinishReason::Cancelled => "stop",
        FinishReason::Length => "length",
    }
}

fn usage(c: &Completion) -> Value {
    json!({
        "prompt_tokens": c.prompt_tokens,
        "completion_tokens": c.completion_tokens,
        "total_tokens": c.prompt_tokens + c.completion_tokens,
        "prompt_tokens_details": { "cached_tokens": c.cached_tokens },
    })
}

pub(crate) async fn chat_completions(
    State(api): State<Api>,
    Extension(key): Extension<ApiKey>,
    ApiJson(body): ApiJson<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    let persona = persona_of(&body.model)?;
    let request = ApiChatRequest {
        persona,
        messages: messages_of(body.messages)?,
        max_tokens: body.max_completion_tokens.or(body.max_tokens),
        temperature: body.temperature,
        seed: body.seed,
        stop: match body.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s],
            Some(Stop::Many(v)) => v,
        },
    };
    let app = api.app.clone();
    let chat = blocking(move || app.api_chat(&key, request)).await?;
    let id = format!("chatcmpl-{}", now_ms());
    let created = unix_seconds();
    if body.stream {
        let include_usage = body.stream_options.is_some_and(|o| o.include_usage);
        let (sse, end) = stream(chat, id, body.model, created, include_usage);
        let mut response = sse.into_response();
        response.extensions_mut().insert(end);
        Ok(response)
    } else {
        Ok(Json(complete(chat, id, body.model, created).await?).into_response())
    }
}

/// Waits for the whole reply.
async fn complete(
    chat: ApiChat,
    id: String,
    model: String,
    created: u64,
) -> Result<Value, ApiError> {
    let ApiChat {
        mut generation,
        sources,
    } = chat;
    loop {
        match generation.next().await {
            Some(GenerationEvent::Finished(c)) => {
                return Ok(json!({
                    "id": id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [{
                        "index": 0,
                        "message": { "role": "assistant", "content": c.text },
                        "finish_reason": finish_reason(c.finish_reason),
                    }],
                    "usage": usage(&c),
                    "sources": sources,
                }))
            }
            Some(GenerationEvent::Failed(e)) => return Err(ApiError::from(e)),
            Some(_) => {}
            None => return Err(ApiError::from(worker_gone(&model))),
        }
    }
}

fn worker_gone(model: &str) -> Error {
    Error::Engine(EngineError::WorkerCrashed {
        persona: if model == "character" {
            "character"
        } else {
            "office"
        },
    })
}

/// Server-sent events: a first chunk with the role (and the sources), one per piece of text,
/// a last one with the finish reason (then the usage, when asked), then `[DONE]`. A failure
/// midway is an error object, then `[DONE]`. The generation runs in a task of its own that
/// stops (and so cancels the request) when the client goes away; how it ended goes to the
/// request log through the returned [`StreamEnd`].
fn stream(
    chat: ApiChat,
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
) -> (
    Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>>,
    StreamEnd,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(64);
    let (end_tx, end_rx) = tokio::sync::oneshot::channel();
    let end = StreamEnd(Arc::new(Mutex::new(Some(end_rx))));
    let chunk = move |delta: Value, finish: Option<&str>| {
        json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        })
    };
    tokio::spawn(async move {
        let mut ended = EndGuard {
            tx: Some(end_tx),
            outcome: (RequestOutcome::Cancelled, None),
        };
        let ApiChat {
            mut generation,
            sources,
        } = chat;
        let send = |value: Value| {
            let tx = tx.clone();
            async move {
                tx.send(Event::default().data(value.to_string()))
                    .await
                    .is_ok()
            }
        };
        let mut first = chunk(json!({ "role": "assistant", "content": "" }), None);
        if !sources.is_empty() {
            first["sources"] =
                serde_json::to_value::<&Vec<MessageSource>>(&sources).unwrap_or(Value::Null);
        }
        if !send(first).await {
            return;
        }
        loop {
            // A client that left while its request waits for a slot (no events yet) is noticed
            // at once: the generation is dropped, which cancels it and frees its place.
            let next = tokio::select! {
                event = generation.next() => event,
                () = tx.closed() => return,
            };
            let open = match next {
                Some(GenerationEvent::Text(piece)) => {
                    send(chunk(json!({ "content": piece }), None)).await
                }
                Some(GenerationEvent::Finished(c)) => {
                    if c.finish_reason != FinishReason::Cancelled {
                        ended.outcome = (RequestOutcome::Ok, None);
                    }
                    let mut last =
                        send(chunk(json!({}), Some(finish_reason(c.finish_reason)))).await;
                    if include_usage && last {
                        let mut tail = chunk(json!({}), None);
                        tail["choices"] = json!([]);
                        tail["usage"] = usage(&c);
                        last = send(tail).await;
                    }
                    if last {
                        let _ = tx.send(Event::default().data("[DONE]")).await;
                    }
                    return;
                }
                Some(GenerationEvent::Failed(e)) => {
                    ended.outcome = (RequestOutcome::Error, Some(e.code()));
                    if send(ApiError::from(e).body()).await {
                        let _ = tx.send(Event::default().data("[DONE]")).await;
                    }
                    return;
                }
                Some(GenerationEvent::Started { .. }) => true,
                None => {
                    let crashed = Error::Engine(EngineError::WorkerCrashed { persona: "office" });
                    ended.outcome = (RequestOutcome::Error, Some(crashed.code()));
                    let gone = ApiError::from(crashed);
                    if send(gone.body()).await {
                        let _ = tx.send(Event::default().data("[DONE]")).await;
                    }
                    return;
                }
            };
            if !open {
                // The client went away: dropping the generation cancels the request.
                return;
            }
        }
    });
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok(event), rx))
    });
    (Sse::new(events).keep_alive(KeepAlive::default()), end)
}

#[derive(Debug, Deserialize)]
pub(crate) struct EmbeddingsRequest {
    input: Input,
    #[serde(default)]
    encoding_format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Input {
    One(String),
    Many(Vec<String>),
}

/// e5 vectors, as floats or (the `openai` package's default) base64 of little-endian f32s.
pub(crate) async fn embeddings(
    State(api): State<Api>,
    ApiJson(body): ApiJson<EmbeddingsRequest>,
) -> Result<Json<Value>, ApiError> {
    let texts = match body.input {
        Input::One(t) => vec![t],
        Input::Many(v) => v,
    };
    let base64 = match body.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "encoding_format",
                format!("\"{other}\" is not float or base64"),
            ))
        }
    };
    let app = api.app.clone();
    let (vectors, tokens) = blocking(move || {
        let vectors = app.api_embed(&texts)?;
        let tokens: usize = texts.iter().map(|t| app.api_count_tokens(t)).sum();
        Ok((vectors, tokens))
    })
    .await?;
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64_encode(&bytes))
            } else {
                json!(v)
            };
            json!({ "object": "embedding", "index": i, "embedding": embedding })
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": EMBEDDING_MODEL,
        "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
    })))
}

/// Standard base64 with padding (the `openai` package decodes it with `base64.b64decode`).
fn base64_encode(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[derive(Debug, Deserialize)]
pub(crate) struct SearchRequest {
    query: String,
    #[serde(default = "default_k")]
    k: usize,
}

fn default_k() -> usize {
    5
}

/// Our own: hybrid search under the key's profile, with the passages' sources.
pub(crate) async fn documents_search(
    State(api): State<Api>,
    Extension(key): Extension<ApiKey>,
    ApiJson(body): ApiJson<SearchRequest>,
) -> Result<Json<Value>, ApiError> {
    let app = api.app.clone();
    let result = blocking(move || app.api_search(&key, &body.query, body.k)).await?;
    let mut value = serde_json::to_value(&result)
        .map_err(|e| ApiError::internal("the search result", e.to_string()))?;
    value["object"] = json!("documents.search");
    Ok(Json(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_with_padding() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn text_parts_are_joined_and_other_parts_or_roles_are_refused() {
        let parse = |v: Value| -> Vec<InMessage> {
            let parsed = serde_json::from_value(v);
            assert!(parsed.is_ok(), "{parsed:?}");
            parsed.unwrap_or_default()
        };
        let refusal = |messages: Vec<InMessage>| match messages_of(messages) {
            Ok(m) => panic!("accepted: {m:?}"),
            Err(e) => e.message,
        };
        let messages = messages_of(parse(json!([
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
        ])));
        let messages = messages.map_err(|e| e.message);
        assert!(messages.is_ok(), "{messages:?}");
        let messages = messages.unwrap_or_default();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].role, Role::System);
        assert_eq!(messages[1].content, "ab");
        let image = refusal(parse(json!([
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
        ])));
        assert!(image.contains("\"image_url\" are not supported"), "{image}");
        let tool = refusal(parse(json!([{"role": "tool", "content": "x"}])));
        assert!(tool.contains("role \"tool\" is not supported"), "{tool}");
        assert!(refusal(Vec::new()).contains("is empty"));
    }
}
