import { describe, expect, it } from 'vitest';
import { model, sampleStatus } from '../test/fixtures';
import {
  bannersFor,
  bannersForLoad,
  formatMegabytes,
  pickLanguage,
  visibleBanners,
} from './status';

describe('pickLanguage', () => {
  it('picks Korean for ko locales', () => {
    for (const locale of ['ko', 'ko-KR', 'ko_KR', 'ko_KR.UTF-8', 'KO-kr', ' ko-KR ']) {
      expect(pickLanguage(locale)).toBe('ko');
    }
  });

  it('picks English for everything else', () => {
    for (const locale of ['en-US', 'en', 'ja-JP', 'de_DE.UTF-8', 'C', 'POSIX', '', 'k', 'xko']) {
      expect(pickLanguage(locale)).toBe('en');
    }
    expect(pickLanguage(null)).toBe('en');
    expect(pickLanguage(undefined)).toBe('en');
  });
});

describe('bannersFor', () => {
  it('shows nothing when all is well', () => {
    expect(bannersFor(sampleStatus())).toEqual([]);
  });

  it('shows one config banner listing every problem', () => {
    const problems = [
      { path: 'models.office.n_ctx', message: 'must be at least 512' },
      { path: 'rag.top_k', message: 'must be a positive integer' },
    ];
    const banners = bannersFor(
      sampleStatus({ config_problems: problems, config_source: 'builtin_default' }),
    );
    expect(banners).toHaveLength(1);
    expect(banners[0]).toEqual({
      id: 'config',
      severity: 'error',
      onDefaults: true,
      configFile: '/home/user/.config/deskmate/config.json',
      problems,
    });
  });

  it('makes the config banner amber when the user file is still in use', () => {
    const banners = bannersFor(
      sampleStatus({ config_problems: [{ path: '', message: 'expected `}` at line 3' }] }),
    );
    expect(banners).toMatchObject([{ id: 'config', severity: 'warning', onDefaults: false }]);
  });

  it('warns about a missing office model', () => {
    const status = sampleStatus({
      models: [model('office', false), model('character'), model('speech'), model('embedding')],
    });
    expect(bannersFor(status)).toEqual([
      {
        id: 'model-office',
        severity: 'warning',
        role: 'office',
        roles: ['office'],
        configured: 'models/office.gguf',
        resolvedPath: '/home/user/.local/share/deskmate/models/office.gguf',
      },
    ]);
  });

  it('gives each persona its own banner and ignores speech and embedding', () => {
    const status = sampleStatus({
      models: [
        model('office', false),
        model('character', false),
        model('speech', false),
        model('embedding', false),
      ],
    });
    expect(bannersFor(status).map((b) => b.id)).toEqual(['model-office', 'model-character']);
  });

  it('gives one banner to personas that share the same missing file', () => {
    const shared = { installed: false, configured: 'qwen.gguf', resolved_path: '/m/qwen.gguf' };
    const status = sampleStatus({
      models: [
        { ...model('office'), ...shared },
        { ...model('character'), ...shared },
        model('speech'),
        model('embedding'),
      ],
    });
    expect(bannersFor(status)).toMatchObject([
      { id: 'model-office', roles: ['office', 'character'], resolvedPath: '/m/qwen.gguf' },
    ]);
  });

  it('gives no banner for a persona on a server, whose file is not used', () => {
    const status = sampleStatus({
      models: [
        { ...model('office'), installed: false, remote: 'gpu-server:8000' },
        model('character'),
        model('speech'),
        model('embedding'),
      ],
    });
    expect(bannersFor(status)).toEqual([]);
  });

  it('shows a store banner when the database failed to open', () => {
    const error = { code: 'store.open', message: 'database is locked' };
    const banners = bannersFor(sampleStatus({ store: { ok: false, error } }));
    expect(banners).toEqual([{ id: 'store', severity: 'error', error }]);
  });

  it('orders banners by severity: store, config, models', () => {
    const status = sampleStatus({
      store: { ok: false, error: { code: 'store.open', message: 'x' } },
      config_problems: [{ path: 'a', message: 'b' }],
      config_source: 'builtin_default',
      models: [model('character', false), model('office', false)],
    });
    expect(bannersFor(status).map((b) => b.id)).toEqual([
      'store',
      'config',
      'model-office',
      'model-character',
    ]);
  });
});

describe('bannersForLoad', () => {
  it('covers every load state', () => {
    expect(bannersForLoad({ kind: 'loading' })).toEqual([]);
    expect(bannersForLoad({ kind: 'no-tauri' })).toEqual([{ id: 'no-tauri', severity: 'info' }]);
    const error = { code: 'ui.unknown', message: 'boom' };
    expect(bannersForLoad({ kind: 'error', error })).toEqual([
      { id: 'status-error', severity: 'error', error },
    ]);
    expect(bannersForLoad({ kind: 'ok', status: sampleStatus() })).toEqual([]);
  });
});

describe('visibleBanners', () => {
  it('hides dismissed banners but never the not-in-Tauri notice', () => {
    const banners = [
      ...bannersForLoad({ kind: 'no-tauri' }),
      ...bannersFor(sampleStatus({ models: [model('office', false), model('character', false)] })),
    ];
    const visible = visibleBanners(banners, new Set(['model-office', 'no-tauri']));
    expect(visible.map((b) => b.id)).toEqual(['no-tauri', 'model-character']);
  });
});

describe('formatMegabytes', () => {
  it('formats decimal megabytes with one digit', () => {
    expect(formatMegabytes(2_345_678_901, 'en')).toBe('2,345.7');
    expect(formatMegabytes(0, 'en')).toBe('0.0');
    expect(formatMegabytes(1_500_000, 'ko')).toBe('1.5');
  });

  it('returns null for unknown sizes', () => {
    expect(formatMegabytes(null, 'en')).toBeNull();
    expect(formatMegabytes(undefined, 'en')).toBeNull();
    expect(formatMegabytes(Number.NaN, 'en')).toBeNull();
    expect(formatMegabytes(-1, 'en')).toBeNull();
  });
});
