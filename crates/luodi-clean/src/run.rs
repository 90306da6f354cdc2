//! Running a recipe: batches streamed from the inputs, each one processed (document steps in
//! parallel, corpus steps in order) and written whole before the next is read.
//!
//! Durability: a batch's kept documents are appended to `clean.jsonl` and its rejects to
//! `rejects.jsonl` and both are synced; then the duplicate stores are synced; then
//! `checkpoint.json` (input position, output lengths, store lengths, statistics) is written
//! to a temporary file and renamed over the old one. A run killed at any point resumes from
//! the last checkpoint: the outputs and stores are cut back to the lengths it recorded and the
//! inputs are read again past the position it recorded — no record is written twice or half.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::input::{InputOptions, Inputs, Item, Reject, Source};
use crate::recipe::{Recipe, RecipeSource};
use crate::report::{self, Example, Stats, StepStats};
use crate::{CleanError, Doc, Result, Step, Verdict};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub out: PathBuf,
    /// The duplicate stores (default `OUT/state`); runs sharing it dedup against each other.
    pub state: Option<PathBuf>,
    /// Documents per batch.
    pub batch_docs: usize,
    /// Bytes of text per batch (whichever limit comes first).
    pub batch_bytes: usize,
    /// Start over: outputs removed, the duplicate stores cut back to where this run began.
    pub restart: bool,
    /// Stop after this many batches (tests of resume).
    pub stop_after_batches: Option<u64>,
    /// Also write `clean.parquet` when the run is done.
    pub parquet: bool,
}

impl RunOptions {
    pub fn new(out: impl Into<PathBuf>) -> RunOptions {
        RunOptions {
            out: out.into(),
            state: None,
            batch_docs: 2000,
            batch_bytes: 8 << 20,
            restart: false,
            stop_after_batches: None,
            parquet: false,
        }
    }
}

/// Told after every batch: documents and bytes read so far, documents kept.
pub trait Progress {
    fn batch(&self, _docs: u64, _bytes: u64, _kept: u64) {}
}

pub struct NoProgress;
impl Progress for NoProgress {}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Checkpoint {
    version: u32,
    recipe: String,
    inputs: Vec<String>,
    /// Input items consumed.
    items: u64,
    clean_bytes: u64,
    rejects_bytes: u64,
    /// Per corpus step, in recipe order: its store marks now, and when this run began.
    state: Vec<Vec<u64>>,
    state_start: Vec<Vec<u64>>,
    stats: Stats,
    done: bool,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub stats: Stats,
    /// It had finished before: nothing was done.
    pub already_done: bool,
    /// It picked up an interrupted run.
    pub resumed: bool,
    /// Stopped early by `stop_after_batches`.
    pub stopped: bool,
    /// Rows of `clean.parquet`, when written.
    pub parquet_rows: Option<u64>,
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(|e| CleanError::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| CleanError::io(&tmp, e))?;
    f.sync_data().map_err(|e| CleanError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| CleanError::io(path, e))?;
    Ok(())
}

fn open_append(path: &Path, len: u64) -> Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| CleanError::io(path, e))?;
    let now = f.metadata().map_err(|e| CleanError::io(path, e))?.len();
    if now < len {
        return Err(CleanError::Invalid(format!(
            "{}: {now} bytes, the checkpoint expects at least {len}: the output was changed; run again with --restart",
            path.display()
        )));
    }
    f.set_len(len).map_err(|e| CleanError::io(path, e))?;
    let mut f = OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| CleanError::io(path, e))?;
    f.flush().map_err(|e| CleanError::io(path, e))?;
    Ok(f)
}

fn corpus_steps(r: &mut Recipe) -> Vec<&mut Box<dyn crate::CorpusStep>> {
    r.steps
        .iter_mut()
        .filter_map(|s| match s {
            Step::Corpus(c) => Some(c),
            Step::Doc(_) => None,
        })
        .collect()
}

fn preview(text: &str) -> String {
    text.chars().take(120).collect()
}

fn reject_line(r: &Reject) -> String {
    serde_json::to_string(r).unwrap_or_default()
}

/// Runs `recipe` over `sources` into `opts.out`.
pub fn run(
    src: &RecipeSource,
    sources: &[Source],
    input: &InputOptions,
    opts: &RunOptions,
    progress: &dyn Progress,
) -> Result<Outcome> {
    let out = &opts.out;
    std::fs::create_dir_all(out).map_err(|e| CleanError::io(out, e))?;
    let state_dir = opts.state.clone().unwrap_or_else(|| out.join("state"));
    std::fs::create_dir_all(&state_dir).map_err(|e| CleanError::io(&state_dir, e))?;
    let clean_path = out.join("clean.jsonl");
    let rejects_path = out.join("rejects.jsonl");
    let cp_path = out.join("checkpoint.json");
    let mut recipe = Recipe::build(src, &state_dir)?;
    let inputs: Vec<String> = sources.iter().map(Source::describe).collect();

    let previous: Option<Checkpoint> = match std::fs::read_to_string(&cp_path) {
        Ok(s) => Some(serde_json::from_str(&s).map_err(|e| {
            CleanError::Invalid(format!(
                "{}: {e}; run again with --restart",
                cp_path.display()
            ))
        })?),
        Err(_) => None,
    };
    let mut resumed = false;
    let mut cp = match previous {
        Some(prev) if opts.restart => {
            // the stores go back to where the interrupted or finished run began
            for (c, marks) in corpus_steps(&mut recipe).into_iter().zip(&prev.state_start) {
                c.restore(marks)
                    .map_err(|e| CleanError::io(&state_dir, e))?;
            }
            None
        }
        Some(prev) => {
            if prev.recipe != src.digest() || prev.inputs != inputs {
                return Err(CleanError::Invalid(format!(
                    "{} holds a run of another recipe or other inputs ({}); give another --out, or --restart to replace it",
                    out.display(),
                    prev.inputs.join(", ")
                )));
            }
            if prev.done {
                return Ok(Outcome {
                    stats: prev.stats,
                    already_done: true,
                    resumed: false,
                    stopped: false,
                    parquet_rows: None,
                });
            }
            for (c, marks) in corpus_steps(&mut recipe).into_iter().zip(&prev.state) {
                c.restore(marks)
                    .map_err(|e| CleanError::io(&state_dir, e))?;
            }
            resumed = true;
            Some(prev)
        }
        None => {
            let has_output = std::fs::metadata(&clean_path).is_ok_and(|m| m.len() > 0);
            if has_output && !opts.restart {
                return Err(CleanError::Invalid(format!(
                    "{} already holds output without a checkpoint; give another --out, or --restart to replace it",
                    out.display()
                )));
            }
            None
        }
    };
    let fresh = cp.is_none();
    let mut cp = match cp.take() {
        Some(c) => c,
        None => {
            let mut marks = Vec::new();
            for c in corpus_steps(&mut recipe) {
                marks.push(c.commit().map_err(|e| CleanError::io(&state_dir, e))?);
            }
            Checkpoint {
                version: 1,
                recipe: src.digest(),
                inputs: inputs.clone(),
                items: 0,
                clean_bytes: 0,
                rejects_bytes: 0,
                state: marks.clone(),
                state_start: marks,
                stats: Stats {
                    recipe: recipe.name.clone(),
                    inputs: inputs.clone(),
                    steps: recipe
                        .steps
                        .iter()
                        .map(|s| StepStats {
                            name: s.name().to_owned(),
                            ..StepStats::default()
                        })
                        .collect(),
                    ..Stats::default()
                },
                done: false,
            }
        }
    };
    if fresh {
        for p in [&clean_path, &rejects_path] {
            File::create(p).map_err(|e| CleanError::io(p, e))?;
        }
    }
    let mut clean = open_append(&clean_path, cp.clean_bytes)?;
    let mut rejects = open_append(&rejects_path, cp.rejects_bytes)?;

    let started = Instant::now();
    let base_seconds = cp.stats.seconds;
    let mut items = Inputs::new(sources, input.clone());
    // past what the checkpoint covers
    for _ in 0..cp.items {
        if items.next().is_none() {
            break;
        }
    }
    let mut batches = 0u64;
    let mut stopped = false;
    let mut parquet_rows = None;
    loop {
        // one batch
        let mut docs: Vec<Doc> = Vec::new();
        let mut input_rejects: Vec<Reject> = Vec::new();
        let mut bytes = 0usize;
        let mut consumed = 0u64;
        while docs.len() < opts.batch_docs && bytes < opts.batch_bytes {
            match items.next() {
                None => break,
                Some(Item::Doc(d)) => {
                    bytes += d.text.len();
                    docs.push(d);
                }
                Some(Item::Reject(r)) => input_rejects.push(r),
            }
            consumed += 1;
        }
        if consumed == 0 {
            break;
        }
        let stats = &mut cp.stats;
        let mut reject_lines = String::new();
        for r in &input_rejects {
            stats
                .input_rejects
                .entry(r.reason.clone())
                .or_default()
                .add(Example {
                    id: r.id.clone(),
                    source: r.source.clone(),
                    detail: r.detail.clone(),
                    preview: r.preview.clone(),
                });
            reject_lines.push_str(&reject_line(r));
            reject_lines.push('\n');
        }
        stats.input_docs += docs.len() as u64;
        stats.input_bytes += bytes as u64;
        for d in &docs {
            stats.length_before.add(d.text.chars().count());
        }
        let mut verdicts = vec![Verdict::Keep; docs.len()];
        for (si, step) in recipe.steps.iter_mut().enumerate() {
            let t0 = Instant::now();
            let alive = |v: &Verdict| *v == Verdict::Keep;
            let docs_in = verdicts.iter().filter(|v| alive(v)).count() as u64;
            let bytes_in: u64 = docs
                .iter()
                .zip(&verdicts)
                .filter(|(_, v)| alive(v))
                .map(|(d, _)| d.text.len() as u64)
                .sum();
            let before: Vec<bool> = verdicts.iter().map(alive).collect();
            let prov_before: Vec<usize> = docs.iter().map(|d| d.provenance.len()).collect();
            match step {
                Step::Doc(s) => {
                    let s = &**s;
                    docs.par_iter_mut()
                        .zip(verdicts.par_iter_mut())
                        .for_each(|(d, v)| {
                            if *v == Verdict::Keep {
                                *v = s.apply(d);
                            }
                        });
                }
                Step::Corpus(c) => c.apply_batch(&mut docs, &mut verdicts),
            }
            let st = &mut stats.steps[si];
            st.docs_in += docs_in;
            st.bytes_in += bytes_in;
            for (i, d) in docs.iter().enumerate() {
                if !before[i] {
                    continue;
                }
                match &verdicts[i] {
                    Verdict::Keep => {
                        st.docs_out += 1;
                        st.bytes_out += d.text.len() as u64;
                        if d.provenance.len() > prov_before[i] {
                            st.changed += 1;
                        }
                    }
                    Verdict::Drop { reason, detail } => {
                        st.drops.entry(reason.clone()).or_default().add(Example {
                            id: d.id.clone(),
                            source: d.source.clone(),
                            detail: detail.clone(),
                            preview: preview(&d.text),
                        });
                        reject_lines.push_str(&reject_line(&Reject {
                            id: d.id.clone(),
                            source: d.source.clone(),
                            step: st.name.clone(),
                            reason: reason.clone(),
                            detail: detail.clone(),
                            chars: d.text.chars().count(),
                            preview: preview(&d.text),
                        }));
                        reject_lines.push('\n');
                    }
                }
            }
            st.seconds += t0.elapsed().as_secs_f64();
        }
        let mut clean_lines = String::new();
        for (d, v) in docs.iter().zip(&verdicts) {
            if *v == Verdict::Keep {
                stats.output_docs += 1;
                stats.output_bytes += d.text.len() as u64;
                stats.length_after.add(d.text.chars().count());
                clean_lines.push_str(&serde_json::to_string(d).unwrap_or_default());
                clean_lines.push('\n');
            }
        }
        // outputs, then stores, then the checkpoint; a write that fails (a full disk) takes
        // the outputs back to the checkpoint, so they never end in half a record
        let undo = |clean: &File, rejects: &File| {
            let _ = clean.set_len(cp.clean_bytes);
            let _ = rejects.set_len(cp.rejects_bytes);
        };
        if let Err(e) = clean
            .write_all(clean_lines.as_bytes())
            .and_then(|_| clean.sync_data())
        {
            undo(&clean, &rejects);
            return Err(CleanError::io(&clean_path, e));
        }
        if let Err(e) = rejects
            .write_all(reject_lines.as_bytes())
            .and_then(|_| rejects.sync_data())
        {
            undo(&clean, &rejects);
            return Err(CleanError::io(&rejects_path, e));
        }
        let mut marks = Vec::new();
        for c in corpus_steps(&mut recipe) {
            match c.commit() {
                Ok(m) => marks.push(m),
                Err(e) => {
                    undo(&clean, &rejects);
                    return Err(CleanError::io(&state_dir, e));
                }
            }
        }
        cp.state = marks;
        cp.items += consumed;
        cp.clean_bytes += clean_lines.len() as u64;
        cp.rejects_bytes += reject_lines.len() as u64;
        cp.stats.seconds = base_seconds + started.elapsed().as_secs_f64();
        // test hook: `LUODI_CRASH_AT=clean-batch-N` dies as `kill -9` would, after batch N's
        // outputs and stores are written and before its checkpoint
        if std::env::var("LUODI_CRASH_AT")
            .is_ok_and(|v| v == format!("clean-batch-{}", batches + 1))
        {
            std::process::abort();
        }
        write_atomic(
            &cp_path,
            serde_json::to_string(&cp).unwrap_or_default().as_bytes(),
        )?;
        progress.batch(
            cp.stats.input_docs,
            cp.stats.input_bytes,
            cp.stats.output_docs,
        );
        batches += 1;
        if opts.stop_after_batches.is_some_and(|n| batches >= n) {
            stopped = true;
            break;
        }
    }
    if !stopped {
        let mut clusters = std::collections::BTreeMap::new();
        for c in corpus_steps(&mut recipe) {
            for size in c.clusters() {
                *clusters.entry(size).or_insert(0u64) += 1;
            }
        }
        // clusters are counted within one process; a resumed run adds to what it had
        for (k, v) in clusters {
            *cp.stats.clusters.entry(k).or_insert(0) += v;
        }
        cp.done = true;
        cp.stats.seconds = base_seconds + started.elapsed().as_secs_f64();
        if opts.parquet {
            parquet_rows = Some(crate::parquet_out::write_parquet(
                &clean_path,
                &out.join("clean.parquet"),
                10_000,
            )?);
        }
        write_atomic(
            &out.join("report.md"),
            report::markdown(&cp.stats).as_bytes(),
        )?;
        write_atomic(&out.join("report.html"), report::html(&cp.stats).as_bytes())?;
        write_atomic(
            &cp_path,
            serde_json::to_string(&cp).unwrap_or_default().as_bytes(),
        )?;
    }
    Ok(Outcome {
        stats: cp.stats,
        already_done: false,
        resumed,
        stopped,
        parquet_rows,
    })
}
