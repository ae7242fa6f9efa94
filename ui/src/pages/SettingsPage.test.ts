import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { makeTranslator } from '../lib/i18n';
import type { LocalApi } from '../lib/localApi';
import { DEFAULT_PREFERENCES, preferences } from '../lib/prefs.svelte';
import { sampleStatus } from '../test/fixtures';
import SettingsPage from './SettingsPage.svelte';

const invoke = vi.hoisted(() => vi.fn());
vi.mock('@tauri-apps/api/core', () => ({ invoke }));

/** One persona's engine settings as `config_get` returns them. */
const MODEL = { n_gpu_layers: 'auto', n_ctx: 8192, parallel: 2, sampling: { temperature: 0.7, max_tokens: 1024 } };

/** The page runs inside the app, against a core that serves `config` and returns what it is sent to save. */
function serveConfig(config: object) {
  Object.defineProperty(window, '__TAURI_INTERNALS__', { value: {}, configurable: true });
  invoke.mockImplementation((command: string, args?: { config?: unknown }) => {
    if (command === 'config_get') return Promise.resolve(structuredClone(config));
    if (command === 'config_save') return Promise.resolve(args?.config);
    if (command === 'profiles_list') return Promise.resolve({ active: 1, profiles: [] });
    return Promise.reject({ code: 'not_found', message: command });
  });
}

/** Presses "Save and apply" and returns what the core was sent. */
async function saveAndRead<T>(): Promise<{ config: T }> {
  await fireEvent.click(screen.getByTestId('engine-save'));
  await waitFor(() => expect(invoke).toHaveBeenCalledWith('config_save', expect.anything()));
  return invoke.mock.calls.find(([command]) => command === 'config_save')?.[1] as { config: T };
}

afterEach(() => {
  preferences.value = { ...DEFAULT_PREFERENCES };
  Reflect.deleteProperty(window, '__TAURI_INTERNALS__');
  invoke.mockReset();
});

describe('SettingsPage voice input language', () => {
  it('follows the interface language by default and stores the choice', async () => {
    render(SettingsPage, { t: makeTranslator('en'), load: { kind: 'ok', status: sampleStatus() } });
    const select = screen.getByTestId('settings-speech-language') as HTMLSelectElement;
    expect(select.value).toBe('ui');
    expect([...select.options].map((o) => [o.value, o.textContent])).toEqual([
      ['ui', 'Follow the interface language'],
      ['ko', '한국어'],
      ['en', 'English'],
      ['auto', 'Auto-detect'],
    ]);
    await fireEvent.change(select, { target: { value: 'auto' } });
    expect(preferences.value.speechLanguage).toBe('auto');
    await fireEvent.change(select, { target: { value: 'en' } });
    expect(preferences.value.speechLanguage).toBe('en');
  });
});

describe('SettingsPage local API', () => {
  it('shows the section without asking the core outside the app', () => {
    render(SettingsPage, { t: makeTranslator('en'), load: { kind: 'ok', status: sampleStatus() } });
    expect(screen.getByTestId('settings-api').textContent).toContain('Local API');
    expect((screen.getByTestId('api-enabled') as HTMLInputElement).disabled).toBe(true);
  });

  it('uses the local API it is given', async () => {
    const localApi: LocalApi = {
      status: vi.fn(() =>
        Promise.resolve({ enabled: true, running: true, url: 'http://127.0.0.1:8765/v1', error: null, key: null }),
      ),
      setEnabled: vi.fn(),
      showKey: vi.fn(),
      newKey: vi.fn(),
    };
    render(SettingsPage, { t: makeTranslator('ko'), load: { kind: 'ok', status: sampleStatus() }, localApi });
    await waitFor(() => expect(screen.getByTestId('api-url').textContent).toBe('http://127.0.0.1:8765/v1'));
    expect(screen.getByTestId('settings-api').textContent).toContain('로컬 API');
    expect((screen.getByTestId('api-enabled') as HTMLInputElement).checked).toBe(true);
  });
});

describe('SettingsPage engine settings and the local API', () => {
  it('keeps api.enabled as the switch left it when the engine settings are saved', async () => {
    const config = {
      models: { office: MODEL, character: MODEL },
      chat: { max_message_chars: 8000 },
      api: { enabled: false, host: '127.0.0.1', port: 8765, cors_origins: [] },
    };
    serveConfig(config);
    const localApi: LocalApi = {
      status: vi.fn(() => Promise.resolve({ enabled: false, running: false, url: null, error: null, key: null })),
      setEnabled: vi.fn((enabled: boolean) =>
        Promise.resolve({ enabled, running: enabled, url: 'http://127.0.0.1:8765/v1', error: null, key: null }),
      ),
      showKey: vi.fn(),
      newKey: vi.fn(),
    };
    render(SettingsPage, { t: makeTranslator('en'), load: { kind: 'ok', status: sampleStatus() }, localApi });
    await waitFor(() => expect(screen.getByTestId('engine-save')).toBeTruthy());
    await waitFor(() => expect((screen.getByTestId('api-enabled') as HTMLInputElement).disabled).toBe(false));
    await fireEvent.click(screen.getByTestId('api-enabled'));
    await waitFor(() => expect(screen.getByTestId('api-url')).toBeTruthy());
    const saved = await saveAndRead<typeof config>();
    expect(saved.config.api).toEqual({ ...config.api, enabled: true });
  });

  it('saves documents.allow_remote from its switch and keeps a persona backend untouched', async () => {
    const backend = { kind: 'openai', base_url: 'http://gpu:8000/v1', model: 'big', api_key_env: null, timeout_s: 120 };
    const config = {
      models: { office: { ...MODEL, backend }, character: { ...MODEL, backend: 'local' } },
      chat: { max_message_chars: 8000 },
      documents: { top_k: 5, allow_remote: false },
    };
    serveConfig(config);
    render(SettingsPage, { t: makeTranslator('en'), load: { kind: 'ok', status: sampleStatus() } });
    const allow = (await screen.findByTestId('engine-allow-remote')) as HTMLInputElement;
    expect(allow.checked).toBe(false);
    await fireEvent.click(allow);
    const saved = await saveAndRead<typeof config>();
    expect(saved.config.documents).toEqual({ top_k: 5, allow_remote: true, ocr: true, sentence_rerank: true });
    expect(saved.config.models.office.backend).toEqual(backend);
  });

  it('turns OCR and the sentence rerank off through documents.ocr and documents.sentence_rerank and leaves the other document settings', async () => {
    const config = {
      models: { office: { ...MODEL }, character: { ...MODEL } },
      chat: { max_message_chars: 8000 },
      documents: { top_k: 5, allow_remote: false, ocr: true, ocr_languages: 'kor+eng' },
    };
    serveConfig(config);
    render(SettingsPage, { t: makeTranslator('en'), load: { kind: 'ok', status: sampleStatus() } });
    const box = (await screen.findByTestId('documents-ocr')) as HTMLInputElement;
    expect(box.checked).toBe(true);
    await fireEvent.click(box);
    const rerank = screen.getByTestId('documents-sentence-rerank') as HTMLInputElement;
    expect(rerank.checked).toBe(true);
    await fireEvent.click(rerank);
    const saved = await saveAndRead<typeof config>();
    expect(saved.config.documents).toEqual({ top_k: 5, allow_remote: false, ocr: false, ocr_languages: 'kor+eng', sentence_rerank: false });
  });

  it('shows each persona\'s lookup decoding and saves the choice as config.json spells it ("auto", true, false)', async () => {
    const config = {
      models: {
        office: { ...MODEL, sampling: { ...MODEL.sampling, lookup_decoding: false } },
        character: { ...MODEL },
      },
      chat: { max_message_chars: 8000 },
    };
    serveConfig(config);
    render(SettingsPage, { t: makeTranslator('en'), load: { kind: 'ok', status: sampleStatus() } });
    const office = (await screen.findByTestId('engine-office-lookup')) as HTMLSelectElement;
    const character = screen.getByTestId('engine-character-lookup') as HTMLSelectElement;
    expect(office.value).toBe('off');
    expect(character.value).toBe('auto');
    await fireEvent.change(office, { target: { value: 'on' } });
    const saved = await saveAndRead<typeof config>();
    expect(saved.config.models.office.sampling).toEqual({ temperature: 0.7, max_tokens: 1024, lookup_decoding: true });
    expect(saved.config.models.character.sampling).toEqual({ temperature: 0.7, max_tokens: 1024, lookup_decoding: 'auto' });
  });
});
