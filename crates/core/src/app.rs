//! The application layer: the core wired once, for every front end.
//!
//! [`App`] owns what a running Deskmate needs: the store connection, the engine (whose finished
//! requests go to the store's request log), the document library and the chat service. Front
//! ends marshal arguments and results around its methods instead of wiring the core themselves,
//! so the window, the CLI and the coming local API run the same chat turn with the same limits,
//! grounding, titles and one-reply-per-session guard.
//!
//! Today `deskmate chat` goes through it; the window's shell (`src-tauri`) still wires the core by
//! hand and moves here next (issue 14).
//!
//! Threading: `App` is `Sync`; its methods block (loading a model, SQLite) and are called from
//! worker threads or `spawn_blocking`. A chat turn is run by its caller ([`crate::chat::Turn::run`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::chat::{Chat, TurnOptions};
use crate::config::{Config, ModelConfig};
use crate::documents::Library;
use crate::engine::{store_sink, Engine, LoadReport};
use crate::paths::Paths;
use crate::startup::Startup;
use crate::store::{Persona, Store};
use crate::Result;

pub struct App {
    paths: Paths,
    config: Config,
    engine: Arc<Engine>,
    library: Arc<Library>,
    chat: Chat,
}

impl App {
    /// Opens the configuration, the store, the engine and the library at `paths`. A database
    /// that cannot be used is an error here: every use case of the app stores something.
    pub fn open(paths: Paths) -> Result<App> {
        let startup = Startup::open_paths(paths)?;
        let Startup {
            paths,
            config,
            store,
            ..
        } = startup;
        let store = match store {
            Ok(store) => store,
            // The startup keeps only the payload for the UI; opening again gives the error
            // itself (or the store, if what stood in the way is gone).
            Err(_) => Store::open(&paths.database)?,
        };
        let store = Arc::new(Mutex::new(store));
        let engine = Arc::new(Engine::new(Some(store_sink(Arc::clone(&store))))?);
        let config = config.config;
        let library = Arc::new(Library::open(
            &paths.database,
            &paths.vector_index,
            &config,
            &paths.models_dir,
        )?);
        let chat = Chat::new(store, Arc::clone(&engine)).with_library(Arc::clone(&library));
        Ok(App {
            paths,
            config,
            engine,
            library,
            chat,
        })
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn library(&self) -> &Arc<Library> {
        &self.library
    }

    pub fn chat(&self) -> &Chat {
        &self.chat
    }

    /// The configuration of the model behind `persona`.
    pub fn model_config(&self, persona: Persona) -> &ModelConfig {
        self.config.models.persona(persona)
    }

    /// The model file `persona` loads: `model` when given, else its configured one.
    pub fn model_path(&self, persona: Persona, model: Option<&Path>) -> PathBuf {
        match model {
            Some(path) => path.to_path_buf(),
            None => self.paths.model_path(&self.model_config(persona).path),
        }
    }

    /// Loads `persona`'s model (or `model` instead of the configured file), with the back-off.
    pub fn load_persona(&self, persona: Persona, model: Option<&Path>) -> Result<LoadReport> {
        let path = self.model_path(persona, model);
        self.engine.load(persona, &path, self.model_config(persona))
    }

    /// The limits a turn is held to. `history_turns` is a preference of the front end (the
    /// window's setting; `None`: all that fit).
    pub fn turn_options(&self, history_turns: Option<usize>) -> TurnOptions {
        TurnOptions {
            history_turns,
            max_message_chars: self.config.chat.max_message_chars as usize,
        }
    }
}
