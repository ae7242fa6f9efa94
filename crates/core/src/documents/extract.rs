//! Text out of a user's file, with where each part came from (page for PDFs, heading for
//! Markdown, HTML and DOCX).
//!
//! Crates, and why:
//! - txt/md: the standard library; text that is not UTF-8 is tried as EUC-KR (CP949 files are
//!   still common on Korean office machines) with `encoding_rs`, which also decodes UTF-16.
//! - pdf: `pdf-extract` (pure Rust over `lopdf`): text per page, no system library. `lopdf`
//!   checks encryption first. pdf-extract can panic on malformed files, so it runs under
//!   `catch_unwind` and a panic becomes a per-file "unreadable" error.
//! - docx: the `zip` crate (already used by the model manager) and `quick-xml` over
//!   `word/document.xml`: paragraphs, tabs, breaks and Heading styles, nothing more.
//! - html: `scraper` (html5ever): the same parser as Servo, so broken markup still yields text;
//!   `script`, `style` and similar elements are skipped.
//! - csv: the `csv` crate; each row becomes `header: value; …` so a row reads as a sentence.
//! - hwp, hwpx, xlsx, ods, pptx: see [`super::office`].
//!
//! Every failure is an [`Error`] naming the file; nothing here panics or aborts a batch.

use crate::error::DocumentsError;
use std::io::Read;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The supported formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DocKind {
    Txt,
    Md,
    Pdf,
    Docx,
    Html,
    Csv,
    /// Hangul Word Processor 5.x (binary).
    Hwp,
    /// Hangul Word Processor's OWPML (zip + XML).
    Hwpx,
    Xlsx,
    Ods,
    Pptx,
}

impl DocKind {
    /// The format from the file extension (case-insensitive).
    pub fn of(path: &Path) -> Option<DocKind> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "txt" | "text" | "log" => DocKind::Txt,
            "md" | "markdown" => DocKind::Md,
            "pdf" => DocKind::Pdf,
            "docx" => DocKind::Docx,
            "html" | "htm" => DocKind::Html,
            "csv" => DocKind::Csv,
            "hwp" => DocKind::Hwp,
            "hwpx" => DocKind::Hwpx,
            "xlsx" | "xlsm" => DocKind::Xlsx,
            "ods" => DocKind::Ods,
            "pptx" => DocKind::Pptx,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Txt => "txt",
            DocKind::Md => "md",
            DocKind::Pdf => "pdf",
            DocKind::Docx => "docx",
            DocKind::Html => "html",
            DocKind::Csv => "csv",
            DocKind::Hwp => "hwp",
            DocKind::Hwpx => "hwpx",
            DocKind::Xlsx => "xlsx",
            DocKind::Ods => "ods",
            DocKind::Pptx => "pptx",
        }
    }
}

/// A run of text with its place in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Section {
    pub text: String,
    /// 1-based page (PDF only).
    pub page: Option<u32>,
    /// The heading the text sits under, if the format has headings.
    pub heading: Option<String>,
}

/// A file's text, in order, with its content hash (for "unchanged since last import").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Extracted {
    pub kind: DocKind,
    pub sections: Vec<Section>,
    pub sha256: String,
    pub size_bytes: u64,
    /// PDF pages (1-based) without a usable text layer: scans, to be read by OCR
    /// ([`Extracted::read_scanned_pages`]). Their text is not in `sections`.
    pub scanned_pages: Vec<u32>,
}

/// A PDF page with fewer letters and digits than this in its text layer is treated as a scan:
/// scanners and phone apps often leave a page number or "Scanned with …" as the only text.
const MIN_TEXT_LAYER_CHARS: usize = 16;

impl Extracted {
    /// Reads the scanned pages with `ocr`, putting each page's text in its place among the
    /// others. `progress(done, total)` follows the pages; `Ok(false)`: cancelled between (or
    /// during) pages, with the pages read so far kept.
    pub fn read_scanned_pages(
        &mut self,
        path: &Path,
        ocr: &crate::ocr::Ocr,
        progress: &mut dyn FnMut(u32, u32),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<bool> {
        if self.scanned_pages.is_empty() {
            return Ok(true);
        }
        ocr.check()?;
        let total = self.scanned_pages.len() as u32;
        progress(0, total);
        let pages = std::mem::take(&mut self.scanned_pages);
        for (done, &page) in pages.iter().enumerate() {
            if cancelled() {
                self.scanned_pages = pages[done..].to_vec();
                return Ok(false);
            }
            let text = match ocr.read_pdf_page(path, page, cancelled) {
                Ok(crate::ocr::OcrRead::Text(text)) => text,
                Ok(crate::ocr::OcrRead::Cancelled) => {
                    self.scanned_pages = pages[done..].to_vec();
                    return Ok(false);
                }
                Err(Error::Documents(DocumentsError::OcrFailed { reason, .. })) => {
                    return Err(Error::Documents(DocumentsError::OcrFailed {
                        path: path.to_path_buf(),
                        page: Some(page),
                        reason,
                    }))
                }
                Err(e) => return Err(e),
            };
            // Already tidied by the OCR side (`ocr::clean_ocr_text`).
            if !text.is_empty() {
                self.sections.push(Section {
                    text,
                    page: Some(page),
                    heading: None,
                });
            }
            progress(done as u32 + 1, total);
        }
        // Stable: the text pages keep their order, each read page lands at its number.
        self.sections.sort_by_key(|s| s.page);
        Ok(true)
    }

    /// The error for a file that ended up without any text: a scan that OCR did not read, or
    /// nothing at all.
    pub fn require_text(&self, path: &Path) -> Result<()> {
        if !self.sections.is_empty() {
            return Ok(());
        }
        Err(Error::Documents(if self.scanned_pages.is_empty() {
            DocumentsError::Empty {
                path: path.to_path_buf(),
            }
        } else {
            DocumentsError::Scanned {
                path: path.to_path_buf(),
                pages: self.scanned_pages.len() as u32,
            }
        }))
    }
}

/// Whether a PDF page's text layer holds too little to be its text.
fn is_scanned_page(text: &str) -> bool {
    text.chars().filter(|c| c.is_alphanumeric()).count() < MIN_TEXT_LAYER_CHARS
}

/// Reads and extracts one file; `max_bytes` is `documents.max_file_mb` in bytes.
pub fn extract_file(path: &Path, max_bytes: u64) -> Result<Extracted> {
    let (kind, bytes) = read_document(path, max_bytes)?;
    extract_bytes(path, kind, &bytes)
}

/// Reads a file that may be imported: a supported kind, a regular file, within `max_bytes`.
pub fn read_document(path: &Path, max_bytes: u64) -> Result<(DocKind, Vec<u8>)> {
    let kind = DocKind::of(path).ok_or_else(|| {
        Error::Documents(DocumentsError::Unsupported {
            path: path.to_path_buf(),
            extension: path
                .extension()
                .map(|e| e.to_string_lossy().into_owned())
                .unwrap_or_default(),
        })
    })?;
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::Documents(DocumentsError::Unreadable {
            path: path.to_path_buf(),
            reason: "not a regular file".into(),
        }));
    }
    if meta.len() > max_bytes {
        return Err(Error::Documents(DocumentsError::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
            limit: max_bytes,
        }));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok((kind, bytes))
}

/// Extracts already-read bytes of a file of the given kind (`path` names it in errors). A PDF
/// whose pages are all scans comes back without sections and with its `scanned_pages`: see
/// [`Extracted::read_scanned_pages`] and [`Extracted::require_text`].
pub fn extract_bytes(path: &Path, kind: DocKind, bytes: &[u8]) -> Result<Extracted> {
    let mut scanned_pages = Vec::new();
    let sections = match kind {
        DocKind::Txt => vec![Section {
            text: decode_text(path, bytes)?,
            page: None,
            heading: None,
        }],
        DocKind::Md => markdown_sections(&decode_text(path, bytes)?),
        DocKind::Csv => csv_sections(path, &decode_text(path, bytes)?)?,
        DocKind::Html => html_sections(&decode_text(path, bytes)?),
        DocKind::Docx => docx_sections(path, bytes)?,
        DocKind::Pdf => {
            let pages = pdf_sections(path, bytes)?;
            scanned_pages = pages
                .iter()
                .filter(|s| is_scanned_page(&s.text))
                .filter_map(|s| s.page)
                .collect();
            pages
                .into_iter()
                .filter(|s| !is_scanned_page(&s.text))
                .collect()
        }
        DocKind::Hwp => super::office::hwp_sections(path, bytes)?,
        DocKind::Hwpx => super::office::hwpx_sections(path, bytes)?,
        DocKind::Xlsx => super::office::sheet_sections(path, bytes, false)?,
        DocKind::Ods => super::office::sheet_sections(path, bytes, true)?,
        DocKind::Pptx => super::office::pptx_sections(path, bytes)?,
    };
    let sections: Vec<Section> = sections
        .into_iter()
        .map(|s| Section {
            text: tidy(&s.text),
            ..s
        })
        .filter(|s| !s.text.is_empty())
        .collect();
    if sections.is_empty() && scanned_pages.is_empty() {
        return Err(Error::Documents(DocumentsError::Empty {
            path: path.to_path_buf(),
        }));
    }
    Ok(Extracted {
        kind,
        sections,
        sha256: hex(&Sha256::digest(bytes)),
        size_bytes: bytes.len() as u64,
        scanned_pages,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Trims each line's end and collapses runs of blank lines to one.
pub(crate) fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        out.push_str(line);
    }
    out
}

pub(super) fn unreadable(path: &Path, reason: impl Into<String>) -> Error {
    Error::Documents(DocumentsError::Unreadable {
        path: path.to_path_buf(),
        reason: reason.into(),
    })
}

/// UTF-8 (with or without BOM), UTF-16 with a BOM, or EUC-KR/CP949; binary data is refused.
fn decode_text(path: &Path, bytes: &[u8]) -> Result<String> {
    if let Some((encoding, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        let (text, had_errors) = encoding.decode_without_bom_handling(&bytes[bom..]);
        if !had_errors {
            return Ok(text.into_owned());
        }
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok(text.to_owned());
    }
    let head = &bytes[..bytes.len().min(8192)];
    if head.contains(&0) {
        return Err(unreadable(path, "binary data, not text"));
    }
    encoding_rs::EUC_KR
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|t| t.into_owned())
        .ok_or_else(|| unreadable(path, "the text is neither UTF-8 nor EUC-KR (CP949)"))
}

/// Sections being collected: text goes to `body`; a heading closes the current section and
/// opens the next one under it.
#[derive(Default)]
struct SectionsUnderHeadings {
    done: Vec<Section>,
    heading: Option<String>,
    body: String,
}

impl SectionsUnderHeadings {
    fn start(&mut self, heading: String) {
        self.done.push(Section {
            text: std::mem::take(&mut self.body),
            page: None,
            heading: self.heading.take(),
        });
        self.heading = Some(heading);
    }

    /// Starts a section whose text opens with its heading's line.
    fn start_with_title(&mut self, title: String) {
        let line = format!("{title}\n");
        self.start(title);
        self.body = line;
    }

    fn finish(mut self) -> Vec<Section> {
        self.done.push(Section {
            text: self.body,
            page: None,
            heading: self.heading,
        });
        self.done
    }
}

/// Markdown split at ATX headings (`#`…`######`); each section carries its heading.
fn markdown_sections(text: &str) -> Vec<Section> {
    let mut out = SectionsUnderHeadings::default();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        let title = (!in_code)
            .then(|| line.strip_prefix('#'))
            .flatten()
            .map(|rest| rest.trim_start_matches('#'))
            .filter(|rest| rest.starts_with(' '))
            .map(|rest| rest.trim().to_owned());
        match title {
            Some(title) => out.start_with_title(title),
            None => {
                out.body.push_str(line);
                out.body.push('\n');
            }
        }
    }
    out.finish()
}

fn csv_sections(path: &Path, text: &str) -> Result<Vec<Section>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| unreadable(path, format!("CSV header: {e}")))?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut out = String::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| unreadable(path, format!("CSV row {}: {e}", i + 2)))?;
        let cells: Vec<String> = record
            .iter()
            .enumerate()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(
                |(c, v)| match headers.get(c).filter(|h| !h.trim().is_empty()) {
                    Some(h) => format!("{}: {}", h.trim(), v.trim()),
                    None => v.trim().to_owned(),
                },
            )
            .collect();
        if !cells.is_empty() {
            out.push_str(&cells.join("; "));
            out.push_str("\n\n");
        }
    }
    Ok(vec![Section {
        text: out,
        page: None,
        heading: None,
    }])
}

const HTML_SKIPPED: &[&str] = &[
    "script", "style", "noscript", "template", "head", "svg", "canvas", "iframe",
];
const HTML_BLOCKS: &[&str] = &[
    "p",
    "div",
    "li",
    "tr",
    "br",
    "section",
    "article",
    "table",
    "ul",
    "ol",
    "pre",
    "blockquote",
    "header",
    "footer",
    "main",
    "nav",
    "dd",
    "dt",
    "figcaption",
    "title",
];

/// HTML as text, split at headings; markup that is not content is skipped.
fn html_sections(text: &str) -> Vec<Section> {
    let document = scraper::Html::parse_document(text);
    let mut out = SectionsUnderHeadings::default();
    walk_html(document.root_element(), &mut |event| match event {
        HtmlEvent::Text(t) => out.body.push_str(t),
        HtmlEvent::Break => out.body.push('\n'),
        HtmlEvent::Heading(title) => out.start_with_title(title),
    });
    out.finish()
}

enum HtmlEvent<'a> {
    Text(&'a str),
    Break,
    Heading(String),
}

fn walk_html(element: scraper::ElementRef<'_>, on: &mut impl FnMut(HtmlEvent<'_>)) {
    for child in element.children() {
        if let Some(text) = child.value().as_text() {
            on(HtmlEvent::Text(text));
            continue;
        }
        let Some(el) = scraper::ElementRef::wrap(child) else {
            continue;
        };
        let name = el.value().name();
        if HTML_SKIPPED.contains(&name) {
            continue;
        }
        if matches!(name, "h1" | "h2" | "h3" | "h4" | "h5" | "h6") {
            let title: String = el.text().collect::<String>().trim().to_owned();
            if !title.is_empty() {
                on(HtmlEvent::Heading(title));
            }
            continue;
        }
        let block = HTML_BLOCKS.contains(&name);
        if block {
            on(HtmlEvent::Break);
        }
        if matches!(name, "td" | "th") {
            on(HtmlEvent::Text(" "));
        }
        walk_html(el, on);
        if block {
            on(HtmlEvent::Break);
        }
    }
}

/// The first bytes of an OLE compound file: how Office stores a password-protected .docx.
pub(super) const OLE_MAGIC: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

fn docx_sections(path: &Path, bytes: &[u8]) -> Result<Vec<Section>> {
    if bytes.starts_with(&OLE_MAGIC) {
        return Err(Error::Documents(DocumentsError::Encrypted {
            path: path.to_path_buf(),
        }));
    }
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| unreadable(path, format!("not a DOCX (zip) file: {e}")))?;
    let mut xml = String::new();
    archive
        .by_name("word/document.xml")
        .map_err(|e| unreadable(path, format!("no word/document.xml: {e}")))?
        .read_to_string(&mut xml)
        .map_err(|e| unreadable(path, format!("word/document.xml: {e}")))?;
    docx_xml_sections(&xml).map_err(|e| unreadable(path, format!("word/document.xml: {e}")))
}

/// Paragraphs of WordprocessingML; a paragraph styled `Heading…`/`Title` starts a section.
fn docx_xml_sections(xml: &str) -> std::result::Result<Vec<Section>, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = SectionsUnderHeadings::default();
    let mut paragraph = String::new();
    let mut paragraph_is_heading = false;
    let mut in_text = false;
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) | Event::Empty(e) => match e.local_name().as_ref() {
                b"t" => in_text = true,
                b"tab" => paragraph.push('\t'),
                b"br" | b"cr" => paragraph.push('\n'),
                b"pStyle" => {
                    for attr in e.attributes().flatten() {
                        if attr.key.local_name().as_ref() == b"val" {
                            let v = String::from_utf8_lossy(&attr.value).to_lowercase();
                            paragraph_is_heading = v.starts_with("heading") || v == "title";
                        }
                    }
                }
                _ => {}
            },
            Event::Text(t) if in_text => {
                let text = t.decode().map_err(|e| e.to_string())?;
                paragraph.push_str(&text);
            }
            Event::GeneralRef(r) if in_text => {
                // Entities inside w:t (&amp; &lt; …) arrive separately.
                let name = r.decode().map_err(|e| e.to_string())?;
                paragraph.push_str(xml_entity(&name));
            }
            Event::End(e) => match e.local_name().as_ref() {
                b"t" => in_text = false,
                b"p" => {
                    let text = std::mem::take(&mut paragraph);
                    if paragraph_is_heading && !text.trim().is_empty() {
                        out.start(text.trim().to_owned());
                    }
                    out.body.push_str(&text);
                    out.body.push('\n');
                    paragraph_is_heading = false;
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out.finish())
}

/// The text of one of XML's predefined entities (quick-xml hands `&amp;` and the like over as
/// references); anything else is dropped.
pub(super) fn xml_entity(name: &str) -> &'static str {
    match name {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        _ => "",
    }
}

fn pdf_sections(path: &Path, bytes: &[u8]) -> Result<Vec<Section>> {
    if !bytes.starts_with(b"%PDF-") {
        return Err(unreadable(path, "not a PDF file (no %PDF- header)"));
    }
    match lopdf::Document::load_mem(bytes) {
        Ok(doc) if doc.is_encrypted() => {
            return Err(Error::Documents(DocumentsError::Encrypted {
                path: path.to_path_buf(),
            }))
        }
        Ok(_) => {}
        Err(lopdf::Error::Decryption(_)) => {
            return Err(Error::Documents(DocumentsError::Encrypted {
                path: path.to_path_buf(),
            }))
        }
        Err(e) => return Err(unreadable(path, format!("corrupt PDF: {e}"))),
    }
    let pages = std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem_by_pages(bytes))
        .map_err(|_| {
            unreadable(
                path,
                "the PDF could not be parsed (its structure is broken)",
            )
        })?
        .map_err(|e| unreadable(path, format!("PDF text: {e}")))?;
    Ok(pages
        .into_iter()
        .enumerate()
        .map(|(i, text)| Section {
            text,
            page: Some(i as u32 + 1),
            heading: None,
        })
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    fn p(name: &str) -> std::path::PathBuf {
        std::path::PathBuf::from(name)
    }

    pub(crate) fn pdf_with_pages(pages: &[&str]) -> Vec<u8> {
        crate::documents::samples::pdf_with_pages(pages).unwrap()
    }

    pub(crate) fn docx_with(paragraphs: &[(&str, Option<&str>)]) -> Vec<u8> {
        crate::documents::samples::docx_with(paragraphs).unwrap()
    }

    #[test]
    fn kinds_come_from_the_extension() {
        assert_eq!(DocKind::of(&p("a/Report.PDF")), Some(DocKind::Pdf));
        assert_eq!(DocKind::of(&p("notes.markdown")), Some(DocKind::Md));
        assert_eq!(DocKind::of(&p("x.exe")), None);
        let e = extract_file(&p("/nowhere/x.exe"), 10).unwrap_err();
        assert_eq!(e.code(), "document_unsupported");
    }

    #[test]
    fn text_files_in_utf8_utf16_and_euc_kr_are_read_and_binary_is_refused() {
        let utf8 = extract_bytes(
            &p("a.txt"),
            DocKind::Txt,
            "서울은 한국의 수도입니다.\n\n\n\nSecond.".as_bytes(),
        )
        .unwrap();
        assert_eq!(
            utf8.sections[0].text,
            "서울은 한국의 수도입니다.\n\nSecond."
        );
        let (euc, _, _) = encoding_rs::EUC_KR.encode("부산은 항구 도시입니다.");
        let korean = extract_bytes(&p("b.txt"), DocKind::Txt, &euc).unwrap();
        assert_eq!(korean.sections[0].text, "부산은 항구 도시입니다.");
        let mut utf16 = vec![0xFF, 0xFE];
        for unit in "대전".encode_utf16() {
            utf16.extend(unit.to_le_bytes());
        }
        assert_eq!(
            extract_bytes(&p("c.txt"), DocKind::Txt, &utf16)
                .unwrap()
                .sections[0]
                .text,
            "대전"
        );
        let binary = extract_bytes(
            &p("d.txt"),
            DocKind::Txt,
            &[0x7f, b'E', b'L', b'F', 0, 0, 0xff, 0xfe, 0x80],
        )
        .unwrap_err();
        assert_eq!(binary.code(), "document_unreadable");
        assert!(binary.to_string().contains("binary"), "{binary}");
        let empty = extract_bytes(&p("e.txt"), DocKind::Txt, b" \n\n ").unwrap_err();
        assert_eq!(empty.code(), "document_empty");
    }

    #[test]
    fn markdown_and_html_split_at_headings_and_html_skips_scripts() {
        let md =
            "Intro line\n# Budget\nQ3 is 10.\n```\n# not a heading\n```\n## 일정\n금요일 마감\n";
        let out = extract_bytes(&p("a.md"), DocKind::Md, md.as_bytes()).unwrap();
        let headings: Vec<Option<&str>> =
            out.sections.iter().map(|s| s.heading.as_deref()).collect();
        assert_eq!(headings, [None, Some("Budget"), Some("일정")]);
        assert!(out.sections[1].text.contains("# not a heading"));
        let html = "<html><head><title>T</title><style>p{}</style></head><body>\
                    <h1>회의록</h1><p>서울에서 <b>월요일</b> 회의.</p><script>alert(1)</script>\
                    <table><tr><td>A</td><td>B</td></tr></table></body></html>";
        let out = extract_bytes(&p("a.html"), DocKind::Html, html.as_bytes()).unwrap();
        let all: String = out.sections.iter().map(|s| s.text.clone()).collect();
        assert!(all.contains("서울에서 월요일 회의."), "{all}");
        assert!(all.contains("A  B") || all.contains("A B"), "{all}");
        assert!(!all.contains("alert") && !all.contains("p{}"), "{all}");
        assert_eq!(
            out.sections.last().unwrap().heading.as_deref(),
            Some("회의록")
        );
    }

    #[test]
    fn csv_rows_read_as_header_value_pairs() {
        let csv = "이름,부서,내선\n김철수,영업,1234\n\"Lee, Y\",IT,\n";
        let out = extract_bytes(&p("a.csv"), DocKind::Csv, csv.as_bytes()).unwrap();
        assert_eq!(
            out.sections[0].text,
            "이름: 김철수; 부서: 영업; 내선: 1234\n\n이름: Lee, Y; 부서: IT"
        );
    }

    #[test]
    fn docx_paragraphs_and_headings_are_read_and_encrypted_or_broken_files_are_named() {
        let docx = docx_with(&[
            ("분기 보고서", Some("Title")),
            ("매출은 10% 늘었습니다 &amp; 비용은 줄었습니다.", None),
            ("Risks", Some("Heading1")),
            ("Supply delays.", None),
        ]);
        let out = extract_bytes(&p("r.docx"), DocKind::Docx, &docx).unwrap();
        assert_eq!(out.sections.len(), 2);
        assert_eq!(out.sections[0].heading.as_deref(), Some("분기 보고서"));
        assert!(
            out.sections[0].text.contains("10% 늘었습니다 & 비용은"),
            "{:?}",
            out.sections[0]
        );
        assert_eq!(out.sections[1].heading.as_deref(), Some("Risks"));
        let mut ole = OLE_MAGIC.to_vec();
        ole.extend([0u8; 64]);
        assert_eq!(
            extract_bytes(&p("s.docx"), DocKind::Docx, &ole)
                .unwrap_err()
                .code(),
            "document_encrypted"
        );
        let broken =
            extract_bytes(&p("b.docx"), DocKind::Docx, b"PK\x03\x04 not really").unwrap_err();
        assert_eq!(broken.code(), "document_unreadable");
    }

    #[test]
    fn pdf_text_keeps_its_page_numbers_and_a_corrupt_pdf_is_an_error_not_a_panic() {
        let pdf = pdf_with_pages(&["Revenue grew in March.", "Costs fell in April."]);
        let out = extract_bytes(&p("r.pdf"), DocKind::Pdf, &pdf).unwrap();
        assert_eq!(out.sections.len(), 2);
        assert!(
            out.sections[0].text.contains("Revenue grew in March."),
            "{:?}",
            out.sections
        );
        assert_eq!(out.sections[1].page, Some(2));
        let mut cut = pdf.clone();
        cut.truncate(pdf.len() / 2);
        for bad in [&cut[..], b"%PDF-1.7\n garbage garbage", b"not a pdf"] {
            let e = extract_bytes(&p("x.pdf"), DocKind::Pdf, bad).unwrap_err();
            assert_eq!(e.code(), "document_unreadable", "{e}");
        }
    }

    #[test]
    fn files_over_the_size_limit_are_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("big.txt");
        std::fs::write(&file, "x".repeat(2000)).unwrap();
        let e = extract_file(&file, 1000).unwrap_err();
        assert_eq!(e.code(), "document_too_large");
        assert!(e.to_string().contains("2000 bytes"));
        let ok = extract_file(&file, 4000).unwrap();
        assert_eq!(ok.size_bytes, 2000);
        assert_eq!(ok.sha256.len(), 64);
    }
}
