// Shared monitor state (runes): the last 300 samples and the model placements, fed by the
// `monitor_snapshot` command and the `monitor://sample` event. Used by the top-bar gauge and the
// Monitor page. Outside Tauri `start` does nothing and the state stays empty.
import type { UnlistenFn } from '@tauri-apps/api/event';
import {
  getMonitorSnapshot,
  isTauri,
  listenMonitorSamples,
  setMonitorVisible,
  toCommandError,
} from './api';
import { addSample, DEFAULT_INTERVAL_MS, HISTORY_SIZE, mergeSamples } from './monitor';
import type { CommandError, ModelPlacement, MonitorSample, MonitorSnapshot } from './types';

export class MonitorStore {
  /** Oldest first, at most `HISTORY_SIZE`. Replaced (never mutated) on every change. */
  samples = $state.raw<MonitorSample[]>([]);
  placements = $state.raw<ModelPlacement[]>([]);
  intervalMs = $state(DEFAULT_INTERVAL_MS);
  /** The last failure talking to the core; cleared by a successful snapshot. */
  error = $state<CommandError | null>(null);
  /** The newest sample, or null before the first one. */
  readonly latest = $derived<MonitorSample | null>(this.samples.at(-1) ?? null);

  /** Merges a snapshot into the history (events may already have delivered some of it). */
  applySnapshot(snapshot: MonitorSnapshot): void {
    this.samples = mergeSamples(this.samples, snapshot.samples, HISTORY_SIZE);
    this.placements = snapshot.placements;
    this.intervalMs = snapshot.interval_ms > 0 ? snapshot.interval_ms : DEFAULT_INTERVAL_MS;
    this.error = null;
  }

  /** Adds one sample from the event stream. */
  pushSample(sample: MonitorSample): void {
    this.samples = addSample(this.samples, sample, HISTORY_SIZE);
  }

  /** Fetches `monitor_snapshot`; never rejects (a failure lands in `error`). */
  async refresh(): Promise<void> {
    try {
      this.applySnapshot(await getMonitorSnapshot());
    } catch (error) {
      this.error = toCommandError(error);
    }
  }

  /** Calls `monitor_set_visible`; never rejects. */
  async setVisible(visible: boolean): Promise<void> {
    try {
      await setMonitorVisible(visible);
    } catch (error) {
      this.error = toCommandError(error);
    }
  }

  /**
   * Subscribes to samples, loads the snapshot and follows the window's visibility (the core
   * pauses sampling while hidden; the history is refilled on return). Returns the stop function.
   */
  start(doc: Document = document): () => void {
    if (!isTauri()) return () => {};
    let stopped = false;
    let unlisten: UnlistenFn | null = null;

    // Subscribe before asking for the snapshot so no sample falls between the two.
    listenMonitorSamples(
      (sample) => {
        if (!stopped) this.pushSample(sample);
      },
      (error) => {
        if (!stopped) this.error = error;
      },
    ).then(
      (fn) => {
        if (stopped) fn();
        else unlisten = fn;
      },
      (error: unknown) => {
        if (!stopped) this.error = toCommandError(error);
      },
    );
    void this.refresh();
    if (doc.hidden) void this.setVisible(false);

    const onVisibility = () => {
      if (stopped) return;
      const visible = !doc.hidden;
      void this.setVisible(visible);
      if (visible) void this.refresh();
    };
    doc.addEventListener('visibilitychange', onVisibility);

    return () => {
      stopped = true;
      doc.removeEventListener('visibilitychange', onVisibility);
      unlisten?.();
      unlisten = null;
    };
  }
}

/** The app-wide store, started by App. */
export const monitor = new MonitorStore();
