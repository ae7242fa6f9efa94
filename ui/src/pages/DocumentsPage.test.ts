import { fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type {
  Document,
  DocumentsApi,
  DocumentsStatus,
  DropEvent,
  ImportFinished,
  ImportProgress,
  Passage,
  SearchResult,
} from '../lib/documents';
import { makeTranslator } from '../lib/i18n';
import { toasts } from '../lib/toasts.svelte';
import DocumentsPage from './DocumentsPage.svelte';

const t = makeTranslator('en');

function doc(id: number, overrides: Partial<Document> = {}): Document {
  return {
    id, path: `/docs/file${id}.pdf`, file_name: `file${id}.pdf`, kind: 'pdf', size_bytes: 1000, level: 'internal',
    status: 'indexed', error: null, chunk_count: 10, embedded_chunks: 10, imported_at: 1_700_000_000_000,
    indexed_at: 1_700_000_000_000, ...overrides,
  };
}

function passage(chunkId: number, text: string, overrides: Partial<Passage> = {}): Passage {
  return {
    chunk_id: chunkId, document_id: 1, path: '/docs/file1.pdf', file_name: 'file1.pdf', kind: 'pdf', level: 'internal',
    page: 3, section: null, text, score: 1, similarity: null, keyword_rank: 1, vector_rank: null, ...overrides,
  };
}

interface Fake {
  api: DocumentsApi;
  progress: (p: ImportProgress) => void;
  finished: (f: ImportFinished) => void;
  drag: (e: DropEvent) => void;
}

function fakeApi(
  docs: Document[],
  opts: { status?: DocumentsStatus; search?: SearchResult; clearance?: Document['level'] } = {},
): Fake {
  const fake: Fake = { api: {} as DocumentsApi, progress: () => {}, finished: () => {}, drag: () => {} };
  fake.api = {
    list: vi.fn(() => Promise.resolve(docs)),
    status: vi.fn(() => Promise.resolve(opts.status ?? { importing: false, vector_notice: null })),
    profiles: vi.fn(() =>
      Promise.resolve({ active: 1, profiles: [{ id: 1, name: 'Kim', clearance: opts.clearance ?? 'restricted', created_at: 0 }] }),
    ),
    import: vi.fn(() => Promise.resolve(9)),
    pick: vi.fn(() => Promise.resolve(['/picked/a.pdf', '/picked/b.docx'])),
    cancel: vi.fn(() => Promise.resolve(null)),
    remove: vi.fn(() => Promise.resolve(null)),
    setLevel: vi.fn((id: number, level: Document['level']) => Promise.resolve(doc(id, { level }))),
    reindex: vi.fn(() => Promise.resolve(10)),
    search: vi.fn((query: string) =>
      Promise.resolve(opts.search ?? { query, terms: [], mode: 'hybrid' as const, notice: null, passages: [], warnings: [] }),
    ),
    open: vi.fn(() => Promise.resolve({ program: 'evince', at_page: true })),
    onProgress: vi.fn((h) => {
      fake.progress = h;
      return Promise.resolve(() => {});
    }),
    onFinished: vi.fn((h) => {
      fake.finished = h;
      return Promise.resolve(() => {});
    }),
    onDragDrop: vi.fn((h) => {
      fake.drag = h;
      return Promise.resolve(() => {});
    }),
  };
  return fake;
}

async function renderPage(fake: Fake) {
  const result = render(DocumentsPage, { t, api: fake.api });
  await waitFor(() => expect(fake.api.list).toHaveBeenCalled());
  await waitFor(() => expect(fake.api.profiles).toHaveBeenCalled());
  return result;
}

beforeEach(() => {
  toasts.items = [];
});
afterEach(() => vi.useRealTimers());

describe('DocumentsPage', () => {
  it('lists documents with their status, level, passages and failure reason', async () => {
    const fake = fakeApi([
      doc(1, { level: 'confidential' }),
      doc(2, { status: 'failed', error: 'the PDF is encrypted', chunk_count: 0, embedded_chunks: 0, file_name: 'secret.pdf' }),
      doc(3, { embedded_chunks: 4 }),
    ]);
    await renderPage(fake);
    await waitFor(() => expect(screen.getByTestId('document-row-1')).toBeTruthy());
    expect(screen.getByTestId('documents-list')).toBeTruthy();
    expect(screen.getByTestId('document-row-1').dataset.status).toBe('indexed');
    expect(screen.getByTestId('document-row-2').dataset.status).toBe('failed');
    expect(screen.getByTestId('document-row-2').textContent).toContain('Failed');
    expect(screen.getByTestId('document-row-2').textContent).toContain('the PDF is encrypted');
    expect((screen.getByTestId('document-level-1') as HTMLSelectElement).value).toBe('confidential');
    expect(screen.getByTestId('document-row-3').textContent).toContain('embedding…');
    expect(screen.getByTestId('document-row-1').textContent).not.toContain('embedding…');
    expect(screen.queryByTestId('empty-state')).toBeNull();
    expect(screen.queryByTestId('documents-progress')).toBeNull();
  });

  it('says there are no documents yet', async () => {
    await renderPage(fakeApi([]));
    await waitFor(() => expect(screen.getByTestId('empty-state').textContent).toContain('No documents yet'));
    expect(screen.queryByTestId('documents-list')).toBeNull();
  });

  it('changes a level, opens and re-indexes a document', async () => {
    const fake = fakeApi([doc(1)]);
    await renderPage(fake);
    await waitFor(() => expect(screen.getByTestId('document-row-1')).toBeTruthy());
    await fireEvent.change(screen.getByTestId('document-level-1'), { target: { value: 'public' } });
    expect(fake.api.setLevel).toHaveBeenCalledWith(1, 'public');
    await fireEvent.click(screen.getByTestId('document-open-1'));
    expect(fake.api.open).toHaveBeenCalledWith(1, null);
    await fireEvent.click(screen.getByTestId('document-reindex-1'));
    expect(fake.api.reindex).toHaveBeenCalledWith(1);
    await waitFor(() => expect(screen.getByTestId('documents-progress')).toBeTruthy());
  });

  it('asks before deleting a document', async () => {
    const fake = fakeApi([doc(1), doc(2)]);
    await renderPage(fake);
    await waitFor(() => expect(screen.getByTestId('document-row-1')).toBeTruthy());
    await fireEvent.click(screen.getByTestId('document-delete-1'));
    expect(fake.api.remove).not.toHaveBeenCalled();
    expect(screen.getByRole('alertdialog').textContent).toContain('file1.pdf');
    await fireEvent.click(screen.getByTestId('cancel-delete'));
    expect(screen.queryByRole('alertdialog')).toBeNull();
    expect(fake.api.remove).not.toHaveBeenCalled();
    await fireEvent.click(screen.getByTestId('document-delete-1'));
    await fireEvent.click(screen.getByTestId('confirm-delete'));
    expect(fake.api.remove).toHaveBeenCalledWith(1);
    await waitFor(() => expect(screen.queryByTestId('document-row-1')).toBeNull());
    expect(screen.getByTestId('document-row-2')).toBeTruthy();
  });

  it('shows ranked passages with the terms marked, as text, and opens at the page', async () => {
    const fake = fakeApi([doc(1)], {
      search: {
        query: 'budget',
        terms: ['budget', '예산'],
        mode: 'hybrid',
        notice: null,
        passages: [
          passage(11, 'The Budget for 2025 <img src=x onerror=alert(1)> and 예산안.'),
          passage(12, 'Second budget passage', { page: null, section: 'Costs', level: 'confidential', document_id: 2 }),
        ],
        warnings: [],
      },
    });
    await renderPage(fake);
    await fireEvent.input(screen.getByTestId('documents-search'), { target: { value: 'budget' } });
    await waitFor(() => expect(screen.getByTestId('documents-results')).toBeTruthy(), { timeout: 1500 });
    expect(fake.api.search).toHaveBeenCalledWith('budget');
    const first = screen.getByTestId('passage-11');
    expect([...first.querySelectorAll('mark')].map((m) => m.textContent)).toEqual(['Budget', '예산']);
    expect(first.querySelector('img')).toBeNull();
    expect(first.textContent).toContain('<img src=x');
    expect(first.textContent).toContain('file1.pdf');
    expect(first.textContent).toContain('p. 3');
    const second = screen.getByTestId('passage-12');
    expect(second.textContent).toContain('Costs');
    expect(within(second).getByText('Confidential')).toBeTruthy();
    const items = screen.getByTestId('documents-results').querySelectorAll('[data-testid^="passage-"]:not([data-testid^="passage-open"])');
    expect([...items].map((i) => i.getAttribute('data-testid'))).toEqual(['passage-11', 'passage-12']);
    expect(screen.getByTestId('documents-search-mode').dataset.mode).toBe('hybrid');
    await fireEvent.click(screen.getByTestId('passage-open-11'));
    expect(fake.api.open).toHaveBeenCalledWith(1, 3);
    await fireEvent.click(screen.getByTestId('passage-open-12'));
    expect(fake.api.open).toHaveBeenLastCalledWith(2, null);
  });

  it('debounces typing but searches at once on Enter, and says when nothing matches', async () => {
    vi.useFakeTimers();
    const fake = fakeApi([doc(1)]);
    render(DocumentsPage, { t, api: fake.api });
    const input = screen.getByTestId('documents-search');
    await fireEvent.input(input, { target: { value: 'q' } });
    await fireEvent.input(input, { target: { value: 'qu' } });
    await vi.advanceTimersByTimeAsync(200);
    expect(fake.api.search).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(100);
    expect(fake.api.search).toHaveBeenCalledTimes(1);
    expect(fake.api.search).toHaveBeenLastCalledWith('qu');
    await fireEvent.input(input, { target: { value: 'quarterly' } });
    await fireEvent.keyDown(input, { key: 'Enter' });
    expect(fake.api.search).toHaveBeenCalledTimes(2);
    expect(fake.api.search).toHaveBeenLastCalledWith('quarterly');
    await vi.advanceTimersByTimeAsync(300);
    expect(fake.api.search).toHaveBeenCalledTimes(2);
    expect(screen.getByTestId('documents-no-match').textContent).toContain('No passage matches “quarterly”');
  });

  it('says search is keyword-only when the embedding model is missing', async () => {
    const fake = fakeApi([doc(1, { embedded_chunks: 0 })], {
      status: { importing: false, vector_notice: { code: 'embedding_model_missing', message: 'models/embed.onnx: not found' } },
    });
    await renderPage(fake);
    await waitFor(() => expect(screen.getByTestId('documents-vector-notice')).toBeTruthy());
    const notice = screen.getByTestId('documents-vector-notice').textContent ?? '';
    expect(notice).toContain('Search uses keywords only');
    expect(notice).toContain('embedding model is not installed');
    expect(notice).toContain('models/embed.onnx: not found');
    // Nothing will embed these chunks, so they are not shown as "embedding…".
    expect(screen.getByTestId('document-row-1').textContent).not.toContain('embedding…');
  });

  it('shows the mode and notice of a keyword-only search', async () => {
    const fake = fakeApi([doc(1)], {
      search: {
        query: 'plan', terms: ['plan'], mode: 'keyword',
        notice: { code: 'embedding_runtime_missing', message: 'libonnxruntime.so: not found' }, passages: [passage(5, 'The plan')],
        warnings: [],
      },
    });
    await renderPage(fake);
    expect(screen.queryByTestId('documents-vector-notice')).toBeNull();
    await fireEvent.input(screen.getByTestId('documents-search'), { target: { value: 'plan' } });
    await fireEvent.keyDown(screen.getByTestId('documents-search'), { key: 'Enter' });
    await waitFor(() => expect(screen.getByTestId('documents-search-mode').dataset.mode).toBe('keyword'));
    expect(screen.getByTestId('documents-search-mode').textContent).toContain('keywords only');
    expect(screen.getByTestId('documents-search-notice').textContent).toContain('ONNX Runtime is missing');
    expect(screen.queryByTestId('documents-search-warning')).toBeNull();
  });

  it('shows the warnings of a search that still worked, translated when the code is known', async () => {
    const fake = fakeApi([doc(1)], {
      search: {
        query: 'plan', terms: ['plan'], mode: 'hybrid', notice: null, passages: [passage(5, 'The plan')],
        warnings: [
          { code: 'vector_index_unsaved', message: '/data/vectors.bin: Is a directory' },
          { code: 'something_new', message: 'a problem the UI does not know yet' },
        ],
      },
    });
    await renderPage(fake);
    await fireEvent.input(screen.getByTestId('documents-search'), { target: { value: 'plan' } });
    await fireEvent.keyDown(screen.getByTestId('documents-search'), { key: 'Enter' });
    await waitFor(() => expect(screen.getAllByTestId('documents-search-warning')).toHaveLength(2));
    const [unsaved, other] = screen.getAllByTestId('documents-search-warning') as [HTMLElement, HTMLElement];
    expect(unsaved.getAttribute('role')).toBe('note');
    expect(unsaved.dataset.code).toBe('vector_index_unsaved');
    expect(unsaved.textContent?.trim()).toBe(t('documents.error.vector_index_unsaved'));
    expect(unsaved.textContent).toContain('rebuilt each time Deskmate starts');
    expect(other.textContent?.trim()).toBe('a problem the UI does not know yet');
    // The search itself worked: its passages are shown below the warnings.
    expect(screen.getByTestId('passage-5')).toBeTruthy();
    const results = screen.getByTestId('documents-results');
    expect(unsaved.compareDocumentPosition(results) & Node.DOCUMENT_POSITION_FOLLOWING).toBeTruthy();
  });

  it('imports picked files at the chosen level, shows progress, and summarises failures', async () => {
    const fake = fakeApi([doc(1)]);
    await renderPage(fake);
    const level = screen.getByTestId('documents-level') as HTMLSelectElement;
    expect(level.value).toBe('internal');
    await fireEvent.change(level, { target: { value: 'confidential' } });
    await fireEvent.click(screen.getByTestId('documents-add-files'));
    await waitFor(() => expect(fake.api.import).toHaveBeenCalledWith(['/picked/a.pdf', '/picked/b.docx'], 'confidential'));
    expect(fake.api.pick).toHaveBeenCalledWith(false);
    await waitFor(() => expect(screen.getByTestId('documents-progress')).toBeTruthy());

    const empty = { current_chunks_done: 0, current_chunks_total: 0 };
    fake.progress({ job_id: 9, files_total: 2, files_done: 0, chunks_done: 0, ...empty, current: '/picked/a.pdf', finished_file: null, done: false });
    await waitFor(() => expect(screen.getByTestId('documents-progress').textContent).toContain('Reading a.pdf'));
    // Inside the first file: the bar moves with its passages.
    fake.progress({
      job_id: 9, files_total: 2, files_done: 0, chunks_done: 3, current_chunks_done: 3, current_chunks_total: 12,
      current: '/picked/a.pdf', finished_file: null, done: false,
    });
    await waitFor(() => expect(screen.getByTestId('documents-progress-bar').getAttribute('aria-valuenow')).toBe('13'));
    expect(screen.getByTestId('documents-progress').textContent).toContain('Importing 0 of 2 files · this file: 3 of 12 passages');
    fake.progress({
      job_id: 9, files_total: 2, files_done: 1, chunks_done: 7, ...empty, current: null, done: false,
      finished_file: { path: '/picked/a.pdf', status: 'added', chunks: 7, error_code: null, error: null },
    });
    await waitFor(() => expect(screen.getByTestId('documents-progress-bar').getAttribute('aria-valuenow')).toBe('50'));
    expect(screen.getByTestId('documents-progress').textContent).toContain('Importing 1 of 2 files · 7 passages');
    fake.progress({
      job_id: 9, files_total: 2, files_done: 2, chunks_done: 7, ...empty, current: null, done: false,
      finished_file: { path: '/picked/b.docx', status: 'failed', chunks: 0, error_code: 'document_encrypted', error: 'encrypted' },
    });
    await fireEvent.click(screen.getByTestId('documents-cancel'));
    expect(fake.api.cancel).toHaveBeenCalled();

    const listCalls = vi.mocked(fake.api.list).mock.calls.length;
    fake.finished({ error: null });
    await waitFor(() => expect(screen.queryByTestId('documents-progress')).toBeNull());
    await waitFor(() => expect(vi.mocked(fake.api.list).mock.calls.length).toBeGreaterThan(listCalls));
    const failure = toasts.items.find((x) => x.key === 'documents.import.failures');
    expect(failure).toMatchObject({ kind: 'error', code: 'document_encrypted', vars: { count: 1, files: 'b.docx' } });
  });

  it('offers only levels up to the profile clearance', async () => {
    const fake = fakeApi([doc(1, { level: 'public' })], { clearance: 'public' });
    await renderPage(fake);
    await waitFor(() => expect((screen.getByTestId('documents-level') as HTMLSelectElement).value).toBe('public'));
    const options = [...(screen.getByTestId('documents-level') as HTMLSelectElement).options].map((o) => o.value);
    expect(options).toEqual(['public']);
  });

  it('imports files dropped on the window and the e2e hook, with an overlay while dragging', async () => {
    const fake = fakeApi([]);
    const { unmount } = await renderPage(fake);
    await waitFor(() => expect(fake.api.onDragDrop).toHaveBeenCalled());
    fake.drag({ type: 'enter', paths: ['/drop/x.md'] });
    await waitFor(() => expect(screen.getByTestId('documents-drop')).toBeTruthy());
    fake.drag({ type: 'drop', paths: ['/drop/x.md', '/drop/folder'] });
    await waitFor(() => expect(screen.queryByTestId('documents-drop')).toBeNull());
    expect(fake.api.import).toHaveBeenCalledWith(['/drop/x.md', '/drop/folder'], 'internal');

    expect(typeof window.__deskmateImport).toBe('function');
    expect(await window.__deskmateImport?.(['/e2e/a.txt'], 'public')).toBe(9);
    expect(fake.api.import).toHaveBeenLastCalledWith(['/e2e/a.txt'], 'public');
    unmount();
    expect(window.__deskmateImport).toBeUndefined();
  });

  it('turns a refused import into a red toast with the mapped message', async () => {
    const fake = fakeApi([]);
    fake.api.import = vi.fn(() => Promise.reject({ code: 'import_in_progress', message: 'job 3 is running' }));
    await renderPage(fake);
    await window.__deskmateImport?.(['/a.pdf']);
    expect(toasts.items[0]).toMatchObject({ kind: 'error', key: 'documents.error.import_in_progress', code: 'import_in_progress' });
    expect(screen.queryByTestId('documents-progress')).toBeNull();
  });
});
