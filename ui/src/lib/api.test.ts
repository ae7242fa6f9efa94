import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { sampleStatus } from '../test/fixtures';

const invoke = vi.hoisted(() => vi.fn());
vi.mock('@tauri-apps/api/core', () => ({ invoke }));

import { ApiError, call, loadStatus, parseAppStatus, toCommandError, UI_ERROR } from './api';

function enterTauri() {
  Object.defineProperty(window, '__TAURI_INTERNALS__', { value: {}, configurable: true });
}

afterEach(() => {
  Reflect.deleteProperty(window, '__TAURI_INTERNALS__');
  invoke.mockReset();
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
