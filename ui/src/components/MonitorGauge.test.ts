import { fireEvent, render, screen } from '@testing-library/svelte';
import { describe, expect, it, vi } from 'vitest';
import { makeTranslator } from '../lib/i18n';
import { gpu, monitorSample, noGpuSample } from '../test/fixtures';
import MonitorGauge from './MonitorGauge.svelte';

const t = makeTranslator('en');

describe('MonitorGauge', () => {
  it('is hidden without a sample', () => {
    render(MonitorGauge, { t, sample: null, onOpen: () => {} });
    expect(screen.queryByTestId('gauge')).toBeNull();
  });

  it('shows VRAM and temperature per GPU and opens the monitor', async () => {
    const onOpen = vi.fn();
    render(MonitorGauge, { t, sample: monitorSample({ gpus: [gpu(0), gpu(1)] }), onOpen });
    const gauge = screen.getByTestId('gauge');
    expect(gauge.dataset.level).toBe('ok');
    expect(screen.getByTestId('gauge-gpu-0').textContent).toMatch(/GPU0\s*6\.1\/24\.0 GB\s*63°C/);
    expect(screen.getByTestId('gauge-gpu-1')).toBeTruthy();
    expect(screen.queryByTestId('gauge-cpu')).toBeNull();
    expect(screen.queryByTestId('gauge-warning')).toBeNull();
    expect(gauge.getAttribute('aria-label')).toContain('GPU 0: VRAM 6.1/24.0 GB, 63°C');
    await fireEvent.click(gauge);
    expect(onOpen).toHaveBeenCalledOnce();
  });

  it('shows CPU and RAM without a GPU', () => {
    render(MonitorGauge, { t, sample: noGpuSample(), onOpen: () => {} });
    expect(screen.getByTestId('gauge-cpu').textContent).toContain('23%');
    expect(screen.getByTestId('gauge-ram').textContent).toContain('9.8/31.2 GB');
    expect(screen.queryByTestId('gauge-gpu-0')).toBeNull();
  });

  it('turns amber with an icon on a warning', () => {
    render(MonitorGauge, {
      t,
      sample: monitorSample({
        gpus: [gpu(0), gpu(1)],
        warnings: [{ kind: 'vram', gpu_index: 1, value: 96, threshold: 95 }],
      }),
      onOpen: () => {},
    });
    expect(screen.getByTestId('gauge').dataset.level).toBe('warning');
    expect(screen.getByTestId('gauge-warning')).toBeTruthy();
    expect(screen.getByTestId('gauge-gpu-1').dataset.level).toBe('warning');
    expect(screen.getByTestId('gauge-gpu-0').dataset.level).toBe('ok');
    expect(screen.getByTestId('gauge').getAttribute('aria-label')).toContain('Warnings: 1');
  });
});
