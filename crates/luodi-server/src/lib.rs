//! luodi's HTTP service: one process that OpenAI SDKs and chat front ends talk to unchanged,
//! the knowledge-base admin API with keys scoped per department, metrics, and the web page.
//!
//! Every handler translates HTTP into calls on [`luodi_engine`]; the engine knows nothing of
//! HTTP. Blocking work (search, ingest, the model) runs off the async threads: search and
//! embeddings on tokio's blocking pool, generation on one thread behind a fair bounded
//! [`queue`], ingest jobs on another ([`jobs`]), so search keeps answering while the model
//! writes.

pub mod admin;
pub mod error;
pub mod jobs;
pub mod metrics;
pub mod openai;
pub mod queue;
pub mod web;
pub mod words;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use luodi_engine::{AuditEntry, E5Embedder, EmbedCache, Home, Kb, KeyInfo, KeyRejection};

pub use error::ApiError;

/// Everything the server is told (from flags, environment and the config file, merged by
/// the CLI).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub home: PathBuf,
    pub addr: SocketAddr,
    /// `default`, `large`, a .gguf path or an OpenAI-compatible endpoint.
    pub model: String,
    pub remote_model: Option<String>,
    /// Threads of the LLM (leave one core to search on a small machine).
    pub llm_threads: usize,
    /// Threads of query and `/v1/embeddings` embedding.
    pub embed_threads: usize,
    pub n_ctx: u32,
    /// Chat requests waiting for the model, in all and per key.
    pub queue_capacity: usize,
    pub queue_per_key: usize,
    /// Largest request body (uploads), in bytes.
    pub max_body_bytes: usize,
    /// Audit entries carry the question text (off: only who, which KB, which route, when).
    pub audit_content: bool,
    /// Load the models (off in tests that only need the API).
    pub load_models: bool,
    /// How long a graceful shutdown waits for a running ingest job before leaving it to
    /// resume at the next start.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            home: PathBuf::from(".luodi"),
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            model: "default".into(),
            remote_model: None,
            llm_threads: luodi_models::llm::llama::default_threads()
                .saturating_sub(1)
                .max(1),
            embed_threads: 1,
            n_ctx: 4096,
            queue_capacity: 16,
            queue_per_key: 4,
            max_body_bytes: 64 << 20,
            audit_content: false,
            load_models: true,
            shutdown_grace: Duration::from_secs(60),
        }
    }
}

/// The key a request was made with.
#[derive(Debug, Clone)]
pub struct Caller(pub KeyInfo);

/// The knowledge base a request used, for the audit log (set by handlers whose knowledge base
/// is not in the path, such as chat's `model` field).
#[derive(Debug, Clone)]
pub struct AuditKb(pub String);

/// Text the audit log may keep when the policy allows content (the question).
#[derive(Debug, Clone)]
pub struct AuditDetail(pub String);

pub struct AppState {
    pub home: Home,
    pub config: ServerConfig,
    kbs: Mutex<HashMap<String, Arc<Kb>>>,
    pub embedder: Option<Arc<E5Embedder>>,
    pub cache: Arc<EmbedCache>,
    pub queue: Arc<queue::GenQueue>,
    /// The model's name once loaded.
    pub model_name: Arc<Mutex<Option<String>>>,
    pub metrics: metrics::Metrics,
    pub jobs: jobs::JobRunner,
    pub started: Instant,
    /// Searches and embeddings running at once: as many as there are cores. The rest wait in
    /// line (first come, first served) instead of sharing the cores many ways, which keeps
    /// the slowest requests close to the typical one under load.
    pub cpu_permits: tokio::sync::Semaphore,
}

impl AppState {
    /// An open knowledge base the caller may read; the same error for one that does not
    /// exist and one the key may not see.
    pub fn readable_kb(&self, caller: &KeyInfo, name: &str) -> Result<Arc<Kb>, ApiError> {
        if !caller.can_read(name) {
            return Err(ApiError::no_kb(name));
        }
        self.open_kb(name)
    }

    /// As [`AppState::readable_kb`], and the key may change it (403 when it may only read).
    pub fn writable_kb(&self, caller: &KeyInfo, name: &str) -> Result<Arc<Kb>, ApiError> {
        let kb = self.readable_kb(caller, name)?;
        if !caller.can_write(name) {
            return Err(ApiError::forbidden(format!(
                "this key may read knowledge base {name:?} but not change it"
            )));
        }
        Ok(kb)
    }

    pub fn open_kb(&self, name: &str) -> Result<Arc<Kb>, ApiError> {
        let words = self.home.words_version(name)?;
        let mut kbs = self.kbs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(kb) = kbs.get(name) {
            if kb.words_version == words {
                return Ok(kb.clone());
            }
            // glossary or FAQs changed since (here or by the CLI): read them again, the store
            // shared (an ingest job may be writing through it)
            let kb = Arc::new(self.home.reload_words(kb)?);
            kbs.insert(name.to_owned(), kb.clone());
            return Ok(kb);
        }
        let kb = Arc::new(self.home.open_kb(name)?);
        kbs.insert(name.to_owned(), kb.clone());
        Ok(kb)
    }

    /// Forgets an open knowledge base (deleted).
    pub fn close_kb(&self, name: &str) {
        self.kbs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    pub fn model_label(&self) -> String {
        self.model_name
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| self.config.model.clone())
    }
}

/// The admin key made at first start (when none exists): its secret, shown once.
pub fn ensure_admin_key(home: &Home) -> luodi_core::Result<Option<String>> {
    if home.has_admin_key()? {
        return Ok(None);
    }
    Ok(Some(home.key_create("admin", true, &[], None)?.secret))
}

/// Routes that answer without a key.
fn is_public(route: &str) -> bool {
    matches!(
        route,
        "/" | "/healthz" | "/metrics" | "/openapi.json" | "/app.js" | "/app.css"
    )
}

/// The knowledge base named in a request's path (`/v1/kbs/{kb}/…`).
fn kb_in_path(route: &str, path: &str) -> Option<String> {
    let i = route.split('/').position(|s| s == "{kb}")?;
    let seg = path.split('/').nth(i)?;
    Some(percent_decode(seg))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn bearer(req: &Request) -> Option<String> {
    let h = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let t = h
        .strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("bearer "))?;
    Some(t.trim().to_owned())
}

/// Authenticates every request that needs a key, then records it: metrics, a log line
/// without content, and the audit log.
async fn gate(State(st): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let t0 = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(unmatched)".to_owned(), |m| m.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let path_kb = kb_in_path(&route, req.uri().path());
    let mut key_id = None;
    let response = if is_public(&route) {
        next.run(req).await
    } else {
        let auth = match bearer(&req) {
            None => Err(ApiError::unauthorized(
                "no API key: send the header `Authorization: Bearer <key>`",
            )),
            Some(secret) => match st.home.key_authenticate(&secret) {
                Ok(Ok(k)) => Ok(k),
                Ok(Err(KeyRejection::Unknown)) => Err(ApiError::unauthorized("incorrect API key")),
                Ok(Err(KeyRejection::Revoked)) => {
                    Err(ApiError::unauthorized("this API key was revoked"))
                }
                Ok(Err(KeyRejection::Expired)) => {
                    Err(ApiError::unauthorized("this API key has expired"))
                }
                Err(e) => Err(ApiError::from(e)),
            },
        };
        match auth {
            Ok(k) => {
                key_id = Some(k.id.clone());
                req.extensions_mut().insert(Caller(k));
                next.run(req).await
            }
            Err(e) => e.into_response(),
        }
    };
    let status = response.status().as_u16();
    let secs = t0.elapsed().as_secs_f64();
    st.metrics
        .requests
        .get_or_create(&metrics::RequestLabels {
            method: method.clone(),
            route: route.clone(),
            status,
        })
        .inc();
    st.metrics
        .latency
        .get_or_create(&metrics::RouteLabels {
            route: route.clone(),
        })
        .observe(secs);
    if !is_public(&route) {
        let kb = response
            .extensions()
            .get::<AuditKb>()
            .map(|a| a.0.clone())
            .or(path_kb);
        let detail = if st.config.audit_content {
            response
                .extensions()
                .get::<AuditDetail>()
                .map(|d| d.0.clone())
        } else {
            None
        };
        tracing::info!(
            method,
            route,
            status,
            ms = secs * 1000.0,
            key = key_id.as_deref().unwrap_or("-"),
            "request"
        );
        let entry = AuditEntry {
            at: luodi_engine::now_secs(),
            key_id,
            method,
            route,
            kb,
            status,
            ms: secs * 1000.0,
            detail,
        };
        if let Err(e) = st.home.audit(&entry) {
            tracing::error!(error = %e, "audit log write failed");
        }
    }
    response
}

/// The whole API.
pub fn router(state: Arc<AppState>) -> Router {
    let max_body = state.config.max_body_bytes;
    Router::new()
        .route("/", get(web::index))
        .route("/app.js", get(web::script))
        .route("/app.css", get(web::style))
        .route("/openapi.json", get(web::openapi))
        .route("/healthz", get(admin::healthz))
        .route("/metrics", get(admin::metrics))
        .route("/v1/models", get(openai::models))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/me", get(admin::me))
        .route("/v1/kbs", get(admin::kb_list).post(admin::kb_create))
        .route("/v1/kbs/{kb}", get(admin::kb_get).delete(admin::kb_delete))
        .route(
            "/v1/kbs/{kb}/documents",
            get(admin::documents)
                .post(admin::upload)
                .delete(admin::document_delete),
        )
        .route("/v1/kbs/{kb}/search", post(admin::search))
        .route("/v1/kbs/{kb}/jobs", get(admin::kb_jobs))
        .route("/v1/kbs/{kb}/feedback", get(admin::feedback_list))
        .route(
            "/v1/kbs/{kb}/glossary",
            get(words::glossary_list).post(words::glossary_add),
        )
        .route("/v1/kbs/{kb}/glossary/import", post(words::glossary_import))
        .route(
            "/v1/kbs/{kb}/glossary/history",
            get(words::glossary_history),
        )
        .route(
            "/v1/kbs/{kb}/glossary/suggestions",
            get(words::suggestions).post(words::suggestions_decide),
        )
        .route("/v1/kbs/{kb}/glossary/{id}", delete(words::glossary_remove))
        .route(
            "/v1/kbs/{kb}/faqs",
            get(words::faq_list).post(words::faq_add),
        )
        .route("/v1/kbs/{kb}/faqs/import", post(words::faq_import))
        .route(
            "/v1/kbs/{kb}/faqs/mode",
            get(words::faq_mode_get).put(words::faq_mode_set),
        )
        .route("/v1/kbs/{kb}/faqs/{id}", delete(words::faq_remove))
        .route("/v1/jobs/{id}", get(admin::job_get))
        .route("/v1/conversations", get(admin::conversations))
        .route(
            "/v1/conversations/{id}",
            get(admin::conversation_get).delete(admin::conversation_delete),
        )
        .route("/v1/feedback", post(admin::feedback_add))
        .route("/v1/keys", get(admin::keys).post(admin::key_create))
        .route("/v1/keys/{id}", delete(admin::key_revoke))
        .route("/v1/audit", get(admin::audit))
        .fallback(|| async { ApiError::not_found("no such endpoint (see /openapi.json)") })
        .layer(axum::middleware::from_fn_with_state(state.clone(), gate))
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// A started server: its address, and the means to stop it.
pub struct Running {
    pub addr: SocketAddr,
    /// The admin key made at this start (first start only).
    pub admin_key: Option<String>,
    pub state: Arc<AppState>,
    shutdown: tokio::sync::watch::Sender<bool>,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Graceful shutdown: stop accepting, finish open requests and the running ingest job
    /// (up to the grace period; an unfinished job resumes at the next start).
    pub async fn stop(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(true);
        let r = self.handle.await.unwrap_or(Ok(()));
        self.state.queue.close();
        let jobs = self.state.jobs.clone();
        let grace = self.state.config.shutdown_grace;
        let _ = tokio::task::spawn_blocking(move || jobs.stop(grace)).await;
        r
    }

    /// Runs until Ctrl-C or SIGTERM, then stops gracefully.
    pub async fn until_signal(self) -> std::io::Result<()> {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down: finishing requests and jobs");
        self.stop().await
    }
}

/// Opens the data directory, loads the models (the LLM on its own thread, in the background),
/// resumes unfinished jobs, and listens.
pub async fn start(config: ServerConfig) -> anyhow_like::Result<Running> {
    let home = Home::open(&config.home)?;
    let admin_key = ensure_admin_key(&home)?;
    let cache = Arc::new(EmbedCache::open(
        &home.root().join("cache").join("embeddings.sqlite"),
    )?);
    let embedder = if config.load_models {
        match E5Embedder::load(config.embed_threads) {
            Ok(e) => Some(Arc::new(e)),
            Err(e) => {
                tracing::warn!(error = %e, "embedding model not loaded: search is BM25 only, /v1/embeddings answers 503");
                None
            }
        }
    } else {
        None
    };
    let queue = Arc::new(queue::GenQueue::new(
        config.queue_capacity,
        config.queue_per_key,
    ));
    let model_name = Arc::new(Mutex::new(None));
    {
        let spec = config.model.clone();
        let remote = config.remote_model.clone();
        let threads = config.llm_threads;
        let n_ctx = config.n_ctx;
        let load_models = config.load_models;
        queue::spawn_worker(
            queue.clone(),
            Box::new(move || {
                if !load_models {
                    return Err("models are not loaded by this server (--no-models)".into());
                }
                luodi_models::llm::open_generator(&spec, remote.as_deref(), threads, n_ctx)
                    .map_err(|e| e.to_string())
            }),
            model_name.clone(),
        );
    }
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|e| anyhow_like::Error(format!("listen on {}: {e}", config.addr)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| anyhow_like::Error(e.to_string()))?;
    let jobs = jobs::JobRunner::new();
    let state = Arc::new(AppState {
        home,
        config,
        kbs: Mutex::new(HashMap::new()),
        embedder,
        cache,
        queue,
        model_name,
        metrics: metrics::Metrics::new(),
        jobs: jobs.clone(),
        started: Instant::now(),
        cpu_permits: tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(2, |n| n.get()),
        ),
    });
    jobs.start(state.clone())?;
    let app = router(state.clone());
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let handle = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.changed().await;
            })
            .await
    });
    Ok(Running {
        addr,
        admin_key,
        state,
        shutdown: tx,
        handle,
    })
}

/// A minimal error type for [`start`] (the engine's errors and I/O, as text).
pub mod anyhow_like {
    #[derive(Debug)]
    pub struct Error(pub String);
    impl std::fmt::Display for Error {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::error::Error for Error {}
    impl From<luodi_core::Error> for Error {
        fn from(e: luodi_core::Error) -> Self {
            Error(e.to_string())
        }
    }
    pub type Result<T> = std::result::Result<T, Error>;
}

/// Runs the server on its own runtime until Ctrl-C or SIGTERM; `on_start` hears the address
/// and, at first start, the admin key.
pub fn serve_until_signal(
    config: ServerConfig,
    on_start: impl FnOnce(SocketAddr, Option<&str>),
) -> anyhow_like::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("luodi-http")
        .build()
        .map_err(|e| anyhow_like::Error(format!("start the runtime: {e}")))?;
    rt.block_on(async move {
        let running = start(config).await?;
        on_start(running.addr, running.admin_key.as_deref());
        running
            .until_signal()
            .await
            .map_err(|e| anyhow_like::Error(e.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kb_is_read_from_the_path_by_its_route() {
        assert_eq!(
            kb_in_path("/v1/kbs/{kb}/search", "/v1/kbs/%E8%B4%A2%E5%8A%A1/search"),
            Some("财务".into())
        );
        assert_eq!(kb_in_path("/v1/jobs/{id}", "/v1/jobs/abc"), None);
        assert_eq!(percent_decode("a%2"), "a%2");
    }
}
