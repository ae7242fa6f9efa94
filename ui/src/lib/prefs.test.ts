import { describe, expect, it } from 'vitest';
import { DEFAULT_PREFERENCES, sanitizePreferences } from './prefs.svelte';

describe('sanitizePreferences', () => {
  it('keeps valid values and replaces the rest with defaults', () => {
    expect(sanitizePreferences({ language: 'ko', theme: 'dark', defaultTone: 'friendly', historyTurns: 4, speechLanguage: 'auto' })).toEqual({
      language: 'ko', theme: 'dark', defaultTone: 'friendly', historyTurns: 4, speechLanguage: 'auto',
    });
    expect(sanitizePreferences({ language: 'fr', theme: 'pink', defaultTone: 'rude', historyTurns: 3.5, speechLanguage: 'fr' })).toEqual(DEFAULT_PREFERENCES);
    expect(sanitizePreferences({ historyTurns: 51 }).historyTurns).toBe(DEFAULT_PREFERENCES.historyTurns);
    expect(sanitizePreferences({}).language).toBeNull();
  });
});
