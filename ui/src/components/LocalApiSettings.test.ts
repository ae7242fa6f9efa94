import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it, vi, type Mock } from 'vitest';
import { makeTranslator } from '../lib/i18n';
import type { ApiKeyInfo, ApiStatus, LocalApi } from '../lib/localApi';
import { toasts } from '../lib/toasts.svelte';
import LocalApiSettings from './LocalApiSettings.svelte';

const t = makeTranslator('en');
const tKo = makeTranslator('ko');

const URL = 'http://127.0.0.1:8765/v1';
const KEY = `dm-${'0123456789abcdef'.repeat(3)}0123456789ab9f3e`;
const NEW_KEY = `dm-${'fedcba9876543210'.repeat(3)}fedcba9876547a1c`;
const kim = { id: 1, name: 'Kim', clearance: 'confidential' as const, created_at: 0 };
const keyFile = '/home/user/.local/share/deskmate/api-key.json';

function keyInfo(key = KEY): ApiKeyInfo {
  return { key, profile: kim, file: keyFile, created_at: 1_700_000_000_000 };
}

function apiStatus(overrides: Partial<ApiStatus> = {}): ApiStatus {
  return {
    enabled: false,
    running: false,
    url: null,
    error: null,
    key: { profile: kim, file: keyFile, created_at: 1_700_000_000_000 },
    ...overrides,
  };
}

type FakeApi = { [K in keyof LocalApi]: Mock<LocalApi[K]> };

function fakeApi(initial: ApiStatus = apiStatus()): FakeApi {
  return {
    status: vi.fn(() => Promise.resolve(initial)),
    setEnabled: vi.fn((enabled: boolean) =>
      Promise.resolve(apiStatus({ enabled, running: enabled, url: enabled ? URL : null })),
    ),
    showKey: vi.fn(() => Promise.resolve(keyInfo())),
    newKey: vi.fn(() => Promise.resolve(keyInfo(NEW_KEY))),
  };
}

const byId = (id: string) => screen.getByTestId(id);
const switchBox = () => byId('api-enabled') as HTMLInputElement;

/** Renders the card and waits for `api_status`. */
async function renderCard(api: LocalApi, lang = t) {
  const result = render(LocalApiSettings, { t: lang, api });
  await waitFor(() => expect(switchBox().disabled).toBe(false));
  return result;
}

let writeText: Mock<(text: string) => Promise<void>>;

beforeEach(() => {
  toasts.items = [];
  writeText = vi.fn(() => Promise.resolve());
  Object.defineProperty(navigator, 'clipboard', { value: { writeText }, configurable: true });
});

afterEach(() => {
  Reflect.deleteProperty(navigator, 'clipboard');
});

describe('LocalApiSettings', () => {
  it('is off by default, with the key hidden and the profile it acts as', async () => {
    await renderCard(fakeApi());
    expect(switchBox().getAttribute('role')).toBe('switch');
    expect(switchBox().checked).toBe(false);
    expect(byId('api-state').textContent).toBe('Off');
    expect(screen.queryByTestId('api-url')).toBeNull();
    expect(screen.queryByTestId('api-error')).toBeNull();
    expect(byId('api-key').textContent).toBe('dm-••••…');
    expect(byId('api-profile').textContent).toContain('Kim');
    expect(byId('api-profile').textContent).toContain('Confidential');
    expect(screen.getByText('Programs using this key see only documents this profile may see.')).toBeTruthy();
    expect(byId('api-key-file').textContent).toBe(keyFile);
    expect(byId('api-example').textContent).toBe(`curl ${URL}/models -H "Authorization: Bearer KEY"`);
  });

  it('turns the server on and shows its address', async () => {
    const api = fakeApi();
    const onEnabled = vi.fn();
    render(LocalApiSettings, { t, api, onEnabled });
    await waitFor(() => expect(switchBox().disabled).toBe(false));
    await fireEvent.click(switchBox());
    expect(api.setEnabled).toHaveBeenCalledWith(true);
    await waitFor(() => expect(byId('api-url').textContent).toBe(URL));
    expect(switchBox().checked).toBe(true);
    expect(byId('api-state').textContent).toBe('Running');
    expect(onEnabled).toHaveBeenCalledWith(true);

    await fireEvent.click(screen.getByRole('button', { name: 'Copy the address' }));
    expect(writeText).toHaveBeenCalledWith(URL);

    await fireEvent.click(switchBox());
    expect(api.setEnabled).toHaveBeenLastCalledWith(false);
    await waitFor(() => expect(screen.queryByTestId('api-url')).toBeNull());
    expect(onEnabled).toHaveBeenLastCalledWith(false);
  });

  it('shows why the server did not start, translated when the code is known', async () => {
    const api = fakeApi();
    api.setEnabled.mockResolvedValueOnce(
      apiStatus({ enabled: true, error: { code: 'io', message: '127.0.0.1:8765: address already in use' } }),
    );
    await renderCard(api);
    await fireEvent.click(switchBox());
    await waitFor(() => expect(byId('api-error')).toBeTruthy());
    const error = byId('api-error').textContent ?? '';
    expect(error).toContain('The server is turned on but not running.');
    expect(error).toContain('set another api.port in config.json');
    expect(error).toContain('address already in use');
    expect(switchBox().checked).toBe(true);
    expect(byId('api-state').textContent).toBe('Not running');
    expect(screen.queryByTestId('api-url')).toBeNull();
  });

  it("shows the core's message for a code it does not know, in Korean too", async () => {
    await renderCard(
      fakeApi(apiStatus({ enabled: true, error: { code: 'something_new', message: 'the moon is in the way' } })),
      tKo,
    );
    const error = byId('api-error').textContent ?? '';
    expect(error).toContain('켜져 있지만 서버가 실행되고 있지 않습니다.');
    expect(error).toContain('the moon is in the way');
    expect(byId('api-state').textContent).toBe('실행되지 않음');
  });

  it('puts the switch back and shows a toast when saving the setting fails', async () => {
    const api = fakeApi();
    api.setEnabled.mockRejectedValueOnce({ code: 'disk_full', message: 'config.json: no space left' });
    await renderCard(api);
    await fireEvent.click(switchBox());
    await waitFor(() => expect(toasts.items[0]).toMatchObject({ kind: 'error', key: 'api.error.disk_full', code: 'disk_full' }));
    expect(switchBox().checked).toBe(false);
  });

  it('reveals the key on Show and hides it again with its last characters', async () => {
    const api = fakeApi(apiStatus({ enabled: true, running: true, url: URL }));
    await renderCard(api);
    expect(byId('api-key').textContent).not.toContain(KEY);
    await fireEvent.click(byId('api-key-show'));
    expect(api.showKey).toHaveBeenCalledTimes(1);
    await waitFor(() => expect(byId('api-key').textContent).toBe(KEY));
    expect(byId('api-key-show').textContent?.trim()).toBe('Hide');
    expect(byId('api-example').textContent).toBe(`curl ${URL}/models -H "Authorization: Bearer ${KEY}"`);
    await fireEvent.click(byId('api-key-show'));
    expect(byId('api-key').textContent).toBe('dm-••••…9f3e');
    expect(byId('api-example').textContent).toContain('Bearer KEY');
  });

  it('makes a key on Show when there is none yet', async () => {
    const api = fakeApi(apiStatus({ key: null }));
    await renderCard(api);
    expect(byId('api-key').textContent).toContain('No key yet');
    expect(screen.queryByTestId('api-profile')).toBeNull();
    expect((byId('api-key-new') as HTMLButtonElement).disabled).toBe(true);
    await fireEvent.click(byId('api-key-show'));
    await waitFor(() => expect(byId('api-key').textContent).toBe(KEY));
    expect(byId('api-profile').textContent).toContain('Kim');
  });

  it('replaces the key only on the second click', async () => {
    const api = fakeApi();
    await renderCard(api);
    await fireEvent.click(byId('api-key-new'));
    expect(api.newKey).not.toHaveBeenCalled();
    expect(byId('api-key-new').textContent?.trim()).toBe('Really replace? The old key stops working');

    // Cancel disarms it.
    await fireEvent.click(byId('api-key-new-cancel'));
    expect(byId('api-key-new').textContent?.trim()).toBe('New key');
    await fireEvent.click(byId('api-key-new'));
    expect(api.newKey).not.toHaveBeenCalled();

    await fireEvent.click(byId('api-key-new'));
    expect(api.newKey).toHaveBeenCalledTimes(1);
    // The new key is shown at once: the programs need it.
    await waitFor(() => expect(byId('api-key').textContent).toBe(NEW_KEY));
    expect(byId('api-key-new').textContent?.trim()).toBe('New key');
    expect(toasts.items[0]).toMatchObject({ kind: 'info', key: 'api.key.replaced' });
  });

  it('copies the key without revealing it', async () => {
    const api = fakeApi();
    await renderCard(api);
    await fireEvent.click(byId('api-key-copy'));
    await waitFor(() => expect(writeText).toHaveBeenCalledWith(KEY));
    expect(api.showKey).toHaveBeenCalledTimes(1);
    expect(byId('api-key').textContent).toBe('dm-••••…9f3e');
    await waitFor(() => expect(byId('api-key-copy').textContent?.trim()).toBe('Copied'));
    // Once fetched, the key is copied without asking the core again.
    await fireEvent.click(byId('api-key-copy'));
    await waitFor(() => expect(writeText).toHaveBeenCalledTimes(2));
    expect(api.showKey).toHaveBeenCalledTimes(1);
  });

  it('says so when the clipboard refuses, and leaves the key on screen to select', async () => {
    writeText.mockRejectedValueOnce(new Error('NotAllowedError'));
    await renderCard(fakeApi());
    await fireEvent.click(byId('api-key-copy'));
    await waitFor(() => expect(byId('api-copy-failed').textContent).toContain('Could not copy'));
    expect(byId('api-key').textContent).toBe(KEY);
  });

  it('copes with no clipboard at all', async () => {
    Reflect.deleteProperty(navigator, 'clipboard');
    await renderCard(fakeApi());
    await fireEvent.click(byId('api-key-copy'));
    await waitFor(() => expect(byId('api-copy-failed')).toBeTruthy());
  });

  it('shows a toast when the key cannot be read', async () => {
    const api = fakeApi();
    api.showKey.mockRejectedValueOnce({ code: 'io', message: 'api-key.json: permission denied' });
    await renderCard(api);
    await fireEvent.click(byId('api-key-show'));
    await waitFor(() => expect(toasts.items[0]).toMatchObject({ kind: 'error', key: 'api.error.io', code: 'io' }));
    expect(byId('api-key').textContent).toBe('dm-••••…');
  });

  it('asks nothing outside the app without a fake', async () => {
    render(LocalApiSettings, { t });
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(switchBox().disabled).toBe(true);
    expect(screen.queryByTestId('api-key')).toBeNull();
    expect(toasts.items).toEqual([]);
  });
});
