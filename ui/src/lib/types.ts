// Shapes shared with the Rust side (src-tauri). Keep in sync with the `app_status` command.

/** Every command rejects with this value. `code` is stable and machine-readable. */
export interface CommandError {
  code: string;
  message: string;
}

export interface ConfigProblem {
  /** JSON path such as "models.office.n_ctx"; "" for a syntax error. */
  path: string;
  message: string;
}

export type ConfigSource = 'user' | 'created_from_default' | 'builtin_default';

export type StoreStatus =
  | { ok: true; schema_version: number; sessions: number; cards: number; documents: number }
  | { ok: false; error: CommandError };

export type ModelRole = 'office' | 'character' | 'speech' | 'embedding';

export interface ModelStatus {
  role: ModelRole;
  /** The path as written in config.json. */
  configured: string;
  resolved_path: string;
  installed: boolean;
  size_bytes: number | null;
}

export interface AppPaths {
  config_file: string;
  data_dir: string;
  models_dir: string;
  database: string;
}

export interface AppStatus {
  version: string;
  /** System locale, e.g. "ko-KR" or "en-US". */
  locale: string;
  paths: AppPaths;
  /** Empty when the config is valid. */
  config_problems: ConfigProblem[];
  config_source: ConfigSource;
  store: StoreStatus;
  models: ModelStatus[];
}

/** What the shell knows about the core at any moment. */
export type StatusLoad =
  | { kind: 'loading' }
  | { kind: 'no-tauri' }
  | { kind: 'error'; error: CommandError }
  | { kind: 'ok'; status: AppStatus };
