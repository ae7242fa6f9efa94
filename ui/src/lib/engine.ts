// The engine's per-persona state from the `engine_status` command (Rust: core::engine::PersonaState)
// and the pure helpers the Models page uses to show it.
import { call, isTauri } from './api';
import type { CommandError } from './types';

export type Persona = 'office' | 'character';

export interface LoadFailure {
  stage: 'load_model' | 'create_context';
  reason: string;
  out_of_memory: boolean;
}

export interface LoadAttempt {
  gpu_layers: number;
  n_ctx: number;
  /** null when this attempt loaded the model. */
  failure: LoadFailure | null;
}

export interface LoadReport {
  persona: Persona;
  file: string;
  file_bytes: number;
  architecture: string | null;
  quantization: string | null;
  layers_total: number;
  layers_on_gpu: number;
  gpu: number | null;
  /** The device holding the offloaded layers, e.g. "Vulkan0 (NVIDIA GeForce RTX 4070)". */
  device?: string | null;
  backend: string;
  free_vram_bytes: number | null;
  estimated_layers: number | null;
  /** Both fit predictions for `n_gpu_layers: "auto"`, and which gave the first attempt. */
  fit?: FitPrediction | null;
  n_ctx: number;
  n_ctx_per_slot: number;
  parallel: number;
  threads: number;
  chat_template: string;
  load_ms: number;
  attempts: LoadAttempt[];
  shared_with: Persona | null;
  /** The vision projector (`models.<persona>.mmproj`); null or absent (older engines) when none. */
  vision?: VisionReport | null;
}

export interface FitPrediction {
  deskmate_layers: number;
  llama_cpp_layers: number | null;
  first_attempt: 'llama_cpp' | 'deskmate';
}

/** Whether llama.cpp's multimodal library loaded the persona's vision projector, and why not. */
export interface VisionReport {
  projector: string;
  ready: boolean;
  error: string | null;
}

/** The report's vision projector, treating a missing field (older engines) as none. */
export function visionOf(report: LoadReport): VisionReport | null {
  return report.vision ?? null;
}

export interface Summary {
  mean: number;
  p95: number;
}

export interface EngineStats {
  requests: number;
  succeeded: number;
  cancelled: number;
  busy: number;
  failed: Record<string, number>;
  queue_length: number;
  active_slots: number;
  slots: number;
  window: number;
  ttft_ms: Summary | null;
  latency_ms: Summary | null;
  prompt_tokens_per_s: Summary | null;
  generation_tokens_per_s: Summary | null;
  cache_hit_ratio: number | null;
  /** Prompt-lookup decoding: confirmed drafted tokens over drafted ones (null: none drafted). */
  lookup_acceptance?: number | null;
  /** Reply tokens per decode call: 1 without lookup decoding, more when drafts held. */
  tokens_per_step?: number | null;
  /** Prompt tokens restored from the prompt cache on disk since the model loaded. */
  restored_tokens?: number;
  restored_requests?: number;
  disk_cache_entries?: number;
  disk_cache_bytes?: number;
}

/** The answer of a persona's server to `GET {base_url}/models` (Rust: engine::remote::RemoteCheck). */
export interface RemoteCheck {
  checked_at: number;
  answers: boolean;
  latency_ms: number | null;
  model_listed: boolean | null;
  models: string[];
  error: string | null;
}

/** A persona on an OpenAI-compatible server (Rust: engine::remote::RemoteReport). */
export interface RemoteReport {
  persona: Persona;
  base_url: string;
  host: string;
  model: string;
  parallel: number;
  max_requests: number;
  timeout_s: number;
  uses_key: boolean;
  check: RemoteCheck;
}

/** Where a persona's messages go (Rust: app::PersonaBackend), for the "remote: host" badge. */
export interface PersonaBackend {
  persona: Persona;
  remote: { host: string; base_url: string; model: string } | null;
  documents_to_remote: boolean;
}

export type PersonaState =
  | { state: 'not_loaded'; persona: Persona }
  | { state: 'loading'; persona: Persona; file: string }
  | { state: 'loaded'; persona: Persona; report: LoadReport; stats: EngineStats }
  | {
      state: 'failed';
      persona: Persona;
      file: string;
      error: CommandError;
      attempts: LoadAttempt[];
    }
  | { state: 'remote'; persona: Persona; remote: RemoteReport; stats: EngineStats };

/** "24/30" layers on the GPU, or null when everything runs on the CPU. */
export function gpuLayers(report: LoadReport): string | null {
  if (report.layers_on_gpu === 0 || report.gpu === null) return null;
  return `${report.layers_on_gpu}/${report.layers_total}`;
}

/** Share of finished requests that succeeded, 0–100, or null before any request. */
export function successRate(stats: EngineStats): number | null {
  const failed = Object.values(stats.failed).reduce((a, b) => a + b, 0);
  const finished = stats.succeeded + stats.cancelled + stats.busy + failed;
  if (finished === 0) return null;
  return Math.round((stats.succeeded / finished) * 100);
}

/** A number with at most `digits` decimals in the UI language, or "—". */
export function formatNumber(value: number | null | undefined, lang: 'ko' | 'en', digits = 0): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—';
  return new Intl.NumberFormat(lang === 'ko' ? 'ko-KR' : 'en-US', {
    maximumFractionDigits: digits,
  }).format(value);
}

/** Checks the reply of `engine_status` enough that a shape mismatch is an error, not a blank. */
export function parseEngineStatus(value: unknown): PersonaState[] {
  if (!Array.isArray(value)) throw new Error('engine_status: not an array');
  const states = new Set(['not_loaded', 'loading', 'loaded', 'failed', 'remote']);
  return value.map((item, i) => {
    if (typeof item !== 'object' || item === null) throw new Error(`engine_status[${i}]: not an object`);
    const record = item as Record<string, unknown>;
    if (typeof record.state !== 'string' || !states.has(record.state)) {
      throw new Error(`engine_status[${i}]: unknown state`);
    }
    if (record.persona !== 'office' && record.persona !== 'character') {
      throw new Error(`engine_status[${i}]: unknown persona`);
    }
    return item as PersonaState;
  });
}

/** Checks the reply of `persona_backends`; anything unexpected counts as "this machine". */
export function parseBackends(value: unknown): PersonaBackend[] {
  if (!Array.isArray(value)) return [];
  return value.filter(
    (b): b is PersonaBackend =>
      typeof b === 'object' &&
      b !== null &&
      ((b as PersonaBackend).persona === 'office' || (b as PersonaBackend).persona === 'character'),
  );
}

/** Where each persona's messages go; outside the app (a browser preview) every persona is local. */
export async function fetchBackends(): Promise<PersonaBackend[]> {
  if (!isTauri()) return [];
  return parseBackends(await call<unknown>('persona_backends'));
}
