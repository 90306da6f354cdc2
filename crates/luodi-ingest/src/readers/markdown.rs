//! Markdown: ATX headings, paragraphs, pipe tables (kept as tables), front matter skipped.

use luodi_core::Location;

use crate::readers::{decode_text, ReadOutput};
use crate::{Block, BlockKind, Extracted, ReadError};

fn is_table_line(l: &str) -> bool {
    let t = l.trim();
    t.starts_with('|') && t.len() > 1
}

fn is_separator(l: &str) -> bool {
    let t = l.trim().trim_matches('|');
    !t.is_empty()
        && t.split('|').all(|c| {
            let c = c.trim();
            !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':' | ' '))
        })
}

pub(crate) fn read(bytes: &[u8]) -> Result<ReadOutput, ReadError> {
    let (text, enc) = decode_text(bytes)?;
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    // YAML front matter
    if lines.first().is_some_and(|l| l.trim() == "---") {
        if let Some(end) = lines.iter().skip(1).position(|l| l.trim() == "---") {
            i = end + 2;
        }
    }
    let mut blocks = Vec::new();
    let mut para: Vec<&str> = Vec::new();
    let mut n = 0u32;
    let mut title = None;
    let mut in_code = false;
    let flush = |para: &mut Vec<&str>, blocks: &mut Vec<Block>, n: &mut u32| {
        if !para.is_empty() {
            *n += 1;
            let joined = para.join("\n");
            blocks.push(Block::paragraph(
                joined,
                Location {
                    paragraph: Some(*n),
                    ..Default::default()
                },
            ));
            para.clear();
        }
    };
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim();
        if t.starts_with("```") || t.starts_with("~~~") {
            in_code = !in_code;
            i += 1;
            continue;
        }
        if in_code {
            para.push(line);
            i += 1;
            continue;
        }
        if t.is_empty() {
            flush(&mut para, &mut blocks, &mut n);
        } else if let Some(level) = heading_level(t) {
            flush(&mut para, &mut blocks, &mut n);
            let h = t[level as usize..]
                .trim()
                .trim_end_matches('#')
                .trim()
                .to_owned();
            if level == 1 && title.is_none() {
                title = Some(h.clone());
            }
            blocks.push(Block {
                kind: BlockKind::Heading(level),
                text: h,
                location: Location::default(),
            });
        } else if is_table_line(t) && lines.get(i + 1).is_some_and(|l| is_separator(l)) {
            flush(&mut para, &mut blocks, &mut n);
            n += 1;
            let header = format!("{}\n{}", t, lines[i + 1].trim());
            i += 2;
            let mut row = 1u32;
            while i < lines.len() && is_table_line(lines[i]) {
                row += 1;
                blocks.push(Block {
                    kind: BlockKind::TableRow {
                        header: header.clone(),
                    },
                    text: lines[i].trim().to_owned(),
                    location: Location {
                        paragraph: Some(n),
                        row: Some(row),
                        ..Default::default()
                    },
                });
                i += 1;
            }
            continue;
        } else {
            para.push(t);
        }
        i += 1;
    }
    flush(&mut para, &mut blocks, &mut n);
    Ok(ReadOutput {
        documents: vec![Extracted {
            title,
            blocks,
            ..Default::default()
        }],
        warnings: Vec::new(),
        encoding: Some(enc),
    })
}

fn heading_level(t: &str) -> Option<u8> {
    let hashes = t.chars().take_while(|c| *c == '#').count();
    if (1..=6).contains(&hashes) && t[hashes..].starts_with(' ') {
        Some(hashes as u8)
    } else {
        None
    }
}
