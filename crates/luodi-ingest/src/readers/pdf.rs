//! PDF text layer, page by page. A PDF without a text layer (a scan) yields a warning and no
//! document; a PDF the parser chokes on is an error, never a crash.

use luodi_core::Location;

use crate::readers::ReadOutput;
use crate::{Block, Extracted, ReadError};

pub(crate) fn read(bytes: &[u8]) -> Result<ReadOutput, ReadError> {
    // pdf-extract can panic on malformed files; a damaged PDF must not take ingestion down.
    let result = std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem_by_pages(bytes));
    let pages = match result {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            return Err(ReadError::Parse {
                kind: "PDF",
                reason: e.to_string(),
            })
        }
        Err(_) => {
            return Err(ReadError::Parse {
                kind: "PDF",
                reason: "the PDF parser failed on this file".into(),
            })
        }
    };
    let mut blocks = Vec::new();
    let mut n = 0u32;
    let mut empty_pages = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        let page_no = i as u32 + 1;
        let paras = crate::readers::paragraphs(&join_wrapped_lines(page), 1);
        if paras.is_empty() {
            empty_pages.push(page_no);
        }
        for p in paras {
            n += 1;
            blocks.push(Block::paragraph(
                p.text,
                Location {
                    page: Some(page_no),
                    paragraph: Some(n),
                    ..Default::default()
                },
            ));
        }
    }
    let mut out = ReadOutput::default();
    if blocks.is_empty() {
        out.warnings.push(format!(
            "no text layer in {} page(s) (a scanned PDF needs OCR first); nothing indexed",
            pages.len()
        ));
        return Ok(out);
    }
    if !empty_pages.is_empty() {
        out.warnings
            .push(format!("page(s) without text: {:?}", empty_pages));
    }
    out.documents.push(Extracted {
        title: None,
        blocks,
        ..Default::default()
    });
    Ok(out)
}

/// PDF text arrives with hard line breaks at the page width. Lines ending in CJK text without
/// sentence punctuation continue on the next line; joining them restores the paragraph.
fn join_wrapped_lines(page: &str) -> String {
    let mut out = String::with_capacity(page.len());
    // closing punctuation wrapped onto a line of its own belongs to the line before it
    let mut lines: Vec<String> = Vec::new();
    for l in page.lines().map(str::trim) {
        let starts_closing = l
            .chars()
            .next()
            .is_some_and(|c| "。，、；：！？）」』”".contains(c));
        if starts_closing {
            while lines.last().is_some_and(|p: &String| p.is_empty()) {
                lines.pop();
            }
            if let Some(prev) = lines.last_mut() {
                prev.push_str(l);
                continue;
            }
        }
        lines.push(l.to_owned());
    }
    for (i, line) in lines.iter().enumerate() {
        out.push_str(line.trim_start());
        let next = lines.get(i + 1).map(|l| l.trim()).unwrap_or("");
        let last = line.chars().last();
        let joins = !line.trim().is_empty()
            && !next.is_empty()
            && last
                .is_some_and(|c| (luodi_text::is_han(c) || c == '，') && !"。！？；：".contains(c));
        if !joins {
            out.push('\n');
        }
    }
    out
}
