import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PAGES } from './lib/nav';
import { model, sampleStatus } from './test/fixtures';

const invoke = vi.hoisted(() => vi.fn());
vi.mock('@tauri-apps/api/core', () => ({ invoke }));

import App from './App.svelte';
import { DEFAULT_PREFERENCES, preferences } from './lib/prefs.svelte';

function enterTauri() {
  Object.defineProperty(window, '__TAURI_INTERNALS__', { value: {}, configurable: true });
}

async function ready() {
  await waitFor(() => expect(screen.getByTestId('app-ready').dataset.ready).toBe('true'));
}

afterEach(() => {
  preferences.value = { ...DEFAULT_PREFERENCES };
  Reflect.deleteProperty(window, '__TAURI_INTERNALS__');
  invoke.mockReset();
});

describe('App outside Tauri', () => {
  it('renders the shell with a notice instead of crashing', async () => {
    render(App);
    await ready();
    expect(screen.getByTestId('banner-no-tauri').textContent).toMatch(
      /not running inside the Deskmate app|Deskmate 앱 안에서 실행되고 있지 않습니다/i,
    );
    expect(screen.getByTestId('page-chat')).toBeTruthy();
    expect(invoke).not.toHaveBeenCalled();
  });

  it('navigates between all six pages, each with an h1', async () => {
    render(App);
    await ready();
    for (const page of PAGES) {
      await fireEvent.click(screen.getByTestId(`nav-${page}`));
      const root = screen.getByTestId(`page-${page}`);
      expect(root.querySelector('h1')?.textContent?.trim()).toBeTruthy();
      expect(screen.getByTestId(`nav-${page}`).getAttribute('aria-current')).toBe('page');
    }
  });
});

describe('App inside Tauri', () => {
  it('shows banners from app_status, dismisses them and links to Models', async () => {
    enterTauri();
    invoke.mockResolvedValueOnce(
      sampleStatus({
        locale: 'en-US',
        config_source: 'builtin_default',
        config_problems: [{ path: 'models.office.n_ctx', message: 'must be at least 512' }],
        models: [model('office', false), model('character')],
      }),
    );
    render(App);
    await ready();
    expect(invoke).toHaveBeenCalledWith('app_status', undefined);

    const config = screen.getByTestId('banner-config');
    expect(config.textContent).toContain('models.office.n_ctx');
    expect(config.textContent).toContain('must be at least 512');
    expect(config.textContent).toContain('/home/user/.config/deskmate/config.json');
    expect(config.textContent).toContain('built-in defaults');
    expect(screen.queryByTestId('banner-model-character')).toBeNull();

    await fireEvent.click(screen.getByTestId('banner-model-office-action'));
    const table = screen.getByTestId('models-table');
    expect(screen.getByTestId('model-row-office').dataset.installed).toBe('false');
    expect(table.textContent).toContain('2,345.7 MB');

    await fireEvent.click(screen.getByTestId('banner-config-dismiss'));
    expect(screen.queryByTestId('banner-config')).toBeNull();
    expect(screen.getByTestId('banner-model-office')).toBeTruthy();
  });

  it('follows the system locale and lets the toggle override it', async () => {
    enterTauri();
    invoke.mockResolvedValueOnce(sampleStatus({ locale: 'ko-KR' }));
    render(App);
    await ready();
    expect(screen.getByTestId('nav-settings').textContent).toContain('설정');
    expect(document.documentElement.lang).toBe('ko');

    await fireEvent.click(screen.getByTestId('lang-en'));
    expect(screen.getByTestId('nav-settings').textContent).toContain('Settings');
    expect(document.documentElement.lang).toBe('en');
  });

  it('shows a red banner when app_status fails', async () => {
    enterTauri();
    invoke.mockRejectedValueOnce({ code: 'config.read', message: 'permission denied' });
    render(App);
    await ready();
    const banner = screen.getByTestId('banner-status-error');
    expect(banner.dataset.severity).toBe('error');
    expect(banner.textContent).toContain('config.read');
  });

  it('lists the paths on the Settings page', async () => {
    enterTauri();
    invoke.mockResolvedValueOnce(sampleStatus());
    render(App, { initialPage: 'settings' });
    await ready();
    expect(screen.getByTestId('path-database').textContent).toBe(
      '/home/user/.local/share/deskmate/deskmate.sqlite3',
    );
  });
});
