import { describe, expect, it } from 'vitest';
import {
  formatNumber,
  gpuLayers,
  parseEngineStatus,
  successRate,
  visionOf,
  type EngineStats,
  type LoadReport,
} from './engine';

const report: LoadReport = {
  persona: 'office',
  file: '/m/qwen.gguf',
  file_bytes: 1_117_320_768,
  architecture: 'qwen2',
  quantization: 'Q4_K_M',
  layers_total: 28,
  layers_on_gpu: 0,
  gpu: null,
  backend: 'cpu',
  free_vram_bytes: null,
  estimated_layers: null,
  n_ctx: 8192,
  n_ctx_per_slot: 2048,
  parallel: 4,
  threads: 1,
  chat_template: 'from the model file',
  load_ms: 1000,
  attempts: [{ gpu_layers: 0, n_ctx: 8192, failure: null }],
  shared_with: null,
};

const stats: EngineStats = {
  requests: 0,
  succeeded: 0,
  cancelled: 0,
  busy: 0,
  failed: {},
  queue_length: 0,
  active_slots: 0,
  slots: 4,
  window: 0,
  ttft_ms: null,
  latency_ms: null,
  prompt_tokens_per_s: null,
  generation_tokens_per_s: null,
  cache_hit_ratio: null,
};

describe('engine helpers', () => {
  it('shows GPU layers only when some are on a GPU', () => {
    expect(gpuLayers(report)).toBeNull();
    expect(gpuLayers({ ...report, layers_on_gpu: 21, gpu: 0 })).toBe('21/28');
  });

  it('computes the success rate over every finished request, none before the first', () => {
    expect(successRate(stats)).toBeNull();
    expect(
      successRate({ ...stats, succeeded: 6, cancelled: 1, busy: 1, failed: { decode_failed: 2 } }),
    ).toBe(60);
  });

  it('formats numbers in the UI language and dashes for missing values', () => {
    expect(formatNumber(1234.56, 'en', 1)).toBe('1,234.6');
    expect(formatNumber(null, 'ko')).toBe('—');
    expect(formatNumber(Number.NaN, 'en')).toBe('—');
  });

  it('accepts the four states and rejects an unknown shape', () => {
    const ok = parseEngineStatus([
      { state: 'loaded', persona: 'office', report, stats },
      { state: 'failed', persona: 'character', file: 'x', error: { code: 'model_missing', message: 'x' }, attempts: [] },
    ]);
    expect(ok.map((s) => s.state)).toEqual(['loaded', 'failed']);
    expect(() => parseEngineStatus({})).toThrow('not an array');
    expect(() => parseEngineStatus([{ state: 'exploded', persona: 'office' }])).toThrow('unknown state');
    expect(() => parseEngineStatus([{ state: 'loading', persona: 'robot' }])).toThrow('unknown persona');
  });
});

describe('visionOf', () => {
  it('treats a missing or null vision field as no projector', () => {
    expect(visionOf(report)).toBeNull();
    expect(visionOf({ ...report, vision: null })).toBeNull();
    const vision = { projector: '/m/mmproj.gguf', ready: false, error: 'boom' };
    expect(visionOf({ ...report, vision })).toEqual(vision);
  });
});
