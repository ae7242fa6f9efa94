import { beforeEach, describe, expect, it, vi } from 'vitest';
import { curlExample, DEFAULT_API_URL, localApi, maskKey, toastLocalApiError } from './localApi';
import { toasts } from './toasts.svelte';

const invoke = vi.hoisted(() => vi.fn());
vi.mock('@tauri-apps/api/core', () => ({ invoke }));

const KEY = `dm-${'0123456789abcdef'.repeat(4)}`;

beforeEach(() => {
  toasts.items = [];
  invoke.mockReset();
});

describe('localApi', () => {
  it('calls the core commands by their exact names and payloads', async () => {
    invoke.mockResolvedValue({});
    await localApi.status();
    await localApi.setEnabled(true);
    await localApi.showKey();
    await localApi.newKey();
    expect(invoke.mock.calls).toEqual([
      ['api_status', undefined],
      ['api_set_enabled', { enabled: true }],
      ['api_key_show', undefined],
      ['api_key_new', undefined],
    ]);
  });

  it('rejects with the core code', async () => {
    invoke.mockRejectedValue({ code: 'disk_full', message: 'no space' });
    await expect(localApi.newKey()).rejects.toMatchObject({ code: 'disk_full', message: 'no space' });
  });
});

describe('maskKey', () => {
  it('hides the key, with its last four characters once known', () => {
    expect(maskKey(null)).toBe('dm-••••…');
    expect(maskKey(KEY)).toBe('dm-••••…cdef');
    expect(maskKey(KEY)).not.toContain(KEY.slice(3, 20));
    // Too short to show a tail without showing most of it.
    expect(maskKey('dm-ab')).toBe('dm-••••…');
  });
});

describe('curlExample', () => {
  it('uses the real address and the key when given', () => {
    expect(curlExample('http://127.0.0.1:9000/v1', KEY)).toBe(
      `curl http://127.0.0.1:9000/v1/models -H "Authorization: Bearer ${KEY}"`,
    );
    expect(curlExample('http://127.0.0.1:9000/v1/', null)).toBe(
      'curl http://127.0.0.1:9000/v1/models -H "Authorization: Bearer KEY"',
    );
  });

  it('falls back to the default address', () => {
    expect(DEFAULT_API_URL).toBe('http://127.0.0.1:8765/v1');
    expect(curlExample(null, null)).toBe('curl http://127.0.0.1:8765/v1/models -H "Authorization: Bearer KEY"');
  });
});

describe('toastLocalApiError', () => {
  it('shows a known code with its own message and the detail', () => {
    toastLocalApiError({ code: 'disk_full', message: 'api-key.json: no space left' });
    expect(toasts.items[0]).toMatchObject({
      kind: 'error',
      key: 'api.error.disk_full',
      code: 'disk_full',
      detail: 'api-key.json: no space left',
      action: null,
    });
  });

  it('falls back to the generic message', () => {
    toastLocalApiError(new Error('boom'));
    expect(toasts.items[0]).toMatchObject({ kind: 'error', key: 'api.error.other', code: 'ui.unknown', detail: 'boom' });
  });
});
