//! The Deskmate desktop shell: a thin layer of Tauri commands over `deskmate-core`.
//!
//! No business logic lives here. A command locks the shared [`AppState`], calls the core and maps
//! a core error to its `{code, message}` payload, which the UI turns into a translated message.
//! Start-up never fails on a bad configuration, a missing model or an unreadable database: those
//! are reported through `app_status` and shown as banners.

use std::sync::Mutex;
use std::time::Duration;

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

pub fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
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
            app.manage(AppState {
                startup: Mutex::new(startup),
                monitor,
            });
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            app_status,
            monitor_snapshot,
            monitor_set_visible
        ])
        .run(tauri::generate_context!())?;
    Ok(())
}
