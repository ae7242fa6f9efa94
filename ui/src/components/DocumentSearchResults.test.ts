import { fireEvent, render, screen } from '@testing-library/svelte';
import { describe, expect, it, vi } from 'vitest';
import type { DocumentsApi, Passage, SearchResult } from '../lib/documents';
import { DocumentsStore } from '../lib/documentsStore.svelte';
import { makeTranslator } from '../lib/i18n';
import DocumentSearchResults from './DocumentSearchResults.svelte';

const t = makeTranslator('en');

function passage(chunkId: number, documentId: number, text: string): Passage {
  return {
    chunk_id: chunkId, document_id: documentId, path: '/d/a.pdf', file_name: 'a.pdf', kind: 'pdf', level: 'internal',
    page: null, section: null, text, score: 1, similarity: null, keyword_rank: 1, vector_rank: 1,
  };
}

/** A store whose searches answer with `passages`, and whose other commands succeed. */
function storeWith(passages: Passage[]): DocumentsStore {
  const search = (query: string): Promise<SearchResult> =>
    Promise.resolve({ query, terms: [], mode: 'hybrid', notice: null, passages, warnings: [] });
  const api = { search: vi.fn(search), remove: vi.fn(() => Promise.resolve(null)) } as Partial<DocumentsApi>;
  return new DocumentsStore(api as DocumentsApi);
}

describe('DocumentSearchResults', () => {
  it('folds long passages, and folds them again for a new search but not when a document leaves', async () => {
    const long = `${'budget '.repeat(80)}end`;
    const store = storeWith([passage(1, 1, long), passage(2, 2, long), passage(3, 3, 'short')]);
    render(DocumentSearchResults, { t, store });
    store.query = 'budget';
    await store.search();
    const text = (id: number) => screen.getByTestId(`passage-${id}`).querySelector('.text') as HTMLElement;
    expect(text(1).classList.contains('folded')).toBe(true);
    expect(text(3).classList.contains('folded')).toBe(false);
    expect(screen.getByTestId('passage-3').querySelector('button.link')).toBeNull();

    await fireEvent.click(screen.getByTestId('passage-1').querySelector('button.link') as HTMLElement);
    expect(text(1).classList.contains('folded')).toBe(false);
    expect(screen.getByTestId('passage-1').textContent).toContain('Show less');

    await store.remove(2);
    await Promise.resolve();
    expect(screen.queryByTestId('passage-2')).toBeNull();
    expect(text(1).classList.contains('folded')).toBe(false);

    await store.search();
    await Promise.resolve();
    expect(text(1).classList.contains('folded')).toBe(true);
  });

  it('shows nothing until there is a query', () => {
    const store = storeWith([]);
    render(DocumentSearchResults, { t, store });
    expect(screen.queryByTestId('documents-results')).toBeNull();
    expect(screen.queryByTestId('documents-no-match')).toBeNull();
  });
});
