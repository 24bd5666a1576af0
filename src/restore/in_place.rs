//! In-place restore into an existing directory (a database's data directory).
//!
//! Rewrites only files whose content differs (size and holes, then the chunk ids of the data
//! on disk against the snapshot's), each through a temp file in the same directory and a rename, so every
//! file is either old or new; deletes entries the snapshot does not have; never deletes or
//! replaces the lock file (`*.alopex.lock`) or `.lifecycle/` at the root; refuses while a
//! process holds the lock unless forced. Existing symlinks are never followed: a symlink
//! where the snapshot has a directory is replaced by the directory.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use super::plan::FileJob;
use super::{
    RestoreOptions, RestorePlan, RestoreStats, finish_dir, restore_link, set_file_meta,
    write_file_at,
};
use crate::chunker::Chunker;
use crate::error::{Error, Result};
use crate::format::manifest::Node;
use crate::format::manifest::NodeKind;
use crate::id::ChunkId;
use crate::id::TreeId;
use crate::progress::{Phase, Progress};
use crate::repository::Repository;
use crate::source::{WINDOW, data_extents, holes_of, read_window};

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

fn protected(rel: &Path) -> bool {
    let first = rel
        .components()
        .next()
        .map(|c| c.as_os_str().as_bytes().to_vec())
        .unwrap_or_default();
    first.ends_with(b".alopex.lock") || first == b".lifecycle"
}

/// Whether `path`, below `target`, is the lock file or in `.lifecycle/`.
fn protected_in(target: &Path, path: &Path) -> bool {
    protected(path.strip_prefix(target).unwrap_or(path))
}

/// Fails when a process holds an OS lock on a `*.alopex.lock` file at the root, or, for a
/// sidecar directory `X.alopex.d`, on `X.alopex.lock` beside it.
fn check_lock(target: &Path) -> Result<()> {
    let rd = std::fs::read_dir(target).map_err(|e| Error::io("list", target, e))?;
    let mut candidates: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| e.file_name().as_bytes().ends_with(b".alopex.lock"))
        .map(|e| e.path())
        .collect();
    if let (Some(parent), Some(name)) = (target.parent(), target.file_name())
        && let Some(stem) = name.as_bytes().strip_suffix(b".alopex.d")
    {
        let mut lock = stem.to_vec();
        lock.extend_from_slice(b".alopex.lock");
        candidates.push(parent.join(std::ffi::OsStr::from_bytes(&lock)));
    }
    for path in candidates {
        let Ok(f) = File::open(&path) else { continue };
        match f.try_lock() {
            Ok(()) => {
                let _ = f.unlock();
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Locked(format!(
                    "a running database holds {}; stop the database before restoring in place \
                     (or pass --force to write under it); never delete the lock file",
                    path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(err)) => {
                return Err(Error::io("test the lock of", &path, err));
            }
        }
    }
    Ok(())
}

/// Whether the file on disk has exactly the node's content: the same holes and the same chunk
/// ids (FastCDC cut points and blake3, as a snapshot would compute them), read from its data
/// extents only and stopping at the first difference. Size + CRC32 alone would let a
/// crafted or unlucky same-size file with a colliding CRC32 survive.
fn same_content(path: &Path, node: &Node, chunker: &Chunker) -> std::io::Result<bool> {
    let NodeKind::File { chunks, holes, .. } = &node.kind else {
        return Ok(false);
    };
    let f = File::open(path)?;
    let size = f.metadata()?.len();
    if size != node.size {
        return Ok(false);
    }
    let extents = data_extents(&f, size)?;
    let disk_holes: Vec<(u64, u64)> = holes_of(&extents, size);
    if disk_holes.len() != holes.len()
        || disk_holes
            .iter()
            .zip(holes)
            .any(|(a, b)| a.0 != b.offset || a.1 != b.len)
    {
        return Ok(false);
    }
    let window = WINDOW.max(2 * chunker.max_size());
    let mut want = chunks.iter();
    let mut win = Vec::new();
    for (off, len) in extents {
        let end = off + len;
        let mut at = off;
        while at < end {
            let wlen = usize::try_from(end - at).unwrap_or(usize::MAX).min(window);
            read_window(&f, at, wlen, &mut win)?;
            let at_end = at + wlen as u64 == end;
            let cuts = chunker.cuts(&win, at_end);
            for &(p, n) in &cuts {
                match want.next() {
                    Some(c) if c.len as usize == n && ChunkId::of(&win[p..p + n]) == c.id => {}
                    _ => return Ok(false),
                }
            }
            let p = cuts.last().map_or(0, |&(s, n)| s + n);
            if p == 0 {
                return Ok(false);
            }
            at += p as u64;
        }
    }
    Ok(want.next().is_none())
}

fn remove_any(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            std::fs::remove_dir_all(path).map_err(|e| Error::io("remove directory", path, e))
        }
        Ok(_) => std::fs::remove_file(path).map_err(|e| Error::io("remove", path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("stat", path, e)),
    }
}

fn tmp_beside(path: &Path) -> PathBuf {
    let n = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".snapkeep-restore-{}-{n}.tmp", std::process::id()))
}

pub(super) fn restore_in_place(
    repo: &Repository,
    tree: &TreeId,
    target: &Path,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreStats> {
    if !opts.force {
        check_lock(target)?;
    }
    let plan = RestorePlan::new(repo, tree, target)?;
    let chunker = Chunker::new(&repo.config().chunker)?;
    progress.phase(Phase::Restore, plan.total_bytes, plan.files.len() as u64);
    let owner = !opts.skip_owner && rustix::process::geteuid().is_root();

    // 1. Directories: a real directory at every planned path (never through a symlink).
    for (path, _) in &plan.dirs {
        if protected_in(target, path) {
            continue;
        }
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                remove_any(path)?;
                mkdir(path)?;
            }
            Err(_) => mkdir(path)?,
        }
    }
    // 2. Files: keep identical ones, rewrite the others atomically.
    let files = Files {
        repo,
        target,
        chunker: &chunker,
        owner,
        progress,
        unchanged: AtomicU64::new(0),
        data_bytes: AtomicU64::new(0),
    };
    plan.files
        .par_iter()
        .try_for_each(|job| files.restore(job))?;
    // 3. Symlinks: keep identical ones, replace the others.
    for (path, node) in &plan.links {
        if !protected_in(target, path) {
            replace_link(path, node, owner)?;
        }
    }
    // 4. Delete what the snapshot does not have (never the lock file or .lifecycle/).
    let deleted = delete_unwanted(&plan, target)?;
    // 5. Directory modes and times, deepest first.
    for (path, node) in plan.dirs.iter().rev() {
        if !protected_in(target, path) {
            finish_dir(path, node, owner)?;
        }
    }
    Ok(RestoreStats {
        files: plan.files.len() as u64,
        dirs: plan.dirs.len() as u64,
        symlinks: plan.links.len() as u64,
        bytes: plan.total_bytes,
        data_bytes: files.data_bytes.load(Ordering::Relaxed),
        unchanged: files.unchanged.load(Ordering::Relaxed),
        deleted,
        ..RestoreStats::default()
    })
}

/// The files step of an in-place restore, shared by its workers.
struct Files<'a> {
    repo: &'a Repository,
    target: &'a Path,
    chunker: &'a Chunker,
    owner: bool,
    progress: &'a dyn Progress,
    unchanged: AtomicU64,
    data_bytes: AtomicU64,
}

impl Files<'_> {
    /// Keeps `job`'s file when its content is already the snapshot's (fixing mode, owner and
    /// times), else writes it beside and renames it over.
    fn restore(&self, job: &FileJob) -> Result<()> {
        if self.progress.is_cancelled() {
            return Err(Error::Cancelled);
        }
        if protected_in(self.target, &job.path) {
            return Ok(());
        }
        if let Ok(m) = std::fs::symlink_metadata(&job.path)
            && m.is_file()
            && m.len() == job.node.size
            && same_content(&job.path, &job.node, self.chunker).unwrap_or(false)
        {
            // Read-only is enough to change mode, owner and times of our own file.
            let f = File::open(&job.path).map_err(|e| Error::io("open", &job.path, e))?;
            if m.mode() & 0o7777 != job.node.mode
                || crate::clock::stamp_ns(m.mtime(), m.mtime_nsec()) != job.node.mtime_ns
                || self.owner
            {
                set_file_meta(&f, &job.path, &job.node, self.owner)?;
            }
            self.unchanged.fetch_add(1, Ordering::Relaxed);
            self.progress.advance(job.node.size, 1);
            return Ok(());
        }
        let tmp = tmp_beside(&job.path);
        let written = match write_file_at(
            self.repo,
            &job.node,
            &job.display,
            &tmp,
            self.owner,
            self.progress,
        ) {
            Ok(w) => w,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        if std::fs::symlink_metadata(&job.path).is_ok_and(|m| m.is_dir()) {
            remove_any(&job.path)?;
        }
        std::fs::rename(&tmp, &job.path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io("replace", &job.path, e)
        })?;
        self.data_bytes.fetch_add(written, Ordering::Relaxed);
        self.progress.advance(0, 1);
        Ok(())
    }
}

/// Keeps the symlink at `path` when it already points where `node` says, else replaces it.
fn replace_link(path: &Path, node: &Node, owner: bool) -> Result<()> {
    let NodeKind::Symlink { target: want } = &node.kind else {
        return Ok(());
    };
    if std::fs::read_link(path).is_ok_and(|t| t.as_os_str().as_bytes() == want.as_slice()) {
        return Ok(());
    }
    let tmp = tmp_beside(path);
    restore_link(&tmp, node, owner)?;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        remove_any(path)?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io("replace", path, e))
}

/// Deletes every entry below `target` the plan does not have (never the lock file or
/// `.lifecycle/`); returns how many.
fn delete_unwanted(plan: &RestorePlan, target: &Path) -> Result<u64> {
    let wanted: HashSet<PathBuf> = plan
        .dirs
        .iter()
        .map(|d| d.0.clone())
        .chain(plan.files.iter().map(|f| f.path.clone()))
        .chain(plan.links.iter().map(|l| l.0.clone()))
        .collect();
    let mut deleted = 0u64;
    let mut stack = vec![target.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))?;
        for e in rd {
            let e = e.map_err(|e| Error::io("list", &dir, e))?;
            let path = e.path();
            let rel = path.strip_prefix(target).unwrap_or(&path).to_path_buf();
            if protected(&rel) {
                continue;
            }
            if wanted.contains(&path) {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(path);
                }
                continue;
            }
            remove_any(&path)?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

fn mkdir(path: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(path)
        .map_err(|e| Error::io("create directory", path, e))
}
