//! Conversations, kept in the registry (`luodi.sqlite`): one row per conversation and one per
//! turn, with the question as asked, the standalone question retrieval used, the answer, its
//! citations and timings, and the model fingerprint and knowledge-base content version that
//! produced it — so any answer can be traced and reproduced.
//!
//! Listing reads the `conversations` table only (an index on `updated_at`), and opening one
//! reads its turns by primary key, so both stay fast with many thousands of conversations.

use std::time::{SystemTime, UNIX_EPOCH};

use luodi_core::{Error, Result};
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use std::time::Instant;

use luodi_core::Embedder;
use luodi_models::llm::Generator;

use crate::answer::{Answer, AnswerFormat, AskOptions, Choice, Evidence};
use crate::context::PastTurn;
use crate::home::{Home, Kb};
use crate::retrieve::EmbedCache;

/// The registry migration that adds conversations.
pub(crate) const MIGRATION: &str = "
    CREATE TABLE conversations(
        id TEXT PRIMARY KEY,
        kb TEXT NOT NULL,
        title TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        turns INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX conversations_by_time ON conversations(updated_at DESC, id DESC);
    CREATE INDEX conversations_by_kb ON conversations(kb, updated_at DESC, id DESC);
    CREATE TABLE turns(
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY(conversation_id, seq)
    ) WITHOUT ROWID;
";

/// A conversation as listed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConversationInfo {
    pub id: String,
    pub kb: String,
    /// The first question.
    pub title: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub turns: u32,
}

/// One question and its answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Turn {
    pub seq: u32,
    pub question: String,
    /// The question as retrieval saw it, completed from earlier turns.
    pub standalone: String,
    pub answer: String,
    pub citations: Vec<Evidence>,
    pub refused: bool,
    /// Choices offered instead of an answer (a clarifying question).
    #[serde(default)]
    pub choices: Vec<Choice>,
    pub format: AnswerFormat,
    pub confidence: f32,
    pub ttft_ms: f64,
    pub total_ms: f64,
    pub model: String,
    /// sha256 of the model's weights (or a remote model's identity).
    pub model_fingerprint: String,
    /// The knowledge base's content version when it answered.
    pub kb_version: u64,
    pub created_at: i64,
}

/// A conversation with its turns, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Conversation {
    pub info: ConversationInfo,
    pub turns: Vec<Turn>,
}

fn sql(context: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |e| Error::internal(context, e)
}

/// Seconds since the Unix epoch (0 on a clock set before it).
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A new conversation id: time-ordered (milliseconds) with random bits, 20 hex digits.
pub(crate) fn new_id() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut h = blake3::Hasher::new();
    h.update(&now.as_nanos().to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    h.update(
        &COUNTER
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_le_bytes(),
    );
    let r = h.finalize();
    format!("{:011x}{}", now.as_millis(), &r.to_hex()[..9])
}

impl Home {
    /// The questions asked of `kb` in its conversations, the most recent conversations first
    /// (at most `limit`): what people call things, for glossary suggestions.
    pub fn questions_asked(&self, kb: &str, limit: usize) -> Result<Vec<String>> {
        let conn = self.registry()?;
        let mut st = conn
            .prepare(
                "SELECT t.data FROM turns t JOIN conversations c ON c.id = t.conversation_id \
                 WHERE c.kb = ?1 ORDER BY c.updated_at DESC, t.seq LIMIT ?2",
            )
            .map_err(sql("conversation"))?;
        let rows = st
            .query_map(rusqlite::params![kb, limit as i64], |r| {
                r.get::<_, String>(0)
            })
            .map_err(sql("conversation"))?;
        let mut out = Vec::new();
        for data in rows {
            let data = data.map_err(sql("conversation"))?;
            // a turn that does not parse is skipped: suggestions are only suggestions
            if let Ok(t) = serde_json::from_str::<Turn>(&data) {
                out.push(t.question);
            }
        }
        Ok(out)
    }

    /// Starts a conversation with knowledge base `kb` (which must exist).
    pub fn conversation_create(&self, kb: &str, title: &str) -> Result<ConversationInfo> {
        if self.get(kb)?.is_none() {
            return Err(Error::InvalidInput(format!(
                "no knowledge base named {kb:?}: see `luodi kb list`"
            )));
        }
        let now = now_secs();
        let info = ConversationInfo {
            id: new_id(),
            kb: kb.to_owned(),
            title: title.chars().take(200).collect(),
            created_at: now,
            updated_at: now,
            turns: 0,
        };
        let conn = self.registry()?;
        conn.execute(
            "INSERT INTO conversations(id, kb, title, created_at, updated_at, turns) VALUES(?1, ?2, ?3, ?4, ?5, 0)",
            params![info.id, info.kb, info.title, info.created_at, info.updated_at],
        )
        .map_err(sql("conversation"))?;
        Ok(info)
    }

    /// Appends a turn (its `seq` is set to the next number) in one transaction.
    pub fn conversation_add_turn(&self, id: &str, turn: &Turn) -> Result<Turn> {
        let mut conn = self.registry()?;
        let tx = conn.transaction().map_err(sql("conversation"))?;
        let turns: Option<u32> = tx
            .query_row("SELECT turns FROM conversations WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql("conversation"))?;
        let Some(turns) = turns else {
            return Err(Error::InvalidInput(format!("no conversation {id:?}")));
        };
        let mut t = turn.clone();
        t.seq = turns + 1;
        let data = serde_json::to_string(&t).map_err(|e| Error::internal("conversation", e))?;
        tx.execute(
            "INSERT INTO turns(conversation_id, seq, data) VALUES(?1, ?2, ?3)",
            params![id, t.seq, data],
        )
        .map_err(sql("conversation"))?;
        tx.execute(
            "UPDATE conversations SET turns = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, t.seq, t.created_at.max(now_secs())],
        )
        .map_err(sql("conversation"))?;
        tx.commit().map_err(sql("conversation"))?;
        Ok(t)
    }

    /// Conversations, most recently updated first; of one knowledge base when `kb` is given.
    pub fn conversations(
        &self,
        kb: Option<&str>,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<ConversationInfo>> {
        let conn = self.registry()?;
        let map = |r: &rusqlite::Row<'_>| {
            Ok(ConversationInfo {
                id: r.get(0)?,
                kb: r.get(1)?,
                title: r.get(2)?,
                created_at: r.get(3)?,
                updated_at: r.get(4)?,
                turns: r.get(5)?,
            })
        };
        let limit = limit.min(i64::MAX as usize) as i64;
        let offset = offset as i64;
        let rows = match kb {
            Some(kb) => conn
                .prepare_cached(
                    "SELECT id, kb, title, created_at, updated_at, turns FROM conversations
                     WHERE kb = ?1 ORDER BY updated_at DESC, id DESC LIMIT ?2 OFFSET ?3",
                )
                .map_err(sql("conversations"))?
                .query_map(params![kb, limit, offset], map)
                .map_err(sql("conversations"))?
                .collect::<std::result::Result<Vec<_>, _>>(),
            None => conn
                .prepare_cached(
                    "SELECT id, kb, title, created_at, updated_at, turns FROM conversations
                     ORDER BY updated_at DESC, id DESC LIMIT ?1 OFFSET ?2",
                )
                .map_err(sql("conversations"))?
                .query_map(params![limit, offset], map)
                .map_err(sql("conversations"))?
                .collect::<std::result::Result<Vec<_>, _>>(),
        };
        rows.map_err(sql("conversations"))
    }

    /// A conversation with all its turns, or `None` if there is no such conversation. A
    /// unique prefix of an id (at least 6 characters) names it too.
    pub fn conversation(&self, id: &str) -> Result<Option<Conversation>> {
        let conn = self.registry()?;
        let full: Vec<String> = if id.len() >= 6 && id.len() < 20 {
            conn.prepare_cached("SELECT id FROM conversations WHERE id >= ?1 AND id < ?2 LIMIT 2")
                .map_err(sql("conversation"))?
                .query_map(params![id, format!("{id}\u{7f}")], |r| r.get(0))
                .map_err(sql("conversation"))?
                .collect::<std::result::Result<_, _>>()
                .map_err(sql("conversation"))?
        } else {
            vec![id.to_owned()]
        };
        let [id] = full.as_slice() else {
            if full.len() > 1 {
                return Err(Error::InvalidInput(format!(
                    "{id:?} names more than one conversation: give more of its id"
                )));
            }
            return Ok(None);
        };
        let info = conn
            .prepare_cached(
                "SELECT id, kb, title, created_at, updated_at, turns FROM conversations WHERE id = ?1",
            )
            .map_err(sql("conversation"))?
            .query_row([id], |r| {
                Ok(ConversationInfo {
                    id: r.get(0)?,
                    kb: r.get(1)?,
                    title: r.get(2)?,
                    created_at: r.get(3)?,
                    updated_at: r.get(4)?,
                    turns: r.get(5)?,
                })
            })
            .optional()
            .map_err(sql("conversation"))?;
        let Some(info) = info else {
            return Ok(None);
        };
        let mut st = conn
            .prepare_cached("SELECT seq, data FROM turns WHERE conversation_id = ?1 ORDER BY seq")
            .map_err(sql("conversation"))?;
        let rows = st
            .query_map([id], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?)))
            .map_err(sql("conversation"))?;
        let mut turns = Vec::new();
        for row in rows {
            let (seq, data) = row.map_err(sql("conversation"))?;
            let t: Turn = serde_json::from_str(&data).map_err(|e| Error::Corrupt {
                path: self.root().join("luodi.sqlite"),
                reason: format!("conversation {id} turn {seq}: {e}"),
            })?;
            turns.push(t);
        }
        Ok(Some(Conversation { info, turns }))
    }

    /// Deletes a conversation and its turns; `false` if there was none.
    pub fn conversation_delete(&self, id: &str) -> Result<bool> {
        let mut conn = self.registry()?;
        let tx = conn.transaction().map_err(sql("conversation"))?;
        tx.execute("DELETE FROM turns WHERE conversation_id = ?1", [id])
            .map_err(sql("conversation"))?;
        let n = tx
            .execute("DELETE FROM conversations WHERE id = ?1", [id])
            .map_err(sql("conversation"))?;
        tx.commit().map_err(sql("conversation"))?;
        Ok(n > 0)
    }
}

/// The choice a reply to a clarifying question picks: its number ("2", "第2个"), or its
/// value named ("销售部").
pub fn pick_choice(choices: &[Choice], reply: &str) -> Option<Choice> {
    let r = reply.trim().trim_end_matches(['。', '.', '!', '！']);
    let digits: String = r.chars().filter(|c| c.is_ascii_digit()).collect();
    let others = r
        .chars()
        .filter(|c| !c.is_ascii_digit() && !"第个項项号號. 、)）".contains(*c))
        .count();
    if !digits.is_empty() && others == 0 {
        let n: usize = digits.parse().ok()?;
        return choices.get(n.checked_sub(1)?).cloned();
    }
    let folded = luodi_text::fold_for_search(r);
    if folded.chars().count() < 2 {
        return None;
    }
    choices
        .iter()
        .find(|c| {
            let v = luodi_text::fold_for_search(&c.value);
            folded.contains(&v) || v.contains(&folded)
        })
        .cloned()
}

impl Home {
    /// Asks `question` as the next turn of conversation `id` on `kb`: a follow-up is read
    /// with the turns before it, a reply to a clarifying question answers the question it
    /// clarifies for the chosen subject, and the turn is stored with its answer, citations,
    /// timings, model fingerprint and the knowledge base's content version.
    #[allow(clippy::too_many_arguments)]
    pub fn ask_in_conversation(
        &self,
        kb: &Kb,
        id: &str,
        question: &str,
        generator: &dyn Generator,
        embed: Option<(&dyn Embedder, &EmbedCache)>,
        opts: &AskOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<(Answer, Turn)> {
        self.ask_turn(kb, id, question, &[], generator, embed, opts, on_text)
    }

    /// [`Home::ask_in_conversation`] where the conversation may have begun elsewhere: `prior`
    /// turns (a client that sends the whole history, as OpenAI's API does) stand in for the
    /// stored ones while the conversation has none.
    #[allow(clippy::too_many_arguments)]
    pub fn ask_turn(
        &self,
        kb: &Kb,
        id: &str,
        question: &str,
        prior: &[PastTurn],
        generator: &dyn Generator,
        embed: Option<(&dyn Embedder, &EmbedCache)>,
        opts: &AskOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<(Answer, Turn)> {
        let started = Instant::now();
        let conv = self
            .conversation(id)?
            .ok_or_else(|| Error::InvalidInput(format!("no conversation {id:?}")))?;
        if conv.info.kb != kb.name() {
            return Err(Error::InvalidInput(format!(
                "conversation {} is with knowledge base {:?}, not {:?}",
                conv.info.id,
                conv.info.kb,
                kb.name()
            )));
        }
        let history: Vec<PastTurn> = conv
            .turns
            .iter()
            .filter(|t| t.choices.is_empty() && !t.refused)
            .map(|t| PastTurn {
                question: t.standalone.clone(),
                answer: t.answer.clone(),
            })
            .collect();
        let history = if history.is_empty() && conv.turns.is_empty() {
            prior.to_vec()
        } else {
            history
        };
        let mut opts = opts.clone();
        let mut asked = question.to_owned();
        let mut chosen = None;
        if let Some(last) = conv.turns.last() {
            if let Some(c) = pick_choice(&last.choices, question) {
                // the question asked before, about the chosen subject's documents only
                asked = last.question.clone();
                opts.filters.push((c.key.clone(), c.value.clone()));
                chosen = Some(c);
            }
        }
        let p = kb.prepare_in(&asked, &history, embed, &opts)?;
        let answer = kb.generate(p, generator, &opts, started, on_text)?;
        let standalone = match &chosen {
            Some(c) => format!("{}（{}={}）", answer.standalone, c.key, c.value),
            None => answer.standalone.clone(),
        };
        // a vetted FAQ's answer is traced to the FAQ, not to the model that did not run
        let (model, model_fingerprint) = match &answer.faq {
            Some(f) => ("faq".to_owned(), format!("faq#{}", f.id)),
            None => (generator.name().to_owned(), generator.fingerprint()),
        };
        let turn = Turn {
            seq: 0,
            question: question.trim().to_owned(),
            standalone,
            answer: answer.text.clone(),
            citations: answer.citations.clone(),
            refused: answer.refused,
            choices: answer.choices.clone(),
            format: opts.format,
            confidence: answer.confidence,
            ttft_ms: answer.ttft_ms,
            total_ms: answer.total_ms,
            model,
            model_fingerprint,
            kb_version: kb.store.version()?,
            created_at: now_secs(),
        };
        let turn = self.conversation_add_turn(&conv.info.id, &turn)?;
        Ok((answer, turn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_pick_choices_by_number_or_name() {
        let choices = vec![
            Choice {
                key: "department".into(),
                value: "财务部".into(),
            },
            Choice {
                key: "department".into(),
                value: "销售部".into(),
            },
        ];
        assert_eq!(
            pick_choice(&choices, "2").map(|c| c.value),
            Some("销售部".into())
        );
        assert_eq!(
            pick_choice(&choices, "第1个").map(|c| c.value),
            Some("财务部".into())
        );
        assert_eq!(
            pick_choice(&choices, "銷售部的").map(|c| c.value),
            Some("销售部".into())
        );
        assert_eq!(pick_choice(&choices, "3"), None);
        assert_eq!(pick_choice(&choices, "年假有几天"), None);
        assert_eq!(pick_choice(&[], "1"), None);
    }

    #[test]
    fn ids_are_time_ordered_and_unique() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let c = new_id();
        assert!(c[..11] > a[..11], "{a} {c}");
    }
}
