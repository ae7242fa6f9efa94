//! The `deskmate` binary as a user runs it: exit codes and what it prints.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

fn deskmate(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deskmate"))
        .args(args)
        .env("DESKMATE_CONFIG", home.join("config.json"))
        .env("DESKMATE_DATA_DIR", home.join("data"))
        .env("DESKMATE_MODELS_DIR", home.join("models"))
        .env_remove("DESKMATE_MODEL_MIRROR")
        .output()
        .expect("the deskmate binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn config_check_accepts_the_shipped_config() {
    let home = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config.json");
    let out = deskmate(home.path(), &["config", "check", shipped.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).trim_end().ends_with(": valid"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn config_check_lists_every_problem_with_its_json_path_and_fails() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("broken.json");
    std::fs::write(
        &file,
        r#"{"models": {"office": {"n_ctx": 0}, "character": {"flash_attn": "maybe"}}, "colour": "blue"}"#,
    )
    .unwrap();
    let out = deskmate(home.path(), &["config", "check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("3 problems"), "{text}");
    assert!(
        text.contains("  models.office.n_ctx: must be between 256 and 131072, got 0"),
        "{text}"
    );
    assert!(
        text.contains("  models.character.flash_attn: expected \"auto\" or true/false"),
        "{text}"
    );
    assert!(text.contains("  colour: unknown key"), "{text}");

    let json = deskmate(
        home.path(),
        &["config", "check", "--json", file.to_str().unwrap()],
    );
    assert_eq!(json.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(report["problems"].as_array().unwrap().len(), 3);
}

#[test]
fn config_check_without_a_path_checks_the_config_in_use_and_names_a_missing_file() {
    let home = tempfile::tempdir().unwrap();
    let out = deskmate(home.path(), &["config", "check"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.json"), "{err}");

    std::fs::write(home.path().join("config.json"), "{}").unwrap();
    assert!(deskmate(home.path(), &["config", "check"]).status.success());
}

#[test]
fn models_list_reports_every_manifest_model_missing_in_an_empty_models_dir() {
    let home = tempfile::tempdir().unwrap();
    let out = deskmate(home.path(), &["models", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let models = report["models"].as_array().unwrap();
    assert!(models.iter().any(|m| m["id"] == "qwen2.5-coder-1.5b-q4km"));
    assert!(
        models.iter().all(|m| m["status"]["status"] == "missing"),
        "{report}"
    );
}

#[test]
fn gpu_json_reports_the_gpus_or_why_there_are_none_plus_cpu_and_ram() {
    let home = tempfile::tempdir().unwrap();
    let out = deskmate(home.path(), &["gpu", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sample: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    if sample["available"] == true {
        assert!(!sample["gpus"].as_array().unwrap().is_empty(), "{sample}");
    } else {
        // No NVIDIA driver here (CI): the reason is named, and no GPU is invented.
        assert!(
            sample["reason"].as_str().unwrap().contains("NVIDIA"),
            "{sample}"
        );
        assert_eq!(sample["gpus"], serde_json::json!([]));
    }
    assert!(sample["system"]["ram_total_bytes"].as_u64().unwrap() > 0);
    assert!(sample["system"]["cpu_count"].as_u64().unwrap() >= 1);
    let cpu = sample["system"]["cpu_percent"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&cpu), "{cpu}");
}

#[test]
fn info_json_names_version_backends_paths_models_and_gpu_state() {
    let home = tempfile::tempdir().unwrap();
    let out = deskmate(home.path(), &["info", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert!(info["backends"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("cpu")));
    assert_eq!(
        info["paths"]["data_dir"],
        home.path().join("data").display().to_string()
    );
    let roles: Vec<&str> = info["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["office", "character", "speech", "embedding"]);
    assert!(info["gpu"]["available"].is_boolean());
}

#[test]
fn models_inspect_names_a_broken_file_and_exits_non_zero() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("half.gguf");
    // A GGUF header that claims one metadata entry and then ends.
    let mut bytes = b"GGUF".to_vec();
    bytes.extend(3u32.to_le_bytes());
    bytes.extend(0u64.to_le_bytes());
    bytes.extend(1u64.to_le_bytes());
    std::fs::write(&file, bytes).unwrap();
    let out = deskmate(home.path(), &["models", "inspect", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("half.gguf") && err.contains("truncated"),
        "{err}"
    );
}
