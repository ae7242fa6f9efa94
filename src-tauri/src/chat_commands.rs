//! Commands of the Chat and Cards pages: sessions, turns (streamed over a `Channel`), cards.
//!
//! Each command calls one `App` method; blocking work runs on the blocking pool. A turn is
//! started by the core on a thread of its own; its events are forwarded to the page's channel.

use std::sync::Arc;

use deskmate_core::app::{OpenSession, SendMessage};
use deskmate_core::chat::{ChatEvent, TurnStart};
use deskmate_core::store::{Card, Session, SessionSetup};
use deskmate_core::Error;
use tauri::ipc::Channel;
use tauri::State;
use tauri_plugin_dialog::DialogExt;

use crate::{blocking, AppState};

#[tauri::command]
pub async fn sessions_list(
    state: State<'_, AppState>,
    search: Option<String>,
) -> Result<Vec<Session>, Error> {
    let app = Arc::clone(&state);
    blocking(move || app.sessions(search.as_deref())).await
}

#[tauri::command]
pub async fn session_open(state: State<'_, AppState>, id: i64) -> Result<OpenSession, Error> {
    let app = Arc::clone(&state);
    blocking(move || app.open_session(id)).await
}

/// A new, empty session (a character's greeting is its first message).
#[tauri::command]
pub async fn session_create(
    state: State<'_, AppState>,
    setup: SessionSetup,
) -> Result<OpenSession, Error> {
    let app = Arc::clone(&state);
    blocking(move || app.create_session(&setup)).await
}

#[tauri::command]
pub async fn session_set_setup(
    state: State<'_, AppState>,
    id: i64,
    setup: SessionSetup,
) -> Result<Session, Error> {
    let app = Arc::clone(&state);
    blocking(move || app.set_session_setup(id, &setup)).await
}

#[tauri::command]
pub async fn session_rename(
    state: State<'_, AppState>,
    id: i64,
    title: String,
) -> Result<Session, Error> {
    let app = Arc::clone(&state);
    blocking(move || app.rename_session(id, &title)).await
}

/// Deletes a session and its messages (a running reply is stopped first); its cards stay.
#[tauri::command]
pub async fn session_delete(state: State<'_, AppState>, id: i64) -> Result<(), Error> {
    let app = Arc::clone(&state);
    blocking(move || app.delete_session(id)).await
}

/// Asks where to save the session (Markdown or JSON) and writes it; `None` when the user
/// cancelled the dialog.
#[tauri::command]
pub async fn session_export(
    window: tauri::AppHandle,
    state: State<'_, AppState>,
    id: i64,
    format: String,
) -> Result<Option<String>, Error> {
    let app = Arc::clone(&state);
    let export = blocking(move || app.export_session(id, &format)).await?;
    let (file_name, kind, extension) = (export.file_name.clone(), export.kind, export.extension);
    let picked = tauri::async_runtime::spawn_blocking(move || {
        window
            .dialog()
            .file()
            .set_file_name(file_name)
            .add_filter(kind, &[extension])
            .blocking_save_file()
    })
    .await
    .map_err(|e| Error::Internal {
        what: "the save dialog",
        reason: e.to_string(),
    })?;
    let Some(path) = picked.and_then(|p| p.into_path().ok()) else {
        return Ok(None);
    };
    blocking(move || {
        export.save(&path)?;
        Ok(Some(path.display().to_string()))
    })
    .await
}

/// Forwards a turn's events to the page (which may have been closed meanwhile).
fn forward(on_event: Channel<ChatEvent>) -> impl FnMut(ChatEvent) + Send + 'static {
    move |event| {
        if let Err(e) = on_event.send(event) {
            tracing::debug!(error = %e, "chat event not delivered (page closed?)");
        }
    }
}

/// Stores the message (in a new session when `session_id` is null) and starts the reply; its
/// events arrive on `on_event`.
#[tauri::command]
#[allow(clippy::too_many_arguments)]
pub async fn chat_send(
    state: State<'_, AppState>,
    session_id: Option<i64>,
    setup: SessionSetup,
    text: String,
    attachments: Option<Vec<String>>,
    history_turns: Option<u32>,
    on_event: Channel<ChatEvent>,
) -> Result<TurnStart, Error> {
    let app = Arc::clone(&state);
    let message = SendMessage {
        session_id,
        setup,
        text,
        attachments: attachments.unwrap_or_default(),
        history_turns: history_turns.map(|t| t as usize),
    };
    blocking(move || app.send(message, forward(on_event))).await
}

/// Writes the session's last reply again.
#[tauri::command]
pub async fn chat_retry(
    state: State<'_, AppState>,
    session_id: i64,
    history_turns: Option<u32>,
    on_event: Channel<ChatEvent>,
) -> Result<TurnStart, Error> {
    let app = Arc::clone(&state);
    let history_turns = history_turns.map(|t| t as usize);
    blocking(move || app.retry(session_id, history_turns, forward(on_event))).await
}

/// Stops the reply being written in a session; false when none was.
#[tauri::command]
pub fn chat_stop(state: State<'_, AppState>, session_id: i64) -> bool {
    state.stop(session_id)
}

#[tauri::command]
pub async fn cards_list(
    state: State<'_, AppState>,
    search: Option<String>,
) -> Result<Vec<Card>, Error> {
    let app = Arc::clone(&state);
    blocking(move || app.cards(search.as_deref())).await
}

#[tauri::command]
pub async fn card_save(
    state: State<'_, AppState>,
    message_id: i64,
    note: String,
) -> Result<Card, Error> {
    let app = Arc::clone(&state);
    blocking(move || app.save_card(message_id, &note)).await
}

#[tauri::command]
pub async fn card_delete(state: State<'_, AppState>, id: i64) -> Result<(), Error> {
    let app = Arc::clone(&state);
    blocking(move || app.delete_card(id)).await
}
