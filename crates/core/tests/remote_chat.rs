//! A chat whose persona runs on a server, against a small server written here that records
//! every request body: what leaves this machine. Earlier answers drawn from the user's
//! documents go to the server only with `documents.allow_remote`; without it the server sees a
//! note in their place, and the extras (follow-up questions, titles) never carry them either.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use deskmate_core::chat::{Chat, ChatEvent, TurnOptions, WITHHELD_ANSWER};
use deskmate_core::config::{ModelConfig, RemoteBackend, RemoteKind};
use deskmate_core::engine::Engine;
use deskmate_core::store::{MessageSource, Persona, SessionSetup, Store, Tone};

/// The answer the server always gives: recognisable in later requests.
const ANSWER: &str = "The visitor car park closes at 21:00.";

/// An OpenAI-compatible server that answers every chat completion with [`ANSWER`] and keeps
/// each request body. Returns its base URL and the bodies so far.
fn recording_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&bodies);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
                let events = format!(
                    "data: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
                    serde_json::json!({"choices": [{"delta": {"content": ANSWER}}]}),
                    serde_json::json!({"choices": [{"delta": {}, "finish_reason": "stop"}]}),
                );
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{events}",
                    events.len()
                );
            });
        }
    });
    (base, bodies)
}

fn run(chat: &Chat, session: Option<i64>, text: &str, options: TurnOptions) -> (i64, i64) {
    let setup = SessionSetup {
        persona: Persona::Office,
        tone: Some(Tone::Polite),
        character: None,
    };
    let turn = chat.send(session, &setup, text, options).unwrap();
    let ids = (turn.start().session.id, turn.start().reply.id);
    let mut finished = false;
    turn.run(|e| finished |= matches!(e, ChatEvent::Finished { .. }));
    assert!(finished, "the server answered");
    ids
}

fn options(documents_to_remote: bool) -> TurnOptions {
    TurnOptions {
        history_turns: Some(10),
        max_message_chars: 500,
        documents_to_remote,
    }
}

#[test]
fn an_earlier_answer_from_documents_reaches_the_server_only_with_allow_remote() {
    let (base, bodies) = recording_server();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Mutex::new(
        Store::open(&dir.path().join("deskmate.sqlite3")).unwrap(),
    ));
    let engine = Arc::new(Engine::new(None).unwrap());
    let backend = RemoteBackend {
        kind: RemoteKind::Openai,
        base_url: base,
        model: "big".into(),
        api_key_env: None,
        timeout_s: 30,
    };
    engine
        .connect(Persona::Office, &backend, &ModelConfig::default())
        .unwrap();
    let chat = Chat::new(Arc::clone(&store), engine);

    // A first answer, then marked as drawn from a document (as a local, grounded answer is).
    let (session, reply) = run(&chat, None, "When does the car park close?", options(false));
    let source = MessageSource {
        n: 1,
        document_id: 1,
        chunk_id: 1,
        file_name: "parking.txt".into(),
        path: "/docs/parking.txt".into(),
        page: None,
        section: None,
        excerpt: "closes at 21:00".into(),
    };
    store.lock().unwrap().set_sources(reply, &[source]).unwrap();

    let requests_after = |from: usize| bodies.lock().unwrap()[from..].to_vec();
    let before = bodies.lock().unwrap().len();
    run(&chat, Some(session), "And on weekends?", options(false));
    let sent = requests_after(before);
    assert!(!sent.is_empty());
    for body in &sent {
        assert!(
            !body.contains("21:00") || !body.contains("car park closes"),
            "{body}"
        );
    }
    assert!(
        sent[0].contains("An earlier answer drawn from the user's documents"),
        "{}",
        sent[0]
    );
    assert!(WITHHELD_ANSWER.contains("stays on the user's computer"));
    // Nor does the model claim to run on the user's computer.
    assert!(
        !sent[0].contains("running entirely on the user's computer"),
        "{}",
        sent[0]
    );

    let before = bodies.lock().unwrap().len();
    run(&chat, Some(session), "And on holidays?", options(true));
    let sent = requests_after(before);
    assert!(
        sent[0].contains(ANSWER),
        "with allow_remote the history is whole: {}",
        sent[0]
    );
}
