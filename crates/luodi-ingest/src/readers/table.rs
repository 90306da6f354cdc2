//! CSV/TSV and spreadsheets (xlsx, xls, ods): a sheet as a document whose rows are table-row
//! blocks under the header, or (with `TableMode::Row`) one document per row.

use std::collections::BTreeMap;
use std::io::Cursor;

use calamine::{open_workbook_auto_from_rs, Data, Reader};
use luodi_core::Location;

use crate::readers::{decode_text, ReadOptions, ReadOutput, TableMode};
use crate::{Block, BlockKind, Extracted, ReadError};

fn md_cell(s: &str) -> String {
    s.trim().replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// Builds documents from a grid whose first non-empty row is the header.
fn grid_to_docs(
    rows: Vec<Vec<String>>,
    sheet: Option<&str>,
    opts: &ReadOptions,
    out: &mut Vec<Extracted>,
) {
    let mut it = rows
        .into_iter()
        .enumerate()
        .filter(|(_, r)| r.iter().any(|c| !c.trim().is_empty()));
    let Some((header_idx, header)) = it.next() else {
        return;
    };
    let header: Vec<String> = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            if h.trim().is_empty() {
                format!("列{}", i + 1)
            } else {
                md_cell(h)
            }
        })
        .collect();
    let md_header = format!(
        "| {} |\n|{}",
        header.join(" | "),
        " --- |".repeat(header.len())
    );
    let mut sheet_doc = Extracted {
        title: sheet.map(str::to_owned),
        record: sheet.map(str::to_owned),
        ..Default::default()
    };
    for (idx, row) in it {
        let location = Location {
            sheet: sheet.map(str::to_owned),
            row: Some(idx as u32 + 1),
            ..Default::default()
        };
        match opts.table_mode {
            TableMode::Sheet => {
                let cells: Vec<String> = (0..header.len().max(row.len()))
                    .map(|i| row.get(i).map(|c| md_cell(c)).unwrap_or_default())
                    .collect();
                sheet_doc.blocks.push(Block {
                    kind: BlockKind::TableRow {
                        header: md_header.clone(),
                    },
                    text: format!("| {} |", cells.join(" | ")),
                    location,
                });
            }
            TableMode::Row => {
                let mut lines = Vec::new();
                let mut metadata = BTreeMap::new();
                for (i, c) in row.iter().enumerate() {
                    let c = c.trim();
                    if c.is_empty() {
                        continue;
                    }
                    let h = header
                        .get(i)
                        .cloned()
                        .unwrap_or_else(|| format!("列{}", i + 1));
                    if c.chars().count() <= 60 {
                        metadata.insert(h.clone(), c.to_owned());
                    }
                    lines.push(format!("{h}: {c}"));
                }
                let record = match sheet {
                    Some(s) => format!("{s}:{}", idx + 1),
                    None => (idx + 1).to_string(),
                };
                out.push(Extracted {
                    title: row
                        .first()
                        .map(|c| c.trim().to_owned())
                        .filter(|c| !c.is_empty()),
                    record: Some(record),
                    blocks: vec![Block::paragraph(lines.join("\n"), location)],
                    metadata,
                });
            }
        }
    }
    let _ = header_idx;
    if opts.table_mode == TableMode::Sheet && !sheet_doc.blocks.is_empty() {
        out.push(sheet_doc);
    }
}

pub(crate) fn read_csv(
    bytes: &[u8],
    delimiter: u8,
    stem: &str,
    opts: &ReadOptions,
) -> Result<ReadOutput, ReadError> {
    let (text, enc) = decode_text(bytes)?;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    let mut warnings = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        match rec {
            Ok(r) => rows.push(r.iter().map(str::to_owned).collect()),
            Err(e) => {
                warnings.push(format!("row {}: {e}", i + 1));
                rows.push(Vec::new());
            }
        }
    }
    let mut documents = Vec::new();
    grid_to_docs(rows, None, opts, &mut documents);
    for d in &mut documents {
        if d.title.is_none() && opts.table_mode == TableMode::Sheet {
            d.title = Some(stem.to_owned());
        }
    }
    Ok(ReadOutput {
        documents,
        warnings,
        encoding: Some(enc),
    })
}

fn cell_string(c: &Data) -> String {
    match c {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Float(f) => {
            if f.fract() == 0.0 && f.abs() < 1e15 {
                format!("{}", *f as i64)
            } else {
                f.to_string()
            }
        }
        other => other.to_string(),
    }
}

pub(crate) fn read_workbook(
    bytes: &[u8],
    stem: &str,
    opts: &ReadOptions,
) -> Result<ReadOutput, ReadError> {
    let mut wb =
        open_workbook_auto_from_rs(Cursor::new(bytes.to_vec())).map_err(|e| ReadError::Parse {
            kind: "spreadsheet",
            reason: e.to_string(),
        })?;
    let mut out = ReadOutput::default();
    for name in wb.sheet_names() {
        match wb.worksheet_range(&name) {
            Ok(range) => {
                let rows: Vec<Vec<String>> = range
                    .rows()
                    .map(|r| r.iter().map(cell_string).collect())
                    .collect();
                let before = out.documents.len();
                grid_to_docs(rows, Some(&name), opts, &mut out.documents);
                if opts.table_mode == TableMode::Sheet {
                    for d in &mut out.documents[before..] {
                        d.title = Some(format!("{stem} · {name}"));
                    }
                }
            }
            Err(e) => out.warnings.push(format!("sheet {name:?}: {e}")),
        }
    }
    Ok(out)
}
