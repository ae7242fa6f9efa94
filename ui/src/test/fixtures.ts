// Sample `app_status` replies for tests.
import type { AppStatus, ModelStatus } from '../lib/types';

export function model(role: ModelStatus['role'], installed = true): ModelStatus {
  return {
    role,
    configured: `models/${role}.gguf`,
    resolved_path: `/home/user/.local/share/deskmate/models/${role}.gguf`,
    installed,
    size_bytes: installed ? 2_345_678_901 : null,
  };
}

export function sampleStatus(overrides: Partial<AppStatus> = {}): AppStatus {
  return {
    version: '0.1.0',
    locale: 'en-US',
    paths: {
      config_file: '/home/user/.config/deskmate/config.json',
      data_dir: '/home/user/.local/share/deskmate',
      models_dir: '/home/user/.local/share/deskmate/models',
      database: '/home/user/.local/share/deskmate/deskmate.sqlite3',
    },
    config_problems: [],
    config_source: 'user',
    store: { ok: true, schema_version: 1, sessions: 0, cards: 0, documents: 0 },
    models: [model('office'), model('character'), model('speech'), model('embedding')],
    ...overrides,
  };
}
