//! Korean office formats and spreadsheets/slides: HWP 5.x, HWPX, XLSX/ODS and PPTX, each into
//! [`Section`]s whose `heading` (and for slides `page`) says where a passage is.
//!
//! Crates, and why:
//! - HWP 5.x (the binary Hangul format): an OLE compound file (`cfb`) whose `BodyText/SectionN`
//!   streams are deflated (`flate2`) lists of records; the paragraph text records are read
//!   here, after the published HWP 5.0 format. (The `hwpers` crate refused real files of older
//!   5.0 revisions: "CharShape record too small".) An encrypted (password) or distributed (DRM)
//!   document is refused by name.
//! - HWPX (OWPML: zip + XML) and PPTX (zip + DrawingML): `zip` and `quick-xml`, as DOCX is read,
//!   so tables stay rows: the cells of a row are joined with ` | `, a row per line.
//! - XLSX and ODS: `calamine`; each sheet is cut into runs of rows whose location is the sheet
//!   and its cell range (`Sheet1 A1:D40`).
//!
//! A password-protected OOXML file is an OLE container, not a zip: it is reported as encrypted.

use std::io::Read;
use std::path::Path;

use super::extract::{unreadable, xml_entity, Section, OLE_MAGIC};
use crate::error::{DocumentsError, Error, Result};

/// Rows of a sheet per section: a passage-sized run that keeps its rows together.
const ROWS_PER_SECTION: usize = 40;

fn encrypted(path: &Path) -> Error {
    Error::Documents(DocumentsError::Encrypted {
        path: path.to_path_buf(),
    })
}

// --- HWP ---------------------------------------------------------------------------------------

/// HWP 5 record tags (HWPTAG_BEGIN = 16): a paragraph's header, its text, a control's header
/// (tables are the control `tbl `), and a list header (a table cell opens one).
const TAG_PARA_HEADER: u16 = 66;
const TAG_PARA_TEXT: u16 = 67;
const TAG_CTRL_HEADER: u16 = 71;
const TAG_LIST_HEADER: u16 = 72;

/// The FileHeader's flags (bytes 36..40): bit 0 compressed, bit 1 password-encrypted, bit 2
/// distributed (DRM: its text is encrypted for viewing only).
const FLAG_COMPRESSED: u32 = 1;
const FLAG_ENCRYPTED: u32 = 1 << 1;
const FLAG_DISTRIBUTED: u32 = 1 << 2;

pub(super) fn hwp_sections(path: &Path, bytes: &[u8]) -> Result<Vec<Section>> {
    if !bytes.starts_with(&OLE_MAGIC) {
        return Err(unreadable(
            path,
            "not an HWP 5 file (no OLE compound file header)",
        ));
    }
    let mut file = cfb::CompoundFile::open(std::io::Cursor::new(bytes))
        .map_err(|e| unreadable(path, format!("HWP container: {e}")))?;
    let header = read_stream(&mut file, "/FileHeader").map_err(|e| unreadable(path, e))?;
    if header.len() < 40 || !header.starts_with(b"HWP Document File") {
        return Err(unreadable(
            path,
            "no HWP Document File signature: not an HWP 5 file",
        ));
    }
    let flags = u32::from_le_bytes([header[36], header[37], header[38], header[39]]);
    if flags & (FLAG_ENCRYPTED | FLAG_DISTRIBUTED) != 0 {
        return Err(encrypted(path));
    }
    let mut sections = Vec::new();
    for index in 0.. {
        let name = format!("/BodyText/Section{index}");
        if !file.is_stream(&name) {
            break;
        }
        let raw = read_stream(&mut file, &name).map_err(|e| unreadable(path, e))?;
        let data = if flags & FLAG_COMPRESSED != 0 {
            let mut out = Vec::new();
            flate2::read::DeflateDecoder::new(raw.as_slice())
                .read_to_end(&mut out)
                .map_err(|e| unreadable(path, format!("{name}: {e}")))?;
            out
        } else {
            raw
        };
        let text = hwp_section_text(&data).map_err(|e| unreadable(path, format!("{name}: {e}")))?;
        sections.push(Section {
            text,
            page: None,
            heading: None,
        });
    }
    if sections.is_empty() {
        return Err(unreadable(path, "no BodyText/Section streams"));
    }
    Ok(sections)
}

fn read_stream(
    file: &mut cfb::CompoundFile<std::io::Cursor<&[u8]>>,
    name: &str,
) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    file.open_stream(name)
        .map_err(|e| format!("{name}: {e}"))?
        .read_to_end(&mut out)
        .map_err(|e| format!("{name}: {e}"))?;
    Ok(out)
}

/// The text of one section's records: a line per paragraph outside tables, a line per table
/// row with its cells joined by ` | `.
fn hwp_section_text(data: &[u8]) -> std::result::Result<String, String> {
    struct Table {
        /// The record level of the table's control header: records deeper than it are inside.
        level: u16,
        row: Option<u16>,
        cells: Vec<String>,
    }
    let mut out = String::new();
    let mut tables: Vec<Table> = Vec::new();
    let mut at = 0;
    let flush_row = |table: &mut Table, out: &mut String| {
        let line = table
            .cells
            .drain(..)
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>()
            .join(" | ");
        if !line.is_empty() {
            out.push_str(&line);
            out.push('\n');
        }
    };
    while at + 4 <= data.len() {
        let word = u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
        at += 4;
        let tag = (word & 0x3ff) as u16;
        let level = ((word >> 10) & 0x3ff) as u16;
        let mut size = (word >> 20) as usize;
        if size == 0xfff {
            if at + 4 > data.len() {
                return Err("a record's extended size is cut off".into());
            }
            size =
                u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
            at += 4;
        }
        let Some(body) = data.get(at..at + size) else {
            return Err(format!(
                "a record of {size} bytes runs past the stream's end"
            ));
        };
        at += size;
        // Leaving a table: a record at or above its level.
        while tables.last().is_some_and(|t| level <= t.level) {
            if let Some(mut table) = tables.pop() {
                flush_row(&mut table, &mut out);
            }
        }
        match tag {
            TAG_CTRL_HEADER if body.len() >= 4 && &body[..4] == b" lbt" => {
                // The control id `tbl ` is stored as a little-endian u32.
                tables.push(Table {
                    level,
                    row: None,
                    cells: Vec::new(),
                });
            }
            TAG_LIST_HEADER => {
                if let Some(table) = tables.last_mut().filter(|t| level == t.level + 1) {
                    // A cell: paragraph count (4 bytes), properties (4), then its column and
                    // row address (2 bytes each).
                    let row = body.get(10..12).map(|b| u16::from_le_bytes([b[0], b[1]]));
                    if row != table.row {
                        flush_row(table, &mut out);
                        table.row = row;
                    }
                    table.cells.push(String::new());
                }
            }
            TAG_PARA_TEXT => {
                let text = para_text(body);
                let text = text.trim();
                match tables.last_mut() {
                    Some(table) => {
                        if let Some(cell) = table.cells.last_mut() {
                            if !cell.is_empty() && !text.is_empty() {
                                cell.push(' ');
                            }
                            cell.push_str(text);
                        } else if !text.is_empty() {
                            table.cells.push(text.to_owned());
                        }
                    }
                    None if !text.is_empty() => {
                        out.push_str(text);
                        out.push('\n');
                    }
                    None => {}
                }
            }
            TAG_PARA_HEADER => {}
            _ => {}
        }
    }
    while let Some(mut table) = tables.pop() {
        flush_row(&mut table, &mut out);
    }
    Ok(out)
}

/// A paragraph's UTF-16 text without its controls. Controls are code units below 32: "char"
/// controls take one unit (line break 10, paragraph end 13, hyphen 24, spaces 30 and 31),
/// inline and extended ones take eight (the control, its data, and the control again).
fn para_text(body: &[u8]) -> String {
    let units: Vec<u16> = body
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let mut kept = Vec::with_capacity(units.len());
    let mut i = 0;
    while i < units.len() {
        let unit = units[i];
        match unit {
            9 => {
                kept.push(u16::from(b'\t'));
                i += 8;
            }
            10 | 30 | 31 => {
                kept.push(u16::from(b' '));
                i += 1;
            }
            0 | 13 | 24..=29 => i += 1,
            1..=8 | 11 | 12 | 14..=23 => i += 8,
            _ => {
                kept.push(unit);
                i += 1;
            }
        }
    }
    String::from_utf16_lossy(&kept)
}

// --- HWPX --------------------------------------------------------------------------------------

pub(super) fn hwpx_sections(path: &Path, bytes: &[u8]) -> Result<Vec<Section>> {
    if bytes.starts_with(&OLE_MAGIC) {
        return Err(encrypted(path));
    }
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| unreadable(path, format!("not an HWPX (zip) file: {e}")))?;
    let mut names: Vec<String> = archive
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .filter(|n| n.starts_with("Contents/section") && n.ends_with(".xml"))
        .collect();
    if names.is_empty() {
        return Err(unreadable(
            path,
            "no Contents/section*.xml: not an HWPX document",
        ));
    }
    // section0, section1, … section10 in document order.
    names.sort_by_key(|n| {
        n.trim_start_matches("Contents/section")
            .trim_end_matches(".xml")
            .parse::<u32>()
            .unwrap_or(u32::MAX)
    });
    let mut sections = Vec::new();
    for name in names {
        let xml = read_member(&mut archive, &name).map_err(|e| unreadable(path, e))?;
        if xml.contains("<hp:encryption") || xml.contains("EncryptedData") {
            return Err(encrypted(path));
        }
        let text = markup_text(&xml, b"t", b"p", b"tr", b"tc")
            .map_err(|e| unreadable(path, format!("{name}: {e}")))?;
        sections.push(Section {
            text,
            page: None,
            heading: None,
        });
    }
    Ok(sections)
}

fn read_member(
    archive: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>,
    name: &str,
) -> std::result::Result<String, String> {
    let mut xml = String::new();
    archive
        .by_name(name)
        .map_err(|e| format!("{name}: {e}"))?
        .read_to_string(&mut xml)
        .map_err(|e| format!("{name}: {e}"))?;
    Ok(xml)
}

/// The text of an XML part whose runs are `text` elements inside `paragraph`s, with table rows
/// (`row` of `cell`s) kept as one line of ` | `-separated cells. Namespaces are ignored (HWPX's
/// `hp:`, DrawingML's `a:`).
fn markup_text(
    xml: &str,
    text: &[u8],
    paragraph: &[u8],
    row: &[u8],
    cell: &[u8],
) -> std::result::Result<String, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = String::new();
    let mut in_text = false;
    // Cells of the rows being read (tables nest in cells; the innermost row is last).
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut line = String::new();
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => {
                let name = e.local_name();
                if name.as_ref() == text {
                    in_text = true;
                } else if name.as_ref() == row {
                    rows.push(Vec::new());
                } else if name.as_ref() == cell {
                    line.clear();
                }
            }
            Event::Empty(e) => {
                let name = e.local_name();
                if name.as_ref() == b"tab" {
                    line.push('\t');
                } else if name.as_ref() == b"lineBreak" || name.as_ref() == b"br" {
                    line.push(' ');
                }
            }
            Event::Text(t) if in_text => line.push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::GeneralRef(r) if in_text => {
                let name = r.decode().map_err(|e| e.to_string())?;
                line.push_str(xml_entity(&name));
            }
            Event::End(e) => {
                let name = e.local_name();
                if name.as_ref() == text {
                    in_text = false;
                } else if name.as_ref() == paragraph {
                    // Inside a cell a paragraph continues the cell; outside, it is a line.
                    if rows.is_empty() {
                        let done = std::mem::take(&mut line);
                        if !done.trim().is_empty() {
                            out.push_str(done.trim_end());
                            out.push('\n');
                        }
                    } else if !line.is_empty() && !line.ends_with(' ') {
                        line.push(' ');
                    }
                } else if name.as_ref() == cell {
                    let content = std::mem::take(&mut line).trim().to_owned();
                    if let Some(cells) = rows.last_mut() {
                        cells.push(content);
                    }
                } else if name.as_ref() == row {
                    let cells = rows.pop().unwrap_or_default();
                    let joined = cells
                        .into_iter()
                        .filter(|c| !c.is_empty())
                        .collect::<Vec<_>>()
                        .join(" | ");
                    if rows.is_empty() {
                        if !joined.is_empty() {
                            out.push_str(&joined);
                            out.push('\n');
                        }
                    } else {
                        // A table inside a cell: its rows become part of that cell's text.
                        line.push_str(&joined);
                        line.push(' ');
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !line.trim().is_empty() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    Ok(out)
}

// --- PPTX --------------------------------------------------------------------------------------

pub(super) fn pptx_sections(path: &Path, bytes: &[u8]) -> Result<Vec<Section>> {
    if bytes.starts_with(&OLE_MAGIC) {
        return Err(encrypted(path));
    }
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| unreadable(path, format!("not a PPTX (zip) file: {e}")))?;
    let mut slides: Vec<(u32, String)> = archive
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .filter_map(|n| {
            let number = n
                .strip_prefix("ppt/slides/slide")?
                .strip_suffix(".xml")?
                .parse::<u32>()
                .ok()?;
            Some((number, n.clone()))
        })
        .collect();
    if slides.is_empty() && archive.by_name("ppt/presentation.xml").is_err() {
        return Err(unreadable(
            path,
            "no ppt/presentation.xml: not a PPTX presentation",
        ));
    }
    slides.sort();
    let mut sections = Vec::new();
    for (number, name) in slides {
        let xml = read_member(&mut archive, &name).map_err(|e| unreadable(path, e))?;
        let text = markup_text(&xml, b"t", b"p", b"tr", b"tc")
            .map_err(|e| unreadable(path, format!("{name}: {e}")))?;
        // The slide's first line (its title, as slides are laid out) names it in citations.
        let title: String = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or_default()
            .chars()
            .take(60)
            .collect();
        let heading = if title.is_empty() {
            format!("Slide {number}")
        } else {
            format!("Slide {number}: {title}")
        };
        sections.push(Section {
            text,
            page: Some(number),
            heading: Some(heading),
        });
    }
    Ok(sections)
}

// --- XLSX and ODS ------------------------------------------------------------------------------

/// `A`, `B`, … `Z`, `AA`, … for a 0-based column.
fn column_name(mut column: u32) -> String {
    let mut name = Vec::new();
    loop {
        name.push(b'A' + (column % 26) as u8);
        if column < 26 {
            break;
        }
        column = column / 26 - 1;
    }
    name.reverse();
    String::from_utf8_lossy(&name).into_owned()
}

pub(super) fn sheet_sections(path: &Path, bytes: &[u8], ods: bool) -> Result<Vec<Section>> {
    use calamine::{Data, Reader};
    if !ods && bytes.starts_with(&OLE_MAGIC) {
        return Err(encrypted(path));
    }
    let cursor = std::io::Cursor::new(bytes);
    let mut workbook: calamine::Sheets<_> = if ods {
        calamine::Sheets::Ods(
            calamine::Ods::new(cursor).map_err(|e| sheet_error(path, &e.to_string()))?,
        )
    } else {
        calamine::Sheets::Xlsx(
            calamine::Xlsx::new(cursor).map_err(|e| sheet_error(path, &e.to_string()))?,
        )
    };
    let mut sections = Vec::new();
    for sheet in workbook.sheet_names() {
        let range = workbook
            .worksheet_range(&sheet)
            .map_err(|e| sheet_error(path, &format!("sheet {sheet}: {e}")))?;
        let Some((first_row, first_col)) = range.start() else {
            continue;
        };
        let last_col = range.end().map_or(first_col, |(_, c)| c);
        let rows: Vec<(u32, String)> = range
            .rows()
            .enumerate()
            .map(|(i, row)| {
                let cells: Vec<String> = row
                    .iter()
                    .map(|cell| match cell {
                        Data::Empty => String::new(),
                        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => {
                            format!("{}", *f as i64)
                        }
                        other => other.to_string(),
                    })
                    .collect();
                let line = cells
                    .into_iter()
                    .filter(|c| !c.trim().is_empty())
                    .collect::<Vec<_>>()
                    .join(" | ");
                (first_row + i as u32, line)
            })
            .filter(|(_, line)| !line.is_empty())
            .collect();
        for chunk in rows.chunks(ROWS_PER_SECTION) {
            let (Some((top, _)), Some((bottom, _))) = (chunk.first(), chunk.last()) else {
                continue;
            };
            let text = chunk
                .iter()
                .map(|(_, line)| line.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            sections.push(Section {
                text,
                page: None,
                heading: Some(format!(
                    "{sheet} {}{}:{}{}",
                    column_name(first_col),
                    top + 1,
                    column_name(last_col),
                    bottom + 1
                )),
            });
        }
    }
    Ok(sections)
}

fn sheet_error(path: &Path, message: &str) -> Error {
    let lower = message.to_lowercase();
    if lower.contains("password") || lower.contains("encrypt") {
        return encrypted(path);
    }
    unreadable(path, format!("spreadsheet: {message}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_named_as_spreadsheets_name_them() {
        assert_eq!(column_name(0), "A");
        assert_eq!(column_name(25), "Z");
        assert_eq!(column_name(26), "AA");
        assert_eq!(column_name(27), "AB");
        assert_eq!(column_name(701), "ZZ");
        assert_eq!(column_name(702), "AAA");
    }

    #[test]
    fn table_cells_stay_in_their_rows_and_paragraphs_are_lines() {
        let xml = r#"<hs:sec xmlns:hs="s" xmlns:hp="p">
            <hp:p><hp:run><hp:t>제목: 연차 유급휴가</hp:t></hp:run></hp:p>
            <hp:p><hp:run><hp:tbl>
              <hp:tr><hp:tc><hp:subList><hp:p><hp:run><hp:t>구분</hp:t></hp:run></hp:p></hp:subList></hp:tc>
                     <hp:tc><hp:subList><hp:p><hp:run><hp:t>일수</hp:t></hp:run></hp:p></hp:subList></hp:tc></hp:tr>
              <hp:tr><hp:tc><hp:subList><hp:p><hp:run><hp:t>1년 근무</hp:t></hp:run></hp:p></hp:subList></hp:tc>
                     <hp:tc><hp:subList><hp:p><hp:run><hp:t>15일</hp:t></hp:run></hp:p></hp:subList></hp:tc></hp:tr>
            </hp:tbl></hp:run></hp:p>
            <hp:p><hp:run><hp:t>끝 &amp; 붙임</hp:t></hp:run></hp:p>
        </hs:sec>"#;
        let text = markup_text(xml, b"t", b"p", b"tr", b"tc").unwrap();
        assert_eq!(
            text,
            "제목: 연차 유급휴가\n구분 | 일수\n1년 근무 | 15일\n끝 & 붙임\n"
        );
    }
}
