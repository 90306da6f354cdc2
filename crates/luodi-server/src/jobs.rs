//! Background ingest jobs: uploaded files are stored under the knowledge base's files folder,
//! a job row is written, and one thread ingests (and embeds) them, recording progress. Jobs are
//! rows in the registry, so a server that stops — killed or gracefully past its grace period —
//! resumes the unfinished ones at its next start; ingest is incremental, so a resumed job only
//! does what was left.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use luodi_engine::{Home, IngestOptions, Progress};
use serde_json::{json, Value};

use crate::AppState;

#[derive(Clone)]
pub struct JobRunner {
    inner: Arc<Inner>,
}

struct Inner {
    tx: Mutex<Option<mpsc::Sender<String>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    stopping: AtomicBool,
    idle: Mutex<bool>,
    idle_cv: std::sync::Condvar,
}

impl Default for JobRunner {
    fn default() -> Self {
        Self::new()
    }
}

impl JobRunner {
    pub fn new() -> JobRunner {
        JobRunner {
            inner: Arc::new(Inner {
                tx: Mutex::new(None),
                thread: Mutex::new(None),
                stopping: AtomicBool::new(false),
                idle: Mutex::new(true),
                idle_cv: std::sync::Condvar::new(),
            }),
        }
    }

    /// Starts the worker thread and queues the jobs a previous run left unfinished.
    pub fn start(&self, state: Arc<AppState>) -> crate::anyhow_like::Result<()> {
        let (tx, rx) = mpsc::channel::<String>();
        for job in state.home.jobs_unfinished()? {
            tracing::info!(job = job.id, "resuming an unfinished ingest job");
            let _ = tx.send(job.id);
        }
        *self.inner.tx.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        let inner = self.inner.clone();
        let handle = std::thread::Builder::new()
            .name("luodi-jobs".into())
            .spawn(move || {
                while let Ok(id) = rx.recv() {
                    if inner.stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    *inner.idle.lock().unwrap_or_else(|p| p.into_inner()) = false;
                    state.metrics.jobs_running.set(1);
                    run_job(&state, &id);
                    state.metrics.jobs_running.set(0);
                    *inner.idle.lock().unwrap_or_else(|p| p.into_inner()) = true;
                    inner.idle_cv.notify_all();
                }
            })
            .map_err(|e| crate::anyhow_like::Error(format!("start the job thread: {e}")))?;
        *self.inner.thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Ok(())
    }

    /// Queues a job that is recorded in the registry.
    pub fn submit(&self, id: &str) {
        if let Some(tx) = &*self.inner.tx.lock().unwrap_or_else(|p| p.into_inner()) {
            let _ = tx.send(id.to_owned());
        }
    }

    /// Takes no more jobs and waits up to `grace` for the running one; queued ones stay
    /// queued in the registry for the next start.
    pub fn stop(&self, grace: Duration) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.inner
            .tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let deadline = Instant::now() + grace;
        let mut idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
        while !*idle {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!("an ingest job is still running: it resumes at the next start");
                return;
            }
            idle = self
                .inner
                .idle_cv
                .wait_timeout(idle, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// Progress written to the job row at most every half second.
struct JobProgress<'a> {
    home: &'a Home,
    id: &'a str,
    total: AtomicU64,
    done: AtomicU64,
    last: Mutex<Instant>,
}

impl Progress for JobProgress<'_> {
    fn start(&self, files: u64, _bytes: u64) {
        self.total.store(files, Ordering::Relaxed);
        let _ = self
            .home
            .job_update(self.id, "running", (0, files), None, None);
    }

    fn advance(&self, files: u64, _bytes: u64) {
        let done = self.done.fetch_add(files, Ordering::Relaxed) + files;
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() > Duration::from_millis(500) {
            *last = Instant::now();
            let _ = self.home.job_update(
                self.id,
                "running",
                (done, self.total.load(Ordering::Relaxed)),
                None,
                None,
            );
        }
    }
}

fn run_job(state: &AppState, id: &str) {
    let home = &state.home;
    let job = match home.job(id) {
        Ok(Some(j)) if j.state == "queued" || j.state == "running" => j,
        Ok(_) => return,
        Err(e) => {
            tracing::error!(job = id, error = %e, "job not readable");
            return;
        }
    };
    let fail = |why: &str| {
        tracing::warn!(job = id, error = why, "ingest job failed");
        let _ = home.job_update(
            id,
            "failed",
            (job.files_done, job.files_total),
            None,
            Some(why),
        );
    };
    let kb = match state.open_kb(&job.kb) {
        Ok(kb) => kb,
        Err(e) => return fail(&e.message),
    };
    let dir = home.files_dir(&job.kb);
    let dir_for_report = dir.clone();
    let _ = home.job_update(id, "running", (0, job.files_total), None, None);
    let progress = JobProgress {
        home,
        id,
        total: AtomicU64::new(job.files_total),
        done: AtomicU64::new(0),
        last: Mutex::new(Instant::now()),
    };
    let opts = IngestOptions {
        remove_missing: false,
        ..IngestOptions::default()
    };
    let report = match kb.ingest(&[dir], &opts, &progress) {
        Ok(r) => r,
        Err(e) => return fail(&e.to_string()),
    };
    let mut v = serde_json::to_value(&report).unwrap_or_default();
    // files of this upload that no reader takes are reported with the files that failed
    let unsupported: Vec<Value> = job.input["files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["name"].as_str())
        .filter(|name| luodi_ingest::FileKind::from_path(std::path::Path::new(name)).is_none())
        .map(|name| {
            json!([
                dir_for_report.join(name).to_string_lossy(),
                "unsupported file type: not ingested (supported: .txt .md .html .json .jsonl .csv .tsv .xlsx .xls .ods .docx .pdf)"
            ])
        })
        .collect();
    if let Some(failed) = v["failed"].as_array_mut() {
        failed.extend(unsupported);
    }
    // the vectors arrive after the words: the knowledge base answers with BM25 meanwhile
    if let Some(embedder) = &state.embedder {
        match kb.embed_pending(embedder.as_ref(), &state.cache, &luodi_engine::NoProgress) {
            Ok(r) => v["embedded"] = json!(r.embedded),
            Err(e) => v["embed_error"] = json!(e.to_string()),
        }
    }
    let files = report.files_seen;
    let _ = home.job_update(id, "done", (files, files), Some(&v), None);
    tracing::info!(job = id, files, "ingest job done");
}
