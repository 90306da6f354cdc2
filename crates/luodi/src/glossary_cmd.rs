//! `luodi glossary`: a knowledge base's own words — abbreviations, synonym sets, business
//! terms — added by hand, imported, exported, removed, with their history.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Subcommand;
use luodi_engine::rows::Format;
use luodi_engine::{Entry, EntryKind, Home};

#[derive(Subcommand, Debug)]
pub enum GlossaryCmd {
    /// Add an entry: --abbr 杭分 --full 杭州分公司 | --synonyms 购买,价格,多少钱 |
    /// --term 放号量 --definition "…" [--aliases a,b].
    Add {
        kb: String,
        #[arg(long, requires = "full", conflicts_with_all = ["synonyms", "term"])]
        abbr: Option<String>,
        #[arg(long)]
        full: Option<String>,
        /// Comma-separated members (，、 also separate).
        #[arg(long, conflicts_with = "term")]
        synonyms: Option<String>,
        #[arg(long, requires = "definition")]
        term: Option<String>,
        #[arg(long)]
        definition: Option<String>,
        /// Other names of a business term (comma-separated).
        #[arg(long, requires = "term")]
        aliases: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List the entries.
    List {
        kb: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove an entry by its number.
    Remove { kb: String, id: i64 },
    /// Import entries from CSV (header kind,term,forms,definition; forms split on |) or JSON
    /// lines; bad or clashing rows are reported by number and the rest imported.
    Import {
        kb: String,
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Export the entries as CSV (default) or JSON lines, to stdout or --out.
    Export {
        kb: String,
        #[arg(long, default_value = "csv")]
        format: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Propose abbreviation ↔ full form pairs found in the knowledge base's text (stated
    /// "（简称…）", seen together, or predicted by the abbreviation model), with evidence and
    /// a score; --accept 1,3 (numbers as listed) or --accept-all adds them, --reject 2,4
    /// turns them down for good (they are not offered again).
    Suggest {
        kb: String,
        #[arg(long, default_value_t = 30)]
        limit: usize,
        /// Numbers (as listed) to add to the glossary.
        #[arg(long, value_delimiter = ',')]
        accept: Vec<usize>,
        #[arg(long)]
        accept_all: bool,
        /// Numbers (as listed) never to offer again.
        #[arg(long, value_delimiter = ',')]
        reject: Vec<usize>,
        /// Abbreviation pairs to learn from (JSON lines {full, abbr, words, pos}, e.g. the
        /// organisation's own list); without it the built-in first-character rule reads
        /// candidates. (The PKU set under ../shared/data is for measurement only: its licence
        /// is unclear, so nothing learned from it is used by default.)
        #[arg(long)]
        abbrev_train: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Every change, with who made it and when (the version is the change's number).
    History {
        kb: String,
        #[arg(long)]
        json: bool,
    },
}

fn split_list(s: &str) -> Vec<String> {
    s.split([',', '，', '、'])
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Who makes a change from the command line.
fn who() -> String {
    format!(
        "cli:{}",
        std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into())
    )
}

fn line(e: &Entry) -> String {
    match e.kind {
        EntryKind::Term => format!(
            "#{:<4} term          {}{} — {}",
            e.id,
            e.term,
            if e.forms.is_empty() {
                String::new()
            } else {
                format!(" (also {})", e.forms.join(", "))
            },
            e.definition.as_deref().unwrap_or("")
        ),
        EntryKind::Abbreviation => {
            format!(
                "#{:<4} abbreviation  {} → {}",
                e.id,
                e.term,
                e.forms.join(" / ")
            )
        }
        EntryKind::Synonym => format!(
            "#{:<4} synonyms      {}",
            e.id,
            e.members().collect::<Vec<_>>().join(" / ")
        ),
    }
}

pub fn run(home: &Path, cmd: GlossaryCmd) -> Result<ExitCode> {
    let h = Home::open(home)?;
    let mut out = std::io::stdout().lock();
    match cmd {
        GlossaryCmd::Add {
            kb,
            abbr,
            full,
            synonyms,
            term,
            definition,
            aliases,
            json,
        } => {
            let entry = if let (Some(a), Some(f)) = (abbr, full) {
                Entry::abbreviation(&a, &f)
            } else if let Some(s) = synonyms {
                let m = split_list(&s);
                Entry::synonyms(&m.iter().map(String::as_str).collect::<Vec<_>>())
            } else if let (Some(t), Some(d)) = (term, definition) {
                let mut e = Entry::term(&t, &d);
                e.forms = aliases.as_deref().map(split_list).unwrap_or_default();
                e
            } else {
                bail!("give --abbr and --full, --synonyms, or --term and --definition");
            };
            let added = h.glossary_add(&kb, vec![entry], &who())?;
            for e in added {
                if json {
                    writeln!(out, "{}", serde_json::to_string(&e)?)?;
                } else {
                    writeln!(out, "added {}", line(&e))?;
                }
            }
        }
        GlossaryCmd::List { kb, json } => {
            if h.get(&kb)?.is_none() {
                bail!("unknown knowledge base {kb:?}");
            }
            let g = h.glossary(&kb)?;
            if json {
                writeln!(out, "{}", serde_json::to_string(g.entries())?)?;
            } else if g.is_empty() {
                writeln!(
                    out,
                    "{kb} has no glossary entries (luodi glossary add {kb} …)"
                )?;
            } else {
                for e in g.entries() {
                    writeln!(out, "{}", line(e))?;
                }
            }
        }
        GlossaryCmd::Remove { kb, id } => {
            let e = h.glossary_remove(&kb, id, &who())?;
            writeln!(out, "removed {}", line(&e))?;
        }
        GlossaryCmd::Import { kb, file, json } => {
            let rows = luodi_engine::rows::parse_file::<Entry>(&file)?;
            let r = h.glossary_import(&kb, rows, &who())?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&r)?)?;
            } else {
                writeln!(out, "imported {} entries into {kb}", r.added)?;
                if let Some(note) = luodi_engine::rows::unread_note::<Entry>(&r.unread_columns) {
                    writeln!(out, "  {}: {note}", file.display())?;
                }
                for p in &r.problems {
                    writeln!(out, "  {} row {}: {}", file.display(), p.row, p.reason)?;
                }
            }
        }
        GlossaryCmd::Export {
            kb,
            format,
            out: to,
        } => {
            if h.get(&kb)?.is_none() {
                bail!("unknown knowledge base {kb:?}");
            }
            let g = h.glossary(&kb)?;
            let bytes = match format.as_str() {
                "csv" => luodi_engine::glossary::export(g.entries(), Format::Csv)?,
                "jsonl" => luodi_engine::glossary::export(g.entries(), Format::Jsonl)?,
                other => bail!("--format {other:?}: give csv or jsonl"),
            };
            match to {
                Some(p) => {
                    let tmp = p.with_extension("tmp");
                    std::fs::write(&tmp, &bytes)?;
                    std::fs::rename(&tmp, &p)?;
                }
                None => out.write_all(&bytes)?,
            }
        }
        GlossaryCmd::Suggest {
            kb,
            limit,
            accept,
            accept_all,
            reject,
            abbrev_train,
            json,
        } => {
            if let Some(n) = accept.iter().find(|n| reject.contains(n)) {
                bail!("number {n} is both accepted and rejected");
            }
            let model = match abbrev_train {
                Some(train) => {
                    luodi_eval::abbrev::train_model_file(&train).map_err(anyhow::Error::msg)?
                }
                None => luodi_text::abbrev::AbbrevModel::first_characters(),
            };
            let found = h.glossary_suggestions(&kb, &model, limit)?;
            for n in accept.iter().chain(&reject) {
                if *n == 0 || *n > found.len() {
                    bail!("no suggestion number {n}: {} are listed", found.len());
                }
            }
            let picked: Vec<&luodi_engine::suggest::Suggestion> = found
                .iter()
                .enumerate()
                .filter(|(i, _)| accept_all || accept.contains(&(i + 1)))
                .map(|(_, s)| s)
                .collect();
            if json {
                writeln!(out, "{}", serde_json::to_string(&found)?)?;
            } else if found.is_empty() {
                writeln!(out, "no candidates in {kb}")?;
            } else {
                for (i, s) in found.iter().enumerate() {
                    writeln!(
                        out,
                        "{:>3}. {} → {}  [{} ×{}, score {:.2}]{}",
                        i + 1,
                        s.abbr,
                        s.full,
                        s.evidence,
                        s.count,
                        s.score,
                        if s.example.is_empty() {
                            String::new()
                        } else {
                            format!("\n     “{}”", s.example.replace('\n', " "))
                        }
                    )?;
                }
            }
            if !picked.is_empty() {
                let entries = picked.iter().map(|s| s.entry()).collect();
                let added = h.glossary_add(&kb, entries, &who())?;
                if !json {
                    writeln!(out, "added {} entries to {kb}", added.len())?;
                }
            }
            if !reject.is_empty() {
                let pairs: Vec<(String, String)> = reject
                    .iter()
                    .map(|n| (found[n - 1].abbr.clone(), found[n - 1].full.clone()))
                    .collect();
                h.glossary_reject(&kb, &pairs, &who())?;
                if !json {
                    writeln!(
                        out,
                        "turned down {} suggestions (not offered again)",
                        pairs.len()
                    )?;
                }
            }
        }
        GlossaryCmd::History { kb, json } => {
            let changes = h.glossary_history(&kb)?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&changes)?)?;
            } else {
                for c in &changes {
                    writeln!(
                        out,
                        "v{:<4} {} {:<7} {} by {}",
                        c.version,
                        c.at,
                        c.action,
                        c.entry.describe(),
                        c.by
                    )?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand, Debug)]
pub enum FaqCmd {
    /// Add a vetted question–answer pair: --question … --answer …, or --from-feedback ID (the
    /// question of a rated answer with the correction its user gave; `luodi feedback list`).
    Add {
        kb: String,
        #[arg(long, required_unless_present = "from_feedback", requires = "answer")]
        question: Option<String>,
        #[arg(long)]
        answer: Option<String>,
        #[arg(long, conflicts_with_all = ["question", "answer"])]
        from_feedback: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Import pairs from CSV (columns question, answer) or JSON lines (question/title,
    /// answer/text); bad rows are reported by number and the rest imported.
    Import {
        kb: String,
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// List the FAQs.
    List {
        kb: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove an FAQ by its number.
    Remove { kb: String, id: i64 },
    /// How readily questions are answered from the FAQs: `strict` (the default: a question
    /// whose FAQ is missing is rarely given a neighbouring one's answer), `broad` (more
    /// paraphrases answered from their FAQ, more neighbours' answers when the FAQ asked is
    /// missing; for FAQ sets that cover what is asked), `off`, or a threshold from 0 to 1 on
    /// the matcher's probability. Without MODE, shows the mode and its threshold.
    Mode {
        kb: String,
        mode: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// How a question matches the FAQs: the nearest ones with the matcher's probability, the
    /// confidence FAQ-first decides on and its threshold (why a question got, or did not get,
    /// a vetted answer).
    Match {
        kb: String,
        question: String,
        #[arg(long, default_value_t = 3)]
        top: usize,
        #[arg(long)]
        json: bool,
    },
}

pub fn faq(home: &Path, cmd: FaqCmd) -> Result<ExitCode> {
    let h = Home::open(home)?;
    let mut out = std::io::stdout().lock();
    match cmd {
        FaqCmd::Add {
            kb,
            question,
            answer,
            from_feedback,
            json,
        } => {
            let added = match (from_feedback, question, answer) {
                (Some(id), _, _) => vec![h.faq_from_feedback(&kb, &id, &who())?],
                (None, Some(question), Some(answer)) => {
                    let f = luodi_engine::faq::Faq {
                        id: 0,
                        question,
                        answer,
                        source: "hand".into(),
                        created_at: 0,
                        created_by: String::new(),
                    };
                    h.faq_add(&kb, vec![f], &who())?
                }
                _ => bail!("give --question and --answer, or --from-feedback ID"),
            };
            for f in added {
                if json {
                    writeln!(out, "{}", serde_json::to_string(&f)?)?;
                } else {
                    writeln!(out, "added FAQ #{} ({}): {}", f.id, f.source, f.question)?;
                }
            }
        }
        FaqCmd::Import { kb, file, json } => {
            let rows = luodi_engine::rows::parse_file::<luodi_engine::faq::Faq>(&file)?;
            let r = h.faq_import(&kb, rows, &who())?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&r)?)?;
            } else {
                writeln!(out, "imported {} FAQs into {kb}", r.added)?;
                if let Some(note) =
                    luodi_engine::rows::unread_note::<luodi_engine::faq::Faq>(&r.unread_columns)
                {
                    writeln!(out, "  {}: {note}", file.display())?;
                }
                for p in &r.problems {
                    writeln!(out, "  {} row {}: {}", file.display(), p.row, p.reason)?;
                }
            }
        }
        FaqCmd::List { kb, json } => {
            let faqs = h.faqs(&kb)?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&faqs)?)?;
            } else {
                for f in &faqs {
                    let short: String = f.answer.chars().take(60).collect();
                    writeln!(out, "#{:<4} {}\n      → {}", f.id, f.question, short)?;
                }
            }
        }
        FaqCmd::Match {
            kb,
            question,
            top,
            json,
        } => {
            let k = h.open_kb(&kb)?;
            let embedder =
                luodi_engine::E5Embedder::load(luodi_models::llm::llama::default_threads())?;
            let cache = crate::cli::embed_cache(&h)?;
            let Some(mut m) = k.faq_match(&question, Some((&embedder, &cache)))? else {
                bail!("{kb} has no FAQs (luodi faq add|import {kb} …)");
            };
            m.candidates.truncate(top);
            if json {
                writeln!(out, "{}", serde_json::to_string(&m)?)?;
            } else {
                for (f, p) in &m.candidates {
                    writeln!(out, "{p:.3}  #{:<4} {}", f.id, f.question)?;
                }
                match (m.answer(), m.threshold) {
                    (Some(f), Some(t)) => writeln!(
                        out,
                        "answered with FAQ #{} (confidence {:.3} ≥ {t:.3}, mode {})",
                        f.id, m.confidence, m.mode
                    )?,
                    (_, Some(t)) => writeln!(
                        out,
                        "no FAQ answers: confidence {:.3} < {t:.3} (mode {}); the question goes on to a grounded answer",
                        m.confidence, m.mode
                    )?,
                    (_, None) => writeln!(
                        out,
                        "no FAQ answers: FAQ-first is off for {kb} (luodi faq mode {kb} strict turns it on)"
                    )?,
                }
            }
        }
        FaqCmd::Mode { kb, mode, json } => {
            if let Some(m) = mode {
                h.set_faq_mode(&kb, luodi_engine::faq::FaqMode::parse(&m)?, &who())?;
            }
            let s = h.faq_setting(&kb)?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&s)?)?;
            } else {
                match s.threshold {
                    Some(t) => writeln!(
                        out,
                        "{kb}: FAQ mode {}: a question gets an FAQ's answer when the matcher's probability reaches {t:.3}",
                        s.mode
                    )?,
                    None => writeln!(out, "{kb}: FAQ mode off: questions are never answered from an FAQ")?,
                }
            }
        }
        FaqCmd::Remove { kb, id } => {
            h.faq_remove(&kb, id)?;
            writeln!(out, "removed FAQ #{id} from {kb}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
