//! Jobs: the library's coordinator, in the shape of the old backup coordinator.
//!
//! Owns: [`SnapshotCoordinator`] (start → [`JobHandle`] at once; [`JobState`] by polling;
//! cancel; history) and [`JobProgress`], the `Progress` implementation behind a job's status.
//! The work runs on a background thread (rayon inside); no async runtime is needed — from
//! tokio, call it through `spawn_blocking` (or just call `start_*`, which returns at once).
//!
//! Invariants: at most one job of a kind runs per coordinator (a second start is
//! `Error::Conflict`); a job's percent never decreases and is 100 only when it completed; a
//! cancelled job commits nothing (the engine stops at its next safe point); the database's
//! checkpoint callback runs before the first byte is read.

mod progress;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

pub use self::progress::JobProgress;

use crate::backup::{BackupOptions, PreHook};
use crate::error::{Error, Result};
use crate::format::manifest::Summary;
use crate::id::SnapshotId;
use crate::repository::Repository;
use crate::restore::{RestoreOptions, RestoreStats};
use crate::verify::{VerifyOptions, VerifyReport};

/// What a job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobKind {
    Snapshot,
    Restore,
    Verify,
}

/// Names one started job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct JobHandle {
    pub id: u64,
    pub kind: JobKind,
}

/// What a finished job produced.
#[derive(Clone, Debug)]
pub enum JobOutcome {
    Snapshot {
        snapshot_id: SnapshotId,
        summary: Summary,
        warnings: Vec<String>,
    },
    Restore(RestoreStats),
    Verify(VerifyReport),
}

/// The state of a job.
#[derive(Clone, Debug)]
pub enum JobState {
    Running {
        phase: &'static str,
        percent: f64,
        bytes_done: u64,
        bytes_total: u64,
        files_done: u64,
        files_total: u64,
    },
    Completed {
        /// The new snapshot (snapshot jobs) or the one restored or verified, if any.
        snapshot_id: Option<SnapshotId>,
        outcome: JobOutcome,
    },
    Failed {
        error: String,
        /// Whether it failed because it was cancelled.
        cancelled: bool,
    },
}

impl JobState {
    /// Percent done: the running percent, 100 once completed, `None` after a failure.
    #[must_use]
    pub fn percent(&self) -> Option<f64> {
        match self {
            JobState::Running { percent, .. } => Some(*percent),
            JobState::Completed { .. } => Some(100.0),
            JobState::Failed { .. } => None,
        }
    }

    /// Whether the job has ended.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        !matches!(self, JobState::Running { .. })
    }
}

struct Entry {
    progress: Arc<JobProgress>,
    result: Arc<Mutex<Option<JobState>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A finished job, for [`SnapshotCoordinator::history`].
#[derive(Clone, Debug)]
pub struct JobRecord {
    pub handle: JobHandle,
    pub state: JobState,
}

/// The checkpoint callback of the database (run before capture).
pub type Checkpoint<E> = Arc<dyn Fn() -> std::result::Result<(), E> + Send + Sync>;

/// Starts and tracks snapshot, restore and verify jobs of one source directory.
pub struct SnapshotCoordinator {
    repo: Arc<Repository>,
    source: PathBuf,
    checkpoint: PreHook,
    next: AtomicU64,
    jobs: Mutex<HashMap<u64, Entry>>,
}

impl SnapshotCoordinator {
    /// A coordinator for snapshots of `source_dir` into `repository`; `checkpoint` runs before
    /// every snapshot's capture (a failing checkpoint fails the job with its error).
    pub fn new<E: std::fmt::Display + 'static>(
        repository: Arc<Repository>,
        source_dir: impl Into<PathBuf>,
        checkpoint: Checkpoint<E>,
    ) -> Self {
        let hook = PreHook(Arc::new(move || checkpoint().map_err(|e| e.to_string())));
        SnapshotCoordinator {
            repo: repository,
            source: source_dir.into(),
            checkpoint: hook,
            next: AtomicU64::new(1),
            jobs: Mutex::new(HashMap::new()),
        }
    }

    /// The source directory.
    #[must_use]
    pub fn source(&self) -> &Path {
        &self.source
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn start<F>(&self, kind: JobKind, work: F) -> Result<JobHandle>
    where
        F: FnOnce(&JobProgress) -> Result<(Option<SnapshotId>, JobOutcome)> + Send + 'static,
    {
        let mut jobs = self.lock();
        if let Some((id, _)) = jobs.iter().find(|(_, e)| {
            e.progress.kind() == kind
                && e.result
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_none()
        }) {
            return Err(Error::Conflict(format!(
                "{kind:?} job {id} of {}",
                self.source.display()
            )));
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let progress = Arc::new(JobProgress::new(kind));
        let result: Arc<Mutex<Option<JobState>>> = Arc::new(Mutex::new(None));
        let (p, r) = (Arc::clone(&progress), Arc::clone(&result));
        let thread = std::thread::Builder::new()
            .name(format!("snapkeep-job-{id}"))
            .spawn(move || {
                // A panic in the work (or in a caller's checkpoint) fails the job instead of
                // leaving it "running" forever and every later start in conflict.
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&p)));
                let state = match run {
                    Ok(Ok((snapshot_id, outcome))) => JobState::Completed {
                        snapshot_id,
                        outcome,
                    },
                    Ok(Err(e)) => JobState::Failed {
                        cancelled: matches!(e, Error::Cancelled),
                        error: e.to_string(),
                    },
                    Err(panic) => JobState::Failed {
                        cancelled: false,
                        error: format!(
                            "the job panicked: {}; nothing was committed",
                            panic
                                .downcast_ref::<&str>()
                                .map(|s| (*s).to_owned())
                                .or_else(|| panic.downcast_ref::<String>().cloned())
                                .unwrap_or_else(|| "no message".into())
                        ),
                    },
                };
                *r.lock().unwrap_or_else(PoisonError::into_inner) = Some(state);
            })
            .map_err(|e| Error::io("start a job thread for", &self.source, e))?;
        jobs.insert(
            id,
            Entry {
                progress,
                result,
                thread: Some(thread),
            },
        );
        Ok(JobHandle { id, kind })
    }

    /// Starts a snapshot; returns at once. The checkpoint runs first, on the job's thread.
    pub fn start_snapshot(&self, mut options: BackupOptions) -> Result<JobHandle> {
        options.pre_hook = Some(self.checkpoint.clone());
        let repo = Arc::clone(&self.repo);
        let source = self.source.clone();
        self.start(JobKind::Snapshot, move |p| {
            let out = crate::backup::snapshot(&repo, &source, &options, p)?;
            Ok((
                Some(out.record.id),
                JobOutcome::Snapshot {
                    snapshot_id: out.record.id,
                    summary: out.record.summary,
                    warnings: out.warnings,
                },
            ))
        })
    }

    /// Starts a restore of `snapshot` into `target`; returns at once.
    pub fn start_restore(
        &self,
        snapshot: SnapshotId,
        target: impl Into<PathBuf>,
        options: RestoreOptions,
    ) -> Result<JobHandle> {
        let repo = Arc::clone(&self.repo);
        let target = target.into();
        self.start(JobKind::Restore, move |p| {
            let stats = crate::restore::restore(&repo, &snapshot, &target, &options, p)?;
            Ok((Some(snapshot), JobOutcome::Restore(stats)))
        })
    }

    /// Starts a verification; returns at once.
    pub fn start_verify(&self, options: VerifyOptions) -> Result<JobHandle> {
        let repo = Arc::clone(&self.repo);
        self.start(JobKind::Verify, move |p| {
            let report = crate::verify::verify(&repo, &options, p)?;
            Ok((options.snapshot, JobOutcome::Verify(report)))
        })
    }

    /// The state of a job; `NotFound` for a handle this coordinator did not start.
    pub fn status(&self, handle: &JobHandle) -> Result<JobState> {
        let jobs = self.lock();
        let e = jobs
            .get(&handle.id)
            .filter(|e| e.progress.kind() == handle.kind)
            .ok_or_else(|| Error::NotFound(format!("job {} ({:?})", handle.id, handle.kind)))?;
        if let Some(done) = &*e.result.lock().unwrap_or_else(PoisonError::into_inner) {
            return Ok(done.clone());
        }
        Ok(e.progress.state())
    }

    /// Asks a job to stop at its next safe point; it then fails as cancelled and commits
    /// nothing. A cancel that arrives after a snapshot's last safe point (its packs flushed,
    /// index and record being written) is too late: that job completes. Cancelling a finished
    /// job changes nothing.
    pub fn cancel(&self, handle: &JobHandle) -> Result<()> {
        let jobs = self.lock();
        let e = jobs
            .get(&handle.id)
            .ok_or_else(|| Error::NotFound(format!("job {} ({:?})", handle.id, handle.kind)))?;
        e.progress.cancel();
        Ok(())
    }

    /// Blocks until the job has finished and returns its final state.
    pub fn wait(&self, handle: &JobHandle) -> Result<JobState> {
        let thread = {
            let mut jobs = self.lock();
            let e = jobs
                .get_mut(&handle.id)
                .ok_or_else(|| Error::NotFound(format!("job {} ({:?})", handle.id, handle.kind)))?;
            e.thread.take()
        };
        if let Some(t) = thread {
            let _ = t.join();
        }
        self.status(handle)
    }

    /// Finished jobs, oldest first.
    #[must_use]
    pub fn history(&self) -> Vec<JobRecord> {
        let jobs = self.lock();
        let mut out: Vec<JobRecord> = jobs
            .iter()
            .filter_map(|(id, e)| {
                let r = e.result.lock().unwrap_or_else(PoisonError::into_inner);
                r.as_ref().map(|state| JobRecord {
                    handle: JobHandle {
                        id: *id,
                        kind: e.progress.kind(),
                    },
                    state: state.clone(),
                })
            })
            .collect();
        out.sort_by_key(|r| r.handle.id);
        out
    }

    /// The latest snapshot of this source in the repository (by any process).
    pub fn latest_snapshot(&self) -> Result<Option<SnapshotId>> {
        let source = std::fs::canonicalize(&self.source).unwrap_or_else(|_| self.source.clone());
        let path = source.to_string_lossy().into_owned();
        let (recs, _) = self.repo.snapshots()?;
        Ok(recs
            .iter()
            .rev()
            .find(|r| r.paths == [path.clone()])
            .map(|r| r.id))
    }
}
