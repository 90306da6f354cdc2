//! Readers and chunker on the project's own sample corpus (snapshots), and bad input.

use std::path::{Path, PathBuf};

use luodi_ingest::{
    chunk_blocks, read_bytes, BlockKind, ChunkConfig, ReadError, ReadOptions, TableMode,
};

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../samples/handbook")
        .join(name)
}

/// A readable outline of what a reader extracted: one line per block.
fn outline(name: &str, opts: &ReadOptions) -> String {
    let path = sample(name);
    let bytes = std::fs::read(&path).unwrap();
    let out = read_bytes(&path, &bytes, opts).unwrap();
    let mut s = format!(
        "encoding: {:?}\nwarnings: {:?}\n",
        out.encoding, out.warnings
    );
    for d in &out.documents {
        s.push_str(&format!(
            "document {:?} title {:?} meta {:?}\n",
            d.record, d.title, d.metadata
        ));
        for b in &d.blocks {
            let kind = match &b.kind {
                BlockKind::Heading(l) => format!("h{l}"),
                BlockKind::Paragraph => "p".into(),
                BlockKind::TableRow { .. } => "row".into(),
            };
            let text: String = b.text.chars().take(48).collect();
            s.push_str(&format!(
                "  {kind:<4} [{}] {}\n",
                b.location,
                text.replace('\n', "⏎")
            ));
        }
    }
    s
}

#[test]
fn markdown_headings_and_table() {
    insta::assert_snapshot!(outline("员工手册-请假制度.md", &ReadOptions::default()));
}

#[test]
fn html_strips_boilerplate_keeps_table() {
    let o = outline("差旅費報銷辦法.html", &ReadOptions::default());
    assert!(
        !o.contains("首頁") && !o.contains("版權所有") && !o.contains("tracker"),
        "{o}"
    );
    insta::assert_snapshot!(o);
}

#[test]
fn docx_paragraphs_headings_tables() {
    insta::assert_snapshot!(outline("IT服务台指南.docx", &ReadOptions::default()));
}

#[test]
fn xlsx_sheet_and_rows() {
    insta::assert_snapshot!(
        "xlsx_sheet",
        outline("分公司通讯录.xlsx", &ReadOptions::default())
    );
    let rows = ReadOptions {
        table_mode: TableMode::Row,
        ..Default::default()
    };
    insta::assert_snapshot!("xlsx_rows", outline("分公司通讯录.xlsx", &rows));
}

#[test]
fn pdf_pages() {
    let o = outline("資訊安全須知.pdf", &ReadOptions::default());
    assert!(o.contains("page 2"), "{o}");
    insta::assert_snapshot!(o);
}

#[test]
fn gbk_text() {
    let o = outline("春节放假通知-gbk.txt", &ReadOptions::default());
    assert!(o.contains("gb18030") && o.contains("0571-8888-6000"), "{o}");
    insta::assert_snapshot!(o);
}

#[test]
fn chunks_of_the_handbook_carry_heading_paths() {
    let path = sample("员工手册-请假制度.md");
    let out = read_bytes(
        &path,
        &std::fs::read(&path).unwrap(),
        &ReadOptions::default(),
    )
    .unwrap();
    let chunks = chunk_blocks(&out.documents[0].blocks, ChunkConfig::default());
    let table = chunks.iter().find(|c| c.text.contains("产假")).unwrap();
    assert!(
        table.text.starts_with("| 假期类型 |"),
        "table chunk keeps its header"
    );
    assert_eq!(
        table.heading_path.last().map(String::as_str),
        Some("假期一览")
    );
    let s: Vec<String> = chunks
        .iter()
        .map(|c| {
            format!(
                "{} {:?} [{}] {}",
                c.ordinal,
                c.heading_path,
                c.location,
                c.text.chars().count()
            )
        })
        .collect();
    insta::assert_snapshot!(s.join("\n"));
}

#[test]
fn jsonl_bad_line_is_a_warning_with_its_line_number() {
    let data = "{\"id\":\"a\",\"text\":\"第一条\",\"dept\":\"财务部\"}\nnot json\n{\"id\":\"b\",\"text\":\"第二条\"}\n";
    let out = read_bytes(
        Path::new("x.jsonl"),
        data.as_bytes(),
        &ReadOptions::default(),
    )
    .unwrap();
    assert_eq!(out.documents.len(), 2);
    assert_eq!(
        out.documents[0].metadata.get("dept").map(String::as_str),
        Some("财务部")
    );
    assert_eq!(out.warnings.len(), 1);
    assert!(out.warnings[0].starts_with("line 2:"), "{:?}", out.warnings);
}

#[test]
fn json_text_field_is_chosen_or_named_in_the_error() {
    let data = r#"[{"id":1,"问题":"怎么请假","答案":"在HR-Link提交"}]"#;
    let err = read_bytes(
        Path::new("faq.json"),
        data.as_bytes(),
        &ReadOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("--text-field"), "{err}");
    let opts = ReadOptions {
        text_field: Some("答案".into()),
        title_field: Some("问题".into()),
        ..Default::default()
    };
    let out = read_bytes(Path::new("faq.json"), data.as_bytes(), &opts).unwrap();
    assert_eq!(out.documents[0].title.as_deref(), Some("怎么请假"));
}

#[test]
fn damaged_files_are_errors_not_panics() {
    let docx = std::fs::read(sample("IT服务台指南.docx")).unwrap();
    let cut = &docx[..docx.len() / 2];
    assert!(matches!(
        read_bytes(Path::new("a.docx"), cut, &ReadOptions::default()),
        Err(ReadError::Parse { .. })
    ));
    let pdf = std::fs::read(sample("資訊安全須知.pdf")).unwrap();
    assert!(read_bytes(
        Path::new("a.pdf"),
        &pdf[..pdf.len() / 3],
        &ReadOptions::default()
    )
    .is_err());
    assert!(read_bytes(
        Path::new("a.xlsx"),
        b"PK\x03\x04garbage",
        &ReadOptions::default()
    )
    .is_err());
    assert!(matches!(
        read_bytes(Path::new("a.exe"), b"MZ", &ReadOptions::default()),
        Err(ReadError::Unsupported(_))
    ));
}

#[test]
fn mojibake_is_refused_with_a_reason() {
    let (garbled, _, _) =
        encoding_rs::WINDOWS_1252.decode("员工请假须提前三个工作日提交申请。".as_bytes());
    let err = read_bytes(
        Path::new("a.txt"),
        garbled.as_bytes(),
        &ReadOptions::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("UTF-8 decoded as Latin-1"),
        "{err}"
    );
}

#[test]
fn pdf_without_text_layer_warns() {
    // a one-page PDF with no content stream: what a scanner without OCR produces, minus the image
    let pdf = minimal_pdf();
    let out = read_bytes(Path::new("scan.pdf"), &pdf, &ReadOptions::default()).unwrap();
    assert!(out.documents.is_empty());
    assert!(
        out.warnings[0].contains("no text layer"),
        "{:?}",
        out.warnings
    );
}

fn minimal_pdf() -> Vec<u8> {
    let objs = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R /Resources << >> >>",
        "<< /Length 0 >>\nstream\n\nendstream",
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objs.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{}\nendobj\n", i + 1, o).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes());
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objs.len() + 1
        )
        .as_bytes(),
    );
    out
}
