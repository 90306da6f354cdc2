//! A knowledge base's own words and vetted answers over HTTP: its glossary (abbreviations,
//! synonym sets, business terms — add, list, export, import, remove, history) and its FAQs
//! (add by hand or from a corrected answer, import, list, remove). Reading needs the key's
//! read scope on the knowledge base, changing it the write scope; a change takes effect at the
//! next question (the open knowledge base is reloaded).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use luodi_engine::faq::Faq;
use luodi_engine::glossary::ImportReport;
use luodi_engine::rows::{self, Format, FromRow, Parsed};
use luodi_engine::{Entry, Home, KeyInfo};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::{AppState, Caller};

/// Who makes a change through the API: the key's name and id.
fn who(key: &KeyInfo) -> String {
    format!("key:{} ({})", key.name, key.id)
}

/// Runs a registry change off the async threads (the change raises the knowledge base's words
/// version, so the next question reads the new glossary and FAQs).
async fn change<T: Send + 'static>(
    st: &Arc<AppState>,
    f: impl FnOnce(&luodi_engine::Home) -> luodi_engine::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let st = st.clone();
    Ok(tokio::task::spawn_blocking(move || f(&st.home)).await??)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatQuery {
    /// `csv` or `jsonl`.
    pub format: Option<String>,
}

fn format_of(q: &FormatQuery, headers: &HeaderMap) -> Result<Format, ApiError> {
    if let Some(f) = &q.format {
        return Format::parse(f).ok_or_else(|| {
            ApiError::bad_field("format", format!("format {f:?}: give csv or jsonl"))
        });
    }
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Format::parse)
        .ok_or_else(|| {
            ApiError::bad_field(
                "format",
                "say how the rows are written: ?format=csv|jsonl, or Content-Type text/csv or \
                 application/x-ndjson",
            )
        })
}

fn body_text(body: Result<Bytes, BytesRejection>) -> Result<String, ApiError> {
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(format!("request body: {}", r.body_text()))
        } else {
            ApiError::bad_request(format!("request body: {}", r.body_text()))
        }
    })?;
    String::from_utf8(body.to_vec())
        .map_err(|e| ApiError::bad_request(format!("request body: not UTF-8 text ({e})")))
}

/// `GET /v1/kbs/{kb}/glossary[?format=csv|jsonl]`: the entries as a JSON list, or exported
/// as CSV / JSON lines (the import's format).
pub async fn glossary_list(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<FormatQuery>,
) -> Result<Response, ApiError> {
    st.readable_kb(&key, &name)?;
    let g = st.home.glossary(&name)?;
    let Some(f) = &q.format else {
        return Ok(Json(json!({"object": "list", "data": g.entries()})).into_response());
    };
    let format = Format::parse(f)
        .ok_or_else(|| ApiError::bad_field("format", format!("format {f:?}: give csv or jsonl")))?;
    let bytes = luodi_engine::glossary::export(g.entries(), format)?;
    let (ctype, ext) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Jsonl => ("application/x-ndjson; charset=utf-8", "jsonl"),
    };
    Ok((
        [
            (header::CONTENT_TYPE, ctype.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"glossary.{ext}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// `POST /v1/kbs/{kb}/glossary`: adds entries, checked against the glossary and each other; a
/// clash (one abbreviation with two full forms, a cycle, a word in two synonym sets, a term
/// defined twice) is refused naming both entries, and nothing is added.
pub async fn glossary_add(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<Value>,
) -> Result<Response, ApiError> {
    st.writable_kb(&key, &name)?;
    // one entry, or {"entries": [...]} (all or none)
    let entries: Vec<Entry> = match req.get("entries") {
        Some(list) => serde_json::from_value(list.clone())
            .map_err(|e| ApiError::bad_field("entries", format!("entries: {e}")))?,
        None => vec![serde_json::from_value(req)
            .map_err(|e| ApiError::bad_request(format!("request body: {e}")))?],
    };
    if entries.is_empty() {
        return Err(ApiError::bad_field("entries", "entries: give at least one"));
    }
    let entries: Vec<Entry> = entries
        .into_iter()
        .map(|mut e| {
            e.source = if e.source.is_empty() || e.source == "hand" {
                "api".into()
            } else {
                e.source
            };
            e
        })
        .collect();
    let by = who(&key);
    let added = change(&st, move |h| h.glossary_add(&name, entries, &by)).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"object": "list", "data": added})),
    )
        .into_response())
}

/// What an import endpoint does: reads the body as rows of `T` and hands them to `store`.
async fn import<T: FromRow + Send + 'static>(
    st: Arc<AppState>,
    key: KeyInfo,
    name: String,
    q: FormatQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    store: fn(&Home, &str, Parsed<T>, &str) -> luodi_engine::Result<ImportReport>,
) -> Result<Json<Value>, ApiError> {
    st.writable_kb(&key, &name)?;
    let format = format_of(&q, &headers)?;
    let rows = rows::parse::<T>(&body_text(body)?, format, "request body")?;
    let by = who(&key);
    let report = change(&st, move |h| store(h, &name, rows, &by)).await?;
    Ok(Json(json!(report)))
}

/// `POST /v1/kbs/{kb}/glossary/import?format=csv|jsonl` (or by Content-Type): the body is the
/// file; bad or clashing rows come back by number, the rest are imported.
pub async fn glossary_import(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<FormatQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    import::<Entry>(st, key, name, q, headers, body, Home::glossary_import).await
}

/// `DELETE /v1/kbs/{kb}/glossary/{id}`.
pub async fn glossary_remove(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiPath((name, id)): ApiPath<(String, i64)>,
) -> Result<Json<Value>, ApiError> {
    st.writable_kb(&key, &name)?;
    let by = who(&key);
    let removed = change(&st, move |h| h.glossary_remove(&name, id, &by)).await?;
    Ok(Json(json!(removed)))
}

/// `GET /v1/kbs/{kb}/glossary/history`: every change, who made it and when (oldest first; the
/// version is the change's number).
pub async fn glossary_history(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    st.readable_kb(&key, &name)?;
    Ok(Json(
        json!({"object": "list", "data": st.home.glossary_history(&name)?}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuggestQuery {
    #[serde(default = "thirty")]
    pub limit: usize,
}

fn thirty() -> usize {
    30
}

/// `GET /v1/kbs/{kb}/glossary/suggestions[?limit=30]` (write scope: it is the editors' tool):
/// abbreviation ↔ full form pairs mined from the knowledge base's text, each with its evidence
/// (`stated`, `together`, `predicted`), count, score and an example passage; pairs turned down
/// before and pairs that would clash with an entry are left out.
pub async fn suggestions(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<SuggestQuery>,
) -> Result<Json<Value>, ApiError> {
    st.writable_kb(&key, &name)?;
    let limit = q.limit.clamp(1, 500);
    let st2 = st.clone();
    let found = tokio::task::spawn_blocking(move || {
        let model = luodi_engine::suggest::AbbrevModel::first_characters();
        st2.home.glossary_suggestions(&name, &model, limit)
    })
    .await??;
    Ok(Json(json!({"object": "list", "data": found})))
}

/// A suggestion as the list gave it.
#[derive(Debug, Deserialize)]
pub struct Pair {
    pub abbr: String,
    pub full: String,
    #[serde(default)]
    pub evidence: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuggestionDecision {
    #[serde(default)]
    pub accept: Vec<Pair>,
    #[serde(default)]
    pub reject: Vec<Pair>,
}

/// `POST /v1/kbs/{kb}/glossary/suggestions`: `{"accept": [{abbr, full, evidence}], "reject":
/// [{abbr, full}]}` — accepted pairs become entries (all or none; a clash is refused naming
/// both), rejected ones are never offered again.
pub async fn suggestions_decide(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<SuggestionDecision>,
) -> Result<Json<Value>, ApiError> {
    st.writable_kb(&key, &name)?;
    if req.accept.is_empty() && req.reject.is_empty() {
        return Err(ApiError::bad_request(
            "give accept and/or reject: lists of {abbr, full}",
        ));
    }
    let entries: Vec<Entry> = req
        .accept
        .iter()
        .map(|p| {
            let mut e = Entry::abbreviation(&p.abbr, &p.full);
            e.source = format!("suggest:{}", p.evidence.as_deref().unwrap_or("api"));
            e
        })
        .collect();
    let rejected: Vec<(String, String)> =
        req.reject.into_iter().map(|p| (p.abbr, p.full)).collect();
    let by = who(&key);
    let (added, n) = change(&st, move |h| {
        let added = if entries.is_empty() {
            Vec::new()
        } else {
            h.glossary_add(&name, entries, &by)?
        };
        let n = if rejected.is_empty() {
            0
        } else {
            h.glossary_reject(&name, &rejected, &by)?
        };
        Ok((added, n))
    })
    .await?;
    Ok(Json(json!({"added": added, "rejected": n})))
}

/// `GET /v1/kbs/{kb}/faqs`.
pub async fn faq_list(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    st.readable_kb(&key, &name)?;
    Ok(Json(
        json!({"object": "list", "data": st.home.faqs(&name)?}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaqRequest {
    pub question: Option<String>,
    pub answer: Option<String>,
    /// The id of feedback that carries a corrected answer: its question and the correction
    /// become the FAQ.
    pub from_feedback: Option<String>,
}

/// `POST /v1/kbs/{kb}/faqs`: `{question, answer}`, or `{from_feedback: ID}` (a corrected
/// answer, vetted).
pub async fn faq_add(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<FaqRequest>,
) -> Result<Response, ApiError> {
    st.writable_kb(&key, &name)?;
    let by = who(&key);
    let added =
        match (req.from_feedback, req.question, req.answer) {
            (Some(id), None, None) => {
                change(&st, move |h| h.faq_from_feedback(&name, &id, &by)).await?
            }
            (None, Some(question), Some(answer)) => {
                let f = Faq {
                    id: 0,
                    question,
                    answer,
                    source: "api".into(),
                    created_at: 0,
                    created_by: String::new(),
                };
                change(&st, move |h| h.faq_add(&name, vec![f], &by))
                    .await?
                    .remove(0)
            }
            _ => return Err(ApiError::bad_request(
                "give question and answer, or from_feedback (the id of feedback with a correction)",
            )),
        };
    Ok((StatusCode::CREATED, Json(json!(added))).into_response())
}

/// `POST /v1/kbs/{kb}/faqs/import?format=csv|jsonl` (or by Content-Type): CSV with the
/// columns question and answer, or JSON lines; bad rows come back by number.
pub async fn faq_import(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<FormatQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    import::<Faq>(st, key, name, q, headers, body, Home::faq_import).await
}

/// `DELETE /v1/kbs/{kb}/faqs/{id}`.
pub async fn faq_remove(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiPath((name, id)): ApiPath<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    st.writable_kb(&key, &name)?;
    change(&st, move |h| h.faq_remove(&name, id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/kbs/{kb}/faqs/mode`: how readily questions are answered from the FAQs, and the
/// threshold that means (`null` when off).
pub async fn faq_mode_get(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    st.readable_kb(&key, &name)?;
    Ok(Json(json!(st.home.faq_setting(&name)?)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaqModeRequest {
    /// `strict`, `broad`, `off`, or a threshold from 0 to 1.
    pub mode: luodi_engine::faq::FaqMode,
}

/// `PUT /v1/kbs/{kb}/faqs/mode`: `{"mode": "strict" | "broad" | "off" | 0.4}`.
pub async fn faq_mode_set(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<FaqModeRequest>,
) -> Result<Json<Value>, ApiError> {
    st.writable_kb(&key, &name)?;
    let by = who(&key);
    let setting = change(&st, move |h| {
        h.set_faq_mode(&name, req.mode, &by)?;
        h.faq_setting(&name)
    })
    .await?;
    Ok(Json(json!(setting)))
}
