//! The `deskmate` binary as a user runs it: exit codes and what it prints.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{deskmate, documents_json, repo_models};

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

/// SmolLM2 from the repository's models/ (installed by `cargo xtask models --set test`).
fn smol() -> std::path::PathBuf {
    let p =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.is_file(),
        "{} is missing: run `cargo xtask models --set test`",
        p.display()
    );
    p
}

/// A config whose two personas both use SmolLM2 with a small context, for fast tests.
fn smol_config(home: &Path) {
    let model = smol();
    let persona = serde_json::json!({
        "path": model, "n_ctx": 2048, "parallel": 2, "threads": 2,
        "sampling": {"temperature": 0.0, "max_tokens": 32}
    });
    let config = serde_json::json!({"models": {"office": persona, "character": persona}});
    std::fs::write(home.join("config.json"), config.to_string()).unwrap();
}

#[test]
fn chat_json_answers_and_a_second_call_continues_the_stored_session() {
    let home = tempfile::tempdir().unwrap();
    smol_config(home.path());
    let out = deskmate(
        home.path(),
        &["chat", "--json", "What is the capital of France?"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(first["text"].as_str().unwrap().contains("Paris"), "{first}");
    assert_eq!(first["finish_reason"], "stop");
    assert!(first["completion_tokens"].as_u64().unwrap() > 0);
    assert!(first["timings"]["ttft_ms"].as_f64().unwrap() > 0.0);
    let session = first["session"].as_i64().unwrap();

    let out = deskmate(
        home.path(),
        &[
            "chat",
            "--json",
            "--session",
            &session.to_string(),
            "And of Italy?",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(second["session"].as_i64(), Some(session));
    // The history went to the model: the prompt holds the first exchange.
    assert!(
        second["prompt_tokens"].as_u64().unwrap() > first["prompt_tokens"].as_u64().unwrap() + 10
    );
}

#[test]
fn chat_refuses_an_empty_message_and_an_unknown_session() {
    let home = tempfile::tempdir().unwrap();
    smol_config(home.path());
    let out = deskmate(home.path(), &["chat", "  "]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("message: is empty"));
    let out = deskmate(home.path(), &["chat", "--session", "42", "hello"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("session 42 not found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn interactive_chat_keeps_history_and_quits_at_end_of_input() {
    use std::io::Write;
    let home = tempfile::tempdir().unwrap();
    smol_config(home.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_deskmate"))
        .args(["chat", "--persona", "character"])
        .env("DESKMATE_CONFIG", home.path().join("config.json"))
        .env("DESKMATE_DATA_DIR", home.path().join("data"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Hello!\nWhat did I just say?\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Ctrl-D quits"), "{err}");
    // The second turn found the first in the slot's cache.
    let hints: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("prompt tokens"))
        .collect();
    assert_eq!(hints.len(), 2, "{err}");
    assert!(!hints[1].contains("(0 cached)"), "{err}");
    assert!(err.contains("Session 1 is saved"), "{err}");
}

#[test]
fn ctrl_c_stops_a_reply_and_keeps_the_text_so_far() {
    let home = tempfile::tempdir().unwrap();
    let model = smol();
    let persona = serde_json::json!({
        "path": model, "n_ctx": 2048, "parallel": 1, "threads": 2,
        "sampling": {"temperature": 0.8, "seed": 7, "max_tokens": 2000}
    });
    std::fs::write(
        home.path().join("config.json"),
        serde_json::json!({"models": {"office": persona, "character": persona}}).to_string(),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_deskmate"))
        .args([
            "chat",
            "Write a very long story about a dragon who works in an office.",
        ])
        .env("DESKMATE_CONFIG", home.path().join("config.json"))
        .env("DESKMATE_DATA_DIR", home.path().join("data"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the story has started to appear.
    let mut stdout_pipe = child.stdout.take().unwrap();
    let mut shown = vec![0u8; 64];
    let n = std::io::Read::read(&mut stdout_pipe, &mut shown).unwrap();
    assert!(n > 0, "the reply should start streaming");
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout_pipe, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // The process went on after the signal: it printed its summary and saved the session.
    let generated: u32 = err
        .split(" generated")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary line: {err}"));
    assert!(generated < 2000, "{err}");
    assert!(err.contains("session 1"), "{err}");
}

#[test]
fn models_loads_both_personas_and_prints_their_load_reports() {
    let home = tempfile::tempdir().unwrap();
    smol_config(home.path());
    let out = deskmate(home.path(), &["models", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let office = &reports[0]["report"];
    assert_eq!(office["architecture"], "llama");
    assert_eq!(office["layers_total"], 30);
    assert_eq!(office["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(reports[1]["report"]["shared_with"], "office");

    // A missing file is reported per persona, with a typed code, and the exit status says so.
    let config = serde_json::json!({"models": {"office": {"path": "/nowhere/m.gguf"}}});
    std::fs::write(home.path().join("config.json"), config.to_string()).unwrap();
    let out = deskmate(home.path(), &["models"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("office: FAILED [model_missing]"), "{text}");
}

/// A config whose embedding model and ONNX Runtime are the repository's (absolute paths).
fn embedding_config(home: &Path) {
    let models = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models")
        .canonicalize()
        .expect("models/ exists (cargo xtask models --set test)");
    let body = serde_json::json!({
        "embedding": {
            "model": models.join("multilingual-e5-small-onnx"),
            "runtime_library": models.join("libonnxruntime.so.1.24.4")
        }
    });
    std::fs::write(home.join("config.json"), body.to_string()).unwrap();
}

#[test]
fn an_import_killed_mid_job_resumes_where_it_stopped_and_leaves_no_half_file() {
    use std::io::BufRead;
    let home = tempfile::tempdir().unwrap();
    embedding_config(home.path());
    let folder = home.path().join("reports");
    std::fs::create_dir_all(&folder).unwrap();
    const FILES: usize = 16;
    for i in 0..FILES {
        let text: String = (0..40)
            .map(|s| format!("Report {i} paragraph {s}: the regional office {i} met its target number {s} this quarter. "))
            .collect();
        std::fs::write(folder.join(format!("report-{i:02}.txt")), text).unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_deskmate"))
        .args(["ingest", folder.to_str().unwrap(), "--json"])
        .env("DESKMATE_CONFIG", home.path().join("config.json"))
        .env("DESKMATE_DATA_DIR", home.path().join("data"))
        .env("DESKMATE_MODELS_DIR", home.path().join("models"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if v["progress"]["files_done"].as_i64().unwrap_or(0) >= 2 {
            break;
        }
    }
    // SIGKILL: no chance to clean up, as in a crash or a power cut.
    child.kill().unwrap();
    child.wait().unwrap();

    let before = documents_json(home.path());
    assert!(
        (2..FILES).contains(&before.len()),
        "killed mid-job: {} of {FILES} documents stored",
        before.len()
    );
    for d in &before {
        // Every stored document is whole: all its chunks, every chunk with its vector.
        assert_eq!(d["status"], "indexed", "{d}");
        assert!(d["chunk_count"].as_i64().unwrap() > 0, "{d}");
        assert_eq!(d["chunk_count"], d["embedded_chunks"], "{d}");
    }

    // The next run finishes the job without redoing the files already stored.
    let out = deskmate(home.path(), &["ingest", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let redone = lines
        .iter()
        .filter(|l| !l["progress"]["finished_file"].is_null())
        .count();
    assert_eq!(
        redone,
        FILES - before.len(),
        "only the files not yet stored are read"
    );
    let report = &lines.last().unwrap()["report"];
    assert_eq!(report["jobs"][0]["added"], FILES as i64, "{report}");

    let after = documents_json(home.path());
    assert_eq!(after.len(), FILES);
    assert!(after
        .iter()
        .all(|d| d["status"] == "indexed" && d["chunk_count"] == d["embedded_chunks"]));
    let found = deskmate(
        home.path(),
        &["search", "regional office 7 target", "--json"],
    );
    assert!(found.status.success());
    let found: serde_json::Value = serde_json::from_slice(&found.stdout).unwrap();
    assert_eq!(found["mode"], "hybrid", "{found}");
    assert!(!found["passages"].as_array().unwrap().is_empty());
}

#[test]
fn search_as_a_lower_profile_never_shows_a_restricted_document() {
    let home = tempfile::tempdir().unwrap();
    let folder = home.path().join("docs");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("salaries.csv"),
        "name,salary\nKim,9100\nLee,8800\n",
    )
    .unwrap();
    let out = deskmate(
        home.path(),
        &["ingest", folder.to_str().unwrap(), "--level", "restricted"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(deskmate(
        home.path(),
        &["profile", "add", "intern", "--clearance", "public"]
    )
    .status
    .success());
    let owner = deskmate(home.path(), &["search", "salary Kim", "--json"]);
    let owner: serde_json::Value = serde_json::from_slice(&owner.stdout).unwrap();
    assert_eq!(owner["passages"][0]["file_name"], "salaries.csv");
    let intern = deskmate(
        home.path(),
        &["search", "salary Kim", "--profile", "intern", "--json"],
    );
    let intern: serde_json::Value = serde_json::from_slice(&intern.stdout).unwrap();
    assert_eq!(intern["passages"].as_array().unwrap().len(), 0, "{intern}");
    let unknown = deskmate(home.path(), &["search", "x", "--profile", "nobody"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("nobody"));
}

#[test]
fn transcribe_prints_what_was_said_in_an_audio_file() {
    let home = tempfile::tempdir().unwrap();
    let wav = home.path().join("said.wav");
    let spoken = Command::new("espeak-ng")
        .args(["-v", "en-us", "-w"])
        .arg(&wav)
        .arg("Send the invoice to the finance team.")
        .status()
        .expect("espeak-ng is missing: install the Debian package espeak-ng");
    assert!(spoken.success());
    let model = repo_models().join("ggml-tiny.en.bin");
    let out = deskmate(
        home.path(),
        &[
            "transcribe",
            wav.to_str().unwrap(),
            "--language",
            "en",
            "--model",
            model.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let transcript: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let text = transcript["text"].as_str().unwrap().to_lowercase();
    assert!(
        text.contains("invoice") && text.contains("finance"),
        "{text}"
    );
    assert_eq!(transcript["language"], "en");
}

#[test]
fn transcribe_refuses_a_file_that_is_not_audio_naming_it() {
    let home = tempfile::tempdir().unwrap();
    let notes = home.path().join("notes.txt");
    std::fs::write(&notes, "hello").unwrap();
    let model = repo_models().join("ggml-tiny.en.bin");
    let out = deskmate(
        home.path(),
        &[
            "transcribe",
            notes.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("notes.txt") && err.contains("audio is not supported"),
        "{err}"
    );
}

#[test]
fn image_check_says_how_an_image_would_be_scaled_or_why_it_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let png = home.path().join("wide.png");
    image::RgbImage::from_pixel(2000, 500, image::Rgb([10, 20, 30]))
        .save(&png)
        .unwrap();
    let out = deskmate(
        home.path(),
        &["image-check", png.to_str().unwrap(), "--json"],
    );
    assert!(out.status.success());
    let info: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(info["format"], "png");
    assert_eq!(
        (info["width"].as_u64(), info["height"].as_u64()),
        (Some(2000), Some(500))
    );
    assert_eq!(
        (info["model_width"].as_u64(), info["model_height"].as_u64()),
        (Some(896), Some(224))
    );

    let fake = home.path().join("photo.jpg");
    std::fs::write(&fake, b"GIF89a is not what this really is").unwrap();
    let out = deskmate(home.path(), &["image-check", fake.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("photo.jpg"), "{err}");
}

#[test]
fn a_message_over_the_limit_is_refused_as_the_window_refuses_it_and_nothing_is_stored() {
    let home = tempfile::tempdir().unwrap();
    smol_config(home.path());
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(home.path().join("config.json")).unwrap())
            .unwrap();
    config["chat"] = serde_json::json!({"max_message_chars": 100});
    std::fs::write(home.path().join("config.json"), config.to_string()).unwrap();
    let long = "a".repeat(200);
    let out = deskmate(home.path(), &["chat", "--json", &long]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("200 characters is over the limit of 100 (chat.max_message_chars)")
            && err.contains("[message_too_long]"),
        "{err}"
    );
    assert!(
        common::app(home.path()).sessions(None).unwrap().is_empty(),
        "nothing stored"
    );
}

#[test]
fn an_office_question_about_an_imported_document_prints_the_passages_it_used() {
    let home = tempfile::tempdir().unwrap();
    smol_config(home.path());
    let doc = home.path().join("parking.txt");
    std::fs::write(
        &doc,
        "The Deskmate office garage closes at ten in the evening. Visitors park on level B2.",
    )
    .unwrap();
    assert!(deskmate(home.path(), &["ingest", doc.to_str().unwrap()])
        .status
        .success());
    let out = deskmate(
        home.path(),
        &["chat", "--json", "When does the office garage close?"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["sources"][0]["file_name"], "parking.txt", "{reply}");
    assert_eq!(reply["reply_status"], "complete", "{reply}");

    let out = deskmate(home.path(), &["chat", "When does the garage close?"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("[1] parking.txt"), "{}", stdout(&out));
}

/// One reply at a time per session, across processes: a second `deskmate chat --session` while
/// the first one is writing its reply is refused with the busy code, and stores nothing; the
/// first is answered in full.
#[test]
fn two_chats_on_one_session_at_once_answer_one_and_refuse_the_other_storing_nothing_of_it() {
    let home = tempfile::tempdir().unwrap();
    smol_config(home.path());
    let out = deskmate(home.path(), &["chat", "--json", "Hello!"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let session = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["session"]
        .as_i64()
        .unwrap();
    // A reply long enough for the second command to start while it is written.
    let persona = serde_json::json!({
        "path": smol(), "n_ctx": 2048, "parallel": 2, "threads": 2,
        "sampling": {"temperature": 0.8, "seed": 7, "max_tokens": 400}
    });
    std::fs::write(
        home.path().join("config.json"),
        serde_json::json!({"models": {"office": persona, "character": persona}}).to_string(),
    )
    .unwrap();
    let id = session.to_string();
    let first_text = "Write a very long story about a dragon who works in an office.";
    let first = common::command(
        home.path(),
        &["chat", "--json", "--session", &id, first_text],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let app = common::app(home.path());
    let started = std::time::Instant::now();
    while !app
        .open_session(session)
        .unwrap()
        .messages
        .iter()
        .any(|m| m.status == "streaming")
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "the first reply never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second_text = "And now a poem, please.";
    let second = deskmate(
        home.path(),
        &["chat", "--json", "--session", &id, second_text],
    );
    let first = first.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(
        err.contains("a reply is already being written") && err.contains("[reply_in_progress]"),
        "{err}"
    );
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let reply: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(reply["reply_status"], "complete", "{reply}");
    // Both messages are accounted for: the first asked and answered, nothing of the second.
    let messages = app.open_session(session).unwrap().messages;
    let texts: Vec<(&str, &str)> = messages
        .iter()
        .map(|m| (m.role.as_str(), m.status.as_str()))
        .collect();
    assert_eq!(
        texts,
        [
            ("user", "complete"),
            ("assistant", "complete"),
            ("user", "complete"),
            ("assistant", "complete"),
        ]
    );
    assert_eq!(messages[2].content, first_text);
    assert!(messages.iter().all(|m| m.content != second_text));
}
