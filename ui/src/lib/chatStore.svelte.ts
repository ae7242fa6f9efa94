// The chat page's state: the sessions list, the open session and its messages, the reply being
// written, and the setup (persona, tone, character) of the next new session. Every failure
// becomes a toast; a draft is cleared only once the core has stored the message.
import { isTauri, toCommandError } from './api';
import {
  applyChatEvent,
  applyTurnStart,
  chatApi,
  checkDraft,
  type ChatApi,
  type ChatEvent,
  type Message,
  type Session,
  type SessionSetup,
  type TurnStart,
} from './chat';
import { describeChatError } from './errors';
import type { CommandError } from './types';
import { toasts } from './toasts.svelte';

export class ChatStore {
  sessions = $state<Session[]>([]);
  search = $state('');
  current = $state<Session | null>(null);
  messages = $state<Message[]>([]);
  /** Session ids with a reply being written. */
  replying = $state<number[]>([]);
  /** The setup a new session starts with. */
  setup = $state<SessionSetup>({ persona: 'office', tone: 'polite', character: null });
  /** The message to scroll to and highlight (from a card). */
  highlight = $state<number | null>(null);
  maxChars = $state(8000);
  historyTurns = $state<number | null>(10);

  constructor(private readonly api: ChatApi = chatApi) {}

  get isReplying(): boolean {
    return this.current !== null && this.replying.includes(this.current.id);
  }

  private fail(error: unknown, sessionId?: number) {
    const e: CommandError = toCommandError(error);
    const { key, action } = describeChatError(e.code);
    toasts.push({
      kind: 'error',
      key,
      code: e.code,
      detail: e.message,
      action,
      ...(sessionId === undefined ? {} : { sessionId }),
    });
  }

  async refreshSessions(): Promise<void> {
    if (this.api === chatApi && !isTauri()) return;
    try {
      const sessions = await this.api.sessions(this.search || undefined);
      if (Array.isArray(sessions)) this.sessions = sessions;
    } catch (error) {
      this.fail(error);
    }
  }

  async open(id: number, highlight: number | null = null): Promise<void> {
    try {
      const opened = await this.api.open(id);
      this.current = opened.session;
      this.messages = opened.messages;
      this.highlight = highlight;
      if (opened.replying && !this.replying.includes(id)) this.replying = [...this.replying, id];
    } catch (error) {
      this.fail(error);
    }
  }

  /** Leaves the open session; the next message starts a new one with `setup`. */
  newChat(setup?: SessionSetup): void {
    this.current = null;
    this.messages = [];
    this.highlight = null;
    if (setup) this.setup = setup;
  }

  /** Starts a character session at once, so its greeting shows before the user writes. */
  async startWith(setup: SessionSetup): Promise<void> {
    try {
      const opened = await this.api.create(setup);
      this.setup = setup;
      this.current = opened.session;
      this.messages = opened.messages;
      this.highlight = null;
      await this.refreshSessions();
    } catch (error) {
      this.fail(error);
    }
  }

  /** Changes who answers in the open session (or in the next new one). */
  async changeSetup(setup: SessionSetup): Promise<void> {
    this.setup = setup;
    if (!this.current) return;
    try {
      this.current = await this.api.setSetup(this.current.id, setup);
      this.replaceSession(this.current);
    } catch (error) {
      this.fail(error);
    }
  }

  private replaceSession(session: Session) {
    this.sessions = this.sessions.map((s) => (s.id === session.id ? session : s));
    if (this.current?.id === session.id) this.current = session;
  }

  private setReplying(id: number, on: boolean) {
    this.replying = on
      ? this.replying.includes(id) ? this.replying : [...this.replying, id]
      : this.replying.filter((r) => r !== id);
  }

  /** Runs a turn: events that arrive before the command answers wait for its result. */
  private async turn(start: (onEvent: (e: ChatEvent) => void) => Promise<TurnStart>): Promise<boolean> {
    let started: TurnStart | null = null;
    const early: ChatEvent[] = [];
    const handle = (event: ChatEvent) => {
      const sessionId = (started as TurnStart | null)?.session.id;
      if (sessionId === undefined) return;
      if (this.current?.id === sessionId) this.messages = applyChatEvent(this.messages, event);
      switch (event.kind) {
        case 'finished':
          if (event.reply.error_code === 'cancelled') {
            toasts.push({ kind: 'info', key: 'chat.stopped', action: null });
          }
          this.setReplying(sessionId, false);
          break;
        case 'failed':
          this.setReplying(sessionId, false);
          this.fail(event.error, sessionId);
          break;
        case 'title':
          this.replaceSession(event.session);
          break;
        case 'done':
          this.setReplying(sessionId, false);
          break;
        default:
          break;
      }
    };
    try {
      const result = await start((event) => (started ? handle(event) : early.push(event)));
      started = result;
      this.current = result.session;
      this.messages = applyTurnStart(this.messages, result);
      this.highlight = null;
      this.setReplying(result.session.id, true);
      this.sessions = [result.session, ...this.sessions.filter((s) => s.id !== result.session.id)];
      for (const event of early.splice(0)) handle(event);
      return true;
    } catch (error) {
      this.fail(error);
      return false;
    }
  }

  /**
   * Sends a message with the ids of its staged images; false (and a toast) when it was refused,
   * so the draft stays. A message of images alone has no text (the page allows that only when the
   * model sees images).
   */
  async send(text: string, attachments: string[] = []): Promise<boolean> {
    const check = checkDraft(text, this.maxChars);
    if (!check.ok && !(check.reason === 'empty' && attachments.length > 0)) return false;
    const body = check.ok ? check.text : '';
    const sessionId = this.current?.id ?? null;
    const setup = this.current
      ? { persona: this.current.persona, tone: this.current.tone, character: this.current.character }
      : this.setup;
    return this.turn((onEvent) =>
      this.api.send(sessionId, setup, body, this.historyTurns, onEvent, [...attachments]),
    );
  }

  async retry(sessionId?: number): Promise<boolean> {
    const id = sessionId ?? this.current?.id;
    if (id === undefined) return false;
    if (this.current?.id !== id) await this.open(id);
    return this.turn((onEvent) => this.api.retry(id, this.historyTurns, onEvent));
  }

  async stop(): Promise<void> {
    if (!this.current) return;
    try {
      await this.api.stop(this.current.id);
    } catch (error) {
      this.fail(error);
    }
  }

  async rename(id: number, title: string): Promise<boolean> {
    try {
      this.replaceSession(await this.api.rename(id, title));
      return true;
    } catch (error) {
      this.fail(error);
      return false;
    }
  }

  async remove(id: number): Promise<void> {
    try {
      await this.api.remove(id);
      this.sessions = this.sessions.filter((s) => s.id !== id);
      if (this.current?.id === id) this.newChat();
    } catch (error) {
      this.fail(error);
    }
  }

  async exportSession(id: number, format: 'markdown' | 'json'): Promise<void> {
    try {
      const path = await this.api.exportSession(id, format);
      if (path) toasts.push({ kind: 'info', key: 'chat.exported', vars: { path }, action: null });
    } catch (error) {
      this.fail(error);
    }
  }

  async saveCard(messageId: number, note: string): Promise<boolean> {
    try {
      await this.api.saveCard(messageId, note);
      toasts.push({ kind: 'info', key: 'chat.card_saved', action: null });
      return true;
    } catch (error) {
      this.fail(error);
      return false;
    }
  }
}

export const chat = new ChatStore();
