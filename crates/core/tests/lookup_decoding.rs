//! Prompt-lookup decoding on a real model (SmolLM2 135M from the mirror): it changes how many
//! decode calls a reply takes, not the reply. Each test generates the same request with and
//! without it, each from a freshly loaded model, and compares the text and token counts, on a
//! grounded task (repeating a clause of a real public text, the Debian constitution from the
//! benchmark corpus) and on open chat, where many drafts are rejected.
//!
//! What "the same" can mean here: llama.cpp's CPU kernels round differently for different batch
//! shapes (from 8 rows the tiled K-quant matmul and llamafile's sgemm, from 64 query rows the
//! tiled flash attention; and a single query over 512 or more KV cells takes the split-KV flash
//! attention path). Plain decoding itself gives another reply when the prompt is read in batches
//! of 7 instead of 512 on this model. Lookup decoding keeps a step's replies and their drafts
//! under 8 rows (`lookup::MAX_VERIFY_ROWS`), so while a sequence stays under 256 cells (the KV cache's padding to
//! 512) every row is computed as in plain decoding, and the replies must be identical to the
//! token. These tests stay in that range (flash attention on, prompts under 180 tokens, replies
//! of 80). Beyond it, a near-tie can be resolved differently, exactly as when another request
//! shares the batch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use deskmate_core::config::{AutoOr, ModelConfig, Sampling};
use deskmate_core::engine::{ChatMessage, ChatRequest, Completion, Engine, FinishReason};
use deskmate_core::store::{Persona, Role};

mod common;
use common::model;

const SMOL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn load(parallel: u32) -> Engine {
    let engine = Engine::new(None).unwrap();
    let config = ModelConfig {
        n_ctx: 2048 * parallel,
        n_batch: 512,
        parallel,
        max_queue: 8,
        threads: AutoOr::Value(2),
        flash_attn: AutoOr::Value(true),
        ..ModelConfig::default()
    };
    engine.load(Persona::Office, &model(SMOL), &config).unwrap();
    engine
}

/// Section 7.2 of the Debian constitution ("Appointment" of the Project Secretary), as the
/// corpus has it, without its heading.
fn secretary_section() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../xtask/bench-data/documents/corpus/debian-constitution.txt"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let start = text.find("   The Project Secretary is appointed").unwrap();
    let end = text.find("  7.3. Procedure").unwrap();
    text[start..end].to_owned()
}

fn grounded() -> Vec<ChatMessage> {
    vec![ChatMessage::new(
        Role::User,
        format!(
            "Repeat the following text exactly.\n\n{}",
            secretary_section()
        ),
    )]
}

fn chat() -> Vec<ChatMessage> {
    vec![ChatMessage::new(
        Role::User,
        "Write a short friendly note inviting my team to a Friday lunch.",
    )]
}

fn generate(engine: &Engine, messages: Vec<ChatMessage>, sampling: &Sampling) -> Completion {
    engine
        .submit(
            Persona::Office,
            ChatRequest {
                messages,
                sampling: Some(sampling.clone()),
                ignore_eos: false,
                local_only: false,
            },
        )
        .unwrap()
        .wait(|_| {})
        .unwrap()
}

/// `on`: draft whenever the history offers a draft (`true`, not `"auto"`, which on a CPU skips
/// most of SmolLM2's drafts as not worth their cost), so that the tests see many drafts, and
/// partly rejected ones; `false`: plain decoding.
fn with_lookup(sampling: &Sampling, on: bool) -> Sampling {
    Sampling {
        lookup_decoding: AutoOr::Value(on),
        ..sampling.clone()
    }
}

fn greedy() -> Sampling {
    Sampling {
        temperature: 0.0,
        max_tokens: 80,
        ..Sampling::default()
    }
}

#[test]
fn at_temperature_zero_lookup_decoding_gives_the_tokens_of_plain_decoding() {
    let mut drafted = 0;
    let mut accepted = 0;
    for messages in [grounded(), chat()] {
        let plain = generate(&load(1), messages.clone(), &with_lookup(&greedy(), false));
        let fast = generate(&load(1), messages, &with_lookup(&greedy(), true));
        assert_eq!(fast.text, plain.text);
        assert_eq!(fast.completion_tokens, plain.completion_tokens);
        assert_eq!(fast.finish_reason, plain.finish_reason);
        assert_eq!(plain.timings.drafted_tokens, 0, "plain decoding drafted");
        assert_eq!(
            plain.timings.generation_steps as usize + 1,
            plain.completion_tokens + usize::from(plain.finish_reason == FinishReason::Stop),
            "plain decoding: one decode call per token after the first"
        );
        drafted += fast.timings.drafted_tokens;
        accepted += fast.timings.accepted_tokens;
        // Every confirmed draft saved a decode call.
        assert_eq!(
            fast.timings.generation_steps + fast.timings.accepted_tokens,
            plain.timings.generation_steps
        );
    }
    assert!(accepted > 0, "no draft was confirmed");
    assert!(
        accepted < drafted,
        "no draft was rejected ({accepted} of {drafted}): the test must cover a partly rejected draft"
    );
}

#[test]
fn confirmed_drafts_save_decode_calls_and_show_in_the_model_statistics() {
    // SmolLM2 135M paraphrases more than it copies; a clause of the text still comes back.
    let engine = load(1);
    let fast = generate(&engine, grounded(), &with_lookup(&greedy(), true));
    assert!(
        fast.text.contains("appointed by the Project Leader"),
        "the model did not repeat the clause: {}",
        fast.text
    );
    let t = fast.timings;
    assert!(t.accepted_tokens > 0, "no draft confirmed: {t:?}");
    // One sampled token per decode call, plus the confirmed drafts.
    assert_eq!(
        t.generation_steps as usize + 1 + t.accepted_tokens as usize,
        fast.completion_tokens + usize::from(fast.finish_reason == FinishReason::Stop)
    );
    let stats = engine.status(Persona::Office).unwrap().stats;
    let acceptance = f64::from(t.accepted_tokens) / f64::from(t.drafted_tokens);
    assert_eq!(stats.lookup_acceptance, Some(acceptance));
    assert!(stats.tokens_per_step.unwrap() > 1.0);
}

#[test]
fn when_sampling_with_a_seed_lookup_decoding_draws_the_same_reply() {
    // Each sampled token consumes one draw of the seeded generator in both modes, from the
    // same logits, so the reply is not only equally distributed but the same.
    let sampling = Sampling {
        temperature: 0.8,
        seed: Some(1234),
        max_tokens: 80,
        ..Sampling::default()
    };
    for messages in [grounded(), chat()] {
        let plain = generate(&load(1), messages.clone(), &with_lookup(&sampling, false));
        let fast = generate(&load(1), messages, &with_lookup(&sampling, true));
        assert_eq!(fast.text, plain.text);
    }
}

#[test]
fn concurrent_replies_with_drafts_in_one_batch_match_their_plain_replies() {
    // Both runs must share the batch the same way: the two prompts read in one decode call,
    // then one token of each reply per step (plus drafts, all under 8 rows). Whether the worker
    // took both requests at once is up to the scheduler (on a loaded machine it may wake
    // between the two submits and read the first prompt alone, and prompt rows are computed
    // differently in another batch), so a run where it did not is seen in the timings and run
    // again rather than compared.
    for _ in 0..3 {
        let plain = concurrently(&load(2), false);
        let fast = concurrently(&load(2), true);
        if !(read_together(&plain) && read_together(&fast)) {
            continue;
        }
        let texts =
            |replies: &[Completion]| replies.iter().map(|c| c.text.clone()).collect::<Vec<_>>();
        assert_eq!(texts(&fast), texts(&plain));
        assert!(
            fast.iter().any(|c| c.timings.accepted_tokens > 0),
            "no draft was confirmed in the concurrent run"
        );
        return;
    }
    panic!("in three tries the worker never read the two prompts in one decode call");
}

/// Whether the second request's prompt was read in the decode call that read the first one's:
/// it was submitted after the first, so then its first token came no later (give or take the
/// sampling between them); read a step later, it comes at least that step later.
fn read_together(replies: &[Completion]) -> bool {
    let first_token = |c: &Completion| c.timings.ttft_ms.unwrap_or(f64::INFINITY);
    first_token(&replies[1]) <= first_token(&replies[0]) + 5.0
}

fn concurrently(engine: &Engine, lookup: bool) -> Vec<Completion> {
    let running: Vec<_> = [grounded(), chat()]
        .into_iter()
        .map(|messages| {
            engine
                .submit(
                    Persona::Office,
                    ChatRequest {
                        messages,
                        sampling: Some(with_lookup(&greedy(), lookup)),
                        ignore_eos: false,
                        local_only: false,
                    },
                )
                .unwrap()
        })
        .collect();
    running
        .into_iter()
        .map(|g| g.wait(|_| {}).unwrap())
        .collect()
}
