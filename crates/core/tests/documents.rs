//! The document library with real files of every supported type, the real multilingual e5
//! model and ONNX Runtime from the model mirror, and a real SQLite file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use deskmate_core::config::Config;
use deskmate_core::documents::samples::{docx_with, pdf_with_pages};
use deskmate_core::documents::{Library, SearchMode};
use deskmate_core::store::{AccessLevel, Store};

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn db(&self) -> PathBuf {
        self.dir.path().join("deskmate.sqlite3")
    }
    fn vectors(&self) -> PathBuf {
        self.dir.path().join("deskmate.vectors")
    }
    fn files(&self) -> PathBuf {
        let p = self.dir.path().join("files");
        std::fs::create_dir_all(&p).unwrap();
        p
    }
    fn library(&self) -> Library {
        self.library_with(&Config::shipped())
    }
    fn library_with(&self, config: &Config) -> Library {
        Library::open(&self.db(), &self.vectors(), config, &common::models_dir()).unwrap()
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, bytes).unwrap();
    p
}

/// One file of each supported type, a corrupt PDF, and files a folder import must pass over.
fn sample_folder(dir: &Path) {
    write(
        dir,
        "seoul.txt",
        "서울은 대한민국의 수도이며 인구는 약 천만 명이다.\n\n부산은 남쪽의 항구 도시이다."
            .as_bytes(),
    );
    write(
        dir,
        "notes.md",
        b"# Travel policy\n\nEmployees book trains at least two weeks ahead.\n\n# Expenses\n\nReceipts are scanned within five working days.",
    );
    write(
        dir,
        "report.pdf",
        &pdf_with_pages(&[
            "Introduction to the annual company report.",
            "Quarterly revenue grew by twelve percent in the third quarter.",
        ])
        .unwrap(),
    );
    write(
        dir,
        "memo.docx",
        &docx_with(&[
            ("Parking", Some("Heading1")),
            ("The underground garage closes at ten in the evening.", None),
        ])
        .unwrap(),
    );
    write(
        dir,
        "page.html",
        b"<html><head><script>var hidden = 1;</script></head><body><h1>Cafeteria</h1><p>Lunch is served from noon until half past one.</p></body></html>",
    );
    write(
        dir,
        "phones.csv",
        b"team,extension\nHelpdesk,4100\nPayroll,4200\n",
    );
    write(dir, "sub/broken.pdf", b"%PDF-1.7\nthis is not really a pdf");
    write(dir, "sub/.hidden.txt", b"never imported");
    write(dir, "picture.png", b"\x89PNG\r\n\x1a\nnot text");
}

#[test]
fn a_folder_of_every_type_is_imported_searched_and_reimported_only_when_changed() {
    let s = Setup::new();
    let folder = s.files();
    sample_folder(&folder);
    let library = s.library();
    let mut events = Vec::new();
    let reports = library
        .import(std::slice::from_ref(&folder), None, &mut |p| {
            events.push(p.clone())
        })
        .unwrap();
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    // The corrupt PDF is reported with its reason and the batch goes on; hidden and
    // unsupported files in a folder are passed over.
    assert_eq!((r.added, r.failed, r.files.len()), (6, 1, 7), "{r:#?}");
    let broken = r.files.iter().find(|f| f.status == "failed").unwrap();
    assert!(broken.path.ends_with("broken.pdf"));
    assert_eq!(broken.error_code.as_deref(), Some("document_unreadable"));
    let last = events.last().unwrap();
    assert!(
        last.done && last.files_done == 7 && last.files_total == 7,
        "{last:?}"
    );
    assert!(events.iter().any(|e| e.current.is_some()));

    let docs = library.documents().unwrap();
    assert_eq!(docs.len(), 7);
    let failed = docs.iter().find(|d| d.status == "failed").unwrap();
    assert!(failed.error.as_deref().unwrap().contains("broken.pdf"));
    for d in docs.iter().filter(|d| d.status == "indexed") {
        assert!(d.chunk_count > 0, "{d:?}");
        assert_eq!(d.embedded_chunks, d.chunk_count, "{d:?}");
        assert_eq!(d.level, AccessLevel::Internal);
    }

    // Korean: a two-character word finds its inflected form.
    let found = library.search("서울", 3).unwrap();
    assert_eq!(found.mode, SearchMode::Hybrid, "{:?}", found.notice);
    let top = &found.passages[0];
    assert_eq!(top.file_name, "seoul.txt");
    assert!(top.text.contains("서울은"));
    assert!(
        top.keyword_rank.is_some() && top.vector_rank.is_some(),
        "{top:?}"
    );

    // English, with the page of a PDF and the heading of a DOCX.
    let revenue = library.search("quarterly revenue growth", 3).unwrap();
    assert_eq!(revenue.passages[0].file_name, "report.pdf");
    assert_eq!(revenue.passages[0].page, Some(2));
    let garage = library.search("When does the garage close?", 3).unwrap();
    assert_eq!(garage.passages[0].file_name, "memo.docx");
    assert_eq!(garage.passages[0].section.as_deref(), Some("Parking"));
    // Meaning, not words: no keyword of the question is in the passage.
    let lunch = library
        .search_with("what time can I eat in the canteen", 3, SearchMode::Vector)
        .unwrap();
    assert_eq!(lunch.passages[0].file_name, "page.html");
    assert!(
        !lunch.passages[0].text.contains("hidden"),
        "script text is not indexed"
    );

    // FTS5 syntax in a query is searched for, not obeyed (and never an error).
    for q in [
        r#""revenue"#,
        "revenue AND OR NOT",
        "NEAR(revenue quarter, 2)",
        "rev* ^quarter col:revenue",
        "(((",
        "\"\"",
    ] {
        let r = library.search(q, 5);
        assert!(r.is_ok(), "{q}: {r:?}");
    }
    assert!(library.search("   ", 5).is_err());

    // Unchanged files do nothing; a changed one replaces its chunks.
    let again = library
        .import(std::slice::from_ref(&folder), None, &mut |_| {})
        .unwrap();
    assert_eq!(
        (again[0].unchanged, again[0].added, again[0].replaced),
        (6, 0, 0),
        "{again:#?}"
    );
    write(
        &folder,
        "seoul.txt",
        "대전은 과학 도시로 알려져 있다.".as_bytes(),
    );
    let changed = library
        .import(std::slice::from_ref(&folder), None, &mut |_| {})
        .unwrap();
    assert_eq!(changed[0].replaced, 1);
    assert!(library
        .search_with("서울", 5, SearchMode::Keyword)
        .unwrap()
        .passages
        .is_empty());
    let daejeon = library.search("대전", 3).unwrap();
    assert!(daejeon.passages[0].text.contains("대전은"));
    let store = Store::open(&s.db()).unwrap();
    assert_eq!(store.counts().unwrap().documents, 7);
}

#[test]
fn a_restricted_document_never_reaches_a_profile_with_lower_clearance() {
    let s = Setup::new();
    let folder = s.files();
    let open = write(
        &folder,
        "holidays.txt",
        b"The office is closed on national holidays and on the company foundation day.",
    );
    let secret = write(
        &folder,
        "merger.txt",
        b"Project Falcon: the board approved the merger with Northwind on the company foundation day.",
    );
    let library = s.library();
    library
        .import(&[open], Some(AccessLevel::Public), &mut |_| {})
        .unwrap();
    library
        .import(&[secret], Some(AccessLevel::Restricted), &mut |_| {})
        .unwrap();
    let secret_id = library
        .documents()
        .unwrap()
        .iter()
        .find(|d| d.file_name == "merger.txt")
        .unwrap()
        .id;

    // The owner (default profile, restricted clearance) sees it.
    let owner = library.search("Project Falcon merger", 5).unwrap();
    assert_eq!(owner.passages[0].file_name, "merger.txt");

    let mut store = Store::open(&s.db()).unwrap();
    let guest = store
        .create_profile("guest", AccessLevel::Internal)
        .unwrap();
    store.set_active_profile(guest.id).unwrap();
    for mode in [SearchMode::Hybrid, SearchMode::Keyword, SearchMode::Vector] {
        for q in [
            "Project Falcon merger",
            "Northwind",
            "company foundation day",
        ] {
            let r = library.search_with(q, 10, mode).unwrap();
            assert!(
                r.passages.iter().all(|p| p.file_name != "merger.txt"),
                "{mode:?} {q}: {:?}",
                r.passages
            );
        }
    }
    let visible = library.search("company foundation day", 10).unwrap();
    assert_eq!(visible.passages[0].file_name, "holidays.txt");
    assert!(library
        .documents()
        .unwrap()
        .iter()
        .all(|d| d.id != secret_id));
    assert_eq!(library.document(secret_id).unwrap_err().code(), "not_found");
    assert_eq!(
        library
            .set_level(secret_id, AccessLevel::Public)
            .unwrap_err()
            .code(),
        "not_found"
    );
    // Nor can the guest label something above its own clearance.
    let holidays = library.documents().unwrap()[0].id;
    assert_eq!(
        library
            .set_level(holidays, AccessLevel::Confidential)
            .unwrap_err()
            .code(),
        "invalid_input"
    );
    // Asking as the owner by name still works (the CLI's --profile).
    let as_owner = library
        .search_for_profile("default", "Northwind", 5, SearchMode::Hybrid)
        .unwrap();
    assert_eq!(as_owner.passages[0].file_name, "merger.txt");
}

#[test]
fn a_missing_or_stale_vector_index_is_rebuilt_from_the_stored_embeddings() {
    let s = Setup::new();
    let folder = s.files();
    sample_folder(&folder);
    {
        let library = s.library();
        library
            .import(std::slice::from_ref(&folder), None, &mut |_| {})
            .unwrap();
    }
    assert!(
        s.vectors().is_file(),
        "the index is saved at the end of a job"
    );
    let baseline = s
        .library()
        .search_with("garage closing time", 3, SearchMode::Vector)
        .unwrap();
    assert_eq!(baseline.passages[0].file_name, "memo.docx");

    std::fs::remove_file(s.vectors()).unwrap();
    let rebuilt = s
        .library()
        .search_with("garage closing time", 3, SearchMode::Vector)
        .unwrap();
    assert_eq!(rebuilt.passages, baseline.passages);
    assert!(s.vectors().is_file(), "the rebuilt index is saved");

    std::fs::write(s.vectors(), b"DESKMATE-VECTORS 1\nnot json").unwrap();
    let from_garbage = s
        .library()
        .search_with("garage closing time", 3, SearchMode::Vector)
        .unwrap();
    assert_eq!(from_garbage.passages, baseline.passages);

    // An index saved before a change in the database (a crash before the save) is stale.
    let stale = std::fs::read(s.vectors()).unwrap();
    {
        let library = s.library();
        let id = library
            .documents()
            .unwrap()
            .into_iter()
            .find(|d| d.file_name == "memo.docx")
            .unwrap()
            .id;
        library.delete_document(id).unwrap();
    }
    std::fs::write(s.vectors(), stale).unwrap();
    let after = s
        .library()
        .search_with("garage closing time", 3, SearchMode::Vector)
        .unwrap();
    assert!(after.passages.iter().all(|p| p.file_name != "memo.docx"));
}

#[test]
fn without_the_embedding_model_import_works_and_search_falls_back_to_keywords() {
    let s = Setup::new();
    let folder = s.files();
    sample_folder(&folder);
    let mut config = Config::shipped();
    config.embedding.model = PathBuf::from("no-such-embedding-model");
    {
        let library = s.library_with(&config);
        let reports = library
            .import(std::slice::from_ref(&folder), None, &mut |_| {})
            .unwrap();
        assert_eq!(reports[0].added, 6);
        let notice = library.vector_notice().unwrap();
        assert_eq!(notice.code(), "embedding_model_missing");
        let r = library.search("서울", 3).unwrap();
        assert_eq!(r.mode, SearchMode::Keyword);
        assert_eq!(r.notice.as_ref().unwrap().code(), "embedding_model_missing");
        assert_eq!(r.passages[0].file_name, "seoul.txt");
        assert!(library
            .documents()
            .unwrap()
            .iter()
            .all(|d| d.embedded_chunks == 0));
    }
    // With the model back, the next run embeds what was stored without vectors.
    let library = s.library();
    library.run_jobs(&mut |_| {}).unwrap();
    assert!(library
        .documents()
        .unwrap()
        .iter()
        .filter(|d| d.status == "indexed")
        .all(|d| d.embedded_chunks == d.chunk_count));
    let r = library
        .search_with("garage closing time", 3, SearchMode::Vector)
        .unwrap();
    assert_eq!(r.passages[0].file_name, "memo.docx");
}

#[test]
fn a_job_is_run_by_the_library_that_created_it_and_resumed_by_another_only_once_that_one_is_gone() {
    // Two libraries on one database stand for two processes (the window and `deskmate ingest`).
    let s = Setup::new();
    let folder = s.files();
    let file = write(
        &folder,
        "menu.txt",
        b"The cafeteria serves bibimbap on Tuesdays.",
    );
    let mut config = Config::shipped();
    config.embedding.model = PathBuf::from("no-such-embedding-model");
    let window = s.library_with(&config);
    let command = s.library_with(&config);
    let job = window.create_job(&[file], None).unwrap();
    assert!(command.unfinished_jobs().unwrap().is_empty());
    assert!(
        command.run_jobs(&mut |_| {}).unwrap().is_empty(),
        "a live owner's job is left to it"
    );
    assert_eq!(window.unfinished_jobs().unwrap(), [job]);
    // The owner ends without running it (as a process killed before it started).
    drop(window);
    assert_eq!(command.unfinished_jobs().unwrap(), [job]);
    let reports = command.run_jobs(&mut |_| {}).unwrap();
    assert_eq!((reports[0].job_id, reports[0].added), (job, 1));
    assert!(command.unfinished_jobs().unwrap().is_empty());
}

#[test]
fn vector_search_sees_what_another_library_on_the_same_database_imported() {
    let s = Setup::new();
    let folder = s.files();
    let garage = write(
        &folder,
        "garage.txt",
        b"The underground garage closes at ten in the evening.",
    );
    let lunch = write(
        &folder,
        "lunch.txt",
        b"The cafeteria serves bibimbap and kimchi stew at noon.",
    );
    let trains = write(
        &folder,
        "trains.txt",
        b"Employees book their train tickets two weeks ahead of a trip.",
    );
    let a = s.library();
    let b = s.library();
    a.import(&[garage], None, &mut |_| {}).unwrap();
    b.import(&[lunch], None, &mut |_| {}).unwrap();
    // `a`'s index reflected the database before `b` wrote: it must not carry on as if it knew
    // `b`'s chunks, nor save a file that claims so.
    a.import(&[trains], None, &mut |_| {}).unwrap();
    for (library, name) in [(&a, "a"), (&b, "b")] {
        for (query, file) in [
            ("garage closing time", "garage.txt"),
            ("what is for lunch", "lunch.txt"),
            ("booking a train", "trains.txt"),
        ] {
            let r = library.search_with(query, 1, SearchMode::Vector).unwrap();
            assert_eq!(r.passages[0].file_name, file, "{name}: {query}");
        }
    }
    drop((a, b));
    let fresh = s.library();
    let r = fresh
        .search_with("what is for lunch", 1, SearchMode::Vector)
        .unwrap();
    assert_eq!(
        r.passages[0].file_name, "lunch.txt",
        "the saved index is whole"
    );
}

#[test]
fn a_large_file_reports_progress_inside_it() {
    let s = Setup::new();
    let folder = s.files();
    let text: String = (0..1500)
        .map(|i| {
            format!(
                "Line {i} of the warehouse log: pallet {} moved to bay {} ",
                i * 7,
                i % 40
            )
        })
        .collect();
    let file = write(&folder, "warehouse.log.txt", text.as_bytes());
    let library = s.library();
    let mut inside = Vec::new();
    library
        .import(&[file], None, &mut |p| {
            if p.current.is_some() && p.current_chunks_total > 0 {
                inside.push((p.current_chunks_done, p.current_chunks_total));
            }
        })
        .unwrap();
    let total = inside.last().unwrap().1;
    assert!(total > 20, "{total} chunks");
    assert!(inside.len() > 3, "{inside:?}");
    assert!(inside.windows(2).all(|w| w[0].0 <= w[1].0));
    assert_eq!(inside.last().unwrap().0, total);
}

#[test]
fn a_level_changed_by_another_library_reaches_the_vector_filter_of_this_one() {
    let s = Setup::new();
    let folder = s.files();
    let plan = write(
        &folder,
        "plan.txt",
        b"The new branch office in Daegu opens next spring with forty staff.",
    );
    Store::open(&s.db())
        .unwrap()
        .create_profile("staff", AccessLevel::Internal)
        .unwrap();
    let window = s.library();
    window
        .import(&[plan], Some(AccessLevel::Restricted), &mut |_| {})
        .unwrap();
    let as_staff =
        |l: &Library| l.search_for_profile("staff", "branch office opening", 3, SearchMode::Vector);
    assert!(as_staff(&window).unwrap().passages.is_empty());

    // Another process (the CLI) lowers it; the window's filter must follow, and back again.
    let command = s.library();
    let id = command.documents().unwrap()[0].id;
    command.set_level(id, AccessLevel::Internal).unwrap();
    assert_eq!(as_staff(&window).unwrap().passages.len(), 1);
    command.set_level(id, AccessLevel::Confidential).unwrap();
    assert!(as_staff(&window).unwrap().passages.is_empty());
}
