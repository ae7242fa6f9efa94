//! `deskmate transcribe` and `deskmate image-check`: the voice and image inputs of the chat,
//! from the terminal, over `deskmate_core::voice` and `deskmate_core::vision`.

use std::path::PathBuf;
use std::process::ExitCode;

use deskmate_core::config::{self, SpeechLanguage};
use deskmate_core::paths::Paths;
use deskmate_core::vision::{self, ImageLimits};
use deskmate_core::voice::SpeechRecognizer;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LanguageArg {
    Ko,
    En,
    Auto,
}

impl From<LanguageArg> for SpeechLanguage {
    fn from(l: LanguageArg) -> SpeechLanguage {
        match l {
            LanguageArg::Ko => SpeechLanguage::Ko,
            LanguageArg::En => SpeechLanguage::En,
            LanguageArg::Auto => SpeechLanguage::Auto,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct TranscribeArgs {
    /// Audio file: WAV, MP3, OGG (Vorbis) or FLAC
    file: PathBuf,
    /// Spoken language (default: speech.language from the configuration)
    #[arg(long, value_enum)]
    language: Option<LanguageArg>,
    /// Speech model file (default: speech.model from the configuration)
    #[arg(long, value_name = "PATH")]
    model: Option<PathBuf>,
    /// The transcript with its segments and timings as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ImageCheckArgs {
    /// Image file: PNG, JPEG, WebP or GIF
    file: PathBuf,
    /// Long side of the image the model sees, in pixels
    #[arg(long, default_value_t = vision::DEFAULT_MODEL_SIDE)]
    model_side: u32,
    #[arg(long)]
    json: bool,
}

pub fn transcribe(paths: &Paths, args: &TranscribeArgs) -> anyhow::Result<ExitCode> {
    let mut speech = config::load_or_init(&paths.config_file)?.config.speech;
    if let Some(model) = &args.model {
        speech.model = model.clone();
    }
    let recognizer = SpeechRecognizer::new(&speech, &paths.models_dir);
    let transcript = recognizer.transcribe_file(&args.file, args.language.map(Into::into))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&transcript)?);
    } else {
        println!("{}", transcript.text);
        eprintln!(
            "({}, model {}: loaded in {} ms, transcribed in {} ms)",
            transcript.language,
            recognizer.model_path().display(),
            transcript.load_ms,
            transcript.transcribe_ms
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn image_check(args: &ImageCheckArgs) -> anyhow::Result<ExitCode> {
    let info = vision::inspect_file(&args.file, &ImageLimits::default(), args.model_side)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        println!("{}: accepted", info.name);
        println!(
            "  {} ({}), {} bytes, {} × {} pixels",
            info.format.extension(),
            info.mime,
            info.size_bytes,
            info.width,
            info.height
        );
        println!(
            "  the model sees {} × {}; thumbnail {} × {}",
            info.model_width, info.model_height, info.thumbnail_width, info.thumbnail_height
        );
        if let Some(note) = &info.frames_note {
            println!("  {note}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
