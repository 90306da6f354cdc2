//! `luodi bench dedup`: luodi's near-duplicate removal beside datatrove's MinHash
//! deduplication (PyPI `datatrove`, run by `scripts/compare_datatrove.py`) on the same input
//! and machine — wall time of each, their ratio, and how far the two sets of removed
//! documents agree (Jaccard of the removed ids).
//!
//! Both use jieba words, 5-gram shingles and 14 bands × 8 rows (datatrove's defaults); luodi
//! runs a one-step recipe (`near_dedup`), datatrove its four stages with as many tasks as there
//! are cores. The input is `bench clean`'s generated corpus of `--mb` megabytes.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};

#[derive(Args, Debug)]
pub struct DedupBench {
    #[arg(long, default_value = "../shared/data")]
    pub data: PathBuf,
    /// Input size in MB (datatrove reads ~0.2 MB/s here: 20 MB takes it minutes).
    #[arg(long, default_value_t = 20)]
    pub mb: u64,
    /// The comparison script.
    #[arg(long, default_value = "scripts/compare_datatrove.py")]
    pub script: PathBuf,
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// luodi's verification threshold (0: any shared band is a duplicate, as datatrove).
    #[arg(long, default_value_t = 0.0)]
    pub threshold: f64,
    #[arg(long)]
    pub json: bool,
}

fn last_json(stdout: &[u8]) -> Result<Value> {
    let line = stdout
        .split(|c| *c == b'\n')
        .rfind(|l| !l.is_empty())
        .unwrap_or_default();
    Ok(serde_json::from_slice(line)?)
}

pub fn run(home: &Path, b: DedupBench, quiet: bool) -> Result<ExitCode> {
    if !b.script.is_file() {
        bail!(
            "{}: not found (run from the repository root, or give --script)",
            b.script.display()
        );
    }
    let input = crate::bench_clean::prepare(
        home,
        &crate::bench_clean::CleanBench {
            data: b.data.clone(),
            mb: b.mb,
            recipe: "kb-ingest".into(),
            json: b.json,
        },
        quiet || b.json,
    )?;
    let work = input.with_file_name("dedup");
    std::fs::create_dir_all(&work)?;
    let recipe = work.join("near-only.toml");
    std::fs::write(
        &recipe,
        format!(
            "name = \"near-dedup-only\"\n[[step]]\nname = \"near_dedup\"\nshingle = \"word\"\nn = 5\nbands = 14\nrows = 8\ndigits = \"zero\"\nthreshold = {}\n",
            b.threshold
        ),
    )?;
    let out = work.join("luodi");
    let o = Command::new(std::env::current_exe()?)
        .args(["clean", "--restart", "--json", "--recipe"])
        .arg(&recipe)
        .arg("--out")
        .arg(&out)
        .arg(&input)
        .output()
        .context("running luodi clean")?;
    if !o.status.success() {
        bail!("luodi clean failed: {}", String::from_utf8_lossy(&o.stderr));
    }
    let l = last_json(&o.stdout)?;
    let luodi_secs = l["seconds"].as_f64().unwrap_or(0.0);
    let mut luodi_removed = HashSet::new();
    for line in std::fs::read_to_string(out.join("rejects.jsonl"))?.lines() {
        let v: Value = serde_json::from_str(line)?;
        if v["reason"] == "near_duplicate" {
            luodi_removed.insert(v["id"].as_str().unwrap_or("").to_owned());
        }
    }
    let tasks = std::thread::available_parallelism().map_or(2, |n| n.get());
    let o = Command::new(&b.python)
        .arg(&b.script)
        .arg(&input)
        .arg(work.join("datatrove"))
        .args(["--tasks", &tasks.to_string()])
        .output()
        .with_context(|| format!("running {} {}", b.python, b.script.display()))?;
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        let hint = if err.contains("No module named") || err.contains("Please install") {
            "\n(pip install datatrove spacy jieba \"xxhash<4\")"
        } else {
            ""
        };
        bail!(
            "datatrove failed: {}{hint}",
            err.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
        );
    }
    let d = last_json(&o.stdout)?;
    let dt_secs = d["seconds"].as_f64().unwrap_or(0.0);
    let dt_removed: HashSet<String> =
        std::fs::read_to_string(d["removed_ids"].as_str().unwrap_or(""))?
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
    let both = luodi_removed.intersection(&dt_removed).count();
    let union = luodi_removed.union(&dt_removed).count();
    let agreement = both as f64 / union.max(1) as f64;
    let mb = l["input_bytes"].as_f64().unwrap_or(0.0) / 1e6;
    let mut w = std::io::stdout().lock();
    if b.json {
        writeln!(
            w,
            "{}",
            json!({
                "documents": l["input_docs"], "input_mb": mb,
                "luodi_seconds": luodi_secs, "datatrove_seconds": dt_secs,
                "speedup": dt_secs / luodi_secs.max(1e-9),
                "luodi_removed": luodi_removed.len(), "datatrove_removed": dt_removed.len(),
                "both_removed": both, "agreement": agreement, "tasks": tasks,
                "threshold": b.threshold,
            })
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        w,
        "near-duplicate removal, {} documents ({mb:.1} MB), jieba word 5-grams, 14 bands × 8 rows, {tasks} cores:",
        l["input_docs"]
    )?;
    writeln!(
        w,
        "  luodi     {luodi_secs:>8.1} s  removed {}",
        luodi_removed.len()
    )?;
    writeln!(
        w,
        "  datatrove {dt_secs:>8.1} s  removed {}",
        dt_removed.len()
    )?;
    writeln!(
        w,
        "  luodi {:.1}× faster; removed sets agree {agreement:.3} ({both} in both of {union})",
        dt_secs / luodi_secs.max(1e-9)
    )?;
    Ok(ExitCode::SUCCESS)
}
