//! What the app (and the CLI) does at start: resolve paths, read or create the configuration,
//! open the store, and check that the configured model files are there.
//!
//! Nothing here may stop the app from opening: a bad configuration runs on the shipped default,
//! a store that fails to open is reported, and a missing model is a status, all shown to the user
//! by [`AppStatus`]. Only an unusable data directory is an error.

use std::path::Path;

use serde::Serialize;

use crate::config::{self, ConfigProblem, ConfigSource, LoadedConfig};
use crate::paths::{PathOverrides, Paths};
use crate::store::Store;
use crate::store::StoreCounts;
use crate::{Error, Result};

pub struct Startup {
    pub paths: Paths,
    pub config: LoadedConfig,
    /// The store, or why it could not be opened (the rest of the app still runs).
    pub store: std::result::Result<Store, Error>,
    pub locale: String,
}

impl Startup {
    pub fn open(overrides: &PathOverrides) -> Result<Startup> {
        let paths = Paths::resolve(overrides)?;
        Startup::open_paths(paths)
    }

    pub fn open_paths(paths: Paths) -> Result<Startup> {
        paths.ensure_dirs()?;
        let config = config::load_or_init(&paths.config_file)?;
        for problem in &config.problems {
            tracing::warn!(file = %paths.config_file.display(), %problem, "configuration problem");
        }
        let store = Store::open(&paths.database)
            .inspect_err(|e| tracing::error!(error = %e, "store could not be opened"));
        Ok(Startup {
            paths,
            config,
            store,
            locale: crate::locale::system_locale(),
        })
    }

    /// The snapshot the UI shows at start (banners, Models and Settings pages).
    pub fn status(&self) -> AppStatus {
        let store = match &self.store {
            Ok(store) => match store
                .schema_version()
                .and_then(|v| Ok((v, store.counts()?)))
            {
                Ok((schema_version, counts)) => StoreStatus::ok(schema_version, &counts),
                Err(e) => StoreStatus::failed(&e),
            },
            Err(e) => StoreStatus::failed(e),
        };
        AppStatus {
            version: env!("CARGO_PKG_VERSION"),
            locale: self.locale.clone(),
            paths: self.paths.clone(),
            config_problems: self.config.problems.clone(),
            config_source: self.config.source,
            store,
            models: model_statuses(&self.paths, &self.config.config),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AppStatus {
    pub version: &'static str,
    pub locale: String,
    pub paths: Paths,
    pub config_problems: Vec<ConfigProblem>,
    pub config_source: ConfigSource,
    pub store: StoreStatus,
    pub models: Vec<ModelFileStatus>,
}

/// `{"ok": true, "schema_version": 1, "sessions": 0, ...}` or `{"ok": false, "error": {...}}`.
#[derive(Debug, Clone, Serialize)]
pub struct StoreStatus {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cards: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documents: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Error>,
}

impl StoreStatus {
    pub(crate) fn ok(schema_version: i64, counts: &StoreCounts) -> StoreStatus {
        StoreStatus {
            ok: true,
            schema_version: Some(schema_version),
            sessions: Some(counts.sessions),
            cards: Some(counts.cards),
            documents: Some(counts.documents),
            error: None,
        }
    }

    pub(crate) fn failed(error: &Error) -> StoreStatus {
        StoreStatus {
            ok: false,
            schema_version: None,
            sessions: None,
            cards: None,
            documents: None,
            error: Some(error.clone()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelRole {
    Office,
    Character,
    Speech,
    Embedding,
}

/// Whether a configured model file (or folder) is present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelFileStatus {
    pub role: ModelRole,
    /// As written in config.json.
    pub configured: String,
    pub resolved_path: String,
    pub installed: bool,
    pub size_bytes: Option<u64>,
    /// For a persona on an OpenAI-compatible server: its `host[:port]` (the file is not used).
    pub remote: Option<String>,
}

/// The configured models of every role and whether their files exist.
pub fn model_statuses(paths: &Paths, config: &config::Config) -> Vec<ModelFileStatus> {
    let host = |m: &config::ModelConfig| m.backend.remote().map(|r| r.host().to_owned());
    let roles = [
        (
            ModelRole::Office,
            config.models.office.path.as_path(),
            host(&config.models.office),
        ),
        (
            ModelRole::Character,
            config.models.character.path.as_path(),
            host(&config.models.character),
        ),
        (ModelRole::Speech, config.speech.model.as_path(), None),
        (ModelRole::Embedding, config.embedding.model.as_path(), None),
    ];
    roles
        .into_iter()
        .map(|(role, configured, remote)| {
            let resolved = paths.model_path(configured);
            let size_bytes = installed_size(&resolved);
            ModelFileStatus {
                role,
                configured: configured.display().to_string(),
                resolved_path: resolved.display().to_string(),
                installed: size_bytes.is_some(),
                size_bytes,
                remote,
            }
        })
        .collect()
}

/// Size of a model file, or of a model folder's files (one level, as ONNX model folders are);
/// `None` when absent or empty.
fn installed_size(path: &Path) -> Option<u64> {
    let meta = std::fs::metadata(path).ok()?;
    let size = if meta.is_dir() {
        std::fs::read_dir(path)
            .ok()?
            .filter_map(|entry| entry.ok()?.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum()
    } else {
        meta.len()
    };
    (size > 0).then_some(size)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn first_start_in_an_empty_folder_creates_config_and_database_and_reports_missing_models() {
        let dir = tempfile::tempdir().unwrap();
        let startup = Startup::open_paths(Paths::in_dir(dir.path())).unwrap();
        let status = startup.status();
        assert_eq!(status.config_source, ConfigSource::CreatedFromDefault);
        assert!(status.config_problems.is_empty());
        assert!(status.store.ok);
        assert_eq!(
            status.store.schema_version,
            Some(crate::store::latest_version())
        );
        assert!(dir.path().join("config.json").is_file());
        assert!(dir.path().join("data").join("deskmate.sqlite3").is_file());
        assert_eq!(status.models.len(), 4);
        assert!(status.models.iter().all(|m| !m.installed));

        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["store"]["ok"], true);
        assert_eq!(json["models"][0]["role"], "office");
        assert_eq!(json["config_source"], "created_from_default");
    }

    #[test]
    fn a_broken_config_and_an_unreadable_store_are_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::in_dir(dir.path());
        std::fs::write(
            &paths.config_file,
            r#"{"models": {"office": {"n_ctx": 0}}}"#,
        )
        .unwrap();
        std::fs::create_dir_all(&paths.data_dir).unwrap();
        std::fs::write(
            &paths.database,
            b"garbage that is not an SQLite database at all........",
        )
        .unwrap();
        let status = Startup::open_paths(paths).unwrap().status();
        assert_eq!(status.config_source, ConfigSource::BuiltinDefault);
        assert_eq!(status.config_problems[0].path, "models.office.n_ctx");
        assert!(!status.store.ok);
        assert_eq!(status.store.error.as_ref().unwrap().code(), "store");
    }

    #[test]
    fn installed_models_are_found_relative_to_the_models_dir() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::in_dir(dir.path());
        paths.ensure_dirs().unwrap();
        std::fs::write(
            paths.models_dir.join(config::DEFAULT_CHAT_MODEL),
            b"GGUF....",
        )
        .unwrap();
        let e5 = paths.models_dir.join("multilingual-e5-small-onnx");
        std::fs::create_dir_all(&e5).unwrap();
        std::fs::write(e5.join("model.onnx"), b"onnx").unwrap();
        let statuses = model_statuses(&paths, &config::Config::default());
        let installed: Vec<(ModelRole, Option<u64>)> =
            statuses.iter().map(|s| (s.role, s.size_bytes)).collect();
        assert_eq!(
            installed,
            [
                (ModelRole::Office, Some(8)),
                (ModelRole::Character, Some(8)),
                (ModelRole::Speech, None),
                (ModelRole::Embedding, Some(4)),
            ]
        );
    }
}
