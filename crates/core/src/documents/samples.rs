//! Small generated PDF and DOCX files, and long text without sentence breaks, for the tests, the
//! benchmark and the e2e fixtures (no binary fixtures in the repository). Not used by the app
//! itself.

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
