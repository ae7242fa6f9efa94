import { describe, expect, it } from 'vitest';
import {
  en,
  formatParts,
  ko,
  makeTranslator,
  messages,
  placeholders,
  translate,
  type MessageKey,
} from './i18n';

// Compile-time parity: `ko` is typed `Record<MessageKey, string>`, so a missing or extra key
// fails `npm run check`. These lines fail to compile if that typing is ever loosened.
type Exact<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const koKeysMatch: Exact<keyof typeof ko, keyof typeof en> = true;

const keys = Object.keys(en) as MessageKey[];

describe('i18n dictionaries', () => {
  it('have the same keys at run time', () => {
    expect(koKeysMatch).toBe(true);
    expect(Object.keys(ko).sort()).toEqual([...keys].sort());
  });

  it.each(Object.entries(messages))('%s has no empty translation', (_lang, dict) => {
    const empty = Object.entries(dict).filter(([, text]) => text.trim() === '');
    expect(empty).toEqual([]);
  });

  it('use the same placeholders in both languages', () => {
    for (const key of keys) {
      expect(placeholders(ko[key]).sort(), key).toEqual(placeholders(en[key]).sort());
    }
  });
});

describe('formatParts', () => {
  it('splits text and values', () => {
    expect(formatParts('Run {cmd} now', { cmd: 'cargo xtask models' })).toEqual([
      { text: 'Run ' },
      { text: 'cargo xtask models', name: 'cmd' },
      { text: ' now' },
    ]);
  });

  it('keeps unknown placeholders as written', () => {
    expect(formatParts('{a}{b}', { a: 1 })).toEqual([{ text: '1', name: 'a' }, { text: '{b}' }]);
  });
});

describe('translate', () => {
  it('fills placeholders', () => {
    expect(translate('en', 'app.version', { version: '1.2.3' })).toBe('Version 1.2.3');
    expect(translate('ko', 'app.version', { version: '1.2.3' })).toBe('버전 1.2.3');
  });

  it('returns the template untouched without variables', () => {
    expect(translate('ko', 'nav.chat')).toBe('대화');
  });

  it('makes translators that know their language', () => {
    const t = makeTranslator('en');
    expect(t.lang).toBe('en');
    expect(t('nav.models')).toBe('Models');
    expect(t.parts('banner.status.body', { code: 'c', message: 'm' })).toEqual([
      { text: 'c', name: 'code' },
      { text: ': ' },
      { text: 'm', name: 'message' },
    ]);
  });
});
