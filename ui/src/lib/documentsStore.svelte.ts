// The Documents page's state: the library, whether search is keyword-only (the vector notice), the
// import running now and its progress, the search and its passages, and the active profile's
// clearance (the levels an import may use). It follows `documents://progress` and
// `documents://finished`, and files dropped on the window while the page is shown. Every failure
// becomes a toast. The page makes one per visit (as it loaded everything on each visit before), so
// nothing is followed while another page is shown.
import type { UnlistenFn } from '@tauri-apps/api/event';
import { isTauri } from './api';
import {
  defaultImportLevel,
  documentsApi,
  emptyTally,
  failedNames,
  fileNameOf,
  levelsUpTo,
  openDocument,
  tallyOutcome,
  toastDocumentError,
  type AccessLevel,
  type Document,
  type DocumentsApi,
  type ImportFinished,
  type ImportProgress,
  type SearchResult,
} from './documents';
import { followDrag } from './dragDrop';
import { describeDocumentError } from './errors';
import type { Translator } from './i18n';
import { toasts } from './toasts.svelte';
import type { CommandError } from './types';

/** Typing waits this long for the next key before it searches. */
export const SEARCH_DELAY_MS = 250;

export class DocumentsStore {
  documents = $state<Document[]>([]);
  /** The first list has arrived (or cannot): until then "no documents yet" is not said. */
  loaded = $state(false);
  /** Why search is keyword-only (no embedding model or ONNX Runtime); null when it is not. */
  vectorNotice = $state<CommandError | null>(null);
  /** The active profile's clearance: the highest level offered. */
  clearance = $state<AccessLevel>('restricted');
  /** The level the next import is recorded at. */
  importLevel = $state<AccessLevel>('internal');
  importing = $state(false);
  /** The last progress event of the running import; null until the first one. */
  progress = $state<ImportProgress | null>(null);
  cancelling = $state(false);
  /** Files are being dragged over the window. */
  dragging = $state(false);
  query = $state('');
  result = $state<SearchResult | null>(null);
  searching = $state(false);
  /**
   * Counts the searches that answered, so the results fold long passages again for each new one
   * (and not when a deleted document's passages leave the shown result).
   */
  searchRun = $state(0);

  /** The levels this profile may import as and move documents to, low → high. */
  readonly levels = $derived(levelsUpTo(this.clearance));

  /** What the current run of imports did, for the summary when it finishes. */
  private tally = emptyTally();
  /** `documents://finished` events seen, so a stale `importing: true` status is ignored. */
  private finishedCount = 0;
  private searchTimer: ReturnType<typeof setTimeout> | undefined;
  /** Only the newest search's answer is shown. */
  private searchSeq = 0;

  constructor(readonly api: DocumentsApi = documentsApi) {}

  /** False in a plain browser or under tests without an injected api: nothing to call. */
  private connected(): boolean {
    return this.api !== documentsApi || isTauri();
  }

  /**
   * Follows the import events and window drops, then loads the list, the status and the
   * clearance. `translator` names a failed file's reason in the summary toast (in the language
   * shown when the import ends). Returns the stop function.
   */
  start(translator: () => Translator): () => void {
    if (!this.connected()) {
      this.loaded = true;
      return () => {};
    }
    let alive = true;
    const unlisteners: UnlistenFn[] = [];
    const keep = (subscribed: Promise<UnlistenFn>) =>
      subscribed
        .then((unlisten) => (alive ? unlisteners.push(unlisten) : unlisten()))
        .catch(() => {
          // Without the event the list still refreshes on the next visit.
        });
    const onDrop = followDrag(
      (over) => (this.dragging = over),
      (paths) => void this.startImport(paths),
    );
    void (async () => {
      // Subscribe first, so no progress between the status and the subscription is missed.
      await Promise.all([
        keep(this.api.onProgress((p) => {
          if (alive) this.applyProgress(p);
        })),
        keep(this.api.onFinished((f) => {
          if (alive) this.applyFinished(f, translator());
        })),
        keep(this.api.onDragDrop((e) => {
          if (alive) onDrop(e);
        })),
      ]);
      if (alive) await Promise.all([this.refresh(), this.refreshStatus(), this.loadClearance()]);
    })();
    return () => {
      alive = false;
      clearTimeout(this.searchTimer);
      for (const unlisten of unlisteners) unlisten();
    };
  }

  async refresh(): Promise<void> {
    if (!this.connected()) return;
    try {
      const list = await this.api.list();
      if (Array.isArray(list)) this.documents = list;
    } catch (error) {
      toastDocumentError(error);
    } finally {
      this.loaded = true;
    }
  }

  async refreshStatus(): Promise<void> {
    const seen = this.finishedCount;
    try {
      const status = await this.api.status();
      this.vectorNotice = status?.vector_notice ?? null;
      if (status?.importing && this.finishedCount === seen) this.importing = true;
    } catch (error) {
      toastDocumentError(error);
    }
  }

  async loadClearance(): Promise<void> {
    try {
      const list = await this.api.profiles();
      const active = list?.profiles?.find((p) => p.id === list.active);
      if (active) {
        this.clearance = active.clearance;
        this.importLevel = defaultImportLevel(active.clearance);
      }
    } catch {
      // Every level stays offered; the core refuses a level above the clearance anyway.
    }
  }

  /** Imports files and folders (from the dialog, a drop or the e2e hook); resolves to the job id. */
  async startImport(paths: string[], level: AccessLevel = this.importLevel): Promise<number | null> {
    const chosen = paths.filter((p) => p.trim() !== '');
    if (chosen.length === 0 || !this.connected()) return null;
    try {
      const job = await this.api.import(chosen, level);
      this.importing = true;
      return job;
    } catch (error) {
      toastDocumentError(error);
      return null;
    }
  }

  /** Asks for files (or a folder) with the native dialog and imports them. */
  async pick(folder: boolean): Promise<void> {
    if (!this.connected()) return;
    try {
      const paths = await this.api.pick(folder);
      if (Array.isArray(paths) && paths.length > 0) await this.startImport(paths);
    } catch (error) {
      toastDocumentError(error);
    }
  }

  async cancel(): Promise<void> {
    this.cancelling = true;
    try {
      await this.api.cancel();
    } catch (error) {
      this.cancelling = false;
      toastDocumentError(error);
    }
  }

  private applyProgress(p: ImportProgress): void {
    this.importing = true;
    this.progress = p;
    if (p.finished_file) this.tally = tallyOutcome(this.tally, p.finished_file);
    // A job is stored: show its documents while the runner goes on (next job, embeddings).
    if (p.done) void this.refresh();
  }

  private applyFinished(finished: ImportFinished, t: Translator): void {
    this.finishedCount += 1;
    const summary = this.tally;
    const wasCancelling = this.cancelling;
    this.tally = emptyTally();
    this.importing = false;
    this.progress = null;
    this.cancelling = false;
    void this.refresh();
    void this.refreshStatus();
    if (finished?.error) toastDocumentError(finished.error);
    const first = summary.failed[0];
    if (first) {
      toasts.push({
        kind: 'error',
        key: 'documents.import.failures',
        vars: { count: summary.failed.length, files: failedNames(summary.failed) },
        code: first.error_code ?? 'other',
        detail: `${fileNameOf(first.path)}: ${t(describeDocumentError(first.error_code))}`,
        action: null,
      });
    }
    if (wasCancelling) {
      toasts.push({ kind: 'info', key: 'documents.import.cancelled', action: null });
    } else if (!first && !finished?.error && summary.added + summary.replaced + summary.unchanged > 0) {
      const { added, replaced, unchanged } = summary;
      toasts.push({ kind: 'info', key: 'documents.import.done', vars: { added, replaced, unchanged }, action: null });
    }
  }

  /** Moves a document to another level; false (and a toast) when it was refused. */
  async setLevel(id: number, level: AccessLevel): Promise<boolean> {
    try {
      const updated = await this.api.setLevel(id, level);
      this.documents = this.documents.map((d) => (d.id === id ? updated : d));
      return true;
    } catch (error) {
      toastDocumentError(error);
      return false;
    }
  }

  /** Reads a document's file again; the runner reports it like an import. */
  async reindex(doc: Document): Promise<void> {
    try {
      await this.api.reindex(doc.id);
      this.importing = true;
      toasts.push({ kind: 'info', key: 'documents.reindex.started', vars: { name: doc.file_name }, action: null });
    } catch (error) {
      toastDocumentError(error);
    }
  }

  /** Removes a document from the library (and its passages from the shown result). */
  async remove(id: number): Promise<void> {
    try {
      await this.api.remove(id);
      this.documents = this.documents.filter((d) => d.id !== id);
      if (this.result) {
        this.result = { ...this.result, passages: this.result.passages.filter((p) => p.document_id !== id) };
      }
    } catch (error) {
      toastDocumentError(error);
    }
  }

  /** Searches for `query` now; an empty query clears the result. */
  async search(): Promise<void> {
    clearTimeout(this.searchTimer);
    const q = this.query.trim();
    const seq = ++this.searchSeq;
    if (q === '') {
      this.result = null;
      this.searching = false;
      return;
    }
    if (!this.connected()) return;
    this.searching = true;
    try {
      const found = await this.api.search(q);
      if (seq !== this.searchSeq) return;
      this.result = found;
      this.searchRun += 1;
    } catch (error) {
      if (seq === this.searchSeq) toastDocumentError(error);
    } finally {
      if (seq === this.searchSeq) this.searching = false;
    }
  }

  /** Searches once typing has paused for `SEARCH_DELAY_MS`. */
  searchSoon(): void {
    clearTimeout(this.searchTimer);
    this.searchTimer = setTimeout(() => void this.search(), SEARCH_DELAY_MS);
  }

  /** Opens a document's original file, at `page` where the viewer can; false when it failed. */
  open(id: number, page: number | null): Promise<boolean> {
    return openDocument(this.api, id, page);
  }
}
