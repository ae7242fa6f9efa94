//! The application layer: the core wired once, for every front end.
//!
//! [`App`] owns what a running Deskmate needs: the configuration, the store connection, the
//! engine (whose finished requests go to the store's request log), the document library, the
//! chat service, speech and image input, and the GPU monitor. It offers one method per use case
//! (send, retry and stop a message; sessions; cards; profiles; import and search documents;
//! load and reload models; save the configuration with its reload rules; voice; images). The
//! window's Tauri commands, the CLI's subcommands and the coming local API only marshal
//! arguments and results around these methods, so they run the same chat turn with the same
//! limits, grounding, titles and one-reply-per-session guard.
//!
//! Opening never fails on a bad configuration, a missing model or an unusable database: each
//! part that could not start keeps its error (errors are `Clone`), and every use case that
//! needs that part returns it. Only an unusable data directory fails [`App::open`].
//!
//! Connections: one store connection for sessions, cards, profiles, turns and the request log
//! (behind a mutex), and the library's own (imports write for minutes).
//!
//! Threading: `App` is `Sync` and meant to live in an `Arc`. Its methods block (SQLite, loading a
//! model, decoding audio): call them from worker threads or `spawn_blocking`. The long-running
//! work starts threads of its own and reports through the callback it was given: a chat turn
//! ([`App::send`], one thread per turn), model loading ([`App::load_in_background`]), imports
//! ([`App::import_documents`], one runner at a time), the monitor ([`App::start_monitor`]).

mod api;
mod conversations;
mod documents;
mod downloads;
mod media;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::time::Duration;

pub use api::{ApiChat, ApiChatRequest, ApiKey, ApiKeyInfo, API_KEY_FILE};
pub use conversations::{OpenSession, Profiles, SendMessage, SessionExport};
pub use documents::{DocumentsStatus, ImportEvent};
pub use downloads::{
    judge_fit, Catalog, CatalogEntry, DownloadEvent, DownloadState, Fit, CHAT_RUNTIME_OVERHEAD,
};
pub use media::{VisionSupport, VoiceStatus};

use crate::chat::{Chat, TurnOptions};
use crate::config::{Config, ConfigSource, LoadedConfig, ModelConfig};
use crate::documents::Library;
use crate::engine::{store_sink, Engine, PersonaReport, PersonaState};
use crate::gpu::{self, Monitor, MonitorSample, MonitorSnapshot, Sampler};
use crate::paths::Paths;
use crate::startup::{self, AppStatus, StoreStatus};
use crate::store::{Persona, Store};
use crate::{Error, Result};

/// Where a persona's messages go.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PersonaBackend {
    pub persona: Persona,
    /// The server, when the persona's model runs on one; `None`: this machine.
    pub remote: Option<RemoteBadge>,
    /// `documents.allow_remote`: whether document passages go to that server too.
    pub documents_to_remote: bool,
}

/// What the "remote: host" badge shows and its tooltip says.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RemoteBadge {
    pub host: String,
    pub base_url: String,
    pub model: String,
}

/// A part of the app, or why it could not start.
type Part<T> = std::result::Result<T, Error>;

pub struct App {
    paths: Paths,
    locale: String,
    config: RwLock<LoadedConfig>,
    /// Held while the configuration is saved, so the file and the one in use always agree and
    /// a read-modify-save ([`App::update_config`]) loses no other save.
    config_writes: Mutex<()>,
    store: Part<Arc<Mutex<Store>>>,
    engine: Part<Arc<Engine>>,
    library: Part<Arc<Library>>,
    chat: Part<Chat>,
    media: media::Media,
    imports: documents::ImportRunner,
    downloads: downloads::Downloads,
    monitor: OnceLock<Part<Monitor>>,
}

impl App {
    /// Opens the configuration (a bad one runs on the default, its problems reported by
    /// [`App::status`]), the store, the engine, the library and the chat at `paths`. Replies
    /// that a process which has ended was writing are marked interrupted.
    pub fn open(paths: Paths) -> Result<App> {
        paths.ensure_dirs()?;
        let loaded = crate::config::load_or_init(&paths.config_file)?;
        for problem in &loaded.problems {
            tracing::warn!(file = %paths.config_file.display(), %problem, "configuration problem");
        }
        let store = Store::open(&paths.database)
            .map(|store| Arc::new(Mutex::new(store)))
            .inspect_err(|e| tracing::error!(error = %e, "the database could not be opened"));
        let engine = Engine::new(store.as_ref().ok().map(|s| store_sink(Arc::clone(s))))
            .map(Arc::new)
            .inspect_err(|e| tracing::error!(error = %e, "the inference engine could not start"));
        let config = &loaded.config;
        if let Ok(engine) = &engine {
            engine.set_prompt_cache(
                paths.prompt_cache_dir(),
                u64::from(config.models.prompt_cache_mb) << 20,
            );
        }
        let library = Library::open(
            &paths.database,
            &paths.vector_index,
            config,
            &paths.models_dir,
        )
        .map(Arc::new)
        .inspect_err(|e| tracing::error!(error = %e, "the document library could not be opened"));
        let chat = match (&store, &engine) {
            (Ok(store), Ok(engine)) => {
                let chat = Chat::new(Arc::clone(store), Arc::clone(engine));
                chat.set_image_ocr(
                    config
                        .documents
                        .ocr
                        .then(|| crate::ocr::Ocr::new(&config.documents.ocr_languages)),
                );
                match chat.interrupt_abandoned_replies() {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(replies = n, "replies cut off by an exit marked interrupted")
                    }
                    Err(e) => tracing::warn!(error = %e, "unfinished replies not marked"),
                }
                Ok(match &library {
                    Ok(library) => chat.with_library(Arc::clone(library)),
                    Err(_) => chat,
                })
            }
            (Err(e), _) | (_, Err(e)) => Err(e.clone()),
        };
        let media = media::Media::new(&paths, config);
        Ok(App {
            locale: crate::locale::system_locale(),
            config: RwLock::new(loaded),
            config_writes: Mutex::new(()),
            store,
            engine,
            library,
            chat,
            media,
            imports: documents::ImportRunner::default(),
            downloads: downloads::Downloads::default(),
            monitor: OnceLock::new(),
            paths,
        })
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// The configuration in use.
    pub fn config(&self) -> Config {
        self.loaded_config().config.clone()
    }

    fn loaded_config(&self) -> std::sync::RwLockReadGuard<'_, LoadedConfig> {
        self.config.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn engine(&self) -> Result<&Arc<Engine>> {
        self.engine.as_ref().map_err(Clone::clone)
    }

    pub fn library(&self) -> Result<&Arc<Library>> {
        self.library.as_ref().map_err(Clone::clone)
    }

    pub fn chat(&self) -> Result<&Chat> {
        self.chat.as_ref().map_err(Clone::clone)
    }

    /// The store connection shared by the chat, the cards, the profiles and the request log.
    fn store(&self) -> Result<MutexGuard<'_, Store>> {
        let store = self.store.as_ref().map_err(Clone::clone)?;
        Ok(store.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Why the database cannot be used, if it cannot.
    pub fn store_error(&self) -> Option<&Error> {
        self.store.as_ref().err()
    }

    /// The snapshot the window shows at start (banners, the Models and Settings pages).
    pub fn status(&self) -> AppStatus {
        let store = match self.store() {
            Ok(store) => match store
                .schema_version()
                .and_then(|v| Ok((v, store.counts()?)))
            {
                Ok((version, counts)) => StoreStatus::ok(version, &counts),
                Err(e) => StoreStatus::failed(&e),
            },
            Err(e) => StoreStatus::failed(&e),
        };
        let loaded = self.loaded_config();
        AppStatus {
            version: env!("CARGO_PKG_VERSION"),
            locale: self.locale.clone(),
            paths: self.paths.clone(),
            config_problems: loaded.problems.clone(),
            config_source: loaded.source,
            store,
            models: startup::model_statuses(&self.paths, &loaded.config),
        }
    }

    // --- configuration and models ---

    /// The configuration of the model behind `persona`.
    pub fn model_config(&self, persona: Persona) -> ModelConfig {
        self.loaded_config().config.models.persona(persona).clone()
    }

    /// The model file `persona` loads: `model` when given, else its configured one.
    pub fn model_path(&self, persona: Persona, model: Option<&Path>) -> PathBuf {
        match model {
            Some(path) => path.to_path_buf(),
            None => self.paths.model_path(&self.model_config(persona).path),
        }
    }

    /// Makes `persona` ready: loads its model (or `model` instead of the configured file, which
    /// is always local) with the back-off, or, for a persona on a server, connects and asks
    /// the server whether it answers. Blocks for the seconds it takes.
    pub fn load_persona(&self, persona: Persona, model: Option<&Path>) -> Result<PersonaReport> {
        let config = self.model_config(persona);
        let engine = self.engine()?;
        match (model, config.backend.remote()) {
            (None, Some(remote)) => engine
                .connect(persona, remote, &config)
                .map(|r| PersonaReport::Remote(Box::new(r))),
            _ => engine
                .load(persona, &self.model_path(persona, model), &config)
                .map(|r| PersonaReport::Local(Box::new(r))),
        }
    }

    /// The server `persona`'s requests go to, when it is on one. Asks the engine, which knows
    /// where requests go right now.
    pub fn remote_backend(&self, persona: Persona) -> Option<crate::config::RemoteBackend> {
        self.engine().ok()?.remote_backend(persona)
    }

    /// Where each persona's messages go, for the chat's "remote: host" badge: the engine's
    /// server for the persona, else the configured one (a reload may be under way).
    pub fn persona_backends(&self) -> Vec<PersonaBackend> {
        let config = self.config();
        [Persona::Office, Persona::Character]
            .into_iter()
            .map(|persona| {
                let remote = self
                    .remote_backend(persona)
                    .or_else(|| config.models.persona(persona).backend.remote().cloned());
                PersonaBackend {
                    persona,
                    remote: remote.map(|r| RemoteBadge {
                        host: r.host().to_owned(),
                        base_url: r.base_url.clone(),
                        model: r.model.clone(),
                    }),
                    documents_to_remote: config.documents.allow_remote,
                }
            })
            .collect()
    }

    /// Loads (or reloads) the personas' models on a thread of their own, one after the other so
    /// the second sees the VRAM the first took. The Models page follows them through
    /// [`App::engine_status`].
    pub fn load_in_background(&self, personas: &[Persona]) -> Result<()> {
        let engine = Arc::clone(self.engine()?);
        let jobs: Vec<_> = personas
            .iter()
            .map(|&persona| {
                let config = self.model_config(persona);
                (persona, self.paths.model_path(&config.path), config)
            })
            .collect();
        std::thread::Builder::new()
            .name("deskmate-model-loader".into())
            .spawn(move || {
                for (persona, path, config) in jobs {
                    let result = match config.backend.remote() {
                        Some(remote) => engine.connect(persona, remote, &config).map(|_| ()),
                        None => engine.load(persona, &path, &config).map(|_| ()),
                    };
                    if let Err(e) = result {
                        tracing::warn!(persona = persona.as_str(), error = %e, "model not loaded");
                    }
                }
            })
            .map_err(|e| Error::Internal {
                what: "the model loading thread",
                reason: e.to_string(),
            })?;
        Ok(())
    }

    /// Each persona's model: loading, loaded (load report and live statistics), failed (the
    /// error and every load attempt) or not loaded.
    pub fn engine_status(&self) -> Result<Vec<PersonaState>> {
        Ok(self.engine()?.persona_states())
    }

    /// Validates and saves the configuration (atomically; an invalid one is refused with every
    /// problem named, and the file is left as it was), then applies it:
    /// - a persona whose model settings changed is reloaded, in the background;
    /// - a changed speech model or language is used from the next recording on.
    ///
    /// - OCR of scanned pages (`documents.ocr`, `documents.ocr_languages`) from the next file
    ///   imported, and for the next image attached.
    ///
    /// Settings read when a part starts (the document library's embedding model and limits,
    /// the monitor's interval and thresholds) apply at the next start.
    pub fn save_config(&self, config: Config) -> Result<Config> {
        let _writing = self
            .config_writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.save_config_holding_lock(config)
    }

    /// Changes the configuration in use and saves it as [`App::save_config`] does; no other
    /// save can come between the read and the write.
    pub fn update_config(&self, change: impl FnOnce(&mut Config)) -> Result<Config> {
        let _writing = self
            .config_writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut config = self.config();
        change(&mut config);
        self.save_config_holding_lock(config)
    }

    fn save_config_holding_lock(&self, config: Config) -> Result<Config> {
        config.save(&self.paths.config_file)?;
        let old = {
            let mut loaded = self.config.write().unwrap_or_else(PoisonError::into_inner);
            let old = std::mem::replace(&mut loaded.config, config.clone());
            loaded.source = ConfigSource::User;
            loaded.problems.clear();
            old
        };
        if old.speech != config.speech {
            self.media.reconfigure(&self.paths, &config);
        }
        let (d, was) = (&config.documents, &old.documents);
        if (d.ocr, &d.ocr_languages) != (was.ocr, &was.ocr_languages) {
            if let Ok(library) = self.library() {
                library.set_ocr(d.ocr, &d.ocr_languages);
            }
            if let Ok(chat) = self.chat() {
                chat.set_image_ocr(d.ocr.then(|| crate::ocr::Ocr::new(&d.ocr_languages)));
            }
        }
        if d.sentence_rerank != was.sentence_rerank {
            if let Ok(library) = self.library() {
                library.set_sentence_rerank(d.sentence_rerank);
            }
        }
        if old.models.prompt_cache_mb != config.models.prompt_cache_mb {
            // For models loaded from now on.
            if let Ok(engine) = self.engine() {
                engine.set_prompt_cache(
                    self.paths.prompt_cache_dir(),
                    u64::from(config.models.prompt_cache_mb) << 20,
                );
            }
        }
        let changed: Vec<Persona> = [Persona::Office, Persona::Character]
            .into_iter()
            .filter(|&p| old.models.persona(p) != config.models.persona(p))
            .collect();
        if !changed.is_empty() {
            self.load_in_background(&changed)?;
        }
        Ok(config)
    }

    /// Unloads the models (their conversations go to the prompt cache on disk); for a front
    /// end that is about to exit.
    pub fn shutdown(&self) {
        if let Ok(engine) = self.engine() {
            for persona in [Persona::Office, Persona::Character] {
                engine.unload(persona);
            }
        }
    }

    /// Makes `path` the persona's model file in the configuration, saves it and loads it.
    pub fn set_model_file(&self, persona: Persona, path: PathBuf) -> Result<Config> {
        self.update_config(|config| match persona {
            Persona::Office => config.models.office.path = path,
            Persona::Character => config.models.character.path = path,
        })
    }

    /// The limits a turn is held to. `history_turns` is a preference of the front end (the
    /// window's setting; `None`: all that fit).
    pub fn turn_options(&self, history_turns: Option<usize>) -> TurnOptions {
        let config = &self.loaded_config().config;
        TurnOptions {
            history_turns,
            max_message_chars: config.chat.max_message_chars as usize,
            documents_to_remote: config.documents.allow_remote,
        }
    }

    // --- GPU monitor ---

    /// Starts sampling the GPUs and the system once per `monitor.interval_ms`, calling
    /// `on_sample` on the sampling thread. Only the first call starts it.
    pub fn start_monitor(&self, on_sample: impl Fn(&MonitorSample) + Send + 'static) {
        self.monitor.get_or_init(|| {
            let config = self.loaded_config().config.monitor.clone();
            let interval = Duration::from_millis(u64::from(config.interval_ms));
            Monitor::start(Sampler::nvml(config), interval, on_sample).map_err(|e| {
                tracing::error!(error = %e, "the GPU monitor thread could not be started");
                Error::MonitorUnavailable {
                    reason: e.to_string(),
                }
            })
        });
    }

    fn monitor(&self) -> Result<&Monitor> {
        match self.monitor.get() {
            Some(part) => part.as_ref().map_err(Clone::clone),
            None => Err(Error::MonitorUnavailable {
                reason: "it has not been started".to_owned(),
            }),
        }
    }

    /// The monitor's history so far and where the models sit.
    pub fn monitor_snapshot(&self) -> Result<MonitorSnapshot> {
        let mut placements = gpu::configured_placements(&self.loaded_config().config);
        if let Ok(engine) = self.engine() {
            for placement in &mut placements {
                if let crate::engine::PersonaState::Loaded { report, .. } =
                    engine.persona_state(placement.persona)
                {
                    placement.loaded = true;
                    placement.layers_on_gpu = Some(report.layers_on_gpu);
                    placement.layers_total = Some(report.layers_total);
                    if let Some(gpu) = report.gpu {
                        placement.main_gpu = gpu;
                    }
                }
            }
        }
        Ok(self.monitor()?.snapshot(placements))
    }

    /// Pauses sampling while the window is hidden.
    pub fn monitor_set_visible(&self, visible: bool) {
        if let Ok(monitor) = self.monitor() {
            monitor.set_visible(visible);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_database_that_cannot_be_opened_leaves_the_rest_running_and_every_use_of_it_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::in_dir(dir.path());
        paths.ensure_dirs().unwrap();
        // A directory where the database file should be.
        std::fs::create_dir_all(&paths.database).unwrap();
        let app = App::open(paths).unwrap();
        let status = app.status();
        assert!(!status.store.ok);
        let code = status.store.error.as_ref().unwrap().code();
        assert_eq!(app.sessions(None).unwrap_err().code(), code);
        assert_eq!(app.chat().err().unwrap().code(), code);
        assert!(app.store_error().is_some());
        // The engine does not need the database (the request log is not kept).
        assert!(app.engine_status().is_ok());
        assert_eq!(
            app.monitor_snapshot().unwrap_err().code(),
            "monitor_unavailable"
        );
    }

    #[test]
    fn changes_made_at_the_same_time_are_all_kept() {
        let dir = tempfile::tempdir().unwrap();
        let app = Arc::new(App::open(Paths::in_dir(dir.path())).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let app = Arc::clone(&app);
                std::thread::spawn(move || {
                    app.update_config(|c| {
                        c.api
                            .cors_origins
                            .push(format!("http://localhost:{}", 3000 + i))
                    })
                    .unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(app.config().api.cors_origins.len(), 8);
        let reopened = App::open(Paths::in_dir(dir.path())).unwrap();
        assert_eq!(
            reopened.config(),
            app.config(),
            "the file and the one in use agree"
        );
    }

    #[test]
    fn a_saved_configuration_is_used_at_once_and_an_invalid_one_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(Paths::in_dir(dir.path())).unwrap();
        let mut config = app.config();
        config.chat.max_message_chars = 100;
        app.save_config(config.clone()).unwrap();
        assert_eq!(app.turn_options(None).max_message_chars, 100);
        let mut bad = config.clone();
        bad.chat.max_message_chars = 0;
        let err = app.save_config(bad).unwrap_err();
        assert_eq!(err.code(), "config_invalid");
        assert_eq!(app.config(), config);
        let reopened = App::open(Paths::in_dir(dir.path())).unwrap();
        assert_eq!(reopened.config().chat.max_message_chars, 100);
    }
}
