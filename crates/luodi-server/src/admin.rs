//! The admin and app API: knowledge bases, documents and upload jobs, search, conversations,
//! feedback, keys and the audit log. Every handler checks the key's scope first; a knowledge
//! base the key may not read answers exactly as one that does not exist.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Multipart, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use luodi_core::{Backend, Change, Embedder, SearchMode, SearchQuery};
use luodi_engine::{Feedback, KbConfig, KeyInfo, Scope};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::{AppState, AuditDetail, AuditKb, Caller};

fn require_admin(key: &KeyInfo) -> Result<(), ApiError> {
    if key.admin {
        Ok(())
    } else {
        Err(ApiError::forbidden("this needs an admin key"))
    }
}

/// `GET /healthz`.
pub async fn healthz(State(st): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "model": st.model_name.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        "embedder": st.embedder.as_ref().map(|e| e.id().to_owned()),
        "uptime_s": st.started.elapsed().as_secs(),
    }))
}

/// `GET /metrics`.
pub async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    st.metrics.queue_depth.set(st.queue.depth() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.encode(),
    )
        .into_response()
}

/// `GET /v1/me`: the key's own description (what the web page shows and offers).
pub async fn me(Extension(Caller(key)): Extension<Caller>) -> Json<KeyInfo> {
    Json(key)
}

/// `GET /v1/kbs`: the knowledge bases this key may read, with their sizes.
pub async fn kb_list(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let st2 = st.clone();
    let out = tokio::task::spawn_blocking(move || -> Result<Vec<Value>, ApiError> {
        let mut out = Vec::new();
        for kb in st2.home.list()? {
            if !key.can_read(&kb.name) {
                continue;
            }
            let stats = st2.open_kb(&kb.name)?.stats()?;
            out.push(json!({
                "name": kb.name,
                "created_at": kb.created_at,
                "writable": key.can_write(&kb.name),
                "stats": stats,
            }));
        }
        Ok(out)
    })
    .await??;
    Ok(Json(json!({"object": "list", "data": out})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KbCreate {
    pub name: String,
    /// Analyzer settings, as `luodi kb create --analyzer` takes them (default: the default).
    #[serde(default)]
    pub config: Option<KbConfig>,
}

/// `POST /v1/kbs` (admin).
pub async fn kb_create(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiJson(req): ApiJson<KbCreate>,
) -> Result<Response, ApiError> {
    require_admin(&key)?;
    let info = st.home.create(&req.name, req.config.unwrap_or_default())?;
    let mut r = (StatusCode::CREATED, Json(json!(info))).into_response();
    r.extensions_mut().insert(AuditKb(info.name));
    Ok(r)
}

/// `GET /v1/kbs/{kb}`.
pub async fn kb_get(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let kb = st.readable_kb(&key, &name)?;
    let stats = tokio::task::spawn_blocking(move || kb.stats()).await??;
    let vectors = match &st.embedder {
        Some(e) => {
            let kb = st.open_kb(&name)?;
            let s = kb.vector_status(e.id())?;
            json!({"model": e.id(), "missing": s.missing()})
        }
        None => Value::Null,
    };
    Ok(Json(json!({
        "name": name,
        "writable": key.can_write(&name),
        "stats": stats,
        "vectors": vectors,
    })))
}

/// `DELETE /v1/kbs/{kb}` (admin): the knowledge base, its files, conversations and feedback.
pub async fn kb_delete(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&key)?;
    st.close_kb(&name);
    let st2 = st.clone();
    tokio::task::spawn_blocking(move || st2.home.delete(&name)).await??;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/kbs/{kb}/documents`: stored sources (uploads and ingested folders).
pub async fn documents(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let kb = st.readable_kb(&key, &name)?;
    let files_dir = st.home.files_dir(&name);
    let (sources, failures) = tokio::task::spawn_blocking(move || -> luodi_core::Result<_> {
        Ok((kb.store.sources()?, kb.store.failures()?))
    })
    .await??;
    let data: Vec<Value> = sources
        .values()
        .map(|s| {
            let uploaded = Path::new(&s.path).strip_prefix(&files_dir).ok();
            json!({
                "source": s.path,
                "name": uploaded.map_or_else(
                    || Path::new(&s.path).file_name().map_or(s.path.clone(), |n| n.to_string_lossy().into_owned()),
                    |p| p.to_string_lossy().into_owned(),
                ),
                "uploaded": uploaded.is_some(),
                "size": s.size,
                "modified": s.mtime,
            })
        })
        .collect();
    let failed: Vec<Value> = failures.iter().map(|f| json!(f)).collect();
    Ok(Json(
        json!({"object": "list", "data": data, "failed": failed}),
    ))
}

/// A file name a person uploaded, made safe: its last path part, no control characters,
/// not `.` or `..`.
fn safe_file_name(raw: &str) -> Result<String, ApiError> {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("").trim();
    let ok = !base.is_empty()
        && base != "."
        && base != ".."
        && !base.starts_with('.')
        && base.chars().count() <= 200
        && !base.chars().any(char::is_control);
    if ok {
        Ok(base.to_owned())
    } else {
        Err(ApiError::bad_field(
            "file",
            format!("file name {raw:?}: give a plain file name (no folders, not hidden)"),
        ))
    }
}

fn multipart_error(file: Option<&str>, e: &axum::extract::multipart::MultipartError) -> ApiError {
    let what = file.map_or_else(|| "upload".to_owned(), |f| format!("file {f:?}"));
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(format!("{what}: over the upload limit"))
    } else {
        ApiError::bad_request(format!("{what}: {}", e.body_text()))
    }
}

/// `POST /v1/kbs/{kb}/documents` (write; multipart, one or more `file` parts): stores the
/// files and starts an ingest job; answers 202 with the job.
pub async fn upload(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    mut multipart: Multipart,
) -> Result<Response, ApiError> {
    st.writable_kb(&key, &name)?;
    let dir = st.home.files_dir(&name);
    std::fs::create_dir_all(&dir).map_err(|e| ApiError::from(luodi_core::Error::io(&dir, e)))?;
    let mut saved = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(multipart_error(None, &e)),
        };
        let Some(raw_name) = field.file_name().map(str::to_owned) else {
            continue; // not a file part
        };
        let file = safe_file_name(&raw_name)?;
        let bytes = field
            .bytes()
            .await
            .map_err(|e| multipart_error(Some(&file), &e))?;
        if bytes.is_empty() {
            return Err(ApiError::bad_field(
                "file",
                format!("file {file:?} is empty"),
            ));
        }
        // whole or not at all: a temporary file renamed into place
        let path = dir.join(&file);
        let tmp = dir.join(format!(".{file}.part{}", std::process::id()));
        let write = std::fs::write(&tmp, &bytes).and_then(|_| std::fs::rename(&tmp, &path));
        if let Err(e) = write {
            let _ = std::fs::remove_file(&tmp);
            return Err(ApiError::from(luodi_core::Error::io(&path, e)));
        }
        saved.push(json!({"name": file, "bytes": bytes.len()}));
    }
    if saved.is_empty() {
        return Err(ApiError::bad_field(
            "file",
            "no file in the upload: send multipart/form-data with one or more `file` parts",
        ));
    }
    let job = st
        .home
        .job_create(&name, "ingest", &json!({"files": saved}))?;
    st.jobs.submit(&job.id);
    Ok((StatusCode::ACCEPTED, Json(json!(job))).into_response())
}

#[derive(Debug, Deserialize)]
pub struct DocumentDelete {
    /// The `source` a document listing gives.
    pub source: String,
}

/// `DELETE /v1/kbs/{kb}/documents?source=…` (write): the document leaves the index at once;
/// an uploaded file is removed too.
pub async fn document_delete(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<DocumentDelete>,
) -> Result<StatusCode, ApiError> {
    let kb = st.writable_kb(&key, &name)?;
    let files_dir = st.home.files_dir(&name);
    let source = q.source.clone();
    let found = tokio::task::spawn_blocking(move || -> luodi_core::Result<bool> {
        if !kb.store.sources()?.contains_key(&source) {
            return Ok(false);
        }
        kb.store.apply(vec![Change::Remove(source.clone())])?;
        let p = Path::new(&source);
        if p.starts_with(&files_dir) && p.is_file() {
            std::fs::remove_file(p).map_err(|e| luodi_core::Error::io(p, e))?;
        }
        Ok(true)
    })
    .await??;
    if found {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "no document {:?} in this knowledge base",
            q.source
        )))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    pub query: String,
    #[serde(default = "ten")]
    pub k: usize,
    pub mode: Option<SearchMode>,
    #[serde(default)]
    pub filters: BTreeMap<String, String>,
}

fn ten() -> usize {
    10
}

/// `POST /v1/kbs/{kb}/search`.
pub async fn search(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<SearchRequest>,
) -> Result<Response, ApiError> {
    let kb = st.readable_kb(&key, &name)?;
    if req.query.trim().is_empty() {
        return Err(ApiError::bad_field("query", "query is empty"));
    }
    if req.k == 0 || req.k > 100 {
        return Err(ApiError::bad_field("k", "k: 1-100"));
    }
    let mode = req.mode.unwrap_or(if st.embedder.is_some() {
        SearchMode::Hybrid
    } else {
        SearchMode::Bm25
    });
    if mode == SearchMode::Dense && st.embedder.is_none() {
        return Err(ApiError::unavailable(
            "dense search needs the embedding model (luodi models install)",
        ));
    }
    let query = req.query.clone();
    let q = SearchQuery {
        text: req.query,
        k: req.k,
        filters: req.filters.into_iter().collect(),
        ..SearchQuery::default()
    };
    let _permit = st
        .cpu_permits
        .acquire()
        .await
        .map_err(|_| ApiError::unavailable("shutting down"))?;
    let st2 = st.clone();
    let hits = tokio::task::spawn_blocking(move || {
        let embed = st2
            .embedder
            .as_ref()
            .map(|e| (e.as_ref() as &dyn Embedder, st2.cache.as_ref()));
        kb.search_mode(
            &q,
            mode,
            if mode == SearchMode::Bm25 {
                None
            } else {
                embed
            },
        )
    })
    .await??;
    let mut r = Json(json!({"object": "list", "mode": mode, "data": hits})).into_response();
    r.extensions_mut().insert(AuditDetail(query));
    Ok(r)
}

#[derive(Debug, Deserialize)]
pub struct Limit {
    #[serde(default = "fifty")]
    pub limit: usize,
    #[serde(default)]
    pub offset: usize,
    pub kb: Option<String>,
    pub key_id: Option<String>,
}

fn fifty() -> usize {
    50
}

/// `GET /v1/kbs/{kb}/jobs`.
pub async fn kb_jobs(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(l): ApiQuery<Limit>,
) -> Result<Json<Value>, ApiError> {
    st.readable_kb(&key, &name)?;
    Ok(Json(
        json!({"object": "list", "data": st.home.jobs(Some(&name), l.limit.min(500))?}),
    ))
}

/// `GET /v1/jobs/{id}`: a job of a knowledge base the key may read.
pub async fn job_get(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let job = st
        .home
        .job(&id)?
        .filter(|j| key.can_read(&j.kb))
        .ok_or_else(|| ApiError::not_found(format!("job {id:?} not found")))?;
    let mut r = Json(json!(job)).into_response();
    r.extensions_mut().insert(AuditKb(job.kb));
    Ok(r)
}

/// `GET /v1/conversations[?kb=…]`: conversations with the knowledge bases this key may read.
pub async fn conversations(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiQuery(l): ApiQuery<Limit>,
) -> Result<Json<Value>, ApiError> {
    let limit = l.limit.min(500);
    let data = match &l.kb {
        Some(kb) => {
            st.readable_kb(&key, kb)?;
            st.home.conversations(Some(kb), limit, l.offset)?
        }
        None if key.admin => st.home.conversations(None, limit, l.offset)?,
        None => {
            let mut all = Vec::new();
            for kb in st.home.list()? {
                if key.can_read(&kb.name) {
                    all.extend(st.home.conversations(Some(&kb.name), limit + l.offset, 0)?);
                }
            }
            all.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(b.id.cmp(&a.id)));
            all.into_iter().skip(l.offset).take(limit).collect()
        }
    };
    Ok(Json(json!({"object": "list", "data": data})))
}

fn readable_conversation(
    st: &AppState,
    key: &KeyInfo,
    id: &str,
) -> Result<luodi_engine::Conversation, ApiError> {
    st.home
        .conversation(id)?
        .filter(|c| key.can_read(&c.info.kb))
        .ok_or_else(|| ApiError::not_found(format!("conversation {id:?} not found")))
}

/// `GET /v1/conversations/{id}`.
pub async fn conversation_get(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let c = readable_conversation(&st, &key, &id)?;
    let kb = c.info.kb.clone();
    let mut r = Json(json!(c)).into_response();
    r.extensions_mut().insert(AuditKb(kb));
    Ok(r)
}

/// `DELETE /v1/conversations/{id}`.
pub async fn conversation_delete(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let c = readable_conversation(&st, &key, &id)?;
    st.home.conversation_delete(&c.info.id)?;
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.extensions_mut().insert(AuditKb(c.info.kb));
    Ok(r)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    pub conversation_id: String,
    /// The turn's `seq` (the `luodi.turn` of a chat completion); the last turn when absent.
    pub turn: Option<u32>,
    /// `up`, `down`, or none (a correction or comment alone).
    pub rating: Option<String>,
    pub correction: Option<String>,
    pub comment: Option<String>,
}

/// `POST /v1/feedback`: thumbs up/down, a corrected answer, a comment — stored with the
/// question, the answer, its citations and the knowledge base.
pub async fn feedback_add(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiJson(req): ApiJson<FeedbackRequest>,
) -> Result<Response, ApiError> {
    let c = readable_conversation(&st, &key, &req.conversation_id)?;
    let turn = match req.turn {
        Some(seq) => c.turns.iter().find(|t| t.seq == seq),
        None => c.turns.last(),
    }
    .ok_or_else(|| ApiError::bad_field("turn", "turn: the conversation has no such turn"))?;
    let rating = match req.rating.as_deref() {
        Some("up") | Some("+1") | Some("1") => 1,
        Some("down") | Some("-1") => -1,
        None | Some("") => 0,
        Some(other) => {
            return Err(ApiError::bad_field(
                "rating",
                format!("rating: {other:?} is not up or down"),
            ))
        }
    };
    let nonempty = |s: &Option<String>| {
        s.as_ref()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let correction = nonempty(&req.correction);
    let comment = nonempty(&req.comment);
    if rating == 0 && correction.is_none() && comment.is_none() {
        return Err(ApiError::bad_request(
            "feedback: give a rating (up/down), a correction or a comment",
        ));
    }
    let f = st.home.feedback_add(&Feedback {
        id: String::new(),
        created_at: 0,
        key_id: Some(key.id.clone()),
        kb: c.info.kb.clone(),
        conversation_id: Some(c.info.id.clone()),
        turn_seq: Some(turn.seq),
        question: turn.question.clone(),
        answer: turn.answer.clone(),
        citations: turn.citations.clone(),
        rating,
        correction,
        comment,
    })?;
    let mut r = (StatusCode::CREATED, Json(json!(f))).into_response();
    r.extensions_mut().insert(AuditKb(c.info.kb));
    Ok(r)
}

/// `GET /v1/kbs/{kb}/feedback`.
pub async fn feedback_list(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(l): ApiQuery<Limit>,
) -> Result<Json<Value>, ApiError> {
    st.readable_kb(&key, &name)?;
    Ok(Json(
        json!({"object": "list", "data": st.home.feedback(&name, l.limit.min(500))?}),
    ))
}

/// `GET /v1/keys` (admin).
pub async fn keys(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&key)?;
    Ok(Json(json!({"object": "list", "data": st.home.keys()?})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyCreate {
    pub name: String,
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub scopes: Vec<Scope>,
    /// Seconds since the epoch.
    pub expires_at: Option<i64>,
    /// Or days from now.
    pub expires_in_days: Option<f64>,
}

/// `POST /v1/keys` (admin): the secret is in this answer only.
pub async fn key_create(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiJson(req): ApiJson<KeyCreate>,
) -> Result<Response, ApiError> {
    require_admin(&key)?;
    if !req.admin && req.scopes.is_empty() {
        return Err(ApiError::bad_field(
            "scopes",
            "scopes: a key that is not admin needs at least one knowledge base",
        ));
    }
    let expires_at = match (req.expires_at, req.expires_in_days) {
        (Some(t), _) => Some(t),
        (None, Some(d)) if d > 0.0 => Some(luodi_engine::now_secs() + (d * 86400.0) as i64),
        (None, Some(_)) => {
            return Err(ApiError::bad_field(
                "expires_in_days",
                "expires_in_days: give a positive number",
            ))
        }
        (None, None) => None,
    };
    let k = st
        .home
        .key_create(&req.name, req.admin, &req.scopes, expires_at)?;
    Ok((StatusCode::CREATED, Json(json!(k))).into_response())
}

/// `DELETE /v1/keys/{id}` (admin): revoked at once.
pub async fn key_revoke(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&key)?;
    if st.home.key_revoke(&id)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("key {id:?} not found")))
    }
}

/// `GET /v1/audit[?key_id=…&limit=…]` (admin).
pub async fn audit(
    State(st): State<Arc<AppState>>,
    Extension(Caller(key)): Extension<Caller>,
    ApiQuery(l): ApiQuery<Limit>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&key)?;
    Ok(Json(json!({
        "object": "list",
        "data": st.home.audit_log(l.key_id.as_deref(), l.limit.min(5000))?,
    })))
}
