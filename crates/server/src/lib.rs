//! The local API: OpenAI-compatible endpoints over deskmate-core's app layer, so that editors,
//! scripts and chat front ends on this workstation (the `openai` package, Open WebUI, curl) use
//! the models and documents Deskmate has loaded.
//!
//! Endpoints: `GET /health` (open), and behind the bearer key: `GET /v1/models`,
//! `POST /v1/chat/completions` (streamed as server-sent events or not), `POST /v1/embeddings`
//! (e5) and our own `POST /v1/documents/search`.
//!
//! Invariants:
//! - It listens on a loopback address only (the configuration refuses any other) and every
//!   `/v1` request needs the key (`deskmate api key`); the key's profile bounds every passage
//!   returned or quoted to the model.
//! - There is no chat of its own: a completion is a request to the same engine, slots and queue
//!   as the window's turns ([`App::api_chat`]). A full queue answers 429 with `Retry-After` at
//!   once; a client that goes away cancels its request.
//! - Errors have OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`; `code` is
//!   Deskmate's error code (or OpenAI's for the protocol's own cases: `invalid_api_key`,
//!   `model_not_found`).
//! - Bodies are limited to [`MAX_BODY_BYTES`]; models, embeddings and search answer within
//!   [`REQUEST_TIMEOUT`] or get 408. A chat completion has no such limit (clients retry a 408,
//!   which would triple a slow answer): it is bounded by its `max_tokens`, and a client that
//!   goes away cancels it.
//! - Every request goes to the request log with its outcome.
//!
//! Threading: handlers run on tokio; every call into the core (SQLite, the embedder, the
//! library) runs on the blocking pool. A generation's events arrive on a tokio channel.

mod error;
mod routes;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Method};
use axum::routing::{get, post};
use axum::Router;
use deskmate_core::app::App;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use error::ApiError;

/// The largest request body accepted (a 2 MB body gets 413).
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// How long a request may take to answer (a stream's headers come at once).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) app: Arc<App>,
}

/// The API's routes and layers over `app`. `cors_origins` (the configuration's
/// `api.cors_origins`) lets those web pages call it; empty, none may.
pub fn router(app: Arc<App>, cors_origins: &[String]) -> Router {
    let api = Api { app };
    let bounded = Router::new()
        .route("/v1/models", get(routes::models))
        .route("/v1/embeddings", post(routes::embeddings))
        .route("/v1/documents/search", post(routes::documents_search))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ));
    let v1 = Router::new()
        .route("/v1/chat/completions", post(routes::chat_completions))
        .merge(bounded)
        .route_layer(axum::middleware::from_fn_with_state(
            api.clone(),
            routes::require_key,
        ));
    // The request log is outermost: it sees every answer, 408s and 401s included.
    let mut router = Router::new()
        .route("/health", get(routes::health))
        .merge(v1)
        .fallback(routes::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(routes::refuse_large_bodies))
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            routes::log_request,
        ))
        .with_state(api);
    let origins: Vec<HeaderValue> = cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if !origins.is_empty() {
        router = router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST])
                // Browser clients (openai-node) send headers of their own (`X-Stainless-*`);
                // the origin is what is checked.
                .allow_headers(tower_http::cors::AllowHeaders::mirror_request())
                .expose_headers([header::RETRY_AFTER]),
        );
    }
    router
}

/// How long a stop waits for the requests in flight before cutting them off (a stream whose
/// client stopped reading would otherwise hold it forever).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A server started by [`start`], on a thread (and tokio runtime) of its own.
pub struct RunningServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningServer {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops taking requests, lets the ones in flight finish for at most [`SHUTDOWN_GRACE`]
    /// (the rest are cut off, their generations cancelled), and waits for the thread.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Binds `addr` (a loopback address; anything else is refused) and serves the API on a thread
/// of its own until [`RunningServer::stop`]. How the window and `deskmate serve` run it;
/// binding errors (the port in use) come back here.
pub fn start(
    app: Arc<App>,
    addr: SocketAddr,
    cors_origins: Vec<String>,
) -> std::io::Result<RunningServer> {
    if !addr.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{addr} is not a loopback address; the API never listens beyond this machine"),
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("deskmate-api")
        .enable_all()
        .build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind(addr))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let thread = std::thread::Builder::new()
        .name("deskmate-api".into())
        .spawn(move || {
            let (mut graceful, mut deadline) = (stopped.clone(), stopped);
            let served = runtime.block_on(async move {
                let serving = serve(app, listener, &cors_origins, async move {
                    let _ = graceful.wait_for(|stop| *stop).await;
                });
                let cut_off = async move {
                    let _ = deadline.wait_for(|stop| *stop).await;
                    tokio::time::sleep(SHUTDOWN_GRACE).await;
                };
                tokio::select! {
                    served = serving => served,
                    () = cut_off => Ok(()),
                }
            });
            if let Err(e) = served {
                tracing::error!(error = %e, "the local API stopped");
            }
            // Stream tasks still running are dropped here, which cancels their generations.
            runtime.shutdown_timeout(Duration::from_secs(1));
        })?;
    Ok(RunningServer {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// Serves the API on `listener` until `shutdown` completes; requests in flight are finished.
pub async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    cors_origins: &[String],
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(app, cors_origins))
        .with_graceful_shutdown(shutdown)
        .await
}
