//! The prompt cache on disk with the real SmolLM2 model: a conversation survives the engine
//! being dropped and loaded again, and being pushed out of its slot by other conversations;
//! damaged files are never trusted; the cache keeps to its budget.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use deskmate_core::config::{AutoOr, ModelConfig, Sampling};
use deskmate_core::engine::{ChatMessage, ChatRequest, Completion, Engine};
use deskmate_core::store::{Persona, Role};

mod common;
use common::model;

const SMOL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn config(parallel: u32) -> ModelConfig {
    ModelConfig {
        n_ctx: 2048 * parallel,
        n_batch: 256,
        parallel,
        max_queue: 8,
        threads: AutoOr::Value(2),
        sampling: Sampling {
            temperature: 0.0,
            max_tokens: 24,
            ..Sampling::default()
        },
        ..ModelConfig::default()
    }
}

fn engine_with_cache(dir: &Path, budget: u64, parallel: u32) -> Engine {
    let engine = Engine::new(None).unwrap();
    engine.set_prompt_cache(dir.to_path_buf(), budget);
    engine
        .load(Persona::Office, &model(SMOL), &config(parallel))
        .unwrap();
    engine
}

fn send(engine: &Engine, messages: &[ChatMessage]) -> Completion {
    engine
        .submit(
            Persona::Office,
            ChatRequest {
                messages: messages.to_vec(),
                sampling: None,
                ignore_eos: false,
                local_only: false,
            },
        )
        .unwrap()
        .wait(|_| {})
        .unwrap()
}

/// `turns` turns of one conversation (`topic` makes it differ from others); the messages so far.
fn converse(engine: &Engine, topic: &str, turns: usize) -> Vec<ChatMessage> {
    let mut messages = vec![ChatMessage::new(
        Role::System,
        "You are a helpful office assistant. Answer briefly.",
    )];
    for turn in 1..=turns {
        messages.push(ChatMessage::new(
            Role::User,
            format!("Question {turn} about {topic}: give one short tip for the office."),
        ));
        let reply = send(engine, &messages);
        messages.push(ChatMessage::new(Role::Assistant, reply.text));
    }
    messages
}

fn next_question(messages: &[ChatMessage]) -> Vec<ChatMessage> {
    let mut next = messages.to_vec();
    next.push(ChatMessage::new(
        Role::User,
        "Summarise your tips in one line.",
    ));
    next
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().filter_map(|e| e.ok()) {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn kv_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for sub in std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()) {
        for file in std::fs::read_dir(sub.path())
            .unwrap()
            .filter_map(|e| e.ok())
        {
            if file.path().extension().is_some_and(|e| e == "kv") {
                found.push(file.path());
            }
        }
    }
    found
}

#[test]
fn after_a_restart_turn_eleven_restores_the_conversation_and_reads_only_what_is_new() {
    let dir = tempfile::tempdir().unwrap();
    let (history, warm) = {
        let engine = engine_with_cache(dir.path(), 1 << 30, 2);
        let history = converse(&engine, "spreadsheets", 10);
        // Turn 11 with the conversation still in its slot: the reply a restore must give.
        let warm = send(&engine, &next_question(&history));
        assert!(warm.prompt_tokens - warm.cached_tokens < 64, "{warm:?}");
        (history, warm)
        // Dropping the engine unloads the model, which saves its slots.
    };
    assert_eq!(kv_files(dir.path()).len(), 1, "one conversation saved");
    let engine = engine_with_cache(dir.path(), 1 << 30, 2);
    let turn11 = send(&engine, &next_question(&history));
    let new = turn11.prompt_tokens - turn11.cached_tokens;
    assert!(
        new < 64,
        "turn 11 read {new} new tokens of {} ({} restored)",
        turn11.prompt_tokens,
        turn11.restored_tokens
    );
    assert_eq!(turn11.restored_tokens, turn11.cached_tokens);
    assert!(turn11.restored_tokens > 300, "{turn11:?}");
    let stats = engine.status(Persona::Office).unwrap().stats;
    assert_eq!(stats.restored_requests, 1);
    assert_eq!(stats.restored_tokens, turn11.restored_tokens as u64);
    assert!(stats.disk_cache_bytes > 0);

    // The restored cache holds the numbers the slot held, so the reply starts as the warm one
    // does. Not all of it: the last prompt token is read in a batch of its own here and within
    // the new tokens there, and that difference in rounding can tip a near tie later on.
    let same = turn11
        .text
        .chars()
        .zip(warm.text.chars())
        .take_while(|(a, b)| a == b)
        .count();
    assert!(
        same >= 20,
        "restored {:?} and warm {:?} part after {same} characters",
        turn11.text,
        warm.text
    );
}

#[test]
fn a_conversation_pushed_out_of_its_slot_by_others_comes_back_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_cache(dir.path(), 1 << 30, 2);
    let history = converse(&engine, "meetings", 4);
    // Four other conversations through the two slots: the first one's slot is taken.
    for topic in ["printers", "email", "calendars", "expenses"] {
        converse(&engine, topic, 2);
    }
    let next = send(&engine, &next_question(&history));
    assert!(next.restored_tokens > 100, "{next:?}");
    assert!(next.prompt_tokens - next.cached_tokens < 64, "{next:?}");
}

#[test]
fn corrupt_truncated_and_mismatched_cache_files_are_deleted_and_the_reply_is_still_right() {
    let dir = tempfile::tempdir().unwrap();
    let history = {
        let engine = engine_with_cache(dir.path(), 1 << 30, 2);
        converse(&engine, "filing", 4)
    };
    let reference = {
        let cold = Engine::new(None).unwrap();
        cold.load(Persona::Office, &model(SMOL), &config(2))
            .unwrap();
        send(&cold, &next_question(&history)).text
    };
    assert_eq!(kv_files(dir.path()).len(), 1);
    type Damage = fn(&[u8]) -> Vec<u8>;
    let damages: [(&str, Damage); 3] = [
        ("one flipped byte", |b| {
            let mut b = b.to_vec();
            let at = b.len() / 2;
            b[at] ^= 0x5a;
            b
        }),
        ("truncated", |b| b[..b.len() / 3].to_vec()),
        // Bytes of the right length that are not this state.
        ("different bytes", |b| vec![0u8; b.len()]),
    ];
    for (what, damage) in damages {
        // Each damage on a copy of the cache as the first engine left it.
        let copy = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), copy.path());
        let saved = kv_files(copy.path());
        let original = std::fs::read(&saved[0]).unwrap();
        std::fs::write(&saved[0], damage(&original)).unwrap();
        let engine = engine_with_cache(copy.path(), 1 << 30, 2);
        let reply = send(&engine, &next_question(&history));
        assert_eq!(reply.restored_tokens, 0, "{what}");
        assert_eq!(reply.text, reference, "{what}: the reply is the cold one");
        assert!(!saved[0].exists(), "{what}: the damaged file is deleted");
    }

    // Mismatched parameters: a different context size looks in another folder and finds
    // nothing of this one.
    let engine = Engine::new(None).unwrap();
    engine.set_prompt_cache(dir.path().to_path_buf(), 1 << 30);
    let mut other = config(2);
    other.n_ctx = 3072;
    engine.load(Persona::Office, &model(SMOL), &other).unwrap();
    let reply = send(&engine, &next_question(&history));
    assert_eq!(reply.restored_tokens, 0);
}

#[test]
fn the_cache_on_disk_never_grows_past_its_budget() {
    let dir = tempfile::tempdir().unwrap();
    // Room for about two short conversations of this model.
    let budget: u64 = 12 << 20;
    let engine = engine_with_cache(dir.path(), budget, 1);
    for topic in ["a", "b", "c", "d", "e", "f"] {
        converse(&engine, &format!("topic {topic}"), 3);
        let used: u64 = kv_files(dir.path())
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        assert!(used <= budget, "{used} bytes on disk after {topic}");
    }
    let stats = engine.status(Persona::Office).unwrap().stats;
    assert!(stats.disk_cache_entries >= 1, "{stats:?}");
    assert!(stats.disk_cache_bytes <= budget);
}
