//! The use cases behind the local API server (`deskmate serve`, `crates/server`): its key,
//! stateless chat completions, embeddings and document search, each under the key's profile.
//!
//! The key is a random 256-bit token in `api-key.json` in the data directory, written with
//! owner-only permissions (0600), bound to one profile: every passage the API returns, from a
//! search or quoted to the model for a grounded answer, is within that profile's clearance.
//! Checking a presented key compares in constant time.
//!
//! A completion is a request to the same engine, slots and queue as the window's turns: a full
//! queue is refused at once (`busy`), never queued without bound. Nothing is stored but the
//! request log.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::App;
use crate::chat::grounding;
use crate::config::Sampling;
use crate::documents::SearchResult;
use crate::engine::{ChatMessage, ChatRequest, Generation};
use crate::error::{DocumentsError, EngineError};
use crate::store::{now_ms, AccessLevel, MessageSource, Persona, Profile, RequestRecord, Role};
use crate::{Error, Result};

/// The file that holds the key, in the data directory.
pub const API_KEY_FILE: &str = "api-key.json";
/// At most this many texts in one embeddings request.
pub const MAX_EMBEDDING_INPUTS: usize = 256;
/// The longest text an embeddings request may carry, in characters.
pub const MAX_EMBEDDING_CHARS: usize = 8_000;
/// At most this many passages from one search.
pub const MAX_SEARCH_RESULTS: usize = 50;

/// The API's key and the profile it acts as.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKey {
    pub key: String,
    pub profile_id: i64,
    /// The profile's creation time: SQLite may give a deleted profile's id to a new one, and
    /// the key must not pass to it (it could have a higher clearance).
    pub profile_created_at: i64,
    pub created_at: i64,
}

/// What `deskmate api key` and the Settings page show.
#[derive(Debug, Clone, Serialize)]
pub struct ApiKeyInfo {
    pub key: String,
    pub profile: Profile,
    /// Where the key is kept (owner-only permissions).
    pub file: PathBuf,
    pub created_at: i64,
}

/// A chat completion as a client asks for it: the whole conversation, with optional sampling
/// overrides on top of the persona's configured sampling.
#[derive(Debug, Clone)]
pub struct ApiChatRequest {
    pub persona: Persona,
    pub messages: Vec<ChatMessage>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub seed: Option<u32>,
    /// Added to the persona's configured stop strings.
    pub stop: Vec<String>,
}

/// A started completion: its events, and the document passages quoted to the model (office
/// persona, when the key's profile may read relevant ones).
pub struct ApiChat {
    pub generation: Generation,
    pub sources: Vec<MessageSource>,
}

impl App {
    fn api_key_file(&self) -> PathBuf {
        self.paths.data_dir.join(API_KEY_FILE)
    }

    /// The stored key, if there is one.
    pub fn api_key(&self) -> Result<Option<ApiKey>> {
        let path = self.api_key_file();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::InvalidInput {
                field: "api-key.json",
                message: format!(
                    "{}: {e}; replace it with `deskmate api key --new`",
                    path.display()
                ),
            })
    }

    /// The key with its profile, creating one (bound to `profile`, else the active profile)
    /// when there is none, or always when `replace`.
    pub fn ensure_api_key(&self, replace: bool, profile: Option<&str>) -> Result<ApiKeyInfo> {
        let key = match (self.api_key()?, replace) {
            (Some(key), false) if profile.is_none() => key,
            _ => {
                let bound = match profile {
                    Some(name) => self.profile_named(name)?,
                    None => self.store()?.active_profile()?,
                };
                let key = ApiKey {
                    key: new_token()?,
                    profile_id: bound.id,
                    profile_created_at: bound.created_at,
                    created_at: now_ms(),
                };
                let path = self.api_key_file();
                let json = serde_json::to_vec_pretty(&key).map_err(|e| Error::Internal {
                    what: "the API key",
                    reason: e.to_string(),
                })?;
                crate::atomic_file::write_private(&path, &json).map_err(|e| Error::io(&path, e))?;
                key
            }
        };
        self.key_info(key)
    }

    /// The key's profile and file (and the key), without making one.
    pub fn api_key_info(&self) -> Result<Option<ApiKeyInfo>> {
        self.api_key()?.map(|key| self.key_info(key)).transpose()
    }

    fn key_info(&self, key: ApiKey) -> Result<ApiKeyInfo> {
        Ok(ApiKeyInfo {
            profile: self.key_profile(&key)?,
            file: self.api_key_file(),
            key: key.key,
            created_at: key.created_at,
        })
    }

    /// The stored key when `presented` is it (compared in constant time) and its profile still
    /// exists; `None` otherwise, and when there is no key.
    pub fn api_key_for(&self, presented: &str) -> Result<Option<ApiKey>> {
        let Some(key) = self
            .api_key()?
            .filter(|key| constant_time_eq(key.key.as_bytes(), presented.as_bytes()))
        else {
            return Ok(None);
        };
        match self.key_profile(&key) {
            Ok(_) => Ok(Some(key)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn profile_named(&self, name: &str) -> Result<Profile> {
        let profiles = self.store()?.profiles()?;
        let names = profiles
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        profiles
            .iter()
            .find(|p| p.name == name)
            .cloned()
            .ok_or_else(|| Error::InvalidInput {
                field: "profile",
                message: format!("no profile named \"{name}\"; there are: {names}"),
            })
    }

    /// The profile the key was bound to: the same id *and* creation time, so that a profile
    /// made later under a reused id never inherits the key. Gone: the key acts for no one.
    fn key_profile(&self, key: &ApiKey) -> Result<Profile> {
        self.store()?
            .profiles()?
            .into_iter()
            .find(|p| p.id == key.profile_id && p.created_at == key.profile_created_at)
            .ok_or(Error::NotFound {
                what: "profile of the API key (make a new key with `deskmate api key --new`)",
                id: key.profile_id,
            })
    }

    /// The clearance the key acts with: its profile's, read at every request so that a changed
    /// clearance applies at once.
    fn api_clearance(&self, key: &ApiKey) -> Result<AccessLevel> {
        Ok(self.key_profile(key)?.clearance)
    }

    /// Starts a chat completion on the persona's model. The office persona's answer is grounded
    /// in the documents the key's profile may read, as in the window.
    pub fn api_chat(&self, key: &ApiKey, request: ApiChatRequest) -> Result<ApiChat> {
        let ApiChatRequest {
            persona,
            mut messages,
            max_tokens,
            temperature,
            seed,
            stop,
        } = request;
        let question = messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.content.clone())
            .ok_or(Error::InvalidInput {
                field: "messages",
                message: "needs at least one user message".into(),
            })?;
        let mut sampling: Sampling = self.model_config(persona).sampling;
        if let Some(max_tokens) = max_tokens {
            if max_tokens == 0 {
                return Err(Error::InvalidInput {
                    field: "max_tokens",
                    message: "must be at least 1".into(),
                });
            }
            sampling.max_tokens = max_tokens;
        }
        if let Some(temperature) = temperature {
            if !(0.0..=2.0).contains(&temperature) {
                return Err(Error::InvalidInput {
                    field: "temperature",
                    message: format!("must be between 0 and 2, got {temperature}"),
                });
            }
            sampling.temperature = temperature;
        }
        if seed.is_some() {
            sampling.seed = seed;
        }
        sampling
            .stop
            .extend(stop.into_iter().filter(|s| !s.is_empty()));
        let engine = self.engine()?;
        // Passages go to a persona on a server only when documents.allow_remote says so.
        let on_server = engine.remote_backend(persona).is_some();
        let may_quote = !on_server || self.loaded_config().config.documents.allow_remote;
        let sources = if persona == Persona::Office && may_quote {
            self.ground_api_chat(key, &question, &mut messages)?
        } else {
            Vec::new()
        };
        let generation = engine.submit(
            persona,
            ChatRequest {
                messages,
                sampling: Some(sampling),
                ignore_eos: false,
                local_only: !on_server && !sources.is_empty(),
            },
        )?;
        Ok(ApiChat {
            generation,
            sources,
        })
    }

    /// Quotes the passages relevant to `question` that the key's profile may read into the
    /// system message (one is added when the client sent none); returns them as sources.
    fn ground_api_chat(
        &self,
        key: &ApiKey,
        question: &str,
        messages: &mut Vec<ChatMessage>,
    ) -> Result<Vec<MessageSource>> {
        let Ok(library) = self.library() else {
            return Ok(Vec::new());
        };
        if !matches!(library.has_documents(), Ok(true)) {
            return Ok(Vec::new());
        }
        let clearance = self.api_clearance(key)?;
        let found = match library.search_with_clearance(question, library.top_k() * 2, clearance) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "document search for an API answer failed");
                return Ok(Vec::new());
            }
        };
        let passages = grounding::select(found.passages, library.top_k());
        if passages.is_empty() {
            return Ok(Vec::new());
        }
        let material = grounding::quoted_material(&passages);
        match messages.iter_mut().find(|m| m.role == Role::System) {
            Some(system) => system.content.push_str(&material),
            None => messages.insert(0, ChatMessage::new(Role::System, material.trim_start())),
        }
        Ok(grounding::sources_of(&passages))
    }

    /// e5 vectors for `texts` (384 numbers each).
    pub fn api_embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() || texts.len() > MAX_EMBEDDING_INPUTS {
            return Err(Error::InvalidInput {
                field: "input",
                message: format!(
                    "give 1 to {MAX_EMBEDDING_INPUTS} texts, got {}",
                    texts.len()
                ),
            });
        }
        if let Some((i, t)) = texts
            .iter()
            .enumerate()
            .find(|(_, t)| t.chars().count() > MAX_EMBEDDING_CHARS)
        {
            return Err(Error::InvalidInput {
                field: "input",
                message: format!(
                    "text {i} has {} characters; the limit is {MAX_EMBEDDING_CHARS}",
                    t.chars().count()
                ),
            });
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        self.library()?.embed_queries(&refs)
    }

    /// `text`'s length in the embedding model's tokens (for the embeddings' `usage`); 0 when
    /// there is no library.
    pub fn api_count_tokens(&self, text: &str) -> usize {
        self.library().map_or(0, |l| l.count_tokens(text))
    }

    /// Hybrid search under the key's profile's clearance.
    pub fn api_search(&self, key: &ApiKey, query: &str, k: usize) -> Result<SearchResult> {
        if query.trim().is_empty() {
            return Err(Error::InvalidInput {
                field: "query",
                message: "is empty".into(),
            });
        }
        let clearance = self.api_clearance(key)?;
        self.library()?
            .search_with_clearance(query, k.clamp(1, MAX_SEARCH_RESULTS), clearance)
    }

    /// Lifetime totals of the request log's entries for `model` (a model file, or an API path
    /// as `api /v1/...`).
    pub fn request_totals(&self, model: &str) -> Result<crate::store::RequestTotals> {
        self.store()?.request_totals(model)
    }

    /// Records one API request in the request log (its path as the model, its outcome).
    pub fn log_api_request(&self, record: &RequestRecord) {
        let logged = self.store().and_then(|mut store| store.log_request(record));
        if let Err(e) = logged {
            tracing::warn!(error = %e, "API request not logged");
        }
    }

    /// Whether `persona`'s model can answer now, and why not (for `/health` and 503s).
    pub fn api_model_ready(&self, persona: Persona) -> Result<()> {
        use crate::engine::PersonaState;
        match self.engine()?.persona_state(persona) {
            PersonaState::Loaded { .. } | PersonaState::Remote { .. } => Ok(()),
            PersonaState::Failed { error, .. } => Err(error),
            _ => Err(Error::Engine(EngineError::ModelNotLoaded {
                persona: persona.as_str(),
            })),
        }
    }

    /// Whether embeddings and vector search work now.
    pub fn api_embeddings_ready(&self) -> Result<()> {
        match self.library()?.vector_notice() {
            None => Ok(()),
            Some(Error::Documents(e @ DocumentsError::EmbeddingModelMissing { .. })) => {
                Err(Error::Documents(e))
            }
            Some(e) => Err(e),
        }
    }
}

/// 32 random bytes from the OS, as 64 hex digits after a `dm-` prefix (so a leaked key is
/// recognisable in logs and secret scanners).
fn new_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal {
        what: "the system's random number source",
        reason: e.to_string(),
    })?;
    Ok(format!("dm-{}", hex::encode(bytes)))
}

/// Equal, in a time that depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::paths::Paths;

    #[test]
    fn a_key_is_made_once_private_bound_to_the_active_profile_and_replaced_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(Paths::in_dir(dir.path())).unwrap();
        assert!(app.api_key().unwrap().is_none());
        let first = app.ensure_api_key(false, None).unwrap();
        assert!(
            first.key.starts_with("dm-") && first.key.len() == 67,
            "{}",
            first.key
        );
        assert_eq!(first.profile.id, app.profiles().unwrap().active);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&first.file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(app.ensure_api_key(false, None).unwrap().key, first.key);
        let key = app.api_key_for(&first.key).unwrap().unwrap();
        assert_eq!(key.profile_id, first.profile.id);
        assert!(app.api_key_for("dm-wrong").unwrap().is_none());
        assert!(app.api_key_for("").unwrap().is_none());
        let second = app.ensure_api_key(true, None).unwrap();
        assert_ne!(second.key, first.key);
        assert!(
            app.api_key_for(&first.key).unwrap().is_none(),
            "the old key is gone"
        );
    }

    #[test]
    fn a_key_can_be_bound_to_a_named_profile_and_an_unknown_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(Paths::in_dir(dir.path())).unwrap();
        let intern = app.create_profile("intern", AccessLevel::Public).unwrap();
        let info = app.ensure_api_key(false, Some("intern")).unwrap();
        assert_eq!(info.profile.id, intern.id);
        let key = app.api_key_for(&info.key).unwrap().unwrap();
        assert_eq!(app.api_clearance(&key).unwrap(), AccessLevel::Public);
        let err = app.ensure_api_key(true, Some("nobody")).unwrap_err();
        assert_eq!(err.code(), "invalid_input");
        assert!(err.to_string().contains("intern"), "{err}");
    }

    #[test]
    fn a_key_never_passes_to_a_new_profile_that_reuses_its_profiles_id() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(Paths::in_dir(dir.path())).unwrap();
        let intern = app.create_profile("intern", AccessLevel::Public).unwrap();
        let info = app.ensure_api_key(false, Some("intern")).unwrap();
        let key = app.api_key_for(&info.key).unwrap().unwrap();
        app.delete_profile(intern.id).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let manager = app
            .create_profile("manager", AccessLevel::Restricted)
            .unwrap();
        assert_eq!(manager.id, intern.id, "SQLite reused the id");
        let err = app.api_clearance(&key).unwrap_err();
        assert_eq!(err.code(), "not_found", "{err}");
    }

    #[test]
    fn comparison_needs_equal_length_and_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
