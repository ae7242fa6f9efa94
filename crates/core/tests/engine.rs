//! The engine against real models from the mirror (SmolLM2 135M, and Gemma 3 270M for Korean):
//! loading and its report, the chat template, streaming, cancellation, the queue, concurrent
//! slots, the prompt cache, context overflow, stop strings, shared weights, and bad model files.
//!
//! The model files come from `models/` in the repository (`cargo xtask models --set test`) or
//! from the mirror named by `DESKMATE_MODEL_MIRROR`; without them these tests fail and say so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use deskmate_core::error::EngineError;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deskmate_core::config::{AutoOr, ModelConfig, Sampling};
use deskmate_core::engine::{
    ChatMessage, ChatRequest, Engine, FinishReason, GenerationEvent, RequestSink,
};
use deskmate_core::store::{Persona, RequestRecord, Role};
use deskmate_core::Error;

mod common;
use common::model;

const SMOL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const GEMMA: &str = "gemma-3-270m-q4_k_m.gguf";

fn config(parallel: u32, max_tokens: u32) -> ModelConfig {
    ModelConfig {
        n_ctx: 1024 * parallel,
        n_batch: 256,
        parallel,
        max_queue: 4,
        threads: AutoOr::Value(2),
        sampling: Sampling {
            temperature: 0.0,
            max_tokens,
            ..Sampling::default()
        },
        ..ModelConfig::default()
    }
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::new(Role::User, text)],
        sampling: None,
        ignore_eos: false,
        local_only: false,
    }
}

fn engine() -> Engine {
    Engine::new(None).unwrap()
}

#[test]
fn loads_smollm2_on_the_cpu_and_reports_how() {
    let engine = engine();
    let report = engine
        .load(Persona::Office, &model(SMOL), &config(2, 16))
        .unwrap();
    assert_eq!(report.architecture.as_deref(), Some("llama"));
    assert_eq!(report.quantization.as_deref(), Some("Q4_1"));
    assert_eq!(report.layers_total, 30);
    assert_eq!(report.layers_on_gpu, 0, "this build has no GPU backend");
    assert_eq!(report.gpu, None);
    assert_eq!((report.n_ctx, report.n_ctx_per_slot), (2048, 1024));
    assert_eq!(report.chat_template, "from the model file");
    assert_eq!(report.attempts.len(), 1);
    assert!(report.attempts[0].failure.is_none());
    assert!(report.load_ms > 0.0);
    let status = engine.status(Persona::Office).unwrap();
    assert_eq!(status.stats.slots, 2);
}

#[test]
fn a_reply_streams_as_text_pieces_that_add_up_to_the_answer() {
    let engine = engine();
    engine
        .load(Persona::Office, &model(SMOL), &config(1, 24))
        .unwrap();
    let mut generation = engine
        .submit(Persona::Office, ask("What is the capital of France?"))
        .unwrap();
    let mut pieces = Vec::new();
    let mut started = None;
    let completion = loop {
        match generation.blocking_next().expect("the stream ended early") {
            GenerationEvent::Started { prompt_tokens, .. } => started = Some(prompt_tokens),
            GenerationEvent::Text(t) => pieces.push(t),
            GenerationEvent::Finished(c) => break c,
            GenerationEvent::Failed(e) => panic!("{e}"),
        }
    };
    // The ChatML template wraps the question in its markers: more tokens than the words.
    assert!(started.unwrap() > 10);
    assert!(pieces.len() > 3, "{pieces:?}");
    assert_eq!(pieces.concat(), completion.text);
    assert!(completion.text.contains("Paris"), "{}", completion.text);
    assert!(completion.completion_tokens > 0);
    assert!(completion.timings.ttft_ms.unwrap() > 0.0);
    assert!(completion.timings.prompt_tokens_per_s.unwrap() > 0.0);
}

#[test]
fn cancelling_mid_stream_stops_the_reply_and_frees_the_slot() {
    let engine = engine();
    engine
        .load(Persona::Office, &model(SMOL), &config(1, 400))
        .unwrap();
    let mut generation = engine
        .submit(
            Persona::Office,
            ask("Write a very long story about a dragon, with many chapters."),
        )
        .unwrap();
    let cancel = generation.cancel_token();
    let mut cancelled_at = None;
    let completion = loop {
        match generation.blocking_next().unwrap() {
            GenerationEvent::Text(_) if cancelled_at.is_none() => {
                cancel.cancel();
                cancelled_at = Some(Instant::now());
            }
            GenerationEvent::Finished(c) => break c,
            GenerationEvent::Failed(e) => panic!("{e}"),
            _ => {}
        }
    };
    assert_eq!(completion.finish_reason, FinishReason::Cancelled);
    assert!(completion.completion_tokens < 10, "{completion:?}");
    assert!(cancelled_at.unwrap().elapsed() < Duration::from_secs(2));
    // The only slot is free again: the next request runs.
    let next = engine.submit(Persona::Office, ask("Hi")).unwrap();
    let done = next.wait(|_| {}).unwrap();
    assert_ne!(done.finish_reason, FinishReason::Cancelled);
    let stats = engine.status(Persona::Office).unwrap().stats;
    assert_eq!(
        (stats.cancelled, stats.succeeded, stats.active_slots),
        (1, 1, 0)
    );
}

#[test]
fn dropping_a_generation_cancels_it() {
    let engine = engine();
    engine
        .load(Persona::Office, &model(SMOL), &config(1, 400))
        .unwrap();
    let generation = engine
        .submit(Persona::Office, ask("Tell me a long story."))
        .unwrap();
    drop(generation);
    let done = engine
        .submit(Persona::Office, ask("Hi"))
        .unwrap()
        .wait(|_| {})
        .unwrap();
    assert_ne!(done.finish_reason, FinishReason::Cancelled);
    assert_eq!(engine.status(Persona::Office).unwrap().stats.cancelled, 1);
}

#[test]
fn a_full_queue_answers_busy_at_once() {
    let engine = engine();
    let mut cfg = config(1, 300);
    cfg.max_queue = 1;
    engine.load(Persona::Office, &model(SMOL), &cfg).unwrap();
    let long = || ask("Write a very long story about a dragon.");
    let _running = engine.submit(Persona::Office, long()).unwrap();
    let _waiting = engine.submit(Persona::Office, long()).unwrap();
    let started = Instant::now();
    let refused = engine.submit(Persona::Office, long()).unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(100));
    assert!(
        matches!(refused, Error::Engine(EngineError::Busy { .. })),
        "{refused}"
    );
    assert_eq!(refused.code(), "busy");
    assert_eq!(engine.status(Persona::Office).unwrap().stats.busy, 1);
}

#[test]
fn four_concurrent_requests_all_complete_in_one_batch() {
    let engine = engine();
    engine
        .load(Persona::Office, &model(SMOL), &config(4, 24))
        .unwrap();
    let questions = [
        "What is 2 + 2?",
        "Name a colour.",
        "What is the capital of Italy?",
        "Say hello.",
    ];
    let generations: Vec<_> = questions
        .iter()
        .map(|q| engine.submit(Persona::Office, ask(q)).unwrap())
        .collect();
    let peak = Arc::new(Mutex::new(0usize));
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = generations
            .into_iter()
            .map(|g| s.spawn(|| g.wait(|_| {})))
            .collect();
        while handles.iter().any(|h| !h.is_finished()) {
            let active = engine.status(Persona::Office).unwrap().stats.active_slots;
            let mut p = peak.lock().unwrap();
            *p = (*p).max(active);
            drop(p);
            std::thread::sleep(Duration::from_millis(5));
        }
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &results {
        let c = r.as_ref().unwrap();
        assert!(c.completion_tokens > 0);
    }
    assert!(
        *peak.lock().unwrap() >= 2,
        "requests should share decode steps"
    );
    assert_eq!(engine.status(Persona::Office).unwrap().stats.succeeded, 4);
}

#[test]
fn the_next_turn_of_a_conversation_reuses_the_cached_prefix() {
    let engine = engine();
    engine
        .load(Persona::Office, &model(SMOL), &config(2, 32))
        .unwrap();
    let system = ChatMessage::new(Role::System, "You are a helpful office assistant.");
    let q1 = ChatMessage::new(Role::User, "What is a spreadsheet?");
    let first = engine
        .submit(
            Persona::Office,
            ChatRequest {
                messages: vec![system.clone(), q1.clone()],
                sampling: None,
                ignore_eos: false,
                local_only: false,
            },
        )
        .unwrap()
        .wait(|_| {})
        .unwrap();
    assert_eq!(first.cached_tokens, 0);
    let second = engine
        .submit(
            Persona::Office,
            ChatRequest {
                messages: vec![
                    system,
                    q1,
                    ChatMessage::new(Role::Assistant, first.text.clone()),
                    ChatMessage::new(Role::User, "And what is a formula?"),
                ],
                sampling: None,
                ignore_eos: false,
                local_only: false,
            },
        )
        .unwrap()
        .wait(|_| {})
        .unwrap();
    assert!(
        second.cached_tokens >= first.prompt_tokens,
        "turn 2 should reuse turn 1's prompt: {} cached of {}",
        second.cached_tokens,
        second.prompt_tokens
    );
    let stats = engine.status(Persona::Office).unwrap().stats;
    assert!(stats.cache_hit_ratio.unwrap() > 0.3);
}

#[test]
fn a_conversation_longer_than_the_slot_drops_its_oldest_turns() {
    let engine = engine();
    let mut cfg = config(1, 16);
    cfg.n_ctx = 512;
    engine.load(Persona::Office, &model(SMOL), &cfg).unwrap();
    let mut messages = vec![ChatMessage::new(Role::System, "Be brief.")];
    for i in 0..12 {
        messages.push(ChatMessage::new(
            Role::User,
            format!("Question {i}: please summarise the quarterly budget report for the sales team in detail."),
        ));
        messages.push(ChatMessage::new(
            Role::Assistant,
            "The report shows revenue up four percent, costs flat, and a hiring plan for two analysts.",
        ));
    }
    messages.push(ChatMessage::new(Role::User, "What was the revenue change?"));
    let done = engine
        .submit(
            Persona::Office,
            ChatRequest {
                messages,
                sampling: None,
                ignore_eos: false,
                local_only: false,
            },
        )
        .unwrap()
        .wait(|_| {})
        .unwrap();
    assert!(done.dropped_turns > 0);
    assert!(done.prompt_tokens + 16 <= 512);

    // A single message too long for the slot is an error, not a crash.
    let huge = "budget ".repeat(2000);
    let err = engine
        .submit(Persona::Office, ask(&huge))
        .unwrap()
        .wait(|_| {})
        .unwrap_err();
    assert_eq!(err.code(), "prompt_too_long", "{err}");
}

#[test]
fn a_stop_string_ends_the_reply_and_is_not_shown() {
    let engine = engine();
    let mut cfg = config(1, 48);
    cfg.sampling.stop = vec!["Paris".to_owned()];
    engine.load(Persona::Office, &model(SMOL), &cfg).unwrap();
    let done = engine
        .submit(Persona::Office, ask("What is the capital of France?"))
        .unwrap()
        .wait(|_| {})
        .unwrap();
    assert_eq!(
        done.finish_reason,
        FinishReason::StopString,
        "{}",
        done.text
    );
    assert!(!done.text.contains("Paris"));
}

#[test]
fn korean_text_streams_as_valid_utf8_with_the_builtin_gemma_template() {
    let engine = engine();
    let report = engine
        .load(Persona::Character, &model(GEMMA), &config(1, 40))
        .unwrap();
    assert_eq!(report.chat_template, "built-in gemma (the file has none)");
    let mut pieces = Vec::new();
    let done = engine
        .submit(
            Persona::Character,
            ask("서울은 한국의 수도입니다. 서울에 대해 한국어로 설명해 주세요."),
        )
        .unwrap()
        .wait(|t| pieces.push(t.to_owned()))
        .unwrap();
    let hangul = |c: char| ('\u{ac00}'..='\u{d7a3}').contains(&c);
    assert!(done.text.chars().any(hangul), "{}", done.text);
    assert!(!done.text.contains('\u{fffd}'), "{}", done.text);
    assert_eq!(pieces.concat(), done.text);
}

#[test]
fn the_config_template_overrides_the_files_own() {
    let engine = engine();
    let mut cfg = config(1, 8);
    cfg.chat_template = Some("zephyr".to_owned());
    let report = engine.load(Persona::Office, &model(SMOL), &cfg).unwrap();
    assert_eq!(report.chat_template, "config: zephyr");
    let mut bad = config(1, 8);
    bad.chat_template = Some("{{ this is not a template llama.cpp knows }}".to_owned());
    let err = engine
        .load(Persona::Office, &model(SMOL), &bad)
        .unwrap_err();
    assert_eq!(err.code(), "chat_template", "{err}");
}

#[test]
fn both_personas_on_one_file_share_the_weights_and_reload_independently() {
    let engine = engine();
    let path = model(SMOL);
    let office = engine.load(Persona::Office, &path, &config(1, 8)).unwrap();
    let character = engine
        .load(Persona::Character, &path, &config(1, 8))
        .unwrap();
    assert_eq!(office.shared_with, None);
    assert_eq!(character.shared_with, Some(Persona::Office));
    // Reloading the office model leaves the character model serving.
    engine.load(Persona::Office, &path, &config(2, 8)).unwrap();
    for persona in [Persona::Office, Persona::Character] {
        let done = engine
            .submit(persona, ask("Hi"))
            .unwrap()
            .wait(|_| {})
            .unwrap();
        assert!(done.completion_tokens > 0);
    }
    engine.unload(Persona::Office);
    let err = engine.submit(Persona::Office, ask("Hi")).unwrap_err();
    assert_eq!(err.code(), "model_not_loaded");
}

#[test]
fn unloading_ends_running_requests_with_a_typed_error() {
    let engine = engine();
    engine
        .load(Persona::Office, &model(SMOL), &config(1, 400))
        .unwrap();
    let mut generation = engine
        .submit(Persona::Office, ask("Write a long story about a castle."))
        .unwrap();
    // Wait for the reply to start, then pull the model away.
    while let Some(event) = generation.blocking_next() {
        if matches!(event, GenerationEvent::Text(_)) {
            break;
        }
    }
    engine.unload(Persona::Office);
    let mut ended = None;
    while let Some(event) = generation.blocking_next() {
        if let GenerationEvent::Failed(e) = event {
            ended = Some(e.code());
        }
    }
    assert_eq!(ended, Some(deskmate_core::error::ErrorCode::ModelUnloaded));
}

#[test]
fn every_finished_request_reaches_the_request_log_sink() {
    let records: Arc<Mutex<Vec<RequestRecord>>> = Arc::default();
    let sink_records = Arc::clone(&records);
    let sink: RequestSink = Arc::new(move |r: &RequestRecord| {
        sink_records.lock().unwrap().push(r.clone());
    });
    let engine = Engine::new(Some(sink)).unwrap();
    engine
        .load(Persona::Office, &model(SMOL), &config(1, 8))
        .unwrap();
    engine
        .submit(Persona::Office, ask("Hi"))
        .unwrap()
        .wait(|_| {})
        .unwrap();
    let records = records.lock().unwrap();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.model, SMOL);
    assert_eq!(r.persona.as_deref(), Some("office"));
    assert_eq!(r.outcome, "ok");
    assert!(r.prompt_tokens > 0 && r.completion_tokens > 0);
    assert!(r.ttft_ms.is_some() && r.total_ms.is_some());
}

/// Bad files are typed errors before llama.cpp sees them; a file llama.cpp itself rejects
/// fails with the reason from llama.cpp's log. The test process survives all of them.
#[test]
fn bad_model_files_are_typed_errors_and_never_abort() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(model(SMOL)).unwrap();
    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &good[..4096]).unwrap();
    let not_gguf = dir.path().join("notes.gguf");
    std::fs::write(&not_gguf, "these are meeting notes, not a model").unwrap();
    let corrupt = dir.path().join("corrupt.gguf");
    let mut bytes = good[..64].to_vec();
    bytes[8..16].copy_from_slice(&u64::MAX.to_le_bytes()); // absurd tensor count
    std::fs::write(&corrupt, &bytes).unwrap();
    // A well-formed file of an architecture llama.cpp does not know.
    let unknown_arch = dir.path().join("unknown-arch.gguf");
    let at = good
        .windows(b"general.architecture".len())
        .position(|w| w == b"general.architecture")
        .unwrap();
    let mut patched = good.clone();
    let value = at + b"general.architecture".len() + 4 + 8;
    assert_eq!(&patched[value..value + 5], b"llama");
    patched[value..value + 5].copy_from_slice(b"nosuc");
    std::fs::write(&unknown_arch, &patched).unwrap();

    let engine = engine();
    let cases = [
        (dir.path().join("missing.gguf"), "model_missing"),
        (dir.path().to_path_buf(), "model_not_a_file"),
        (truncated, "model_truncated"),
        (not_gguf, "model_not_gguf"),
        (corrupt, "model_corrupt"),
        (unknown_arch, "model_load_failed"),
    ];
    for (path, code) in cases {
        let err = engine
            .load(Persona::Office, &path, &config(1, 8))
            .unwrap_err();
        assert_eq!(err.code(), code, "{}: {err}", path.display());
        if code == "model_load_failed" {
            let text = err.to_string();
            assert!(
                text.contains("nosuc"),
                "the reason should come from llama.cpp's log: {text}"
            );
        }
    }
    assert!(engine.status(Persona::Office).is_none());
}

#[test]
fn persona_states_say_loaded_failed_or_not_loaded() {
    use deskmate_core::engine::PersonaState;
    let engine = engine();
    engine
        .load(Persona::Office, &model(SMOL), &config(1, 8))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    engine
        .load(
            Persona::Character,
            &dir.path().join("gone.gguf"),
            &config(1, 8),
        )
        .unwrap_err();
    let states = engine.persona_states();
    assert!(
        matches!(&states[0], PersonaState::Loaded { report, .. } if report.layers_total == 30),
        "{states:?}"
    );
    assert!(
        matches!(&states[1], PersonaState::Failed { error, .. } if error.code() == "model_missing"),
        "{states:?}"
    );
    let json = serde_json::to_value(&states).unwrap();
    assert_eq!(json[0]["state"], "loaded");
    assert_eq!(json[1]["state"], "failed");
    engine.unload(Persona::Office);
    assert!(matches!(
        engine.persona_states()[0],
        PersonaState::NotLoaded { .. }
    ));
}

/// A request with one small image (a 32 × 32 grey square).
fn ask_with_image(text: &str) -> ChatRequest {
    let mut message = ChatMessage::new(Role::User, text);
    message.images.push(deskmate_core::engine::ImageInput {
        width: 32,
        height: 32,
        rgb: Arc::new(vec![128; 32 * 32 * 3]),
    });
    ChatRequest {
        messages: vec![message],
        sampling: None,
        ignore_eos: false,
        local_only: false,
    }
}

#[test]
fn a_model_without_projector_says_it_cannot_see_and_refuses_an_image_request() {
    let engine = engine();
    let report = engine
        .load(Persona::Office, &model(SMOL), &config(1, 8))
        .unwrap();
    assert!(report.vision.is_none());
    let err = engine.vision_support(Persona::Office).unwrap_err();
    assert_eq!(err.code(), "vision_unavailable");
    assert!(err.to_string().contains("models.office.mmproj"), "{err}");
    let failed = engine
        .submit(Persona::Office, ask_with_image("What is this?"))
        .unwrap()
        .wait(|_| {})
        .unwrap_err();
    assert_eq!(failed.code(), "vision_unavailable", "{failed}");
    // The text model still answers.
    assert!(engine
        .submit(Persona::Office, ask("Hello"))
        .unwrap()
        .wait(|_| {})
        .is_ok());
}

#[test]
fn a_broken_or_wrong_projector_leaves_the_text_model_working_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("mmproj-garbage.gguf");
    std::fs::write(&garbage, b"this is not a projector at all").unwrap();
    // A real GGUF that is not a vision projector: a text model.
    let wrong = model(GEMMA);
    for (projector, expect) in [(garbage, "GGUF"), (wrong, "")] {
        let engine = engine();
        let report = engine
            .load(
                Persona::Office,
                &model(SMOL),
                &ModelConfig {
                    mmproj: Some(projector.clone()),
                    ..config(1, 8)
                },
            )
            .unwrap();
        let vision = report.vision.expect("a vision report");
        assert!(!vision.ready, "{projector:?}");
        let reason = vision.error.unwrap_or_default();
        assert!(reason.contains(expect), "{reason}");
        let err = engine.vision_support(Persona::Office).unwrap_err();
        assert!(err.to_string().contains("could not be loaded"), "{err}");
        assert!(engine
            .submit(Persona::Office, ask("Hello"))
            .unwrap()
            .wait(|_| {})
            .is_ok());
    }
}
