//! Progress bars for long runs (drawn on stderr only when it is a terminal).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use luodi_engine::Progress;

pub struct Bar {
    bar: ProgressBar,
    bytes: AtomicU64,
    started: Instant,
    quiet: bool,
}

impl Bar {
    pub fn new(quiet: bool) -> Bar {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        if quiet {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} files  {per_sec}  {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        Bar {
            bar,
            bytes: AtomicU64::new(0),
            started: Instant::now(),
            quiet,
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for Bar {
    fn start(&self, files: u64, _bytes: u64) {
        self.bar.set_length(files);
    }

    fn advance(&self, files: u64, bytes: u64) {
        let total = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.bar.inc(files);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        self.bar
            .set_message(format!("{:.1} MB/s", total as f64 / 1e6 / secs));
    }

    fn message(&self, line: &str) {
        if self.quiet {
            return;
        }
        self.bar.suspend(|| eprintln!("{line}"));
    }
}
