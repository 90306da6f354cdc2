//! `luodi bench serve`: load on a real `luodi serve` from this, a second process, on loopback.
//!
//! It builds (once, cached) a knowledge base of `--chunks` chunks from the public corpora,
//! starts `luodi serve` on it as a child process (LLM on one thread, so one core stays with
//! search), and measures, each phase `--seconds` long:
//! 1. `POST /v1/kbs/bench/search` from `--connections` keep-alive connections (closed loop),
//! 2. `POST /v1/embeddings` the same way,
//! 3. search latency from one connection while chat answers are being generated without a
//!    pause (the model busy the whole phase) — the figure a person searching feels while
//!    someone else asks — and, for comparison, the same from one connection with the model
//!    idle.
//!
//! Errors (any status but 200, any transport failure) are counted; latencies are quantiles of
//! every request of a phase.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use luodi_engine::{Home, KbConfig, Scope};
use serde_json::{json, Value};

#[derive(Args, Debug)]
pub struct ServeBench {
    #[arg(long, default_value = "../shared/data")]
    pub data: PathBuf,
    /// Chunks in the knowledge base searched.
    #[arg(long, default_value_t = 100_000)]
    pub chunks: u64,
    /// Concurrent connections of the load phases.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Length of each phase.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// The model `luodi serve` loads.
    #[arg(long, default_value = "default")]
    pub model: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Default)]
struct Phase {
    latencies_ms: Vec<f64>,
    errors: u64,
    first_error: Option<String>,
    seconds: f64,
}

impl Phase {
    fn summary(&mut self) -> Value {
        self.latencies_ms.sort_by(|a, b| a.total_cmp(b));
        let q = |p| luodi_eval::quantile(&self.latencies_ms, p);
        json!({
            "requests": self.latencies_ms.len() as u64 + self.errors,
            "errors": self.errors,
            "rps": self.latencies_ms.len() as f64 / self.seconds.max(1e-9),
            "p50_ms": q(0.5),
            "p99_ms": q(0.99),
            "max_ms": self.latencies_ms.last().copied().unwrap_or(0.0),
            "first_error": self.first_error,
        })
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(120))
        .max_idle_connections_per_host(1)
        .build()
}

fn post(agent: &ureq::Agent, url: &str, key: &str, body: &Value) -> Result<(), String> {
    match agent
        .post(url)
        .set("Authorization", &format!("Bearer {key}"))
        .set("Content-Type", "application/json")
        .send_string(&body.to_string())
    {
        Ok(r) if r.status() == 200 => {
            // read the whole body, as a client does
            r.into_string().map(|_| ()).map_err(|e| e.to_string())
        }
        Ok(r) => Err(format!("status {}", r.status())),
        Err(ureq::Error::Status(code, r)) => Err(format!(
            "status {code}: {}",
            r.into_string().unwrap_or_default()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// `connections` threads, each with its own keep-alive connection, sending requests back to
/// back for `seconds`.
fn load(
    connections: usize,
    seconds: u64,
    url: &str,
    key: &str,
    body: &(dyn Fn(usize) -> Value + Sync),
) -> Phase {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let counter = AtomicU64::new(0);
    let t0 = Instant::now();
    let parts: Vec<Phase> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..connections)
            .map(|_| {
                let counter = &counter;
                s.spawn(move || {
                    let agent = agent();
                    let mut p = Phase::default();
                    while Instant::now() < deadline {
                        let i = counter.fetch_add(1, Ordering::Relaxed) as usize;
                        let b = body(i);
                        let t = Instant::now();
                        match post(&agent, url, key, &b) {
                            Ok(()) => p.latencies_ms.push(t.elapsed().as_secs_f64() * 1000.0),
                            Err(e) => {
                                p.errors += 1;
                                p.first_error.get_or_insert(e);
                            }
                        }
                    }
                    p
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut all = Phase {
        seconds: t0.elapsed().as_secs_f64(),
        ..Phase::default()
    };
    for p in parts {
        all.latencies_ms.extend(p.latencies_ms);
        all.errors += p.errors;
        if all.first_error.is_none() {
            all.first_error = p.first_error;
        }
    }
    all
}

/// The benchmark's data directory with its knowledge base (built once).
fn prepare(home: &Path, b: &ServeBench, quiet: bool) -> Result<(PathBuf, f64)> {
    let dir = home.join("bench").join(format!("serve-{}", b.chunks));
    let marker = dir.join("complete.json");
    if let Ok(s) = std::fs::read_to_string(&marker) {
        let v: Value = serde_json::from_str(&s)?;
        return Ok((dir, v["build_seconds"].as_f64().unwrap_or(0.0)));
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    let h = Home::open(&dir)?;
    h.create("bench", KbConfig::default())?;
    let kb = h.open_kb("bench")?;
    let t0 = Instant::now();
    crate::bench::fill_kb(&kb, &b.data, b.chunks, quiet)?;
    kb.store.optimize()?;
    let secs = t0.elapsed().as_secs_f64();
    std::fs::write(
        &marker,
        json!({"chunks": b.chunks, "build_seconds": secs}).to_string(),
    )?;
    Ok((dir, secs))
}

struct Child {
    child: std::process::Child,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

pub fn run(home: &Path, b: ServeBench, quiet: bool) -> Result<ExitCode> {
    if b.connections == 0 || b.seconds == 0 {
        bail!("--connections and --seconds: give at least 1");
    }
    let mut qs = crate::bench::queries(&b.data);
    qs.retain(|q| !q.trim().is_empty());
    anyhow::ensure!(
        !qs.is_empty(),
        "no queries.jsonl under {}",
        b.data.display()
    );
    let (dir, build_seconds) = prepare(home, &b, quiet || b.json)?;
    let key = {
        let h = Home::open(&dir)?;
        h.key_create(
            "bench",
            false,
            &[Scope {
                kb: "bench".into(),
                write: false,
            }],
            Some(luodi_engine::now_secs() + 3600),
        )?
        .secret
    };
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .env("LUODI_HOME", &dir)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--model",
            &b.model,
            "--queue",
            "64",
            "--queue-per-key",
            "64",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting luodi serve")?;
    let stdout = child.stdout.take().context("serve's output")?;
    let child = Child { child };
    let mut lines = std::io::BufReader::new(stdout).lines();
    let base = loop {
        let Some(line) = lines.next() else {
            bail!("luodi serve stopped before it listened");
        };
        let line = line?;
        if let Some(rest) = line.split("serving ").nth(1) {
            break rest.split_whitespace().next().unwrap_or("").to_owned();
        }
    };
    // the model loads in the background: wait for it
    let t0 = Instant::now();
    loop {
        let text = ureq::get(&format!("{base}/healthz"))
            .call()
            .map_err(|e| anyhow::anyhow!("healthz: {e}"))?
            .into_string()?;
        let h: Value = serde_json::from_str(&text)?;
        if h["model"].is_string() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(120) {
            bail!("the model did not load in 2 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let say = |s: &str| {
        if !quiet && !b.json {
            eprintln!("{s}");
        }
    };
    let search_url = format!("{base}/v1/kbs/bench/search");
    let search_body =
        |i: usize| json!({"query": qs[(i * 7919) % qs.len()], "k": 10, "mode": "bm25"});
    // warm-up: the index's pages in memory
    let _ = load(2, 3, &search_url, &key, &search_body);

    say(&format!(
        "search: {} connections, {} s …",
        b.connections, b.seconds
    ));
    let mut search = load(b.connections, b.seconds, &search_url, &key, &search_body);
    say(&format!(
        "embeddings: {} connections, {} s …",
        b.connections, b.seconds
    ));
    let embed_url = format!("{base}/v1/embeddings");
    let embed_body = |i: usize| json!({"input": qs[(i * 104_729) % qs.len()], "model": "e5"});
    let mut embed = load(b.connections, b.seconds, &embed_url, &key, &embed_body);

    say(&format!(
        "search from one connection, model idle, {} s …",
        b.seconds
    ));
    let mut idle = load(1, b.seconds, &search_url, &key, &search_body);

    // chat answers back to back on their own connection for the whole phase
    say(&format!(
        "search from one connection while chat answers are generated, {} s …",
        b.seconds
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(AtomicU64::new(0));
    let generating_ms = Arc::new(AtomicU64::new(0));
    let chat = {
        let stop = stop.clone();
        let answers = answers.clone();
        let generating_ms = generating_ms.clone();
        let url = format!("{base}/v1/chat/completions");
        let key = key.clone();
        let qs = qs.clone();
        std::thread::spawn(move || -> Option<String> {
            let agent = agent();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let body = json!({
                    "model": "kb:bench",
                    "messages": [{"role": "user", "content": qs[(i * 31) % qs.len()]}],
                    "mode": "bm25",
                });
                let t = Instant::now();
                if let Err(e) = post(&agent, &url, &key, &body) {
                    return Some(e);
                }
                generating_ms.fetch_add(t.elapsed().as_millis() as u64, Ordering::SeqCst);
                answers.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
            None
        })
    };
    std::thread::sleep(Duration::from_millis(500)); // the first answer is under way
    let phase_start = Instant::now();
    let mut busy = load(1, b.seconds, &search_url, &key, &search_body);
    say(&format!(
        "search from {} connections while chat answers are generated, {} s …",
        b.connections, b.seconds
    ));
    let mut busy_many = load(b.connections, b.seconds, &search_url, &key, &search_body);
    let busy_secs = phase_start.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let chat_error = chat.join().unwrap_or(Some("chat thread panicked".into()));
    drop(child); // SIGTERM, then a graceful stop

    let (s, e, i, g, gm) = (
        search.summary(),
        embed.summary(),
        idle.summary(),
        busy.summary(),
        busy_many.summary(),
    );
    let n_answers = answers.load(Ordering::SeqCst);
    let mut out = std::io::stdout().lock();
    if b.json {
        writeln!(
            out,
            "{}",
            json!({
                "chunks": b.chunks, "connections": b.connections, "seconds": b.seconds,
                "build_seconds": build_seconds, "search_mode": "bm25",
                "search": s, "embeddings": e, "search_idle_1conn": i,
                "search_while_generating_1conn": g,
                "search_while_generating": gm,
                "chat_answers_during": n_answers, "chat_error": chat_error,
                "search_p99_ms": g["p99_ms"],
            })
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let line = |name: &str, v: &Value| {
        format!(
            "  {name:<44} {:>7} requests  {:>4} errors  {:>7.1} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
            v["requests"], v["errors"], v["rps"].as_f64().unwrap_or(0.0),
            v["p50_ms"].as_f64().unwrap_or(0.0), v["p99_ms"].as_f64().unwrap_or(0.0)
        )
    };
    writeln!(
        out,
        "luodi serve under load from a second process: {} chunks (BM25), {} s per phase",
        b.chunks, b.seconds
    )?;
    writeln!(
        out,
        "{}",
        line(&format!("search, {} connections", b.connections), &s)
    )?;
    writeln!(
        out,
        "{}",
        line(&format!("embeddings, {} connections", b.connections), &e)
    )?;
    writeln!(out, "{}", line("search, 1 connection, model idle", &i))?;
    writeln!(
        out,
        "{}",
        line("search, 1 connection, while generating", &g)
    )?;
    writeln!(
        out,
        "{}",
        line(
            &format!("search, {} connections, while generating", b.connections),
            &gm
        )
    )?;
    writeln!(
        out,
        "  chat answers generated during the last two phases: {n_answers} (model busy {:.0}% of them){}",
        100.0 * (generating_ms.load(Ordering::SeqCst) as f64 / 1000.0 / busy_secs).min(1.0),
        chat_error.map_or(String::new(), |e| format!("; chat error: {e}"))
    )?;
    for (name, v) in [
        ("search", &s),
        ("embeddings", &e),
        ("search while generating", &gm),
    ] {
        if let Some(err) = v["first_error"].as_str() {
            writeln!(out, "  first {name} error: {err}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
