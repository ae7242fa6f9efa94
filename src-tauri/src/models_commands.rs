//! Commands of the Models page's catalog: what can be installed and whether it fits this
//! machine, downloads (start, pause, cancel; progress arrives as [`DOWNLOAD_EVENT`]), the
//! mirror folder, and making an installed model a persona's.

use std::sync::Arc;

use deskmate_core::app::{App, Catalog, DownloadEvent};
use deskmate_core::store::Persona;
use deskmate_core::Error;
use tauri::{Emitter, State};
use tauri_plugin_dialog::DialogExt;

use crate::{blocking, pick_path, AppState};

/// The event that carries one [`DownloadEvent`] to the UI, at most four times a second per
/// download.
pub const DOWNLOAD_EVENT: &str = "models://download";

/// Sends every download event of `app` to the window.
pub fn forward_download_events(app: &App, handle: tauri::AppHandle) {
    app.on_download_events(move |event: &DownloadEvent| {
        if let Err(e) = handle.emit(DOWNLOAD_EVENT, event) {
            tracing::debug!(error = %e, "download event not delivered");
        }
    });
}

/// Every model the app knows, installed or not, with its fit and download.
#[tauri::command]
pub async fn model_catalog(state: State<'_, AppState>) -> Result<Catalog, Error> {
    let app = Arc::clone(&state);
    blocking(move || app.model_catalog()).await
}

/// Queues downloads (a paused one resumes).
#[tauri::command]
pub async fn models_download(state: State<'_, AppState>, ids: Vec<String>) -> Result<(), Error> {
    let app = Arc::clone(&state);
    blocking(move || app.download_models(&ids)).await
}

/// Pauses a download; its bytes stay on disk for the next start.
#[tauri::command]
pub async fn model_download_pause(state: State<'_, AppState>, id: String) -> Result<(), Error> {
    let app = Arc::clone(&state);
    blocking(move || app.pause_download(&id)).await
}

/// Cancels a download and deletes what it fetched.
#[tauri::command]
pub async fn model_download_cancel(state: State<'_, AppState>, id: String) -> Result<(), Error> {
    let app = Arc::clone(&state);
    blocking(move || app.cancel_download(&id)).await
}

/// Makes the installed catalog model `id` the persona's model and loads it.
#[tauri::command]
pub async fn model_use(
    state: State<'_, AppState>,
    persona: Persona,
    id: String,
) -> Result<(), Error> {
    let app = Arc::clone(&state);
    blocking(move || app.use_catalog_model(persona, &id).map(|_| ())).await
}

/// Asks for the mirror folder and saves it as `models.mirror`; `None` when cancelled.
#[tauri::command]
pub async fn models_mirror_pick(
    window: tauri::AppHandle,
    state: State<'_, AppState>,
) -> Result<Option<String>, Error> {
    let Some(path) = pick_path(move || window.dialog().file().blocking_pick_folder()).await? else {
        return Ok(None);
    };
    let app = Arc::clone(&state);
    let shown = path.display().to_string();
    blocking(move || {
        app.update_config(|c| c.models.mirror = Some(path))
            .map(|_| ())
    })
    .await?;
    Ok(Some(shown))
}
