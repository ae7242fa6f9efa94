//! Commands of the Documents page and of the profiles in Settings, over
//! `deskmate_core::documents::Library` and the store.
//!
//! Imports run on one background thread ([`run_imports`]); its progress goes to every window as
//! the `documents://progress` event, so a page opened mid-import (or an import resumed at start)
//! shows it too. The active profile's clearance is applied by the core, never here.

use std::path::PathBuf;
use std::sync::Arc;

use deskmate_core::documents::open::Opened;
use deskmate_core::documents::{Document, Library, SearchResult};
use deskmate_core::store::{AccessLevel, Profile};
use deskmate_core::ErrorPayload;
use serde::Serialize;
use tauri::{AppHandle, Emitter, State};
use tauri_plugin_dialog::DialogExt;

use crate::{blocking, internal, lock_store, AppState};

/// The event with each [`deskmate_core::documents::ImportProgress`].
pub const PROGRESS_EVENT: &str = "documents://progress";
/// Sent when a run of imports ends: `{ "error": null | {code, message} }`.
pub const FINISHED_EVENT: &str = "documents://finished";

#[derive(Debug, Serialize)]
pub struct DocumentsStatus {
    importing: bool,
    /// Why search is keyword-only (no embedding model or ONNX Runtime), if it is.
    vector_notice: Option<ErrorPayload>,
}

/// Runs every unfinished import job on a thread of its own, unless one is running (it picks up
/// new jobs before it ends).
pub fn run_imports(app: AppHandle, library: Arc<Library>) {
    if library.is_importing() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("deskmate-import".into())
        .spawn(move || {
            let result = library.run_jobs(&mut |p| {
                if let Err(e) = app.emit(PROGRESS_EVENT, p) {
                    tracing::debug!(error = %e, "import progress not delivered");
                }
            });
            let error = match result {
                Ok(_) => None,
                // Another runner got there first: it will do the job.
                Err(e) if e.code() == "import_in_progress" => return,
                Err(e) => {
                    tracing::error!(error = %e, "import stopped");
                    Some(ErrorPayload::from(&e))
                }
            };
            let _ = app.emit(FINISHED_EVENT, serde_json::json!({ "error": error }));
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "the import thread could not be started");
    }
}

#[tauri::command]
pub async fn documents_list(state: State<'_, AppState>) -> Result<Vec<Document>, ErrorPayload> {
    let library = state.library()?;
    blocking(move || library.documents()).await
}

#[tauri::command]
pub async fn documents_status(state: State<'_, AppState>) -> Result<DocumentsStatus, ErrorPayload> {
    let library = state.library()?;
    blocking(move || {
        Ok(DocumentsStatus {
            importing: library.is_importing(),
            vector_notice: library.vector_notice(),
        })
    })
    .await
}

/// Records an import of files and folders (from the dialog or dropped on the page) and starts
/// it; returns the job id. Progress arrives as events.
#[tauri::command]
pub async fn documents_import(
    app: AppHandle,
    state: State<'_, AppState>,
    paths: Vec<String>,
    level: Option<AccessLevel>,
) -> Result<i64, ErrorPayload> {
    if paths.is_empty() {
        return Err(ErrorPayload {
            code: "invalid_input",
            message: "paths: choose at least one file or folder".into(),
        });
    }
    let library = state.library()?;
    let job = blocking({
        let library = Arc::clone(&library);
        move || {
            let paths: Vec<PathBuf> = paths.into_iter().map(PathBuf::from).collect();
            library.create_job(&paths, level)
        }
    })
    .await?;
    run_imports(app, library);
    Ok(job)
}

/// Asks for files (or a folder) to import; `[]` when the user cancelled.
#[tauri::command]
pub async fn documents_pick(app: AppHandle, folder: bool) -> Result<Vec<String>, ErrorPayload> {
    let picked = tauri::async_runtime::spawn_blocking(move || {
        let dialog = app.dialog().file();
        if folder {
            dialog
                .blocking_pick_folder()
                .into_iter()
                .collect::<Vec<_>>()
        } else {
            dialog
                .add_filter(
                    "Documents",
                    &["txt", "md", "markdown", "pdf", "docx", "html", "htm", "csv"],
                )
                .blocking_pick_files()
                .unwrap_or_default()
        }
    })
    .await
    .map_err(|_| internal("the file dialog"))?;
    Ok(picked
        .into_iter()
        .filter_map(|p| p.into_path().ok())
        .map(|p| p.to_string_lossy().into_owned())
        .collect())
}

#[tauri::command]
pub fn documents_cancel(state: State<'_, AppState>) -> Result<(), ErrorPayload> {
    state.library()?.cancel_import();
    Ok(())
}

#[tauri::command]
pub async fn documents_delete(state: State<'_, AppState>, id: i64) -> Result<(), ErrorPayload> {
    let library = state.library()?;
    blocking(move || library.delete_document(id)).await
}

#[tauri::command]
pub async fn documents_set_level(
    state: State<'_, AppState>,
    id: i64,
    level: AccessLevel,
) -> Result<Document, ErrorPayload> {
    let library = state.library()?;
    blocking(move || library.set_level(id, level)).await
}

#[tauri::command]
pub async fn documents_reindex(
    app: AppHandle,
    state: State<'_, AppState>,
    id: i64,
) -> Result<i64, ErrorPayload> {
    let library = state.library()?;
    let job = blocking({
        let library = Arc::clone(&library);
        move || library.reindex_document(id)
    })
    .await?;
    run_imports(app, library);
    Ok(job)
}

#[tauri::command]
pub async fn documents_search(
    state: State<'_, AppState>,
    query: String,
    k: Option<usize>,
) -> Result<SearchResult, ErrorPayload> {
    let library = state.library()?;
    blocking(move || library.search(&query, k.unwrap_or(10))).await
}

/// Opens a document's original file in the system viewer, at `page` for PDFs where it can.
#[tauri::command]
pub async fn documents_open(
    state: State<'_, AppState>,
    id: i64,
    page: Option<u32>,
) -> Result<Opened, ErrorPayload> {
    let library = state.library()?;
    blocking(move || library.open_original(id, page)).await
}

#[derive(Debug, Serialize)]
pub struct Profiles {
    active: i64,
    profiles: Vec<Profile>,
}

#[tauri::command]
pub async fn profiles_list(state: State<'_, AppState>) -> Result<Profiles, ErrorPayload> {
    let chat = state.chat()?;
    blocking(move || {
        let store = lock_store(chat.store());
        Ok(Profiles {
            active: store.active_profile_id()?,
            profiles: store.profiles()?,
        })
    })
    .await
}

#[tauri::command]
pub async fn profile_create(
    state: State<'_, AppState>,
    name: String,
    clearance: AccessLevel,
) -> Result<Profile, ErrorPayload> {
    let chat = state.chat()?;
    blocking(move || lock_store(chat.store()).create_profile(&name, clearance)).await
}

/// Switches the active profile: its sessions, cards and document clearance.
#[tauri::command]
pub async fn profile_activate(
    state: State<'_, AppState>,
    id: i64,
) -> Result<Profile, ErrorPayload> {
    let chat = state.chat()?;
    blocking(move || lock_store(chat.store()).set_active_profile(id)).await
}

#[tauri::command]
pub async fn profile_delete(state: State<'_, AppState>, id: i64) -> Result<(), ErrorPayload> {
    let chat = state.chat()?;
    blocking(move || lock_store(chat.store()).delete_profile(id)).await
}
