import { describe, expect, it } from 'vitest';
import { applyChatEvent, applyTurnStart, checkDraft, describeChatError, type Message, type Session } from './chat';

const session: Session = {
  id: 1, profile_id: 1, title: 'T', title_is_auto: true, persona: 'office', tone: 'polite',
  character: null, created_at: 0, updated_at: 0,
};

function msg(id: number, role: Message['role'], content: string, status: Message['status'] = 'complete'): Message {
  return { id, session_id: 1, role, content, status, error_code: null, suggestions: [], created_at: 0 };
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

describe('describeChatError', () => {
  it('offers the Models page for model problems and retry for passing ones', () => {
    expect(describeChatError('model_missing')).toEqual({ key: 'chat.error.model_missing', action: 'open_models' });
    expect(describeChatError('model_corrupt').action).toBe('open_models');
    expect(describeChatError('out_of_memory').action).toBe('open_models');
    expect(describeChatError('busy')).toEqual({ key: 'chat.error.busy', action: 'retry' });
    expect(describeChatError('worker_crashed').action).toBe('retry');
    expect(describeChatError('cancelled').action).toBe('retry');
    expect(describeChatError('something_new')).toEqual({ key: 'chat.error.other', action: null });
  });
});
