//! `deskmate models` (load the configured models, or check the servers of remote personas, and
//! print their reports, over `deskmate_core::engine`) and `deskmate chat` (one message, or an
//! interactive terminal chat, over the app layer `deskmate_core::app` and the window's own chat
//! turn).
//!
//! Sessions and messages go to the same store as the app's, and every finished request to its
//! request log. The office persona is grounded in the user's documents and prints the passages
//! it was given. Ctrl-C cancels the reply being written (the text so far is kept, marked
//! interrupted); Ctrl-D at the prompt quits.

use deskmate_core::error::EngineError;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use deskmate_core::app::{App, SendMessage};
use deskmate_core::chat::{check_message, ChatEvent};
use deskmate_core::conversation;
use deskmate_core::engine::remote::RemoteReport;
use deskmate_core::engine::{FinishReason, LoadReport, PersonaReport, Timings};
use deskmate_core::error::ErrorCode;
use deskmate_core::paths::Paths;
use deskmate_core::store::{MessageSource, MessageStatus, Persona, SessionSetup};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PersonaArg {
    Office,
    Character,
}

impl From<PersonaArg> for Persona {
    fn from(p: PersonaArg) -> Persona {
        match p {
            PersonaArg::Office => Persona::Office,
            PersonaArg::Character => Persona::Character,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    #[arg(long, value_enum, default_value_t = PersonaArg::Office)]
    persona: PersonaArg,
    /// A GGUF file to use instead of the persona's configured model
    #[arg(long, value_name = "PATH")]
    model: Option<PathBuf>,
    /// Continue this stored session (see the app's sidebar, or the id printed by a previous chat)
    #[arg(long, value_name = "ID")]
    session: Option<i64>,
    /// Print one JSON object with the text, token counts and timings instead of streaming
    #[arg(long)]
    json: bool,
    /// The message; without it, an interactive chat starts
    message: Option<String>,
}

/// `deskmate models` without a subcommand: load both personas' models and report.
pub fn load_and_report(paths: &Paths, json: bool) -> anyhow::Result<ExitCode> {
    let app = App::open(paths.clone())?;
    if let Some(e) = app.store_error() {
        // Loading saves nothing but the request log; the report is still worth having.
        eprintln!("deskmate: the database cannot be used ({e}); the request log is not kept");
    }
    let mut all_ok = true;
    let mut out = Vec::new();
    for persona in [Persona::Office, Persona::Character] {
        let config = app.model_config(persona);
        let path = app.model_path(persona, None);
        if !json {
            match config.backend.remote() {
                Some(remote) => eprintln!(
                    "checking the {} model's server ({}) …",
                    persona.as_str(),
                    remote.base_url
                ),
                None => eprintln!(
                    "loading the {} model ({}) …",
                    persona.as_str(),
                    path.display()
                ),
            }
        }
        let result = app.load_persona(persona, None);
        // A server that does not answer is a failure here, as a model that does not load is.
        all_ok &= match &result {
            Ok(PersonaReport::Remote(r)) => r.check.answers,
            Ok(PersonaReport::Local(_)) => true,
            Err(_) => false,
        };
        match (&result, json) {
            (Ok(PersonaReport::Local(report)), false) => print_report(report),
            (Ok(PersonaReport::Remote(report)), false) => print_remote(report),
            (Err(e), false) => {
                println!("{}: FAILED [{}]\n  {e}\n", persona.as_str(), e.code());
                if let deskmate_core::Error::Engine(EngineError::ModelLoadFailed {
                    attempts, ..
                }) = e
                {
                    print_attempts(attempts);
                }
            }
            _ => {}
        }
        out.push(match result {
            Ok(report) => serde_json::json!({ "persona": persona, "ok": true, "report": report }),
            Err(e) => {
                let attempts = match &e {
                    deskmate_core::Error::Engine(EngineError::ModelLoadFailed {
                        attempts, ..
                    }) => serde_json::to_value(attempts)?,
                    _ => serde_json::Value::Array(Vec::new()),
                };
                serde_json::json!({
                    "persona": persona,
                    "ok": false,
                    "path": path,
                    "error": e,
                    "attempts": attempts,
                })
            }
        });
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_report(r: &LoadReport) {
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    println!("{}: {}", r.persona.as_str(), r.file.display());
    println!(
        "  model         {} {} ({:.0} MiB)",
        r.architecture.as_deref().unwrap_or("?"),
        r.quantization.as_deref().unwrap_or("?"),
        mib(r.file_bytes)
    );
    let gpu = match (&r.device, r.gpu) {
        (Some(device), _) => format!("on {device}"),
        (None, Some(g)) => format!("on GPU {g}"),
        (None, None) => "CPU only".to_owned(),
    };
    println!(
        "  layers        {}/{} on the GPU ({gpu}; backends: {})",
        r.layers_on_gpu, r.layers_total, r.backend
    );
    if let Some(free) = r.free_vram_bytes {
        let prediction = match &r.fit {
            Some(fit) => format!(
                "predicted: llama.cpp {}, Deskmate {}; first attempt from {}",
                fit.llama_cpp_layers
                    .map_or_else(|| "no fit".to_owned(), |l| l.to_string()),
                fit.deskmate_layers,
                match fit.first_attempt {
                    deskmate_core::engine::fit::FitSource::LlamaCpp => "llama.cpp",
                    deskmate_core::engine::fit::FitSource::Deskmate => "Deskmate",
                }
            ),
            None => "layers set in the config".to_owned(),
        };
        println!(
            "  fit           {:.0} MiB free on the device; {prediction}",
            mib(free)
        );
    }
    println!(
        "  context       {} tokens, {} slots of {}; CPU threads: {}",
        r.n_ctx, r.parallel, r.n_ctx_per_slot, r.threads
    );
    println!("  template      {}", r.chat_template);
    if let Some(other) = r.shared_with {
        println!("  weights       shared with the {} model", other.as_str());
    }
    println!("  load time     {:.0} ms", r.load_ms);
    print_attempts(&r.attempts);
    println!();
}

fn print_remote(r: &RemoteReport) {
    println!(
        "{}: remote: {} (model {})",
        r.persona.as_str(),
        r.host,
        r.model
    );
    println!("  server        {}", r.base_url);
    let c = &r.check;
    match (&c.error, c.latency_ms) {
        (None, latency) => println!(
            "  answers       yes ({:.0} ms){}",
            latency.unwrap_or_default(),
            match c.model_listed {
                Some(false) => format!(
                    "; but it does not list {} (it lists: {})",
                    r.model,
                    c.models.join(", ")
                ),
                _ => String::new(),
            }
        ),
        (Some(reason), _) => println!("  answers       NO: {reason}"),
    }
    println!(
        "  requests      at most {} at once; key: {}; silence limit {} s",
        r.max_requests,
        if r.uses_key { "sent" } else { "none" },
        r.timeout_s
    );
    println!("  leaves here   each conversation (documents only with documents.allow_remote)");
    println!();
}

fn print_attempts(attempts: &[deskmate_core::engine::fit::Attempt]) {
    for (i, a) in attempts.iter().enumerate() {
        let outcome = match &a.failure {
            None => "loaded".to_owned(),
            Some(f) => format!(
                "failed{}: {}",
                if f.out_of_memory {
                    " (out of memory)"
                } else {
                    ""
                },
                f.reason
            ),
        };
        println!(
            "  attempt {}     {} GPU layers, context {}: {outcome}",
            i + 1,
            a.gpu_layers,
            a.n_ctx
        );
    }
}

/// One line on stderr: what answers this chat.
fn announce_ready(report: &PersonaReport) {
    match report {
        PersonaReport::Local(r) => {
            let placement = if r.layers_on_gpu > 0 {
                format!("{}/{} layers on GPU", r.layers_on_gpu, r.layers_total)
            } else {
                "CPU".to_owned()
            };
            eprintln!(
                "{} {} ready ({placement}, {:.1} s)",
                r.architecture.as_deref().unwrap_or("model"),
                r.quantization.as_deref().unwrap_or(""),
                r.load_ms / 1000.0
            );
        }
        PersonaReport::Remote(r) => match &r.check.error {
            None => eprintln!(
                "remote: {} (model {}) answers; your messages are sent to it",
                r.host, r.model
            ),
            Some(reason) => eprintln!(
                "remote: {} (model {}) does not answer yet ({reason}); each message tries again",
                r.host, r.model
            ),
        },
    }
}

/// The session whose reply is being written, for the Ctrl-C handler.
type Current = Arc<Mutex<Option<i64>>>;

fn install_ctrl_c(app: &Arc<App>, current: &Current) -> anyhow::Result<()> {
    let app = Arc::clone(app);
    let current = Arc::clone(current);
    ctrlc::set_handler(move || {
        let session = *current.lock().unwrap_or_else(PoisonError::into_inner);
        match session {
            Some(session) => {
                app.stop(session);
            }
            None => eprint!("\n(Ctrl-D quits)\n> "),
        }
    })
    .context("installing the Ctrl-C handler")
}

/// `deskmate chat`: the window's own chat turn (`deskmate_core::chat`), through the app layer,
/// so the same limits, grounding, titles and one-reply-per-session guard apply.
pub fn chat(paths: &Paths, args: &ChatArgs) -> anyhow::Result<ExitCode> {
    if let Some(message) = &args.message {
        // An empty message needs nothing opened to be refused.
        conversation::validate_user_text(message)?;
    }
    let app = Arc::new(App::open(paths.clone())?);
    // A chat whose messages cannot be stored would lose them: no database, no chat.
    let chat = app.chat()?;
    // Refused as the window refuses them, before spending seconds on loading the model.
    if let Some(message) = &args.message {
        check_message(message, &app.turn_options(None))?;
    }
    if let Some(session) = args.session {
        chat.check_not_replying(session)?;
    }
    let persona: Persona = args.persona.into();
    let remote = match &args.model {
        Some(_) => None,
        None => app.model_config(persona).backend.remote().cloned(),
    };
    // What the JSON summary names as the model: the file, or the server's model.
    let path = match &remote {
        Some(remote) => PathBuf::from(&remote.model),
        None => app.model_path(persona, args.model.as_deref()),
    };
    if !args.json {
        match &remote {
            Some(remote) => eprintln!("connecting to {} …", remote.base_url),
            None => eprintln!("loading {} …", path.display()),
        }
    }
    let report = app
        .load_persona(persona, args.model.as_deref())
        .with_context(|| format!("loading the {} model", persona.as_str()))?;
    if !args.json {
        announce_ready(&report);
    }
    let current: Current = Arc::default();
    install_ctrl_c(&app, &current)?;
    let mut chat = TerminalChat {
        app: &app,
        persona,
        session: args.session,
        model_file: path,
        current,
    };
    match &args.message {
        Some(message) => {
            let turn = chat.turn(message, !args.json)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&turn.to_json())?);
            } else {
                println!();
                print_sources(&turn);
                print_withheld(&turn);
                print_session_hint(&turn);
            }
            Ok(ExitCode::SUCCESS)
        }
        None => chat.interactive(),
    }
}

struct TerminalChat<'a> {
    app: &'a App,
    persona: Persona,
    session: Option<i64>,
    model_file: PathBuf,
    current: Current,
}

/// What one turn produced, gathered from its events.
#[derive(Default)]
struct TurnSummary {
    session: i64,
    text: String,
    sources: Vec<MessageSource>,
    prompt_tokens: usize,
    cached_tokens: usize,
    restored_tokens: usize,
    dropped_turns: usize,
    completion_tokens: usize,
    finish_reason: Option<FinishReason>,
    timings: Option<Timings>,
    reply_status: Option<MessageStatus>,
    related: Vec<String>,
    title: Option<String>,
    model_file: PathBuf,
    /// The server that answered, for a persona on one.
    remote: Option<String>,
    /// Relevant passages not sent to that server (documents.allow_remote is off).
    withheld_passages: usize,
}

impl TurnSummary {
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "session": self.session,
            "title": self.title,
            "model": self.model_file,
            "remote": self.remote,
            "documents_withheld": self.withheld_passages,
            "text": self.text,
            "finish_reason": self.finish_reason,
            "reply_status": self.reply_status,
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "restored_tokens": self.restored_tokens,
            "completion_tokens": self.completion_tokens,
            "dropped_turns": self.dropped_turns,
            "timings": self.timings,
            "sources": self.sources,
            "related": self.related,
        })
    }
}

fn print_sources(turn: &TurnSummary) {
    for s in &turn.sources {
        let place = match (&s.page, &s.section) {
            (Some(page), _) => format!(", page {page}"),
            (None, Some(section)) => format!(", § {section}"),
            _ => String::new(),
        };
        println!("[{}] {}{place}", s.n, s.file_name);
    }
}

fn print_withheld(turn: &TurnSummary) {
    if turn.withheld_passages > 0 {
        eprintln!(
            "[{} relevant passage(s) from your documents were not sent to {}: documents.allow_remote is off, so this answer is without them]",
            turn.withheld_passages,
            turn.remote.as_deref().unwrap_or("the server")
        );
    }
}

fn print_session_hint(turn: &TurnSummary) {
    let restored = if turn.restored_tokens > 0 {
        format!(", {} of them restored from disk", turn.restored_tokens)
    } else {
        String::new()
    };
    let mut line = format!(
        "[{} prompt tokens ({} cached{restored}), {} generated",
        turn.prompt_tokens, turn.cached_tokens, turn.completion_tokens
    );
    if let Some(tps) = turn
        .timings
        .as_ref()
        .and_then(|t| t.generation_tokens_per_s)
    {
        line.push_str(&format!(", {tps:.1} tokens/s"));
    }
    if turn.dropped_turns > 0 {
        line.push_str(&format!(
            "; {} oldest turns left out to fit the context",
            turn.dropped_turns
        ));
    }
    line.push_str(&format!("; session {}", turn.session));
    eprintln!("{line}]");
}

impl TerminalChat<'_> {
    /// Sends one message and streams the reply (to stdout when `stream`), then waits for the
    /// turn's extras (the session's title, follow-up questions) as the window does.
    fn turn(&mut self, message: &str, stream: bool) -> anyhow::Result<TurnSummary> {
        let (events, received) = std::sync::mpsc::channel();
        let start = self.app.send(
            SendMessage {
                session_id: self.session,
                setup: SessionSetup::of(self.persona),
                text: message.to_owned(),
                attachments: Vec::new(),
                history_turns: None,
            },
            move |event| {
                let _ = events.send(event);
            },
        )?;
        let session = start.session.id;
        self.session = Some(session);
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(session);
        let mut summary = TurnSummary {
            session,
            model_file: self.model_file.clone(),
            remote: self
                .app
                .remote_backend(self.persona)
                .map(|r| r.host().to_owned()),
            ..TurnSummary::default()
        };
        let mut failure = None;
        // The turn runs on the core's thread; its events arrive here until it ends.
        for event in received {
            match event {
                ChatEvent::Started {
                    prompt_tokens,
                    cached_tokens,
                    restored_tokens,
                    dropped_turns,
                    ..
                } => {
                    summary.prompt_tokens = prompt_tokens;
                    summary.cached_tokens = cached_tokens;
                    summary.restored_tokens = restored_tokens;
                    summary.dropped_turns = dropped_turns;
                }
                ChatEvent::Sources { sources, .. } => summary.sources = sources,
                ChatEvent::DocumentsWithheld { host, passages, .. } => {
                    summary.remote = Some(host);
                    summary.withheld_passages = passages;
                }
                ChatEvent::Text { text, .. } => {
                    if stream {
                        print!("{text}");
                        let _ = std::io::stdout().flush();
                    }
                    summary.text.push_str(&text);
                }
                ChatEvent::Finished {
                    reply,
                    completion_tokens,
                    finish_reason,
                    timings,
                } => {
                    summary.completion_tokens = completion_tokens;
                    summary.finish_reason = Some(finish_reason);
                    summary.timings = Some(timings);
                    summary.reply_status = Some(reply.status);
                }
                ChatEvent::Failed { error, reply, .. } => {
                    if error.code() == ErrorCode::Cancelled {
                        // Stopped before any text: nothing was kept.
                        summary.finish_reason = Some(FinishReason::Cancelled);
                    } else {
                        summary.reply_status = reply.map(|r| r.status);
                        failure = Some(error);
                    }
                }
                ChatEvent::Related { questions, .. } => summary.related = questions,
                ChatEvent::Title { session } => summary.title = Some(session.title),
                ChatEvent::Done { .. } => break,
            }
        }
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = None;
        if let Some(e) = failure {
            return Err(e.into());
        }
        Ok(summary)
    }

    fn interactive(&mut self) -> anyhow::Result<ExitCode> {
        eprintln!(
            "Chatting with the {} persona. Enter sends; Ctrl-C stops a reply; Ctrl-D quits.",
            self.persona.as_str()
        );
        let stdin = std::io::stdin();
        let mut line = String::new();
        let mut failed = 0usize;
        loop {
            eprint!("> ");
            line.clear();
            if stdin.lock().read_line(&mut line)? == 0 {
                eprintln!();
                break;
            }
            if line.trim().is_empty() {
                continue;
            }
            match self.turn(&line, true) {
                Ok(turn) => {
                    println!();
                    if turn.finish_reason == Some(FinishReason::Cancelled) {
                        eprintln!("[stopped]");
                    }
                    print_sources(&turn);
                    print_withheld(&turn);
                    print_session_hint(&turn);
                }
                Err(e) => {
                    failed += 1;
                    eprintln!("\ndeskmate: {e:#}");
                }
            }
        }
        if let Some(id) = self.session {
            eprintln!("Session {id} is saved; continue it with --session {id}.");
        }
        // A chat in which some messages were not answered or not stored does not end as a
        // success, so a script driving it can tell.
        if failed > 0 {
            eprintln!("deskmate: {failed} message(s) failed (see above)");
            return Ok(ExitCode::FAILURE);
        }
        Ok(ExitCode::SUCCESS)
    }
}
