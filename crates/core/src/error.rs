//! The errors of `deskmate-core`, and the codes a user can see.
//!
//! Each area has its own enum ([`ConfigError`], [`StoreError`], [`ChatError`],
//! [`DocumentsError`], [`VoiceError`], [`VisionError`], [`EngineError`], [`ModelsError`]); the
//! crate's [`Error`] wraps them (`From` for each) beside the few that any area may raise (I/O, a
//! full disk, not found, invalid input, cancelled, internal). A front end sees only `Error`.
//!
//! Every variant has a stable, machine-readable [`ErrorCode`] ([`Error::code`]) that the UI and
//! the CLI map to human messages (ko/en); the `Display` text is the English developer-facing
//! detail and always names the field, file or model involved. Codes never change meaning once
//! shipped. [`ErrorCode`] is the whole list: no code is written as a string anywhere else, and
//! the UI's table of messages (`ui/src/lib/errors.ts`) is checked against it by a test.
//!
//! Errors are `Clone` (their I/O and SQLite sources are shared), so state that remembers a
//! failure (the engine that did not start, the embedding model that did not load) keeps the
//! error itself, and serialise as the UI's `{code, message}`.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::ConfigProblem;

pub type Result<T, E = Error> = std::result::Result<T, E>;

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident => $code:literal,)*) => {
        /// Every code a user can see, in the UI or the CLI. Serialised as its `snake_case` name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum ErrorCode {
            $($(#[$doc])* #[serde(rename = $code)] $variant,)*
        }

        impl ErrorCode {
            /// All codes, in the order of their declaration.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            /// The code named `code`, if there is one.
            pub fn parse(code: &str) -> Option<ErrorCode> {
                match code {
                    $($code => Some(ErrorCode::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

error_codes! {
    Io => "io",
    NoHomeDir => "no_home_dir",
    DiskFull => "disk_full",
    ConfigInvalid => "config_invalid",
    Store => "store",
    StoreTooNew => "store_too_new",
    StoreBusy => "store_busy",
    NotFound => "not_found",
    InvalidInput => "invalid_input",
    /// A part of the application that could not start (the window shows why).
    Internal => "internal",
    MessageTooLong => "message_too_long",
    ReplyInProgress => "reply_in_progress",
    NothingToRetry => "nothing_to_retry",
    /// A reply cut off because the process writing it ended (stored on the message).
    AppClosed => "app_closed",
    AttachmentMissing => "attachment_missing",
    DocumentUnsupported => "document_unsupported",
    DocumentTooLarge => "document_too_large",
    DocumentEncrypted => "document_encrypted",
    DocumentUnreadable => "document_unreadable",
    DocumentEmpty => "document_empty",
    Tokenizer => "tokenizer",
    EmbeddingModelMissing => "embedding_model_missing",
    EmbeddingRuntimeMissing => "embedding_runtime_missing",
    EmbeddingFailed => "embedding_failed",
    VectorIndex => "vector_index",
    VectorIndexUnsaved => "vector_index_unsaved",
    DocumentAboveClearance => "document_above_clearance",
    ImportInProgress => "import_in_progress",
    OpenFailed => "open_failed",
    /// Tesseract or poppler is missing, or lacks a language the OCR setting asks for.
    OcrUnavailable => "ocr_unavailable",
    OcrFailed => "ocr_failed",
    /// A PDF whose pages are all scanned images, while OCR is off (documents.ocr).
    DocumentScanned => "document_scanned",
    SpeechModelMissing => "speech_model_missing",
    SpeechHelperMissing => "speech_helper_missing",
    SpeechFailed => "speech_failed",
    SpeechModelInvalid => "speech_model_invalid",
    SpeechLanguageUnsupported => "speech_language_unsupported",
    AudioUnsupported => "audio_unsupported",
    AudioUnreadable => "audio_unreadable",
    AudioTooLong => "audio_too_long",
    NoInputDevice => "no_input_device",
    InputDeviceFailed => "input_device_failed",
    InputPermissionDenied => "input_permission_denied",
    NotRecording => "not_recording",
    Cancelled => "cancelled",
    ImageUnsupported => "image_unsupported",
    ImageCorrupt => "image_corrupt",
    ImageTooLarge => "image_too_large",
    VisionUnavailable => "vision_unavailable",
    MonitorUnavailable => "monitor_unavailable",
    ModelMissing => "model_missing",
    ModelNotAFile => "model_not_a_file",
    ModelUnreadable => "model_unreadable",
    ModelNotGguf => "model_not_gguf",
    ModelUnsupportedVersion => "model_unsupported_version",
    ModelTruncated => "model_truncated",
    ModelCorrupt => "model_corrupt",
    EngineInit => "engine_init",
    OutOfMemory => "out_of_memory",
    ModelLoadFailed => "model_load_failed",
    ChatTemplate => "chat_template",
    ModelNotLoaded => "model_not_loaded",
    Busy => "busy",
    PromptTooLong => "prompt_too_long",
    DecodeFailed => "decode_failed",
    ModelUnloaded => "model_unloaded",
    WorkerCrashed => "worker_crashed",
    /// A persona's remote server could not be reached (after retries).
    RemoteUnreachable => "remote_unreachable",
    /// A persona's remote server stayed silent longer than its `timeout_s`.
    RemoteTimeout => "remote_timeout",
    /// A persona's remote server answered with an error, or with something not OpenAI-shaped.
    RemoteError => "remote_error",
    /// The environment variable that should hold a remote server's key is not set.
    RemoteKeyMissing => "remote_key_missing",
    ModelManifestInvalid => "model_manifest_invalid",
    ModelUnknown => "model_unknown",
    ModelFetchFailed => "model_fetch_failed",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Codes compare with their names, so a test can say `assert_eq!(err.code(), "not_found")`.
impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for ErrorCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    // --- any area ---
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },
    #[error(
        "no home directory could be determined; set DESKMATE_DATA_DIR and DESKMATE_CONFIG_DIR"
    )]
    NoHomeDir,
    /// `ENOSPC`/`EDQUOT` from a write, or SQLite's `SQLITE_FULL`. What was saved before stays.
    #[error(
        "{path}: the disk is full; free some space and try again (what was already saved is kept)"
    )]
    DiskFull { path: PathBuf },
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: i64 },
    #[error("{field}: {message}")]
    InvalidInput {
        field: &'static str,
        message: String,
    },
    /// A part of the application that could not be started (a thread, say), or that failed
    /// earlier and is not there to use.
    #[error("{what} is unavailable: {reason}")]
    Internal { what: &'static str, reason: String },
    #[error("{what} was cancelled")]
    Cancelled { what: &'static str },
    #[error("the GPU monitor could not be started: {reason}")]
    MonitorUnavailable { reason: String },

    // --- one per area, each with its own enum ---
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Chat(#[from] ChatError),
    #[error(transparent)]
    Documents(#[from] DocumentsError),
    #[error(transparent)]
    Voice(#[from] VoiceError),
    #[error(transparent)]
    Vision(#[from] VisionError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Models(#[from] ModelsError),
}

/// Errors of configuration (crates/core/src/config.rs).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfigError {
    #[error("{} in {}:\n{}", problem_count(.problems), .path.display(), render_problems(.problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<ConfigProblem>,
    },
}

/// Errors of the SQLite store (crates/core/src/store.rs).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: Arc<rusqlite::Error>,
    },
    #[error("database {path} has schema version {found}, newer than this Deskmate understands ({supported}); update Deskmate")]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("database {path} stayed locked by another Deskmate process (the window or another command) for {seconds} s; try again when it has finished")]
    Busy {
        path: PathBuf,
        seconds: u64,
        #[source]
        source: Arc<rusqlite::Error>,
    },
}

/// Errors of chat turns (crates/core/src/chat.rs, attachments.rs).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ChatError {
    #[error("message: {got} characters is over the limit of {limit} (chat.max_message_chars)")]
    MessageTooLong { limit: usize, got: usize },
    #[error("session {session}: a reply is already being written; stop it first")]
    ReplyInProgress { session: i64 },
    #[error("session {session}: there is no message to answer again")]
    NothingToRetry { session: i64 },
    #[error("attachment {id}: not found; attach the image again")]
    AttachmentMissing { id: String },
}

/// Errors of documents (crates/core/src/documents).
#[derive(Debug, Clone, thiserror::Error)]
pub enum DocumentsError {
    #[error("{path}: .{extension} files are not supported (txt, md, pdf, docx, html, csv, hwp, hwpx, xlsx, ods, pptx)")]
    Unsupported { path: PathBuf, extension: String },
    #[error("{path}: {size} bytes is over the limit of {limit} (documents.max_file_mb)")]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("{path}: the file is encrypted or password-protected")]
    Encrypted { path: PathBuf },
    #[error("{path}: cannot be read as a document: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path}: contains no text")]
    Empty { path: PathBuf },
    #[error("tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("embedding model {path}: not found (embedding.model); install it with `deskmate models fetch`")]
    EmbeddingModelMissing { path: PathBuf },
    #[error("ONNX Runtime {path}: {reason}")]
    EmbeddingRuntime { path: PathBuf, reason: String },
    #[error("embedding failed: {message}")]
    EmbeddingFailed { message: String },
    #[error("vector index {path}: {message}")]
    VectorIndex { path: PathBuf, message: String },
    /// `reason` is the failed save's error, which names the file.
    #[error("{reason}; vector search works from memory, and the index is rebuilt at every start until the file can be written")]
    VectorIndexUnsaved { path: PathBuf, reason: String },
    #[error("{path}: already imported at a level above this profile's clearance; only a profile that can see it may import it again or change its level")]
    AboveClearance { path: PathBuf },
    #[error("an import is already running (job {job}); wait for it or cancel it")]
    ImportInProgress { job: i64 },
    #[error("{path}: cannot be opened: {reason}")]
    OpenFailed { path: PathBuf, reason: String },
    #[error("text recognition (OCR) is not available: {reason}; or turn it off (documents.ocr)")]
    OcrUnavailable { reason: String },
    #[error("{path}{}: text recognition (OCR) failed: {reason}", .page.map(|p| format!(", page {p}")).unwrap_or_default())]
    OcrFailed {
        path: PathBuf,
        page: Option<u32>,
        reason: String,
    },
    #[error("{path}: its {pages} page(s) are scanned images without text, and text recognition is off (documents.ocr)")]
    Scanned { path: PathBuf, pages: u32 },
}

/// Errors of voice input (crates/core/src/voice).
#[derive(Debug, Clone, thiserror::Error)]
pub enum VoiceError {
    #[error(
        "speech model {path}: not found (speech.model); install it with `deskmate models fetch`"
    )]
    SpeechModelMissing { path: PathBuf },
    #[error("the speech helper {name} was not found (looked in: {}); build it with `cargo build -p deskmate-whisper` or set DESKMATE_WHISPER_HELPER", .searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    SpeechHelperMissing {
        name: String,
        searched: Vec<PathBuf>,
    },
    #[error("speech recognition failed: {message}")]
    SpeechFailed { message: String },
    #[error("speech model {path}: {message}")]
    SpeechModelInvalid { path: PathBuf, message: String },
    #[error("{message}")]
    SpeechLanguageUnsupported { message: String },
    #[error("{path}: .{extension} audio is not supported (wav, mp3, ogg, flac)")]
    AudioUnsupported { path: PathBuf, extension: String },
    #[error("{path}: cannot be read as audio: {reason}")]
    AudioUnreadable { path: PathBuf, reason: String },
    #[error("{what}: {seconds:.0} s of audio is over the limit of {limit} s")]
    AudioTooLong {
        what: String,
        seconds: f64,
        limit: u32,
    },
    #[error("no audio input device was found; connect a microphone or choose one in the system's sound settings")]
    NoInputDevice,
    #[error("audio input device {device}: {reason}")]
    InputDeviceFailed { device: String, reason: String },
    #[error("audio input device {device}: access was denied; allow microphone access in the system's privacy settings")]
    InputPermissionDenied { device: String },
    #[error("no recording is in progress")]
    NotRecording,
}

/// Errors of image input (crates/core/src/vision.rs).
#[derive(Debug, Clone, thiserror::Error)]
pub enum VisionError {
    #[error("{name}: {detail} is not a supported image (png, jpeg, webp, gif)")]
    ImageUnsupported { name: String, detail: String },
    #[error("{name}: the image is corrupt or truncated: {reason}")]
    ImageCorrupt { name: String, reason: String },
    #[error("{name}: {reason}")]
    ImageTooLarge { name: String, reason: String },
    #[error("the {persona} model cannot see images: {reason}")]
    VisionUnavailable {
        persona: &'static str,
        reason: String,
    },
}

/// Errors of the inference engine and the model files it checks (crates/core/src/engine).
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error("{path}: file not found")]
    ModelFileMissing { path: PathBuf },
    #[error("{path}: is a directory, not a model file")]
    ModelNotAFile { path: PathBuf },
    #[error("{path}: cannot be read: {message}")]
    ModelUnreadable { path: PathBuf, message: String },
    #[error("{path}: not a GGUF model file (it starts with {found:?}, not \"GGUF\")")]
    ModelNotGguf { path: PathBuf, found: String },
    #[error("{path}: GGUF version {version} is not supported (only 2 and 3)")]
    ModelUnsupportedVersion { path: PathBuf, version: u32 },
    #[error("{path}: the file is truncated: {detail} (it has {file_len} bytes)")]
    ModelTruncated {
        path: PathBuf,
        detail: String,
        file_len: u64,
    },
    #[error("{path}: the GGUF header is corrupt: {detail}")]
    ModelCorrupt { path: PathBuf, detail: String },
    #[error("the inference engine could not start: {message}")]
    Init { message: String },
    #[error("{path}: llama.cpp could not load the model after {} attempt(s): {reason}", .attempts.len())]
    ModelLoadFailed {
        path: PathBuf,
        reason: String,
        /// Whether memory ran out (even on the CPU with the smallest context).
        out_of_memory: bool,
        attempts: Vec<crate::engine::fit::Attempt>,
    },
    #[error("{path}: chat template {template}: {message}")]
    ChatTemplate {
        path: PathBuf,
        template: String,
        message: String,
    },
    #[error("the {persona} model is not loaded")]
    ModelNotLoaded { persona: &'static str },
    #[error(
        "the {persona} model is busy: {queued} requests are already waiting; try again shortly"
    )]
    Busy {
        persona: &'static str,
        queued: usize,
    },
    #[error("the prompt needs {tokens} tokens but only {limit} fit in one conversation slot (context {n_ctx} shared by {parallel} slots, less room for the reply)")]
    PromptTooLong {
        tokens: usize,
        limit: usize,
        n_ctx: u32,
        parallel: u32,
    },
    #[error("the {persona} model failed while generating: {message}")]
    Decode {
        persona: &'static str,
        message: String,
    },
    #[error("the {persona} model was unloaded before the request finished")]
    ModelUnloaded { persona: &'static str },
    #[error("the {persona} model's worker stopped unexpectedly")]
    WorkerCrashed { persona: &'static str },
    #[error(
        "the {persona} model's server {host} cannot be reached ({attempts} attempt(s)): {reason}"
    )]
    RemoteUnreachable {
        persona: &'static str,
        host: String,
        attempts: u32,
        reason: String,
    },
    #[error("the {persona} model's server {host} sent nothing for {seconds} s (models.{persona}.backend.timeout_s)")]
    RemoteTimeout {
        persona: &'static str,
        host: String,
        seconds: u32,
    },
    #[error("the {persona} model's server {host} answered {}: {message}", .status.map_or_else(|| "with something that is not an OpenAI-compatible reply".to_owned(), |s| format!("HTTP {s}")))]
    RemoteError {
        persona: &'static str,
        host: String,
        /// The HTTP status, when the server sent one that is an error.
        status: Option<u16>,
        message: String,
    },
    #[error("the {persona} model's server needs a key in the environment variable {variable} (models.{persona}.backend.api_key_env), which is not set")]
    RemoteKeyMissing {
        persona: &'static str,
        variable: String,
    },
}

/// Errors of the model manager (crates/core/src/models.rs).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ModelsError {
    #[error("model manifest {origin}: {message}")]
    ManifestInvalid { origin: String, message: String },
    #[error("unknown model \"{id}\"; the manifest lists: {}", .known.join(", "))]
    Unknown { id: String, known: Vec<String> },
    #[error("{}", crate::models::render_fetch_failures(.failures))]
    FetchFailed {
        /// `(model id, one reason per failed file and source)` for every model that failed.
        failures: Vec<(String, Vec<String>)>,
    },
}

fn problem_count(problems: &[ConfigProblem]) -> String {
    match problems.len() {
        1 => "1 configuration problem".to_owned(),
        n => format!("{n} configuration problems"),
    }
}

fn render_problems(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Error {
    /// The stable code the UI maps to a message; `snake_case`, grouped by area.
    pub fn code(&self) -> ErrorCode {
        use ErrorCode as C;
        match self {
            Error::Io { .. } => C::Io,
            Error::NoHomeDir => C::NoHomeDir,
            Error::DiskFull { .. } => C::DiskFull,
            Error::NotFound { .. } => C::NotFound,
            Error::InvalidInput { .. } => C::InvalidInput,
            Error::Internal { .. } => C::Internal,
            Error::Cancelled { .. } => C::Cancelled,
            Error::MonitorUnavailable { .. } => C::MonitorUnavailable,
            Error::Config(e) => e.code(),
            Error::Store(e) => e.code(),
            Error::Chat(e) => e.code(),
            Error::Documents(e) => e.code(),
            Error::Voice(e) => e.code(),
            Error::Vision(e) => e.code(),
            Error::Engine(e) => e.code(),
            Error::Models(e) => e.code(),
        }
    }

    /// An I/O error on `path`; a full disk becomes [`Error::DiskFull`] so that every write path
    /// reports it the same way.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if is_disk_full(&source) {
            return Error::DiskFull { path };
        }
        Error::Io {
            path,
            source: Arc::new(source),
        }
    }

    /// Whether this error means the disk (or the user's quota) is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Error::DiskFull { .. })
    }
}

impl ConfigError {
    pub fn code(&self) -> ErrorCode {
        use ErrorCode as C;
        match self {
            ConfigError::Invalid { .. } => C::ConfigInvalid,
        }
    }
}

impl StoreError {
    pub fn code(&self) -> ErrorCode {
        use ErrorCode as C;
        match self {
            StoreError::Sqlite { .. } => C::Store,
            StoreError::TooNew { .. } => C::StoreTooNew,
            StoreError::Busy { .. } => C::StoreBusy,
        }
    }
}

impl ChatError {
    pub fn code(&self) -> ErrorCode {
        use ErrorCode as C;
        match self {
            ChatError::MessageTooLong { .. } => C::MessageTooLong,
            ChatError::ReplyInProgress { .. } => C::ReplyInProgress,
            ChatError::NothingToRetry { .. } => C::NothingToRetry,
            ChatError::AttachmentMissing { .. } => C::AttachmentMissing,
        }
    }
}

impl DocumentsError {
    pub fn code(&self) -> ErrorCode {
        use ErrorCode as C;
        match self {
            DocumentsError::Unsupported { .. } => C::DocumentUnsupported,
            DocumentsError::TooLarge { .. } => C::DocumentTooLarge,
            DocumentsError::Encrypted { .. } => C::DocumentEncrypted,
            DocumentsError::Unreadable { .. } => C::DocumentUnreadable,
            DocumentsError::Empty { .. } => C::DocumentEmpty,
            DocumentsError::Tokenizer { .. } => C::Tokenizer,
            DocumentsError::EmbeddingModelMissing { .. } => C::EmbeddingModelMissing,
            DocumentsError::EmbeddingRuntime { .. } => C::EmbeddingRuntimeMissing,
            DocumentsError::EmbeddingFailed { .. } => C::EmbeddingFailed,
            DocumentsError::VectorIndex { .. } => C::VectorIndex,
            DocumentsError::VectorIndexUnsaved { .. } => C::VectorIndexUnsaved,
            DocumentsError::AboveClearance { .. } => C::DocumentAboveClearance,
            DocumentsError::ImportInProgress { .. } => C::ImportInProgress,
            DocumentsError::OpenFailed { .. } => C::OpenFailed,
            DocumentsError::OcrUnavailable { .. } => C::OcrUnavailable,
            DocumentsError::OcrFailed { .. } => C::OcrFailed,
            DocumentsError::Scanned { .. } => C::DocumentScanned,
        }
    }
}

impl VoiceError {
    pub fn code(&self) -> ErrorCode {
        use ErrorCode as C;
        match self {
            VoiceError::SpeechModelMissing { .. } => C::SpeechModelMissing,
            VoiceError::SpeechHelperMissing { .. } => C::SpeechHelperMissing,
            VoiceError::SpeechFailed { .. } => C::SpeechFailed,
            VoiceError::SpeechModelInvalid { .. } => C::SpeechModelInvalid,
            VoiceError::SpeechLanguageUnsupported { .. } => C::SpeechLanguageUnsupported,
            VoiceError::AudioUnsupported { .. } => C::AudioUnsupported,
            VoiceError::AudioUnreadable { .. } => C::AudioUnreadable,
            VoiceError::AudioTooLong { .. } => C::AudioTooLong,
            VoiceError::NoInputDevice => C::NoInputDevice,
            VoiceError::InputDeviceFailed { .. } => C::InputDeviceFailed,
            VoiceError::InputPermissionDenied { .. } => C::InputPermissionDenied,
            VoiceError::NotRecording => C::NotRecording,
        }
    }
}

impl VisionError {
    pub fn code(&self) -> ErrorCode {
        use ErrorCode as C;
        match self {
            VisionError::ImageUnsupported { .. } => C::ImageUnsupported,
            VisionError::ImageCorrupt { .. } => C::ImageCorrupt,
            VisionError::ImageTooLarge { .. } => C::ImageTooLarge,
            VisionError::VisionUnavailable { .. } => C::VisionUnavailable,
        }
    }
}

impl EngineError {
    pub fn code(&self) -> ErrorCode {
        use ErrorCode as C;
        match self {
            EngineError::ModelFileMissing { .. } => C::ModelMissing,
            EngineError::ModelNotAFile { .. } => C::ModelNotAFile,
            EngineError::ModelUnreadable { .. } => C::ModelUnreadable,
            EngineError::ModelNotGguf { .. } => C::ModelNotGguf,
            EngineError::ModelUnsupportedVersion { .. } => C::ModelUnsupportedVersion,
            EngineError::ModelTruncated { .. } => C::ModelTruncated,
            EngineError::ModelCorrupt { .. } => C::ModelCorrupt,
            EngineError::Init { .. } => C::EngineInit,
            EngineError::ModelLoadFailed {
                out_of_memory: true,
                ..
            } => C::OutOfMemory,
            EngineError::ModelLoadFailed { .. } => C::ModelLoadFailed,
            EngineError::ChatTemplate { .. } => C::ChatTemplate,
            EngineError::ModelNotLoaded { .. } => C::ModelNotLoaded,
            EngineError::Busy { .. } => C::Busy,
            EngineError::PromptTooLong { .. } => C::PromptTooLong,
            EngineError::Decode { .. } => C::DecodeFailed,
            EngineError::ModelUnloaded { .. } => C::ModelUnloaded,
            EngineError::WorkerCrashed { .. } => C::WorkerCrashed,
            EngineError::RemoteUnreachable { .. } => C::RemoteUnreachable,
            EngineError::RemoteTimeout { .. } => C::RemoteTimeout,
            EngineError::RemoteError { .. } => C::RemoteError,
            EngineError::RemoteKeyMissing { .. } => C::RemoteKeyMissing,
        }
    }
}

impl ModelsError {
    pub fn code(&self) -> ErrorCode {
        use ErrorCode as C;
        match self {
            ModelsError::ManifestInvalid { .. } => C::ModelManifestInvalid,
            ModelsError::Unknown { .. } => C::ModelUnknown,
            ModelsError::FetchFailed { .. } => C::ModelFetchFailed,
        }
    }
}

/// `ENOSPC` and `EDQUOT` (std maps both to `StorageFull`/`QuotaExceeded`).
pub(crate) fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// What the UI receives for a failed command: `{ "code": "...", "message": "..." }`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ErrorPayload {
    pub code: ErrorCode,
    pub message: String,
}

/// Two errors are equal when they say the same: the same code and the same message.
impl PartialEq for Error {
    fn eq(&self, other: &Error) -> bool {
        self.code() == other.code() && self.to_string() == other.to_string()
    }
}

/// An error travels to the UI (a command's failure, a failure kept in a status) as its payload.
impl serde::Serialize for Error {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ErrorPayload::from(self).serialize(serializer)
    }
}

impl From<&Error> for ErrorPayload {
    fn from(e: &Error) -> Self {
        ErrorPayload {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// The codes listed in the UI's `ERROR_CODES` (ui/src/lib/errors.ts): one quoted code per
    /// line between the opening line and `] as const;`, with `//` comment lines.
    fn ui_codes() -> Vec<String> {
        let text = include_str!("../../../ui/src/lib/errors.ts");
        let start = text
            .find("export const ERROR_CODES = [\n")
            .expect("ERROR_CODES in errors.ts");
        let body = &text[start..];
        let body = &body[body.find('\n').unwrap() + 1..body.find("] as const;").unwrap()];
        body.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("//"))
            .map(|l| {
                l.strip_prefix('\'')
                    .and_then(|l| l.strip_suffix("',"))
                    .unwrap_or_else(|| panic!("errors.ts: not a quoted code: {l:?}"))
                    .to_owned()
            })
            .collect()
    }

    /// The UI turns every code into a message from one table; a code only one side knows would
    /// be shown as "something went wrong" (or never sent). Both lists must be equal.
    #[test]
    fn the_ui_code_table_lists_exactly_the_codes_of_the_rust_enum() {
        let rust: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        let ui = ui_codes();
        let missing_in_ui: Vec<&&str> = rust
            .iter()
            .filter(|c| !ui.iter().any(|u| u == *c))
            .collect();
        let unknown_to_rust: Vec<&String> =
            ui.iter().filter(|u| !rust.contains(&u.as_str())).collect();
        assert!(
            missing_in_ui.is_empty() && unknown_to_rust.is_empty(),
            "ErrorCode (crates/core/src/error.rs) and ERROR_CODES (ui/src/lib/errors.ts) differ: \
             only in Rust: {missing_in_ui:?}; only in the UI: {unknown_to_rust:?}"
        );
        assert_eq!(ui.len(), rust.len(), "a code listed twice in errors.ts");
    }

    #[test]
    fn codes_are_unique_snake_case_and_serialise_as_their_names() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let name = code.as_str();
            assert!(seen.insert(name), "{name} twice");
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
            assert_eq!(serde_json::to_value(code).unwrap(), name);
            assert_eq!(ErrorCode::parse(name), Some(*code));
            assert_eq!(
                serde_json::from_value::<ErrorCode>(serde_json::json!(name)).unwrap(),
                *code
            );
        }
    }

    #[test]
    fn an_error_is_sent_as_its_code_and_message_and_stays_itself_when_cloned() {
        let source = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let e = Error::io("/tmp/x", source);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["code"], "io");
        assert!(json["message"].as_str().unwrap().starts_with("/tmp/x: "));
        let kept = e.clone();
        assert!(
            matches!(&kept, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied)
        );
        assert_eq!(kept, e);
        let full = Error::io(
            "/tmp/x",
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        );
        assert_eq!(full.code(), ErrorCode::DiskFull);
    }
}
