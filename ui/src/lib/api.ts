// Typed wrappers around Tauri commands. Every command rejects with `CommandError`.
import { invoke, type InvokeArgs } from '@tauri-apps/api/core';
import { listen, type UnlistenFn } from '@tauri-apps/api/event';
import type {
  AppStatus,
  CommandError,
  GpuSample,
  ModelPlacement,
  MonitorSample,
  MonitorSnapshot,
  MonitorWarning,
  StatusLoad,
} from './types';

/** Error codes produced by the UI itself (the core's codes come from Rust). */
export const UI_ERROR = {
  /** A command rejected with something that is not `{ code, message }`. */
  unknown: 'ui.unknown',
  /** A command resolved with a value of the wrong shape. */
  badResponse: 'ui.bad_response',
} as const;

export class ApiError extends Error implements CommandError {
  readonly code: string;

  constructor(error: CommandError) {
    super(error.message);
    this.name = 'ApiError';
    this.code = error.code;
  }

  toJSON(): CommandError {
    return { code: this.code, message: this.message };
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Normalises whatever a rejected command produced into `{ code, message }`. */
export function toCommandError(value: unknown): CommandError {
  if (value instanceof ApiError) return value.toJSON();
  if (isRecord(value) && typeof value.code === 'string' && typeof value.message === 'string') {
    return { code: value.code, message: value.message };
  }
  if (value instanceof Error) return { code: UI_ERROR.unknown, message: value.message };
  if (typeof value === 'string') return { code: UI_ERROR.unknown, message: value };
  return { code: UI_ERROR.unknown, message: String(value) };
}

/** True inside the Tauri webview; false in a plain browser or under vitest. */
export function isTauri(): boolean {
  return typeof window !== 'undefined' && '__TAURI_INTERNALS__' in window;
}

/** Calls a Tauri command; a rejection becomes an `ApiError` carrying the core's code. */
export async function call<T>(command: string, args?: InvokeArgs): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (error) {
    throw new ApiError(toCommandError(error));
  }
}

/**
 * Calls a Tauri command with a raw body (the bytes of a file) instead of JSON arguments; the
 * command reads what else it needs from `headers` (Tauri 2's `InvokeBody::Raw`). A rejection
 * becomes an `ApiError`, as with `call`.
 */
export async function callRaw<T>(
  command: string,
  body: Uint8Array,
  headers: Record<string, string>,
): Promise<T> {
  try {
    return await invoke<T>(command, body, { headers });
  } catch (error) {
    throw new ApiError(toCommandError(error));
  }
}

const ROLES = new Set(['office', 'character', 'speech', 'embedding']);
const SOURCES = new Set(['user', 'created_from_default', 'builtin_default']);

/**
 * Checks the parts of the `app_status` reply that the UI relies on, so a mismatch between the
 * Rust and TypeScript shapes shows up as a clear error instead of a blank page.
 */
export function parseAppStatus(value: unknown): AppStatus {
  const fail = (what: string): never => {
    throw new ApiError({ code: UI_ERROR.badResponse, message: `app_status: ${what}` });
  };
  if (!isRecord(value)) return fail('not an object');
  if (typeof value.version !== 'string') fail('version is not a string');
  if (typeof value.locale !== 'string') fail('locale is not a string');
  const paths = value.paths;
  if (!isRecord(paths)) return fail('paths is not an object');
  for (const key of ['config_file', 'data_dir', 'models_dir', 'database']) {
    if (typeof paths[key] !== 'string') fail(`paths.${key} is not a string`);
  }
  if (!Array.isArray(value.config_problems)) fail('config_problems is not an array');
  for (const [i, p] of (value.config_problems as unknown[]).entries()) {
    if (!isRecord(p) || typeof p.path !== 'string' || typeof p.message !== 'string') {
      fail(`config_problems[${i}] is not { path, message }`);
    }
  }
  if (typeof value.config_source !== 'string' || !SOURCES.has(value.config_source)) {
    fail('config_source is not one of user, created_from_default, builtin_default');
  }
  const store = value.store;
  if (!isRecord(store) || typeof store.ok !== 'boolean') return fail('store.ok is not a boolean');
  if (store.ok) {
    for (const key of ['schema_version', 'sessions', 'cards', 'documents']) {
      if (typeof store[key] !== 'number') fail(`store.${key} is not a number`);
    }
  } else if (!isRecord(store.error) || typeof store.error.code !== 'string') {
    fail('store.error is not { code, message }');
  }
  if (!Array.isArray(value.models)) fail('models is not an array');
  for (const [i, m] of (value.models as unknown[]).entries()) {
    if (
      !isRecord(m) ||
      typeof m.role !== 'string' ||
      !ROLES.has(m.role) ||
      typeof m.configured !== 'string' ||
      typeof m.resolved_path !== 'string' ||
      typeof m.installed !== 'boolean' ||
      !(m.size_bytes === null || m.size_bytes === undefined || typeof m.size_bytes === 'number')
    ) {
      fail(`models[${i}] is not a ModelStatus`);
    }
  }
  return value as unknown as AppStatus;
}

/** `app_status`: versions, locale, paths, config problems, store and model status. */
export async function getAppStatus(): Promise<AppStatus> {
  return parseAppStatus(await call<unknown>('app_status'));
}

/** Loads the status for the shell; never rejects. */
export async function loadStatus(): Promise<StatusLoad> {
  if (!isTauri()) return { kind: 'no-tauri' };
  try {
    return { kind: 'ok', status: await getAppStatus() };
  } catch (error) {
    return { kind: 'error', error: toCommandError(error) };
  }
}

// --- Hardware monitor ---

/** Names of the monitor's commands and event, as registered by the core. */
export const MONITOR = {
  /** `invoke('monitor_snapshot')` → `MonitorSnapshot`. */
  snapshot: 'monitor_snapshot',
  /** `invoke('monitor_set_visible', { visible })` → null. */
  setVisible: 'monitor_set_visible',
  /** Event carrying one `MonitorSample` per interval. */
  sampleEvent: 'monitor://sample',
} as const;

const GPU_NUMBERS = [
  'vram_used_bytes',
  'vram_free_bytes',
  'vram_total_bytes',
  'gpu_util_percent',
  'mem_util_percent',
  'power_watts',
  'power_limit_watts',
  'temperature_c',
  'fan_percent',
  'clock_graphics_mhz',
  'clock_sm_mhz',
  'clock_memory_mhz',
  'process_vram_bytes',
] as const satisfies readonly (keyof GpuSample)[];

const WARNING_KINDS = new Set(['temperature', 'vram']);
const PERSONAS = new Set(['office', 'character']);

const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
/** A number or null; a missing field counts as null. */
const isOptionalNumber = (v: unknown): v is number | null | undefined =>
  v === null || v === undefined || isNumber(v);

function badResponse(what: string): never {
  throw new ApiError({ code: UI_ERROR.badResponse, message: what });
}

/** Checks one sample and fills missing optional GPU fields with null. */
export function parseMonitorSample(value: unknown, where = 'monitor sample'): MonitorSample {
  if (!isRecord(value)) return badResponse(`${where}: not an object`);
  if (!isNumber(value.timestamp_ms)) badResponse(`${where}: timestamp_ms is not a number`);
  if (typeof value.available !== 'boolean') badResponse(`${where}: available is not a boolean`);
  if (!(value.reason === null || value.reason === undefined || typeof value.reason === 'string')) {
    badResponse(`${where}: reason is not a string or null`);
  }
  const system = value.system;
  if (!isRecord(system)) return badResponse(`${where}: system is not an object`);
  for (const key of ['cpu_percent', 'cpu_count', 'ram_used_bytes', 'ram_total_bytes']) {
    if (!isNumber(system[key])) badResponse(`${where}: system.${key} is not a number`);
  }
  if (!Array.isArray(value.gpus)) return badResponse(`${where}: gpus is not an array`);
  const gpus = (value.gpus as unknown[]).map((g, i): GpuSample => {
    if (!isRecord(g) || !isNumber(g.index) || typeof g.name !== 'string') {
      return badResponse(`${where}: gpus[${i}] has no index and name`);
    }
    const gpu: Record<string, unknown> = {
      ...g,
      uuid: typeof g.uuid === 'string' ? g.uuid : null,
      listed_by: typeof g.listed_by === 'string' ? g.listed_by : null,
    };
    for (const key of GPU_NUMBERS) {
      if (!isOptionalNumber(g[key])) badResponse(`${where}: gpus[${i}].${key} is not a number or null`);
      gpu[key] = g[key] ?? null;
    }
    return gpu as unknown as GpuSample;
  });
  const rawWarnings: unknown = value.warnings ?? [];
  if (!Array.isArray(rawWarnings)) return badResponse(`${where}: warnings is not an array`);
  const warnings = (rawWarnings as unknown[]).map((w, i): MonitorWarning => {
    if (
      !isRecord(w) ||
      typeof w.kind !== 'string' ||
      !WARNING_KINDS.has(w.kind) ||
      !isNumber(w.gpu_index) ||
      !isNumber(w.value) ||
      !isNumber(w.threshold)
    ) {
      return badResponse(`${where}: warnings[${i}] is not a MonitorWarning`);
    }
    return w as unknown as MonitorWarning;
  });
  return {
    ...(value as unknown as MonitorSample),
    reason: typeof value.reason === 'string' ? value.reason : null,
    gpus,
    warnings,
  };
}

export function parseModelPlacement(value: unknown, where = 'placement'): ModelPlacement {
  if (
    !isRecord(value) ||
    typeof value.persona !== 'string' ||
    !PERSONAS.has(value.persona) ||
    !isNumber(value.main_gpu) ||
    !(value.n_gpu_layers === 'auto' || isNumber(value.n_gpu_layers)) ||
    typeof value.loaded !== 'boolean' ||
    !isOptionalNumber(value.layers_on_gpu) ||
    !isOptionalNumber(value.layers_total)
  ) {
    return badResponse(`${where} is not a ModelPlacement`);
  }
  return {
    ...(value as unknown as ModelPlacement),
    layers_on_gpu: value.layers_on_gpu ?? null,
    layers_total: value.layers_total ?? null,
  };
}

export function parseMonitorSnapshot(value: unknown): MonitorSnapshot {
  const where = MONITOR.snapshot;
  if (!isRecord(value)) return badResponse(`${where}: not an object`);
  if (!Array.isArray(value.samples)) return badResponse(`${where}: samples is not an array`);
  const placements: unknown = value.placements ?? [];
  if (!Array.isArray(placements)) return badResponse(`${where}: placements is not an array`);
  const interval = value.interval_ms;
  if (!(interval === undefined || (isNumber(interval) && interval > 0))) {
    badResponse(`${where}: interval_ms is not a positive number`);
  }
  return {
    samples: (value.samples as unknown[]).map((s, i) => parseMonitorSample(s, `${where}: samples[${i}]`)),
    placements: (placements as unknown[]).map((p, i) =>
      parseModelPlacement(p, `${where}: placements[${i}]`),
    ),
    interval_ms: isNumber(interval) ? interval : 1000,
  };
}

/** `monitor_snapshot`: the history so far (oldest first, up to 300) and the model placements. */
export async function getMonitorSnapshot(): Promise<MonitorSnapshot> {
  return parseMonitorSnapshot(await call<unknown>(MONITOR.snapshot));
}

/** `monitor_set_visible`: lets the core stop sampling while the window is hidden. */
export async function setMonitorVisible(visible: boolean): Promise<void> {
  await call<unknown>(MONITOR.setVisible, { visible });
}

/**
 * Subscribes to `monitor://sample`. Malformed payloads go to `onError` and are dropped. Resolves
 * to the unsubscribe function; rejects with an `ApiError` when the subscription fails.
 */
export async function listenMonitorSamples(
  onSample: (sample: MonitorSample) => void,
  onError: (error: CommandError) => void = () => {},
): Promise<UnlistenFn> {
  try {
    return await listen<unknown>(MONITOR.sampleEvent, (event) => {
      let sample: MonitorSample;
      try {
        sample = parseMonitorSample(event.payload, MONITOR.sampleEvent);
      } catch (error) {
        onError(toCommandError(error));
        return;
      }
      onSample(sample);
    });
  } catch (error) {
    throw new ApiError(toCommandError(error));
  }
}
