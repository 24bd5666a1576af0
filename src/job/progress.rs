//! The `Progress` implementation behind a job's status: atomic counters, a monotonic percent.

use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{JobKind, JobState};
use crate::progress::{Phase, Progress};

/// Progress of one job, read by `status`.
pub struct JobProgress {
    kind: JobKind,
    phase: Mutex<Phase>,
    bytes_total: AtomicU64,
    bytes_done: AtomicU64,
    files_total: AtomicU64,
    files_done: AtomicU64,
    /// Highest percent reported so far, in hundredths (keeps it monotonic across phases).
    best: AtomicU64,
    cancelled: AtomicBool,
}

impl JobProgress {
    /// Progress of a job of `kind`, at 0 %.
    #[must_use]
    pub fn new(kind: JobKind) -> Self {
        JobProgress {
            kind,
            phase: Mutex::new(Phase::Scan),
            bytes_total: AtomicU64::new(0),
            bytes_done: AtomicU64::new(0),
            files_total: AtomicU64::new(0),
            files_done: AtomicU64::new(0),
            best: AtomicU64::new(0),
            cancelled: AtomicBool::new(false),
        }
    }

    pub(crate) fn kind(&self) -> JobKind {
        self.kind
    }

    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// A `Running` state; its percent is at most 99 (100 belongs to `Completed`).
    /// The current `Running` state.
    #[must_use]
    pub fn state(&self) -> JobState {
        let phase = *self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        let bytes_total = self.bytes_total.load(Ordering::Relaxed);
        let bytes_done = self
            .bytes_done
            .load(Ordering::Relaxed)
            .min(bytes_total.max(1));
        let files_total = self.files_total.load(Ordering::Relaxed);
        let files_done = self.files_done.load(Ordering::Relaxed);
        let raw = match phase {
            Phase::Scan => 0,
            Phase::Commit => 9_900,
            _ if bytes_total > 0 => bytes_done.saturating_mul(9_900) / bytes_total,
            _ if files_total > 0 => files_done.saturating_mul(9_900) / files_total,
            _ => 0,
        };
        let hundredths = self
            .best
            .fetch_max(raw.min(9_900), Ordering::Relaxed)
            .max(raw.min(9_900))
            .min(9_900);
        JobState::Running {
            phase: phase.name(),
            percent: hundredths as f64 / 100.0,
            bytes_done,
            bytes_total,
            files_done,
            files_total,
        }
    }
}

impl Progress for JobProgress {
    fn phase(&self, phase: Phase, total_bytes: u64, total_files: u64) {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner) = phase;
        if total_bytes > 0 || total_files > 0 {
            self.bytes_total.store(total_bytes, Ordering::Relaxed);
            self.files_total.store(total_files, Ordering::Relaxed);
            self.bytes_done.store(0, Ordering::Relaxed);
            self.files_done.store(0, Ordering::Relaxed);
        }
    }

    fn totals(&self, total_bytes: u64, total_files: u64) {
        self.bytes_total.store(total_bytes, Ordering::Relaxed);
        self.files_total.store(total_files, Ordering::Relaxed);
    }

    fn advance(&self, bytes: u64, files: u64) {
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
        self.files_done.fetch_add(files, Ordering::Relaxed);
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
}
