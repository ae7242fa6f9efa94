// Sample `app_status` replies and monitor samples for tests.
import type {
  AppStatus,
  GpuSample,
  ModelPlacement,
  ModelStatus,
  MonitorSample,
  MonitorSnapshot,
} from '../lib/types';

export function model(role: ModelStatus['role'], installed = true): ModelStatus {
  return {
    role,
    configured: `models/${role}.gguf`,
    resolved_path: `/home/user/.local/share/deskmate/models/${role}.gguf`,
    installed,
    size_bytes: installed ? 2_345_678_901 : null,
  };
}

export function sampleStatus(overrides: Partial<AppStatus> = {}): AppStatus {
  return {
    version: '0.1.0',
    locale: 'en-US',
    paths: {
      config_file: '/home/user/.config/deskmate/config.json',
      data_dir: '/home/user/.local/share/deskmate',
      models_dir: '/home/user/.local/share/deskmate/models',
      database: '/home/user/.local/share/deskmate/deskmate.sqlite3',
    },
    config_problems: [],
    config_source: 'user',
    store: { ok: true, schema_version: 1, sessions: 0, cards: 0, documents: 0 },
    models: [model('office'), model('character'), model('speech'), model('embedding')],
    ...overrides,
  };
}

// --- Hardware monitor ---

const GIB = 1024 ** 3;

export function gpu(index: number, overrides: Partial<GpuSample> = {}): GpuSample {
  return {
    index,
    name: 'NVIDIA GeForce RTX 4090',
    uuid: `GPU-0000000${index}`,
    listed_by: null,
    vram_used_bytes: 6.1 * GIB,
    vram_free_bytes: 17.9 * GIB,
    vram_total_bytes: 24 * GIB,
    gpu_util_percent: 42,
    mem_util_percent: 17,
    power_watts: 215.4,
    power_limit_watts: 450,
    temperature_c: 63,
    fan_percent: 30,
    clock_graphics_mhz: 2520,
    clock_sm_mhz: 2520,
    clock_memory_mhz: 10501,
    process_vram_bytes: 812 * 1024 ** 2,
    ...overrides,
  };
}

export function monitorSample(overrides: Partial<MonitorSample> = {}): MonitorSample {
  return {
    timestamp_ms: 1_700_000_000_000,
    available: true,
    reason: null,
    gpus: [gpu(0)],
    system: {
      cpu_percent: 23,
      cpu_count: 16,
      ram_used_bytes: 9.8 * GIB,
      ram_total_bytes: 31.2 * GIB,
    },
    warnings: [],
    ...overrides,
  };
}

/** A sample without an NVIDIA driver. */
export function noGpuSample(overrides: Partial<MonitorSample> = {}): MonitorSample {
  return monitorSample({
    available: false,
    reason: 'NVML could not be loaded: libnvidia-ml.so.1 not found',
    gpus: [],
    ...overrides,
  });
}

/** `count` samples one second apart ending at `end`, built by `make(i)`. */
export function history(
  count: number,
  make: (i: number) => Partial<MonitorSample> = () => ({}),
  end = 1_700_000_000_000,
): MonitorSample[] {
  return Array.from({ length: count }, (_, i) =>
    monitorSample({ ...make(i), timestamp_ms: end - (count - 1 - i) * 1000 }),
  );
}

export function placement(
  persona: ModelPlacement['persona'],
  overrides: Partial<ModelPlacement> = {},
): ModelPlacement {
  return {
    persona,
    main_gpu: 0,
    n_gpu_layers: 'auto',
    loaded: false,
    layers_on_gpu: null,
    layers_total: null,
    ...overrides,
  };
}

export function monitorSnapshot(overrides: Partial<MonitorSnapshot> = {}): MonitorSnapshot {
  return {
    samples: history(3),
    placements: [placement('office'), placement('character', { main_gpu: 1 })],
    interval_ms: 1000,
    ...overrides,
  };
}
