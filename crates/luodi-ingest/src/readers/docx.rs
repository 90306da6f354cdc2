//! Word .docx: paragraphs (with heading levels from styles), tables (as Markdown rows under
//! their header), and the title from the document properties.

use std::io::{Cursor, Read};

use luodi_core::Location;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::readers::ReadOutput;
use crate::{Block, BlockKind, Extracted, ReadError};

fn parse_err(reason: impl std::fmt::Display) -> ReadError {
    ReadError::Parse {
        kind: "docx",
        reason: reason.to_string(),
    }
}

fn zip_text(
    zip: &mut zip::ZipArchive<Cursor<&[u8]>>,
    name: &str,
) -> Result<Option<String>, ReadError> {
    let mut f = match zip.by_name(name) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(parse_err(e)),
    };
    let mut s = String::new();
    f.read_to_string(&mut s)
        .map_err(|e| parse_err(format!("{name}: {e}")))?;
    Ok(Some(s))
}

fn attr(e: &BytesStart<'_>, name: &str) -> Option<String> {
    e.try_get_attribute(name)
        .ok()
        .flatten()
        .map(|a| a.value.into_owned())
}

fn heading_from_style(style: &str) -> Option<u8> {
    let s = style.to_ascii_lowercase().replace(' ', "");
    if s == "title" {
        return Some(1);
    }
    let rest = s
        .strip_prefix("heading")
        .or_else(|| s.strip_prefix("标题"))?;
    rest.parse::<u8>().ok().filter(|l| (1..=6).contains(l))
}

fn entity(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => return None,
    })
}

pub(crate) fn read(bytes: &[u8]) -> Result<ReadOutput, ReadError> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(parse_err)?;
    let xml = zip_text(&mut zip, "word/document.xml")?
        .ok_or_else(|| parse_err("no word/document.xml (not a Word document)"))?;
    let title = zip_text(&mut zip, "docProps/core.xml")?.and_then(|core| {
        let start = core.find("<dc:title>")? + "<dc:title>".len();
        let end = core[start..].find("</dc:title>")? + start;
        let t = core[start..end].trim().to_owned();
        (!t.is_empty()).then_some(t)
    });

    let mut reader = Reader::from_str(&xml);
    let mut blocks = Vec::new();
    let mut para = String::new();
    let mut heading: Option<u8> = None;
    let mut in_text = false;
    let mut table_depth = 0usize;
    let mut row: Vec<String> = Vec::new();
    let mut cell = String::new();
    let mut table_rows: Vec<Vec<String>> = Vec::new();
    let mut n = 0u32;
    loop {
        let ev = reader.read_event().map_err(|e| {
            parse_err(format!(
                "word/document.xml at byte {}: {e}",
                reader.buffer_position()
            ))
        })?;
        match ev {
            Event::Start(e) | Event::Empty(e) => {
                let name = e.name();
                match name.as_ref() {
                    "w:p" => {
                        para.clear();
                        heading = None;
                    }
                    "w:pStyle" => {
                        if let Some(v) = attr(&e, "w:val") {
                            heading = heading_from_style(&v).or(heading);
                        }
                    }
                    "w:outlineLvl" => {
                        if let Some(v) = attr(&e, "w:val").and_then(|v| v.parse::<u8>().ok()) {
                            if v < 6 {
                                heading = Some(v + 1);
                            }
                        }
                    }
                    "w:t" => in_text = true,
                    "w:tab" => para.push('\t'),
                    "w:br" | "w:cr" => para.push('\n'),
                    "w:tbl" => {
                        table_depth += 1;
                        if table_depth == 1 {
                            table_rows.clear();
                        }
                    }
                    "w:tr" if table_depth == 1 => row.clear(),
                    "w:tc" if table_depth == 1 => cell.clear(),
                    _ => {}
                }
            }
            Event::Text(t) if in_text => para.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if in_text => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    para.push(c);
                } else if let Some(c) = entity(&r.xml10_content()) {
                    para.push(c);
                }
            }
            Event::End(e) => match e.name().as_ref() {
                "w:t" => in_text = false,
                "w:p" => {
                    let text = para.trim().to_owned();
                    if table_depth > 0 {
                        if !text.is_empty() {
                            if !cell.is_empty() {
                                cell.push(' ');
                            }
                            cell.push_str(&text);
                        }
                    } else if !text.is_empty() {
                        match heading {
                            Some(level) => blocks.push(Block {
                                kind: BlockKind::Heading(level),
                                text,
                                location: Location::default(),
                            }),
                            None => {
                                n += 1;
                                blocks.push(Block::paragraph(
                                    text,
                                    Location {
                                        paragraph: Some(n),
                                        ..Default::default()
                                    },
                                ));
                            }
                        }
                    }
                    para.clear();
                }
                "w:tc" if table_depth == 1 => row.push(cell.replace('|', "\\|")),
                "w:tr" if table_depth == 1 && row.iter().any(|c| !c.is_empty()) => {
                    table_rows.push(std::mem::take(&mut row));
                }
                "w:tbl" => {
                    table_depth = table_depth.saturating_sub(1);
                    if table_depth == 0 {
                        n += 1;
                        push_table(&table_rows, n, &mut blocks);
                    }
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(ReadOutput {
        documents: vec![Extracted {
            title: title.or_else(|| {
                blocks
                    .iter()
                    .find(|b| matches!(b.kind, BlockKind::Heading(_)))
                    .map(|b| b.text.clone())
            }),
            blocks,
            ..Default::default()
        }],
        warnings: Vec::new(),
        encoding: None,
    })
}

fn push_table(rows: &[Vec<String>], n: u32, blocks: &mut Vec<Block>) {
    let Some((head, body)) = rows.split_first() else {
        return;
    };
    let header = format!(
        "| {} |\n|{}",
        head.join(" | "),
        " --- |".repeat(head.len().max(1))
    );
    for (i, r) in body.iter().enumerate() {
        blocks.push(Block {
            kind: BlockKind::TableRow {
                header: header.clone(),
            },
            text: format!("| {} |", r.join(" | ")),
            location: Location {
                paragraph: Some(n),
                row: Some(i as u32 + 2),
                ..Default::default()
            },
        });
    }
}
