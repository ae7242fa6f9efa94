//! `deskmate`: the headless command line over `deskmate-core`.
//!
//! Each subcommand is a few lines that call the core; output is for people by default and one
//! JSON document with `--json`. Exit status: 0 success, 1 the check or task failed, 2 bad usage.

mod api_cmd;
mod bench_api_cmd;
mod bench_cmd;
mod bench_docs_cmd;
mod bench_docs_korean;
mod chat_cmd;
mod docs_cmd;
mod health_cmd;
mod media_cmd;
mod models_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use deskmate_core::config::Config;
use deskmate_core::paths::{PathOverrides, Paths};

#[derive(Parser)]
#[command(
    name = "deskmate",
    version,
    about = "Deskmate, the offline office assistant, from the terminal"
)]
struct Cli {
    /// Configuration file (default: DESKMATE_CONFIG, else the user's config directory)
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Data directory with the database (default: DESKMATE_DATA_DIR, else the user's data directory)
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Models directory (default: DESKMATE_MODELS_DIR, else DATA_DIR/models)
    #[arg(long, global = true, value_name = "DIR")]
    models_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Configuration file tools
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Load the configured models and print how they loaded (GPU layers, attempts, context);
    /// subcommands list, install and inspect model files
    Models {
        #[command(subcommand)]
        command: Option<models_cmd::ModelsCommand>,
        /// Print the load reports as JSON
        #[arg(long)]
        json: bool,
    },
    /// Chat with a persona: one message (streamed), or an interactive chat without MESSAGE
    Chat(chat_cmd::ChatArgs),
    /// The engine's side of `cargo xtask bench engine` (JSON on stdout)
    #[command(hide = true)]
    BenchEngine(bench_cmd::BenchArgs),
    /// The document library's side of `cargo xtask bench documents` (JSON on stdout)
    #[command(hide = true)]
    BenchDocuments(bench_docs_cmd::BenchDocsArgs),
    /// GPU and system health: one sample (or one per interval with --watch)
    Gpu {
        #[arg(long)]
        json: bool,
        /// Keep printing a sample every monitor.interval_ms until interrupted
        #[arg(long)]
        watch: bool,
    },
    /// Version, compiled-in backends, models, data paths and GPUs
    Info {
        #[arg(long)]
        json: bool,
    },
    /// Import files and folders into the document library (finishes interrupted imports first)
    Ingest(docs_cmd::IngestArgs),
    /// Search the document library (hybrid keyword + vector, under a profile's clearance)
    Search(docs_cmd::SearchArgs),
    /// List the documents the active profile may see
    Documents {
        #[arg(long)]
        json: bool,
    },
    /// Local profiles and their document clearance
    #[command(subcommand)]
    Profile(docs_cmd::ProfileCommand),
    /// Transcribe an audio file (WAV, MP3, OGG, FLAC) with the speech model, as the chat's
    /// voice input does
    Transcribe(media_cmd::TranscribeArgs),
    /// Check an image as the chat would: accepted or why not, and how it would be scaled
    ImageCheck(media_cmd::ImageCheckArgs),
    /// Benchmark the local API under concurrent streamed requests (used by `cargo xtask bench api`)
    #[command(hide = true)]
    BenchApi(bench_api_cmd::BenchApiArgs),
    /// Serve the local OpenAI-compatible API (chat, embeddings, document search) until Ctrl-C
    Serve(api_cmd::ServeArgs),
    /// The local API's key
    #[command(subcommand)]
    Api(api_cmd::ApiCommand),
    /// Where Deskmate keeps its configuration, database and models
    Paths {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a configuration file and print every problem with its JSON path
    Check {
        /// The file to check (default: the configuration in use)
        path: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    // Warnings on stderr; only errors from llama.cpp.
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = deskmate_core::engine::llama_log::quiet_llama_filter(tracing::Level::WARN);
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // The core's stable code too, as the window's messages are keyed by it.
            let code = e
                .chain()
                .find_map(|cause| cause.downcast_ref::<deskmate_core::Error>())
                .map(deskmate_core::Error::code);
            match code {
                Some(code) => eprintln!("deskmate: {e:#} [{code}]"),
                None => eprintln!("deskmate: {e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let overrides = PathOverrides {
        config_file: cli.config,
        data_dir: cli.data_dir,
        models_dir: cli.models_dir,
    };
    let paths = || Paths::resolve(&overrides).context("resolving Deskmate's paths");
    match cli.command {
        Command::Config(ConfigCommand::Check { path, json }) => {
            let path = match path {
                Some(p) => p,
                None => paths()?.config_file,
            };
            config_check(&path, json)
        }
        Command::Models {
            command: Some(cmd), ..
        } => {
            models_cmd::run(&paths()?, &cmd)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Models {
            command: None,
            json,
        } => chat_cmd::load_and_report(&paths()?, json),
        Command::Chat(args) => chat_cmd::chat(&paths()?, &args),
        Command::BenchDocuments(args) => {
            bench_docs_cmd::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchEngine(args) => {
            bench_cmd::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Gpu { json, watch } => {
            health_cmd::gpu(&paths()?, json, watch)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Info { json } => {
            health_cmd::info(&paths()?, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest(args) => docs_cmd::ingest(&paths()?, &args),
        Command::Search(args) => docs_cmd::search(&paths()?, &args),
        Command::Documents { json } => docs_cmd::documents(&paths()?, json),
        Command::Profile(cmd) => docs_cmd::profile(&paths()?, &cmd),
        Command::Transcribe(args) => media_cmd::transcribe(&paths()?, &args),
        Command::ImageCheck(args) => media_cmd::image_check(&args),
        Command::Serve(args) => api_cmd::serve(&paths()?, &args),
        Command::BenchApi(args) => bench_api_cmd::bench_api(&args),
        Command::Api(cmd) => api_cmd::api(&paths()?, &cmd),
        Command::Paths { json } => {
            let paths = paths()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&paths)?);
            } else {
                println!("config file  {}", paths.config_file.display());
                println!("data dir     {}", paths.data_dir.display());
                println!("models dir   {}", paths.models_dir.display());
                println!("database     {}", paths.database.display());
                println!("vector index {}", paths.vector_index.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn config_check(path: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let problems = match Config::from_json_str(&text) {
        Ok(_) => Vec::new(),
        Err(problems) => problems,
    };
    if json {
        let report = serde_json::json!({
            "file": path,
            "valid": problems.is_empty(),
            "problems": problems,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if problems.is_empty() {
        println!("{}: valid", path.display());
    } else {
        let noun = if problems.len() == 1 {
            "problem"
        } else {
            "problems"
        };
        println!("{}: {} {noun}", path.display(), problems.len());
        for problem in &problems {
            println!("  {problem}");
        }
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
