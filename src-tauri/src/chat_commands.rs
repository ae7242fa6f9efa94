//! Commands of the Chat and Cards pages: sessions, turns (streamed over a `Channel`), cards.
//!
//! Each command calls `deskmate_core::chat` or the store; blocking work runs on the blocking
//! pool, and a turn's reply is written on a thread of its own so the command answers at once.

use deskmate_core::chat::{self, ChatEvent, TurnOptions, TurnStart};
use deskmate_core::store::{Card, Message, Session, SessionSetup};
use deskmate_core::ErrorPayload;
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::State;
use tauri_plugin_dialog::DialogExt;

use crate::{blocking, internal, lock_store, AppState};

/// A session with its messages, as the chat page shows it.
#[derive(Debug, Serialize)]
pub struct OpenSession {
    session: Session,
    messages: Vec<Message>,
    /// A reply is being written in it now (by a turn started earlier).
    replying: bool,
}

#[tauri::command]
pub async fn sessions_list(
    state: State<'_, AppState>,
    search: Option<String>,
) -> Result<Vec<Session>, ErrorPayload> {
    let chat = state.chat()?;
    blocking(move || lock_store(chat.store()).sessions(search.as_deref())).await
}

#[tauri::command]
pub async fn session_open(
    state: State<'_, AppState>,
    id: i64,
) -> Result<OpenSession, ErrorPayload> {
    let chat = state.chat()?;
    blocking(move || {
        let store = lock_store(chat.store());
        Ok(OpenSession {
            session: store.session(id)?,
            messages: store.messages(id)?,
            replying: chat.is_replying(id),
        })
    })
    .await
}

/// A new, empty session (a character's greeting is its first message).
#[tauri::command]
pub async fn session_create(
    state: State<'_, AppState>,
    setup: SessionSetup,
) -> Result<OpenSession, ErrorPayload> {
    let chat = state.chat()?;
    blocking(move || {
        let (session, messages) = chat::create_session(&mut lock_store(chat.store()), &setup)?;
        Ok(OpenSession {
            session,
            messages,
            replying: false,
        })
    })
    .await
}

#[tauri::command]
pub async fn session_set_setup(
    state: State<'_, AppState>,
    id: i64,
    setup: SessionSetup,
) -> Result<Session, ErrorPayload> {
    let chat = state.chat()?;
    blocking(move || {
        let setup = chat::validate_setup(&setup)?;
        lock_store(chat.store()).set_session_setup(id, &setup)
    })
    .await
}

#[tauri::command]
pub async fn session_rename(
    state: State<'_, AppState>,
    id: i64,
    title: String,
) -> Result<Session, ErrorPayload> {
    let chat = state.chat()?;
    blocking(move || lock_store(chat.store()).rename_session(id, &title)).await
}

/// Deletes a session and its messages (a running reply is stopped first); its cards stay.
#[tauri::command]
pub async fn session_delete(state: State<'_, AppState>, id: i64) -> Result<(), ErrorPayload> {
    let chat = state.chat()?;
    chat.stop(id);
    let files = state.media.attachments();
    blocking(move || chat.delete_session(id, &files)).await
}

/// Asks where to save the session (Markdown or JSON) and writes it; `None` when the user
/// cancelled the dialog.
#[tauri::command]
pub async fn session_export(
    app: tauri::AppHandle,
    state: State<'_, AppState>,
    id: i64,
    format: String,
) -> Result<Option<String>, ErrorPayload> {
    let chat = state.chat()?;
    let (extension, filter) = match format.as_str() {
        "markdown" => ("md", "Markdown"),
        "json" => ("json", "JSON"),
        other => {
            return Err(ErrorPayload {
                code: "invalid_input",
                message: format!("format: expected markdown or json, got {other:?}"),
            })
        }
    };
    let (session, messages) = blocking({
        let chat = chat.clone();
        move || {
            let store = lock_store(chat.store());
            Ok((store.session(id)?, store.messages(id)?))
        }
    })
    .await?;
    let text = match extension {
        "md" => chat::export_markdown(&session, &messages),
        _ => chat::export_json(&session, &messages).map_err(|e| ErrorPayload::from(&e))?,
    };
    let file_name = chat::export_file_name(&session, extension);
    let picked = tauri::async_runtime::spawn_blocking(move || {
        app.dialog()
            .file()
            .set_file_name(file_name)
            .add_filter(filter, &[extension])
            .blocking_save_file()
    })
    .await
    .map_err(|_| internal("the save dialog"))?;
    let Some(path) = picked.and_then(|p| p.into_path().ok()) else {
        return Ok(None);
    };
    std::fs::write(&path, text).map_err(|e| ErrorPayload {
        code: "io",
        message: format!("{}: {e}", path.display()),
    })?;
    Ok(Some(path.display().to_string()))
}

fn turn_options(state: &AppState, history_turns: Option<u32>) -> Result<TurnOptions, ErrorPayload> {
    let max = state.startup()?.config.config.chat.max_message_chars;
    Ok(TurnOptions {
        history_turns: history_turns.map(|t| t as usize),
        max_message_chars: max as usize,
    })
}

/// Runs a stored turn on its own thread, sending every event to the page.
fn run_turn(turn: chat::Turn, on_event: Channel<ChatEvent>) -> Result<TurnStart, ErrorPayload> {
    let start = turn.start().clone();
    std::thread::Builder::new()
        .name("deskmate-chat-turn".into())
        .spawn(move || {
            turn.run(|event| {
                if let Err(e) = on_event.send(event) {
                    tracing::debug!(error = %e, "chat event not delivered (page closed?)");
                }
            })
        })
        .map_err(|e| ErrorPayload {
            code: "internal",
            message: format!("the reply thread could not start: {e}"),
        })?;
    Ok(start)
}

/// Stores the message (in a new session when `session_id` is null) and starts the reply; its
/// events arrive on `on_event`.
#[tauri::command]
pub async fn chat_send(
    state: State<'_, AppState>,
    session_id: Option<i64>,
    setup: SessionSetup,
    text: String,
    attachments: Option<Vec<String>>,
    history_turns: Option<u32>,
    on_event: Channel<ChatEvent>,
) -> Result<TurnStart, ErrorPayload> {
    let chat = state.chat()?;
    let options = turn_options(&state, history_turns)?;
    let files = state.media.attachments();
    let turn = blocking(move || {
        let images = files.resolve(&attachments.unwrap_or_default())?;
        chat.send_with_attachments(session_id, &setup, &text, images, options)
    })
    .await?;
    run_turn(turn, on_event)
}

/// Writes the session's last reply again.
#[tauri::command]
pub async fn chat_retry(
    state: State<'_, AppState>,
    session_id: i64,
    history_turns: Option<u32>,
    on_event: Channel<ChatEvent>,
) -> Result<TurnStart, ErrorPayload> {
    let chat = state.chat()?;
    let options = turn_options(&state, history_turns)?;
    let turn = blocking(move || chat.retry(session_id, options)).await?;
    run_turn(turn, on_event)
}

/// Stops the reply being written in a session; false when none was.
#[tauri::command]
pub fn chat_stop(state: State<'_, AppState>, session_id: i64) -> Result<bool, ErrorPayload> {
    Ok(state.chat()?.stop(session_id))
}

#[tauri::command]
pub async fn cards_list(
    state: State<'_, AppState>,
    search: Option<String>,
) -> Result<Vec<Card>, ErrorPayload> {
    let chat = state.chat()?;
    blocking(move || lock_store(chat.store()).cards(search.as_deref())).await
}

#[tauri::command]
pub async fn card_save(
    state: State<'_, AppState>,
    message_id: i64,
    note: String,
) -> Result<Card, ErrorPayload> {
    let chat = state.chat()?;
    blocking(move || lock_store(chat.store()).save_card(message_id, &note)).await
}

#[tauri::command]
pub async fn card_delete(state: State<'_, AppState>, id: i64) -> Result<(), ErrorPayload> {
    let chat = state.chat()?;
    blocking(move || lock_store(chat.store()).delete_card(id)).await
}
