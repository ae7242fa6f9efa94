// Shapes shared with the Rust side (src-tauri). Keep in sync with the `app_status` command.

/** Every command rejects with this value. `code` is stable and machine-readable. */
export interface CommandError {
  code: string;
  message: string;
}

export interface ConfigProblem {
  /** JSON path such as "models.office.n_ctx"; "" for a syntax error. */
  path: string;
  message: string;
}

export type ConfigSource = 'user' | 'created_from_default' | 'builtin_default';

export type StoreStatus =
  | { ok: true; schema_version: number; sessions: number; cards: number; documents: number }
  | { ok: false; error: CommandError };

export type ModelRole = 'office' | 'character' | 'speech' | 'embedding';

export interface ModelStatus {
  role: ModelRole;
  /** The path as written in config.json. */
  configured: string;
  resolved_path: string;
  installed: boolean;
  size_bytes: number | null;
  /** For a persona on an OpenAI-compatible server: its host (the file is not used). */
  remote?: string | null;
}

export interface AppPaths {
  config_file: string;
  data_dir: string;
  models_dir: string;
  database: string;
}

export interface AppStatus {
  version: string;
  /** System locale, e.g. "ko-KR" or "en-US". */
  locale: string;
  paths: AppPaths;
  /** Empty when the config is valid. */
  config_problems: ConfigProblem[];
  config_source: ConfigSource;
  store: StoreStatus;
  models: ModelStatus[];
}

/** What the shell knows about the core at any moment. */
export type StatusLoad =
  | { kind: 'loading' }
  | { kind: 'no-tauri' }
  | { kind: 'error'; error: CommandError }
  | { kind: 'ok'; status: AppStatus };

// --- Hardware monitor (`monitor_snapshot`, `monitor_set_visible`, event `monitor://sample`) ---

/**
 * One GPU: an NVIDIA GPU as read through NVML, or (with `listed_by`) a GPU NVML does not read,
 * from llama.cpp's device list, with only its name and memory. `null` means "not reported".
 */
export interface GpuSample {
  index: number;
  name: string;
  uuid: string | null;
  vram_used_bytes: number | null;
  vram_free_bytes: number | null;
  vram_total_bytes: number | null;
  gpu_util_percent: number | null;
  mem_util_percent: number | null;
  power_watts: number | null;
  power_limit_watts: number | null;
  temperature_c: number | null;
  fan_percent: number | null;
  clock_graphics_mhz: number | null;
  clock_sm_mhz: number | null;
  clock_memory_mhz: number | null;
  /** VRAM used by Deskmate's own process on this GPU. */
  process_vram_bytes: number | null;
  /** The llama.cpp backend that listed this GPU ("Vulkan"); null for NVML's readings. */
  listed_by: string | null;
}

export interface SystemSample {
  cpu_percent: number;
  cpu_count: number;
  ram_used_bytes: number;
  ram_total_bytes: number;
}

/**
 * A threshold crossed in a sample. `temperature`: value and threshold in °C; `vram`: value and
 * threshold in percent of the GPU's VRAM (0–100).
 */
export interface MonitorWarning {
  kind: 'temperature' | 'vram';
  gpu_index: number;
  value: number;
  threshold: number;
}

export interface MonitorSample {
  /** Unix time in milliseconds. */
  timestamp_ms: number;
  /** NVML (an NVIDIA driver) is usable. */
  available: boolean;
  /** Why not, when `available` is false. */
  reason: string | null;
  /** Empty when not available. */
  gpus: GpuSample[];
  system: SystemSample;
  warnings: MonitorWarning[];
}

export type PersonaId = 'office' | 'character';

/** Where a persona's chat model goes. */
export interface ModelPlacement {
  persona: PersonaId;
  main_gpu: number;
  n_gpu_layers: 'auto' | number;
  loaded: boolean;
  layers_on_gpu: number | null;
  layers_total: number | null;
}

export interface MonitorSnapshot {
  /** The history so far, oldest first, at most 300 samples. */
  samples: MonitorSample[];
  placements: ModelPlacement[];
  /** Sampling interval in milliseconds (1000). */
  interval_ms: number;
}
