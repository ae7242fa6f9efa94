//! `deskmate models` (load the configured models, print their load reports) and `deskmate chat`
//! (one message, or an interactive terminal chat), over `deskmate_core::engine`.
//!
//! Sessions and messages go to the same store as the app's, and every finished request to its
//! request log. Ctrl-C cancels the reply being written (the text so far is kept, marked
//! interrupted); Ctrl-D at the prompt quits.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use deskmate_core::config::ModelConfig;
use deskmate_core::conversation;
use deskmate_core::engine::{CancelToken, Completion, Engine, GenerationEvent, LoadReport};
use deskmate_core::paths::Paths;
use deskmate_core::startup::Startup;
use deskmate_core::store::{Persona, Role, SessionSetup, Store};
use deskmate_core::ErrorPayload;

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

struct Opened {
    startup: Startup,
    store: Option<Arc<Mutex<Store>>>,
    /// Why there is no store.
    store_error: Option<ErrorPayload>,
    engine: Engine,
}

/// Opens config and store, and an engine whose finished requests go to the store's request log.
fn open(paths: &Paths) -> anyhow::Result<Opened> {
    let mut startup = Startup::open_paths(paths.clone())?;
    let (store, store_error) = match std::mem::replace(
        &mut startup.store,
        Err(ErrorPayload {
            code: "store",
            message: "moved to the engine".into(),
        }),
    ) {
        Ok(store) => (Some(Arc::new(Mutex::new(store))), None),
        Err(e) => (None, Some(e)),
    };
    let sink = store.clone().map(deskmate_core::engine::store_sink);
    let engine = Engine::new(sink)?;
    Ok(Opened {
        startup,
        store,
        store_error,
        engine,
    })
}

fn persona_config(startup: &Startup, persona: Persona) -> &ModelConfig {
    match persona {
        Persona::Office => &startup.config.config.models.office,
        Persona::Character => &startup.config.config.models.character,
    }
}

/// `deskmate models` without a subcommand: load both personas' models and report.
pub fn load_and_report(paths: &Paths, json: bool) -> anyhow::Result<ExitCode> {
    let opened = open(paths)?;
    if let Some(e) = &opened.store_error {
        // Loading saves nothing but the request log; the report is still worth having.
        eprintln!(
            "deskmate: the database cannot be used ({}); the request log is not kept",
            e.message
        );
    }
    let mut all_ok = true;
    let mut out = Vec::new();
    for persona in [Persona::Office, Persona::Character] {
        let config = persona_config(&opened.startup, persona);
        let path = paths.model_path(&config.path);
        if !json {
            eprintln!(
                "loading the {} model ({}) …",
                persona.as_str(),
                path.display()
            );
        }
        let result = opened.engine.load(persona, &path, config);
        all_ok &= result.is_ok();
        match (&result, json) {
            (Ok(report), false) => print_report(report),
            (Err(e), false) => {
                println!("{}: FAILED [{}]\n  {e}\n", persona.as_str(), e.code());
                if let deskmate_core::Error::ModelLoadFailed { attempts, .. } = e {
                    print_attempts(attempts);
                }
            }
            _ => {}
        }
        out.push(match result {
            Ok(report) => serde_json::json!({ "persona": persona, "ok": true, "report": report }),
            Err(e) => {
                let attempts = match &e {
                    deskmate_core::Error::ModelLoadFailed { attempts, .. } => {
                        serde_json::to_value(attempts)?
                    }
                    _ => serde_json::Value::Array(Vec::new()),
                };
                serde_json::json!({
                    "persona": persona,
                    "ok": false,
                    "path": path,
                    "error": ErrorPayload::from(&e),
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
    let gpu = match r.gpu {
        Some(g) => format!("on GPU {g}"),
        None => "CPU only".to_owned(),
    };
    println!(
        "  layers        {}/{} on the GPU ({gpu}; backends: {})",
        r.layers_on_gpu, r.layers_total, r.backend
    );
    if let Some(free) = r.free_vram_bytes {
        println!(
            "  fit           {:.0} MiB free VRAM, estimate {} layers",
            mib(free),
            r.estimated_layers
                .map_or_else(|| "-".to_owned(), |l| l.to_string())
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

/// The reply being written, for the Ctrl-C handler.
type Current = Arc<Mutex<Option<CancelToken>>>;

fn install_ctrl_c(current: &Current) -> anyhow::Result<()> {
    let current = Arc::clone(current);
    ctrlc::set_handler(move || {
        let token = current.lock().unwrap_or_else(PoisonError::into_inner);
        match token.as_ref() {
            Some(token) => token.cancel(),
            None => eprint!("\n(Ctrl-D quits)\n> "),
        }
    })
    .context("installing the Ctrl-C handler")
}

pub fn chat(paths: &Paths, args: &ChatArgs) -> anyhow::Result<ExitCode> {
    if let Some(message) = &args.message {
        // Refuse a bad message before spending seconds on loading the model.
        conversation::validate_user_text(message)?;
    }
    let opened = open(paths)?;
    if let Some(e) = &opened.store_error {
        // A chat whose messages cannot be stored would lose them: refuse instead of pretending.
        anyhow::bail!(
            "the database cannot be used ({}: {}); the chat was not started, since nothing could be saved",
            e.code,
            e.message
        );
    }
    let persona: Persona = args.persona.into();
    let config = persona_config(&opened.startup, persona).clone();
    let path = match &args.model {
        Some(p) => p.clone(),
        None => paths.model_path(&config.path),
    };
    if !args.json {
        eprintln!("loading {} …", path.display());
    }
    let report = opened
        .engine
        .load(persona, &path, &config)
        .with_context(|| format!("loading the {} model", persona.as_str()))?;
    if !args.json {
        let placement = if report.layers_on_gpu > 0 {
            format!(
                "{}/{} layers on GPU",
                report.layers_on_gpu, report.layers_total
            )
        } else {
            "CPU".to_owned()
        };
        eprintln!(
            "{} {} ready ({placement}, {:.1} s)",
            report.architecture.as_deref().unwrap_or("model"),
            report.quantization.as_deref().unwrap_or(""),
            report.load_ms / 1000.0
        );
    }
    let current: Current = Arc::default();
    install_ctrl_c(&current)?;
    let mut chat = Chat {
        engine: &opened.engine,
        store: opened.store.as_deref(),
        persona,
        session: args.session,
        model_file: &path,
        current,
    };
    match &args.message {
        Some(message) => {
            let turn = chat.turn(message, !args.json)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&turn.to_json())?);
            } else {
                println!();
                print_session_hint(&turn);
            }
            Ok(ExitCode::SUCCESS)
        }
        None => chat.interactive(),
    }
}

struct Chat<'a> {
    engine: &'a Engine,
    store: Option<&'a Mutex<Store>>,
    persona: Persona,
    session: Option<i64>,
    model_file: &'a Path,
    current: Current,
}

struct Turn {
    session: Option<i64>,
    completion: Completion,
    model_file: PathBuf,
}

impl Turn {
    fn to_json(&self) -> serde_json::Value {
        let c = &self.completion;
        serde_json::json!({
            "session": self.session,
            "model": self.model_file,
            "text": c.text,
            "finish_reason": c.finish_reason,
            "prompt_tokens": c.prompt_tokens,
            "cached_tokens": c.cached_tokens,
            "completion_tokens": c.completion_tokens,
            "dropped_turns": c.dropped_turns,
            "timings": c.timings,
        })
    }
}

fn print_session_hint(turn: &Turn) {
    let c = &turn.completion;
    let mut line = format!(
        "[{} prompt tokens ({} cached), {} generated",
        c.prompt_tokens, c.cached_tokens, c.completion_tokens
    );
    if let Some(tps) = c.timings.generation_tokens_per_s {
        line.push_str(&format!(", {tps:.1} tokens/s"));
    }
    if c.dropped_turns > 0 {
        line.push_str(&format!(
            "; {} oldest turns left out to fit the context",
            c.dropped_turns
        ));
    }
    if let Some(id) = turn.session {
        line.push_str(&format!("; session {id}"));
    }
    eprintln!("{line}]");
}

impl Chat<'_> {
    fn lock_store(&self) -> Option<std::sync::MutexGuard<'_, Store>> {
        self.store
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Sends one message and streams the reply (to stdout when `stream`).
    fn turn(&mut self, message: &str, stream: bool) -> anyhow::Result<Turn> {
        let text = conversation::validate_user_text(message)?;
        // History and the user's message are stored before the model is asked.
        let (setup, history) = match self.store {
            Some(store) => {
                let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
                let session =
                    conversation::open_session(&mut store, self.persona, self.session, text)?;
                self.session = Some(session.id);
                let history = store.messages(session.id)?;
                store.append_message(session.id, Role::User, text, "complete")?;
                (session.setup(), history)
            }
            None => (SessionSetup::of(self.persona), Vec::new()),
        };
        let request = conversation::request_for(&setup, &history, text, None);
        let mut generation = self.engine.submit(self.persona, request)?;
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(generation.cancel_token());
        let mut partial = String::new();
        let mut outcome = None;
        while let Some(event) = generation.blocking_next() {
            match event {
                GenerationEvent::Started { .. } => {}
                GenerationEvent::Text(piece) => {
                    if stream {
                        print!("{piece}");
                        let _ = std::io::stdout().flush();
                    }
                    partial.push_str(&piece);
                }
                GenerationEvent::Finished(c) => outcome = Some(Ok(c)),
                GenerationEvent::Failed(e) => outcome = Some(Err(e)),
            }
        }
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = None;
        let outcome = outcome.unwrap_or(Err(deskmate_core::Error::WorkerCrashed {
            persona: self.persona.as_str(),
        }));
        if let (Some(mut store), Some(session)) = (self.lock_store(), self.session) {
            let status = match &outcome {
                Ok(c) => conversation::reply_status(c),
                Err(_) => conversation::FAILED_REPLY_STATUS,
            };
            if !(partial.is_empty() && outcome.is_err()) {
                store.append_message(session, Role::Assistant, &partial, status)?;
            }
        }
        let completion = outcome?;
        Ok(Turn {
            session: self.session,
            completion,
            model_file: self.model_file.to_path_buf(),
        })
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
                    if turn.completion.finish_reason
                        == deskmate_core::engine::FinishReason::Cancelled
                    {
                        eprintln!("[stopped]");
                    }
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
