//! The Korean office-format set of `deskmate bench-documents`: the same real public text in
//! each format the library reads, searched with the same labeled questions, and the OCR of its
//! scanned pages measured against the text they were made from.
//!
//! The text is the Korean constitution of the corpus (`kolaw-constitution.txt`, KoNLPy's copy of
//! the public law text; see SOURCES.md) with its 20 labeled questions. Each format gets its own
//! library holding that document in the format, beside the five real Korean bills of the corpus
//! (as text) for distractors:
//! - `txt`: the original file, the baseline;
//! - `hwpx`: one OWPML paragraph per line;
//! - `xlsx`: one row per line (number, text), located by sheet and cell range;
//! - `pptx`: six lines per slide, located by slide;
//! - `pdf (scan)`: the text laid out by Pango at 11 pt on A4-wide pages, stored as 200-dpi images
//!   without a text layer, so every page goes through poppler and Tesseract.
//!
//! Measured: recall@5 and MRR@10 of the hybrid search per format; for the scan, the character
//! error rate of OCR (edit distance over the source's characters, whitespace ignored since the
//! layout differs) and OCR pages per minute (one Tesseract thread, as the import runs it).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use deskmate_core::config::Config;
use deskmate_core::documents::extract::{extract_bytes, DocKind};
use deskmate_core::documents::samples::{
    hwpx_with, pdf_with, pptx_with, render_text_page, xlsx_with, PdfPage, SCAN_DPI,
};
use deskmate_core::documents::{Library, SearchMode};
use deskmate_core::ocr::Ocr;

use crate::bench_docs_cmd::{relevant, Question};

/// Characters of source text per rendered page (about what an A4 page holds at 11 pt).
const PAGE_CHARS: usize = 1300;

const SOURCE: &str = "kolaw-constitution.txt";

/// The scanned pages: the source lines grouped into pages of about [`PAGE_CHARS`].
fn pages_of(lines: &[String]) -> Vec<String> {
    let mut pages = Vec::new();
    let mut page = String::new();
    for line in lines {
        if !page.is_empty() && page.chars().count() + line.chars().count() > PAGE_CHARS {
            pages.push(std::mem::take(&mut page));
        }
        page.push_str(line);
        page.push('\n');
    }
    if !page.is_empty() {
        pages.push(page);
    }
    pages
}

fn squash(s: &str) -> Vec<char> {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Levenshtein distance between two character sequences (two rows of the table).
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitute.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// One format's library: import its folder, then search every question.
fn measure_format(
    open: &dyn Fn(&str) -> anyhow::Result<Library>,
    name: &str,
    folder: &Path,
    target: &str,
    questions: &[&Question],
) -> anyhow::Result<serde_json::Value> {
    let library = open(name)?;
    library.warm_up().ok();
    let started = Instant::now();
    let reports = library.import(&[folder.to_path_buf()], None, &mut |_| {})?;
    let import_s = started.elapsed().as_secs_f64();
    let failed: Vec<_> = reports
        .iter()
        .flat_map(|r| &r.files)
        .filter(|f| f.status == "failed")
        .collect();
    anyhow::ensure!(failed.is_empty(), "{name}: files failed: {failed:?}");
    let (mut hits, mut rr) = (0usize, 0f64);
    let mut ranks = Vec::new();
    for q in questions {
        let result = library.search_with(&q.question, 10, SearchMode::Hybrid)?;
        let rank = result
            .passages
            .iter()
            .position(|p| p.file_name == target && relevant(&p.text, &q.evidence))
            .map(|i| i + 1);
        if rank.is_some_and(|r| r <= 5) {
            hits += 1;
        }
        if let Some(r) = rank {
            rr += 1.0 / r as f64;
        }
        ranks.push(serde_json::json!({"id": q.id, "rank": rank}));
    }
    let n = questions.len().max(1) as f64;
    Ok(serde_json::json!({
        "format": name,
        "file": target,
        "questions": questions.len(),
        "recall_at_5": hits as f64 / n,
        "mrr_at_10": rr / n,
        "import_s": import_s,
        "chunks": reports.iter().map(|r| r.chunks).sum::<i64>(),
        "ranks": ranks,
    }))
}

/// The Korean set; `scan_pages` limits the scanned pages (and the questions asked of the scan
/// to those whose evidence is on them), for a quick run.
pub fn run(
    corpus: &Path,
    models: &Path,
    work: &Path,
    questions: &[Question],
    scan_pages: Option<usize>,
) -> anyhow::Result<serde_json::Value> {
    Ocr::default().check().context(
        "the Korean set needs OCR: apt install tesseract-ocr tesseract-ocr-kor poppler-utils",
    )?;
    let source = std::fs::read_to_string(corpus.join(SOURCE))
        .with_context(|| format!("reading {SOURCE}"))?
        .replace('\r', "");
    let lines: Vec<String> = source
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let asked: Vec<&Question> = questions.iter().filter(|q| q.file == SOURCE).collect();
    let root = work.join("korean");
    let _ = std::fs::remove_dir_all(&root);
    let distractors: Vec<PathBuf> = std::fs::read_dir(corpus)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("kobill-"))
        })
        .collect();
    let folder_with = |format: &str, name: &str, bytes: &[u8]| -> anyhow::Result<PathBuf> {
        let folder = root.join(format);
        std::fs::create_dir_all(&folder)?;
        for d in &distractors {
            if let Some(n) = d.file_name() {
                std::fs::copy(d, folder.join(n))?;
            }
        }
        std::fs::write(folder.join(name), bytes)?;
        Ok(folder)
    };
    let config = Config::shipped();
    let open = |name: &str| -> anyhow::Result<Library> {
        let db = root.join(format!("{name}.sqlite3"));
        let vectors = root.join(format!("{name}.vectors"));
        Ok(Library::open(&db, &vectors, &config, models)?)
    };

    let line_refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = std::iter::once(vec!["번호".to_owned(), "내용".to_owned()])
        .chain(
            lines
                .iter()
                .enumerate()
                .map(|(i, l)| vec![(i + 1).to_string(), l.clone()]),
        )
        .collect();
    let row_refs: Vec<Vec<&str>> = rows
        .iter()
        .map(|r| r.iter().map(String::as_str).collect())
        .collect();
    let row_slices: Vec<&[&str]> = row_refs.iter().map(Vec::as_slice).collect();
    let slides: Vec<&[&str]> = line_refs.chunks(6).collect();

    let mut formats = Vec::new();
    let plain = folder_with("txt", "헌법.txt", source.as_bytes())?;
    formats.push(measure_format(&open, "txt", &plain, "헌법.txt", &asked)?);
    let hwpx = hwpx_with(&line_refs).map_err(anyhow::Error::msg)?;
    let folder = folder_with("hwpx", "헌법.hwpx", &hwpx)?;
    formats.push(measure_format(&open, "hwpx", &folder, "헌법.hwpx", &asked)?);
    let xlsx = xlsx_with(&[("헌법", &row_slices)]).map_err(anyhow::Error::msg)?;
    let folder = folder_with("xlsx", "헌법.xlsx", &xlsx)?;
    formats.push(measure_format(&open, "xlsx", &folder, "헌법.xlsx", &asked)?);
    let pptx = pptx_with(&slides).map_err(anyhow::Error::msg)?;
    let folder = folder_with("pptx", "헌법.pptx", &pptx)?;
    formats.push(measure_format(&open, "pptx", &folder, "헌법.pptx", &asked)?);

    // The scan: rendered pages, OCR'd once through the import's own path for the error rate
    // and the speed, then imported (and so read again) for retrieval.
    let mut pages = pages_of(&lines);
    if let Some(limit) = scan_pages {
        pages.truncate(limit.max(1));
    }
    let started = Instant::now();
    let images = pages
        .iter()
        .map(|p| render_text_page(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let render_s = started.elapsed().as_secs_f64();
    let pdf = pdf_with(
        &images
            .iter()
            .map(|i| PdfPage::Scan(i, SCAN_DPI))
            .collect::<Vec<_>>(),
    )
    .map_err(anyhow::Error::msg)?;
    let folder = folder_with("pdf-scan", "헌법 스캔.pdf", &pdf)?;
    let scan_path = folder.join("헌법 스캔.pdf");
    let mut extracted = extract_bytes(&scan_path, DocKind::Pdf, &pdf)?;
    anyhow::ensure!(
        extracted.sections.is_empty() && extracted.scanned_pages.len() == pages.len(),
        "the generated scan has a text layer"
    );
    let started = Instant::now();
    extracted.read_scanned_pages(&scan_path, &Ocr::default(), &mut |_, _| {}, &|| false)?;
    let ocr_s = started.elapsed().as_secs_f64();
    let (mut errors, mut chars) = (0usize, 0usize);
    let mut per_page = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        let truth = squash(page);
        let read: String = extracted
            .sections
            .iter()
            .filter(|s| s.page == Some(i as u32 + 1))
            .map(|s| s.text.as_str())
            .collect();
        let distance = edit_distance(&squash(&read), &truth);
        errors += distance;
        chars += truth.len();
        per_page.push(distance as f64 / truth.len().max(1) as f64);
    }
    let scanned_text: String = pages.concat();
    let scan_questions: Vec<&Question> = asked
        .iter()
        .copied()
        .filter(|q| relevant(&scanned_text, &q.evidence))
        .collect();
    let mut scan = measure_format(
        &open,
        "pdf (scan)",
        &folder,
        "헌법 스캔.pdf",
        &scan_questions,
    )?;
    scan["pages"] = pages.len().into();
    formats.push(scan);
    let _ = std::fs::remove_dir_all(&root);
    Ok(serde_json::json!({
        "source": SOURCE,
        "formats": formats,
        "ocr": {
            "pages": pages.len(),
            "dpi": SCAN_DPI,
            "render_s": render_s,
            "ocr_s": ocr_s,
            "pages_per_minute": pages.len() as f64 / (ocr_s / 60.0),
            "character_error_rate": errors as f64 / chars.max(1) as f64,
            "character_error_rate_by_page": per_page,
            "source_characters": chars,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        let c = |s: &str| s.chars().collect::<Vec<_>>();
        assert_eq!(edit_distance(&c("대한민국"), &c("대한민국")), 0);
        assert_eq!(edit_distance(&c("대한민국"), &c("대한국")), 1);
        assert_eq!(edit_distance(&c("헌법"), &c("현법")), 1);
        assert_eq!(edit_distance(&c(""), &c("abc")), 3);
        assert_eq!(edit_distance(&c("kitten"), &c("sitting")), 3);
    }

    #[test]
    fn pages_keep_whole_lines_and_all_the_text() {
        let lines: Vec<String> = (0..100)
            .map(|i| format!("제{i}조 {}", "가".repeat(40)))
            .collect();
        let pages = pages_of(&lines);
        assert!(pages.len() > 1);
        assert!(pages.iter().all(|p| p.chars().count() <= PAGE_CHARS + 50));
        assert_eq!(pages.concat().lines().count(), 100);
    }
}
