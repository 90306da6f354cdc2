//! FAQ first: vetted question–answer pairs a knowledge base holds. A question that matches one
//! of them well enough gets the vetted answer, marked as such, without generation; otherwise
//! answering goes on as usual.
//!
//! Matching reads the question with the glossary (abbreviations written out), takes the FAQs
//! whose questions are nearest in embedding space, and scores each with [`Matcher`] over the
//! cosine and the lexical evidence; the best one answers when its probability reaches the
//! threshold. The default matcher and threshold were fitted on the tuning half of the Taipei
//! FAQ paraphrase set (`luodi eval faq` prints them).

use luodi_core::{Error, Result};
use rusqlite::params;
use serde::{Deserialize, Serialize};

use crate::conversation::now_secs;
use crate::home::Home;
use crate::matching::{features, Matcher};

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
    pub matcher: Matcher,
    pub threshold: f64,
}

impl Default for FaqPolicy {
    fn default() -> Self {
        // fitted by `luodi eval faq` on the tuning half of evalsets/taipei-faq-paraphrases
        FaqPolicy {
            matcher: Matcher {
                weights: vec![2.0487, 0.1416, 1.6645, -0.6594, -0.4811, 0.2796, -0.2529],
                bias: -5.4854,
                mean: vec![0.9033, 0.8845, 0.1534, 0.0831, 0.6682, 2.5328, 0.1805],
                scale: vec![0.0259, 0.0195, 0.1055, 0.0828, 0.1929, 0.3763, 0.1565],
            },
            threshold: 0.1381,
        }
    }
}

/// Scores the FAQ candidates of a question: (index into `faqs`, probability), best first.
/// `qv` is the question's vector (as a query); `questions[i]` FAQ i's question's (as a
/// query) and `answers[i]` its answer's (as a passage), all unit length; `question` is the
/// text as matched (the glossary's rewriting of it).
pub fn rank(
    question: &str,
    qv: &[f32],
    faqs: &[Faq],
    questions: &[Vec<f32>],
    answers: &[Vec<f32>],
    matcher: &Matcher,
) -> Vec<(usize, f64)> {
    let mut out: Vec<(usize, f64)> = candidates(question, qv, faqs, questions, answers)
        .into_iter()
        .map(|(i, x)| (i, matcher.prob(&x)))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

/// The [`CANDIDATES`] FAQs nearest the question (by the cosine to their question and to
/// their answer), with the matcher's features.
pub fn candidates(
    question: &str,
    qv: &[f32],
    faqs: &[Faq],
    questions: &[Vec<f32>],
    answers: &[Vec<f32>],
) -> Vec<(usize, Vec<f64>)> {
    let dot = |v: &[f32]| v.iter().zip(qv).map(|(a, b)| a * b).sum::<f32>();
    let mut by_cos: Vec<(usize, f32, f32)> = questions
        .iter()
        .zip(answers)
        .enumerate()
        .map(|(i, (q, a))| (i, dot(q), dot(a)))
        .collect();
    by_cos.sort_by(|a, b| (b.1 + b.2).total_cmp(&(a.1 + a.2)));
    by_cos.truncate(CANDIDATES);
    by_cos
        .into_iter()
        .map(|(i, cq, ca)| (i, features(question, &faqs[i].question, &[cq, ca])))
        .collect()
}

/// The FAQ a ranking points to and the confidence FAQ-first decides on: the best candidate's
/// probability of asking the same thing (on its own, so a knowledge base with two FAQs decides
/// as one with two thousand does).
pub fn decide(probs: &[(usize, f64)]) -> (Option<usize>, f64) {
    match probs.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
        Some(&(i, p)) => (Some(i), p),
        None => (None, 0.0),
    }
}

impl crate::home::Kb {
    /// The vetted FAQ answering `question`, when one matches at the policy's threshold (needs
    /// the embedding model; without it, or without FAQs, none).
    pub fn faq_first(
        &self,
        question: &str,
        embed: Option<(&dyn luodi_core::Embedder, &crate::retrieve::EmbedCache)>,
    ) -> Result<Option<(FaqHit, String)>> {
        let Some((embedder, cache)) = embed else {
            return Ok(None);
        };
        if self.faqs.is_empty() {
            return Ok(None);
        }
        let policy = FaqPolicy::default();
        let asked = self.glossary.expand(question).rewritten;
        let qv = cache.query(embedder, &asked)?;
        let questions = self
            .faqs
            .iter()
            .map(|f| cache.query(embedder, &f.question))
            .collect::<Result<Vec<_>>>()?;
        let texts: Vec<&str> = self.faqs.iter().map(|f| f.answer.as_str()).collect();
        let answers = cache.passages(embedder, &texts)?;
        let probs = rank(
            &asked,
            &qv,
            &self.faqs,
            &questions,
            &answers,
            &policy.matcher,
        );
        let (Some(i), score) = decide(&probs) else {
            return Ok(None);
        };
        if score < policy.threshold {
            return Ok(None);
        }
        let f = &self.faqs[i];
        Ok(Some((
            FaqHit {
                id: f.id,
                question: f.question.clone(),
                score,
            },
            f.answer.clone(),
        )))
    }
}

fn sql(context: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |e| Error::internal(context, e)
}

impl Home {
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
        let existing = self.faqs(kb)?;
        let mut conn = self.registry()?;
        let tx = conn.transaction().map_err(sql("faqs"))?;
        let mut out = Vec::new();
        for mut f in faqs {
            f.question = f.question.trim().to_owned();
            f.answer = f.answer.trim().to_owned();
            if f.question.is_empty() || f.answer.is_empty() {
                return Err(Error::InvalidInput(
                    "an FAQ needs a question and an answer".into(),
                ));
            }
            let fold = |s: &str| luodi_text::fold_for_search(s);
            if let Some(e) = existing
                .iter()
                .chain(out.iter())
                .find(|e| fold(&e.question) == fold(&f.question))
            {
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
            out.push(f);
        }
        tx.commit().map_err(sql("faqs"))?;
        Ok(out)
    }

    pub fn faq_remove(&self, kb: &str, id: i64) -> Result<()> {
        let conn = self.registry()?;
        let n = conn
            .execute(
                "DELETE FROM faqs WHERE kb = ?1 AND id = ?2",
                params![kb, id],
            )
            .map_err(sql("faqs"))?;
        if n == 0 {
            return Err(Error::InvalidInput(format!("{kb} has no FAQ #{id}")));
        }
        Ok(())
    }
}

/// Reads FAQ rows from CSV (header with `question` and `answer`) or JSON lines (`question`
/// or `title`, `answer` or `text`), by the file's extension: (row number, FAQ or why not).
pub fn read_rows(path: &std::path::Path) -> Result<Vec<(usize, std::result::Result<Faq, String>)>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let jsonl = path
        .extension()
        .is_some_and(|x| x.eq_ignore_ascii_case("jsonl") || x.eq_ignore_ascii_case("json"));
    let mut rows = Vec::new();
    let make = |q: Option<String>, a: Option<String>| match (q, a) {
        (Some(q), Some(a)) if !q.trim().is_empty() && !a.trim().is_empty() => Ok(Faq {
            id: 0,
            question: q,
            answer: a,
            source: "import".into(),
            created_at: 0,
            created_by: String::new(),
        }),
        _ => Err("needs a question and an answer".to_owned()),
    };
    if jsonl {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let row = match serde_json::from_str::<serde_json::Value>(line) {
                Ok(v) => {
                    let s = |a: &str, b: &str| {
                        v[a].as_str().or_else(|| v[b].as_str()).map(str::to_owned)
                    };
                    make(s("question", "title"), s("answer", "text"))
                }
                Err(e) => Err(e.to_string()),
            };
            rows.push((i + 1, row));
        }
        return Ok(rows);
    }
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = r
        .headers()
        .map_err(|e| Error::InvalidInput(format!("{}: {e}", path.display())))?
        .clone();
    let col = |n: &str| headers.iter().position(|h| h.trim() == n);
    let (Some(qc), Some(ac)) = (col("question"), col("answer")) else {
        return Err(Error::InvalidInput(format!(
            "{}: the header must name the columns question and answer",
            path.display()
        )));
    };
    for (i, rec) in r.records().enumerate() {
        let row = match rec {
            Ok(rec) => make(
                rec.get(qc).map(str::to_owned),
                rec.get(ac).map(str::to_owned),
            ),
            Err(e) => Err(e.to_string()),
        };
        rows.push((i + 2, row));
    }
    Ok(rows)
}
