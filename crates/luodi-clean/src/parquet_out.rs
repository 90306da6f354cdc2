//! `clean.parquet`: the cleaned corpus as Parquet (snappy), written from `clean.jsonl` once
//! a run is done — row groups of a bounded number of documents, so memory stays flat — to a
//! temporary file renamed into place.
//!
//! Columns: id, source, title (optional), text, provenance (JSON list), chunks (optional JSON
//! list), tokens (optional), meta (JSON object).

use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use crate::{CleanError, Doc, Result};

const SCHEMA: &str = "
message doc {
    required binary id (STRING);
    required binary source (STRING);
    optional binary title (STRING);
    required binary text (STRING);
    required binary provenance (STRING);
    optional binary chunks (STRING);
    optional int64 tokens;
    required binary meta (STRING);
}
";

fn perr(path: &Path) -> impl Fn(parquet::errors::ParquetError) -> CleanError + '_ {
    move |e| CleanError::Invalid(format!("{}: {e}", path.display()))
}

/// Writes `jsonl` (clean.jsonl) as Parquet to `out`; returns the rows written.
pub fn write_parquet(jsonl: &Path, out: &Path, rows_per_group: usize) -> Result<u64> {
    let schema = Arc::new(parse_message_type(SCHEMA).map_err(perr(out))?);
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let tmp = out.with_extension("parquet.tmp");
    let file = std::fs::File::create(&tmp).map_err(|e| CleanError::io(&tmp, e))?;
    let mut writer = SerializedFileWriter::new(file, schema, props).map_err(perr(out))?;
    let reader =
        std::io::BufReader::new(std::fs::File::open(jsonl).map_err(|e| CleanError::io(jsonl, e))?);
    let mut rows = 0u64;
    let mut group: Vec<Doc> = Vec::new();
    let flush = |writer: &mut SerializedFileWriter<std::fs::File>,
                 group: &mut Vec<Doc>|
     -> Result<()> {
        if group.is_empty() {
            return Ok(());
        }
        let mut rg = writer.next_row_group().map_err(perr(out))?;
        let bytes = |s: &str| ByteArray::from(s.as_bytes().to_vec());
        let json = |v: &serde_json::Value| ByteArray::from(v.to_string().into_bytes());
        let mut col = 0;
        while let Some(mut cw) = rg.next_column().map_err(perr(out))? {
            match col {
                6 => {
                    let vals: Vec<i64> = group
                        .iter()
                        .filter_map(|d| d.tokens.map(|t| t as i64))
                        .collect();
                    let defs: Vec<i16> = group.iter().map(|d| d.tokens.is_some() as i16).collect();
                    cw.typed::<Int64Type>()
                        .write_batch(&vals, Some(&defs), None)
                        .map_err(perr(out))?;
                }
                2 | 5 => {
                    let opt: Vec<Option<ByteArray>> = group
                        .iter()
                        .map(|d| {
                            if col == 2 {
                                d.title.as_deref().map(bytes)
                            } else {
                                d.chunks.as_ref().map(|c| json(&serde_json::json!(c)))
                            }
                        })
                        .collect();
                    let defs: Vec<i16> = opt.iter().map(|v| v.is_some() as i16).collect();
                    let vals: Vec<ByteArray> = opt.into_iter().flatten().collect();
                    cw.typed::<ByteArrayType>()
                        .write_batch(&vals, Some(&defs), None)
                        .map_err(perr(out))?;
                }
                _ => {
                    let vals: Vec<ByteArray> = group
                        .iter()
                        .map(|d| match col {
                            0 => bytes(&d.id),
                            1 => bytes(&d.source),
                            3 => bytes(&d.text),
                            4 => json(&serde_json::json!(d.provenance)),
                            _ => json(&serde_json::Value::Object(d.meta.clone())),
                        })
                        .collect();
                    cw.typed::<ByteArrayType>()
                        .write_batch(&vals, None, None)
                        .map_err(perr(out))?;
                }
            }
            cw.close().map_err(perr(out))?;
            col += 1;
        }
        rg.close().map_err(perr(out))?;
        group.clear();
        Ok(())
    };
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| CleanError::io(jsonl, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let d: Doc = serde_json::from_str(&line)
            .map_err(|e| CleanError::Invalid(format!("{} line {}: {e}", jsonl.display(), n + 1)))?;
        group.push(d);
        rows += 1;
        if group.len() >= rows_per_group.max(1) {
            flush(&mut writer, &mut group)?;
        }
    }
    flush(&mut writer, &mut group)?;
    writer.close().map_err(perr(out))?;
    std::fs::rename(&tmp, out).map_err(|e| CleanError::io(out, e))?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    #[test]
    fn jsonl_becomes_parquet_with_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let jsonl = dir.path().join("clean.jsonl");
        let docs: Vec<String> = (0..25)
            .map(|i| {
                serde_json::to_string(&Doc {
                    id: format!("d{i}"),
                    source: "s".into(),
                    title: (i % 2 == 0).then(|| format!("标题{i}")),
                    text: format!("第{i}篇正文"),
                    tokens: (i % 3 == 0).then_some(i),
                    ..Doc::default()
                })
                .unwrap()
            })
            .collect();
        std::fs::write(&jsonl, docs.join("\n") + "\n").unwrap();
        let out = dir.path().join("clean.parquet");
        assert_eq!(write_parquet(&jsonl, &out, 10).unwrap(), 25);
        let r = SerializedFileReader::new(std::fs::File::open(&out).unwrap()).unwrap();
        assert_eq!(r.metadata().file_metadata().num_rows(), 25);
        assert_eq!(r.metadata().num_row_groups(), 3);
        let rows: Vec<String> = r
            .get_row_iter(None)
            .unwrap()
            .map(|row| row.unwrap().to_string())
            .collect();
        assert!(
            rows[4].contains("第4篇正文") && rows[4].contains("标题4"),
            "{}",
            rows[4]
        );
    }
}
