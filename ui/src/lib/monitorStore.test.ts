import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { history, monitorSample, monitorSnapshot } from '../test/fixtures';
import type { MonitorSample } from './types';

const api = vi.hoisted(() => ({
  isTauri: vi.fn(() => true),
  getMonitorSnapshot: vi.fn(),
  setMonitorVisible: vi.fn(),
  listenMonitorSamples: vi.fn(),
}));
vi.mock('./api', async (importOriginal) => ({ ...(await importOriginal<object>()), ...api }));

import { MonitorStore } from './monitorStore.svelte';

/** A fake document whose visibility the test controls. */
function fakeDocument() {
  const target = new EventTarget();
  const doc = Object.assign(target, { hidden: false });
  return {
    doc: doc as unknown as Document,
    setHidden(hidden: boolean) {
      doc.hidden = hidden;
      target.dispatchEvent(new Event('visibilitychange'));
    },
  };
}

let emit: (sample: MonitorSample) => void = () => {};
const unlisten = vi.fn();
const flush = () => new Promise((resolve) => setTimeout(resolve, 0));

beforeEach(() => {
  api.isTauri.mockReturnValue(true);
  api.setMonitorVisible.mockResolvedValue(undefined);
  api.listenMonitorSamples.mockImplementation((onSample: (s: MonitorSample) => void) => {
    emit = onSample;
    return Promise.resolve(unlisten);
  });
});

afterEach(() => {
  vi.clearAllMocks();
  emit = () => {};
});

describe('MonitorStore', () => {
  it('does nothing outside Tauri', () => {
    api.isTauri.mockReturnValue(false);
    const store = new MonitorStore();
    const { doc, setHidden } = fakeDocument();
    const stop = store.start(doc);
    setHidden(true);
    stop();
    expect(api.getMonitorSnapshot).not.toHaveBeenCalled();
    expect(api.listenMonitorSamples).not.toHaveBeenCalled();
    expect(api.setMonitorVisible).not.toHaveBeenCalled();
    expect(store.latest).toBeNull();
  });

  it('fills from the snapshot, then appends events, keeping the newest 300', async () => {
    const snapshot = monitorSnapshot({ samples: history(299), interval_ms: 500 });
    api.getMonitorSnapshot.mockResolvedValueOnce(snapshot);
    const store = new MonitorStore();
    const stop = store.start(fakeDocument().doc);
    await flush();
    expect(api.listenMonitorSamples).toHaveBeenCalledTimes(1);
    expect(store.samples).toHaveLength(299);
    expect(store.placements).toEqual(snapshot.placements);
    expect(store.intervalMs).toBe(500);

    const last = snapshot.samples.at(-1)!.timestamp_ms;
    const next = (n: number) => monitorSample({ timestamp_ms: last + n * 1000 });
    emit(next(1));
    expect(store.samples).toHaveLength(300);
    expect(store.latest).toEqual(next(1));
    emit(next(2));
    expect(store.samples).toHaveLength(300);
    expect(store.samples[0]).toBe(snapshot.samples[1]);
    expect(store.latest).toEqual(next(2));
    stop();
    expect(unlisten).toHaveBeenCalledTimes(1);
    emit(next(3));
    expect(store.latest).toEqual(next(2));
  });

  it('merges events that arrive before the snapshot answers', async () => {
    const samples = history(5);
    let answer: (value: unknown) => void = () => {};
    api.getMonitorSnapshot.mockReturnValueOnce(new Promise((resolve) => (answer = resolve)));
    const store = new MonitorStore();
    const stop = store.start(fakeDocument().doc);
    await flush();
    const newer = monitorSample({ timestamp_ms: samples.at(-1)!.timestamp_ms + 1000 });
    emit(samples.at(-1)!);
    emit(newer);
    answer(monitorSnapshot({ samples }));
    await flush();
    expect(store.samples.map((s) => s.timestamp_ms)).toEqual(
      [...samples, newer].map((s) => s.timestamp_ms),
    );
    stop();
  });

  it('pauses the core while hidden and refills on return', async () => {
    api.getMonitorSnapshot.mockResolvedValue(monitorSnapshot());
    const store = new MonitorStore();
    const { doc, setHidden } = fakeDocument();
    const stop = store.start(doc);
    await flush();
    expect(api.getMonitorSnapshot).toHaveBeenCalledTimes(1);
    expect(api.setMonitorVisible).not.toHaveBeenCalled();

    setHidden(true);
    expect(api.setMonitorVisible).toHaveBeenLastCalledWith(false);
    expect(api.getMonitorSnapshot).toHaveBeenCalledTimes(1);

    const refill = monitorSnapshot({ samples: history(10, () => ({}), 1_700_000_100_000) });
    api.getMonitorSnapshot.mockResolvedValueOnce(refill);
    setHidden(false);
    expect(api.setMonitorVisible).toHaveBeenLastCalledWith(true);
    expect(api.getMonitorSnapshot).toHaveBeenCalledTimes(2);
    await flush();
    expect(store.latest?.timestamp_ms).toBe(1_700_000_100_000);

    stop();
    setHidden(true);
    expect(api.setMonitorVisible).toHaveBeenCalledTimes(2);
  });

  it('tells the core at once when it starts hidden', async () => {
    api.getMonitorSnapshot.mockResolvedValue(monitorSnapshot());
    const { doc } = fakeDocument();
    (doc as { hidden: boolean }).hidden = true;
    const stop = new MonitorStore().start(doc);
    await flush();
    expect(api.setMonitorVisible).toHaveBeenCalledWith(false);
    stop();
  });

  it('keeps failures as an error instead of throwing', async () => {
    api.getMonitorSnapshot.mockRejectedValueOnce({ code: 'monitor.poisoned', message: 'lock' });
    api.listenMonitorSamples.mockRejectedValueOnce({ code: 'ipc', message: 'denied' });
    const store = new MonitorStore();
    const stop = store.start(fakeDocument().doc);
    await flush();
    expect(store.error?.code).toMatch(/^(monitor\.poisoned|ipc)$/);
    expect(store.samples).toEqual([]);

    api.getMonitorSnapshot.mockResolvedValueOnce(monitorSnapshot());
    await store.refresh();
    expect(store.error).toBeNull();
    expect(store.samples).toHaveLength(3);
    stop();
  });

  it('unsubscribes even when stopped before the subscription resolves', async () => {
    let resolveListen: (fn: () => void) => void = () => {};
    api.listenMonitorSamples.mockReturnValueOnce(new Promise((resolve) => (resolveListen = resolve)));
    api.getMonitorSnapshot.mockResolvedValue(monitorSnapshot());
    const stop = new MonitorStore().start(fakeDocument().doc);
    stop();
    resolveListen(unlisten);
    await flush();
    expect(unlisten).toHaveBeenCalledTimes(1);
  });
});
