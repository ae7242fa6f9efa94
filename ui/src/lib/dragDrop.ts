// Files dragged onto the window from the desktop. With Tauri's drag-and-drop handler on (the
// default, which the app keeps), such drops never reach the page as HTML5 `drop` events: the
// webview reports them with the files' paths instead. Only the page that is shown subscribes
// (App mounts one page at a time), so only it acts on a drop: the Documents page imports the
// paths, the chat composer attaches images and transcribes audio files.
import type { UnlistenFn } from '@tauri-apps/api/event';
import { getCurrentWebview } from '@tauri-apps/api/webview';

/** What a page needs of a drag over the window (Tauri's event without the positions). */
export type DropEvent =
  | { type: 'enter'; paths: string[] }
  | { type: 'over' }
  | { type: 'drop'; paths: string[] }
  | { type: 'leave' };

/**
 * Subscribes to files and folders dragged onto the window; resolves to the unsubscribe function.
 * Rejects (never throws) when there is no webview to listen to, e.g. outside the app.
 */
export async function onWindowDragDrop(handler: (event: DropEvent) => void): Promise<UnlistenFn> {
  return getCurrentWebview().onDragDropEvent((e) => {
    const p = e.payload;
    if (p.type === 'enter' || p.type === 'drop') handler({ type: p.type, paths: p.paths });
    else handler({ type: p.type });
  });
}

/**
 * A drag handler for a page: `hovering` says whether files are over the window (for a drop
 * hint), `dropped` gets their paths.
 */
export function followDrag(
  hovering: (over: boolean) => void,
  dropped: (paths: string[]) => void,
): (event: DropEvent) => void {
  return (event) => {
    switch (event.type) {
      case 'enter':
        hovering(event.paths.length > 0);
        break;
      case 'over':
        break;
      case 'leave':
        hovering(false);
        break;
      case 'drop':
        hovering(false);
        dropped(event.paths);
        break;
    }
  };
}

/** The last part of a path, for either separator. */
export function fileNameOf(path: string): string {
  const parts = path.split(/[\\/]/).filter((p) => p !== '');
  return parts.at(-1) ?? path;
}
