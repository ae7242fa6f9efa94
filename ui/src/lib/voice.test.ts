import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { fakeMedia, notReady, transcript, type FakeMedia } from '../test/media';
import type { SpeechLanguage, Transcript, VoiceFormat } from './media';
import { toasts } from './toasts.svelte';
import { VoiceInput } from './voice.svelte';

let clock = 0;
let fake: FakeMedia;
let texts: string[];
let language: SpeechLanguage;

function voice(): VoiceInput {
  return new VoiceInput({ api: fake.api, language: () => language, onText: (t) => texts.push(t), now: () => clock });
}

async function ready(): Promise<VoiceInput> {
  const v = voice();
  await v.refresh();
  return v;
}

beforeEach(() => {
  clock = 1_000;
  fake = fakeMedia();
  texts = [];
  language = 'ko';
  toasts.items = [];
});

afterEach(() => {
  toasts.items = [];
});

describe('VoiceInput', () => {
  it('records while held, shows the level, then hands the transcript over without sending', async () => {
    const v = await ready();
    expect(v.ready).toBe(true);
    await v.press();
    expect(fake.api.voiceStart).toHaveBeenCalledTimes(1);
    expect(v.phase).toBe('recording');
    fake.level(-30);
    expect(v.level).toBe(50);
    fake.level(-90);
    expect(v.level).toBe(0);
    clock += 1_500;
    let stop: (value: Transcript) => void = () => {};
    fake.api.voiceStop = vi.fn(() => new Promise<Transcript>((resolve) => (stop = resolve)));
    const released = v.release();
    expect(v.phase).toBe('transcribing');
    expect(fake.api.voiceStop).toHaveBeenCalledWith('ko');
    stop(transcript('  회의는 3시로 옮겼어요 '));
    await released;
    expect(v.phase).toBe('idle');
    expect(texts).toEqual(['회의는 3시로 옮겼어요']);
    expect(toasts.items).toEqual([]);
  });

  it('asks for the language chosen at release time', async () => {
    const v = await ready();
    await v.press();
    language = 'auto';
    clock += 800;
    await v.release();
    expect(fake.api.voiceStop).toHaveBeenCalledWith('auto');
  });

  it('treats a press under 300 ms as a mis-click: cancelled, with a hint', async () => {
    const v = await ready();
    await v.press();
    clock += 120;
    await v.release();
    expect(fake.api.voiceStop).not.toHaveBeenCalled();
    expect(fake.api.voiceCancel).toHaveBeenCalledTimes(1);
    expect(v.phase).toBe('idle');
    expect(texts).toEqual([]);
    expect(toasts.items[0]).toMatchObject({ kind: 'info', key: 'voice.hold_hint' });
  });

  it('also cancels a short press released before the recording had started', async () => {
    let started: () => void = () => {};
    fake.api.voiceStart = vi.fn(() => new Promise<VoiceFormat>((resolve) => (started = () => resolve({ device: 'm', sample_rate: 16_000, channels: 1 }))));
    const v = await ready();
    const pressing = v.press();
    await Promise.resolve();
    clock += 100;
    await v.release();
    expect(v.phase).toBe('recording');
    started();
    await pressing;
    expect(fake.api.voiceStop).not.toHaveBeenCalled();
    expect(fake.api.voiceCancel).toHaveBeenCalledTimes(1);
    expect(v.phase).toBe('idle');
  });

  it('says so when nothing was heard', async () => {
    fake.api.voiceStop = vi.fn(() => Promise.resolve(transcript('   ')));
    const v = await ready();
    await v.press();
    clock += 2_000;
    await v.release();
    expect(texts).toEqual([]);
    expect(toasts.items[0]).toMatchObject({ kind: 'info', key: 'voice.nothing_heard' });
  });

  it('turns a failed start or transcription into a red toast with the mapped message', async () => {
    fake.api.voiceStart = vi.fn(() => Promise.reject({ code: 'input_permission_denied', message: 'default: access denied' }));
    const v = await ready();
    await v.press();
    expect(v.phase).toBe('idle');
    expect(toasts.items[0]).toMatchObject({ kind: 'error', key: 'voice.error.input_permission_denied', code: 'input_permission_denied', action: null });

    fake.api.voiceStart = vi.fn(() => Promise.resolve({ device: 'm', sample_rate: 16_000, channels: 1 }));
    fake.api.voiceStop = vi.fn(() => Promise.reject({ code: 'speech_model_missing', message: 'ggml-small.bin: not found' }));
    await v.press();
    clock += 1_000;
    await v.release();
    expect(v.phase).toBe('idle');
    expect(toasts.items[1]).toMatchObject({ kind: 'error', key: 'voice.error.speech_model_missing', action: 'open_models' });
  });

  it('Esc throws the recording away; a transcription cancelled in flight reports nothing', async () => {
    const v = await ready();
    await v.press();
    await v.cancel();
    expect(fake.api.voiceCancel).toHaveBeenCalledTimes(1);
    expect(v.phase).toBe('idle');

    let fail: (error: unknown) => void = () => {};
    fake.api.voiceStop = vi.fn(() => new Promise<Transcript>((_resolve, reject) => (fail = reject)));
    await v.press();
    clock += 1_000;
    const released = v.release();
    expect(v.phase).toBe('transcribing');
    await v.cancel();
    expect(v.phase).toBe('idle');
    fail({ code: 'cancelled', message: 'cancelled' });
    await released;
    expect(fake.api.voiceCancel).toHaveBeenCalledTimes(2);
    expect(texts).toEqual([]);
    expect(toasts.items).toEqual([]);
  });

  it('does nothing when voice_status is not ready', async () => {
    fake.api.voiceStatus = vi.fn(() => Promise.resolve(notReady('no_input_device')));
    const v = await ready();
    expect(v.ready).toBe(false);
    expect(v.status?.problem?.code).toBe('no_input_device');
    await v.press();
    expect(fake.api.voiceStart).not.toHaveBeenCalled();
  });

  it('counts a failed voice_status as not ready, with its error as the reason', async () => {
    fake.api.voiceStatus = vi.fn(() => Promise.reject({ code: 'speech_helper_missing', message: 'whisper-cli not found' }));
    const v = await ready();
    expect(v.ready).toBe(false);
    expect(v.status?.problem).toEqual({ code: 'speech_helper_missing', message: 'whisper-cli not found' });
  });

  it('transcribes an audio file into the box', async () => {
    const v = await ready();
    const file = new File([new Uint8Array([1, 2, 3])], '회의 메모.wav', { type: 'audio/wav' });
    await v.transcribeFile(file);
    expect(fake.api.transcribeFile).toHaveBeenCalledWith(new Uint8Array([1, 2, 3]), '회의 메모.wav', 'ko');
    expect(texts).toEqual(['from the file']);
    fake.api.transcribeFile = vi.fn(() => Promise.reject({ code: 'audio_unsupported', message: 'x.ogg: codec' }));
    await v.transcribeFile(file);
    expect(toasts.items[0]).toMatchObject({ kind: 'error', key: 'voice.error.audio_unsupported' });
  });

  it('transcribes an audio file dropped from the desktop by its path', async () => {
    const v = await ready();
    await v.transcribePath('/home/kim/회의 메모.flac');
    expect(fake.api.transcribePath).toHaveBeenCalledWith('/home/kim/회의 메모.flac', 'ko');
    expect(texts).toEqual(['from the path']);
    expect(v.state).toBe('idle');
    fake.api.transcribePath = vi.fn(() => Promise.reject({ code: 'io', message: 'No such file or directory' }));
    await v.transcribePath('/home/kim/gone.wav');
    expect(toasts.items[0]).toMatchObject({ kind: 'error', key: 'voice.error.io', code: 'io', detail: 'No such file or directory' });
    expect(texts).toEqual(['from the path']);
  });
});
