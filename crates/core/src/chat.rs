//! The chat page's turns: a message in, a streamed reply out, stored as it goes; then, in the
//! background, the session's title and (for the office persona) follow-up questions. Also the
//! session exports (Markdown, JSON).
//!
//! A turn has two halves so that the caller can answer the UI at once:
//! - [`Chat::send`] / [`Chat::retry`] check the input and store what must not be lost (the
//!   session, the user's message, and a `streaming` placeholder for the reply) and return a
//!   [`Turn`]. Input problems are errors here, before anything is stored.
//! - [`Turn::run`] blocks (call it on its own thread): it asks the engine, forwards every piece of
//!   the reply as a [`ChatEvent`], stores the reply as `complete` or `interrupted` (keeping the
//!   partial text), then generates the extras. Every failure, the model being missing included,
//!   arrives as a [`ChatEvent::Failed`] with the error's code.
//!
//! Office replies are grounded in the user's documents when a library is attached
//! ([`Chat::with_library`]; see [`grounding`]): the passages quoted to the model arrive as
//! [`ChatEvent::Sources`] before the text, and are stored with the reply.
//!
//! One reply at a time per session, across processes: a second send while one is being written
//! (by this chat, or by another process on the same data folder: the window and `deskmate
//! chat`) is refused with [`Error::Chat(ChatError::ReplyInProgress)`] and stores nothing. The placeholder names
//! its writer ([`crate::owner`]); the check and the writes are one write transaction
//! ([`Store::begin_reply`]). [`Chat::stop`] cancels a running reply of this process at once.

pub mod grounding;

use crate::error::{ChatError, EngineError};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::attachments::AttachmentStore;
use crate::config::Sampling;
use crate::conversation::{self, prompt_text, request_with_vision, title_from};
use crate::documents::Library;
use crate::engine::{
    CancelToken, ChatMessage, ChatRequest, Completion, Engine, FinishReason, GenerationEvent,
    ImageInput, PersonaState, Timings,
};
use crate::error::{Error, ErrorCode, Result};
use crate::ocr::{Ocr, OcrRead};
use crate::owner::Owner;
use crate::store::{
    BegunReply, Character, Message, MessageSource, MessageStatus, NewAttachment, Persona,
    ReplyStart, Role, Session, SessionSetup, Store,
};
use crate::vision;

/// Longest character name, greeting and background, in characters.
pub const CHARACTER_NAME_CHARS: usize = 60;
pub const CHARACTER_GREETING_CHARS: usize = 1_000;
pub const CHARACTER_CONTEXT_CHARS: usize = 4_000;
/// The longest model-made title kept, in words and characters.
const MAX_TITLE_WORDS: usize = 8;
const MAX_TITLE_CHARS: usize = 48;
/// At most this many follow-up questions are suggested.
pub const MAX_RELATED: usize = 3;
/// How long a turn waits for its model to finish loading before giving up.
const LOAD_WAIT: Duration = Duration::from_secs(180);

/// Per-turn options from the settings.
#[derive(Debug, Clone, Copy)]
pub struct TurnOptions {
    /// User turns of history sent with the message (`None`: all that fit).
    pub history_turns: Option<usize>,
    /// `chat.max_message_chars` from the configuration.
    pub max_message_chars: usize,
    /// `documents.allow_remote`: whether passages may be quoted to a persona on a server.
    pub documents_to_remote: bool,
}

/// What the caller learns at once: where the turn lives and the ids to show.
#[derive(Debug, Clone, Serialize)]
pub struct TurnStart {
    pub session: Session,
    /// The stored user message; `None` for a retry (the message was already there).
    pub user_message: Option<Message>,
    /// The reply's placeholder (`streaming`, empty).
    pub reply: Message,
    /// Messages removed by a retry (the replies being replaced).
    pub replaced: Vec<i64>,
}

/// One step of a running turn, in order: `started`, `text`…, then `finished` or `failed`, then
/// possibly `related` and `title`, and always `done` last.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChatEvent {
    Started {
        reply_id: i64,
        prompt_tokens: usize,
        cached_tokens: usize,
        /// Of the cached tokens, those restored from the prompt cache on disk.
        restored_tokens: usize,
        dropped_turns: usize,
    },
    /// The document passages quoted to the model for this reply (office persona, when the
    /// library has relevant ones); sent before the first `text`.
    Sources {
        reply_id: i64,
        sources: Vec<MessageSource>,
    },
    /// Relevant passages were found but not sent: the persona's model runs on the server
    /// `host` and `documents.allow_remote` is off. The reply comes without them.
    DocumentsWithheld {
        reply_id: i64,
        host: String,
        passages: usize,
    },
    Text {
        reply_id: i64,
        text: String,
    },
    /// The reply as stored: `complete`, or `interrupted` with `error_code: "cancelled"` when the
    /// user stopped it.
    Finished {
        reply: Message,
        completion_tokens: usize,
        /// Why the model stopped (`stop`, `length`, `cancelled`).
        finish_reason: FinishReason,
        timings: Timings,
    },
    /// The request failed, or was stopped before any text (code `cancelled`); `reply` is the
    /// partial text kept (marked interrupted), if any.
    Failed {
        reply_id: i64,
        reply: Option<Message>,
        error: Error,
    },
    Related {
        message_id: i64,
        questions: Vec<String>,
    },
    Title {
        session: Session,
    },
    Done {
        reply_id: i64,
    },
}

/// The chat service: the store, the engine and the replies being written.
pub struct Chat {
    store: Arc<Mutex<Store>>,
    engine: Arc<Engine>,
    library: Option<Arc<Library>>,
    active: Arc<Mutex<HashMap<i64, CancelToken>>>,
    /// Names this chat as the writer of its replies (`messages.owner`).
    writer: Arc<Owner>,
    /// Reads the text in attached images for a model that cannot see them (`documents.ocr`);
    /// `None`: off.
    image_ocr: Mutex<Option<Ocr>>,
}

/// A stored turn, ready to be run.
pub struct Turn {
    start: TurnStart,
    setup: SessionSetup,
    request: ChatRequest,
    /// The user's text, for the follow-up questions.
    question: String,
    /// The user's message before this one, for a follow-up's document search.
    previous_question: Option<String>,
    library: Option<Arc<Library>>,
    /// `documents.allow_remote` when the turn was made.
    documents_to_remote: bool,
    first_exchange: bool,
    cancel: CancelToken,
    store: Arc<Mutex<Store>>,
    engine: Arc<Engine>,
    active: Arc<Mutex<HashMap<i64, CancelToken>>>,
    /// Set when [`Turn::run`] starts; a turn dropped before has its placeholder removed.
    ran: bool,
}

fn lock(store: &Mutex<Store>) -> MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The message as it will be stored (trimmed), or why it cannot be sent: empty, or over
/// `chat.max_message_chars`. [`Chat::send`] checks it; a front end may check first, before
/// spending seconds on loading a model.
pub fn check_message<'t>(text: &'t str, options: &TurnOptions) -> Result<&'t str> {
    let text = conversation::validate_user_text(text)?;
    let got = text.chars().count();
    if got > options.max_message_chars {
        return Err(Error::Chat(ChatError::MessageTooLong {
            limit: options.max_message_chars,
            got,
        }));
    }
    Ok(text)
}

/// Checks and normalises a session setup: the tone belongs to the office persona, the
/// character sheet to the character persona, with a name and within the length limits.
pub fn validate_setup(setup: &SessionSetup) -> Result<SessionSetup> {
    match setup.persona {
        Persona::Office => Ok(SessionSetup {
            persona: Persona::Office,
            tone: setup.tone,
            character: None,
        }),
        Persona::Character => {
            let character = match &setup.character {
                None => None,
                Some(c) => {
                    let c = Character {
                        name: c.name.trim().to_owned(),
                        greeting: c.greeting.trim().to_owned(),
                        context: c.context.trim().to_owned(),
                    };
                    for (field, value, limit) in [
                        ("character.name", &c.name, CHARACTER_NAME_CHARS),
                        ("character.greeting", &c.greeting, CHARACTER_GREETING_CHARS),
                        ("character.context", &c.context, CHARACTER_CONTEXT_CHARS),
                    ] {
                        let got = value.chars().count();
                        if got > limit {
                            return Err(Error::InvalidInput {
                                field,
                                message: format!("{got} characters is over the limit of {limit}"),
                            });
                        }
                    }
                    if c.name.is_empty() {
                        return Err(Error::InvalidInput {
                            field: "character.name",
                            message: "must not be empty".to_owned(),
                        });
                    }
                    Some(c)
                }
            };
            Ok(SessionSetup {
                persona: Persona::Character,
                tone: None,
                character,
            })
        }
    }
}

/// Creates an empty session; a character's greeting becomes its first message.
pub fn create_session(store: &mut Store, setup: &SessionSetup) -> Result<(Session, Vec<Message>)> {
    let setup = validate_setup(setup)?;
    let session = store.create_session_with(&setup, "")?;
    if let Some(greeting) = setup
        .character
        .as_ref()
        .map(|c| c.greeting.as_str())
        .filter(|g| !g.is_empty())
    {
        store.append_message(
            session.id,
            Role::Assistant,
            greeting,
            MessageStatus::Complete,
        )?;
    }
    let messages = store.messages(session.id)?;
    Ok((store.session(session.id)?, messages))
}

impl Chat {
    pub fn new(store: Arc<Mutex<Store>>, engine: Arc<Engine>) -> Chat {
        let writer = Arc::new(Owner::new(lock(&store).path(), Owner::REPLIES));
        Chat {
            store,
            engine,
            library: None,
            active: Arc::default(),
            writer,
            image_ocr: Mutex::new(None),
        }
    }

    /// Turns reading the text in attached images (for a model that cannot see them) on, with
    /// this OCR, or off. Applies from the next message.
    pub fn set_image_ocr(&self, ocr: Option<Ocr>) {
        *self
            .image_ocr
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = ocr;
    }

    /// For a persona whose model cannot see images: reads the text in the message's images with
    /// OCR (when it is on), once per image, and stores it with the attachment, so that later
    /// turns quote it without reading again. A failure is logged, and that image gets the plain
    /// "you cannot see images" note.
    fn read_image_texts(&self, persona: Persona, message: &mut Message, cancel: &CancelToken) {
        let unread = |a: &crate::store::Attachment| a.kind == "image" && a.text.is_none();
        if !message.attachments.iter().any(unread) || self.engine.vision_support(persona).is_ok() {
            return;
        }
        let Some(ocr) = self
            .image_ocr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        else {
            return;
        };
        for a in message.attachments.iter_mut().filter(|a| unread(a)) {
            match ocr.read_image(Path::new(&a.stored_path), &|| cancel.is_cancelled()) {
                Ok(OcrRead::Text(text)) => {
                    if let Err(e) = lock(&self.store).set_attachment_text(a.id, &text) {
                        tracing::warn!(attachment = a.id, error = %e, "the text read in an image was not stored");
                    }
                    tracing::info!(file = %a.file_name, chars = text.chars().count(), "read the text in an attached image");
                    a.text = Some(text);
                }
                Ok(OcrRead::Cancelled) => return,
                Err(e) => {
                    tracing::warn!(file = %a.file_name, error = %e, "the text in an attached image was not read")
                }
            }
        }
    }

    /// Marks replies whose writer is gone (a process that ended mid-reply) as interrupted;
    /// replies another running process is writing are left alone. Returns how many.
    pub fn interrupt_abandoned_replies(&self) -> Result<usize> {
        let writer = Arc::clone(&self.writer);
        lock(&self.store).interrupt_unfinished_replies(&|owner| writer.is_alive(owner))
    }

    /// Stores what starts a reply, or refuses when one is being written in the session by any
    /// process (see the module's doc).
    fn begin_reply(
        &self,
        store: &mut Store,
        session_id: i64,
        start: ReplyStart<'_>,
    ) -> Result<BegunReply> {
        let token = self.writer.token()?;
        let writer = &self.writer;
        store.begin_reply(session_id, start, token, &|owner| writer.is_alive(owner))
    }

    /// Grounds office replies in this document library.
    pub fn with_library(mut self, library: Arc<Library>) -> Chat {
        self.library = Some(library);
        self
    }

    /// The store the turns write to, for the session and card commands around them.
    pub fn store(&self) -> &Arc<Mutex<Store>> {
        &self.store
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Stores the user's message (in a new session when `session_id` is `None`, set up as
    /// `setup`) and a placeholder for the reply.
    pub fn send(
        &self,
        session_id: Option<i64>,
        setup: &SessionSetup,
        text: &str,
        options: TurnOptions,
    ) -> Result<Turn> {
        self.send_with_attachments(session_id, setup, text, Vec::new(), options)
    }

    /// [`Chat::send`] with images staged by `attachments::AttachmentStore`; the message and its
    /// attachments are stored together or not at all.
    pub fn send_with_attachments(
        &self,
        session_id: Option<i64>,
        setup: &SessionSetup,
        text: &str,
        attachments: Vec<NewAttachment>,
        options: TurnOptions,
    ) -> Result<Turn> {
        let text = check_message(text, &options)?;
        let mut store = lock(&self.store);
        let session = match session_id {
            Some(id) => store.session(id)?,
            None => create_session(&mut store, setup)?.0,
        };
        let cancel = self.claim(session.id)?;
        let title = title_from(text);
        let title = Some(title.trim()).filter(|t| !t.is_empty());
        let stored = self
            .begin_reply(
                &mut store,
                session.id,
                ReplyStart::Message {
                    text,
                    attachments: &attachments,
                    title,
                },
            )
            .and_then(|begun| {
                let user = begun.question.ok_or(Error::NotFound {
                    what: "message",
                    id: begun.reply.id,
                })?;
                let history: Vec<Message> = store
                    .messages(session.id)?
                    .into_iter()
                    .filter(|m| m.id < user.id)
                    .collect();
                Ok((history, user, begun.reply, store.session(session.id)?))
            });
        let (history, mut user, reply, session) = match stored {
            Ok(v) => v,
            Err(e) => {
                self.release(session.id);
                return Err(e);
            }
        };
        // Preparing a vision model's images reads and scales files, and OCR reads the text in
        // them for a model that cannot see: not under the store lock.
        drop(store);
        let setup = session.setup();
        self.read_image_texts(setup.persona, &mut user, &cancel);
        let first_exchange = !history.iter().any(|m| m.role == Role::User);
        Ok(Turn {
            request: self.request_with_images(&setup, &history, &user, &options),
            question: text.to_owned(),
            previous_question: last_question(&history),
            library: self.library.clone(),
            documents_to_remote: options.documents_to_remote,
            setup,
            first_exchange,
            cancel,
            start: TurnStart {
                session,
                user_message: Some(user),
                reply,
                replaced: Vec::new(),
            },
            store: Arc::clone(&self.store),
            engine: Arc::clone(&self.engine),
            active: Arc::clone(&self.active),
            ran: false,
        })
    }

    /// Answers the session's last user message again: the replies after it are deleted (their
    /// cards stay, with their copy of the text) and a new one is written.
    pub fn retry(&self, session_id: i64, options: TurnOptions) -> Result<Turn> {
        let mut store = lock(&self.store);
        let session = store.session(session_id)?;
        let cancel = self.claim(session_id)?;
        let stored = self
            .begin_reply(&mut store, session_id, ReplyStart::Retry)
            .and_then(|begun| Ok((begun, store.messages(session_id)?)));
        let (
            BegunReply {
                reply, replaced, ..
            },
            mut messages,
        ) = match stored {
            Ok(v) => v,
            Err(e) => {
                self.release(session_id);
                return Err(e);
            }
        };
        // The messages up to the last user message (the reply placeholder follows it).
        let Some(last_user) = messages.iter().rposition(|m| m.role == Role::User) else {
            self.release(session_id);
            return Err(Error::Chat(ChatError::NothingToRetry {
                session: session_id,
            }));
        };
        drop(store);
        let setup = session.setup();
        self.read_image_texts(setup.persona, &mut messages[last_user], &cancel);
        let question = messages[last_user].content.clone();
        let history = &messages[..last_user];
        Ok(Turn {
            request: self.request_with_images(&setup, history, &messages[last_user], &options),
            first_exchange: !history.iter().any(|m| m.role == Role::User),
            previous_question: last_question(history),
            library: self.library.clone(),
            documents_to_remote: options.documents_to_remote,
            question,
            setup,
            cancel,
            start: TurnStart {
                session,
                user_message: None,
                reply,
                replaced,
            },
            store: Arc::clone(&self.store),
            engine: Arc::clone(&self.engine),
            active: Arc::clone(&self.active),
            ran: false,
        })
    }

    /// The request for a reply to `user`: with its images when the persona's model sees them
    /// (an image that cannot be read again is left out, with a warning), otherwise with a note.
    fn request_with_images(
        &self,
        setup: &SessionSetup,
        history: &[Message],
        user: &Message,
        options: &TurnOptions,
    ) -> ChatRequest {
        // Earlier answers drawn from documents are document text too: a persona on a server
        // gets a note in their place unless documents.allow_remote is on, and a request that
        // carries them stays on this machine.
        let on_server = self.engine.remote_backend(setup.persona).is_some();
        let grounded = |m: &Message| m.role == Role::Assistant && !m.sources.is_empty();
        let scrubbed: Vec<Message>;
        let history = if on_server && !options.documents_to_remote && history.iter().any(grounded) {
            scrubbed = history
                .iter()
                .map(|m| {
                    let mut m = m.clone();
                    if grounded(&m) {
                        m.content = WITHHELD_ANSWER.to_owned();
                    }
                    m
                })
                .collect();
            &scrubbed[..]
        } else {
            history
        };
        let history_turns = options.history_turns;
        let vision =
            !user.attachments.is_empty() && self.engine.vision_support(setup.persona).is_ok();
        let text = if vision {
            user.content.clone()
        } else {
            prompt_text(user, false)
        };
        let mut request = request_with_vision(setup, history, &text, history_turns, vision);
        request.local_only = !on_server && history.iter().any(grounded);
        if on_server {
            for system in request
                .messages
                .iter_mut()
                .filter(|m| m.role == Role::System)
            {
                system.content = conversation::on_server(&system.content);
            }
        }
        if vision {
            let images = user
                .attachments
                .iter()
                .filter(|a| a.kind == "image")
                .filter_map(|a| {
                    let prepared = vision::prepare_file(
                        Path::new(&a.stored_path),
                        &vision::ImageLimits::default(),
                        vision::DEFAULT_MODEL_SIDE,
                    );
                    match prepared {
                        Ok(p) => Some(ImageInput {
                            width: p.model_rgb.width(),
                            height: p.model_rgb.height(),
                            rgb: Arc::new(p.model_rgb.into_raw()),
                        }),
                        Err(e) => {
                            tracing::warn!(file = %a.stored_path, error = %e, "attached image not read");
                            None
                        }
                    }
                })
                .collect();
            if let Some(last) = request.messages.last_mut() {
                last.images = images;
            }
        }
        request
    }

    /// Deletes a session with its messages, and the image files no other message uses.
    pub fn delete_session(&self, session_id: i64, files: &AttachmentStore) -> Result<()> {
        let unused = {
            let mut store = lock(&self.store);
            let stored = store.session_attachment_files(session_id)?;
            store.delete_session(session_id)?;
            store.unreferenced_attachment_files(&stored)?
        };
        files.remove_files(&unused);
        Ok(())
    }

    /// Stops the reply being written in a session; false when there is none.
    pub fn stop(&self, session_id: i64) -> bool {
        let active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        match active.get(&session_id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// Refuses, as a send would, when a reply is being written in the session by this chat or
    /// by another process; stores nothing. (A front end asks before spending seconds on
    /// loading a model; the send itself checks again, atomically.)
    pub fn check_not_replying(&self, session_id: i64) -> Result<()> {
        let busy = self.is_replying(session_id)
            || lock(&self.store)
                .reply_writers(session_id)?
                .iter()
                .flatten()
                .any(|writer| self.writer.is_alive(writer));
        if busy {
            return Err(Error::Chat(ChatError::ReplyInProgress {
                session: session_id,
            }));
        }
        Ok(())
    }

    /// Whether a reply is being written in the session.
    pub fn is_replying(&self, session_id: i64) -> bool {
        self.active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&session_id)
    }

    fn claim(&self, session_id: i64) -> Result<CancelToken> {
        let mut active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        if active.contains_key(&session_id) {
            return Err(Error::Chat(ChatError::ReplyInProgress {
                session: session_id,
            }));
        }
        let token = CancelToken::default();
        active.insert(session_id, token.clone());
        Ok(token)
    }

    fn release(&self, session_id: i64) {
        self.active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&session_id);
    }
}

impl Turn {
    /// Frees the session for its next turn, unless another turn holds it already.
    fn release(&self) {
        let mut active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        let session_id = self.start.session.id;
        if active
            .get(&session_id)
            .is_some_and(|t| t.is_same(&self.cancel))
        {
            active.remove(&session_id);
        }
    }
}

/// A turn dropped without being run (its thread could not start) removes its empty
/// placeholder, which would otherwise keep the session busy for as long as this process lives,
/// and frees its session. The user's message stays, as after a failed reply.
impl Drop for Turn {
    fn drop(&mut self) {
        if !self.ran {
            if let Err(e) = lock(&self.store).delete_message(self.start.reply.id) {
                tracing::warn!(error = %e, "the placeholder of a reply never started was not removed");
            }
        }
        self.release();
    }
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turn")
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}

impl Turn {
    pub fn start(&self) -> &TurnStart {
        &self.start
    }

    /// What the model will be sent: the model's copy of the conversation.
    pub fn request(&self) -> &ChatRequest {
        &self.request
    }

    /// Writes the reply, then the extras; blocks until `done` has been emitted.
    pub fn run(mut self, mut emit: impl FnMut(ChatEvent)) {
        self.ran = true;
        let reply_id = self.start.reply.id;
        let persona = self.setup.persona;
        if persona == Persona::Office {
            self.ground(&mut emit);
        }
        let outcome = self.generate(&mut emit);
        let stored = self.store_reply(&outcome);
        // The session is free for the next message before the extras start.
        self.release();
        let answered = match (outcome, stored) {
            (Outcome::Finished(completion, _), Ok(Some(reply))) => {
                let done_well = reply.status == MessageStatus::Complete;
                let text = reply.content.clone();
                emit(ChatEvent::Finished {
                    reply,
                    completion_tokens: completion.completion_tokens,
                    finish_reason: completion.finish_reason,
                    timings: completion.timings,
                });
                done_well.then_some(text)
            }
            (Outcome::Failed(error, _), Ok(reply)) => {
                emit(ChatEvent::Failed {
                    reply_id,
                    reply,
                    error,
                });
                None
            }
            // Stopped before any text: the placeholder is gone, and the page must drop it too.
            (Outcome::Finished(..), Ok(None)) => {
                emit(ChatEvent::Failed {
                    reply_id,
                    reply: None,
                    error: cancelled(),
                });
                None
            }
            (_, Err(e)) => {
                emit(ChatEvent::Failed {
                    reply_id,
                    reply: None,
                    error: e,
                });
                None
            }
        };
        if let Some(answer) = answered.filter(|a| !a.trim().is_empty()) {
            if persona == Persona::Office {
                self.suggest_related(reply_id, &answer, &mut emit);
            }
            if self.first_exchange {
                self.refine_title(&answer, &mut emit);
            }
        }
        emit(ChatEvent::Done { reply_id });
    }

    /// A short description of the images of the question, by the vision model itself; `None`
    /// without images, or when the description fails (the answer goes on without it).
    fn describe_images(&self) -> Option<String> {
        let images = self.request.messages.last()?.images.clone();
        if images.is_empty() {
            return None;
        }
        let mut user = ChatMessage::new(
            Role::User,
            "Describe this image in one or two plain sentences: what kind of document or scene it is and its key words.",
        );
        user.images = images;
        let request = ChatRequest {
            messages: vec![
                ChatMessage::new(Role::System, "You describe images briefly and factually."),
                user,
            ],
            sampling: Some(Sampling {
                temperature: 0.0,
                max_tokens: 64,
                seed: Some(1),
                ..Sampling::default()
            }),
            ignore_eos: false,
            local_only: false,
        };
        let generation = self
            .engine
            .submit_cancellable(self.setup.persona, request, self.cancel.clone())
            .ok()?;
        match generation.wait(|_| {}) {
            Ok(done) => Some(done.text.trim().to_owned()).filter(|t| !t.is_empty()),
            Err(e) => {
                tracing::warn!(error = %e, "describing the image for the document search failed");
                None
            }
        }
    }

    /// Quotes the relevant document passages in the system prompt and tells the page. A library
    /// that fails is logged and the reply goes on ungrounded: documents are an aid, never a
    /// reason to lose an answer.
    fn ground(&mut self, emit: &mut impl FnMut(ChatEvent)) {
        let Some(library) = self.library.clone() else {
            return;
        };
        if !matches!(library.has_documents(), Ok(true)) {
            return;
        }
        let mut query =
            grounding::retrieval_query(&self.question, self.previous_question.as_deref());
        // A question about a picture ("what is this form?") is searched with what the picture
        // shows, as the vision model describes it.
        if let Some(description) = self.describe_images() {
            query = format!("{query} {description}");
        }
        let found = match library.search(&query, library.top_k() * 2) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "document search for a grounded answer failed");
                return;
            }
        };
        let passages = grounding::select(found.passages, library.top_k());
        if passages.is_empty() {
            return;
        }
        let reply_id = self.start.reply.id;
        match self.engine.remote_backend(self.setup.persona) {
            Some(remote) if !self.documents_to_remote => {
                emit(ChatEvent::DocumentsWithheld {
                    reply_id,
                    host: remote.host().to_owned(),
                    passages: passages.len(),
                });
                return;
            }
            Some(_) => {}
            // Should the persona move to a server before the request is sent, the engine
            // refuses it rather than send the passages.
            None => self.request.local_only = true,
        }
        if let Some(system) = self
            .request
            .messages
            .iter_mut()
            .find(|m| m.role == Role::System)
        {
            system
                .content
                .push_str(&grounding::quoted_material(&passages));
        }
        let sources = grounding::sources_of(&passages);
        if let Err(e) = lock(&self.store).set_sources(reply_id, &sources) {
            tracing::warn!(error = %e, "sources not stored with the reply");
        }
        emit(ChatEvent::Sources { reply_id, sources });
    }

    fn generate(&self, emit: &mut impl FnMut(ChatEvent)) -> Outcome {
        let reply_id = self.start.reply.id;
        let persona = self.setup.persona;
        let mut generation = match self.submit_when_loaded(self.request.clone()) {
            Ok(g) => g,
            Err(e) => return Outcome::Failed(e, String::new()),
        };
        let mut text = String::new();
        while let Some(event) = generation.blocking_next() {
            match event {
                GenerationEvent::Started {
                    prompt_tokens,
                    cached_tokens,
                    restored_tokens,
                    dropped_turns,
                } => emit(ChatEvent::Started {
                    reply_id,
                    prompt_tokens,
                    cached_tokens,
                    restored_tokens,
                    dropped_turns,
                }),
                GenerationEvent::Text(piece) => {
                    text.push_str(&piece);
                    emit(ChatEvent::Text {
                        reply_id,
                        text: piece,
                    });
                }
                GenerationEvent::Finished(c) => return Outcome::Finished(c, text),
                GenerationEvent::Failed(e) => return Outcome::Failed(e, text),
            }
        }
        let crashed = Error::Engine(EngineError::WorkerCrashed {
            persona: persona.as_str(),
        });
        Outcome::Failed(crashed, text)
    }

    /// Submits, waiting while the persona's model is still loading; a model that failed to load
    /// gives its load error (e.g. `model_missing`), which says more than "not loaded".
    fn submit_when_loaded(&self, request: ChatRequest) -> Result<crate::engine::Generation> {
        let persona = self.setup.persona;
        let deadline = Instant::now() + LOAD_WAIT;
        loop {
            let submitted =
                self.engine
                    .submit_cancellable(persona, request.clone(), self.cancel.clone());
            match submitted {
                Ok(g) => return Ok(g),
                Err(Error::Engine(EngineError::ModelNotLoaded { .. })) => {
                    match self.engine.persona_state(persona) {
                        PersonaState::Loading { .. } if Instant::now() < deadline => {
                            if self.cancel.is_cancelled() {
                                return Err(cancelled());
                            }
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        PersonaState::Failed { error, .. } => return Err(error),
                        _ => {
                            return Err(Error::Engine(EngineError::ModelNotLoaded {
                                persona: persona.as_str(),
                            }))
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Stores the reply; a failure or a stop with no text removes the placeholder.
    fn store_reply(&self, outcome: &Outcome) -> Result<Option<Message>> {
        let id = self.start.reply.id;
        let mut store = lock(&self.store);
        let (text, status, code) = match outcome {
            Outcome::Finished(c, text) if c.finish_reason == FinishReason::Cancelled => (
                text,
                MessageStatus::Interrupted,
                Some(ErrorCode::Cancelled.as_str()),
            ),
            Outcome::Finished(_, text) => (text, MessageStatus::Complete, None),
            Outcome::Failed(e, text) => (
                text,
                conversation::FAILED_REPLY_STATUS,
                Some(e.code().as_str()),
            ),
        };
        if text.is_empty() && status != MessageStatus::Complete {
            store.delete_message(id)?;
            return Ok(None);
        }
        store.finish_message(id, text, status, code).map(Some)
    }

    fn extra(&self, mut request: ChatRequest) -> Option<String> {
        // The follow-ups and the title quote the answer: they stay wherever it had to.
        request.local_only = self.request.local_only;
        let generation = self.engine.submit(self.setup.persona, request).ok()?;
        match generation.wait(|_| {}) {
            Ok(c) if c.finish_reason != FinishReason::Cancelled => Some(c.text),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(error = %e, "a background request failed");
                None
            }
        }
    }

    fn suggest_related(&self, message_id: i64, answer: &str, emit: &mut impl FnMut(ChatEvent)) {
        let Some(raw) = self.extra(related_request(&self.question, answer)) else {
            return;
        };
        let questions = parse_related(&raw, &self.question);
        if questions.is_empty() {
            return;
        }
        if let Err(e) = lock(&self.store).set_suggestions(message_id, &questions) {
            tracing::warn!(error = %e, "follow-up questions not stored");
            return;
        }
        emit(ChatEvent::Related {
            message_id,
            questions,
        });
    }

    fn refine_title(&self, answer: &str, emit: &mut impl FnMut(ChatEvent)) {
        let Some(raw) = self.extra(title_request(&self.question, answer)) else {
            return;
        };
        let Some(title) = clean_title(&raw) else {
            return;
        };
        let session_id = self.start.session.id;
        let mut store = lock(&self.store);
        match store.set_auto_title(session_id, &title) {
            Ok(true) => {
                if let Ok(session) = store.session(session_id) {
                    drop(store);
                    emit(ChatEvent::Title { session });
                }
            }
            Ok(false) => {} // renamed by the user meanwhile: their title stays
            Err(e) => tracing::warn!(error = %e, "automatic title not stored"),
        }
    }
}

enum Outcome {
    Finished(Completion, String),
    Failed(Error, String),
}

fn last_question(history: &[Message]) -> Option<String> {
    history
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| m.content.clone())
}

/// A reply stopped before any text was written.
fn cancelled() -> Error {
    Error::Cancelled { what: "the reply" }
}

/// Short, predictable sampling for the background requests (seeded: the same answer gets the
/// same suggestions).
fn extra_sampling(max_tokens: u32) -> Sampling {
    Sampling {
        temperature: 0.3,
        seed: Some(7),
        max_tokens,
        ..Sampling::default()
    }
}

/// What a persona on a server sees in place of an earlier answer drawn from the user's
/// documents (documents.allow_remote off).
pub const WITHHELD_ANSWER: &str = "(An earlier answer drawn from the user's documents. It stays on the user's computer and is not shown here.)";

/// Asks for a title of a few words, in the language of the conversation.
pub fn title_request(question: &str, answer: &str) -> ChatRequest {
    let excerpt: String = answer.chars().take(600).collect();
    ChatRequest {
        messages: vec![
            ChatMessage::new(
                Role::System,
                "You write titles for conversations. Reply with the title only: at most six \
                 words, no quotes, no final period, in the same language as the user's message.",
            ),
            ChatMessage::new(
                Role::User,
                format!("User's message:\n{question}\n\nAssistant's answer:\n{excerpt}\n\nTitle:"),
            ),
        ],
        sampling: Some(extra_sampling(24)),
        ignore_eos: false,
        local_only: false,
    }
}

/// Asks for three short follow-up questions as a numbered list. The answer is left out on
/// purpose: small models given it tend to continue the answer instead of asking.
pub fn related_request(question: &str, _answer: &str) -> ChatRequest {
    ChatRequest {
        messages: vec![
            ChatMessage::new(Role::System, "You are a helpful assistant."),
            ChatMessage::new(
                Role::User,
                format!(
                    "Topic: {question}\n\nWrite three short questions the user might ask next \
                     about this topic, as a numbered list, in the same language as the topic. \
                     Each must end with a question mark."
                ),
            ),
        ],
        sampling: Some(extra_sampling(120)),
        ignore_eos: false,
        local_only: false,
    }
}

/// Strips list markers, numbering and quotes from one line of model output.
fn strip_marker(line: &str) -> &str {
    let line = line.trim();
    let line = line
        .trim_start_matches(['-', '*', '•', '·', '#', '>'])
        .trim_start();
    let digits = line.len() - line.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let line = if digits > 0 && digits <= 2 {
        let rest = &line[digits..];
        match rest.chars().next() {
            Some('.' | ')' | ':') => rest[1..].trim_start(),
            _ => line,
        }
    } else {
        line
    };
    line.trim_matches(|c: char| matches!(c, '"' | '\'' | '“' | '”' | '「' | '」' | '*' | '`'))
        .trim()
}

/// Up to [`MAX_RELATED`] distinct questions from the model's output; lines that are not
/// questions (an intro such as "Here are three questions:") are skipped, as is the user's own
/// question.
pub fn parse_related(raw: &str, asked: &str) -> Vec<String> {
    let asked = asked.trim().to_lowercase();
    let mut out: Vec<String> = Vec::new();
    for line in raw.lines() {
        let q = strip_marker(line);
        let length = q.chars().count();
        if !(q.ends_with('?') || q.ends_with('？')) || !(4..=160).contains(&length) {
            continue;
        }
        let key = q.to_lowercase();
        if key == asked || out.iter().any(|o| o.to_lowercase() == key) {
            continue;
        }
        out.push(q.to_owned());
        if out.len() == MAX_RELATED {
            break;
        }
    }
    out
}

/// A usable title from the model's output: its first non-empty line without a "Title:" label,
/// quotes or a final period; `None` when nothing is left or the line is too long to be a title.
pub fn clean_title(raw: &str) -> Option<String> {
    let line = raw.lines().map(strip_marker).find(|l| !l.is_empty())?;
    let mut line = line;
    for label in ["Title:", "title:", "TITLE:", "제목:", "제목 :"] {
        if let Some(rest) = line.strip_prefix(label) {
            line = strip_marker(rest);
        }
    }
    let line = line.trim_end_matches(['.', '。']).trim();
    // A title is a few words; a longer line is the model answering instead of naming, and the
    // provisional title (the first line of the first message) is the better one then.
    if line.is_empty()
        || line.split_whitespace().count() > MAX_TITLE_WORDS
        || line.chars().count() > MAX_TITLE_CHARS
    {
        return None;
    }
    Some(line.to_owned())
}

// --- export ---

/// A session as Markdown: the title, who answered, then each message under its speaker.
pub fn export_markdown(session: &Session, messages: &[Message]) -> String {
    let mut out = format!("# {}\n\n", display_title(session));
    let speaker = match (&session.persona, &session.character) {
        (Persona::Character, Some(c)) => c.name.clone(),
        (Persona::Character, None) => "Character".to_owned(),
        (Persona::Office, _) => "Deskmate".to_owned(),
    };
    out.push_str(&format!(
        "- Persona: {}{}\n- Exported: {}\n\n",
        session.persona.as_str(),
        session
            .tone
            .map(|t| format!(" ({})", t.as_str()))
            .unwrap_or_default(),
        format_time(crate::store::now_ms()),
    ));
    for m in messages.iter().filter(|m| m.role != Role::System) {
        let who = match m.role {
            Role::User => "You",
            _ => speaker.as_str(),
        };
        out.push_str(&format!("## {who} · {}\n\n", format_time(m.created_at)));
        out.push_str(m.content.trim_end());
        if m.status != MessageStatus::Complete {
            out.push_str("\n\n*(interrupted)*");
        }
        out.push_str("\n\n");
    }
    out
}

/// A session as JSON: `{ session, messages, exported_at }`.
pub fn export_json(session: &Session, messages: &[Message]) -> Result<String> {
    #[derive(Serialize)]
    struct Export<'a> {
        format: &'static str,
        exported_at: i64,
        session: &'a Session,
        messages: &'a [Message],
    }
    serde_json::to_string_pretty(&Export {
        format: "deskmate-session/1",
        exported_at: crate::store::now_ms(),
        session,
        messages,
    })
    .map_err(|e| Error::InvalidInput {
        field: "session",
        message: e.to_string(),
    })
}

/// A file name for an export: the title with characters that file systems refuse replaced.
pub fn export_file_name(session: &Session, extension: &str) -> String {
    let stem: String = display_title(session)
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') {
                '_'
            } else {
                c
            }
        })
        .take(80)
        .collect();
    let stem = stem.trim().trim_matches('.');
    let stem = if stem.is_empty() {
        "conversation"
    } else {
        stem
    };
    format!("{stem}.{extension}")
}

fn display_title(session: &Session) -> String {
    if session.title.trim().is_empty() {
        format!("Conversation {}", session.id)
    } else {
        session.title.clone()
    }
}

/// `YYYY-MM-DD HH:MM` (UTC) from milliseconds since the epoch.
fn format_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm), to avoid a date crate for one format.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::Tone;

    #[test]
    fn follow_up_questions_are_parsed_from_numbered_or_bulleted_lines() {
        let raw =
            "Here are three questions:\n1. What is the budget for Q3?\n- \"Who approves it?\"\n\
                   * What is the budget for Q3?\n3) When is it due?\n4. One more?";
        assert_eq!(
            parse_related(raw, "What is the budget?"),
            [
                "What is the budget for Q3?",
                "Who approves it?",
                "When is it due?"
            ]
        );
        assert_eq!(
            parse_related("1. 예산은 얼마인가요?\n2. 마감일은 언제예요？", ""),
            ["예산은 얼마인가요?", "마감일은 언제예요？"]
        );
        assert!(parse_related("No questions here.\nJust text.", "").is_empty());
        assert!(parse_related("What is the budget?", "what is the budget?").is_empty());
    }

    #[test]
    fn titles_lose_labels_quotes_and_final_periods() {
        assert_eq!(
            clean_title("Title: \"Quarterly budget review.\"\nmore").unwrap(),
            "Quarterly budget review"
        );
        assert_eq!(
            clean_title("\n\n제목: 분기 예산 검토").unwrap(),
            "분기 예산 검토"
        );
        assert_eq!(clean_title("  \n  ").as_deref(), None);
        assert_eq!(
            clean_title(&"word ".repeat(9)),
            None,
            "an answer, not a title"
        );
        assert_eq!(
            clean_title("I'm sorry for your loss, but as a desk-based service, I"),
            None
        );
    }

    #[test]
    fn setups_keep_the_tone_for_the_office_and_the_sheet_for_the_character() {
        let office = validate_setup(&SessionSetup {
            persona: Persona::Office,
            tone: Some(Tone::Friendly),
            character: Some(Character::default()),
        })
        .unwrap();
        assert_eq!(office.tone, Some(Tone::Friendly));
        assert_eq!(office.character, None);
        let character = validate_setup(&SessionSetup {
            persona: Persona::Character,
            tone: Some(Tone::Polite),
            character: Some(Character {
                name: "  Mochi ".into(),
                greeting: "Meow.".into(),
                context: String::new(),
            }),
        })
        .unwrap();
        assert_eq!(character.tone, None);
        assert_eq!(character.character.unwrap().name, "Mochi");
        let nameless = validate_setup(&SessionSetup {
            persona: Persona::Character,
            tone: None,
            character: Some(Character::default()),
        })
        .unwrap_err();
        assert_eq!(nameless.to_string(), "character.name: must not be empty");
        let long = validate_setup(&SessionSetup {
            persona: Persona::Character,
            tone: None,
            character: Some(Character {
                name: "x".repeat(61),
                ..Character::default()
            }),
        })
        .unwrap_err();
        assert!(long
            .to_string()
            .starts_with("character.name: 61 characters"));
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("d.sqlite3")).unwrap();
        (dir, store)
    }

    #[test]
    fn a_character_session_opens_with_its_greeting() {
        let (_dir, mut store) = store();
        let (session, messages) = create_session(
            &mut store,
            &SessionSetup {
                persona: Persona::Character,
                tone: None,
                character: Some(Character {
                    name: "Haneul".into(),
                    greeting: "안녕하세요! 오늘 뭐 도와줄까요?".into(),
                    context: "Design team colleague".into(),
                }),
            },
        )
        .unwrap();
        assert_eq!(session.character.as_ref().unwrap().name, "Haneul");
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].role, Role::Assistant);
        assert!(messages[0].content.starts_with("안녕하세요"));
        let again = store.session(session.id).unwrap();
        assert_eq!(again.character, session.character);
    }

    #[test]
    fn exports_carry_every_message_and_mark_interrupted_replies() {
        let (_dir, mut store) = store();
        let session = store
            .create_session_with(
                &SessionSetup {
                    persona: Persona::Office,
                    tone: Some(Tone::Polite),
                    character: None,
                },
                "Budget: Q3 / Q4?",
            )
            .unwrap();
        store
            .append_message(
                session.id,
                Role::User,
                "표를 보여 주세요",
                MessageStatus::Complete,
            )
            .unwrap();
        store
            .append_message(
                session.id,
                Role::Assistant,
                "| a | b |\n|---|---|\n| 1 | 2 |",
                MessageStatus::Interrupted,
            )
            .unwrap();
        let messages = store.messages(session.id).unwrap();
        let md = export_markdown(&session, &messages);
        assert!(md.starts_with("# Budget: Q3 / Q4?\n"), "{md}");
        assert!(md.contains("- Persona: office (polite)"));
        assert!(md.contains("## You · "));
        assert!(md.contains("표를 보여 주세요"));
        assert!(md.contains("| 1 | 2 |\n\n*(interrupted)*"));
        let json: serde_json::Value =
            serde_json::from_str(&export_json(&session, &messages).unwrap()).unwrap();
        assert_eq!(json["format"], "deskmate-session/1");
        assert_eq!(json["session"]["title"], "Budget: Q3 / Q4?");
        assert_eq!(json["messages"].as_array().unwrap().len(), 2);
        assert_eq!(json["messages"][1]["status"], "interrupted");
        assert_eq!(export_file_name(&session, "md"), "Budget_ Q3 _ Q4_.md");
    }

    #[test]
    fn times_in_exports_are_utc_calendar_dates() {
        assert_eq!(format_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_time(1_795_000_000_000), "2026-11-18 11:06 UTC");
        assert_eq!(format_time(951_782_400_000), "2000-02-29 00:00 UTC");
    }
}
