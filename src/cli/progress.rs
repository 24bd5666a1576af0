//! Progress on stderr: an indicatif bar on a terminal, JSON lines with `--progress json`,
//! nothing otherwise. Both read the same counters (`JobProgress`), so the JSON percent is
//! monotonic like a job's status.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use snapkeep::job::JobProgress;
use snapkeep::{JobKind, JobState, Phase, Progress};

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, else nothing.
    Auto,
    /// One JSON object per line on stderr.
    Json,
    /// Nothing.
    None,
}

/// The CLI's `Progress`.
pub struct CliProgress {
    bar: Option<ProgressBar>,
    json: Option<Mutex<Instant>>,
    counts: JobProgress,
    /// Print warnings on stderr even without a bar (for commands that do not list them at
    /// the end).
    print_warnings: bool,
}

impl CliProgress {
    pub fn new(draw: bool, json: bool) -> Self {
        let bar = draw.then(|| {
            let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(
                    "{msg:>9} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {prefix}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b
        });
        CliProgress {
            bar,
            json: json.then(|| Mutex::new(Instant::now())),
            counts: JobProgress::new(JobKind::Snapshot),
            print_warnings: false,
        }
    }

    /// Warnings go to stderr as they come, also without a bar.
    #[must_use]
    pub fn printing_warnings(mut self, on: bool) -> Self {
        self.print_warnings = on;
        self
    }

    fn emit(&self, force: bool) {
        let Some(last) = &self.json else { return };
        let mut last = last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !force && last.elapsed() < Duration::from_millis(100) {
            return;
        }
        *last = Instant::now();
        if let JobState::Running {
            phase,
            percent,
            bytes_done,
            bytes_total,
            files_done,
            files_total,
        } = self.counts.state()
        {
            eprintln!(
                "{}",
                serde_json::json!({
                    "event": "progress",
                    "phase": phase,
                    "percent": percent,
                    "bytes_done": bytes_done,
                    "bytes_total": bytes_total,
                    "files_done": files_done,
                    "files_total": files_total,
                })
            );
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        if self.json.is_some() {
            eprintln!("{}", serde_json::json!({"event": "done", "percent": 100.0}));
        }
    }
}

impl Progress for CliProgress {
    fn phase(&self, phase: Phase, total_bytes: u64, total_files: u64) {
        self.counts.phase(phase, total_bytes, total_files);
        if let Some(b) = &self.bar {
            b.set_message(phase.name());
            b.set_length(total_bytes);
            b.set_position(0);
        }
        self.emit(true);
    }

    fn totals(&self, total_bytes: u64, total_files: u64) {
        self.counts.totals(total_bytes, total_files);
        if let Some(b) = &self.bar {
            b.set_length(total_bytes);
        }
        self.emit(true);
    }

    fn advance(&self, bytes: u64, files: u64) {
        self.counts.advance(bytes, files);
        if let Some(b) = &self.bar {
            b.inc(bytes);
            if files > 0 {
                let done: u64 = b.prefix().trim_end_matches(" files").parse().unwrap_or(0);
                b.set_prefix(format!("{} files", done + files));
            }
        }
        self.emit(false);
    }

    fn warn(&self, message: &str) {
        if let Some(b) = &self.bar {
            b.println(format!("warning: {message}"));
        } else if self.json.is_some() {
            eprintln!(
                "{}",
                serde_json::json!({"event": "warning", "message": message})
            );
        } else if self.print_warnings {
            eprintln!("warning: {message}");
        }
    }
}
