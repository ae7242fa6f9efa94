//! Voice input: audio from the microphone or a file, turned into text for the message box.
//!
//! - `audio`: decoding files (WAV, MP3, OGG, FLAC), downmixing, resampling to whisper's
//!   16 kHz mono, padding and levels. Pure functions.
//! - `capture`: push-to-talk recording from the default input device (cpal), behind the
//!   `AudioInput` trait so the no-device, failing-device and denied-permission paths are tested
//!   without hardware. A recording runs on its own thread; levels are reported as it goes.
//! - `helper`: the `deskmate-whisper` process that runs whisper.cpp (its ggml must not share a
//!   binary with llama.cpp's; see `crates/whisper`).
//!
//! [`SpeechRecognizer`] ties them together. Every call blocks (decoding, whisper): callers run
//! it off the async runtime. Text is never sent anywhere: it goes back to the message box for
//! the user to edit and send.

pub mod audio;
pub mod capture;
mod helper;

use crate::error::VoiceError;
use std::path::{Path, PathBuf};

use crate::config::{AutoOr, SpeechConfig, SpeechLanguage};
use crate::error::{Error, Result};

pub use helper::{locate_helper, Segment, Transcript, HELPER_ENV, HELPER_NAME};

/// Whisper with the configured model, through the helper process.
pub struct SpeechRecognizer {
    model: PathBuf,
    language: SpeechLanguage,
    threads: u32,
    /// The helper, or the places it was looked for.
    helper: std::result::Result<helper::Helper, Vec<PathBuf>>,
}

impl SpeechRecognizer {
    /// Resolves the model against the models directory and finds the helper; nothing is
    /// started or loaded until the first transcription.
    pub fn new(config: &SpeechConfig, models_dir: &Path) -> SpeechRecognizer {
        let model = if config.model.is_absolute() {
            config.model.clone()
        } else {
            models_dir.join(&config.model)
        };
        SpeechRecognizer {
            model,
            language: config.language,
            threads: resolved_threads(config.threads),
            helper: helper::search_helper().map(helper::Helper::new),
        }
    }

    pub fn model_path(&self) -> &Path {
        &self.model
    }

    /// The language from the configuration, used when a caller does not choose one.
    pub fn default_language(&self) -> SpeechLanguage {
        self.language
    }

    /// Whether a transcription could run now: the model file exists and the helper was found.
    /// The UI disables the microphone with this error's message.
    pub fn check(&self) -> Result<()> {
        if !self.model.is_file() {
            return Err(Error::Voice(VoiceError::SpeechModelMissing {
                path: self.model.clone(),
            }));
        }
        self.helper_process().map(|_| ())
    }

    fn helper_process(&self) -> Result<&helper::Helper> {
        self.helper
            .as_ref()
            .map_err(|searched| helper::missing_helper(searched.clone()))
    }

    /// Transcribes 16 kHz mono samples (see [`audio::pad_for_whisper`], applied here).
    pub fn transcribe(
        &self,
        samples_16k: Vec<f32>,
        language: Option<SpeechLanguage>,
    ) -> Result<Transcript> {
        self.check()?;
        let helper = self.helper_process()?;
        let seconds = samples_16k.len() as f64 / f64::from(audio::WHISPER_RATE);
        if seconds > f64::from(audio::MAX_SECONDS) {
            return Err(Error::Voice(VoiceError::AudioTooLong {
                what: "recording".into(),
                seconds,
                limit: audio::MAX_SECONDS,
            }));
        }
        if audio::level_dbfs(&samples_16k) <= audio::SILENCE_DBFS {
            return Ok(Transcript {
                text: String::new(),
                language: language_code(language.unwrap_or(self.language)).to_owned(),
                segments: Vec::new(),
                load_ms: 0,
                transcribe_ms: 0,
            });
        }
        let padded = audio::pad_for_whisper(samples_16k);
        let language = language_code(language.unwrap_or(self.language));
        helper.transcribe(&self.model, language, self.threads, &padded)
    }

    /// Decodes an audio file (WAV, MP3, OGG, FLAC) and transcribes it.
    pub fn transcribe_file(
        &self,
        path: &Path,
        language: Option<SpeechLanguage>,
    ) -> Result<Transcript> {
        self.check()?;
        let samples = audio::decode_file(path)?;
        self.transcribe(samples, language)
    }

    /// Stops the transcription in flight, if any; it returns [`Error::Cancelled`].
    pub fn cancel(&self) {
        if let Ok(helper) = &self.helper {
            helper.cancel();
        }
    }
}

pub fn language_code(language: SpeechLanguage) -> &'static str {
    match language {
        SpeechLanguage::Ko => "ko",
        SpeechLanguage::En => "en",
        SpeechLanguage::Auto => "auto",
    }
}

/// Speech is interactive (the user waits for the text), so `auto` uses every core, up to 8
/// (whisper.cpp gains little beyond that).
fn resolved_threads(threads: AutoOr<u32>) -> u32 {
    match threads {
        AutoOr::Value(t) => t.max(1),
        AutoOr::Auto => std::thread::available_parallelism()
            .map_or(1, |n| n.get() as u32)
            .min(8),
    }
}
