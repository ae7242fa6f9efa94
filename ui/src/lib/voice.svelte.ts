// Push-to-talk and audio files for the message box. A press starts a recording (`voice_start`),
// the release transcribes it (`voice_stop`) and hands the text to the box; Esc throws it away
// (`voice_cancel`). A press shorter than SHORT_PRESS_MS is a mis-click: cancelled, with a hint.
// Nothing is ever sent from here: the text only goes into the box. Failures become toasts.
import type { UnlistenFn } from '@tauri-apps/api/event';
import { isTauri, toCommandError, UI_ERROR } from './api';
import { describeVoiceError } from './errors';
import {
  levelPercent,
  mediaApi,
  SHORT_PRESS_MS,
  type MediaApi,
  type SpeechLanguage,
  type Transcript,
  type VoiceStatus,
} from './media';
import { toasts } from './toasts.svelte';

function isVoiceStatus(value: unknown): value is VoiceStatus {
  return typeof value === 'object' && value !== null && typeof (value as { ready?: unknown }).ready === 'boolean';
}

/** `starting` is between the press and `voice_start`'s answer. */
export type VoiceState = 'idle' | 'starting' | 'recording' | 'transcribing';

export type VoiceApi = Pick<
  MediaApi,
  'voiceStatus' | 'voiceStart' | 'voiceStop' | 'voiceCancel' | 'transcribeFile' | 'transcribePath' | 'onLevel'
>;

export interface VoiceOptions {
  api?: VoiceApi;
  /** The language to transcribe in, asked at each release or file. */
  language: () => SpeechLanguage;
  /** A non-empty transcript for the message box. */
  onText: (text: string) => void;
  /** Milliseconds; injectable for tests. */
  now?: () => number;
}

export class VoiceInput {
  /** The last `voice_status`; null until it has answered. */
  status = $state<VoiceStatus | null>(null);
  state = $state<VoiceState>('idle');
  /** The input level, 0–100 %. */
  level = $state(0);
  /** Whole seconds since the recording started. */
  elapsed = $state(0);

  private readonly api: VoiceApi;
  private readonly language: () => SpeechLanguage;
  private readonly onText: (text: string) => void;
  private readonly now: () => number;
  /** Bumped by every press, file and cancel: a late answer of an older one is ignored. */
  private run = 0;
  private pressedAt = 0;
  private releasedAt: number | null = null;
  private startedAt = 0;
  private timer: ReturnType<typeof setInterval> | undefined;
  private unlisten: UnlistenFn | null = null;

  constructor(options: VoiceOptions) {
    this.api = options.api ?? mediaApi;
    this.language = options.language;
    this.onText = options.onText;
    this.now = options.now ?? (() => Date.now());
  }

  get ready(): boolean {
    return this.status?.ready === true;
  }

  /** What the page shows: `starting` already counts as recording. */
  get phase(): 'idle' | 'recording' | 'transcribing' {
    return this.state === 'starting' ? 'recording' : this.state;
  }

  /** Read through a method: the compiler would keep `state` narrowed across the awaits. */
  private isIdle(): boolean {
    return this.state === 'idle';
  }

  private connected(): boolean {
    return this.api !== mediaApi || isTauri();
  }

  private fail(error: unknown): void {
    const e = toCommandError(error);
    const { key, action } = describeVoiceError(e.code);
    toasts.push({ kind: 'error', key, code: e.code, detail: e.message, action });
  }

  /** Asks `voice_status` (when the chat shows, and after the settings changed). */
  async refresh(): Promise<void> {
    if (!this.connected()) {
      this.status = { ready: false, problem: { code: UI_ERROR.unknown, message: 'not running inside the app' }, device: null, model: '' };
      return;
    }
    try {
      const status: unknown = await this.api.voiceStatus();
      this.status = isVoiceStatus(status)
        ? status
        : { ready: false, problem: { code: UI_ERROR.badResponse, message: 'voice_status: not a VoiceStatus' }, device: null, model: '' };
    } catch (error) {
      this.status = { ready: false, problem: toCommandError(error), device: null, model: '' };
    }
  }

  /** The button or the shortcut went down. */
  async press(): Promise<void> {
    if (!this.ready || this.state !== 'idle') return;
    const run = ++this.run;
    this.state = 'starting';
    this.level = 0;
    this.elapsed = 0;
    this.pressedAt = this.now();
    this.releasedAt = null;
    try {
      const unlisten = await this.api.onLevel((dbfs) => {
        if (this.run === run && this.state === 'recording') this.level = levelPercent(dbfs);
      });
      if (this.run === run) this.unlisten = unlisten;
      else unlisten();
    } catch {
      // Without the event the meter stays still; the recording still works.
    }
    if (this.run !== run) return;
    try {
      await this.api.voiceStart();
    } catch (error) {
      if (this.run !== run) return;
      this.reset();
      this.fail(error);
      return;
    }
    if (this.run !== run) {
      // Cancelled while starting: the recording began after the cancel, so stop it again
      // (unless another press owns the microphone by now).
      if (this.isIdle()) void this.api.voiceCancel().catch(() => {});
      return;
    }
    this.state = 'recording';
    this.startedAt = this.now();
    this.timer = setInterval(() => {
      this.elapsed = Math.max(0, Math.floor((this.now() - this.startedAt) / 1000));
    }, 250);
    if (this.releasedAt !== null) await this.finish(run);
  }

  /** The button or the shortcut went up (or the pointer left the button). */
  async release(): Promise<void> {
    if (this.state === 'starting') {
      this.releasedAt ??= this.now();
      return;
    }
    if (this.state !== 'recording') return;
    this.releasedAt = this.now();
    await this.finish(this.run);
  }

  private async finish(run: number): Promise<void> {
    const held = (this.releasedAt ?? this.now()) - this.pressedAt;
    this.stopMeter();
    if (held < SHORT_PRESS_MS) {
      this.run++;
      this.reset();
      try {
        await this.api.voiceCancel();
      } catch {
        // Nothing was wanted from this recording anyway.
      }
      toasts.push({ kind: 'info', key: 'voice.hold_hint', action: null });
      return;
    }
    this.state = 'transcribing';
    await this.deliver(run, () => this.api.voiceStop(this.language()));
  }

  /** Transcribes an audio file dropped on the message box (inside the page: its bytes). */
  async transcribeFile(file: File): Promise<void> {
    await this.transcribeDropped(async (language) =>
      this.api.transcribeFile(new Uint8Array(await file.arrayBuffer()), file.name, language),
    );
  }

  /** Transcribes an audio file dropped on the window from the desktop (its path). */
  async transcribePath(path: string): Promise<void> {
    await this.transcribeDropped((language) => this.api.transcribePath(path, language));
  }

  private async transcribeDropped(transcribe: (language: SpeechLanguage) => Promise<Transcript>): Promise<void> {
    if (this.state !== 'idle') return;
    const run = ++this.run;
    this.state = 'transcribing';
    await this.deliver(run, () => transcribe(this.language()));
  }

  private async deliver(run: number, transcribe: () => Promise<Transcript>): Promise<void> {
    let transcript: Transcript;
    try {
      transcript = await transcribe();
    } catch (error) {
      if (this.run !== run) return;
      this.reset();
      // `cancelled` answers an Esc: nothing to report.
      if (toCommandError(error).code !== 'cancelled') this.fail(error);
      return;
    }
    if (this.run !== run) return;
    this.reset();
    const text = (transcript?.text ?? '').trim();
    if (text === '') toasts.push({ kind: 'info', key: 'voice.nothing_heard', action: null });
    else this.onText(text);
  }

  /** Esc: throws the recording away, or stops the transcription in flight. */
  async cancel(): Promise<void> {
    if (this.state === 'idle') return;
    this.run++;
    this.reset();
    try {
      await this.api.voiceCancel();
    } catch (error) {
      this.fail(error);
    }
  }

  /** The page goes away: nothing keeps recording. */
  dispose(): void {
    if (this.state !== 'idle') void this.cancel();
    this.stopMeter();
  }

  private stopMeter(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.unlisten?.();
    this.unlisten = null;
  }

  private reset(): void {
    this.stopMeter();
    this.state = 'idle';
    this.level = 0;
    this.elapsed = 0;
    this.releasedAt = null;
  }
}
