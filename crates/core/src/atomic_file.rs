//! Replacing files (the configuration, model install receipts, the vector index) so that a crash
//! or a full disk never leaves half of one under its name: the bytes go to a temporary file beside
//! it, are synced to disk, and the temporary file is then renamed over the old one. The temporary
//! name is unique to the process and the call (`NAME.<pid>-<n>.tmp`), so two processes saving
//! the same file at once never write into each other's temporary file; the last rename wins
//! whole.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `bytes` to `path` atomically; on failure the old file (if any) is unchanged.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with_mode(path, bytes, None)
}

/// [`write`] for a secret: the file is readable and writable by its owner only (0600 on Unix)
/// from the moment it exists, never after a window with wider permissions.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with_mode(path, bytes, Some(0o600))
}

fn write_with_mode(path: &Path, bytes: &[u8], mode: Option<u32>) -> std::io::Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut tmp = OsString::from(path.as_os_str());
    tmp.push(format!(
        ".{}-{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if let Some(mode) = mode {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn replaces_the_file_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, "old").unwrap();
        super::write(&path, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_write_that_cannot_create_its_temporary_file_fails_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // The target's directory does not exist, so the temporary file cannot be created.
        let path = dir.path().join("missing").join("config.json");
        assert!(super::write(&path, b"new").is_err());
        assert!(!path.exists());
    }
}
