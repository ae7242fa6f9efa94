// The Documents page's data (Rust: core::documents and the profiles of core::store), the
// commands and events behind it, and the pure helpers the page, Settings and the chat use:
// access levels, import progress, highlighting search terms, where a passage is, and showing a
// failure as a toast.
import { listen, type UnlistenFn } from '@tauri-apps/api/event';
import { call, toCommandError } from './api';
import { fileNameOf, onWindowDragDrop, type DropEvent } from './dragDrop';
import { describeDocumentError } from './errors';
import type { MessageKey, Translator, Vars } from './i18n';
import { toasts } from './toasts.svelte';
import type { CommandError } from './types';

// --- shapes (serde JSON from Rust) ---

/** How sensitive a document is, ordered low → high; a profile's clearance is the highest it reads. */
export type AccessLevel = 'public' | 'internal' | 'confidential' | 'restricted';

export interface Document {
  id: number;
  path: string;
  file_name: string;
  kind: string;
  size_bytes: number;
  level: AccessLevel;
  /** `failed`: the file could never be read; `error` says why. */
  status: 'indexed' | 'failed';
  error: string | null;
  chunk_count: number;
  /** Fewer than `chunk_count` until the embedding model has run. */
  embedded_chunks: number;
  /** Milliseconds since the epoch. */
  imported_at: number;
  indexed_at: number | null;
}

export interface DocumentsStatus {
  importing: boolean;
  /** Set when search is keyword-only (no embedding model or ONNX Runtime). */
  vector_notice: CommandError | null;
}

export interface FileOutcome {
  path: string;
  status: 'added' | 'replaced' | 'unchanged' | 'failed';
  chunks: number;
  error_code: string | null;
  error: string | null;
}

export interface ImportProgress {
  job_id: number;
  files_total: number;
  files_done: number;
  chunks_done: number;
  /**
   * Progress inside the file being imported: its passages embedded and stored, of its total.
   * Both 0 until the file has been read and cut into passages, and in the "finished file" and
   * "done" events.
   */
  current_chunks_done: number;
  current_chunks_total: number;
  /**
   * Scanned pages of the current file read by OCR, of those it has; both 0 for a file without
   * scanned pages (older cores do not send them).
   */
  current_ocr_pages_done?: number;
  current_ocr_pages_total?: number;
  /** The file being read now. */
  current: string | null;
  /** The file just finished. */
  finished_file: FileOutcome | null;
  /** This job is over (the runner may still embed before `documents://finished`). */
  done: boolean;
}

/** The payload of `documents://finished`: the runner stopped, with the error that stopped it. */
export interface ImportFinished {
  error: CommandError | null;
}

export interface Passage {
  chunk_id: number;
  document_id: number;
  path: string;
  file_name: string;
  kind: string;
  level: AccessLevel;
  page: number | null;
  section: string | null;
  text: string;
  score: number;
  similarity: number | null;
  keyword_rank: number | null;
  vector_rank: number | null;
}

export type SearchMode = 'hybrid' | 'keyword' | 'vector';

export interface SearchResult {
  query: string;
  /** The terms keyword search looked for (to highlight). */
  terms: string[];
  mode: SearchMode;
  /** Why vector search was not used, when it was wanted. */
  notice: CommandError | null;
  passages: Passage[];
  /** Problems that did not stop the search (e.g. `vector_index_unsaved`). */
  warnings: CommandError[];
}

export interface Opened {
  program: string;
  /** Whether the viewer was asked for the page (false: opened at its start). */
  at_page: boolean;
}

export interface Profile {
  id: number;
  name: string;
  clearance: AccessLevel;
  created_at: number;
}

export interface ProfilesList {
  active: number;
  profiles: Profile[];
}

/** A document passage a grounded chat answer cites as `[n]` (stored with the reply). */
export interface MessageSource {
  n: number;
  document_id: number;
  chunk_id: number;
  file_name: string;
  path: string;
  page: number | null;
  section: string | null;
  excerpt: string;
}

// Window drops and file names are shared with the chat composer (./dragDrop).
export { fileNameOf, type DropEvent };

// --- commands and events ---

export const DOCUMENTS_EVENT = {
  progress: 'documents://progress',
  finished: 'documents://finished',
} as const;

export interface DocumentsApi {
  list(): Promise<Document[]>;
  status(): Promise<DocumentsStatus>;
  /** The active profile and its clearance (the levels an import may use). */
  profiles(): Promise<ProfilesList>;
  /** Records an import and starts it; resolves to the job id. */
  import(paths: string[], level: AccessLevel | null): Promise<number>;
  /** A native dialog; `[]` when cancelled. */
  pick(folder: boolean): Promise<string[]>;
  cancel(): Promise<null>;
  remove(id: number): Promise<null>;
  setLevel(id: number, level: AccessLevel): Promise<Document>;
  reindex(id: number): Promise<number>;
  search(query: string, k?: number): Promise<SearchResult>;
  /** Opens the original file in the system viewer (at `page` where it can). */
  open(id: number, page: number | null): Promise<Opened>;
  onProgress(handler: (progress: ImportProgress) => void): Promise<UnlistenFn>;
  onFinished(handler: (finished: ImportFinished) => void): Promise<UnlistenFn>;
  /** Files and folders dragged onto the window. */
  onDragDrop(handler: (event: DropEvent) => void): Promise<UnlistenFn>;
}

export const SEARCH_RESULTS = 10;

export const documentsApi: DocumentsApi = {
  list: () => call<Document[]>('documents_list'),
  status: () => call<DocumentsStatus>('documents_status'),
  profiles: () => call<ProfilesList>('profiles_list'),
  import: (paths, level) => call<number>('documents_import', { paths, level }),
  pick: (folder) => call<string[]>('documents_pick', { folder }),
  cancel: () => call<null>('documents_cancel'),
  remove: (id) => call<null>('documents_delete', { id }),
  setLevel: (id, level) => call<Document>('documents_set_level', { id, level }),
  reindex: (id) => call<number>('documents_reindex', { id }),
  search: (query, k = SEARCH_RESULTS) => call<SearchResult>('documents_search', { query, k }),
  open: (id, page) => call<Opened>('documents_open', { id, page }),
  onProgress: (handler) => listen<ImportProgress>(DOCUMENTS_EVENT.progress, (e) => handler(e.payload)),
  onFinished: (handler) => listen<ImportFinished>(DOCUMENTS_EVENT.finished, (e) => handler(e.payload)),
  onDragDrop: onWindowDragDrop,
};

export interface ProfilesApi {
  list(): Promise<ProfilesList>;
  create(name: string, clearance: AccessLevel): Promise<Profile>;
  activate(id: number): Promise<Profile>;
  remove(id: number): Promise<null>;
}

export const profilesApi: ProfilesApi = {
  list: () => call<ProfilesList>('profiles_list'),
  create: (name, clearance) => call<Profile>('profile_create', { name, clearance }),
  activate: (id) => call<Profile>('profile_activate', { id }),
  remove: (id) => call<null>('profile_delete', { id }),
};

declare global {
  interface Window {
    /**
     * Imports paths as drag-and-drop does; registered by the Documents page while it is shown.
     * The e2e tests use it because WebDriver cannot drive native dialogs or OS drag-and-drop.
     */
    __deskmateImport?: (paths: string[], level?: AccessLevel) => Promise<number | null>;
  }
}

// --- access levels ---

export const LEVELS: readonly AccessLevel[] = ['public', 'internal', 'confidential', 'restricted'];

/** 0 (public) to 3 (restricted); an unknown value ranks as restricted. */
export function levelRank(level: AccessLevel): number {
  const i = LEVELS.indexOf(level);
  return i < 0 ? LEVELS.length - 1 : i;
}

/** The levels a profile with this clearance may read (and import as), low → high. */
export function levelsUpTo(clearance: AccessLevel): AccessLevel[] {
  return LEVELS.filter((l) => levelRank(l) <= levelRank(clearance));
}

export function levelKey(level: AccessLevel): MessageKey {
  return `documents.level.${LEVELS.includes(level) ? level : 'restricted'}`;
}

/** The default level of an import, lowered to the clearance when that is below it. */
export function defaultImportLevel(clearance: AccessLevel): AccessLevel {
  return levelRank(clearance) < levelRank('internal') ? clearance : 'internal';
}

// --- import progress ---

/** The share of the current file's passages stored, 0–1; 0 until the file has been cut up. */
function currentFileFraction(progress: ImportProgress): number {
  const total = progress.current_chunks_total ?? 0;
  if (!(total > 0)) return 0;
  return Math.max(0, Math.min(1, (progress.current_chunks_done ?? 0) / total));
}

/**
 * Files done out of the total, counting the share of the current file already stored (a large
 * file can take minutes), 0–100; null while the total is unknown (indeterminate bar).
 */
export function progressPercent(progress: ImportProgress | null): number | null {
  if (!progress || progress.files_total <= 0) return null;
  const ratio = (progress.files_done + currentFileFraction(progress)) / progress.files_total;
  return Math.max(0, Math.min(100, Math.round(ratio * 100)));
}

/** The line under the progress bar. */
export function progressLabel(progress: ImportProgress | null): { key: MessageKey; vars: Vars } {
  if (!progress) return { key: 'documents.progress.starting', vars: {} };
  const vars = { done: progress.files_done, total: progress.files_total, chunks: progress.chunks_done };
  if (progress.done) return { key: 'documents.progress.finishing', vars };
  if ((progress.current_ocr_pages_total ?? 0) > 0) {
    return {
      key: 'documents.progress.file_ocr',
      vars: {
        ...vars,
        // The page being read: one past those done, until the last.
        page: Math.min((progress.current_ocr_pages_done ?? 0) + 1, progress.current_ocr_pages_total ?? 0),
        page_total: progress.current_ocr_pages_total ?? 0,
      },
    };
  }
  if (progress.current_chunks_total > 0) {
    return {
      key: 'documents.progress.file_chunks',
      vars: { ...vars, chunk_done: progress.current_chunks_done, chunk_total: progress.current_chunks_total },
    };
  }
  return { key: 'documents.progress.files', vars };
}

/** What one run of imports did, from the finished files reported in its progress. */
export interface ImportTally {
  added: number;
  replaced: number;
  unchanged: number;
  failed: FileOutcome[];
}

export function emptyTally(): ImportTally {
  return { added: 0, replaced: 0, unchanged: 0, failed: [] };
}

export function tallyOutcome(tally: ImportTally, outcome: FileOutcome): ImportTally {
  switch (outcome.status) {
    case 'failed':
      return { ...tally, failed: [...tally.failed, outcome] };
    case 'added':
    case 'replaced':
    case 'unchanged':
      return { ...tally, [outcome.status]: tally[outcome.status] + 1 };
    default:
      return tally;
  }
}

/** The failed files' names for a toast: the first `max`, then "+N". */
export function failedNames(failed: FileOutcome[], max = 3): string {
  const names = failed.slice(0, max).map((f) => fileNameOf(f.path));
  const rest = failed.length - names.length;
  return rest > 0 ? `${names.join(', ')} +${rest}` : names.join(', ');
}

// --- search ---

export interface Segment {
  text: string;
  hit: boolean;
}

const REGEX_SPECIAL = /[\\^$.*+?()[\]{}|/]/g;

/**
 * Splits `text` into plain and highlighted segments where any of `terms` occurs (ignoring case).
 * Overlapping and adjacent matches merge into one highlighted segment. Returns text only, never
 * markup: the page renders hits as <mark> elements, so passage text cannot inject HTML.
 */
export function highlight(text: string, terms: readonly string[]): Segment[] {
  if (text === '') return [];
  const wanted = [...new Set(terms.map((t) => t.trim()).filter((t) => t !== ''))];
  const covered = new Uint8Array(text.length);
  for (const term of wanted) {
    const pattern = new RegExp(term.replace(REGEX_SPECIAL, '\\$&'), 'giu');
    let match: RegExpExecArray | null;
    while ((match = pattern.exec(text)) !== null) {
      const start = match.index;
      covered.fill(1, start, start + match[0].length);
      // Step one code point on, so overlapping occurrences ("aaa" in "aaaa") are found too.
      const cp = text.codePointAt(start) ?? 0;
      pattern.lastIndex = start + (cp > 0xffff ? 2 : 1);
    }
  }
  const segments: Segment[] = [];
  let start = 0;
  for (let i = 1; i <= text.length; i++) {
    if (i === text.length || covered[i] !== covered[start]) {
      segments.push({ text: text.slice(start, i), hit: covered[start] === 1 });
      start = i;
    }
  }
  return segments;
}

/** Where a passage or a cited source is within its file: "p. 2", a section, or nothing. */
export function placeOf(t: Translator, place: { page: number | null; section: string | null }): string | null {
  if (place.page !== null && place.page !== undefined) return t('documents.place.page', { page: place.page });
  const section = place.section?.trim();
  return section ? section : null;
}

/** "report.pdf · p. 2", "notes.md · Budget", or the file name alone. */
export function formatPlace(
  t: Translator,
  place: { file_name: string; page: number | null; section: string | null },
): string {
  const where = placeOf(t, place);
  return where ? `${place.file_name} · ${where}` : place.file_name;
}

export function searchModeKey(mode: SearchMode): MessageKey {
  return `documents.search.mode.${mode}`;
}

// --- errors (the messages are in ./errors) ---

/** A red toast for a failed documents or profiles command. */
export function toastDocumentError(error: unknown): void {
  const e = toCommandError(error);
  toasts.push({ kind: 'error', key: describeDocumentError(e.code), code: e.code, detail: e.message, action: null });
}

/**
 * Opens a document's original file (a search result or a cited source). A failure becomes a red
 * toast; a viewer that could not be sent to the page gets a note saying which page to go to.
 */
export async function openDocument(
  api: Pick<DocumentsApi, 'open'>,
  id: number,
  page: number | null,
): Promise<boolean> {
  try {
    const opened = await api.open(id, page);
    if (page !== null && opened && !opened.at_page) {
      toasts.push({ kind: 'info', key: 'documents.opened_no_page', vars: { program: opened.program, page }, action: null });
    }
    return true;
  } catch (error) {
    toastDocumentError(error);
    return false;
  }
}
