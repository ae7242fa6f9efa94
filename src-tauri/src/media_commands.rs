//! Voice and image input commands: push-to-talk, audio files, image attachments.
//!
//! Each command calls one `App` method; transcription and image decoding run on the blocking
//! pool. A recording's levels go to the window as `voice://level` events. Audio and image bytes
//! arrive as a raw request body (no JSON number arrays), with the file name in the
//! `x-file-name` header (percent-encoded).

use std::sync::Arc;

use deskmate_core::app::{VisionSupport, VoiceStatus};
use deskmate_core::attachments::ImageDraft;
use deskmate_core::config::SpeechLanguage;
use deskmate_core::store::Persona;
use deskmate_core::voice::capture::InputFormat;
use deskmate_core::voice::Transcript;
use deskmate_core::Error;
use serde::Serialize;
use tauri::ipc::{InvokeBody, Request};
use tauri::{AppHandle, Emitter, State};

use crate::{blocking, AppState};

pub const VOICE_LEVEL_EVENT: &str = "voice://level";

/// Whether push-to-talk can work now, and why not.
#[tauri::command]
pub async fn voice_status(state: State<'_, AppState>) -> Result<VoiceStatus, Error> {
    let app = Arc::clone(&state);
    blocking(move || Ok(app.voice_status())).await
}

/// Starts a push-to-talk recording from the default input device.
#[tauri::command]
pub fn voice_start(window: AppHandle, state: State<'_, AppState>) -> Result<InputFormat, Error> {
    state.voice_start(move |dbfs| {
        let _ = window.emit(VOICE_LEVEL_EVENT, Level { dbfs });
    })
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
) -> Result<Transcript, Error> {
    let language = SpeechLanguage::from_code(language.as_deref())?;
    let app = Arc::clone(&state);
    blocking(move || app.voice_stop(language)).await
}

/// Throws away the recording or stops the transcription in flight.
#[tauri::command]
pub fn voice_cancel(state: State<'_, AppState>) {
    state.voice_cancel();
}

/// Transcribes an audio file dropped on the message box (raw body; `x-file-name`,
/// `x-language` headers).
#[tauri::command]
pub async fn voice_transcribe_file(
    state: State<'_, AppState>,
    request: Request<'_>,
) -> Result<Transcript, Error> {
    let name = header(&request, "x-file-name")?;
    let language = SpeechLanguage::from_code(
        request
            .headers()
            .get("x-language")
            .and_then(|v| v.to_str().ok()),
    )?;
    let bytes = raw_body(&request)?;
    let app = Arc::clone(&state);
    blocking(move || app.transcribe_bytes(&name, bytes, language)).await
}

/// Transcribes an audio file dropped on the window (Tauri's drag-and-drop gives paths).
#[tauri::command]
pub async fn voice_transcribe_path(
    state: State<'_, AppState>,
    path: std::path::PathBuf,
    language: Option<String>,
) -> Result<Transcript, Error> {
    let language = SpeechLanguage::from_code(language.as_deref())?;
    let app = Arc::clone(&state);
    blocking(move || app.transcribe_file(&path, language)).await
}

/// Checks an image file dropped on the window and stages it, as `image_attach` does.
#[tauri::command]
pub async fn image_attach_path(
    state: State<'_, AppState>,
    path: std::path::PathBuf,
) -> Result<ImageDraft, Error> {
    let app = Arc::clone(&state);
    blocking(move || app.attach_image_file(&path)).await
}

/// Checks an attached image and stages it; the draft's id goes with `chat_send`.
#[tauri::command]
pub async fn image_attach(
    state: State<'_, AppState>,
    request: Request<'_>,
) -> Result<ImageDraft, Error> {
    let name = header(&request, "x-file-name")?;
    let bytes = raw_body(&request)?;
    let app = Arc::clone(&state);
    blocking(move || app.attach_image(&name, &bytes)).await
}

/// Whether the persona's model sees images (asked before sending, for the notice).
#[tauri::command]
pub fn vision_support(
    state: State<'_, AppState>,
    persona: Persona,
) -> Result<VisionSupport, Error> {
    state.vision_support(persona)
}

fn header(request: &Request<'_>, name: &'static str) -> Result<String, Error> {
    let value = request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::InvalidInput {
            field: name,
            message: "missing".into(),
        })?;
    Ok(percent_decode(value))
}

fn raw_body(request: &Request<'_>) -> Result<Vec<u8>, Error> {
    match request.body() {
        InvokeBody::Raw(bytes) => Ok(bytes.clone()),
        InvokeBody::Json(_) => Err(Error::InvalidInput {
            field: "body",
            message: "expected the file's bytes".into(),
        }),
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
