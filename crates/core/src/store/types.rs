//! The store's domain types: personas, roles, tones, access levels, and the rows the
//! repositories read and write. Serialised as the UI and the CLI's `--json` show them.

use super::*;

/// A status stored as text: serialised, stored and compared by its name (`m.status == "complete"`
/// reads as the column does).
macro_rules! stored_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)*
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                // `pad`, so that a width (`{status:<9}`) applies.
                f.pad(self.as_str())
            }
        }

        impl rusqlite::types::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }

        impl rusqlite::types::FromSql for $name {
            fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                let text = value.as_str()?;
                $name::parse(text).ok_or_else(|| {
                    rusqlite::types::FromSqlError::Other(
                        format!("{text:?} is not a {}", stringify!($name)).into(),
                    )
                })
            }
        }
    };
}

stored_enum! {
    /// Where a message is in its life (`messages.status`).
    MessageStatus {
        Complete => "complete",
        /// Being written now (by the writer in `messages.owner`).
        Streaming => "streaming",
        /// Stopped, failed, or cut off by an exit; `error_code` says why.
        Interrupted => "interrupted",
    }
}

stored_enum! {
    /// How a model request ended (`request_log.outcome`).
    RequestOutcome {
        Ok => "ok",
        Cancelled => "cancelled",
        /// Refused: the model's queue was full.
        Busy => "busy",
        Error => "error",
    }
}

/// For records built field by field (tests, the request log's callers).
impl Default for RequestOutcome {
    fn default() -> RequestOutcome {
        RequestOutcome::Ok
    }
}

stored_enum! {
    /// A document's state (`documents.status`).
    DocumentStatus {
        Pending => "pending",
        Indexing => "indexing",
        Indexed => "indexed",
        /// A file that could never be read; its error says why.
        Failed => "failed",
    }
}

stored_enum! {
    /// What happened to one file of an import (`import_files.status`).
    FileStatus {
        Pending => "pending",
        Added => "added",
        Replaced => "replaced",
        Unchanged => "unchanged",
        Failed => "failed",
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Persona {
    Office,
    Character,
}

impl Persona {
    pub fn as_str(self) -> &'static str {
        match self {
            Persona::Office => "office",
            Persona::Character => "character",
        }
    }

    pub(super) fn parse(s: &str) -> Persona {
        if s == "character" {
            Persona::Character
        } else {
            Persona::Office
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    pub(super) fn parse(s: &str) -> Role {
        match s {
            "system" => Role::System,
            "assistant" => Role::Assistant,
            _ => Role::User,
        }
    }
}

/// How the office persona addresses the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tone {
    Polite,
    Friendly,
}

impl Tone {
    pub fn as_str(self) -> &'static str {
        match self {
            Tone::Polite => "polite",
            Tone::Friendly => "friendly",
        }
    }

    pub(super) fn parse(s: &str) -> Option<Tone> {
        match s {
            "polite" => Some(Tone::Polite),
            "friendly" => Some(Tone::Friendly),
            _ => None,
        }
    }
}

/// How sensitive a document is; a profile's clearance is the highest level it may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLevel {
    Public = 0,
    Internal = 1,
    Confidential = 2,
    Restricted = 3,
}

impl AccessLevel {
    pub const ALL: [AccessLevel; 4] = [
        AccessLevel::Public,
        AccessLevel::Internal,
        AccessLevel::Confidential,
        AccessLevel::Restricted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AccessLevel::Public => "public",
            AccessLevel::Internal => "internal",
            AccessLevel::Confidential => "confidential",
            AccessLevel::Restricted => "restricted",
        }
    }

    pub fn parse(s: &str) -> Option<AccessLevel> {
        AccessLevel::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// The stored integer (0–3); anything else, which the schema's CHECK prevents, is restricted.
    pub fn from_i64(v: i64) -> AccessLevel {
        match v {
            0 => AccessLevel::Public,
            1 => AccessLevel::Internal,
            2 => AccessLevel::Confidential,
            _ => AccessLevel::Restricted,
        }
    }
}

/// A local profile: its own sessions and cards, and a document clearance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    pub id: i64,
    pub name: String,
    pub clearance: AccessLevel,
    pub created_at: i64,
}

pub(super) fn profile_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Profile> {
    Ok(Profile {
        id: r.get(0)?,
        name: r.get(1)?,
        clearance: AccessLevel::from_i64(r.get(2)?),
        created_at: r.get(3)?,
    })
}

/// The character persona's sheet, saved with its session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Character {
    pub name: String,
    /// Shown as the first message of the session.
    pub greeting: String,
    /// Background the model is given about the character.
    pub context: String,
}

/// Who answers in a session and how: the persona, the office tone, the character.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSetup {
    pub persona: Persona,
    #[serde(default)]
    pub tone: Option<Tone>,
    #[serde(default)]
    pub character: Option<Character>,
}

impl SessionSetup {
    pub fn of(persona: Persona) -> SessionSetup {
        SessionSetup {
            persona,
            tone: None,
            character: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Session {
    pub id: i64,
    pub profile_id: i64,
    pub title: String,
    pub title_is_auto: bool,
    pub persona: Persona,
    pub tone: Option<Tone>,
    pub character: Option<Character>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Session {
    pub fn setup(&self) -> SessionSetup {
        SessionSetup {
            persona: self.persona,
            tone: self.tone,
            character: self.character.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub id: i64,
    pub session_id: i64,
    pub role: Role,
    pub content: String,
    pub status: MessageStatus,
    /// Why an interrupted reply stopped (`cancelled` or an error code).
    pub error_code: Option<String>,
    /// Follow-up questions suggested after an office answer.
    pub suggestions: Vec<String>,
    /// The document passages a grounded office answer was given, numbered as it cites them.
    pub sources: Vec<MessageSource>,
    /// Images sent with a user message, in the order they were attached.
    pub attachments: Vec<Attachment>,
    pub created_at: i64,
}

/// What a reply answers: a new message from the user, or (a retry) the session's last one.
#[derive(Debug, Clone, Copy)]
pub enum ReplyStart<'a> {
    Message {
        text: &'a str,
        attachments: &'a [NewAttachment],
        /// The session's title, set when it has none yet.
        title: Option<&'a str>,
    },
    Retry,
}

/// What [`Store::begin_reply`] stored.
#[derive(Debug, Clone)]
pub struct BegunReply {
    /// The message answered (a retry's is the existing one).
    pub question: Option<Message>,
    /// The `streaming` placeholder.
    pub reply: Message,
    /// The replies a retry deleted.
    pub replaced: Vec<i64>,
}

/// A file sent with a message. The original lives in the data directory's `attachments/`
/// folder (named by its sha256); the thumbnail is stored in the row so a session shows without
/// touching the originals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    pub id: i64,
    pub message_id: i64,
    /// `image` today; the schema also allows `audio` and `file`.
    pub kind: String,
    pub file_name: String,
    pub mime: String,
    pub size_bytes: i64,
    pub stored_path: String,
    pub width: Option<i64>,
    pub height: Option<i64>,
    /// The thumbnail as a `data:image/png;base64,…` URL, ready for an `<img>`.
    pub thumbnail: Option<String>,
    pub created_at: i64,
    /// The text OCR read in the image, which a model that cannot see images gets instead
    /// (`None`: not read, because the model saw the image or OCR was off; `""`: no text in it).
    pub text: Option<String>,
}

/// What is stored for a new attachment.
#[derive(Debug, Clone)]
pub struct NewAttachment {
    pub kind: &'static str,
    pub file_name: String,
    pub mime: String,
    pub size_bytes: u64,
    pub stored_path: PathBuf,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub thumbnail_png: Option<Vec<u8>>,
}

/// A passage quoted to the model for a grounded answer; `n` is the number it cites (`[n]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSource {
    pub n: usize,
    pub document_id: i64,
    pub chunk_id: i64,
    pub file_name: String,
    pub path: String,
    pub page: Option<u32>,
    pub section: Option<String>,
    /// The start of the passage, to show under the answer.
    pub excerpt: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Card {
    pub id: i64,
    pub message_id: Option<i64>,
    pub session_id: Option<i64>,
    pub session_title: String,
    pub role: String,
    pub content: String,
    pub note: String,
    pub created_at: i64,
}

/// Row counts shown at start (and a cheap proof the database is readable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StoreCounts {
    pub sessions: i64,
    pub cards: i64,
    pub documents: i64,
}

/// One finished (or refused) model request, for the per-model statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RequestRecord {
    pub model: String,
    pub persona: Option<String>,
    pub started_at: i64,
    pub outcome: RequestOutcome,
    pub error_code: Option<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub queue_ms: Option<i64>,
    pub ttft_ms: Option<i64>,
    pub prompt_ms: Option<i64>,
    pub generation_ms: Option<i64>,
    pub total_ms: Option<i64>,
}

/// Lifetime totals of one model's requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RequestTotals {
    pub requests: i64,
    pub ok: i64,
    pub cancelled: i64,
    pub busy: i64,
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}
