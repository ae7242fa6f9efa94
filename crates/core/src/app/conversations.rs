//! The chat use cases of [`App`]: sessions, turns, cards and profiles.
//!
//! A turn is started here, on a thread of its own; the front end only forwards its events
//! (the window to the page's channel, the CLI to the terminal).

use serde::Serialize;

use super::App;
use crate::chat::{self, ChatEvent, TurnStart};
use crate::store::{AccessLevel, Card, Message, Profile, Session, SessionSetup};
use crate::{Error, Result};

/// A session with its messages, as the chat page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct OpenSession {
    pub session: Session,
    pub messages: Vec<Message>,
    /// A reply is being written in it now by this process (a turn started earlier).
    pub replying: bool,
}

/// The profiles and which one is active.
#[derive(Debug, Clone, Serialize)]
pub struct Profiles {
    pub active: i64,
    pub profiles: Vec<Profile>,
}

/// A message to send, as a front end receives it.
#[derive(Debug, Clone)]
pub struct SendMessage {
    /// The session to continue; `None` starts a new one set up as `setup`.
    pub session_id: Option<i64>,
    pub setup: SessionSetup,
    pub text: String,
    /// Ids of images staged with [`App::attach_image`].
    pub attachments: Vec<String>,
    /// User turns of history sent with the message (`None`: all that fit).
    pub history_turns: Option<usize>,
}

/// A session written out for saving: the text, and the file name and type to offer.
#[derive(Debug, Clone)]
pub struct SessionExport {
    pub text: String,
    pub file_name: String,
    pub extension: &'static str,
    /// The file type's name in a save dialog.
    pub kind: &'static str,
}

impl SessionExport {
    /// Writes the export to `path`.
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        std::fs::write(path, &self.text).map_err(|e| Error::io(path, e))
    }
}

impl App {
    /// The active profile's sessions, most recent first; `search` matches titles and messages.
    pub fn sessions(&self, search: Option<&str>) -> Result<Vec<Session>> {
        self.store()?.sessions(search)
    }

    pub fn open_session(&self, id: i64) -> Result<OpenSession> {
        let chat = self.chat()?;
        let store = self.store()?;
        Ok(OpenSession {
            session: store.session(id)?,
            messages: store.messages(id)?,
            replying: chat.is_replying(id),
        })
    }

    /// A new, empty session (a character's greeting is its first message).
    pub fn create_session(&self, setup: &SessionSetup) -> Result<OpenSession> {
        let (session, messages) = chat::create_session(&mut *self.store()?, setup)?;
        Ok(OpenSession {
            session,
            messages,
            replying: false,
        })
    }

    pub fn set_session_setup(&self, id: i64, setup: &SessionSetup) -> Result<Session> {
        let setup = chat::validate_setup(setup)?;
        self.store()?.set_session_setup(id, &setup)
    }

    pub fn rename_session(&self, id: i64, title: &str) -> Result<Session> {
        self.store()?.rename_session(id, title)
    }

    /// Deletes a session and its messages (a running reply is stopped first) and the image
    /// files no other message uses; its cards stay.
    pub fn delete_session(&self, id: i64) -> Result<()> {
        let chat = self.chat()?;
        chat.stop(id);
        chat.delete_session(id, &self.media.attachments)
    }

    /// The session as Markdown (`format` "markdown") or JSON ("json").
    pub fn export_session(&self, id: i64, format: &str) -> Result<SessionExport> {
        let (session, messages) = {
            let store = self.store()?;
            (store.session(id)?, store.messages(id)?)
        };
        let (text, extension, kind) = match format {
            "markdown" => (chat::export_markdown(&session, &messages), "md", "Markdown"),
            "json" => (chat::export_json(&session, &messages)?, "json", "JSON"),
            other => {
                return Err(Error::InvalidInput {
                    field: "format",
                    message: format!("expected markdown or json, got {other:?}"),
                })
            }
        };
        Ok(SessionExport {
            file_name: chat::export_file_name(&session, extension),
            text,
            extension,
            kind,
        })
    }

    /// Stores the message (in a new session when it names none) and starts the reply on a
    /// thread of its own; every [`ChatEvent`] goes to `on_event`, `done` last. Returns at once
    /// with what was stored. Refused, with nothing stored, when the message is over
    /// `chat.max_message_chars` or a reply is being written in the session (by any process).
    pub fn send(
        &self,
        message: SendMessage,
        on_event: impl FnMut(ChatEvent) + Send + 'static,
    ) -> Result<TurnStart> {
        let chat = self.chat()?;
        let images = self.media.attachments.resolve(&message.attachments)?;
        let turn = chat.send_with_attachments(
            message.session_id,
            &message.setup,
            &message.text,
            images,
            self.turn_options(message.history_turns),
        )?;
        start_turn(turn, on_event)
    }

    /// Writes the session's last reply again, as [`App::send`] writes one.
    pub fn retry(
        &self,
        session_id: i64,
        history_turns: Option<usize>,
        on_event: impl FnMut(ChatEvent) + Send + 'static,
    ) -> Result<TurnStart> {
        let turn = self
            .chat()?
            .retry(session_id, self.turn_options(history_turns))?;
        start_turn(turn, on_event)
    }

    /// Stops the reply being written in a session; false when none was.
    pub fn stop(&self, session_id: i64) -> bool {
        self.chat().is_ok_and(|chat| chat.stop(session_id))
    }

    // --- cards ---

    pub fn cards(&self, search: Option<&str>) -> Result<Vec<Card>> {
        self.store()?.cards(search)
    }

    pub fn save_card(&self, message_id: i64, note: &str) -> Result<Card> {
        self.store()?.save_card(message_id, note)
    }

    pub fn delete_card(&self, id: i64) -> Result<()> {
        self.store()?.delete_card(id)
    }

    // --- profiles ---

    pub fn profiles(&self) -> Result<Profiles> {
        let store = self.store()?;
        Ok(Profiles {
            active: store.active_profile_id()?,
            profiles: store.profiles()?,
        })
    }

    pub fn create_profile(&self, name: &str, clearance: AccessLevel) -> Result<Profile> {
        self.store()?.create_profile(name, clearance)
    }

    /// Switches the active profile: its sessions, cards and document clearance.
    pub fn activate_profile(&self, id: i64) -> Result<Profile> {
        self.store()?.set_active_profile(id)
    }

    pub fn delete_profile(&self, id: i64) -> Result<()> {
        self.store()?.delete_profile(id)
    }
}

/// Runs a stored turn on a thread of its own; a turn that cannot start frees its session.
fn start_turn(
    turn: chat::Turn,
    mut on_event: impl FnMut(ChatEvent) + Send + 'static,
) -> Result<TurnStart> {
    let start = turn.start().clone();
    std::thread::Builder::new()
        .name("deskmate-chat-turn".into())
        .spawn(move || turn.run(&mut on_event))
        .map_err(|e| Error::Internal {
            what: "the reply thread",
            reason: e.to_string(),
        })?;
    Ok(start)
}
