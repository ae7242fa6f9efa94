//! `deskmate bench-engine` (hidden; run by `cargo xtask bench engine`): the engine's side of the
//! engine benchmark, printed as one JSON object.
//!
//! Measures, on one model with fixed threads and batch size:
//! - prompt processing: a single request whose prompt is read from scratch (no cache hit),
//!   tokens per second over the prompt;
//! - generation: a single request generating a fixed number of tokens (end-of-generation
//!   ignored), tokens per second after the first;
//! - aggregate generation with 1, 2, 4 and 8 concurrent requests (one batch, one slot each):
//!   all generated tokens over the wall time from the first submission to the last token;
//! - prompt-lookup decoding: generation speed with it over without, alternating, on a grounded
//!   task (repeat a section of a real public text given in the prompt, `--grounded-text`) and
//!   on open chat, with whether each pair of replies came out identical;
//! - time to first token of turn 1 and turn 10 of a conversation, whose history grows each turn
//!   (the prompt cache should keep turn 10 close to turn 1);
//! - the prompt cache on disk (a fresh engine, so the measures above never pay for a save):
//!   time to first token of turn 11 after a restart (restored from disk), with the conversation
//!   still in its slot (warm), read from scratch (cold), and after 2 × `parallel` other
//!   conversations pushed it out of its slot; and the bytes saved per conversation.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use deskmate_core::config::{AutoOr, ModelConfig, Sampling};
use deskmate_core::engine::{ChatMessage, ChatRequest, Completion, Engine};
use deskmate_core::store::{Persona, Role};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    threads: u32,
    /// Prompt tokens for the prompt-processing measure (approximate: the prompt is sized to it)
    #[arg(long, default_value_t = 512)]
    prompt_tokens: u32,
    /// Tokens generated per request for the generation measures
    #[arg(long, default_value_t = 128)]
    gen_tokens: u32,
    #[arg(long, default_value_t = 512)]
    batch: u32,
    /// Repetitions of the single-request measures (the median is reported)
    #[arg(long, default_value_t = 3)]
    repetitions: u32,
    /// Concurrency levels for the aggregate measure
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    concurrency: Vec<u32>,
    /// Turns of the conversation whose first and last time to first token are compared
    #[arg(long, default_value_t = 10)]
    turns: u32,
    /// Only the single-request prompt and generation speeds (for interleaved rounds)
    #[arg(long)]
    speed_only: bool,
    /// Only the lookup-decoding rows (for `cargo xtask gpu-check`)
    #[arg(long)]
    lookup_only: bool,
    /// A real text whose section 7 the grounded lookup-decoding task repeats (the Debian
    /// constitution from the retrieval benchmark's corpus); without it, that row is skipped
    #[arg(long)]
    grounded_text: Option<PathBuf>,
}

/// Greedy sampling with plain decoding: one decode call per token, as `llama-bench` measures.
fn greedy(max_tokens: u32) -> Sampling {
    Sampling {
        temperature: 0.0,
        repeat_penalty: 1.0,
        max_tokens,
        lookup_decoding: AutoOr::Value(false),
        ..Sampling::default()
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    v[v.len() / 2]
}

fn run_one(engine: &Engine, request: ChatRequest) -> anyhow::Result<Completion> {
    Ok(engine.submit(Persona::Office, request)?.wait(|_| {})?)
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let max_parallel = args.concurrency.iter().copied().max().unwrap_or(1).max(1);
    // Each slot holds a long prompt or a generation, plus the 10-turn conversation.
    let slot_ctx = (args.prompt_tokens + args.gen_tokens + 64).max(2048);
    let config = ModelConfig {
        path: args.model.clone(),
        n_gpu_layers: AutoOr::Auto,
        n_ctx: slot_ctx * max_parallel,
        n_batch: args.batch,
        parallel: max_parallel,
        max_queue: 64,
        threads: AutoOr::Value(args.threads),
        ..ModelConfig::default()
    };
    let engine = Engine::new(None)?;
    let report = engine
        .load(Persona::Office, &args.model, &config)
        .with_context(|| format!("loading {}", args.model.display()))?;

    // Warm up (first decode allocates buffers and faults in the weights).
    run_one(&engine, request("Hello", 8, true))?;

    if args.lookup_only {
        let out = serde_json::json!({ "lookup": lookup(&engine, args)? });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }

    // Prompt processing: a different first word each time, so no slot's cache matches.
    let mut pp = Vec::new();
    let mut pp_tokens = 0;
    for rep in 0..args.repetitions {
        let c = run_one(
            &engine,
            request(&long_prompt(rep, args.prompt_tokens), 1, true),
        )?;
        // Only the chat template's opening tokens may be shared with an earlier prompt.
        anyhow::ensure!(c.cached_tokens < 16, "the prompt benchmark hit the cache");
        pp_tokens = c.prompt_tokens;
        pp.push(c.timings.prompt_tokens_per_s.unwrap_or(0.0));
    }

    // Generation, one request.
    let mut tg = Vec::new();
    for rep in 0..args.repetitions {
        let c = run_one(
            &engine,
            request(
                &format!("Story {rep}: tell a long story."),
                args.gen_tokens,
                true,
            ),
        )?;
        tg.push(c.timings.generation_tokens_per_s.unwrap_or(0.0));
    }

    if args.speed_only {
        let out = serde_json::json!({
            "prompt": { "tokens": pp_tokens, "tokens_per_s_runs": pp, "tokens_per_s": median(pp.clone()) },
            "generation": { "tokens": args.gen_tokens, "tokens_per_s_runs": tg, "tokens_per_s": median(tg.clone()) },
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }

    // Aggregate generation with concurrent requests.
    let mut aggregate = Vec::new();
    for &k in &args.concurrency {
        let started = Instant::now();
        let generations = (0..k)
            .map(|i| {
                engine.submit(
                    Persona::Office,
                    request(
                        &format!("Request {i} of {k}: write a story."),
                        args.gen_tokens,
                        true,
                    ),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let completions = generations
            .into_iter()
            .map(|g| g.wait(|_| {}))
            .collect::<Result<Vec<_>, _>>()?;
        let wall = started.elapsed().as_secs_f64();
        // Generation throughput: tokens after each request's first, over the time from the
        // earliest first token to the latest last one (prompt reading is measured separately).
        let first = completions
            .iter()
            .filter_map(|c| c.timings.ttft_ms)
            .fold(f64::INFINITY, f64::min);
        let last = completions
            .iter()
            .map(|c| c.timings.total_ms)
            .fold(0.0, f64::max);
        let tokens: usize = completions
            .iter()
            .map(|c| c.completion_tokens.saturating_sub(1))
            .sum();
        let window_s = (last - first) / 1000.0;
        aggregate.push(serde_json::json!({
            "concurrent": k,
            "tokens": tokens,
            "generation_seconds": window_s,
            "wall_seconds": wall,
            "tokens_per_s": tokens as f64 / window_s,
        }));
    }

    let lookup = lookup(&engine, args)?;

    // A conversation of `turns` turns: time to first token of each.
    let mut messages = vec![ChatMessage::new(
        Role::System,
        "You are a helpful office assistant.",
    )];
    let mut ttft = Vec::new();
    let mut cached = Vec::new();
    for turn in 1..=args.turns {
        messages.push(ChatMessage::new(
            Role::User,
            format!("Turn {turn}: give me one practical tip for writing a clear status report for my team."),
        ));
        let c = run_one(
            &engine,
            ChatRequest {
                messages: messages.clone(),
                sampling: Some(greedy(48)),
                ignore_eos: false,
                local_only: false,
            },
        )?;
        ttft.push(c.timings.ttft_ms.unwrap_or(0.0));
        cached.push(
            serde_json::json!({"prompt_tokens": c.prompt_tokens, "cached_tokens": c.cached_tokens}),
        );
        messages.push(ChatMessage::new(Role::Assistant, c.text));
    }

    // The last turn again without the prompt cache: a changed system message shares no prefix.
    messages.pop();
    messages[0] = ChatMessage::new(Role::System, "You are a helpful office assistant!");
    let cold = run_one(
        &engine,
        ChatRequest {
            messages,
            sampling: Some(greedy(1)),
            ignore_eos: false,
            local_only: false,
        },
    )?;

    drop(engine);
    let restore = restore_rows(args, &config)?;

    let out = serde_json::json!({
        "model": args.model,
        "load_report": report,
        "threads": args.threads,
        "batch": args.batch,
        "prompt": { "tokens": pp_tokens, "tokens_per_s_runs": pp, "tokens_per_s": median(pp.clone()) },
        "generation": { "tokens": args.gen_tokens, "tokens_per_s_runs": tg, "tokens_per_s": median(tg.clone()) },
        "aggregate": aggregate,
        "lookup": lookup,
        "conversation": {
            "ttft_ms": ttft,
            "turns": cached,
            "last_turn_without_cache": { "ttft_ms": cold.timings.ttft_ms, "prompt_tokens": cold.prompt_tokens, "cached_tokens": cold.cached_tokens },
        },
        "restore": restore,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// One conversation turn of the restore measures: its time to first token and what it read.
fn turn_row(c: &Completion) -> serde_json::Value {
    serde_json::json!({
        "ttft_ms": c.timings.ttft_ms,
        "prompt_tokens": c.prompt_tokens,
        "cached_tokens": c.cached_tokens,
        "restored_tokens": c.restored_tokens,
    })
}

fn conversation_turn(
    engine: &Engine,
    messages: &[ChatMessage],
    max_tokens: u32,
) -> anyhow::Result<Completion> {
    run_one(
        engine,
        ChatRequest {
            messages: messages.to_vec(),
            sampling: Some(greedy(max_tokens)),
            ignore_eos: false,
            local_only: false,
        },
    )
}

/// The prompt cache on disk: turn 11 of a 10-turn conversation after a restart, warm, cold and
/// after the conversation was pushed out of its slot (see the module comment). Every measured
/// turn 11 reads the same stretch (its question, after the previous reply) at the same depth:
/// each comes from a conversation of its own, which differ only in a letter of the system
/// message.
fn restore_rows(args: &BenchArgs, config: &ModelConfig) -> anyhow::Result<serde_json::Value> {
    let dir = tempfile::tempdir().context("a folder for the benchmark's prompt cache")?;
    let open = || -> anyhow::Result<Engine> {
        let engine = Engine::new(None)?;
        engine.set_prompt_cache(dir.path().to_path_buf(), 4 << 30);
        engine.load(Persona::Office, &args.model, config)?;
        run_one(&engine, request("Hello", 8, true))?;
        Ok(engine)
    };
    let question = |n: u32| {
        ChatMessage::new(
            Role::User,
            format!("Turn {n}: give me one practical tip for writing a clear status report for my team."),
        )
    };
    // `turns` turns of the conversation with system message variant `letter`.
    let converse = |engine: &Engine, letter: char| -> anyhow::Result<Vec<ChatMessage>> {
        let mut messages = vec![ChatMessage::new(
            Role::System,
            format!("You are a helpful office assistant ({letter})."),
        )];
        for turn in 1..=args.turns {
            messages.push(question(turn));
            let c = conversation_turn(engine, &messages, 48)?;
            messages.push(ChatMessage::new(Role::Assistant, c.text));
        }
        Ok(messages)
    };
    let next = args.turns + 1;
    let ask = |messages: &[ChatMessage]| {
        let mut m = messages.to_vec();
        m.push(question(next));
        m
    };
    let (restored_conversation, warm) = {
        let engine = open()?;
        let restored = converse(&engine, 'A')?;
        let warm_conversation = converse(&engine, 'B')?;
        let warm = conversation_turn(&engine, &ask(&warm_conversation), 1)?;
        (restored, warm)
        // Dropped: the model unloads and saves its slots, as at an app exit.
    };
    let engine = open()?;
    let restarted = conversation_turn(&engine, &ask(&restored_conversation), 1)?;
    // The same reads from scratch: a system message no conversation had shares no prefix.
    let mut cold_messages = ask(&restored_conversation);
    cold_messages[0] = ChatMessage::new(Role::System, "You are a helpful office assistant (D).");
    let cold = conversation_turn(&engine, &cold_messages, 1)?;
    // A conversation, then 2 × parallel others of two turns: every slot holds another one since.
    let cycled_conversation = converse(&engine, 'C')?;
    let parallel = config.parallel.max(1);
    for other in 0..2 * parallel {
        let mut m = vec![
            ChatMessage::new(Role::System, format!("You are assistant number {other}.")),
            ChatMessage::new(
                Role::User,
                format!("Conversation {other}: name one use of a spreadsheet."),
            ),
        ];
        let c = conversation_turn(&engine, &m, 24)?;
        m.push(ChatMessage::new(Role::Assistant, c.text));
        m.push(ChatMessage::new(Role::User, "And one more?"));
        conversation_turn(&engine, &m, 24)?;
    }
    let cycled = conversation_turn(&engine, &ask(&cycled_conversation), 1)?;
    let stats = engine
        .status(Persona::Office)
        .map(|s| s.stats)
        .context("the benchmark model is not loaded")?;
    Ok(serde_json::json!({
        "turn": next,
        "after_restart": turn_row(&restarted),
        "warm": turn_row(&warm),
        "cold": turn_row(&cold),
        "after_cycling": turn_row(&cycled),
        "cycled_conversations": 2 * parallel,
        "disk_entries": stats.disk_cache_entries,
        "disk_bytes": stats.disk_cache_bytes,
        "bytes_per_conversation": stats.disk_cache_bytes / (stats.disk_cache_entries.max(1) as u64),
    }))
}

/// The lookup-decoding rows: the grounded task (when `--grounded-text` names its text) and open
/// chat.
fn lookup(engine: &Engine, args: &BenchArgs) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::json!({
        "grounded": match &args.grounded_text {
            Some(path) => lookup_rows(engine, &grounded_task(path)?, args)?,
            None => serde_json::Value::Null,
        },
        "chat": lookup_rows(
            engine,
            &[ChatMessage::new(
                Role::User,
                "Write a friendly note inviting my team to a Friday lunch, with three ideas for places to go.",
            )],
            args,
        )?,
    }))
}

/// The grounded task: repeat section 7 ("The Project Secretary") of the text at `path`.
fn grounded_task(path: &std::path::Path) -> anyhow::Result<Vec<ChatMessage>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the grounded task's text {}", path.display()))?;
    let section = text
        .find("7. The Project Secretary")
        .zip(text.find("8. The Project Leader's Delegates"))
        .map(|(start, end)| &text[start..end])
        .with_context(|| format!("{}: section 7 not found", path.display()))?;
    Ok(vec![ChatMessage::new(
        Role::User,
        format!("Repeat the following text exactly.\n\n{section}"),
    )])
}

/// Generation speed of `messages` with lookup decoding and without, in `repetitions`
/// alternating pairs; the ratio is the median of the pairs' ratios.
fn lookup_rows(
    engine: &Engine,
    messages: &[ChatMessage],
    args: &BenchArgs,
) -> anyhow::Result<serde_json::Value> {
    let run = |lookup: bool| {
        run_one(
            engine,
            ChatRequest {
                messages: messages.to_vec(),
                sampling: Some(Sampling {
                    lookup_decoding: if lookup {
                        AutoOr::Auto
                    } else {
                        AutoOr::Value(false)
                    },
                    ..greedy(args.gen_tokens)
                }),
                ignore_eos: false,
                local_only: false,
            },
        )
    };
    let (mut plain, mut fast, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut identical, mut drafted, mut accepted, mut steps, mut tokens) = (0, 0, 0, 0, 0);
    for _ in 0..args.repetitions.max(1) {
        let p = run(false)?;
        let f = run(true)?;
        let (p_tps, f_tps) = (
            p.timings.generation_tokens_per_s.unwrap_or(0.0),
            f.timings.generation_tokens_per_s.unwrap_or(0.0),
        );
        plain.push(p_tps);
        fast.push(f_tps);
        ratios.push(if p_tps > 0.0 { f_tps / p_tps } else { 0.0 });
        identical += u32::from(p.text == f.text);
        drafted += f.timings.drafted_tokens;
        accepted += f.timings.accepted_tokens;
        steps += f.timings.generation_steps;
        tokens += f.completion_tokens;
    }
    Ok(serde_json::json!({
        "plain_tokens_per_s": median(plain.clone()),
        "lookup_tokens_per_s": median(fast.clone()),
        "plain_tokens_per_s_runs": plain,
        "lookup_tokens_per_s_runs": fast,
        "ratio_runs": ratios,
        "ratio": median(ratios.clone()),
        "identical_replies": identical,
        "pairs": args.repetitions.max(1),
        "reply_tokens": tokens,
        "acceptance": if drafted > 0 { f64::from(accepted) / f64::from(drafted) } else { 0.0 },
        "tokens_per_step": if steps > 0 { f64::from(steps + accepted) / f64::from(steps) } else { 1.0 },
    }))
}

fn request(text: &str, max_tokens: u32, ignore_eos: bool) -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::new(Role::User, text)],
        sampling: Some(greedy(max_tokens)),
        ignore_eos,
        local_only: false,
    }
}

/// A prompt of roughly `tokens` tokens (about 1.3 tokens per English word), distinct per `rep`.
fn long_prompt(rep: u32, tokens: u32) -> String {
    let words = [
        "quarterly",
        "budget",
        "report",
        "meeting",
        "schedule",
        "invoice",
        "deadline",
        "summary",
        "project",
        "customer",
    ];
    let mut text = format!("Document {rep}:");
    let target_words = (tokens as usize * 3) / 4;
    for i in 0..target_words {
        text.push(' ');
        text.push_str(words[(i * 7 + rep as usize) % words.len()]);
    }
    text
}
