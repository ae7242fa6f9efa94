//! Declares the app's own commands to Tauri's access control, so that only the commands listed
//! in `capabilities/default.json` can be called from the window (and nothing undeclared).

const COMMANDS: &[&str] = &[
    "app_status",
    "monitor_snapshot",
    "monitor_set_visible",
    "engine_status",
    "persona_backends",
    "sessions_list",
    "session_open",
    "session_create",
    "session_set_setup",
    "session_rename",
    "session_delete",
    "session_export",
    "chat_send",
    "chat_retry",
    "chat_stop",
    "cards_list",
    "card_save",
    "card_delete",
    "config_get",
    "config_save",
    "engine_reload",
    "model_pick",
    "model_catalog",
    "models_download",
    "model_download_pause",
    "model_download_cancel",
    "model_use",
    "models_mirror_pick",
    "documents_list",
    "documents_status",
    "documents_import",
    "documents_pick",
    "documents_cancel",
    "documents_delete",
    "documents_set_level",
    "documents_reindex",
    "documents_search",
    "documents_open",
    "profiles_list",
    "profile_create",
    "profile_activate",
    "profile_delete",
    "voice_status",
    "voice_start",
    "voice_stop",
    "voice_cancel",
    "voice_transcribe_file",
    "voice_transcribe_path",
    "image_attach_path",
    "image_attach",
    "vision_support",
    "api_status",
    "api_set_enabled",
    "api_key_show",
    "api_key_new",
];

fn main() {
    let attributes = tauri_build::Attributes::new()
        .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    if let Err(e) = tauri_build::try_build(attributes) {
        eprintln!("tauri build script failed: {e:#}");
        std::process::exit(1);
    }
}
