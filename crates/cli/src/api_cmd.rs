//! `deskmate serve` (the local OpenAI-compatible API, `deskmate-server`, until Ctrl-C) and
//! `deskmate api key` (print the key, creating it if there is none).

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use deskmate_core::app::App;
use deskmate_core::paths::Paths;
use deskmate_core::store::Persona;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Port to listen on instead of `api.port` (0: any free port, printed at start)
    #[arg(long)]
    port: Option<u16>,
    /// Do not load the chat models at start (chat completions answer 503 until something
    /// loads them; embeddings and search work without them)
    #[arg(long)]
    no_load: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum ApiCommand {
    /// Print the API key (creating it if there is none) and the profile it acts as
    Key {
        /// Replace the key; the old one stops working at once
        #[arg(long)]
        new: bool,
        /// Bind a new key to this profile (default: the active profile)
        #[arg(long, value_name = "NAME")]
        profile: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub fn api(paths: &Paths, cmd: &ApiCommand) -> anyhow::Result<ExitCode> {
    let ApiCommand::Key { new, profile, json } = cmd;
    let app = App::open(paths.clone())?;
    let info = app.ensure_api_key(*new, profile.as_deref())?;
    if *json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        println!("{}", info.key);
        eprintln!(
            "profile {} (clearance {}); kept in {} (readable by you only)",
            info.profile.name,
            info.profile.clearance.as_str(),
            info.file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn serve(paths: &Paths, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let app = Arc::new(App::open(paths.clone())?);
    let config = app.config().api;
    let host: IpAddr = config
        .host
        .parse()
        .with_context(|| format!("api.host {:?} is not an IP address", config.host))?;
    let port = args
        .port
        .unwrap_or_else(|| u16::try_from(config.port).unwrap_or(8765));
    let key = app.ensure_api_key(false, None)?;
    if !args.no_load {
        app.load_in_background(&[Persona::Office, Persona::Character])?;
    }
    // The window's way to run it: its own thread and runtime, loopback only, a bounded stop.
    let server = deskmate_server::start(
        Arc::clone(&app),
        SocketAddr::new(host, port),
        config.cors_origins.clone(),
    )
    .with_context(|| format!("listening on {host}:{port}"))?;
    let addr = server.addr();
    eprintln!(
        "Deskmate API on http://{addr}/v1 (models: office, character); key in {} (profile {}); Ctrl-C stops",
        key.file.display(),
        key.profile.name
    );
    // Scripts wait for this line to know the port.
    println!("listening on http://{addr}");
    let (stop, stopped) = std::sync::mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = stop.send(());
    })
    .context("installing the Ctrl-C handler")?;
    let _ = stopped.recv();
    server.stop();
    Ok(ExitCode::SUCCESS)
}
