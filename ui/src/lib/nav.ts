// The pages of the window, in navigation order.
import type { MessageKey } from './i18n';

export const PAGES = ['chat', 'cards', 'documents', 'monitor', 'models', 'settings'] as const;
export type PageId = (typeof PAGES)[number];

export function navLabelKey(page: PageId): MessageKey {
  return `nav.${page}`;
}

export function pageTitleKey(page: PageId): MessageKey {
  return `page.${page}.title`;
}

export function isPageId(value: unknown): value is PageId {
  return typeof value === 'string' && (PAGES as readonly string[]).includes(value);
}
