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
//! Images: with a vision projector (`mmproj`) the worker also owns an mtmd context (llama.cpp's
//! multimodal library). A request with images is read into its slot at once when it is admitted
//! (`mtmd_helper_eval_chunks`: the image is encoded and its embeddings decoded into the slot's
//! sequence), its first token is sampled straight away, and it then generates in the shared
//! batch like any other request. Its cache positions hold a sentinel token, so no later prompt
//! reuses them.

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
use super::stats::{Outcome, RequestSink, Stats, Timings};
use super::text::{Scan, StopScanner, Utf8Stream};
use super::{
    CancelToken, ChatRequest, Completion, FinishReason, Generation, GenerationEvent, LoadReport,
    VisionReport,
};
use crate::config::{AutoOr, ModelConfig, Sampling};
use crate::error::{Error, ErrorCode, Result};
use crate::store::{now_ms, Persona, RequestRecord, Role};

/// llama.cpp's backend is process-wide and may be initialised only once.
pub(crate) fn backend() -> Result<&'static LlamaBackend> {
    static BACKEND: OnceLock<std::result::Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|message| Error::EngineInit {
            message: message.clone(),
        })
}

/// What to load for one persona.
pub(crate) struct LoadSpec {
    pub persona: Persona,
    pub path: PathBuf,
    pub config: ModelConfig,
    /// Weights already loaded for the other persona with the same file and load parameters.
    pub shared: Option<SharedWeights>,
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

/// What callers share with the worker thread.
pub(crate) struct WorkerShared {
    pub persona: Persona,
    pub report: LoadReport,
    pub stats: Stats,
    queue: Mutex<Queue>,
    wake: Condvar,
    max_queue: usize,
    sink: Option<RequestSink>,
}

struct Queue {
    jobs: std::collections::VecDeque<Job>,
    idle_slots: usize,
    shutdown: bool,
}

struct Job {
    request: ChatRequest,
    events: UnboundedSender<GenerationEvent>,
    cancel: CancelToken,
    submitted: Instant,
    submitted_at_ms: i64,
}

impl WorkerShared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a request, or answers [`Error::EngineBusy`] at once when the queue is full.
    pub fn submit(&self, request: ChatRequest, cancel: CancelToken) -> Result<Generation> {
        let (events, receiver) = unbounded_channel();
        let mut queue = self.lock();
        if queue.shutdown {
            return Err(Error::ModelUnloaded {
                persona: self.persona.as_str(),
            });
        }
        // A request that will find a free slot at the next step is not "waiting".
        if queue.jobs.len() >= self.max_queue + queue.idle_slots {
            let queued = queue.jobs.len();
            drop(queue);
            self.stats.record(&Outcome::Busy, None, 0, 0);
            self.log(RequestRecord {
                model: self.report.file_name(),
                persona: Some(self.persona.as_str().to_owned()),
                started_at: now_ms(),
                outcome: "busy".to_owned(),
                error_code: Some("busy".to_owned()),
                ..RequestRecord::default()
            });
            return Err(Error::EngineBusy {
                persona: self.persona.as_str(),
                queued,
            });
        }
        queue.jobs.push_back(Job {
            request,
            events,
            cancel: cancel.clone(),
            submitted: Instant::now(),
            submitted_at_ms: now_ms(),
        });
        let waiting = queue.jobs.len();
        drop(queue);
        self.wake.notify_all();
        self.stats.set_queue_length(waiting);
        Ok(Generation::new(receiver, cancel))
    }

    /// Asks the worker to stop: queued and running requests end with [`Error::ModelUnloaded`].
    pub fn shutdown(&self) {
        self.lock().shutdown = true;
        self.wake.notify_all();
    }

    fn log(&self, record: RequestRecord) {
        if let Some(sink) = &self.sink {
            sink(&record);
        }
    }
}

/// Starts a worker thread, waits for its model to load and returns it (or why it failed).
pub(crate) fn start(spec: LoadSpec, sink: Option<RequestSink>) -> Result<Worker> {
    let backend = backend()?;
    let (ready_tx, ready_rx) = mpsc::sync_channel(1);
    let persona = spec.persona;
    let thread = std::thread::Builder::new()
        .name(format!("deskmate-{}-model", persona.as_str()))
        .spawn(move || worker_main(backend, spec, sink, ready_tx))
        .map_err(|e| Error::EngineInit {
            message: format!("cannot start the {} model's thread: {e}", persona.as_str()),
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
            Err(Error::WorkerCrashed {
                persona: persona.as_str(),
            })
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
            let _ = ready.send(Err(Error::ModelLoadFailed {
                path: spec.path.clone(),
                reason: format!("{e}: {}", failure_reason(&log.since(0))),
                out_of_memory: false,
                attempts: report.attempts.clone(),
            }));
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
    };
    server.run();
}

/// The vision projector named by `mmproj` (relative to the model's folder), loaded for `model`.
/// A projector that cannot be loaded leaves the text model working: the report says why.
fn load_projector(
    spec: &LoadSpec,
    model: &LlamaModel,
    report: &LoadReport,
    settings: &Settings,
    log: &ThreadLog,
) -> (Option<MtmdContext>, Option<VisionReport>) {
    let Some(configured) = &spec.config.mmproj else {
        return (None, None);
    };
    let projector = if configured.is_absolute() {
        configured.clone()
    } else {
        spec.path
            .parent()
            .map_or_else(|| configured.clone(), |dir| dir.join(configured))
    };
    let failed = |error: String| {
        tracing::warn!(projector = %projector.display(), %error, "vision projector not loaded");
        (
            None,
            Some(VisionReport {
                projector: projector.clone(),
                ready: false,
                error: Some(error),
            }),
        )
    };
    // Checked here: llama.cpp's loader asserts on some unreadable files.
    if let Err(e) = super::gguf::read(&projector) {
        return failed(e.to_string());
    }
    let Some(path) = projector.to_str() else {
        return failed("the path is not valid UTF-8".into());
    };
    let params = MtmdContextParams {
        use_gpu: report.layers_on_gpu > 0,
        print_timings: false,
        n_threads: settings.threads,
        ..MtmdContextParams::default()
    };
    let mark = log.mark();
    match MtmdContext::init_from_file(path, model, &params) {
        Ok(ctx) if ctx.support_vision() => (
            Some(ctx),
            Some(VisionReport {
                projector: projector.clone(),
                ready: true,
                error: None,
            }),
        ),
        Ok(_) => failed("the projector is not a vision projector (audio only)".into()),
        Err(e) => failed(format!("{e}: {}", failure_reason(&log.since(mark)))),
    }
}

struct Loaded {
    model: Arc<LlamaModel>,
    report: LoadReport,
    template: LlamaChatTemplate,
    settings: Settings,
}

fn resolved_threads(config: &ModelConfig) -> i32 {
    match config.threads {
        AutoOr::Value(t) => t as i32,
        AutoOr::Auto => std::thread::available_parallelism()
            .map_or(1, |n| n.get().saturating_sub(1).max(1)) as i32,
    }
}

fn context_params(config: &ModelConfig, settings: &Settings) -> LlamaContextParams {
    let flash = match config.flash_attn {
        AutoOr::Auto => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_AUTO,
        AutoOr::Value(true) => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_ENABLED,
        AutoOr::Value(false) => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED,
    };
    LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(settings.n_ctx))
        .with_n_batch(settings.n_batch)
        .with_n_ubatch(settings.n_batch)
        .with_n_seq_max(settings.parallel)
        .with_kv_unified(false)
        .with_n_threads(settings.threads)
        .with_n_threads_batch(settings.threads)
        // Gemma 3's sliding-window layers: a full-size cache would be ~6x larger.
        .with_swa_full(false)
        .with_flash_attention_policy(flash)
}

/// The llama.cpp loader the back-off policy drives: loads the weights (or reuses shared ones)
/// and proves a context of the requested size can be created.
struct LlamaLoader<'a> {
    backend: &'static LlamaBackend,
    path: &'a Path,
    config: &'a ModelConfig,
    settings: Settings,
    log: &'a ThreadLog,
    total_layers: u32,
    shared: Option<Arc<LlamaModel>>,
}

impl Loader for LlamaLoader<'_> {
    type Loaded = Arc<LlamaModel>;

    fn load(
        &mut self,
        gpu_layers: u32,
        n_ctx: u32,
    ) -> std::result::Result<Self::Loaded, LoadFailure> {
        let mark = self.log.mark();
        let model = match &self.shared {
            Some(model) => Arc::clone(model),
            None => {
                // Asking for more than the layer count also offloads the output head.
                let n_gpu_layers = if gpu_layers >= self.total_layers && gpu_layers > 0 {
                    self.total_layers + 1
                } else {
                    gpu_layers
                };
                let params = LlamaModelParams::default()
                    .with_n_gpu_layers(n_gpu_layers)
                    .with_main_gpu(self.config.main_gpu as i32)
                    .with_split_mode(LlamaSplitMode::None);
                match LlamaModel::load_from_file(self.backend, self.path, &params) {
                    Ok(model) => Arc::new(model),
                    Err(e) => return Err(failure(Stage::LoadModel, &e, self.log, mark)),
                }
            }
        };
        let settings = Settings {
            n_ctx,
            ..self.settings
        };
        match model.new_context(self.backend, context_params(self.config, &settings)) {
            // The worker creates the context it serves with on its own stack: a context borrows
            // its model, so it cannot be handed out of here.
            Ok(ctx) => drop(ctx),
            Err(e) => return Err(failure(Stage::CreateContext, &e, self.log, mark)),
        }
        Ok(model)
    }
}

fn failure(stage: Stage, e: &dyn std::fmt::Display, log: &ThreadLog, mark: u64) -> LoadFailure {
    let lines = log.since(mark);
    let reason = if lines.is_empty() {
        e.to_string()
    } else {
        failure_reason(&lines)
    };
    LoadFailure {
        stage,
        out_of_memory: looks_like_out_of_memory(&reason),
        reason,
    }
}

fn load(backend: &'static LlamaBackend, spec: &LoadSpec, log: &ThreadLog) -> Result<Loaded> {
    let started = Instant::now();
    let config = &spec.config;
    // Checked before llama.cpp sees the file: a bad file is a clear error, never an abort.
    let gguf = super::gguf::read(&spec.path)?;
    let total_layers = gguf.block_count().unwrap_or(0);
    let settings = Settings {
        n_ctx: config.n_ctx,
        n_batch: config.n_batch,
        parallel: config.parallel,
        threads: resolved_threads(config),
    };
    let gpu_offload = backend.supports_gpu_offload();
    let free_vram = if gpu_offload {
        super::free_vram(config.main_gpu)
    } else {
        None
    };
    let (start_layers, estimated_layers) = match (gpu_offload, config.n_gpu_layers) {
        (false, _) => (0, None),
        (true, AutoOr::Value(n)) => (n.min(total_layers), None),
        (true, AutoOr::Auto) => match free_vram {
            Some(free) => {
                let estimate = fit::estimate_gpu_layers(&fit::FitInput {
                    layer_bytes: gguf.layer_bytes(),
                    non_layer_bytes: gguf.non_layer_bytes(),
                    kv_bytes_per_token: gguf.kv_bytes_per_token().unwrap_or(0),
                    n_ctx: config.n_ctx,
                    free_vram: Some(free),
                });
                (estimate, Some(estimate))
            }
            // A GPU without NVML (AMD or Intel through Vulkan): try everything, back off on failure.
            None => (total_layers, None),
        },
    };

    let mut loader = LlamaLoader {
        backend,
        path: &spec.path,
        config,
        settings,
        log,
        total_layers,
        shared: spec.shared.as_ref().map(|s| Arc::clone(&s.model)),
    };
    let (result, attempts, layers_on_gpu) = match &spec.shared {
        Some(shared) => {
            let layers = shared.report.layers_on_gpu;
            let (result, attempts) = shrink_context_only(&mut loader, layers, config.n_ctx);
            (result, attempts, layers)
        }
        None => {
            let outcome = fit::load_with_backoff(&mut loader, start_layers, config.n_ctx);
            let layers = outcome
                .attempts
                .last()
                .map_or(0, |a: &Attempt| a.gpu_layers);
            (outcome.loaded, outcome.attempts, layers)
        }
    };
    let n_ctx = attempts.last().map_or(config.n_ctx, |a| a.n_ctx);
    let model = match result {
        Ok(model) => model,
        Err(failure) => {
            return Err(Error::ModelLoadFailed {
                path: spec.path.clone(),
                reason: failure.reason,
                out_of_memory: failure.out_of_memory,
                attempts,
            })
        }
    };

    let (template, template_source) =
        chat_template(&model, config, gguf.architecture()).map_err(|(template, message)| {
            Error::ChatTemplate {
                path: spec.path.clone(),
                template,
                message,
            }
        })?;

    let report = LoadReport {
        persona: spec.persona,
        file: spec.path.clone(),
        file_bytes: gguf.file_len,
        architecture: gguf.architecture().map(str::to_owned),
        quantization: gguf.quantization().map(str::to_owned),
        layers_total: total_layers,
        layers_on_gpu,
        gpu: (layers_on_gpu > 0).then_some(config.main_gpu),
        backend: crate::compiled_backends().join("+"),
        free_vram_bytes: free_vram,
        estimated_layers,
        n_ctx,
        n_ctx_per_slot: n_ctx / config.parallel.max(1),
        parallel: config.parallel,
        threads: settings.threads as u32,
        chat_template: template_source,
        load_ms: started.elapsed().as_secs_f64() * 1000.0,
        attempts,
        shared_with: spec.shared.as_ref().map(|s| s.report.persona),
        vision: None,
    };
    tracing::info!(
        persona = spec.persona.as_str(),
        file = %spec.path.display(),
        layers_on_gpu,
        total_layers,
        n_ctx,
        "model loaded"
    );
    Ok(Loaded {
        model,
        report,
        template,
        settings: Settings { n_ctx, ..settings },
    })
}

/// Shared weights: the layers are fixed, so only the context can shrink.
fn shrink_context_only(
    loader: &mut LlamaLoader<'_>,
    layers: u32,
    n_ctx: u32,
) -> (
    std::result::Result<Arc<LlamaModel>, LoadFailure>,
    Vec<Attempt>,
) {
    let mut attempts = Vec::new();
    let mut ctx = n_ctx;
    loop {
        match loader.load(layers, ctx) {
            Ok(model) => {
                attempts.push(Attempt {
                    gpu_layers: layers,
                    n_ctx: ctx,
                    failure: None,
                });
                return (Ok(model), attempts);
            }
            Err(failure) => {
                attempts.push(Attempt {
                    gpu_layers: layers,
                    n_ctx: ctx,
                    failure: Some(failure.clone()),
                });
                if !failure.out_of_memory || ctx / 2 < fit::MIN_CONTEXT {
                    return (Err(failure), attempts);
                }
                ctx /= 2;
            }
        }
    }
}

/// The built-in template for a file without one, by architecture.
fn builtin_template_for(architecture: Option<&str>) -> &'static str {
    match architecture {
        Some(a) if a.starts_with("gemma") => "gemma",
        Some(a) if a.starts_with("phi3") => "phi3",
        Some("llama") => "llama3",
        _ => "chatml",
    }
}

/// The chat template to use and where it came from: the config's override, the GGUF's own, or a
/// built-in by architecture. Checked by rendering a short conversation.
fn chat_template(
    model: &LlamaModel,
    config: &ModelConfig,
    architecture: Option<&str>,
) -> std::result::Result<(LlamaChatTemplate, String), (String, String)> {
    let (template, source) = match &config.chat_template {
        Some(t) => {
            let shown = if t.len() <= 24 {
                t.clone()
            } else {
                "(custom template)".to_owned()
            };
            let template = LlamaChatTemplate::new(t)
                .map_err(|e| (shown.clone(), format!("cannot be used: {e}")))?;
            (template, format!("config: {shown}"))
        }
        None => match model.chat_template(None) {
            Ok(template) => (template, "from the model file".to_owned()),
            Err(_) => {
                let name = builtin_template_for(architecture);
                let template =
                    LlamaChatTemplate::new(name).map_err(|e| (name.to_owned(), e.to_string()))?;
                (template, format!("built-in {name} (the file has none)"))
            }
        },
    };
    let probe = [
        LlamaChatMessage::new("system".into(), "s".into()),
        LlamaChatMessage::new("user".into(), "u".into()),
    ]
    .into_iter()
    .collect::<std::result::Result<Vec<_>, _>>()
    .map_err(|e| (source.clone(), e.to_string()))?;
    model
        .apply_chat_template(&template, &probe, true)
        .map_err(|e| {
            (
                source.clone(),
                format!("llama.cpp does not support it ({e}); set models.<persona>.chat_template to a built-in name such as \"chatml\""),
            )
        })?;
    Ok((template, source))
}

// ---------------------------------------------------------------------------------------------
// Serving

struct Slot {
    seq: i32,
    /// The tokens in this sequence's KV cache, position by position.
    cache: Vec<LlamaToken>,
    last_used: Instant,
    active: Option<Active>,
}

struct Active {
    job: Job,
    prompt: Vec<LlamaToken>,
    /// Prompt tokens already in the cache (reused or fed so far).
    fed: usize,
    cached: usize,
    dropped_turns: usize,
    sampler: LlamaSampler,
    utf8: Utf8Stream,
    stops: StopScanner,
    text: String,
    generated: u32,
    max_tokens: u32,
    ignore_eos: bool,
    /// The sampled token to feed at the next step.
    pending: Option<LlamaToken>,
    /// Where this slot's logits are in the current batch.
    logits_at: Option<i32>,
    admitted: Instant,
    prompt_done: Option<Instant>,
    last_token: Option<Instant>,
}

/// A rendered prompt as a slot takes it.
struct Prompt {
    /// One entry per cache position.
    tokens: Vec<LlamaToken>,
    /// Prompt tokens as reported (with images, more than the positions on some models).
    counted: usize,
    /// Leading positions already in the slot's cache.
    cached: usize,
    dropped_turns: usize,
}

struct Server<'m> {
    shared: &'m WorkerShared,
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    template: LlamaChatTemplate,
    /// llama.cpp's multimodal context, when a vision projector loaded.
    mtmd: Option<MtmdContext>,
    defaults: Sampling,
    settings: Settings,
    slots: Vec<Slot>,
}

enum End {
    Finished(FinishReason),
    Failed(Error),
}

static SEED_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Stands in the slot cache for positions that hold no token (image embeddings); no real
/// token equals it, so a later prompt never reuses them.
const NO_TOKEN: LlamaToken = LlamaToken(-1);

fn image_error(persona: &'static str, e: &dyn std::fmt::Display) -> Error {
    Error::Decode {
        persona,
        message: format!("the image could not be prepared: {e}"),
    }
}

fn fresh_seed() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos ^ (SEED_COUNTER.fetch_add(0x9e37_79b9, Ordering::Relaxed) as u32)
}

impl Server<'_> {
    fn persona(&self) -> &'static str {
        self.shared.persona.as_str()
    }

    fn slot_ctx(&self) -> usize {
        (self.settings.n_ctx / self.settings.parallel.max(1)) as usize
    }

    fn run(&mut self) {
        let mut batch = LlamaBatch::new(self.settings.n_batch as usize, 1);
        loop {
            if !self.admit() {
                break;
            }
            self.drop_cancelled();
            if self.slots.iter().all(|s| s.active.is_none()) {
                continue;
            }
            self.step(&mut batch);
        }
        self.fail_everything();
    }

    /// Moves queued jobs into free slots; waits when there is nothing to do. `false` on shutdown.
    fn admit(&mut self) -> bool {
        let mut jobs = Vec::new();
        {
            let mut queue = self.shared.lock();
            loop {
                if queue.shutdown {
                    return false;
                }
                let busy = self.slots.iter().any(|s| s.active.is_some());
                if busy || !queue.jobs.is_empty() {
                    break;
                }
                queue = self
                    .shared
                    .wake
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            let free = self.slots.iter().filter(|s| s.active.is_none()).count();
            while jobs.len() < free {
                match queue.jobs.pop_front() {
                    Some(job) => jobs.push(job),
                    None => break,
                }
            }
            queue.idle_slots = free - jobs.len();
        }
        // Nothing changed when nothing was admitted: submit and finish publish their own changes.
        if !jobs.is_empty() {
            for job in jobs {
                self.start_job(job);
            }
            self.publish_load();
        }
        true
    }

    fn publish_load(&self) {
        let waiting = self.shared.lock().jobs.len();
        let active = self.slots.iter().filter(|s| s.active.is_some()).count();
        self.shared.stats.set_load(waiting, active);
    }

    fn start_job(&mut self, job: Job) {
        let admitted = Instant::now();
        if job.cancel.is_cancelled() || job.events.is_closed() {
            self.account(&job, &Outcome::Cancelled, None, 0, 0, 0);
            self.release_slot();
            let _ = job.events.send(GenerationEvent::Finished(Completion {
                text: String::new(),
                finish_reason: FinishReason::Cancelled,
                prompt_tokens: 0,
                cached_tokens: 0,
                completion_tokens: 0,
                dropped_turns: 0,
                timings: Timings::default(),
            }));
            return;
        }
        let sampling = job
            .request
            .sampling
            .clone()
            .unwrap_or_else(|| self.defaults.clone());
        let reserve = (sampling.max_tokens as usize)
            .min(self.slot_ctx() / 4)
            .max(1);
        if job.request.messages.iter().any(|m| !m.images.is_empty()) {
            self.start_job_with_images(job, sampling, reserve, admitted);
            return;
        }
        let (prompt, dropped_turns) = match self.render_prompt(&job.request, reserve) {
            Ok(p) => p,
            Err(e) => {
                self.release_slot();
                self.fail_job(job, e, 0);
                return;
            }
        };
        let Some(index) = self.pick_slot(&prompt) else {
            // admit() never hands out more jobs than free slots.
            self.fail_job(
                job,
                Error::Decode {
                    persona: self.persona(),
                    message: "no free slot".into(),
                },
                prompt.len(),
            );
            return;
        };
        let cached = self.reuse_prefix(index, &prompt);
        let prompt_tokens = prompt.len();
        self.activate(
            index,
            job,
            &sampling,
            Prompt {
                tokens: prompt,
                counted: prompt_tokens,
                cached,
                dropped_turns,
            },
            admitted,
            None,
        );
    }

    /// Tells the caller the request started and puts it in its slot. `logits_at` is where the
    /// logits of an already read prompt are (mtmd's reading), `None` when the batch reads it.
    fn activate(
        &mut self,
        index: usize,
        job: Job,
        sampling: &Sampling,
        prompt: Prompt,
        admitted: Instant,
        logits_at: Option<i32>,
    ) {
        let _ = job.events.send(GenerationEvent::Started {
            prompt_tokens: prompt.counted,
            cached_tokens: prompt.cached,
            dropped_turns: prompt.dropped_turns,
        });
        let sampler = build_sampler(sampling, self.model.n_vocab());
        let fed = if logits_at.is_some() {
            prompt.tokens.len()
        } else {
            prompt.cached
        };
        self.slots[index].active = Some(Active {
            prompt: prompt.tokens,
            fed,
            cached: prompt.cached,
            dropped_turns: prompt.dropped_turns,
            sampler,
            utf8: Utf8Stream::default(),
            stops: StopScanner::new(&sampling.stop),
            text: String::new(),
            generated: 0,
            max_tokens: sampling.max_tokens.max(1),
            ignore_eos: job.request.ignore_eos,
            pending: None,
            logits_at,
            admitted,
            prompt_done: None,
            last_token: None,
            job,
        });
    }

    /// Reads a prompt with images into a free slot through mtmd and samples its first token.
    fn start_job_with_images(
        &mut self,
        job: Job,
        sampling: Sampling,
        reserve: usize,
        admitted: Instant,
    ) {
        let limit = self.slot_ctx().saturating_sub(reserve);
        let prepared = self.read_images_into_slot(&job.request, limit);
        let (index, prompt) = match prepared {
            Ok(p) => p,
            Err((e, tokens)) => {
                self.release_slot();
                self.fail_job(job, e, tokens);
                return;
            }
        };
        self.activate(
            index,
            job,
            &sampling,
            prompt,
            admitted,
            // The logits of the last prompt position, left by mtmd's last decode; sampled
            // before the next batch replaces them.
            Some(-1),
        );
        if let Some(end) = self.sample(index) {
            self.finish(index, end);
        }
    }

    /// Renders the conversation with a media marker per image, tokenises it with mtmd and
    /// evaluates it into the least recently used free slot. Returns the slot and what it now
    /// holds; or the error and the prompt tokens.
    fn read_images_into_slot(
        &mut self,
        request: &ChatRequest,
        limit: usize,
    ) -> std::result::Result<(usize, Prompt), (Error, usize)> {
        let persona = self.persona();
        if self.mtmd.is_none() {
            return Err((
                Error::VisionUnavailable {
                    persona,
                    reason: "no vision projector is loaded for this model".into(),
                },
                0,
            ));
        }
        let (text, dropped) = self
            .render_prompt_text(request, limit, true)
            .map_err(|e| (e, 0))?;
        let bitmaps = request
            .messages
            .iter()
            .flat_map(|m| m.images.iter())
            .map(|i| MtmdBitmap::from_image_data(i.width, i.height, &i.rgb))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| (image_error(persona, &e), 0))?;
        let refs: Vec<&MtmdBitmap> = bitmaps.iter().collect();
        let Some(mtmd) = self.mtmd.as_ref() else {
            return Err((image_error(persona, &"no projector"), 0));
        };
        let chunks = mtmd
            .tokenize(
                MtmdInputText {
                    text,
                    add_special: true,
                    parse_special: true,
                },
                &refs,
            )
            .map_err(|e| (image_error(persona, &e), 0))?;
        let tokens = chunks.total_tokens();
        if tokens > limit {
            return Err((
                Error::PromptTooLong {
                    tokens,
                    limit,
                    n_ctx: self.settings.n_ctx,
                    parallel: self.settings.parallel,
                },
                tokens,
            ));
        }
        let Some(index) = self.pick_slot(&[]) else {
            return Err((
                Error::Decode {
                    persona,
                    message: "no free slot".into(),
                },
                tokens,
            ));
        };
        let seq = self.slots[index].seq;
        let _ = self.ctx.kv_cache_seq_rm(seq, None, None);
        self.slots[index].cache.clear();
        let n_batch = self.settings.n_batch as i32;
        let Some(mtmd) = self.mtmd.as_mut() else {
            return Err((image_error(persona, &"no projector"), tokens));
        };
        let evaluated = chunks.eval_chunks(mtmd, &mut self.ctx, 0, seq, n_batch, true);
        match evaluated {
            Ok(n_past) => {
                // Image positions have no token: the sentinel keeps them from being reused.
                let positions = vec![NO_TOKEN; usize::try_from(n_past).unwrap_or(0)];
                self.slots[index].cache = positions.clone();
                Ok((
                    index,
                    Prompt {
                        tokens: positions,
                        counted: tokens,
                        cached: 0,
                        dropped_turns: dropped,
                    },
                ))
            }
            Err(e) => {
                let _ = self.ctx.kv_cache_seq_rm(seq, None, None);
                Err((
                    Error::Decode {
                        persona,
                        message: format!("reading the image failed: {e}"),
                    },
                    tokens,
                ))
            }
        }
    }

    fn release_slot(&self) {
        self.shared.lock().idle_slots += 1;
    }

    /// Renders the conversation with the chat template and tokenises it, dropping the oldest
    /// turns (never the system message or the last user message) until it fits in a slot with
    /// `reserve` tokens left for the reply.
    fn render_prompt(
        &self,
        request: &ChatRequest,
        reserve: usize,
    ) -> Result<(Vec<LlamaToken>, usize)> {
        let limit = self.slot_ctx().saturating_sub(reserve);
        let (text, dropped) = self.render_prompt_text(request, limit, false)?;
        Ok((
            self.model.vocab().tokenize(text.as_bytes(), true, true),
            dropped,
        ))
    }

    /// The prompt as text (with a media marker before the text of each message with images,
    /// when `markers`), dropping the oldest turns until its text tokens fit in `limit`.
    fn render_prompt_text(
        &self,
        request: &ChatRequest,
        limit: usize,
        markers: bool,
    ) -> Result<(String, usize)> {
        let mut messages = request.messages.clone();
        let mut dropped = 0;
        loop {
            let chat = messages
                .iter()
                .map(|m| {
                    let content = if markers && !m.images.is_empty() {
                        let mut c = format!("{}\n", mtmd_default_marker()).repeat(m.images.len());
                        c.push_str(&m.content);
                        c
                    } else {
                        m.content.clone()
                    };
                    LlamaChatMessage::new(m.role.as_str().to_owned(), content)
                })
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|_| Error::InvalidInput {
                    field: "message",
                    message: "contains a NUL character".into(),
                })?;
            let text = self
                .model
                .apply_chat_template(&self.template, &chat, true)
                .map_err(|e| Error::ChatTemplate {
                    path: self.shared.report.file.clone(),
                    template: self.shared.report.chat_template.clone(),
                    message: e.to_string(),
                })?;
            let tokens = self.model.vocab().tokenize(text.as_bytes(), true, true);
            if tokens.len() <= limit {
                return Ok((text, dropped));
            }
            if !drop_oldest_turn(&mut messages) {
                return Err(Error::PromptTooLong {
                    tokens: tokens.len(),
                    limit,
                    n_ctx: self.settings.n_ctx,
                    parallel: self.settings.parallel,
                });
            }
            dropped += 1;
        }
    }

    /// The free slot whose cache shares the longest prefix with `prompt`, then the least
    /// recently used one.
    fn pick_slot(&self, prompt: &[LlamaToken]) -> Option<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.active.is_none())
            .max_by(|(_, a), (_, b)| {
                common_prefix(&a.cache, prompt)
                    .cmp(&common_prefix(&b.cache, prompt))
                    .then(b.last_used.cmp(&a.last_used))
            })
            .map(|(i, _)| i)
    }

    /// Keeps the slot's cached prefix that matches `prompt` and removes the rest; returns how
    /// many prompt tokens need not be read again.
    fn reuse_prefix(&mut self, index: usize, prompt: &[LlamaToken]) -> usize {
        let slot = &mut self.slots[index];
        // The last prompt token is always fed again: its logits start the reply.
        let mut keep = common_prefix(&slot.cache, prompt).min(prompt.len().saturating_sub(1));
        let partial_ok = self
            .ctx
            .kv_cache_seq_rm(slot.seq, Some(keep as u32), None)
            .is_ok();
        // A sliding-window cache may have dropped early positions, and some caches cannot cut
        // a sequence in the middle: then the prefix must be read again.
        if !partial_ok || (keep > 0 && self.ctx.kv_cache_seq_pos_min(slot.seq) > 0) {
            let _ = self.ctx.kv_cache_seq_rm(slot.seq, None, None);
            keep = 0;
        }
        slot.cache.truncate(keep);
        keep
    }

    fn drop_cancelled(&mut self) {
        for index in 0..self.slots.len() {
            let cancelled = self.slots[index]
                .active
                .as_ref()
                .is_some_and(|a| a.job.cancel.is_cancelled() || a.job.events.is_closed());
            if cancelled {
                self.finish(index, End::Finished(FinishReason::Cancelled));
            }
        }
    }

    /// One decode step: a token of every generating slot, then prompt chunks while room remains.
    fn step(&mut self, batch: &mut LlamaBatch) {
        batch.clear();
        let capacity = self.settings.n_batch as usize;
        let mut in_batch = Vec::new();
        let mut add_failed = false;
        for slot in &mut self.slots {
            let Some(active) = slot.active.as_mut() else {
                continue;
            };
            active.logits_at = None;
            if let Some(token) = active.pending.take() {
                let at = batch.n_tokens();
                add_failed |= batch
                    .add(token, slot.cache.len() as i32, &[slot.seq], true)
                    .is_err();
                slot.cache.push(token);
                active.logits_at = Some(at);
                in_batch.push(slot.seq);
            }
        }
        for slot in &mut self.slots {
            let Some(active) = slot.active.as_mut() else {
                continue;
            };
            if active.fed >= active.prompt.len() {
                continue;
            }
            let room = capacity.saturating_sub(batch.n_tokens() as usize);
            if room == 0 {
                break;
            }
            let end = (active.fed + room).min(active.prompt.len());
            for i in active.fed..end {
                let last = i + 1 == active.prompt.len();
                let at = batch.n_tokens();
                add_failed |= batch
                    .add(active.prompt[i], slot.cache.len() as i32, &[slot.seq], last)
                    .is_err();
                slot.cache.push(active.prompt[i]);
                if last {
                    active.logits_at = Some(at);
                }
            }
            active.fed = end;
            in_batch.push(slot.seq);
        }
        if batch.n_tokens() == 0 {
            return;
        }
        let decoded = if add_failed {
            Err("the batch overflowed".to_owned())
        } else {
            self.ctx.decode(batch).map_err(|e| e.to_string())
        };
        if let Err(message) = decoded {
            for index in 0..self.slots.len() {
                if in_batch.contains(&self.slots[index].seq) {
                    let seq = self.slots[index].seq;
                    let _ = self.ctx.kv_cache_seq_rm(seq, None, None);
                    self.slots[index].cache.clear();
                    let e = Error::Decode {
                        persona: self.persona(),
                        message: message.clone(),
                    };
                    self.finish(index, End::Failed(e));
                }
            }
            return;
        }
        for index in 0..self.slots.len() {
            if let Some(end) = self.sample(index) {
                self.finish(index, end);
            }
        }
    }

    /// Samples the next token of a slot whose logits are in the batch; `Some` when it is done.
    fn sample(&mut self, index: usize) -> Option<End> {
        let slot_ctx = self.slot_ctx();
        let vocab = self.model.vocab();
        let slot = &mut self.slots[index];
        let cache_len = slot.cache.len();
        let active = slot.active.as_mut()?;
        let at = active.logits_at.take()?;
        let token = active.sampler.sample(&self.ctx, at);
        let now = Instant::now();
        if active.prompt_done.is_none() {
            active.prompt_done = Some(now);
        }
        active.last_token = Some(now);
        if vocab.is_eog(token) && !active.ignore_eos {
            return Some(End::Finished(FinishReason::Stop));
        }
        active.generated += 1;
        let piece = vocab.token_to_piece(token, false, None);
        let text = active.utf8.push(&piece);
        let (shown, stopped) = match active.stops.push(&text) {
            Scan::Continue(t) => (t, false),
            Scan::Stop(t) => (t, true),
        };
        if !shown.is_empty() {
            active.text.push_str(&shown);
            if active
                .job
                .events
                .send(GenerationEvent::Text(shown))
                .is_err()
            {
                return Some(End::Finished(FinishReason::Cancelled));
            }
        }
        if stopped {
            return Some(End::Finished(FinishReason::StopString));
        }
        if active.generated >= active.max_tokens || cache_len + 1 >= slot_ctx {
            return Some(End::Finished(FinishReason::Length));
        }
        active.pending = Some(token);
        None
    }

    /// Ends a slot's request: flushes held text, sends the result, records the statistics.
    fn finish(&mut self, index: usize, end: End) {
        let Some(mut active) = self.slots[index].active.take() else {
            return;
        };
        self.slots[index].last_used = Instant::now();
        // A stop string ended the text already; anything else may have held text back.
        if !matches!(end, End::Finished(FinishReason::StopString)) {
            let (Scan::Continue(mut tail) | Scan::Stop(mut tail)) =
                active.stops.push(&active.utf8.finish());
            tail.push_str(&active.stops.finish());
            if !tail.is_empty() {
                active.text.push_str(&tail);
                let _ = active.job.events.send(GenerationEvent::Text(tail));
            }
        }
        let prompt_tokens = active.prompt.len();
        let last_event = match end {
            End::Finished(reason) => {
                let timings = timings(&active);
                let outcome = if reason == FinishReason::Cancelled {
                    Outcome::Cancelled
                } else {
                    Outcome::Succeeded
                };
                self.account(
                    &active.job,
                    &outcome,
                    Some(timings),
                    prompt_tokens,
                    active.cached,
                    active.generated as usize,
                );
                GenerationEvent::Finished(Completion {
                    text: active.text,
                    finish_reason: reason,
                    prompt_tokens,
                    cached_tokens: active.cached,
                    completion_tokens: active.generated as usize,
                    dropped_turns: active.dropped_turns,
                    timings,
                })
            }
            End::Failed(e) => {
                self.account(
                    &active.job,
                    &Outcome::Failed(e.code()),
                    None,
                    prompt_tokens,
                    0,
                    0,
                );
                GenerationEvent::Failed(e)
            }
        };
        // The slot is free (and the statistics say so) before the caller hears the end.
        self.release_slot();
        self.publish_load();
        let _ = active.job.events.send(last_event);
    }

    fn fail_job(&self, job: Job, error: Error, prompt_tokens: usize) {
        self.account(
            &job,
            &Outcome::Failed(error.code()),
            None,
            prompt_tokens,
            0,
            0,
        );
        let _ = job.events.send(GenerationEvent::Failed(error));
    }

    fn account(
        &self,
        job: &Job,
        outcome: &Outcome,
        timings: Option<Timings>,
        prompt_tokens: usize,
        cached: usize,
        completion_tokens: usize,
    ) {
        self.shared
            .stats
            .record(outcome, timings, prompt_tokens as u32, cached as u32);
        let (label, code) = match outcome {
            Outcome::Succeeded => ("ok", None),
            Outcome::Cancelled => ("cancelled", None),
            Outcome::Busy => ("busy", Some(ErrorCode::Busy.as_str())),
            Outcome::Failed(code) => ("error", Some(code.as_str())),
        };
        let ms = |v: f64| Some(v.round() as i64);
        self.shared.log(RequestRecord {
            model: self.shared.report.file_name(),
            persona: Some(self.persona().to_owned()),
            started_at: job.submitted_at_ms,
            outcome: label.to_owned(),
            error_code: code.map(str::to_owned),
            prompt_tokens: prompt_tokens as i64,
            completion_tokens: completion_tokens as i64,
            queue_ms: timings.and_then(|t| ms(t.queue_ms)),
            ttft_ms: timings.and_then(|t| t.ttft_ms.and_then(ms)),
            prompt_ms: timings.and_then(|t| ms(t.prompt_ms)),
            generation_ms: timings.and_then(|t| ms(t.generation_ms)),
            total_ms: timings
                .and_then(|t| ms(t.total_ms))
                .or_else(|| ms(job.submitted.elapsed().as_secs_f64() * 1000.0)),
        });
    }

    /// On shutdown: every queued and running request ends with "model unloaded".
    fn fail_everything(&mut self) {
        let jobs: Vec<Job> = self.shared.lock().jobs.drain(..).collect();
        for job in jobs {
            let e = Error::ModelUnloaded {
                persona: self.persona(),
            };
            self.fail_job(job, e, 0);
        }
        for index in 0..self.slots.len() {
            let e = Error::ModelUnloaded {
                persona: self.persona(),
            };
            self.finish(index, End::Failed(e));
        }
    }
}

fn timings(active: &Active) -> Timings {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let end = active.last_token.unwrap_or_else(Instant::now);
    let queue_ms = ms(active.admitted.duration_since(active.job.submitted));
    let prompt_ms = active
        .prompt_done
        .map_or(0.0, |t| ms(t.duration_since(active.admitted)));
    let generation_ms = active
        .prompt_done
        .map_or(0.0, |t| ms(end.duration_since(t)));
    let read = active.prompt.len() - active.cached;
    Timings {
        queue_ms,
        ttft_ms: active
            .prompt_done
            .map(|t| ms(t.duration_since(active.job.submitted))),
        prompt_ms,
        generation_ms,
        total_ms: ms(active.job.submitted.elapsed()),
        prompt_tokens_per_s: (prompt_ms > 0.0 && read > 0)
            .then(|| read as f64 * 1000.0 / prompt_ms),
        // The first token comes with the prompt; the rate covers the ones after it.
        generation_tokens_per_s: (generation_ms > 0.0 && active.generated > 1)
            .then(|| f64::from(active.generated - 1) * 1000.0 / generation_ms),
    }
}

fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Removes the oldest user/assistant turn, keeping a leading system message and the last
/// user message; `false` when nothing can go.
pub(crate) fn drop_oldest_turn(messages: &mut Vec<super::ChatMessage>) -> bool {
    let first = usize::from(messages.first().is_some_and(|m| m.role == Role::System));
    let last_user = messages.iter().rposition(|m| m.role == Role::User);
    let Some(last_user) = last_user else {
        return false;
    };
    if first >= last_user {
        return false;
    }
    let mut end = first + 1;
    // A turn is a user message with the assistant's answer to it.
    while end < last_user && messages[end].role == Role::Assistant {
        end += 1;
    }
    messages.drain(first..end);
    true
}

fn build_sampler(sampling: &Sampling, n_vocab: i32) -> LlamaSampler {
    let mut chain = Vec::new();
    if (sampling.repeat_penalty - 1.0).abs() > f32::EPSILON {
        chain.push(LlamaSampler::penalties(
            n_vocab,
            64,
            sampling.repeat_penalty,
            0.0,
            0.0,
        ));
    }
    if sampling.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        if sampling.top_k > 0 {
            chain.push(LlamaSampler::top_k(sampling.top_k as i32));
        }
        chain.push(LlamaSampler::top_p(sampling.top_p, 1));
        chain.push(LlamaSampler::min_p(sampling.min_p, 1));
        chain.push(LlamaSampler::temp(sampling.temperature));
        chain.push(LlamaSampler::dist(sampling.seed.unwrap_or_else(fresh_seed)));
    }
    LlamaSampler::chain_simple(chain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ChatMessage;

    fn msg(role: Role, content: &str) -> ChatMessage {
        ChatMessage::new(role, content)
    }

    #[test]
    fn the_oldest_turn_goes_first_and_the_system_message_stays() {
        let mut m = vec![
            msg(Role::System, "sys"),
            msg(Role::User, "q1"),
            msg(Role::Assistant, "a1"),
            msg(Role::User, "q2"),
            msg(Role::Assistant, "a2"),
            msg(Role::User, "q3"),
        ];
        assert!(drop_oldest_turn(&mut m));
        let left: Vec<&str> = m.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(left, ["sys", "q2", "a2", "q3"]);
        assert!(drop_oldest_turn(&mut m));
        assert!(!drop_oldest_turn(&mut m), "the last question must stay");
        let left: Vec<&str> = m.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(left, ["sys", "q3"]);
    }

    #[test]
    fn a_conversation_without_system_message_loses_its_first_turn() {
        let mut m = vec![
            msg(Role::User, "q1"),
            msg(Role::Assistant, "a1"),
            msg(Role::User, "q2"),
        ];
        assert!(drop_oldest_turn(&mut m));
        assert_eq!(m.len(), 1);
        assert!(!drop_oldest_turn(&mut vec![msg(
            Role::Assistant,
            "greeting"
        )]));
    }

    #[test]
    fn files_without_a_template_get_one_by_architecture() {
        assert_eq!(builtin_template_for(Some("gemma3")), "gemma");
        assert_eq!(builtin_template_for(Some("qwen2")), "chatml");
        assert_eq!(builtin_template_for(None), "chatml");
    }
}
