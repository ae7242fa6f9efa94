//! Commands of the Settings page's local API section: the server's state, starting and
//! stopping it with `api.enabled`, and its key.
//!
//! The server (`deskmate-server`) runs on a thread and tokio runtime of its own. It follows the
//! configuration: at start, and after every save (`reconcile`), it runs exactly when
//! `api.enabled` is on, on `api.host:api.port` with `api.cors_origins`. A server that cannot
//! start (the port in use) keeps its error for the page.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use deskmate_core::app::{ApiKeyInfo, App};
use deskmate_core::config::ApiConfig;
use deskmate_core::store::Profile;
use deskmate_core::Error;
use deskmate_server::RunningServer;
use serde::Serialize;
use tauri::State;

use crate::{blocking, AppState};

/// The server, when it runs, with the settings it was started with.
#[derive(Default)]
pub struct ApiServer {
    state: Mutex<ServerState>,
}

#[derive(Default)]
struct ServerState {
    running: Option<(RunningServer, ApiConfig)>,
    error: Option<Error>,
}

#[derive(Debug, Serialize)]
pub struct ApiStatus {
    enabled: bool,
    running: bool,
    /// The base URL clients use (`http://127.0.0.1:8765/v1`).
    url: Option<String>,
    /// Why it is not running although enabled.
    error: Option<Error>,
    /// The key's profile and file (never the key itself); `None` before one is made.
    key: Option<KeySummary>,
}

#[derive(Debug, Serialize)]
pub struct KeySummary {
    profile: Profile,
    file: String,
    created_at: i64,
}

impl ApiServer {
    /// Starts, stops or restarts the server so that it matches the configuration.
    pub fn reconcile(&self, app: &Arc<App>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        // Read under the lock, so that two saves reconcile one after the other.
        let wanted = app.config().api;
        let current = state.running.as_ref().map(|(_, config)| config.clone());
        if current.as_ref() == Some(&wanted) && wanted.enabled {
            return;
        }
        if let Some((server, _)) = state.running.take() {
            // Bounded by deskmate_server::SHUTDOWN_GRACE.
            server.stop();
        }
        state.error = None;
        if !wanted.enabled {
            return;
        }
        match start(app, &wanted) {
            Ok(server) => {
                tracing::info!(addr = %server.addr(), "local API started");
                state.running = Some((server, wanted));
            }
            Err(e) => {
                tracing::warn!(error = %e, "local API not started");
                state.error = Some(e);
            }
        }
    }

    fn status(&self, app: &App) -> Result<ApiStatus, Error> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let key = app.api_key_info()?.map(|info| KeySummary {
            profile: info.profile,
            file: info.file.display().to_string(),
            created_at: info.created_at,
        });
        Ok(ApiStatus {
            enabled: app.config().api.enabled,
            running: state.running.is_some(),
            url: state
                .running
                .as_ref()
                .map(|(server, _)| format!("http://{}/v1", server.addr())),
            error: state.error.clone(),
            key,
        })
    }
}

fn start(app: &Arc<App>, config: &ApiConfig) -> Result<RunningServer, Error> {
    let host: IpAddr = config.host.parse().map_err(|_| Error::InvalidInput {
        field: "api.host",
        message: format!("{:?} is not an IP address", config.host),
    })?;
    let port = u16::try_from(config.port).map_err(|_| Error::InvalidInput {
        field: "api.port",
        message: format!("{} is not a port", config.port),
    })?;
    // A key exists before the first request can need one.
    app.ensure_api_key(false, None)?;
    let addr = SocketAddr::new(host, port);
    // A bind failure (the port in use) is an I/O error on the address: the page says to close
    // the other program or change `api.port`.
    deskmate_server::start(Arc::clone(app), addr, config.cors_origins.clone())
        .map_err(|e| Error::io(addr.to_string(), e))
}

#[tauri::command]
pub async fn api_status(
    state: State<'_, AppState>,
    server: State<'_, Arc<ApiServer>>,
) -> Result<ApiStatus, Error> {
    let (app, server) = (Arc::clone(&state), Arc::clone(&server));
    blocking(move || server.status(&app)).await
}

/// Turns the server on or off and saves that in `config.json` (`api.enabled`).
#[tauri::command]
pub async fn api_set_enabled(
    state: State<'_, AppState>,
    server: State<'_, Arc<ApiServer>>,
    enabled: bool,
) -> Result<ApiStatus, Error> {
    let (app, server) = (Arc::clone(&state), Arc::clone(&server));
    blocking(move || {
        app.update_config(|config| config.api.enabled = enabled)?;
        server.reconcile(&app);
        server.status(&app)
    })
    .await
}

/// The key, made (bound to the active profile) if there is none.
#[tauri::command]
pub async fn api_key_show(state: State<'_, AppState>) -> Result<ApiKeyInfo, Error> {
    let app = Arc::clone(&state);
    blocking(move || app.ensure_api_key(false, None)).await
}

/// A new key; the old one stops working at once.
#[tauri::command]
pub async fn api_key_new(state: State<'_, AppState>) -> Result<ApiKeyInfo, Error> {
    let app = Arc::clone(&state);
    blocking(move || app.ensure_api_key(true, None)).await
}
