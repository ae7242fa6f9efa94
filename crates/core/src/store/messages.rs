//! Messages and their attachments, and the reply being written: started with its writer in
//! one transaction ([`Store::begin_reply`]), finished, or found cut off.

use super::*;
use crate::error::ChatError;

impl Store {
    /// Appends a message and marks its session as just used, in one transaction.
    pub fn append_message(
        &mut self,
        session_id: i64,
        role: Role,
        content: &str,
        status: MessageStatus,
    ) -> Result<Message> {
        let now = now_ms();
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| store_err(&path, e))?;
        let touched = touch_session(&tx, session_id, now).map_err(|e| store_err(&path, e))?;
        found(touched, "session", session_id)?;
        tx.execute(
            "INSERT INTO messages (session_id, role, content, status, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![session_id, role.as_str(), content, status, now],
        )
        .map_err(|e| store_err(&path, e))?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(|e| store_err(&path, e))?;
        Ok(Message {
            id,
            session_id,
            role,
            content: content.to_owned(),
            status,
            error_code: None,
            suggestions: Vec::new(),
            sources: Vec::new(),
            attachments: Vec::new(),
            created_at: now,
        })
    }

    /// Appends a user message with its attachments, in one transaction: either all of it is
    /// stored or none.
    pub fn append_message_with_attachments(
        &mut self,
        session_id: i64,
        role: Role,
        content: &str,
        attachments: &[NewAttachment],
    ) -> Result<Message> {
        let now = now_ms();
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| store_err(&path, e))?;
        let touched = touch_session(&tx, session_id, now).map_err(|e| store_err(&path, e))?;
        found(touched, "session", session_id)?;
        let id = insert_message(&tx, session_id, role, content, None, attachments, now)
            .map_err(|e| store_err(&path, e))?;
        tx.commit().map_err(|e| store_err(&path, e))?;
        self.message(id)
    }

    /// The writers (`messages.owner`) of the replies being written in a session.
    pub fn reply_writers(&self, session_id: i64) -> Result<Vec<Option<String>>> {
        let streaming = streaming_replies(&self.conn, Some(session_id)).map_err(|e| self.err(e))?;
        Ok(streaming.into_iter().map(|(_, writer)| writer).collect())
    }

    /// Starts a reply in one write transaction, so that two writers (two processes, or two
    /// chats of one) never both start one in a session: a reply still `streaming` whose
    /// writer is alive (`writer_alive(owner)`) refuses with [`Error::Chat(ChatError::ReplyInProgress)`] and
    /// nothing is written; one whose writer is gone is marked interrupted (`app_closed`) first.
    /// Then `start` is stored (the user's message, or for a retry the replies after the last
    /// one deleted) with a `streaming` placeholder owned by `owner`.
    pub fn begin_reply(
        &mut self,
        session_id: i64,
        start: ReplyStart<'_>,
        owner: &str,
        writer_alive: &dyn Fn(&str) -> bool,
    ) -> Result<BegunReply> {
        let now = now_ms();
        let path = self.path.clone();
        let err = |e| store_err(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        for (id, writer) in streaming_replies(&tx, Some(session_id)).map_err(err)? {
            match writer {
                Some(writer) if writer_alive(&writer) => {
                    return Err(Error::Chat(ChatError::ReplyInProgress {
                        session: session_id,
                    }))
                }
                _ => {
                    mark_cut_off(&tx, id).map_err(err)?;
                }
            }
        }
        let touched = touch_session(&tx, session_id, now).map_err(err)?;
        found(touched, "session", session_id)?;
        let (user, replaced) = match start {
            ReplyStart::Message {
                text,
                attachments,
                title,
            } => {
                if let Some(title) = title {
                    tx.execute(
                        "UPDATE sessions SET title = ?2 WHERE id = ?1 AND title = '' AND title_is_auto = 1",
                        params![session_id, title],
                    )
                    .map_err(err)?;
                }
                let id = insert_message(&tx, session_id, Role::User, text, None, attachments, now)
                    .map_err(err)?;
                (Some(id), Vec::new())
            }
            ReplyStart::Retry => {
                let last_user: Option<i64> = tx
                    .query_row(
                        "SELECT max(id) FROM messages WHERE session_id = ?1 AND role = 'user'",
                        [session_id],
                        |r| r.get(0),
                    )
                    .map_err(err)?;
                let last_user = last_user.ok_or(Error::Chat(ChatError::NothingToRetry {
                    session: session_id,
                }))?;
                let replaced: Vec<i64> = {
                    let mut stmt = tx
                        .prepare(
                            "SELECT id FROM messages WHERE session_id = ?1 AND id > ?2 ORDER BY id",
                        )
                        .map_err(err)?;
                    let rows = stmt
                        .query_map([session_id, last_user], |r| r.get(0))
                        .map_err(err)?;
                    rows.collect::<rusqlite::Result<_>>().map_err(err)?
                };
                tx.execute(
                    "DELETE FROM messages WHERE session_id = ?1 AND id > ?2",
                    [session_id, last_user],
                )
                .map_err(err)?;
                (Some(last_user), replaced)
            }
        };
        let reply = insert_message(&tx, session_id, Role::Assistant, "", Some(owner), &[], now)
            .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(BegunReply {
            question: user.map(|id| self.message(id)).transpose()?,
            reply: self.message(reply)?,
            replaced,
        })
    }

    pub fn messages(&self, session_id: i64) -> Result<Vec<Message>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_id = ?1 ORDER BY id"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([session_id], message_from_row)
            .map_err(|e| self.err(e))?;
        let mut messages = rows
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))?;
        let mut attachments = self.attachments_where(
            "message_id IN (SELECT id FROM messages WHERE session_id = ?1)",
            session_id,
        )?;
        if !attachments.is_empty() {
            for m in &mut messages {
                let (mine, rest): (Vec<_>, Vec<_>) =
                    attachments.into_iter().partition(|a| a.message_id == m.id);
                m.attachments = mine;
                attachments = rest;
            }
        }
        Ok(messages)
    }

    pub fn message(&self, id: i64) -> Result<Message> {
        let mut message = self
            .conn
            .query_row(
                &format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1"),
                [id],
                message_from_row,
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or(Error::NotFound {
                what: "message",
                id,
            })?;
        message.attachments = self.attachments_where("message_id = ?1", id)?;
        Ok(message)
    }

    pub fn attachment(&self, id: i64) -> Result<Attachment> {
        self.attachments_where("id = ?1", id)?
            .pop()
            .ok_or(Error::NotFound {
                what: "attachment",
                id,
            })
    }

    /// The originals no message refers to any more, among `paths` (files shared by several
    /// messages are kept until the last one goes).
    pub fn unreferenced_attachment_files(&self, paths: &[String]) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT 1 FROM attachments WHERE stored_path = ?1 LIMIT 1")
            .map_err(|e| self.err(e))?;
        let mut unused = Vec::new();
        for p in paths {
            if !stmt.exists([p]).map_err(|e| self.err(e))? {
                unused.push(p.clone());
            }
        }
        Ok(unused)
    }

    /// Stored paths of the attachments of a session (to clean up after deleting it).
    pub fn session_attachment_files(&self, session_id: i64) -> Result<Vec<String>> {
        Ok(self
            .attachments_where(
                "message_id IN (SELECT id FROM messages WHERE session_id = ?1)",
                session_id,
            )?
            .into_iter()
            .map(|a| a.stored_path)
            .collect())
    }

    /// Records the text OCR read in an attached image (`""`: it has none).
    pub fn set_attachment_text(&self, id: i64, text: &str) -> Result<()> {
        let changed = self
            .conn
            .execute(
                "UPDATE attachments SET ocr_text = ?2 WHERE id = ?1",
                params![id, text],
            )
            .map_err(|e| self.err(e))?;
        if changed == 0 {
            return Err(Error::NotFound {
                what: "attachment",
                id,
            });
        }
        Ok(())
    }

    fn attachments_where(&self, condition: &str, value: i64) -> Result<Vec<Attachment>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT id, message_id, kind, file_name, mime, size_bytes, stored_path, width, height, thumbnail, created_at, ocr_text
                 FROM attachments WHERE {condition} ORDER BY id"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([value], |r| {
                let thumbnail: Option<Vec<u8>> = r.get(9)?;
                Ok(Attachment {
                    id: r.get(0)?,
                    message_id: r.get(1)?,
                    kind: r.get(2)?,
                    file_name: r.get(3)?,
                    mime: r.get(4)?,
                    size_bytes: r.get(5)?,
                    stored_path: r.get(6)?,
                    width: r.get(7)?,
                    height: r.get(8)?,
                    thumbnail: thumbnail.map(|png| png_data_url(&png)),
                    created_at: r.get(10)?,
                    text: r.get(11)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// Stores how a reply ended: its text, `complete` or `interrupted`, and why.
    pub fn finish_message(
        &mut self,
        id: i64,
        content: &str,
        status: MessageStatus,
        error_code: Option<&str>,
    ) -> Result<Message> {
        let changed = self
            .conn
            .execute(
                "UPDATE messages SET content = ?2, status = ?3, error_code = ?4, owner = NULL WHERE id = ?1",
                params![id, content, status, error_code],
            )
            .map_err(|e| self.err(e))?;
        found(changed, "message", id)?;
        self.message(id)
    }

    /// Deletes one message (a reply about to be regenerated); cards of it stay, detached.
    pub fn delete_message(&mut self, id: i64) -> Result<()> {
        let changed = self
            .conn
            .execute("DELETE FROM messages WHERE id = ?1", [id])
            .map_err(|e| self.err(e))?;
        found(changed, "message", id)
    }

    pub fn set_suggestions(&mut self, id: i64, suggestions: &[String]) -> Result<()> {
        let json = serde_json::to_string(suggestions).map_err(|e| Error::InvalidInput {
            field: "suggestions",
            message: e.to_string(),
        })?;
        self.conn
            .execute(
                "UPDATE messages SET suggestions = ?2 WHERE id = ?1",
                params![id, json],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn set_sources(&mut self, id: i64, sources: &[MessageSource]) -> Result<()> {
        let json = serde_json::to_string(sources).map_err(|e| Error::InvalidInput {
            field: "sources",
            message: e.to_string(),
        })?;
        let changed = self
            .conn
            .execute(
                "UPDATE messages SET sources = ?2 WHERE id = ?1",
                params![id, json],
            )
            .map_err(|e| self.err(e))?;
        found(changed, "message", id)
    }

    /// Marks replies left `streaming` by a writer that is gone (a process that ended
    /// mid-reply) as interrupted; returns how many. A reply another running process is writing
    /// is left alone.
    pub fn interrupt_unfinished_replies(
        &mut self,
        writer_alive: &dyn Fn(&str) -> bool,
    ) -> Result<usize> {
        let path = self.path.clone();
        let err = |e| store_err(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        let mut interrupted = 0;
        for (id, writer) in streaming_replies(&tx, None).map_err(err)? {
            if writer.as_deref().is_some_and(writer_alive) {
                continue;
            }
            interrupted += mark_cut_off(&tx, id).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(interrupted)
    }
}

/// The replies being written (`streaming`) with their writers (`messages.owner`): in one
/// session, or in all of them (`None`).
fn streaming_replies(
    conn: &Connection,
    session_id: Option<i64>,
) -> rusqlite::Result<Vec<(i64, Option<String>)>> {
    let mut stmt = conn.prepare(
        "SELECT id, owner FROM messages WHERE status = 'streaming' AND (?1 IS NULL OR session_id = ?1)",
    )?;
    let rows = stmt.query_map([session_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Marks a reply whose writer is gone as cut off (`interrupted`, `app_closed` unless it already
/// has a reason).
fn mark_cut_off(conn: &Connection, id: i64) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE messages SET status = 'interrupted', owner = NULL,
             error_code = coalesce(error_code, ?2) WHERE id = ?1",
        params![id, ErrorCode::AppClosed.as_str()],
    )
}

/// Inserts a message with its attachments; with an `owner` it is a `streaming` reply
/// placeholder, otherwise a `complete` message.
pub(super) fn insert_message(
    tx: &Transaction<'_>,
    session_id: i64,
    role: Role,
    content: &str,
    owner: Option<&str>,
    attachments: &[NewAttachment],
    now: i64,
) -> rusqlite::Result<i64> {
    let status = if owner.is_some() {
        MessageStatus::Streaming
    } else {
        MessageStatus::Complete
    };
    tx.execute(
        "INSERT INTO messages (session_id, role, content, status, owner, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![session_id, role.as_str(), content, status, owner, now],
    )?;
    let id = tx.last_insert_rowid();
    for a in attachments {
        tx.execute(
            "INSERT INTO attachments (message_id, kind, file_name, mime, size_bytes, stored_path, width, height, thumbnail, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                id,
                a.kind,
                a.file_name,
                a.mime,
                a.size_bytes as i64,
                a.stored_path.to_string_lossy(),
                a.width,
                a.height,
                a.thumbnail_png,
                now
            ],
        )?;
    }
    Ok(id)
}

pub(super) fn message_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Message> {
    let suggestions: String = r.get(7)?;
    Ok(Message {
        id: r.get(0)?,
        session_id: r.get(1)?,
        role: Role::parse(&r.get::<_, String>(2)?),
        content: r.get(3)?,
        status: r.get(4)?,
        created_at: r.get(5)?,
        error_code: r.get(6)?,
        // Written only by `set_suggestions`; an unreadable value is shown as no suggestions.
        suggestions: serde_json::from_str(&suggestions).unwrap_or_default(),
        // Written only by `set_sources`; likewise.
        sources: serde_json::from_str(&r.get::<_, String>(8)?).unwrap_or_default(),
        attachments: Vec::new(),
    })
}

/// A PNG as a `data:` URL, ready for an `<img>` in the window.
pub(crate) fn png_data_url(png: &[u8]) -> String {
    use base64::Engine as _;
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

pub(super) const MESSAGE_COLUMNS: &str =
    "id, session_id, role, content, status, created_at, error_code, suggestions, sources";
