// The chat page's data (Rust: core::store and core::chat), the commands behind it, and the pure
// helpers its store uses: folding streamed events into the message list and checking a draft.
// Its error codes become messages in ./errors.
import { Channel } from '@tauri-apps/api/core';
import { call } from './api';
import type { MessageSource } from './documents';
import type { Persona } from './engine';
import type { MessageKey } from './i18n';
import type { CommandError } from './types';

export type Tone = 'polite' | 'friendly';

export interface Character {
  name: string;
  greeting: string;
  context: string;
}

export interface SessionSetup {
  persona: Persona;
  tone: Tone | null;
  character: Character | null;
}

export interface Session {
  id: number;
  profile_id: number;
  title: string;
  title_is_auto: boolean;
  persona: Persona;
  tone: Tone | null;
  character: Character | null;
  created_at: number;
  updated_at: number;
}

export type MessageStatus = 'complete' | 'streaming' | 'interrupted';

/** A file stored with a message (an image sent with it); the original stays on disk. */
export interface MessageAttachment {
  id: number;
  kind: 'image';
  file_name: string;
  mime: string;
  size_bytes: number;
  width: number | null;
  height: number | null;
  /** A `data:` URL, or null when none could be made. */
  thumbnail: string | null;
  /**
   * The text OCR read in the image for a model that cannot see it: null when it was not read
   * (the model saw the image, or OCR was off), '' when the image had no text.
   */
  text?: string | null;
}

export interface Message {
  id: number;
  session_id: number;
  role: 'system' | 'user' | 'assistant';
  content: string;
  status: MessageStatus;
  error_code: string | null;
  suggestions: string[];
  /** The document passages a grounded office answer was given, numbered as it cites them. */
  sources: MessageSource[];
  /** Images sent with a user message, in order; empty when none. */
  attachments: MessageAttachment[];
  created_at: number;
  /**
   * Set while the page shows a reply whose relevant document passages stayed on this computer
   * (the persona is on a server; documents.allow_remote is off). Not stored.
   */
  withheld?: { host: string; passages: number };
}

export interface Card {
  id: number;
  message_id: number | null;
  session_id: number | null;
  session_title: string;
  role: string;
  content: string;
  note: string;
  created_at: number;
}

export interface OpenSession {
  session: Session;
  messages: Message[];
  replying: boolean;
}

export interface TurnStart {
  session: Session;
  user_message: Message | null;
  reply: Message;
  replaced: number[];
}

export type ChatEvent =
  | { kind: 'started'; reply_id: number; prompt_tokens: number; cached_tokens: number; restored_tokens?: number; dropped_turns: number }
  | { kind: 'sources'; reply_id: number; sources: MessageSource[] }
  | { kind: 'documents_withheld'; reply_id: number; host: string; passages: number }
  | { kind: 'text'; reply_id: number; text: string }
  | { kind: 'finished'; reply: Message; completion_tokens: number }
  | { kind: 'failed'; reply_id: number; reply: Message | null; error: CommandError }
  | { kind: 'related'; message_id: number; questions: string[] }
  | { kind: 'title'; session: Session }
  | { kind: 'done'; reply_id: number };

// --- commands ---

export const chatApi = {
  sessions: (search?: string) => call<Session[]>('sessions_list', { search: search ?? null }),
  open: (id: number) => call<OpenSession>('session_open', { id }),
  create: (setup: SessionSetup) => call<OpenSession>('session_create', { setup }),
  setSetup: (id: number, setup: SessionSetup) => call<Session>('session_set_setup', { id, setup }),
  rename: (id: number, title: string) => call<Session>('session_rename', { id, title }),
  remove: (id: number) => call<null>('session_delete', { id }),
  exportSession: (id: number, format: 'markdown' | 'json') =>
    call<string | null>('session_export', { id, format }),
  send: (
    sessionId: number | null,
    setup: SessionSetup,
    text: string,
    historyTurns: number | null,
    onEvent: (event: ChatEvent) => void,
    /** The ids of the images staged with `image_attach`, in order. */
    attachments: string[] = [],
  ) => {
    const channel = new Channel<ChatEvent>();
    channel.onmessage = onEvent;
    return call<TurnStart>('chat_send', { sessionId, setup, text, historyTurns, attachments, onEvent: channel });
  },
  retry: (sessionId: number, historyTurns: number | null, onEvent: (event: ChatEvent) => void) => {
    const channel = new Channel<ChatEvent>();
    channel.onmessage = onEvent;
    return call<TurnStart>('chat_retry', { sessionId, historyTurns, onEvent: channel });
  },
  stop: (sessionId: number) => call<boolean>('chat_stop', { sessionId }),
  cards: (search?: string) => call<Card[]>('cards_list', { search: search ?? null }),
  saveCard: (messageId: number, note: string) => call<Card>('card_save', { messageId, note }),
  deleteCard: (id: number) => call<null>('card_delete', { id }),
};

export type ChatApi = typeof chatApi;

// --- pure helpers ---

/** The message list after a turn started: replaced replies gone, the new messages appended. */
export function applyTurnStart(messages: Message[], start: TurnStart): Message[] {
  const kept = messages.filter((m) => !start.replaced.includes(m.id));
  const added = start.user_message ? [start.user_message, start.reply] : [start.reply];
  return [...kept, ...added];
}

/**
 * A stored reply replacing its placeholder keeps the streamed sources if it came without any,
 * and the notice of passages withheld (which is not stored).
 */
function withSources(stored: Message, previous: Message): Message {
  const kept =
    (stored.sources ?? []).length > 0 || (previous.sources ?? []).length === 0
      ? stored
      : { ...stored, sources: previous.sources };
  return previous.withheld ? { ...kept, withheld: previous.withheld } : kept;
}

/** The message list after one streamed event. */
export function applyChatEvent(messages: Message[], event: ChatEvent): Message[] {
  switch (event.kind) {
    case 'sources':
      return messages.map((m) => (m.id === event.reply_id ? { ...m, sources: event.sources } : m));
    case 'documents_withheld':
      return messages.map((m) =>
        m.id === event.reply_id ? { ...m, withheld: { host: event.host, passages: event.passages } } : m,
      );
    case 'text':
      return messages.map((m) =>
        m.id === event.reply_id ? { ...m, content: m.content + event.text } : m,
      );
    case 'finished':
      return messages.map((m) => (m.id === event.reply.id ? withSources(event.reply, m) : m));
    case 'failed': {
      const stored = event.reply;
      return stored
        ? messages.map((m) => (m.id === event.reply_id ? withSources(stored, m) : m))
        : messages.filter((m) => m.id !== event.reply_id);
    }
    case 'related':
      return messages.map((m) =>
        m.id === event.message_id ? { ...m, suggestions: event.questions } : m,
      );
    default:
      return messages;
  }
}

export type DraftCheck = { ok: true; text: string } | { ok: false; reason: 'empty' } | { ok: false; reason: 'too_long'; length: number; limit: number };

/** Whether a draft may be sent: not blank, and within the configured limit (in characters). */
export function checkDraft(text: string, limit: number): DraftCheck {
  const trimmed = text.trim();
  if (trimmed === '') return { ok: false, reason: 'empty' };
  const length = [...trimmed].length;
  if (length > limit) return { ok: false, reason: 'too_long', length, limit };
  return { ok: true, text: trimmed };
}

/**
 * Whether the message box may be sent with its images: text as `checkDraft` wants it, or no text
 * at all when there are images and the model sees them (`canSee` null: not known yet).
 */
export function checkSend(
  text: string,
  limit: number,
  images: number,
  canSee: boolean | null,
): DraftCheck | { ok: false; reason: 'needs_text' } {
  const check = checkDraft(text, limit);
  if (check.ok || check.reason !== 'empty' || images === 0) return check;
  return canSee === true ? { ok: true, text: '' } : { ok: false, reason: 'needs_text' };
}

/** Character presets offered when starting a character session (the user can edit them). */
export const CHARACTER_PRESETS: readonly { id: string; name: MessageKey; greeting: MessageKey; context: MessageKey }[] = [
  { id: 'haneul', name: 'preset.haneul.name', greeting: 'preset.haneul.greeting', context: 'preset.haneul.context' },
  { id: 'professor', name: 'preset.professor.name', greeting: 'preset.professor.greeting', context: 'preset.professor.context' },
  { id: 'mochi', name: 'preset.mochi.name', greeting: 'preset.mochi.greeting', context: 'preset.mochi.context' },
];

/** The title to show: the stored one, or a numbered placeholder while it is being made. */
export function sessionLabel(session: Session, untitled: string): string {
  return session.title.trim() === '' ? untitled : session.title;
}
