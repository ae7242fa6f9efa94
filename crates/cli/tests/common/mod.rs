//! Shared by the CLI's integration tests: the `deskmate` binary run on a home folder of its own,
//! and where the test models are.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

pub mod serve;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `deskmate ARGS` with its configuration, data and models in `home` (and no model mirror).
pub fn command(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_deskmate"));
    cmd.args(args)
        .env("DESKMATE_CONFIG", home.join("config.json"))
        .env("DESKMATE_DATA_DIR", home.join("data"))
        .env("DESKMATE_MODELS_DIR", home.join("models"))
        .env_remove("DESKMATE_MODEL_MIRROR");
    cmd
}

/// Runs [`command`] to its end.
pub fn deskmate(home: &Path, args: &[&str]) -> Output {
    command(home, args)
        .output()
        .expect("the deskmate binary runs")
}

/// The repository's models/ (`cargo xtask models --set test`).
pub fn repo_models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models")
        .canonicalize()
        .expect("models/ exists (cargo xtask models --set test)")
}

/// The app as the `deskmate` commands run on `home` open it, to look at what they stored.
pub fn app(home: &Path) -> deskmate_core::app::App {
    deskmate_core::app::App::open(deskmate_core::paths::Paths::in_dir(home))
        .expect("the app opens on the test's home")
}

/// `deskmate documents --json`, which must succeed.
pub fn documents_json(home: &Path) -> Vec<serde_json::Value> {
    let out = deskmate(home, &["documents", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
