//! `deskmate ingest`, `deskmate search`, `deskmate documents` and `deskmate profile`, over the
//! app layer (`deskmate_core::app`): its document library and profiles.
//!
//! `ingest` first finishes any import an earlier run left unfinished (killed, crashed), then
//! imports the given paths. With `--json`, progress is one JSON object per line on stdout
//! (`{"progress": …}`), then the report (`{"report": …}`), so scripts can follow a long import.

use std::path::PathBuf;
use std::process::ExitCode;

use deskmate_core::app::App;
use deskmate_core::documents::{ImportProgress, JobReport, SearchMode};
use deskmate_core::paths::Paths;
use deskmate_core::store::{AccessLevel, FileStatus};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LevelArg {
    Public,
    Internal,
    Confidential,
    Restricted,
}

impl From<LevelArg> for AccessLevel {
    fn from(l: LevelArg) -> AccessLevel {
        match l {
            LevelArg::Public => AccessLevel::Public,
            LevelArg::Internal => AccessLevel::Internal,
            LevelArg::Confidential => AccessLevel::Confidential,
            LevelArg::Restricted => AccessLevel::Restricted,
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ModeArg {
    Hybrid,
    Keyword,
    Vector,
}

#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Files and folders (folders are walked; only supported files in them are taken)
    paths: Vec<PathBuf>,
    /// Access level of newly imported documents (default internal); known ones are set to it too
    #[arg(long, value_enum)]
    level: Option<LevelArg>,
    /// Progress and the report as JSON lines
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    query: String,
    /// Search as this profile (its clearance applies); default: the active profile
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// How many passages
    #[arg(long, default_value_t = 5)]
    k: usize,
    #[arg(long, value_enum, default_value_t = ModeArg::Hybrid)]
    mode: ModeArg,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum ProfileCommand {
    /// List profiles (the active one is marked)
    List {
        #[arg(long)]
        json: bool,
    },
    /// Add a profile with a clearance
    Add {
        name: String,
        #[arg(long, value_enum)]
        clearance: LevelArg,
    },
    /// Make a profile the active one (its sessions, cards and clearance)
    Use { name: String },
}

pub fn ingest(paths: &Paths, args: &IngestArgs) -> anyhow::Result<ExitCode> {
    let app = App::open(paths.clone())?;
    let library = app.library()?;
    let resuming = library.unfinished_jobs()?;
    if !resuming.is_empty() && !args.json {
        eprintln!(
            "resuming {} unfinished import(s) first: job {}",
            resuming.len(),
            resuming
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !args.paths.is_empty() {
        library.create_job(&args.paths, args.level.map(AccessLevel::from))?;
    }
    let json = args.json;
    let mut on_progress = |p: &ImportProgress| {
        if json {
            if let Ok(line) = serde_json::to_string(&serde_json::json!({ "progress": p })) {
                println!("{line}");
            }
        } else if let Some(f) = &p.finished_file {
            match f.status {
                FileStatus::Failed => eprintln!(
                    "[{}/{}] failed  {}: {}",
                    p.files_done,
                    p.files_total,
                    f.path,
                    f.error.as_deref().unwrap_or("")
                ),
                status => eprintln!(
                    "[{}/{}] {status:<9} {} ({} chunks)",
                    p.files_done, p.files_total, f.path, f.chunks
                ),
            }
        }
    };
    let reports = library.run_jobs(&mut on_progress)?;
    let notice = library.vector_notice();
    if json {
        let line = serde_json::json!({ "report": { "jobs": reports, "vector_notice": notice } });
        println!("{}", serde_json::to_string(&line)?);
    } else {
        print_reports(&reports);
        if let Some(n) = &notice {
            println!("note: documents are searchable by keyword only until the embedding model works ({}: {})", n.code(), n);
        }
    }
    let failed = reports.iter().any(|r| r.failed > 0);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_reports(reports: &[JobReport]) {
    for r in reports {
        println!(
            "job {}: {} added, {} replaced, {} unchanged, {} failed, {} chunks{}",
            r.job_id,
            r.added,
            r.replaced,
            r.unchanged,
            r.failed,
            r.chunks,
            if r.cancelled { " (cancelled)" } else { "" }
        );
    }
    if reports.is_empty() {
        println!("nothing to import");
    }
}

pub fn search(paths: &Paths, args: &SearchArgs) -> anyhow::Result<ExitCode> {
    let app = App::open(paths.clone())?;
    let library = app.library()?;
    let mode = match args.mode {
        ModeArg::Hybrid => SearchMode::Hybrid,
        ModeArg::Keyword => SearchMode::Keyword,
        ModeArg::Vector => SearchMode::Vector,
    };
    let result = match &args.profile {
        Some(name) => library.search_for_profile(name, &args.query, args.k, mode)?,
        None => library.search_with(&args.query, args.k, mode)?,
    };
    for w in &result.warnings {
        eprintln!("warning: {} ({})", w, w.code());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(n) = &result.notice {
        eprintln!("note: keyword search only ({}: {})", n.code(), n);
    }
    if result.passages.is_empty() {
        println!("no passages found for \"{}\"", result.query);
    }
    for (i, p) in result.passages.iter().enumerate() {
        let place = match (&p.page, &p.section) {
            (Some(page), _) => format!(", page {page}"),
            (None, Some(section)) => format!(", § {section}"),
            _ => String::new(),
        };
        println!(
            "[{}] {}{place}  ({}, score {:.4})",
            i + 1,
            p.file_name,
            p.level.as_str(),
            p.score
        );
        let excerpt: String = p.text.chars().take(300).collect();
        println!("    {}", excerpt.replace('\n', "\n    "));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn documents(paths: &Paths, json: bool) -> anyhow::Result<ExitCode> {
    let docs = App::open(paths.clone())?.documents()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&docs)?);
        return Ok(ExitCode::SUCCESS);
    }
    if docs.is_empty() {
        println!("no documents (import some with `deskmate ingest PATH`)");
    }
    for d in &docs {
        println!(
            "{:>5}  {:<8} {:<12} {:>5} chunks  {}{}",
            d.id,
            d.status,
            d.level.as_str(),
            d.chunk_count,
            d.path,
            d.error
                .as_deref()
                .map(|e| format!("\n       error: {e}"))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn profile(paths: &Paths, cmd: &ProfileCommand) -> anyhow::Result<ExitCode> {
    let app = App::open(paths.clone())?;
    match cmd {
        ProfileCommand::List { json } => {
            let list = app.profiles()?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for p in list.profiles {
                    let mark = if p.id == list.active { "*" } else { " " };
                    println!("{mark} {:<20} {}", p.name, p.clearance.as_str());
                }
            }
        }
        ProfileCommand::Add { name, clearance } => {
            let p = app.create_profile(name, AccessLevel::from(*clearance))?;
            println!(
                "profile {} added (clearance {})",
                p.name,
                p.clearance.as_str()
            );
        }
        ProfileCommand::Use { name } => {
            let Some(p) = app
                .profiles()?
                .profiles
                .into_iter()
                .find(|p| &p.name == name)
            else {
                anyhow::bail!("no profile named \"{name}\" (see `deskmate profile list`)");
            };
            let p = app.activate_profile(p.id)?;
            println!(
                "active profile: {} (clearance {})",
                p.name,
                p.clearance.as_str()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
