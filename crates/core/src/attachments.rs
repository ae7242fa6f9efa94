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

use crate::error::{ChatError, VisionError};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::store::{png_data_url, NewAttachment};
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

    /// [`AttachmentStore::stage_image`] for a file (dropped on the window): its size is checked
    /// before it is read.
    pub fn stage_image_file(&self, path: &Path) -> Result<ImageDraft> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let size = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len();
        if size > self.limits.max_file_bytes {
            return Err(Error::Vision(VisionError::ImageTooLarge {
                name,
                reason: format!(
                    "the file is {size} bytes, over the limit of {} bytes",
                    self.limits.max_file_bytes
                ),
            }));
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        self.stage_image(&name, &bytes)
    }

    /// The staged images named by `ids`, ready to be stored with a message.
    pub fn resolve(&self, ids: &[String]) -> Result<Vec<NewAttachment>> {
        ids.iter().map(|id| self.resolve_one(id)).collect()
    }

    fn resolve_one(&self, id: &str) -> Result<NewAttachment> {
        let missing = || Error::Chat(ChatError::AttachmentMissing { id: id.to_owned() });
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
    ImageDraft {
        id: id.to_owned(),
        name: info.name.clone(),
        mime: info.mime,
        size_bytes: info.size_bytes,
        width: info.width,
        height: info.height,
        model_width: info.model_width,
        model_height: info.model_height,
        thumbnail: png_data_url(thumbnail_png),
        note: info.frames_note.clone(),
    }
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::atomic_file::write(path, bytes).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::store::{Persona, Role, Store};

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        });
        let mut bytes = Vec::new();
        image
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )
            .unwrap();
        bytes
    }

    #[test]
    fn a_staged_image_is_stored_with_its_message_and_comes_back_with_a_thumbnail() {
        let dir = tempfile::tempdir().unwrap();
        let files = AttachmentStore::new(dir.path().join("attachments"));
        let bytes = png(1200, 600);
        let draft = files.stage_image("회의 사진.png", &bytes).unwrap();
        assert_eq!((draft.width, draft.height), (1200, 600));
        assert_eq!((draft.model_width, draft.model_height), (896, 448));
        assert!(draft.thumbnail.starts_with("data:image/png;base64,"));
        // Staging the same picture again reuses it.
        assert_eq!(files.stage_image("copy.png", &bytes).unwrap().id, draft.id);

        let mut store = Store::open(&dir.path().join("deskmate.sqlite3")).unwrap();
        let session = store.create_session(Persona::Office, "t").unwrap();
        let resolved = files.resolve(std::slice::from_ref(&draft.id)).unwrap();
        let message = store
            .append_message_with_attachments(session.id, Role::User, "이 사진 봐 주세요", &resolved)
            .unwrap();
        assert_eq!(message.attachments.len(), 1);
        let listed = store.messages(session.id).unwrap();
        let attachment = &listed[0].attachments[0];
        assert_eq!(
            attachment.file_name, "copy.png",
            "the name of the last staging"
        );
        assert_eq!(attachment.mime, "image/png");
        assert_eq!(
            (attachment.width, attachment.height),
            (Some(1200), Some(600))
        );
        assert!(attachment
            .thumbnail
            .as_deref()
            .is_some_and(|t| t.starts_with("data:image/png;base64,")));
        assert_eq!(std::fs::read(&attachment.stored_path).unwrap(), bytes);
    }

    #[test]
    fn an_unknown_or_malicious_draft_id_is_refused_and_nothing_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let files = AttachmentStore::new(dir.path().join("attachments"));
        for id in ["../../etc/passwd", "abc", &"0".repeat(64)] {
            let err = files.resolve(&[id.to_owned()]).unwrap_err();
            assert_eq!(err.code(), "attachment_missing", "{id}");
        }
    }

    #[test]
    fn a_bad_image_is_refused_at_attach_time_and_leaves_no_files() {
        let dir = tempfile::tempdir().unwrap();
        let files = AttachmentStore::new(dir.path().join("attachments"));
        let err = files.stage_image("notes.txt", b"just text").unwrap_err();
        assert_eq!(err.code(), "image_unsupported");
        assert!(!dir.path().join("attachments").exists());
    }

    #[test]
    fn deleting_a_session_removes_the_images_only_it_used() {
        let dir = tempfile::tempdir().unwrap();
        let files = AttachmentStore::new(dir.path().join("attachments"));
        let shared = files.stage_image("shared.png", &png(40, 30)).unwrap();
        let own = files.stage_image("own.png", &png(30, 40)).unwrap();
        let mut store = Store::open(&dir.path().join("deskmate.sqlite3")).unwrap();
        let a = store.create_session(Persona::Office, "a").unwrap();
        let b = store.create_session(Persona::Office, "b").unwrap();
        let both = files.resolve(&[shared.id.clone(), own.id.clone()]).unwrap();
        store
            .append_message_with_attachments(a.id, Role::User, "two", &both)
            .unwrap();
        let one = files.resolve(std::slice::from_ref(&shared.id)).unwrap();
        store
            .append_message_with_attachments(b.id, Role::User, "one", &one)
            .unwrap();

        let stored = store.session_attachment_files(a.id).unwrap();
        store.delete_session(a.id).unwrap();
        let unused = store.unreferenced_attachment_files(&stored).unwrap();
        files.remove_files(&unused);

        assert!(files.resolve(std::slice::from_ref(&shared.id)).is_ok());
        assert_eq!(
            files
                .resolve(std::slice::from_ref(&own.id))
                .unwrap_err()
                .code(),
            "attachment_missing"
        );
        assert_eq!(store.messages(b.id).unwrap()[0].attachments.len(), 1);
    }

    #[test]
    fn a_dropped_file_is_staged_by_path_and_a_missing_or_oversized_one_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = AttachmentStore::new(dir.path().join("attachments"));
        let photo = dir.path().join("photo.png");
        std::fs::write(&photo, png(64, 48)).unwrap();
        let draft = files.stage_image_file(&photo).unwrap();
        assert_eq!((draft.name.as_str(), draft.width), ("photo.png", 64));

        let err = files
            .stage_image_file(&dir.path().join("gone.png"))
            .unwrap_err();
        assert_eq!(err.code(), "io");
        assert!(err.to_string().contains("gone.png"), "{err}");

        files.limits.max_file_bytes = 100;
        let err = files.stage_image_file(&photo).unwrap_err();
        assert_eq!(err.code(), "image_too_large");
        assert!(err.to_string().contains("photo.png"), "{err}");
    }
}
