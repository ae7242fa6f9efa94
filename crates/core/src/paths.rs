//! Where Deskmate keeps its files.
//!
//! Resolution order for each path: an explicit override (a CLI flag), then an environment
//! variable, then the platform default (`directories`, e.g. `~/.config/deskmate/config.json` and
//! `~/.local/share/deskmate/` on Linux). Nothing here creates directories; callers that write
//! do so (`Paths::ensure_dirs`).

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Environment variable naming the configuration file.
pub const ENV_CONFIG: &str = "DESKMATE_CONFIG";
/// Environment variable naming the data directory (database, logs, index files).
pub const ENV_DATA_DIR: &str = "DESKMATE_DATA_DIR";
/// Environment variable naming the models directory.
pub const ENV_MODELS_DIR: &str = "DESKMATE_MODELS_DIR";
/// Environment variable naming a local model mirror folder.
pub const ENV_MODEL_MIRROR: &str = "DESKMATE_MODEL_MIRROR";

pub const DATABASE_FILE: &str = "deskmate.sqlite3";
/// The vector index beside the database (a cache of stored embeddings; see `documents::vectors`).
pub const VECTOR_INDEX_FILE: &str = "deskmate.vectors";
pub const ATTACHMENTS_DIR: &str = "attachments";

/// Overrides given on a command line; `None` means "use the environment or the default".
#[derive(Debug, Clone, Default)]
pub struct PathOverrides {
    pub config_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub models_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Paths {
    /// The user's configuration file (a copy of the shipped default on first start).
    pub config_file: PathBuf,
    pub data_dir: PathBuf,
    /// Relative model paths in the configuration are resolved against this directory.
    pub models_dir: PathBuf,
    pub database: PathBuf,
    pub vector_index: PathBuf,
    /// Originals of the images sent with messages, named by their sha256.
    pub attachments_dir: PathBuf,
}

impl Paths {
    pub fn resolve(overrides: &PathOverrides) -> Result<Paths> {
        let from_env = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let dirs = || {
            directories::ProjectDirs::from("app", "deskmate", "deskmate").ok_or(Error::NoHomeDir)
        };

        let config_file = match overrides
            .config_file
            .clone()
            .or_else(|| from_env(ENV_CONFIG))
        {
            Some(p) => p,
            None => dirs()?.config_dir().join("config.json"),
        };
        let data_dir = match overrides
            .data_dir
            .clone()
            .or_else(|| from_env(ENV_DATA_DIR))
        {
            Some(p) => p,
            None => dirs()?.data_dir().to_path_buf(),
        };
        let models_dir = overrides
            .models_dir
            .clone()
            .or_else(|| from_env(ENV_MODELS_DIR))
            .unwrap_or_else(|| data_dir.join("models"));
        let database = data_dir.join(DATABASE_FILE);
        let vector_index = data_dir.join(VECTOR_INDEX_FILE);
        let attachments_dir = data_dir.join(ATTACHMENTS_DIR);
        Ok(Paths {
            config_file,
            data_dir,
            models_dir,
            database,
            vector_index,
            attachments_dir,
        })
    }

    /// Paths rooted in one directory, for tests and portable installs.
    pub fn in_dir(root: &Path) -> Paths {
        Paths {
            config_file: root.join("config.json"),
            data_dir: root.join("data"),
            models_dir: root.join("models"),
            database: root.join("data").join(DATABASE_FILE),
            vector_index: root.join("data").join(VECTOR_INDEX_FILE),
            attachments_dir: root.join("data").join(ATTACHMENTS_DIR),
        }
    }

    /// Creates the data and models directories and the configuration file's directory.
    pub fn ensure_dirs(&self) -> Result<()> {
        let mut dirs = vec![self.data_dir.as_path(), self.models_dir.as_path()];
        if let Some(parent) = self
            .config_file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            dirs.push(parent);
        }
        for dir in dirs {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        Ok(())
    }

    /// A model path from the configuration: absolute paths stay, relative ones live in `models_dir`.
    pub fn model_path(&self, configured: &Path) -> PathBuf {
        if configured.is_absolute() {
            configured.to_path_buf()
        } else {
            self.models_dir.join(configured)
        }
    }
}

impl Paths {
    /// Where conversations' prompt caches are saved (`engine::prompt_store`), a folder per
    /// model; deleting it is always safe.
    pub fn prompt_cache_dir(&self) -> PathBuf {
        self.data_dir.join("prompt-cache")
    }

    /// The ONNX Runtime library the embedder loads: `configured` when absolute, else that name
    /// in the models directory, else the copy installed with the app ([`bundled_lib_dir`]),
    /// else the models directory's path (which then reports it missing).
    pub fn runtime_library(&self, configured: &Path) -> PathBuf {
        runtime_library_in(&self.models_dir, configured)
    }
}

/// [`Paths::runtime_library`] for a models directory.
pub fn runtime_library_in(models_dir: &Path, configured: &Path) -> PathBuf {
    let in_models = models_dir.join(configured);
    if configured.is_absolute() || in_models.exists() {
        return in_models;
    }
    match bundled_lib_dir().map(|dir| dir.join(configured)) {
        Some(bundled) if bundled.is_file() => bundled,
        _ => in_models,
    }
}

/// Where an installed package keeps the libraries it ships (`/usr/lib/deskmate` beside
/// `/usr/bin/deskmate-app`): `<executable's folder>/../lib/deskmate`. `None` when the
/// executable's path cannot be read.
pub fn bundled_lib_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.join("lib").join("deskmate"))
}

/// The local model mirror folder named by `DESKMATE_MODEL_MIRROR`, if any.
pub fn mirror_from_env() -> Option<PathBuf> {
    std::env::var_os(ENV_MODEL_MIRROR)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}
