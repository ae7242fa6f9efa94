//! Korean office formats: real HWP 5 and HWPX files from public npm packages (fetched and
//! pinned by `cargo xtask test`, named by `DESKMATE_TEST_DOCS`), generated XLSX and PPTX files,
//! and protected, corrupt and truncated files of each. Imported into a real library and found
//! by a Korean phrase at the right place.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use deskmate_core::config::Config;
use deskmate_core::documents::extract::{extract_file, DocKind};
use deskmate_core::documents::samples::{pptx_with, xlsx_with};
use deskmate_core::documents::Library;

const MAX: u64 = 64 << 20;

/// A real document from the npm packages, or `None` with the reason printed (the test is then
/// skipped: run it through `cargo xtask test`, which provides them).
fn real(member: &str) -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("DESKMATE_TEST_DOCS") else {
        eprintln!("skipped: DESKMATE_TEST_DOCS is not set (cargo xtask test fetches the real HWP/HWPX files)");
        return None;
    };
    let path = Path::new(&dir).join(member);
    if !path.is_file() {
        eprintln!("skipped: {} is missing", path.display());
        return None;
    }
    Some(path)
}

const KAIST_HWP: &str = "package/test/files/kaist/kaist-055.hwp";
const KAIST_HML: &str = "package/test/files/kaist/kaist-055.hml";
const DRAFT_HWPX: &str = "package/templates/일반기안문_서식.hwpx";

fn text_of(path: &Path) -> String {
    extract_file(path, MAX)
        .unwrap()
        .sections
        .iter()
        .map(|s| s.text.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_real_hwp_form_yields_the_text_its_own_hml_export_has() {
    let (Some(hwp), Some(hml)) = (real(KAIST_HWP), real(KAIST_HML)) else {
        return;
    };
    let text = text_of(&hwp);
    assert!(text.contains("복수전공"), "{text}");
    assert!(text.contains("한국과학기술원 총장 귀하"), "{text}");
    // Table rows stay rows.
    assert!(
        text.lines()
            .any(|l| l == "과 정 | 학과/전공 | 학 번 | 성 명 | 학생구분"),
        "{text}"
    );
    // Every non-blank text run of Hangul's own XML export of the same form is in it.
    let export = std::fs::read_to_string(hml).unwrap();
    let runs: Vec<String> = export
        .split("<CHAR>")
        .skip(1)
        .filter_map(|s| s.split("</CHAR>").next())
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .collect();
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let found = runs.iter().filter(|r| flat.contains(r.as_str())).count();
    assert!(runs.len() > 15);
    assert_eq!(
        found,
        runs.len(),
        "missing: {:?}",
        runs.iter()
            .filter(|r| !flat.contains(r.as_str()))
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_real_hwpx_draft_form_yields_its_korean_labels_with_table_rows_kept() {
    let Some(hwpx) = real(DRAFT_HWPX) else { return };
    let extracted = extract_file(&hwpx, MAX).unwrap();
    assert_eq!(extracted.kind, DocKind::Hwpx);
    let text = text_of(&hwpx);
    for label in ["수신", "제목", "기안자", "검토자", "결재권자", "협조자"] {
        assert!(text.contains(label), "{label} in {text}");
    }
    // The approval line is a table row: its cells stay on one line.
    assert!(
        text.lines()
            .any(|l| l.contains("기안자") && l.contains("결재권자")),
        "{text}"
    );
}

#[test]
fn sheets_are_cut_into_runs_of_rows_located_by_sheet_and_cell_range() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<Vec<String>> = std::iter::once(vec![
        "구분".to_owned(),
        "일수".to_owned(),
        "비고".to_owned(),
    ])
    .chain((1..=45).map(|i| {
        vec![
            format!("{i}년 근속"),
            format!("{}일", 15 + i / 2),
            "연차 유급휴가".to_owned(),
        ]
    }))
    .collect();
    let rows_ref: Vec<Vec<&str>> = rows
        .iter()
        .map(|r| r.iter().map(String::as_str).collect())
        .collect();
    let rows_slices: Vec<&[&str]> = rows_ref.iter().map(Vec::as_slice).collect();
    let path = dir.path().join("휴가.xlsx");
    std::fs::write(
        &path,
        xlsx_with(&[("연차", &rows_slices), ("메모", &[&["월급날은 매월 25일"]])]).unwrap(),
    )
    .unwrap();
    let extracted = extract_file(&path, MAX).unwrap();
    assert_eq!(extracted.kind, DocKind::Xlsx);
    let headings: Vec<&str> = extracted
        .sections
        .iter()
        .map(|s| s.heading.as_deref().unwrap())
        .collect();
    assert_eq!(headings, ["연차 A1:C40", "연차 A41:C46", "메모 A1:A1"]);
    assert!(extracted.sections[0]
        .text
        .starts_with("구분 | 일수 | 비고\n1년 근속 | 15일 | 연차 유급휴가"));
}

#[test]
fn slides_are_located_by_their_number() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("교육.pptx");
    std::fs::write(
        &path,
        pptx_with(&[
            &["신입 사원 교육"],
            &["보안 수칙", "비밀번호는 90일마다 바꿉니다"],
        ])
        .unwrap(),
    )
    .unwrap();
    let extracted = extract_file(&path, MAX).unwrap();
    assert_eq!(extracted.kind, DocKind::Pptx);
    let second = &extracted.sections[1];
    assert_eq!(second.page, Some(2));
    assert_eq!(second.heading.as_deref(), Some("Slide 2: 보안 수칙"));
    assert!(second.text.contains("비밀번호는 90일마다 바꿉니다"));
}

#[test]
fn protected_corrupt_and_truncated_files_of_each_new_format_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ole = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0, 0, 0, 0];
    let xlsx = xlsx_with(&[("a", &[&["x"]])]).unwrap();
    let pptx = pptx_with(&[&["x"]]).unwrap();
    let mut cases: Vec<(String, Vec<u8>, &str)> = vec![
        // An OOXML or HWPX file saved with a password is an OLE container, not a zip.
        ("잠김.xlsx".into(), ole.to_vec(), "document_encrypted"),
        ("잠김.pptx".into(), ole.to_vec(), "document_encrypted"),
        ("잠김.hwpx".into(), ole.to_vec(), "document_encrypted"),
        (
            "깨짐.xlsx".into(),
            b"not a workbook".to_vec(),
            "document_unreadable",
        ),
        (
            "깨짐.pptx".into(),
            b"not slides".to_vec(),
            "document_unreadable",
        ),
        (
            "깨짐.hwpx".into(),
            b"not hwpx".to_vec(),
            "document_unreadable",
        ),
        (
            "깨짐.hwp".into(),
            b"HWP Document File but no OLE".to_vec(),
            "document_unreadable",
        ),
        (
            "잘림.xlsx".into(),
            xlsx[..xlsx.len() / 2].to_vec(),
            "document_unreadable",
        ),
        (
            "잘림.pptx".into(),
            pptx[..pptx.len() / 2].to_vec(),
            "document_unreadable",
        ),
    ];
    if let Some(hwp) = real(KAIST_HWP) {
        let bytes = std::fs::read(hwp).unwrap();
        cases.push((
            "잘림.hwp".into(),
            bytes[..bytes.len() / 2].to_vec(),
            "document_unreadable",
        ));
        // The same form with the header's "encrypted" flag set (bit 1 of the flags at 36).
        let at = bytes
            .windows(17)
            .position(|w| w == b"HWP Document File")
            .unwrap();
        let mut locked = bytes.clone();
        locked[at + 36] |= 0b10;
        cases.push(("잠김.hwp".into(), locked, "document_encrypted"));
    }
    if let Some(hwpx) = real(DRAFT_HWPX) {
        let bytes = std::fs::read(hwpx).unwrap();
        cases.push((
            "잘림.hwpx".into(),
            bytes[..bytes.len() / 2].to_vec(),
            "document_unreadable",
        ));
    }
    for (name, bytes, code) in &cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = extract_file(&path, MAX).unwrap_err();
        assert_eq!(err.code(), *code, "{name}: {err}");
        assert!(err.to_string().contains(name.as_str()), "{name}: {err}");
    }
}

#[test]
fn an_import_of_every_new_format_is_found_by_a_korean_phrase_at_its_place_and_bad_files_do_not_stop_it(
) {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(
        files.join("휴가.xlsx"),
        xlsx_with(&[
            ("연차", &[&["구분", "일수"], &["1년 근속", "15일"]]),
            ("급여", &[&["지급일", "매월 25일"]]),
        ])
        .unwrap(),
    )
    .unwrap();
    std::fs::write(
        files.join("교육.pptx"),
        pptx_with(&[
            &["신입 사원 교육"],
            &["보안 수칙: 비밀번호는 90일마다 바꿉니다"],
        ])
        .unwrap(),
    )
    .unwrap();
    std::fs::write(
        files.join("잠김.xlsx"),
        [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1],
    )
    .unwrap();
    let mut expected = 3;
    if let Some(hwp) = real(KAIST_HWP) {
        std::fs::copy(hwp, files.join("신청서.hwp")).unwrap();
        expected += 1;
    }
    if let Some(hwpx) = real(DRAFT_HWPX) {
        std::fs::copy(hwpx, files.join("기안문.hwpx")).unwrap();
        expected += 1;
    }
    let library = Library::open(
        &dir.path().join("deskmate.sqlite3"),
        &dir.path().join("deskmate.vectors"),
        &Config::shipped(),
        &common::models_dir(),
    )
    .unwrap();
    let reports = library.import(&[files], None, &mut |_| {}).unwrap();
    let r = &reports[0];
    assert_eq!((r.added, r.failed), (expected - 1, 1), "{r:#?}");
    let locked = r.files.iter().find(|f| f.status == "failed").unwrap();
    assert!(locked.path.ends_with("잠김.xlsx"));
    assert_eq!(locked.error_code.as_deref(), Some("document_encrypted"));

    let top = |query: &str| {
        library
            .search(query, 3)
            .unwrap()
            .passages
            .into_iter()
            .next()
            .unwrap()
    };
    let sheet = top("매월 25일 지급일");
    assert_eq!(sheet.file_name, "휴가.xlsx");
    assert_eq!(sheet.section.as_deref(), Some("급여 A1:B1"));
    let slide = top("비밀번호는 90일마다");
    assert_eq!(slide.file_name, "교육.pptx");
    assert_eq!(slide.page, Some(2));
    if expected == 5 {
        let hwp = top("한국과학기술원 총장");
        assert_eq!(hwp.file_name, "신청서.hwp");
        let hwpx = top("결재권자");
        assert_eq!(hwpx.file_name, "기안문.hwpx");
    }
}
