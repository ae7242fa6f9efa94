import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { makeTranslator } from '../lib/i18n';
import type { Catalog, CatalogEntry, DownloadEvent, ModelsApi } from '../lib/models';
import { toasts } from '../lib/toasts.svelte';
import ModelCatalog from './ModelCatalog.svelte';

const t = makeTranslator('en');

function entry(id: string, over: Partial<CatalogEntry> = {}): CatalogEntry {
  return {
    id,
    role: 'chat',
    sets: ['default'],
    recommended: true,
    description: `${id} model`,
    file: `${id}.gguf`,
    size_bytes: 98_362_432,
    status: { status: 'missing' },
    fit: { fit: 'gpu', device: 'Vulkan0 (RTX 4060)', free_bytes: 8e9 },
    used_for: [],
    download: null,
    ...over,
  };
}

function fakeApi(models: CatalogEntry[]) {
  let emit: (e: DownloadEvent) => void = () => {};
  const catalog: Catalog = { models_dir: '/m', mirror: '/mirror', gpus: [], ram_available_bytes: 16e9, models };
  const api: ModelsApi = {
    catalog: vi.fn(() => Promise.resolve(structuredClone(catalog))),
    download: vi.fn(() => Promise.resolve()),
    pause: vi.fn(() => Promise.resolve()),
    cancel: vi.fn(() => Promise.resolve()),
    use: vi.fn(() => Promise.resolve()),
    pickMirror: vi.fn(() => Promise.resolve(null)),
    onDownload: vi.fn((handler: (e: DownloadEvent) => void) => {
      emit = handler;
      return Promise.resolve(() => {});
    }),
  };
  return { api, emit: (e: DownloadEvent) => emit(e), catalog };
}

beforeEach(() => {
  toasts.items = [];
});

describe('ModelCatalog', () => {
  it('lists each model with its size, what it is for and whether it fits, and installs the recommended set in one click', async () => {
    const { api } = fakeApi([
      entry('smol', { recommended: false, fit: { fit: 'cpu', ram_available_bytes: 1e9 } }),
      entry('qwen', {
        size_bytes: 1_117_320_768,
        summary: { en: 'The recommended chat model.', ko: '권장 대화 모델.' },
      }),
      entry('whisper', { role: 'speech', size_bytes: 147_951_465 }),
    ]);
    render(ModelCatalog, { t, api });
    await waitFor(() => expect(screen.getByTestId('catalog-qwen')).toBeTruthy());
    expect(screen.getByTestId('catalog-qwen').textContent).toContain('1.12 GB');
    expect(screen.getByTestId('catalog-qwen').textContent).toContain('The recommended chat model.');
    // Without a summary, the manifest's description.
    expect(screen.getByTestId('catalog-smol').textContent).toContain('smol model');
    expect(screen.getByTestId('catalog-fit-qwen').textContent).toBe('Runs on the GPU (Vulkan0 (RTX 4060))');
    expect(screen.getByTestId('catalog-fit-smol').textContent).toBe('Runs on the CPU');
    expect(screen.getByTestId('catalog-whisper').textContent).toContain('Speech recognition');
    expect(screen.getByTestId('catalog-mirror').textContent).toContain('/mirror');
    const all = screen.getByTestId('catalog-install-recommended');
    expect(all.textContent).toContain('Install recommended (2, 1.27 GB)');
    await fireEvent.click(all);
    expect(api.download).toHaveBeenCalledWith(['qwen', 'whisper']);
  });

  it('shows progress with bytes, speed and time left, and pauses, resumes and cancels', async () => {
    const { api, emit } = fakeApi([entry('smol')]);
    render(ModelCatalog, { t, api });
    await waitFor(() => expect(screen.getByTestId('catalog-download-smol')).toBeTruthy());
    await fireEvent.click(screen.getByTestId('catalog-download-smol'));
    expect(api.download).toHaveBeenCalledWith(['smol']);
    emit({
      id: 'smol',
      state: 'running',
      done_bytes: 49_181_216,
      total_bytes: 98_362_432,
      bytes_per_second: 2_000_000,
      seconds_left: 24.6,
      source: 'url https://example.org',
      step: null,
    });
    await waitFor(() => expect(screen.getByTestId('catalog-progress-smol')).toBeTruthy());
    expect(screen.getByTestId('catalog-progress-smol').getAttribute('aria-valuenow')).toBe('50');
    expect(screen.getByTestId('catalog-progress-text-smol').textContent).toContain('49.2 MB of 98.4 MB');
    expect(screen.getByTestId('catalog-progress-text-smol').textContent).toContain('2.00 MB/s, 0:25 left');
    await fireEvent.click(screen.getByTestId('catalog-pause-smol'));
    expect(api.pause).toHaveBeenCalledWith('smol');
    emit({ id: 'smol', state: 'paused', done_bytes: 49_181_216, total_bytes: 98_362_432 });
    await waitFor(() => expect(screen.getByTestId('catalog-progress-text-smol').textContent).toContain('Paused at 49.2 MB'));
    expect(screen.getByTestId('catalog-download-smol').textContent).toContain('Resume');
    await fireEvent.click(screen.getByTestId('catalog-cancel-smol'));
    expect(api.cancel).toHaveBeenCalledWith('smol');
    emit({ id: 'smol', state: 'cancelled' });
    await waitFor(() => expect(screen.getByTestId('catalog-download-smol').textContent).toContain('Download'));
  });

  it('says why a download failed, and a finished one tells the app and offers it to the personas', async () => {
    const onInstalled = vi.fn();
    const { api, emit, catalog } = fakeApi([entry('smol')]);
    render(ModelCatalog, { t, api, onInstalled });
    await waitFor(() => expect(screen.getByTestId('catalog-download-smol')).toBeTruthy());
    emit({ id: 'smol', state: 'failed', kind: 'mismatch', message: 'mirror: sha256 mismatch: got 00…' });
    await waitFor(() => expect(screen.getByTestId('catalog-error-smol')).toBeTruthy());
    expect(screen.getByTestId('catalog-error-smol').textContent).toContain('checksum did not match');
    expect(toasts.items.at(-1)).toMatchObject({ kind: 'error', key: 'catalog.failed.mismatch' });
    expect(screen.getByTestId('catalog-download-smol').textContent).toContain('Try again');
    catalog.models[0] = entry('smol', { status: { status: 'installed' } });
    emit({ id: 'smol', state: 'done' });
    await waitFor(() => expect(onInstalled).toHaveBeenCalled());
    await waitFor(() => expect(screen.getByTestId('catalog-use-smol-office')).toBeTruthy());
    await fireEvent.click(screen.getByTestId('catalog-use-smol-office'));
    expect(api.use).toHaveBeenCalledWith('office', 'smol');
  });
});
