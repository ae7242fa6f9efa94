pub fn run() {
    let _ = tauri::Builder::default().plugin(tauri_plugin_store::Builder::default().build()).run(tauri::generate_context!());
}
