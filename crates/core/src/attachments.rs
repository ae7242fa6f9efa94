//! Images attached to messages: staged when the user attaches them, linked when the message is
//! sent.
//!
//! Storage: the data directory's `attachments/` folder holds, per image, `<sha256>.<ext>` (the
//! original bytes, unchanged), `<sha256>.thumb.png` and `<sha256>.json` (what [`vision`] found:
//! format, size, the scale the model sees). Files are named by content, so attaching one image
//! twice stores it once and a draft id cannot name anything outside the folder (it must be 64
//! hex digits). Every file is written atomically. The database row of a sent attachment keeps
//! its own copy of the thumbnail, so sessions show without reading the folder.
//!
//! Validation happens at attach time ([`AttachmentStore::stage_image`]), so a bad image is
//! refused before the user sends anything; sending only links what was staged.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::store::NewAttachment;
use crate::vision::{self, ImageFormatKind, ImageInfo, ImageLimits};

/// What the UI shows for an attached image before the message is sent.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ImageDraft {
    /// The sha256 of the original; what `Chat::send` takes.
    pub id: String,
    pub name: String,
    pub mime: &'static str,
    pub size_bytes: u64,
    pub width: u32,
    pub height: u32,
    pub model_width: u32,
    pub model_height: u32,
    /// `data:image/png;base64,…`
    pub thumbnail: String,
    /// Something the user should know (a GIF's other frames are not used).
    pub note: Option<String>,
}

pub struct AttachmentStore {
    dir: PathBuf,
    limits: ImageLimits,
    model_side: u32,
}

impl AttachmentStore {
    pub fn new(dir: impl Into<PathBuf>) -> AttachmentStore {
        AttachmentStore {
            dir: dir.into(),
            limits: ImageLimits::default(),
            model_side: vision::DEFAULT_MODEL_SIDE,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Validates an image (format, limits, a full decode) and stores it as a draft.
    pub fn stage_image(&self, name: &str, bytes: &[u8]) -> Result<ImageDraft> {
        let prepared = vision::prepare_bytes(name, bytes, &self.limits, self.model_side)?;
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let id = prepared.sha256.clone();
        let original = self.original_path(&id, prepared.info.format.extension());
        if !original.is_file() {
            write(&original, &prepared.original)?;
        }
        write(&self.thumbnail_path(&id), &prepared.thumbnail_png)?;
        let info = serde_json::to_vec(&prepared.info).map_err(|e| Error::InvalidInput {
            field: "image",
            message: e.to_string(),
        })?;
        write(&self.info_path(&id), &info)?;
        Ok(draft(&id, &prepared.info, &prepared.thumbnail_png))
    }

    /// The staged images named by `ids`, ready to be stored with a message.
    pub fn resolve(&self, ids: &[String]) -> Result<Vec<NewAttachment>> {
        ids.iter().map(|id| self.resolve_one(id)).collect()
    }

    fn resolve_one(&self, id: &str) -> Result<NewAttachment> {
        let missing = || Error::AttachmentMissing { id: id.to_owned() };
        if !is_sha256(id) {
            return Err(missing());
        }
        let info: StagedInfo = std::fs::read(self.info_path(id))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(missing)?;
        let original = self.original_path(id, info.format.extension());
        if !original.is_file() {
            return Err(missing());
        }
        let thumbnail = std::fs::read(self.thumbnail_path(id)).ok();
        Ok(NewAttachment {
            kind: "image",
            file_name: info.name,
            mime: info.mime,
            size_bytes: info.size_bytes,
            stored_path: original,
            width: Some(info.width),
            height: Some(info.height),
            thumbnail_png: thumbnail,
        })
    }

    fn original_path(&self, id: &str, extension: &str) -> PathBuf {
        self.dir.join(format!("{id}.{extension}"))
    }

    fn thumbnail_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.thumb.png"))
    }

    fn info_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Removes the files of an original no message refers to any more (after a session was
    /// deleted). `stored_paths` are the paths as the store gives them.
    pub fn remove_files(&self, stored_paths: &[String]) {
        for stored in stored_paths {
            let original = Path::new(stored);
            // Only files of this folder, named as this module names them.
            let Some(id) = original
                .file_stem()
                .and_then(|s| s.to_str())
                .filter(|s| is_sha256(s))
            else {
                continue;
            };
            if original.parent() != Some(self.dir.as_path()) {
                continue;
            }
            for path in [
                original.to_path_buf(),
                self.thumbnail_path(id),
                self.info_path(id),
            ] {
                if let Err(e) = std::fs::remove_file(&path) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!("{}: not removed: {e}", path.display());
                    }
                }
            }
        }
    }
}

/// The part of [`ImageInfo`] read back at send time.
#[derive(serde::Deserialize)]
struct StagedInfo {
    name: String,
    mime: String,
    size_bytes: u64,
    width: u32,
    height: u32,
    format: ImageFormatKind,
}

fn draft(id: &str, info: &ImageInfo, thumbnail_png: &[u8]) -> ImageDraft {
    use base64::Engine as _;
    ImageDraft {
        id: id.to_owned(),
        name: info.name.clone(),
        mime: info.mime,
        size_bytes: info.size_bytes,
        width: info.width,
        height: info.height,
        model_width: info.model_width,
        model_height: info.model_height,
        thumbnail: format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(thumbnail_png)
        ),
        note: info.frames_note.clone(),
    }
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::atomic_file::write(path, bytes).map_err(|e| Error::io(path, e))
}
