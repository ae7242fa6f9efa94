//! One loaded model: its worker thread, which loads the model with the VRAM back-off and then
//! serves requests in slots with continuous batching and a per-slot prompt cache.
//!
//! Threading: the worker thread alone owns the llama.cpp context (it is not `Send`); callers
//! talk to it through a bounded queue (`Mutex` + `Condvar`) and get their tokens back on an
//! unbounded channel, so a slow reader never stalls the batch. The model weights sit in an
//! `Arc` that a second persona's worker may share.
//!
//! Slots: the context holds `parallel` sequences with `n_ctx / parallel` tokens each (llama.cpp's
//! non-unified KV cache). Sequence `i` belongs to slot `i` for the worker's lifetime and keeps
//! the tokens of its last request, so the next turn of the same conversation only reads what
//! is new (the prompt cache). A free slot is chosen by the longest common prefix with the new
//! prompt, then by least recent use.
//!
//! Layout, as llama.cpp's server splits its queue from its slot context: [`queue`] (what callers
//! and the worker share), [`load`] (the back-off and templates), [`slots`] (which slot takes a
//! prompt: a pure policy, tested without a model), [`server`] (batching, sampling, ends) and
//! [`mtmd`] (images).
//!
//! Images: with a vision projector (`mmproj`) the worker also owns an mtmd context (llama.cpp's
//! multimodal library). A request with images is read into its slot at once when it is admitted
//! (`mtmd_helper_eval_chunks`: the image is encoded and its embeddings decoded into the slot's
//! sequence), its first token is sampled straight away, and it then generates in the shared
//! batch like any other request. Its cache positions hold a sentinel token, so no later prompt
//! reuses them.

mod load;
mod mtmd;
mod queue;
mod server;
mod slots;

use crate::error::EngineError;
use load::*;
use mtmd::*;
pub(crate) use queue::WorkerShared;
use queue::*;
use server::*;
pub(crate) use slots::{common_prefix, NO_TOKEN};

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::{LlamaModelParams, LlamaSplitMode};
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::mtmd::{
    mtmd_default_marker, MtmdBitmap, MtmdContext, MtmdContextParams, MtmdInputText,
};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use super::fit::{self, Attempt, LoadFailure, Loader, Stage};
use super::llama_log::{failure_reason, looks_like_out_of_memory, ThreadLog};
use super::prompt_store::{store_dir, PromptStore, StoreKey, MIN_SAVED_TOKENS};
use super::stats::{self, Outcome, RequestSink, Stats, Timings};
use super::text::{Scan, StopScanner, Utf8Stream};
use super::{
    CancelToken, ChatRequest, Completion, FinishReason, Generation, GenerationEvent, LoadReport,
    VisionReport,
};
use crate::config::{AutoOr, ModelConfig, Sampling};
use crate::error::{Error, Result};
use crate::store::{now_ms, Persona, RequestOutcome, RequestRecord, Role};

/// llama.cpp's backend is process-wide and may be initialised only once.
pub(crate) fn backend() -> Result<&'static LlamaBackend> {
    static BACKEND: OnceLock<std::result::Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|message| {
            Error::Engine(EngineError::Init {
                message: message.clone(),
            })
        })
}

/// What to load for one persona.
pub(crate) struct LoadSpec {
    pub persona: Persona,
    pub path: PathBuf,
    pub config: ModelConfig,
    /// Weights already loaded for the other persona with the same file and load parameters.
    pub shared: Option<SharedWeights>,
    /// The disk prompt cache's root folder and byte budget; `None`: off.
    pub prompt_cache: Option<(PathBuf, u64)>,
}

#[derive(Clone)]
pub(crate) struct SharedWeights {
    pub model: Arc<LlamaModel>,
    pub report: LoadReport,
}

/// A running worker.
pub(crate) struct Worker {
    pub shared: Arc<WorkerShared>,
    pub thread: JoinHandle<()>,
    pub model: Arc<LlamaModel>,
}

/// Starts a worker thread, waits for its model to load and returns it (or why it failed).
pub(crate) fn start(spec: LoadSpec, sink: Option<RequestSink>) -> Result<Worker> {
    let backend = backend()?;
    let (ready_tx, ready_rx) = mpsc::sync_channel(1);
    let persona = spec.persona;
    let thread = std::thread::Builder::new()
        .name(format!("deskmate-{}-model", persona.as_str()))
        .spawn(move || worker_main(backend, spec, sink, ready_tx))
        .map_err(|e| {
            Error::Engine(EngineError::Init {
                message: format!("cannot start the {} model's thread: {e}", persona.as_str()),
            })
        })?;
    match ready_rx.recv() {
        Ok(Ok((shared, model))) => Ok(Worker {
            shared,
            thread,
            model,
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(Error::Engine(EngineError::WorkerCrashed {
                persona: persona.as_str(),
            }))
        }
    }
}

type Ready = Result<(Arc<WorkerShared>, Arc<LlamaModel>)>;

/// Everything a loaded model needs to serve, fixed at load time.
#[derive(Debug, Clone, Copy)]
struct Settings {
    n_ctx: u32,
    n_batch: u32,
    parallel: u32,
    threads: i32,
}

fn worker_main(
    backend: &'static LlamaBackend,
    spec: LoadSpec,
    sink: Option<RequestSink>,
    ready: mpsc::SyncSender<Ready>,
) {
    let log = ThreadLog::capture();
    let loaded = match load(backend, &spec, &log) {
        Ok(loaded) => loaded,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let Loaded {
        model,
        mut report,
        template,
        settings,
    } = loaded;
    let ctx = match model.new_context(backend, context_params(&spec.config, &settings)) {
        Ok(ctx) => ctx,
        Err(e) => {
            let _ = ready.send(Err(Error::Engine(EngineError::ModelLoadFailed {
                path: spec.path.clone(),
                reason: format!("{e}: {}", failure_reason(&log.since(0))),
                out_of_memory: false,
                attempts: report.attempts.clone(),
            })));
            return;
        }
    };
    let (mtmd, vision) = load_projector(&spec, &model, &report, &settings, &log);
    report.vision = vision;
    let parallel = settings.parallel as usize;
    let shared = Arc::new(WorkerShared {
        persona: spec.persona,
        report,
        stats: Stats::new(parallel),
        queue: Mutex::new(Queue {
            jobs: std::collections::VecDeque::new(),
            idle_slots: parallel,
            shutdown: false,
        }),
        wake: Condvar::new(),
        max_queue: spec.config.max_queue as usize,
        sink,
    });
    if ready
        .send(Ok((Arc::clone(&shared), Arc::clone(&model))))
        .is_err()
    {
        return;
    }
    let store = spec.prompt_cache.as_ref().map(|(root, budget)| {
        let flash = format!("{:?}", spec.config.flash_attn);
        let key = StoreKey {
            persona: spec.persona.as_str(),
            model: &spec.path,
            n_ctx: settings.n_ctx,
            parallel: settings.parallel,
            flash_attn: &flash,
        };
        PromptStore::open(store_dir(root, &key), *budget)
    });
    if let Some(store) = &store {
        shared.stats.set_disk_cache(store.len(), store.used_bytes());
    }
    let mut server = Server {
        shared: &shared,
        model: &model,
        ctx,
        template,
        mtmd,
        defaults: spec.config.sampling.clone(),
        settings,
        slots: (0..parallel)
            .map(|i| Slot {
                seq: i as i32,
                cache: Vec::new(),
                last_used: Instant::now(),
                active: None,
            })
            .collect(),
        store,
        can_draft: !model.is_recurrent() && !model.is_hybrid(),
        decode_cost: super::lookup::DecodeCost::new(
            if shared.report.layers_total > 0
                && shared.report.layers_on_gpu >= shared.report.layers_total
            {
                super::lookup::DecodeCost::GPU
            } else {
                super::lookup::DecodeCost::CPU
            },
        ),
    };
    server.run();
}
