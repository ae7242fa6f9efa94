// Toasts: short-lived red (error) or neutral notices, shown above every page. An error toast
// carries its code, the core's detail and, where useful, an action (open the Models page,
// retry the reply).
import type { MessageKey, Vars } from './i18n';
import type { ToastAction } from './errors';

export interface Toast {
  id: number;
  kind: 'error' | 'info';
  key: MessageKey;
  vars?: Vars;
  code?: string;
  detail?: string;
  action: ToastAction;
  /** The session a retry applies to. */
  sessionId?: number;
}

const LIFETIME_MS = { error: 12_000, info: 4_000 };

class Toasts {
  items = $state<Toast[]>([]);
  private next = 1;

  push(toast: Omit<Toast, 'id'>): number {
    const id = this.next++;
    this.items = [...this.items.slice(-3), { ...toast, id }];
    if (typeof window !== 'undefined') {
      window.setTimeout(() => this.dismiss(id), LIFETIME_MS[toast.kind]);
    }
    return id;
  }

  dismiss(id: number): void {
    this.items = this.items.filter((t) => t.id !== id);
  }
}

export const toasts = new Toasts();
