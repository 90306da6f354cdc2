//! The OpenAI-compatible endpoints: `/v1/chat/completions` (a `model` of `kb:NAME` answers
//! from that knowledge base with citations; any other model is plain chat with the local
//! model), `/v1/embeddings` and `/v1/models`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine as _;
use futures_util::StreamExt;
use luodi_core::{Embedder, SearchMode};
use luodi_engine::{now_secs as now, Answer, AnswerFormat, AskOptions, PastTurn, Turn};
use luodi_models::llm::{ChatMessage, GenParams, Generator, Role};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::error::{ApiError, ApiJson};
use crate::{AppState, AuditDetail, AuditKb, Caller};

/// `GET /v1/models`: the local model and the knowledge bases this key may use.
pub async fn models(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let mut data = vec![json!({
        "id": st.model_label(),
        "object": "model",
        "created": 0,
        "owned_by": "luodi",
    })];
    for kb in st.home.list()? {
        if key.can_read(&kb.name) {
            data.push(json!({
                "id": format!("kb:{}", kb.name),
                "object": "model",
                "created": kb.created_at,
                "owned_by": "luodi",
            }));
        }
    }
    Ok(Json(json!({"object": "list", "data": data})))
}

/// A message's content: a string, or OpenAI's list of parts (the text parts are read).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Value>),
    Null(()),
}

impl Content {
    fn text(&self) -> String {
        match self {
            Content::Text(s) => s.clone(),
            Content::Parts(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(""),
            Content::Null(()) => String::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct Message {
    pub role: String,
    #[serde(default = "no_content")]
    pub content: Content,
}

fn no_content() -> Content {
    Content::Null(())
}

#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub stream: bool,
    pub max_tokens: Option<usize>,
    pub max_completion_tokens: Option<usize>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub stop: Option<Value>,
    pub seed: Option<u32>,
    /// luodi: continue this stored conversation (knowledge-base chats).
    pub conversation_id: Option<String>,
    /// luodi: plain, summary, table or list.
    pub format: Option<AnswerFormat>,
    /// luodi: only documents with these metadata values (the answer to a clarifying question).
    #[serde(default)]
    pub filters: Vec<(String, String)>,
    /// luodi: bm25, dense or hybrid retrieval.
    pub mode: Option<SearchMode>,
}

enum ChatEvent {
    Text(String),
    Done(Box<Outcome>),
    Failed(ApiError),
}

struct Outcome {
    text: String,
    prompt_tokens: usize,
    completion_tokens: usize,
    /// Knowledge-base answers: what the answer stands on.
    grounded: Option<(Answer, Turn, String)>,
}

/// The model a queued task was given, or the failure sent to its request when it could not
/// be loaded.
fn loaded<'g>(
    generator: Result<&'g dyn Generator, &str>,
    tx: &mpsc::UnboundedSender<ChatEvent>,
) -> Option<&'g dyn Generator> {
    match generator {
        Ok(g) => Some(g),
        Err(why) => {
            let _ = tx.send(ChatEvent::Failed(ApiError::unavailable(format!(
                "the model is not available: {why}"
            ))));
            None
        }
    }
}

fn luodi_fields(o: &Outcome) -> Value {
    match &o.grounded {
        None => Value::Null,
        Some((a, turn, conversation)) => json!({
            "conversation_id": conversation,
            "turn": turn.seq,
            "refused": a.refused,
            "unsupported": a.unsupported,
            "confidence": a.confidence,
            "choices": a.choices,
            "standalone": a.standalone,
            "evidence": if a.refused { json!(a.evidence) } else { json!([]) },
            // answered with a vetted FAQ's text, without generation
            "faq": a.faq,
            "ttft_ms": a.ttft_ms,
            "total_ms": a.total_ms,
        }),
    }
}

fn citations(o: &Outcome) -> Value {
    match &o.grounded {
        None => json!([]),
        Some((a, _, _)) => json!(a.citations),
    }
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiJson(req): ApiJson<ChatRequest>,
) -> Result<Response, ApiError> {
    let t0 = Instant::now();
    if req.messages.is_empty() {
        return Err(ApiError::bad_field(
            "messages",
            "messages: give at least one message",
        ));
    }
    let mut messages = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.iter().enumerate() {
        let role = match m.role.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(ApiError::bad_field(
                    &format!("messages[{i}].role"),
                    format!("messages[{i}].role: {other:?} is not system, user or assistant"),
                ))
            }
        };
        messages.push(ChatMessage {
            role,
            content: m.content.text(),
        });
    }
    let max_tokens = req.max_completion_tokens.or(req.max_tokens);
    let (tx, rx) = mpsc::unbounded_channel::<ChatEvent>();
    let model_name = req.model.clone();
    let mut audit_kb = None;
    let task: crate::queue::Task = if let Some(name) = req.model.strip_prefix("kb:") {
        let kb = st.readable_kb(&key, name)?;
        audit_kb = Some(name.to_owned());
        let Some(last_user) = messages.iter().rposition(|m| m.role == Role::User) else {
            return Err(ApiError::bad_field(
                "messages",
                "messages: a knowledge-base chat needs a user message to answer",
            ));
        };
        let question = messages[last_user].content.trim().to_owned();
        if question.is_empty() {
            return Err(ApiError::bad_field(
                &format!("messages[{last_user}].content"),
                "the question is empty",
            ));
        }
        // earlier (user, assistant) pairs stand in for a conversation begun elsewhere
        let mut prior = Vec::new();
        let mut pending_q: Option<&str> = None;
        for m in &messages[..last_user] {
            match m.role {
                Role::User => pending_q = Some(&m.content),
                Role::Assistant => {
                    if let Some(q) = pending_q.take() {
                        prior.push(PastTurn {
                            question: q.to_owned(),
                            answer: m.content.clone(),
                        });
                    }
                }
                Role::System => {}
            }
        }
        let conversation = match &req.conversation_id {
            Some(id) => {
                let c = st
                    .home
                    .conversation(id)?
                    .filter(|c| c.info.kb == name && key.can_read(&c.info.kb))
                    .ok_or_else(|| ApiError::not_found(format!("conversation {id:?} not found")))?;
                Some(c.info.id)
            }
            // made when the model takes the question, so a refused request leaves none
            None => None,
        };
        let d = AskOptions::default();
        let opts = AskOptions {
            mode: req.mode.unwrap_or(d.mode),
            format: req.format.unwrap_or(d.format),
            max_tokens: max_tokens.unwrap_or(d.max_tokens),
            filters: req.filters.clone(),
            ..d
        };
        let st2 = st.clone();
        let tx = tx.clone();
        Box::new(move |generator| {
            let Some(generator) = loaded(generator, &tx) else {
                return;
            };
            let conversation = match conversation {
                Some(id) => id,
                None => {
                    let title: String = question.chars().take(80).collect();
                    match st2.home.conversation_create(kb.name(), &title) {
                        Ok(c) => c.id,
                        Err(e) => {
                            let _ = tx.send(ChatEvent::Failed(e.into()));
                            return;
                        }
                    }
                }
            };
            st2.metrics.generating.set(1);
            let embed = st2
                .embedder
                .as_ref()
                .map(|e| (e.as_ref() as &dyn Embedder, st2.cache.as_ref()));
            let r = st2.home.ask_turn(
                &kb,
                &conversation,
                &question,
                &prior,
                generator,
                embed,
                &opts,
                &mut |piece| {
                    let _ = tx.send(ChatEvent::Text(piece.to_owned()));
                },
            );
            st2.metrics.generating.set(0);
            let _ = tx.send(match r {
                Ok((answer, turn)) => ChatEvent::Done(Box::new(Outcome {
                    text: answer.text.clone(),
                    prompt_tokens: answer.prompt_tokens,
                    completion_tokens: answer.completion_tokens,
                    grounded: Some((answer, turn, conversation)),
                })),
                Err(e) => ChatEvent::Failed(e.into()),
            });
        })
    } else {
        let label = st.model_label();
        if req.model != label && req.model != st.config.model && req.model != "default" {
            return Err(ApiError::not_found(format!(
                "model {:?} not found: use {label:?} or kb:NAME (GET /v1/models lists them)",
                req.model
            )));
        }
        let d = GenParams::default();
        let stop = match &req.stop {
            None | Some(Value::Null) => d.stop.clone(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(_) => {
                return Err(ApiError::bad_field(
                    "stop",
                    "stop: a string or a list of strings",
                ))
            }
        };
        let params = GenParams {
            max_tokens: max_tokens.unwrap_or(512),
            temperature: req.temperature.unwrap_or(d.temperature),
            top_p: req.top_p.unwrap_or(d.top_p),
            seed: req.seed.unwrap_or(d.seed),
            stop,
            ..d
        };
        let tx = tx.clone();
        let st2 = st.clone();
        Box::new(move |generator| {
            let Some(generator) = loaded(generator, &tx) else {
                return;
            };
            st2.metrics.generating.set(1);
            let r = generator.chat(&messages, &params, &mut |piece| {
                tx.send(ChatEvent::Text(piece.to_owned())).is_ok()
            });
            st2.metrics.generating.set(0);
            let _ = tx.send(match r {
                Ok(g) => ChatEvent::Done(Box::new(Outcome {
                    text: g.text,
                    prompt_tokens: g.prompt_tokens,
                    completion_tokens: g.completion_tokens,
                    grounded: None,
                })),
                Err(e) => ChatEvent::Failed(ApiError::internal(format!("generation: {e}"))),
            });
        })
    };
    drop(tx);
    match st.queue.submit(&key.id, task) {
        Ok(_) => {}
        Err(full) => {
            st.metrics.rejected.inc();
            return Err(ApiError::too_many(
                full.retry_after,
                if full.per_key {
                    "this key already has as many questions waiting as it may: retry later"
                } else {
                    "the model is busy and its queue is full: retry later"
                },
            ));
        }
    }
    st.metrics.queue_depth.set(st.queue.depth() as i64);
    let id = format!("chatcmpl-{:x}{:x}", now(), t0.elapsed().subsec_nanos());
    let created = now();
    let mut response = if req.stream {
        stream_response(st.clone(), rx, id, created, model_name, t0).into_response()
    } else {
        let outcome = collect(rx).await?;
        record_tokens(&st, &outcome, t0, None);
        let finish = if outcome.completion_tokens >= max_tokens.unwrap_or(usize::MAX) {
            "length"
        } else {
            "stop"
        };
        Json(json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model_name,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": outcome.text},
                "finish_reason": finish,
                "logprobs": null,
            }],
            "usage": {
                "prompt_tokens": outcome.prompt_tokens,
                "completion_tokens": outcome.completion_tokens,
                "total_tokens": outcome.prompt_tokens + outcome.completion_tokens,
            },
            "citations": citations(&outcome),
            "luodi": luodi_fields(&outcome),
        }))
        .into_response()
    };
    if let Some(kb) = audit_kb {
        response.extensions_mut().insert(AuditKb(kb));
    }
    if let Some(q) = messages_last_user(&req.messages) {
        response.extensions_mut().insert(AuditDetail(q));
    }
    Ok(response)
}

fn messages_last_user(messages: &[Message]) -> Option<String> {
    messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(|m| m.content.text())
}

fn record_tokens(st: &AppState, o: &Outcome, t0: Instant, ttft: Option<f64>) {
    st.metrics
        .completion_tokens
        .inc_by(o.completion_tokens as u64);
    st.metrics.prompt_tokens.inc_by(o.prompt_tokens as u64);
    let secs = t0.elapsed().as_secs_f64();
    if o.completion_tokens > 0 && secs > 0.0 {
        st.metrics
            .tokens_per_second
            .set(o.completion_tokens as f64 / secs);
    }
    let ttft = ttft.or_else(|| o.grounded.as_ref().map(|(a, _, _)| a.ttft_ms / 1000.0));
    if let Some(t) = ttft {
        st.metrics.time_to_first_token.observe(t);
    }
    st.metrics.queue_depth.set(st.queue.depth() as i64);
}

async fn collect(mut rx: mpsc::UnboundedReceiver<ChatEvent>) -> Result<Outcome, ApiError> {
    while let Some(ev) = rx.recv().await {
        match ev {
            ChatEvent::Text(_) => {}
            ChatEvent::Done(o) => return Ok(*o),
            ChatEvent::Failed(e) => return Err(e),
        }
    }
    Err(ApiError::internal(
        "the answer was lost (generation stopped)",
    ))
}

fn stream_response(
    st: Arc<AppState>,
    rx: mpsc::UnboundedReceiver<ChatEvent>,
    id: String,
    created: i64,
    model: String,
    t0: Instant,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let chunk = move |delta: Value, finish: Option<&str>, extra: Option<(Value, Value)>| {
        let mut v = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
        });
        if let Some((citations, luodi)) = extra {
            v["citations"] = citations;
            v["luodi"] = luodi;
        }
        Event::default().data(v.to_string())
    };
    let first = chunk(json!({"role": "assistant", "content": ""}), None, None);
    let streamed = String::new();
    let state = (rx, streamed, false, None::<f64>);
    let body =
        futures_util::stream::unfold(state, move |(mut rx, mut streamed, done, mut ttft)| {
            let chunk = chunk.clone();
            let st = st.clone();
            async move {
                if done {
                    return None;
                }
                match rx.recv().await {
                    Some(ChatEvent::Text(t)) => {
                        if ttft.is_none() {
                            ttft = Some(t0.elapsed().as_secs_f64());
                        }
                        streamed.push_str(&t);
                        let ev = chunk(json!({"content": t}), None, None);
                        Some((vec![ev], (rx, streamed, false, ttft)))
                    }
                    Some(ChatEvent::Done(o)) => {
                        record_tokens(&st, &o, t0, ttft);
                        let mut events = Vec::new();
                        // the answer luodi stands by may extend what was streamed (a citation
                        // attributed after generation): the rest follows as one more delta
                        if o.text != streamed {
                            if let Some(rest) = o.text.strip_prefix(streamed.as_str()) {
                                events.push(chunk(json!({"content": rest}), None, None));
                            }
                        }
                        let mut luodi = luodi_fields(&o);
                        if !o.text.starts_with(streamed.as_str()) {
                            luodi["answer"] = json!(o.text);
                        }
                        events.push(chunk(json!({}), Some("stop"), Some((citations(&o), luodi))));
                        events.push(Event::default().data("[DONE]"));
                        Some((events, (rx, streamed, true, ttft)))
                    }
                    Some(ChatEvent::Failed(e)) => {
                        let events = vec![
                            Event::default().data(e.body().to_string()),
                            Event::default().data("[DONE]"),
                        ];
                        Some((events, (rx, streamed, true, ttft)))
                    }
                    None => None,
                }
            }
        })
        .flat_map(futures_util::stream::iter);
    let all = futures_util::stream::once(async move { first })
        .chain(body)
        .map(Ok::<_, Infallible>);
    Sse::new(all).keep_alive(KeepAlive::default())
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
pub struct EmbeddingRequest {
    pub input: EmbeddingInput,
    #[serde(default)]
    pub model: Option<String>,
    /// `float` (default) or `base64` (little-endian f32, as OpenAI's SDK asks for).
    pub encoding_format: Option<String>,
    /// luodi: `query` (default) or `passage` — e5 embeds the two sides differently.
    pub input_type: Option<String>,
}

/// `POST /v1/embeddings`.
pub async fn embeddings(
    State(st): State<Arc<AppState>>,
    ApiJson(req): ApiJson<EmbeddingRequest>,
) -> Result<Json<Value>, ApiError> {
    let Some(embedder) = st.embedder.clone() else {
        return Err(ApiError::unavailable(
            "the embedding model is not installed (luodi models install)",
        ));
    };
    let texts = match req.input {
        EmbeddingInput::One(s) => vec![s],
        EmbeddingInput::Many(v) => v,
    };
    if texts.is_empty() || texts.len() > 256 {
        return Err(ApiError::bad_field("input", "input: give 1-256 texts"));
    }
    if let Some(i) = texts.iter().position(|t| t.trim().is_empty()) {
        return Err(ApiError::bad_field("input", format!("input[{i}] is empty")));
    }
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::bad_field(
                "encoding_format",
                format!("encoding_format: {other:?} is not float or base64"),
            ))
        }
    };
    let passage = match req.input_type.as_deref() {
        None | Some("query") => false,
        Some("passage") | Some("document") => true,
        Some(other) => {
            return Err(ApiError::bad_field(
                "input_type",
                format!("input_type: {other:?} is not query or passage"),
            ))
        }
    };
    let model = embedder.id().to_owned();
    let chars: usize = texts.iter().map(|t| t.chars().count()).sum();
    let _permit = st
        .cpu_permits
        .acquire()
        .await
        .map_err(|_| ApiError::unavailable("shutting down"))?;
    let vectors = tokio::task::spawn_blocking(move || {
        if passage {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            embedder.embed_passages(&refs)
        } else {
            texts.iter().map(|t| embedder.embed_query(t)).collect()
        }
    })
    .await??;
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let _ = req.model;
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": chars, "total_tokens": chars},
    })))
}
