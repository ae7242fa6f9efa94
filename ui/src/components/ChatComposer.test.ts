import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ChatApi, TurnStart } from '../lib/chat';
import { ChatStore } from '../lib/chatStore.svelte';
import { makeTranslator } from '../lib/i18n';
import type { MediaApi, Transcript } from '../lib/media';
import { toasts } from '../lib/toasts.svelte';
import { fakeChatApi, fakeMedia, notReady, transcript, type FakeMedia } from '../test/media';
import ChatComposer from './ChatComposer.svelte';

const t = makeTranslator('en');

let now = 10_000;
beforeEach(() => {
  now = 10_000;
  vi.spyOn(Date, 'now').mockImplementation(() => now);
  toasts.items = [];
});

afterEach(() => {
  vi.restoreAllMocks();
  toasts.items = [];
});

const started: TurnStart = {
  session: { id: 7, profile_id: 1, title: 'x', title_is_auto: true, persona: 'office', tone: 'polite', character: null, created_at: 0, updated_at: 0 },
  user_message: null,
  reply: { id: 11, session_id: 7, role: 'assistant', content: '', status: 'streaming', error_code: null, suggestions: [], sources: [], attachments: [], created_at: 0 },
  replaced: [],
};

function setup(opts: { media?: Partial<MediaApi>; chat?: Partial<ChatApi>; persona?: 'office' | 'character' } = {}) {
  const fake: FakeMedia = fakeMedia(opts.media);
  const chatApi = fakeChatApi({ send: vi.fn(() => Promise.resolve(started)), ...opts.chat });
  const store = new ChatStore(chatApi);
  const result = render(ChatComposer, {
    t,
    store,
    media: fake.api,
    persona: opts.persona ?? 'office',
    speechLanguage: 'en',
  });
  return { fake, chatApi, store, ...result };
}

const box = () => screen.getByTestId('chat-input') as HTMLTextAreaElement;
const mic = () => screen.getByTestId('chat-mic') as HTMLButtonElement;
const voiceState = () => screen.getByTestId('voice-state').dataset.state;

function image(name: string, type = 'image/png'): File {
  return new File([new Uint8Array([137, 80, 78, 71, name.length])], name, { type });
}

async function pick(...files: File[]) {
  const input = screen.getByTestId('chat-attach-input') as HTMLInputElement;
  await fireEvent.change(input, { target: { files } });
}

async function micReady() {
  await waitFor(() => expect(mic().disabled).toBe(false));
}

describe('ChatComposer push-to-talk', () => {
  it('records while the mic is held, shows the level, and puts the text in the box without sending', async () => {
    const { fake, chatApi } = setup();
    await micReady();
    expect(voiceState()).toBe('idle');
    await fireEvent.input(box(), { target: { value: 'Note:' } });

    await fireEvent.pointerDown(mic());
    await waitFor(() => expect(fake.api.voiceStart).toHaveBeenCalled());
    await waitFor(() => expect(voiceState()).toBe('recording'));
    expect(mic().getAttribute('aria-pressed')).toBe('true');
    fake.level(-15);
    await waitFor(() => expect(screen.getByTestId('voice-level').getAttribute('aria-valuenow')).toBe('75'));

    now += 1_200;
    await fireEvent.pointerUp(mic());
    await waitFor(() => expect(box().value).toBe('Note: hello there'));
    expect(fake.api.voiceStop).toHaveBeenCalledWith('en');
    expect(voiceState()).toBe('idle');
    expect(chatApi.send).not.toHaveBeenCalled();
    expect(document.activeElement).toBe(box());
  });

  it('shows "Transcribing…" until the transcript arrives', async () => {
    let finish: () => void = () => {};
    const { fake } = setup({
      media: { voiceStop: vi.fn(() => new Promise<Transcript>((resolve) => (finish = () => resolve(transcript('done'))))) },
    });
    await micReady();
    await fireEvent.pointerDown(mic());
    await waitFor(() => expect(voiceState()).toBe('recording'));
    now += 900;
    await fireEvent.pointerLeave(mic());
    await waitFor(() => expect(voiceState()).toBe('transcribing'));
    expect(screen.getByTestId('voice-state').textContent).toContain('Transcribing…');
    expect(fake.api.voiceStop).toHaveBeenCalledTimes(1);
    finish();
    await waitFor(() => expect(box().value).toBe('done'));
  });

  it('cancels a short press and hints to hold', async () => {
    const { fake } = setup();
    await micReady();
    await fireEvent.pointerDown(mic());
    await waitFor(() => expect(voiceState()).toBe('recording'));
    now += 150;
    await fireEvent.pointerUp(mic());
    await waitFor(() => expect(fake.api.voiceCancel).toHaveBeenCalled());
    expect(fake.api.voiceStop).not.toHaveBeenCalled();
    expect(toasts.items[0]).toMatchObject({ kind: 'info', key: 'voice.hold_hint' });
    expect(box().value).toBe('');
  });

  it('records while Alt+M is held in the box, and Esc cancels', async () => {
    const { fake } = setup();
    await micReady();
    await fireEvent.keyDown(box(), { key: 'm', code: 'KeyM', altKey: true });
    await waitFor(() => expect(voiceState()).toBe('recording'));
    await fireEvent.keyDown(box(), { key: 'm', code: 'KeyM', altKey: true, repeat: true });
    expect(fake.api.voiceStart).toHaveBeenCalledTimes(1);
    await fireEvent.keyDown(window, { key: 'Escape' });
    await waitFor(() => expect(voiceState()).toBe('idle'));
    expect(fake.api.voiceCancel).toHaveBeenCalledTimes(1);
    await fireEvent.keyUp(box(), { key: 'Alt', code: 'AltLeft' });
    expect(fake.api.voiceStop).not.toHaveBeenCalled();

    await fireEvent.keyDown(box(), { key: 'm', code: 'KeyM', altKey: true });
    await waitFor(() => expect(voiceState()).toBe('recording'));
    now += 2_000;
    await fireEvent.keyUp(box(), { key: 'm', code: 'KeyM', altKey: true });
    await waitFor(() => expect(box().value).toBe('hello there'));
  });

  it('turns a failed recording into a red toast with the mapped message', async () => {
    setup({ media: { voiceStop: vi.fn(() => Promise.reject({ code: 'speech_failed', message: 'whisper exited with 3' })) } });
    await micReady();
    await fireEvent.pointerDown(mic());
    await waitFor(() => expect(voiceState()).toBe('recording'));
    now += 1_000;
    await fireEvent.pointerUp(mic());
    await waitFor(() => expect(toasts.items[0]).toMatchObject({ kind: 'error', key: 'voice.error.speech_failed', code: 'speech_failed' }));
    expect(voiceState()).toBe('idle');
    expect(box().value).toBe('');
  });

  it('says "Nothing was heard" for an empty transcript', async () => {
    setup({ media: { voiceStop: vi.fn(() => Promise.resolve(transcript(''))) } });
    await micReady();
    await fireEvent.pointerDown(mic());
    await waitFor(() => expect(voiceState()).toBe('recording'));
    now += 1_000;
    await fireEvent.pointerUp(mic());
    await waitFor(() => expect(toasts.items[0]).toMatchObject({ kind: 'info', key: 'voice.nothing_heard' }));
    expect(box().value).toBe('');
  });

  it('disables the mic and says why when voice_status is not ready', async () => {
    const { fake } = setup({ media: { voiceStatus: vi.fn(() => Promise.resolve(notReady('no_input_device'))) } });
    await waitFor(() => expect(screen.getByTestId('chat-mic-reason').textContent).toContain('No microphone was found'));
    expect(mic().disabled).toBe(true);
    expect(mic().getAttribute('aria-describedby')).toBe('chat-mic-why');
    expect(document.getElementById('chat-mic-why')?.textContent).toContain('No microphone was found');
    expect(mic().parentElement?.getAttribute('title')).toContain('No microphone was found');
    await fireEvent.pointerDown(mic());
    await fireEvent.keyDown(box(), { key: 'm', code: 'KeyM', altKey: true });
    expect(fake.api.voiceStart).not.toHaveBeenCalled();
  });

  it('points to the Models page when the speech model is missing', async () => {
    setup({ media: { voiceStatus: vi.fn(() => Promise.resolve(notReady('speech_model_missing'))) } });
    await waitFor(() => expect(screen.getByTestId('chat-mic-reason').textContent).toContain('Models page'));
  });

  it('transcribes a dropped audio file into the box', async () => {
    const { fake } = setup();
    await micReady();
    await fireEvent.input(box(), { target: { value: 'Minutes' } });
    const file = new File([new Uint8Array([82, 73, 70, 70])], 'memo.mp3', { type: '' });
    await fireEvent.drop(screen.getByTestId('chat-composer'), { dataTransfer: { files: [file], types: ['Files'] } });
    await waitFor(() => expect(box().value).toBe('Minutes from the file'));
    expect(fake.api.transcribeFile).toHaveBeenCalledWith(expect.any(Uint8Array), 'memo.mp3', 'en');
  });
});

describe('ChatComposer images', () => {
  it('attaches picked images as chips with their details, and removes one', async () => {
    const { fake } = setup();
    await pick(image('cat.png'), image('dog.jpg', 'image/jpeg'));
    await waitFor(() => expect(screen.getAllByTestId('attachment-draft')).toHaveLength(2));
    expect(fake.api.attachImage).toHaveBeenNthCalledWith(1, expect.any(Uint8Array), 'cat.png');
    const [first, second] = screen.getAllByTestId('attachment-draft');
    expect(first?.textContent).toContain('cat.png');
    expect(first?.getAttribute('title')).toBe('cat.png · 245 KB · 1920×1080');
    expect(first?.querySelector('img')?.getAttribute('src')).toMatch(/^data:image\/png;base64,/);
    expect(second?.textContent).toContain('dog.jpg');
    await fireEvent.click(screen.getAllByTestId('attachment-draft-remove')[0] as HTMLElement);
    expect(screen.getAllByTestId('attachment-draft').map((d) => d.textContent)).toEqual([expect.stringContaining('dog.jpg')]);
  });

  it('shows a red toast naming a corrupt image and attaches nothing', async () => {
    setup({ media: { attachImage: vi.fn(() => Promise.reject({ code: 'image_corrupt', message: 'bad PNG header' })) } });
    await pick(image('broken.png'));
    await waitFor(() => expect(toasts.items[0]).toBeTruthy());
    expect(toasts.items[0]).toMatchObject({ kind: 'error', key: 'attach.error.image_corrupt', vars: { name: 'broken.png' }, code: 'image_corrupt' });
    expect(t(toasts.items[0]!.key, toasts.items[0]!.vars)).toContain('broken.png');
    expect(screen.queryByTestId('attachment-draft')).toBeNull();
  });

  it('attaches at most four images per message', async () => {
    const { fake } = setup();
    await pick(image('1.png'), image('2.png'), image('3.png'), image('4.png'), image('5.png'));
    await waitFor(() => expect(screen.getAllByTestId('attachment-draft')).toHaveLength(4));
    expect(fake.api.attachImage).toHaveBeenCalledTimes(4);
    expect(toasts.items[0]).toMatchObject({ kind: 'info', key: 'attach.too_many', vars: { max: 4 } });
    expect((screen.getByTestId('chat-attach') as HTMLButtonElement).disabled).toBe(true);
  });

  it('attaches a pasted image and lets plain text paste through', async () => {
    const { fake } = setup();
    const file = image('image.png');
    const pasted = await fireEvent.paste(box(), { clipboardData: { files: [file], items: [] } });
    expect(pasted).toBe(false);
    await waitFor(() => expect(screen.getAllByTestId('attachment-draft')).toHaveLength(1));
    const text = await fireEvent.paste(box(), { clipboardData: { files: [], items: [{ kind: 'string', type: 'text/plain' }] } });
    expect(text).toBe(true);
    expect(fake.api.attachImage).toHaveBeenCalledTimes(1);
  });

  it('attaches a dropped image', async () => {
    setup();
    await fireEvent.drop(screen.getByTestId('chat-composer'), { dataTransfer: { files: [image('drop.webp', 'image/webp')], types: ['Files'] } });
    await waitFor(() => expect(screen.getAllByTestId('attachment-draft')).toHaveLength(1));
  });

  it('shows the vision notice when the model cannot see, and needs text to send', async () => {
    const { fake, chatApi } = setup({
      persona: 'character',
      media: { visionSupport: vi.fn(() => Promise.resolve({ can_see: false, reason: { code: 'vision_unavailable', message: 'text-only model' } })) },
    });
    expect(screen.queryByTestId('vision-notice')).toBeNull();
    await pick(image('chart.png'));
    const notice = await screen.findByTestId('vision-notice');
    expect(notice.getAttribute('role')).toBe('status');
    expect(notice.textContent).toContain('This model cannot see images.');
    expect(fake.api.visionSupport).toHaveBeenCalledWith('character');
    const send = screen.getByTestId('chat-send') as HTMLButtonElement;
    expect(send.disabled).toBe(true);
    expect(send.getAttribute('title')).toContain('write some text');
    expect(screen.getByTestId('chat-needs-text')).toBeTruthy();

    await fireEvent.input(box(), { target: { value: 'What does the chart say?' } });
    expect(send.disabled).toBe(false);
    await fireEvent.click(send);
    await waitFor(() => expect(chatApi.send).toHaveBeenCalled());
    expect(vi.mocked(chatApi.send).mock.calls[0]?.[5]).toEqual(['sha256-chart.png']);
  });

  it('hides the notice when the model sees images, sends images alone, and clears the drafts', async () => {
    const { fake, chatApi } = setup();
    await pick(image('a.png'), image('b.png'));
    await waitFor(() => expect(screen.getAllByTestId('attachment-draft')).toHaveLength(2));
    await waitFor(() => expect(fake.api.visionSupport).toHaveBeenCalledWith('office'));
    const send = screen.getByTestId('chat-send') as HTMLButtonElement;
    await waitFor(() => expect(send.disabled).toBe(false));
    expect(screen.queryByTestId('vision-notice')).toBeNull();
    await fireEvent.click(send);
    await waitFor(() => expect(chatApi.send).toHaveBeenCalledTimes(1));
    expect(chatApi.send).toHaveBeenCalledWith(null, expect.anything(), '', 10, expect.any(Function), ['sha256-a.png', 'sha256-b.png']);
    await waitFor(() => expect(screen.queryByTestId('attachment-draft')).toBeNull());
    // Asked once per persona.
    await pick(image('c.png'));
    await waitFor(() => expect(screen.getAllByTestId('attachment-draft')).toHaveLength(1));
    expect(fake.api.visionSupport).toHaveBeenCalledTimes(1);
  });

  it('keeps the drafts when the core refuses the message', async () => {
    setup({ chat: { send: vi.fn(() => Promise.reject({ code: 'attachment_missing', message: 'sha256-a.png' })) } });
    await pick(image('a.png'));
    await waitFor(() => expect(screen.getAllByTestId('attachment-draft')).toHaveLength(1));
    await fireEvent.input(box(), { target: { value: 'Here' } });
    await fireEvent.click(screen.getByTestId('chat-send'));
    await waitFor(() => expect(toasts.items[0]).toMatchObject({ kind: 'error', key: 'chat.error.attachment_missing' }));
    expect(screen.getAllByTestId('attachment-draft')).toHaveLength(1);
    expect(box().value).toBe('Here');
  });
});

// In the app, files dropped from the desktop come as Tauri drag-drop events with their paths.
describe('ChatComposer drops from the desktop (paths)', () => {
  const hint = () => screen.getByTestId('chat-composer').querySelector('.drop-hint');

  async function subscribed(fake: FakeMedia) {
    await waitFor(() => expect(fake.dragListeners()).toBe(1));
  }

  it('shows the drop hint while files are dragged over the window, and hides it on leave', async () => {
    const { fake } = setup();
    await subscribed(fake);
    expect(hint()).toBeNull();
    fake.drag({ type: 'enter', paths: ['/home/kim/cat.png'] });
    await waitFor(() => expect(hint()?.textContent).toContain('Drop images to attach them'));
    expect(screen.getByTestId('chat-composer').classList.contains('dragging')).toBe(true);
    fake.drag({ type: 'over' });
    expect(hint()).toBeTruthy();
    fake.drag({ type: 'leave' });
    await waitFor(() => expect(hint()).toBeNull());
    // A drag without files (text) shows nothing.
    fake.drag({ type: 'enter', paths: [] });
    await Promise.resolve();
    expect(hint()).toBeNull();
    expect(fake.api.attachImagePath).not.toHaveBeenCalled();
  });

  it('attaches a dropped image path as a chip', async () => {
    const { fake } = setup();
    await subscribed(fake);
    fake.drag({ type: 'enter', paths: ['/home/kim/Pictures/Cat.PNG'] });
    fake.drag({ type: 'drop', paths: ['/home/kim/Pictures/Cat.PNG'] });
    await waitFor(() => expect(screen.getAllByTestId('attachment-draft')).toHaveLength(1));
    expect(fake.api.attachImagePath).toHaveBeenCalledWith('/home/kim/Pictures/Cat.PNG');
    expect(fake.api.attachImage).not.toHaveBeenCalled();
    expect(screen.getByTestId('attachment-draft').textContent).toContain('Cat.PNG');
    expect(screen.getByTestId('attachment-draft').dataset.id).toBe('sha256-Cat.PNG');
    expect(hint()).toBeNull();
    expect(toasts.items).toEqual([]);
  });

  it('keeps the four-image limit across dropped paths', async () => {
    const { fake } = setup();
    await subscribed(fake);
    const paths = ['a.jpg', 'b.jpeg', 'c.webp', 'd.gif', 'e.png'].map((name) => `/tmp/${name}`);
    fake.drag({ type: 'drop', paths });
    await waitFor(() => expect(screen.getAllByTestId('attachment-draft')).toHaveLength(4));
    expect(vi.mocked(fake.api.attachImagePath).mock.calls.map(([path]) => path)).toEqual(paths.slice(0, 4));
    expect(toasts.items[0]).toMatchObject({ kind: 'info', key: 'attach.too_many', vars: { max: 4 } });
  });

  it('names the file in the red toast when the core refuses a dropped image', async () => {
    const { fake } = setup({
      media: { attachImagePath: vi.fn(() => Promise.reject({ code: 'image_corrupt', message: 'bad PNG header' })) },
    });
    await subscribed(fake);
    fake.drag({ type: 'drop', paths: ['/home/kim/broken.png'] });
    await waitFor(() => expect(toasts.items[0]).toBeTruthy());
    expect(toasts.items[0]).toMatchObject({ kind: 'error', key: 'attach.error.image_corrupt', vars: { name: 'broken.png' }, code: 'image_corrupt' });
    expect(screen.queryByTestId('attachment-draft')).toBeNull();

    fake.api.attachImagePath = vi.fn(() => Promise.reject({ code: 'io', message: 'permission denied' }));
    fake.drag({ type: 'drop', paths: ['/mnt/share/gone.gif'] });
    await waitFor(() => expect(toasts.items).toHaveLength(2));
    expect(toasts.items[1]).toMatchObject({ kind: 'error', key: 'attach.error.io', vars: { name: 'gone.gif' }, code: 'io', detail: 'permission denied' });
    expect(t(toasts.items[1]!.key, toasts.items[1]!.vars)).toContain('gone.gif');
  });

  it('transcribes a dropped audio path into the box without sending', async () => {
    const { fake, chatApi } = setup();
    await subscribed(fake);
    await micReady();
    await fireEvent.input(box(), { target: { value: 'Minutes' } });
    let finish: () => void = () => {};
    fake.api.transcribePath = vi.fn(() => new Promise<Transcript>((resolve) => (finish = () => resolve(transcript('from the path')))));
    fake.drag({ type: 'drop', paths: ['C:\\Users\\kim\\회의 메모.MP3'] });
    await waitFor(() => expect(voiceState()).toBe('transcribing'));
    expect(screen.getByTestId('voice-state').textContent).toContain('Transcribing…');
    expect(fake.api.transcribePath).toHaveBeenCalledWith('C:\\Users\\kim\\회의 메모.MP3', 'en');
    finish();
    await waitFor(() => expect(box().value).toBe('Minutes from the path'));
    expect(voiceState()).toBe('idle');
    expect(fake.api.transcribeFile).not.toHaveBeenCalled();
    expect(chatApi.send).not.toHaveBeenCalled();
  });

  it('says "Nothing was heard" for a dropped audio path with an empty transcript', async () => {
    const { fake } = setup({ media: { transcribePath: vi.fn(() => Promise.resolve(transcript(''))) } });
    await subscribed(fake);
    fake.drag({ type: 'drop', paths: ['/tmp/silence.wav'] });
    await waitFor(() => expect(toasts.items[0]).toMatchObject({ kind: 'info', key: 'voice.nothing_heard' }));
    expect(box().value).toBe('');
  });

  it('turns other paths into the "only images and audio" notice, and still takes the rest', async () => {
    const { fake } = setup();
    await subscribed(fake);
    fake.drag({ type: 'drop', paths: ['/home/kim/report.pdf', '/home/kim/folder', '/home/kim/shot.jpg'] });
    await waitFor(() => expect(toasts.items[0]).toMatchObject({ kind: 'info', key: 'attach.drop_unsupported' }));
    await waitFor(() => expect(screen.getAllByTestId('attachment-draft')).toHaveLength(1));
    expect(fake.api.attachImagePath).toHaveBeenCalledTimes(1);
    expect(fake.api.attachImagePath).toHaveBeenCalledWith('/home/kim/shot.jpg');
    expect(fake.api.transcribePath).not.toHaveBeenCalled();
    expect(toasts.items).toHaveLength(1);
  });

  it('stops listening when it unmounts', async () => {
    const { fake, unmount } = setup();
    await subscribed(fake);
    unmount();
    expect(fake.dragListeners()).toBe(0);
    fake.drag({ type: 'drop', paths: ['/tmp/late.png'] });
    expect(fake.api.attachImagePath).not.toHaveBeenCalled();
  });

  it('drops a subscription that only answers after it unmounted', async () => {
    let answer: (unlisten: () => void) => void = () => {};
    const unlisten = vi.fn();
    const { fake, unmount } = setup({ media: { onDragDrop: vi.fn(() => new Promise<() => void>((resolve) => (answer = resolve))) } });
    await waitFor(() => expect(fake.api.onDragDrop).toHaveBeenCalledTimes(1));
    unmount();
    answer(unlisten);
    await waitFor(() => expect(unlisten).toHaveBeenCalledTimes(1));
  });
});
