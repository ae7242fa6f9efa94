//! The Deskmate desktop shell: a thin layer of Tauri commands over `deskmate-core`.
//!
//! No business logic lives here. A command locks the shared [`AppState`], calls the core and maps
//! a core error to its `{code, message}` payload, which the UI turns into a translated message.
//! Start-up never fails on a bad configuration, a missing model or an unreadable database: those
//! are reported through `app_status` and shown as banners.

use std::sync::Mutex;

use deskmate_core::paths::PathOverrides;
use deskmate_core::startup::{AppStatus, Startup};
use deskmate_core::ErrorPayload;
use tauri::Manager;

pub struct AppState {
    startup: Mutex<Startup>,
}

/// The start-up snapshot: paths, configuration problems, store health and model files.
#[tauri::command]
fn app_status(state: tauri::State<'_, AppState>) -> Result<AppStatus, ErrorPayload> {
    let startup = state.startup.lock().map_err(|_| ErrorPayload {
        code: "internal",
        message: "application state is unavailable after an earlier failure".to_owned(),
    })?;
    Ok(startup.status())
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
            app.manage(AppState {
                startup: Mutex::new(startup),
            });
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![app_status])
        .run(tauri::generate_context!())?;
    Ok(())
}
