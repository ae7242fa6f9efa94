//! Small generated PDF (text and scanned pages), DOCX, XLSX and PPTX files, and long text
//! without sentence breaks, for the tests, the benchmark and the e2e fixtures (no binary
//! fixtures in the repository). Not used by the app itself.

use std::io::Write;

/// A PDF with one page per text (Courier, so ASCII text only), made with lopdf.
pub fn pdf_with_pages(pages: &[&str]) -> Result<Vec<u8>, String> {
    use lopdf::content::{Content, Operation};
    use lopdf::{dictionary, Document, Object, Stream};
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Courier",
    });
    let resources_id = doc.add_object(dictionary! { "Font" => dictionary! { "F1" => font_id } });
    let mut kids = Vec::new();
    for text in pages {
        let content = Content {
            operations: vec![
                Operation::new("BT", vec![]),
                Operation::new("Tf", vec!["F1".into(), 12.into()]),
                Operation::new("Td", vec![72.into(), 720.into()]),
                Operation::new("Tj", vec![Object::string_literal(*text)]),
                Operation::new("ET", vec![]),
            ],
        };
        let encoded = content.encode().map_err(|e| e.to_string())?;
        let content_id = doc.add_object(Stream::new(dictionary! {}, encoded));
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages_id, "Contents" => content_id,
        });
        kids.push(page_id.into());
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => kids, "Count" => count,
            "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut out = Vec::new();
    doc.save_to(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// A page of [`pdf_with`]: text in a text layer (Courier, ASCII), or a scan: a grayscale image
/// that fills the page, with no text layer at all.
pub enum PdfPage<'a> {
    Text(&'a str),
    /// The image and the resolution it was made at (so the page has its real size).
    Scan(&'a image::GrayImage, u32),
}

/// A PDF of text pages and scanned pages, in the given order, made with lopdf.
pub fn pdf_with(pages: &[PdfPage<'_>]) -> Result<Vec<u8>, String> {
    use lopdf::content::{Content, Operation};
    use lopdf::{dictionary, Document, Object, Stream};
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Courier",
    });
    let mut kids = Vec::new();
    for page in pages {
        let (operations, resources, size) = match page {
            PdfPage::Text(text) => (
                vec![
                    Operation::new("BT", vec![]),
                    Operation::new("Tf", vec!["F1".into(), 12.into()]),
                    Operation::new("Td", vec![72.into(), 720.into()]),
                    Operation::new("Tj", vec![Object::string_literal(*text)]),
                    Operation::new("ET", vec![]),
                ],
                dictionary! { "Font" => dictionary! { "F1" => font_id } },
                (595.0, 842.0),
            ),
            PdfPage::Scan(image, dpi) => {
                let mut deflated =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                deflated
                    .write_all(image.as_raw())
                    .map_err(|e| e.to_string())?;
                let data = deflated.finish().map_err(|e| e.to_string())?;
                let image_id = doc.add_object(Stream::new(
                    dictionary! {
                        "Type" => "XObject", "Subtype" => "Image",
                        "Width" => image.width() as i64, "Height" => image.height() as i64,
                        "ColorSpace" => "DeviceGray", "BitsPerComponent" => 8,
                        "Filter" => "FlateDecode",
                    },
                    data,
                ));
                let points = |px: u32| px as f32 * 72.0 / (*dpi).max(1) as f32;
                let (w, h) = (points(image.width()), points(image.height()));
                (
                    vec![
                        Operation::new("q", vec![]),
                        Operation::new(
                            "cm",
                            vec![w.into(), 0.into(), 0.into(), h.into(), 0.into(), 0.into()],
                        ),
                        Operation::new("Do", vec!["Im1".into()]),
                        Operation::new("Q", vec![]),
                    ],
                    dictionary! { "XObject" => dictionary! { "Im1" => image_id } },
                    (w, h),
                )
            }
        };
        let encoded = Content { operations }.encode().map_err(|e| e.to_string())?;
        let content_id = doc.add_object(Stream::new(dictionary! {}, encoded));
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages_id, "Contents" => content_id,
            "Resources" => resources,
            "MediaBox" => vec![0.into(), 0.into(), size.0.into(), size.1.into()],
        });
        kids.push(page_id.into());
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => kids, "Count" => count }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut out = Vec::new();
    doc.save_to(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// The resolution [`render_text_page`] renders at (a common scanner setting).
pub const SCAN_DPI: u32 = 200;

/// Text laid out on an A4-wide page by Pango (`pango-view`, Debian's `pango1.0-tools`) in
/// Noto Sans CJK at 11 pt, as a grayscale image at [`SCAN_DPI`]: the "scan" of a page whose
/// text is known, for OCR tests and the OCR error rate. The image is as tall as the text.
pub fn render_text_page(text: &str) -> Result<image::GrayImage, String> {
    let dir = std::env::temp_dir().join(format!(
        "deskmate-render-{}-{}",
        std::process::id(),
        RENDERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = (|| {
        let input = dir.join("page.txt");
        let output = dir.join("page.png");
        std::fs::write(&input, text).map_err(|e| format!("{}: {e}", input.display()))?;
        let ran = std::process::Command::new("pango-view")
            .args(["--font=Noto Sans CJK KR 11", "--wrap=word", "--width=451"])
            .args([
                "--margin=60",
                "--background=white",
                "--foreground=black",
                "-q",
            ])
            .arg(format!("--dpi={SCAN_DPI}"))
            .arg("-o")
            .arg(&output)
            .arg(&input)
            .output()
            .map_err(|e| format!("pango-view cannot be run ({e}); install pango1.0-tools"))?;
        if !ran.status.success() {
            return Err(format!(
                "pango-view failed: {}",
                String::from_utf8_lossy(&ran.stderr).trim()
            ));
        }
        let image = image::open(&output).map_err(|e| format!("{}: {e}", output.display()))?;
        Ok(image.to_luma8())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

static RENDERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A DOCX whose paragraphs have the given text and optional style (`Heading1`, …).
pub fn docx_with(paragraphs: &[(&str, Option<&str>)]) -> Result<Vec<u8>, String> {
    let mut body = String::new();
    for (text, style) in paragraphs {
        body.push_str("<w:p>");
        if let Some(style) = style {
            body.push_str(&format!("<w:pPr><w:pStyle w:val=\"{style}\"/></w:pPr>"));
        }
        body.push_str(&format!(
            "<w:r><w:t xml:space=\"preserve\">{text}</w:t></w:r></w:p>"
        ));
    }
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\
         <w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\">\
         <w:body>{body}</w:body></w:document>"
    );
    let mut out = Vec::new();
    {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(&mut out));
        let options = zip::write::SimpleFileOptions::default();
        let e = |e: &dyn std::fmt::Display| e.to_string();
        zip.start_file("[Content_Types].xml", options)
            .map_err(|x| e(&x))?;
        zip.write_all(b"<Types/>").map_err(|x| e(&x))?;
        zip.start_file("word/document.xml", options)
            .map_err(|x| e(&x))?;
        zip.write_all(xml.as_bytes()).map_err(|x| e(&x))?;
        zip.finish().map_err(|x| e(&x))?;
    }
    Ok(out)
}

/// About `bytes` bytes of numbered Korean and English words without a single sentence break, as
/// logs, OCR output and text pasted from PDFs come: the worst case for cutting text into chunks.
pub fn unbroken_text(bytes: usize) -> String {
    let words = [
        "분기",
        "예산",
        "보고서",
        "quarterly",
        "budget",
        "invoice",
        "서울",
        "branch",
        "meeting",
        "delivery",
        "계약",
        "schedule",
        "payment",
        "승인",
        "report",
    ];
    let mut out = String::with_capacity(bytes + 16);
    let mut i = 0usize;
    while out.len() < bytes {
        out.push_str(words[(i * 7 + i / 3) % words.len()]);
        out.push_str(&(i % 1000).to_string());
        out.push(' ');
        i += 1;
    }
    out
}

fn zip_of(parts: &[(&str, String)]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(&mut out));
        let options = zip::write::SimpleFileOptions::default();
        for (name, body) in parts {
            zip.start_file(*name, options).map_err(|e| e.to_string())?;
            zip.write_all(body.as_bytes()).map_err(|e| e.to_string())?;
        }
        zip.finish().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An XLSX workbook with the given sheets of rows (strings, inline), as Excel's minimal
/// SpreadsheetML has it; rows start at A1.
pub fn xlsx_with(sheets: &[(&str, &[&[&str]])]) -> Result<Vec<u8>, String> {
    let ns = "http://schemas.openxmlformats.org/spreadsheetml/2006/main";
    let rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";
    let mut parts = vec![
        (
            "[Content_Types].xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">\
                 <Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>\
                 <Default Extension=\"xml\" ContentType=\"application/xml\"/>\
                 <Override PartName=\"/xl/workbook.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml\"/>{}</Types>",
                (1..=sheets.len())
                    .map(|i| format!("<Override PartName=\"/xl/worksheets/sheet{i}.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml\"/>"))
                    .collect::<String>()
            ),
        ),
        (
            "_rels/.rels",
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\"><Relationship Id=\"rId1\" Type=\"{rel}/officeDocument\" Target=\"xl/workbook.xml\"/></Relationships>"),
        ),
        (
            "xl/workbook.xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><workbook xmlns=\"{ns}\" xmlns:r=\"{rel}\"><sheets>{}</sheets></workbook>",
                sheets
                    .iter()
                    .enumerate()
                    .map(|(i, (name, _))| format!("<sheet name=\"{}\" sheetId=\"{}\" r:id=\"rId{}\"/>", xml_escape(name), i + 1, i + 1))
                    .collect::<String>()
            ),
        ),
        (
            "xl/_rels/workbook.xml.rels",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">{}</Relationships>",
                (1..=sheets.len())
                    .map(|i| format!("<Relationship Id=\"rId{i}\" Type=\"{rel}/worksheet\" Target=\"worksheets/sheet{i}.xml\"/>"))
                    .collect::<String>()
            ),
        ),
    ];
    let names: Vec<String> = (1..=sheets.len())
        .map(|i| format!("xl/worksheets/sheet{i}.xml"))
        .collect();
    for ((_, rows), name) in sheets.iter().zip(&names) {
        let mut data = String::new();
        for (r, row) in rows.iter().enumerate() {
            data.push_str(&format!("<row r=\"{}\">", r + 1));
            for (c, value) in row.iter().enumerate() {
                let column = (b'A' + c as u8) as char;
                data.push_str(&format!(
                    "<c r=\"{column}{}\" t=\"inlineStr\"><is><t>{}</t></is></c>",
                    r + 1,
                    xml_escape(value)
                ));
            }
            data.push_str("</row>");
        }
        parts.push((
            name.as_str(),
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><worksheet xmlns=\"{ns}\"><sheetData>{data}</sheetData></worksheet>"),
        ));
    }
    zip_of(&parts)
}

/// A PPTX with one slide per entry, each slide's paragraphs in one text box.
pub fn pptx_with(slides: &[&[&str]]) -> Result<Vec<u8>, String> {
    let a = "http://schemas.openxmlformats.org/drawingml/2006/main";
    let p = "http://schemas.openxmlformats.org/presentationml/2006/main";
    let mut parts = vec![
        ("[Content_Types].xml", "<Types/>".to_owned()),
        (
            "ppt/presentation.xml",
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><p:presentation xmlns:p=\"{p}\"/>"),
        ),
    ];
    let names: Vec<String> = (1..=slides.len())
        .map(|i| format!("ppt/slides/slide{i}.xml"))
        .collect();
    for (paragraphs, name) in slides.iter().zip(&names) {
        let body: String = paragraphs
            .iter()
            .map(|t| format!("<a:p><a:r><a:t>{}</a:t></a:r></a:p>", xml_escape(t)))
            .collect();
        parts.push((
            name.as_str(),
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><p:sld xmlns:p=\"{p}\" xmlns:a=\"{a}\"><p:cSld><p:spTree><p:sp><p:txBody>{body}</p:txBody></p:sp></p:spTree></p:cSld></p:sld>"),
        ));
    }
    zip_of(&parts)
}

/// An HWPX (OWPML) document with one paragraph per entry, in one section: the parts Hangul
/// itself reads first (`mimetype`, stored uncompressed and first) and `Contents/section0.xml`.
pub fn hwpx_with(paragraphs: &[&str]) -> Result<Vec<u8>, String> {
    let mut body = String::new();
    for text in paragraphs {
        body.push_str(&format!(
            "<hp:p><hp:run><hp:t>{}</hp:t></hp:run></hp:p>",
            xml_escape(text)
        ));
    }
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\
         <hs:sec xmlns:hs=\"http://www.hancom.co.kr/hwpml/2011/section\" \
         xmlns:hp=\"http://www.hancom.co.kr/hwpml/2011/paragraph\">{body}</hs:sec>"
    );
    let mut out = Vec::new();
    {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(&mut out));
        let e = |e: &dyn std::fmt::Display| e.to_string();
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zip.start_file("mimetype", stored).map_err(|x| e(&x))?;
        zip.write_all(b"application/hwp+zip").map_err(|x| e(&x))?;
        zip.start_file(
            "Contents/section0.xml",
            zip::write::SimpleFileOptions::default(),
        )
        .map_err(|x| e(&x))?;
        zip.write_all(xml.as_bytes()).map_err(|x| e(&x))?;
        zip.finish().map_err(|x| e(&x))?;
    }
    Ok(out)
}
