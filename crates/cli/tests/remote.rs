//! A persona on a real OpenAI-compatible server, as `deskmate` uses it: llama.cpp's own
//! `llama-server` (built by `cargo xtask test` from the llama.cpp source of the benchmarks and
//! passed in `DESKMATE_TEST_LLAMA_SERVER`), and another Deskmate's `deskmate serve`.
//!
//! Without `DESKMATE_TEST_LLAMA_SERVER` the llama-server test says it is skipped and why; the
//! Deskmate-to-Deskmate test needs nothing outside the workspace and always runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{command, deskmate, repo_models};
use deskmate_tests::llama_server::{self, LlamaServer, MODEL_ALIAS};
use serde_json::{json, Value};

/// The office persona on `backend`, the character persona on the local SmolLM2, the
/// repository's e5 model for documents.
fn config(home: &Path, backend: Value, allow_remote: bool) {
    let models = repo_models();
    let sampling = json!({"temperature": 0.0, "max_tokens": 16});
    let config = json!({
        "models": {
            "office": {"backend": backend, "parallel": 2, "sampling": sampling},
            "character": {
                "path": models.join("SmolLM2-135M-Instruct.Q4_1.gguf"), "n_ctx": 2048,
                "parallel": 1, "threads": 2, "sampling": sampling
            }
        },
        "embedding": {
            "model": models.join("multilingual-e5-small-onnx"),
            "runtime_library": models.join("libonnxruntime.so.1.24.4")
        },
        "documents": {"allow_remote": allow_remote}
    });
    std::fs::write(home.join("config.json"), config.to_string()).unwrap();
}

fn chat_json(home: &Path, message: &str, env: &[(&str, &str)]) -> Value {
    let mut cmd = command(home, &["chat", "--persona", "office", message, "--json"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The request log's row count and successes for `model`, as the Models page reads them.
fn totals(home: &Path, model: &str) -> deskmate_core::store::RequestTotals {
    common::app(home).request_totals(model).unwrap()
}

#[test]
fn a_persona_on_llama_server_answers_with_statistics_keeps_documents_home_and_fails_clearly_once_it_stops(
) {
    let Some(exe) = llama_server::executable_or_skip() else {
        return;
    };
    let server =
        LlamaServer::start(&exe, &repo_models().join("SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
    let home = tempfile::tempdir().unwrap();
    let backend = json!({"kind": "openai", "base_url": server.base_url(), "model": MODEL_ALIAS, "timeout_s": 60});
    config(home.path(), backend.clone(), false);
    let host = server.host();

    // `deskmate models` shows where the persona runs and that the server answers.
    let out = deskmate(home.path(), &["models", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let models: Value = serde_json::from_slice(&out.stdout).unwrap();
    let office = &models[0]["report"];
    assert_eq!(office["kind"], "remote", "{models}");
    assert_eq!(office["host"], host.as_str());
    assert_eq!(office["check"]["answers"], true, "{office}");
    assert_eq!(office["check"]["model_listed"], true, "{office}");
    let text = deskmate(home.path(), &["models"]);
    let shown = String::from_utf8_lossy(&text.stdout);
    assert!(
        shown.contains(&format!("office: remote: {host}")),
        "{shown}"
    );

    // An answer, streamed from the server, with its statistics in the request log.
    let answer = chat_json(home.path(), "Say hello to the team.", &[]);
    assert!(
        !answer["text"].as_str().unwrap().trim().is_empty(),
        "{answer}"
    );
    assert_eq!(answer["remote"], host.as_str(), "{answer}");
    assert!(
        answer["completion_tokens"].as_u64().unwrap() > 0,
        "{answer}"
    );
    assert!(
        answer["timings"]["ttft_ms"].as_f64().unwrap() > 0.0,
        "{answer}"
    );
    assert!(
        answer["timings"]["generation_tokens_per_s"]
            .as_f64()
            .unwrap()
            > 0.0,
        "{answer}"
    );
    let logged = totals(home.path(), MODEL_ALIAS);
    assert!(logged.ok >= 1, "{logged:?}");
    assert!(
        logged.prompt_tokens > 0 && logged.completion_tokens > 0,
        "{logged:?}"
    );

    // A relevant document stays on this machine while documents.allow_remote is off.
    let memo = home.path().join("parking.txt");
    std::fs::write(
        &memo,
        "Parking memo: the visitor car park behind building C closes at 21:00 on weekdays.",
    )
    .unwrap();
    let out = deskmate(home.path(), &["ingest", memo.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let question = "When does the visitor car park behind building C close?";
    let withheld = chat_json(home.path(), question, &[]);
    assert!(
        withheld["documents_withheld"].as_u64().unwrap() >= 1,
        "{withheld}"
    );
    assert_eq!(withheld["sources"], json!([]), "{withheld}");
    config(home.path(), backend, true);
    let grounded = chat_json(home.path(), question, &[]);
    assert_eq!(grounded["documents_withheld"], 0, "{grounded}");
    assert_eq!(
        grounded["sources"][0]["file_name"], "parking.txt",
        "{grounded}"
    );

    // The server stops: the answer is a clear error after the retries, not a hang.
    let port = server.port;
    drop(server);
    let started = Instant::now();
    let out = command(
        home.path(),
        &["chat", "--persona", "office", "Are you there?"],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("remote_unreachable"), "{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains("cannot be reached"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert!(totals(home.path(), MODEL_ALIAS).errors >= 1);
}

/// A second Deskmate whose office persona is the first one's `deskmate serve`: the key comes
/// from the environment variable the configuration names, and a missing or wrong key is a
/// clear error.
#[test]
fn a_second_deskmate_uses_the_first_ones_local_api_as_its_server() {
    let first = tempfile::tempdir().unwrap();
    common::serve::config(first.path());
    let server = common::serve::start(first);

    let home = tempfile::tempdir().unwrap();
    let backend = json!({
        "kind": "openai", "base_url": format!("{}/v1", server.url), "model": "office",
        "api_key_env": "DESKMATE_TEST_REMOTE_KEY", "timeout_s": 60
    });
    config(home.path(), backend, false);

    let answer = chat_json(
        home.path(),
        "Write one short greeting.",
        &[("DESKMATE_TEST_REMOTE_KEY", server.key.as_str())],
    );
    assert!(
        !answer["text"].as_str().unwrap().trim().is_empty(),
        "{answer}"
    );
    assert_eq!(answer["model"], "office");
    assert!(totals(home.path(), "office").ok >= 1);

    let out = command(home.path(), &["chat", "--persona", "office", "hello"])
        .env_remove("DESKMATE_TEST_REMOTE_KEY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("remote_key_missing") && stderr.contains("DESKMATE_TEST_REMOTE_KEY"),
        "{stderr}"
    );

    let out = command(home.path(), &["chat", "--persona", "office", "hello"])
        .env("DESKMATE_TEST_REMOTE_KEY", "dm-wrong")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("remote_error") && stderr.contains("HTTP 401"),
        "{stderr}"
    );
}
