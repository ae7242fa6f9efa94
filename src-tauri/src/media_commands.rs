//! Voice and image input commands: push-to-talk, audio files, image attachments.
//!
//! Each command locks, calls the core and returns; transcription and image decoding run on
//! the blocking pool. A recording lives in `Media::recording` between `voice_start` and
//! `voice_stop`/`voice_cancel`; its levels go to the window as `voice://level` events.
//! Audio and image bytes arrive as a raw request body (no JSON number arrays), with the file
//! name in the `x-file-name` header (percent-encoded).

use std::sync::{Arc, Mutex, PoisonError, RwLock};

use deskmate_core::attachments::{AttachmentStore, ImageDraft};
use deskmate_core::config::{Config, SpeechLanguage};
use deskmate_core::paths::Paths;
use deskmate_core::store::Persona;
use deskmate_core::voice::capture::{AudioInput, CpalInput, InputFormat, Recording};
use deskmate_core::voice::{audio, SpeechRecognizer, Transcript};
use deskmate_core::{Error, ErrorPayload};
use serde::Serialize;
use tauri::ipc::{InvokeBody, Request};
use tauri::{AppHandle, Emitter, State};

use crate::{blocking, AppState};

pub const VOICE_LEVEL_EVENT: &str = "voice://level";

/// Voice and image state shared by the commands.
pub struct Media {
    attachments: Arc<AttachmentStore>,
    speech: RwLock<Arc<SpeechRecognizer>>,
    input: Arc<dyn AudioInput>,
    recording: Mutex<Option<Recording>>,
}

impl Media {
    pub fn new(paths: &Paths, config: &Config) -> Media {
        Media {
            attachments: Arc::new(AttachmentStore::new(&paths.attachments_dir)),
            speech: RwLock::new(Arc::new(SpeechRecognizer::new(
                &config.speech,
                &paths.models_dir,
            ))),
            input: audio_input(),
            recording: Mutex::new(None),
        }
    }

    pub fn attachments(&self) -> Arc<AttachmentStore> {
        Arc::clone(&self.attachments)
    }

    /// After the configuration changed (the speech model or its language).
    pub fn reconfigure(&self, paths: &Paths, config: &Config) {
        let fresh = Arc::new(SpeechRecognizer::new(&config.speech, &paths.models_dir));
        *self.speech.write().unwrap_or_else(PoisonError::into_inner) = fresh;
    }

    fn speech(&self) -> Arc<SpeechRecognizer> {
        Arc::clone(&self.speech.read().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The microphone, or for tests on machines without one (`DESKMATE_TEST_MICROPHONE=FILE`) an
/// audio file played in real time as if spoken into a microphone.
fn audio_input() -> Arc<dyn AudioInput> {
    match std::env::var_os("DESKMATE_TEST_MICROPHONE") {
        Some(file) if !file.is_empty() => Arc::new(deskmate_core::voice::capture::FileInput::new(
            std::path::PathBuf::from(file),
        )),
        _ => Arc::new(CpalInput),
    }
}

#[derive(Serialize)]
pub struct VoiceStatus {
    ready: bool,
    /// Why the microphone button is disabled.
    problem: Option<ErrorPayload>,
    device: Option<String>,
    model: String,
}

/// Whether push-to-talk can work now, and why not.
#[tauri::command]
pub async fn voice_status(state: State<'_, AppState>) -> Result<VoiceStatus, ErrorPayload> {
    let speech = state.media.speech();
    let input = Arc::clone(&state.media.input);
    let model = speech.model_path().display().to_string();
    blocking(move || {
        let device = input.probe();
        // The speech model first: without it the microphone is of no use.
        let problem = speech
            .check()
            .err()
            .map(|e| ErrorPayload::from(&e))
            .or_else(|| device.as_ref().err().map(ErrorPayload::from));
        Ok(VoiceStatus {
            ready: problem.is_none(),
            problem,
            device: device.ok().map(|d| d.device),
            model,
        })
    })
    .await
}

/// Starts a push-to-talk recording from the default input device.
#[tauri::command]
pub fn voice_start(
    app: AppHandle,
    state: State<'_, AppState>,
) -> Result<InputFormat, ErrorPayload> {
    let media = &state.media;
    media.speech().check().map_err(|e| ErrorPayload::from(&e))?;
    let mut slot = media
        .recording
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(old) = slot.take() {
        old.cancel(); // a lost pointer-up: the new press wins
    }
    let recording = Recording::start(Arc::clone(&media.input), move |dbfs| {
        let _ = app.emit(VOICE_LEVEL_EVENT, Level { dbfs });
    })
    .map_err(|e| ErrorPayload::from(&e))?;
    let format = recording.format().clone();
    *slot = Some(recording);
    Ok(format)
}

#[derive(Clone, Serialize)]
struct Level {
    dbfs: f32,
}

/// Ends the recording and transcribes it; the text goes back to the message box.
#[tauri::command]
pub async fn voice_stop(
    state: State<'_, AppState>,
    language: Option<String>,
) -> Result<Transcript, ErrorPayload> {
    let recording = state
        .media
        .recording
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .ok_or_else(|| ErrorPayload::from(&Error::NotRecording))?;
    let speech = state.media.speech();
    let language = parse_language(language.as_deref())?;
    blocking(move || speech.transcribe(recording.stop()?, language)).await
}

/// Throws away the recording or stops the transcription in flight.
#[tauri::command]
pub fn voice_cancel(state: State<'_, AppState>) {
    let recording = state
        .media
        .recording
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(recording) = recording {
        recording.cancel();
    }
    state.media.speech().cancel();
}

/// Transcribes an audio file dropped on the message box (raw body; `x-file-name`,
/// `x-language` headers).
#[tauri::command]
pub async fn voice_transcribe_file(
    state: State<'_, AppState>,
    request: Request<'_>,
) -> Result<Transcript, ErrorPayload> {
    let name = header(&request, "x-file-name")?;
    let language = parse_language(
        request
            .headers()
            .get("x-language")
            .and_then(|v| v.to_str().ok()),
    )?;
    let bytes = raw_body(&request)?;
    let speech = state.media.speech();
    blocking(move || {
        let samples = audio::decode_bytes(&name, bytes)?;
        speech.transcribe(samples, language)
    })
    .await
}

/// Transcribes an audio file dropped on the window (Tauri's drag-and-drop gives paths).
#[tauri::command]
pub async fn voice_transcribe_path(
    state: State<'_, AppState>,
    path: std::path::PathBuf,
    language: Option<String>,
) -> Result<Transcript, ErrorPayload> {
    let language = parse_language(language.as_deref())?;
    let speech = state.media.speech();
    blocking(move || speech.transcribe_file(&path, language)).await
}

/// Checks an image file dropped on the window and stages it, as `image_attach` does.
#[tauri::command]
pub async fn image_attach_path(
    state: State<'_, AppState>,
    path: std::path::PathBuf,
) -> Result<ImageDraft, ErrorPayload> {
    let attachments = state.media.attachments();
    blocking(move || attachments.stage_image_file(&path)).await
}

/// Checks an attached image and stages it; the draft's id goes with `chat_send`.
#[tauri::command]
pub async fn image_attach(
    state: State<'_, AppState>,
    request: Request<'_>,
) -> Result<ImageDraft, ErrorPayload> {
    let name = header(&request, "x-file-name")?;
    let bytes = raw_body(&request)?;
    let attachments = state.media.attachments();
    blocking(move || attachments.stage_image(&name, &bytes)).await
}

#[derive(Serialize)]
pub struct VisionSupport {
    can_see: bool,
    reason: Option<ErrorPayload>,
}

/// Whether the persona's model sees images (asked before sending, for the notice).
#[tauri::command]
pub fn vision_support(
    state: State<'_, AppState>,
    persona: Persona,
) -> Result<VisionSupport, ErrorPayload> {
    let support = state.engine()?.vision_support(persona);
    Ok(VisionSupport {
        can_see: support.is_ok(),
        reason: support.err().as_ref().map(ErrorPayload::from),
    })
}

fn parse_language(language: Option<&str>) -> Result<Option<SpeechLanguage>, ErrorPayload> {
    match language {
        None | Some("") => Ok(None),
        Some("ko") => Ok(Some(SpeechLanguage::Ko)),
        Some("en") => Ok(Some(SpeechLanguage::En)),
        Some("auto") => Ok(Some(SpeechLanguage::Auto)),
        Some(other) => Err(ErrorPayload::from(&Error::InvalidInput {
            field: "language",
            message: format!("\"{other}\" is not ko, en or auto"),
        })),
    }
}

fn header(request: &Request<'_>, name: &'static str) -> Result<String, ErrorPayload> {
    let value = request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ErrorPayload::from(&Error::InvalidInput {
                field: name,
                message: "missing".into(),
            })
        })?;
    Ok(percent_decode(value))
}

fn raw_body(request: &Request<'_>) -> Result<Vec<u8>, ErrorPayload> {
    match request.body() {
        InvokeBody::Raw(bytes) => Ok(bytes.clone()),
        InvokeBody::Json(_) => Err(ErrorPayload::from(&Error::InvalidInput {
            field: "body",
            message: "expected the file's bytes".into(),
        })),
    }
}

/// `encodeURIComponent` undone; a malformed escape is kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn file_names_from_encode_uri_component_are_decoded_including_korean() {
        assert_eq!(
            percent_decode("%EB%B3%B4%EA%B3%A0%EC%84%9C.png"),
            "보고서.png"
        );
        assert_eq!(percent_decode("a%20b%2"), "a b%2");
    }
}
