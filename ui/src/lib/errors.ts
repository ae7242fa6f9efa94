// Error codes: the one list of the codes the core sends in `{ code, message }`, and the tables
// that turn a code into a translated message (and the action worth offering) for each part of the
// UI. The Rust enum `ErrorCode` holds the same codes; a Rust test reads `ERROR_CODES` from this
// file, so keep its layout: one single-quoted code per line, `//` comment lines only.
// The tables are typed with `ErrorCode`, so a code the core does not have fails to compile. The
// describe functions take any string all the same: a newer core may send a code this build does
// not know, and that gets the area's "other" message.
import type { MessageKey } from './i18n';

export const ERROR_CODES = [
  // files, configuration and the store
  'io',
  'no_home_dir',
  'disk_full',
  'config_invalid',
  'store',
  'store_too_new',
  'store_busy',
  'not_found',
  'invalid_input',
  // chat
  'message_too_long',
  'reply_in_progress',
  'nothing_to_retry',
  // a reply cut off because the process writing it ended (stored on the message)
  'app_closed',
  'attachment_missing',
  // documents
  'document_unsupported',
  'document_too_large',
  'document_encrypted',
  'document_unreadable',
  'document_empty',
  'tokenizer',
  'embedding_model_missing',
  'embedding_runtime_missing',
  'embedding_failed',
  'vector_index',
  'vector_index_unsaved',
  'document_above_clearance',
  'import_in_progress',
  'open_failed',
  'ocr_unavailable',
  'ocr_failed',
  'document_scanned',
  // voice
  'speech_model_missing',
  'speech_helper_missing',
  'speech_failed',
  'speech_model_invalid',
  'speech_language_unsupported',
  'audio_unsupported',
  'audio_unreadable',
  'audio_too_long',
  'no_input_device',
  'input_device_failed',
  'input_permission_denied',
  'not_recording',
  'cancelled',
  // images
  'image_unsupported',
  'image_corrupt',
  'image_too_large',
  'vision_unavailable',
  // models and the engine
  'model_missing',
  'model_not_a_file',
  'model_unreadable',
  'model_not_gguf',
  'model_unsupported_version',
  'model_truncated',
  'model_corrupt',
  'engine_init',
  'out_of_memory',
  'model_load_failed',
  'chat_template',
  'model_not_loaded',
  'busy',
  'prompt_too_long',
  'decode_failed',
  'model_unloaded',
  'worker_crashed',
  'remote_unreachable',
  'remote_timeout',
  'remote_error',
  'remote_key_missing',
  'model_manifest_invalid',
  'model_unknown',
  'model_fetch_failed',
  // the application itself
  'internal',
  'monitor_unavailable',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

const KNOWN: ReadonlySet<string> = new Set(ERROR_CODES);

/** Whether the core's code is one this build knows. */
export function isErrorCode(code: string | null | undefined): code is ErrorCode {
  return KNOWN.has(code ?? '');
}

function isOneOf<C extends ErrorCode>(codes: readonly C[], code: string | null | undefined): code is C {
  return (codes as readonly string[]).includes(code ?? '');
}

/** What a toast offers besides closing. */
export type ToastAction = 'open_models' | 'retry' | null;

/** A translated message and the action worth offering with it. */
export interface ErrorMessage {
  key: MessageKey;
  action: ToastAction;
}

// --- chat ---

/** The persona's model cannot answer: the Models page says why and fixes it. */
const MODEL_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'model_missing',
  'model_not_loaded',
  'model_not_a_file',
  'model_unreadable',
  'model_not_gguf',
  'model_unsupported_version',
  'model_truncated',
  'model_corrupt',
  'model_load_failed',
  'chat_template',
  'engine_init',
]);

const CHAT_ERRORS: Partial<Record<ErrorCode, ErrorMessage>> = {
  out_of_memory: { key: 'chat.error.out_of_memory', action: 'open_models' },
  busy: { key: 'chat.error.busy', action: 'retry' },
  cancelled: { key: 'chat.error.cancelled', action: 'retry' },
  worker_crashed: { key: 'chat.error.crashed', action: 'retry' },
  decode_failed: { key: 'chat.error.crashed', action: 'retry' },
  model_unloaded: { key: 'chat.error.crashed', action: 'retry' },
  prompt_too_long: { key: 'chat.error.prompt_too_long', action: null },
  remote_unreachable: { key: 'chat.error.remote_unreachable', action: 'retry' },
  remote_timeout: { key: 'chat.error.remote_timeout', action: 'retry' },
  remote_error: { key: 'chat.error.remote_error', action: 'retry' },
  remote_key_missing: { key: 'chat.error.remote_key_missing', action: 'open_models' },
  message_too_long: { key: 'chat.error.message_too_long', action: null },
  reply_in_progress: { key: 'chat.error.reply_in_progress', action: null },
  attachment_missing: { key: 'chat.error.attachment_missing', action: null },
  // Any chat command can meet these (listing, renaming, saving a reply), and "retry" would
  // regenerate the last reply, so no action is offered: the user tries the same thing again.
  disk_full: { key: 'chat.error.disk_full', action: null },
  store_busy: { key: 'chat.error.store_busy', action: null },
  // A retry meets the same broken state; only a restart helps.
  internal: { key: 'chat.error.internal', action: null },
};

/** The translated message for an error code of the chat commands, and the action worth offering. */
export function describeChatError(code: string): ErrorMessage {
  if (!isErrorCode(code)) return { key: 'chat.error.other', action: null };
  if (MODEL_CODES.has(code)) {
    return {
      key: code === 'model_missing' ? 'chat.error.model_missing' : 'chat.error.model',
      action: 'open_models',
    };
  }
  const known = CHAT_ERRORS[code];
  return known ? { ...known } : { key: 'chat.error.other', action: null };
}

// --- documents and profiles ---

/** The codes with a `documents.error.<code>` message. */
export const DOCUMENT_ERROR_CODES = [
  'document_unsupported',
  'document_too_large',
  'document_encrypted',
  'document_unreadable',
  'document_empty',
  'embedding_model_missing',
  'embedding_runtime_missing',
  'import_in_progress',
  'open_failed',
  'not_found',
  'invalid_input',
  'document_above_clearance',
  'disk_full',
  'store_busy',
  'vector_index_unsaved',
  'ocr_unavailable',
  'ocr_failed',
  'document_scanned',
  'internal',
] as const satisfies readonly ErrorCode[];

/** The translated message for an error code of the documents and profiles commands. */
export function describeDocumentError(code: string | null | undefined): MessageKey {
  return isOneOf(DOCUMENT_ERROR_CODES, code) ? `documents.error.${code}` : 'documents.error.other';
}

// --- voice ---

/** The codes with a `voice.error.<code>` message. */
export const VOICE_ERROR_CODES = [
  'no_input_device',
  'input_device_failed',
  'input_permission_denied',
  'speech_model_missing',
  'speech_helper_missing',
  'speech_model_invalid',
  'speech_failed',
  'speech_language_unsupported',
  'audio_too_long',
  'audio_unsupported',
  'audio_unreadable',
  'not_recording',
  'cancelled',
  /** A dropped file's path could not be opened (`voice_transcribe_path`). */
  'io',
  'internal',
] as const satisfies readonly ErrorCode[];

/** The speech model is the problem: the Models page installs or replaces it. */
const SPEECH_MODEL_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['speech_model_missing', 'speech_model_invalid']);

/** The translated message for a voice error or a `voice_status` problem, and the action worth offering. */
export function describeVoiceError(code: string | null | undefined): ErrorMessage {
  if (!isOneOf(VOICE_ERROR_CODES, code)) return { key: 'voice.error.other', action: null };
  return { key: `voice.error.${code}`, action: SPEECH_MODEL_CODES.has(code) ? 'open_models' : null };
}

// --- images ---

/** The codes with an `attach.error.<code>` message; `io`: a dropped file's path could not be opened. */
export const IMAGE_ERROR_CODES = [
  'image_unsupported',
  'image_corrupt',
  'image_too_large',
  'io',
  'internal',
] as const satisfies readonly ErrorCode[];

/** The translated message (with the file's `{name}`) for an `image_attach` or `image_attach_path` error. */
export function describeImageError(code: string | null | undefined): MessageKey {
  return isOneOf(IMAGE_ERROR_CODES, code) ? `attach.error.${code}` : 'attach.error.other';
}

// --- hardware monitor ---

/** Every monitor message takes `{code}` and `{message}`: the page shows both. */
const MONITOR_ERRORS: Partial<Record<ErrorCode, MessageKey>> = {
  monitor_unavailable: 'monitor.error.unavailable',
  internal: 'monitor.error.internal',
};

/** The translated message for a failure of the monitor's commands or its sample event. */
export function describeMonitorError(code: string | null | undefined): MessageKey {
  return (isErrorCode(code) ? MONITOR_ERRORS[code] : undefined) ?? 'monitor.error';
}

// --- local API ---

/**
 * The codes with an `api.error.<code>` message: why the server did not start though it is turned
 * on (`io`: its port could not be opened, usually because another program holds it;
 * `config_invalid`: the `api` section of config.json), and why a key or the setting could not be
 * saved.
 */
export const LOCAL_API_ERROR_CODES = [
  'io',
  'config_invalid',
  'disk_full',
  'store_busy',
  'internal',
] as const satisfies readonly ErrorCode[];

/** Whether the code has its own local API message (others are shown as the core's message). */
export function isLocalApiErrorCode(code: string | null | undefined): boolean {
  return isOneOf(LOCAL_API_ERROR_CODES, code);
}

/** The translated message for a local API error or a server that did not start. */
export function describeLocalApiError(code: string | null | undefined): MessageKey {
  return isOneOf(LOCAL_API_ERROR_CODES, code) ? `api.error.${code}` : 'api.error.other';
}
