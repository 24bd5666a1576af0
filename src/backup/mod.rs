//! Taking a snapshot: walk → read (holes skipped) → chunk → hash → dedup → compress → pack →
//! index → trees → snapshot record.
//!
//! Owns: [`BackupOptions`], [`snapshot`] and the parallel pipeline. Directories and files are
//! processed on the rayon pool (files of a directory and its subdirectories in parallel; the
//! chunks of one large window hashed in parallel); packs are sealed and uploaded by the pack
//! writer's background thread, so reading, hashing, compressing and writing overlap. Memory is
//! bounded by the read windows in flight (one per worker) and the pack upload queue.
//!
//! Invariants: nothing is listed until the snapshot record is written, and the record is
//! written only after every pack and the index file it needs are durable. A chunk is stored at
//! most once per run (in-flight set) and never when the index already has it.

mod capture;
mod ctx;
mod dry_run;
mod parent;
mod read;
mod sources;
pub(crate) mod walk;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use crate::clock::{hostname, now_ns};
use crate::commit::Commit;
use crate::error::{Error, Result};
use crate::format::manifest::{FLAG_INCONSISTENT, SnapshotRecord};
use crate::id::{SnapshotId, TreeId};
use crate::index::{MERGE_THRESHOLD, merge};
use crate::progress::{Phase, Progress};
use crate::repository::Repository;
use crate::stage::StageSelection;

use crate::exclude::Excludes;
use ctx::Ctx;
pub use read::implied_size;
use sources::{capture_all, plan_sources, resolve_sources, root_meta};
pub use walk::{MAX_DEPTH, Meta};

/// What to snapshot and how.
#[derive(Clone, Debug, Default)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent switches of one run, one per CLI flag"
)]
pub struct BackupOptions {
    /// Tags recorded in the snapshot.
    pub tags: Vec<String>,
    /// Glob patterns of entries to leave out, as restic reads them: `/sub` is anchored at the
    /// source's top level; `*.tmp` or `cache/x` match a name or a trailing part of the path
    /// relative to the source at any depth; `**` crosses directories.
    pub excludes: Vec<String>,
    /// The same, matched ignoring case.
    pub iexcludes: Vec<String>,
    /// Host name to record (default: this machine's).
    pub host: Option<String>,
    /// Parent snapshot (default: the latest of the same host and the same set of paths).
    pub parent: Option<SnapshotId>,
    /// How many times a file that changes while read is read again before it is recorded
    /// with the changed-during-read flag (default 2).
    pub max_rereads: Option<u32>,
    /// Read every file even when its metadata equals the parent's entry.
    pub force_read: bool,
    /// Verification stages to run on captured files (default: the detected layout's).
    pub stages: StageSelection,
    /// Runs before anything is read (the database's checkpoint); an `Err` aborts the
    /// snapshot with its message and nothing is captured.
    pub pre_hook: Option<PreHook>,
    /// How many times a file that fails a format stage as captured is captured again before
    /// the snapshot fails (default 3).
    pub max_recaptures: Option<u32>,
    /// Commit a snapshot whose files still fail a stage after the recaptures, flagged
    /// inconsistent, instead of failing it.
    pub allow_inconsistent: bool,
    /// Do not descend into directories on another device than their source (the mount
    /// point is recorded as an empty directory).
    pub one_file_system: bool,
    /// Read, chunk and hash everything and count what would be stored, but write nothing
    /// to the repository (no pack, index, record or lock).
    pub dry_run: bool,
    /// Write no record when the new tree, host, paths and tags equal the parent's.
    pub skip_if_unchanged: bool,
    /// Which captured files the outcome lists, by how they compare to the parent.
    pub report: FileReport,
}

/// A pre-snapshot hook: the database's checkpoint.
#[derive(Clone)]
pub struct PreHook(pub Arc<dyn Fn() -> std::result::Result<(), String> + Send + Sync>);

impl std::fmt::Debug for PreHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PreHook(..)")
    }
}

/// A finished snapshot and what was noticed along the way.
#[derive(Clone, Debug)]
pub struct BackupOutcome {
    /// The record written (or, for a dry run or an unchanged skip, the one that would have
    /// been written).
    pub record: SnapshotRecord,
    /// Non-fatal problems: skipped entries, files that changed while read, a failed merge.
    pub warnings: Vec<String>,
    /// Entries that could not be read and are not in the snapshot, by path.
    pub unreadable: Vec<Unreadable>,
    /// The captured files [`BackupOptions::report`] asked for, by path.
    pub files: Vec<(FileChange, PathBuf)>,
    /// Whether the record was written.
    pub written: Written,
}

/// Whether a snapshot's record was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// The record is in the repository.
    Committed,
    /// A dry run: nothing was written.
    DryRun,
    /// Nothing changed since the parent (`skip_if_unchanged`): no record was written.
    Unchanged,
    /// A dry run that found nothing changed since the parent (`skip_if_unchanged`): the real
    /// run would write no record.
    UnchangedDryRun,
}

/// A source entry that could not be read (open, stat, list or read link failed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    pub path: PathBuf,
    /// What failed, as a sentence fragment ("cannot open it: Permission denied ...").
    pub error: String,
}

/// How a captured file compares to its entry in the parent snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileChange {
    New,
    Modified,
    Unchanged,
}

impl FileChange {
    /// `new`, `modified` or `unchanged`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            FileChange::New => "new",
            FileChange::Modified => "modified",
            FileChange::Unchanged => "unchanged",
        }
    }
}

/// Which captured files a snapshot lists in its outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FileReport {
    /// None (no per-file work).
    #[default]
    None,
    /// New and modified files.
    Changed,
    /// Every file, unchanged ones too.
    All,
}

/// Takes a snapshot of the directory `source` into `repo`.
pub fn snapshot(
    repo: &Repository,
    source: &Path,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupOutcome> {
    snapshot_paths(repo, &[source], opts, progress)
}

/// Takes one snapshot of several sources. One source must be a directory, and its tree is
/// the snapshot's root; with several (directories or files), the root holds one entry per
/// source, named by its final path component (two sources with the same name are refused).
pub fn snapshot_paths(
    repo: &Repository,
    sources: &[&Path],
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupOutcome> {
    let started = Instant::now();
    let time_ns = now_ns();
    let sources = resolve_sources(sources)?;
    if let Some(PreHook(hook)) = &opts.pre_hook {
        hook().map_err(Error::HookFailed)?;
    }
    if progress.is_cancelled() {
        return Err(Error::Cancelled);
    }
    // The lock records the prune marks seen before the index is loaded: a pack marked later
    // is not deleted while this snapshot runs (docs/DESIGN.md, "Garbage collection"). A dry
    // run writes nothing, so it takes none.
    let lock = if opts.dry_run {
        None
    } else {
        Some(crate::lock::acquire_job(repo.backend(), "snapshot")?)
    };
    repo.reload_index()?;
    let host = opts.host.clone().unwrap_or_else(hostname);
    let mut paths: Vec<String> = sources
        .iter()
        .map(|s| s.path.to_string_lossy().into_owned())
        .collect();
    paths.sort();
    let parent_rec = find_parent(repo, opts, &host, &paths)?;
    // A parent whose root tree cannot be read only costs reading everything again.
    let parent_root = match (&parent_rec, opts.force_read) {
        (Some(r), false) => repo.load_tree(&r.tree).ok().map(Arc::new),
        _ => None,
    };

    progress.phase(Phase::Scan, 0, 0);
    let planned = plan_sources(&sources, opts)?;
    let root = root_meta(&planned);
    let excludes = sources::exclude_rules(&planned);
    let mut ctx = Ctx::new(repo, opts, parent_rec.as_ref(), progress)?;
    if let Some(lock) = &lock {
        // Never upload a pack under the name of a marked one (see `PackWriter::avoid`).
        ctx.writer.avoid(crate::lock::marked_packs(
            repo.backend().as_ref(),
            &lock.record().seen_marks,
        )?);
    }
    let pool = worker_pool(&sources[0].path)?;
    // The parent's totals are the progress's estimate; a first snapshot counts beside.
    let estimate = parent_rec
        .as_ref()
        .map(|p| (p.summary.bytes, p.summary.files));
    let tree = capture_all(
        &mut ctx,
        &pool,
        &planned,
        opts,
        parent_root.as_deref(),
        estimate,
    )?;

    // Everything a restore of the new record would give differently counts: the tree, the
    // top directory's own metadata and the stages that checked it, as well as host, paths
    // and tags.
    let unchanged = opts.skip_if_unchanged
        && parent_rec.as_ref().is_some_and(|p| {
            p.tree == tree
                && p.host == host
                && p.root == root
                && same_set(&p.paths, &paths)
                && same_set(&p.tags, &opts.tags)
                && same_set(&p.stages, &ctx.stage_names)
        });
    let stamp = Stamp {
        started,
        time_ns,
        host,
        paths,
        parent: parent_rec.as_ref().map(|r| r.id),
        root,
        excludes,
        unchanged,
    };
    commit(ctx, lock.as_ref(), tree, opts, &stamp)
}

/// Whether two lists hold the same strings, in any order.
fn same_set(a: &[String], b: &[String]) -> bool {
    let mut a: Vec<&String> = a.iter().collect();
    let mut b: Vec<&String> = b.iter().collect();
    a.sort();
    a.dedup();
    b.sort();
    b.dedup();
    a == b
}

/// What the record of a snapshot says besides what the run counted.
struct Stamp {
    started: Instant,
    time_ns: i64,
    host: String,
    paths: Vec<String>,
    parent: Option<SnapshotId>,
    /// The source directory's own metadata (one directory source only).
    root: Option<crate::format::manifest::DirMeta>,
    /// The exclude patterns of the one directory source.
    excludes: Option<crate::format::manifest::ExcludeRules>,
    /// The tree, host, paths and tags equal the parent's, and no record is wanted then.
    unchanged: bool,
}

/// Seals the packs, then commits: index, record, re-index of marked packs, merge. Without a
/// lock (a dry run) nothing is committed; an unchanged snapshot commits only the index of
/// packs it had to write (blobs the parent's lost).
fn commit(
    ctx: Ctx<'_>,
    lock: Option<&crate::lock::LockGuard>,
    tree: TreeId,
    opts: &BackupOptions,
    stamp: &Stamp,
) -> Result<BackupOutcome> {
    let (repo, progress) = (ctx.repo, ctx.progress);
    progress.phase(Phase::Commit, 0, 0);
    let sealed = ctx.writer.finish()?;
    // Nothing is claimed after the last pack: the set of blobs in flight goes before the
    // index is written.
    for shard in &ctx.inflight {
        std::mem::take(&mut *shard.lock().unwrap_or_else(PoisonError::into_inner));
    }
    // The last safe point: after it the index and the record are written.
    if progress.is_cancelled() {
        return Err(Error::Cancelled);
    }
    let mut record = new_record(&ctx, tree, opts, stamp);
    let Some(lock) = lock else {
        // A dry run tells what the real run would do, the skip included.
        if stamp.unchanged {
            return Ok(outcome(ctx, record, Written::UnchangedDryRun, Vec::new()));
        }
        record.summary.stored_bytes += (record.to_bytes().len() + repo.codec().overhead()) as u64;
        return Ok(outcome(ctx, record, Written::DryRun, Vec::new()));
    };
    let commit = Commit::new(repo, lock, &ctx.index, &sealed);
    record.summary.stored_bytes += commit.index_packs()?;
    if stamp.unchanged {
        return Ok(outcome(ctx, record, Written::Unchanged, Vec::new()));
    }
    record.summary.stored_bytes += (record.to_bytes().len() + repo.codec().overhead()) as u64;
    commit.record(&record)?;
    // A prune that marked packs this snapshot uses (reused from its view, or its own packs
    // before its record existed) took them out of the index; its lock kept them. Index them
    // again, so the snapshot restores through the index (readers also look into marked packs
    // meanwhile, and a later prune would rescue them from the record).
    let mut late_warnings = Vec::new();
    if let Err(e) = commit.reindex_marked(&tree) {
        late_warnings.push(format!(
            "could not re-index blobs of packs a prune marked during this snapshot ({e}); the next prune puts them back"
        ));
    }
    // Merging is housekeeping after the commit; failing it loses nothing.
    if let Err(e) = lock
        .check()
        .and_then(|()| repo.reload_index())
        .and_then(|()| {
            merge(
                repo.backend().as_ref(),
                repo.codec(),
                &repo.index(),
                MERGE_THRESHOLD,
            )
        })
    {
        late_warnings.push(format!("index merge skipped: {e}"));
    }
    Ok(outcome(ctx, record, Written::Committed, late_warnings))
}

/// The record of this run (its stored bytes so far: the packs).
fn new_record(ctx: &Ctx<'_>, tree: TreeId, opts: &BackupOptions, stamp: &Stamp) -> SnapshotRecord {
    SnapshotRecord {
        id: uuid::Uuid::now_v7(),
        time_ns: stamp.time_ns,
        host: stamp.host.clone(),
        paths: stamp.paths.clone(),
        tags: opts.tags.clone(),
        parent: stamp.parent,
        tree,
        summary: ctx
            .counters
            .summary(ctx.writer.stored_bytes(), stamp.started),
        program: concat!("snapkeep ", env!("CARGO_PKG_VERSION")).into(),
        stages: ctx.stage_names.clone(),
        flags: if ctx.counters.inconsistent.load(Ordering::Relaxed) > 0 {
            FLAG_INCONSISTENT
        } else {
            0
        },
        root: stamp.root,
        excludes: stamp.excludes.clone(),
        original: None,
    }
}

/// The outcome of a run: its record and what the run noticed, sorted by path.
fn outcome(
    ctx: Ctx<'_>,
    record: SnapshotRecord,
    written: Written,
    late_warnings: Vec<String>,
) -> BackupOutcome {
    let mut warnings = ctx
        .warnings
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    warnings.extend(late_warnings);
    let mut unreadable = ctx
        .unreadable
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    unreadable.sort_by(|a, b| a.path.cmp(&b.path));
    let mut files = ctx
        .files
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    files.sort_by(|a, b| a.1.cmp(&b.1));
    BackupOutcome {
        record,
        warnings,
        unreadable,
        files,
        written,
    }
}

/// The parent snapshot: the one asked for, else the latest of this host and these paths.
fn find_parent(
    repo: &Repository,
    opts: &BackupOptions,
    host: &str,
    paths: &[String],
) -> Result<Option<SnapshotRecord>> {
    if let Some(p) = opts.parent {
        return repo.load_snapshot(&p).map(Some);
    }
    let (mut recs, _) = repo.snapshots()?;
    Ok(recs
        .iter()
        .rposition(|r| r.host == host && same_set(&r.paths, paths))
        .map(|i| recs.swap_remove(i)))
}

/// The pool that captures: directories recurse on its threads, so each has room for
/// `MAX_DEPTH` levels.
fn worker_pool(source: &Path) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .stack_size(32 << 20)
        .thread_name(|i| format!("snapkeep-snapshot-{i}"))
        .build()
        .map_err(|e| Error::io("start worker threads for", source, std::io::Error::other(e)))
}

/// Checks exclude patterns without taking a snapshot (so callers can refuse early).
pub fn check_excludes(patterns: &[String], ipatterns: &[String]) -> Result<()> {
    Excludes::new(patterns, ipatterns).map(|_| ())
}

/// Checks that `sources` can be snapshotted together (each exists; one source is a directory;
/// several are directories or files with distinct last names), without taking a snapshot.
pub fn check_sources(sources: &[&Path]) -> Result<()> {
    resolve_sources(sources).map(|_| ())
}
