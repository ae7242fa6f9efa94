//! Voice and image input use cases of [`App`]: push-to-talk, audio files, image attachments.
//!
//! A recording lives between [`App::voice_start`] and [`App::voice_stop`] /
//! [`App::voice_cancel`]; its levels go to the callback given at the start. Transcription and
//! image decoding block: call them off the async runtime.

use crate::error::VoiceError;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde::Serialize;

use super::App;
use crate::attachments::{AttachmentStore, ImageDraft};
use crate::config::{Config, SpeechLanguage};
use crate::paths::Paths;
use crate::store::Persona;
use crate::voice::capture::{AudioInput, CpalInput, FileInput, InputFormat, Recording};
use crate::voice::{audio, SpeechRecognizer, Transcript};
use crate::{Error, Result};

/// Voice and image state.
pub(super) struct Media {
    pub(super) attachments: AttachmentStore,
    /// Replaced when the speech settings change.
    speech: RwLock<Arc<SpeechRecognizer>>,
    input: Arc<dyn AudioInput>,
    recording: Mutex<Option<Recording>>,
}

impl Media {
    pub(super) fn new(paths: &Paths, config: &Config) -> Media {
        Media {
            attachments: AttachmentStore::new(&paths.attachments_dir),
            speech: RwLock::new(Arc::new(SpeechRecognizer::new(
                &config.speech,
                &paths.models_dir,
            ))),
            input: audio_input(),
            recording: Mutex::new(None),
        }
    }

    /// After the speech model or its language changed.
    pub(super) fn reconfigure(&self, paths: &Paths, config: &Config) {
        let fresh = Arc::new(SpeechRecognizer::new(&config.speech, &paths.models_dir));
        *self.speech.write().unwrap_or_else(PoisonError::into_inner) = fresh;
    }

    fn speech(&self) -> Arc<SpeechRecognizer> {
        Arc::clone(&self.speech.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn take_recording(&self) -> Option<Recording> {
        self.recording
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// The microphone, or for tests on machines without one (`DESKMATE_TEST_MICROPHONE=FILE`) an
/// audio file played in real time as if spoken into a microphone.
fn audio_input() -> Arc<dyn AudioInput> {
    match std::env::var_os("DESKMATE_TEST_MICROPHONE") {
        Some(file) if !file.is_empty() => Arc::new(FileInput::new(PathBuf::from(file))),
        _ => Arc::new(CpalInput),
    }
}

/// Whether push-to-talk can work now, and why not.
#[derive(Debug, Clone, Serialize)]
pub struct VoiceStatus {
    pub ready: bool,
    /// Why the microphone button is disabled: the speech model first (without it the
    /// microphone is of no use), then the input device.
    pub problem: Option<Error>,
    pub device: Option<String>,
    pub model: String,
}

/// Whether a persona's model sees images.
#[derive(Debug, Clone, Serialize)]
pub struct VisionSupport {
    pub can_see: bool,
    pub reason: Option<Error>,
}

impl App {
    pub fn voice_status(&self) -> VoiceStatus {
        let speech = self.media.speech();
        let device = self.media.input.probe();
        let problem = speech
            .check()
            .err()
            .or_else(|| device.as_ref().err().cloned());
        VoiceStatus {
            ready: problem.is_none(),
            problem,
            device: device.ok().map(|d| d.device),
            model: speech.model_path().display().to_string(),
        }
    }

    /// Starts a push-to-talk recording from the default input device; `on_level` gets its
    /// loudness (dBFS) as it records. A recording already running is thrown away (a lost
    /// pointer-up: the new press wins).
    pub fn voice_start(&self, on_level: impl Fn(f32) + Send + 'static) -> Result<InputFormat> {
        self.media.speech().check()?;
        let mut slot = self
            .media
            .recording
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = slot.take() {
            old.cancel();
        }
        let recording = Recording::start(Arc::clone(&self.media.input), on_level)?;
        let format = recording.format().clone();
        *slot = Some(recording);
        Ok(format)
    }

    /// Ends the recording and transcribes it.
    pub fn voice_stop(&self, language: Option<SpeechLanguage>) -> Result<Transcript> {
        let recording = self
            .media
            .take_recording()
            .ok_or(Error::Voice(VoiceError::NotRecording))?;
        self.media.speech().transcribe(recording.stop()?, language)
    }

    /// Throws away the recording or stops the transcription in flight.
    pub fn voice_cancel(&self) {
        if let Some(recording) = self.media.take_recording() {
            recording.cancel();
        }
        self.media.speech().cancel();
    }

    /// Transcribes an audio file's bytes (`name` gives its type).
    pub fn transcribe_bytes(
        &self,
        name: &str,
        bytes: Vec<u8>,
        language: Option<SpeechLanguage>,
    ) -> Result<Transcript> {
        let samples = audio::decode_bytes(name, bytes)?;
        self.media.speech().transcribe(samples, language)
    }

    pub fn transcribe_file(
        &self,
        path: &Path,
        language: Option<SpeechLanguage>,
    ) -> Result<Transcript> {
        self.media.speech().transcribe_file(path, language)
    }

    /// Checks an image and stages it; the draft's id goes with [`App::send`].
    pub fn attach_image(&self, name: &str, bytes: &[u8]) -> Result<ImageDraft> {
        self.media.attachments.stage_image(name, bytes)
    }

    pub fn attach_image_file(&self, path: &Path) -> Result<ImageDraft> {
        self.media.attachments.stage_image_file(path)
    }

    /// Whether the persona's model sees images (asked before sending, for the notice).
    pub fn vision_support(&self, persona: Persona) -> Result<VisionSupport> {
        let support = self.engine()?.vision_support(persona);
        Ok(VisionSupport {
            can_see: support.is_ok(),
            reason: support.err(),
        })
    }
}

impl SpeechLanguage {
    /// The language a front end names: `ko`, `en`, `auto`; none (or empty) is the configured.
    pub fn from_code(code: Option<&str>) -> Result<Option<SpeechLanguage>> {
        match code {
            None | Some("") => Ok(None),
            Some("ko") => Ok(Some(SpeechLanguage::Ko)),
            Some("en") => Ok(Some(SpeechLanguage::En)),
            Some("auto") => Ok(Some(SpeechLanguage::Auto)),
            Some(other) => Err(Error::InvalidInput {
                field: "language",
                message: format!("\"{other}\" is not ko, en or auto"),
            }),
        }
    }
}
