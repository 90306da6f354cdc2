use std::time::Instant;
use luodi_core::{Backend, Change, Chunk, Document, SourceState, SourceUpdate};
fn main() {
    let text = std::fs::read_to_string("/tmp/bh/bench/ingest-corpus-100mb/part0000/doc000000.md").unwrap();
    let mut big = String::new();
    while big.len() < 10_000_000 { big.push_str(&text); }
    let mut chunks = Vec::new(); let mut s = big.as_str(); while !s.is_empty() { let mut i = 900.min(s.len()); while !s.is_char_boundary(i) { i -= 1; } chunks.push(s[..i].to_string()); s = &s[i..]; }
    for cfg in ["wub", "ub", "wb"] {
        let a = luodi_index::AnalyzerConfig { words: cfg.contains('w'), unigrams: cfg.contains('u'), bigrams: cfg.contains('b') };
        let dir = tempfile::tempdir().unwrap();
        let st = luodi_index::EmbeddedStore::open(dir.path(), luodi_index::StoreOptions { analyzer: a, ..Default::default() }).unwrap();
        let docs: Vec<(Document, Vec<Chunk>)> = chunks.iter().enumerate().map(|(i, c)| (Document { key: i.to_string(), source: "s".into(), title: "t".into(), modified: None, content_hash: "h".into(), metadata: Default::default() }, vec![Chunk { ordinal: 0, text: c.clone(), heading_path: vec![], location: Default::default() }])).collect();
        let t = Instant::now();
        st.apply(vec![Change::Upsert(SourceUpdate { source: SourceState { path: "s".into(), content_hash: "h".into(), size: 0, mtime: 0 }, documents: docs })]).unwrap();
        println!("{cfg}: {:.1} MB/s", big.len() as f64 / 1e6 / t.elapsed().as_secs_f64());
    }
}
