// The UI preferences (language, theme, default tone, history turns, voice input language), kept with
// tauri-plugin-store in `preferences.json` in the app's data directory. Outside the app (tests,
// a plain browser) they live in memory only. Engine settings are not here: they belong to
// config.json (see the Settings page).
import { isTauri } from './api';
import type { Tone } from './chat';
import type { SpeechLanguagePref } from './media';
import type { Lang } from './status';

export type Theme = 'system' | 'light' | 'dark';

export interface Preferences {
  /** null follows the system locale. */
  language: Lang | null;
  theme: Theme;
  defaultTone: Tone;
  /** User turns of history sent with each message. */
  historyTurns: number;
  /** What push-to-talk and audio files are transcribed as; `ui` follows the interface language. */
  speechLanguage: SpeechLanguagePref;
}

export const DEFAULT_PREFERENCES: Preferences = {
  language: null,
  theme: 'system',
  defaultTone: 'polite',
  historyTurns: 10,
  speechLanguage: 'ui',
};

export const HISTORY_TURNS_MIN = 0;
export const HISTORY_TURNS_MAX = 50;

/** Keeps only valid values; anything else falls back to its default. */
export function sanitizePreferences(raw: Record<string, unknown>): Preferences {
  const p = { ...DEFAULT_PREFERENCES };
  if (raw.language === 'ko' || raw.language === 'en' || raw.language === null) p.language = raw.language;
  if (raw.theme === 'system' || raw.theme === 'light' || raw.theme === 'dark') p.theme = raw.theme;
  if (raw.defaultTone === 'polite' || raw.defaultTone === 'friendly') p.defaultTone = raw.defaultTone;
  const turns = raw.historyTurns;
  if (typeof turns === 'number' && Number.isInteger(turns) && turns >= HISTORY_TURNS_MIN && turns <= HISTORY_TURNS_MAX) {
    p.historyTurns = turns;
  }
  const speech = raw.speechLanguage;
  if (speech === 'ui' || speech === 'ko' || speech === 'en' || speech === 'auto') p.speechLanguage = speech;
  return p;
}

const KEYS = ['language', 'theme', 'defaultTone', 'historyTurns', 'speechLanguage'] as const;

class PreferencesStore {
  value = $state<Preferences>({ ...DEFAULT_PREFERENCES });
  private store: import('@tauri-apps/plugin-store').Store | null = null;

  async load(): Promise<void> {
    if (!isTauri()) return;
    try {
      const { load } = await import('@tauri-apps/plugin-store');
      this.store = await load('preferences.json', { defaults: {}, autoSave: false });
      const raw: Record<string, unknown> = {};
      for (const key of KEYS) raw[key] = await this.store.get(key);
      this.value = sanitizePreferences(raw);
    } catch (error) {
      console.warn('preferences could not be loaded; using defaults', error);
    }
  }

  async set<K extends keyof Preferences>(key: K, value: Preferences[K]): Promise<void> {
    this.value = sanitizePreferences({ ...this.value, [key]: value });
    if (this.store) {
      await this.store.set(key, this.value[key]);
      await this.store.save();
    }
  }
}

export const preferences = new PreferencesStore();
