// Voice and image input (Rust: src-tauri media_commands, core::voice and core::attachments): the
// shapes, the commands and the `voice://level` event behind them, and the pure helpers the chat
// composer uses: the level meter, the speech language, which dropped files are images or audio,
// and where a transcript goes in the message box. Its error codes become messages in ./errors.
// Files dropped from the desktop arrive as paths (Tauri's drag-and-drop, ./dragDrop) and go
// through the `_path` commands; files dropped inside the page, picked or pasted arrive as bytes.
import { listen, type UnlistenFn } from '@tauri-apps/api/event';
import { call, callRaw } from './api';
import { fileNameOf, onWindowDragDrop, type DropEvent } from './dragDrop';
import type { Persona } from './engine';
import type { Lang } from './status';
import type { CommandError } from './types';

// --- shapes (serde JSON from Rust) ---

/** Whether push-to-talk can work now (`voice_status`). */
export interface VoiceStatus {
  ready: boolean;
  /** Why not: no_input_device, input_device_failed, input_permission_denied, speech_model_missing, speech_helper_missing. */
  problem: CommandError | null;
  device: string | null;
  model: string;
}

/** The input a recording was started on (`voice_start`). */
export interface VoiceFormat {
  device: string;
  sample_rate: number;
  channels: number;
}

export interface TranscriptSegment {
  start_ms: number;
  end_ms: number;
  text: string;
}

export interface Transcript {
  text: string;
  /** The language spoken (detected, or the one asked for). */
  language: string;
  segments: TranscriptSegment[];
  load_ms: number;
  transcribe_ms: number;
}

/** An image staged by `image_attach`; its id goes with `chat_send`. */
export interface ImageDraft {
  /** sha256 of the file. */
  id: string;
  name: string;
  mime: string;
  size_bytes: number;
  width: number;
  height: number;
  /** The size the model gets. */
  model_width: number;
  model_height: number;
  /** A `data:image/png;base64,…` URL. */
  thumbnail: string;
  /** Something worth knowing, e.g. only a GIF's first frame is used. */
  note: string | null;
}

/** `vision_support`: whether a persona's model sees images. */
export interface VisionSupport {
  can_see: boolean;
  reason: CommandError | null;
}

/** The language `voice_stop`, `voice_transcribe_file` and `voice_transcribe_path` are asked for. */
export type SpeechLanguage = 'ko' | 'en' | 'auto';

/** The preference: `ui` follows the interface language. */
export type SpeechLanguagePref = 'ui' | SpeechLanguage;

// --- commands and events ---

export const VOICE_EVENT = {
  /** `{ dbfs }` about 20 times a second while recording (-90 silence, 0 full scale). */
  level: 'voice://level',
} as const;

export interface MediaApi {
  voiceStatus(): Promise<VoiceStatus>;
  voiceStart(): Promise<VoiceFormat>;
  /** Ends the recording and transcribes it. */
  voiceStop(language: SpeechLanguage): Promise<Transcript>;
  /** Throws away the recording, or stops the transcription in flight. */
  voiceCancel(): Promise<null>;
  transcribeFile(bytes: Uint8Array, name: string, language: SpeechLanguage): Promise<Transcript>;
  /** An audio file dropped from the desktop, read by the core from its path. */
  transcribePath(path: string, language: SpeechLanguage): Promise<Transcript>;
  attachImage(bytes: Uint8Array, name: string): Promise<ImageDraft>;
  /** An image dropped from the desktop, read by the core from its path. */
  attachImagePath(path: string): Promise<ImageDraft>;
  visionSupport(persona: Persona): Promise<VisionSupport>;
  /** The input level while recording, in dBFS. */
  onLevel(handler: (dbfs: number) => void): Promise<UnlistenFn>;
  /** Files dragged onto the window from the desktop (with their paths). */
  onDragDrop(handler: (event: DropEvent) => void): Promise<UnlistenFn>;
}

export const mediaApi: MediaApi = {
  voiceStatus: () => call<VoiceStatus>('voice_status'),
  voiceStart: () => call<VoiceFormat>('voice_start'),
  voiceStop: (language) => call<Transcript>('voice_stop', { language }),
  voiceCancel: () => call<null>('voice_cancel'),
  transcribeFile: (bytes, name, language) =>
    callRaw<Transcript>('voice_transcribe_file', bytes, {
      'x-file-name': encodeURIComponent(name),
      'x-language': language,
    }),
  transcribePath: (path, language) => call<Transcript>('voice_transcribe_path', { path, language }),
  attachImage: (bytes, name) =>
    callRaw<ImageDraft>('image_attach', bytes, { 'x-file-name': encodeURIComponent(name) }),
  attachImagePath: (path) => call<ImageDraft>('image_attach_path', { path }),
  visionSupport: (persona) => call<VisionSupport>('vision_support', { persona }),
  onLevel: (handler) =>
    listen<{ dbfs: number }>(VOICE_EVENT.level, (e) => handler(Number(e.payload?.dbfs))),
  onDragDrop: onWindowDragDrop,
};

// --- limits ---

/** Images one message may carry. */
export const MAX_IMAGES = 4;
/** A press shorter than this is a mis-click, not speech. */
export const SHORT_PRESS_MS = 300;
/** The keyboard shortcut held in the message box to talk (`event.altKey` and `event.code`). */
export const TALK_SHORTCUT = { label: 'Alt+M', code: 'KeyM' } as const;
/** What the attach button's file dialog offers. */
export const IMAGE_ACCEPT = 'image/png,image/jpeg,image/webp,image/gif';

// --- pure helpers ---

/** The level meter's width: -60 dBFS (or quieter) is 0 %, 0 dBFS is 100 %. */
export function levelPercent(dbfs: number): number {
  if (!Number.isFinite(dbfs)) return 0;
  return Math.round(Math.max(0, Math.min(100, ((dbfs + 60) / 60) * 100)));
}

/** The language to transcribe in: the interface's for `ui`, otherwise the one chosen. */
export function resolveSpeechLanguage(pref: SpeechLanguagePref, uiLang: Lang): SpeechLanguage {
  return pref === 'ui' ? uiLang : pref;
}

function extensionOf(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot < 0 ? '' : name.slice(dot + 1).toLowerCase();
}

const AUDIO_EXTENSIONS = new Set(['wav', 'mp3', 'ogg', 'flac']);
const IMAGE_EXTENSIONS = new Set(['png', 'jpg', 'jpeg', 'webp', 'gif']);

/** An audio file to transcribe: an `audio/*` type, or a wav/mp3/ogg/flac name. */
export function isAudioFile(file: { name: string; type: string }): boolean {
  return file.type.startsWith('audio/') || AUDIO_EXTENSIONS.has(extensionOf(file.name));
}

/** An image to attach: an `image/*` type, or a png/jpeg/webp/gif name (the core checks the rest). */
export function isImageFile(file: { name: string; type: string }): boolean {
  return file.type.startsWith('image/') || IMAGE_EXTENSIONS.has(extensionOf(file.name));
}

/** What a path dropped on the window is to the composer, by its extension (case-insensitive). */
export function droppedPathKind(path: string): 'image' | 'audio' | null {
  const file = { name: fileNameOf(path), type: '' };
  if (isAudioFile(file)) return 'audio';
  if (isImageFile(file)) return 'image';
  return null;
}

/** The message box after a transcript: appended after a space when there is text already. */
export function insertTranscript(draft: string, text: string): string {
  const spoken = text.trim();
  if (spoken === '') return draft;
  if (draft.trim() === '') return spoken;
  return /\s$/.test(draft) ? draft + spoken : `${draft} ${spoken}`;
}

/** "850 KB", "2.4 MB" (decimal units). */
export function formatSize(bytes: number, lang: Lang): string {
  const locale = lang === 'ko' ? 'ko-KR' : 'en-US';
  if (!Number.isFinite(bytes) || bytes < 0) return '—';
  if (bytes < 1_000) return `${bytes} B`;
  if (bytes < 1_000_000) {
    return `${new Intl.NumberFormat(locale, { maximumFractionDigits: 0 }).format(bytes / 1_000)} KB`;
  }
  return `${new Intl.NumberFormat(locale, { maximumFractionDigits: 1 }).format(bytes / 1_000_000)} MB`;
}
