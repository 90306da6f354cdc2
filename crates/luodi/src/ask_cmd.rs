//! `luodi ask`: a grounded answer from a knowledge base, streamed, with its citations.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use luodi_core::SearchMode;
use luodi_engine::{AnswerFormat, AskOptions, Home};

#[derive(Args, Debug)]
pub struct AskArgs {
    pub name: String,
    pub question: String,
    /// `default`, `large`, a .gguf path, or an OpenAI-compatible endpoint http(s)://…/v1.
    #[arg(long, default_value = "default", env = "LUODI_LLM")]
    pub model: String,
    /// Model name at a remote endpoint.
    #[arg(long)]
    pub remote_model: Option<String>,
    /// bm25, dense or hybrid retrieval.
    #[arg(long, default_value = "hybrid")]
    pub mode: SearchMode,
    /// plain, summary, table or list.
    #[arg(long, default_value = "plain")]
    pub format: AnswerFormat,
    /// Characters of evidence shown to the model.
    #[arg(long)]
    pub evidence_chars: Option<usize>,
    #[arg(long)]
    pub max_tokens: Option<usize>,
    #[arg(long, env = "LUODI_THREADS")]
    pub threads: Option<usize>,
    /// Only documents with this metadata (KEY=VALUE, repeatable): the answer to a
    /// clarifying question.
    #[arg(long, value_parser = crate::cli::parse_kv)]
    pub filter: Vec<(String, String)>,
    /// The whole answer as one JSON object (no streaming).
    #[arg(long)]
    pub json: bool,
}

pub fn ask(home: &std::path::Path, a: AskArgs) -> Result<ExitCode> {
    let h = Home::open(home)?;
    let kb = h.open_kb(&a.name)?;
    let threads = a
        .threads
        .unwrap_or_else(luodi_models::llm::llama::default_threads);
    let d = AskOptions::default();
    let opts = AskOptions {
        mode: a.mode,
        format: a.format,
        evidence_chars: a.evidence_chars.unwrap_or(d.evidence_chars),
        max_tokens: a.max_tokens.unwrap_or(d.max_tokens),
        filters: a.filter,
        ..d
    };
    let embedder = crate::cli::load_embedder(a.mode, threads)?;
    let cache = crate::cli::embed_cache(&h)?;
    crate::cli::embed_missing(&kb, embedder.as_ref(), &cache)?;
    let generator =
        luodi_models::llm::open_generator(&a.model, a.remote_model.as_deref(), threads, 4096)?;
    let mut out = std::io::stdout().lock();
    let stream = !a.json;
    let mut write_err = None;
    let mut streamed = String::new();
    let answer = kb.ask(
        &a.question,
        generator.as_ref(),
        embedder
            .as_ref()
            .map(|e| (e as &dyn luodi_core::Embedder, &cache)),
        &opts,
        &mut |piece| {
            if stream {
                streamed.push_str(piece);
                if let Err(e) = write!(out, "{piece}").and_then(|_| out.flush()) {
                    write_err = Some(e);
                }
            }
        },
    )?;
    if let Some(e) = write_err {
        return Err(e.into());
    }
    if a.json {
        writeln!(out, "{}", serde_json::to_string(&answer)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out)?;
    if answer.text.trim() != streamed.trim() {
        // the model's text was corrected after generation (evidence pasted back, citation
        // attributed): the answer luodi stands by
        writeln!(out, "→ {}", answer.text)?;
    }
    if answer.unsupported {
        writeln!(
            out,
            "\n⚠ this answer cites none of the passages below: check it against them"
        )?;
    }
    if let Some(f) = &answer.faq {
        writeln!(
            out,
            "\n(vetted answer: FAQ #{} “{}”, match {:.2})",
            f.id, f.question, f.score
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    if !answer.choices.is_empty() {
        let key = &answer.choices[0].key;
        writeln!(
            out,
            "(ask again with --filter {key}=… to choose, e.g. --filter {key}={})",
            answer.choices[0].value
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let shown = if answer.refused || answer.citations.is_empty() {
        &answer.evidence
    } else {
        &answer.citations
    };
    if !shown.is_empty() {
        writeln!(
            out,
            "\n{}",
            if answer.refused {
                "closest passages:"
            } else {
                "sources:"
            }
        )?;
    }
    for e in shown {
        let loc = e.location.to_string();
        writeln!(
            out,
            "[{}] {} — {}{}",
            e.n,
            crate::cli::place(&e.title, &e.heading_path),
            crate::cli::display_path(&e.doc_key),
            if loc.is_empty() {
                String::new()
            } else {
                format!(" ({loc})")
            }
        )?;
        writeln!(out, "    {}", e.text)?;
    }
    eprintln!(
        "({} · confidence {:.2} · first token {:.1} s · {:.1} s · {} prompt tokens, {} cached)",
        answer.model,
        answer.confidence,
        answer.ttft_ms / 1000.0,
        answer.total_ms / 1000.0,
        answer.prompt_tokens,
        answer.cached_tokens
    );
    Ok(ExitCode::SUCCESS)
}
