//! The Deskmate desktop shell: a thin layer of Tauri commands over `deskmate-core`.
//!
//! No business logic lives here. A command locks the shared [`AppState`], calls the core and maps
//! a core error to its `{code, message}` payload, which the UI turns into a translated message.
//! Start-up never fails on a bad configuration, a missing model or an unreadable database: those
//! are reported through `app_status` and shown as banners.

mod chat_commands;
mod docs_commands;
mod media_commands;
mod settings_commands;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deskmate_core::chat::Chat;
use deskmate_core::config::Config;
use deskmate_core::documents::Library;
use deskmate_core::engine::{Engine, PersonaState};
use deskmate_core::paths::Paths;
use deskmate_core::store::{Persona, Store};

use deskmate_core::gpu::{self, Monitor, MonitorSample, MonitorSnapshot, Sampler};
use deskmate_core::paths::PathOverrides;
use deskmate_core::startup::{AppStatus, Startup};
use deskmate_core::ErrorPayload;
use tauri::{Emitter, Manager};

/// The event that carries one [`MonitorSample`] to the UI, about once a second.
pub const MONITOR_EVENT: &str = "monitor://sample";

pub struct AppState {
    startup: Mutex<Startup>,
    /// `None` when the sampling thread could not be started (reported by `monitor_snapshot`).
    monitor: Option<Monitor>,
    /// The model host, or why llama.cpp could not start (reported by `engine_status`).
    engine: Result<Arc<Engine>, ErrorPayload>,
    /// Chat turns, sessions and cards on their own store connection, or why there is none.
    chat: Result<Arc<Chat>, ErrorPayload>,
    /// The document library on its own store connection, or why there is none.
    library: Result<Arc<Library>, ErrorPayload>,
    /// Voice input and image attachments.
    media: media_commands::Media,
}

impl AppState {
    fn startup(&self) -> Result<std::sync::MutexGuard<'_, Startup>, ErrorPayload> {
        self.startup
            .lock()
            .map_err(|_| internal("application state"))
    }

    fn chat(&self) -> Result<Arc<Chat>, ErrorPayload> {
        self.chat.clone()
    }

    fn library(&self) -> Result<Arc<Library>, ErrorPayload> {
        self.library.clone()
    }

    fn engine(&self) -> Result<Arc<Engine>, ErrorPayload> {
        self.engine.clone()
    }

    /// The paths and the current configuration, copied out of the lock.
    fn paths_and_config(&self) -> Result<(Paths, Config), ErrorPayload> {
        let startup = self.startup()?;
        Ok((startup.paths.clone(), startup.config.config.clone()))
    }
}

/// Runs blocking core work off the async runtime and flattens its result.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> deskmate_core::Result<T> + Send + 'static,
) -> Result<T, ErrorPayload> {
    tauri::async_runtime::spawn_blocking(work)
        .await
        .map_err(|_| internal("a background task"))?
        .map_err(|e| ErrorPayload::from(&e))
}

fn lock_store(store: &Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(PoisonError::into_inner)
}

fn internal(what: &str) -> ErrorPayload {
    ErrorPayload {
        code: "internal",
        message: format!("{what} is unavailable after an earlier failure"),
    }
}

/// The start-up snapshot: paths, configuration problems, store health and model files.
#[tauri::command]
fn app_status(state: tauri::State<'_, AppState>) -> Result<AppStatus, ErrorPayload> {
    let startup = state
        .startup
        .lock()
        .map_err(|_| internal("application state"))?;
    Ok(startup.status())
}

/// The monitor's history so far and where the models sit, for the Monitor page and the gauge.
#[tauri::command]
fn monitor_snapshot(state: tauri::State<'_, AppState>) -> Result<MonitorSnapshot, ErrorPayload> {
    let placements = {
        let startup = state
            .startup
            .lock()
            .map_err(|_| internal("application state"))?;
        gpu::configured_placements(&startup.config.config)
    };
    state
        .monitor
        .as_ref()
        .map(|m| m.snapshot(placements))
        .ok_or(ErrorPayload {
            code: "monitor_unavailable",
            message: "the GPU monitor thread could not be started".to_owned(),
        })
}

/// Pauses sampling while the window is hidden.
#[tauri::command]
fn monitor_set_visible(state: tauri::State<'_, AppState>, visible: bool) {
    if let Some(monitor) = &state.monitor {
        monitor.set_visible(visible);
    }
}

/// Each persona's model: loading, loaded (load report and live statistics), failed (the error
/// and every load attempt) or not loaded.
#[tauri::command]
fn engine_status(state: tauri::State<'_, AppState>) -> Result<Vec<PersonaState>, ErrorPayload> {
    match &state.engine {
        Ok(engine) => Ok(engine.persona_states()),
        Err(e) => Err(e.clone()),
    }
}

/// Loads both personas' models off the async runtime (loading takes seconds), one after the
/// other so the second sees the VRAM the first took.
fn load_models_in_background(engine: Arc<Engine>, startup: &Startup) {
    load_in_background(
        engine,
        &startup.paths,
        &startup.config.config,
        &[Persona::Office, Persona::Character],
    );
}

/// Loads (or reloads) the given personas' models on a thread of their own, in order.
fn load_in_background(engine: Arc<Engine>, paths: &Paths, config: &Config, personas: &[Persona]) {
    let jobs: Vec<_> = personas
        .iter()
        .map(|&persona| {
            let config = config.models.persona(persona).clone();
            (persona, paths.model_path(&config.path), config)
        })
        .collect();
    let spawned = std::thread::Builder::new()
        .name("deskmate-model-loader".into())
        .spawn(move || {
            for (persona, path, config) in jobs {
                if let Err(e) = engine.load(persona, &path, &config) {
                    tracing::warn!(persona = persona.as_str(), error = %e, "model not loaded");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "the model loading thread could not be started");
    }
}

/// The chat service on a store connection of its own; replies left `streaming` by a previous
/// run that ended mid-reply are marked interrupted first.
fn open_chat(
    startup: &Startup,
    engine: &Result<Arc<Engine>, ErrorPayload>,
    library: &Result<Arc<Library>, ErrorPayload>,
) -> Result<Arc<Chat>, ErrorPayload> {
    let engine = engine.clone()?;
    let mut store = Store::open(&startup.paths.database).map_err(|e| ErrorPayload::from(&e))?;
    match store.interrupt_unfinished_replies() {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            replies = n,
            "replies cut off by the last exit marked interrupted"
        ),
        Err(e) => tracing::warn!(error = %e, "unfinished replies not marked"),
    }
    let chat = Chat::new(Arc::new(Mutex::new(store)), engine);
    Ok(Arc::new(match library {
        Ok(library) => chat.with_library(Arc::clone(library)),
        Err(_) => chat,
    }))
}

pub fn run() -> anyhow::Result<()> {
    // Only errors from llama.cpp (it logs hundreds of lines per model load).
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = deskmate_core::engine::llama_log::quiet_llama_filter(tracing::Level::INFO);
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .init();

    let startup = Startup::open(&PathOverrides::default())?;
    tracing::info!(
        config = %startup.paths.config_file.display(),
        data = %startup.paths.data_dir.display(),
        models = %startup.paths.models_dir.display(),
        "starting Deskmate"
    );

    tauri::Builder::default()
        .plugin(tauri_plugin_store::Builder::default().build())
        .plugin(tauri_plugin_dialog::init())
        .setup(move |app| {
            let monitor_config = startup.config.config.monitor.clone();
            let interval = Duration::from_millis(u64::from(monitor_config.interval_ms));
            let handle = app.handle().clone();
            let monitor = Monitor::start(
                Sampler::nvml(monitor_config),
                interval,
                move |sample: &MonitorSample| {
                    if let Err(e) = handle.emit(MONITOR_EVENT, sample) {
                        tracing::debug!(error = %e, "monitor sample not delivered");
                    }
                },
            )
            .map_err(|e| tracing::error!(error = %e, "the GPU monitor thread could not be started"))
            .ok();
            // Finished requests go to the request log through a connection of their own.
            let sink = deskmate_core::store::Store::open(&startup.paths.database)
                .ok()
                .map(|store| deskmate_core::engine::store_sink(Arc::new(Mutex::new(store))));
            let engine = Engine::new(sink)
                .map(Arc::new)
                .map_err(|e| ErrorPayload::from(&e));
            if let Ok(engine) = &engine {
                load_models_in_background(Arc::clone(engine), &startup);
            }
            let library = Library::open(
                &startup.paths.database,
                &startup.paths.vector_index,
                &startup.config.config,
                &startup.paths.models_dir,
            )
            .map(Arc::new)
            .map_err(|e| {
                tracing::error!(error = %e, "the document library could not be opened");
                ErrorPayload::from(&e)
            });
            // An import cut off by the last exit carries on (and embeddings missing since the
            // model was absent are made), in the background.
            if let Ok(library) = &library {
                docs_commands::run_imports(app.handle().clone(), Arc::clone(library));
            }
            let chat = open_chat(&startup, &engine, &library);
            let media = media_commands::Media::new(&startup.paths, &startup.config.config);
            app.manage(AppState {
                startup: Mutex::new(startup),
                monitor,
                engine,
                chat,
                library,
                media,
            });
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            app_status,
            monitor_snapshot,
            monitor_set_visible,
            engine_status,
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
        ])
        .run(tauri::generate_context!())?;
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
