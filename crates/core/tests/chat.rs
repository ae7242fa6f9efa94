//! Chat turns against the real SmolLM2 model and a real SQLite file: what the chat page relies
//! on. A reply streams and is stored complete; a stopped reply keeps its text as interrupted;
//! retry replaces the last reply; a second send while replying is refused; follow-up questions
//! and the title come after the answer; a missing model is a typed failure that keeps the user's
//! message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deskmate_core::chat::{Chat, ChatEvent, TurnOptions};
use deskmate_core::config::{AutoOr, ModelConfig, Sampling};
use deskmate_core::engine::Engine;
use deskmate_core::store::{Persona, Role, SessionSetup, Store, Tone};

fn smol() -> PathBuf {
    common::model("SmolLM2-135M-Instruct.Q4_1.gguf")
}

fn config(max_tokens: u32) -> ModelConfig {
    ModelConfig {
        n_ctx: 4096,
        n_batch: 256,
        parallel: 2,
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

const OPTIONS: TurnOptions = TurnOptions {
    history_turns: Some(10),
    max_message_chars: 200,
    documents_to_remote: false,
};

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<Mutex<Store>>,
    chat: Chat,
}

fn fixture(max_tokens: u32) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Mutex::new(
        Store::open(&dir.path().join("deskmate.sqlite3")).unwrap(),
    ));
    let engine = Arc::new(Engine::new(None).unwrap());
    engine
        .load(Persona::Office, &smol(), &config(max_tokens))
        .unwrap();
    let chat = Chat::new(Arc::clone(&store), engine);
    Fixture {
        _dir: dir,
        store,
        chat,
    }
}

fn office() -> SessionSetup {
    SessionSetup {
        persona: Persona::Office,
        tone: Some(Tone::Polite),
        character: None,
    }
}

fn collect(turn: deskmate_core::chat::Turn) -> Vec<ChatEvent> {
    let mut events = Vec::new();
    turn.run(|e| events.push(e));
    events
}

#[test]
fn a_reply_streams_is_stored_and_is_followed_by_extras_and_done() {
    let f = fixture(48);
    let turn = f
        .chat
        .send(None, &office(), "What is the capital of France?", OPTIONS)
        .unwrap();
    let start = turn.start().clone();
    assert_eq!(start.reply.status, "streaming");

    assert_eq!(
        start.session.title, "What is the capital of France?",
        "a provisional title comes from the first message"
    );
    let events = collect(turn);
    let pieces: String = events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::Text { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let finished = events
        .iter()
        .find_map(|e| match e {
            ChatEvent::Finished { reply, .. } => Some(reply.clone()),
            _ => None,
        })
        .expect("a finished event");
    assert_eq!(finished.status, "complete");
    assert_eq!(
        finished.content, pieces,
        "the stream adds up to the stored text"
    );
    assert!(pieces.contains("Paris"), "{pieces}");
    assert!(matches!(events.first(), Some(ChatEvent::Started { .. })));
    assert!(matches!(events.last(), Some(ChatEvent::Done { .. })));
    // Related questions and the title come after the answer, never before it.
    let finished_at = events
        .iter()
        .position(|e| matches!(e, ChatEvent::Finished { .. }))
        .unwrap();
    for (i, e) in events.iter().enumerate() {
        if matches!(e, ChatEvent::Related { .. } | ChatEvent::Title { .. }) {
            assert!(i > finished_at);
        }
        if let ChatEvent::Related { questions, .. } = e {
            assert!(!questions.is_empty() && questions.len() <= 3);
            let stored = f.store.lock().unwrap().message(finished.id).unwrap();
            assert_eq!(&stored.suggestions, questions);
        }
    }
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ChatEvent::Related { .. })),
        "an office answer gets follow-up questions"
    );
    let titled = events.iter().find_map(|e| match e {
        ChatEvent::Title { session } => Some(session.clone()),
        _ => None,
    });
    if let Some(session) = titled {
        assert!(!session.title.is_empty() && session.title_is_auto);
    }
    let messages = f.store.lock().unwrap().messages(start.session.id).unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].role, Role::User);
    assert!(!f.chat.is_replying(start.session.id));
}

#[test]
fn stop_keeps_the_partial_reply_as_interrupted() {
    let f = fixture(400);
    let turn = f
        .chat
        .send(
            None,
            &office(),
            "Count from 1 to 200, separated by commas.",
            OPTIONS,
        )
        .unwrap();
    let session = turn.start().session.id;
    let chat = &f.chat;
    let mut events = Vec::new();
    let mut pieces = 0;
    turn.run(|e| {
        if let ChatEvent::Text { .. } = e {
            pieces += 1;
            if pieces == 5 {
                assert!(chat.stop(session));
            }
        }
        events.push(e);
    });
    let reply = events
        .iter()
        .find_map(|e| match e {
            ChatEvent::Finished { reply, .. } => Some(reply.clone()),
            _ => None,
        })
        .expect("a stopped reply still finishes");
    assert_eq!(reply.status, "interrupted");
    assert_eq!(reply.error_code.as_deref(), Some("cancelled"));
    assert!(!reply.content.is_empty());
    assert!(
        (5..=8).contains(&pieces),
        "the reply stopped at once ({pieces} pieces)"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, ChatEvent::Related { .. })),
        "no suggestions after an interrupted reply"
    );
    let stored = f.store.lock().unwrap().message(reply.id).unwrap();
    assert_eq!(stored.content, reply.content);
}

#[test]
fn a_reply_stopped_before_any_text_is_removed_and_says_so() {
    let f = fixture(64);
    let turn = f
        .chat
        .send(None, &office(), "Tell me a story.", OPTIONS)
        .unwrap();
    let session = turn.start().session.id;
    let reply_id = turn.start().reply.id;
    assert!(f.chat.stop(session));
    let events = collect(turn);
    let failed = events
        .iter()
        .find_map(|e| match e {
            ChatEvent::Failed {
                reply_id: id,
                reply,
                error,
            } => Some((*id, reply.is_none(), error.code().as_str())),
            _ => None,
        })
        .expect("the page is told the empty reply is gone");
    assert_eq!(failed, (reply_id, true, "cancelled"));
    assert!(matches!(events.last(), Some(ChatEvent::Done { .. })));
    let messages = f.store.lock().unwrap().messages(session).unwrap();
    assert_eq!(messages.len(), 1, "only the user's message remains");
}

#[test]
fn retry_replaces_the_last_reply_and_a_second_send_waits_its_turn() {
    let f = fixture(24);
    let turn = f.chat.send(None, &office(), "Say hello.", OPTIONS).unwrap();
    let session = turn.start().session.id;
    let first_reply = turn.start().reply.id;
    let busy = f
        .chat
        .send(Some(session), &office(), "Another one", OPTIONS)
        .unwrap_err();
    assert_eq!(busy.code(), "reply_in_progress");
    collect(turn);

    let retry = f.chat.retry(session, OPTIONS).unwrap();
    assert_eq!(retry.start().replaced, [first_reply]);
    assert!(retry.start().user_message.is_none());
    let events = collect(retry);
    assert!(events
        .iter()
        .any(|e| matches!(e, ChatEvent::Finished { reply, .. } if reply.status == "complete")));
    let messages = f.store.lock().unwrap().messages(session).unwrap();
    let roles: Vec<Role> = messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::Assistant]);
    assert_eq!(messages[0].content, "Say hello.");
}

#[test]
fn bad_input_is_refused_before_anything_is_stored() {
    let f = fixture(8);
    let empty = f.chat.send(None, &office(), "  \n ", OPTIONS).unwrap_err();
    assert_eq!(empty.code(), "invalid_input");
    let long = f
        .chat
        .send(None, &office(), &"가".repeat(201), OPTIONS)
        .unwrap_err();
    assert_eq!(long.code(), "message_too_long");
    assert_eq!(
        long.to_string(),
        "message: 201 characters is over the limit of 200 (chat.max_message_chars)"
    );
    assert!(f.store.lock().unwrap().sessions(None).unwrap().is_empty());
    let empty_session = f
        .store
        .lock()
        .unwrap()
        .create_session(Persona::Office, "")
        .unwrap();
    let nothing = f.chat.retry(empty_session.id, OPTIONS).unwrap_err();
    assert_eq!(nothing.code(), "nothing_to_retry");
}

#[test]
fn a_missing_model_fails_with_its_load_error_and_keeps_the_message() {
    let f = fixture(8);
    let engine = Arc::new(Engine::new(None).unwrap());
    let missing = f._dir.path().join("not-downloaded.gguf");
    assert!(engine
        .load(Persona::Character, &missing, &config(8))
        .is_err());
    let chat = Chat::new(Arc::clone(&f.store), engine);
    let turn = chat
        .send(
            None,
            &SessionSetup::of(Persona::Character),
            "안녕?",
            OPTIONS,
        )
        .unwrap();
    let session = turn.start().session.id;
    let events = collect(turn);
    let error = events
        .iter()
        .find_map(|e| match e {
            ChatEvent::Failed { error, reply, .. } => {
                assert!(reply.is_none(), "no empty reply is stored");
                Some(error.clone())
            }
            _ => None,
        })
        .expect("a failed event");
    assert_eq!(error.code(), "model_missing");
    let messages = f.store.lock().unwrap().messages(session).unwrap();
    assert_eq!(messages.len(), 1, "the user's message is kept");
    assert_eq!(messages[0].content, "안녕?");
    assert!(!chat.is_replying(session));
    // Stopping after the fact is harmless.
    assert!(!chat.stop(session));
    std::thread::sleep(Duration::from_millis(1));
}

/// Grounded answers: the office persona gets the passages the active profile may see, numbered,
/// and the page gets them as `sources` before the text; a restricted document never reaches a
/// lower clearance, neither as a source nor in the prompt.
#[test]
fn a_grounded_answer_cites_what_the_profile_may_see_and_nothing_above_it() {
    use deskmate_core::config::Config;
    use deskmate_core::documents::Library;
    use deskmate_core::store::AccessLevel;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("deskmate.sqlite3");
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let handbook = files.join("garage.md");
    std::fs::write(
        &handbook,
        "# Garage\n\nThe office garage closes at 10 p.m. on weekdays.",
    )
    .unwrap();
    let secret = files.join("falcon.txt");
    std::fs::write(
        &secret,
        "Project Falcon: the garage will be sold to Northwind after the merger.",
    )
    .unwrap();
    let library = Arc::new(
        Library::open(
            &db,
            &dir.path().join("deskmate.vectors"),
            &Config::shipped(),
            &common::models_dir(),
        )
        .unwrap(),
    );
    library
        .import(&[handbook], Some(AccessLevel::Internal), &mut |_| {})
        .unwrap();
    library
        .import(&[secret], Some(AccessLevel::Restricted), &mut |_| {})
        .unwrap();

    let store = Arc::new(Mutex::new(Store::open(&db).unwrap()));
    let engine = Arc::new(Engine::new(None).unwrap());
    engine.load(Persona::Office, &smol(), &config(24)).unwrap();
    let chat = Chat::new(Arc::clone(&store), engine).with_library(Arc::clone(&library));
    let ask = |question: &str| {
        let turn = chat.send(None, &office(), question, OPTIONS).unwrap();
        let reply_id = turn.start().reply.id;
        let events = collect(turn);
        let sources: Vec<String> = events
            .iter()
            .find_map(|e| match e {
                ChatEvent::Sources { sources, .. } => {
                    Some(sources.iter().map(|s| s.file_name.clone()).collect())
                }
                _ => None,
            })
            .unwrap_or_default();
        let first_sources = events
            .iter()
            .position(|e| matches!(e, ChatEvent::Sources { .. }));
        let first_text = events
            .iter()
            .position(|e| matches!(e, ChatEvent::Text { .. }));
        if let (Some(s), Some(t)) = (first_sources, first_text) {
            assert!(s < t, "sources come before the text");
        }
        let stored = store.lock().unwrap().message(reply_id).unwrap();
        (sources, stored)
    };

    // The owner (restricted clearance) is given both passages.
    let (sources, stored) = ask("When does the garage close, and what is Project Falcon?");
    assert!(sources.contains(&"garage.md".to_owned()), "{sources:?}");
    assert!(sources.contains(&"falcon.txt".to_owned()), "{sources:?}");
    assert_eq!(stored.sources.len(), sources.len(), "stored with the reply");
    assert_eq!(stored.sources[0].n, 1);

    // A guest with internal clearance: the handbook only, never the restricted file.
    let guest = store
        .lock()
        .unwrap()
        .create_profile("guest", AccessLevel::Internal)
        .unwrap();
    store.lock().unwrap().set_active_profile(guest.id).unwrap();
    for question in [
        "When does the garage close, and what is Project Falcon?",
        "Northwind merger Project Falcon",
    ] {
        let (sources, stored) = ask(question);
        assert!(
            sources.iter().all(|s| s != "falcon.txt"),
            "{question}: {sources:?}"
        );
        assert!(stored.sources.iter().all(|s| s.file_name != "falcon.txt"));
        assert!(!stored.content.contains("Northwind"), "{}", stored.content);
    }
    let (sources, _) = ask("When does the garage close?");
    assert_eq!(sources, ["garage.md"]);
}

/// A turn whose thread never started (it is dropped unrun) leaves no `streaming` placeholder
/// behind, so the session is not held busy for the rest of the process: the next send works.
#[test]
fn a_turn_dropped_before_it_ran_frees_its_session_and_leaves_no_placeholder() {
    let f = fixture(8);
    let turn = f
        .chat
        .send(None, &office(), "First question", OPTIONS)
        .unwrap();
    let session = turn.start().session.id;
    let reply = turn.start().reply.id;
    drop(turn);
    let messages = f.store.lock().unwrap().messages(session).unwrap();
    assert!(messages.iter().all(|m| m.id != reply), "{messages:?}");
    assert_eq!(messages.len(), 1, "the user's message stays");
    f.chat.check_not_replying(session).unwrap();
    let next = f
        .chat
        .send(Some(session), &office(), "Second question", OPTIONS)
        .unwrap();
    collect(next);
}
