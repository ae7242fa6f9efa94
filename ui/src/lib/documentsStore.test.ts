// The Documents page's store over the real commands and events, with Tauri's invoke, listen and
// the webview's drag-and-drop mocked.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const invoke = vi.hoisted(() => vi.fn());
const listen = vi.hoisted(() => vi.fn());
const onDragDropEvent = vi.hoisted(() => vi.fn());
vi.mock('@tauri-apps/api/core', () => ({ invoke }));
vi.mock('@tauri-apps/api/event', () => ({ listen }));
vi.mock('@tauri-apps/api/webview', () => ({ getCurrentWebview: () => ({ onDragDropEvent }) }));

import type { Document, ImportFinished, ImportProgress, Passage, SearchResult } from './documents';
import { DocumentsStore, SEARCH_DELAY_MS } from './documentsStore.svelte';
import { makeTranslator } from './i18n';
import { toasts } from './toasts.svelte';

const t = makeTranslator('en');

function doc(id: number, overrides: Partial<Document> = {}): Document {
  return {
    id, path: `/docs/file${id}.pdf`, file_name: `file${id}.pdf`, kind: 'pdf', size_bytes: 1000, level: 'internal',
    status: 'indexed', error: null, chunk_count: 10, embedded_chunks: 10, imported_at: 0, indexed_at: 0, ...overrides,
  };
}

function passage(chunkId: number, documentId: number): Passage {
  return {
    chunk_id: chunkId, document_id: documentId, path: '/docs/a.pdf', file_name: 'a.pdf', kind: 'pdf', level: 'internal',
    page: 2, section: null, text: 'The budget', score: 1, similarity: null, keyword_rank: 1, vector_rank: null,
  };
}

function searchResult(query: string, passages: Passage[] = []): SearchResult {
  return { query, terms: [query], mode: 'hybrid', notice: null, passages, warnings: [] };
}

function progress(overrides: Partial<ImportProgress> = {}): ImportProgress {
  return {
    job_id: 1, files_total: 2, files_done: 0, chunks_done: 0, current_chunks_done: 0, current_chunks_total: 0,
    current: null, finished_file: null, done: false, ...overrides,
  };
}

/** The core's answers by command; a function answers from the arguments. */
type Replies = Record<string, unknown>;
let replies: Replies;
/** The event handlers registered with `listen`, by event name. */
let handlers: Map<string, (event: { payload: unknown }) => void>;
let dropHandler: ((event: { payload: unknown }) => void) | null;
const unlisten = vi.fn();
const flush = () => new Promise((resolve) => setTimeout(resolve, 0));

function emit(event: 'documents://progress', payload: ImportProgress): void;
function emit(event: 'documents://finished', payload: ImportFinished): void;
function emit(event: string, payload: unknown): void {
  const handler = handlers.get(event);
  if (!handler) throw new Error(`nothing listens to ${event}`);
  handler({ payload });
}

function commands(): string[] {
  return invoke.mock.calls.map(([command]) => command as string);
}

beforeEach(() => {
  Object.defineProperty(window, '__TAURI_INTERNALS__', { value: {}, configurable: true });
  toasts.items = [];
  replies = {
    documents_list: [doc(1), doc(2)],
    documents_status: { importing: false, vector_notice: null },
    profiles_list: { active: 1, profiles: [{ id: 1, name: 'Kim', clearance: 'confidential', created_at: 0 }] },
    documents_import: 9,
    documents_pick: ['/picked/a.pdf'],
    documents_cancel: null,
    documents_delete: null,
    documents_reindex: 10,
    documents_open: { program: 'evince', at_page: true },
  };
  invoke.mockImplementation((command: string, args?: Record<string, unknown>) => {
    if (!(command in replies)) return Promise.reject({ code: 'not_found', message: `no reply for ${command}` });
    const reply = replies[command];
    return Promise.resolve(typeof reply === 'function' ? (reply as (a?: Record<string, unknown>) => unknown)(args) : reply);
  });
  handlers = new Map();
  listen.mockImplementation((event: string, handler: (event: { payload: unknown }) => void) => {
    handlers.set(event, handler);
    return Promise.resolve(unlisten);
  });
  dropHandler = null;
  onDragDropEvent.mockImplementation((handler: (event: { payload: unknown }) => void) => {
    dropHandler = handler;
    return Promise.resolve(unlisten);
  });
});

afterEach(() => {
  Reflect.deleteProperty(window, '__TAURI_INTERNALS__');
  invoke.mockReset();
  listen.mockReset();
  onDragDropEvent.mockReset();
  unlisten.mockReset();
  vi.useRealTimers();
});

/** A started store whose first loads have answered. */
async function started(): Promise<{ store: DocumentsStore; stop: () => void }> {
  const store = new DocumentsStore();
  const stop = store.start(() => t);
  await vi.waitFor(() => expect(store.loaded).toBe(true));
  await flush();
  return { store, stop };
}

describe('DocumentsStore', () => {
  it('follows the import events before it loads the list, the status and the clearance', async () => {
    replies.documents_status = { importing: false, vector_notice: { code: 'embedding_model_missing', message: 'no model' } };
    const { store } = await started();
    expect(listen.mock.calls.map(([event]) => event).sort()).toEqual(['documents://finished', 'documents://progress']);
    expect(onDragDropEvent).toHaveBeenCalledTimes(1);
    const firstLoad = invoke.mock.invocationCallOrder[0] ?? 0;
    for (const order of listen.mock.invocationCallOrder) expect(order).toBeLessThan(firstLoad);
    expect(commands().sort()).toEqual(['documents_list', 'documents_status', 'profiles_list']);
    expect(store.documents.map((d) => d.id)).toEqual([1, 2]);
    expect(store.vectorNotice?.code).toBe('embedding_model_missing');
    expect(store.clearance).toBe('confidential');
    expect(store.levels).toEqual(['public', 'internal', 'confidential']);
    expect(store.importLevel).toBe('internal');
  });

  it('calls nothing outside Tauri, and says the (empty) list is loaded', () => {
    Reflect.deleteProperty(window, '__TAURI_INTERNALS__');
    const store = new DocumentsStore();
    store.start(() => t)();
    expect(store.loaded).toBe(true);
    expect(listen).not.toHaveBeenCalled();
    expect(invoke).not.toHaveBeenCalled();
  });

  it('imports at the chosen level, follows the progress and sums up the failures when it ends', async () => {
    const { store } = await started();
    store.importLevel = 'confidential';
    expect(await store.startImport(['/a.pdf', '  ', '/b.docx'])).toBe(9);
    expect(invoke).toHaveBeenLastCalledWith('documents_import', { paths: ['/a.pdf', '/b.docx'], level: 'confidential' });
    expect(store.importing).toBe(true);

    emit('documents://progress', progress({ current: '/a.pdf' }));
    expect(store.progress?.current).toBe('/a.pdf');
    emit('documents://progress', progress({
      files_done: 1, finished_file: { path: '/a.pdf', status: 'added', chunks: 3, error_code: null, error: null },
    }));
    emit('documents://progress', progress({
      files_done: 2, done: true,
      finished_file: { path: '/x/b.docx', status: 'failed', chunks: 0, error_code: 'document_encrypted', error: 'encrypted' },
    }));
    await flush();
    const lists = commands().filter((c) => c === 'documents_list').length;
    expect(lists).toBe(2);

    emit('documents://finished', { error: null });
    expect(store.importing).toBe(false);
    expect(store.progress).toBeNull();
    await flush();
    expect(commands().filter((c) => c === 'documents_list')).toHaveLength(3);
    expect(toasts.items).toHaveLength(1);
    expect(toasts.items[0]).toMatchObject({
      kind: 'error', key: 'documents.import.failures', code: 'document_encrypted',
      vars: { count: 1, files: 'b.docx' }, detail: `b.docx: ${t('documents.error.document_encrypted')}`,
    });
  });

  it('says how an import went, or that it was cancelled', async () => {
    const { store } = await started();
    emit('documents://progress', progress({
      files_done: 1, finished_file: { path: '/a.pdf', status: 'added', chunks: 3, error_code: null, error: null },
    }));
    emit('documents://finished', { error: null });
    expect(toasts.items.at(-1)).toMatchObject({ kind: 'info', key: 'documents.import.done', vars: { added: 1, replaced: 0, unchanged: 0 } });

    emit('documents://progress', progress());
    await store.cancel();
    expect(invoke).toHaveBeenLastCalledWith('documents_cancel', undefined);
    expect(store.cancelling).toBe(true);
    emit('documents://finished', { error: { code: 'disk_full', message: 'no space' } });
    expect(store.cancelling).toBe(false);
    expect(toasts.items.slice(-2)).toMatchObject([
      { kind: 'error', key: 'documents.error.disk_full', code: 'disk_full' },
      { kind: 'info', key: 'documents.import.cancelled' },
    ]);
  });

  it('ignores a status that still says "importing" once the import has finished', async () => {
    const { store } = await started();
    // Asked before the end, answered after it (the end asks again: that answer is current).
    const answers: ((value: unknown) => void)[] = [];
    replies.documents_status = () => new Promise((resolve) => answers.push(resolve));
    const pending = store.refreshStatus();
    emit('documents://finished', { error: null });
    expect(answers).toHaveLength(2);
    answers[0]?.({ importing: true, vector_notice: null });
    await pending;
    expect(store.importing).toBe(false);
    answers[1]?.({ importing: false, vector_notice: null });
  });

  it('picks files with the dialog and turns a refused import into a toast', async () => {
    const { store } = await started();
    await store.pick(true);
    expect(invoke).toHaveBeenCalledWith('documents_pick', { folder: true });
    expect(invoke).toHaveBeenLastCalledWith('documents_import', { paths: ['/picked/a.pdf'], level: 'internal' });

    store.importing = false;
    invoke.mockImplementationOnce(() => Promise.reject({ code: 'import_in_progress', message: 'job 3' }));
    expect(await store.startImport(['/b.pdf'])).toBeNull();
    expect(store.importing).toBe(false);
    expect(toasts.items.at(-1)).toMatchObject({ kind: 'error', key: 'documents.error.import_in_progress', code: 'import_in_progress' });
    const calls = invoke.mock.calls.length;
    expect(await store.startImport(['', ' '])).toBeNull();
    expect(invoke.mock.calls.length).toBe(calls);
  });

  it('imports what is dropped on the window, and says while files are dragged over it', async () => {
    const { store } = await started();
    dropHandler?.({ payload: { type: 'enter', paths: ['/drop/a.md'] } });
    expect(store.dragging).toBe(true);
    dropHandler?.({ payload: { type: 'drop', paths: ['/drop/a.md'] } });
    expect(store.dragging).toBe(false);
    await flush();
    expect(invoke).toHaveBeenLastCalledWith('documents_import', { paths: ['/drop/a.md'], level: 'internal' });
  });

  it('changes a level, re-indexes and removes a document (and its passages from the result)', async () => {
    const { store } = await started();
    replies.documents_set_level = (args?: Record<string, unknown>) => doc(2, { level: args?.level as Document['level'] });
    expect(await store.setLevel(2, 'public')).toBe(true);
    expect(store.documents.find((d) => d.id === 2)?.level).toBe('public');
    invoke.mockImplementationOnce(() => Promise.reject({ code: 'document_above_clearance', message: 'no' }));
    expect(await store.setLevel(2, 'confidential')).toBe(false);
    expect(store.documents.find((d) => d.id === 2)?.level).toBe('public');
    expect(toasts.items.at(-1)?.key).toBe('documents.error.document_above_clearance');

    await store.reindex(doc(1));
    expect(invoke).toHaveBeenLastCalledWith('documents_reindex', { id: 1 });
    expect(store.importing).toBe(true);
    expect(toasts.items.at(-1)).toMatchObject({ kind: 'info', key: 'documents.reindex.started', vars: { name: 'file1.pdf' } });

    replies.documents_search = searchResult('budget', [passage(11, 1), passage(21, 2)]);
    store.query = 'budget';
    await store.search();
    await store.remove(1);
    expect(invoke).toHaveBeenLastCalledWith('documents_delete', { id: 1 });
    expect(store.documents.map((d) => d.id)).toEqual([2]);
    expect(store.result?.passages.map((p) => p.chunk_id)).toEqual([21]);
  });

  it('searches once typing pauses, at once when asked, and shows only the newest answer', async () => {
    const { store } = await started();
    vi.useFakeTimers();
    replies.documents_search = (args?: Record<string, unknown>) => searchResult(String(args?.query));
    store.query = 'q';
    store.searchSoon();
    store.query = 'qu';
    store.searchSoon();
    await vi.advanceTimersByTimeAsync(SEARCH_DELAY_MS - 10);
    expect(commands()).not.toContain('documents_search');
    await vi.advanceTimersByTimeAsync(20);
    expect(invoke).toHaveBeenLastCalledWith('documents_search', { query: 'qu', k: 10 });
    expect(store.result?.query).toBe('qu');
    expect(store.searchRun).toBe(1);

    // A slow answer to an older search is dropped.
    let answerOld: (value: unknown) => void = () => {};
    replies.documents_search = () => new Promise((resolve) => (answerOld = resolve));
    store.query = 'old';
    const old = store.search();
    replies.documents_search = (args?: Record<string, unknown>) => searchResult(String(args?.query));
    store.query = 'new';
    await store.search();
    answerOld(searchResult('old'));
    await old;
    expect(store.result?.query).toBe('new');
    expect(store.searching).toBe(false);
    expect(store.searchRun).toBe(2);

    store.query = '  ';
    await store.search();
    expect(store.result).toBeNull();
  });

  it('opens a document at its page and says when the viewer could not go there', async () => {
    const { store } = await started();
    expect(await store.open(4, 7)).toBe(true);
    expect(invoke).toHaveBeenLastCalledWith('documents_open', { id: 4, page: 7 });
    expect(toasts.items).toEqual([]);
    replies.documents_open = { program: 'xdg-open', at_page: false };
    await store.open(4, 7);
    expect(toasts.items.at(-1)).toMatchObject({ kind: 'info', key: 'documents.opened_no_page', vars: { program: 'xdg-open', page: 7 } });
  });

  it('stops following the events when stopped', async () => {
    const { store, stop } = await started();
    stop();
    expect(unlisten).toHaveBeenCalledTimes(3);
    emit('documents://progress', progress());
    expect(store.importing).toBe(false);
  });
});
