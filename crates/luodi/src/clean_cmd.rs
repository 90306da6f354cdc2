//! `luodi clean`: a recipe over files, folders or JSON lines on standard input.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use luodi_clean::input::{InputOptions, Source};
use luodi_clean::recipe::RecipeSource;
use luodi_clean::run::{Progress, RunOptions};
use luodi_clean::CleanError;

#[derive(Args, Debug)]
pub struct CleanArgs {
    /// A recipe file, or one that ships with luodi: kb-ingest, pretrain-zh, sft-prep.
    #[arg(long, required_unless_present_any = ["list_steps", "list_recipes"])]
    pub recipe: Option<String>,
    /// Files, folders, or `-` for JSON lines on standard input.
    pub inputs: Vec<String>,
    /// Output folder: clean.jsonl, rejects.jsonl, report.md, report.html, checkpoint.json.
    #[arg(long, required_unless_present_any = ["list_steps", "list_recipes"])]
    pub out: Option<PathBuf>,
    /// Folder of the duplicate stores (default OUT/state): runs that share it dedup against
    /// each other.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// JSON field with the text (default: text, content, body).
    #[arg(long)]
    pub text_field: Option<String>,
    /// JSON field with the id (default: id, _id).
    #[arg(long)]
    pub id_field: Option<String>,
    /// JSON field with the title (default: title).
    #[arg(long)]
    pub title_field: Option<String>,
    /// Documents per batch (each batch is written whole, then checkpointed).
    #[arg(long, default_value_t = 2000)]
    pub batch: usize,
    /// Replace what OUT holds instead of resuming it.
    #[arg(long)]
    pub restart: bool,
    /// Also write the corpus as OUT/clean.parquet.
    #[arg(long)]
    pub parquet: bool,
    /// Print every step and its parameters.
    #[arg(long)]
    pub list_steps: bool,
    /// Print the recipes that ship with luodi.
    #[arg(long)]
    pub list_recipes: bool,
    /// The statistics as one JSON object.
    #[arg(long)]
    pub json: bool,
}

struct Spinner {
    bar: ProgressBar,
    started: Instant,
}

impl Progress for Spinner {
    fn batch(&self, docs: u64, bytes: u64, kept: u64) {
        let s = self.started.elapsed().as_secs_f64().max(1e-9);
        self.bar.set_message(format!(
            "{docs} docs ({:.1} MB) read, {kept} kept — {:.0} docs/s, {:.2} MB/s",
            bytes as f64 / 1e6,
            docs as f64 / s,
            bytes as f64 / 1e6 / s
        ));
        self.bar.tick();
    }
}

fn user_error(e: CleanError) -> anyhow::Error {
    match e {
        CleanError::Recipe(m) | CleanError::Invalid(m) => luodi_core::Error::InvalidInput(m).into(),
        other => other.into(),
    }
}

pub fn clean(a: CleanArgs, quiet: bool) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    if a.list_steps {
        write!(out, "{}", luodi_clean::steps::describe())?;
        return Ok(ExitCode::SUCCESS);
    }
    if a.list_recipes {
        for (name, text) in luodi_clean::recipe::BUILTIN {
            writeln!(out, "== {name}\n{text}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(recipe), Some(dir)) = (a.recipe, a.out) else {
        unreachable!("clap requires --recipe and --out");
    };
    if a.inputs.is_empty() {
        return Err(luodi_core::Error::InvalidInput(
            "give files, folders or - (JSON lines on standard input)".into(),
        )
        .into());
    }
    let src = RecipeSource::load(&recipe).map_err(user_error)?;
    let sources: Vec<Source> = a
        .inputs
        .iter()
        .map(|i| {
            if i == "-" {
                Source::Stdin
            } else {
                Source::Path(PathBuf::from(i))
            }
        })
        .collect();
    let input = InputOptions {
        text_field: a.text_field,
        id_field: a.id_field,
        title_field: a.title_field,
        ..InputOptions::default()
    };
    let opts = RunOptions {
        state: a.state,
        batch_docs: a.batch.max(1),
        restart: a.restart,
        parquet: a.parquet,
        ..RunOptions::new(&dir)
    };
    let bar = ProgressBar::new_spinner();
    if quiet || a.json {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
        bar.set_style(style);
    }
    let spinner = Spinner {
        bar,
        started: Instant::now(),
    };
    let outcome =
        luodi_clean::run::run(&src, &sources, &input, &opts, &spinner).map_err(user_error)?;
    spinner.bar.finish_and_clear();
    let s = &outcome.stats;
    if a.json {
        let mut v = serde_json::to_value(s)?;
        v["resumed"] = outcome.resumed.into();
        v["already_done"] = outcome.already_done.into();
        v["mb_per_s"] = s.mb_per_s().into();
        v["peak_rss_mb"] = crate::bench::rss_mb().1.into();
        v["parquet_rows"] = outcome.parquet_rows.into();
        writeln!(out, "{v}")?;
        return Ok(ExitCode::SUCCESS);
    }
    if outcome.already_done {
        writeln!(
            out,
            "{} already holds this run's output (give --restart to run it again)",
            dir.display()
        )?;
    }
    let dropped: u64 = s
        .steps
        .iter()
        .map(|st| st.docs_in - st.docs_out)
        .sum::<u64>();
    let unreadable: u64 = s.input_rejects.values().map(|d| d.count).sum();
    writeln!(
        out,
        "{}: {} documents ({:.1} MB) → {} kept ({:.1} MB), {dropped} dropped, {unreadable} unreadable; {:.1} s, {:.2} MB/s{}",
        s.recipe,
        s.input_docs,
        s.input_bytes as f64 / 1e6,
        s.output_docs,
        s.output_bytes as f64 / 1e6,
        s.seconds,
        s.mb_per_s(),
        if outcome.resumed { " (resumed)" } else { "" }
    )?;
    for st in &s.steps {
        let reasons: Vec<String> = st
            .drops
            .iter()
            .map(|(r, d)| format!("{r} {}", d.count))
            .collect();
        writeln!(
            out,
            "  {:<12} {:>8} → {:>8}{}{}",
            st.name,
            st.docs_in,
            st.docs_out,
            if st.changed > 0 {
                format!("  ({} changed)", st.changed)
            } else {
                String::new()
            },
            if reasons.is_empty() {
                String::new()
            } else {
                format!("  dropped: {}", reasons.join(", "))
            }
        )?;
    }
    writeln!(
        out,
        "  output {}, rejects {}, report {}",
        dir.join("clean.jsonl").display(),
        dir.join("rejects.jsonl").display(),
        dir.join("report.html").display()
    )?;
    Ok(ExitCode::SUCCESS)
}
