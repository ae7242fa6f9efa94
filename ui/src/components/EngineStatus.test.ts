import { render, screen } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import type { EngineStats, LoadReport, PersonaState } from '../lib/engine';
import { makeTranslator } from '../lib/i18n';
import EngineStatus from './EngineStatus.svelte';

const report: LoadReport = {
  persona: 'office',
  file: '/models/qwen.gguf',
  file_bytes: 1_117_320_768,
  architecture: 'qwen2',
  quantization: 'Q4_K_M',
  layers_total: 28,
  layers_on_gpu: 21,
  gpu: 0,
  backend: 'cpu+cuda',
  free_vram_bytes: 4_000_000_000,
  estimated_layers: 28,
  n_ctx: 8192,
  n_ctx_per_slot: 2048,
  parallel: 4,
  threads: 7,
  chat_template: 'from the model file',
  load_ms: 2345,
  attempts: [
    {
      gpu_layers: 28,
      n_ctx: 8192,
      failure: { stage: 'create_context', reason: 'cudaMalloc failed: out of memory', out_of_memory: true },
    },
    { gpu_layers: 21, n_ctx: 8192, failure: null },
  ],
  shared_with: null,
};

const stats: EngineStats = {
  requests: 10,
  succeeded: 9,
  cancelled: 1,
  busy: 0,
  failed: {},
  queue_length: 0,
  active_slots: 1,
  slots: 4,
  window: 9,
  ttft_ms: { mean: 120.4, p95: 250.9 },
  latency_ms: { mean: 2100, p95: 4000 },
  prompt_tokens_per_s: { mean: 350.25, p95: 400 },
  generation_tokens_per_s: { mean: 40.5, p95: 45 },
  cache_hit_ratio: 0.5,
  lookup_acceptance: 0.625,
  tokens_per_step: 1.8,
  restored_tokens: 1580,
  restored_requests: 2,
  disk_cache_entries: 3,
  disk_cache_bytes: 11_200_000,
};

const states: PersonaState[] = [
  { state: 'loaded', persona: 'office', report, stats },
  {
    state: 'failed',
    persona: 'character',
    file: '/models/gone.gguf',
    error: { code: 'model_missing', message: '/models/gone.gguf: file not found' },
    attempts: [],
  },
];

describe('EngineStatus', () => {
  it('shows the load report with every back-off attempt and the live statistics', () => {
    render(EngineStatus, { t: makeTranslator('en'), states });
    const office = screen.getByTestId('engine-office');
    expect(office.dataset.state).toBe('loaded');
    expect(office.textContent).toContain('21/28 layers on GPU 0');
    expect(office.textContent).toContain('8,192 tokens, 4 slots of 2,048');
    expect(office.textContent).toContain('out of memory — cudaMalloc failed: out of memory');
    expect(office.textContent).toContain('21 GPU layers, context 8,192: loaded');
    const numbers = screen.getByTestId('engine-stats-office').textContent ?? '';
    expect(numbers).toContain('90%');
    expect(numbers).toContain('120 / 251 ms');
    expect(numbers).toContain('350.3');
    expect(numbers).toContain('0 / 1 of 4');
    expect(numbers).toContain('50%');
    expect(screen.getByTestId('engine-restored').textContent).toContain(
      '1,580 tokens in 2 requests (3 conversations saved, 11.2 MB)',
    );
    expect(screen.getByTestId('engine-lookup').textContent).toContain(
      '63% of drafted tokens confirmed, 1.8 tokens per decode',
    );
  });

  it('leaves lookup decoding out while no reply has drafted', () => {
    const quiet = { ...stats, lookup_acceptance: null, tokens_per_step: 1 };
    render(EngineStatus, {
      t: makeTranslator('en'),
      states: [{ state: 'loaded', persona: 'office', report, stats: quiet }],
    });
    expect(screen.queryByTestId('engine-lookup')).toBeNull();
  });

  it('names the device the layers are on and both fit predictions', () => {
    const onVulkan: LoadReport = {
      ...report,
      device: 'Vulkan0 (AMD Radeon RX 7800 XT)',
      fit: { deskmate_layers: 26, llama_cpp_layers: 28, first_attempt: 'llama_cpp' },
    };
    render(EngineStatus, {
      t: makeTranslator('en'),
      states: [{ state: 'loaded', persona: 'office', report: onVulkan, stats }],
    });
    const office = screen.getByTestId('engine-office');
    expect(office.textContent).toContain('21/28 layers on Vulkan0 (AMD Radeon RX 7800 XT)');
    expect(screen.getByTestId('model-fit-office').textContent).toContain(
      'predicted 28 layers (llama.cpp), 26 (Deskmate)',
    );
  });

  it('shows why a model failed to load, in Korean too', () => {
    render(EngineStatus, { t: makeTranslator('ko'), states });
    const failed = screen.getByTestId('engine-character');
    expect(failed.dataset.state).toBe('failed');
    expect(failed.textContent).toContain('불러오기 실패');
    expect(screen.getByTestId('engine-failure-character').textContent).toContain('model_missing');
  });

  it('shows no projector when the report has no vision field (older engines) or a null one', () => {
    const { unmount } = render(EngineStatus, { t: makeTranslator('en'), states });
    const legacy = screen.getByTestId('model-vision-office');
    expect(legacy.dataset.vision).toBe('none');
    expect(legacy.textContent).toContain('No projector (text only)');
    unmount();
    render(EngineStatus, {
      t: makeTranslator('ko'),
      states: [{ state: 'loaded', persona: 'character', report: { ...report, persona: 'character', vision: null }, stats }],
    });
    expect(screen.getByTestId('model-vision-character').textContent).toContain('프로젝터 없음 (텍스트만)');
  });

  it('shows a loaded projector by file name, with the full path in the title', () => {
    const vision = { projector: '/models/mmproj-qwen.gguf', ready: true, error: null };
    render(EngineStatus, {
      t: makeTranslator('en'),
      states: [{ state: 'loaded', persona: 'office', report: { ...report, vision }, stats }],
    });
    const row = screen.getByTestId('model-vision-office');
    expect(row.dataset.vision).toBe('ready');
    expect(row.textContent?.trim()).toBe('Projector loaded: mmproj-qwen.gguf');
    expect(row.getAttribute('title')).toBe('/models/mmproj-qwen.gguf');
    expect(row.classList.contains('bad')).toBe(false);
  });

  it('warns when the projector did not load, with the reason', () => {
    const vision = { projector: 'C:\\models\\mmproj.gguf', ready: false, error: 'unsupported projector type' };
    render(EngineStatus, {
      t: makeTranslator('en'),
      states: [{ state: 'loaded', persona: 'office', report: { ...report, vision }, stats }],
    });
    const row = screen.getByTestId('model-vision-office');
    expect(row.dataset.vision).toBe('failed');
    expect(row.textContent?.trim()).toBe('Projector not loaded: mmproj.gguf — unsupported projector type');
    expect(row.getAttribute('title')).toBe('C:\\models\\mmproj.gguf');
    expect(row.classList.contains('bad')).toBe(true);
  });

  it('shows a persona on a server: its address, whether it answers, and its statistics', () => {
    const remote = {
      persona: 'office' as const,
      base_url: 'http://gpu-server:8000/v1',
      host: 'gpu-server:8000',
      model: 'qwen2.5-72b',
      parallel: 4,
      max_requests: 20,
      timeout_s: 120,
      uses_key: true,
      check: { checked_at: 1, answers: true, latency_ms: 12.4, model_listed: false, models: ['llama-3'], error: null },
    };
    const { unmount } = render(EngineStatus, {
      t: makeTranslator('en'),
      states: [{ state: 'remote', persona: 'office', remote, stats }],
    });
    const card = screen.getByTestId('engine-office');
    expect(card.dataset.state).toBe('remote');
    expect(card.textContent).toContain('On a server');
    expect(screen.getByTestId('engine-remote-office').textContent).toContain('http://gpu-server:8000/v1');
    expect(screen.getByTestId('engine-remote-answers-office').textContent?.trim()).toBe('Yes (12 ms)');
    expect(card.textContent).toContain('does not list this model (it lists: llama-3)');
    expect(screen.getByTestId('engine-stats-office').textContent).toContain('120 / 251 ms');
    unmount();
    const down = { ...remote, check: { ...remote.check, answers: false, latency_ms: null, model_listed: null, models: [], error: 'Connection refused' } };
    render(EngineStatus, { t: makeTranslator('ko'), states: [{ state: 'remote', persona: 'office', remote: down, stats }] });
    const answers = screen.getByTestId('engine-remote-answers-office');
    expect(answers.dataset.answers).toBe('false');
    expect(answers.textContent?.trim()).toBe('아니요: Connection refused');
  });

  it('renders nothing outside the app before the engine answers', () => {
    render(EngineStatus, { t: makeTranslator('en') });
    expect(screen.queryByTestId('engine-office')).toBeNull();
  });
});
