//! `luodi bench clean`: throughput and memory of a recipe over a large generated input.
//!
//! The input (built once under `$LUODI_HOME/bench/clean-<MB>`, JSON lines in 50 MB parts)
//! is made of documents of 3–12 sentences drawn at random from the shared corpora's passages
//! (so documents differ as real ones do), with 8% exact copies, 8% near copies (reposts: up
//! to 12 characters changed, punctuation partly altered), 5% in 繁體, 3% UTF-8 read as Latin-1 and 2% junk — every step has work. The
//! recipe then runs as `luodi clean` in a child process, which reports its own peak memory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result};
use clap::Args;
use luodi_eval::Rng;
use serde_json::{json, Value};

#[derive(Args, Debug)]
pub struct CleanBench {
    #[arg(long, default_value = "../shared/data")]
    pub data: PathBuf,
    /// Input size in MB.
    #[arg(long, default_value_t = 500)]
    pub mb: u64,
    /// The recipe (a file or a shipped one).
    #[arg(long, default_value = "kb-ingest")]
    pub recipe: String,
    #[arg(long)]
    pub json: bool,
}

/// Sentences (8 characters or more) of the shared corpora's passages.
fn sentences(data: &Path) -> Result<Vec<String>> {
    Ok(crate::bench::passages(data)?
        .iter()
        .flat_map(|(_, t)| luodi_text::split_sentences(t))
        .filter(|s| s.chars().count() >= 8)
        .map(str::to_owned)
        .collect())
}

/// Generates the input (once); returns its folder.
pub(crate) fn prepare(home: &Path, b: &CleanBench, quiet: bool) -> Result<PathBuf> {
    // v2: near copies are reposts with a few words changed (v1 replaced a whole sentence)
    let dir = home.join("bench").join(format!("clean-v2-{}", b.mb));
    let input = dir.join("input");
    if dir.join("input.complete").is_file() {
        return Ok(input);
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&input)?;
    let pool = sentences(&b.data)?;
    anyhow::ensure!(
        pool.len() > 1000,
        "too few sentences under {}",
        b.data.display()
    );
    let mut rng = Rng(0x00c1_ea11_be4c_0001);
    let target = b.mb * 1_000_000;
    let (mut written, mut part, mut n) = (0u64, 0u32, 0u64);
    let mut recent: Vec<String> = Vec::new();
    let mut f: Option<std::io::BufWriter<std::fs::File>> = None;
    while written < target {
        if f.is_none() || written / 50_000_000 > part as u64 {
            if let Some(mut w) = f.take() {
                w.flush()?;
            }
            part = (written / 50_000_000) as u32;
            let p = input.join(format!("part-{part:04}.jsonl"));
            f = Some(std::io::BufWriter::new(std::fs::File::create(&p)?));
        }
        let roll = rng.below(100);
        let text = if roll < 8 && !recent.is_empty() {
            recent[rng.below(recent.len())].clone()
        } else if roll < 16 && !recent.is_empty() {
            // a repost: the text with a few words changed (one clause's worth, ≤ 12
            // characters) and its punctuation partly altered
            let base: Vec<char> = recent[rng.below(recent.len())].chars().collect();
            let at = rng.below(base.len().saturating_sub(12).max(1));
            let cut = 4 + rng.below(9);
            let sub: String = pool[rng.below(pool.len())].chars().take(cut).collect();
            let mut t: String = base[..at].iter().collect();
            t.push_str(&sub);
            t.extend(base[(at + cut).min(base.len())..].iter().map(|c| match c {
                '，' => ',',
                '。' => '.',
                c => *c,
            }));
            t
        } else {
            let k = 3 + rng.below(10);
            let mut t = String::new();
            for j in 0..k {
                t.push_str(&pool[rng.below(pool.len())]);
                if j % 4 == 3 {
                    t.push_str("\n\n");
                }
            }
            if roll < 21 {
                t = luodi_text::to_traditional(&t, luodi_text::Variant::Taiwan);
            } else if roll < 24 {
                t = t.bytes().map(|b| b as char).collect();
            } else if roll < 26 {
                t = "#### ==== **** |||| ".repeat(3 + rng.below(10));
            }
            if recent.len() < 2000 {
                recent.push(t.clone());
            } else {
                let i = rng.below(recent.len());
                recent[i] = t.clone();
            }
            t
        };
        let line = json!({"id": format!("d{n}"), "text": text}).to_string();
        if let Some(w) = f.as_mut() {
            w.write_all(line.as_bytes())?;
            w.write_all(b"\n")?;
        }
        written += line.len() as u64 + 1;
        n += 1;
        if !quiet && n % 100_000 == 0 {
            eprintln!("generated {:.0} MB", written as f64 / 1e6);
        }
    }
    if let Some(mut w) = f.take() {
        w.flush()?;
    }
    std::fs::write(
        dir.join("input.complete"),
        format!("{n} documents, {written} bytes"),
    )?;
    Ok(input)
}

pub fn run(home: &Path, b: CleanBench, quiet: bool) -> Result<ExitCode> {
    let input = prepare(home, &b, quiet || b.json)?;
    let bytes: u64 = std::fs::read_dir(&input)?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    let out = input.with_file_name("out");
    let exe = std::env::current_exe()?;
    let o = Command::new(exe)
        .args([
            "clean",
            "--recipe",
            &b.recipe,
            "--restart",
            "--json",
            "--out",
        ])
        .arg(&out)
        .arg(&input)
        .output()
        .context("running luodi clean")?;
    anyhow::ensure!(
        o.status.success(),
        "luodi clean failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let s: Value = serde_json::from_slice(
        o.stdout
            .split(|c| *c == b'\n')
            .rfind(|l| !l.is_empty())
            .unwrap_or_default(),
    )?;
    let secs = s["seconds"].as_f64().unwrap_or(0.0);
    let mbps = bytes as f64 / 1e6 / secs.max(1e-9);
    let step = |name: &str| {
        s["steps"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == name))
            .map(|x| x["docs_in"].as_u64().unwrap_or(0) - x["docs_out"].as_u64().unwrap_or(0))
            .unwrap_or(0)
    };
    let mut w = std::io::stdout().lock();
    if b.json {
        writeln!(
            w,
            "{}",
            json!({
                "recipe": b.recipe, "input_mb": bytes as f64 / 1e6, "documents": s["input_docs"],
                "kept": s["output_docs"], "seconds": secs, "mb_per_s": mbps,
                "docs_per_s": s["input_docs"].as_f64().unwrap_or(0.0) / secs.max(1e-9),
                "peak_rss_mb": s["peak_rss_mb"], "exact_duplicates": step("exact_dedup"),
                "near_duplicates": step("near_dedup"), "threads": std::thread::available_parallelism().map_or(1, |n| n.get()),
            })
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        w,
        "clean benchmark ({}): {:.0} MB, {} documents in {:.1} s — {:.2} MB/s, {:.0} docs/s, peak RSS {:.0} MB",
        b.recipe,
        bytes as f64 / 1e6,
        s["input_docs"],
        secs,
        mbps,
        s["input_docs"].as_f64().unwrap_or(0.0) / secs.max(1e-9),
        s["peak_rss_mb"].as_f64().unwrap_or(0.0)
    )?;
    writeln!(
        w,
        "  kept {}, exact duplicates {}, near duplicates {}",
        s["output_docs"],
        step("exact_dedup"),
        step("near_dedup")
    )?;
    if let Some(steps) = s["steps"].as_array() {
        for st in steps {
            writeln!(
                w,
                "  {:<12} {:>7.1} s",
                st["name"].as_str().unwrap_or(""),
                st["seconds"].as_f64().unwrap_or(0.0)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
