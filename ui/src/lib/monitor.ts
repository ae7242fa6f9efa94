// Pure helpers of the hardware monitor: history buffer, series, chart geometry, formatting,
// warning texts, gauge and placement lines. No Svelte, no Tauri: everything here is unit-tested.
import type { Translator } from './i18n';
import type { Lang } from './status';
import type { GpuSample, ModelPlacement, MonitorSample, MonitorWarning } from './types';

/** Samples kept in the history: 5 minutes at one sample per second. */
export const HISTORY_SIZE = 300;
/** Sampling interval assumed until the core says otherwise. */
export const DEFAULT_INTERVAL_MS = 1000;
/** Shown for a value that is unknown or not supported by the GPU. */
export const DASH = '—';

// --- History (ring buffer of the newest samples) ---

/** Appends `item` and keeps only the newest `max` items. Returns a new array. */
export function appendBounded<T>(list: readonly T[], item: T, max = HISTORY_SIZE): T[] {
  const start = Math.max(0, list.length + 1 - max);
  const next = list.slice(start);
  next.push(item);
  return next;
}

/**
 * Merges samples by timestamp (oldest first, one per timestamp, `incoming` wins on a tie) and
 * keeps the newest `max`. Used for snapshots that may overlap samples already received as events.
 */
export function mergeSamples(
  current: readonly MonitorSample[],
  incoming: readonly MonitorSample[],
  max = HISTORY_SIZE,
): MonitorSample[] {
  const byTime = new Map<number, MonitorSample>();
  for (const s of current) byTime.set(s.timestamp_ms, s);
  for (const s of incoming) byTime.set(s.timestamp_ms, s);
  const merged = [...byTime.values()].sort((a, b) => a.timestamp_ms - b.timestamp_ms);
  return merged.slice(Math.max(0, merged.length - max));
}

/** Adds one sample: a cheap append when it is the newest, a merge otherwise. */
export function addSample(
  current: readonly MonitorSample[],
  sample: MonitorSample,
  max = HISTORY_SIZE,
): MonitorSample[] {
  const last = current.at(-1);
  return last === undefined || sample.timestamp_ms > last.timestamp_ms
    ? appendBounded(current, sample, max)
    : mergeSamples(current, [sample], max);
}

// --- Series ---

/** One value per sample; `null` where the value is missing or not a finite number. */
export type Series = (number | null)[];

function finiteOrNull(value: number | null | undefined): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

export function seriesOf<T>(items: readonly T[], pick: (item: T) => number | null | undefined): Series {
  return items.map((item) => finiteOrNull(pick(item)));
}

export function gpuOf(sample: MonitorSample | null | undefined, index: number): GpuSample | undefined {
  return sample?.gpus.find((g) => g.index === index);
}

export type GpuMetric = {
  [K in keyof GpuSample]: GpuSample[K] extends number | null ? K : never;
}[keyof GpuSample];

/** A metric of the GPU with this index over the samples; null where the GPU or value is absent. */
export function gpuSeries(samples: readonly MonitorSample[], index: number, metric: GpuMetric): Series {
  return seriesOf(samples, (s) => gpuOf(s, index)?.[metric]);
}

export function cpuSeries(samples: readonly MonitorSample[]): Series {
  return seriesOf(samples, (s) => s.system.cpu_percent);
}

export function ramSeries(samples: readonly MonitorSample[]): Series {
  return seriesOf(samples, (s) => s.system.ram_used_bytes);
}

export function timesOf(samples: readonly MonitorSample[]): number[] {
  return samples.map((s) => s.timestamp_ms);
}

/** The GPU indexes seen in the newest sample, in order. */
export function gpuIndexes(sample: MonitorSample | null | undefined): number[] {
  return (sample?.gpus ?? []).map((g) => g.index).sort((a, b) => a - b);
}

// --- Chart geometry ---

export interface Range {
  min: number;
  max: number;
}

export interface TimeWindow {
  start: number;
  end: number;
}

/** Maps `value` from `domain` onto [from, to] (clamped); a zero-width domain maps to the middle. */
export function scale(value: number, domain: Range, from: number, to: number): number {
  const span = domain.max - domain.min;
  if (!(span > 0)) return (from + to) / 2;
  const ratio = Math.min(1, Math.max(0, (value - domain.min) / span));
  return from + ratio * (to - from);
}

/** A round step (1, 2 or 5 × 10^k) close to `span / 4`. */
function niceStep(span: number): number {
  const raw = span / 4;
  const power = 10 ** Math.floor(Math.log10(raw));
  const unit = raw / power;
  return (unit <= 1 ? 1 : unit <= 2 ? 2 : unit <= 5 ? 5 : 10) * power;
}

/**
 * A y range that fits the finite values, rounded outward to a nice step. A flat series gets a
 * range around its value; an empty one [0, 1]. `includeZero` starts the range at 0 for
 * non-negative data.
 */
export function autoRange(values: Series, includeZero = false): Range {
  const finite = values.filter((v): v is number => v !== null && Number.isFinite(v));
  if (finite.length === 0) return { min: 0, max: 1 };
  let lo = Math.min(...finite);
  let hi = Math.max(...finite);
  if (includeZero) {
    lo = Math.min(lo, 0);
    hi = Math.max(hi, 0);
  }
  if (hi === lo) {
    // Flat: keep the line in the middle, with a round margin either side.
    if (hi === 0) return { min: 0, max: 1 };
    const pad = niceStep(Math.abs(hi) * 0.4);
    return { min: lo - pad, max: hi + pad };
  }
  const step = niceStep(hi - lo);
  return { min: Math.floor(lo / step) * step, max: Math.ceil(hi / step) * step };
}

/** The fixed bounds where given, the automatic ones elsewhere. */
export function resolveRange(values: Series, fixed: Partial<Range> = {}, includeZero = false): Range {
  const auto = autoRange(values, includeZero);
  const min = finiteOrNull(fixed.min) ?? auto.min;
  let max = finiteOrNull(fixed.max) ?? auto.max;
  if (max <= min) max = min + 1;
  return { min, max };
}

export interface PlotOptions {
  width: number;
  height: number;
  window: TimeWindow;
  range: Range;
  /** Consecutive points further apart than this are not joined (sampling was paused). */
  maxGapMs?: number;
}

export type Point = [x: number, y: number];

/** Splits a series into drawable runs of points; nulls, gaps in time and out-of-window points break runs. */
export function chartSegments(times: readonly number[], values: Series, opts: PlotOptions): Point[][] {
  const segments: Point[][] = [];
  const { width, height, window, range, maxGapMs = Number.POSITIVE_INFINITY } = opts;
  const xDomain: Range = { min: window.start, max: window.end };
  let current: Point[] = [];
  let lastTime: number | null = null;
  const flush = () => {
    if (current.length > 0) segments.push(current);
    current = [];
  };
  for (let i = 0; i < values.length; i++) {
    const value = values[i] ?? null;
    const time = times[i];
    if (value === null || !Number.isFinite(value) || time === undefined || time < window.start) {
      flush();
      lastTime = null;
      continue;
    }
    if (lastTime !== null && time - lastTime > maxGapMs) flush();
    current.push([scale(time, xDomain, 0, width), scale(value, range, height, 0)]);
    lastTime = time;
  }
  flush();
  return segments;
}

function num(n: number): string {
  return String(Math.round(n * 100) / 100);
}

/** SVG path of the runs; a lone point becomes a zero-length stroke (a dot with round caps). */
export function linePath(segments: readonly Point[][]): string {
  return segments
    .map((seg) => {
      const [first, ...rest] = seg;
      if (!first) return '';
      const head = `M${num(first[0])} ${num(first[1])}`;
      return rest.length === 0 ? `${head}h0` : head + rest.map(([x, y]) => `L${num(x)} ${num(y)}`).join('');
    })
    .join('');
}

/** SVG path filling the area between each run of two or more points and `baseline`. */
export function areaPath(segments: readonly Point[][], baseline: number): string {
  return segments
    .filter((seg) => seg.length > 1)
    .map((seg) => {
      const first = seg[0] as Point;
      const last = seg[seg.length - 1] as Point;
      const line = seg.map(([x, y]) => `L${num(x)} ${num(y)}`).join('');
      return `M${num(first[0])} ${num(baseline)}${line}L${num(last[0])} ${num(baseline)}Z`;
    })
    .join('');
}

/** The line path of one series. */
export function buildPath(times: readonly number[], values: Series, opts: PlotOptions): string {
  return linePath(chartSegments(times, values, opts));
}

/** The time window of the charts: the history length, ending at the newest sample. */
export function chartWindow(samples: readonly MonitorSample[], intervalMs: number): TimeWindow {
  const end = samples.at(-1)?.timestamp_ms ?? 0;
  return { start: end - HISTORY_SIZE * intervalMs, end };
}

/** Length of the history in whole minutes (5 at one sample per second). */
export function historyMinutes(intervalMs: number): number {
  return Math.max(1, Math.round((HISTORY_SIZE * intervalMs) / 60_000));
}

// --- Formatting ---

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;

const formats = new Map<string, Intl.NumberFormat>();

/** A number in the UI language with exactly `digits` decimals, or `DASH` when unknown. */
export function formatNumber(value: number | null | undefined, lang: Lang, digits = 0): string {
  const v = finiteOrNull(value);
  if (v === null) return DASH;
  const key = `${lang}:${digits}`;
  let format = formats.get(key);
  if (!format) {
    format = new Intl.NumberFormat(lang === 'ko' ? 'ko-KR' : 'en-US', {
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    });
    formats.set(key, format);
  }
  return format.format(v);
}

/** Binary gigabytes (GiB, written "GB" like the drivers' tools) with one decimal: "6.1". */
export function formatGigabytes(bytes: number | null | undefined, lang: Lang): string {
  const v = finiteOrNull(bytes);
  return v === null ? DASH : formatNumber(v / GIB, lang, 1);
}

/** "812 MB" below 1 GB, "6.1 GB" above (binary units). */
export function formatBytes(bytes: number | null | undefined, lang: Lang): string {
  const v = finiteOrNull(bytes);
  if (v === null) return DASH;
  return Math.abs(v) < GIB
    ? `${formatNumber(v / MIB, lang)} MB`
    : `${formatGigabytes(v, lang)} GB`;
}

/** "6.1 / 24.0 GB" ("6.1/24.0 GB" when compact); just the used size when the total is unknown. */
export function formatUsedTotal(
  used: number | null | undefined,
  total: number | null | undefined,
  lang: Lang,
  compact = false,
): string {
  if (finiteOrNull(used) === null) return DASH;
  if (finiteOrNull(total) === null) return `${formatGigabytes(used, lang)} GB`;
  const sep = compact ? '/' : ' / ';
  return `${formatGigabytes(used, lang)}${sep}${formatGigabytes(total, lang)} GB`;
}

export function formatPercent(value: number | null | undefined, lang: Lang): string {
  const v = finiteOrNull(value);
  return v === null ? DASH : `${formatNumber(v, lang)}%`;
}

export function formatWatts(value: number | null | undefined, lang: Lang): string {
  const v = finiteOrNull(value);
  return v === null ? DASH : `${formatNumber(v, lang)} W`;
}

/** "215 / 350 W", or "215 W" without a known limit. */
export function formatPower(
  watts: number | null | undefined,
  limit: number | null | undefined,
  lang: Lang,
): string {
  if (finiteOrNull(watts) === null) return DASH;
  if (finiteOrNull(limit) === null) return formatWatts(watts, lang);
  return `${formatNumber(watts, lang)} / ${formatWatts(limit, lang)}`;
}

/** "63 °C" ("63°C" when compact). */
export function formatCelsius(value: number | null | undefined, lang: Lang, compact = false): string {
  const v = finiteOrNull(value);
  return v === null ? DASH : `${formatNumber(v, lang)}${compact ? '' : ' '}°C`;
}

export function formatMhz(value: number | null | undefined, lang: Lang): string {
  const v = finiteOrNull(value);
  return v === null ? DASH : `${formatNumber(v, lang)} MHz`;
}

/** used / total in [0, 1], or null when either is unknown or the total is 0. */
export function fraction(used: number | null | undefined, total: number | null | undefined): number | null {
  const u = finiteOrNull(used);
  const t = finiteOrNull(total);
  if (u === null || t === null || t <= 0) return null;
  return Math.min(1, Math.max(0, u / t));
}

export function vramFraction(gpu: GpuSample): number | null {
  return fraction(gpu.vram_used_bytes, gpu.vram_total_bytes);
}

// --- Warnings ---

export type Level = 'ok' | 'warning' | 'critical';

/** Amber for a crossed threshold; red 5 °C past the temperature threshold or at 99 % VRAM. */
export function warningLevel(warning: MonitorWarning): Exclude<Level, 'ok'> {
  if (warning.kind === 'temperature') {
    return warning.value >= warning.threshold + 5 ? 'critical' : 'warning';
  }
  return warning.value >= Math.max(99, warning.threshold) ? 'critical' : 'warning';
}

export function worstLevel(warnings: readonly MonitorWarning[]): Level {
  let level: Level = 'ok';
  for (const w of warnings) {
    const l = warningLevel(w);
    if (l === 'critical') return l;
    level = l;
  }
  return level;
}

/** "GPU 0 is at 91 °C (warning above 85 °C)", "GPU 0 VRAM is 97% full (warning above 95%)". */
export function warningMessage(t: Translator, warning: MonitorWarning): string {
  const vars = {
    gpu: warning.gpu_index,
    value: formatNumber(warning.value, t.lang, Number.isInteger(warning.value) ? 0 : 1),
    threshold: formatNumber(warning.threshold, t.lang, Number.isInteger(warning.threshold) ? 0 : 1),
  };
  return warning.kind === 'temperature'
    ? t('monitor.warning.temperature', vars)
    : t('monitor.warning.vram', vars);
}

// --- Top-bar gauge ---

export type GaugeMode = 'hidden' | 'gpu' | 'system';

/** GPUs when NVML answered with at least one; CPU and RAM otherwise; nothing before a sample. */
export function gaugeMode(sample: MonitorSample | null | undefined): GaugeMode {
  if (!sample) return 'hidden';
  return sample.available && sample.gpus.length > 0 ? 'gpu' : 'system';
}

export type GaugeItem =
  | {
      kind: 'gpu';
      id: `gpu-${number}`;
      index: number;
      name: string;
      /** VRAM used / total in [0, 1]. */
      fraction: number | null;
      /** "6.1/24.0 GB" */
      usage: string;
      /** "63°C" */
      temperature: string;
      level: Level;
    }
  | { kind: 'cpu'; id: 'cpu'; fraction: number | null; usage: string; level: Level }
  | { kind: 'ram'; id: 'ram'; fraction: number | null; usage: string; level: Level };

export function gaugeItems(sample: MonitorSample | null | undefined, lang: Lang): GaugeItem[] {
  const mode = gaugeMode(sample);
  if (!sample || mode === 'hidden') return [];
  if (mode === 'gpu') {
    return [...sample.gpus]
      .sort((a, b) => a.index - b.index)
      .map((gpu) => ({
        kind: 'gpu',
        id: `gpu-${gpu.index}`,
        index: gpu.index,
        name: gpu.name,
        fraction: vramFraction(gpu),
        usage: formatUsedTotal(gpu.vram_used_bytes, gpu.vram_total_bytes, lang, true),
        temperature: formatCelsius(gpu.temperature_c, lang, true),
        level: worstLevel(sample.warnings.filter((w) => w.gpu_index === gpu.index)),
      }));
  }
  const { system } = sample;
  return [
    {
      kind: 'cpu',
      id: 'cpu',
      fraction: fraction(system.cpu_percent, 100),
      usage: formatPercent(system.cpu_percent, lang),
      level: 'ok',
    },
    {
      kind: 'ram',
      id: 'ram',
      fraction: fraction(system.ram_used_bytes, system.ram_total_bytes),
      usage: formatUsedTotal(system.ram_used_bytes, system.ram_total_bytes, lang, true),
      level: 'ok',
    },
  ];
}

// --- Model placements ---

/** "Office assistant → GPU 0, layers: auto (not loaded yet)". */
export function placementText(t: Translator, p: ModelPlacement): string {
  const layers = p.n_gpu_layers === 'auto' ? t('monitor.placements.auto') : formatNumber(p.n_gpu_layers, t.lang);
  let state: string;
  if (!p.loaded) state = t('monitor.placements.not_loaded');
  else if (p.layers_on_gpu === null) state = t('monitor.placements.loaded');
  else if (p.layers_total === null) state = t('monitor.placements.loaded_on', { on: p.layers_on_gpu });
  else state = t('monitor.placements.loaded_of', { on: p.layers_on_gpu, total: p.layers_total });
  return t('monitor.placements.line', {
    persona: t(`role.${p.persona}`),
    gpu: p.main_gpu,
    layers,
    state,
  });
}
