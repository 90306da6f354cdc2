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
use serde::{Deserialize, Serialize};

use crate::context::{followup_context, prefer_year, year_of, year_of_question, PastTurn};
use crate::home::Kb;
use crate::retrieve::{EmbedCache, Fusion};

/// What a person asked for besides an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Retrieved chunks whose sentences compete for the evidence (the best `max_passages`
    /// of them by what they hold of the question give it).
    pub pool: usize,
    /// Chunks that may give evidence.
    pub max_passages: usize,
    /// Characters of evidence in the prompt, all passages together.
    pub evidence_chars: usize,
    /// Below this confidence ([`Signals::confidence`]) the question is not sent to the
    /// model: not in the knowledge base.
    pub refuse_below: f32,
    pub max_tokens: usize,
    pub format: AnswerFormat,
    /// Plain answers are quoted from the evidence: the model picks a span of it (constrained
    /// decoding), so no number or name can be altered on the way. Summaries, tables and lists
    /// are generated freely.
    pub extractive: bool,
    /// Documents (by key) left out of retrieval.
    pub exclude_docs: Vec<String>,
    /// Metadata equality filters (`department = 财务部`).
    pub filters: Vec<(String, String)>,
    /// The year the question is asked in ("今年" means it), when not this one; given, it is
    /// also the year a question without one is about (what was true then).
    pub as_of_year: Option<i32>,
    /// Extractive answers: how many quotes the model decodes, each from a different first
    /// token, to choose between by [`SpanChoice::score`] (1: the greedy one). Each costs
    /// ~10 decoded tokens (~0.35 s with the 0.5B model on 2 cores).
    pub span_candidates: usize,
    /// Evidence selection: the best units by the question's terms are re-scored by their
    /// embedding's cosine to the question, this much per unit of cosine below the best one's
    /// (0: by the terms alone). See [`select_evidence_with`].
    pub dense_evidence: f32,
}

impl Default for AskOptions {
    fn default() -> Self {
        AskOptions {
            mode: SearchMode::Hybrid,
            k: 8,
            pool: 5,
            max_passages: 2,
            evidence_chars: 160,
            refuse_below: 0.685,
            max_tokens: 160,
            format: AnswerFormat::Plain,
            extractive: true,
            exclude_docs: Vec::new(),
            filters: Vec::new(),
            as_of_year: None,
            span_candidates: 3,
            dense_evidence: DENSE_EVIDENCE_WEIGHT,
        }
    }
}

/// How much a unit of evidence loses per unit of cosine below the most similar of the
/// [`DENSE_EVIDENCE_UNITS`] best ones (added to the weighted share of the question's terms it
/// holds, which is at most 1).
pub const DENSE_EVIDENCE_WEIGHT: f32 = 1.0;
/// The units of evidence (by the question's terms) that are embedded and re-scored.
pub const DENSE_EVIDENCE_UNITS: usize = 8;

/// One numbered piece of evidence.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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

/// What the refusal decision is made of, each in 0..≈1.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Signals {
    /// The best retrieved chunk's BM25 score ÷ the query's ideal score.
    pub bm25_share: f32,
    /// The best cosine similarity of a retrieved chunk to the question (0 without vectors).
    pub cosine: f32,
    /// The idf-weighted share of the question's terms found in the best evidence sentence
    /// (with its document title).
    pub coverage: f32,
    /// The same over all the evidence shown to the model.
    pub coverage_all: f32,
    /// Numbers of two or more digits in the question (a year, a class of 2012, the 17th
    /// session) that no evidence, title or heading holds: evidence about another year is not
    /// an answer.
    pub missing_numbers: u32,
    /// The best cosine similarity of one evidence sentence to the question (0 without
    /// vectors): a chunk near the question in meaning may still say nothing about what it
    /// asks, the sentence shown to the model must.
    pub sentence_cosine: f32,
}

impl Signals {
    /// How strongly the knowledge base holds an answer: the evidence must cover the question
    /// (its rare terms above all), or be very close to it in meaning, and hold the numbers it
    /// names. Chosen on the tuning splits (CMRC trial, DomainRAG tune half) with the
    /// unanswerable variant of `luodi eval answer`.
    ///
    /// (max(coverage, BM25 share) + 3 × (cosine − 0.88) + 3 × (sentence cosine − 0.90)) × ½
    /// per missing number; the cosine terms only where vectors exist; they move a paraphrased
    /// question, whose words the passage does not share, above the line, and the sentence's
    /// keeps a passage on the question's subject that does not say what it asks below it.
    ///
    /// The threshold ([`AskOptions::refuse_below`], 0.685) is read from the refusal table of
    /// `luodi eval answer --unanswerable` on the tuning splits: the one with the best mean of
    /// (refused without the gold passages − refused with them) over CMRC trial and
    /// DomainRAG's tune half whose false refusals stay ≤ 0.10 on each (a margin under the
    /// 0.15 the product allows). The sentence term separates CMRC trial's unanswerable
    /// questions that pass the lexical test from the answerable ones better than the chunk's
    /// cosine does (ROC AUC 0.875 against 0.795); with it CMRC trial refuses 0.930 with 0.040
    /// false refusals (0.910 / 0.055 without it), DomainRAG tune 0.264 / 0.057 as before
    /// (its pool still holds the answer for a third of the questions once the gold pages
    /// are out), and no question answered right on either is refused.
    pub fn confidence(&self) -> f32 {
        let lexical = self.coverage.max(self.bm25_share);
        let mut dense = 0.0;
        if self.cosine > 0.0 {
            dense += 3.0 * (self.cosine - 0.88);
        }
        if self.sentence_cosine > 0.0 {
            dense += 3.0 * (self.sentence_cosine - 0.90);
        }
        (lexical + dense) * 0.5f32.powi(self.missing_numbers.min(8) as i32)
    }
}

/// Runs of two or more ASCII digits in `text`.
fn numbers_in(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (c.is_ascii_digit(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                if i - s >= 2 && !out.contains(&&text[s..i]) {
                    out.push(&text[s..i]);
                }
                start = None;
            }
            _ => {}
        }
    }
    out
}

/// How many of the question's numbers no evidence holds (in its text, title or headings).
fn missing_numbers(question: &str, evidence: &[Evidence]) -> u32 {
    let q = fold_for_search(question);
    let nums = numbers_in(&q);
    if nums.is_empty() {
        return 0;
    }
    let mut hay = String::new();
    for e in evidence {
        hay.push_str(&fold_for_search(&e.text));
        hay.push(' ');
        hay.push_str(&fold_for_search(&e.title));
        for h in &e.heading_path {
            hay.push(' ');
            hay.push_str(&fold_for_search(h));
        }
        hay.push(' ');
    }
    nums.iter().filter(|n| !hay.contains(**n)).count() as u32
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
    /// Not answered yet: a clarifying question offering these choices (`text` asks it).
    pub choices: Vec<Choice>,
    /// The question as retrieval saw it (completed from the conversation).
    pub standalone: String,
    /// [`Signals::confidence`] of the retrieval, and what it is made of.
    pub confidence: f32,
    /// Extractive answers: the geometric mean probability the model gave the quoted span's
    /// tokens (under its whole distribution, not only the spans it was allowed). Reported,
    /// not acted on: on the CMRC tuning split it barely separates unanswerable questions
    /// (median 0.83) from correct answers (0.93); a floor cost more false refusals than it
    /// gained refusals.
    pub span_prob: Option<f32>,
    /// Extractive answers decoded from several first tokens ([`AskOptions::span_candidates`]):
    /// each quote, the greedy one first, with what the choice between them reads.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<SpanChoice>,
    pub signals: Signals,
    pub prompt_tokens: usize,
    /// Prompt tokens the model did not read again (its cache held them: the fixed prefix,
    /// earlier turns).
    pub cached_tokens: usize,
    pub completion_tokens: usize,
    /// From the question to the first token of the answer (retrieval included).
    pub ttft_ms: f64,
    pub total_ms: f64,
    pub model: String,
    /// Answered from a vetted FAQ (its text, without generation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faq: Option<crate::faq::FaqHit>,
}

/// One quote of the evidence a model could answer with.
#[derive(Debug, Clone, Serialize)]
pub struct SpanChoice {
    /// The quote, completed to its clause or sentence.
    pub quote: String,
    /// The words the model chose, before completion.
    pub span: String,
    /// The evidence it is from.
    pub n: usize,
    /// Sum of the log-probabilities of the tokens the model chose, and how many.
    pub logprob: f32,
    pub tokens: usize,
    /// The weighted share of the question's terms the quote holds.
    pub coverage: f32,
    /// … its line (the text between full stops or line ends: a table row) holds, its
    /// evidence's title and headings counting half.
    pub line_coverage: f32,
    /// The words the model chose count in the measure word the question asks for (25项 to
    /// 获得几项, 两个校区 to 有几个校区): see [`asked_unit`].
    pub counts_asked: bool,
}

impl SpanChoice {
    /// What the choice between quotes maximises: the mean log-probability of the tokens the
    /// model chose plus twice the share of the question its line holds (title and headings
    /// counting half). On CMRC trial (200 questions; `luodi eval answer --split trial --limit
    /// 200 --span-candidates K --per-query F` writes every quote with both shares) picking
    /// among 3 quotes by it answered 0.605 right against 0.565 for the greedy quote; weights
    /// 1–5 gave 0.595–0.605, the quote's own share instead of its line's the same 0.605, the
    /// model's probability alone 0.550, the share alone 0.570; 4 and 5 quotes gave no more
    /// (0.605–0.610, 0.595–0.605) for more time. The line, not the quote, because a table
    /// cell (5至15天) says what it is about in its row (年假). The greedy start is often a
    /// fluent sentence beside the point, and the question's words alone miss answers that
    /// rephrase it. How much likelier the question makes a quote (its teacher-forced
    /// log-probability after the question less that after the same evidence with no question)
    /// added at weights 0.1–2 moved CMRC trial 123/200 by −5 to +1 and DomainRAG tune 24/53
    /// by 0 to +1, for ~0.5 s more to the first token, so it is not used.
    ///
    /// A quote that counts in the measure word a count question asks for (几项 → 25项) gains
    /// 1: the 0.5B model often prefers a fluent number of another kind (3次, 11.9% to 几项).
    /// Rescoring the per-query quotes of the tuning splits: CMRC trial 123 → 124 of 200,
    /// DomainRAG tune 24 → 25 of 53 at weights 1 and 2 (0.5: 123, 24); asking the same of
    /// years (哪一年 → a four-digit year) changed nothing, so it is not done.
    pub fn score(&self) -> f32 {
        self.logprob / self.tokens.max(1) as f32
            + 2.0 * self.line_coverage
            + if self.counts_asked { 1.0 } else { 0.0 }
    }
}

/// One answer to a clarifying question: the documents whose `key` metadata is `value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub key: String,
    pub value: String,
}

/// The clarifying question offering `choices`.
pub fn clarifying_text(script: Script, choices: &[Choice]) -> String {
    let mut s = match script {
        Script::Latin => "The knowledge base answers this differently for:".to_string(),
        Script::Traditional => "知識庫中對此有幾種不同的說法，您問的是哪一個？".to_string(),
        _ => "知识库中对此有几种不同的说法，您问的是哪一个？".to_string(),
    };
    for (i, c) in choices.iter().enumerate() {
        s.push_str(&format!("\n{}. {}", i + 1, to_script(&c.value, script)));
    }
    if script == Script::Latin {
        s.push_str("\nWhich one do you mean?");
    }
    s
}

/// Whether the best hits answer the question for clearly different subjects: hits that
/// each hold most of the question, from documents whose values of one metadata field (a
/// department, a city) differ, where the question names none of those values. Returns the
/// choices in rank order, or nothing.
fn ambiguity(
    question: &str,
    terms: &QuestionTerms<'_>,
    hits: &[SearchHit],
    filters: &[(String, String)],
) -> Vec<Choice> {
    let covered: Vec<(&SearchHit, f32)> = hits
        .iter()
        .take(6)
        .map(|h| {
            let text = terms.analyze(&h.chunk.text);
            let context = terms.analyze(&format!("{} {}", h.title, h.chunk.heading_path.join(" ")));
            (h, terms.coverage(&text, &context))
        })
        .collect();
    let best = covered.iter().map(|(_, c)| *c).fold(0.0, f32::max);
    if best < 0.5 {
        return Vec::new();
    }
    let strong: Vec<&SearchHit> = covered
        .iter()
        .filter(|(_, c)| *c >= 0.85 * best)
        .map(|(h, _)| *h)
        .collect();
    if strong.len() < 2 {
        return Vec::new();
    }
    let folded_q = fold_for_search(question);
    let keys: Vec<&String> = strong[0].metadata.keys().collect();
    for key in keys {
        if filters.iter().any(|(k, _)| k == key) {
            continue;
        }
        let mut values: Vec<&str> = Vec::new();
        let mut all_have = true;
        for h in &strong {
            match h.metadata.get(key) {
                Some(v) if is_subject_field(key, v) => {
                    if !values.contains(&v.as_str()) {
                        values.push(v);
                    }
                }
                _ => all_have = false,
            }
        }
        if !all_have || values.len() < 2 {
            continue;
        }
        if values
            .iter()
            .any(|v| folded_q.contains(&fold_for_search(v)))
        {
            continue;
        }
        return values
            .into_iter()
            .take(4)
            .map(|v| Choice {
                key: key.clone(),
                value: v.to_owned(),
            })
            .collect();
    }
    Vec::new()
}

/// Whether a metadata field names a subject (a department, a city, a product) rather than a
/// time or a number: only those can make a question ambiguous or be named by it.
fn is_subject_field(key: &str, value: &str) -> bool {
    const TIME_KEYS: &[&str] = &[
        "date",
        "time",
        "modified",
        "created",
        "updated",
        "published",
        "publish_date",
        "year",
        "日期",
        "时间",
        "時間",
        "发布日期",
        "發布日期",
        "年份",
        "url",
        "id",
        "source",
    ];
    let k = key.to_lowercase();
    if TIME_KEYS.contains(&k.as_str()) || k.ends_with("_at") || k.ends_with("date") {
        return false;
    }
    let n = value.chars().count();
    let digits = value.chars().filter(|c| c.is_ascii_digit()).count();
    (2..=40).contains(&n) && digits * 2 < n && !value.contains("://")
}

/// A metadata (key, value) of some hits that the question names, where other hits have
/// another value: the question is about those documents.
fn named_metadata(
    question: &str,
    hits: &[SearchHit],
    filters: &[(String, String)],
) -> Option<(String, String)> {
    let q = fold_for_search(question);
    for h in hits {
        for (k, v) in &h.metadata {
            if !is_subject_field(k, v) || filters.iter().any(|(fk, _)| fk == k) {
                continue;
            }
            if q.contains(&fold_for_search(v))
                && hits
                    .iter()
                    .any(|o| o.metadata.get(k).is_some_and(|ov| ov != v))
            {
                return Some((k.clone(), v.clone()));
            }
        }
    }
    None
}

/// What the model is told to say when the evidence does not hold the answer.
pub fn not_found_text(script: Script) -> &'static str {
    match script {
        Script::Latin => "The knowledge base does not contain the answer.",
        Script::Traditional => "知識庫中沒有找到相關內容。",
        _ => "知识库中没有找到相关内容。",
    }
}

fn system_prompt(script: Script, format: AnswerFormat, extractive: bool) -> String {
    let en = script == Script::Latin;
    let mut s = match (en, extractive) {
        (true, true) => "You answer questions from the numbered evidence only. Answer with the shortest exact words of the evidence that answer the question, nothing else.".to_string(),
        (true, false) => format!("You answer questions from the numbered evidence only, never inventing anything, briefly and directly, citing the evidence number like [1]. If the evidence does not hold the answer, say: {}", not_found_text(script)),
        (false, true) => "你是知识库问答助手，只根据编号资料回答。请直接摘录资料中能回答问题的最短原文作为答案，不要解释。".to_string(),
        (false, false) => format!(
            "你是知识库问答助手，只根据编号资料回答，不编造，答案简短直接，并注明资料编号如[1]。资料中没有答案时回答：{}",
            not_found_text(Script::Simplified)
        ),
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

/// Worked examples shown before every extractive question: the answer is the shortest span
/// of the evidence that answers. The text never changes, so after the first question the
/// model's cache holds it and it costs no prompt time.
fn examples(script: Script) -> Vec<ChatMessage> {
    type Example = (&'static [&'static str], &'static str, &'static str);
    let pairs: &[Example] = if script == Script::Latin {
        &[
            (
                &["Staff handbook · Annual leave: Staff get paid annual leave after one year of service. Unused annual leave may be carried over until March 31 of the next year and then lapses."],
                "Until when can I take leave I did not use this year?",
                "March 31 of the next year",
            ),
            (
                &[
                    "Xinghe Technology: Xinghe Technology was founded in 1998. Its head office is in Hangzhou and it has about 1,200 employees.",
                    "Xinghe Technology · Business: The company designs and sells industrial sensors.",
                ],
                "How many people work at Xinghe Technology?",
                "about 1,200 employees",
            ),
        ]
    } else {
        &[
            (
                &["员工手册·年假：员工入职满一年后享有带薪年假。当年未休的年假可顺延至次年3月31日，逾期作废。"],
                "没休完的年假最晚什么时候要休完？",
                "次年3月31日",
            ),
            (
                &[
                    "星河科技：星河科技成立于1998年，总部位于杭州市西湖区，现有员工约1200人。",
                    "星河科技·业务：公司主要从事工业传感器的研发与销售。",
                ],
                "星河科技的总部在哪里？",
                "杭州市西湖区",
            ),
            (
                &["差旅报销办法：出差人员须在返回后10个工作日内提交报销单，逾期不予报销，因为财务部每月15日统一结账。"],
                "为什么出差报销不能逾期？",
                "因为财务部每月15日统一结账",
            ),
        ]
    };
    let mut out = Vec::new();
    for (evidence, q, a) in pairs {
        let mut block = String::new();
        for (i, e) in evidence.iter().enumerate() {
            block.push_str(&format!("[{}] {e}\n", i + 1));
        }
        out.push(ChatMessage::user(user_prompt(script, q, &block)));
        out.push(ChatMessage::assistant(*a));
    }
    out
}

/// The user turn: the numbered evidence, then the question (asking it before the evidence
/// too lost 4 points of accuracy on the tuning split and cost 40 prompt tokens).
fn user_prompt(script: Script, question: &str, evidence_block: &str) -> String {
    if script == Script::Latin {
        format!("Evidence:\n{evidence_block}\nQuestion: {question}")
    } else {
        format!("资料：\n{evidence_block}\n问题：{question}")
    }
}

/// Character uni- and bigrams of the folded text (Latin words whole), as the BM25 analyzer
/// cuts them without jieba: the overlap measure of attribution.
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

/// How a question asks, beyond the query stop words: never in the answer, so not part of
/// how much of a question a sentence holds.
const QUESTION_WORDS: &[&str] = &[
    "时候",
    "时",
    "候",
    "怎么办",
    "怎么",
    "怎",
    "办",
    "怎样",
    "能否",
    "可否",
    "是否",
    "多久",
    "几点",
    "几天",
    "几个",
    "几年",
    "哪儿",
    "为什么",
    "为何",
    "请问",
    "能",
    "可以",
    "吗",
    "呢",
];

/// Sentences longer than this are cut at clause boundaries into units of evidence.
const MAX_UNIT_CHARS: usize = 70;

/// The units of evidence of a chunk: its sentences, long ones cut into clauses (at ，；：,
/// and 、 is left alone: lists stay whole), each at least a few characters.
pub fn evidence_units(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for s in split_sentences(text) {
        if s.chars().count() <= MAX_UNIT_CHARS {
            out.push(s);
            continue;
        }
        // clause ends, each clause at least MIN_CLAUSE characters
        const MIN_CLAUSE: usize = 12;
        let mut cuts: Vec<usize> = Vec::new();
        let mut start = 0;
        for (i, c) in s.char_indices() {
            if matches!(c, '，' | '：' | ',' | ':') {
                let end = i + c.len_utf8();
                if s[start..end].chars().count() >= MIN_CLAUSE {
                    cuts.push(end);
                    start = end;
                }
            }
        }
        // a short tail stays with the clause before it
        if s[start..].chars().count() < MIN_CLAUSE {
            cuts.pop();
        }
        let mut from = 0;
        for end in cuts {
            out.push(&s[from..end]);
            from = end;
        }
        out.push(&s[from..]);
    }
    out
}

/// The question's terms with their weights (idf), and a way to measure how much of them a
/// text holds.
pub struct QuestionTerms<'a> {
    terms: Vec<(String, f32)>,
    total: f32,
    analyzer: &'a Analyzer,
}

impl<'a> QuestionTerms<'a> {
    pub fn new(terms: Vec<(String, f32)>, analyzer: &'a Analyzer) -> Self {
        let total = terms.iter().map(|(_, w)| w).sum::<f32>().max(1e-6);
        QuestionTerms {
            terms,
            total,
            analyzer,
        }
    }

    pub fn analyze(&self, text: &str) -> HashSet<String> {
        self.analyzer.terms(text).into_iter().collect()
    }

    /// The weighted share of the question's terms in `text`, those only in `context`
    /// (a title) counting half.
    pub fn coverage(&self, text: &HashSet<String>, context: &HashSet<String>) -> f32 {
        let mut got = 0.0;
        for (t, w) in &self.terms {
            if text.contains(t) {
                got += w;
            } else if context.contains(t) {
                got += 0.5 * w;
            }
        }
        got / self.total
    }
}

/// Picks, from the ranked hits, the sentences (or clauses of long sentences) that hold the
/// most of the question's weighted terms, within `budget_chars`, each followed by the next
/// one when it fits (it often holds the number or name the first introduces). Returns the
/// evidence and the coverage of the best unit and of all the evidence.
pub fn select_evidence(
    question: &QuestionTerms<'_>,
    hits: &[SearchHit],
    pool: usize,
    max_passages: usize,
    budget_chars: usize,
) -> (Vec<Evidence>, f32, f32) {
    select_evidence_with(question, hits, pool, max_passages, budget_chars, None)
}

/// The cosines of units of evidence (embedded as passages) to the question.
pub type UnitCosines<'a> = &'a dyn Fn(&[&str]) -> Result<Vec<f32>>;

/// [`select_evidence`], the [`DENSE_EVIDENCE_UNITS`] best units by the question's terms also
/// scored by meaning: each loses `weight` × (the best cosine among them − its own cosine) to
/// the question. Terms alone miss the sentence that says it in other words ("定向招收集中连片
/// 特殊困难县…" for "招收对象包括哪些地区的学生") or pick a sentence that repeats the question's
/// words about something else. Measured (`luodi eval answer --evidence-only --dense-evidence
/// W`): evidence recall on DomainRAG tune 0.736 → 0.774, on the first 300 CMRC trial questions
/// 0.797 → 0.817 at weight 1 (0.7 and 1.5, and 4 to 16 units, within a question of it);
/// answer accuracy on DomainRAG tune 27 → 31 of 53. A failed embedding leaves the terms'
/// order.
pub fn select_evidence_with(
    question: &QuestionTerms<'_>,
    hits: &[SearchHit],
    pool: usize,
    max_passages: usize,
    budget_chars: usize,
    dense: Option<(UnitCosines<'_>, f32)>,
) -> (Vec<Evidence>, f32, f32) {
    struct Cand {
        passage: usize,
        unit: usize,
        chars: usize,
        score: f32,
        coverage: f32,
    }
    // passages: distinct chunks, at most `max_passages`, units deduplicated across
    // overlapping chunks
    let mut seen = SeenUnits::default();
    let mut passages: Vec<(&SearchHit, Vec<&str>, HashSet<String>)> = Vec::new();
    for h in hits {
        if passages.len() >= pool.max(max_passages) {
            break;
        }
        let units: Vec<&str> = evidence_units(&h.chunk.text)
            .into_iter()
            .filter(|u| !u.trim().is_empty() && seen.is_new(u))
            .collect();
        if units.is_empty() {
            continue;
        }
        // what a passage is about besides its words: title, headings, and the subject fields
        // of its document (a question naming 销售部 is about the sales department's rules)
        let mut context = about_text(&h.title, &h.chunk.heading_path);
        for (k, v) in &h.metadata {
            if is_subject_field(k, v) {
                context.push(' ');
                context.push_str(v);
            }
        }
        passages.push((h, units, question.analyze(&context)));
    }
    let mut cands = Vec::new();
    for (p, (_, units, context)) in passages.iter().enumerate() {
        for (u, text) in units.iter().enumerate() {
            let coverage = question.coverage(&question.analyze(text), context);
            cands.push(Cand {
                passage: p,
                unit: u,
                chars: text.trim().chars().count(),
                // earlier passages are better evidence at equal coverage
                score: coverage - 0.03 * p as f32,
                coverage,
            });
        }
    }
    cands.sort_by(|a, b| b.score.total_cmp(&a.score));
    // the refusal signal stays the terms' (its threshold was calibrated on them)
    let best_coverage = cands.first().map_or(0.0, |c| c.coverage);
    if let Some((cosines, weight)) = dense {
        let top = DENSE_EVIDENCE_UNITS.min(cands.len());
        if weight > 0.0 && top > 1 {
            let texts: Vec<&str> = cands[..top]
                .iter()
                .map(|c| passages[c.passage].1[c.unit].trim())
                .collect();
            match cosines(&texts) {
                Ok(cs) if cs.len() == top => {
                    let best_cos = cs.iter().copied().fold(f32::MIN, f32::max);
                    for (c, v) in cands[..top].iter_mut().zip(cs) {
                        c.score += weight * (v - best_cos);
                    }
                    cands[..top].sort_by(|a, b| b.score.total_cmp(&a.score));
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("evidence by meaning: {e}"),
            }
        }
    }
    let best = cands.first().map_or(0.0, |c| c.score);
    // a passage whose best unit holds less than half as much of the question as the best one
    // is noise to a small model
    let mut passage_best = vec![f32::MIN; passages.len()];
    for c in &cands {
        passage_best[c.passage] = passage_best[c.passage].max(c.score);
    }
    // of the pool, the passages whose best unit holds the most of the question (a rerank of
    // the retrieved chunks by what they say about it)
    let mut order: Vec<usize> = (0..passages.len()).collect();
    order.sort_by(|&a, &b| passage_best[b].total_cmp(&passage_best[a]).then(a.cmp(&b)));
    order.truncate(max_passages);
    cands.retain(|c| {
        order.contains(&c.passage)
            && (c.passage == order[0] || passage_best[c.passage] >= best * 0.5)
    });
    let mut chosen: Vec<(usize, usize)> = Vec::new();
    let mut used = 0usize;
    for c in &cands {
        if !chosen.is_empty() && (c.score <= 0.0 || used + c.chars > budget_chars) {
            continue;
        }
        if chosen.contains(&(c.passage, c.unit)) {
            continue;
        }
        // one unit longer than the whole budget: cut it rather than drop the best one
        used += c.chars.min(budget_chars);
        chosen.push((c.passage, c.unit));
        let next = (c.passage, c.unit + 1);
        if let Some(n) = passages[c.passage].1.get(next.1) {
            let l = n.trim().chars().count();
            if !chosen.contains(&next) && used + l <= budget_chars {
                used += l;
                chosen.push(next);
            }
        }
    }
    let mut out: Vec<Evidence> = Vec::new();
    let mut all_terms: HashSet<String> = HashSet::new();
    let mut all_context: HashSet<String> = HashSet::new();
    // the passage holding the most of the question first
    for &p in &order {
        let (hit, units, context) = &passages[p];
        let mut idx: Vec<usize> = chosen
            .iter()
            .filter(|(cp, _)| *cp == p)
            .map(|(_, u)| *u)
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
            text.push_str(units[i].trim());
            last = Some(i);
        }
        let text: String = text.chars().take(budget_chars).collect();
        all_terms.extend(question.analyze(&text));
        all_context.extend(context.iter().cloned());
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
    let coverage_all = question.coverage(&all_terms, &all_context);
    (out, best_coverage, coverage_all)
}

/// The units of evidence already taken from better-ranked chunks, to show each once: a unit
/// is a repeat when its letters and digits (folded; punctuation, spaces and line breaks left
/// out) are those of an earlier unit or lie inside one. Overlapping chunks of one page, and
/// the same page kept under two names, cut a sentence at different places ("他们建立了全国
/// 第一个“国际写作中心”," inside "…第一个“国际写作中心\n”,遍邀国内外名家任教,…"), and a small
/// model's 160 characters of evidence should not hold it twice. Measured (`luodi eval answer
/// --evidence-only`): DomainRAG tune evidence recall 0.774 → 0.811 (answers 31 → 32 of 53);
/// the first 300 CMRC trial questions, whose passages do not overlap, unchanged.
#[derive(Default)]
struct SeenUnits {
    exact: HashSet<String>,
    /// Every key so far, joined by a separator no key holds.
    joined: String,
}

impl SeenUnits {
    /// Units this short are only repeats when equal (a short phrase inside a longer sentence
    /// may say something of its own).
    const MIN_CONTAINED: usize = 8;

    fn is_new(&mut self, unit: &str) -> bool {
        let key: String = luodi_text::fold_for_search(unit)
            .chars()
            .filter(|c| c.is_alphanumeric())
            .collect();
        if key.is_empty() {
            return self.exact.insert(unit.trim().to_owned());
        }
        if self.exact.contains(&key)
            || (key.chars().count() >= Self::MIN_CONTAINED && self.joined.contains(&key))
        {
            return false;
        }
        self.joined.push_str(&key);
        self.joined.push('\u{1}');
        self.exact.insert(key);
        true
    }
}

/// The best cosine of an evidence sentence to the question (0 when there is none), by
/// `cosines` (the refusal signal [`Signals::sentence_cosine`]).
fn best_sentence_cosine(evidence: &[Evidence], cosines: UnitCosines<'_>) -> Result<f32> {
    let sentences: Vec<&str> = evidence
        .iter()
        .flat_map(|e| split_sentences(&e.text))
        .map(str::trim)
        .filter(|s| s.chars().count() >= 4)
        .collect();
    if sentences.is_empty() {
        return Ok(0.0);
    }
    Ok(cosines(&sentences)?.into_iter().fold(0.0, f32::max))
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

/// The answer's text without its citation markers (`[1]`, `【2】`, `[1, 3]`).
pub fn strip_citations(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(['[', '【']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let open = tail.chars().next().map_or(1, char::len_utf8);
        let close = tail[open..]
            .char_indices()
            .take_while(|(_, c)| c.is_ascii_digit() || matches!(c, ',' | '，' | ' ' | '、'))
            .last()
            .map_or(open, |(j, c)| open + j + c.len_utf8());
        match tail[close..].chars().next() {
            Some(c @ (']' | '】')) if close > open => rest = &tail[close + c.len_utf8()..],
            _ => {
                out.push_str(&tail[..open]);
                rest = &tail[open..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Longest quote an extractive answer is completed to.
const MAX_QUOTE_CHARS: usize = 50;
/// A sentence up to this long is quoted whole.
const SHORT_SENTENCE_CHARS: usize = 40;

/// The share of a yes-or-no question's weighted terms a clause of the evidence holds before
/// luodi says yes or no from it (below it the answer is the quote alone).
const YES_NO_COVERAGE: f32 = 0.5;
/// … or this long, for a question that asks for a description or a reason.
const DESCRIPTIVE_SENTENCE_CHARS: usize = 140;

/// The measure word a count question asks for: 项 in 获得几项, 人 in 招收多少人 (繁體 too:
/// 幾項). None for other questions, and for 多少钱 (answered in 元), 几乎, 几何 and 几率.
pub fn asked_unit(question: &str) -> Option<char> {
    let q: Vec<char> = fold_for_search(question).chars().collect();
    (0..q.len()).find_map(|i| {
        let after = if q[i] == '几' {
            i + 1
        } else if q[i] == '多' && q.get(i + 1) == Some(&'少') {
            i + 2
        } else {
            return None;
        };
        q.get(after)
            .copied()
            .filter(|c| luodi_text::is_han(*c) && !"钱乎何率的是".contains(*c))
    })
}

/// Whether `text` gives a number counted in `unit`: 25项, 两 个, 三名.
pub fn counts_in(text: &str, unit: char) -> bool {
    let t: Vec<char> = fold_for_search(text)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    t.windows(2).any(|w| {
        w[1] == unit
            && (w[0].is_ascii_digit() || "零一二三四五六七八九十百千万亿两〇".contains(w[0]))
    })
}

/// Whether a question asks for a description, a reason or a list (what is X, why, which
/// ones) rather than a fact (when, how many, who, where, which one, a name): its answer is a
/// whole sentence.
pub fn asks_for_description(question: &str) -> bool {
    const FACT: &[&str] = &[
        "多少",
        "几",
        "什么时候",
        "何时",
        "哪年",
        "日期",
        "谁",
        "哪里",
        "哪儿",
        "哪个",
        "哪位",
        "哪家",
        "哪所",
        "哪国",
        "哪座",
        "哪部",
        "哪一",
        // a name asked for ("原名是什么") is a fact too
        "原名",
        "别名",
        "别称",
        "名称",
        "名字",
        "简称",
        "全称",
        "学名",
        "称号",
        "主题",
        "口号",
        "多大",
        "多高",
        "多长",
        "多重",
        "多久",
        "when",
        "how many",
        "how much",
        "who",
        "where",
    ];
    const DESCRIPTION: &[&str] = &[
        "为什么",
        "为何",
        "什么是",
        "是什么",
        "作用",
        "特点",
        "特征",
        "哪些",
        "如何",
        "怎样",
        "怎么",
        "目标",
        "内容",
        "原因",
        "意义",
        "区别",
        "不同",
        "包括",
        "包含",
        "有何",
        "介绍",
        "why",
        "what is",
        "what are",
        "how does",
        "how do",
        "describe",
    ];
    // the lists are folded as the question is (繁→简 folding writes 么 as 幺)
    let q = fold_for_search(question);
    let has = |w: &&str| q.contains(&fold_for_search(w));
    !FACT.iter().any(has) && DESCRIPTION.iter().any(has)
}

/// The sentence of `text` holding bytes `start..end` (the span a model chose) when it is at
/// most `sentence_chars` long, else its clause; the span alone when the clause is longer than
/// `max_chars`. A fragment such as "1628年" becomes "尤金袋鼠最初是于1628年船难的生还者在西澳
/// 发现的": the answer with what it is about, as the source says it.
pub fn quote_around(
    text: &str,
    start: usize,
    end: usize,
    sentence_chars: usize,
    max_chars: usize,
) -> &str {
    let clause_end = |c: char| {
        matches!(
            c,
            '，' | ',' | '；' | ';' | '。' | '！' | '？' | '!' | '?' | '\n' | '…'
        )
    };
    let sentence_end =
        |c: char| matches!(c, '；' | ';' | '。' | '！' | '？' | '!' | '?' | '\n' | '…');
    let keep_end = |c: char| matches!(c, '。' | '！' | '？' | '!' | '?');
    let (start, end) = (start.min(text.len()), end.min(text.len()).max(start));
    if !text.is_char_boundary(start) || !text.is_char_boundary(end) {
        return text.get(start..end).unwrap_or(text);
    }
    let bounds = |is_end: &dyn Fn(char) -> bool| {
        let from = text[..start]
            .char_indices()
            .rev()
            .find(|(_, c)| is_end(*c))
            .map_or(0, |(i, c)| i + c.len_utf8());
        // a span that already ends at a boundary keeps it
        let to = if text[start..end].chars().last().is_some_and(is_end) {
            end
        } else {
            text[end..]
                .char_indices()
                .find(|(_, c)| is_end(*c))
                .map_or(text.len(), |(i, c)| {
                    end + i + if keep_end(c) { c.len_utf8() } else { 0 }
                })
        };
        (from, to)
    };
    // the whole sentence when it is short; else the clause; else the span
    let (sf, st) = bounds(&sentence_end);
    let sentence = text[sf..st].trim();
    if sentence.chars().count() <= sentence_chars {
        return sentence;
    }
    let (cf, ct) = bounds(&clause_end);
    let clause = text[cf..ct].trim();
    if clause.chars().count() > max_chars {
        return text[start..end].trim();
    }
    clause
}

/// A passage's title and headings, as one text: what it is about besides its words.
fn about_text(title: &str, headings: &[String]) -> String {
    let mut about = title.to_owned();
    for h in headings {
        about.push(' ');
        about.push_str(h);
    }
    about
}

/// The line of `text` holding bytes `start..end`: between full stops, line ends (a table
/// row) and the gaps (…) of evidence.
fn line_around(text: &str, start: usize, end: usize) -> &str {
    let is_end = |c: char| matches!(c, '。' | '！' | '？' | '!' | '?' | '\n' | '…');
    let (start, end) = (start.min(text.len()), end.min(text.len()).max(start));
    if !text.is_char_boundary(start) || !text.is_char_boundary(end) {
        return text;
    }
    let from = text[..start]
        .char_indices()
        .rev()
        .find(|(_, c)| is_end(*c))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let to = text[end..]
        .char_indices()
        .find(|(_, c)| is_end(*c))
        .map_or(text.len(), |(i, _)| end + i);
    text[from..to.max(from)].trim()
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

/// The unit of `text` that holds the most of the question.
fn best_unit<'a>(question: &QuestionTerms<'_>, text: &'a str) -> &'a str {
    let empty = HashSet::new();
    text.split('…')
        .flat_map(evidence_units)
        .map(|s| (s, question.coverage(&question.analyze(s), &empty)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
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

/// A question made ready for the model: retrieval done, evidence chosen, refusal decided.
/// No model has run yet.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub question: String,
    /// The question as retrieval saw it: with the earlier turn it refers to, if any.
    pub standalone: String,
    pub script: Script,
    /// The retrieved chunks, best first.
    pub hits: Vec<SearchHit>,
    pub evidence: Vec<Evidence>,
    pub signals: Signals,
    pub confidence: f32,
    /// Not to be sent to the model: the knowledge base does not hold the answer.
    pub refuse: bool,
    /// Not to be answered yet: the question fits clearly different subjects; ask which.
    pub choices: Vec<Choice>,
    pub messages: Vec<ChatMessage>,
    /// Whether the answer is to be a span of the evidence.
    pub extractive: bool,
    pub retrieval_ms: f64,
    /// A vetted FAQ matched the question: it answers, with this text.
    pub faq: Option<(crate::faq::FaqHit, String)>,
}

impl Kb {
    /// The weighted terms of a question; those of its conversation context count less.
    fn question_terms(&self, question: &str, context: Option<&str>) -> Result<QuestionTerms<'_>> {
        let mut terms = self.content_terms(question)?;
        if let Some(c) = context {
            for (t, w) in self.content_terms(c)? {
                if !terms.iter().any(|(x, _)| *x == t) {
                    terms.push((t, 0.4 * w));
                }
            }
        }
        Ok(QuestionTerms::new(terms, self.store.analyzer()))
    }

    /// The query terms of `text` with their idf, less the question words and the
    /// two-character terms found nowhere in the knowledge base: no evidence can hold those,
    /// and a paraphrase's bigrams across words ("没休", "能顺" in 没休完的年假能顺延) are
    /// mostly such, weighing the most while saying nothing about any passage.
    fn content_terms(&self, text: &str) -> Result<Vec<(String, f32)>> {
        Ok(self
            .store
            .term_idfs(text)?
            .into_iter()
            .filter(|(t, _, df)| {
                static FOLDED: OnceLock<Vec<String>> = OnceLock::new();
                let question_words =
                    FOLDED.get_or_init(|| QUESTION_WORDS.iter().map(|w| fold_for_search(w)).collect());
                let mut c = t.chars();
                let two_han = matches!((c.next(), c.next(), c.next()), (Some(a), Some(b), None) if luodi_text::is_han(a) && luodi_text::is_han(b));
                let question_word = question_words.iter().any(|w| w == t);
                let absent_bigram = two_han && *df == 0;
                !question_word && !absent_bigram
            })
            .map(|(t, w, _)| (t, w))
            .collect())
    }

    /// The clause of the evidence that settles a yes-or-no question: the statement (not a
    /// question the source asks itself, as an FAQ's title) holding the most of what is asked
    /// besides what its passage's title already names (the subject: in "香港羽毛球公开赛每年都有
    /// 比赛吗" under the title 香港羽毛球公开赛, 每年 and 比赛), at least [`YES_NO_COVERAGE`] of
    /// those weighted terms — the model's quote when it holds as much — with its evidence
    /// number and whether it says no.
    fn settle_yes_no(
        &self,
        yn: &crate::yes_no::YesNo,
        evidence: &[Evidence],
        quoted: Option<&(usize, String)>,
    ) -> Result<Option<(usize, String, bool)>> {
        let all = self.content_terms(&yn.predicate)?;
        if all.is_empty() {
            return Ok(None);
        }
        let analyzer = self.store.analyzer();
        let empty = HashSet::new();
        // (coverage of the terms the title lacks, coverage of all terms, evidence, clause)
        let mut best: Option<(f32, f32, usize, String)> = None;
        let full = QuestionTerms::new(all.clone(), analyzer);
        for e in evidence {
            let about: HashSet<String> = analyzer
                .terms(&about_text(&e.title, &e.heading_path))
                .into_iter()
                .collect();
            let rest: Vec<(String, f32)> = all
                .iter()
                .filter(|(t, _)| !about.contains(t))
                .cloned()
                .collect();
            let rest =
                QuestionTerms::new(if rest.is_empty() { all.clone() } else { rest }, analyzer);
            let score = |text: &str| {
                let got = rest.analyze(text);
                (rest.coverage(&got, &empty), full.coverage(&got, &empty))
            };
            let mut consider = |clause: &str| {
                let (r, f) = score(clause);
                if best.as_ref().is_none_or(|b| (r, f) > (b.0, b.1)) {
                    best = Some((r, f, e.n, clause.to_owned()));
                }
            };
            for unit in e.text.split('…').flat_map(evidence_units) {
                let unit = unit.trim();
                if unit.ends_with(['？', '?']) {
                    continue;
                }
                // a long sentence's clauses: the answer stays short
                if unit.chars().count() <= SHORT_SENTENCE_CHARS {
                    consider(unit);
                } else {
                    for c in unit.split(['，', ',', '；', ';']) {
                        let c = c.trim();
                        if c.chars().count() >= 4 {
                            consider(c);
                        }
                    }
                }
            }
            // the model's quote, when it holds as much
            if let Some((qn, q)) =
                quoted.filter(|(qn, q)| *qn == e.n && !q.trim_end().ends_with(['？', '?']))
            {
                let (r, f) = score(q);
                if best.as_ref().is_none_or(|b| (r, f) >= (b.0, b.1)) {
                    best = Some((r, f, *qn, q.trim().to_owned()));
                }
            }
        }
        let Some((cov, _, n, clause)) = best else {
            return Ok(None);
        };
        if cov < YES_NO_COVERAGE {
            return Ok(None);
        }
        // a sentence cut before an opening quote mark keeps it at its end ("学习。\"圆梦计划\"…")
        let mut clause = clause;
        let quotes = clause
            .chars()
            .filter(|c| matches!(c, '"' | '“' | '”'))
            .count();
        if quotes % 2 == 1 && clause.ends_with(['"', '“']) {
            clause.pop();
        }
        let no = yn.says_no(&clause);
        Ok(Some((n, clause, no)))
    }

    /// Retrieval, evidence selection and the refusal decision for `question`, without a
    /// model: what [`Kb::ask`] sends to the model, or why it does not.
    pub fn prepare(
        &self,
        question: &str,
        embed: Option<(&dyn Embedder, &EmbedCache)>,
        opts: &AskOptions,
    ) -> Result<Prepared> {
        self.prepare_in(question, &[], embed, opts)
    }

    /// [`Kb::prepare`] for a turn of a conversation: a follow-up is completed with the
    /// earlier turn it refers to ([`crate::context`]).
    pub fn prepare_in(
        &self,
        question: &str,
        history: &[PastTurn],
        embed: Option<(&dyn Embedder, &EmbedCache)>,
        opts: &AskOptions,
    ) -> Result<Prepared> {
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
        // FAQ first: a vetted answer the question matches well enough, without generation
        if let Some(hit) = self.faq_first(question, embed)? {
            return Ok(Prepared {
                question: question.to_owned(),
                standalone: question.to_owned(),
                script,
                hits: Vec::new(),
                evidence: Vec::new(),
                signals: Signals::default(),
                confidence: hit.0.score as f32,
                refuse: false,
                choices: Vec::new(),
                messages: Vec::new(),
                extractive: false,
                retrieval_ms: started.elapsed().as_secs_f64() * 1000.0,
                faq: Some(hit),
            });
        }
        let context = followup_context(history, question);
        let standalone = crate::context::with_context(context.as_deref(), question);
        let now_year = year_of(crate::conversation::now_secs());
        let year = year_of_question(question, opts.as_of_year, now_year);
        let mut query = SearchQuery {
            text: standalone.clone(),
            // a question about a year looks deeper for that year's documents
            k: if year.is_some() {
                opts.k.max(20)
            } else {
                opts.k
            },
            filters: opts.filters.clone(),
            exclude_docs: opts.exclude_docs.clone(),
            ..Default::default()
        };
        let mut ranked = self.rank_scored(&query, opts.mode, embed, Fusion::default())?;
        let mut hits = self
            .store
            .fetch(&ranked.iter().map(|r| (r.id, r.score)).collect::<Vec<_>>())?;
        // a question that names a metadata value of some of the hits ("销售部的…") is about
        // those documents only
        if let Some(f) = named_metadata(&standalone, &hits, &query.filters) {
            query.filters.push(f);
            ranked = self.rank_scored(&query, opts.mode, embed, Fusion::default())?;
            hits = self
                .store
                .fetch(&ranked.iter().map(|r| (r.id, r.score)).collect::<Vec<_>>())?;
        }
        if let Some(y) = year {
            prefer_year(&mut hits, y);
        }
        let terms = self.question_terms(question, context.as_deref())?;
        // the question as retrieval's dense query reads it (the glossary's full forms, the
        // documents' script), embedded once: evidence selection and the refusal signal compare
        // sentences to it, embedded as passages through the cache (a question asked again
        // costs nothing). Hybrid retrieval embedded the same text already; where it did not
        // and embedding fails, evidence is chosen by the terms alone.
        let cosines = match embed {
            Some((embedder, cache)) => {
                let dense =
                    self.in_documents_script(&self.glossary.expand(&standalone).rewritten)?;
                match cache.query(embedder, &dense) {
                    Ok(q) => Some(move |texts: &[&str]| -> Result<Vec<f32>> {
                        Ok(cache
                            .passages(embedder, texts)?
                            .iter()
                            .map(|v| luodi_core::dot(v, &q))
                            .collect())
                    }),
                    Err(e) => {
                        tracing::warn!("evidence by meaning: {e}");
                        None
                    }
                }
            }
            None => None,
        };
        let (evidence, coverage, coverage_all) = select_evidence_with(
            &terms,
            &hits,
            opts.pool,
            opts.max_passages,
            opts.evidence_chars,
            cosines
                .as_ref()
                .map(|f| (f as UnitCosines<'_>, opts.dense_evidence)),
        );
        let mut signals = Signals {
            bm25_share: ranked
                .iter()
                .filter_map(|r| r.bm25_share)
                .fold(0.0, f32::max),
            cosine: ranked.iter().filter_map(|r| r.cosine).fold(0.0, f32::max),
            coverage,
            coverage_all,
            missing_numbers: missing_numbers(question, &evidence),
            sentence_cosine: 0.0,
        };
        if let (Some(f), true) = (&cosines, signals.cosine > 0.0) {
            signals.sentence_cosine = best_sentence_cosine(&evidence, f)?;
        }
        let confidence = signals.confidence();
        let refuse = evidence.is_empty() || confidence < opts.refuse_below;
        let choices = if refuse {
            Vec::new()
        } else {
            ambiguity(question, &terms, &hits, &opts.filters)
        };
        // extractive only where the answer can be quoted: a plain answer, in the language of
        // the evidence (a Chinese question on English documents is answered in Chinese)
        let evidence_latin = evidence
            .iter()
            .all(|e| detect_script(&e.text) == Script::Latin);
        let extractive = opts.extractive
            && opts.format == AnswerFormat::Plain
            && ((script == Script::Latin) == evidence_latin);
        // the glossary's words: an abbreviation with its full form beside it (so the answer
        // names it), the definitions of the business terms the question uses
        let glossed = self.glossary.expand(question);
        let mut with_terms = question.to_owned();
        for (abbr, full) in &glossed.abbreviations {
            with_terms = with_terms.replacen(abbr.as_str(), &format!("{abbr}（{full}）"), 1);
        }
        let asked = match (&context, script == Script::Latin) {
            (None, _) => with_terms,
            (Some(c), true) => format!("{with_terms} (following: {c})"),
            (Some(c), false) => format!("{with_terms}（上文：{c}）"),
        };
        let asked = if glossed.definitions.is_empty() {
            asked
        } else {
            let defs: Vec<String> = glossed
                .definitions
                .iter()
                .map(|(t, d)| format!("{t}: {d}"))
                .collect();
            if script == Script::Latin {
                format!("{asked}\n(Terms: {})", defs.join("; "))
            } else {
                format!("{asked}\n（术语：{}）", defs.join("；"))
            }
        };
        let user = user_prompt(script, &asked, &evidence_block(&evidence));
        let mut messages = vec![ChatMessage::system(system_prompt(
            script,
            opts.format,
            extractive,
        ))];
        if extractive {
            messages.extend(examples(script));
        }
        messages.push(ChatMessage::user(user));
        Ok(Prepared {
            question: question.to_owned(),
            standalone,
            script,
            hits,
            evidence,
            signals,
            confidence,
            refuse,
            choices,
            messages,
            extractive,
            retrieval_ms: started.elapsed().as_secs_f64() * 1000.0,
            faq: None,
        })
    }

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
        let p = self.prepare(question, embed, opts)?;
        self.generate(p, generator, opts, started, on_text)
    }

    /// The model's part of [`Kb::ask`]: generation from prepared evidence, then the checks.
    pub fn generate(
        &self,
        p: Prepared,
        generator: &dyn Generator,
        opts: &AskOptions,
        started: Instant,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Answer> {
        let script = p.script;
        let mut answer = Answer {
            question: p.question.clone(),
            text: String::new(),
            citations: Vec::new(),
            evidence: Vec::new(),
            refused: false,
            unsupported: false,
            attributed: false,
            choices: Vec::new(),
            standalone: p.standalone.clone(),
            confidence: p.confidence,
            span_prob: None,
            alternatives: Vec::new(),
            signals: p.signals,
            prompt_tokens: 0,
            cached_tokens: 0,
            completion_tokens: 0,
            ttft_ms: 0.0,
            total_ms: 0.0,
            model: generator.name().to_owned(),
            faq: None,
        };
        if let Some((hit, text)) = p.faq {
            answer.text = text;
            answer.faq = Some(hit);
            answer.model = "faq".into();
            on_text(&answer.text);
            answer.ttft_ms = started.elapsed().as_secs_f64() * 1000.0;
            answer.total_ms = answer.ttft_ms;
            return Ok(answer);
        }
        if p.refuse {
            // decided before generation: the model is not asked to invent
            answer.refused = true;
            answer.text = not_found_text(script).to_owned();
            answer.evidence = p.evidence;
            on_text(&answer.text);
            answer.ttft_ms = started.elapsed().as_secs_f64() * 1000.0;
            answer.total_ms = answer.ttft_ms;
            return Ok(answer);
        }
        if !p.choices.is_empty() {
            // a clarifying question instead of a guess between subjects
            answer.text = clarifying_text(script, &p.choices);
            answer.choices = p.choices;
            answer.evidence = p.evidence;
            on_text(&answer.text);
            answer.ttft_ms = started.elapsed().as_secs_f64() * 1000.0;
            answer.total_ms = answer.ttft_ms;
            return Ok(answer);
        }
        let evidence = p.evidence;
        let mut params = GenParams {
            max_tokens: opts.max_tokens,
            ..GenParams::default()
        };
        let not_found_simplified = not_found_text(if script == Script::Latin {
            Script::Latin
        } else {
            Script::Simplified
        });
        if p.extractive {
            params.spans = evidence.iter().map(|e| e.text.clone()).collect();
            // saying "not found" stays possible
            params.spans.push(not_found_simplified.to_owned());
            params.max_tokens = params.max_tokens.min(64);
            params.span_candidates = opts.span_candidates;
        }
        // a free answer streams as it is generated; an extractive one is a span of the
        // evidence that luodi completes to its clause, so it is shown whole once known
        let mut first: Option<f64> = None;
        let stream = !p.extractive;
        let gen = generator
            .chat(&p.messages, &params, &mut |piece: &str| {
                if stream {
                    if first.is_none() {
                        first = Some(started.elapsed().as_secs_f64() * 1000.0);
                    }
                    on_text(&to_script(piece, script));
                }
                true
            })
            .map_err(|e| Error::internal("generation", e))?;
        answer.prompt_tokens = gen.prompt_tokens;
        answer.cached_tokens = gen.cached_tokens;
        answer.completion_tokens = gen.completion_tokens;
        answer.span_prob = gen.span_logprob.map(f32::exp);
        let raw = gen.text.trim();
        let terms = self.question_terms(&p.question, None)?;
        let sentence_chars = if asks_for_description(&p.question) {
            DESCRIPTIVE_SENTENCE_CHARS
        } else {
            SHORT_SENTENCE_CHARS
        };
        // a span of one evidence text, completed to its clause
        let locate = |raw: &str| -> Option<(usize, String, &str)> {
            evidence.iter().find_map(|e| {
                e.text.find(raw).filter(|_| !raw.is_empty()).map(|i| {
                    let j = i + raw.len();
                    (
                        e.n,
                        quote_around(&e.text, i, j, sentence_chars, MAX_QUOTE_CHARS).to_owned(),
                        line_around(&e.text, i, j),
                    )
                })
            })
        };
        if p.extractive {
            let unit = asked_unit(&p.question);
            for alt in &gen.alternatives {
                let span = alt.text.trim();
                if let Some((n, quote, line)) = locate(span) {
                    let about = evidence
                        .iter()
                        .find(|e| e.n == n)
                        .map_or_else(String::new, |e| about_text(&e.title, &e.heading_path));
                    answer.alternatives.push(SpanChoice {
                        coverage: terms.coverage(&terms.analyze(&quote), &HashSet::new()),
                        line_coverage: terms.coverage(&terms.analyze(line), &terms.analyze(&about)),
                        counts_asked: unit.is_some_and(|u| counts_in(span, u)),
                        quote,
                        span: span.to_owned(),
                        n,
                        logprob: alt.logprob,
                        tokens: alt.tokens,
                    });
                }
            }
        }
        // the greedy quote, or, when several were decoded, the one the model finds likely
        // that says most about the question (a "not found" stays one)
        let quoted = if p.extractive {
            locate(raw).map(|(n, quote, _)| {
                answer
                    .alternatives
                    .iter()
                    .max_by(|a, b| a.score().total_cmp(&b.score()))
                    .map_or((n, quote), |best| (best.n, best.quote.clone()))
            })
        } else {
            None
        };
        let said_not_found = |text: &str| {
            let t = fold_for_search(&strip_citations(text));
            let nf = fold_for_search(not_found_simplified);
            let core = nf.trim_end_matches(['。', '.']);
            t.contains(core) || (p.extractive && !t.is_empty() && nf.contains(&t))
        };
        if quoted.is_none() && said_not_found(raw) {
            answer.refused = true;
            answer.text = not_found_text(script).to_owned();
            if first.is_none() {
                on_text(&answer.text);
            }
            answer.ttft_ms = first.unwrap_or_else(|| started.elapsed().as_secs_f64() * 1000.0);
            answer.evidence = evidence;
            answer.total_ms = started.elapsed().as_secs_f64() * 1000.0;
            return Ok(answer);
        }
        let settled = match crate::yes_no::yes_no_question(&p.question) {
            Some(yn) if p.extractive => self
                .settle_yes_no(&yn, &evidence, quoted.as_ref())?
                .map(|(n, clause, no)| (yn.reply(no, script), n, clause)),
            _ => None,
        };
        if let Some((reply, n, clause)) = settled {
            // a yes-or-no question the evidence settles: the yes or the no first, then the
            // clause that says so
            answer.text = format!("{reply}{}[{n}]", to_script(&clause, script));
            on_text(&answer.text);
        } else if let Some((n, quote)) = quoted {
            // a span of one evidence text, completed to its clause: that text is the citation
            answer.text = format!("{}[{n}]", to_script(&quote, script));
            on_text(&answer.text);
        } else {
            answer.text = to_script(raw, script);
            if p.extractive {
                on_text(&answer.text);
            }
            if let Some(e) = echoed(&answer.text, &evidence) {
                // a small model sometimes pastes an evidence line back ("[1] 标题：…"): the
                // answer is then the part of that passage that holds the most of the question
                answer.text = format!("{}[{}]", to_script(best_unit(&terms, &e.text), script), e.n);
            }
        }
        answer.ttft_ms = first.unwrap_or_else(|| started.elapsed().as_secs_f64() * 1000.0);
        let mut cited = cited_numbers(&answer.text);
        cited.retain(|n| evidence.iter().any(|e| e.n == *n));
        if cited.is_empty() {
            if let Some(n) = attribute(&answer.text, &evidence) {
                let mark = format!("[{n}]");
                on_text(&mark);
                answer.text = format!("{}{mark}", answer.text.trim_end());
                answer.attributed = true;
                cited.push(n);
            }
        }
        answer.citations = cited
            .iter()
            .filter_map(|n| evidence.iter().find(|e| e.n == *n).cloned())
            .collect();
        answer.unsupported = answer.citations.is_empty();
        answer.evidence = evidence;
        answer.total_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quote_is_read_with_its_line() {
        let text = "年假 | 5至15天 | 是\n病假 | 不限 | 否";
        let i = text.find("5至15天").unwrap();
        assert_eq!(
            line_around(text, i, i + "5至15天".len()),
            "年假 | 5至15天 | 是"
        );
        let text = "入职满一年后享有年假。满10年的，年假10天；满20年的，年假15天。逾期作废";
        let i = text.find("年假10天").unwrap();
        assert_eq!(
            line_around(text, i, i + "年假10天".len()),
            "满10年的，年假10天；满20年的，年假15天"
        );
        assert_eq!(line_around(text, text.len() - 6, text.len()), "逾期作废");
    }

    #[test]
    fn the_quote_chosen_holds_the_question_unless_the_model_doubts_it() {
        let choice = |logprob: f32, tokens: usize, coverage: f32| SpanChoice {
            quote: String::new(),
            n: 1,
            logprob,
            tokens,
            coverage: 0.0,
            line_coverage: coverage,
            counts_asked: false,
            span: String::new(),
        };
        // fluent but beside the point vs a little less likely and about the question
        let beside = choice(-0.6, 6, 0.1);
        let about = choice(-1.2, 6, 0.6);
        assert!(about.score() > beside.score());
        // a quote the model finds very unlikely loses even if it repeats the question
        let forced = choice(-30.0, 6, 0.9);
        assert!(beside.score() > forced.score());
        // the mean, not the sum: a longer quote is not penalised for its length
        assert_eq!(choice(-2.0, 4, 0.5).score(), choice(-1.0, 2, 0.5).score());
    }

    #[test]
    fn a_count_question_prefers_the_number_counted_in_its_measure_word() {
        assert_eq!(asked_unit("中国人民大学获得优秀成果奖几项？"), Some('项'));
        assert_eq!(asked_unit("2016年招收多少人"), Some('人'));
        assert_eq!(asked_unit("山東女子學院現有幾個校區？"), Some('个'));
        assert_eq!(asked_unit("学费是多少钱？"), None);
        assert_eq!(asked_unit("几乎所有学生都住校吗？"), None);
        assert_eq!(asked_unit("排名第几？"), None);
        assert_eq!(asked_unit("成立于哪一年？"), None);
        assert!(counts_in("25项", '项'));
        assert!(counts_in("两 个校区", '个'));
        assert!(counts_in("學校本次入選２５項", '项'));
        assert!(!counts_in("3次", '项'));
        assert!(!counts_in("项目", '项'));
        // 11.9% (fluent) against 25项 (less likely), asked 几项
        let quote = |logprob: f32, tokens: usize, counts_asked: bool| SpanChoice {
            quote: String::new(),
            n: 1,
            logprob,
            tokens,
            coverage: 0.0,
            line_coverage: 0.5,
            counts_asked,
            span: String::new(),
        };
        assert!(quote(-2.1, 2, true).score() > quote(-2.3, 5, false).score());
        assert!(quote(-0.2, 2, false).score() < quote(-2.1, 2, true).score());
    }

    #[test]
    fn a_chosen_span_is_completed_to_its_clause() {
        let t = "尤金袋鼠最初是于1628年船难的生还者在西澳发现的，是欧洲人最早有纪录的袋鼠发现。比赛共有来自64个国家及地区的84名运动员参与。";
        let at = |s: &str| {
            let i = t.find(s).unwrap();
            quote_around(t, i, i + s.len(), 40, 50)
        };
        assert_eq!(
            at("1628年"),
            "尤金袋鼠最初是于1628年船难的生还者在西澳发现的"
        );
        assert_eq!(at("袋鼠发现"), "是欧洲人最早有纪录的袋鼠发现。");
        assert_eq!(at("84名"), "比赛共有来自64个国家及地区的84名运动员参与。");
        // a clause longer than the limit: the span alone
        let i = t.find("1628年").unwrap();
        assert_eq!(quote_around(t, i, i + "1628年".len(), 10, 10), "1628年");
        // a descriptive question: the whole sentence
        assert_eq!(
            quote_around(t, i, i + "1628年".len(), 140, 50),
            "尤金袋鼠最初是于1628年船难的生还者在西澳发现的，是欧洲人最早有纪录的袋鼠发现。"
        );
        assert!(asks_for_description("尤金袋鼠为什么会被认为是害虫？"));
        assert!(!asks_for_description("尤金袋鼠的体重大约是多少？"));
        assert!(!asks_for_description(
            "中国（南京）国际象棋超级大赛的原名是什么？"
        ));
        assert!(!asks_for_description(
            "文学院的全职教师包括哪位80后青年作家？"
        ));
        // a short sentence is quoted whole
        let u = "面积：约0.3平方公里，位于城东。";
        let j = u.find("0.3").unwrap();
        assert_eq!(
            quote_around(u, j, j + 3, 40, 50),
            "面积：约0.3平方公里，位于城东。"
        );
    }

    #[test]
    fn numbers_the_evidence_lacks_lower_confidence() {
        assert_eq!(numbers_in("2016年第17届3人"), vec!["2016", "17"]);
        let ev = |t: &str| Evidence {
            n: 1,
            chunk_id: 1,
            doc_key: "d".into(),
            title: "2015年招生简章".into(),
            heading_path: Vec::new(),
            location: Default::default(),
            text: t.into(),
            score: 1.0,
        };
        assert_eq!(
            missing_numbers("2016年圆梦计划招多少人", &[ev("招收80人")]),
            1
        );
        assert_eq!(
            missing_numbers("2015年圆梦计划招多少人", &[ev("招收80人")]),
            0
        );
        let s = Signals {
            coverage: 0.8,
            missing_numbers: 1,
            ..Default::default()
        };
        assert!((s.confidence() - 0.4).abs() < 1e-6);
        // a paraphrase: few shared words, close in meaning
        let p = Signals {
            coverage: 0.57,
            bm25_share: 0.36,
            cosine: 0.9,
            ..Default::default()
        };
        assert!(p.confidence() > 0.6, "{}", p.confidence());
        // the passage is on the subject, but no sentence shown says what the question asks
        let off = Signals {
            sentence_cosine: 0.86,
            ..p
        };
        assert!(
            off.confidence() < AskOptions::default().refuse_below,
            "{}",
            off.confidence()
        );
        let on = Signals {
            sentence_cosine: 0.93,
            ..p
        };
        assert!(on.confidence() > p.confidence(), "{}", on.confidence());
    }

    #[test]
    fn only_subject_fields_make_questions_ambiguous() {
        assert!(is_subject_field("department", "销售部"));
        assert!(is_subject_field("city", "Hangzhou"));
        assert!(!is_subject_field("date", "2022-05-24"));
        assert!(!is_subject_field("batch", "2022-05-24"));
        assert!(!is_subject_field("updated_at", "昨天"));
        assert!(!is_subject_field("url", "https://a.b/c"));
    }

    #[test]
    fn citation_markers_are_stripped() {
        assert_eq!(
            strip_citations("顺延至次年3月31日[1]。"),
            "顺延至次年3月31日。"
        );
        assert_eq!(strip_citations("见[2][1]与【3】，[1, 4]"), "见与，");
        assert_eq!(strip_citations("数组a[i]与[x]"), "数组a[i]与[x]");
    }

    #[test]
    fn long_sentences_are_cut_into_clauses_that_cover_them() {
        let s = "本作以三大故事为主轴，分别是以武田信玄等人为主的《关东三国志》，织田信长等人为主的《战国三杰》，石田三成等人为主的《关原的年轻武者》，丰富游戏内的剧情。短句。";
        let units = evidence_units(s);
        assert_eq!(units.concat(), s);
        assert!(units.len() >= 3, "{units:?}");
        assert!(units.iter().all(|u| u.chars().count() <= 70), "{units:?}");
    }

    #[test]
    fn citations_are_parsed_in_every_spelling() {
        assert_eq!(cited_numbers("顺延至次年3月31日[1]。"), vec![1]);
        assert_eq!(cited_numbers("见[2][1]与【3】，[1, 4]"), vec![2, 1, 3, 4]);
        assert_eq!(cited_numbers("数组a[i]与[x]"), Vec::<usize>::new());
    }

    /// A chunk of the staff handbook, as retrieval returns it.
    fn handbook_hit(id: u64, text: &str, headings: &[&str]) -> SearchHit {
        SearchHit {
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
                heading_path: headings.iter().map(|h| h.to_string()).collect(),
                location: Default::default(),
            },
        }
    }

    #[test]
    fn evidence_keeps_the_answering_sentence_within_budget() {
        let hit = |id: u64, text: &str| handbook_hit(id, text, &["年假"]);
        let hits = vec![
            hit(1, "员工入职满一年后享有带薪年假。工作满1年不满10年的，年假5天。当年未休的年假可顺延至次年3月31日，逾期作废。"),
            hit(2, "病假须提供医院证明。连续病假超过3天的，须提供诊断证明。"),
        ];
        let analyzer = Analyzer::new(AnalyzerConfig::default());
        let q = "没休完的年假能顺延到什么时候";
        let terms = QuestionTerms::new(
            analyzer.terms(q).into_iter().map(|t| (t, 1.0)).collect(),
            &analyzer,
        );
        let (ev, best, _) = select_evidence(&terms, &hits, 3, 3, 40);
        assert!(best > 0.3, "{best}");
        assert_eq!(ev[0].n, 1);
        assert!(ev[0].text.contains("次年3月31日"), "{ev:?}");
        let total: usize = ev.iter().map(|e| e.text.chars().count()).sum();
        assert!(total <= 40 + 2, "{total}: {ev:?}");
    }

    #[test]
    fn a_sentence_two_overlapping_chunks_hold_is_shown_once() {
        // the same page twice, cut at other places: the second chunk's sentence lies inside the
        // first's (with other punctuation and a line break), and only its new sentence is news
        let hits = vec![
            handbook_hit(
                1,
                "当年未休的年假可顺延至次年3月31日，逾期作废，\n不折算工资。员工入职满一年后享有带薪年假。",
                &["年假"],
            ),
            handbook_hit(
                2,
                "当年未休的年假可顺延至次年3月31日。年假顺延须经部门负责人同意。",
                &["年假"],
            ),
        ];
        let analyzer = Analyzer::new(AnalyzerConfig::default());
        let q = "没休完的年假能顺延到什么时候";
        let terms = QuestionTerms::new(
            analyzer.terms(q).into_iter().map(|t| (t, 1.0)).collect(),
            &analyzer,
        );
        let (ev, ..) = select_evidence(&terms, &hits, 3, 3, 200);
        let shown: Vec<&str> = ev.iter().map(|e| e.text.as_str()).collect();
        let times = shown.concat().matches("次年3月31日").count();
        assert_eq!(times, 1, "{shown:?}");
        assert!(shown.concat().contains("部门负责人同意"), "{shown:?}");
        // a short phrase inside a longer sentence is not a repeat: it may say something else
        let mut seen = SeenUnits::default();
        assert!(seen.is_new("年假顺延须经部门负责人同意。"));
        assert!(seen.is_new("年假顺延"));
        assert!(!seen.is_new("年假顺延须经部门负责人同意"));
    }

    #[test]
    fn evidence_by_meaning_takes_the_sentence_that_answers_in_other_words() {
        let hit = handbook_hit(
            1,
            "年假的天数按工龄计算，年假可以分次休。工作满一年的员工享有5天带薪休假。",
            &[],
        );
        let analyzer = Analyzer::new(AnalyzerConfig::default());
        let q = "年假有几天";
        let terms = QuestionTerms::new(
            analyzer.terms(q).into_iter().map(|t| (t, 1.0)).collect(),
            &analyzer,
        );
        let hits = [hit];
        // a budget for one sentence: the terms pick the one that repeats the question
        let (ev, by_terms, _) = select_evidence(&terms, &hits, 3, 3, 20);
        assert!(ev[0].text.starts_with("年假的天数"), "{ev:?}");
        // the embedding finds the sentence that answers
        let cosines = |texts: &[&str]| -> Result<Vec<f32>> {
            Ok(texts
                .iter()
                .map(|t| if t.contains("5天") { 0.95 } else { 0.5 })
                .collect())
        };
        let (ev, best, _) = select_evidence_with(&terms, &hits, 3, 3, 20, Some((&cosines, 1.0)));
        assert_eq!(ev[0].text, "工作满一年的员工享有5天带薪休假。", "{ev:?}");
        // the refusal signal is still the terms' best coverage
        assert_eq!(best, by_terms);
        // weight 0, or an embedding that fails: the terms' order
        let (ev, ..) = select_evidence_with(&terms, &hits, 3, 3, 20, Some((&cosines, 0.0)));
        assert!(ev[0].text.starts_with("年假的天数"), "{ev:?}");
        let failing =
            |_: &[&str]| -> Result<Vec<f32>> { Err(Error::internal("embedding", "no model")) };
        let (ev, ..) = select_evidence_with(&terms, &hits, 3, 3, 20, Some((&failing, 1.0)));
        assert!(ev[0].text.starts_with("年假的天数"), "{ev:?}");
    }
}
