//! Sessions: a conversation's persona, tone or character, and its title.

use super::*;

impl Store {
    pub fn create_session(&mut self, persona: Persona, title: &str) -> Result<Session> {
        self.create_session_with(&SessionSetup::of(persona), title)
    }

    /// A new session with its persona, tone and character; an empty `title` is filled in
    /// automatically later. A title given here counts as automatic too (it is the first line of
    /// the first message, refined by the model), so only `rename_session` makes it the user's.
    pub fn create_session_with(&mut self, setup: &SessionSetup, title: &str) -> Result<Session> {
        let profile_id = self.active_profile_id()?;
        let now = now_ms();
        let title = title.trim();
        let c = setup.character.as_ref();
        self.conn
            .execute(
                "INSERT INTO sessions (profile_id, title, title_is_auto, persona, tone, character_name,
                    character_greeting, character_context, created_at, updated_at)
                 VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6, ?7, ?8,
                    max(?8, coalesce((SELECT max(updated_at) + 1 FROM sessions WHERE profile_id = ?1), 0)))",
                params![
                    profile_id,
                    title,
                    setup.persona.as_str(),
                    setup.tone.map(Tone::as_str),
                    c.map(|c| c.name.as_str()),
                    c.map(|c| c.greeting.as_str()),
                    c.map(|c| c.context.as_str()),
                    now
                ],
            )
            .map_err(|e| self.err(e))?;
        self.session(self.conn.last_insert_rowid())
    }

    /// Changes who answers in a session from its next reply on.
    pub fn set_session_setup(&mut self, id: i64, setup: &SessionSetup) -> Result<Session> {
        let c = setup.character.as_ref();
        let changed = self
            .conn
            .execute(
                "UPDATE sessions SET persona = ?2, tone = ?3, character_name = ?4,
                    character_greeting = ?5, character_context = ?6 WHERE id = ?1",
                params![
                    id,
                    setup.persona.as_str(),
                    setup.tone.map(Tone::as_str),
                    c.map(|c| c.name.as_str()),
                    c.map(|c| c.greeting.as_str()),
                    c.map(|c| c.context.as_str()),
                ],
            )
            .map_err(|e| self.err(e))?;
        found(changed, "session", id)?;
        self.session(id)
    }

    /// Sets an automatic title unless the user has renamed the session meanwhile; returns
    /// whether it was set.
    pub fn set_auto_title(&mut self, id: i64, title: &str) -> Result<bool> {
        let title = title.trim();
        if title.is_empty() {
            return Ok(false);
        }
        let changed = self
            .conn
            .execute(
                "UPDATE sessions SET title = ?2 WHERE id = ?1 AND title_is_auto = 1",
                params![id, title],
            )
            .map_err(|e| self.err(e))?;
        Ok(changed > 0)
    }

    pub fn session(&self, id: i64) -> Result<Session> {
        self.conn
            .query_row(
                "SELECT id, profile_id, title, title_is_auto, persona, created_at, updated_at, tone, character_name, character_greeting, character_context FROM sessions WHERE id = ?1",
                [id],
                session_from_row,
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or(Error::NotFound { what: "session", id })
    }

    /// The active profile's sessions, most recently used first; `search` filters titles by substring.
    pub fn sessions(&self, search: Option<&str>) -> Result<Vec<Session>> {
        let profile_id = self.active_profile_id()?;
        let pattern = format!("%{}%", escape_like(search.unwrap_or("").trim()));
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, profile_id, title, title_is_auto, persona, created_at, updated_at, tone, character_name, character_greeting, character_context FROM sessions
                 WHERE profile_id = ?1 AND title LIKE ?2 ESCAPE '\\'
                 ORDER BY updated_at DESC, id DESC",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![profile_id, pattern], session_from_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// Renames one session; a user-given title is never replaced by an automatic one.
    pub fn rename_session(&mut self, id: i64, title: &str) -> Result<Session> {
        let title = title.trim();
        if title.is_empty() {
            return Err(Error::InvalidInput {
                field: "title",
                message: "must not be empty".to_owned(),
            });
        }
        let changed = self
            .conn
            .execute(
                "UPDATE sessions SET title = ?2, title_is_auto = 0 WHERE id = ?1",
                params![id, title],
            )
            .map_err(|e| self.err(e))?;
        found(changed, "session", id)?;
        self.session(id)
    }

    /// Deletes a session with its messages and attachments; its cards stay, detached.
    pub fn delete_session(&mut self, id: i64) -> Result<()> {
        let changed = self
            .conn
            .execute("DELETE FROM sessions WHERE id = ?1", [id])
            .map_err(|e| self.err(e))?;
        found(changed, "session", id)
    }
}

/// Moves a session to the top of its profile's list. `updated_at` is a recency stamp rather than
/// a plain clock reading: two writes in the same millisecond must still order, so the stamp is
/// at least one past the profile's newest.
pub(super) fn touch_session(
    tx: &Transaction<'_>,
    session_id: i64,
    now: i64,
) -> rusqlite::Result<usize> {
    tx.execute(
        "UPDATE sessions SET updated_at = max(?2,
            (SELECT max(s.updated_at) + 1 FROM sessions s WHERE s.profile_id = sessions.profile_id))
         WHERE id = ?1",
        params![session_id, now],
    )
}

pub(super) fn session_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        id: r.get(0)?,
        profile_id: r.get(1)?,
        title: r.get(2)?,
        title_is_auto: r.get(3)?,
        persona: Persona::parse(&r.get::<_, String>(4)?),
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
        tone: r
            .get::<_, Option<String>>(7)?
            .as_deref()
            .and_then(Tone::parse),
        character: match r.get::<_, Option<String>>(8)? {
            Some(name) => Some(Character {
                name,
                greeting: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
                context: r.get::<_, Option<String>>(10)?.unwrap_or_default(),
            }),
            None => None,
        },
    })
}
