//! `luodi eval glossary`: what a glossary does for questions written with abbreviations.
//!
//! Built from shared retrieval sets: every query that spells out a full form from the PKU
//! abbreviation table (its dev and test splits — the model that mines candidates learns from
//! train only) is rewritten with the abbreviation instead (香港小姐 → 港姐), the way staff
//! write. Recall@5 is measured four ways: the original full-form queries; the abbreviated ones
//! with no glossary; with a glossary entered by hand (the table's pairs those queries use); and
//! with the candidates `luodi glossary suggest` mines from the knowledge base's own text,
//! accepted wholesale (the miner never sees the table).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use luodi_core::{Error, Result, SearchMode, SearchQuery};
use luodi_engine::{Entry, Fusion, Glossary, Kb, KbConfig};
use serde::Serialize;

use crate::retrieval::{corpus_kb, embedder_for, field, load_queries, read_jsonl};

#[derive(Debug, Clone, Serialize, Default)]
pub struct Run {
    pub recall5: f64,
    pub queries: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct SetReport {
    pub set: String,
    pub queries: usize,
    pub pairs: usize,
    pub mined_entries: usize,
    /// Table pairs the mined glossary holds exactly.
    pub mined_pairs_found: usize,
    pub original: f64,
    pub no_glossary: f64,
    pub hand: f64,
    pub mined: f64,
    /// Table pairs found when the abbreviated questions are the questions asked.
    pub asked_pairs_found: usize,
    /// Mined from the documents and the abbreviated questions as asked.
    pub mined_asked: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct GlossaryReport {
    pub mode: SearchMode,
    pub sets: Vec<SetReport>,
    pub queries: usize,
    pub original: f64,
    pub no_glossary: f64,
    pub hand: f64,
    pub mined: f64,
    /// hand / original and mined / original.
    pub hand_ratio: f64,
    pub mined_ratio: f64,
    /// Mined from the documents and the questions asked (the abbreviated queries).
    pub mined_asked: f64,
    pub mined_asked_ratio: f64,
    pub seconds: f64,
}

fn recall5(
    kb: &Kb,
    queries: &[(String, HashMap<String, f64>)],
    mode: SearchMode,
    embed: Option<(&dyn luodi_core::Embedder, &luodi_engine::EmbedCache)>,
) -> Result<f64> {
    let mut total = 0.0;
    for (text, rel) in queries {
        let ids = kb.rank(
            &SearchQuery {
                text: text.clone(),
                k: 50,
                ..Default::default()
            },
            mode,
            embed,
            Fusion::default(),
        )?;
        let ranked: Vec<String> = crate::retrieval::first_chunks(kb.store.fetch(&ids)?)
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        let found = ranked
            .iter()
            .take(5)
            .filter(|d| rel.contains_key(*d))
            .count();
        total += found as f64 / rel.len().max(1) as f64;
    }
    Ok(total / queries.len().max(1) as f64)
}

pub struct GlossaryEval {
    pub data: PathBuf,
    pub sets: Vec<String>,
    pub mode: SearchMode,
    pub cache_dir: PathBuf,
    pub embed_cache: PathBuf,
    /// Candidates accepted from `suggest`, at most.
    pub mined_limit: usize,
    /// Write how the mined glossary read each abbreviated query here (JSON lines).
    pub per_query: Option<PathBuf>,
    /// Mine with the built-in first-character rule (what `luodi glossary suggest` uses by
    /// default) instead of the model learned from the PKU train split.
    pub rule: bool,
}

pub fn run(ev: &GlossaryEval) -> Result<GlossaryReport> {
    let started = std::time::Instant::now();
    let abbrev_dir = ev.data.join("pku-chinese-abbreviation");
    let model = if ev.rule {
        luodi_text::abbrev::AbbrevModel::first_characters()
    } else {
        crate::abbrev::train_model(&abbrev_dir).map_err(Error::InvalidInput)?
    };
    let mut table: Vec<(String, String)> = Vec::new();
    for split in ["dev", "test"] {
        let rows = crate::abbrev::load(&abbrev_dir.join(format!("{split}.jsonl")))
            .map_err(Error::InvalidInput)?;
        for r in rows {
            if let Some(a) = r.abbr {
                if r.full.chars().count() >= 3 && a != r.full && !r.full.contains(&a) {
                    table.push((r.full, a));
                }
            }
        }
    }
    table.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.cmp(b)));
    table.dedup();
    let mut sets = Vec::new();
    for set in &ev.sets {
        let data = ev.data.join(set);
        let qs = load_queries(&data, None, None)?;
        let mut original = Vec::new();
        let mut abbreviated = Vec::new();
        let mut used: Vec<(String, String)> = Vec::new();
        for q in qs {
            let Some((full, abbr)) = table.iter().find(|(f, _)| q.text.contains(f.as_str())) else {
                continue;
            };
            original.push((q.text.clone(), q.relevant.clone()));
            abbreviated.push((q.text.replace(full.as_str(), abbr), q.relevant));
            if !used.contains(&(full.clone(), abbr.clone())) {
                used.push((full.clone(), abbr.clone()));
            }
        }
        if original.is_empty() {
            continue;
        }
        let (mut kb, _, _, _) = corpus_kb(&data, KbConfig::default(), &ev.cache_dir, false)?;
        let embed = embedder_for(&kb, ev.mode, &ev.embed_cache)?;
        let embed_ref = embed
            .as_ref()
            .map(|(e, c)| (e as &dyn luodi_core::Embedder, c));
        let r_orig = recall5(&kb, &original, ev.mode, embed_ref)?;
        let r_none = recall5(&kb, &abbreviated, ev.mode, embed_ref)?;
        // by hand: the table's pairs these queries use
        kb.glossary = Glossary::new(
            used.iter()
                .map(|(f, a)| Entry::abbreviation(a, f))
                .collect(),
        );
        let r_hand = recall5(&kb, &abbreviated, ev.mode, embed_ref)?;
        // mined from the corpus, accepted wholesale (what would clash is left out)
        let docs = corpus_texts(&data.join("corpus.jsonl"))?;
        let mine = |questions: &[String]| -> Glossary {
            let mut mined = Glossary::default();
            for s in luodi_engine::suggest::suggest(&docs, questions, &model, ev.mined_limit) {
                let e = s.entry();
                if mined.check(&e).is_ok() {
                    mined.push(e);
                }
            }
            mined
        };
        let mined = mine(&[]);
        // the same with the abbreviated questions as the questions people asked (what
        // `glossary suggest` reads from a KB's conversations); the table is not given
        let asked_log: Vec<String> = abbreviated.iter().map(|(q, _)| q.clone()).collect();
        let mined_asked = mine(&asked_log);
        // the table's pairs a glossary holds exactly
        let pairs_found = |g: &Glossary| {
            used.iter()
                .filter(|(f, a)| {
                    g.entries()
                        .iter()
                        .any(|e| &e.term == a && e.forms.first() == Some(f))
                })
                .count()
        };
        let found = pairs_found(&mined);
        let n_mined = mined.entries().len();
        if let Some(path) = &ev.per_query {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| Error::io(path, e))?;
            for (q, _) in &abbreviated {
                let x = mined.expand(q);
                let y = mined_asked.expand(q);
                let line = serde_json::json!({"set": set, "query": q, "rewritten": x.rewritten, "lexical": x.lexical, "asked_rewritten": y.rewritten});
                use std::io::Write;
                writeln!(f, "{line}").map_err(|e| Error::io(path, e))?;
            }
        }
        let found_asked = pairs_found(&mined_asked);
        kb.glossary = mined;
        let r_mined = recall5(&kb, &abbreviated, ev.mode, embed_ref)?;
        kb.glossary = mined_asked;
        let r_asked = recall5(&kb, &abbreviated, ev.mode, embed_ref)?;
        sets.push(SetReport {
            set: set.clone(),
            queries: original.len(),
            pairs: used.len(),
            mined_entries: n_mined,
            mined_pairs_found: found,
            original: r_orig,
            no_glossary: r_none,
            hand: r_hand,
            mined: r_mined,
            asked_pairs_found: found_asked,
            mined_asked: r_asked,
        });
    }
    if sets.is_empty() {
        return Err(Error::InvalidInput(
            "no query of the given sets spells out a full form of the abbreviation table".into(),
        ));
    }
    let n: usize = sets.iter().map(|s| s.queries).sum();
    let avg = |f: &dyn Fn(&SetReport) -> f64| {
        sets.iter().map(|s| f(s) * s.queries as f64).sum::<f64>() / n as f64
    };
    let (original, no_glossary, hand, mined, mined_asked) = (
        avg(&|s| s.original),
        avg(&|s| s.no_glossary),
        avg(&|s| s.hand),
        avg(&|s| s.mined),
        avg(&|s| s.mined_asked),
    );
    Ok(GlossaryReport {
        mode: ev.mode,
        queries: n,
        original,
        no_glossary,
        hand,
        mined,
        hand_ratio: hand / original.max(1e-9),
        mined_ratio: mined / original.max(1e-9),
        mined_asked,
        mined_asked_ratio: mined_asked / original.max(1e-9),
        sets,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn corpus_texts(path: &Path) -> Result<Vec<String>> {
    Ok(read_jsonl(path)?
        .iter()
        .filter_map(|r| field(r, "text"))
        .collect())
}
