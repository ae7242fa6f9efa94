//! Profiles: who uses Deskmate, with a clearance for documents; one is active and its
//! sessions, cards and clearance are in use.

use super::*;

impl Store {
    /// The profile whose sessions, cards and document clearance are in use.
    pub fn active_profile_id(&self) -> Result<i64> {
        let value: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM settings WHERE key = 'active_profile_id'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(value.and_then(|v| v.parse().ok()).unwrap_or(1))
    }

    /// The active profile, whose clearance filters every document search and grounded answer.
    pub fn active_profile(&self) -> Result<Profile> {
        let id = self.active_profile_id()?;
        self.conn
            .query_row(
                "SELECT id, name, clearance, created_at FROM profiles WHERE id = ?1",
                [id],
                profile_from_row,
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or(Error::NotFound {
                what: "profile",
                id,
            })
    }

    pub fn profiles(&self) -> Result<Vec<Profile>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, name, clearance, created_at FROM profiles ORDER BY id")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], profile_from_row)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>());
        rows.map_err(|e| self.err(e))
    }

    pub fn create_profile(&mut self, name: &str, clearance: AccessLevel) -> Result<Profile> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 40 {
            return Err(Error::InvalidInput {
                field: "profile.name",
                message: "a profile name is 1 to 40 characters".to_owned(),
            });
        }
        let taken: bool = self
            .conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM profiles WHERE name = ?1)",
                [name],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        if taken {
            return Err(Error::InvalidInput {
                field: "profile.name",
                message: format!("a profile named \"{name}\" already exists"),
            });
        }
        self.conn
            .execute(
                "INSERT INTO profiles (name, clearance, created_at) VALUES (?1, ?2, ?3)",
                params![name, clearance as i64, now_ms()],
            )
            .map_err(|e| self.err(e))?;
        let id = self.conn.last_insert_rowid();
        self.conn
            .query_row(
                "SELECT id, name, clearance, created_at FROM profiles WHERE id = ?1",
                [id],
                profile_from_row,
            )
            .map_err(|e| self.err(e))
    }

    pub fn set_active_profile(&mut self, id: i64) -> Result<Profile> {
        let exists: bool = self
            .conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM profiles WHERE id = ?1)",
                [id],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        found(usize::from(exists), "profile", id)?;
        self.conn
            .execute(
                "INSERT INTO settings (key, value) VALUES ('active_profile_id', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [id.to_string()],
            )
            .map_err(|e| self.err(e))?;
        self.active_profile()
    }

    /// Deletes a profile with its sessions and cards. The active profile cannot be deleted, so
    /// there is always one in use.
    pub fn delete_profile(&mut self, id: i64) -> Result<()> {
        if id == self.active_profile_id()? {
            return Err(Error::InvalidInput {
                field: "profile",
                message: "the active profile cannot be deleted; switch to another first".to_owned(),
            });
        }
        let changed = self
            .conn
            .execute("DELETE FROM profiles WHERE id = ?1", [id])
            .map_err(|e| self.err(e))?;
        found(changed, "profile", id)
    }
}
