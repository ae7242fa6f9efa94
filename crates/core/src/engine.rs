//! The inference engine: the office and character models on llama.cpp.
//!
//! - [`gguf`] reads and checks a model file before llama.cpp is given it, so a missing,
//!   truncated, corrupt or non-GGUF file is a clear error and never reaches (or aborts) llama.cpp;
//!   it also supplies the per-layer sizes and KV size per token for the fit estimate.
//! - [`devices`] is llama.cpp's own device list (every backend): where layers can go and the
//!   free memory there.
//! - [`fit`] estimates the GPU layers that fit in free VRAM and is the back-off policy over an
//!   injected loader.
//! - `worker` (private) owns one loaded model: a dedicated thread with the llama.cpp context,
//!   `parallel` slots with continuous batching, the prompt cache and the bounded queue.
//! - [`llama_log`] captures llama.cpp's log per worker thread, for failure reasons.
//! - [`text`] keeps streamed text valid UTF-8 and cuts it at stop strings; [`stats`] keeps
//!   per-model statistics.
//!
//! - [`remote`] serves a persona from an OpenAI-compatible server instead (vLLM, llama-server,
//!   Ollama, another Deskmate), with the same events, statistics and request log.
//!
//! [`Engine`] is the host: it loads each persona's model (sharing the weights when both name the
//! same file with the same load parameters), reloads and unloads at run time, and hands out
//! [`Generation`]s. Its methods block (loading takes seconds); async callers use
//! `spawn_blocking`. Requests never block: they queue or fail at once with
//! [`Error::Engine(EngineError::Busy)`].

pub mod devices;
pub mod fit;
pub mod gguf;
pub mod llama_log;
mod lookup;
mod prompt_store;
pub mod remote;
pub mod stats;
pub mod text;
mod worker;

use crate::error::{EngineError, VisionError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use serde::Serialize;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::config::{AutoOr, ModelConfig, Sampling};
use crate::error::{Error, Result};
use crate::store::{Persona, Role};
pub use stats::{store_sink, RequestSink, StatsSnapshot, Timings};

/// One message of a conversation as the model sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
    /// Images the model sees before the text (a vision model only; see
    /// [`Engine::vision_support`]).
    #[serde(skip)]
    pub images: Vec<ImageInput>,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role,
            content: content.into(),
            images: Vec::new(),
        }
    }
}

/// An image for a vision model: RGB8 pixels, row by row, already scaled to the model's input
/// size (`vision::PreparedImage::model_rgb`). Shared, so cloning a request copies no pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInput {
    pub width: u32,
    pub height: u32,
    pub rgb: Arc<Vec<u8>>,
}

/// The vision projector of a loaded model, when one is configured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VisionReport {
    pub projector: PathBuf,
    /// Whether llama.cpp's multimodal library loaded the projector for this model.
    pub ready: bool,
    /// Why it did not.
    pub error: Option<String>,
}

/// A request: the conversation so far, ending with the user's message.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    /// `None` uses the model's configured sampling.
    pub sampling: Option<Sampling>,
    /// Keep generating past end-of-generation tokens until `max_tokens` (for benchmarks, which
    /// need a fixed number of tokens).
    pub ignore_eos: bool,
    /// The request quotes the user's documents: a persona on a remote server refuses it
    /// rather than send them (the chat decides by `documents.allow_remote`; this is the
    /// engine's guarantee should the persona have moved to a server meanwhile).
    pub local_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its answer.
    Stop,
    /// `max_tokens` was reached, or the slot's context is full.
    Length,
    /// A configured stop string appeared (it is not part of the text).
    StopString,
    /// The caller cancelled; the text is what came before.
    Cancelled,
}

/// A finished request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Completion {
    pub text: String,
    pub finish_reason: FinishReason,
    pub prompt_tokens: usize,
    /// Prompt tokens taken from the slot's cache instead of being read again.
    pub cached_tokens: usize,
    /// Of the cached tokens, those restored from the prompt cache on disk.
    pub restored_tokens: usize,
    pub completion_tokens: usize,
    /// Oldest turns left out because the conversation did not fit in the context.
    pub dropped_turns: usize,
    pub timings: Timings,
}

/// What a [`Generation`] yields, in order: `Started`, any number of `Text`, then one of
/// `Finished` or `Failed`.
#[derive(Debug)]
pub enum GenerationEvent {
    Started {
        prompt_tokens: usize,
        cached_tokens: usize,
        /// Of the cached tokens, those restored from the prompt cache on disk.
        restored_tokens: usize,
        dropped_turns: usize,
    },
    /// The next piece of the reply; always valid UTF-8, never part of a stop string.
    Text(String),
    Finished(Completion),
    Failed(Error),
}

/// Cancels a request; cheap to clone and to check.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Whether both are clones of one token.
    pub fn is_same(&self, other: &CancelToken) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// A running request. Dropping it cancels the request (a dropped task is a cancelled task).
#[derive(Debug)]
pub struct Generation {
    events: UnboundedReceiver<GenerationEvent>,
    cancel: CancelToken,
}

impl Generation {
    fn new(events: UnboundedReceiver<GenerationEvent>, cancel: CancelToken) -> Generation {
        Generation { events, cancel }
    }

    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }

    /// The next event; `None` after the last one.
    pub async fn next(&mut self) -> Option<GenerationEvent> {
        self.events.recv().await
    }

    /// The next event, blocking the thread (not for use on an async runtime).
    pub fn blocking_next(&mut self) -> Option<GenerationEvent> {
        self.events.blocking_recv()
    }

    /// Blocks until the request ends, passing each piece of text to `on_text`.
    pub fn wait(mut self, mut on_text: impl FnMut(&str)) -> Result<Completion> {
        while let Some(event) = self.blocking_next() {
            match event {
                GenerationEvent::Started { .. } => {}
                GenerationEvent::Text(t) => on_text(&t),
                GenerationEvent::Finished(c) => return Ok(c),
                GenerationEvent::Failed(e) => return Err(e),
            }
        }
        Err(Error::Engine(EngineError::WorkerCrashed {
            persona: "model",
        }))
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// How a model was loaded: what the CLI's `deskmate models` and the Models page show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadReport {
    pub persona: Persona,
    pub file: PathBuf,
    pub file_bytes: u64,
    pub architecture: Option<String>,
    pub quantization: Option<String>,
    pub layers_total: u32,
    pub layers_on_gpu: u32,
    /// The GPU holding the offloaded layers; `None` on the CPU.
    pub gpu: Option<u32>,
    /// The device holding the offloaded layers, e.g. "Vulkan0 (NVIDIA GeForce RTX 4070)".
    pub device: Option<String>,
    /// Compute backends in this build ("cpu", "cuda", "vulkan").
    pub backend: String,
    /// Free memory on the target device before loading, from llama.cpp's device list (NVML
    /// where the backend reports none).
    pub free_vram_bytes: Option<u64>,
    /// Deskmate's fit estimate for `n_gpu_layers: "auto"`, when one was made.
    pub estimated_layers: Option<u32>,
    /// Both fit predictions and which one gave the first attempt (`n_gpu_layers: "auto"` only).
    pub fit: Option<fit::FitPrediction>,
    pub n_ctx: u32,
    pub n_ctx_per_slot: u32,
    pub parallel: u32,
    pub threads: u32,
    /// Where the chat template came from.
    pub chat_template: String,
    pub load_ms: f64,
    pub attempts: Vec<fit::Attempt>,
    /// The persona whose loaded weights this model shares.
    pub shared_with: Option<Persona>,
    /// The vision projector (`mmproj`), when one is configured.
    pub vision: Option<VisionReport>,
}

impl LoadReport {
    pub fn file_name(&self) -> String {
        self.file.file_name().map_or_else(
            || self.file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }
}

/// What making a persona ready gave: a local model's load report, or its server's check.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PersonaReport {
    Local(Box<LoadReport>),
    Remote(Box<remote::RemoteReport>),
}

/// One persona's model as the host sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ModelStatus {
    pub persona: Persona,
    pub report: LoadReport,
    pub stats: StatsSnapshot,
}

/// Where a persona's model stands, for the Models page: loading, loaded (with its report and
/// statistics), failed (with the error and every load attempt) or not loaded.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PersonaState {
    NotLoaded {
        persona: Persona,
    },
    Loading {
        persona: Persona,
        file: PathBuf,
    },
    Loaded {
        persona: Persona,
        report: Box<LoadReport>,
        stats: StatsSnapshot,
    },
    Failed {
        persona: Persona,
        file: PathBuf,
        error: Error,
        attempts: Vec<fit::Attempt>,
    },
    /// The persona's model runs on an OpenAI-compatible server.
    Remote {
        persona: Persona,
        remote: Box<remote::RemoteReport>,
        stats: StatsSnapshot,
    },
}

impl PersonaState {
    pub fn persona(&self) -> Persona {
        match self {
            PersonaState::NotLoaded { persona }
            | PersonaState::Loading { persona, .. }
            | PersonaState::Loaded { persona, .. }
            | PersonaState::Failed { persona, .. }
            | PersonaState::Remote { persona, .. } => *persona,
        }
    }
}

/// Free VRAM of GPU `index` by NVML, when there is an NVIDIA driver.
/// The free memory of a device, as its backend reports it; NVML's reading of the card with the
/// same name where the backend reports none.
fn free_memory(device: &devices::ComputeDevice) -> Option<u64> {
    if device.memory_total_bytes > 0 {
        return Some(device.memory_free_bytes);
    }
    use crate::gpu::GpuSource;
    let gpus = crate::gpu::NvmlSource::new().read().ok()?;
    gpus.into_iter()
        .find(|g| !device.description.is_empty() && g.name == device.description)
        .and_then(|g| g.vram_free_bytes)
}

/// The load parameters that decide whether two personas can share weights.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WeightsKey {
    path: PathBuf,
    main_gpu: u32,
    n_gpu_layers: AutoOr<u32>,
}

impl WeightsKey {
    fn of(path: &Path, config: &ModelConfig) -> WeightsKey {
        WeightsKey {
            path: path.canonicalize().unwrap_or_else(|_| path.to_path_buf()),
            main_gpu: config.main_gpu,
            n_gpu_layers: config.n_gpu_layers,
        }
    }
}

enum Loaded {
    Local(worker::Worker),
    Remote(Arc<remote::RemoteModel>),
}

/// The model host: at most one loaded model per persona.
pub struct Engine {
    models: Mutex<HashMap<Persona, Loaded>>,
    /// Weights by load parameters, kept while any worker uses them.
    weights: Mutex<Vec<(WeightsKey, Weak<llama_cpp_2::model::LlamaModel>, LoadReport)>>,
    /// Loads in progress and the last failed load, per persona.
    pending: Mutex<HashMap<Persona, PersonaState>>,
    sink: Option<RequestSink>,
    /// The disk prompt cache's folder and byte budget for models loaded from now on.
    prompt_cache: Mutex<Option<(PathBuf, u64)>>,
}

impl Engine {
    /// Keeps conversations' prompt caches in `dir` (a folder per model and load parameters),
    /// at most `budget_bytes` in all per model, for models loaded from now on; a budget of 0
    /// turns it off. See `prompt_store`.
    pub fn set_prompt_cache(&self, dir: PathBuf, budget_bytes: u64) {
        *self
            .prompt_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner) =
            (budget_bytes > 0).then_some((dir, budget_bytes));
    }

    /// A host with nothing loaded; `sink` receives every finished request (the request log).
    pub fn new(sink: Option<RequestSink>) -> Result<Engine> {
        worker::backend()?;
        Ok(Engine {
            models: Mutex::new(HashMap::new()),
            weights: Mutex::new(Vec::new()),
            pending: Mutex::new(HashMap::new()),
            sink,
            prompt_cache: Mutex::new(None),
        })
    }

    /// Loads (or reloads) a persona's model: the one already loaded for it is unloaded first,
    /// its running requests ending with [`Error::Engine(EngineError::ModelUnloaded)`]. `path` is the model file
    /// (relative paths in the config are resolved by the caller). Blocks while loading.
    pub fn load(&self, persona: Persona, path: &Path, config: &ModelConfig) -> Result<LoadReport> {
        self.as_pending(persona, path, || self.load_inner(persona, path, config))
    }

    /// Runs `work` (making `persona` ready from `file`, a model or a server's address) with
    /// the persona shown as loading meanwhile, and as failed (with every load attempt) after
    /// an error.
    fn as_pending<T>(
        &self,
        persona: Persona,
        file: &Path,
        work: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        self.set_pending(
            persona,
            Some(PersonaState::Loading {
                persona,
                file: file.to_path_buf(),
            }),
        );
        let result = work();
        let failed = result.as_ref().err().map(|e| PersonaState::Failed {
            persona,
            file: file.to_path_buf(),
            error: e.clone(),
            attempts: match e {
                Error::Engine(EngineError::ModelLoadFailed { attempts, .. }) => attempts.clone(),
                _ => Vec::new(),
            },
        });
        self.set_pending(persona, failed);
        result
    }

    fn set_pending(&self, persona: Persona, state: Option<PersonaState>) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        match state {
            Some(state) => pending.insert(persona, state),
            None => pending.remove(&persona),
        };
    }

    /// Where each persona's model stands (the Models page polls this).
    pub fn persona_states(&self) -> Vec<PersonaState> {
        [Persona::Office, Persona::Character]
            .into_iter()
            .map(|persona| {
                let pending = self
                    .pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(&persona)
                    .cloned();
                if let Some(remote) = self.remote(persona) {
                    return PersonaState::Remote {
                        persona,
                        remote: Box::new(remote.report()),
                        stats: remote.stats.snapshot(),
                    };
                }
                match (pending, self.status(persona)) {
                    (Some(state @ PersonaState::Loading { .. }), _) => state,
                    (_, Some(status)) => PersonaState::Loaded {
                        persona,
                        report: Box::new(status.report),
                        stats: status.stats,
                    },
                    (Some(state), None) => state,
                    (None, None) => PersonaState::NotLoaded { persona },
                }
            })
            .collect()
    }

    fn load_inner(
        &self,
        persona: Persona,
        path: &Path,
        config: &ModelConfig,
    ) -> Result<LoadReport> {
        self.unload(persona);
        let key = WeightsKey::of(path, config);
        let shared = {
            let mut weights = self.weights.lock().unwrap_or_else(PoisonError::into_inner);
            weights.retain(|(_, w, _)| w.strong_count() > 0);
            weights
                .iter()
                .find(|(k, _, _)| *k == key)
                .and_then(|(_, w, report)| {
                    w.upgrade().map(|model| worker::SharedWeights {
                        model,
                        report: report.clone(),
                    })
                })
        };
        let spec = worker::LoadSpec {
            persona,
            path: path.to_path_buf(),
            config: config.clone(),
            shared,
            prompt_cache: self
                .prompt_cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        };
        let started = worker::start(spec, self.sink.clone())?;
        let report = started.shared.report.clone();
        if report.shared_with.is_none() {
            self.weights
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((key.clone(), Arc::downgrade(&started.model), report.clone()));
        }
        self.models
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(persona, Loaded::Local(started));
        Ok(report)
    }

    /// Points a persona at an OpenAI-compatible server instead of a local model (the one
    /// loaded is unloaded), then asks the server for its models. A server that does not answer
    /// yet is no error: the report says so, and each request tries again. Fails only when the
    /// key's environment variable is not set.
    pub fn connect(
        &self,
        persona: Persona,
        backend: &crate::config::RemoteBackend,
        config: &ModelConfig,
    ) -> Result<remote::RemoteReport> {
        let model = self.as_pending(persona, Path::new(&backend.base_url), || {
            self.unload(persona);
            let model = remote::RemoteModel::new(persona, backend, config, self.sink.clone())?;
            self.models
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(persona, Loaded::Remote(Arc::clone(&model)));
            Ok(model)
        })?;
        // Requests are taken from here on; a server that does not answer yet is no error.
        Ok(model.check())
    }

    /// The persona's server, when its model runs on one.
    fn remote(&self, persona: Persona) -> Option<Arc<remote::RemoteModel>> {
        match self
            .models
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&persona)
        {
            Some(Loaded::Remote(model)) => Some(Arc::clone(model)),
            _ => None,
        }
    }

    /// The server a persona's requests go to (`None`: this machine, or nothing loaded).
    pub fn remote_backend(&self, persona: Persona) -> Option<crate::config::RemoteBackend> {
        self.remote(persona).map(|m| m.backend().clone())
    }

    /// Unloads a persona's model (a no-op when none is loaded); its weights are freed unless
    /// the other persona shares them.
    pub fn unload(&self, persona: Persona) {
        let loaded = self
            .models
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&persona);
        match loaded {
            Some(Loaded::Local(worker)) => {
                worker.shared.shutdown();
                let worker::Worker { thread, model, .. } = worker;
                drop(model);
                if thread.join().is_err() {
                    tracing::error!(persona = persona.as_str(), "model worker panicked");
                }
            }
            Some(Loaded::Remote(model)) => model.close(),
            None => {}
        }
    }

    /// Queues a request for a persona's model.
    pub fn submit(&self, persona: Persona, request: ChatRequest) -> Result<Generation> {
        self.submit_cancellable(persona, request, CancelToken::default())
    }

    /// Queues a request that `cancel` stops (the caller keeps a clone to stop it from elsewhere).
    pub fn submit_cancellable(
        &self,
        persona: Persona,
        request: ChatRequest,
        cancel: CancelToken,
    ) -> Result<Generation> {
        let models = self.models.lock().unwrap_or_else(PoisonError::into_inner);
        match models.get(&persona) {
            Some(Loaded::Local(worker)) => worker.shared.submit(request, cancel),
            Some(Loaded::Remote(model)) => model.submit(request, cancel),
            None => Err(Error::Engine(EngineError::ModelNotLoaded {
                persona: persona.as_str(),
            })),
        }
    }

    /// Where one persona's model stands.
    pub fn persona_state(&self, persona: Persona) -> PersonaState {
        self.persona_states()
            .into_iter()
            .find(|s| s.persona() == persona)
            .unwrap_or(PersonaState::NotLoaded { persona })
    }

    pub fn status(&self, persona: Persona) -> Option<ModelStatus> {
        let models = self.models.lock().unwrap_or_else(PoisonError::into_inner);
        match models.get(&persona) {
            Some(Loaded::Local(worker)) => Some(ModelStatus {
                persona,
                report: worker.shared.report.clone(),
                stats: worker.shared.stats.snapshot(),
            }),
            _ => None,
        }
    }

    /// Whether the persona's loaded model sees images: it needs a vision projector
    /// (`models.<persona>.mmproj`) that llama.cpp's multimodal library loaded with it.
    pub fn vision_support(&self, persona: Persona) -> Result<()> {
        let unavailable = |reason: String| {
            Error::Vision(VisionError::VisionUnavailable {
                persona: persona.as_str(),
                reason,
            })
        };
        if let Some(remote) = self.remote(persona) {
            return Err(unavailable(format!(
                "it runs on the server {}, and images are not sent there",
                remote.backend().host()
            )));
        }
        let Some(status) = self.status(persona) else {
            return Err(unavailable("the model is not loaded".into()));
        };
        match status.report.vision {
            None => Err(unavailable(format!(
                "it has no vision projector (models.{}.mmproj is not set)",
                persona.as_str()
            ))),
            Some(VisionReport { ready: true, .. }) => Ok(()),
            Some(VisionReport {
                projector, error, ..
            }) => Err(unavailable(format!(
                "the vision projector {} could not be loaded: {}",
                projector.display(),
                error.unwrap_or_else(|| "no reason given".into())
            ))),
        }
    }

    pub fn statuses(&self) -> Vec<ModelStatus> {
        [Persona::Office, Persona::Character]
            .into_iter()
            .filter_map(|p| self.status(p))
            .collect()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        for persona in [Persona::Office, Persona::Character] {
            self.unload(persona);
        }
    }
}
