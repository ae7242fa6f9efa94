//! The local API as its clients see it: `deskmate serve` with the real SmolLM2 and e5 models,
//! driven by the `openai` Python package (what editors and scripts use) and by curl.
//!
//! The Python client comes from `DESKMATE_TEST_PYTHON` (`cargo xtask test` installs the pinned
//! `openai` package into a virtual environment and sets it), else `python3`; a machine without
//! the package reports the Python test as skipped, and the curl tests still run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::serve::{config, curl, start};
use common::{deskmate, repo_models};
use serde_json::{json, Value};

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// The interpreter with the `openai` package, or why there is none.
fn python_with_openai() -> Result<PathBuf, String> {
    let python = std::env::var_os("DESKMATE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    let probe = Command::new(&python)
        .args(["-c", "import openai; print(openai.__version__)"])
        .output();
    match probe {
        Ok(out) if out.status.success() => Ok(python),
        Ok(out) => Err(format!(
            "{} has no openai package ({}); `cargo xtask test` installs it",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("{}: {e}", python.display())),
    }
}

const CLIENT: &str = r#"
import json, sys
import openai

client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key=sys.argv[2])
ids = sorted(m.id for m in client.models.list())

pieces, finish = [], None
stream = client.chat.completions.create(
    model="office",
    messages=[{"role": "user", "content": "What is the capital of France?"}],
    stream=True,
    max_tokens=24,
)
for chunk in stream:
    if chunk.choices:
        if chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason

whole = client.chat.completions.create(
    model="character",
    messages=[{"role": "system", "content": "You are cheerful."},
              {"role": "user", "content": "Say hello."}],
    max_tokens=16,
    temperature=0,
    seed=7,
)

vectors = client.embeddings.create(
    model="multilingual-e5-small",
    input=["서울은 대한민국의 수도입니다.", "The garage closes at ten."],
)
# The package asks for base64 by default; floats must decode to the same numbers.
floats = client.embeddings.create(
    model="multilingual-e5-small",
    input=["서울은 대한민국의 수도입니다.", "The garage closes at ten."],
    encoding_format="float",
)
same = all(
    max(abs(a - b) for a, b in zip(x.embedding, y.embedding)) < 1e-6
    for x, y in zip(vectors.data, floats.data)
)

try:
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    unknown = None
except openai.NotFoundError as e:
    unknown = e.status_code

try:
    openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="dm-wrong").models.list()
    wrong_key = None
except openai.AuthenticationError as e:
    wrong_key = e.status_code

print(json.dumps({
    "ids": ids,
    "pieces": pieces,
    "finish": finish,
    "text": whole.choices[0].message.content,
    "usage": whole.usage.model_dump(),
    "dimensions": [len(d.embedding) for d in vectors.data],
    "base64_equals_float": same,
    "norm": sum(v * v for v in floats.data[0].embedding),
    "unknown_model": unknown,
    "wrong_key": wrong_key,
}))
"#;

#[test]
fn the_openai_package_lists_streams_completes_and_embeds() {
    let python = match python_with_openai() {
        Ok(p) => p,
        Err(why) => {
            eprintln!("skipped: the openai-package test ({why})");
            return;
        }
    };
    let home = tempfile::tempdir().unwrap();
    config(home.path());
    let server = start(home);
    let out = Command::new(python)
        .args(["-c", CLIENT, &server.url, &server.key])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["ids"], json!(["character", "office"]));
    assert!(
        seen["pieces"].as_array().unwrap().len() > 1,
        "a streamed reply arrives in pieces: {seen}"
    );
    assert!(
        seen["finish"] == "stop" || seen["finish"] == "length",
        "{seen}"
    );
    assert!(!seen["text"].as_str().unwrap().is_empty(), "{seen}");
    assert!(
        seen["usage"]["prompt_tokens"].as_u64().unwrap() > 0,
        "{seen}"
    );
    assert!(
        seen["usage"]["completion_tokens"].as_u64().unwrap() > 0,
        "{seen}"
    );
    assert_eq!(seen["dimensions"], json!([384, 384]));
    assert_eq!(seen["base64_equals_float"], true, "{seen}");
    // e5 vectors are normalised: a byte-order slip would not give length 1.
    let norm = seen["norm"].as_f64().unwrap();
    assert!((norm - 1.0).abs() < 1e-3, "{seen}");
    assert_eq!(seen["unknown_model"], 404);
    assert_eq!(seen["wrong_key"], 401);
}

#[test]
fn bad_requests_get_openai_shaped_errors_with_the_right_status() {
    let home = tempfile::tempdir().unwrap();
    config(home.path());
    let server = start(home);
    let chat =
        r#"{"model": "office", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}"#;

    let (status, body) = curl(&server, "GET", "/v1/models", None, Some(""));
    assert_eq!(
        (status, error_code(&body)),
        (401, "invalid_api_key"),
        "{body}"
    );
    let (status, body) = curl(&server, "GET", "/v1/models", None, Some("dm-0000"));
    assert_eq!(
        (status, error_code(&body)),
        (401, "invalid_api_key"),
        "{body}"
    );
    assert!(body["error"]["message"].is_string(), "{body}");

    let (status, body) = curl(
        &server,
        "POST",
        "/v1/chat/completions",
        Some("{\"model\": "),
        None,
    );
    assert_eq!(
        (status, error_code(&body)),
        (400, "invalid_input"),
        "{body}"
    );

    let big = format!(
        r#"{{"model": "office", "messages": [{{"role": "user", "content": "{}"}}]}}"#,
        "a".repeat(2 << 20)
    );
    let (status, body) = curl(&server, "POST", "/v1/chat/completions", Some(&big), None);
    assert_eq!(status, 413, "{body}");
    assert_eq!(error_code(&body), "invalid_input", "{body}");

    let unknown = chat.replace("\"office\"", "\"gpt-4o\"");
    let (status, body) = curl(
        &server,
        "POST",
        "/v1/chat/completions",
        Some(&unknown),
        None,
    );
    assert_eq!(
        (status, error_code(&body)),
        (404, "model_not_found"),
        "{body}"
    );

    let (status, body) = curl(&server, "POST", "/v1/chat/completions", Some(chat), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert!(
        body["usage"]["total_tokens"].as_u64().unwrap() > 0,
        "{body}"
    );

    let (status, body) = curl(&server, "GET", "/v1/nothing", None, None);
    assert_eq!((status, error_code(&body)), (404, "not_found"), "{body}");

    // Every request went to the request log.
    let app = common::app(server.home.path());
    let logged = app
        .request_totals("api /v1/chat/completions")
        .unwrap()
        .requests;
    assert!(logged >= 4, "{logged} chat requests logged");
}

#[test]
fn a_key_bound_to_a_public_profile_never_receives_a_restricted_passage() {
    let home = tempfile::tempdir().unwrap();
    config(home.path());
    let secret = home.path().join("salaries.txt");
    std::fs::write(
        &secret,
        "Confidential salary table: the garage attendant earns 41 million won a year.",
    )
    .unwrap();
    let open = home.path().join("garage.txt");
    std::fs::write(
        &open,
        "The office garage opens at seven and closes at ten in the evening.",
    )
    .unwrap();
    let ingest = |path: &Path, level: &str| {
        let out = deskmate(
            home.path(),
            &["ingest", "--level", level, path.to_str().unwrap()],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ingest(&secret, "restricted");
    ingest(&open, "public");
    let out = deskmate(
        home.path(),
        &["profile", "add", "intern", "--clearance", "public"],
    );
    assert!(out.status.success());
    let out = deskmate(home.path(), &["api", "key", "--new", "--profile", "intern"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = start(home);

    let search = r#"{"query": "garage attendant salary", "k": 10}"#;
    let (status, body) = curl(&server, "POST", "/v1/documents/search", Some(search), None);
    assert_eq!(status, 200, "{body}");
    let files: Vec<&str> = body["passages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["file_name"].as_str().unwrap())
        .collect();
    assert!(files.contains(&"garage.txt"), "{body}");
    assert!(!files.contains(&"salaries.txt"), "{body}");

    let chat = r#"{"model": "office", "messages": [{"role": "user", "content": "How much does the garage attendant earn? When does the garage close?"}], "max_tokens": 8}"#;
    let (status, body) = curl(&server, "POST", "/v1/chat/completions", Some(chat), None);
    assert_eq!(status, 200, "{body}");
    let sources: Vec<&str> = body["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["file_name"].as_str().unwrap())
        .collect();
    assert!(
        sources.contains(&"garage.txt"),
        "the answer was grounded: {body}"
    );
    assert!(!sources.contains(&"salaries.txt"), "{body}");
    assert!(
        !body.to_string().contains("41 million"),
        "the restricted text never reaches the answer: {body}"
    );
}

/// 16 streamed requests at once against 4 slots and a queue of 4: each one either streams to
/// its end (`[DONE]`) or is refused at once with 429 and `Retry-After`; none is lost and none
/// hangs (curl gives up after 120 s, which would fail the test).
#[test]
fn sixteen_concurrent_streams_against_four_slots_each_finish_or_get_429() {
    let home = tempfile::tempdir().unwrap();
    let models = repo_models();
    let persona = json!({
        "path": models.join("SmolLM2-135M-Instruct.Q4_1.gguf"), "n_ctx": 2048, "parallel": 4,
        "threads": 2, "max_queue": 4,
        "sampling": {"temperature": 0.0, "max_tokens": 32}
    });
    std::fs::write(
        home.path().join("config.json"),
        json!({"models": {"office": persona, "character": persona}}).to_string(),
    )
    .unwrap();
    let server = start(home);
    let body = json!({
        "model": "office", "stream": true,
        "messages": [{"role": "user", "content": "Count from one to twenty in words."}]
    })
    .to_string();
    let outcomes: Vec<(String, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let (url, key, body) = (&server.url, &server.key, &body);
                s.spawn(move || {
                    let out = Command::new("curl")
                        .args(["-sS", "-N", "--max-time", "120", "-D", "-", "-X", "POST"])
                        .arg(format!("{url}/v1/chat/completions"))
                        .args(["-H", &format!("Authorization: Bearer {key}")])
                        .args(["-H", "Content-Type: application/json", "-d", body])
                        .output()
                        .expect("curl runs");
                    (
                        String::from_utf8_lossy(&out.stdout).into_owned(),
                        String::from_utf8_lossy(&out.stderr).into_owned(),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (mut done, mut refused) = (0, 0);
    for (out, err) in &outcomes {
        assert!(
            err.is_empty(),
            "curl failed (a hang or a dropped connection): {err}"
        );
        let status_line = out.lines().next().unwrap_or("");
        if status_line.contains(" 200") {
            assert!(
                out.contains("data: [DONE]"),
                "a stream that did not end: {out}"
            );
            assert!(
                out.contains("\"finish_reason\":\"length\"")
                    || out.contains("\"finish_reason\":\"stop\""),
                "{out}"
            );
            done += 1;
        } else if status_line.contains(" 429") {
            assert!(out.to_ascii_lowercase().contains("retry-after: 1"), "{out}");
            assert!(out.contains("\"code\":\"busy\""), "{out}");
            refused += 1;
        } else {
            panic!("neither finished nor refused: {out}");
        }
    }
    assert_eq!(done + refused, 16);
    // 4 slots and 4 queued places: at least 8 are served.
    assert!(done >= 8, "{done} finished, {refused} refused");
    eprintln!("16 concurrent streams: {done} finished, {refused} refused with 429");
    // The request log has each stream's outcome as it ended (written when the stream ends,
    // not when its 200 went out).
    let app = common::app(server.home.path());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let logged = app.request_totals("api /v1/chat/completions").unwrap();
        if (logged.ok, logged.busy) == (done, refused) {
            assert_eq!(logged.requests, 16, "{logged:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{logged:?} against {done} finished and {refused} refused"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
