//! `luodi serve` (settings from flags, environment and a TOML file, in that order of
//! precedence, turned into the server's plain config struct) and `luodi keys`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use luodi_engine::{Home, Scope};
use luodi_server::ServerConfig;
use serde::Deserialize;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// A TOML file with any of: addr, model, remote_model, threads, embed_threads, ctx,
    /// queue, queue_per_key, max_upload_mb, audit_content, shutdown_grace_s.
    #[arg(long, env = "LUODI_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, env = "LUODI_ADDR")]
    pub addr: Option<SocketAddr>,
    /// `default`, `large`, a .gguf path, or an OpenAI-compatible endpoint http(s)://…/v1.
    #[arg(long, env = "LUODI_LLM")]
    pub model: Option<String>,
    /// Model name at a remote endpoint.
    #[arg(long)]
    pub remote_model: Option<String>,
    /// LLM threads (default: all cores but one, which search keeps).
    #[arg(long, env = "LUODI_THREADS")]
    pub threads: Option<usize>,
    /// Embedding threads (queries and /v1/embeddings).
    #[arg(long)]
    pub embed_threads: Option<usize>,
    /// LLM context length in tokens.
    #[arg(long)]
    pub ctx: Option<u32>,
    /// Chat requests that may wait for the model (beyond it: 429 with Retry-After).
    #[arg(long)]
    pub queue: Option<usize>,
    /// Of those, from one key.
    #[arg(long)]
    pub queue_per_key: Option<usize>,
    /// Largest upload in MB.
    #[arg(long)]
    pub max_upload_mb: Option<usize>,
    /// Keep question text in the audit log (default: who, which KB, which route, when).
    #[arg(long)]
    pub audit_content: bool,
    /// Serve the API without loading models (chat answers 503, search is BM25).
    #[arg(long)]
    pub no_models: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    addr: Option<String>,
    model: Option<String>,
    remote_model: Option<String>,
    threads: Option<usize>,
    embed_threads: Option<usize>,
    ctx: Option<u32>,
    queue: Option<usize>,
    queue_per_key: Option<usize>,
    max_upload_mb: Option<usize>,
    audit_content: Option<bool>,
    shutdown_grace_s: Option<u64>,
}

fn read_file_config(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))
}

/// Flags and environment over the file, the file over the defaults.
pub fn server_config(home: &Path, a: &ServeArgs) -> Result<ServerConfig> {
    let f = match &a.config {
        Some(p) => read_file_config(p)?,
        None => FileConfig::default(),
    };
    let d = ServerConfig::default();
    let file_addr = match &f.addr {
        Some(s) => Some(
            s.parse::<SocketAddr>()
                .map_err(|e| anyhow::anyhow!("config: addr {s:?}: {e}"))?,
        ),
        None => None,
    };
    let c = ServerConfig {
        home: home.to_owned(),
        addr: a.addr.or(file_addr).unwrap_or(d.addr),
        model: a.model.clone().or(f.model).unwrap_or(d.model),
        remote_model: a.remote_model.clone().or(f.remote_model),
        llm_threads: a.threads.or(f.threads).unwrap_or(d.llm_threads),
        embed_threads: a
            .embed_threads
            .or(f.embed_threads)
            .unwrap_or(d.embed_threads),
        n_ctx: a.ctx.or(f.ctx).unwrap_or(d.n_ctx),
        queue_capacity: a.queue.or(f.queue).unwrap_or(d.queue_capacity),
        queue_per_key: a
            .queue_per_key
            .or(f.queue_per_key)
            .unwrap_or(d.queue_per_key),
        max_body_bytes: a
            .max_upload_mb
            .or(f.max_upload_mb)
            .map_or(d.max_body_bytes, |mb| mb << 20),
        audit_content: a.audit_content || f.audit_content.unwrap_or(d.audit_content),
        load_models: !a.no_models,
        shutdown_grace: f
            .shutdown_grace_s
            .map_or(d.shutdown_grace, Duration::from_secs),
    };
    if c.llm_threads == 0 || c.embed_threads == 0 {
        bail!("threads: give at least 1");
    }
    if c.queue_capacity == 0 || c.queue_per_key == 0 {
        bail!("queue: give at least 1");
    }
    Ok(c)
}

pub fn serve(home: &Path, a: ServeArgs) -> Result<ExitCode> {
    let config = server_config(home, &a)?;
    luodi_server::serve_until_signal(config, |addr, admin_key| {
        let mut out = std::io::stdout().lock();
        if let Some(k) = admin_key {
            let _ = writeln!(
                out,
                "admin key (shown once — keep it; make scoped keys with it): {k}"
            );
        }
        let _ = writeln!(
            out,
            "luodi serving http://{addr} — web page at /, OpenAI-compatible API at /v1, docs at /openapi.json"
        );
        let _ = out.flush();
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Make a key; its secret is printed once.
    Create {
        name: String,
        /// A knowledge base it may use: NAME (read) or NAME:write (repeatable; `*` for all).
        #[arg(long = "kb")]
        kbs: Vec<String>,
        /// May manage knowledge bases and keys.
        #[arg(long)]
        admin: bool,
        /// Stops working after this many days.
        #[arg(long)]
        expires_days: Option<f64>,
        #[arg(long)]
        json: bool,
    },
    /// List keys (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key at once.
    Revoke { id: String },
    /// The audit log: who used which knowledge base and endpoint, when.
    Audit {
        /// Only this key's requests.
        #[arg(long)]
        key: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
}

fn parse_scope(s: &str) -> Result<Scope> {
    let (kb, write) = match s.rsplit_once(':') {
        Some((kb, "write")) => (kb, true),
        Some((kb, "read")) => (kb, false),
        Some((_, other)) => bail!("--kb {s:?}: {other:?} is not read or write"),
        None => (s, false),
    };
    Ok(Scope {
        kb: kb.to_owned(),
        write,
    })
}

pub fn keys(home: &Path, cmd: KeysCmd) -> Result<ExitCode> {
    let h = Home::open(home)?;
    let mut out = std::io::stdout().lock();
    match cmd {
        KeysCmd::Create {
            name,
            kbs,
            admin,
            expires_days,
            json,
        } => {
            let scopes = kbs
                .iter()
                .map(|s| parse_scope(s))
                .collect::<Result<Vec<_>>>()?;
            if !admin && scopes.is_empty() {
                bail!("give --kb NAME[:write] (repeatable) or --admin");
            }
            let expires_at = match expires_days {
                Some(d) if d > 0.0 => Some(luodi_engine::now_secs() + (d * 86400.0) as i64),
                Some(_) => bail!("--expires-days: give a positive number"),
                None => None,
            };
            let k = h.key_create(&name, admin, &scopes, expires_at)?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&k)?)?;
            } else {
                writeln!(out, "{} {}", k.key.id, k.secret)?;
                eprintln!(
                    "(the secret is shown once; the id {} names the key from now on)",
                    k.key.id
                );
            }
        }
        KeysCmd::List { json } => {
            let keys = h.keys()?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&keys)?)?;
            } else {
                for k in keys {
                    let scopes = if k.admin {
                        "admin".to_owned()
                    } else {
                        k.scopes
                            .iter()
                            .map(|s| format!("{}{}", s.kb, if s.write { ":write" } else { "" }))
                            .collect::<Vec<_>>()
                            .join(",")
                    };
                    let state = if k.revoked_at.is_some() {
                        " (revoked)"
                    } else {
                        ""
                    };
                    writeln!(out, "{}\t{}\t{scopes}{state}", k.id, k.name)?;
                }
            }
        }
        KeysCmd::Revoke { id } => {
            if !h.key_revoke(&id)? {
                bail!("no key {id:?} (see `luodi keys list`)");
            }
            writeln!(out, "revoked {id}")?;
        }
        KeysCmd::Audit { key, limit, json } => {
            let log = h.audit_log(key.as_deref(), limit)?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&log)?)?;
            } else {
                for e in log {
                    writeln!(
                        out,
                        "{}\t{}\t{} {}\t{}\t{}\t{:.1} ms",
                        e.at,
                        e.key_id.as_deref().unwrap_or("-"),
                        e.method,
                        e.route,
                        e.kb.as_deref().unwrap_or("-"),
                        e.status,
                        e.ms
                    )?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand, Debug)]
pub enum FeedbackCmd {
    /// Feedback on a knowledge base's answers, newest first: rating, question, answer,
    /// correction, comment.
    List {
        name: String,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
}

pub fn feedback(home: &Path, cmd: FeedbackCmd) -> Result<ExitCode> {
    let h = Home::open(home)?;
    let mut out = std::io::stdout().lock();
    match cmd {
        FeedbackCmd::List { name, limit, json } => {
            if h.get(&name)?.is_none() {
                return Err(luodi_core::Error::UnknownKb(name).into());
            }
            let list = h.feedback(&name, limit)?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&list)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            for f in list {
                let rating = match f.rating {
                    1 => "up",
                    -1 => "down",
                    _ => "-",
                };
                writeln!(out, "{rating}\t{}\t{}", f.question, f.answer)?;
                if let Some(c) = &f.correction {
                    writeln!(out, "\tcorrection: {c}")?;
                }
                if let Some(c) = &f.comment {
                    writeln!(out, "\tcomment: {c}")?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
