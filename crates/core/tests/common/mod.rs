//! Shared by the core's integration tests: where the test models are, and a library on them.

use std::path::{Path, PathBuf};

/// A test model file from `models/` in the repository (`cargo xtask models --set test`) or from
/// the mirror named by `DESKMATE_MODEL_MIRROR`; without either the test fails and says so.
#[allow(dead_code)]
pub fn model(name: &str) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models")
        .join(name);
    if repo.is_file() {
        return repo;
    }
    if let Some(mirror) = std::env::var_os("DESKMATE_MODEL_MIRROR") {
        let p = Path::new(&mirror).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "test model {name} is missing: run `cargo xtask models --set test` (or set DESKMATE_MODEL_MIRROR)"
    );
}

/// The models directory with the embedding model and ONNX Runtime: `models/` in the repository,
/// or the mirror named by `DESKMATE_MODEL_MIRROR`.
#[allow(dead_code)]
pub fn models_dir() -> PathBuf {
    let probe = "multilingual-e5-small-onnx/model.onnx";
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    if repo.join(probe).is_file() {
        return repo;
    }
    if let Some(mirror) = std::env::var_os("DESKMATE_MODEL_MIRROR") {
        let p = PathBuf::from(mirror);
        if p.join(probe).is_file() {
            return p;
        }
    }
    panic!("the embedding model is missing: run `cargo xtask models --set test` (or set DESKMATE_MODEL_MIRROR)");
}

/// A model that only some mirrors have (`provision --full`): `None` when it is absent, so the
/// test can say it was skipped.
#[allow(dead_code)]
pub fn optional_model(name: &str) -> Option<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models")
        .join(name);
    if repo.is_file() {
        return Some(repo);
    }
    let mirror = std::env::var_os("DESKMATE_MODEL_MIRROR")?;
    Some(Path::new(&mirror).join(name)).filter(|p| p.is_file())
}

/// A document library in `dir` (its database and vector file) on the test embedding model,
/// with the shipped configuration as `change` leaves it.
#[allow(dead_code)]
pub fn library_in(
    dir: &Path,
    change: impl FnOnce(&mut deskmate_core::config::Config),
) -> deskmate_core::documents::Library {
    let mut config = deskmate_core::config::Config::shipped();
    change(&mut config);
    deskmate_core::documents::Library::open(
        &dir.join("deskmate.sqlite3"),
        &dir.join("deskmate.vectors"),
        &config,
        &models_dir(),
    )
    .unwrap_or_else(|e| panic!("opening a library in {}: {e}", dir.display()))
}
