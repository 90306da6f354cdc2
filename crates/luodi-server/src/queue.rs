//! The generation queue: one model on a few cores answers one request at a time, so chat
//! requests wait here — bounded in all and per key, served round-robin across keys so that
//! one busy department does not starve the others, and refused with a time to retry when full.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use luodi_models::llm::Generator;

/// Work for the model: given the generator, or why it could not be loaded.
pub type Task = Box<dyn FnOnce(Result<&dyn Generator, &str>) + Send>;

/// Why a task was not queued.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Full {
    /// Seconds until a place is likely free.
    pub retry_after: u64,
    /// The key's own share is taken (rather than the whole queue).
    pub per_key: bool,
}

struct Inner {
    queues: HashMap<String, VecDeque<Task>>,
    /// Keys with waiting tasks, in the order they are served.
    order: VecDeque<String>,
    waiting: usize,
    running: usize,
    /// Moving average of a task's time, for Retry-After.
    avg_ms: f64,
    closed: bool,
}

pub struct GenQueue {
    inner: Mutex<Inner>,
    cv: Condvar,
    capacity: usize,
    per_key: usize,
}

impl GenQueue {
    /// A queue holding at most `capacity` waiting tasks, `per_key` of them from one key.
    pub fn new(capacity: usize, per_key: usize) -> GenQueue {
        GenQueue {
            inner: Mutex::new(Inner {
                queues: HashMap::new(),
                order: VecDeque::new(),
                waiting: 0,
                running: 0,
                avg_ms: 3000.0,
                closed: false,
            }),
            cv: Condvar::new(),
            capacity: capacity.max(1),
            per_key: per_key.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `task` for `key`; its place in the queue (0: next).
    pub fn submit(&self, key: &str, task: Task) -> Result<usize, Full> {
        let mut g = self.lock();
        let retry_after =
            |g: &Inner| ((g.avg_ms * (g.waiting + g.running) as f64 / 1000.0).ceil() as u64).max(1);
        let mine = g.queues.get(key).map_or(0, VecDeque::len);
        if mine >= self.per_key {
            return Err(Full {
                retry_after: retry_after(&g),
                per_key: true,
            });
        }
        if g.closed || g.waiting >= self.capacity {
            return Err(Full {
                retry_after: retry_after(&g),
                per_key: false,
            });
        }
        let position = g.waiting;
        if mine == 0 {
            g.order.push_back(key.to_owned());
        }
        g.queues.entry(key.to_owned()).or_default().push_back(task);
        g.waiting += 1;
        drop(g);
        self.cv.notify_one();
        Ok(position)
    }

    /// Tasks waiting (not running).
    pub fn depth(&self) -> usize {
        self.lock().waiting
    }

    /// Tasks being run.
    pub fn running(&self) -> usize {
        self.lock().running
    }

    /// No more tasks are taken; the worker ends once the waiting ones are done.
    pub fn close(&self) {
        self.lock().closed = true;
        self.cv.notify_all();
    }

    /// The next task, round-robin over keys; `None` once closed and empty.
    fn next(&self) -> Option<Task> {
        let mut g = self.lock();
        loop {
            if let Some(key) = g.order.pop_front() {
                let q = g.queues.get_mut(&key)?;
                let task = q.pop_front()?;
                if q.is_empty() {
                    g.queues.remove(&key);
                } else {
                    g.order.push_back(key);
                }
                g.waiting -= 1;
                g.running += 1;
                return Some(task);
            }
            if g.closed {
                return None;
            }
            g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn finished(&self, ms: f64) {
        let mut g = self.lock();
        g.running -= 1;
        g.avg_ms = 0.8 * g.avg_ms + 0.2 * ms;
    }
}

/// Starts the thread that loads the model and runs the queue's tasks one after another.
pub fn spawn_worker(
    queue: Arc<GenQueue>,
    load: Box<dyn FnOnce() -> Result<Box<dyn Generator>, String> + Send>,
    loaded: Arc<Mutex<Option<String>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("luodi-generate".into())
        .spawn(move || {
            let generator = load();
            match &generator {
                Ok(g) => {
                    tracing::info!(model = g.name(), "model loaded");
                    *loaded.lock().unwrap_or_else(|p| p.into_inner()) = Some(g.name().to_owned());
                }
                Err(e) => tracing::error!(error = %e, "model not loaded; chat requests fail"),
            }
            while let Some(task) = queue.next() {
                let t0 = Instant::now();
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &generator {
                        Ok(g) => task(Ok(g.as_ref())),
                        Err(e) => task(Err(e.as_str())),
                    }));
                if outcome.is_err() {
                    tracing::error!("a generation task panicked");
                }
                queue.finished(t0.elapsed().as_secs_f64() * 1000.0);
            }
        })
        .expect("spawn the generation thread")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop() -> Task {
        Box::new(|_| {})
    }

    #[test]
    fn keys_are_served_round_robin_and_bounded() {
        let q = GenQueue::new(5, 3);
        let order = Arc::new(Mutex::new(Vec::new()));
        for (key, n) in [("a", 3), ("b", 2)] {
            for i in 0..n {
                let o = order.clone();
                let tag = format!("{key}{i}");
                q.submit(key, Box::new(move |_| o.lock().unwrap().push(tag)))
                    .unwrap();
            }
        }
        // a's fourth task is over its share; the queue is full for anyone
        assert!(q.submit("a", noop()).unwrap_err().per_key);
        assert!(!q.submit("c", noop()).unwrap_err().per_key);
        assert_eq!(q.depth(), 5);
        q.close();
        while let Some(t) = q.next() {
            t(Err("no model"));
            q.finished(1.0);
        }
        assert_eq!(*order.lock().unwrap(), ["a0", "b0", "a1", "b1", "a2"]);
    }
}
