import { describe, expect, it } from 'vitest';
import { applyChatEvent, applyTurnStart, checkDraft, checkSend, type ChatEvent, type Message, type Session } from './chat';
import type { MessageSource } from './documents';

const session: Session = {
  id: 1, profile_id: 1, title: 'T', title_is_auto: true, persona: 'office', tone: 'polite',
  character: null, created_at: 0, updated_at: 0,
};

function msg(id: number, role: Message['role'], content: string, status: Message['status'] = 'complete'): Message {
  return { id, session_id: 1, role, content, status, error_code: null, suggestions: [], sources: [], attachments: [], created_at: 0 };
}

describe('applyTurnStart', () => {
  it('appends the user message and the reply placeholder', () => {
    const out = applyTurnStart([msg(1, 'user', 'a')], {
      session, user_message: msg(2, 'user', 'b'), reply: msg(3, 'assistant', '', 'streaming'), replaced: [],
    });
    expect(out.map((m) => m.id)).toEqual([1, 2, 3]);
  });

  it('drops the replies a retry replaces, even when the new reply reuses an id', () => {
    const out = applyTurnStart([msg(1, 'user', 'a'), msg(2, 'assistant', 'old')], {
      session, user_message: null, reply: msg(2, 'assistant', '', 'streaming'), replaced: [2],
    });
    expect(out).toHaveLength(2);
    expect(out[1]?.status).toBe('streaming');
  });
});

describe('applyChatEvent', () => {
  const base = [msg(1, 'user', 'q'), msg(2, 'assistant', '', 'streaming')];

  it('appends streamed text to its reply only', () => {
    let out = applyChatEvent(base, { kind: 'text', reply_id: 2, text: 'Hel' });
    out = applyChatEvent(out, { kind: 'text', reply_id: 2, text: 'lo' });
    expect(out[1]?.content).toBe('Hello');
    expect(out[0]?.content).toBe('q');
  });

  it('replaces the placeholder with the stored reply when finished', () => {
    const out = applyChatEvent(base, { kind: 'finished', reply: msg(2, 'assistant', 'Hi'), completion_tokens: 1 });
    expect(out[1]).toEqual(msg(2, 'assistant', 'Hi'));
  });

  it('keeps a failed partial reply as interrupted and drops an empty one', () => {
    const partial = { ...msg(2, 'assistant', 'Hal', 'interrupted'), error_code: 'worker_crashed' };
    const kept = applyChatEvent(base, { kind: 'failed', reply_id: 2, reply: partial, error: { code: 'worker_crashed', message: 'x' } });
    expect(kept[1]?.status).toBe('interrupted');
    const dropped = applyChatEvent(base, { kind: 'failed', reply_id: 2, reply: null, error: { code: 'model_missing', message: 'x' } });
    expect(dropped.map((m) => m.id)).toEqual([1]);
  });

  it('notes passages withheld from a server on their reply, and keeps the note when the reply is stored', () => {
    let out = applyChatEvent(base, { kind: 'documents_withheld', reply_id: 2, host: 'gpu:8000', passages: 3 });
    expect(out[1]?.withheld).toEqual({ host: 'gpu:8000', passages: 3 });
    expect(out[0]?.withheld).toBeUndefined();
    out = applyChatEvent(out, { kind: 'finished', reply: msg(2, 'assistant', 'Hi'), completion_tokens: 1 });
    expect(out[1]?.withheld).toEqual({ host: 'gpu:8000', passages: 3 });
    expect(out[1]?.content).toBe('Hi');
  });

  const sources: MessageSource[] = [
    { n: 1, document_id: 4, chunk_id: 40, file_name: 'report.pdf', path: '/d/report.pdf', page: 2, section: null, excerpt: 'Revenue…' },
    { n: 2, document_id: 5, chunk_id: 50, file_name: 'notes.md', path: '/d/notes.md', page: null, section: 'Budget', excerpt: 'Budget…' },
  ];

  it('puts the sources on their reply, even when they arrive before `started`', () => {
    const events: ChatEvent[] = [
      { kind: 'sources', reply_id: 2, sources },
      { kind: 'started', reply_id: 2, prompt_tokens: 9, cached_tokens: 0, dropped_turns: 0 },
      { kind: 'text', reply_id: 2, text: 'Grew [1].' },
    ];
    const out = events.reduce(applyChatEvent, base);
    expect(out[1]?.sources).toEqual(sources);
    expect(out[1]?.content).toBe('Grew [1].');
    expect(out[0]?.sources).toEqual([]);
    expect(base[1]?.sources).toEqual([]);
  });

  it('keeps the streamed sources when the stored reply comes without them', () => {
    const withSources = applyChatEvent(base, { kind: 'sources', reply_id: 2, sources });
    const finished = applyChatEvent(withSources, { kind: 'finished', reply: msg(2, 'assistant', 'Done'), completion_tokens: 1 });
    expect(finished[1]?.content).toBe('Done');
    expect(finished[1]?.sources).toEqual(sources);
    const stored = { ...msg(2, 'assistant', 'Done'), sources: [sources[1] as MessageSource] };
    const replaced = applyChatEvent(withSources, { kind: 'finished', reply: stored, completion_tokens: 1 });
    expect(replaced[1]?.sources).toEqual([sources[1]]);
    const failed = applyChatEvent(withSources, {
      kind: 'failed', reply_id: 2, reply: { ...msg(2, 'assistant', 'Gr', 'interrupted') }, error: { code: 'worker_crashed', message: 'x' },
    });
    expect(failed[1]?.sources).toEqual(sources);
  });

  it('attaches follow-up questions to their message', () => {
    const out = applyChatEvent(base, { kind: 'related', message_id: 2, questions: ['Why?'] });
    expect(out[1]?.suggestions).toEqual(['Why?']);
  });
});

describe('checkDraft', () => {
  it('refuses blank drafts and counts characters, not UTF-16 units', () => {
    expect(checkDraft('  \n\t', 10)).toEqual({ ok: false, reason: 'empty' });
    expect(checkDraft(' 안녕 ', 10)).toEqual({ ok: true, text: '안녕' });
    expect(checkDraft('😀'.repeat(10), 10).ok).toBe(true);
    expect(checkDraft('가'.repeat(11), 10)).toEqual({ ok: false, reason: 'too_long', length: 11, limit: 10 });
  });
});

describe('checkSend', () => {
  it('lets images go without text only to a model that sees them', () => {
    expect(checkSend(' hi ', 10, 0, null)).toEqual({ ok: true, text: 'hi' });
    expect(checkSend('  ', 10, 0, true)).toEqual({ ok: false, reason: 'empty' });
    expect(checkSend('  ', 10, 2, true)).toEqual({ ok: true, text: '' });
    expect(checkSend('  ', 10, 2, false)).toEqual({ ok: false, reason: 'needs_text' });
    expect(checkSend('', 10, 1, null)).toEqual({ ok: false, reason: 'needs_text' });
    expect(checkSend('look', 10, 1, false)).toEqual({ ok: true, text: 'look' });
    expect(checkSend('x'.repeat(11), 10, 1, true)).toMatchObject({ ok: false, reason: 'too_long' });
  });
});
