// The shell with the hardware monitor wired in: the gauge in the top bar, the Monitor page and
// the pause while the window is hidden.
import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { gpu, history, monitorSample, monitorSnapshot, sampleStatus } from './test/fixtures';
import type { MonitorSample } from './lib/types';

const invoke = vi.hoisted(() => vi.fn());
const listen = vi.hoisted(() => vi.fn());
vi.mock('@tauri-apps/api/core', () => ({ invoke }));
vi.mock('@tauri-apps/api/event', () => ({ listen }));

import App from './App.svelte';
import { DEFAULT_PREFERENCES, preferences } from './lib/prefs.svelte';

afterEach(() => {
  preferences.value = { ...DEFAULT_PREFERENCES };
  Reflect.deleteProperty(window, '__TAURI_INTERNALS__');
  Reflect.deleteProperty(document, 'hidden');
  invoke.mockReset();
  listen.mockReset();
});

describe('App with the monitor', () => {
  it('calls nothing and hides the gauge outside Tauri', async () => {
    render(App);
    await waitFor(() => expect(screen.getByTestId('app-ready').dataset.ready).toBe('true'));
    expect(screen.queryByTestId('gauge')).toBeNull();
    expect(invoke).not.toHaveBeenCalled();
    expect(listen).not.toHaveBeenCalled();
  });

  it('shows the gauge from the snapshot, follows events, opens the page and pauses when hidden', async () => {
    Object.defineProperty(window, '__TAURI_INTERNALS__', { value: {}, configurable: true });
    const samples = history(10);
    invoke.mockImplementation((command: string) => {
      if (command === 'app_status') return Promise.resolve(sampleStatus());
      if (command === 'monitor_snapshot') return Promise.resolve(monitorSnapshot({ samples }));
      return Promise.resolve(null);
    });
    let emit: (payload: MonitorSample) => void = () => {};
    const unlisten = vi.fn();
    listen.mockImplementation((event: string, handler: (e: { payload: unknown }) => void) => {
      expect(event).toBe('monitor://sample');
      emit = (payload) => handler({ payload });
      return Promise.resolve(unlisten);
    });

    const { unmount } = render(App);
    const gauge = await screen.findByTestId('gauge');
    expect(invoke.mock.calls[0]?.[0]).toBe('app_status');
    expect(invoke).toHaveBeenCalledWith('monitor_snapshot', undefined);
    expect(screen.getByTestId('gauge-gpu-0').textContent).toContain('6.1/24.0 GB');

    emit(
      monitorSample({
        timestamp_ms: samples.at(-1)!.timestamp_ms + 1000,
        gpus: [gpu(0, { temperature_c: 88 })],
        warnings: [{ kind: 'temperature', gpu_index: 0, value: 88, threshold: 85 }],
      }),
    );
    await waitFor(() => expect(screen.getByTestId('gauge-gpu-0').textContent).toContain('88°C'));
    expect(gauge.dataset.level).toBe('warning');

    await fireEvent.click(gauge);
    expect(screen.getByTestId('page-monitor')).toBeTruthy();
    expect(screen.getByTestId('nav-monitor').getAttribute('aria-current')).toBe('page');
    expect(screen.getByTestId('monitor-warning').textContent).toContain('GPU 0 is at 88 °C');
    expect(screen.getByTestId('chart-gpu0-temp')).toBeTruthy();

    Object.defineProperty(document, 'hidden', { value: true, configurable: true });
    document.dispatchEvent(new Event('visibilitychange'));
    expect(invoke).toHaveBeenLastCalledWith('monitor_set_visible', { visible: false });
    Object.defineProperty(document, 'hidden', { value: false, configurable: true });
    document.dispatchEvent(new Event('visibilitychange'));
    expect(invoke).toHaveBeenCalledWith('monitor_set_visible', { visible: true });
    // At start, when the Monitor page opened (where the models sit now), and after the window
    // was shown again.
    expect(invoke.mock.calls.filter(([c]) => c === 'monitor_snapshot')).toHaveLength(3);

    unmount();
    expect(unlisten).toHaveBeenCalledOnce();
  });
});
