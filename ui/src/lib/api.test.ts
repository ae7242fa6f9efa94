import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { gpu, monitorSample, monitorSnapshot, noGpuSample, sampleStatus } from '../test/fixtures';

const invoke = vi.hoisted(() => vi.fn());
const listen = vi.hoisted(() => vi.fn());
vi.mock('@tauri-apps/api/core', () => ({ invoke }));
vi.mock('@tauri-apps/api/event', () => ({ listen }));

import {
  ApiError,
  call,
  callRaw,
  getMonitorSnapshot,
  listenMonitorSamples,
  loadStatus,
  MONITOR,
  parseAppStatus,
  parseMonitorSample,
  parseMonitorSnapshot,
  setMonitorVisible,
  toCommandError,
  UI_ERROR,
} from './api';

function enterTauri() {
  Object.defineProperty(window, '__TAURI_INTERNALS__', { value: {}, configurable: true });
}

afterEach(() => {
  Reflect.deleteProperty(window, '__TAURI_INTERNALS__');
  invoke.mockReset();
  listen.mockReset();
});

describe('toCommandError', () => {
  it('keeps { code, message } from the core', () => {
    expect(toCommandError({ code: 'store.open', message: 'locked', extra: 1 })).toEqual({
      code: 'store.open',
      message: 'locked',
    });
  });

  it('wraps anything else', () => {
    expect(toCommandError('plain')).toEqual({ code: UI_ERROR.unknown, message: 'plain' });
    expect(toCommandError(new Error('oops'))).toEqual({ code: UI_ERROR.unknown, message: 'oops' });
    expect(toCommandError(42)).toEqual({ code: UI_ERROR.unknown, message: '42' });
  });
});

describe('call', () => {
  it('turns a rejection into an ApiError with the core code', async () => {
    invoke.mockRejectedValueOnce({ code: 'engine.busy', message: 'queue full' });
    const error: unknown = await call('anything').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ code: 'engine.busy', message: 'queue full' });
  });
});

describe('callRaw', () => {
  it('sends the bytes as the body with the headers, and maps a rejection to an ApiError', async () => {
    invoke.mockResolvedValueOnce('ok');
    const bytes = new Uint8Array([1, 2, 3]);
    expect(await callRaw('image_attach', bytes, { 'x-file-name': 'a.png' })).toBe('ok');
    expect(invoke).toHaveBeenCalledWith('image_attach', bytes, { headers: { 'x-file-name': 'a.png' } });
    invoke.mockRejectedValueOnce({ code: 'image_too_large', message: '9000×9000' });
    const error: unknown = await callRaw('image_attach', bytes, {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ code: 'image_too_large' });
  });
});

describe('parseAppStatus', () => {
  it('accepts a well-formed reply', () => {
    const status = sampleStatus();
    expect(parseAppStatus(status)).toBe(status);
  });

  it('accepts a failed store', () => {
    const status = sampleStatus({ store: { ok: false, error: { code: 'x', message: 'y' } } });
    expect(parseAppStatus(status)).toBe(status);
  });

  it('rejects a reply of the wrong shape with a clear message', () => {
    const bad = { ...sampleStatus(), config_source: 'somewhere' };
    expect(() => parseAppStatus(bad)).toThrow(/config_source/);
    expect(() => parseAppStatus(null)).toThrow(ApiError);
    expect(() => parseAppStatus({ ...sampleStatus(), models: [{ role: 'office' }] })).toThrow(
      /models\[0\]/,
    );
  });
});

describe('loadStatus', () => {
  it('reports no-tauri outside the app without calling anything', async () => {
    expect(await loadStatus()).toEqual({ kind: 'no-tauri' });
    expect(invoke).not.toHaveBeenCalled();
  });

  describe('inside Tauri', () => {
    beforeEach(enterTauri);

    it('calls app_status', async () => {
      const status = sampleStatus();
      invoke.mockResolvedValueOnce(status);
      expect(await loadStatus()).toEqual({ kind: 'ok', status });
      expect(invoke).toHaveBeenCalledWith('app_status', undefined);
    });

    it('never rejects', async () => {
      invoke.mockRejectedValueOnce({ code: 'config.read', message: 'permission denied' });
      expect(await loadStatus()).toEqual({
        kind: 'error',
        error: { code: 'config.read', message: 'permission denied' },
      });
    });
  });
});

describe('monitor', () => {
  it('parses samples and fills missing optional GPU fields with null', () => {
    const sample = monitorSample({ gpus: [gpu(0), gpu(1)] });
    expect(parseMonitorSample(sample)).toEqual(sample);
    expect(parseMonitorSample(noGpuSample())).toEqual(noGpuSample());
    const { fan_percent: _fan, uuid: _uuid, ...partial } = gpu(0);
    const parsed = parseMonitorSample({ ...monitorSample(), gpus: [partial], reason: undefined });
    expect(parsed.gpus[0]).toMatchObject({ fan_percent: null, uuid: null, temperature_c: 63 });
    expect(parsed.reason).toBeNull();
  });

  it('rejects malformed samples with the field at fault', () => {
    expect(() => parseMonitorSample(null)).toThrow(ApiError);
    expect(() => parseMonitorSample({ ...monitorSample(), timestamp_ms: '1' })).toThrow(/timestamp_ms/);
    expect(() => parseMonitorSample({ ...monitorSample(), system: {} })).toThrow(/system\.cpu_percent/);
    expect(() => parseMonitorSample({ ...monitorSample(), gpus: [{ ...gpu(0), power_watts: '5' }] })).toThrow(
      /gpus\[0\]\.power_watts/,
    );
    expect(() =>
      parseMonitorSample({
        ...monitorSample(),
        warnings: [{ kind: 'fan', gpu_index: 0, value: 1, threshold: 1 }],
      }),
    ).toThrow(/warnings\[0\]/);
  });

  it('parses snapshots, including placements', () => {
    const snapshot = monitorSnapshot();
    expect(parseMonitorSnapshot(snapshot)).toEqual(snapshot);
    expect(parseMonitorSnapshot({ samples: [] })).toEqual({ samples: [], placements: [], interval_ms: 1000 });
    expect(() => parseMonitorSnapshot({ ...snapshot, placements: [{ persona: 'speech' }] })).toThrow(
      /placements\[0\]/,
    );
    expect(() => parseMonitorSnapshot({ ...snapshot, samples: [{}] })).toThrow(/samples\[0\]/);
  });

  it('calls monitor_snapshot and monitor_set_visible', async () => {
    const snapshot = monitorSnapshot();
    invoke.mockResolvedValueOnce(snapshot);
    expect(await getMonitorSnapshot()).toEqual(snapshot);
    expect(invoke).toHaveBeenCalledWith('monitor_snapshot', undefined);

    invoke.mockResolvedValueOnce(null);
    await setMonitorVisible(false);
    expect(invoke).toHaveBeenLastCalledWith('monitor_set_visible', { visible: false });

    invoke.mockRejectedValueOnce({ code: 'monitor.closed', message: 'gone' });
    await expect(setMonitorVisible(true)).rejects.toMatchObject({ code: 'monitor.closed' });
  });

  it('listens to monitor://sample and drops malformed payloads', async () => {
    const unlisten = vi.fn();
    listen.mockResolvedValueOnce(unlisten);
    const onSample = vi.fn();
    const onError = vi.fn();
    expect(await listenMonitorSamples(onSample, onError)).toBe(unlisten);
    expect(listen.mock.calls[0]?.[0]).toBe(MONITOR.sampleEvent);
    expect(MONITOR.sampleEvent).toBe('monitor://sample');
    const handler = listen.mock.calls[0]?.[1] as (e: { payload: unknown }) => void;
    handler({ payload: monitorSample() });
    handler({ payload: { nonsense: true } });
    expect(onSample).toHaveBeenCalledExactlyOnceWith(monitorSample());
    expect(onError).toHaveBeenCalledWith(expect.objectContaining({ code: UI_ERROR.badResponse }));

    listen.mockRejectedValueOnce(new Error('not allowed'));
    await expect(listenMonitorSamples(onSample)).rejects.toMatchObject({
      code: UI_ERROR.unknown,
      message: 'not allowed',
    });
  });
});
