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
mod parent;
mod read;
pub(crate) mod walk;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use crate::clock::{hostname, now_ns};
use crate::commit::Commit;
use crate::error::{Error, Result};
use crate::format::manifest::{FLAG_INCONSISTENT, Node, SnapshotRecord, Tree};
use crate::id::{SnapshotId, TreeId};
use crate::index::{MERGE_THRESHOLD, merge};
use crate::progress::{Phase, Progress};
use crate::repository::Repository;
use crate::stage::{Layout, StageSelection, StageSet};

use capture::{capture_one, join_rel, process_dir};
use ctx::Ctx;
pub use read::implied_size;
pub use walk::{MAX_DEPTH, Meta};
use walk::{ScannedDir, scan};

/// What to snapshot and how.
#[derive(Clone, Debug, Default)]
pub struct BackupOptions {
    /// Tags recorded in the snapshot.
    pub tags: Vec<String>,
    /// Glob patterns; an entry is excluded when a pattern matches its name or its path
    /// relative to the source (`*.tmp`, `cache/**`).
    pub excludes: Vec<String>,
    /// Host name to record (default: this machine's).
    pub host: Option<String>,
    /// Parent snapshot (default: the latest of the same host and source path).
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
    pub record: SnapshotRecord,
    /// Non-fatal problems: skipped entries, files that changed while read, a failed merge.
    pub warnings: Vec<String>,
}

/// Takes a snapshot of the directory `source` into `repo`.
pub fn snapshot(
    repo: &Repository,
    source: &Path,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupOutcome> {
    let started = Instant::now();
    let time_ns = now_ns();
    let source = resolve_source(source)?;
    if let Some(PreHook(hook)) = &opts.pre_hook {
        hook().map_err(Error::HookFailed)?;
    }
    if progress.is_cancelled() {
        return Err(Error::Cancelled);
    }
    // The lock records the prune marks seen before the index is loaded: a pack marked later
    // is not deleted while this snapshot runs (docs/DESIGN.md, "Garbage collection").
    let lock = crate::lock::acquire_job(repo.backend(), "snapshot")?;
    repo.reload_index()?;
    let layout = Layout::detect(&source);
    let stages = StageSet::resolve(&opts.stages, layout)?;
    let mut patterns: Vec<String> = layout
        .never_captured()
        .iter()
        .map(|p| (*p).to_owned())
        .collect();
    patterns.extend(opts.excludes.iter().cloned());
    let excludes = build_excludes(&patterns)?;
    let host = opts.host.clone().unwrap_or_else(hostname);
    let path_str = source.to_string_lossy().into_owned();
    let parent_rec = find_parent(repo, opts, &host, &path_str)?;
    // A parent whose root tree cannot be read only costs reading everything again.
    let parent_root = match (&parent_rec, opts.force_read) {
        (Some(r), false) => repo.load_tree(&r.tree).ok().map(Arc::new),
        _ => None,
    };

    progress.phase(Phase::Scan, 0, 0);
    let mut warnings = Vec::new();
    let root = scan(&source, &excludes, &mut warnings)?;
    let (total_bytes, total_files) = root.totals();
    let ctx = Ctx::new(
        repo,
        opts,
        parent_rec.as_ref(),
        stages,
        layout,
        progress,
        warnings,
    )?;
    // Never upload a pack under the name of a marked one (see `PackWriter::avoid`).
    ctx.writer.avoid(crate::lock::marked_packs(
        repo.backend().as_ref(),
        &lock.record().seen_marks,
    )?);
    progress.phase(Phase::Snapshot, total_bytes, total_files);
    let pool = worker_pool(&source)?;
    let root = capture_first_phase(
        &ctx,
        &pool,
        root,
        &source,
        &excludes,
        parent_root.as_deref(),
    )?;
    ctx.counters
        .skipped
        .fetch_add(root.skipped_total(), Ordering::Relaxed);
    let tree = pool.install(|| process_dir(&ctx, &root, "", parent_root.as_deref()))?;

    let stamp = Stamp {
        started,
        time_ns,
        host,
        path: path_str,
        parent: parent_rec.as_ref().map(|r| r.id),
        root: Some(crate::format::manifest::DirMeta {
            mode: root.meta.mode,
            uid: root.meta.uid,
            gid: root.meta.gid,
            mtime_ns: root.meta.mtime_ns,
        }),
    };
    commit(ctx, &lock, tree, opts, stamp)
}

/// What the record of a snapshot says besides what the run counted.
struct Stamp {
    started: Instant,
    time_ns: i64,
    host: String,
    path: String,
    parent: Option<SnapshotId>,
    /// The source directory's own metadata.
    root: Option<crate::format::manifest::DirMeta>,
}

/// Seals the packs, then commits: index, record, re-index of marked packs, merge.
fn commit(
    ctx: Ctx<'_>,
    lock: &crate::lock::LockGuard,
    tree: TreeId,
    opts: &BackupOptions,
    stamp: Stamp,
) -> Result<BackupOutcome> {
    let (repo, progress) = (ctx.repo, ctx.progress);
    progress.phase(Phase::Commit, 0, 0);
    let sealed = ctx.writer.finish()?;
    // The last safe point: after it the index and the record are written.
    if progress.is_cancelled() {
        return Err(Error::Cancelled);
    }
    let commit = Commit::new(repo, lock, &ctx.index, &sealed);
    let stored = ctx.writer.stored_bytes() + commit.index_packs()?;
    let mut record = SnapshotRecord {
        id: uuid::Uuid::now_v7(),
        time_ns: stamp.time_ns,
        host: stamp.host,
        paths: vec![stamp.path],
        tags: opts.tags.clone(),
        parent: stamp.parent,
        tree,
        summary: ctx.counters.summary(stored, stamp.started),
        program: concat!("snapkeep ", env!("CARGO_PKG_VERSION")).into(),
        stages: ctx.stages.names.clone(),
        flags: if ctx.counters.inconsistent.load(Ordering::Relaxed) > 0 {
            FLAG_INCONSISTENT
        } else {
            0
        },
        root: stamp.root,
    };
    record.summary.stored_bytes += record.to_bytes().len() as u64;
    commit.record(&record)?;
    // A prune that marked packs this snapshot uses (reused from its view, or its own packs
    // before its record existed) took them out of the index; its lock kept them. Index them
    // again, so the snapshot restores through the index (readers also look into marked packs
    // meanwhile, and a later prune would rescue them from the record).
    let late = commit.reindex_marked(&tree);

    let mut warnings = ctx
        .warnings
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    if let Err(e) = late {
        warnings.push(format!(
            "could not re-index blobs of packs a prune marked during this snapshot ({e}); the next prune puts them back"
        ));
    }
    // Merging is housekeeping after the commit; failing it loses nothing.
    if let Err(e) = lock
        .check()
        .and_then(|()| repo.reload_index())
        .and_then(|()| merge(repo.backend().as_ref(), &repo.index(), MERGE_THRESHOLD))
    {
        warnings.push(format!("index merge skipped: {e}"));
    }
    Ok(BackupOutcome { record, warnings })
}

/// The canonical path of the source directory, or why it cannot be snapshotted.
fn resolve_source(source: &Path) -> Result<PathBuf> {
    let resolved = std::fs::canonicalize(source).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::InvalidInput(format!(
                "source {} does not exist; give an existing directory",
                source.display()
            ))
        } else {
            Error::io("resolve source", source, e)
        }
    })?;
    let meta = std::fs::metadata(&resolved).map_err(|e| Error::io("stat source", &resolved, e))?;
    if !meta.is_dir() {
        return Err(Error::InvalidInput(format!(
            "source {} is not a directory; snapshot takes a directory",
            resolved.display()
        )));
    }
    Ok(resolved)
}

/// The parent snapshot: the one asked for, else the latest of this host and source path.
fn find_parent(
    repo: &Repository,
    opts: &BackupOptions,
    host: &str,
    path: &str,
) -> Result<Option<SnapshotRecord>> {
    if let Some(p) = opts.parent {
        return repo.load_snapshot(&p).map(Some);
    }
    let (mut recs, _) = repo.snapshots()?;
    Ok(recs
        .iter()
        .rposition(|r| r.host == host && r.paths == [path])
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

/// Captures the layout's first phase (Alopex: lsm.wal) before the tree is listed again, so a
/// table written after it (a checkpoint in between) is in the listing, and nothing captured
/// later (checkpoint.meta last) can point past what the snapshot holds. Returns the listing
/// to capture the rest from.
fn capture_first_phase(
    ctx: &Ctx<'_>,
    pool: &rayon::ThreadPool,
    root: ScannedDir,
    source: &Path,
    excludes: &globset::GlobSet,
    parent_root: Option<&Tree>,
) -> Result<ScannedDir> {
    let first = |n: &[u8]| ctx.layout.phase(&join_rel("", n)) == 0;
    if !root.files.iter().any(|(n, _)| first(n)) {
        return Ok(root);
    }
    let first_listing_warnings = ctx
        .warnings
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .len();
    let early: Vec<(Vec<u8>, Option<Node>)> = pool.install(|| {
        root.files
            .iter()
            .filter(|(n, _)| first(n))
            .map(|(n, m)| {
                Ok((
                    n.clone(),
                    capture_one(ctx, &root.path, "", n, m, parent_root)?,
                ))
            })
            .collect::<Result<_>>()
    })?;
    ctx.precaptured
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .extend(early);
    // The second listing's warnings replace the first's; those of the capture stay.
    let mut listing_warnings = Vec::new();
    let fresh = scan(source, excludes, &mut listing_warnings)?;
    let mut w = ctx.warnings.lock().unwrap_or_else(PoisonError::into_inner);
    let keep = first_listing_warnings.min(w.len());
    let from_capture = w.split_off(keep);
    *w = listing_warnings;
    w.extend(from_capture);
    Ok(fresh)
}

/// Checks exclude patterns without taking a snapshot (so callers can refuse early).
pub fn check_excludes(patterns: &[String]) -> Result<()> {
    build_excludes(patterns).map(|_| ())
}

fn build_excludes(patterns: &[String]) -> Result<globset::GlobSet> {
    let mut b = globset::GlobSetBuilder::new();
    for p in patterns {
        let g = globset::GlobBuilder::new(p)
            .literal_separator(false)
            .build()
            .map_err(|e| Error::InvalidInput(format!("exclude pattern '{p}' is not valid: {e}")))?;
        b.add(g);
    }
    b.build()
        .map_err(|e| Error::InvalidInput(format!("exclude patterns cannot be combined: {e}")))
}
