//! `deskmate serve` on a free port for a test: the API's own tests and the second Deskmate
//! that uses it as its remote server.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{command, deskmate, repo_models};

/// A running `deskmate serve` on a free port, killed when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub key: String,
    pub home: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Both personas on SmolLM2 (two slots each), the repository's e5 model for embeddings.
pub fn config(home: &Path) {
    let models = repo_models();
    let persona = json!({
        "path": models.join("SmolLM2-135M-Instruct.Q4_1.gguf"), "n_ctx": 2048, "parallel": 2,
        "threads": 2, "max_queue": 4,
        "sampling": {"temperature": 0.0, "max_tokens": 24}
    });
    let config = json!({
        "models": {"office": persona, "character": persona},
        "embedding": {
            "model": models.join("multilingual-e5-small-onnx"),
            "runtime_library": models.join("libonnxruntime.so.1.24.4")
        }
    });
    std::fs::write(home.join("config.json"), config.to_string()).unwrap();
}

pub fn start(home: tempfile::TempDir) -> Server {
    let key = String::from_utf8(deskmate(home.path(), &["api", "key"]).stdout)
        .unwrap()
        .trim()
        .to_owned();
    assert!(key.starts_with("dm-"), "{key}");
    let mut child = command(home.path(), &["serve", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("no address: {line:?}"))
        .to_owned();
    let server = Server {
        child,
        url,
        key,
        home,
    };
    // The models load in the background; /health says when.
    let started = Instant::now();
    loop {
        let (status, health) = curl(&server, "GET", "/health", None, None);
        assert_eq!(status, 200, "{health}");
        if health["models"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["ready"] == true)
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "models never loaded: {health}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    server
}

/// `curl` with the key (unless `key` says otherwise); the status and the JSON body.
pub fn curl(
    server: &Server,
    method: &str,
    path: &str,
    body: Option<&str>,
    key: Option<&str>,
) -> (u16, Value) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-X", method, "-w", "\n%{http_code}"])
        .arg(format!("{}{path}", server.url));
    let auth = key.unwrap_or(&server.key);
    if !auth.is_empty() {
        cmd.args(["-H", &format!("Authorization: Bearer {auth}")]);
    }
    if let Some(body) = body {
        // From a file: a 2 MB body is over the limit of a command line.
        let file = server.home.path().join("body.json");
        std::fs::write(&file, body).unwrap();
        cmd.args(["-H", "Content-Type: application/json", "--data-binary"])
            .arg(format!("@{}", file.display()));
    }
    let out = cmd.output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (json, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (
        status.trim().parse().unwrap_or(0),
        serde_json::from_str(json).unwrap_or(Value::String(json.to_owned())),
    )
}
