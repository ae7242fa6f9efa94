import { fireEvent, render, screen } from '@testing-library/svelte';
import { afterEach, describe, expect, it } from 'vitest';
import { makeTranslator } from '../lib/i18n';
import { DEFAULT_PREFERENCES, preferences } from '../lib/prefs.svelte';
import { sampleStatus } from '../test/fixtures';
import SettingsPage from './SettingsPage.svelte';

afterEach(() => {
  preferences.value = { ...DEFAULT_PREFERENCES };
});

describe('SettingsPage voice input language', () => {
  it('follows the interface language by default and stores the choice', async () => {
    render(SettingsPage, { t: makeTranslator('en'), load: { kind: 'ok', status: sampleStatus() } });
    const select = screen.getByTestId('settings-speech-language') as HTMLSelectElement;
    expect(select.value).toBe('ui');
    expect([...select.options].map((o) => [o.value, o.textContent])).toEqual([
      ['ui', 'Follow the interface language'],
      ['ko', '한국어'],
      ['en', 'English'],
      ['auto', 'Auto-detect'],
    ]);
    await fireEvent.change(select, { target: { value: 'auto' } });
    expect(preferences.value.speechLanguage).toBe('auto');
    await fireEvent.change(select, { target: { value: 'en' } });
    expect(preferences.value.speechLanguage).toBe('en');
  });
});
