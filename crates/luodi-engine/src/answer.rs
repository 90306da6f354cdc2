//! Grounded answers: retrieval, refusal decided before generation, evidence selection, a
//! prompt that makes the model answer only from numbered evidence, citations checked after
//! generation, and the answer converted to the script of the question.
//!
//! Prompt reading is the slow part of a small model on a few cores (~45 prompt tokens/s on
//! this project's 2-core machine), so the evidence is not whole chunks: the sentences of the
//! top chunks that share the most with the question are kept, in their order, within a
//! character budget, with the title so the model knows what they are about.

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Instant;

use luodi_core::{Embedder, Error, Location, Result, SearchHit, SearchMode, SearchQuery};
use luodi_index::{Analyzer, AnalyzerConfig};
use luodi_models::llm::{ChatMessage, GenParams, Generator};
use luodi_text::{detect_script, fold_for_search, split_sentences, Script, Variant};
use serde::Serialize;

use crate::home::Kb;
use crate::retrieve::{EmbedCache, Fusion};

/// What a person asked for besides an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AnswerFormat {
    /// A short direct answer.
    Plain,
    Summary,
    Table,
    List,
}

impl std::str::FromStr for AnswerFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "plain" => Ok(AnswerFormat::Plain),
            "summary" => Ok(AnswerFormat::Summary),
            "table" => Ok(AnswerFormat::Table),
            "list" => Ok(AnswerFormat::List),
            o => Err(Error::InvalidInput(format!(
                "--format {o:?}: use plain, summary, table or list"
            ))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AskOptions {
    pub mode: SearchMode,
    /// Chunks retrieved.
    pub k: usize,
    /// Chunks that may give evidence.
    pub max_passages: usize,
    /// Characters of evidence in the prompt, all passages together.
    pub evidence_chars: usize,
    /// Below this retrieval confidence ([`Kb::retrieval_confidence`]) the question is not
    /// sent to the model: not in the knowledge base.
    pub refuse_below: f32,
    pub max_tokens: usize,
    pub format: AnswerFormat,
}

impl Default for AskOptions {
    fn default() -> Self {
        AskOptions {
            mode: SearchMode::Hybrid,
            k: 8,
            max_passages: 3,
            evidence_chars: 360,
            refuse_below: 0.3,
            max_tokens: 160,
            format: AnswerFormat::Plain,
        }
    }
}

/// One numbered piece of evidence.
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    /// The number the answer cites ([1] is 1).
    pub n: usize,
    pub chunk_id: u64,
    pub doc_key: String,
    pub title: String,
    pub heading_path: Vec<String>,
    pub location: Location,
    /// The sentences given to the model.
    pub text: String,
    pub score: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub question: String,
    pub text: String,
    /// The evidence the answer cites (a subset of `evidence`).
    pub citations: Vec<Evidence>,
    /// Everything the model was shown, or the closest passages of a refusal.
    pub evidence: Vec<Evidence>,
    /// Not answered: retrieval found nothing strong enough, or the model said so.
    pub refused: bool,
    /// Answered without a citation that exists: not grounded, shown with a warning.
    pub unsupported: bool,
    /// The model cited nothing, and luodi attributed the answer to the evidence it repeats.
    pub attributed: bool,
    pub top_score: f32,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// From the question to the first token of the answer (retrieval included).
    pub ttft_ms: f64,
    pub total_ms: f64,
    pub model: String,
}

/// What the model is told to say when the evidence does not hold the answer.
pub fn not_found_text(script: Script) -> &'static str {
    match script {
        Script::Latin => "The knowledge base does not contain the answer.",
        Script::Traditional => "知識庫中沒有找到相關內容。",
        _ => "知识库中没有找到相关内容。",
    }
}

fn system_prompt(script: Script, format: AnswerFormat) -> String {
    let en = script == Script::Latin;
    let mut s = if en {
        "You answer staff questions from the numbered evidence only, never inventing anything, in one or two sentences, citing the evidence number like [1].".to_string()
    } else {
        "你是企业知识库助手，只根据编号资料回答，不编造，用一两句话直接回答，并注明资料编号如[1]。"
            .to_string()
    };
    let extra = match (format, en) {
        (AnswerFormat::Plain, _) => "",
        (AnswerFormat::Summary, true) => " Give a short summary in a few sentences.",
        (AnswerFormat::Summary, false) => "请用几句话概括。",
        (AnswerFormat::Table, true) => " Give the answer as a Markdown table.",
        (AnswerFormat::Table, false) => "请用Markdown表格作答。",
        (AnswerFormat::List, true) => " Give the answer as a Markdown list.",
        (AnswerFormat::List, false) => "请用Markdown列表作答。",
    };
    s.push_str(extra);
    s
}

/// Character uni- and bigrams of the folded text (Latin words whole), as the BM25 analyzer
/// cuts them without jieba: the overlap measure of evidence selection.
fn grams(text: &str) -> HashSet<String> {
    static NGRAMS: OnceLock<Analyzer> = OnceLock::new();
    NGRAMS
        .get_or_init(|| {
            Analyzer::new(AnalyzerConfig {
                words: false,
                unigrams: true,
                bigrams: true,
                latin_trigrams: false,
            })
        })
        .terms(text)
        .into_iter()
        .collect()
}

/// Function words that say nothing about what a sentence is about.
const LIGHT: &[&str] = &[
    "的", "了", "是", "在", "和", "有", "什", "么", "什么", "吗", "呢", "哪", "几", "多", "少",
    "多少", "怎", "如", "何", "如何", "为", "个", "这", "那", "一",
];

/// Picks, from the ranked hits, the sentences that share the most with the question.
pub fn select_evidence(
    question: &str,
    hits: &[SearchHit],
    max_passages: usize,
    budget_chars: usize,
) -> Vec<Evidence> {
    let q: HashSet<String> = grams(question)
        .into_iter()
        .filter(|g| !LIGHT.contains(&g.as_str()))
        .collect();
    let weight = |g: &String| if g.chars().count() > 1 { 2.0 } else { 1.0 };
    let q_total: f32 = q.iter().map(weight).sum::<f32>().max(1.0);
    struct Cand {
        passage: usize,
        sentence: usize,
        chars: usize,
        score: f32,
    }
    let passages: Vec<(&SearchHit, Vec<&str>)> = hits
        .iter()
        .take(max_passages)
        .map(|h| (h, split_sentences(&h.chunk.text)))
        .collect();
    let mut cands = Vec::new();
    for (p, (_, sents)) in passages.iter().enumerate() {
        for (s, text) in sents.iter().enumerate() {
            let g = grams(text);
            let overlap: f32 = q.iter().filter(|x| g.contains(*x)).map(weight).sum();
            // earlier passages are better evidence at equal overlap
            let score = overlap / q_total - 0.05 * p as f32;
            cands.push(Cand {
                passage: p,
                sentence: s,
                chars: text.chars().count(),
                score,
            });
        }
    }
    cands.sort_by(|a, b| b.score.total_cmp(&a.score));
    // a passage whose best sentence shares less than half as much with the question as the
    // best one is noise to a small model
    let best = cands.first().map_or(0.0, |c| c.score);
    let mut passage_best = vec![f32::MIN; passages.len()];
    for c in &cands {
        passage_best[c.passage] = passage_best[c.passage].max(c.score);
    }
    cands.retain(|c| c.passage == 0 || passage_best[c.passage] >= best * 0.5);
    let mut chosen: Vec<(usize, usize)> = Vec::new();
    let mut used = 0usize;
    for c in &cands {
        if !chosen.is_empty() && (c.score <= 0.0 || used + c.chars > budget_chars) {
            continue;
        }
        // one sentence longer than the whole budget: cut it rather than drop the best one
        used += c.chars.min(budget_chars);
        chosen.push((c.passage, c.sentence));
        // the sentence after a chosen one often holds the number or name it introduces
        let next = (c.passage, c.sentence + 1);
        if let Some(n) = passages[c.passage].1.get(next.1) {
            let l = n.chars().count();
            if !chosen.contains(&next) && used + l <= budget_chars {
                used += l;
                chosen.push(next);
            }
        }
    }
    let mut out: Vec<Evidence> = Vec::new();
    for (p, (hit, sents)) in passages.iter().enumerate() {
        let mut idx: Vec<usize> = chosen
            .iter()
            .filter(|(cp, _)| *cp == p)
            .map(|(_, s)| *s)
            .collect();
        if idx.is_empty() {
            continue;
        }
        idx.sort_unstable();
        idx.dedup();
        let mut text = String::new();
        let mut last: Option<usize> = None;
        for i in idx {
            if last.is_some_and(|l| l + 1 != i) {
                text.push('…');
            }
            text.push_str(sents[i].trim());
            last = Some(i);
        }
        let text: String = text.chars().take(budget_chars).collect();
        out.push(Evidence {
            n: out.len() + 1,
            chunk_id: hit.chunk_id,
            doc_key: hit.doc_key.clone(),
            title: hit.title.clone(),
            heading_path: hit.chunk.heading_path.clone(),
            location: hit.chunk.location.clone(),
            text,
            score: hit.score,
        });
    }
    out
}

fn evidence_block(evidence: &[Evidence]) -> String {
    let mut s = String::new();
    for e in evidence {
        let mut about = e.title.clone();
        for h in &e.heading_path {
            if !about.contains(h.as_str()) {
                if !about.is_empty() {
                    about.push('·');
                }
                about.push_str(h);
            }
        }
        if about.is_empty() {
            s.push_str(&format!("[{}] {}\n", e.n, e.text));
        } else {
            s.push_str(&format!("[{}] {}：{}\n", e.n, about, e.text));
        }
    }
    s
}

/// The numbers cited as `[n]` (also `[1][2]`, `[1,2]`, `【1】`), in order of first use.
pub fn cited_numbers(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut cur: Option<usize> = None;
    let mut inside = false;
    for c in text.chars() {
        match c {
            '[' | '【' => {
                inside = true;
                cur = None;
            }
            ']' | '】' | ',' | '，' | '、' if inside => {
                if let Some(n) = cur.take() {
                    if !out.contains(&n) {
                        out.push(n);
                    }
                }
                if matches!(c, ']' | '】') {
                    inside = false;
                }
            }
            d if inside && d.is_ascii_digit() => {
                cur = Some(cur.unwrap_or(0) * 10 + d.to_digit(10).unwrap_or(0) as usize);
            }
            ' ' if inside => {}
            _ => {
                inside = false;
                cur = None;
            }
        }
    }
    out
}

/// The evidence an answer repeats wholesale (most of its text, verbatim), if any.
fn echoed<'a>(answer: &str, evidence: &'a [Evidence]) -> Option<&'a Evidence> {
    let a = fold_for_search(answer);
    evidence.iter().find(|e| {
        let t = fold_for_search(&e.text);
        let n = t.chars().count();
        n >= 20 && {
            // the longest prefix of the evidence found in the answer
            let chars: Vec<char> = t.chars().collect();
            let half: String = chars[..n * 4 / 5].iter().collect();
            a.contains(&half)
        }
    })
}

/// The sentence of `text` that shares the most with the question.
fn best_sentence<'a>(question: &str, text: &'a str) -> &'a str {
    let q = grams(question);
    split_sentences(text)
        .into_iter()
        .flat_map(|s| s.split('…'))
        .map(|s| {
            let g = grams(s);
            (
                s,
                q.iter()
                    .filter(|x| g.contains(*x) && !LIGHT.contains(&x.as_str()))
                    .count(),
            )
        })
        .max_by_key(|(_, n)| *n)
        .map_or(text, |(s, _)| s.trim())
}

/// The evidence an uncited answer is drawn from: the one holding most of the answer's
/// character bigrams, if it holds at least 60% of them.
fn attribute(answer: &str, evidence: &[Evidence]) -> Option<usize> {
    let a: HashSet<String> = grams(answer)
        .into_iter()
        .filter(|g| g.chars().count() > 1 || g.is_ascii())
        .collect();
    if a.is_empty() {
        return None;
    }
    evidence
        .iter()
        .map(|e| {
            let g = grams(&format!("{} {}", e.title, e.text));
            let share = a.iter().filter(|x| g.contains(*x)).count() as f32 / a.len() as f32;
            (e.n, share)
        })
        .filter(|(_, s)| *s >= 0.6)
        .max_by(|x, y| x.1.total_cmp(&y.1))
        .map(|(n, _)| n)
}

/// Converts generated text to the script of the question.
pub fn to_script(text: &str, script: Script) -> String {
    match script {
        Script::Traditional => luodi_text::to_traditional(text, Variant::Taiwan),
        Script::Simplified => luodi_text::to_simplified(text),
        _ => text.to_owned(),
    }
}

impl Kb {
    /// Answers `question` from this knowledge base with `generator`, streaming the answer's
    /// text to `on_text` (already in the question's script).
    pub fn ask(
        &self,
        question: &str,
        generator: &dyn Generator,
        embed: Option<(&dyn Embedder, &EmbedCache)>,
        opts: &AskOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Answer> {
        let started = Instant::now();
        let question = question.trim();
        if question.is_empty() {
            return Err(Error::InvalidInput("the question is empty".into()));
        }
        let qchars = question.chars().count();
        if qchars > 2000 {
            return Err(Error::InvalidInput(format!(
                "the question is {qchars} characters long; ask in at most 2,000 (put long texts in the knowledge base)"
            )));
        }
        let script = detect_script(question);
        let ids = self.rank(
            &SearchQuery {
                text: question.to_owned(),
                k: opts.k,
                ..Default::default()
            },
            opts.mode,
            embed,
            Fusion::default(),
        )?;
        let top_score = if ids.is_empty() {
            0.0
        } else {
            self.retrieval_confidence(question, embed)?
        };
        let hits = self.store.fetch(&ids)?;
        let mut answer = Answer {
            question: question.to_owned(),
            text: String::new(),
            citations: Vec::new(),
            evidence: Vec::new(),
            refused: false,
            unsupported: false,
            attributed: false,
            top_score,
            prompt_tokens: 0,
            completion_tokens: 0,
            ttft_ms: 0.0,
            total_ms: 0.0,
            model: generator.name().to_owned(),
        };
        if hits.is_empty() || top_score < opts.refuse_below {
            // decided before generation: the model is not asked to invent
            answer.refused = true;
            answer.text = not_found_text(script).to_owned();
            answer.evidence =
                select_evidence(question, &hits, opts.max_passages, opts.evidence_chars);
            on_text(&answer.text);
            answer.ttft_ms = started.elapsed().as_secs_f64() * 1000.0;
            answer.total_ms = answer.ttft_ms;
            return Ok(answer);
        }
        let evidence = select_evidence(question, &hits, opts.max_passages, opts.evidence_chars);
        // the question before the evidence and again after it: small models lose a question
        // that only precedes or only follows a block of text
        let user = if script == Script::Latin {
            format!(
                "Question: {question}\n\nEvidence:\n{}\nAnswer the question from the evidence: {question}",
                evidence_block(&evidence)
            )
        } else {
            format!(
                "问题：{question}\n\n资料：\n{}\n请根据资料回答：{question}",
                evidence_block(&evidence)
            )
        };
        let messages = [
            ChatMessage::system(system_prompt(script, opts.format)),
            ChatMessage::user(user),
        ];
        let params = GenParams {
            max_tokens: opts.max_tokens,
            ..GenParams::default()
        };
        let mut first: Option<f64> = None;
        let gen = generator
            .chat(&messages, &params, &mut |piece: &str| {
                if first.is_none() {
                    first = Some(started.elapsed().as_secs_f64() * 1000.0);
                }
                on_text(&to_script(piece, script));
                true
            })
            .map_err(|e| Error::internal("generation", e))?;
        answer.text = to_script(gen.text.trim(), script);
        answer.prompt_tokens = gen.prompt_tokens;
        answer.completion_tokens = gen.completion_tokens;
        answer.ttft_ms = first.unwrap_or_else(|| started.elapsed().as_secs_f64() * 1000.0);
        answer.total_ms = started.elapsed().as_secs_f64() * 1000.0;
        // a small model sometimes pastes an evidence line back ("[1] 标题：…"): the answer is
        // then the sentences of that passage that share the most with the question
        if let Some(e) = echoed(&answer.text, &evidence) {
            answer.text = format!("{}[{}]", best_sentence(question, &e.text), e.n);
        }
        let mut cited = cited_numbers(&answer.text);
        cited.retain(|n| evidence.iter().any(|e| e.n == *n));
        if cited.is_empty() {
            if let Some(n) = attribute(&answer.text, &evidence) {
                answer.text = format!("{}[{n}]", answer.text.trim_end());
                answer.attributed = true;
                cited.push(n);
            }
        }
        answer.citations = cited
            .iter()
            .filter_map(|n| evidence.iter().find(|e| e.n == *n).cloned())
            .collect();
        let said_not_found = fold_for_search(&answer.text)
            .contains(&fold_for_search(not_found_text(script)).replace(['。', '.'], ""));
        answer.refused = said_not_found && answer.citations.is_empty();
        answer.unsupported = !answer.refused && answer.citations.is_empty();
        answer.evidence = evidence;
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citations_are_parsed_in_every_spelling() {
        assert_eq!(cited_numbers("顺延至次年3月31日[1]。"), vec![1]);
        assert_eq!(cited_numbers("见[2][1]与【3】，[1, 4]"), vec![2, 1, 3, 4]);
        assert_eq!(cited_numbers("数组a[i]与[x]"), Vec::<usize>::new());
    }

    #[test]
    fn evidence_keeps_the_answering_sentence_within_budget() {
        let hit = |id: u64, text: &str| SearchHit {
            score: 1.0,
            chunk_id: id,
            doc_key: format!("d{id}"),
            source: String::new(),
            title: "员工手册".into(),
            modified: None,
            metadata: Default::default(),
            chunk: luodi_core::Chunk {
                ordinal: 0,
                text: text.into(),
                heading_path: vec!["年假".into()],
                location: Default::default(),
            },
        };
        let hits = vec![
            hit(1, "员工入职满一年后享有带薪年假。工作满1年不满10年的，年假5天。当年未休的年假可顺延至次年3月31日，逾期作废。"),
            hit(2, "病假须提供医院证明。连续病假超过3天的，须提供诊断证明。"),
        ];
        let ev = select_evidence("没休完的年假能顺延到什么时候", &hits, 3, 40);
        assert_eq!(ev[0].n, 1);
        assert!(ev[0].text.contains("次年3月31日"), "{ev:?}");
        let total: usize = ev.iter().map(|e| e.text.chars().count()).sum();
        assert!(total <= 40 + 2, "{total}: {ev:?}");
    }
}
