import { render, screen, within } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import { makeTranslator } from '../lib/i18n';
import { MonitorStore } from '../lib/monitorStore.svelte';
import { gpu, history, monitorSnapshot, noGpuSample, placement } from '../test/fixtures';
import MonitorPage from './MonitorPage.svelte';

function storeWith(snapshot = monitorSnapshot()) {
  const store = new MonitorStore();
  store.applySnapshot(snapshot);
  return store;
}

describe('MonitorPage', () => {
  it('shows the empty state before the first sample', () => {
    render(MonitorPage, { t: makeTranslator('en'), store: new MonitorStore() });
    expect(screen.getByTestId('page-monitor').querySelector('h1')?.textContent).toBe('Monitor');
    expect(screen.getByTestId('empty-state')).toBeTruthy();
    expect(screen.queryByTestId('gauge')).toBeNull();
  });

  it('explains a missing NVIDIA GPU and charts CPU and RAM', () => {
    const samples = history(60, (i) => noGpuSample({ system: { ...noGpuSample().system, cpu_percent: i } }));
    render(MonitorPage, {
      t: makeTranslator('en'),
      store: storeWith(monitorSnapshot({ samples, placements: [placement('office')] })),
    });
    const notice = screen.getByTestId('monitor-no-gpu');
    expect(notice.textContent).toContain('No NVIDIA GPU was found');
    expect(notice.textContent).toContain('libnvidia-ml.so.1 not found');

    const cpu = screen.getByTestId('chart-cpu');
    expect(cpu.querySelector('title')?.textContent).toContain('CPU usage');
    expect(cpu.querySelector('title')?.textContent).toContain('59%');
    expect(cpu.querySelector('path.line')?.getAttribute('d')).toMatch(/^M[\d.]+ [\d.]+(L[\d.]+ [\d.]+){59}$/);
    expect(cpu.textContent).toContain('100%');
    expect(screen.getByTestId('chart-ram').querySelector('path.line')).toBeTruthy();
    expect(screen.getByTestId('monitor-ram').textContent).toContain('9.8 / 31.2 GB');

    expect(screen.queryByTestId('monitor-gpu-0')).toBeNull();
    expect(screen.queryByTestId('chart-gpu0-vram')).toBeNull();
    // Placements are listed below the system charts.
    expect(screen.getByTestId('monitor-placements').textContent).toContain(
      'Office assistant → GPU 0, layers: auto (not loaded yet)',
    );
    expect(screen.queryByTestId('monitor-warnings')).toBeNull();
    expect(screen.queryByTestId('empty-state')).toBeNull();
  });

  it('shows a card per GPU, the warnings and the model placements', () => {
    const hot = gpu(1, {
      name: 'NVIDIA RTX A4000',
      temperature_c: 91,
      fan_percent: null,
      power_limit_watts: null,
      clock_sm_mhz: null,
    });
    const warning = { kind: 'temperature' as const, gpu_index: 1, value: 91, threshold: 85 };
    const samples = history(120, (i) => ({
      gpus: [gpu(0, { gpu_util_percent: i % 2 ? null : 50 }), hot],
      warnings: i === 119 ? [warning] : [],
    }));
    render(MonitorPage, {
      t: makeTranslator('en'),
      store: storeWith(
        monitorSnapshot({
          samples,
          placements: [
            placement('office'),
            placement('character', { main_gpu: 1, loaded: true, layers_on_gpu: 20, layers_total: 41 }),
          ],
        }),
      ),
    });

    const warnings = screen.getAllByTestId('monitor-warning');
    expect(warnings.map((w) => w.textContent?.trim())).toEqual([
      'GPU 1 is at 91 °C (warning above 85 °C)',
    ]);
    expect(screen.getByTestId('monitor-warnings').className).toContain('level-critical');

    const first = screen.getByTestId('monitor-gpu-0');
    expect(first.dataset.level).toBe('ok');
    expect(first.textContent).toContain('NVIDIA GeForce RTX 4090');
    expect(within(first).getByTestId('monitor-gpu-0-vram').textContent).toMatch(/6\.1 \/ 24\.0 GB\s*\(25%\)/);
    expect(within(first).getByTestId('monitor-gpu-0-power').textContent).toContain('215 / 450 W');
    expect(within(first).getByTestId('monitor-gpu-0-process-vram').textContent).toContain('812 MB');
    expect(within(first).getByTestId('monitor-gpu-0-clocks').textContent).toContain('10,501 MHz');
    // Every other utilisation reading is missing: the line has gaps (one dot per reading).
    const util = within(first).getByTestId('chart-gpu0-util');
    expect(util.querySelectorAll('path.line')).toHaveLength(2);
    expect(util.querySelector('path.line[data-series="gpu"]')?.getAttribute('d')?.match(/h0/g)).toHaveLength(60);

    const second = screen.getByTestId('monitor-gpu-1');
    expect(second.dataset.level).toBe('critical');
    expect(second.textContent).toContain('NVIDIA RTX A4000');
    expect(within(second).getByTestId('monitor-gpu-1-temp').textContent).toContain('91 °C');
    expect(within(second).getByTestId('monitor-gpu-1-fan').textContent).toContain('—');
    expect(within(second).getByTestId('monitor-gpu-1-fan').querySelector('dd')?.title).toBe(
      'Not supported by this GPU',
    );
    expect(within(second).getByTestId('monitor-gpu-1-power').textContent).toContain('215 W');

    for (const index of [0, 1]) {
      for (const metric of ['vram', 'util', 'power', 'temp']) {
        expect(screen.getByTestId(`chart-gpu${index}-${metric}`).querySelector('svg title')).toBeTruthy();
      }
    }
    expect(screen.getByTestId('chart-cpu')).toBeTruthy();
    expect(screen.getByTestId('chart-ram')).toBeTruthy();
    expect(screen.queryByTestId('monitor-no-gpu')).toBeNull();

    const placements = screen.getByTestId('monitor-placements');
    expect(placements.textContent).toContain('Office assistant → GPU 0, layers: auto (not loaded yet)');
    expect(placements.textContent).toContain(
      'Character → GPU 1, layers: auto (loaded, 20 of 41 layers on the GPU)',
    );

    // GPUs first, system charts lower on the page.
    const page = screen.getByTestId('page-monitor');
    const order = [...page.querySelectorAll('[data-testid^="monitor-"]')].map((e) => e.getAttribute('data-testid'));
    expect(order.indexOf('monitor-gpu-1')).toBeLessThan(order.indexOf('monitor-system'));
  });

  it('shows a GPU that only llama.cpp lists (AMD through Vulkan) with its name and memory', () => {
    const amd = gpu(0, {
      name: 'AMD Radeon RX 7800 XT',
      listed_by: 'Vulkan',
      temperature_c: null,
      power_watts: null,
      power_limit_watts: null,
      gpu_util_percent: null,
      mem_util_percent: null,
      fan_percent: null,
      process_vram_bytes: null,
    });
    render(MonitorPage, {
      t: makeTranslator('en'),
      store: storeWith(monitorSnapshot({ samples: history(3, () => ({ gpus: [amd] })) })),
    });
    expect(screen.getByTestId('monitor-gpu-0-name').textContent).toBe('AMD Radeon RX 7800 XT');
    expect(screen.getByTestId('monitor-gpu-0-listed-by').textContent).toContain(
      'Seen through Vulkan: only its name and memory are reported',
    );
    expect(screen.getByTestId('monitor-gpu-0-vram').textContent).not.toContain('—');
  });

  it('speaks Korean', () => {
    render(MonitorPage, {
      t: makeTranslator('ko'),
      store: storeWith(monitorSnapshot({ samples: [noGpuSample()] })),
    });
    expect(screen.getByTestId('monitor-no-gpu').textContent).toContain('NVIDIA GPU를 찾지 못했습니다');
    expect(screen.getByTestId('chart-cpu').textContent).toContain('CPU 사용률');
  });

  it('shows a monitor error', () => {
    const store = new MonitorStore();
    store.error = { code: 'monitor.nvml', message: 'driver/library version mismatch' };
    render(MonitorPage, { t: makeTranslator('en'), store });
    expect(screen.getByTestId('monitor-error').textContent).toContain('driver/library version mismatch');
  });

  it('says when the monitor could not start at all', () => {
    const store = new MonitorStore();
    store.error = { code: 'monitor_unavailable', message: 'the GPU monitor thread could not be started' };
    render(MonitorPage, { t: makeTranslator('en'), store });
    const text = screen.getByTestId('monitor-error').textContent ?? '';
    expect(text).toContain('The hardware monitor could not be started');
    expect(text).toContain('monitor_unavailable: the GPU monitor thread could not be started');
  });
});
