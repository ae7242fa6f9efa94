//! Commands of the Settings and Models pages: the configuration (saved only when valid, then
//! applied by the core's reload rules), reloading a persona's model, or picking its file.

use std::sync::Arc;

use deskmate_core::config::Config;
use deskmate_core::store::Persona;
use deskmate_core::Error;
use tauri::State;
use tauri_plugin_dialog::DialogExt;

use crate::{blocking, pick_path, AppState};

/// The configuration in use.
#[tauri::command]
pub fn config_get(state: State<'_, AppState>) -> Config {
    state.config()
}

/// Validates and saves the configuration (an invalid one is refused with every problem named
/// and the file is left as it was), then applies it (see `App::save_config`).
#[tauri::command]
pub async fn config_save(
    state: State<'_, AppState>,
    api_server: State<'_, Arc<crate::api_commands::ApiServer>>,
    config: Config,
) -> Result<Config, Error> {
    let (app, api_server) = (Arc::clone(&state), Arc::clone(&api_server));
    blocking(move || {
        let saved = app.save_config(config)?;
        // The local API follows `api.*` (on, off, another port).
        api_server.reconcile(&app);
        Ok(saved)
    })
    .await
}

/// Loads a persona's model again with the current configuration (in the background; the
/// Models page follows it through `engine_status`).
#[tauri::command]
pub fn engine_reload(state: State<'_, AppState>, persona: Persona) -> Result<(), Error> {
    state.load_in_background(&[persona])
}

/// Asks for a GGUF file, makes it the persona's model in `config.json` and loads it; `None`
/// when the user cancelled the dialog.
#[tauri::command]
pub async fn model_pick(
    window: tauri::AppHandle,
    state: State<'_, AppState>,
    persona: Persona,
) -> Result<Option<String>, Error> {
    let start_dir = state.paths().models_dir.clone();
    let picked = pick_path(move || {
        window
            .dialog()
            .file()
            .set_directory(start_dir)
            .add_filter("GGUF model", &["gguf"])
            .blocking_pick_file()
    })
    .await?;
    let Some(path) = picked else {
        return Ok(None);
    };
    let app = Arc::clone(&state);
    let shown = path.display().to_string();
    blocking(move || app.set_model_file(persona, path)).await?;
    Ok(Some(shown))
}
