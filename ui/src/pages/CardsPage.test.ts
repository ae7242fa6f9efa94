import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Card, ChatApi } from '../lib/chat';
import { makeTranslator } from '../lib/i18n';
import CardsPage from './CardsPage.svelte';

const t = makeTranslator('en');

function card(id: number, sessionId: number | null, note = ''): Card {
  return { id, message_id: sessionId === null ? null : id * 10, session_id: sessionId, session_title: `S${id}`, role: 'assistant', content: `Card **${id}**`, note, created_at: 0 };
}

function api(cards: Card[]): ChatApi {
  return {
    cards: vi.fn((search?: string) => Promise.resolve(search ? cards.filter((c) => c.note.includes(search)) : cards)),
    deleteCard: vi.fn(() => Promise.resolve(null)),
  } as unknown as ChatApi;
}

afterEach(() => vi.useRealTimers());

describe('CardsPage', () => {
  it('opens a card at its message and says when its session is gone', async () => {
    const onOpen = vi.fn();
    render(CardsPage, { t, api: api([card(1, 4, 'memo'), card(2, null)]), onOpen });
    await waitFor(() => expect(screen.getByTestId('card-1')).toBeTruthy());
    expect(screen.getByTestId('card-1').querySelector('strong')?.textContent).toBe('1');
    await fireEvent.click(screen.getByTestId('card-open-1'));
    expect(onOpen).toHaveBeenCalledWith(4, 10);
    expect(screen.getByTestId('card-2').textContent).toContain('The conversation was deleted');
    expect(screen.queryByTestId('card-open-2')).toBeNull();
  });

  it('searches and deletes', async () => {
    const fake = api([card(1, 4, 'memo'), card(2, 5, 'other')]);
    render(CardsPage, { t, api: fake, onOpen: vi.fn() });
    await waitFor(() => expect(screen.getByTestId('card-2')).toBeTruthy());
    await fireEvent.input(screen.getByTestId('cards-search'), { target: { value: 'memo' } });
    await waitFor(() => expect(screen.queryByTestId('card-2')).toBeNull(), { timeout: 1000 });
    expect(fake.cards).toHaveBeenLastCalledWith('memo');
    await fireEvent.click(screen.getByTestId('card-delete-1'));
    await waitFor(() => expect(screen.queryByTestId('card-1')).toBeNull());
    expect(fake.deleteCard).toHaveBeenCalledWith(1);
  });
});
