import { afterEach, describe, expect, it, vi } from 'vitest';

const invoke = vi.hoisted(() => vi.fn());
vi.mock('@tauri-apps/api/core', () => ({
  invoke,
  Channel: class {
    onmessage: (message: unknown) => void = () => {};
  },
}));

import { ApiError } from './api';
import { chatApi } from './chat';
import {
  droppedPathKind,
  formatSize,
  insertTranscript,
  isAudioFile,
  isImageFile,
  levelPercent,
  mediaApi,
  resolveSpeechLanguage,
} from './media';
import { DEFAULT_PREFERENCES, sanitizePreferences } from './prefs.svelte';

afterEach(() => {
  invoke.mockReset();
});

describe('levelPercent', () => {
  it('maps -60..0 dBFS onto 0..100 % and clamps the rest', () => {
    expect(levelPercent(-60)).toBe(0);
    expect(levelPercent(-30)).toBe(50);
    expect(levelPercent(-15)).toBe(75);
    expect(levelPercent(0)).toBe(100);
    expect(levelPercent(-90)).toBe(0);
    expect(levelPercent(3)).toBe(100);
    expect(levelPercent(Number.NaN)).toBe(0);
    expect(levelPercent(Number.NEGATIVE_INFINITY)).toBe(0);
  });
});

describe('resolveSpeechLanguage', () => {
  it('follows the interface language by default and keeps an explicit choice', () => {
    const pref = sanitizePreferences({}).speechLanguage;
    expect(pref).toBe('ui');
    expect(resolveSpeechLanguage(pref, 'ko')).toBe('ko');
    expect(resolveSpeechLanguage(pref, 'en')).toBe('en');
    expect(resolveSpeechLanguage('en', 'ko')).toBe('en');
    expect(resolveSpeechLanguage('ko', 'en')).toBe('ko');
    expect(resolveSpeechLanguage('auto', 'ko')).toBe('auto');
  });

  it('keeps only known preference values', () => {
    expect(sanitizePreferences({ speechLanguage: 'auto' }).speechLanguage).toBe('auto');
    expect(sanitizePreferences({ speechLanguage: 'ja' }).speechLanguage).toBe(DEFAULT_PREFERENCES.speechLanguage);
  });
});

describe('dropped files', () => {
  it('tells audio from images by type or by name', () => {
    expect(isAudioFile({ name: 'memo.WAV', type: '' })).toBe(true);
    expect(isAudioFile({ name: 'memo', type: 'audio/mpeg' })).toBe(true);
    expect(isAudioFile({ name: 'a.flac', type: '' })).toBe(true);
    expect(isAudioFile({ name: 'a.ogg', type: '' })).toBe(true);
    expect(isAudioFile({ name: 'a.png', type: 'image/png' })).toBe(false);
    expect(isImageFile({ name: 'shot.JPG', type: '' })).toBe(true);
    expect(isImageFile({ name: 'scan.bmp', type: 'image/bmp' })).toBe(true);
    expect(isImageFile({ name: 'report.pdf', type: 'application/pdf' })).toBe(false);
  });
});

describe('droppedPathKind', () => {
  it('tells dropped paths apart by extension, whatever the case', () => {
    for (const ext of ['png', 'jpg', 'JPEG', 'webp', 'Gif']) expect(droppedPathKind(`/home/kim/pic.${ext}`)).toBe('image');
    for (const ext of ['wav', 'MP3', 'ogg', 'flac']) expect(droppedPathKind(`C:\\Users\\kim\\memo.${ext}`)).toBe('audio');
    expect(droppedPathKind('/home/kim/report.pdf')).toBeNull();
    expect(droppedPathKind('/home/kim.png/folder')).toBeNull();
    expect(droppedPathKind('/home/kim/scan.bmp')).toBeNull();
    expect(droppedPathKind('/home/kim/png')).toBeNull();
  });
});

describe('insertTranscript', () => {
  it('fills an empty box, appends after a space otherwise', () => {
    expect(insertTranscript('', ' hello ')).toBe('hello');
    expect(insertTranscript('  ', 'hello')).toBe('hello');
    expect(insertTranscript('Dear team,', 'the meeting moved')).toBe('Dear team, the meeting moved');
    expect(insertTranscript('Line one\n', '둘째 줄')).toBe('Line one\n둘째 줄');
    expect(insertTranscript('keep', '  ')).toBe('keep');
  });
});

describe('formatSize', () => {
  it('uses B, KB and MB', () => {
    expect(formatSize(512, 'en')).toBe('512 B');
    expect(formatSize(245_000, 'en')).toBe('245 KB');
    expect(formatSize(2_400_000, 'ko')).toBe('2.4 MB');
  });
});

describe('mediaApi', () => {
  it('asks the core to read dropped files from their paths', async () => {
    invoke.mockResolvedValueOnce({ id: 'abc' });
    await mediaApi.attachImagePath('/home/kim/보고서 1.png');
    expect(invoke).toHaveBeenCalledWith('image_attach_path', { path: '/home/kim/보고서 1.png' });
    invoke.mockResolvedValueOnce({ text: 'hi' });
    await mediaApi.transcribePath('/home/kim/memo.wav', 'ko');
    expect(invoke).toHaveBeenLastCalledWith('voice_transcribe_path', { path: '/home/kim/memo.wav', language: 'ko' });
  });

  it('sends image bytes as a raw body with the percent-encoded name in a header', async () => {
    invoke.mockResolvedValueOnce({ id: 'abc' });
    const bytes = new Uint8Array([137, 80, 78, 71]);
    await mediaApi.attachImage(bytes, '보고서 1.png');
    expect(invoke).toHaveBeenCalledWith('image_attach', bytes, {
      headers: { 'x-file-name': '%EB%B3%B4%EA%B3%A0%EC%84%9C%201.png' },
    });
  });

  it('sends audio bytes with the file name and the language', async () => {
    invoke.mockResolvedValueOnce({ text: 'hi' });
    const bytes = new Uint8Array([82, 73, 70, 70]);
    await mediaApi.transcribeFile(bytes, 'memo.wav', 'auto');
    expect(invoke).toHaveBeenCalledWith('voice_transcribe_file', bytes, {
      headers: { 'x-file-name': 'memo.wav', 'x-language': 'auto' },
    });
  });

  it('calls the voice and vision commands with their arguments', async () => {
    invoke.mockResolvedValue(null);
    await mediaApi.voiceStatus();
    await mediaApi.voiceStart();
    await mediaApi.voiceStop('ko');
    await mediaApi.voiceCancel();
    await mediaApi.visionSupport('character');
    expect(invoke.mock.calls).toEqual([
      ['voice_status', undefined],
      ['voice_start', undefined],
      ['voice_stop', { language: 'ko' }],
      ['voice_cancel', undefined],
      ['vision_support', { persona: 'character' }],
    ]);
  });

  it('turns a refused raw-body command into an ApiError with the core code', async () => {
    invoke.mockRejectedValueOnce({ code: 'image_corrupt', message: 'cat.png: bad PNG header' });
    const error: unknown = await mediaApi.attachImage(new Uint8Array([1]), 'cat.png').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ code: 'image_corrupt', message: 'cat.png: bad PNG header' });
  });

  it('passes the draft ids to chat_send as `attachments`', async () => {
    invoke.mockResolvedValue({});
    const setup = { persona: 'office' as const, tone: 'polite' as const, character: null };
    await chatApi.send(3, setup, 'Look', 10, () => {}, ['sha-a', 'sha-b']);
    await chatApi.send(null, setup, 'Plain', null, () => {});
    expect(invoke.mock.calls[0]?.[0]).toBe('chat_send');
    expect(invoke.mock.calls[0]?.[1]).toMatchObject({ sessionId: 3, text: 'Look', historyTurns: 10, attachments: ['sha-a', 'sha-b'] });
    expect(invoke.mock.calls[1]?.[1]).toMatchObject({ sessionId: null, attachments: [] });
  });
});
