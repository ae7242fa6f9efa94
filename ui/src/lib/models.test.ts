import { describe, expect, it } from 'vitest';
import {
  applyDownloadEvent,
  formatBytes,
  formatDuration,
  parseCatalog,
  percent,
  recommendedToInstall,
  type Catalog,
  type CatalogEntry,
} from './models';

function entry(id: string, over: Partial<CatalogEntry> = {}): CatalogEntry {
  return {
    id,
    role: 'chat',
    sets: ['default'],
    recommended: true,
    description: '',
    file: `${id}.gguf`,
    size_bytes: 1000,
    status: { status: 'missing' },
    fit: { fit: 'cpu', ram_available_bytes: 1 << 30 },
    used_for: [],
    download: null,
    ...over,
  };
}

function catalog(models: CatalogEntry[]): Catalog {
  return { models_dir: '/m', mirror: null, gpus: [], ram_available_bytes: 0, models };
}

describe('the model catalog', () => {
  it('refuses a reply of the wrong shape, naming what is wrong', () => {
    expect(() => parseCatalog({ models_dir: '/m', models: [{ id: 'x' }] })).toThrow(/models\[0\]/);
    expect(parseCatalog(catalog([entry('a')])).models).toHaveLength(1);
  });

  it('follows a download from progress to installed, and a cancel back to missing', () => {
    let c = catalog([entry('a'), entry('b')]);
    c = applyDownloadEvent(c, {
      id: 'a',
      state: 'running',
      done_bytes: 10,
      total_bytes: 1000,
      bytes_per_second: null,
      seconds_left: null,
      source: 'mirror',
      step: null,
    });
    expect(c.models[0]?.download?.state).toBe('running');
    expect(c.models[1]?.download).toBeNull();
    c = applyDownloadEvent(c, { id: 'a', state: 'done' });
    expect(c.models[0]?.status.status).toBe('installed');
    c = applyDownloadEvent(c, { id: 'b', state: 'paused', done_bytes: 5, total_bytes: 1000 });
    c = applyDownloadEvent(c, { id: 'b', state: 'cancelled' });
    expect(c.models[1]?.download).toBeNull();
    expect(c.models[1]?.status.status).toBe('missing');
  });

  it('installs the recommended models that are neither installed nor on their way', () => {
    const c = catalog([
      entry('installed', { status: { status: 'installed' } }),
      entry('running', { download: { state: 'queued' } }),
      entry('paused', { download: { state: 'paused', done_bytes: 1, total_bytes: 2 } }),
      entry('missing'),
      entry('optional', { recommended: false }),
    ]);
    expect(recommendedToInstall(c)).toEqual(['paused', 'missing']);
  });

  it('shows sizes, times and percentages as people read them', () => {
    expect(formatBytes(98_362_432, 'en')).toBe('98.4 MB');
    expect(formatBytes(1_117_320_768, 'en')).toBe('1.12 GB');
    expect(formatBytes(512, 'en')).toBe('512 B');
    expect(formatDuration(7)).toBe('0:07');
    expect(formatDuration(245)).toBe('4:05');
    expect(formatDuration(3909)).toBe('1:05:09');
    expect(percent(50, 200)).toBe(25);
    expect(percent(1, 0)).toBe(0);
  });
});
