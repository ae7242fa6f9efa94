//! End-to-end tests of the built desktop app, driven through `tauri-driver` under Xvfb.
//!
//! They are `#[ignore]`d in a plain `cargo test` because they need the built app, a display and
//! `tauri-driver`; `cargo xtask e2e` (and `cargo xtask test`) provides all three and runs them
//! with `--ignored`. Each test starts the app on its own empty configuration, data and models
//! directories and saves screenshots under `target/e2e/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsString;
use std::path::Path;

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
    ("chat", "Chat"),
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
        let h1 = app
            .text(&format!("[data-testid=\"page-{page}\"] h1"))
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

#[test]
#[ignore = "needs the built app, a display and tauri-driver: run `cargo xtask e2e`"]
fn the_models_page_shows_the_engines_load_reports_and_failures() {
    let home = tempfile::tempdir().unwrap();
    let smol = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models/SmolLM2-135M-Instruct.Q4_1.gguf")
        .canonicalize()
        .expect("the SmolLM2 test model is in models/ (cargo xtask models --set test)");
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
}
