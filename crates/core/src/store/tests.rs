use super::*;

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("data").join("deskmate.sqlite3")).unwrap();
    (dir, store)
}

fn table_names(store: &Store) -> Vec<String> {
    let mut stmt = store
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type IN ('table') AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'chunks_fts_%' AND name NOT LIKE 'chunks_bigram_%' AND name NOT LIKE 'chunks_words_%' ORDER BY name")
            .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

#[test]
fn a_new_file_gets_the_whole_schema_in_wal_mode_with_foreign_keys() {
    let (_dir, store) = temp_store();
    assert_eq!(store.schema_version().unwrap(), latest_version());
    assert_eq!(
        table_names(&store),
        [
            "attachments",
            "cards",
            "chunks",
            "chunks_bigram",
            "chunks_fts",
            "chunks_words",
            "documents",
            "documents_state",
            "import_files",
            "import_jobs",
            "messages",
            "profiles",
            "request_log",
            "sessions",
            "settings"
        ]
    );
    let mode: String = store
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = store
        .conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 1);
    assert_eq!(store.active_profile_id().unwrap(), 1);
}

#[test]
fn reopening_an_existing_database_keeps_its_data_and_does_not_migrate_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deskmate.sqlite3");
    let session_id = {
        let mut store = Store::open(&path).unwrap();
        let s = store.create_session(Persona::Office, "Budget").unwrap();
        store
            .append_message(
                s.id,
                Role::User,
                "분기 예산 보고서",
                MessageStatus::Complete,
            )
            .unwrap();
        s.id
    };
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), latest_version());
    let profiles: i64 = store
        .conn
        .query_row("SELECT count(*) FROM profiles", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        profiles, 1,
        "the seed rows of migration 1 must not be inserted twice"
    );
    assert_eq!(store.session(session_id).unwrap().title, "Budget");
    assert_eq!(
        store.messages(session_id).unwrap()[0].content,
        "분기 예산 보고서"
    );
}

#[test]
fn a_database_from_a_newer_version_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deskmate.sqlite3");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE future (x); PRAGMA user_version = 999;")
            .unwrap();
    }
    let err = Store::open(&path)
        .err()
        .expect("must refuse a newer schema");
    assert_eq!(err.code(), "store_too_new");
    let conn = Connection::open(&path).unwrap();
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 999);
}

#[test]
fn connections_opening_a_new_file_at_once_migrate_it_once_and_all_work() {
    // As the window and several commands starting together on a fresh data folder.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data").join("deskmate.sqlite3");
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let path = path.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let mut store = Store::open(&path).map_err(|e| format!("open: {e:?}"))?;
                let s = store
                    .create_session(Persona::Office, &format!("session {i}"))
                    .map_err(|e| format!("session: {e:?}"))?;
                store
                    .append_message(s.id, Role::User, "hello", MessageStatus::Complete)
                    .map_err(|e| format!("message: {e:?}"))?;
                Ok::<_, String>(())
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), latest_version());
    assert_eq!(store.sessions(None).unwrap().len(), 8);
}

#[test]
fn a_writer_waits_for_another_connections_write_instead_of_failing() {
    let (dir, _first) = temp_store();
    let path = dir.path().join("data").join("deskmate.sqlite3");
    let holder = Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let waiter = std::thread::spawn(move || {
        let mut store = Store::open(&path)?;
        store.create_session(Persona::Office, "waited")
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    holder.execute_batch("COMMIT").unwrap();
    let session = waiter.join().unwrap().unwrap();
    assert_eq!(session.title, "waited");
}

#[test]
fn a_lock_wait_that_runs_out_and_a_full_disk_have_their_own_errors() {
    let failure =
        |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some("x".into()));
    let path = Path::new("/data/deskmate.sqlite3");
    let busy = store_err(path, failure(rusqlite::ffi::SQLITE_BUSY));
    assert_eq!(busy.code(), "store_busy");
    assert!(busy.to_string().contains("30 s"), "{busy}");
    let full = store_err(path, failure(rusqlite::ffi::SQLITE_FULL));
    assert_eq!(full.code(), "disk_full");
    assert!(full.to_string().contains("disk is full"), "{full}");
    let io = Error::io(path, std::io::Error::from(std::io::ErrorKind::StorageFull));
    assert_eq!(io.code(), "disk_full");
}

#[test]
fn a_file_that_is_not_a_database_is_a_store_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deskmate.sqlite3");
    std::fs::write(
        &path,
        b"this is not sqlite, just text long enough to have a header....",
    )
    .unwrap();
    let err = Store::open(&path).err().expect("garbage must not open");
    assert_eq!(err.code(), "store");
    assert!(err.to_string().contains("deskmate.sqlite3"), "{err}");
}

#[test]
fn sessions_are_listed_newest_first_and_searched_by_literal_title() {
    let (_dir, mut store) = temp_store();
    let a = store.create_session(Persona::Office, "Q3 budget").unwrap();
    let b = store
        .create_session(Persona::Character, "100% done_now")
        .unwrap();
    store
        .append_message(a.id, Role::User, "hi", MessageStatus::Complete)
        .unwrap();
    let ids: Vec<i64> = store.sessions(None).unwrap().iter().map(|s| s.id).collect();
    assert_eq!(
        ids,
        [a.id, b.id],
        "appending a message moves its session to the top"
    );
    // Writes within one millisecond must order too (this flaked on CI before the stamp).
    for round in 0..50 {
        let (top, other) = if round % 2 == 0 {
            (b.id, a.id)
        } else {
            (a.id, b.id)
        };
        store
            .append_message(top, Role::User, "again", MessageStatus::Complete)
            .unwrap();
        let ids: Vec<i64> = store.sessions(None).unwrap().iter().map(|s| s.id).collect();
        assert_eq!(ids, [top, other], "round {round}");
    }
    let found: Vec<i64> = store
        .sessions(Some("0% d"))
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(found, [b.id]);
    assert!(store
        .sessions(Some("%"))
        .unwrap()
        .iter()
        .all(|s| s.title.contains('%')));
}

#[test]
fn renaming_changes_only_that_session() {
    let (_dir, mut store) = temp_store();
    let a = store.create_session(Persona::Office, "").unwrap();
    let b = store.create_session(Persona::Office, "Keep me").unwrap();
    assert!(a.title_is_auto);
    let renamed = store.rename_session(a.id, "  Renamed ").unwrap();
    assert_eq!(renamed.title, "Renamed");
    assert!(!renamed.title_is_auto);
    assert_eq!(store.session(b.id).unwrap(), b);
    assert_eq!(
        store.rename_session(a.id, " ").unwrap_err().code(),
        "invalid_input"
    );
    assert_eq!(
        store.rename_session(9999, "x").unwrap_err().code(),
        "not_found"
    );
}

#[test]
fn deleting_a_session_removes_its_messages_but_keeps_its_cards_readable() {
    let (_dir, mut store) = temp_store();
    let s = store.create_session(Persona::Office, "Minutes").unwrap();
    let m = store
        .append_message(
            s.id,
            Role::Assistant,
            "The deadline is Friday.",
            MessageStatus::Complete,
        )
        .unwrap();
    let card = store.save_card(m.id, "deadline").unwrap();
    assert_eq!(card.session_title, "Minutes");
    store.delete_session(s.id).unwrap();
    assert!(store.messages(s.id).unwrap().is_empty());
    let cards = store.cards(Some("deadline")).unwrap();
    assert_eq!(cards.len(), 1);
    assert_eq!(cards[0].content, "The deadline is Friday.");
    assert_eq!((cards[0].message_id, cards[0].session_id), (None, None));
    assert_eq!(store.delete_session(s.id).unwrap_err().code(), "not_found");
}

#[test]
fn an_automatic_title_never_replaces_one_the_user_gave() {
    let (_dir, mut store) = temp_store();
    let a = store.create_session(Persona::Office, "first line").unwrap();
    let b = store.create_session(Persona::Office, "other").unwrap();
    assert!(store.set_auto_title(a.id, "Model title").unwrap());
    assert_eq!(store.session(a.id).unwrap().title, "Model title");
    store.rename_session(a.id, "Mine").unwrap();
    assert!(!store.set_auto_title(a.id, "Later model title").unwrap());
    assert_eq!(store.session(a.id).unwrap().title, "Mine");
    assert_eq!(
        store.session(b.id).unwrap().title,
        "other",
        "only a changed"
    );
    assert!(
        !store.set_auto_title(b.id, "  ").unwrap(),
        "blank titles are ignored"
    );
}

#[test]
fn a_reply_is_finished_with_its_status_reason_and_suggestions() {
    let (_dir, mut store) = temp_store();
    let s = store
        .create_session_with(
            &SessionSetup {
                persona: Persona::Character,
                tone: None,
                character: Some(Character {
                    name: "Mochi".into(),
                    greeting: "Mrrp".into(),
                    context: String::new(),
                }),
            },
            "",
        )
        .unwrap();
    assert_eq!(s.character.as_ref().unwrap().name, "Mochi");
    let reply = store
        .append_message(s.id, Role::Assistant, "", MessageStatus::Streaming)
        .unwrap();
    let done = store
        .finish_message(
            reply.id,
            "Half a",
            MessageStatus::Interrupted,
            Some("cancelled"),
        )
        .unwrap();
    assert_eq!(
        (
            done.content.as_str(),
            done.status.as_str(),
            done.error_code.as_deref()
        ),
        ("Half a", "interrupted", Some("cancelled"))
    );
    store
        .set_suggestions(reply.id, &["Why?".to_owned(), "왜요?".to_owned()])
        .unwrap();
    assert_eq!(
        store.message(reply.id).unwrap().suggestions,
        ["Why?", "왜요?"]
    );
    let updated = store
        .set_session_setup(
            s.id,
            &SessionSetup {
                persona: Persona::Office,
                tone: Some(Tone::Friendly),
                character: None,
            },
        )
        .unwrap();
    assert_eq!(
        (updated.persona, updated.tone),
        (Persona::Office, Some(Tone::Friendly))
    );
    store.delete_message(reply.id).unwrap();
    assert_eq!(store.message(reply.id).unwrap_err().code(), "not_found");
}

#[test]
fn replies_cut_off_by_an_exit_are_marked_interrupted_and_a_live_writers_are_left_alone() {
    let (_dir, mut store) = temp_store();
    let s = store.create_session(Persona::Office, "x").unwrap();
    store
        .append_message(s.id, Role::User, "question", MessageStatus::Complete)
        .unwrap();
    let live = store
        .begin_reply(s.id, ReplyStart::Retry, "live-writer", &|_| true)
        .unwrap()
        .reply;
    let other = store.create_session(Persona::Office, "y").unwrap();
    let cut = store
        .append_message(
            other.id,
            Role::Assistant,
            "partial",
            MessageStatus::Streaming,
        )
        .unwrap();
    let whole = store
        .append_message(other.id, Role::Assistant, "done", MessageStatus::Complete)
        .unwrap();
    let alive = |owner: &str| owner == "live-writer";
    assert_eq!(store.interrupt_unfinished_replies(&alive).unwrap(), 1);
    let cut = store.message(cut.id).unwrap();
    assert_eq!(cut.status, "interrupted");
    assert_eq!(cut.error_code.as_deref(), Some("app_closed"));
    assert_eq!(store.message(whole.id).unwrap().status, "complete");
    assert_eq!(store.message(live.id).unwrap().status, "streaming");
    assert_eq!(store.interrupt_unfinished_replies(&alive).unwrap(), 0);
    // Once its writer is gone, it too was cut off.
    assert_eq!(store.interrupt_unfinished_replies(&|_| false).unwrap(), 1);
}

#[test]
fn a_session_has_one_reply_at_a_time_and_a_refused_start_writes_nothing() {
    let (_dir, mut store) = temp_store();
    let s = store.create_session(Persona::Office, "").unwrap();
    let first = store
        .begin_reply(
            s.id,
            ReplyStart::Message {
                text: "first",
                attachments: &[],
                title: Some("first"),
            },
            "writer-a",
            &|_| true,
        )
        .unwrap();
    assert_eq!(first.question.as_ref().unwrap().content, "first");
    assert_eq!(first.reply.status, "streaming");
    assert_eq!(store.session(s.id).unwrap().title, "first");
    let second = store.begin_reply(
        s.id,
        ReplyStart::Message {
            text: "second",
            attachments: &[],
            title: Some("second"),
        },
        "writer-b",
        &|owner| owner == "writer-a",
    );
    assert_eq!(second.unwrap_err().code(), "reply_in_progress");
    assert_eq!(
        store.messages(s.id).unwrap().len(),
        2,
        "nothing of the second"
    );
    // Writer a finished: the next turn starts.
    store
        .finish_message(first.reply.id, "answer", MessageStatus::Complete, None)
        .unwrap();
    let retry = store
        .begin_reply(s.id, ReplyStart::Retry, "writer-b", &|owner| {
            owner == "writer-a"
        })
        .unwrap();
    assert_eq!(retry.question.unwrap().id, first.question.unwrap().id);
    assert_eq!(retry.replaced, vec![first.reply.id]);
    // Writer b died mid-reply: its reply is marked cut off and the next one starts.
    let third = store
        .begin_reply(
            s.id,
            ReplyStart::Message {
                text: "third",
                attachments: &[],
                title: None,
            },
            "writer-c",
            &|owner| owner == "writer-a",
        )
        .unwrap();
    let dead = store.message(retry.reply.id).unwrap();
    assert_eq!(
        (dead.status.as_str(), dead.error_code.as_deref()),
        ("interrupted", Some("app_closed"))
    );
    assert_eq!(third.reply.status, "streaming");
    assert_eq!(store.session(s.id).unwrap().title, "first");
}

#[test]
fn a_version_1_database_keeps_its_messages_through_migration_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.sqlite3");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(
                "PRAGMA user_version = 1;
                 INSERT INTO sessions (profile_id, title, persona, created_at, updated_at)
                     VALUES (1, 'old', 'office', 0, 0);
                 INSERT INTO messages (session_id, role, content, created_at) VALUES (1, 'user', 'kept', 0);",
            )
            .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), latest_version());
    let messages = store.messages(1).unwrap();
    assert_eq!(messages[0].content, "kept");
    assert!(messages[0].suggestions.is_empty() && messages[0].error_code.is_none());
}

#[test]
fn a_message_for_a_missing_session_is_refused_without_a_partial_write() {
    let (_dir, mut store) = temp_store();
    assert_eq!(
        store
            .append_message(42, Role::User, "x", MessageStatus::Complete)
            .unwrap_err()
            .code(),
        "not_found"
    );
    let n: i64 = store
        .conn
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn chunks_are_searchable_through_the_trigram_index_and_leave_it_when_deleted() {
    let (_dir, store) = temp_store();
    store
            .conn
            .execute_batch(
                "INSERT INTO documents (id, path, file_name, kind, content_sha256, size_bytes, imported_at)
                     VALUES (1, '/d/a.txt', 'a.txt', 'txt', 'x', 1, 0);
                 INSERT INTO chunks (document_id, ordinal, text, char_start, char_end, token_count)
                     VALUES (1, 0, '서울은 한국의 수도입니다', 0, 12, 5);",
            )
            .unwrap();
    let hits = |q: &str| -> i64 {
        store
            .conn
            .query_row(
                "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?1",
                [q],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(hits("\"서울은\""), 1);
    assert_eq!(hits("\"의 수도\""), 1);
    store
        .conn
        .execute("DELETE FROM documents WHERE id = 1", [])
        .unwrap();
    assert_eq!(
        hits("\"서울은\""),
        0,
        "cascading chunk deletes must reach the FTS index"
    );
}

#[test]
fn request_totals_add_up_by_outcome() {
    let (_dir, mut store) = temp_store();
    use RequestOutcome as O;
    for outcome in [O::Ok, O::Ok, O::Cancelled, O::Busy, O::Error] {
        store
            .log_request(&RequestRecord {
                model: "smollm2".into(),
                outcome,
                prompt_tokens: 10,
                completion_tokens: 5,
                started_at: now_ms(),
                ..RequestRecord::default()
            })
            .unwrap();
    }
    let t = store.request_totals("smollm2").unwrap();
    assert_eq!(
        (t.requests, t.ok, t.cancelled, t.busy, t.errors),
        (5, 2, 1, 1, 1)
    );
    assert_eq!((t.prompt_tokens, t.completion_tokens), (50, 25));
    assert_eq!(
        store.request_totals("other").unwrap(),
        RequestTotals::default()
    );
}
