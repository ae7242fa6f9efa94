// Fakes for the voice and image commands: a MediaApi whose level event and window drag-drop
// events can be fired by hand, and sample transcripts, image drafts and stored attachments.
import { vi } from 'vitest';
import type { ChatApi, MessageAttachment } from '../lib/chat';
import { fileNameOf, type DropEvent } from '../lib/dragDrop';
import type { ImageDraft, MediaApi, Transcript, VoiceStatus } from '../lib/media';

export const READY: VoiceStatus = { ready: true, problem: null, device: 'USB Mic', model: '/models/whisper.bin' };

export function notReady(code: string, message = `${code} (from the core)`): VoiceStatus {
  return { ready: false, problem: { code, message }, device: null, model: '/models/whisper.bin' };
}

export function transcript(text: string, language = 'en'): Transcript {
  return { text, language, segments: text ? [{ start_ms: 0, end_ms: 900, text }] : [], load_ms: 120, transcribe_ms: 340 };
}

export function imageDraft(name: string, overrides: Partial<ImageDraft> = {}): ImageDraft {
  return {
    id: `sha256-${name}`,
    name,
    mime: 'image/png',
    size_bytes: 245_000,
    width: 1920,
    height: 1080,
    model_width: 896,
    model_height: 504,
    thumbnail: `data:image/png;base64,${btoa(encodeURIComponent(name))}`,
    note: null,
    ...overrides,
  };
}

export function storedImage(id: number, fileName: string, overrides: Partial<MessageAttachment> = {}): MessageAttachment {
  return {
    id,
    kind: 'image',
    file_name: fileName,
    mime: 'image/png',
    size_bytes: 1234,
    width: 640,
    height: 480,
    thumbnail: `data:image/png;base64,${btoa(encodeURIComponent(fileName))}`,
    ...overrides,
  };
}

export interface FakeMedia {
  api: MediaApi;
  /** Fires `voice://level` with this dBFS. */
  level: (dbfs: number) => void;
  /** Fires a Tauri drag-drop event on the window (files dragged from the desktop). */
  drag: (event: DropEvent) => void;
  /** How many drag-drop subscriptions are live. */
  dragListeners: () => number;
}

export function fakeMedia(overrides: Partial<MediaApi> = {}): FakeMedia {
  const handlers: ((dbfs: number) => void)[] = [];
  const drags: ((event: DropEvent) => void)[] = [];
  const api: MediaApi = {
    voiceStatus: vi.fn(() => Promise.resolve(READY)),
    voiceStart: vi.fn(() => Promise.resolve({ device: 'USB Mic', sample_rate: 48_000, channels: 1 })),
    voiceStop: vi.fn(() => Promise.resolve(transcript('hello there'))),
    voiceCancel: vi.fn(() => Promise.resolve(null)),
    transcribeFile: vi.fn(() => Promise.resolve(transcript('from the file'))),
    transcribePath: vi.fn(() => Promise.resolve(transcript('from the path'))),
    attachImage: vi.fn((_bytes: Uint8Array, name: string) => Promise.resolve(imageDraft(name))),
    attachImagePath: vi.fn((path: string) => Promise.resolve(imageDraft(fileNameOf(path)))),
    visionSupport: vi.fn(() => Promise.resolve({ can_see: true, reason: null })),
    onLevel: vi.fn((handler: (dbfs: number) => void) => {
      handlers.push(handler);
      return Promise.resolve(() => {
        handlers.splice(handlers.indexOf(handler), 1);
      });
    }),
    onDragDrop: vi.fn((handler: (event: DropEvent) => void) => {
      drags.push(handler);
      return Promise.resolve(() => {
        const i = drags.indexOf(handler);
        if (i >= 0) drags.splice(i, 1);
      });
    }),
    ...overrides,
  };
  return {
    api,
    level: (dbfs) => [...handlers].forEach((h) => h(dbfs)),
    drag: (event) => [...drags].forEach((h) => h(event)),
    dragListeners: () => drags.length,
  };
}

/** A chat API that refuses everything but what a test overrides. */
export function fakeChatApi(overrides: Partial<ChatApi> = {}): ChatApi {
  const fail = () => Promise.reject(new Error('not expected'));
  return {
    sessions: vi.fn(() => Promise.resolve([])),
    open: vi.fn(fail), create: vi.fn(fail), setSetup: vi.fn(fail), rename: vi.fn(fail),
    remove: vi.fn(fail), exportSession: vi.fn(fail), send: vi.fn(fail),
    retry: vi.fn(fail), stop: vi.fn(() => Promise.resolve(true)), cards: vi.fn(fail),
    saveCard: vi.fn(fail), deleteCard: vi.fn(fail),
    ...overrides,
  } as ChatApi;
}
