//! `luodi bench`: speed measurements that print their baseline beside them.
//!
//! * `bench ingest` builds a corpus of at least `--mb` megabytes from the public corpora in
//!   `--data` (passages repeated with varied ids and titles, as Markdown and text files),
//!   ingests it into a fresh knowledge base, then ingests the unchanged folder again: the
//!   first run's MB/s is the ingestion speed, and the ratio first/second is how much an
//!   unchanged re-run saves.
//! * `bench search` builds (once, cached) a knowledge base of `--chunks` chunks from the same
//!   passages and measures BM25 query latency with real queries from the evaluation sets,
//!   reporting p50/p95/p99 and the process's resident memory.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use luodi_core::{SearchQuery, SourceState};
use luodi_engine::{Home, IngestOptions, Kb, KbConfig, NoProgress};
use luodi_ingest::{Block, Extracted};

use crate::progress::Bar;

const SETS: &[&str] = &[
    "cmrc2018-retrieval",
    "dureader2-demo-retrieval",
    "domainrag-ruc-admissions",
    "taipei-gov-faq",
    "xquad-zh-retrieval",
];

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// Ingestion speed (BM25 only) and the speed-up of re-ingesting an unchanged folder.
    Ingest(IngestBench),
    /// BM25 query latency on a large knowledge base.
    Search(SearchBench),
    /// Embedding throughput and agreement against the reference C engine, query latency.
    Embed(crate::models_cmd::EmbedBench),
    /// LLM decode speed against a bare llama.cpp loop, prompt speed, time to first token.
    Llm(crate::models_cmd::LlmBench),
    /// Listing and reopening stored conversations in a store of many.
    Conversations(ConversationsBench),
    /// Load on `luodi serve` from this second process: search and embeddings under 64
    /// connections, and search latency while a chat answer is generated.
    Serve(crate::bench_serve::ServeBench),
    /// Throughput and peak memory of a clean recipe over a large generated input.
    Clean(crate::bench_clean::CleanBench),
    /// luodi's near-duplicate removal beside datatrove's (pip) on the same input: time and
    /// agreement of the removed sets.
    Dedup(crate::bench_dedup::DedupBench),
}

#[derive(Args, Debug)]
pub struct ConversationsBench {
    /// Conversations in the store.
    #[arg(long, default_value_t = 10_000)]
    pub n: usize,
    /// Turns per conversation.
    #[arg(long, default_value_t = 4)]
    pub turns: usize,
    /// Timed repetitions of each operation.
    #[arg(long, default_value_t = 200)]
    pub reps: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct IngestBench {
    /// Folder with the public evaluation sets.
    #[arg(long, default_value = "../shared/data")]
    pub data: PathBuf,
    /// Size of the generated corpus, in MB.
    #[arg(long, default_value_t = 100)]
    pub mb: u64,
    /// Size of each generated file, in KB (`--mb 100 --file-kb 10` makes ~10,000 files).
    #[arg(long, default_value_t = 48)]
    pub file_kb: u64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SearchBench {
    #[arg(long, default_value = "../shared/data")]
    pub data: PathBuf,
    /// Number of chunks in the knowledge base.
    #[arg(long, default_value_t = 1_000_000)]
    pub chunks: u64,
    /// Number of timed queries.
    #[arg(long, default_value_t = 2000)]
    pub queries: usize,
    #[arg(long)]
    pub json: bool,
}

/// Passages (title, text) from the public corpora.
pub(crate) fn passages(data: &Path) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for set in SETS {
        let path = data.join(set).join("corpus.jsonl");
        let f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(_) => continue,
        };
        for line in std::io::BufReader::new(f).lines() {
            let line = line?;
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                let text = v["text"].as_str().unwrap_or_default().trim().to_owned();
                let title = v["title"].as_str().unwrap_or_default().to_owned();
                if !text.is_empty() {
                    out.push((title, text));
                }
            }
        }
    }
    anyhow::ensure!(
        !out.is_empty(),
        "no corpus.jsonl found under {}",
        data.display()
    );
    Ok(out)
}

pub(crate) fn queries(data: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for set in SETS {
        let path = data.join(set).join("queries.jsonl");
        if let Ok(text) = std::fs::read_to_string(&path) {
            for line in text.lines() {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                    if let Some(q) = v["text"].as_str() {
                        out.push(q.to_owned());
                    }
                }
            }
        }
    }
    out
}

/// (current, peak) resident memory of this process in MB.
pub(crate) fn rss_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (get("VmRSS:"), get("VmHWM:"))
}

pub fn run(home: &Path, cmd: BenchCmd, quiet: bool) -> Result<ExitCode> {
    match cmd {
        BenchCmd::Ingest(b) => ingest(home, b, quiet),
        BenchCmd::Search(b) => search(home, b, quiet),
        BenchCmd::Embed(b) => crate::models_cmd::bench_embed(b, quiet),
        BenchCmd::Llm(b) => crate::models_cmd::bench_llm(b, quiet),
        BenchCmd::Conversations(b) => conversations(b, quiet),
        BenchCmd::Serve(b) => crate::bench_serve::run(home, b, quiet),
        BenchCmd::Clean(b) => crate::bench_clean::run(home, b, quiet),
        BenchCmd::Dedup(b) => crate::bench_dedup::run(home, b, quiet),
    }
}

/// A store of `n` conversations (each `turns` turns of realistic size, written through the
/// same calls `luodi chat` uses), then: listing the most recent page, listing all of them,
/// and reopening a random one — in the open store and from a freshly opened one (what a new
/// process pays).
fn conversations(b: ConversationsBench, quiet: bool) -> Result<ExitCode> {
    use luodi_engine::{AnswerFormat, Evidence, Turn};
    let dir = tempfile::tempdir()?;
    let home = Home::open(dir.path())?;
    home.create("bench", KbConfig::default())?;
    let started = Instant::now();
    let mut ids = Vec::with_capacity(b.n);
    let evidence = |n: usize| {
        Evidence {
        n,
        chunk_id: n as u64,
        doc_key: format!("/data/handbook/员工手册-请假制度.md#{n}"),
        title: "员工手册".into(),
        heading_path: vec!["请假制度".into(), "年假".into()],
        location: Default::default(),
        text: "员工入职满一年后享有带薪年假。当年未休的年假可顺延至次年3月31日，逾期作废。工作满1年不满10年的，年假5天；满10年不满20年的，年假10天。".into(),
        score: 0.9,
    }
    };
    for i in 0..b.n {
        let c = home.conversation_create(
            "bench",
            &format!("第{i}个问题：当年没休完的年假可以顺延到什么时候？"),
        )?;
        for t in 0..b.turns {
            home.conversation_add_turn(
                &c.id,
                &Turn {
                    seq: 0,
                    question: format!("问题{t}：那病假需要什么证明？"),
                    standalone: format!("当年没休完的年假可以顺延到什么时候 问题{t}：那病假需要什么证明？"),
                    answer: "当年未休的年假可顺延至次年3月31日，逾期作废。[1] 连续病假超过3天的，须提供二级以上医院的诊断证明。[2]".into(),
                    citations: vec![evidence(1), evidence(2)],
                    refused: false,
                    choices: Vec::new(),
                    format: AnswerFormat::Plain,
                    confidence: 0.8,
                    ttft_ms: 2500.0,
                    total_ms: 4000.0,
                    model: "qwen2.5-coder-0.5b-instruct-q4_k_m".into(),
                    model_fingerprint: "sha256:1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32".into(),
                    kb_version: 3,
                    created_at: 1_764_460_800 + i as i64,
                },
            )?;
        }
        ids.push(c.id);
        if !quiet && (i + 1) % 2000 == 0 {
            eprintln!("  {} conversations written", i + 1);
        }
    }
    let build_s = started.elapsed().as_secs_f64();
    let time = |reps: usize, f: &mut dyn FnMut(usize) -> Result<()>| -> Result<Vec<f64>> {
        let mut v = Vec::with_capacity(reps);
        for r in 0..reps {
            let t = Instant::now();
            f(r)?;
            v.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        v.sort_by(|a, b| a.total_cmp(b));
        Ok(v)
    };
    let pick = |r: usize| ids[(r * 7919) % ids.len()].clone();
    let page = time(b.reps, &mut |_| {
        anyhow::ensure!(home.conversations(Some("bench"), 50, 0)?.len() == 50.min(b.n));
        Ok(())
    })?;
    let all = time(b.reps.min(50), &mut |_| {
        anyhow::ensure!(home.conversations(None, usize::MAX, 0)?.len() == b.n);
        Ok(())
    })?;
    let open = time(b.reps, &mut |r| {
        let c = home.conversation(&pick(r))?;
        anyhow::ensure!(c.is_some_and(|c| c.turns.len() == b.turns));
        Ok(())
    })?;
    drop(home);
    let cold = time(b.reps.min(100), &mut |r| {
        let h = Home::open(dir.path())?;
        let c = h.conversation(&pick(r))?;
        anyhow::ensure!(c.is_some_and(|c| c.turns.len() == b.turns));
        Ok(())
    })?;
    let db_mb =
        std::fs::metadata(dir.path().join("luodi.sqlite")).map_or(0.0, |m| m.len() as f64 / 1e6);
    let q = |v: &[f64], p: f64| luodi_eval::quantile(v, p);
    let report = serde_json::json!({
        "conversations": b.n,
        "turns_per_conversation": b.turns,
        "build_seconds": build_s,
        "db_mb": db_mb,
        "list_page50_p50_ms": q(&page, 0.5),
        "list_page50_p95_ms": q(&page, 0.95),
        "list_all_p50_ms": q(&all, 0.5),
        "list_all_p95_ms": q(&all, 0.95),
        "open_p50_ms": q(&open, 0.5),
        "open_p95_ms": q(&open, 0.95),
        "open_new_process_p50_ms": q(&cold, 0.5),
        "open_new_process_p95_ms": q(&cold, 0.95),
    });
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "conversations: {} × {} turns written in {:.1} s ({:.1} MB)",
        b.n, b.turns, build_s, db_mb
    )?;
    writeln!(
        out,
        "  list newest 50   p50 {:.2} ms  p95 {:.2} ms",
        q(&page, 0.5),
        q(&page, 0.95)
    )?;
    writeln!(
        out,
        "  list all {:>6}  p50 {:.2} ms  p95 {:.2} ms",
        b.n,
        q(&all, 0.5),
        q(&all, 0.95)
    )?;
    writeln!(
        out,
        "  reopen one       p50 {:.2} ms  p95 {:.2} ms (store open), p50 {:.2} ms  p95 {:.2} ms (store opened anew)",
        q(&open, 0.5),
        q(&open, 0.95),
        q(&cold, 0.5),
        q(&cold, 0.95)
    )?;
    if b.json {
        writeln!(out, "{report}")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn generate_corpus(dir: &Path, data: &Path, mb: u64, file_kb: u64) -> Result<(u64, u64)> {
    let marker = dir.join(".complete");
    if let Ok(s) = std::fs::read_to_string(&marker) {
        let mut it = s.split_whitespace().filter_map(|x| x.parse::<u64>().ok());
        if let (Some(files), Some(bytes)) = (it.next(), it.next()) {
            return Ok((files, bytes));
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let pool = passages(data)?;
    let target = mb * 1_000_000;
    let (mut bytes, mut files, mut round) = (0u64, 0u64, 0usize);
    let mut i = 0usize;
    while bytes < target {
        let sub = dir.join(format!("part{:04}", files / 1000));
        std::fs::create_dir_all(&sub)?;
        let md = files % 3 != 2;
        let mut body = String::new();
        if md {
            body.push_str(&format!("# 资料汇编 第{}册 (轮次 {round})\n\n", files + 1));
        }
        let mut n = 0;
        while body.len() < (file_kb.max(1) * 1000) as usize {
            let (title, text) = &pool[i % pool.len()];
            i += 1;
            if i.is_multiple_of(pool.len()) {
                round += 1;
            }
            n += 1;
            if md {
                body.push_str(&format!(
                    "## {} · 编号{}-{}\n\n{}\n\n",
                    if title.is_empty() { "条目" } else { title },
                    round,
                    n,
                    text
                ));
            } else {
                body.push_str(&format!("编号{round}-{n}：{text}\n\n"));
            }
        }
        let path = sub.join(format!("doc{:06}.{}", files, if md { "md" } else { "txt" }));
        std::fs::write(&path, &body)?;
        bytes += body.len() as u64;
        files += 1;
    }
    std::fs::write(&marker, format!("{files} {bytes}"))?;
    Ok((files, bytes))
}

fn ingest(home: &Path, b: IngestBench, quiet: bool) -> Result<ExitCode> {
    let name = match b.file_kb {
        48 => format!("ingest-corpus-{}mb", b.mb),
        kb => format!("ingest-corpus-{}mb-{kb}kb", b.mb),
    };
    let corpus_dir = home.join("bench").join(name);
    let (files, bytes) = generate_corpus(&corpus_dir, &b.data, b.mb, b.file_kb)
        .context("generating the benchmark corpus")?;
    let bench_home = home.join("bench").join("ingest-home");
    if bench_home.exists() {
        std::fs::remove_dir_all(&bench_home)?;
    }
    let h = Home::open(&bench_home)?;
    h.create("bench", KbConfig::default())?;
    let kb = h.open_kb("bench")?;
    let opts = IngestOptions {
        remove_missing: true,
        ..Default::default()
    };
    let bar = Bar::new(quiet || b.json);
    let first = kb.ingest(std::slice::from_ref(&corpus_dir), &opts, &bar)?;
    bar.finish();
    let second = kb.ingest(std::slice::from_ref(&corpus_dir), &opts, &NoProgress)?;
    let (_, peak) = rss_mb();
    let mbs = bytes as f64 / 1e6 / first.seconds;
    let ratio = first.seconds / second.seconds.max(1e-9);
    let mut out = std::io::stdout().lock();
    writeln!(out, "ingest benchmark: {files} files, {:.1} MB (BM25 only: read + normalize + segment + chunk + index)", bytes as f64 / 1e6)?;
    writeln!(
        out,
        "  first ingest     {:.2}s  {:.2} MB/s  {:.0} files/s  {} chunks",
        first.seconds,
        mbs,
        files as f64 / first.seconds,
        first.chunks
    )?;
    writeln!(out, "  unchanged rerun  {:.3}s  ({} unchanged, {} re-read)  {:.0}x faster than the first ingest", second.seconds, second.unchanged, second.bytes_read, ratio)?;
    writeln!(out, "  peak RSS {peak:.0} MB")?;
    if b.json {
        let j = serde_json::json!({
            "files": files, "mb": bytes as f64 / 1e6, "first_seconds": first.seconds, "mb_per_s": mbs,
            "chunks": first.chunks, "rerun_seconds": second.seconds, "rerun_speedup": ratio, "peak_rss_mb": peak,
        });
        writeln!(out, "{j}")?;
    }
    drop(kb);
    std::fs::remove_dir_all(&bench_home).ok();
    Ok(ExitCode::SUCCESS)
}

/// Fills `kb` with `chunks` one-chunk documents cut from the public corpora's passages
/// (repeated with a round number where the corpora run out).
pub(crate) fn fill_kb(kb: &Kb, data: &Path, chunks: u64, quiet: bool) -> Result<()> {
    let pool = passages(data)?;
    // split passages into chunk-sized pieces so each document is one chunk
    let mut pieces: Vec<(String, String)> = Vec::new();
    for (title, text) in &pool {
        let chars: Vec<char> = text.chars().collect();
        for c in chars.chunks(300) {
            pieces.push((title.clone(), c.iter().collect()));
        }
    }
    anyhow::ensure!(
        !pieces.is_empty(),
        "no corpus.jsonl with passages under {}",
        data.display()
    );
    let bar = Bar::new(quiet);
    luodi_engine::Progress::start(&bar, chunks, 0);
    let batch = 50_000u64;
    let mut made = 0u64;
    let mut b = 0u64;
    while made < chunks {
        let n = batch.min(chunks - made);
        let docs: Vec<Extracted> = (made..made + n)
            .map(|i| {
                let (title, text) = &pieces[(i as usize) % pieces.len()];
                let round = i as usize / pieces.len();
                Extracted {
                    record: Some(i.to_string()),
                    title: Some(format!("{title} {round}")),
                    blocks: vec![Block::paragraph(
                        format!("{text}（第{round}版）"),
                        Default::default(),
                    )],
                    metadata: Default::default(),
                }
            })
            .collect();
        kb.put_documents(
            SourceState {
                path: format!("bench-{b}"),
                content_hash: b.to_string(),
                size: 0,
                mtime: 0,
            },
            docs,
        )?;
        made += n;
        b += 1;
        luodi_engine::Progress::advance(&bar, n, 0);
    }
    bar.finish();
    Ok(())
}

fn build_search_kb(dir: &Path, data: &Path, chunks: u64, quiet: bool) -> Result<(Kb, f64)> {
    let marker = dir.join("complete.json");
    let cfg = KbConfig::default();
    if let Ok(s) = std::fs::read_to_string(&marker) {
        let v: serde_json::Value = serde_json::from_str(&s)?;
        return Ok((
            Kb::open_at(dir, "bench", cfg)?,
            v["build_seconds"].as_f64().unwrap_or(0.0),
        ));
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let kb = Kb::open_at(dir, "bench", cfg)?;
    let started = Instant::now();
    fill_kb(&kb, data, chunks, quiet)?;
    kb.store.optimize()?;
    let secs = started.elapsed().as_secs_f64();
    std::fs::write(
        &marker,
        serde_json::json!({"chunks": chunks, "build_seconds": secs}).to_string(),
    )?;
    Ok((kb, secs))
}

fn search(home: &Path, b: SearchBench, quiet: bool) -> Result<ExitCode> {
    let dir = home.join("bench").join(format!("search-{}", b.chunks));
    let (kb, build_seconds) = build_search_kb(&dir, &b.data, b.chunks, quiet || b.json)?;
    let stats = luodi_core::Backend::stats(&*kb.store)?;
    drop(kb);
    // reopen so the resident memory is that of a process that just opened the knowledge base
    let kb = Kb::open_at(&dir, "bench", KbConfig::default())?;
    let qs = queries(&b.data);
    anyhow::ensure!(
        !qs.is_empty(),
        "no queries.jsonl under {}",
        b.data.display()
    );
    let run = |q: &str| -> Result<f64> {
        let t = Instant::now();
        let ids = kb.store.search_ids(&SearchQuery {
            text: q.to_owned(),
            k: 10,
            ..Default::default()
        })?;
        let hits = kb.store.fetch(&ids)?;
        std::hint::black_box(hits);
        Ok(t.elapsed().as_secs_f64() * 1000.0)
    };
    for q in qs.iter().take(100) {
        run(q)?;
    }
    let mut lat = Vec::with_capacity(b.queries);
    for i in 0..b.queries {
        lat.push(run(&qs[(i * 7919) % qs.len()])?);
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    let q = |p| luodi_eval::quantile(&lat, p);
    let (rss, peak) = rss_mb();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "search benchmark: {} chunks ({:.0} MB of text, {:.0} MB on disk), built in {:.0}s",
        stats.chunks,
        stats.text_bytes as f64 / 1e6,
        stats.disk_bytes as f64 / 1e6,
        build_seconds
    )?;
    writeln!(out, "  {} queries, k=10 (search + fetch): p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  mean {:.2} ms", lat.len(), q(0.5), q(0.95), q(0.99), lat.iter().sum::<f64>() / lat.len() as f64)?;
    writeln!(out, "  RSS {rss:.0} MB (peak {peak:.0} MB)")?;
    if b.json {
        let j = serde_json::json!({
            "chunks": stats.chunks, "queries": lat.len(), "p50_ms": q(0.5), "p95_ms": q(0.95), "p99_ms": q(0.99),
            "rss_mb": rss, "peak_rss_mb": peak, "build_seconds": build_seconds, "disk_mb": stats.disk_bytes as f64 / 1e6,
        });
        writeln!(out, "{j}")?;
    }
    Ok(ExitCode::SUCCESS)
}
