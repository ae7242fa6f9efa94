//! Cards: saved messages, with a copy of their text and session title so that they outlive
//! both.

use super::*;

impl Store {
    /// Saves a message as a card, copying its text and its session's title so the card outlives them.
    pub fn save_card(&mut self, message_id: i64, note: &str) -> Result<Card> {
        let now = now_ms();
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| store_err(&path, e))?;
        let source: Option<(i64, i64, String, String, String)> = tx
            .query_row(
                "SELECT m.session_id, s.profile_id, s.title, m.role, m.content
                 FROM messages m JOIN sessions s ON s.id = m.session_id WHERE m.id = ?1",
                [message_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()
            .map_err(|e| store_err(&path, e))?;
        let Some((session_id, profile_id, session_title, role, content)) = source else {
            return Err(Error::NotFound {
                what: "message",
                id: message_id,
            });
        };
        tx.execute(
            "INSERT INTO cards (profile_id, message_id, session_id, session_title, role, content, note, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![profile_id, message_id, session_id, session_title, role, content, note.trim(), now],
        )
        .map_err(|e| store_err(&path, e))?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(|e| store_err(&path, e))?;
        Ok(Card {
            id,
            message_id: Some(message_id),
            session_id: Some(session_id),
            session_title,
            role,
            content,
            note: note.trim().to_owned(),
            created_at: now,
        })
    }

    /// The active profile's cards, newest first; `search` matches text, note or session title.
    pub fn cards(&self, search: Option<&str>) -> Result<Vec<Card>> {
        let profile_id = self.active_profile_id()?;
        let pattern = format!("%{}%", escape_like(search.unwrap_or("").trim()));
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, message_id, session_id, session_title, role, content, note, created_at FROM cards
                 WHERE profile_id = ?1
                   AND (content LIKE ?2 ESCAPE '\\' OR note LIKE ?2 ESCAPE '\\' OR session_title LIKE ?2 ESCAPE '\\')
                 ORDER BY created_at DESC, id DESC",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![profile_id, pattern], |r| {
                Ok(Card {
                    id: r.get(0)?,
                    message_id: r.get(1)?,
                    session_id: r.get(2)?,
                    session_title: r.get(3)?,
                    role: r.get(4)?,
                    content: r.get(5)?,
                    note: r.get(6)?,
                    created_at: r.get(7)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    pub fn delete_card(&mut self, id: i64) -> Result<()> {
        let changed = self
            .conn
            .execute("DELETE FROM cards WHERE id = ?1", [id])
            .map_err(|e| self.err(e))?;
        found(changed, "card", id)
    }
}
