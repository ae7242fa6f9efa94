// Typed wrappers around Tauri commands. Every command rejects with `CommandError`.
import { invoke, type InvokeArgs } from '@tauri-apps/api/core';
import type { AppStatus, CommandError, StatusLoad } from './types';

/** Error codes produced by the UI itself (the core's codes come from Rust). */
export const UI_ERROR = {
  /** A command rejected with something that is not `{ code, message }`. */
  unknown: 'ui.unknown',
  /** A command resolved with a value of the wrong shape. */
  badResponse: 'ui.bad_response',
} as const;

export class ApiError extends Error implements CommandError {
  readonly code: string;

  constructor(error: CommandError) {
    super(error.message);
    this.name = 'ApiError';
    this.code = error.code;
  }

  toJSON(): CommandError {
    return { code: this.code, message: this.message };
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Normalises whatever a rejected command produced into `{ code, message }`. */
export function toCommandError(value: unknown): CommandError {
  if (value instanceof ApiError) return value.toJSON();
  if (isRecord(value) && typeof value.code === 'string' && typeof value.message === 'string') {
    return { code: value.code, message: value.message };
  }
  if (value instanceof Error) return { code: UI_ERROR.unknown, message: value.message };
  if (typeof value === 'string') return { code: UI_ERROR.unknown, message: value };
  return { code: UI_ERROR.unknown, message: String(value) };
}

/** True inside the Tauri webview; false in a plain browser or under vitest. */
export function isTauri(): boolean {
  return typeof window !== 'undefined' && '__TAURI_INTERNALS__' in window;
}

/** Calls a Tauri command; a rejection becomes an `ApiError` carrying the core's code. */
export async function call<T>(command: string, args?: InvokeArgs): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (error) {
    throw new ApiError(toCommandError(error));
  }
}

const ROLES = new Set(['office', 'character', 'speech', 'embedding']);
const SOURCES = new Set(['user', 'created_from_default', 'builtin_default']);

/**
 * Checks the parts of the `app_status` reply that the UI relies on, so a mismatch between the
 * Rust and TypeScript shapes shows up as a clear error instead of a blank page.
 */
export function parseAppStatus(value: unknown): AppStatus {
  const fail = (what: string): never => {
    throw new ApiError({ code: UI_ERROR.badResponse, message: `app_status: ${what}` });
  };
  if (!isRecord(value)) return fail('not an object');
  if (typeof value.version !== 'string') fail('version is not a string');
  if (typeof value.locale !== 'string') fail('locale is not a string');
  const paths = value.paths;
  if (!isRecord(paths)) return fail('paths is not an object');
  for (const key of ['config_file', 'data_dir', 'models_dir', 'database']) {
    if (typeof paths[key] !== 'string') fail(`paths.${key} is not a string`);
  }
  if (!Array.isArray(value.config_problems)) fail('config_problems is not an array');
  for (const [i, p] of (value.config_problems as unknown[]).entries()) {
    if (!isRecord(p) || typeof p.path !== 'string' || typeof p.message !== 'string') {
      fail(`config_problems[${i}] is not { path, message }`);
    }
  }
  if (typeof value.config_source !== 'string' || !SOURCES.has(value.config_source)) {
    fail('config_source is not one of user, created_from_default, builtin_default');
  }
  const store = value.store;
  if (!isRecord(store) || typeof store.ok !== 'boolean') return fail('store.ok is not a boolean');
  if (store.ok) {
    for (const key of ['schema_version', 'sessions', 'cards', 'documents']) {
      if (typeof store[key] !== 'number') fail(`store.${key} is not a number`);
    }
  } else if (!isRecord(store.error) || typeof store.error.code !== 'string') {
    fail('store.error is not { code, message }');
  }
  if (!Array.isArray(value.models)) fail('models is not an array');
  for (const [i, m] of (value.models as unknown[]).entries()) {
    if (
      !isRecord(m) ||
      typeof m.role !== 'string' ||
      !ROLES.has(m.role) ||
      typeof m.configured !== 'string' ||
      typeof m.resolved_path !== 'string' ||
      typeof m.installed !== 'boolean' ||
      !(m.size_bytes === null || m.size_bytes === undefined || typeof m.size_bytes === 'number')
    ) {
      fail(`models[${i}] is not a ModelStatus`);
    }
  }
  return value as unknown as AppStatus;
}

/** `app_status`: versions, locale, paths, config problems, store and model status. */
export async function getAppStatus(): Promise<AppStatus> {
  return parseAppStatus(await call<unknown>('app_status'));
}

/** Loads the status for the shell; never rejects. */
export async function loadStatus(): Promise<StatusLoad> {
  if (!isTauri()) return { kind: 'no-tauri' };
  try {
    return { kind: 'ok', status: await getAppStatus() };
  } catch (error) {
    return { kind: 'error', error: toCommandError(error) };
  }
}
