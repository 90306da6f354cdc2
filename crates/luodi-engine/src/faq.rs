//! FAQ first: vetted question–answer pairs a knowledge base holds. A question that matches one
//! of them well enough gets the vetted answer, marked as such, without generation; otherwise
//! answering goes on as usual.
//!
//! Matching reads the question with the glossary (abbreviations written out), takes the FAQs
//! whose questions are nearest in embedding space, and scores each with [`Matcher`] over the
//! cosine and the lexical evidence; the best one answers when its probability reaches the
//! threshold. The default matcher and threshold were fitted on the tuning half of the Taipei
//! FAQ paraphrase set (`luodi eval faq` prints them).

use std::sync::OnceLock;

use luodi_core::{dot, Error, Result};
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::conversation::now_secs;
use crate::home::Home;
use crate::matching::{features_with, Matcher};

/// The registry migration that adds FAQs.
pub(crate) const MIGRATION: &str = "
    CREATE TABLE faqs(
        id INTEGER PRIMARY KEY,
        kb TEXT NOT NULL,
        question TEXT NOT NULL,
        answer TEXT NOT NULL,
        source TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL
    );
    CREATE INDEX faqs_by_kb ON faqs(kb);
";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Faq {
    #[serde(default)]
    pub id: i64,
    pub question: String,
    pub answer: String,
    /// `hand`, `import`, `correction` (from a corrected answer).
    #[serde(default = "hand")]
    pub source: String,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub created_by: String,
}

fn hand() -> String {
    "hand".into()
}

/// The registry migration that adds each knowledge base's FAQ-first mode.
pub(crate) const MODE_MIGRATION: &str = "
    CREATE TABLE faq_modes(
        kb TEXT PRIMARY KEY,
        mode TEXT NOT NULL,
        at INTEGER NOT NULL,
        by TEXT NOT NULL
    );
";

/// How readily a knowledge base answers from its FAQs.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum FaqMode {
    /// At the threshold that also keeps out questions whose FAQ the knowledge base does not
    /// hold (a neighbouring FAQ's answer to them is a wrong answer): fewer questions answered
    /// from an FAQ, almost never with the wrong one. The default.
    #[default]
    Strict,
    /// At the threshold fitted on paraphrases of FAQs the knowledge base holds: more of them
    /// answered from their FAQ, but a question whose FAQ is missing is more often answered
    /// with a neighbouring one. For FAQ sets that cover what is asked.
    Broad,
    /// A threshold of the administrator's own on the matcher's probability (0–1).
    Threshold(f64),
    /// Never answer from an FAQ (matching still shows the nearest ones).
    Off,
}

impl FaqMode {
    /// Reads `strict`, `broad`, `off` or a number from 0 to 1.
    pub fn parse(text: &str) -> Result<FaqMode> {
        let t = text.trim();
        match t.to_ascii_lowercase().as_str() {
            "strict" => return Ok(FaqMode::Strict),
            "broad" => return Ok(FaqMode::Broad),
            "off" => return Ok(FaqMode::Off),
            _ => {}
        }
        match t.parse::<f64>() {
            Ok(x) if (0.0..=1.0).contains(&x) => Ok(FaqMode::Threshold(x)),
            _ => Err(Error::InvalidInput(format!(
                "FAQ mode {text:?}: use strict, broad, off, or a threshold from 0 to 1"
            ))),
        }
    }

    /// The probability the best FAQ must reach under `policy` (`None`: FAQ-first is off).
    pub fn threshold(&self, policy: &FaqPolicy) -> Option<f64> {
        match self {
            FaqMode::Strict => Some(policy.threshold),
            FaqMode::Broad => Some(policy.broad_threshold),
            FaqMode::Threshold(t) => Some(*t),
            FaqMode::Off => None,
        }
    }
}

impl std::fmt::Display for FaqMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FaqMode::Strict => f.write_str("strict"),
            FaqMode::Broad => f.write_str("broad"),
            FaqMode::Threshold(t) => write!(f, "{t}"),
            FaqMode::Off => f.write_str("off"),
        }
    }
}

impl Serialize for FaqMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for FaqMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<FaqMode, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(f64),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Text(t) => t,
            Raw::Number(x) => x.to_string(),
        };
        FaqMode::parse(&text).map_err(|e| serde::de::Error::custom(e.to_string()))
    }
}

/// A knowledge base's FAQ mode as shown to its administrator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaqSetting {
    pub kb: String,
    pub mode: FaqMode,
    /// The probability the best FAQ must reach; none when the mode is `off`.
    pub threshold: Option<f64>,
}

/// The FAQ a question was answered from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaqHit {
    pub id: i64,
    pub question: String,
    /// The matcher's probability that the two ask the same thing.
    pub score: f64,
}

/// FAQs scored per question: this many nearest by cosine.
pub const CANDIDATES: usize = 20;

/// How FAQ-first decides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaqPolicy {
    /// Whether a question and an FAQ ask the same thing (per candidate).
    pub matcher: Matcher,
    /// The best candidate answers when its probability reaches this ([`FaqMode::Strict`]).
    pub threshold: f64,
    /// The same, fitted on paraphrases alone ([`FaqMode::Broad`]).
    pub broad_threshold: f64,
}

impl Default for FaqPolicy {
    fn default() -> Self {
        // fitted by `luodi eval faq` on the tuning half of evalsets/taipei-faq-paraphrases
        // (texts embedded in simplified script, `embed_text`; the last feature is the
        // cosine less the neighbourhoods', `candidates`);
        // the threshold also keeps out the tuning half's questions asked with their FAQ
        // removed and DuReader's search questions (which no FAQ answers)
        FaqPolicy {
            matcher: Matcher {
                weights: vec![
                    0.7358, 0.2635, 1.0174, -0.1571, -0.3753, 0.4716, -0.0972, 1.6602,
                ],
                bias: -5.8317,
                mean: vec![
                    0.9045, 0.8859, 0.1543, 0.0836, 0.6674, 2.5431, 0.1816, -0.0184,
                ],
                scale: vec![
                    0.0254, 0.0186, 0.1051, 0.0826, 0.1932, 0.3705, 0.1560, 0.0220,
                ],
            },
            threshold: 0.5701,
            // fitted on the tuning half's paraphrases alone (`eval faq`'s `broad`)
            broad_threshold: 0.1774,
        }
    }
}

/// Scores the FAQ candidates of a question: (index into `faqs`, probability), best first.
/// `qv` is the question's vector (as a query); `question` is the text as matched (the
/// glossary's rewriting of it).
pub fn rank(
    question: &str,
    qv: &[f32],
    faqs: &[Faq],
    vectors: &FaqVectors,
    matcher: &Matcher,
    seg: &luodi_text::Segmenter,
) -> Vec<(usize, f64)> {
    let mut out: Vec<(usize, f64)> = candidates(question, qv, faqs, vectors, seg, None)
        .into_iter()
        .map(|(i, x)| (i, matcher.prob(&x)))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

/// The [`CANDIDATES`] FAQs nearest the question (by the cosine to their question and to
/// their answer), with the matcher's features (words cut by `seg`: the glossary's segmenter).
/// With `among`, only the FAQs it keeps, as if the others were not there (the evaluation asks
/// questions with their own FAQ taken out); without, all of them.
pub fn candidates(
    question: &str,
    qv: &[f32],
    faqs: &[Faq],
    vectors: &FaqVectors,
    seg: &luodi_text::Segmenter,
    among: Option<&dyn Fn(usize) -> bool>,
) -> Vec<(usize, Vec<f64>)> {
    let kept = |i: usize| among.is_none_or(|keep| keep(i));
    let mut by_cos: Vec<(usize, f32, f32)> = vectors
        .questions
        .iter()
        .zip(&vectors.answers)
        .enumerate()
        .filter(|(i, _)| kept(*i))
        .map(|(i, (q, a))| (i, dot(q, qv), dot(a, qv)))
        .collect();
    let rq = hub(by_cos.iter().map(|x| x.1).collect());
    by_cos.sort_by(|a, b| (b.1 + b.2).total_cmp(&(a.1 + a.2)));
    by_cos.truncate(CANDIDATES);
    by_cos
        .into_iter()
        .map(|(i, cq, ca)| {
            let rf = match among {
                None => vectors.neighbourhood(i),
                Some(keep) => neighbourhood(&vectors.questions, i, keep),
            };
            let mut x = features_with(seg, question, &faqs[i].question, &[cq, ca]);
            // the cosine less how near both sit to questions in general (CSLS): a question
            // near many FAQs, or an FAQ near many questions, is not a match for being near
            x.push((cq - (rq + rf) / 2.0) as f64);
            (i, x)
        })
        .collect()
}

/// FAQ questions a cosine's neighbourhood is the mean of, nearest first.
const HUB_K: usize = 10;
/// What a neighbourhood lacks when a knowledge base holds fewer than [`HUB_K`] other FAQs is
/// taken as this cosine (the mean of an FAQ's ten nearest among the 1,875 Taipei FAQs; a
/// question's is lower, 0.885: the higher is the wary side), so that a knowledge base of one
/// or two FAQs is not sure of them for having nothing else near.
const HUB_PRIOR: f32 = 0.92;

/// The mean of the [`HUB_K`] highest cosines (the missing ones at [`HUB_PRIOR`]).
fn hub(mut cos: Vec<f32>) -> f32 {
    if cos.len() > HUB_K {
        cos.select_nth_unstable_by(HUB_K - 1, |a, b| b.total_cmp(a));
        cos.truncate(HUB_K);
    }
    // summed highest first, whatever order the selection left them in
    cos.sort_by(|a, b| b.total_cmp(a));
    cos.resize(HUB_K, HUB_PRIOR);
    cos.iter().sum::<f32>() / HUB_K as f32
}

/// FAQ `i`'s neighbourhood: the [`hub`] of its question's cosines to the other FAQs' questions
/// that `kept` keeps.
fn neighbourhood(questions: &[Vec<f32>], i: usize, kept: &dyn Fn(usize) -> bool) -> f32 {
    hub(questions
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i && kept(*j))
        .map(|(_, v)| dot(v, &questions[i]))
        .collect())
}

/// The FAQ a ranking points to and the confidence FAQ-first decides on: the best candidate's
/// probability of asking the same thing (on its own, so a knowledge base with two FAQs decides
/// as one with two thousand does: a lead over the second best would make any question sure of
/// the one FAQ on its subject).
pub fn decide(probs: &[(usize, f64)]) -> (Option<usize>, f64) {
    match probs.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
        Some(&(i, p)) => (Some(i), p),
        None => (None, 0.0),
    }
}

/// The vectors of a knowledge base's FAQs: each question (as a query) and each answer (as a
/// passage), all unit length, computed once per opened knowledge base.
#[derive(Debug, Clone)]
pub struct FaqVectors {
    pub model: String,
    pub questions: Vec<Vec<f32>>,
    pub answers: Vec<Vec<f32>>,
    /// Each FAQ's [`neighbourhood`] among all the others. It does not depend on the question,
    /// so it is worked out once, the first time the FAQ is a candidate (opening a large
    /// knowledge base stays cheap).
    neighbourhoods: Vec<OnceLock<f32>>,
}

/// The text FAQ matching embeds: the simplified-script form, so that a 繁體 question and its
/// 简体 FAQ (or the reverse) are compared on meaning — e5 gives such a pair a lower cosine
/// than the same pair in one script (the lexical features fold the script themselves).
pub fn embed_text(text: &str) -> String {
    luodi_text::to_simplified(text)
}

/// The vector of a question as FAQ matching reads it.
pub fn question_vector(
    text: &str,
    embedder: &dyn luodi_core::Embedder,
    cache: &crate::retrieve::EmbedCache,
) -> Result<Vec<f32>> {
    cache.query(embedder, &embed_text(text))
}

impl FaqVectors {
    pub fn compute(
        faqs: &[Faq],
        embedder: &dyn luodi_core::Embedder,
        cache: &crate::retrieve::EmbedCache,
    ) -> Result<FaqVectors> {
        let questions = faqs
            .iter()
            .map(|f| question_vector(&f.question, embedder, cache))
            .collect::<Result<Vec<_>>>()?;
        let mut answers = Vec::with_capacity(faqs.len());
        for chunk in faqs.chunks(32) {
            let texts: Vec<String> = chunk.iter().map(|f| embed_text(&f.answer)).collect();
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            answers.extend(cache.passages(embedder, &texts)?);
        }
        Ok(FaqVectors::new(
            embedder.id().to_owned(),
            questions,
            answers,
        ))
    }

    /// FAQ vectors made elsewhere: `questions[i]` FAQ i's question's (as a query), `answers[i]`
    /// its answer's (as a passage).
    pub fn new(model: String, questions: Vec<Vec<f32>>, answers: Vec<Vec<f32>>) -> FaqVectors {
        let neighbourhoods = questions.iter().map(|_| OnceLock::new()).collect();
        FaqVectors {
            model,
            questions,
            answers,
            neighbourhoods,
        }
    }

    /// FAQ `i`'s neighbourhood among all the others, computed the first time it is asked.
    fn neighbourhood(&self, i: usize) -> f32 {
        *self.neighbourhoods[i].get_or_init(|| neighbourhood(&self.questions, i, &|_| true))
    }
}

/// How a question matched a knowledge base's FAQs: the best candidates and the decision.
#[derive(Debug, Clone, Serialize)]
pub struct FaqMatch {
    /// The question as matched (abbreviations written out).
    pub asked: String,
    /// Best first: (FAQ, the matcher's probability that it asks the same thing).
    pub candidates: Vec<(Faq, f64)>,
    /// What FAQ-first decides on, and the threshold it must reach (none when the knowledge
    /// base's mode is `off`).
    pub confidence: f64,
    pub threshold: Option<f64>,
    pub mode: FaqMode,
}

impl FaqMatch {
    /// The FAQ that answers, when the confidence reaches the threshold.
    pub fn answer(&self) -> Option<&Faq> {
        self.threshold
            .filter(|t| self.confidence >= *t)
            .and_then(|_| self.candidates.first().map(|c| &c.0))
    }
}

impl crate::home::Kb {
    /// Matches `question` against the FAQs (needs the embedding model; without it, or without
    /// FAQs, none).
    pub fn faq_match(
        &self,
        question: &str,
        embed: Option<(&dyn luodi_core::Embedder, &crate::retrieve::EmbedCache)>,
    ) -> Result<Option<FaqMatch>> {
        let Some((embedder, cache)) = embed else {
            return Ok(None);
        };
        if self.faqs.is_empty() {
            return Ok(None);
        }
        let policy = FaqPolicy::default();
        let asked = self.glossary.expand(question).rewritten;
        let qv = question_vector(&asked, embedder, cache)?;
        if self.faq_vectors.get().is_none() {
            // kept for the next question, with the neighbourhoods worked out on the way (the
            // first embedder a KB meets is the one it uses)
            let _ = self
                .faq_vectors
                .set(FaqVectors::compute(&self.faqs, embedder, cache)?);
        }
        let computed;
        let vectors = match self.faq_vectors.get() {
            Some(v) if v.model == embedder.id() => v,
            _ => {
                computed = FaqVectors::compute(&self.faqs, embedder, cache)?;
                &computed
            }
        };
        let probs = rank(
            &asked,
            &qv,
            &self.faqs,
            vectors,
            &policy.matcher,
            self.glossary.segmenter(),
        );
        let (_, confidence) = decide(&probs);
        Ok(Some(FaqMatch {
            asked,
            candidates: probs
                .iter()
                .map(|&(i, p)| (self.faqs[i].clone(), p))
                .collect(),
            confidence,
            threshold: self.faq_mode.threshold(&policy),
            mode: self.faq_mode,
        }))
    }

    /// The vetted FAQ answering `question`, when one matches at the policy's threshold.
    pub fn faq_first(
        &self,
        question: &str,
        embed: Option<(&dyn luodi_core::Embedder, &crate::retrieve::EmbedCache)>,
    ) -> Result<Option<(FaqHit, String)>> {
        let Some(m) = self.faq_match(question, embed)? else {
            return Ok(None);
        };
        Ok(m.answer().map(|f| {
            (
                FaqHit {
                    id: f.id,
                    question: f.question.clone(),
                    score: m.confidence,
                },
                f.answer.clone(),
            )
        }))
    }
}

fn sql(context: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |e| Error::internal(context, e)
}

impl Home {
    /// How readily `kb` answers from its FAQs ([`FaqMode::Strict`] unless set).
    pub fn faq_mode(&self, kb: &str) -> Result<FaqMode> {
        let conn = self.registry()?;
        let mode: Option<String> = conn
            .query_row("SELECT mode FROM faq_modes WHERE kb = ?1", [kb], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql("faq mode"))?;
        // a value this version cannot read (written by a newer one) counts as the default
        Ok(mode
            .and_then(|m| FaqMode::parse(&m).ok())
            .unwrap_or_default())
    }

    /// `kb`'s FAQ mode with the threshold it means under the shipped policy (what `luodi faq
    /// mode` and `GET /v1/kbs/{kb}/faqs/mode` show); an unknown knowledge base is an error.
    pub fn faq_setting(&self, kb: &str) -> Result<FaqSetting> {
        if self.get(kb)?.is_none() {
            return Err(Error::UnknownKb(kb.to_owned()));
        }
        let mode = self.faq_mode(kb)?;
        Ok(FaqSetting {
            kb: kb.to_owned(),
            mode,
            threshold: mode.threshold(&FaqPolicy::default()),
        })
    }

    /// Sets how readily `kb` answers from its FAQs (open copies of the knowledge base see it
    /// at their next question, as with a new FAQ).
    pub fn set_faq_mode(&self, kb: &str, mode: FaqMode, by: &str) -> Result<()> {
        if self.get(kb)?.is_none() {
            return Err(Error::UnknownKb(kb.to_owned()));
        }
        let mut conn = self.registry()?;
        let tx = conn.transaction().map_err(sql("faq mode"))?;
        tx.execute(
            "INSERT INTO faq_modes(kb, mode, at, by) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(kb) DO UPDATE SET mode = ?2, at = ?3, by = ?4",
            params![kb, mode.to_string(), now_secs(), by],
        )
        .map_err(sql("faq mode"))?;
        crate::glossary::bump_words(&tx, kb)?;
        tx.commit().map_err(sql("faq mode"))?;
        Ok(())
    }

    /// The FAQs of `kb`.
    pub fn faqs(&self, kb: &str) -> Result<Vec<Faq>> {
        let conn = self.registry()?;
        let mut st = conn
            .prepare(
                "SELECT id, question, answer, source, created_at, created_by FROM faqs
                 WHERE kb = ?1 ORDER BY id",
            )
            .map_err(sql("faqs"))?;
        let rows = st
            .query_map([kb], |r| {
                Ok(Faq {
                    id: r.get(0)?,
                    question: r.get(1)?,
                    answer: r.get(2)?,
                    source: r.get(3)?,
                    created_at: r.get(4)?,
                    created_by: r.get(5)?,
                })
            })
            .map_err(sql("faqs"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql("faqs"))?;
        Ok(rows)
    }

    /// Adds FAQs (all or none): empty questions or answers, and a question already there, are
    /// refused.
    pub fn faq_add(&self, kb: &str, faqs: Vec<Faq>, by: &str) -> Result<Vec<Faq>> {
        if self.get(kb)?.is_none() {
            return Err(Error::UnknownKb(kb.to_owned()));
        }
        let mut have = self.faqs(kb)?;
        let mut conn = self.registry()?;
        let tx = conn.transaction().map_err(sql("faqs"))?;
        let mut out = Vec::new();
        for f in faqs {
            let f = insert(&tx, kb, &have, f, by)?;
            have.push(f.clone());
            out.push(f);
        }
        tx.commit().map_err(sql("faqs"))?;
        Ok(out)
    }

    /// Imports FAQs: a bad row, or one asking a question already there, is reported with its
    /// number and the rest go in (one transaction).
    pub fn faq_import(
        &self,
        kb: &str,
        parsed: crate::rows::Parsed<Faq>,
        by: &str,
    ) -> Result<crate::rows::ImportReport> {
        if self.get(kb)?.is_none() {
            return Err(Error::UnknownKb(kb.to_owned()));
        }
        let mut have = self.faqs(kb)?;
        let mut conn = self.registry()?;
        let tx = conn.transaction().map_err(sql("faqs"))?;
        let mut report = crate::rows::ImportReport {
            unread_columns: parsed.unread_columns,
            ..Default::default()
        };
        for (row, f) in parsed.rows {
            match f
                .map_err(Error::InvalidInput)
                .and_then(|f| insert(&tx, kb, &have, f, by))
            {
                Ok(f) => {
                    report.added += 1;
                    have.push(f);
                }
                Err(Error::InvalidInput(reason)) => report
                    .problems
                    .push(crate::rows::ImportProblem { row, reason }),
                Err(e) => return Err(e),
            }
        }
        tx.commit().map_err(sql("faqs"))?;
        Ok(report)
    }

    /// Makes an FAQ of a corrected answer: the question asked, and the correction a user gave
    /// in feedback `feedback_id` (an id or a unique start of one) as its vetted answer.
    pub fn faq_from_feedback(&self, kb: &str, feedback_id: &str, by: &str) -> Result<Faq> {
        if self.get(kb)?.is_none() {
            return Err(Error::UnknownKb(kb.to_owned()));
        }
        let fb = self
            .feedback_get(kb, feedback_id)?
            .ok_or_else(|| Error::InvalidInput(format!("{kb} has no feedback {feedback_id:?}")))?;
        let Some(correction) = fb.correction.filter(|c| !c.trim().is_empty()) else {
            return Err(Error::InvalidInput(format!(
                "feedback {} carries no corrected answer to vet",
                fb.id
            )));
        };
        let f = Faq {
            id: 0,
            question: fb.question,
            answer: correction,
            source: "correction".into(),
            created_at: 0,
            created_by: String::new(),
        };
        Ok(self.faq_add(kb, vec![f], by)?.remove(0))
    }

    pub fn faq_remove(&self, kb: &str, id: i64) -> Result<()> {
        let mut conn = self.registry()?;
        let tx = conn.transaction().map_err(sql("faqs"))?;
        let n = tx
            .execute(
                "DELETE FROM faqs WHERE kb = ?1 AND id = ?2",
                params![kb, id],
            )
            .map_err(sql("faqs"))?;
        if n == 0 {
            return Err(Error::NotFound(format!(
                "knowledge base {kb:?} has no FAQ #{id}"
            )));
        }
        crate::glossary::bump_words(&tx, kb)?;
        tx.commit().map_err(sql("faqs"))?;
        Ok(())
    }
}

/// Checks an FAQ (a question and an answer; a question not already asked, folded) and stores it.
fn insert(
    tx: &rusqlite::Transaction<'_>,
    kb: &str,
    have: &[Faq],
    mut f: Faq,
    by: &str,
) -> Result<Faq> {
    f.question = f.question.trim().to_owned();
    f.answer = f.answer.trim().to_owned();
    if f.question.is_empty() || f.answer.is_empty() {
        return Err(Error::InvalidInput(
            "an FAQ needs a question and an answer".into(),
        ));
    }
    let fold = |s: &str| luodi_text::fold_for_search(s);
    if let Some(e) = have.iter().find(|e| fold(&e.question) == fold(&f.question)) {
        return Err(Error::InvalidInput(format!(
            "FAQ #{} already asks {:?}",
            e.id, e.question
        )));
    }
    f.created_at = now_secs();
    f.created_by = by.to_owned();
    tx.execute(
        "INSERT INTO faqs(kb, question, answer, source, created_at, created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            kb,
            f.question,
            f.answer,
            f.source,
            f.created_at,
            f.created_by
        ],
    )
    .map_err(sql("faqs"))?;
    f.id = tx.last_insert_rowid();
    crate::glossary::bump_words(tx, kb)?;
    Ok(f)
}

/// An import row: CSV with the columns `question` and `answer`, or JSON lines (`question` or
/// `title`, `answer` or `text`).
impl crate::rows::FromRow for Faq {
    const REQUIRED: &'static [&'static [&'static str]] =
        &[&["question", "title"], &["answer", "text"]];
    const COLUMNS: &'static [&'static str] = &["question", "title", "answer", "text"];

    fn from_row(
        row: &serde_json::Map<String, serde_json::Value>,
    ) -> std::result::Result<Faq, String> {
        use crate::rows::text;
        match (
            text(row, &["question", "title"]),
            text(row, &["answer", "text"]),
        ) {
            (Some(question), Some(answer)) => Ok(Faq {
                id: 0,
                question,
                answer,
                source: "import".into(),
                created_at: 0,
                created_by: String::new(),
            }),
            _ => Err("needs a question and an answer".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The selection finds the same ten, summed in the same order, as sorting them all.
        #[test]
        fn hub_is_the_mean_of_the_ten_highest(cos in prop::collection::vec(-1f32..1.0, 0..40)) {
            let mut sorted = cos.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            sorted.resize(HUB_K.max(sorted.len()), HUB_PRIOR);
            let want = sorted[..HUB_K].iter().sum::<f32>() / HUB_K as f32;
            prop_assert_eq!(hub(cos).to_bits(), want.to_bits());
        }
    }

    /// Unit vectors from a seed (a small LCG: the test needs no randomness crate).
    fn unit_vectors(n: usize, dim: usize, mut seed: u64) -> Vec<Vec<f32>> {
        (0..n)
            .map(|_| {
                let v: Vec<f32> = (0..dim)
                    .map(|_| {
                        seed = seed
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                    })
                    .collect();
                let n = dot(&v, &v).sqrt();
                v.into_iter().map(|x| x / n).collect()
            })
            .collect()
    }

    /// The neighbourhoods kept with the vectors give the features a fresh computation over all
    /// the FAQs gives, whichever question asks first.
    #[test]
    fn kept_neighbourhoods_score_as_computed_afresh() {
        let n = 30;
        let faqs: Vec<Faq> = (0..n)
            .map(|i| Faq {
                id: i as i64,
                question: format!("第{i}条问题怎么办理"),
                answer: format!("第{i}条的答案"),
                source: hand(),
                created_at: 0,
                created_by: String::new(),
            })
            .collect();
        let vectors = FaqVectors::new(
            "test".into(),
            unit_vectors(n, 16, 1),
            unit_vectors(n, 16, 2),
        );
        let seg = luodi_text::Segmenter::shared();
        for (k, qv) in unit_vectors(5, 16, 3).iter().enumerate() {
            let q = format!("第{k}条问题");
            let kept = candidates(&q, qv, &faqs, &vectors, seg, None);
            let fresh = candidates(&q, qv, &faqs, &vectors, seg, Some(&|_| true));
            assert_eq!(kept.len(), CANDIDATES);
            assert_eq!(kept, fresh);
        }
        // a pass with an FAQ left out does not touch the neighbourhoods kept for all of them
        let qv = &unit_vectors(1, 16, 4)[0];
        let without = candidates("问题", qv, &faqs, &vectors, seg, Some(&|j| j != 0));
        assert!(without.iter().all(|(i, _)| *i != 0));
        let all = candidates("问题", qv, &faqs, &vectors, seg, None);
        assert_eq!(
            all,
            candidates("问题", qv, &faqs, &vectors, seg, Some(&|_| true))
        );
    }
}
