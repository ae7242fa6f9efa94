//! The one error type of `deskmate-core`.
//!
//! Every variant has a stable, machine-readable [`Error::code`] that the UI and the CLI map to
//! human messages (ko/en); the `Display` text is the English developer-facing detail and always
//! names the field, file or model involved. Codes never change meaning once shipped.

use std::path::PathBuf;

use crate::config::ConfigProblem;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // --- files and paths ---
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
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

    // --- configuration ---
    #[error("{} in {}:\n{}", problem_count(.problems), .path.display(), render_problems(.problems))]
    ConfigInvalid {
        path: PathBuf,
        problems: Vec<ConfigProblem>,
    },

    // --- store ---
    #[error("database {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database {path} has schema version {found}, newer than this Deskmate understands ({supported}); update Deskmate")]
    StoreTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("database {path} stayed locked by another Deskmate process (the window or another command) for {seconds} s; try again when it has finished")]
    StoreBusy {
        path: PathBuf,
        seconds: u64,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: i64 },
    #[error("{field}: {message}")]
    InvalidInput {
        field: &'static str,
        message: String,
    },

    #[error("message: {got} characters is over the limit of {limit} (chat.max_message_chars)")]
    MessageTooLong { limit: usize, got: usize },
    #[error("session {session}: a reply is already being written; stop it first")]
    ReplyInProgress { session: i64 },
    #[error("session {session}: there is no message to answer again")]
    NothingToRetry { session: i64 },

    // --- documents (crates/core/src/documents) ---
    #[error("attachment {id}: not found; attach the image again")]
    AttachmentMissing { id: String },
    #[error("{path}: .{extension} files are not supported (txt, md, pdf, docx, html, csv)")]
    DocumentUnsupported { path: PathBuf, extension: String },
    #[error("{path}: {size} bytes is over the limit of {limit} (documents.max_file_mb)")]
    DocumentTooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("{path}: the file is encrypted or password-protected")]
    DocumentEncrypted { path: PathBuf },
    #[error("{path}: cannot be read as a document: {reason}")]
    DocumentUnreadable { path: PathBuf, reason: String },
    #[error("{path}: contains no text")]
    DocumentEmpty { path: PathBuf },
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
    #[error("{path}: already imported at a level above this profile's clearance; only a profile that can see it may import it again or change its level")]
    DocumentAboveClearance { path: PathBuf },
    #[error("an import is already running (job {job}); wait for it or cancel it")]
    ImportInProgress { job: i64 },
    #[error("{path}: cannot be opened: {reason}")]
    OpenFailed { path: PathBuf, reason: String },

    // --- voice (crates/core/src/voice) ---
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
    #[error("{what} was cancelled")]
    Cancelled { what: &'static str },

    // --- vision (crates/core/src/vision.rs) ---
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

    // --- model files, checked before llama.cpp sees them (engine::gguf) ---
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

    // --- inference engine (crates/core/src/engine) ---
    #[error("the inference engine could not start: {message}")]
    EngineInit { message: String },
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
    EngineBusy {
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

    // --- model manager (owned by crates/core/src/models.rs) ---
    // MODEL-MANAGER-VARIANTS
    #[error("model manifest {origin}: {message}")]
    ModelManifestInvalid { origin: String, message: String },
    #[error("unknown model \"{id}\"; the manifest lists: {}", .known.join(", "))]
    ModelUnknown { id: String, known: Vec<String> },
    #[error("{}", crate::models::render_fetch_failures(.failures))]
    ModelFetchFailed {
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
    pub fn code(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::NoHomeDir => "no_home_dir",
            Error::DiskFull { .. } => "disk_full",
            Error::ConfigInvalid { .. } => "config_invalid",
            Error::Store { .. } => "store",
            Error::StoreTooNew { .. } => "store_too_new",
            Error::StoreBusy { .. } => "store_busy",
            Error::NotFound { .. } => "not_found",
            Error::InvalidInput { .. } => "invalid_input",
            Error::MessageTooLong { .. } => "message_too_long",
            Error::ReplyInProgress { .. } => "reply_in_progress",
            Error::NothingToRetry { .. } => "nothing_to_retry",
            Error::AttachmentMissing { .. } => "attachment_missing",
            Error::DocumentUnsupported { .. } => "document_unsupported",
            Error::DocumentTooLarge { .. } => "document_too_large",
            Error::DocumentEncrypted { .. } => "document_encrypted",
            Error::DocumentUnreadable { .. } => "document_unreadable",
            Error::DocumentEmpty { .. } => "document_empty",
            Error::Tokenizer { .. } => "tokenizer",
            Error::EmbeddingModelMissing { .. } => "embedding_model_missing",
            Error::EmbeddingRuntime { .. } => "embedding_runtime_missing",
            Error::EmbeddingFailed { .. } => "embedding_failed",
            Error::VectorIndex { .. } => "vector_index",
            Error::DocumentAboveClearance { .. } => "document_above_clearance",
            Error::ImportInProgress { .. } => "import_in_progress",
            Error::OpenFailed { .. } => "open_failed",
            Error::SpeechModelMissing { .. } => "speech_model_missing",
            Error::SpeechHelperMissing { .. } => "speech_helper_missing",
            Error::SpeechFailed { .. } => "speech_failed",
            Error::SpeechModelInvalid { .. } => "speech_model_invalid",
            Error::SpeechLanguageUnsupported { .. } => "speech_language_unsupported",
            Error::AudioUnsupported { .. } => "audio_unsupported",
            Error::AudioUnreadable { .. } => "audio_unreadable",
            Error::AudioTooLong { .. } => "audio_too_long",
            Error::NoInputDevice => "no_input_device",
            Error::InputDeviceFailed { .. } => "input_device_failed",
            Error::InputPermissionDenied { .. } => "input_permission_denied",
            Error::NotRecording => "not_recording",
            Error::Cancelled { .. } => "cancelled",
            Error::ImageUnsupported { .. } => "image_unsupported",
            Error::ImageCorrupt { .. } => "image_corrupt",
            Error::ImageTooLarge { .. } => "image_too_large",
            Error::VisionUnavailable { .. } => "vision_unavailable",
            Error::ModelFileMissing { .. } => "model_missing",
            Error::ModelNotAFile { .. } => "model_not_a_file",
            Error::ModelUnreadable { .. } => "model_unreadable",
            Error::ModelNotGguf { .. } => "model_not_gguf",
            Error::ModelUnsupportedVersion { .. } => "model_unsupported_version",
            Error::ModelTruncated { .. } => "model_truncated",
            Error::ModelCorrupt { .. } => "model_corrupt",
            Error::EngineInit { .. } => "engine_init",
            Error::ModelLoadFailed {
                out_of_memory: true,
                ..
            } => "out_of_memory",
            Error::ModelLoadFailed { .. } => "model_load_failed",
            Error::ChatTemplate { .. } => "chat_template",
            Error::ModelNotLoaded { .. } => "model_not_loaded",
            Error::EngineBusy { .. } => "busy",
            Error::PromptTooLong { .. } => "prompt_too_long",
            Error::Decode { .. } => "decode_failed",
            Error::ModelUnloaded { .. } => "model_unloaded",
            Error::WorkerCrashed { .. } => "worker_crashed",
            // MODEL-MANAGER-CODES
            Error::ModelManifestInvalid { .. } => "model_manifest_invalid",
            Error::ModelUnknown { .. } => "model_unknown",
            Error::ModelFetchFailed { .. } => "model_fetch_failed",
        }
    }

    /// An I/O error on `path`; a full disk becomes [`Error::DiskFull`] so that every write path
    /// reports it the same way.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if is_disk_full(&source) {
            return Error::DiskFull { path };
        }
        Error::Io { path, source }
    }

    /// Whether this error means the disk (or the user's quota) is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Error::DiskFull { .. })
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
    pub code: &'static str,
    pub message: String,
}

impl From<&Error> for ErrorPayload {
    fn from(e: &Error) -> Self {
        ErrorPayload {
            code: e.code(),
            message: e.to_string(),
        }
    }
}
