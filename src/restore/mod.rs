//! Restoring a snapshot: into a new or empty directory, or in place over an existing one.
//!
//! Owns: restoring into a new or empty directory, streamed as the trees are walked (`fresh`:
//! directories created as they are met, files written a window at a time in parallel, chunks
//! of a large file in parallel too, sparse where the source had holes; from a remote store
//! small files in pack-ordered batches, `batch`), each directory's mode and times set once
//! everything below it exists, so a read-only directory can still be filled; the in-place
//! restore on a [`RestorePlan`] of the whole tree (the trees walked and checked: every name
//! one safe component, unique per directory); the target's top directory gets the snapshot
//! root's mode and mtime (and owner, as root) when the record has them.
//!
//! Invariants: every chunk is checked against its id and every file against its size and
//! CRC32 as it is written; nothing is written outside the target: names are single safe
//! components, files are created with `O_CREAT | O_EXCL | O_NOFOLLOW`, and since names are
//! unique per directory no path ever passes through a symlink this restore created. An
//! in-place restore is crash-atomic: the target is at every moment exactly its old tree or
//! exactly the snapshot's.
//!
//! Layout: this file holds the options, the stats, [`restore`] (staging, moving into place)
//! and the metadata of what it writes; `fresh` streams a restore into the staging directory;
//! `plan` walks the trees with the one walker and checks every name; `in_place` decides an in-place restore (what is unchanged, new, changed or
//! deleted, and whether deleting is allowed), `build` acts on that decision beside the target
//! and `exchange` switches the two directories; `preview` is `--dry-run`. A file's content is
//! written by [`crate::content`].
//!
//! Must not: import another verb (verify, backup).

use std::ffi::OsStr;
use std::fs::{File, FileTimes};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::content::{Prefetched, create_private, write_content_with};
use crate::error::{Error, Result};
use crate::format::manifest::{Node, NodeKind, SnapshotRecord};
use crate::id::SnapshotId;
use crate::progress::{Phase, Progress};
use crate::repository::Repository;
use crate::stage::{Layout, StageSelection, StageSet};

mod batch;
mod build;
mod exchange;
mod fresh;
mod in_place;
mod plan;
mod preview;

/// Kept where it always was: a file node's content written into a new file (see
/// [`crate::content`]).
pub use crate::content::materialize;
use in_place::InPlacePlan;
use plan::FileJob;
pub use plan::RestorePlan;
pub use preview::{PreviewEntry, RestorePreview, preview};

/// Options for [`restore`].
#[derive(Clone, Debug, Default)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent switches of one restore, each a CLI flag"
)]
pub struct RestoreOptions {
    /// Do not restore owner and group even when running as root.
    pub skip_owner: bool,
    /// Restore into an existing directory (a database's): build the snapshot's tree beside
    /// it (hard links for files already identical, the others written), then exchange the
    /// two in one step; what the snapshot does not have is gone; the lock file and
    /// `.lifecycle/` are carried over untouched.
    pub in_place: bool,
    /// With `in_place`: delete what the snapshot does not have even when the target is not
    /// the snapshot's own source nor a directory of the same database layout (without it,
    /// such a restore that would delete anything is refused).
    pub delete: bool,
    /// With `in_place`: proceed even while a process holds the database's lock.
    pub force: bool,
    /// Format stages run on the restored files (default: by detected layout).
    pub stages: StageSelection,
}

/// What a restore did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Logical bytes of restored files.
    pub bytes: u64,
    /// Bytes of chunk data written.
    pub data_bytes: u64,
    /// In place: files already identical (not rewritten).
    pub unchanged: u64,
    /// In place: entries deleted because the snapshot does not have them.
    pub deleted: u64,
    /// Problems the format stages found in the restored files (`<path>: <problem>`).
    pub stage_problems: Vec<String>,
    /// Files the format stages checked.
    pub stage_files: u64,
    pub duration_ns: u64,
}

/// Restores snapshot `id` into `target`, which must not exist or be an empty directory.
pub fn restore(
    repo: &Repository,
    id: &SnapshotId,
    target: &Path,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreStats> {
    let started = Instant::now();
    let rec = repo.load_snapshot(id)?;
    StageSet::resolve(&opts.stages, Layout::Generic)?;
    let _lock = crate::lock::acquire_reader(repo, "restore", progress)?;
    if opts.in_place && is_non_empty_dir(target)? {
        let target = std::fs::canonicalize(target)
            .map_err(|e| Error::io("resolve restore target", target, e))?;
        let mut stats = restore_in_place(repo, &rec, &target, opts, progress)?;
        run_stages(&target, opts, &mut stats)?;
        stats.duration_ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        return Ok(stats);
    }
    exchange::remove_leftovers(target, progress);
    // Restore into a private staging directory and move the result into place only when every
    // file has been written and checked. A new target is the staging directory renamed; an
    // existing empty target (perhaps a mount point, owned by a service user) keeps its own
    // inode, owner and mode: staging is made inside it and its entries are moved up.
    let existing = prepare_target(target)?.is_some();
    let staging = if existing {
        let dir = target.join(format!(
            ".snapkeep-restore-{}-{}",
            std::process::id(),
            crate::clock::now_ns()
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::io("create restore staging directory", &dir, e))?;
        dir
    } else {
        staging_dir_for(target)?
    };
    let root = root_node(&rec);
    let owner = !opts.skip_owner && rustix::process::geteuid().is_root();
    // The record's counts are the totals a progress display needs; the walk streams.
    progress.phase(Phase::Restore, rec.summary.bytes, rec.summary.files);
    let result =
        fresh::restore_into(repo, &rec.tree, &staging, owner, progress).and_then(|stats| {
            if existing {
                move_entries_up(&staging, target)?;
                std::fs::remove_dir(&staging)
                    .map_err(|e| Error::io("remove restore staging directory", &staging, e))?;
                if let Some(node) = &root {
                    finish_dir(target, node, owner, false)?;
                }
            } else {
                if let Some(node) = &root {
                    finish_dir(&staging, node, owner, false)?;
                }
                std::fs::rename(&staging, target)
                    .map_err(|e| Error::io("move the restored tree into", target, e))?;
            }
            Ok(stats)
        });
    let mut stats = match result {
        Ok(stats) => stats,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            if existing {
                clear_dir(target, &staging);
            }
            return Err(e);
        }
    };
    run_stages(target, opts, &mut stats)?;
    stats.duration_ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    Ok(stats)
}

/// Whether `target` is a directory (or a symlink to one) with at least one entry.
fn is_non_empty_dir(target: &Path) -> Result<bool> {
    match std::fs::metadata(target) {
        Ok(m) if m.is_dir() => {
            let mut rd = std::fs::read_dir(target).map_err(|e| Error::io("list", target, e))?;
            Ok(rd.next().is_some())
        }
        _ => Ok(false),
    }
}

/// The in-place restore: locks and refusals first (another restore, a running database, a
/// mount point, deletes not allowed), then the decision, then the new tree built beside the target and exchanged.
fn restore_in_place(
    repo: &Repository,
    rec: &SnapshotRecord,
    target: &Path,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreStats> {
    // The order matters: the target is locked against other in-place restores before
    // anything is decided, and the database's own lock is taken (not only tested) and held
    // until the exchange is done, so neither a second restore nor a starting database sees
    // the target between the plan and the exchange.
    let target_lock = exchange::TargetLock::acquire(target)?;
    exchange::remove_leftovers(target, progress);
    let db_locks = if opts.force {
        Vec::new()
    } else {
        in_place::check_lock(target)?
    };
    exchange::refuse_mount_point(target)?;
    let ip = decide_in_place(repo, rec, target, opts, progress)?;
    ip.check_delete(target)?;
    let owner = !opts.skip_owner && rustix::process::geteuid().is_root();
    let stats = build::build_and_exchange(
        repo,
        &ip,
        target,
        &target_lock,
        root_node(rec).as_ref(),
        owner,
        progress,
    );
    drop(db_locks);
    drop(target_lock);
    stats
}

/// The snapshot's top directory as a directory node (mode, owner, mtime), when the record has
/// it (records written before it was kept do not).
fn root_node(rec: &SnapshotRecord) -> Option<Node> {
    rec.root.map(|m| Node {
        name: Vec::new(),
        kind: NodeKind::Dir { tree: rec.tree },
        mode: m.mode,
        uid: m.uid,
        gid: m.gid,
        mtime_ns: m.mtime_ns,
        ctime_ns: 0,
        inode: 0,
        size: 0,
        flags: 0,
    })
}

/// What an in-place restore into `target` would do.
fn decide_in_place(
    repo: &Repository,
    rec: &SnapshotRecord,
    target: &Path,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<InPlacePlan> {
    let plan = RestorePlan::new(repo, &rec.tree, target)?;
    let chunker = repo.chunker()?;
    progress.phase(Phase::Restore, plan.total_bytes, plan.files.len() as u64);
    InPlacePlan::new(plan, rec, target, (&chunker, repo.codec()), opts, progress)
}

/// Moves every entry of `staging` into `target` (same filesystem: renames).
fn move_entries_up(staging: &Path, target: &Path) -> Result<()> {
    let rd = std::fs::read_dir(staging).map_err(|e| Error::io("list", staging, e))?;
    for e in rd {
        let e = e.map_err(|e| Error::io("list", staging, e))?;
        let dest = target.join(e.file_name());
        std::fs::rename(e.path(), &dest).map_err(|err| Error::io("move into place", &dest, err))?;
    }
    Ok(())
}

/// After a failed restore into an existing empty target: removes what was moved into it, so
/// it is empty again (the target was empty before, so everything in it is ours).
fn clear_dir(target: &Path, staging: &Path) {
    if let Ok(rd) = std::fs::read_dir(target) {
        for e in rd.flatten() {
            let p = e.path();
            if p != staging {
                let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
            }
        }
    }
}

/// A new private directory beside `target` to restore into.
fn staging_dir_for(target: &Path) -> Result<PathBuf> {
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&parent)
        .map_err(|e| Error::io("create the parent of restore target", &parent, e))?;
    let name = target
        .file_name()
        .map_or_else(|| "restore".into(), |n| n.to_string_lossy().into_owned());
    let staging = parent.join(format!(
        ".{name}.snapkeep-restore-{}-{}",
        std::process::id(),
        crate::clock::now_ns()
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(|e| Error::io("create restore staging directory", &staging, e))?;
    Ok(staging)
}

/// Runs the format stages on the restored tree (the layout detected in `target`).
fn run_stages(target: &Path, opts: &RestoreOptions, stats: &mut RestoreStats) -> Result<()> {
    let stages = StageSet::resolve(&opts.stages, Layout::detect(target))?;
    for entry in walkdir::WalkDir::new(target)
        .follow_links(false)
        .sort_by_file_name()
    {
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(target) else {
            continue;
        };
        let rel = rel.to_string_lossy();
        if stages.applies_to(&rel) {
            stats.stage_files += 1;
            for p in stages.check(&rel, entry.path()) {
                stats.stage_problems.push(format!("{rel}: {p}"));
            }
        }
    }
    Ok(())
}

/// Checks that `target` is absent or an empty directory; returns the mode of an existing one.
fn prepare_target(target: &Path) -> Result<Option<u32>> {
    match std::fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => {
            let mut rd = std::fs::read_dir(target).map_err(|e| Error::io("list", target, e))?;
            if rd.next().is_some() {
                return Err(Error::InvalidInput(format!(
                    "restore target {} is not empty; give a new or empty directory. To restore \
                     over it, --in-place rewrites it to the snapshot's state and deletes what \
                     the snapshot does not have: see first what it would change with \
                     --in-place --dry-run",
                    target.display()
                )));
            }
            Ok(Some(m.permissions().mode() & 0o7777))
        }
        Ok(_) => Err(Error::InvalidInput(format!(
            "restore target {} exists and is not a directory; give a new or empty directory",
            target.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("stat restore target", target, e)),
    }
}

fn time_of(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

fn restore_file(
    repo: &Repository,
    job: &FileJob,
    owner: bool,
    progress: &dyn Progress,
    data_bytes: &AtomicU64,
    ahead: Option<&Prefetched>,
) -> Result<()> {
    if !matches!(job.node.kind, NodeKind::File { .. }) {
        return Ok(());
    }
    if progress.is_cancelled() {
        return Err(Error::Cancelled);
    }
    let written = write_file_at(
        repo,
        &job.node,
        &job.display,
        &job.path,
        (owner, false),
        progress,
        ahead,
    )?;
    data_bytes.fetch_add(written, Ordering::Relaxed);
    progress.advance(0, 1);
    Ok(())
}

/// Creates `dest` (which must not exist) with the node's content (runs that `ahead` holds
/// taken from it), owner (when `owner`), mode and mtime; fsyncs it when `sync`.
fn write_file_at(
    repo: &Repository,
    node: &Node,
    display: &str,
    dest: &Path,
    (owner, sync): (bool, bool),
    progress: &dyn Progress,
    ahead: Option<&Prefetched>,
) -> Result<u64> {
    let file = create_private(dest)?;
    let written = write_content_with(repo, &file, dest, node, display, progress, ahead)?;
    set_file_meta(&file, dest, node, owner)?;
    if sync {
        file.sync_all().map_err(|e| Error::io("sync", dest, e))?;
    }
    Ok(written)
}

fn set_file_meta(file: &File, path: &Path, node: &Node, owner: bool) -> Result<()> {
    if owner {
        std::os::unix::fs::fchown(file, Some(node.uid), Some(node.gid))
            .map_err(|e| Error::io("set owner of", path, e))?;
    }
    file.set_permissions(std::fs::Permissions::from_mode(node.mode))
        .map_err(|e| Error::io("set mode of", path, e))?;
    file.set_times(FileTimes::new().set_modified(time_of(node.mtime_ns)))
        .map_err(|e| Error::io("set times of", path, e))
}

fn set_mtime_nofollow(path: &Path, ns: i64) -> Result<()> {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, UTIME_OMIT, utimensat};
    let ts = Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: ns.div_euclid(1_000_000_000),
            tv_nsec: ns.rem_euclid(1_000_000_000),
        },
    };
    utimensat(CWD, path, &ts, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| Error::io("set times of", path, e.into()))
}

fn restore_link(path: &Path, node: &Node, owner: bool) -> Result<()> {
    let NodeKind::Symlink { target } = &node.kind else {
        return Ok(());
    };
    std::os::unix::fs::symlink(OsStr::from_bytes(target), path)
        .map_err(|e| Error::io("create symlink", path, e))?;
    if owner {
        std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid))
            .map_err(|e| Error::io("set owner of", path, e))?;
    }
    set_mtime_nofollow(path, node.mtime_ns)
}

/// Gives directory `path` the node's owner (when `owner`), mode and mtime; fsyncs it through
/// the same handle when `sync`.
fn finish_dir(path: &Path, node: &Node, owner: bool, sync: bool) -> Result<()> {
    let dir = File::open(path).map_err(|e| Error::io("open directory", path, e))?;
    if owner {
        std::os::unix::fs::fchown(&dir, Some(node.uid), Some(node.gid))
            .map_err(|e| Error::io("set owner of", path, e))?;
    }
    dir.set_permissions(std::fs::Permissions::from_mode(node.mode))
        .map_err(|e| Error::io("set mode of", path, e))?;
    set_mtime_nofollow(path, node.mtime_ns)?;
    if sync {
        dir.sync_all()
            .map_err(|e| Error::io("sync directory", path, e))?;
    }
    Ok(())
}
