//! The Deskmate desktop shell: a thin layer of Tauri commands over `deskmate-core`.
//!
//! No business logic lives here. A command locks the shared [`AppState`], calls the core and maps
//! a core error to its `{code, message}` payload, which the UI turns into a translated message.
//! Start-up never fails on a bad configuration, a missing model or an unreadable database: those
//! are reported through `app_status` and shown as banners.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use deskmate_core::engine::{Engine, PersonaState};
use deskmate_core::store::Persona;

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
    let jobs: Vec<_> = [Persona::Office, Persona::Character]
        .into_iter()
        .map(|persona| {
            let config = match persona {
                Persona::Office => startup.config.config.models.office.clone(),
                Persona::Character => startup.config.config.models.character.clone(),
            };
            (persona, startup.paths.model_path(&config.path), config)
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
            app.manage(AppState {
                startup: Mutex::new(startup),
                monitor,
                engine,
            });
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            app_status,
            monitor_snapshot,
            monitor_set_visible,
            engine_status
        ])
        .run(tauri::generate_context!())?;
    Ok(())
}
