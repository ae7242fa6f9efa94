import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ChatStore } from '../lib/chatStore.svelte';
import { makeTranslator } from '../lib/i18n';
import { DEFAULT_PREFERENCES, preferences } from '../lib/prefs.svelte';
import type { Lang } from '../lib/status';
import { toasts } from '../lib/toasts.svelte';
import { fakeChatApi, fakeMedia } from '../test/media';
import ChatPage from './ChatPage.svelte';

let now = 0;
beforeEach(() => {
  now = 50_000;
  vi.spyOn(Date, 'now').mockImplementation(() => now);
});

afterEach(() => {
  vi.restoreAllMocks();
  preferences.value = { ...DEFAULT_PREFERENCES };
  toasts.items = [];
});

async function talk(lang: Lang) {
  const fake = fakeMedia();
  render(ChatPage, { t: makeTranslator(lang), store: new ChatStore(fakeChatApi()), defaultTone: 'polite', media: fake.api });
  const mic = screen.getByTestId('chat-mic') as HTMLButtonElement;
  await waitFor(() => expect(mic.disabled).toBe(false));
  await fireEvent.pointerDown(mic);
  await waitFor(() => expect(screen.getByTestId('voice-state').dataset.state).toBe('recording'));
  now += 1_000;
  await fireEvent.pointerUp(mic);
  await waitFor(() => expect((screen.getByTestId('chat-input') as HTMLTextAreaElement).value).toBe('hello there'));
  return fake.api.voiceStop;
}

describe('ChatPage voice input language', () => {
  it('follows the interface language by default', async () => {
    expect(await talk('ko')).toHaveBeenCalledWith('ko');
  });

  it('follows the English interface too', async () => {
    expect(await talk('en')).toHaveBeenCalledWith('en');
  });

  it('uses the language chosen in Settings', async () => {
    preferences.value = { ...DEFAULT_PREFERENCES, speechLanguage: 'auto' };
    expect(await talk('ko')).toHaveBeenCalledWith('auto');
  });

  it('asks voice_status when the page shows', async () => {
    const fake = fakeMedia();
    render(ChatPage, { t: makeTranslator('en'), store: new ChatStore(fakeChatApi()), defaultTone: 'polite', media: fake.api });
    await waitFor(() => expect(fake.api.voiceStatus).toHaveBeenCalledTimes(1));
  });
});

describe('ChatPage files dropped on the window', () => {
  async function dropAudio(lang: Lang) {
    const fake = fakeMedia();
    const page = render(ChatPage, { t: makeTranslator(lang), store: new ChatStore(fakeChatApi()), defaultTone: 'polite', media: fake.api });
    await waitFor(() => expect(fake.dragListeners()).toBe(1));
    fake.drag({ type: 'drop', paths: ['/home/kim/memo.ogg'] });
    await waitFor(() => expect((screen.getByTestId('chat-input') as HTMLTextAreaElement).value).toBe('from the path'));
    return { fake, page };
  }

  it('transcribes a dropped audio path in the interface language by default', async () => {
    const { fake } = await dropAudio('ko');
    expect(fake.api.transcribePath).toHaveBeenCalledWith('/home/kim/memo.ogg', 'ko');
  });

  it('transcribes a dropped audio path in the language chosen in Settings', async () => {
    preferences.value = { ...DEFAULT_PREFERENCES, speechLanguage: 'auto' };
    const { fake } = await dropAudio('en');
    expect(fake.api.transcribePath).toHaveBeenCalledWith('/home/kim/memo.ogg', 'auto');
  });

  it('stops listening for drops when the page goes away', async () => {
    const { fake, page } = await dropAudio('en');
    page.unmount();
    expect(fake.dragListeners()).toBe(0);
  });
});

describe('ChatPage remote badge', () => {
  const backends = () =>
    Promise.resolve([
      {
        persona: 'office' as const,
        remote: { host: 'gpu-server:8000', base_url: 'http://gpu-server:8000/v1', model: 'qwen2.5-72b' },
        documents_to_remote: false,
      },
      { persona: 'character' as const, remote: null, documents_to_remote: false },
    ]);

  it('shows where the persona runs, and says what is sent there', async () => {
    const fake = fakeMedia();
    render(ChatPage, { t: makeTranslator('en'), store: new ChatStore(fakeChatApi()), defaultTone: 'polite', media: fake.api, backends });
    const badge = await screen.findByTestId('remote-badge');
    expect(badge.textContent?.trim()).toBe('remote: gpu-server:8000');
    expect(badge.getAttribute('title')).toContain('http://gpu-server:8000/v1 (model qwen2.5-72b)');
    expect(badge.getAttribute('title')).not.toContain('document');
    await fireEvent.click(screen.getByTestId('persona-character'));
    await waitFor(() => expect(screen.queryByTestId('remote-badge')).toBeNull());
  });

  it('shows no badge for a persona on this computer', async () => {
    const fake = fakeMedia();
    const local = () => Promise.resolve([{ persona: 'office' as const, remote: null, documents_to_remote: false }]);
    render(ChatPage, { t: makeTranslator('ko'), store: new ChatStore(fakeChatApi()), defaultTone: 'polite', media: fake.api, backends: local });
    await waitFor(() => expect(screen.getByTestId('persona-office')).toBeTruthy());
    expect(screen.queryByTestId('remote-badge')).toBeNull();
  });
});
