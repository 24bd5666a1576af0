//! In-place restore, the act: the new tree is built beside the target and exchanged with it in
//! one step, so a crash at any moment leaves the target at exactly its old state or exactly
//! the snapshot's.
//!
//! Owns: filling the staging sibling from an [`InPlacePlan`]: directories created, unchanged
//! files hard-linked from the target (same inode), new and changed files written from the
//! repository and fsynced, symlinks created, the lock file and `.lifecycle/` carried over
//! (hard links, recreated directories: a lock held on the lock file stays valid), directory
//! modes and times set deepest first, every directory fsynced; then the exchange
//! ([`super::exchange`]) and the removal of the old tree.
//!
//! Invariants: nothing in the target is written, renamed or deleted before the exchange;
//! after a failure before it, the staging sibling is removed and the target is as it was.
//!
//! Must not: decide anything (that is [`InPlacePlan`]'s) or fall back to rewriting the target
//! entry by entry.

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use super::exchange::{Staging, TargetLock};
use super::in_place::{Change, InPlacePlan, protected};
use super::{RestoreStats, finish_dir, restore_link, set_mtime_nofollow, write_file_at};
use crate::error::{Error, Result};
use crate::format::manifest::Node;
use crate::progress::Progress;
use crate::repository::Repository;

/// Builds the new tree beside `target`, exchanges the two, removes the old one.
pub(super) fn build_and_exchange(
    repo: &Repository,
    ip: &InPlacePlan,
    target: &Path,
    target_lock: &TargetLock,
    root: Option<&Node>,
    owner: bool,
    progress: &dyn Progress,
) -> Result<RestoreStats> {
    let staging = Staging::create(target, target_lock)?;
    let built = Builder {
        repo,
        ip,
        target,
        staging: &staging.path,
        owner,
        progress,
    }
    .build(root)
    .and_then(|data_bytes| staging.exchange(target).map(|()| data_bytes));
    let data_bytes = match built {
        Ok(n) => n,
        Err(e) => {
            let _ = staging.remove();
            return Err(e);
        }
    };
    // The staging path now holds the old tree; a failure to remove it is left to the next
    // restore (see `exchange::remove_leftovers`).
    if let Err(e) = staging.remove() {
        progress.warn(&format!(
            "the restore is complete, but the old tree at {} could not be removed ({e}); the next restore removes it",
            staging.path.display()
        ));
    }
    let count = |v: &[Change], c: Change| v.iter().filter(|x| **x == c).count() as u64;
    let plan = &ip.plan;
    Ok(RestoreStats {
        files: plan.files.len() as u64 - count(&ip.files, Change::Protected),
        dirs: plan.dirs.len() as u64 - count(&ip.dirs, Change::Protected),
        symlinks: plan.links.len() as u64 - count(&ip.links, Change::Protected),
        bytes: plan.total_bytes,
        data_bytes,
        unchanged: count(&ip.files, Change::Unchanged),
        deleted: ip.delete.len() as u64,
        ..RestoreStats::default()
    })
}

/// One build of the new tree into the staging directory.
struct Builder<'a> {
    repo: &'a Repository,
    ip: &'a InPlacePlan,
    target: &'a Path,
    staging: &'a Path,
    owner: bool,
    progress: &'a dyn Progress,
}

impl Builder<'_> {
    /// Where planned path `p` (below the target) goes in the staging tree.
    fn at(&self, p: &Path) -> PathBuf {
        self.staging.join(p.strip_prefix(self.target).unwrap_or(p))
    }

    /// Fills the staging directory; returns the bytes of chunk data written.
    fn build(&self, root: Option<&Node>) -> Result<u64> {
        let plan = &self.ip.plan;
        let live = |c: &Change| *c != Change::Protected;
        for ((path, _), c) in plan.dirs.iter().zip(&self.ip.dirs) {
            if live(c) {
                let dir = self.at(path);
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&dir)
                    .map_err(|e| Error::io("create directory", &dir, e))?;
            }
        }
        carry_protected(self.target, self.staging)?;
        // What the snapshot's excludes left out stays as it is; one whose directory the new
        // tree does not have goes with that directory (counted in its deletion).
        for path in &self.ip.kept {
            let dest = self.at(path);
            if dest.parent().is_some_and(Path::is_dir) {
                carry_entry(self.target, self.staging, path)?;
            }
        }
        let data_bytes = AtomicU64::new(0);
        plan.files
            .par_iter()
            .zip(&self.ip.files)
            .try_for_each(|(job, c)| {
                if self.progress.is_cancelled() {
                    return Err(Error::Cancelled);
                }
                let dest = self.at(&job.path);
                let write = || -> Result<()> {
                    let n = write_file_at(
                        self.repo,
                        &job.node,
                        &job.display,
                        &dest,
                        (self.owner, true),
                        self.progress,
                        None,
                    )?;
                    data_bytes.fetch_add(n, Ordering::Relaxed);
                    self.progress.advance(0, 1);
                    Ok(())
                };
                match c {
                    Change::Protected => Ok(()),
                    Change::Unchanged => match std::fs::hard_link(&job.path, &dest) {
                        Ok(()) => Ok(()),
                        // A file this user may read but not link (protected_hardlinks): its
                        // content is written from the repository instead.
                        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => write(),
                        Err(e) => Err(Error::io("link the unchanged file", &dest, e)),
                    },
                    Change::New | Change::Changed => write(),
                }
            })?;
        for ((path, node), c) in plan.links.iter().zip(&self.ip.links) {
            if live(c) {
                restore_link(&self.at(path), node, self.owner)?;
            }
        }
        // Each directory is fsynced through the handle that set its mode (a mode without
        // read permission cannot be opened again), after all of its entries exist.
        for ((path, node), c) in plan.dirs.iter().zip(&self.ip.dirs).rev() {
            if live(c) {
                finish_dir(&self.at(path), node, self.owner, true)?;
            }
        }
        self.finish_root(root)?;
        Ok(data_bytes.load(Ordering::Relaxed))
    }

    /// The new tree's top directory: the snapshot root's mode, owner and mtime when the
    /// snapshot has them, else the old target's.
    fn finish_root(&self, root: Option<&Node>) -> Result<()> {
        if let Some(node) = root {
            return finish_dir(self.staging, node, self.owner, true);
        }
        let old = std::fs::metadata(self.target)
            .map_err(|e| Error::io("stat restore target", self.target, e))?;
        copy_dir_meta(self.staging, &old)
    }
}

/// Gives directory `dir` the mode, mtime and (as root) owner of `old`, then fsyncs it.
fn copy_dir_meta(dir: &Path, old: &std::fs::Metadata) -> Result<()> {
    let f = File::open(dir).map_err(|e| Error::io("open directory", dir, e))?;
    if rustix::process::geteuid().is_root() {
        std::os::unix::fs::fchown(&f, Some(old.uid()), Some(old.gid()))
            .map_err(|e| Error::io("set owner of", dir, e))?;
    }
    f.set_permissions(std::fs::Permissions::from_mode(old.mode() & 0o7777))
        .map_err(|e| Error::io("set mode of", dir, e))?;
    set_mtime_nofollow(dir, crate::clock::stamp_ns(old.mtime(), old.mtime_nsec()))?;
    f.sync_all()
        .map_err(|e| Error::io("sync directory", dir, e))
}

/// Carries the target's lock file and `.lifecycle/` into the staging tree: every non-directory
/// as a hard link (same inode), every directory recreated with its mode, mtime and owner;
/// each directory is fsynced.
fn carry_protected(target: &Path, staging: &Path) -> Result<()> {
    let rd = std::fs::read_dir(target).map_err(|e| Error::io("list", target, e))?;
    for e in rd {
        let e = e.map_err(|e| Error::io("list", target, e))?;
        if protected(Path::new(&e.file_name())) {
            carry_entry(target, staging, &e.path())?;
        }
    }
    Ok(())
}

/// Carries the entry at `path` below `target` to the same place below `staging`: a
/// non-directory as a hard link (same inode), a directory recreated with its mode, mtime and
/// owner, everything below it likewise; each directory is fsynced.
fn carry_entry(target: &Path, staging: &Path, path: &Path) -> Result<()> {
    let mut made = Vec::new();
    for entry in walkdir::WalkDir::new(path).follow_links(false) {
        let entry = entry.map_err(|err| {
            let p = err.path().unwrap_or(target).to_path_buf();
            Error::io("list", &p, err.into())
        })?;
        let rel = entry.path().strip_prefix(target).unwrap_or(entry.path());
        let dest = staging.join(rel);
        if entry.file_type().is_dir() {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dest)
                .map_err(|err| Error::io("create directory", &dest, err))?;
            made.push((dest, entry.path().to_path_buf()));
        } else {
            std::fs::hard_link(entry.path(), &dest).map_err(|err| Error::io("link", &dest, err))?;
        }
    }
    for (dest, src) in made.iter().rev() {
        let old = std::fs::symlink_metadata(src).map_err(|err| Error::io("stat", src, err))?;
        copy_dir_meta(dest, &old)?;
    }
    Ok(())
}
