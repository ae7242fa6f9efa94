//! The Deskmate desktop shell: a thin layer of Tauri commands over `deskmate-core`.
//!
//! No business logic lives here. The core's application layer ([`App`]) is opened once and
//! managed as Tauri state; a command marshals its arguments, calls one `App` method (off the
//! async runtime when it blocks) and returns the result or the core error, which reaches the UI
//! as `{code, message}` and is turned into a translated message there. The shell forwards what
//! the core reports on its own threads (monitor samples, import progress, a turn's events) to
//! the window. Start-up never fails on a bad configuration, a missing model or an unreadable
//! database: those are reported through `app_status` and shown as banners.

mod api_commands;
mod chat_commands;
mod docs_commands;
mod media_commands;
mod models_commands;
mod settings_commands;

use std::sync::Arc;

use deskmate_core::app::App;
use deskmate_core::engine::PersonaState;
use deskmate_core::gpu::{MonitorSample, MonitorSnapshot};
use deskmate_core::paths::{PathOverrides, Paths};
use deskmate_core::startup::AppStatus;
use deskmate_core::Error;
use tauri::{Emitter, Manager};

/// The event that carries one [`MonitorSample`] to the UI, about once a second.
pub const MONITOR_EVENT: &str = "monitor://sample";

/// The app, as Tauri state.
type AppState = Arc<App>;

/// Runs blocking core work off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> deskmate_core::Result<T> + Send + 'static,
) -> Result<T, Error> {
    tauri::async_runtime::spawn_blocking(work)
        .await
        .map_err(|e| Error::Internal {
            what: "a background task",
            reason: e.to_string(),
        })?
}

/// Runs a native file or folder dialog (which blocks) off the async runtime: the chosen path,
/// or `None` when the user cancelled.
async fn pick_path(
    dialog: impl FnOnce() -> Option<tauri_plugin_dialog::FilePath> + Send + 'static,
) -> Result<Option<std::path::PathBuf>, Error> {
    let picked = tauri::async_runtime::spawn_blocking(dialog)
        .await
        .map_err(|e| Error::Internal {
            what: "the file dialog",
            reason: e.to_string(),
        })?;
    Ok(picked.and_then(|p| p.into_path().ok()))
}

/// When `run` began, for the start-up time logged at the window's first status call.
static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
static WINDOW_READY: std::sync::Once = std::sync::Once::new();

/// The start-up snapshot: paths, configuration problems, store health and model files.
#[tauri::command]
async fn app_status(state: tauri::State<'_, AppState>) -> Result<AppStatus, Error> {
    // The UI's first command: its page has loaded and its script runs, so the window answers.
    // `cargo xtask package --test` times the installed app by this line.
    WINDOW_READY.call_once(|| {
        if let Some(started) = STARTED.get() {
            tracing::info!(
                ms = started.elapsed().as_millis() as u64,
                "window ready (the UI asked for its first status)"
            );
        }
    });
    let app = Arc::clone(&state);
    blocking(move || Ok(app.status())).await
}

/// The monitor's history so far and where the models sit, for the Monitor page and the gauge.
#[tauri::command]
fn monitor_snapshot(state: tauri::State<'_, AppState>) -> Result<MonitorSnapshot, Error> {
    state.monitor_snapshot()
}

/// Pauses sampling while the window is hidden.
#[tauri::command]
fn monitor_set_visible(state: tauri::State<'_, AppState>, visible: bool) {
    state.monitor_set_visible(visible);
}

/// Each persona's model: loading, loaded (load report and live statistics), failed (the error
/// and every load attempt) or not loaded.
#[tauri::command]
fn engine_status(state: tauri::State<'_, AppState>) -> Result<Vec<PersonaState>, Error> {
    state.engine_status()
}

/// Where each persona's messages go: this machine, or a server (the chat's "remote: host"
/// badge).
#[tauri::command]
fn persona_backends(state: tauri::State<'_, AppState>) -> Vec<deskmate_core::app::PersonaBackend> {
    state.persona_backends()
}

pub fn run() -> anyhow::Result<()> {
    STARTED.get_or_init(std::time::Instant::now);
    // Only errors from llama.cpp (it logs hundreds of lines per model load).
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = deskmate_core::engine::llama_log::quiet_llama_filter(tracing::Level::INFO);
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .init();

    let paths = Paths::resolve(&PathOverrides::default())?;
    tracing::info!(
        config = %paths.config_file.display(),
        data = %paths.data_dir.display(),
        models = %paths.models_dir.display(),
        "starting Deskmate"
    );
    let app = Arc::new(App::open(paths)?);
    let for_exit = Arc::clone(&app);

    tauri::Builder::default()
        .plugin(tauri_plugin_store::Builder::default().build())
        .plugin(tauri_plugin_dialog::init())
        .setup(move |tauri_app| {
            let handle = tauri_app.handle().clone();
            app.start_monitor(move |sample: &MonitorSample| {
                if let Err(e) = handle.emit(MONITOR_EVENT, sample) {
                    tracing::debug!(error = %e, "monitor sample not delivered");
                }
            });
            if let Err(e) = app.load_in_background(&[
                deskmate_core::store::Persona::Office,
                deskmate_core::store::Persona::Character,
            ]) {
                tracing::warn!(error = %e, "models not loaded");
            }
            docs_commands::forward_import_events(&app, tauri_app.handle().clone());
            models_commands::forward_download_events(&app, tauri_app.handle().clone());
            // The local API runs when the configuration says so.
            let api_server = Arc::new(api_commands::ApiServer::default());
            api_server.reconcile(&app);
            tauri_app.manage(api_server);
            // An import cut off by the last exit carries on (and embeddings missing since the
            // model was absent are made), in the background.
            if let Err(e) = app.resume_imports() {
                tracing::warn!(error = %e, "imports not resumed");
            }
            tauri_app.manage(app);
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            app_status,
            monitor_snapshot,
            monitor_set_visible,
            engine_status,
            persona_backends,
            chat_commands::sessions_list,
            chat_commands::session_open,
            chat_commands::session_create,
            chat_commands::session_set_setup,
            chat_commands::session_rename,
            chat_commands::session_delete,
            chat_commands::session_export,
            chat_commands::chat_send,
            chat_commands::chat_retry,
            chat_commands::chat_stop,
            chat_commands::cards_list,
            chat_commands::card_save,
            chat_commands::card_delete,
            settings_commands::config_get,
            settings_commands::config_save,
            settings_commands::engine_reload,
            settings_commands::model_pick,
            models_commands::model_catalog,
            models_commands::models_download,
            models_commands::model_download_pause,
            models_commands::model_download_cancel,
            models_commands::model_use,
            models_commands::models_mirror_pick,
            docs_commands::documents_list,
            docs_commands::documents_status,
            docs_commands::documents_import,
            docs_commands::documents_pick,
            docs_commands::documents_cancel,
            docs_commands::documents_delete,
            docs_commands::documents_set_level,
            docs_commands::documents_reindex,
            docs_commands::documents_search,
            docs_commands::documents_open,
            docs_commands::profiles_list,
            docs_commands::profile_create,
            docs_commands::profile_activate,
            docs_commands::profile_delete,
            media_commands::voice_status,
            media_commands::voice_start,
            media_commands::voice_stop,
            media_commands::voice_cancel,
            media_commands::voice_transcribe_file,
            media_commands::voice_transcribe_path,
            media_commands::image_attach_path,
            media_commands::image_attach,
            media_commands::vision_support,
            api_commands::api_status,
            api_commands::api_set_enabled,
            api_commands::api_key_show,
            api_commands::api_key_new,
        ])
        .build(tauri::generate_context!())?
        .run(move |_, event| {
            if let tauri::RunEvent::Exit = event {
                // The conversations in the models' slots are saved for the next start.
                for_exit.shutdown();
            }
        });
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::BTreeSet;

    /// The names between `start` and the next `end` that look like identifiers, without paths.
    fn names_between(text: &str, start: &str, end: &str) -> BTreeSet<String> {
        let from = text.find(start).expect("start marker") + start.len();
        let to = from + text[from..].find(end).expect("end marker");
        text[from..to]
            .split([',', '\n'])
            .map(|s| s.trim().trim_matches('"'))
            .filter(|s| !s.is_empty() && !s.starts_with("//"))
            .map(|s| s.rsplit("::").next().unwrap_or(s).to_owned())
            .collect()
    }

    /// Tauri refuses, at run time only, a command that is registered but not declared in the
    /// ACL manifest or not allowed by the capability: keep the three lists equal.
    #[test]
    fn every_registered_command_is_declared_and_allowed_and_nothing_else_is() {
        let registered = names_between(include_str!("lib.rs"), "tauri::generate_handler![", "]");
        let declared = names_between(
            include_str!("../build.rs"),
            "const COMMANDS: &[&str] = &[",
            "];",
        );
        let capability: serde_json::Value =
            serde_json::from_str(include_str!("../capabilities/default.json")).unwrap();
        let allowed: BTreeSet<String> = capability["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p.as_str()?.strip_prefix("allow-"))
            .map(|p| p.replace('-', "_"))
            .collect();
        assert!(registered.len() >= 20, "{registered:?}");
        assert_eq!(
            registered, declared,
            "generate_handler! vs build.rs COMMANDS"
        );
        assert_eq!(
            registered, allowed,
            "generate_handler! vs capabilities/default.json"
        );
        let others: Vec<&str> = capability["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p.as_str())
            .filter(|p| !p.starts_with("allow-"))
            .collect();
        assert_eq!(
            others,
            ["core:event:default", "store:default"],
            "only the event channel and the store plugin besides our commands"
        );
    }
}
