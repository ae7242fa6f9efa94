import { describe, expect, it } from 'vitest';
import { gpu, history, monitorSample, noGpuSample, placement } from '../test/fixtures';
import { makeTranslator } from './i18n';
import {
  addSample,
  appendBounded,
  areaPath,
  autoRange,
  buildPath,
  chartSegments,
  chartWindow,
  cpuSeries,
  DASH,
  formatBytes,
  formatCelsius,
  formatGigabytes,
  formatMhz,
  formatPercent,
  formatPower,
  formatUsedTotal,
  formatWatts,
  gaugeItems,
  gaugeMode,
  gpuSeries,
  HISTORY_SIZE,
  historyMinutes,
  linePath,
  mergeSamples,
  placementText,
  ramSeries,
  resolveRange,
  scale,
  seriesOf,
  warningLevel,
  warningMessage,
  worstLevel,
  type PlotOptions,
} from './monitor';
import type { MonitorWarning } from './types';

const GIB = 1024 ** 3;
const en = makeTranslator('en');
const ko = makeTranslator('ko');

describe('history buffer', () => {
  it('keeps the newest 300 items', () => {
    let list: number[] = [];
    for (let i = 0; i < 1000; i++) list = appendBounded(list, i);
    expect(HISTORY_SIZE).toBe(300);
    expect(list).toHaveLength(300);
    expect(list[0]).toBe(700);
    expect(list.at(-1)).toBe(999);
  });

  it('never mutates its input and honours a custom size', () => {
    const list = [1, 2, 3];
    expect(appendBounded(list, 4, 3)).toEqual([2, 3, 4]);
    expect(list).toEqual([1, 2, 3]);
    expect(appendBounded([], 'a', 3)).toEqual(['a']);
  });

  it('merges a snapshot with samples already received, by timestamp', () => {
    const all = history(5);
    const [a, b, c, d, e] = all;
    const replaced = { ...c!, system: { ...c!.system, cpu_percent: 99 } };
    const merged = mergeSamples([d!, e!], [a!, b!, replaced, d!]);
    expect(merged.map((s) => s.timestamp_ms)).toEqual(all.map((s) => s.timestamp_ms));
    expect(merged[2]).toBe(replaced);
    expect(mergeSamples(history(400), [], HISTORY_SIZE)).toHaveLength(300);
    expect(mergeSamples(history(10), history(4), 5).at(-1)?.timestamp_ms).toBe(e!.timestamp_ms);
  });

  it('appends a newer sample and merges an older or repeated one', () => {
    const [a, b, c] = history(3);
    expect(addSample([a!, b!], c!)).toEqual([a, b, c]);
    expect(addSample([a!, c!], b!)).toEqual([a, b, c]);
    expect(addSample([a!, b!], b!)).toEqual([a, b]);
    const full = history(300);
    const next = monitorSample({ timestamp_ms: full.at(-1)!.timestamp_ms + 1000 });
    const added = addSample(full, next);
    expect(added).toHaveLength(300);
    expect(added[0]).toBe(full[1]);
    expect(added.at(-1)).toBe(next);
  });
});

describe('series', () => {
  it('extracts values and turns missing, null and non-finite values into null', () => {
    const items = [{ v: 1 }, { v: null }, {}, { v: Number.NaN }, { v: Number.POSITIVE_INFINITY }, { v: 0 }];
    expect(seriesOf(items, (i: { v?: number | null }) => i.v)).toEqual([1, null, null, null, null, 0]);
  });

  it('follows a GPU by index, with null where it or its value is missing', () => {
    const samples = [
      monitorSample({ gpus: [gpu(0, { temperature_c: 60 }), gpu(1, { temperature_c: 70 })] }),
      monitorSample({ gpus: [gpu(1, { temperature_c: 71 }), gpu(0, { temperature_c: null })] }),
      noGpuSample(),
      monitorSample({ gpus: [gpu(0, { temperature_c: 62 })] }),
    ];
    expect(gpuSeries(samples, 0, 'temperature_c')).toEqual([60, null, null, 62]);
    expect(gpuSeries(samples, 1, 'temperature_c')).toEqual([70, 71, null, null]);
    expect(gpuSeries(samples, 2, 'temperature_c')).toEqual([null, null, null, null]);
  });

  it('reads CPU and RAM from every sample', () => {
    const samples = history(3, (i) => ({
      system: { cpu_percent: i * 10, cpu_count: 8, ram_used_bytes: i * GIB, ram_total_bytes: 16 * GIB },
    }));
    expect(cpuSeries(samples)).toEqual([0, 10, 20]);
    expect(ramSeries(samples)).toEqual([0, GIB, 2 * GIB]);
  });
});

describe('chart geometry', () => {
  const opts = (over: Partial<PlotOptions> = {}): PlotOptions => ({
    width: 100,
    height: 50,
    window: { start: 0, end: 4000 },
    range: { min: 0, max: 100 },
    ...over,
  });
  const times = [0, 1000, 2000, 3000, 4000];

  it('scales and clamps', () => {
    expect(scale(50, { min: 0, max: 100 }, 0, 200)).toBe(100);
    expect(scale(150, { min: 0, max: 100 }, 50, 0)).toBe(0);
    expect(scale(-5, { min: 0, max: 100 }, 50, 0)).toBe(50);
    expect(scale(7, { min: 7, max: 7 }, 0, 10)).toBe(5);
  });

  it('maps time to x and values to a fixed range (y grows downwards)', () => {
    expect(buildPath(times, [0, 25, 50, 75, 100], opts())).toBe(
      'M0 50L25 37.5L50 25L75 12.5L100 0',
    );
    // Out-of-range values are clamped to the plot.
    expect(buildPath([0, 4000], [-10, 120], opts())).toBe('M0 50L100 0');
  });

  it('leaves gaps at nulls and draws a lone point as a dot', () => {
    expect(buildPath(times, [10, 20, null, 40, 50], opts())).toBe('M0 45L25 40M75 30L100 25');
    expect(buildPath(times, [null, 20, null, null, 50], opts())).toBe('M25 40h0M100 25h0');
    expect(buildPath(times, [null, null, null, null, null], opts())).toBe('');
    expect(buildPath([], [], opts())).toBe('');
  });

  it('breaks lines across pauses and drops points before the window', () => {
    const paused = [0, 1000, 9000, 10000];
    const window = { start: 0, end: 10000 };
    expect(buildPath(paused, [0, 0, 0, 0], opts({ window, maxGapMs: 3000 }))).toBe(
      'M0 50L10 50M90 50L100 50',
    );
    expect(buildPath([-1000, 0, 4000], [0, 50, 50], opts())).toBe('M0 25L100 25');
  });

  it('draws a flat series as a horizontal line in the middle of an automatic range', () => {
    const flat = [42, 42, 42, 42, 42];
    const range = resolveRange(flat);
    expect(range.min).toBeLessThan(42);
    expect(range.max).toBeGreaterThan(42);
    expect((range.min + range.max) / 2).toBe(42);
    const segments = chartSegments(times, flat, opts({ range }));
    expect(new Set(segments[0]!.map(([, y]) => y))).toEqual(new Set([25]));
  });

  it('fills the area under each run', () => {
    const segments = chartSegments(times, [100, 100, null, 0, 50], opts());
    expect(linePath(segments)).toBe('M0 0L25 0M75 50L100 25');
    expect(areaPath(segments, 50)).toBe('M0 50L0 0L25 0L25 50ZM75 50L75 50L100 25L100 50Z');
    expect(areaPath(chartSegments([0], [5], opts()), 50)).toBe('');
  });

  it('picks automatic ranges', () => {
    expect(autoRange([])).toEqual({ min: 0, max: 1 });
    expect(autoRange([null, null])).toEqual({ min: 0, max: 1 });
    expect(autoRange([0, 0], true)).toEqual({ min: 0, max: 1 });
    expect(autoRange([50, 50], true)).toEqual({ min: 0, max: 60 });
    expect(autoRange([61, 63, 67])).toEqual({ min: 60, max: 68 });
    expect(autoRange([3, 97], true)).toEqual({ min: 0, max: 100 });
  });

  it('combines fixed and automatic bounds', () => {
    expect(resolveRange([5, 300], { min: 0, max: 100 })).toEqual({ min: 0, max: 100 });
    expect(resolveRange([61, 67], { min: 0 })).toEqual({ min: 0, max: 68 });
    expect(resolveRange([1, 2], { min: 5, max: 5 })).toEqual({ min: 5, max: 6 });
    expect(resolveRange([10], { max: undefined })).toEqual(autoRange([10]));
  });

  it('ends the window at the newest sample', () => {
    const samples = history(3);
    const end = samples.at(-1)!.timestamp_ms;
    expect(chartWindow(samples, 1000)).toEqual({ start: end - 300_000, end });
    expect(chartWindow([], 1000)).toEqual({ start: -300_000, end: 0 });
    expect(historyMinutes(1000)).toBe(5);
    expect(historyMinutes(2000)).toBe(10);
  });
});

describe('formatters', () => {
  it('formats sizes in binary gigabytes and megabytes', () => {
    expect(formatGigabytes(6.1 * GIB, 'en')).toBe('6.1');
    expect(formatGigabytes(0, 'en')).toBe('0.0');
    expect(formatBytes(812 * 1024 ** 2, 'en')).toBe('812 MB');
    expect(formatBytes(24 * GIB, 'ko')).toBe('24.0 GB');
    expect(formatBytes(1234 * GIB, 'en')).toBe('1,234.0 GB');
    expect(formatUsedTotal(6.1 * GIB, 24 * GIB, 'en', true)).toBe('6.1/24.0 GB');
    expect(formatUsedTotal(6.1 * GIB, 24 * GIB, 'en')).toBe('6.1 / 24.0 GB');
    expect(formatUsedTotal(6.1 * GIB, null, 'en')).toBe('6.1 GB');
    expect(formatUsedTotal(null, 24 * GIB, 'en')).toBe(DASH);
  });

  it('formats percent, watts, degrees and clocks', () => {
    expect(formatPercent(42.4, 'en')).toBe('42%');
    expect(formatWatts(215.4, 'en')).toBe('215 W');
    expect(formatPower(215.4, 450, 'en')).toBe('215 / 450 W');
    expect(formatPower(215.4, null, 'en')).toBe('215 W');
    expect(formatCelsius(63, 'en')).toBe('63 °C');
    expect(formatCelsius(63, 'ko', true)).toBe('63°C');
    expect(formatMhz(10501, 'en')).toBe('10,501 MHz');
  });

  it('shows a dash for null and unusable values', () => {
    for (const v of [null, undefined, Number.NaN]) {
      expect(formatPercent(v, 'en')).toBe(DASH);
      expect(formatWatts(v, 'en')).toBe(DASH);
      expect(formatPower(v, 450, 'en')).toBe(DASH);
      expect(formatCelsius(v, 'en')).toBe(DASH);
      expect(formatMhz(v, 'en')).toBe(DASH);
      expect(formatBytes(v, 'en')).toBe(DASH);
      expect(formatGigabytes(v, 'en')).toBe(DASH);
    }
  });
});

describe('warnings', () => {
  const temp: MonitorWarning = { kind: 'temperature', gpu_index: 0, value: 91, threshold: 85 };
  const vram: MonitorWarning = { kind: 'vram', gpu_index: 1, value: 97, threshold: 95 };

  it('builds translated messages', () => {
    expect(warningMessage(en, temp)).toBe('GPU 0 is at 91 °C (warning above 85 °C)');
    expect(warningMessage(en, vram)).toBe('GPU 1 VRAM is 97% full (warning above 95%)');
    expect(warningMessage(en, { ...vram, value: 95.46 })).toBe(
      'GPU 1 VRAM is 95.5% full (warning above 95%)',
    );
    expect(warningMessage(ko, temp)).toBe('GPU 0의 온도가 91 °C입니다 (경고 기준 85 °C 초과)');
    expect(warningMessage(ko, vram)).toBe('GPU 1의 VRAM이 97% 찼습니다 (경고 기준 95% 초과)');
  });

  it('turns red well past the threshold', () => {
    expect(warningLevel(temp)).toBe('critical');
    expect(warningLevel({ ...temp, value: 86 })).toBe('warning');
    expect(warningLevel(vram)).toBe('warning');
    expect(warningLevel({ ...vram, value: 99.2 })).toBe('critical');
    expect(worstLevel([])).toBe('ok');
    expect(worstLevel([vram])).toBe('warning');
    expect(worstLevel([vram, temp])).toBe('critical');
  });
});

describe('gauge', () => {
  it('hides without a sample, shows GPUs when NVML has some, CPU and RAM otherwise', () => {
    expect(gaugeMode(null)).toBe('hidden');
    expect(gaugeMode(monitorSample())).toBe('gpu');
    expect(gaugeMode(noGpuSample())).toBe('system');
    expect(gaugeMode(monitorSample({ gpus: [] }))).toBe('system');
    expect(gaugeItems(null, 'en')).toEqual([]);
  });

  it('lists each GPU with VRAM, temperature and its own warning level', () => {
    const sample = monitorSample({
      gpus: [gpu(1, { temperature_c: 91 }), gpu(0)],
      warnings: [{ kind: 'temperature', gpu_index: 1, value: 91, threshold: 85 }],
    });
    expect(gaugeItems(sample, 'en')).toEqual([
      {
        kind: 'gpu',
        id: 'gpu-0',
        index: 0,
        name: 'NVIDIA GeForce RTX 4090',
        fraction: 6.1 / 24,
        usage: '6.1/24.0 GB',
        temperature: '63°C',
        level: 'ok',
      },
      expect.objectContaining({ id: 'gpu-1', temperature: '91°C', level: 'critical' }),
    ]);
  });

  it('falls back to CPU and RAM', () => {
    const items = gaugeItems(noGpuSample(), 'en');
    expect(items.map((i) => i.id)).toEqual(['cpu', 'ram']);
    expect(items[0]).toMatchObject({ usage: '23%', fraction: 0.23 });
    expect(items[1]).toMatchObject({ usage: '9.8/31.2 GB' });
  });

  it('copes with unknown VRAM', () => {
    const [item] = gaugeItems(
      monitorSample({ gpus: [gpu(0, { vram_used_bytes: null, vram_total_bytes: null, temperature_c: null })] }),
      'en',
    );
    expect(item).toMatchObject({ fraction: null, usage: DASH, temperature: DASH });
  });
});

describe('placementText', () => {
  it('describes where each persona goes', () => {
    expect(placementText(en, placement('office'))).toBe(
      'Office assistant → GPU 0, layers: auto (not loaded yet)',
    );
    expect(placementText(en, placement('character', { main_gpu: 1, n_gpu_layers: 20, loaded: true }))).toBe(
      'Character → GPU 1, layers: 20 (loaded)',
    );
    expect(
      placementText(en, placement('office', { loaded: true, layers_on_gpu: 33, layers_total: 33 })),
    ).toBe('Office assistant → GPU 0, layers: auto (loaded, 33 of 33 layers on the GPU)');
    expect(placementText(en, placement('office', { loaded: true, layers_on_gpu: 12 }))).toBe(
      'Office assistant → GPU 0, layers: auto (loaded, 12 layers on the GPU)',
    );
    expect(placementText(ko, placement('office'))).toBe(
      '사무 비서 → GPU 0, 레이어: 자동 (아직 로드되지 않음)',
    );
  });
});
