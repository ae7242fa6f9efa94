//! The compute devices llama.cpp sees, from its own device list, for every backend compiled in
//! (CPU, Vulkan, CUDA): name, type and free/total memory as the backend reports them.
//!
//! This is the source of truth for where layers can go and how much memory is free there; NVML
//! only adds NVIDIA's readings (utilisation, temperature, power) on top, in [`crate::gpu`].
//!
//! Invariants:
//! - [`ComputeDevice::gpu_index`] is the index `models.<persona>.main_gpu` means: llama.cpp's
//!   own order of offload targets ([`assign_gpu_indices`] mirrors `llama_model_load`'s: discrete
//!   GPUs in registry order, a device seen by two backends counted once, integrated GPUs only
//!   when there is no discrete one).
//! - ggml builds its registry once per process, so the device set is fixed for the process;
//!   memory figures are read from the driver on every [`list`] call.
//! - Mesa's software Vulkan device (llvmpipe) is listed only when `GGML_VK_VISIBLE_DEVICES`
//!   names it: llama.cpp skips CPU-type Vulkan devices otherwise, as it is slower than the CPU
//!   backend. The tests name it to run the real GPU code path without a GPU.

use llama_cpp_2::LlamaBackendDeviceType;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    Cpu,
    Gpu,
    IntegratedGpu,
    Accelerator,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComputeDevice {
    /// ggml's device name, e.g. "Vulkan0", "CUDA0", "CPU".
    pub name: String,
    /// What the driver calls it, e.g. "NVIDIA GeForce RTX 4070", "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub description: String,
    /// The backend that drives it, e.g. "Vulkan", "CUDA", "CPU".
    pub backend: String,
    pub kind: DeviceKind,
    pub memory_total_bytes: u64,
    pub memory_free_bytes: u64,
    /// The `main_gpu` index that selects this device; `None` for the CPU and for a device
    /// llama.cpp does not offload to (a card already listed by another backend, an integrated
    /// GPU beside a discrete one).
    pub gpu_index: Option<u32>,
}

impl DeviceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Gpu => "gpu",
            DeviceKind::IntegratedGpu => "integrated_gpu",
            DeviceKind::Accelerator => "accelerator",
            DeviceKind::Other => "other",
        }
    }
}

impl ComputeDevice {
    /// "Vulkan0 (NVIDIA GeForce RTX 4070)".
    pub fn label(&self) -> String {
        if self.description.is_empty() || self.description == self.name {
            self.name.clone()
        } else {
            format!("{} ({})", self.name, self.description)
        }
    }
}

/// Every device in llama.cpp's registry, with `gpu_index` assigned as llama.cpp would.
pub fn list() -> Vec<ComputeDevice> {
    let mut devices: Vec<ComputeDevice> = llama_cpp_2::list_llama_ggml_backend_devices()
        .into_iter()
        .map(|d| ComputeDevice {
            name: d.name,
            description: d.description,
            backend: d.backend,
            kind: match d.device_type {
                LlamaBackendDeviceType::Cpu => DeviceKind::Cpu,
                LlamaBackendDeviceType::Gpu => DeviceKind::Gpu,
                LlamaBackendDeviceType::IntegratedGpu => DeviceKind::IntegratedGpu,
                LlamaBackendDeviceType::Accelerator => DeviceKind::Accelerator,
                _ => DeviceKind::Other,
            },
            memory_total_bytes: d.memory_total as u64,
            memory_free_bytes: d.memory_free as u64,
            gpu_index: None,
        })
        .collect();
    assign_gpu_indices(&mut devices);
    devices
}

/// The devices `main_gpu` can select, in its order.
pub fn offload_targets(devices: &[ComputeDevice]) -> Vec<&ComputeDevice> {
    let mut targets: Vec<&ComputeDevice> =
        devices.iter().filter(|d| d.gpu_index.is_some()).collect();
    targets.sort_by_key(|d| d.gpu_index);
    targets
}

/// The device `main_gpu` selects, if there is one.
pub fn offload_target(main_gpu: u32) -> Option<ComputeDevice> {
    list().into_iter().find(|d| d.gpu_index == Some(main_gpu))
}

/// Numbers the devices llama.cpp offloads to, in its order (`llama_model_load` in llama.cpp's
/// `src/llama.cpp`): discrete GPUs in registry order, skipping a card an earlier backend already
/// listed (the same card through CUDA and Vulkan), then integrated GPUs only when there is no
/// discrete one, and only those of the first integrated GPU's backend.
///
/// llama.cpp recognises the same card by its PCI id, which llama-cpp-2's safe device list does
/// not carry; here a GPU of a later backend is the same card when its description equals that of
/// a not yet matched GPU of an earlier backend (drivers name a card the same through CUDA and
/// Vulkan). Only builds with two GPU backends have such pairs.
pub fn assign_gpu_indices(devices: &mut [ComputeDevice]) {
    let mut next = 0u32;
    // (backend, description) of each numbered GPU, and whether a later backend matched it.
    let mut numbered: Vec<(String, String, bool)> = Vec::new();
    for device in devices.iter_mut() {
        device.gpu_index = None;
        if device.kind != DeviceKind::Gpu || device.backend == "RPC" {
            continue;
        }
        let twin = numbered.iter_mut().find(|(backend, description, matched)| {
            !*matched
                && *backend != device.backend
                && !description.is_empty()
                && *description == device.description
        });
        if let Some(twin) = twin {
            twin.2 = true;
            continue;
        }
        numbered.push((device.backend.clone(), device.description.clone(), false));
        device.gpu_index = Some(next);
        next += 1;
    }
    if next > 0 {
        return;
    }
    let mut integrated_backend: Option<String> = None;
    for device in devices.iter_mut() {
        if device.kind != DeviceKind::IntegratedGpu {
            continue;
        }
        match &integrated_backend {
            Some(backend) if *backend != device.backend => continue,
            Some(_) => {}
            None => integrated_backend = Some(device.backend.clone()),
        }
        device.gpu_index = Some(next);
        next += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(name: &str, backend: &str, kind: DeviceKind, card: Option<&str>) -> ComputeDevice {
        ComputeDevice {
            name: name.into(),
            description: card.unwrap_or_default().into(),
            backend: backend.into(),
            kind,
            memory_total_bytes: 8 << 30,
            memory_free_bytes: 6 << 30,
            gpu_index: None,
        }
    }

    fn indices(devices: &[ComputeDevice]) -> Vec<(String, Option<u32>)> {
        devices
            .iter()
            .map(|d| (d.name.clone(), d.gpu_index))
            .collect()
    }

    #[test]
    fn main_gpu_counts_discrete_gpus_and_skips_the_cpu() {
        let mut devices = vec![
            device("CUDA0", "CUDA", DeviceKind::Gpu, Some("RTX 4090")),
            device("CUDA1", "CUDA", DeviceKind::Gpu, Some("RTX 4090")),
            device("CPU", "CPU", DeviceKind::Cpu, None),
        ];
        assign_gpu_indices(&mut devices);
        assert_eq!(
            indices(&devices),
            vec![
                ("CUDA0".into(), Some(0)),
                ("CUDA1".into(), Some(1)),
                ("CPU".into(), None)
            ]
        );
    }

    #[test]
    fn a_card_seen_by_cuda_and_vulkan_is_one_target() {
        let mut devices = vec![
            device("CUDA0", "CUDA", DeviceKind::Gpu, Some("RTX 4090")),
            device("Vulkan0", "Vulkan", DeviceKind::Gpu, Some("RTX 4090")),
            device("Vulkan1", "Vulkan", DeviceKind::Gpu, Some("Radeon RX 7600")),
            // A device without a description cannot be matched and is always its own target.
            device("Vulkan2", "Vulkan", DeviceKind::Gpu, None),
        ];
        assign_gpu_indices(&mut devices);
        assert_eq!(
            indices(&devices),
            vec![
                ("CUDA0".into(), Some(0)),
                ("Vulkan0".into(), None),
                ("Vulkan1".into(), Some(1)),
                ("Vulkan2".into(), Some(2)),
            ]
        );
        let targets: Vec<_> = offload_targets(&devices)
            .iter()
            .map(|d| d.name.clone())
            .collect();
        assert_eq!(targets, vec!["CUDA0", "Vulkan1", "Vulkan2"]);
    }

    #[test]
    fn an_integrated_gpu_is_used_only_without_a_discrete_one() {
        let mut with_discrete = vec![
            device("Vulkan0", "Vulkan", DeviceKind::IntegratedGpu, None),
            device("Vulkan1", "Vulkan", DeviceKind::Gpu, None),
        ];
        assign_gpu_indices(&mut with_discrete);
        assert_eq!(
            indices(&with_discrete),
            vec![("Vulkan0".into(), None), ("Vulkan1".into(), Some(0))]
        );

        let mut integrated_only = vec![
            device("Vulkan0", "Vulkan", DeviceKind::IntegratedGpu, None),
            device("SYCL0", "SYCL", DeviceKind::IntegratedGpu, None),
        ];
        assign_gpu_indices(&mut integrated_only);
        assert_eq!(
            indices(&integrated_only),
            vec![("Vulkan0".into(), Some(0)), ("SYCL0".into(), None)]
        );
    }

    /// The real registry of this build: the CPU is always there, and a Vulkan device appears
    /// only when the machine has one (or `GGML_VK_VISIBLE_DEVICES` names llvmpipe).
    #[test]
    fn this_build_lists_its_cpu_device() {
        let devices = list();
        assert!(
            devices.iter().any(|d| d.kind == DeviceKind::Cpu),
            "{devices:?}"
        );
        for d in offload_targets(&devices) {
            assert!(d.memory_total_bytes > 0, "{d:?} reports no memory");
        }
    }
}
