// The Models page's catalog: the shapes of `model_catalog` and of download events, the calls
// that start, pause and cancel downloads, and pure helpers for what the page shows.
import { listen, type UnlistenFn } from '@tauri-apps/api/event';
import { ApiError, call, UI_ERROR } from './api';
import type { Persona } from './engine';
import type { Lang } from './status';

export type ModelRole = 'chat' | 'speech' | 'embedding' | 'runtime';
export type FailureKind = 'unavailable' | 'network' | 'disk_full' | 'mismatch';

export type Fit =
  | { fit: 'gpu'; device: string; free_bytes: number }
  | { fit: 'partly_gpu'; device: string; free_bytes: number }
  | { fit: 'cpu'; ram_available_bytes: number }
  | { fit: 'too_large'; ram_available_bytes: number };

export type DownloadState =
  | { state: 'queued' }
  | {
      state: 'running';
      done_bytes: number;
      total_bytes: number;
      bytes_per_second: number | null;
      seconds_left: number | null;
      source: string | null;
      step: string | null;
    }
  | { state: 'paused'; done_bytes: number; total_bytes: number }
  | { state: 'failed'; kind: FailureKind; message: string }
  | { state: 'cancelled' }
  | { state: 'done' };

export type DownloadEvent = { id: string } & DownloadState;

export interface ModelStatus {
  status: string;
  bytes?: number;
}

export interface CatalogEntry {
  id: string;
  role: ModelRole;
  sets: string[];
  recommended: boolean;
  description: string;
  /** What it is for, by language; the page falls back to `description`. */
  summary?: Record<string, string>;
  file: string;
  size_bytes: number;
  status: ModelStatus;
  fit: Fit;
  used_for: ('office' | 'character' | 'speech' | 'embedding')[];
  download: DownloadState | null;
}

export interface Catalog {
  models_dir: string;
  mirror: string | null;
  gpus: { name: string; description: string; memory_free_bytes: number }[];
  ram_available_bytes: number;
  models: CatalogEntry[];
}

/** The event `models_commands::DOWNLOAD_EVENT` carries. */
export const DOWNLOAD_EVENT = 'models://download';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Checks the parts of `model_catalog` the page relies on. */
export function parseCatalog(value: unknown): Catalog {
  const fail = (what: string): never => {
    throw new ApiError({ code: UI_ERROR.badResponse, message: `model_catalog: ${what}` });
  };
  if (!isRecord(value)) return fail('not an object');
  if (typeof value.models_dir !== 'string') fail('models_dir is not a string');
  if (!Array.isArray(value.models)) return fail('models is not an array');
  for (const [i, m] of (value.models as unknown[]).entries()) {
    if (
      !isRecord(m) ||
      typeof m.id !== 'string' ||
      typeof m.size_bytes !== 'number' ||
      !isRecord(m.status) ||
      !isRecord(m.fit) ||
      typeof m.fit.fit !== 'string'
    ) {
      fail(`models[${i}] is not a catalog entry`);
    }
  }
  return value as unknown as Catalog;
}

export interface ModelsApi {
  catalog(): Promise<Catalog>;
  download(ids: string[]): Promise<void>;
  pause(id: string): Promise<void>;
  cancel(id: string): Promise<void>;
  use(persona: Persona, id: string): Promise<void>;
  pickMirror(): Promise<string | null>;
  onDownload(handler: (event: DownloadEvent) => void): Promise<UnlistenFn>;
}

export const modelsApi: ModelsApi = {
  catalog: async () => parseCatalog(await call<unknown>('model_catalog')),
  download: (ids) => call('models_download', { ids }),
  pause: (id) => call('model_download_pause', { id }),
  cancel: (id) => call('model_download_cancel', { id }),
  use: (persona, id) => call('model_use', { persona, id }),
  pickMirror: () => call<string | null>('models_mirror_pick'),
  onDownload: (handler) => listen<DownloadEvent>(DOWNLOAD_EVENT, (e) => handler(e.payload)),
};

/** The catalog after one download event: the entry's download, and installed once done. */
export function applyDownloadEvent(catalog: Catalog, event: DownloadEvent): Catalog {
  const { id, ...state } = event;
  return {
    ...catalog,
    models: catalog.models.map((m) => {
      if (m.id !== id) return m;
      if (state.state === 'cancelled') {
        return { ...m, download: null, status: { status: 'missing' } };
      }
      const status = state.state === 'done' ? { status: 'installed' } : m.status;
      return { ...m, download: state, status };
    }),
  };
}

export function isInstalled(entry: CatalogEntry): boolean {
  return entry.status.status === 'installed';
}

/** Recommended models that are neither installed nor on their way. */
export function recommendedToInstall(catalog: Catalog): string[] {
  return catalog.models
    .filter((m) => m.recommended && !isInstalled(m))
    .filter((m) => !m.download || !['queued', 'running'].includes(m.download.state))
    .map((m) => m.id);
}

function locale(lang: Lang): string {
  return lang === 'ko' ? 'ko-KR' : 'en-US';
}

/** `98.4 MB`, `1.12 GB`: decimal units, as file managers show sizes. */
export function formatBytes(bytes: number, lang: Lang): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = Math.max(0, bytes);
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  const digits = unit === 0 ? 0 : value >= 100 ? 0 : value >= 10 ? 1 : 2;
  const number = new Intl.NumberFormat(locale(lang), {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  }).format(value);
  return `${number} ${units[unit]}`;
}

/** `12.5 MB/s`. */
export function formatSpeed(bytesPerSecond: number, lang: Lang): string {
  return `${formatBytes(bytesPerSecond, lang)}/s`;
}

/** `1:05:09`, `4:05`, `0:07` (hours only when needed). */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

/** The entry's summary in `lang`, else in English, else its technical description. */
export function summaryOf(entry: CatalogEntry, lang: Lang): string {
  return entry.summary?.[lang] ?? entry.summary?.en ?? entry.description;
}

/** Percent done, 0–100, of a running or paused download. */
export function percent(done: number, total: number): number {
  if (total <= 0) return 0;
  return Math.min(100, Math.max(0, Math.floor((done / total) * 100)));
}
