import { describe, expect, it } from 'vitest';
import {
  DOCUMENT_ERROR_CODES,
  ERROR_CODES,
  IMAGE_ERROR_CODES,
  LOCAL_API_ERROR_CODES,
  VOICE_ERROR_CODES,
  describeChatError,
  describeDocumentError,
  describeImageError,
  describeLocalApiError,
  describeMonitorError,
  describeVoiceError,
  isErrorCode,
  isLocalApiErrorCode,
  type ErrorCode,
  type ErrorMessage,
} from './errors';
// The file as text, to check the layout the Rust test reads.
import errorsSource from './errors.ts?raw';
import { en, ko, makeTranslator, translate, type MessageKey } from './i18n';

const t = makeTranslator('en');
const tKo = makeTranslator('ko');

/** Every area's describe function, as the message key (and action) it gives a code. */
const AREAS: Record<string, (code: string) => Partial<ErrorMessage> & { key: MessageKey }> = {
  chat: (code) => describeChatError(code),
  documents: (code) => ({ key: describeDocumentError(code) }),
  voice: (code) => describeVoiceError(code),
  image: (code) => ({ key: describeImageError(code) }),
  monitor: (code) => ({ key: describeMonitorError(code) }),
  api: (code) => ({ key: describeLocalApiError(code) }),
};

const OTHER: Record<string, MessageKey> = {
  chat: 'chat.error.other',
  documents: 'documents.error.other',
  voice: 'voice.error.other',
  image: 'attach.error.other',
  monitor: 'monitor.error',
  api: 'api.error.other',
};

describe('ERROR_CODES', () => {
  it('lists each code once, in snake case', () => {
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length);
    for (const code of ERROR_CODES) expect(code).toMatch(/^[a-z][a-z_]*[a-z]$/);
    expect(ERROR_CODES).toContain('internal');
    expect(ERROR_CODES).toContain('monitor_unavailable');
  });

  it('is laid out as the Rust test reads it: one quoted code per line, comments aside', () => {
    const lines = errorsSource.split('\n');
    const start = lines.indexOf('export const ERROR_CODES = [');
    const end = lines.indexOf('] as const;', start);
    expect(start).toBeGreaterThanOrEqual(0);
    expect(end).toBeGreaterThan(start);
    const codes: string[] = [];
    for (const line of lines.slice(start + 1, end)) {
      if (line.trim().startsWith('//')) continue;
      const match = /^\s*'([a-z_]+)',$/.exec(line);
      expect(match, line).not.toBeNull();
      if (match?.[1]) codes.push(match[1]);
    }
    expect(codes).toEqual([...ERROR_CODES]);
  });

  it('tells known codes from others', () => {
    expect(isErrorCode('model_missing')).toBe(true);
    expect(isErrorCode('something_new')).toBe(false);
    expect(isErrorCode('ui.unknown')).toBe(false);
    expect(isErrorCode(null)).toBe(false);
    expect(isErrorCode(undefined)).toBe(false);
    // @ts-expect-error a code the core does not have is not an ErrorCode
    const wrong: ErrorCode = 'model_vanished';
    expect(isErrorCode(wrong)).toBe(false);
  });

  it('is the only list: every area list holds known codes', () => {
    for (const code of [...DOCUMENT_ERROR_CODES, ...VOICE_ERROR_CODES, ...IMAGE_ERROR_CODES, ...LOCAL_API_ERROR_CODES]) {
      expect(ERROR_CODES, code).toContain(code);
    }
  });
});

describe('every area', () => {
  it.each(Object.keys(AREAS))('%s has a message in both languages for every code', (area) => {
    const describeCode = AREAS[area]!;
    for (const code of ERROR_CODES) {
      const described = describeCode(code);
      expect(described.key, `${area}: ${code}`).toBeDefined();
      expect(en[described.key], `${area}: ${code}`).toBeTruthy();
      expect(ko[described.key], `${area}: ${code}`).toBeTruthy();
      if ('action' in described) expect(described.action, `${area}: ${code}`).not.toBeUndefined();
    }
  });

  it.each(Object.keys(AREAS))('%s falls back to its "other" message for a code it does not know', (area) => {
    const describeCode = AREAS[area]!;
    for (const code of ['something_new', 'ui.unknown', 'ui.bad_response', '', 'constructor', '__proto__', 'toString']) {
      const described = describeCode(code);
      expect(described.key, `${area}: ${code}`).toBe(OTHER[area]);
      if ('action' in described) expect(described.action, `${area}: ${code}`).toBeNull();
    }
  });

  it('says an earlier failure made the part unavailable, with nothing to retry', () => {
    expect(describeChatError('internal')).toEqual({ key: 'chat.error.internal', action: null });
    expect(describeDocumentError('internal')).toBe('documents.error.internal');
    expect(describeVoiceError('internal')).toEqual({ key: 'voice.error.internal', action: null });
    expect(describeImageError('internal')).toBe('attach.error.internal');
    expect(describeMonitorError('internal')).toBe('monitor.error.internal');
    expect(t('chat.error.internal')).toContain('earlier failure');
    expect(tKo('chat.error.internal')).toContain('다시 시작');
    expect(translate('en', 'attach.error.internal', { name: 'cat.png' })).toContain('cat.png');
  });

  it('says the hardware monitor could not start, with the code and message', () => {
    expect(describeMonitorError('monitor_unavailable')).toBe('monitor.error.unavailable');
    expect(describeMonitorError(null)).toBe('monitor.error');
    const text = t(describeMonitorError('monitor_unavailable'), { code: 'monitor_unavailable', message: 'no thread' });
    expect(text).toContain('could not be started');
    expect(text).toContain('monitor_unavailable: no thread');
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
    expect(describeChatError('attachment_missing')).toEqual({ key: 'chat.error.attachment_missing', action: null });
  });

  it('names a full disk and a busy database, without offering to regenerate the reply', () => {
    expect(describeChatError('disk_full')).toEqual({ key: 'chat.error.disk_full', action: null });
    expect(describeChatError('store_busy')).toEqual({ key: 'chat.error.store_busy', action: null });
    const t = makeTranslator('en');
    const tKo = makeTranslator('ko');
    expect(t('chat.error.disk_full')).toContain('The disk is full');
    expect(t('chat.error.store_busy')).toContain('Another Deskmate process');
    expect(tKo('chat.error.disk_full')).toContain('디스크 공간이 부족합니다');
    expect(tKo('chat.error.store_busy')).toContain('데이터베이스');
  });
});

describe('describeDocumentError', () => {
  it('has a message in both languages for every known code', () => {
    for (const code of DOCUMENT_ERROR_CODES) {
      const key = describeDocumentError(code);
      expect(key).toBe(`documents.error.${code}`);
      expect(en[key], code).toBeTruthy();
      expect(ko[key], code).toBeTruthy();
    }
    expect(t(describeDocumentError('open_failed'))).toContain('no longer there');
  });

  it('knows the codes of a higher-level file, a full disk, a busy database and an unsaved index', () => {
    for (const code of ['document_above_clearance', 'disk_full', 'store_busy', 'vector_index_unsaved']) {
      expect(DOCUMENT_ERROR_CODES, code).toContain(code);
      expect(describeDocumentError(code)).toBe(`documents.error.${code}`);
    }
    expect(t(describeDocumentError('document_above_clearance'))).toContain('Only a profile that can see it');
    expect(t(describeDocumentError('disk_full'))).toBe(
      'The disk is full. Free some space and try again; nothing already saved was lost.',
    );
    expect(t(describeDocumentError('store_busy'))).toContain('Another Deskmate process');
    expect(t(describeDocumentError('vector_index_unsaved'))).toContain('rebuilt each time Deskmate starts');
    expect(tKo(describeDocumentError('disk_full'))).toContain('디스크 공간이 부족합니다');
  });

  it('falls back to a generic message for other codes', () => {
    expect(describeDocumentError('store')).toBe('documents.error.other');
    expect(describeDocumentError('ui.unknown')).toBe('documents.error.other');
    expect(describeDocumentError(null)).toBe('documents.error.other');
  });
});

describe('describeVoiceError and describeImageError', () => {
  it('maps every voice code to its own message and offers Models for the model', () => {
    for (const code of VOICE_ERROR_CODES) {
      const { key } = describeVoiceError(code);
      expect(key).toBe(`voice.error.${code}`);
      expect(translate('ko', key)).not.toBe(translate('en', key));
    }
    expect(describeVoiceError('speech_model_missing')).toEqual({ key: 'voice.error.speech_model_missing', action: 'open_models' });
    expect(describeVoiceError('no_input_device').action).toBeNull();
    expect(describeVoiceError('something_new')).toEqual({ key: 'voice.error.other', action: null });
    expect(translate('en', describeVoiceError('input_permission_denied').key)).toMatch(/denied/);
  });

  it('names the file in image errors', () => {
    expect(describeImageError('image_corrupt')).toBe('attach.error.image_corrupt');
    expect(describeImageError('image_too_large')).toBe('attach.error.image_too_large');
    expect(describeImageError('image_unsupported')).toBe('attach.error.image_unsupported');
    expect(describeImageError('io')).toBe('attach.error.io');
    expect(describeImageError('something_new')).toBe('attach.error.other');
    expect(translate('ko', 'attach.error.io', { name: 'cat.png' })).toContain('cat.png');
    expect(translate('en', 'attach.error.image_corrupt', { name: 'cat.png' })).toContain('cat.png');
    expect(translate('ko', 'attach.error.image_corrupt', { name: 'cat.png' })).toContain('cat.png');
  });
});

describe('describeLocalApiError', () => {
  it('maps every known code to its own message and tells them from the others', () => {
    for (const code of LOCAL_API_ERROR_CODES) {
      expect(describeLocalApiError(code)).toBe(`api.error.${code}`);
      expect(isLocalApiErrorCode(code)).toBe(true);
      expect(translate('ko', describeLocalApiError(code))).not.toBe(translate('en', describeLocalApiError(code)));
    }
    for (const code of ['something_new', 'model_missing', '', null, undefined]) {
      expect(describeLocalApiError(code)).toBe('api.error.other');
      expect(isLocalApiErrorCode(code)).toBe(false);
    }
  });

  it('says a port in use can be changed in config.json', () => {
    expect(t(describeLocalApiError('io'))).toContain('api.port');
    expect(tKo(describeLocalApiError('io'))).toContain('api.port');
  });
});
