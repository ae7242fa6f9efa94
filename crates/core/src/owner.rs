//! Which process holds a piece of shared work in the database.
//!
//! Several processes use one data folder at once (the window, `deskmate chat`, `deskmate
//! ingest`, several commands). Work that must be done by one of them at a time records its
//! owner's token in the database: `import_jobs.owner` for an import job (a job whose owner is
//! gone is *orphaned* and the next runner claims it, which is how an interrupted import
//! resumes), `messages.owner` for a reply being written (a session has one at a time; one whose
//! owner is gone was cut off and is marked interrupted).
//!
//! Liveness is an OS file lock, not a heartbeat: an owner holds an exclusive lock on
//! `<kind>/<token>.lock` beside the database for as long as it lives, and the OS releases it
//! when the process ends in any way (including `kill -9` and a power cut, after which the file
//! is stale). Another process that can take the lock knows the owner is gone. The lock is taken
//! before the token is ever written to the database, so a token found there whose lock cannot be
//! taken belongs to a live owner.
//!
//! Threading: an [`Owner`] is shared by its service's threads; the lock file is created once.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Error, Result};

pub(crate) struct Owner {
    dir: PathBuf,
    token: String,
    /// The locked file, created at the first claim.
    held: OnceLock<File>,
}

impl Owner {
    /// Import jobs' owners (`import_jobs.owner`).
    pub(crate) const IMPORTS: &'static str = "import-owners";
    /// Replies' writers (`messages.owner`).
    pub(crate) const REPLIES: &'static str = "reply-owners";

    /// An owner of `kind` (the folder of its lock files, beside the database at `db_path`);
    /// nothing is created until [`Owner::token`].
    pub(crate) fn new(db_path: &Path, kind: &str) -> Owner {
        let dir = db_path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(kind);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        // Unique per instance: the pid alone is reused, and one process (the tests, the
        // benchmark) may open several libraries or chats.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Owner {
            dir,
            token: format!("{}-{nanos:x}-{n}", std::process::id()),
            held: OnceLock::new(),
        }
    }

    /// This owner's token, with its lock held from here on.
    pub(crate) fn token(&self) -> Result<&str> {
        if self.held.get().is_none() {
            std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
            let path = self.lock_path(&self.token);
            // Another process's sweep may find the file between its creation and our lock,
            // take it for a dead owner's and remove it: our lock would then be on a file no
            // one can see, and our jobs would look orphaned. So the lock counts only once the
            // path still names the locked file; otherwise it is made again.
            let file = loop {
                let file = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
                    .map_err(|e| Error::io(&path, e))?;
                file.lock().map_err(|e| Error::io(&path, e))?;
                if names_same_file(&path, &file) {
                    break file;
                }
            };
            // Another thread of this service may have won the race; its file is the same one,
            // and a second handle's lock would block on the first, so only one is ever set.
            let _ = self.held.set(file);
            self.sweep();
        }
        Ok(&self.token)
    }

    /// Removes the lock files of owners that are gone (a killed process leaves its file; only
    /// the ones that still own a job are found through the database).
    fn sweep(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if let Some(token) = name.to_str().and_then(|n| n.strip_suffix(".lock")) {
                // Checking removes a dead owner's file.
                self.is_alive(token);
            }
        }
    }

    /// Whether `token` is this owner.
    pub(crate) fn is_me(&self, token: &str) -> bool {
        token == self.token
    }

    /// Whether the owner named `token` is still running. Its stale lock file is removed when it
    /// is not.
    pub(crate) fn is_alive(&self, token: &str) -> bool {
        if self.is_me(token) {
            return true;
        }
        // Tokens are ours (digits, hex, dashes); anything else never named a lock file.
        if token.is_empty() || !token.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return false;
        }
        let path = self.lock_path(token);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
            // Unknown: assume it lives rather than run its job twice.
            Err(_) => return true,
        };
        match file.try_lock() {
            Ok(()) => {
                let _ = std::fs::remove_file(&path);
                false
            }
            Err(TryLockError::WouldBlock) => true,
            Err(TryLockError::Error(_)) => true,
        }
    }

    fn lock_path(&self, token: &str) -> PathBuf {
        self.dir.join(format!("{token}.lock"))
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        if let Some(file) = self.held.take() {
            let _ = file.unlock();
            let _ = std::fs::remove_file(self.lock_path(&self.token));
        }
    }
}

/// Whether `path` still names the open `file` (it was not removed or replaced meanwhile).
#[cfg(unix)]
fn names_same_file(path: &Path, file: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(path), file.metadata()) {
        (Ok(named), Ok(held)) => named.dev() == held.dev() && named.ino() == held.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn names_same_file(path: &Path, _file: &File) -> bool {
    path.exists()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_is_alive_while_it_lives_and_gone_after_it_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("deskmate.sqlite3");
        let a = Owner::new(&db, Owner::IMPORTS);
        let b = Owner::new(&db, Owner::IMPORTS);
        let token = a.token().unwrap().to_owned();
        assert!(b.is_alive(&token), "a holds its lock");
        assert!(a.is_alive(&token));
        drop(a);
        assert!(!b.is_alive(&token), "a's lock went with it");
        assert!(
            !b.is_alive("12-ab-0"),
            "a token that never locked is not alive"
        );
        assert!(!b.is_alive("../../etc/passwd"), "not a token");
    }

    #[test]
    fn a_lock_file_left_by_a_process_that_ended_is_not_alive_and_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("deskmate.sqlite3");
        let owners = dir.path().join("import-owners");
        std::fs::create_dir_all(&owners).unwrap();
        // What `kill -9` leaves: the file, without its lock.
        std::fs::write(owners.join("99-ff-0.lock"), b"").unwrap();
        let b = Owner::new(&db, Owner::IMPORTS);
        assert!(!b.is_alive("99-ff-0"));
        assert!(!owners.join("99-ff-0.lock").exists());
        // A new owner clears the files of ended ones, and keeps the live ones.
        std::fs::write(owners.join("98-ee-0.lock"), b"").unwrap();
        let token = b.token().unwrap().to_owned();
        let c = Owner::new(&db, Owner::IMPORTS);
        c.token().unwrap();
        assert!(!owners.join("98-ee-0.lock").exists());
        assert!(owners.join(format!("{token}.lock")).exists());
    }
}
