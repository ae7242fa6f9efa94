//! End-to-end tests of the built desktop app, driven through `tauri-driver` under Xvfb.
//!
//! They are `#[ignore]`d in a plain `cargo test` because they need the built app, a display and
//! `tauri-driver`; `cargo xtask e2e` (and `cargo xtask test`) provides all three and runs them
//! with `--ignored`. Each test starts the app on its own empty configuration, data and models
//! directories and saves screenshots under `target/e2e/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use deskmate_tests::{app_binary, App};

const NEEDS: &str = "needs the built app, a display and tauri-driver: run `cargo xtask e2e`";

/// A fresh app home: config, data and models directories in a temp dir, and the locale.
fn app_env(home: &Path, lang: &str) -> Vec<(&'static str, OsString)> {
    vec![
        (
            "DESKMATE_CONFIG",
            home.join("config").join("config.json").into(),
        ),
        ("DESKMATE_DATA_DIR", home.join("data").into()),
        ("DESKMATE_MODELS_DIR", home.join("models").into()),
        ("LANG", lang.into()),
        ("LC_ALL", lang.into()),
        ("LANGUAGE", "".into()),
    ]
}

/// Starts the built app on a fresh home and waits until its UI has loaded.
fn open_app(home: &Path, lang: &str) -> App {
    let app = App::launch(&app_binary().expect(NEEDS), &app_env(home, lang)).unwrap();
    app.wait_ready().unwrap();
    app
}

const PAGES: [(&str, &str); 6] = [
    // The chat page's heading is the open conversation's title.
    ("chat", "New chat"),
    ("cards", "Cards"),
    ("documents", "Documents"),
    ("monitor", "Monitor"),
    ("models", "Models"),
    ("settings", "Settings"),
];

#[test]
#[ignore = "needs the built app, a display and tauri-driver: run `cargo xtask e2e`"]
fn every_page_opens_from_the_navigation_and_missing_models_are_announced() {
    let home = tempfile::tempdir().unwrap();
    let app = open_app(home.path(), "en_US.UTF-8");

    // The empty models directory has no chat model: a banner says so instead of a crash.
    let banner = app.text("[data-testid=\"banner-model-office\"]").unwrap();
    assert!(
        banner.contains("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"),
        "banner text: {banner}"
    );
    assert!(
        !app.exists("[data-testid=\"banner-config\"]").unwrap(),
        "a fresh config has no problems"
    );
    app.screenshot("start.png").unwrap();

    for (page, title) in PAGES {
        app.click(&format!("[data-testid=\"nav-{page}\"]")).unwrap();
        let heading = format!("[data-testid=\"page-{page}\"] h1");
        app.wait_for(&heading).unwrap();
        let h1 = app
            .script(
                "return document.querySelector(arguments[0]).textContent.trim();",
                serde_json::json!([heading]),
            )
            .unwrap();
        assert_eq!(h1, title, "page {page}");
        app.screenshot(&format!("page-{page}.png")).unwrap();
    }

    // The first start created the user's configuration and the database in the given folders.
    assert!(home.path().join("config").join("config.json").is_file());
    assert!(home.path().join("data").join("deskmate.sqlite3").is_file());
    let settings = app.text("[data-testid=\"page-settings\"]").unwrap();
    assert!(
        settings.contains(&home.path().join("data").display().to_string()),
        "{settings}"
    );
}

#[test]
#[ignore = "needs the built app, a display and tauri-driver: run `cargo xtask e2e`"]
fn a_broken_config_is_shown_as_a_banner_naming_each_problem() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config").join("config.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(
        &config,
        r#"{"models": {"office": {"n_ctx": 0}}, "colour": "blue"}"#,
    )
    .unwrap();

    let app = open_app(home.path(), "en_US.UTF-8");
    let banner = app.text("[data-testid=\"banner-config\"]").unwrap();
    assert!(
        banner.contains("models.office.n_ctx"),
        "banner text: {banner}"
    );
    assert!(
        banner.contains("must be between 256 and 131072, got 0"),
        "banner text: {banner}"
    );
    assert!(banner.contains("colour"), "banner text: {banner}");
    app.screenshot("config-problem.png").unwrap();

    // The app keeps working on the defaults and leaves the user's file for them to fix.
    app.click("[data-testid=\"nav-settings\"]").unwrap();
    app.wait_for("[data-testid=\"page-settings\"]").unwrap();
    assert!(std::fs::read_to_string(&config).unwrap().contains("colour"));
}

#[test]
#[ignore = "needs the built app, a display and tauri-driver: run `cargo xtask e2e`"]
fn a_korean_system_locale_shows_the_korean_interface() {
    let home = tempfile::tempdir().unwrap();
    let app = open_app(home.path(), "ko_KR.UTF-8");
    app.wait_until(
        "document.querySelector('[data-testid=\"nav-chat\"]')?.textContent.includes('대화')",
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    app.click("[data-testid=\"nav-models\"]").unwrap();
    assert_eq!(
        app.text("[data-testid=\"page-models\"] h1").unwrap(),
        "모델"
    );
    app.screenshot("korean-models.png").unwrap();
    app.click("[data-testid=\"nav-chat\"]").unwrap();
    let send = app.text("[data-testid=\"chat-send\"]").unwrap();
    assert_eq!(send, "보내기");
    app.screenshot("korean-chat.png").unwrap();
}

#[test]
#[ignore = "needs the built app, a display and tauri-driver: run `cargo xtask e2e`"]
fn the_monitor_page_says_there_is_no_nvidia_gpu_and_charts_cpu_and_ram() {
    let home = tempfile::tempdir().unwrap();
    let app = open_app(home.path(), "en_US.UTF-8");

    // The top-bar gauge is on every page; without NVML it shows CPU and RAM.
    app.wait_for("[data-testid=\"gauge\"] [data-testid=\"gauge-cpu\"]")
        .unwrap();
    app.wait_for("[data-testid=\"gauge\"] [data-testid=\"gauge-ram\"]")
        .unwrap();

    app.click("[data-testid=\"nav-monitor\"]").unwrap();
    let notice = app.text("[data-testid=\"monitor-no-gpu\"]").unwrap();
    assert!(notice.contains("No NVIDIA GPU"), "notice: {notice}");
    assert!(
        notice.contains("libnvidia-ml"),
        "the reason is shown: {notice}"
    );

    // A few samples arrive once a second and are drawn as lines.
    app.wait_until(
        "['cpu', 'ram'].every(m => { const c = document.querySelector(`[data-testid=\"chart-${m}\"]`); \
         return c && [...c.querySelectorAll('path')].some(p => (p.getAttribute('d') || '').split('L').length >= 3); })",
        std::time::Duration::from_secs(20),
    )
    .unwrap();
    let placements = app.text("[data-testid=\"monitor-placements\"]").unwrap();
    assert!(placements.contains("GPU 0"), "placements: {placements}");
    app.screenshot("monitor-no-gpu.png").unwrap();
}

/// The real GPU code path in the window: with Mesa's software Vulkan device named (llama.cpp
/// skips CPU-type devices otherwise), the Models page names the device the layers are on and both
/// fit predictions, and the Monitor page shows the device llama.cpp lists beside NVML's (none).
#[test]
#[ignore = "needs the built app, a display and tauri-driver: run `cargo xtask e2e`"]
fn on_the_vulkan_device_the_models_page_names_it_and_the_monitor_shows_it() {
    if !Path::new("/usr/share/vulkan/icd.d/lvp_icd.x86_64.json").exists() {
        eprintln!("skipped: Mesa's software Vulkan device is not installed (mesa-vulkan-drivers)");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let smol = smol();
    let config = home.path().join("config").join("config.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let persona = serde_json::json!({ "path": smol, "n_ctx": 2048, "parallel": 2 });
    let body = serde_json::json!({ "models": { "office": persona, "character": persona } });
    std::fs::write(&config, body.to_string()).unwrap();

    let mut env = app_env(home.path(), "en_US.UTF-8");
    env.push(("GGML_VK_VISIBLE_DEVICES", "0".into()));
    let app = App::launch(&app_binary().expect(NEEDS), &env).unwrap();
    app.wait_ready().unwrap();
    app.click("[data-testid=\"nav-models\"]").unwrap();
    app.wait_until(
        "document.querySelector('[data-testid=\"engine-office\"]')?.dataset.state === 'loaded'",
        std::time::Duration::from_secs(60),
    )
    .unwrap();
    let office = app.text("[data-testid=\"engine-office\"]").unwrap();
    assert!(
        office.contains("30/30 layers on Vulkan0 (llvmpipe"),
        "{office}"
    );
    let fit = app.text("[data-testid=\"model-fit-office\"]").unwrap();
    assert!(
        fit.contains("predicted 30 layers (llama.cpp), 30 (Deskmate)"),
        "{fit}"
    );
    app.script(
        "document.querySelector('[data-testid=\"engine-office\"]').scrollIntoView(); return true;",
        serde_json::json!([]),
    )
    .unwrap();
    app.screenshot("models-vulkan.png").unwrap();

    app.click("[data-testid=\"nav-monitor\"]").unwrap();
    app.wait_for("[data-testid=\"monitor-gpu-0-listed-by\"]")
        .unwrap();
    let name = app.text("[data-testid=\"monitor-gpu-0-name\"]").unwrap();
    assert!(name.contains("llvmpipe"), "{name}");
    // Where the loaded model sits, as loaded (not only as configured).
    let placement = app
        .text("[data-testid=\"monitor-placement-office\"]")
        .unwrap();
    assert!(placement.contains("30 of 30 layers"), "{placement}");
    app.screenshot("monitor-vulkan.png").unwrap();
}

#[test]
#[ignore = "needs the built app, a display and tauri-driver: run `cargo xtask e2e`"]
fn the_models_page_shows_the_engines_load_reports_and_failures() {
    let home = tempfile::tempdir().unwrap();
    let smol = smol();
    let config = home.path().join("config").join("config.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let body = serde_json::json!({
        "models": {
            "office": { "path": smol, "n_ctx": 2048, "parallel": 2 },
            "character": { "path": "not-downloaded.gguf" }
        }
    });
    std::fs::write(&config, body.to_string()).unwrap();

    let app = open_app(home.path(), "en_US.UTF-8");
    app.click("[data-testid=\"nav-models\"]").unwrap();
    app.wait_until(
        "document.querySelector('[data-testid=\"engine-office\"]')?.dataset.state === 'loaded' \
         && document.querySelector('[data-testid=\"engine-character\"]')?.dataset.state === 'failed'",
        std::time::Duration::from_secs(60),
    )
    .unwrap();
    let office = app.text("[data-testid=\"engine-office\"]").unwrap();
    assert!(office.contains("CPU only (30 layers)"), "{office}");
    assert!(
        office.contains("2,048 tokens, 2 slots of 1,024"),
        "{office}"
    );
    assert!(
        office.contains("0 GPU layers, context 2,048: loaded"),
        "{office}"
    );
    let character = app
        .text("[data-testid=\"engine-failure-character\"]")
        .unwrap();
    assert!(character.contains("model_missing"), "{character}");
    app.script(
        "document.querySelector('[data-testid=\"engine-office\"]').scrollIntoView(); return true;",
        serde_json::json!([]),
    )
    .unwrap();
    app.screenshot("models-engine.png").unwrap();

    // Reload goes through the engine again (loading, then loaded).
    app.click("[data-testid=\"model-reload-office\"]").unwrap();
    app.wait_until(
        "[...document.querySelectorAll('[data-testid=\"toast\"]')].some(t => t.textContent.includes('Reloading'))",
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    app.wait_until(
        "document.querySelector('[data-testid=\"engine-office\"]')?.dataset.state === 'loaded'",
        std::time::Duration::from_secs(60),
    )
    .unwrap();

    // Engine settings are written back only when valid; a bad value names its key and the file
    // stays as it was.
    app.click("[data-testid=\"nav-settings\"]").unwrap();
    app.clear("[data-testid=\"engine-office-gpu-layers\"]")
        .unwrap();
    app.type_text("[data-testid=\"engine-office-gpu-layers\"]", "5000")
        .unwrap();
    app.click("[data-testid=\"engine-save\"]").unwrap();
    let error = app.text("[data-testid=\"engine-save-error\"]").unwrap();
    assert!(error.contains("models.office.n_gpu_layers"), "{error}");
    let before = std::fs::read_to_string(&config).unwrap();
    assert_eq!(
        before,
        body.to_string(),
        "an invalid save leaves the file untouched"
    );
    app.clear("[data-testid=\"engine-max-chars\"]").unwrap();
    app.type_text("[data-testid=\"engine-max-chars\"]", "1234")
        .unwrap();
    app.clear("[data-testid=\"engine-office-gpu-layers\"]")
        .unwrap();
    app.type_text("[data-testid=\"engine-office-gpu-layers\"]", "0")
        .unwrap();
    app.click("[data-testid=\"engine-save\"]").unwrap();
    app.wait_until(
        "!document.querySelector('[data-testid=\"engine-save-error\"]')",
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(saved["chat"]["max_message_chars"], 1234);
    assert_eq!(saved["models"]["office"]["n_gpu_layers"], 0);
    app.screenshot("settings-saved.png").unwrap();

    // The local API: the switch starts the server (and saves api.enabled), its address and key
    // are shown, the server answers with that key, and switching off stops it.
    app.click("[data-testid=\"api-enabled\"]").unwrap();
    app.wait_for("[data-testid=\"api-url\"]").unwrap();
    let url = app.text("[data-testid=\"api-url\"]").unwrap();
    assert!(url.contains("http://127.0.0.1:"), "{url}");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(saved["api"]["enabled"], true);
    app.click("[data-testid=\"api-key-show\"]").unwrap();
    app.wait_until(
        "document.querySelector('[data-testid=\"api-key\"]')?.textContent.includes('dm-') && !document.querySelector('[data-testid=\"api-key\"]')?.textContent.includes('•')",
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    let key = app.text("[data-testid=\"api-key\"]").unwrap();
    let key = key.trim();
    let base = url.trim().trim_end_matches('/');
    let models = ureq::get(&format!("{base}/models"))
        .header("Authorization", &format!("Bearer {key}"))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    assert!(models.contains("\"office\""), "{models}");
    app.screenshot("settings-api.png").unwrap();
    app.click("[data-testid=\"api-enabled\"]").unwrap();
    app.wait_until(
        "!document.querySelector('[data-testid=\"api-url\"]')",
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    assert!(
        ureq::get(&format!("{base}/models")).call().is_err(),
        "stopped"
    );
}

// --- the chat desktop (issue 4), against the real SmolLM2 model ---

fn smol() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models/SmolLM2-135M-Instruct.Q4_1.gguf")
        .canonicalize()
        .expect("the SmolLM2 test model is in models/ (cargo xtask models --set test)")
}

/// Starts the app with SmolLM2 as the office model (and `character` as the character's file),
/// on the chat page, once the office model has loaded.
fn open_chat_app(home: &Path, character: serde_json::Value, max_tokens: u32) -> App {
    let config = home.join("config").join("config.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let model = |path: serde_json::Value| {
        serde_json::json!({
            "path": path, "n_ctx": 4096, "parallel": 2, "threads": 2,
            "sampling": { "temperature": 0.0, "max_tokens": max_tokens }
        })
    };
    let body = serde_json::json!({
        "models": { "office": model(serde_json::json!(smol())), "character": model(character) },
        "chat": { "max_message_chars": 500 }
    });
    std::fs::write(&config, body.to_string()).unwrap();
    open_app(home, "en_US.UTF-8")
}

const WAIT: Duration = Duration::from_secs(90);

/// Sends a message from the composer.
fn send(app: &App, text: &str) {
    app.clear("[data-testid=\"chat-input\"]").unwrap();
    app.type_text("[data-testid=\"chat-input\"]", text).unwrap();
    app.click("[data-testid=\"chat-send\"]").unwrap();
}

fn wait_reply_complete(app: &App) {
    app.wait_until(
        "(() => { const all = document.querySelectorAll('[data-role=\"assistant\"]'); \
         return all.length && all[all.length - 1].dataset.status === 'complete' \
         && !document.querySelector('[data-testid=\"chat-stop\"]'); })()",
        WAIT,
    )
    .unwrap();
}

fn session_ids(app: &App) -> Vec<i64> {
    app.script(
        "return [...document.querySelectorAll('[data-testid^=\"session-open-\"]')] \
         .map(e => Number(e.dataset.testid.replace('session-open-', '')));",
        serde_json::json!([]),
    )
    .unwrap()
    .as_array()
    .unwrap()
    .iter()
    .filter_map(|v| v.as_i64())
    .collect()
}

#[test]
#[ignore = "needs the built app, a display and tauri-driver: run `cargo xtask e2e`"]
fn a_message_gets_a_streamed_reply_and_follow_up_questions_that_can_be_sent() {
    let home = tempfile::tempdir().unwrap();
    let app = open_chat_app(home.path(), serde_json::json!("not-downloaded.gguf"), 64);
    send(&app, "What is the capital of France?");
    // The reply streams: the message exists with status streaming before it is complete.
    app.wait_until(
        "document.querySelector('[data-role=\"assistant\"][data-status=\"streaming\"]') \
         || document.querySelector('[data-role=\"assistant\"][data-status=\"complete\"]')",
        WAIT,
    )
    .unwrap();
    wait_reply_complete(&app);
    let reply = app
        .text("[data-role=\"assistant\"][data-status=\"complete\"]")
        .unwrap();
    assert!(reply.contains("Paris"), "{reply}");
    assert_eq!(
        app.script(
            "return document.querySelector('[data-testid=\"chat-input\"]').value;",
            serde_json::json!([])
        )
        .unwrap(),
        "",
        "the sent message left the box"
    );
    // Follow-up questions arrive after the answer, as chips; a click sends one.
    app.wait_until(
        "document.querySelector('[data-testid=\"related-chip\"]')",
        WAIT,
    )
    .unwrap();
    app.screenshot("chat-reply.png").unwrap();
    let question = app.text("[data-testid=\"related-chip\"]").unwrap();
    app.click("[data-testid=\"related-chip\"]").unwrap();
    app.wait_until(
        "document.querySelectorAll('[data-role=\"user\"]').length === 2",
        WAIT,
    )
    .unwrap();
    let asked = app
        .script(
            "const u = document.querySelectorAll('[data-role=\"user\"]'); return u[1].textContent;",
            serde_json::json!([]),
        )
        .unwrap();
    assert!(
        asked.as_str().unwrap_or_default().contains(question.trim()),
        "{asked} / {question}"
    );
    wait_reply_complete(&app);
    app.screenshot("chat-related.png").unwrap();
}

#[test]
#[ignore = "needs the built app, a display and tauri-driver: run `cargo xtask e2e`"]
fn stop_keeps_the_partial_reply_and_retry_writes_it_again() {
    let home = tempfile::tempdir().unwrap();
    let app = open_chat_app(home.path(), serde_json::json!("not-downloaded.gguf"), 600);
    send(&app, "Count from 1 to 300, separated by commas.");
    app.wait_until(
        "(() => { const r = document.querySelector('[data-role=\"assistant\"][data-status=\"streaming\"]'); \
         return r && r.textContent.length > 20; })()",
        WAIT,
    )
    .unwrap();
    app.click("[data-testid=\"chat-stop\"]").unwrap();
    app.wait_until(
        "document.querySelector('[data-role=\"assistant\"][data-status=\"interrupted\"]')",
        Duration::from_secs(10),
    )
    .unwrap();
    let partial = app
        .text("[data-role=\"assistant\"][data-status=\"interrupted\"]")
        .unwrap();
    assert!(partial.contains("Interrupted"), "{partial}");
    app.screenshot("chat-stopped.png").unwrap();

    app.click("[data-testid=\"message-retry\"]").unwrap();
    app.wait_until(
        "!document.querySelector('[data-role=\"assistant\"][data-status=\"interrupted\"]')",
        WAIT,
    )
    .unwrap();
    // The retried reply replaced the interrupted one: one user message, one reply.
    app.script(
        "document.querySelector('[data-testid=\"chat-stop\"]')?.click(); return true;",
        serde_json::json!([]),
    )
    .unwrap();
    app.wait_until(
        "!document.querySelector('[data-testid=\"chat-stop\"]')",
        WAIT,
    )
    .unwrap();
    assert_eq!(
        app.script(
            "return document.querySelectorAll('[data-role=\"assistant\"]').length;",
            serde_json::json!([])
        )
        .unwrap(),
        1
    );
    app.screenshot("chat-retried.png").unwrap();
}

#[test]
#[ignore = "needs the built app, a display and tauri-driver: run `cargo xtask e2e`"]
fn a_saved_card_is_found_on_the_cards_page_and_opens_its_message() {
    let home = tempfile::tempdir().unwrap();
    let app = open_chat_app(home.path(), serde_json::json!("not-downloaded.gguf"), 48);
    send(&app, "What is the capital of France?");
    wait_reply_complete(&app);
    let reply_id = app
        .script(
            "return document.querySelector('[data-role=\"assistant\"]').dataset.testid;",
            serde_json::json!([]),
        )
        .unwrap();
    let reply_id = reply_id.as_str().unwrap().to_owned();
    app.click(&format!(
        "[data-testid=\"{reply_id}\"] [data-testid=\"message-card\"]"
    ))
    .unwrap();
    app.type_text("[data-testid=\"card-note-input\"]", "for the travel memo")
        .unwrap();
    app.click("[data-testid=\"card-note-save\"]").unwrap();
    app.wait_until(
        "!document.querySelector('[data-testid=\"card-note-input\"]')",
        Duration::from_secs(10),
    )
    .unwrap();
    // A second session, so that opening the card has to switch conversations.
    app.click("[data-testid=\"chat-new\"]").unwrap();
    send(&app, "Say hello.");
    wait_reply_complete(&app);

    app.click("[data-testid=\"nav-cards\"]").unwrap();
    app.type_text("[data-testid=\"cards-search\"]", "travel memo")
        .unwrap();
    app.wait_until(
        "document.querySelectorAll('[data-testid^=\"card-open-\"]').length === 1",
        Duration::from_secs(10),
    )
    .unwrap();
    let card = app.text("[data-testid=\"card-note\"]").unwrap();
    assert_eq!(card, "for the travel memo");
    app.screenshot("cards.png").unwrap();
    app.click("[data-testid^=\"card-open-\"]").unwrap();
    app.wait_until(
        &format!(
            "document.querySelector('[data-testid=\"{reply_id}\"]')?.classList.contains('highlighted')"
        ),
        Duration::from_secs(10),
    )
    .unwrap();
    app.screenshot("card-opened.png").unwrap();
}

#[test]
#[ignore = "needs the built app, a display and tauri-driver: run `cargo xtask e2e`"]
fn renaming_one_session_leaves_the_others_and_delete_removes_one() {
    let home = tempfile::tempdir().unwrap();
    let app = open_chat_app(home.path(), serde_json::json!("not-downloaded.gguf"), 16);
    for text in ["First topic", "Second topic", "Third topic"] {
        app.click("[data-testid=\"chat-new\"]").unwrap();
        // Enter sends (WebDriver's Enter key is U+E007).
        app.type_text("[data-testid=\"chat-input\"]", &format!("{text}\u{E007}"))
            .unwrap();
        wait_reply_complete(&app);
    }
    app.wait_until(
        "document.querySelectorAll('[data-testid^=\"session-open-\"]').length === 3",
        Duration::from_secs(10),
    )
    .unwrap();
    // The model names each session in the background after its first answer; wait until the
    // titles have settled before comparing them.
    let ids = session_ids(&app);
    let title = |id: i64| {
        app.text(&format!("[data-testid=\"session-title-{id}\"]"))
            .unwrap()
    };
    let mut before: Vec<String> = ids.iter().map(|&id| title(id)).collect();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(1500));
        let now: Vec<String> = ids.iter().map(|&id| title(id)).collect();
        if now == before {
            break;
        }
        before = now;
    }
    let target = ids[1];
    app.script(
        "document.querySelector(arguments[0]).click(); return true;",
        serde_json::json!([format!("[data-testid=\"session-rename-{target}\"]")]),
    )
    .unwrap();
    app.clear("[data-testid=\"rename-input\"]").unwrap();
    app.type_text("[data-testid=\"rename-input\"]", "Budget review\u{E007}")
        .unwrap();
    app.wait_until(
        &format!(
            "document.querySelector('[data-testid=\"session-title-{target}\"]')?.textContent === 'Budget review'"
        ),
        Duration::from_secs(10),
    )
    .unwrap();
    for (i, &id) in ids.iter().enumerate() {
        if id != target {
            assert_eq!(title(id), before[i], "session {id} kept its title");
        }
    }
    app.screenshot("sessions-renamed.png").unwrap();

    let doomed = ids[0];
    app.script(
        "document.querySelector(arguments[0]).click(); return true;",
        serde_json::json!([format!("[data-testid=\"session-delete-{doomed}\"]")]),
    )
    .unwrap();
    app.click("[data-testid=\"confirm-delete\"]").unwrap();
    app.wait_until(
        &format!("!document.querySelector('[data-testid=\"session-{doomed}\"]')"),
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(session_ids(&app).len(), 2);
    app.screenshot("sessions-deleted.png").unwrap();
}

#[test]
#[ignore = "needs the built app, a display and tauri-driver: run `cargo xtask e2e`"]
fn a_missing_model_shows_a_red_toast_and_keeps_the_message() {
    let home = tempfile::tempdir().unwrap();
    let app = open_chat_app(home.path(), serde_json::json!("not-downloaded.gguf"), 16);
    app.click("[data-testid=\"persona-character\"]").unwrap();
    app.click("[data-testid=\"preset-mochi\"]").unwrap();
    app.click("[data-testid=\"character-start\"]").unwrap();
    // The greeting is the first message.
    app.wait_until(
        "document.querySelector('[data-role=\"assistant\"]')?.textContent.includes('snacks')",
        Duration::from_secs(10),
    )
    .unwrap();
    send(&app, "Hello Mochi!");
    app.wait_until(
        "document.querySelector('[data-testid=\"toast\"][data-code=\"model_missing\"]')",
        WAIT,
    )
    .unwrap();
    let toast = app
        .text("[data-testid=\"toast\"][data-code=\"model_missing\"]")
        .unwrap();
    assert!(toast.contains("model file is missing"), "{toast}");
    assert!(toast.contains("Open Models"), "{toast}");
    // The message is kept, and the app still answers.
    let user = app.text("[data-role=\"user\"]").unwrap();
    assert!(user.contains("Hello Mochi!"), "{user}");
    app.screenshot("chat-missing-model.png").unwrap();
    app.click("[data-testid=\"toast-action\"]").unwrap();
    app.wait_for("[data-testid=\"page-models\"]").unwrap();
}

/// The repository's model folder (embedding model and ONNX Runtime), absolute.
fn repo_models() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models")
        .canonicalize()
        .expect("models/ exists (cargo xtask models --set test)")
}

#[test]
#[ignore = "needs the built app, a display and tauri-driver: run `cargo xtask e2e`"]
fn an_imported_folder_is_searched_and_a_grounded_answer_cites_it() {
    let home = tempfile::tempdir().unwrap();
    let folder = home.path().join("handbook");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("parking.md"),
        "# Parking\n\nThe Deskmate office garage opens at 7 a.m. and closes at 10 p.m. on weekdays. \
         Visitors park on level B2 and register at the front desk.",
    )
    .unwrap();
    std::fs::write(
        folder.join("seoul.txt"),
        "서울은 대한민국의 수도이며 본사는 서울에 있다. 부산 지사는 2019년에 문을 열었다.",
    )
    .unwrap();
    std::fs::write(folder.join("broken.pdf"), b"%PDF-1.7 not really").unwrap();

    // SmolLM2 answers as the office persona; the embedding model comes from the repository.
    let config = home.path().join("config").join("config.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let models = repo_models();
    let model = serde_json::json!({
        "path": smol(), "n_ctx": 4096, "parallel": 2, "threads": 2,
        "sampling": { "temperature": 0.0, "max_tokens": 48 }
    });
    let body = serde_json::json!({
        "models": { "office": model, "character": model },
        "embedding": {
            "model": models.join("multilingual-e5-small-onnx"),
            "runtime_library": models.join("libonnxruntime.so.1.24.4")
        }
    });
    std::fs::write(&config, body.to_string()).unwrap();
    let app = open_app(home.path(), "en_US.UTF-8");

    app.click("[data-testid=\"nav-documents\"]").unwrap();
    app.wait_for("[data-testid=\"page-documents\"]").unwrap();
    // The same path as a drop on the page (WebDriver cannot drive native dialogs or OS drops).
    app.wait_until("typeof window.__deskmateImport === 'function'", WAIT)
        .unwrap();
    app.script(
        "window.__deskmateImport([arguments[0]], 'internal'); return true;",
        serde_json::json!([folder.display().to_string()]),
    )
    .unwrap();
    // Three rows: two indexed, the broken PDF failed with its reason.
    app.wait_until(
        "document.querySelectorAll('[data-testid^=\"document-row-\"][data-status=\"indexed\"]').length === 2 \
         && document.querySelectorAll('[data-testid^=\"document-row-\"][data-status=\"failed\"]').length === 1 \
         && !document.querySelector('[data-testid=\"documents-progress\"]')",
        WAIT,
    )
    .unwrap();
    let list = app.text("[data-testid=\"documents-list\"]").unwrap();
    assert!(
        list.contains("broken.pdf") && list.contains("parking.md"),
        "{list}"
    );
    assert!(
        !app.exists("[data-testid=\"documents-vector-notice\"]")
            .unwrap(),
        "the embedding model is there, so search is not keyword-only"
    );
    app.screenshot("documents-list.png").unwrap();

    // Korean substring search: "서울" finds "서울은".
    app.type_text("[data-testid=\"documents-search\"]", "서울")
        .unwrap();
    app.wait_until(
        "document.querySelector('[data-testid^=\"passage-\"]') \
         && document.querySelector('[data-testid=\"documents-results\"]').textContent.includes('seoul.txt')",
        WAIT,
    )
    .unwrap();
    let marked = app
        .script(
            "return [...document.querySelectorAll('[data-testid=\"documents-results\"] mark')].map(m => m.textContent);",
            serde_json::json!([]),
        )
        .unwrap();
    assert!(
        marked.as_array().unwrap().iter().any(|m| m == "서울"),
        "{marked}"
    );
    app.screenshot("documents-search.png").unwrap();

    // The office persona answers from the handbook and shows its source.
    app.click("[data-testid=\"nav-chat\"]").unwrap();
    app.wait_for("[data-testid=\"chat-input\"]").unwrap();
    send(&app, "When does the office garage close?");
    app.wait_until(
        "document.querySelector('[data-testid=\"message-sources\"]')",
        WAIT,
    )
    .unwrap();
    wait_reply_complete(&app);
    let sources = app.text("[data-testid=\"message-sources\"]").unwrap();
    assert!(sources.contains("parking.md"), "{sources}");
    assert!(app.exists("[data-testid=\"source-1\"]").unwrap());
    app.screenshot("documents-grounded-answer.png").unwrap();
}

/// A 320 × 200 PNG gradient written to `path`.
fn write_png(path: &Path) {
    let image = image::RgbImage::from_fn(320, 200, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    image.save(path).unwrap();
}

#[test]
#[ignore = "needs the built app, a display and tauri-driver: run `cargo xtask e2e`"]
fn an_attached_image_is_sent_as_a_thumbnail_and_a_model_without_vision_says_so_first() {
    let home = tempfile::tempdir().unwrap();
    let picture = home.path().join("chart.png");
    write_png(&picture);
    let app = open_chat_app(home.path(), serde_json::json!("not-downloaded.gguf"), 24);

    // Attaching goes through the hidden file input, as the paperclip button does.
    app.type_text(
        "[data-testid=\"chat-attach-input\"]",
        picture.to_str().unwrap(),
    )
    .unwrap();
    app.wait_for("[data-testid=\"attachment-draft\"]").unwrap();
    // SmolLM2 has no vision projector: the user is told before sending.
    app.wait_for("[data-testid=\"vision-notice\"]").unwrap();
    let notice = app.text("[data-testid=\"vision-notice\"]").unwrap();
    assert!(notice.contains("cannot see images"), "{notice}");
    app.screenshot("image-draft-no-vision.png").unwrap();

    // The text can still be sent; the image goes with it.
    send(&app, "What does this chart show?");
    app.wait_until(
        "(() => { const img = document.querySelector('[data-role=\"user\"] [data-testid=\"message-attachment\"]'); \
         return img && img.getAttribute('src').startsWith('data:image/png;base64,') && img.naturalWidth > 0; })()",
        WAIT,
    )
    .unwrap();
    let alt = app
        .script(
            "return document.querySelector('[data-testid=\"message-attachment\"]').getAttribute('alt');",
            serde_json::json!([]),
        )
        .unwrap();
    assert_eq!(alt, "chart.png");
    assert!(
        !app.exists("[data-testid=\"attachment-draft\"]").unwrap(),
        "the drafts cleared after sending"
    );
    wait_reply_complete(&app);
    app.screenshot("image-sent.png").unwrap();

    // The original is stored under the data directory, named by its content.
    let stored: Vec<_> = std::fs::read_dir(home.path().join("data").join("attachments"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".png") && !n.ends_with(".thumb.png"))
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(
        std::fs::read(
            home.path()
                .join("data")
                .join("attachments")
                .join(&stored[0])
        )
        .unwrap(),
        std::fs::read(&picture).unwrap()
    );
}

#[test]
#[ignore = "needs the built app, a display and tauri-driver: run `cargo xtask e2e`"]
fn holding_the_mic_button_puts_the_spoken_words_into_the_box_and_chat_answers_them() {
    let home = tempfile::tempdir().unwrap();
    // No microphone here: the app's test microphone plays speech made by espeak-ng.
    let speech = home.path().join("speech.wav");
    let spoken = std::process::Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&speech)
        .arg("Please book the small meeting room.")
        .status()
        .expect("espeak-ng is missing: install the Debian package espeak-ng");
    assert!(spoken.success());
    let config = home.path().join("config").join("config.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let model = serde_json::json!({
        "path": smol(), "n_ctx": 2048, "parallel": 1, "threads": 2,
        "sampling": { "temperature": 0.0, "max_tokens": 16 }
    });
    let body = serde_json::json!({
        "models": { "office": model, "character": model },
        "speech": { "model": repo_models().join("ggml-tiny.en.bin"), "language": "en", "threads": 2 }
    });
    std::fs::write(&config, body.to_string()).unwrap();
    let mut env = app_env(home.path(), "en_US.UTF-8");
    env.push(("DESKMATE_TEST_MICROPHONE", speech.clone().into()));
    let app = App::launch(&app_binary().expect(NEEDS), &env).unwrap();
    app.wait_ready().unwrap();
    app.wait_until(
        "(() => { const b = document.querySelector('[data-testid=\"chat-mic\"]'); return b && !b.disabled; })()",
        WAIT,
    )
    .unwrap();

    // Hold the button for the length of the sentence, then let go.
    app.script(
        "document.querySelector('[data-testid=\"chat-mic\"]').dispatchEvent(new PointerEvent('pointerdown', {bubbles: true, button: 0}));",
        serde_json::json!([]),
    )
    .unwrap();
    app.wait_until(
        "document.querySelector('[data-testid=\"voice-state\"]').dataset.state === 'recording'",
        WAIT,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(3500));
    app.screenshot("voice-recording.png").unwrap();
    app.script(
        "document.querySelector('[data-testid=\"chat-mic\"]').dispatchEvent(new PointerEvent('pointerup', {bubbles: true, button: 0}));",
        serde_json::json!([]),
    )
    .unwrap();
    app.wait_until(
        "/meeting room/i.test(document.querySelector('[data-testid=\"chat-input\"]').value)",
        WAIT,
    )
    .unwrap();
    app.screenshot("voice-transcribed.png").unwrap();
    // The text waits in the box for the user: nothing was sent.
    assert!(!app.exists("[data-role=\"user\"]").unwrap());
    // Sent, it is answered by llama.cpp in the same app run that just used whisper.cpp.
    app.click("[data-testid=\"chat-send\"]").unwrap();
    wait_reply_complete(&app);
    let asked = app.text("[data-role=\"user\"]").unwrap();
    assert!(asked.to_lowercase().contains("meeting room"), "{asked}");
}

// --- a persona on an OpenAI-compatible server (issue 17), against llama.cpp's llama-server ---

#[test]
#[ignore = "needs the built app, a display and tauri-driver: run `cargo xtask e2e`"]
fn a_persona_on_llama_server_answers_in_the_window_with_its_badge_and_statistics() {
    use deskmate_tests::llama_server::{self, LlamaServer, MODEL_ALIAS};
    let Some(exe) = llama_server::executable_or_skip() else {
        return;
    };
    let server = LlamaServer::start(&exe, &smol()).unwrap();
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config").join("config.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let body = serde_json::json!({
        "models": {
            "office": {
                "backend": {"kind": "openai", "base_url": server.base_url(), "model": MODEL_ALIAS, "timeout_s": 60},
                "sampling": {"temperature": 0.0, "max_tokens": 16}
            },
            "character": {"path": smol(), "n_ctx": 2048, "parallel": 1, "threads": 2}
        }
    });
    std::fs::write(&config, body.to_string()).unwrap();
    let app = open_app(home.path(), "en_US.UTF-8");

    // The badge says where the office persona runs, before anything is sent.
    app.wait_for("[data-testid=\"remote-badge\"]").unwrap();
    let badge = app.text("[data-testid=\"remote-badge\"]").unwrap();
    assert_eq!(badge.trim(), format!("remote: {}", server.host()));
    send(&app, "Say hello to the team.");
    wait_reply_complete(&app);
    let reply = app.text("[data-role=\"assistant\"]").unwrap();
    assert!(!reply.trim().is_empty());
    app.screenshot("remote-chat.png").unwrap();

    // The Models page: on a server, answering, with the request counted.
    app.click("[data-testid=\"nav-models\"]").unwrap();
    app.wait_until(
        "document.querySelector('[data-testid=\"engine-office\"]')?.dataset.state === 'remote' \
         && document.querySelector('[data-testid=\"engine-remote-answers-office\"]')?.dataset.answers === 'true'",
        WAIT,
    )
    .unwrap();
    // The first figure of the statistics is the request count.
    let requests = app
        .script(
            "return document.querySelector('[data-testid=\"engine-stats-office\"] dd').textContent;",
            serde_json::json!([]),
        )
        .unwrap();
    let requests: u64 = requests.as_str().unwrap().trim().parse().unwrap();
    assert!(requests >= 1, "{requests}");
    app.script(
        "document.querySelector('[data-testid=\"engine-office\"]').scrollIntoView(); return true;",
        serde_json::json!([]),
    )
    .unwrap();
    app.screenshot("remote-models.png").unwrap();

    // The server stops: a clear error, not a hang; the message is kept.
    drop(server);
    app.click("[data-testid=\"nav-chat\"]").unwrap();
    send(&app, "Are you still there?");
    app.wait_until(
        "document.querySelector('[data-testid=\"toast\"][data-code=\"remote_unreachable\"]')",
        WAIT,
    )
    .unwrap();
    let toast = app
        .text("[data-testid=\"toast\"][data-code=\"remote_unreachable\"]")
        .unwrap();
    assert!(toast.contains("server cannot be reached"), "{toast}");
    let asked = app
        .script(
            "return [...document.querySelectorAll('[data-role=\"user\"]')].map(e => e.textContent).join('|');",
            serde_json::json!([]),
        )
        .unwrap();
    assert!(
        asked.as_str().unwrap().contains("Are you still there?"),
        "{asked}"
    );
    app.screenshot("remote-unreachable.png").unwrap();
}

// --- the installed package (issue 16), run by `cargo xtask package --test` ---

/// The installed app's first run, as a new user has it: no models, a banner saying so, the
/// mirror folder set in Settings, the test model downloaded from the Models page's catalog and
/// made the office model, then a chat reply. `cargo xtask package --test` installs the .deb and
/// runs this against `/usr/bin/deskmate-app` with `DESKMATE_INSTALL_TEST_HOME` as the user's
/// home (the default XDG folders, so uninstalling and reinstalling can be checked against them).
#[test]
#[ignore = "needs the built app, a display and tauri-driver: run `cargo xtask e2e`"]
fn installed_package_first_run_downloads_the_test_model_through_the_ui_and_answers() {
    let Some(home) = std::env::var_os("DESKMATE_INSTALL_TEST_HOME").map(std::path::PathBuf::from)
    else {
        eprintln!("skipped: only `cargo xtask package --test` runs this (it installs the .deb)");
        return;
    };
    let mirror = std::env::var_os("DESKMATE_MODEL_MIRROR")
        .map(std::path::PathBuf::from)
        .filter(|m| m.join("SmolLM2-135M-Instruct.Q4_1.gguf").is_file())
        .expect("DESKMATE_MODEL_MIRROR holds the test model");
    let env: Vec<(&str, OsString)> = vec![
        ("HOME", home.clone().into()),
        ("XDG_CONFIG_HOME", home.join(".config").into()),
        ("XDG_DATA_HOME", home.join(".local/share").into()),
        // Empty: not set, so the app uses its default folders and the mirror set in Settings.
        ("DESKMATE_CONFIG", "".into()),
        ("DESKMATE_DATA_DIR", "".into()),
        ("DESKMATE_MODELS_DIR", "".into()),
        ("DESKMATE_MODEL_MIRROR", "".into()),
        ("LANG", "en_US.UTF-8".into()),
        ("LC_ALL", "en_US.UTF-8".into()),
        ("LANGUAGE", "".into()),
    ];
    let app = App::launch(&app_binary().expect(NEEDS), &env).unwrap();
    app.wait_ready().unwrap();
    app.wait_for("[data-testid=\"banner-model-office\"]")
        .unwrap();
    app.screenshot("install-first-run.png").unwrap();

    // The mirror folder, set in Settings as an office would (a share or a USB disk).
    app.click("[data-testid=\"nav-settings\"]").unwrap();
    app.clear("[data-testid=\"engine-mirror\"]").unwrap();
    app.type_text(
        "[data-testid=\"engine-mirror\"]",
        &mirror.display().to_string(),
    )
    .unwrap();
    app.click("[data-testid=\"engine-save\"]").unwrap();
    app.wait_for("[data-testid=\"settings-engine\"] .ok")
        .unwrap();

    // The catalog: every model with its size and fit; the test model downloads from the mirror.
    app.click("[data-testid=\"nav-models\"]").unwrap();
    let id = "smollm2-135m-q4_1";
    let entry = format!("[data-testid=\"catalog-{id}\"]");
    app.wait_for(&entry).unwrap();
    let catalog = app.text("[data-testid=\"model-catalog\"]").unwrap();
    assert!(catalog.contains(&mirror.display().to_string()), "{catalog}");
    assert!(catalog.contains("98.4 MB"), "{catalog}");
    assert!(catalog.contains("Install recommended"), "{catalog}");
    app.screenshot("install-catalog.png").unwrap();
    app.click(&format!("[data-testid=\"catalog-download-{id}\"]"))
        .unwrap();
    app.wait_until(
        &format!("document.querySelector('{entry}')?.dataset.status === 'installed'"),
        WAIT,
    )
    .unwrap();
    app.click(&format!("[data-testid=\"catalog-use-{id}-office\"]"))
        .unwrap();
    app.screenshot("install-downloaded.png").unwrap();
    let models_dir = home.join(".local/share/deskmate/models");
    assert!(models_dir.join("SmolLM2-135M-Instruct.Q4_1.gguf").is_file());
    assert!(!models_dir
        .join("SmolLM2-135M-Instruct.Q4_1.gguf.part")
        .exists());

    // The office model is now the downloaded one: it loads and answers.
    app.click("[data-testid=\"nav-chat\"]").unwrap();
    app.wait_until(
        "!document.querySelector('[data-testid=\"banner-model-office\"]')",
        WAIT,
    )
    .unwrap();
    send(&app, "Say hello in one short sentence.");
    wait_reply_complete(&app);
    let reply = app
        .text("[data-role=\"assistant\"][data-status=\"complete\"]")
        .unwrap();
    assert!(!reply.trim().is_empty());
    app.screenshot("install-chat.png").unwrap();
    let config = std::fs::read_to_string(home.join(".config/deskmate/config.json")).unwrap();
    assert!(
        config.contains("SmolLM2-135M-Instruct.Q4_1.gguf"),
        "{config}"
    );
}
