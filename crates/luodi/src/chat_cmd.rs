//! `luodi chat` (a conversation REPL with streaming answers) and `luodi conversations`
//! (list, show, delete stored conversations).

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use luodi_core::{Embedder, SearchMode};
use luodi_engine::{Answer, AnswerFormat, AskOptions, Conversation, Home};

#[derive(Args, Debug)]
pub struct ChatArgs {
    pub name: String,
    /// Continue a stored conversation (its id, or a unique prefix of it).
    #[arg(long)]
    pub conversation: Option<String>,
    /// `default`, `large`, a .gguf path, or an OpenAI-compatible endpoint http(s)://…/v1.
    #[arg(long, default_value = "default", env = "LUODI_LLM")]
    pub model: String,
    #[arg(long)]
    pub remote_model: Option<String>,
    /// bm25, dense or hybrid retrieval.
    #[arg(long, default_value = "hybrid")]
    pub mode: SearchMode,
    /// plain, summary, table or list (`/format` changes it during the chat).
    #[arg(long, default_value = "plain")]
    pub format: AnswerFormat,
    #[arg(long, env = "LUODI_THREADS")]
    pub threads: Option<usize>,
}

#[derive(Subcommand, Debug)]
pub enum ConversationsCmd {
    /// Stored conversations, most recent first.
    List {
        /// Only those with this knowledge base.
        #[arg(long)]
        kb: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// One conversation with every turn, its citations, timings, model and KB version.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a conversation.
    Delete { id: String },
}

const HELP: &str = "commands: /new (new conversation), /history, /list (recent conversations), /open ID, /format plain|summary|table|list, /exit";

fn print_sources(out: &mut impl Write, answer: &Answer) -> std::io::Result<()> {
    if !answer.choices.is_empty() {
        return Ok(());
    }
    let shown = if answer.refused || answer.citations.is_empty() {
        &answer.evidence
    } else {
        &answer.citations
    };
    if shown.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "{}",
        if answer.refused {
            "closest passages:"
        } else {
            "sources:"
        }
    )?;
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
    Ok(())
}

fn print_history(out: &mut impl Write, c: &Conversation) -> std::io::Result<()> {
    writeln!(
        out,
        "conversation {} with {} · {} turns",
        c.info.id, c.info.kb, c.info.turns
    )?;
    for t in &c.turns {
        writeln!(out, "\n#{} 问 {}", t.seq, t.question)?;
        if t.standalone != t.question {
            writeln!(out, "   (retrieved as: {})", t.standalone)?;
        }
        writeln!(out, "   答 {}", t.answer.replace('\n', "\n      "))?;
        for e in &t.citations {
            writeln!(
                out,
                "      [{}] {} — {}",
                e.n,
                crate::cli::place(&e.title, &e.heading_path),
                crate::cli::display_path(&e.doc_key)
            )?;
        }
    }
    Ok(())
}

pub fn chat(home: &std::path::Path, a: ChatArgs) -> Result<ExitCode> {
    let h = Home::open(home)?;
    let kb = h.open_kb(&a.name)?;
    let threads = a
        .threads
        .unwrap_or_else(luodi_models::llm::llama::default_threads);
    let mut opts = AskOptions {
        mode: a.mode,
        format: a.format,
        ..AskOptions::default()
    };
    let embedder = crate::cli::load_embedder(a.mode, threads)?;
    let cache = crate::cli::embed_cache(&h)?;
    crate::cli::embed_missing(&kb, embedder.as_ref(), &cache)?;
    let generator =
        luodi_models::llm::open_generator(&a.model, a.remote_model.as_deref(), threads, 4096)?;
    let embed = embedder.as_ref().map(|e| (e as &dyn Embedder, &cache));
    let mut current: Option<String> = match &a.conversation {
        Some(id) => {
            let c = h.conversation(id)?.ok_or_else(|| {
                luodi_core::Error::InvalidInput(format!(
                    "no conversation {id:?}: see `luodi conversations list`"
                ))
            })?;
            if c.info.kb != a.name {
                anyhow::bail!(luodi_core::Error::InvalidInput(format!(
                    "conversation {} is with knowledge base {:?}",
                    c.info.id, c.info.kb
                )));
            }
            Some(c.info.id)
        }
        None => None,
    };
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    writeln!(out, "luodi chat · {} · {HELP}", a.name)?;
    if let Some(id) = &current {
        writeln!(out, "continuing conversation {id}")?;
    }
    loop {
        write!(out, "\n问> ")?;
        out.flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            writeln!(out)?;
            break;
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(cmd) = line.strip_prefix('/') {
            let mut parts = cmd.split_whitespace();
            match (parts.next(), parts.next()) {
                (Some("exit" | "quit" | "q"), _) => break,
                (Some("new"), _) => {
                    current = None;
                    writeln!(out, "new conversation")?;
                }
                (Some("history"), _) => match &current {
                    Some(id) => {
                        if let Some(c) = h.conversation(id)? {
                            print_history(&mut out, &c)?;
                        }
                    }
                    None => writeln!(out, "no questions yet in this conversation")?,
                },
                (Some("list"), _) => {
                    for c in h.conversations(Some(&a.name), 20, 0)? {
                        writeln!(out, "{}  {} turns  {}", c.id, c.turns, c.title)?;
                    }
                }
                (Some("open"), Some(id)) => match h.conversation(id)? {
                    Some(c) if c.info.kb == a.name => {
                        print_history(&mut out, &c)?;
                        current = Some(c.info.id);
                    }
                    Some(c) => writeln!(
                        out,
                        "conversation {} is with knowledge base {}",
                        c.info.id, c.info.kb
                    )?,
                    None => writeln!(out, "no conversation {id}")?,
                },
                (Some("format"), Some(f)) => match f.parse::<AnswerFormat>() {
                    Ok(f) => {
                        opts.format = f;
                        writeln!(out, "answers as {f:?}")?;
                    }
                    Err(e) => writeln!(out, "{e}")?,
                },
                _ => writeln!(out, "{HELP}")?,
            }
            continue;
        }
        let id = match &current {
            Some(id) => id.clone(),
            None => {
                let c = h.conversation_create(&a.name, line)?;
                writeln!(out, "(conversation {})", c.id)?;
                current = Some(c.id.clone());
                c.id
            }
        };
        write!(out, "答> ")?;
        out.flush()?;
        let mut write_err = None;
        let result = h.ask_in_conversation(
            &kb,
            &id,
            line,
            generator.as_ref(),
            embed,
            &opts,
            &mut |piece| {
                if let Err(e) = write!(out, "{piece}").and_then(|_| out.flush()) {
                    write_err = Some(e);
                }
            },
        );
        if let Some(e) = write_err {
            return Err(e.into());
        }
        match result {
            Ok((answer, _)) => {
                writeln!(out)?;
                if answer.unsupported {
                    writeln!(
                        out,
                        "⚠ this answer cites none of the passages below: check it against them"
                    )?;
                }
                print_sources(&mut out, &answer)?;
                eprintln!(
                    "({} · confidence {:.2} · first token {:.1} s · {:.1} s)",
                    answer.model,
                    answer.confidence,
                    answer.ttft_ms / 1000.0,
                    answer.total_ms / 1000.0
                );
            }
            // a bad question is said and the chat goes on
            Err(e @ luodi_core::Error::InvalidInput(_)) => writeln!(out, "\n{e}")?,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn conversations(home: &std::path::Path, cmd: ConversationsCmd) -> Result<ExitCode> {
    let h = Home::open(home)?;
    let mut out = std::io::stdout().lock();
    match cmd {
        ConversationsCmd::List { kb, limit, json } => {
            let list = h.conversations(kb.as_deref(), limit, 0)?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&list)?)?;
            } else if list.is_empty() {
                writeln!(out, "no conversations yet: start one with `luodi chat KB`")?;
            } else {
                for c in list {
                    writeln!(
                        out,
                        "{}  {}  {} turns  {}",
                        c.id,
                        c.kb,
                        c.turns,
                        c.title.chars().take(60).collect::<String>()
                    )?;
                }
            }
        }
        ConversationsCmd::Show { id, json } => {
            let Some(c) = h.conversation(&id)? else {
                anyhow::bail!(luodi_core::Error::InvalidInput(format!(
                    "no conversation {id:?}: see `luodi conversations list`"
                )));
            };
            if json {
                writeln!(out, "{}", serde_json::to_string(&c)?)?;
            } else {
                print_history(&mut out, &c)?;
                if let Some(t) = c.turns.last() {
                    writeln!(
                        out,
                        "\nlast answer: model {} ({}), knowledge base version {}",
                        t.model, t.model_fingerprint, t.kb_version
                    )?;
                }
            }
        }
        ConversationsCmd::Delete { id } => {
            let full = h.conversation(&id)?.map(|c| c.info.id);
            match full {
                Some(full) if h.conversation_delete(&full)? => {
                    writeln!(out, "deleted conversation {full}")?
                }
                _ => anyhow::bail!(luodi_core::Error::InvalidInput(format!(
                    "no conversation {id:?}"
                ))),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
