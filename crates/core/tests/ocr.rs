//! Scanned PDFs read by OCR (Tesseract, Korean and English; poppler renders the pages).
//!
//! The "scans" are pages of the Korean constitution (the real public text in
//! `xtask/bench-data/documents/corpus`) laid out by Pango and stored as images without a text
//! layer, so what OCR should read is known. `cargo xtask test` installs tesseract-ocr,
//! tesseract-ocr-kor, poppler-utils and pango1.0-tools; without them these tests fail and say so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use deskmate_core::documents::samples::{pdf_with, render_text_page, PdfPage, SCAN_DPI};
use deskmate_core::documents::{ImportProgress, Library};
use deskmate_core::ocr::{Ocr, OcrRead};

/// Articles of the constitution, CRLF removed, starting at `from` and `chars` long.
fn constitution(from: &str, chars: usize) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../xtask/bench-data/documents/corpus/kolaw-constitution.txt");
    let text = std::fs::read_to_string(&path).unwrap().replace('\r', "");
    let start = text.find(from).unwrap();
    text[start..].chars().take(chars).collect()
}

fn open_library(dir: &Path, ocr: bool) -> Library {
    common::library_in(dir, |c| c.documents.ocr = ocr)
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect()
}

#[test]
fn tesseract_reads_a_rendered_korean_page() {
    Ocr::default()
        .check()
        .expect("Tesseract with Korean: apt install tesseract-ocr tesseract-ocr-kor");
    let dir = tempfile::tempdir().unwrap();
    let page = render_text_page(&constitution("제1조", 200)).unwrap();
    let file = dir.path().join("page.png");
    page.save(&file).unwrap();
    let OcrRead::Text(text) = Ocr::default().read_image(&file, &|| false).unwrap() else {
        panic!("not cancelled");
    };
    assert!(squash(&text).contains("대한민국은민주공화국이다"), "{text}");
}

#[test]
fn in_a_mixed_pdf_only_the_scanned_page_is_read_and_search_finds_it_at_its_page() {
    let dir = tempfile::tempdir().unwrap();
    let scan = render_text_page(&constitution("제32조", 420)).unwrap();
    let pdf = pdf_with(&[
        PdfPage::Text("Quarterly revenue grew in March across all regions."),
        PdfPage::Scan(&scan, SCAN_DPI),
        PdfPage::Text("Travel costs fell in April after the new policy."),
    ])
    .unwrap();
    let file = dir.path().join("근로 안내.pdf");
    std::fs::write(&file, pdf).unwrap();

    let library = open_library(dir.path(), true);
    let mut ocr_totals = Vec::new();
    let reports = library
        .import(&[file], None, &mut |p: &ImportProgress| {
            if p.current_ocr_pages_total > 0 {
                ocr_totals.push((p.current_ocr_pages_done, p.current_ocr_pages_total));
            }
        })
        .unwrap();
    assert_eq!(reports[0].added, 1, "{:#?}", reports[0]);
    // One page without text, so one page for OCR; progress counted it.
    assert_eq!(ocr_totals.first(), Some(&(0, 1)));
    assert_eq!(ocr_totals.last(), Some(&(1, 1)));

    let hit = library.search("최저임금제를 시행", 3).unwrap().passages;
    assert_eq!(hit[0].file_name, "근로 안내.pdf");
    assert_eq!(hit[0].page, Some(2), "{hit:#?}");
    let text = library.search("Travel costs fell", 3).unwrap().passages;
    assert_eq!(text[0].page, Some(3));
}

#[test]
fn with_ocr_off_a_scan_is_reported_by_name_and_a_mixed_pdf_keeps_its_text_pages() {
    let dir = tempfile::tempdir().unwrap();
    let scan = render_text_page(&constitution("제1조", 150)).unwrap();
    let scanned = dir.path().join("scan.pdf");
    std::fs::write(
        &scanned,
        pdf_with(&[PdfPage::Scan(&scan, SCAN_DPI)]).unwrap(),
    )
    .unwrap();
    let mixed = dir.path().join("mixed.pdf");
    std::fs::write(
        &mixed,
        pdf_with(&[
            PdfPage::Text("The audit committee meets every second Tuesday."),
            PdfPage::Scan(&scan, SCAN_DPI),
        ])
        .unwrap(),
    )
    .unwrap();
    let library = open_library(dir.path(), false);
    let reports = library
        .import(&[scanned, mixed], None, &mut |_| {})
        .unwrap();
    let r = &reports[0];
    assert_eq!((r.added, r.failed), (1, 1), "{r:#?}");
    let failed = r.files.iter().find(|f| f.status == "failed").unwrap();
    assert!(failed.path.ends_with("scan.pdf"));
    assert_eq!(failed.error_code.as_deref(), Some("document_scanned"));
    assert!(
        failed.error.as_deref().unwrap().contains("documents.ocr"),
        "{failed:?}"
    );
    let nothing_read = library.search("민주공화국", 5).unwrap().passages;
    assert!(
        nothing_read.iter().all(|p| !p.text.contains("민주공화국")),
        "with OCR off no scanned text is indexed: {nothing_read:#?}"
    );
    let audit = library.search("audit committee", 3).unwrap().passages;
    assert_eq!(audit[0].file_name, "mixed.pdf");
}

#[test]
fn cancel_stops_between_pages_and_importing_again_reads_the_file_whole() {
    let dir = tempfile::tempdir().unwrap();
    let pages: Vec<_> = ["제1조", "제32조", "제66조"]
        .iter()
        .map(|from| render_text_page(&constitution(from, 160)).unwrap())
        .collect();
    let pdf = pdf_with(
        &pages
            .iter()
            .map(|p| PdfPage::Scan(p, SCAN_DPI))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let file = dir.path().join("헌법 스캔.pdf");
    std::fs::write(&file, pdf).unwrap();
    let library = open_library(dir.path(), true);

    let reports = library
        .import(std::slice::from_ref(&file), None, &mut |p| {
            if p.current_ocr_pages_done == 1 {
                library.cancel_import();
            }
        })
        .unwrap();
    assert!(reports[0].cancelled, "{:#?}", reports[0]);
    assert!(library.documents().unwrap().is_empty());

    // Importing it again reads it whole.
    let mut pages_read = 0;
    let reports = library
        .import(&[file], None, &mut |p| {
            pages_read = pages_read.max(p.current_ocr_pages_done)
        })
        .unwrap();
    assert_eq!(reports[0].added, 1, "{:#?}", reports[0]);
    assert_eq!(pages_read, 3);
    for (phrase, page) in [("민주공화국", 1), ("근로의 권리", 2), ("국가의 원수", 3)]
    {
        let hit = library.search(phrase, 3).unwrap().passages;
        assert_eq!(hit[0].page, Some(page), "{phrase}: {hit:#?}");
    }
}

#[test]
fn search_answers_while_ocr_reads_pages() {
    let dir = tempfile::tempdir().unwrap();
    let library = open_library(dir.path(), true);
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "분기 예산 보고서는 매월 5일까지 제출한다.").unwrap();
    library.import(&[notes], None, &mut |_| {}).unwrap();

    let pages: Vec<_> = ["제1조", "제32조"]
        .iter()
        .map(|from| render_text_page(&constitution(from, 300)).unwrap())
        .collect();
    let scan = dir.path().join("scan.pdf");
    std::fs::write(
        &scan,
        pdf_with(
            &pages
                .iter()
                .map(|p| PdfPage::Scan(p, SCAN_DPI))
                .collect::<Vec<_>>(),
        )
        .unwrap(),
    )
    .unwrap();
    let import_done = AtomicBool::new(false);
    let (ocr_started, started) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            library
                .import(&[scan], None, &mut |p| {
                    if p.current_ocr_pages_total > 0 && p.current_ocr_pages_done == 0 {
                        let _ = ocr_started.send(());
                    }
                })
                .unwrap();
            import_done.store(true, Ordering::SeqCst);
        });
        started.recv().unwrap();
        let hit = library.search("예산 보고서 제출", 3).unwrap().passages;
        assert!(
            !import_done.load(Ordering::SeqCst),
            "the search waited for the OCR import to finish"
        );
        assert_eq!(hit[0].file_name, "notes.txt");
    });
}

/// The office persona on the real SmolLM2 model, which cannot see images.
fn office_chat(dir: &Path) -> deskmate_core::chat::Chat {
    use deskmate_core::config::{AutoOr, ModelConfig, Sampling};
    use deskmate_core::store::{Persona, Store};
    use std::sync::{Arc, Mutex};
    let store = Arc::new(Mutex::new(
        Store::open(&dir.join("deskmate.sqlite3")).unwrap(),
    ));
    let engine = Arc::new(deskmate_core::engine::Engine::new(None).unwrap());
    let model = ModelConfig {
        n_ctx: 4096,
        threads: AutoOr::Value(2),
        sampling: Sampling {
            temperature: 0.0,
            max_tokens: 48,
            ..Sampling::default()
        },
        ..ModelConfig::default()
    };
    engine
        .load(
            Persona::Office,
            &common::model("SmolLM2-135M-Instruct.Q4_1.gguf"),
            &model,
        )
        .unwrap();
    deskmate_core::chat::Chat::new(store, engine)
}

#[test]
fn the_text_in_an_attached_image_reaches_a_model_that_cannot_see_and_the_answer_uses_it() {
    use deskmate_core::attachments::AttachmentStore;
    use deskmate_core::chat::{ChatEvent, TurnOptions};
    use deskmate_core::store::{Persona, SessionSetup, Tone};
    let dir = tempfile::tempdir().unwrap();
    let screenshot =
        render_text_page("오류 코드 E1042\n디스크 공간이 부족합니다. 파일을 저장할 수 없습니다.")
            .unwrap();
    let mut png = std::io::Cursor::new(Vec::new());
    screenshot
        .write_to(&mut png, image::ImageFormat::Png)
        .unwrap();
    let files = AttachmentStore::new(dir.path().join("attachments"));
    let draft = files.stage_image("오류.png", png.get_ref()).unwrap();
    let attachments = files.resolve(&[draft.id]).unwrap();

    let chat = office_chat(dir.path());
    chat.set_image_ocr(Some(Ocr::default()));
    let setup = SessionSetup {
        persona: Persona::Office,
        tone: Some(Tone::Polite),
        character: None,
    };
    let options = TurnOptions {
        history_turns: Some(10),
        max_message_chars: 2000,
        documents_to_remote: false,
    };
    let turn = chat
        .send_with_attachments(
            None,
            &setup,
            "What is the error code in the attached image?",
            attachments,
            options,
        )
        .unwrap();
    // The stored message says the text was read (the chat shows it), and the model's copy
    // carries the text.
    let user = turn.start().user_message.clone().unwrap();
    let read = user.attachments[0].text.clone().unwrap();
    assert!(squash(&read).contains("디스크공간이부족합니다"), "{read}");
    let sent = &turn.request().messages.last().unwrap().content;
    assert!(
        sent.contains("read by OCR") && sent.contains("E1042"),
        "{sent}"
    );
    let mut answer = String::new();
    turn.run(|e| {
        if let ChatEvent::Text { text, .. } = e {
            answer.push_str(&text);
        }
    });
    assert!(answer.contains("E1042"), "{answer}");

    // Stored: the next turn quotes it again without reading the image again.
    let store_text = chat
        .store()
        .lock()
        .unwrap()
        .messages(user.session_id)
        .unwrap()[0]
        .attachments[0]
        .text
        .clone();
    assert_eq!(store_text.as_deref(), Some(read.as_str()));
}
