//! The crash-atomic switch of an in-place restore: a staging sibling of the target, the one
//! `renameat2(RENAME_EXCHANGE)` that swaps the two directories, and the removal of what an
//! interrupted restore left beside the target.
//!
//! Owns: the sibling's name (`.<name>.snapkeep-inplace-<pid>-<ns>` in the target's parent),
//! its lock, the mount-point refusal and the exchange itself.
//!
//! Invariants: the target path always names a complete tree, the old one until the exchange
//! and the new one after it; the sibling is always garbage once no restore holds its lock
//! (before the exchange it is an unfinished new tree, after it the old tree), so removing it
//! is right whatever it holds. A running restore holds an exclusive `flock` on both
//! directories (the staging one and the old target), so a concurrent restore never removes a
//! sibling that is still in use, and a sibling whose name holds the pid of a running process
//! is never removed (it may be just made and not yet locked). A running in-place restore
//! also holds a lock on the target from before its plan ([`TargetLock`]), so two in-place
//! restores into one target never overlap. There is no fallback to a non-atomic switch.
//!
//! Must not: write anything into the target itself.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, RenameFlags, StatxAttributes, StatxFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::progress::Progress;

/// The parent of `target` (`.` for a bare name) and the sibling name prefix.
fn sibling_prefix(target: &Path) -> (PathBuf, Vec<u8>) {
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .map_or(&b"restore"[..], OsStrExt::as_bytes);
    let mut prefix = b".".to_vec();
    prefix.extend_from_slice(name);
    prefix.extend_from_slice(b".snapkeep-inplace-");
    (parent, prefix)
}

/// Removes every staging sibling of `target` that no running restore holds (what a killed
/// in-place restore left: an unfinished new tree, or the old tree after the exchange);
/// returns how many it removed. A leftover that cannot be removed is a warning.
pub(super) fn remove_leftovers(target: &Path, progress: &dyn Progress) -> usize {
    let (parent, prefix) = sibling_prefix(target);
    let Ok(rd) = std::fs::read_dir(&parent) else {
        return 0;
    };
    let mut removed = 0;
    for e in rd.flatten() {
        if !e.file_name().as_bytes().starts_with(&prefix)
            || !e.file_type().is_ok_and(|t| t.is_dir())
        {
            continue;
        }
        if owner_alive(&e.file_name().as_bytes()[prefix.len()..]) {
            // A restore that is running (it may not have locked its new sibling yet).
            continue;
        }
        let path = e.path();
        let Ok(dir) = File::open(&path) else { continue };
        if dir.try_lock().is_err() {
            continue; // another restore is using it (or it cannot be locked: leave it)
        }
        match remove_tree(&path) {
            Ok(()) => removed += 1,
            Err(err) => progress.warn(&format!(
                "could not remove {} left by an interrupted in-place restore ({err}); remove it by hand",
                path.display()
            )),
        }
    }
    removed
}

/// Whether the process named in a sibling's name (`<pid>-<ns>` after the prefix) is another
/// process that is still running. A sibling is made before it is locked, so its lock alone
/// does not tell a restore that has just started from a leftover; a reused pid only keeps a
/// leftover a while longer.
fn owner_alive(suffix: &[u8]) -> bool {
    let pid: Vec<u8> = suffix
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .copied()
        .collect();
    let Ok(pid) = std::str::from_utf8(&pid).unwrap_or("").parse::<u32>() else {
        return false;
    };
    pid != std::process::id() && Path::new("/proc").join(pid.to_string()).exists()
}

/// Refuses a target that is a mount point: the exchange cannot cross file systems, and the
/// restore never falls back to rewriting a directory entry by entry.
pub(super) fn refuse_mount_point(target: &Path) -> Result<()> {
    let (parent, _) = sibling_prefix(target);
    let meta =
        std::fs::metadata(target).map_err(|e| Error::io("stat restore target", target, e))?;
    let pmeta = std::fs::metadata(&parent).map_err(|e| Error::io("stat", &parent, e))?;
    let mount_root = rustix::fs::statx(CWD, target, AtFlags::empty(), StatxFlags::BASIC_STATS)
        .is_ok_and(|s| {
            s.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT)
                && s.stx_attributes.contains(StatxAttributes::MOUNT_ROOT)
        });
    if mount_root || meta.dev() != pmeta.dev() {
        return Err(mount_point_error(target));
    }
    Ok(())
}

fn mount_point_error(target: &Path) -> Error {
    Error::InvalidInput(format!(
        "restore target {} is a mount point, and an in-place restore switches the whole \
         directory with one rename within its parent; restore into an empty directory on that \
         file system instead, or into a directory below the mount point",
        target.display()
    ))
}

/// An exclusive `flock` on the target directory, taken before an in-place restore decides
/// anything: a second in-place restore into the same target is refused instead of planning
/// against a tree the first is about to replace. After the exchange the lock sits on the old
/// tree (now the staging path) and the staging lock on the new target, so the target stays
/// locked until the restore is done.
pub(super) struct TargetLock {
    _dir: File,
}

impl TargetLock {
    pub(super) fn acquire(target: &Path) -> Result<Self> {
        // The lock must be on the directory the target path names when planning starts: a
        // restore that finished an exchange between our open and our lock moved the locked
        // inode away, so take it again on what the path names now.
        for _ in 0..8 {
            let dir = File::open(target).map_err(|e| Error::io("open directory", target, e))?;
            match dir.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(Error::Locked(format!(
                        "another in-place restore is writing into {}; wait for it to finish, \
                         then run the restore again",
                        target.display()
                    )));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(Error::io("lock directory", target, e));
                }
            }
            let held = dir.metadata().map_err(|e| Error::io("stat", target, e))?;
            let named = std::fs::metadata(target)
                .map_err(|e| Error::io("stat restore target", target, e))?;
            if held.dev() == named.dev() && held.ino() == named.ino() {
                return Ok(TargetLock { _dir: dir });
            }
        }
        Err(Error::Locked(format!(
            "{} keeps being replaced while this restore tries to lock it; wait for the other \
             restore to finish, then run this one again",
            target.display()
        )))
    }
}

/// A new staging directory beside `target` (mode 0700), locked; the lock lives as long as the
/// value. Made only while the target is locked ([`TargetLock`]).
pub(super) struct Staging {
    pub(super) path: PathBuf,
    parent: PathBuf,
    _lock: File,
}

impl Staging {
    pub(super) fn create(target: &Path, _locked: &TargetLock) -> Result<Self> {
        let (parent, mut name) = sibling_prefix(target);
        name.extend_from_slice(
            format!("{}-{}", std::process::id(), crate::clock::now_ns()).as_bytes(),
        );
        let path = parent.join(OsString::from(std::ffi::OsStr::from_bytes(&name)));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::PermissionDenied {
                    Error::InvalidInput(format!(
                        "restore --in-place builds the new tree beside {} and switches the two, \
                         so it needs to write in {}, which is not writable for this user; \
                         restore as a user who may write there, or into a new directory",
                        target.display(),
                        parent.display()
                    ))
                } else {
                    Error::io("create restore staging directory", &path, e)
                }
            })?;
        let lock = File::open(&path)
            .map_err(|e| Error::io("open directory", &path, e))
            .and_then(|f| {
                f.lock()
                    .map_err(|e| Error::io("lock directory", &path, e))
                    .map(|()| f)
            });
        match lock {
            Ok(f) => Ok(Staging {
                path,
                parent,
                _lock: f,
            }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&path);
                Err(e)
            }
        }
    }

    /// Swaps the staging directory and `target` in one step, then makes the swap durable
    /// (the parent directory is synced).
    pub(super) fn exchange(&self, target: &Path) -> Result<()> {
        rustix::fs::renameat_with(CWD, &self.path, CWD, target, RenameFlags::EXCHANGE).map_err(
            |e| match e {
                Errno::XDEV | Errno::BUSY => mount_point_error(target),
                Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP => Error::InvalidInput(format!(
                    "the file system of {} cannot exchange two directories atomically \
                     (renameat2 RENAME_EXCHANGE); restore into a new directory instead and \
                     switch over yourself",
                    target.display()
                )),
                e => Error::io("exchange the restored tree with", target, e.into()),
            },
        )?;
        sync_dir(&self.parent)
    }

    /// Removes the staging path (the unfinished tree before the exchange, the old tree after
    /// it).
    pub(super) fn remove(&self) -> std::io::Result<()> {
        remove_tree(&self.path)
    }
}

/// Removes the tree at `path`, never leaving its file system: a directory mounted below it
/// is left in place (with what it holds), and the removal of its parents fails on it. A
/// directory whose mode keeps its owner from removing entries (a read-only directory of a
/// snapshot) is made writable first.
fn remove_tree(path: &Path) -> std::io::Result<()> {
    match remove_one_device(path) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            for entry in walkdir::WalkDir::new(path)
                .follow_links(false)
                .same_file_system(true)
                .into_iter()
                .flatten()
            {
                if entry.file_type().is_dir()
                    && let Ok(m) = entry.metadata()
                {
                    let mode = m.permissions().mode() | 0o700;
                    let _ = std::fs::set_permissions(
                        entry.path(),
                        std::fs::Permissions::from_mode(mode),
                    );
                }
            }
            remove_one_device(path)
        }
        other => other,
    }
}

/// Removes every entry below and at `path` that lies on `path`'s own file system, deepest
/// first; returns the first error (a mount point below makes its parents fail to go).
fn remove_one_device(path: &Path) -> std::io::Result<()> {
    let dev = std::fs::symlink_metadata(path)?.dev();
    let mut first_err = None;
    for entry in walkdir::WalkDir::new(path)
        .follow_links(false)
        .same_file_system(true)
        .contents_first(true)
    {
        let e = match entry {
            Ok(e) => e,
            Err(err) => {
                first_err.get_or_insert(std::io::Error::other(err.to_string()));
                continue;
            }
        };
        let r = if e.file_type().is_dir() {
            match e.metadata() {
                Ok(m) if m.dev() != dev => Err(std::io::Error::new(
                    std::io::ErrorKind::ResourceBusy,
                    format!("{} is a mount point; left as it is", e.path().display()),
                )),
                _ => std::fs::remove_dir(e.path()),
            }
        } else {
            std::fs::remove_file(e.path())
        };
        if let Err(err) = r {
            first_err.get_or_insert(err);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// fsyncs a directory (its entries are durable once this returns).
pub(super) fn sync_dir(path: &Path) -> Result<()> {
    let f = File::open(path).map_err(|e| Error::io("open directory", path, e))?;
    f.sync_all()
        .map_err(|e| Error::io("sync directory", path, e))
}
