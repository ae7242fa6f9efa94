//! Commands of the Settings and Models pages: the engine settings in `config.json` (written
//! back only when valid) and reloading a persona's model, or picking its file.

use deskmate_core::config::{Config, ConfigSource};
use deskmate_core::store::Persona;
use deskmate_core::ErrorPayload;
use tauri::State;
use tauri_plugin_dialog::DialogExt;

use crate::{internal, load_in_background, AppState};

/// The configuration in use.
#[tauri::command]
pub fn config_get(state: State<'_, AppState>) -> Result<Config, ErrorPayload> {
    Ok(state.startup()?.config.config.clone())
}

/// Validates and saves the configuration (atomically; an invalid one is refused with every
/// problem named and the file is left as it was), then reloads each persona whose model
/// settings changed.
#[tauri::command]
pub async fn config_save(
    state: State<'_, AppState>,
    config: Config,
) -> Result<Config, ErrorPayload> {
    let (paths, old) = state.paths_and_config()?;
    let to_save = config.clone();
    let file = paths.config_file.clone();
    crate::blocking(move || to_save.save(&file)).await?;
    {
        let mut startup = state.startup()?;
        startup.config.config = config.clone();
        startup.config.source = ConfigSource::User;
        startup.config.problems.clear();
    }
    if old.speech != config.speech {
        state.media.reconfigure(&paths, &config);
    }
    let changed: Vec<Persona> = [Persona::Office, Persona::Character]
        .into_iter()
        .filter(|&p| old.models.persona(p) != config.models.persona(p))
        .collect();
    if !changed.is_empty() {
        load_in_background(state.engine()?, &paths, &config, &changed);
    }
    Ok(config)
}

/// Loads a persona's model again with the current configuration (in the background; the
/// Models page follows it through `engine_status`).
#[tauri::command]
pub fn engine_reload(state: State<'_, AppState>, persona: Persona) -> Result<(), ErrorPayload> {
    let (paths, config) = state.paths_and_config()?;
    load_in_background(state.engine()?, &paths, &config, &[persona]);
    Ok(())
}

/// Asks for a GGUF file, makes it the persona's model in `config.json` and loads it; `None`
/// when the user cancelled the dialog.
#[tauri::command]
pub async fn model_pick(
    app: tauri::AppHandle,
    state: State<'_, AppState>,
    persona: Persona,
) -> Result<Option<String>, ErrorPayload> {
    let (paths, mut config) = state.paths_and_config()?;
    let start_dir = paths.models_dir.clone();
    let picked = tauri::async_runtime::spawn_blocking(move || {
        app.dialog()
            .file()
            .set_directory(start_dir)
            .add_filter("GGUF model", &["gguf"])
            .blocking_pick_file()
    })
    .await
    .map_err(|_| internal("the file dialog"))?;
    let Some(path) = picked.and_then(|p| p.into_path().ok()) else {
        return Ok(None);
    };
    match persona {
        Persona::Office => config.models.office.path = path.clone(),
        Persona::Character => config.models.character.path = path.clone(),
    }
    config_save(state, config).await?;
    Ok(Some(path.display().to_string()))
}
