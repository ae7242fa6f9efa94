//! Commands of the Documents page and of the profiles in Settings, over the core's document and
//! profile use cases.
//!
//! The core's import runner reports on its own thread; [`forward_import_events`] sends its
//! progress to every window as the `documents://progress` event, so a page opened mid-import
//! (or an import resumed at start) shows it too. The active profile's clearance is applied by
//! the core, never here.

use std::path::PathBuf;
use std::sync::Arc;

use deskmate_core::app::{App, DocumentsStatus, ImportEvent, Profiles};
use deskmate_core::documents::open::Opened;
use deskmate_core::documents::{Document, SearchResult};
use deskmate_core::store::{AccessLevel, Profile};
use deskmate_core::Error;
use tauri::{AppHandle, Emitter, State};
use tauri_plugin_dialog::DialogExt;

use crate::{blocking, AppState};

/// The event with each [`deskmate_core::documents::ImportProgress`].
pub const PROGRESS_EVENT: &str = "documents://progress";
/// Sent when a run of imports ends: `{ "error": null | {code, message} }`.
pub const FINISHED_EVENT: &str = "documents://finished";

/// Sends the import runner's events to the window.
pub fn forward_import_events(app: &App, window: AppHandle) {
    app.on_import_events(move |event| {
        let sent = match event {
            ImportEvent::Progress(progress) => window.emit(PROGRESS_EVENT, progress),
            ImportEvent::Finished { error } => {
                window.emit(FINISHED_EVENT, serde_json::json!({ "error": error }))
            }
        };
        if let Err(e) = sent {
            tracing::debug!(error = %e, "import event not delivered");
        }
    });
}

#[tauri::command]
pub async fn documents_list(state: State<'_, AppState>) -> Result<Vec<Document>, Error> {
    let app = Arc::clone(&state);
    blocking(move || app.documents()).await
}

#[tauri::command]
pub async fn documents_status(state: State<'_, AppState>) -> Result<DocumentsStatus, Error> {
    let app = Arc::clone(&state);
    blocking(move || app.documents_status()).await
}

/// Records an import of files and folders (from the dialog or dropped on the page) and starts
/// it; returns the job id. Progress arrives as events.
#[tauri::command]
pub async fn documents_import(
    state: State<'_, AppState>,
    paths: Vec<String>,
    level: Option<AccessLevel>,
) -> Result<i64, Error> {
    let app = Arc::clone(&state);
    let paths: Vec<PathBuf> = paths.into_iter().map(PathBuf::from).collect();
    blocking(move || app.import_documents(&paths, level)).await
}

/// Asks for files (or a folder) to import; `[]` when the user cancelled.
#[tauri::command]
pub async fn documents_pick(window: AppHandle, folder: bool) -> Result<Vec<String>, Error> {
    let picked = tauri::async_runtime::spawn_blocking(move || {
        let dialog = window.dialog().file();
        if folder {
            dialog
                .blocking_pick_folder()
                .into_iter()
                .collect::<Vec<_>>()
        } else {
            dialog
                .add_filter(
                    "Documents",
                    &[
                        "txt", "md", "markdown", "pdf", "docx", "html", "htm", "csv", "hwp",
                        "hwpx", "xlsx", "xlsm", "ods", "pptx",
                    ],
                )
                .blocking_pick_files()
                .unwrap_or_default()
        }
    })
    .await
    .map_err(|e| Error::Internal {
        what: "the file dialog",
        reason: e.to_string(),
    })?;
    Ok(picked
        .into_iter()
        .filter_map(|p| p.into_path().ok())
        .map(|p| p.to_string_lossy().into_owned())
        .collect())
}

#[tauri::command]
pub fn documents_cancel(state: State<'_, AppState>) -> Result<(), Error> {
    state.cancel_import()
}

#[tauri::command]
pub async fn documents_delete(state: State<'_, AppState>, id: i64) -> Result<(), Error> {
    let app = Arc::clone(&state);
    blocking(move || app.delete_document(id)).await
}

#[tauri::command]
pub async fn documents_set_level(
    state: State<'_, AppState>,
    id: i64,
    level: AccessLevel,
) -> Result<Document, Error> {
    let app = Arc::clone(&state);
    blocking(move || app.set_document_level(id, level)).await
}

#[tauri::command]
pub async fn documents_reindex(state: State<'_, AppState>, id: i64) -> Result<i64, Error> {
    let app = Arc::clone(&state);
    blocking(move || app.reindex_document(id)).await
}

#[tauri::command]
pub async fn documents_search(
    state: State<'_, AppState>,
    query: String,
    k: Option<usize>,
) -> Result<SearchResult, Error> {
    let app = Arc::clone(&state);
    blocking(move || app.search_documents(&query, k)).await
}

/// Opens a document's original file in the system viewer, at `page` for PDFs where it can.
#[tauri::command]
pub async fn documents_open(
    state: State<'_, AppState>,
    id: i64,
    page: Option<u32>,
) -> Result<Opened, Error> {
    let app = Arc::clone(&state);
    blocking(move || app.open_document(id, page)).await
}

#[tauri::command]
pub async fn profiles_list(state: State<'_, AppState>) -> Result<Profiles, Error> {
    let app = Arc::clone(&state);
    blocking(move || app.profiles()).await
}

#[tauri::command]
pub async fn profile_create(
    state: State<'_, AppState>,
    name: String,
    clearance: AccessLevel,
) -> Result<Profile, Error> {
    let app = Arc::clone(&state);
    blocking(move || app.create_profile(&name, clearance)).await
}

/// Switches the active profile: its sessions, cards and document clearance.
#[tauri::command]
pub async fn profile_activate(state: State<'_, AppState>, id: i64) -> Result<Profile, Error> {
    let app = Arc::clone(&state);
    blocking(move || app.activate_profile(id)).await
}

#[tauri::command]
pub async fn profile_delete(state: State<'_, AppState>, id: i64) -> Result<(), Error> {
    let app = Arc::clone(&state);
    blocking(move || app.delete_profile(id)).await
}
