import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Message } from '../lib/chat';
import type { MessageSource } from '../lib/documents';
import { makeTranslator } from '../lib/i18n';
import { toasts } from '../lib/toasts.svelte';
import { storedImage } from '../test/media';
import MessageItem from './MessageItem.svelte';

afterEach(() => {
  clearMocks();
  toasts.items = [];
});

const t = makeTranslator('en');

function msg(
  content: string,
  status: Message['status'] = 'complete',
  suggestions: string[] = [],
  sources: MessageSource[] = [],
): Message {
  return { id: 5, session_id: 1, role: 'assistant', content, status, error_code: null, suggestions, sources, attachments: [], created_at: 0 };
}

function source(n: number, page: number | null, section: string | null = null): MessageSource {
  return { n, document_id: 40 + n, chunk_id: 400 + n, file_name: `report${n}.pdf`, path: `/docs/report${n}.pdf`, page, section, excerpt: `Excerpt ${n} <b>x</b>` };
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

  it('lists the cited sources with their place and opens the one clicked', async () => {
    const onOpenSource = vi.fn();
    const sources = [source(1, 2), source(2, null, 'Budget'), source(3, null)];
    render(MessageItem, props(msg('Revenue grew [1].', 'complete', [], sources), { onOpenSource }));
    const list = screen.getByTestId('message-sources');
    expect(screen.getByTestId('source-1').textContent).toContain('[1]');
    expect(screen.getByTestId('source-1').textContent).toContain('report1.pdf · p. 2');
    expect(screen.getByTestId('source-2').textContent).toContain('report2.pdf · Budget');
    expect(screen.getByTestId('source-3').textContent).not.toContain('·');
    // The excerpt is a tooltip and a secondary line, as text.
    expect(screen.getByTestId('source-1').getAttribute('title')).toBe('Excerpt 1 <b>x</b>');
    expect(list.querySelector('b')).toBeNull();
    await fireEvent.click(screen.getByTestId('source-2'));
    expect(onOpenSource).toHaveBeenCalledTimes(1);
    expect(onOpenSource).toHaveBeenCalledWith(sources[1]);
  });

  it('says when relevant passages were kept from the server, and nothing otherwise', () => {
    const { unmount } = render(MessageItem, props({ ...msg('An answer'), withheld: { host: 'gpu:8000', passages: 2 } }));
    expect(screen.getByTestId('message-withheld').textContent).toContain('2 relevant passage(s) from your documents were not sent to gpu:8000');
    unmount();
    render(MessageItem, props(msg('An answer')));
    expect(screen.queryByTestId('message-withheld')).toBeNull();
  });

  it('shows sources while the reply is still being written, and none for a plain answer', () => {
    const { unmount } = render(MessageItem, props(msg('', 'streaming', [], [source(1, 7)])));
    expect(screen.getByTestId('source-1')).toBeTruthy();
    unmount();
    render(MessageItem, props(msg('Hi')));
    expect(screen.queryByTestId('message-sources')).toBeNull();
  });

  it('opens a cited document with documents_open by default; a missing file is a red toast', async () => {
    const calls: [string, unknown][] = [];
    mockIPC((cmd, args) => {
      calls.push([cmd, args]);
      if (cmd === 'documents_open') throw { code: 'open_failed', message: '/docs/report1.pdf: not found' };
      return null;
    });
    render(MessageItem, props(msg('Revenue grew [1].', 'complete', [], [source(1, 2)])));
    await fireEvent.click(screen.getByTestId('source-1'));
    await waitFor(() => expect(toasts.items[0]).toBeTruthy());
    expect(calls).toEqual([['documents_open', { id: 41, page: 2 }]]);
    expect(toasts.items[0]).toMatchObject({ kind: 'error', key: 'documents.error.open_failed', code: 'open_failed' });
  });

  it('shows the images sent with a message above its text, and one larger on click until Esc', async () => {
    const message: Message = {
      ...msg('What is in these?'),
      role: 'user',
      attachments: [storedImage(1, 'chart.png'), storedImage(2, '영수증.jpg', { mime: 'image/jpeg' })],
    };
    const { container } = render(MessageItem, props(message, { speaker: 'You' }));
    const thumbs = screen.getAllByTestId('message-attachment') as HTMLImageElement[];
    expect(thumbs.map((img) => img.alt)).toEqual(['chart.png', '영수증.jpg']);
    expect(thumbs[0]?.tagName).toBe('IMG');
    expect(thumbs[0]?.getAttribute('src')).toBe(message.attachments[0]?.thumbnail);
    // Above the text.
    const body = container.querySelector('.body') as HTMLElement;
    expect(thumbs[0]!.compareDocumentPosition(body) & Node.DOCUMENT_POSITION_FOLLOWING).toBeTruthy();

    expect(screen.queryByTestId('attachment-lightbox')).toBeNull();
    await fireEvent.click(thumbs[1]!.closest('button') as HTMLElement);
    const box = screen.getByTestId('attachment-lightbox');
    expect(box.querySelector('img')?.getAttribute('alt')).toBe('영수증.jpg');
    expect(box.querySelector('[role="dialog"]')?.getAttribute('aria-label')).toBe('영수증.jpg');
    await fireEvent.keyDown(window, { key: 'Escape' });
    expect(screen.queryByTestId('attachment-lightbox')).toBeNull();
  });

  it('says when the text in an image was read for the model, and shows that text on request', () => {
    const message: Message = {
      ...msg('이 오류는 무슨 뜻인가요?'),
      role: 'user',
      attachments: [
        storedImage(1, '오류.png', { text: '오류 코드 E1042\n디스크 공간이 부족합니다.' }),
        storedImage(2, 'photo.jpg', { text: '' }),
        storedImage(3, 'seen.png', { text: null }),
      ],
    };
    render(MessageItem, props(message, { speaker: 'You' }));
    const notes = screen.getAllByTestId('message-image-text');
    // Only the image whose text was read and found gets the note.
    expect(notes).toHaveLength(1);
    expect(notes[0]?.querySelector('summary')?.textContent).toContain('Read the text in the image 오류.png');
    expect(notes[0]?.querySelector('pre')?.textContent).toBe('오류 코드 E1042\n디스크 공간이 부족합니다.');
  });

  it('names an image whose thumbnail is missing, and shows nothing for a message without images', () => {
    const { unmount } = render(MessageItem, props({ ...msg('See'), role: 'user', attachments: [storedImage(3, 'gone.png', { thumbnail: null })] }));
    const missing = screen.getByTestId('message-attachment');
    expect(missing.tagName).toBe('SPAN');
    expect(missing.getAttribute('aria-label')).toBe('gone.png');
    unmount();
    render(MessageItem, props(msg('Hi')));
    expect(screen.queryByTestId('message-attachment')).toBeNull();
  });
});
