import { fireEvent, render, screen } from '@testing-library/svelte';
import { describe, expect, it, vi } from 'vitest';
import type { Message } from '../lib/chat';
import { makeTranslator } from '../lib/i18n';
import MessageItem from './MessageItem.svelte';

const t = makeTranslator('en');

function msg(content: string, status: Message['status'] = 'complete', suggestions: string[] = []): Message {
  return { id: 5, session_id: 1, role: 'assistant', content, status, error_code: null, suggestions, created_at: 0 };
}

function props(message: Message, extra: Record<string, unknown> = {}) {
  return { t, message, speaker: 'Deskmate', onRetry: vi.fn(), onCard: vi.fn(() => Promise.resolve(true)), onAsk: vi.fn(), ...extra };
}

describe('MessageItem', () => {
  it('renders Markdown and shows raw HTML as text', () => {
    const { container } = render(MessageItem, props(msg('**bold** <img src=x onerror="alert(1)">')));
    expect(container.querySelector('strong')?.textContent).toBe('bold');
    expect(container.querySelector('img')).toBeNull();
    expect(container.textContent).toContain('<img src=x');
  });

  it('offers retry only where allowed and hides actions while streaming', () => {
    const { unmount } = render(MessageItem, props(msg('Hi'), { canRetry: true }));
    expect(screen.getByTestId('message-retry')).toBeTruthy();
    unmount();
    render(MessageItem, props(msg('Hi', 'streaming')));
    expect(screen.queryByTestId('message-copy')).toBeNull();
    expect(screen.queryByTestId('message-retry')).toBeNull();
  });

  it('marks interrupted replies and sends a clicked follow-up question', async () => {
    const p = props(msg('Part', 'interrupted', ['Why?', 'How?']));
    render(MessageItem, p);
    expect(screen.getByTestId('message-interrupted').textContent).toBe('Interrupted');
    await fireEvent.click(screen.getAllByTestId('related-chip')[1] as HTMLElement);
    expect(p.onAsk).toHaveBeenCalledWith('How?');
  });

  it('saves a card with its note', async () => {
    const p = props(msg('Keep me'));
    render(MessageItem, p);
    await fireEvent.click(screen.getByTestId('message-card'));
    await fireEvent.input(screen.getByTestId('card-note-input'), { target: { value: 'memo' } });
    await fireEvent.submit(screen.getByTestId('card-note-save').closest('form') as HTMLFormElement);
    expect(p.onCard).toHaveBeenCalledWith('memo');
  });
});
