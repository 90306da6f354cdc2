use std::time::Instant;
fn main() {
    let text = std::fs::read_to_string("/tmp/bh/bench/ingest-corpus-100mb/part0000/doc000000.md").unwrap();
    let mut big = String::new();
    while big.len() < 10_000_000 { big.push_str(&text); }
    let chunks: Vec<&str> = { let mut v = Vec::new(); let mut s = big.as_str(); while !s.is_empty() { let mut i = 900.min(s.len()); while !s.is_char_boundary(i) { i -= 1; } v.push(&s[..i]); s = &s[i..]; } v };
    let mb = big.len() as f64 / 1e6;
    let t = Instant::now(); let mut n = 0; for c in &chunks { n += luodi_text::normalize::nfkc(c).len(); } println!("nfkc {:.1} MB/s {n}", mb / t.elapsed().as_secs_f64());
    let t = Instant::now(); let mut n = 0; for c in &chunks { n += luodi_text::to_simplified(c).len(); } println!("tw2sp {:.1} MB/s {n}", mb / t.elapsed().as_secs_f64());
    let t = Instant::now(); let mut n = 0; for c in &chunks { n += luodi_text::fold_for_search(c).len(); } println!("fold {:.1} MB/s {n}", mb / t.elapsed().as_secs_f64());
    let seg = luodi_text::Segmenter::shared();
    let t = Instant::now(); let mut n = 0; for c in &chunks { n += seg.cut_for_search(c).len(); } println!("jieba search {:.1} MB/s {n}", mb / t.elapsed().as_secs_f64());
    let a = luodi_index::Analyzer::default();
    let t = Instant::now(); let mut n = 0; for c in &chunks { n += a.analyze(c).len(); } println!("analyzer {:.1} MB/s {n}", mb / t.elapsed().as_secs_f64());
}

#[allow(dead_code)]
fn index_speed() {}
