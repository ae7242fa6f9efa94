import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { ChatApi, ChatEvent, Message, Session, TurnStart } from './chat';
import { ChatStore } from './chatStore.svelte';
import { toasts } from './toasts.svelte';

function session(id: number, title: string): Session {
  return { id, profile_id: 1, title, title_is_auto: true, persona: 'office', tone: 'polite', character: null, created_at: 0, updated_at: 0 };
}
function msg(id: number, role: Message['role'], content: string, status: Message['status'] = 'complete'): Message {
  return { id, session_id: 7, role, content, status, error_code: null, suggestions: [], sources: [], attachments: [], created_at: 0 };
}

function fakeApi(overrides: Partial<ChatApi> = {}): ChatApi {
  const fail = () => Promise.reject(new Error('not expected'));
  return {
    sessions: vi.fn(() => Promise.resolve([session(1, 'a'), session(2, 'b')])),
    open: vi.fn(fail), create: vi.fn(fail), setSetup: vi.fn(fail), rename: vi.fn(fail),
    remove: vi.fn(() => Promise.resolve(null)), exportSession: vi.fn(fail), send: vi.fn(fail),
    retry: vi.fn(fail), stop: vi.fn(() => Promise.resolve(true)), cards: vi.fn(fail),
    saveCard: vi.fn(fail), deleteCard: vi.fn(fail),
    ...overrides,
  } as ChatApi;
}

const start: TurnStart = {
  session: session(7, 'Hello'),
  user_message: msg(10, 'user', 'Hello'),
  reply: msg(11, 'assistant', '', 'streaming'),
  replaced: [],
};

beforeEach(() => {
  toasts.items = [];
});

describe('ChatStore', () => {
  it('applies events that arrive before the send command answers, in order', async () => {
    let emit: (e: ChatEvent) => void = () => {};
    const api = fakeApi({
      send: vi.fn((_s, _setup, _t, _h, onEvent) => {
        emit = onEvent;
        onEvent({ kind: 'started', reply_id: 11, prompt_tokens: 5, cached_tokens: 0, dropped_turns: 0 });
        onEvent({ kind: 'text', reply_id: 11, text: 'Hi' });
        return Promise.resolve(start);
      }),
    });
    const store = new ChatStore(api);
    expect(await store.send('  Hello ')).toBe(true);
    expect(api.send).toHaveBeenCalledWith(null, store.setup, 'Hello', 10, expect.any(Function), []);
    expect(store.messages.map((m) => m.content)).toEqual(['Hello', 'Hi']);
    expect(store.isReplying).toBe(true);
    expect(store.sessions[0]?.id).toBe(7);
    emit({ kind: 'text', reply_id: 11, text: ' there' });
    emit({ kind: 'finished', reply: msg(11, 'assistant', 'Hi there'), completion_tokens: 2 });
    emit({ kind: 'title', session: session(7, 'Greetings') });
    emit({ kind: 'done', reply_id: 11 });
    expect(store.messages[1]?.content).toBe('Hi there');
    expect(store.current?.title).toBe('Greetings');
    expect(store.isReplying).toBe(false);
  });

  it('puts sources sent before `started` on the reply once the turn has started', async () => {
    const source = { n: 1, document_id: 3, chunk_id: 30, file_name: 'plan.docx', path: '/d/plan.docx', page: null, section: 'Goals', excerpt: 'Goals…' };
    const api = fakeApi({
      send: vi.fn((_s, _setup, _t, _h, onEvent) => {
        onEvent({ kind: 'sources', reply_id: 11, sources: [source] });
        onEvent({ kind: 'started', reply_id: 11, prompt_tokens: 5, cached_tokens: 0, dropped_turns: 0 });
        onEvent({ kind: 'text', reply_id: 11, text: 'See [1].' });
        return Promise.resolve(start);
      }),
    });
    const store = new ChatStore(api);
    await store.send('Goals?');
    expect(store.messages[1]?.sources).toEqual([source]);
    expect(store.messages[1]?.content).toBe('See [1].');
    expect(store.messages[0]?.sources).toEqual([]);
  });

  it('sends the staged image ids with the message, and images alone with no text', async () => {
    const api = fakeApi({ send: vi.fn(() => Promise.resolve(start)) });
    const store = new ChatStore(api);
    expect(await store.send(' Look at this ', ['sha-a', 'sha-b'])).toBe(true);
    expect(api.send).toHaveBeenLastCalledWith(null, store.setup, 'Look at this', 10, expect.any(Function), ['sha-a', 'sha-b']);
    expect(await store.send('   ', ['sha-c'])).toBe(true);
    expect(api.send).toHaveBeenLastCalledWith(7, store.setup, '', 10, expect.any(Function), ['sha-c']);
  });

  it('does not send blank or over-long drafts', async () => {
    const api = fakeApi();
    const store = new ChatStore(api);
    store.maxChars = 5;
    expect(await store.send('   ')).toBe(false);
    expect(await store.send('123456')).toBe(false);
    expect(api.send).not.toHaveBeenCalled();
  });

  it('turns a refused send into a red toast and reports it so the draft stays', async () => {
    const api = fakeApi({ send: vi.fn(() => Promise.reject({ code: 'message_too_long', message: 'message: 9 characters' })) });
    const store = new ChatStore(api);
    expect(await store.send('hello')).toBe(false);
    expect(toasts.items[0]).toMatchObject({ kind: 'error', code: 'message_too_long', key: 'chat.error.message_too_long' });
  });

  it('shows a failed reply as a toast with its action and ends the reply', async () => {
    const api = fakeApi({
      send: vi.fn((_s, _setup, _t, _h, onEvent) => {
        queueMicrotask(() => {
          onEvent({ kind: 'failed', reply_id: 11, reply: null, error: { code: 'model_missing', message: 'x.gguf: file not found' } });
          onEvent({ kind: 'done', reply_id: 11 });
        });
        return Promise.resolve(start);
      }),
    });
    const store = new ChatStore(api);
    await store.send('Hello');
    await Promise.resolve();
    await Promise.resolve();
    expect(store.messages.map((m) => m.id)).toEqual([10]);
    expect(store.isReplying).toBe(false);
    expect(toasts.items[0]).toMatchObject({ code: 'model_missing', action: 'open_models', sessionId: 7 });
  });

  it('renames only the renamed session and removes a deleted one', async () => {
    const api = fakeApi({ rename: vi.fn(() => Promise.resolve(session(2, 'Budget'))) });
    const store = new ChatStore(api);
    store.sessions = [session(1, 'a'), session(2, 'b'), session(3, 'c')];
    expect(await store.rename(2, 'Budget')).toBe(true);
    expect(store.sessions.map((s) => s.title)).toEqual(['a', 'Budget', 'c']);
    await store.remove(1);
    expect(store.sessions.map((s) => s.id)).toEqual([2, 3]);
  });

  it('stops the reply of the open session', async () => {
    const api = fakeApi();
    const store = new ChatStore(api);
    store.current = session(7, 'x');
    await store.stop();
    expect(api.stop).toHaveBeenCalledWith(7);
  });
});
