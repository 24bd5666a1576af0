//! Garbage collection (`prune`): reclaims the space of packs no snapshot needs, without ever
//! blocking a snapshot and without ever deleting a blob a snapshot can reach.
//!
//! Owns: the two-phase collection described in `docs/DESIGN.md` ("Garbage collection"), its
//! public face ([`prune`], [`PruneOptions`], [`MaxUnused`], [`PruneReport`]) and the order in
//! which a run goes: decide, then act. One run under the exclusive prune lock; each pass:
//! 1. reads the state (`state.rs`): marks, live job locks (the stale ones are removed before
//!    anything else is read, `execute::tidy`), the index, the pack listing and every snapshot
//!    record, and computes the reachable set R;
//! 2. sweeps earlier marks (`plan.rs`): a marked pack that holds a reachable blob the index
//!    lacks is rescued (its entries go back into the index); one the index references again
//!    is unmarked; one that is past the grace period and that every live job has seen marked
//!    is deleted; the rest wait;
//! 3. marks: packs without a reachable blob, and packs no index file names, are marked; packs
//!    whose unused share would keep the repository above `max_unused` have their reachable
//!    blobs copied into new packs and are marked too;
//! 4. acts (`execute.rs`): new packs → new index file (after a pending copy of the new mark)
//!    → old index files deleted → swept packs deleted → marks written (a new mark only after
//!    the index stopped naming its packs) → the rescue of records committed meanwhile
//!    (`rescue.rs`). Left-over staged files go first (`staging.rs`).
//!
//! Steps 1 to 3 only read and decide: they produce a `GcPlan` (`plan.rs`), a plain value
//! that says what happens to every pack and why. A dry run is that plan reported: it takes no
//! lock and writes nothing (no stale lock, damaged mark or staged file is removed), and the
//! acting half never asks whether the run is a dry one. With `grace` zero a second pass sweeps
//! the new mark at once when no job holds a lock. Work and memory are proportional to the
//! index (one map entry per blob), never to the data.
//!
//! Invariants (numbered as in the design): a mark is written only after the index stopped
//! naming its packs (1); a pack is deleted only when it is in a mark past the grace period
//! that every live job has seen, no index file names it and R needs nothing found only in it
//! (2); writes follow the order of step 4 (4); the prune lock is checked before every index
//! write and every pack deletion (10).
//!
//! Must not: act on anything the plan did not decide, nor run two prunes at once.

mod execute;
mod plan;
mod rescue;
mod staging;
mod state;

use std::time::Duration;

use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::lock::{self, LockGuard, STALE_AFTER};
use crate::repository::Repository;

/// How much unused space may stay in packs that are kept.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MaxUnused {
    /// At most this percentage of the repository's pack bytes (0..100).
    Percent(f64),
    /// At most this many bytes.
    Bytes(u64),
    /// Never repack.
    Unlimited,
}

impl MaxUnused {
    /// Parses `5%`, `10`, `200MiB`, `1G`, `unlimited`.
    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("unlimited") {
            return Ok(MaxUnused::Unlimited);
        }
        if let Some(p) = t.strip_suffix('%') {
            return match p.trim().parse::<f64>() {
                Ok(v) if (0.0..100.0).contains(&v) => Ok(MaxUnused::Percent(v)),
                _ => Err(Error::InvalidInput(format!(
                    "--max-unused '{s}': give a percentage from 0% to below 100%, a size, or 'unlimited'"
                ))),
            };
        }
        crate::units::parse_size(t)
            .map(MaxUnused::Bytes)
            .map_err(|_| {
                Error::InvalidInput(format!(
                    "--max-unused '{s}': give a percentage (5%), a size (200MiB) or 'unlimited'"
                ))
            })
    }

    /// Unused bytes allowed when `live` bytes stay.
    pub(crate) fn limit(self, live: u64) -> u64 {
        match self {
            MaxUnused::Unlimited => u64::MAX,
            MaxUnused::Bytes(b) => b,
            // unused / (live + unused) <= p  <=>  unused <= live * p / (100 - p)
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "a non-negative float below u64::MAX for any repository size; `as` saturates"
            )]
            MaxUnused::Percent(p) => (live as f64 * p / (100.0 - p)) as u64,
        }
    }
}

/// Options of a prune.
#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// How long a marked pack waits before it may be deleted (default 1 h).
    pub grace: Duration,
    /// Unused space tolerated in kept packs (default 5%).
    pub max_unused: MaxUnused,
    /// Plan only: read everything, write nothing.
    pub dry_run: bool,
    /// Heartbeat age after which a lock is stale.
    pub stale_after: Duration,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            grace: Duration::from_secs(3600),
            max_unused: MaxUnused::Percent(5.0),
            dry_run: false,
            stale_after: STALE_AFTER,
        }
    }
}

/// What a prune found and did (or, with `dry_run`, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub dry_run: bool,
    pub snapshots: u64,
    pub reachable_blobs: u64,
    pub packs_before: u64,
    pub pack_bytes_before: u64,
    /// Packs marked in this run (unreferenced, unindexed, or repacked).
    pub marked_packs: u64,
    pub marked_bytes: u64,
    /// Packs whose reachable blobs were copied into new packs.
    pub repacked_packs: u64,
    pub moved_blobs: u64,
    pub moved_bytes: u64,
    pub new_packs: u64,
    /// Marked packs deleted.
    pub deleted_packs: u64,
    pub deleted_bytes: u64,
    /// Marked packs put back into the index because a snapshot needs them.
    pub rescued_packs: u64,
    /// Marked packs an index file names again (kept, mark dropped).
    pub unmarked_packs: u64,
    /// Marked packs waiting for the grace period or for jobs that started before the mark.
    pub waiting_packs: u64,
    pub waiting_bytes: u64,
    pub index_files_before: u64,
    pub index_files_after: u64,
    /// Unused bytes left in kept packs.
    pub unused_bytes_after: u64,
    pub packs_after: u64,
    pub pack_bytes_after: u64,
    /// Staged files (half-written packs and objects) that stopped processes left in the
    /// staging directory, removed (or, in a dry run, to be removed).
    pub staging_files_removed: u64,
    pub staging_bytes_removed: u64,
    /// Removed stale locks and other remarks.
    pub notes: Vec<String>,
}

/// Runs a prune (two passes when `grace` is zero), or with `dry_run` reports what a real run
/// would do.
pub fn prune(repo: &Repository, opts: &PruneOptions) -> Result<PruneReport> {
    if opts.dry_run {
        dry_run_without(repo, opts, &[])
    } else {
        run(repo, opts)
    }
}

/// The dry run of a prune that follows forgetting `forgotten` (`forget --prune --dry-run`):
/// planned as if those snapshots' records were gone, so it reports what the real run will do
/// once they are. Takes no lock and writes nothing; `opts.dry_run` is not consulted.
///
/// The report is the plan of the first pass with what acting would add foreseen: the new
/// mark waits (or, with `grace` zero and no live job, the second pass deletes it), the repack
/// writes the packs the plan's copy order fills, the index becomes one file.
pub fn dry_run_without(
    repo: &Repository,
    opts: &PruneOptions,
    forgotten: &[SnapshotId],
) -> Result<PruneReport> {
    let mut report = PruneReport {
        dry_run: true,
        ..PruneReport::default()
    };
    let mut survey = state::survey(repo.backend().as_ref(), opts.stale_after)?;
    report.notes.append(&mut survey.notes);
    let live_jobs = survey.live_jobs().next().is_some();
    let plan = plan::plan(repo, opts, survey, true, forgotten)?;
    plan.tally(&mut report);
    plan.forecast(
        opts.grace.is_zero() && !live_jobs,
        (
            u64::from(repo.config().pack_size),
            repo.codec().overhead() as u64,
        ),
        &mut report,
    );
    repo.reload_index()?;
    Ok(report)
}

/// The real run: under the prune lock, one pass, and a second one when `grace` is zero and the
/// first marked packs.
fn run(repo: &Repository, opts: &PruneOptions) -> Result<PruneReport> {
    let mut report = PruneReport::default();
    let guard = lock::acquire_prune(repo.backend(), opts.stale_after, &mut report.notes)?;
    pass(repo, opts, &guard, &mut report, true)?;
    if opts.grace.is_zero() && report.marked_packs > 0 {
        pass(repo, opts, &guard, &mut report, false)?;
    }
    // Still under the lock, as every step of the run.
    repo.reload_index()?;
    Ok(report)
}

/// One pass: survey marks and locks, remove the stale locks and damaged marks, read the rest
/// and decide, then act.
fn pass(
    repo: &Repository,
    opts: &PruneOptions,
    guard: &LockGuard,
    report: &mut PruneReport,
    first: bool,
) -> Result<()> {
    let backend = repo.backend().as_ref();
    let mut survey = state::survey(backend, opts.stale_after)?;
    report.notes.append(&mut survey.notes);
    // Before the records are listed: a job whose lock is removed here cannot commit later.
    execute::tidy(backend, &survey, &mut report.notes)?;
    let plan = plan::plan(repo, opts, survey, first, &[])?;
    plan.tally(report);
    execute::execute(repo, plan, guard, report)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::PruneOptions;
    use super::plan::{Decision, MarkReason, plan};
    use super::state;
    use crate::backend::{Backend, MemoryBackend};
    use crate::format::keys;
    use crate::{BackupOptions, InitOptions, NoProgress, Repository};

    #[test]
    fn a_plan_decides_with_reasons_and_writes_nothing() {
        let tmp = tempfile::tempdir().expect("tmp");
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).expect("mkdir");
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let repo = Repository::init(Arc::clone(&backend), &InitOptions::default()).expect("init");
        std::fs::write(src.join("a"), vec![7u8; 100_000]).expect("write");
        let old =
            crate::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress).expect("snapshot");
        std::fs::remove_file(src.join("a")).expect("rm");
        std::fs::write(src.join("b"), vec![9u8; 100_000]).expect("write");
        crate::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress).expect("snapshot");
        repo.forget(&[old.record.id]).expect("forget");
        let objects = |b: &dyn Backend| b.list("").expect("list").len();
        let before = objects(backend.as_ref());

        let opts = PruneOptions::default();
        let survey = state::survey(backend.as_ref(), opts.stale_after).expect("survey");
        let plan = plan(&repo, &opts, survey, true, &[]).expect("plan");

        assert_eq!(
            objects(backend.as_ref()),
            before,
            "planning wrote something"
        );
        assert!(
            backend
                .list(keys::Kind::Mark.prefix())
                .expect("marks")
                .is_empty()
        );
        let marked: Vec<_> = plan
            .packs
            .iter()
            .filter(|p| matches!(p.decision, Decision::Mark(MarkReason::NoLiveBlob)))
            .collect();
        // The forgotten snapshot's packs (its data and its trees) hold no live blob.
        assert_eq!(marked.len(), 2, "{:#?}", plan.packs);
        for p in &marked {
            assert!(p.to_string().ends_with("mark: no live blob"), "{p}");
        }
        assert_eq!(plan.new_mark().len(), 2);
        assert_eq!(plan.deletes().count(), 0);
        assert!(plan.index.is_some(), "the marked pack leaves the index");
        assert_eq!(plan.before.snapshots, 1);
    }
}
