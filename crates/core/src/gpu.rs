//! GPU and system health: what the models are doing to the card, sampled about once a second.
//!
//! - [`GpuSource`] reads every GPU once. [`NvmlSource`] is the real one (nvml-wrapper): NVML is
//!   initialised lazily on the first read, dropped after a failure that makes it unusable (driver
//!   reload, GPU lost, sleep/resume) and initialised again on a later read, at most every
//!   [`NVML_RETRY`]. Without an NVIDIA driver every read fails with the reason, which the sample
//!   carries as `available: false`. A field a GPU does not report is `None`, not an error.
//! - [`Sampler`] turns one read plus CPU/RAM (sysinfo, always) into a [`MonitorSample`] with its
//!   [`MonitorWarning`]s (temperature and VRAM thresholds from the `monitor` config section).
//! - [`Monitor`] owns one dedicated thread that samples every interval, keeps the last
//!   [`HISTORY_LEN`] samples (5 minutes at 1 s) and hands each sample to a callback (the desktop
//!   shell emits it to the UI). While the window is hidden ([`Monitor::set_visible`]) the thread
//!   sleeps on a condition variable and reads nothing. It never touches an async runtime.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{AutoOr, Config, MonitorConfig};

/// Samples kept for the charts: 5 minutes at one per second.
pub const HISTORY_LEN: usize = 300;
/// The shortest wait before NVML is initialised again after a failure.
pub const NVML_RETRY: Duration = Duration::from_secs(10);

/// One GPU's readings; `None` where the GPU or driver does not report a value.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GpuSample {
    pub index: u32,
    pub name: String,
    pub uuid: Option<String>,
    pub vram_used_bytes: Option<u64>,
    pub vram_free_bytes: Option<u64>,
    pub vram_total_bytes: Option<u64>,
    pub gpu_util_percent: Option<u32>,
    pub mem_util_percent: Option<u32>,
    pub power_watts: Option<f64>,
    pub power_limit_watts: Option<f64>,
    pub temperature_c: Option<u32>,
    pub fan_percent: Option<u32>,
    pub clock_graphics_mhz: Option<u32>,
    pub clock_sm_mhz: Option<u32>,
    pub clock_memory_mhz: Option<u32>,
    /// VRAM used by this process on this GPU.
    pub process_vram_bytes: Option<u64>,
    /// The llama.cpp backend that listed this GPU ("Vulkan"), for a GPU NVML does not read (AMD,
    /// Intel): only its name and memory are known. `None` for NVML's readings.
    pub listed_by: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SystemSample {
    pub cpu_percent: f32,
    pub cpu_count: usize,
    pub ram_used_bytes: u64,
    pub ram_total_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WarningKind {
    Temperature,
    Vram,
}

/// A reading above its configured threshold; the UI words it (ko/en).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MonitorWarning {
    pub kind: WarningKind,
    pub gpu_index: u32,
    /// °C for temperature, percent of total for VRAM.
    pub value: f64,
    pub threshold: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonitorSample {
    pub timestamp_ms: i64,
    /// Whether NVML (an NVIDIA driver) could be used for this sample.
    pub available: bool,
    /// Why not, when `available` is false.
    pub reason: Option<String>,
    pub gpus: Vec<GpuSample>,
    pub system: SystemSample,
    pub warnings: Vec<MonitorWarning>,
}

/// NVML's readings, and beside them every GPU llama.cpp offloads to that NVML does not read (AMD
/// and Intel cards through Vulkan), with the name and memory its backend reports.
pub struct WithListedDevices<S> {
    pub nvml: S,
    pub list: fn() -> Vec<crate::engine::devices::ComputeDevice>,
}

impl<S: GpuSource> GpuSource for WithListedDevices<S> {
    fn read(&mut self) -> Result<Vec<GpuSample>, String> {
        with_listed_devices(self.nvml.read(), &(self.list)())
    }
}

/// Adds llama.cpp's offload targets that are not among NVML's GPUs (matched by name, one to one)
/// to NVML's readings. Such a GPU keeps its `main_gpu` number as its index where NVML's GPUs do
/// not use it, else the next free one. NVML's failure stands only when llama.cpp lists no GPU
/// either.
pub fn with_listed_devices(
    nvml: Result<Vec<GpuSample>, String>,
    listed: &[crate::engine::devices::ComputeDevice],
) -> Result<Vec<GpuSample>, String> {
    let (mut gpus, failure) = match nvml {
        Ok(gpus) => (gpus, None),
        Err(reason) => (Vec::new(), Some(reason)),
    };
    let mut matched = vec![false; gpus.len()];
    for device in crate::engine::devices::offload_targets(listed) {
        let name = if device.description.is_empty() {
            device.name.clone()
        } else {
            device.description.clone()
        };
        if let Some(i) = (0..matched.len()).find(|&i| !matched[i] && gpus[i].name == name) {
            matched[i] = true;
            continue;
        }
        let wanted = device.gpu_index.unwrap_or(0);
        let index = if gpus.iter().any(|g| g.index == wanted) {
            gpus.iter().map(|g| g.index + 1).max().unwrap_or(0)
        } else {
            wanted
        };
        let known = device.memory_total_bytes > 0;
        gpus.push(GpuSample {
            index,
            name,
            vram_total_bytes: known.then_some(device.memory_total_bytes),
            vram_free_bytes: known.then_some(device.memory_free_bytes),
            vram_used_bytes: known.then(|| {
                device
                    .memory_total_bytes
                    .saturating_sub(device.memory_free_bytes)
            }),
            listed_by: Some(device.backend.clone()),
            ..GpuSample::default()
        });
    }
    match failure {
        Some(reason) if gpus.is_empty() => Err(reason),
        _ => Ok(gpus),
    }
}

/// Reads every GPU once.
pub trait GpuSource: Send {
    /// All GPUs' readings, or why none can be read now (no driver, NVML failure).
    fn read(&mut self) -> Result<Vec<GpuSample>, String>;
}

/// The NVIDIA Management Library, initialised lazily and again after failures.
#[derive(Default)]
pub struct NvmlSource {
    nvml: Option<nvml_wrapper::Nvml>,
    /// The last initialisation failure and when it happened, so a machine without a driver is
    /// not probed every second.
    last_failure: Option<(Instant, String)>,
}

impl NvmlSource {
    pub fn new() -> NvmlSource {
        NvmlSource::default()
    }

    fn nvml(&mut self) -> Result<&nvml_wrapper::Nvml, String> {
        if self.nvml.is_none() {
            if let Some((at, reason)) = &self.last_failure {
                if at.elapsed() < NVML_RETRY {
                    return Err(reason.clone());
                }
            }
            match nvml_wrapper::Nvml::init() {
                Ok(nvml) => {
                    tracing::info!("NVML initialised");
                    self.last_failure = None;
                    self.nvml = Some(nvml);
                }
                Err(e) => {
                    let reason = describe_init_error(&e);
                    self.last_failure = Some((Instant::now(), reason.clone()));
                    return Err(reason);
                }
            }
        }
        self.nvml
            .as_ref()
            .ok_or_else(|| "NVML is not initialised".to_owned())
    }
}

fn describe_init_error(e: &nvml_wrapper::error::NvmlError) -> String {
    use nvml_wrapper::error::NvmlError;
    match e {
        NvmlError::LibloadingError(_) | NvmlError::LibraryNotFound => {
            format!(
                "no NVIDIA driver found (the NVML library libnvidia-ml could not be loaded: {e})"
            )
        }
        NvmlError::DriverNotLoaded => "the NVIDIA driver is installed but not loaded".to_owned(),
        NvmlError::NoPermission => "no permission to talk to the NVIDIA driver".to_owned(),
        other => format!("NVML could not be initialised: {other}"),
    }
}

/// Errors after which the NVML handle is dropped and initialised afresh later.
fn is_fatal(e: &nvml_wrapper::error::NvmlError) -> bool {
    use nvml_wrapper::error::NvmlError;
    matches!(
        e,
        NvmlError::Uninitialized
            | NvmlError::DriverNotLoaded
            | NvmlError::GpuLost
            | NvmlError::ResetRequired
            | NvmlError::LibRmVersionMismatch
            | NvmlError::Unknown
    )
}

impl GpuSource for NvmlSource {
    fn read(&mut self) -> Result<Vec<GpuSample>, String> {
        let result = read_all(self.nvml()?);
        if let Err(e) = &result {
            if is_fatal(e) {
                tracing::warn!(error = %e, "NVML failed; it will be initialised again");
                // The next read initialises NVML again at once; only repeated failures wait.
                self.nvml = None;
                self.last_failure = None;
            }
        }
        result.map_err(|e| format!("NVML failed: {e}"))
    }
}

fn read_all(nvml: &nvml_wrapper::Nvml) -> Result<Vec<GpuSample>, nvml_wrapper::error::NvmlError> {
    use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
    use nvml_wrapper::enums::device::UsedGpuMemory;

    let pid = std::process::id();
    let count = nvml.device_count()?;
    let mut gpus = Vec::with_capacity(count as usize);
    for index in 0..count {
        let device = nvml.device_by_index(index)?;
        // A device that disappeared or lost its driver fails the whole read (and NVML is
        // re-initialised); any other per-field error means "not reported by this GPU".
        let mut fatal = None;
        let name = reported(&mut fatal, device.name()).unwrap_or_else(|| format!("GPU {index}"));
        let uuid = reported(&mut fatal, device.uuid());
        let memory = reported(&mut fatal, device.memory_info());
        let utilization = reported(&mut fatal, device.utilization_rates());
        let power_mw = reported(&mut fatal, device.power_usage());
        let limit_mw = reported(&mut fatal, device.enforced_power_limit());
        let temperature_c = reported(&mut fatal, device.temperature(TemperatureSensor::Gpu));
        let fan_percent = reported(&mut fatal, device.fan_speed(0));
        let clock_graphics_mhz = reported(&mut fatal, device.clock_info(Clock::Graphics));
        let clock_sm_mhz = reported(&mut fatal, device.clock_info(Clock::SM));
        let clock_memory_mhz = reported(&mut fatal, device.clock_info(Clock::Memory));
        // Known (possibly 0) once either process list could be read; unknown otherwise.
        let mut process_vram = None;
        for processes in [
            device.running_compute_processes(),
            device.running_graphics_processes(),
        ] {
            let Some(processes) = reported(&mut fatal, processes) else {
                continue;
            };
            let ours = process_vram.get_or_insert(0u64);
            for p in processes.iter().filter(|p| p.pid == pid) {
                if let UsedGpuMemory::Used(bytes) = p.used_gpu_memory {
                    *ours += bytes;
                }
            }
        }
        if let Some(e) = fatal {
            return Err(e);
        }
        gpus.push(GpuSample {
            index,
            name,
            uuid,
            vram_used_bytes: memory.as_ref().map(|m| m.used),
            vram_free_bytes: memory.as_ref().map(|m| m.free),
            vram_total_bytes: memory.as_ref().map(|m| m.total),
            gpu_util_percent: utilization.as_ref().map(|u| u.gpu),
            mem_util_percent: utilization.as_ref().map(|u| u.memory),
            power_watts: power_mw.map(|mw| f64::from(mw) / 1000.0),
            power_limit_watts: limit_mw.map(|mw| f64::from(mw) / 1000.0),
            temperature_c,
            fan_percent,
            clock_graphics_mhz,
            clock_sm_mhz,
            clock_memory_mhz,
            process_vram_bytes: process_vram,
            listed_by: None,
        });
    }
    Ok(gpus)
}

/// A field's value, or `None` when this GPU does not report it; an error that makes NVML
/// unusable is kept in `fatal` so the whole read fails.
fn reported<T>(
    fatal: &mut Option<nvml_wrapper::error::NvmlError>,
    r: Result<T, nvml_wrapper::error::NvmlError>,
) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            if is_fatal(&e) && fatal.is_none() {
                *fatal = Some(e);
            }
            None
        }
    }
}

/// The RAM available to a new program now (the kernel's MemAvailable); 0 when unreadable.
pub fn available_ram_bytes() -> u64 {
    sysinfo::System::new()
        .ok()
        .map(|mut s| {
            s.refresh_memory();
            s.available_memory()
        })
        .unwrap_or(0)
}

/// CPU and RAM through sysinfo; CPU usage is measured between two consecutive reads.
pub struct SystemReader {
    system: Option<sysinfo::System>,
}

impl SystemReader {
    pub fn new() -> SystemReader {
        let mut system = sysinfo::System::new().ok();
        if let Some(s) = system.as_mut() {
            s.refresh_cpu_usage();
            s.refresh_memory();
        }
        SystemReader { system }
    }

    pub fn read(&mut self) -> SystemSample {
        let Some(system) = self.system.as_mut() else {
            return SystemSample::default();
        };
        system.refresh_cpu_usage();
        system.refresh_memory();
        SystemSample {
            cpu_percent: system.global_cpu_usage(),
            cpu_count: system.cpus().len(),
            ram_used_bytes: system.used_memory(),
            ram_total_bytes: system.total_memory(),
        }
    }
}

impl Default for SystemReader {
    fn default() -> Self {
        SystemReader::new()
    }
}

/// One GPU source plus CPU/RAM and the warning thresholds.
pub struct Sampler {
    source: Box<dyn GpuSource>,
    system: SystemReader,
    thresholds: MonitorConfig,
}

impl Sampler {
    pub fn new(source: Box<dyn GpuSource>, thresholds: MonitorConfig) -> Sampler {
        Sampler {
            source,
            system: SystemReader::new(),
            thresholds,
        }
    }

    /// The real sampler: NVML, llama.cpp's device list for the GPUs NVML does not read, and
    /// sysinfo.
    pub fn nvml(thresholds: MonitorConfig) -> Sampler {
        Sampler::new(
            Box::new(WithListedDevices {
                nvml: NvmlSource::new(),
                list: crate::engine::devices::list,
            }),
            thresholds,
        )
    }

    pub fn sample(&mut self) -> MonitorSample {
        let (available, reason, gpus) = match self.source.read() {
            Ok(gpus) => (true, None, gpus),
            Err(reason) => (false, Some(reason), Vec::new()),
        };
        let warnings = warnings_for(&gpus, &self.thresholds);
        MonitorSample {
            timestamp_ms: crate::store::now_ms(),
            available,
            reason,
            gpus,
            system: self.system.read(),
            warnings,
        }
    }
}

/// Readings above the configured temperature or VRAM thresholds.
pub fn warnings_for(gpus: &[GpuSample], thresholds: &MonitorConfig) -> Vec<MonitorWarning> {
    let mut warnings = Vec::new();
    for gpu in gpus {
        if let Some(t) = gpu.temperature_c {
            if t >= thresholds.temperature_warning_c {
                warnings.push(MonitorWarning {
                    kind: WarningKind::Temperature,
                    gpu_index: gpu.index,
                    value: f64::from(t),
                    threshold: f64::from(thresholds.temperature_warning_c),
                });
            }
        }
        if let (Some(used), Some(total)) = (gpu.vram_used_bytes, gpu.vram_total_bytes) {
            if total > 0 {
                let percent = used as f64 * 100.0 / total as f64;
                if percent >= f64::from(thresholds.vram_warning_percent) {
                    warnings.push(MonitorWarning {
                        kind: WarningKind::Vram,
                        gpu_index: gpu.index,
                        value: (percent * 10.0).round() / 10.0,
                        threshold: f64::from(thresholds.vram_warning_percent),
                    });
                }
            }
        }
    }
    warnings
}

/// Which persona's model sits on which GPU. Until the engine loads models this is the
/// configuration; the engine fills in what it actually loaded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelPlacement {
    pub persona: crate::store::Persona,
    pub main_gpu: u32,
    pub n_gpu_layers: AutoOr<u32>,
    pub loaded: bool,
    pub layers_on_gpu: Option<u32>,
    pub layers_total: Option<u32>,
}

/// Where the configured local models sit (a persona on a server is left out).
pub fn configured_placements(config: &Config) -> Vec<ModelPlacement> {
    use crate::store::Persona;
    [
        (Persona::Office, &config.models.office),
        (Persona::Character, &config.models.character),
    ]
    .into_iter()
    // A persona on a server takes no memory here.
    .filter(|(_, model)| model.backend.remote().is_none())
    .map(|(persona, model)| ModelPlacement {
        persona,
        main_gpu: model.main_gpu,
        n_gpu_layers: model.n_gpu_layers,
        loaded: false,
        layers_on_gpu: None,
        layers_total: None,
    })
    .collect()
}

/// What the Monitor page loads when it opens: the history so far and where the models sit.
#[derive(Debug, Clone, Serialize)]
pub struct MonitorSnapshot {
    pub samples: Vec<MonitorSample>,
    pub placements: Vec<ModelPlacement>,
    pub interval_ms: u64,
}

/// How long CPU usage must be measured over before a first reading means anything.
pub const CPU_WARMUP: Duration = Duration::from_millis(250);

struct MonitorState {
    history: VecDeque<MonitorSample>,
    visible: bool,
    stopped: bool,
}

struct Shared {
    state: Mutex<MonitorState>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, MonitorState> {
        // A panic in the sampling callback must not take the monitor down with it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The sampling thread. Dropping the monitor stops and joins it.
pub struct Monitor {
    shared: Arc<Shared>,
    interval: Duration,
    thread: Option<JoinHandle<()>>,
}

impl Monitor {
    /// Starts sampling every `interval`, calling `on_sample` on the sampling thread.
    pub fn start(
        mut sampler: Sampler,
        interval: Duration,
        on_sample: impl Fn(&MonitorSample) + Send + 'static,
    ) -> std::io::Result<Monitor> {
        let shared = Arc::new(Shared {
            state: Mutex::new(MonitorState {
                history: VecDeque::with_capacity(HISTORY_LEN),
                visible: true,
                stopped: false,
            }),
            wake: Condvar::new(),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("deskmate-gpu-monitor".to_owned())
            .spawn(move || {
                let shared = thread_shared;
                loop {
                    {
                        let mut state = shared.lock();
                        while !state.visible && !state.stopped {
                            state = shared.wake.wait(state).unwrap_or_else(|p| p.into_inner());
                        }
                        if state.stopped {
                            return;
                        }
                    }
                    let started = Instant::now();
                    let sample = sampler.sample();
                    {
                        let mut state = shared.lock();
                        if state.history.len() == HISTORY_LEN {
                            state.history.pop_front();
                        }
                        state.history.push_back(sample.clone());
                    }
                    on_sample(&sample);
                    let rest = interval.saturating_sub(started.elapsed());
                    let state = shared.lock();
                    let (state, _) = shared
                        .wake
                        .wait_timeout_while(state, rest, |s| !s.stopped && s.visible)
                        .unwrap_or_else(|p| p.into_inner());
                    if state.stopped {
                        return;
                    }
                }
            })?;
        Ok(Monitor {
            shared,
            interval,
            thread: Some(thread),
        })
    }

    /// The samples so far, oldest first (at most [`HISTORY_LEN`]).
    pub fn history(&self) -> Vec<MonitorSample> {
        self.shared.lock().history.iter().cloned().collect()
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    pub fn snapshot(&self, placements: Vec<ModelPlacement>) -> MonitorSnapshot {
        MonitorSnapshot {
            samples: self.history(),
            placements,
            interval_ms: self.interval.as_millis() as u64,
        }
    }

    /// Pauses sampling while the window is hidden; resumes (with a fresh sample) when shown.
    pub fn set_visible(&self, visible: bool) {
        self.shared.lock().visible = visible;
        self.shared.wake.notify_all();
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.shared.lock().stopped = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::engine::devices::{ComputeDevice, DeviceKind};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A scripted source: each read takes the next result; the last one repeats.
    struct Scripted {
        results: Vec<Result<Vec<GpuSample>, String>>,
        reads: Arc<AtomicUsize>,
    }

    impl GpuSource for Scripted {
        fn read(&mut self) -> Result<Vec<GpuSample>, String> {
            let n = self.reads.fetch_add(1, Ordering::SeqCst);
            self.results[n.min(self.results.len() - 1)].clone()
        }
    }

    fn scripted(results: Vec<Result<Vec<GpuSample>, String>>) -> (Sampler, Arc<AtomicUsize>) {
        let reads = Arc::new(AtomicUsize::new(0));
        let source = Scripted {
            results,
            reads: Arc::clone(&reads),
        };
        (
            Sampler::new(Box::new(source), MonitorConfig::default()),
            reads,
        )
    }

    fn rtx(index: u32, used_gib: u64, temp: u32) -> GpuSample {
        GpuSample {
            index,
            name: "NVIDIA GeForce RTX 4090".into(),
            uuid: Some(format!("GPU-{index}")),
            vram_used_bytes: Some(used_gib << 30),
            vram_free_bytes: Some((24 - used_gib) << 30),
            vram_total_bytes: Some(24 << 30),
            gpu_util_percent: Some(87),
            mem_util_percent: Some(40),
            power_watts: Some(312.5),
            power_limit_watts: Some(450.0),
            temperature_c: Some(temp),
            fan_percent: Some(55),
            clock_graphics_mhz: Some(2520),
            clock_sm_mhz: Some(2520),
            clock_memory_mhz: Some(10_501),
            process_vram_bytes: Some(5 << 30),
            listed_by: None,
        }
    }

    #[test]
    fn a_persona_on_a_server_has_no_place_on_this_machines_gpus() {
        let mut config = Config::default();
        config.models.office.backend =
            crate::config::ModelBackend::Remote(crate::config::RemoteBackend {
                kind: crate::config::RemoteKind::Openai,
                base_url: "http://gpu-server:8000/v1".into(),
                model: "big".into(),
                api_key_env: None,
                timeout_s: 120,
            });
        let placements = configured_placements(&config);
        assert_eq!(placements.len(), 1);
        assert_eq!(placements[0].persona, crate::store::Persona::Character);
    }

    fn listed(name: &str, backend: &str, index: u32, description: &str) -> ComputeDevice {
        ComputeDevice {
            name: name.into(),
            description: description.into(),
            backend: backend.into(),
            kind: DeviceKind::Gpu,
            memory_total_bytes: 16 << 30,
            memory_free_bytes: 12 << 30,
            gpu_index: Some(index),
        }
    }

    #[test]
    fn gpus_nvml_cannot_read_come_from_llama_cpps_device_list() {
        let amd = listed("Vulkan0", "Vulkan", 0, "AMD Radeon RX 7800 XT");
        // No NVIDIA driver: the AMD card is still shown, with its memory.
        let gpus = with_listed_devices(Err("no NVIDIA driver".into()), std::slice::from_ref(&amd))
            .unwrap();
        assert_eq!(gpus.len(), 1);
        assert_eq!(gpus[0].index, 0);
        assert_eq!(gpus[0].name, "AMD Radeon RX 7800 XT");
        assert_eq!(gpus[0].vram_used_bytes, Some(4 << 30));
        assert_eq!(gpus[0].listed_by.as_deref(), Some("Vulkan"));
        assert_eq!(gpus[0].temperature_c, None);

        // An NVIDIA card through Vulkan is NVML's reading, not a second entry; the AMD card
        // beside it takes the next free index.
        let nvidia = rtx(0, 6, 60);
        let vulkan_nvidia = listed("Vulkan0", "Vulkan", 0, &nvidia.name);
        let amd = listed("Vulkan1", "Vulkan", 0, "AMD Radeon RX 7800 XT");
        let gpus = with_listed_devices(Ok(vec![nvidia.clone()]), &[vulkan_nvidia, amd]).unwrap();
        assert_eq!(gpus.len(), 2, "{gpus:?}");
        assert_eq!(gpus[0], nvidia);
        assert_eq!(
            (gpus[1].index, gpus[1].name.as_str()),
            (1, "AMD Radeon RX 7800 XT")
        );

        // Nothing anywhere: NVML's reason is kept.
        assert_eq!(
            with_listed_devices(Err("no NVIDIA driver".into()), &[]),
            Err("no NVIDIA driver".to_owned())
        );
    }

    #[test]
    fn readings_pass_through_and_cpu_ram_are_always_reported() {
        let (mut sampler, _) = scripted(vec![Ok(vec![rtx(0, 6, 60), rtx(1, 2, 45)])]);
        let s = sampler.sample();
        assert!(s.available);
        assert_eq!(s.reason, None);
        assert_eq!(s.gpus, vec![rtx(0, 6, 60), rtx(1, 2, 45)]);
        assert!(s.warnings.is_empty());
        assert!(
            s.system.ram_total_bytes > 0 && s.system.ram_used_bytes <= s.system.ram_total_bytes
        );
        assert!(s.system.cpu_count >= 1);
        assert!((0.0..=100.0).contains(&s.system.cpu_percent));
    }

    #[test]
    fn fields_a_gpu_does_not_report_stay_empty_and_serialise_as_null() {
        let partial = GpuSample {
            index: 0,
            name: "Tesla T4".into(),
            vram_used_bytes: Some(1 << 30),
            vram_total_bytes: Some(16 << 30),
            ..GpuSample::default()
        };
        let (mut sampler, _) = scripted(vec![Ok(vec![partial])]);
        let s = sampler.sample();
        assert!(s.warnings.is_empty(), "missing temperature must not warn");
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["gpus"][0]["fan_percent"], serde_json::Value::Null);
        assert_eq!(json["gpus"][0]["power_watts"], serde_json::Value::Null);
        assert_eq!(json["gpus"][0]["vram_total_bytes"], 16u64 << 30);
    }

    #[test]
    fn hot_or_nearly_full_gpus_raise_warnings_at_the_configured_thresholds() {
        let (mut sampler, _) = scripted(vec![Ok(vec![rtx(0, 23, 85), rtx(1, 1, 84)])]);
        let s = sampler.sample();
        assert_eq!(
            s.warnings,
            vec![
                MonitorWarning {
                    kind: WarningKind::Temperature,
                    gpu_index: 0,
                    value: 85.0,
                    threshold: 85.0
                },
                MonitorWarning {
                    kind: WarningKind::Vram,
                    gpu_index: 0,
                    value: 95.8,
                    threshold: 95.0
                },
            ]
        );
    }

    #[test]
    fn a_failing_source_reports_unavailable_with_the_reason_and_recovers() {
        let (mut sampler, reads) = scripted(vec![
            Err("no NVIDIA driver found".into()),
            Err("NVML failed: GPU lost".into()),
            Ok(vec![rtx(0, 3, 50)]),
        ]);
        let first = sampler.sample();
        assert!(!first.available);
        assert_eq!(first.reason.as_deref(), Some("no NVIDIA driver found"));
        assert!(first.gpus.is_empty());
        assert!(
            first.system.ram_total_bytes > 0,
            "CPU/RAM are reported without a GPU too"
        );
        assert!(!sampler.sample().available);
        let recovered = sampler.sample();
        assert!(recovered.available);
        assert_eq!(recovered.gpus.len(), 1);
        assert_eq!(reads.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn without_a_driver_nvml_says_so_and_is_not_probed_every_second() {
        // This machine has no NVIDIA driver (CI); where one exists, the source must work.
        let mut source = NvmlSource::new();
        match source.read() {
            Ok(gpus) => {
                for gpu in gpus {
                    assert!(!gpu.name.is_empty());
                    assert!(gpu.vram_total_bytes.unwrap_or(1) > 0);
                }
            }
            Err(reason) => {
                assert!(
                    reason.contains("NVIDIA") || reason.contains("NVML"),
                    "{reason}"
                );
                let started = Instant::now();
                assert_eq!(source.read().unwrap_err(), reason);
                assert!(
                    started.elapsed() < Duration::from_millis(50),
                    "retry must be rate-limited"
                );
            }
        }
    }

    #[test]
    fn the_monitor_keeps_history_pauses_while_hidden_and_stops_on_drop() {
        let (sampler, reads) = scripted(vec![Ok(vec![rtx(0, 4, 55)])]);
        let delivered = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&delivered);
        let monitor = Monitor::start(sampler, Duration::from_millis(20), move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while delivered.load(Ordering::SeqCst) < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(monitor.history().len() >= 3);

        monitor.set_visible(false);
        std::thread::sleep(Duration::from_millis(50));
        let paused_at = reads.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(
            reads.load(Ordering::SeqCst),
            paused_at,
            "no reads while hidden"
        );

        monitor.set_visible(true);
        let deadline = Instant::now() + Duration::from_secs(5);
        while reads.load(Ordering::SeqCst) == paused_at && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            reads.load(Ordering::SeqCst) > paused_at,
            "sampling resumes when shown"
        );
        drop(monitor);
        let after_drop = reads.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(
            reads.load(Ordering::SeqCst),
            after_drop,
            "the thread ends with the monitor"
        );
    }

    #[test]
    fn history_keeps_the_newest_five_minutes() {
        let (sampler, _) = scripted(vec![Ok(vec![])]);
        let monitor = Monitor::start(sampler, Duration::from_millis(0), |_| {}).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while monitor.history().len() < HISTORY_LEN && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(20));
        let history = monitor.history();
        assert_eq!(history.len(), HISTORY_LEN);
        assert!(history
            .windows(2)
            .all(|w| w[0].timestamp_ms <= w[1].timestamp_ms));
    }

    #[test]
    fn one_sample_costs_well_under_one_percent_of_a_core_per_second() {
        // Real sources on this machine (NVML probe without a driver, sysinfo CPU/RAM): the
        // sampling work per 1 s interval must stay far below 10 ms.
        let mut sampler = Sampler::nvml(MonitorConfig::default());
        sampler.sample();
        let rounds = 20;
        let started = Instant::now();
        for _ in 0..rounds {
            sampler.sample();
        }
        let per_sample = started.elapsed() / rounds;
        assert!(
            per_sample < Duration::from_millis(10),
            "one sample took {per_sample:?}"
        );
    }
}
