// The local OpenAI-compatible API (Rust: crates/server, started and stopped by the window): the
// commands behind the Settings page's "Local API" card, and the pure helpers it shows the key
// and an example request with. The server listens on this computer only; the key decides which
// profile (and so which documents) a program acts as.
import { call, toCommandError } from './api';
import type { AccessLevel } from './documents';
import { describeLocalApiError } from './errors';
import { toasts } from './toasts.svelte';
import type { CommandError } from './types';

// --- shapes (serde JSON from Rust) ---

/** The profile a key acts as (the core's `Profile`; `created_at` may be left out). */
export interface ApiKeyProfile {
  id: number;
  name: string;
  clearance: AccessLevel;
  created_at?: number;
}

/** What `api_status` tells about the key: never the key itself. */
export interface ApiKeySummary {
  profile: ApiKeyProfile;
  /** The key file (api-key.json), so a user knows what to protect or delete. */
  file: string;
  /** Milliseconds since the epoch. */
  created_at: number;
}

export interface ApiStatus {
  /** `api.enabled` in config.json: whether the window starts the server. */
  enabled: boolean;
  running: boolean;
  /** The base URL programs use, e.g. `http://127.0.0.1:8765/v1`; null while not running. */
  url: string | null;
  /** Why it is not running though enabled (the port in use, an invalid `api` section). */
  error: CommandError | null;
  /** Null until a key has been made. */
  key: ApiKeySummary | null;
}

/** The key itself, from `api_key_show` or `api_key_new`. */
export interface ApiKeyInfo extends ApiKeySummary {
  /** `dm-` and 64 hex digits. */
  key: string;
}

// --- commands ---

export interface LocalApi {
  status(): Promise<ApiStatus>;
  /** Saves `api.enabled` and starts or stops the server; a failed start resolves with `error` set. */
  setEnabled(enabled: boolean): Promise<ApiStatus>;
  /** The key, made (bound to the active profile) when there is none. */
  showKey(): Promise<ApiKeyInfo>;
  /** Replaces the key; the old one stops working at once. */
  newKey(): Promise<ApiKeyInfo>;
}

export const localApi: LocalApi = {
  status: () => call<ApiStatus>('api_status'),
  setEnabled: (enabled) => call<ApiStatus>('api_set_enabled', { enabled }),
  showKey: () => call<ApiKeyInfo>('api_key_show'),
  newKey: () => call<ApiKeyInfo>('api_key_new'),
};

// --- helpers ---

/** The core's default address (`api.host` 127.0.0.1, `api.port` 8765), for the example while off. */
export const DEFAULT_API_URL = 'http://127.0.0.1:8765/v1';

/** How many of the key's last characters a hidden key still shows, to tell keys apart. */
const SHOWN_TAIL = 4;

/**
 * The key as shown while hidden: `dm-••••…`, with its last characters once it has been fetched
 * (so a user can tell which key a program has without revealing it).
 */
export function maskKey(key: string | null): string {
  const hidden = 'dm-••••…';
  return key && key.length > SHOWN_TAIL + 3 ? `${hidden}${key.slice(-SHOWN_TAIL)}` : hidden;
}

/** A request a user can paste into a terminal to check the server and the key. */
export function curlExample(url: string | null, key: string | null): string {
  const base = (url ?? DEFAULT_API_URL).replace(/\/+$/, '');
  return `curl ${base}/models -H "Authorization: Bearer ${key ?? 'KEY'}"`;
}

/** A red toast for a rejected local API command. */
export function toastLocalApiError(error: unknown): void {
  const e = toCommandError(error);
  toasts.push({ kind: 'error', key: describeLocalApiError(e.code), code: e.code, detail: e.message, action: null });
}
