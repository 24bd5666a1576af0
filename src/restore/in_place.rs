//! In-place restore into an existing directory (a database's data directory): the decision.
//!
//! Owns: [`InPlacePlan`], what an in-place restore will do, worked out before anything is
//! written: each planned entry is unchanged (a file whose size, holes, chunk ids, mode, mtime
//! and, as root, owner already equal the snapshot's), new or changed; every entry below the
//! target the snapshot does not have is to be deleted; and whether deleting is allowed (the
//! target is the snapshot's own source, holds the same database layout, or `--delete` was
//! given). The lock check (a running database refuses the restore) lives here too.
//!
//! Invariants: the lock file (`*.alopex.lock`) and `.lifecycle/` at the root are never
//! compared, deleted or replaced; existing symlinks are never followed.
//!
//! Must not: write anything. Acting on the plan is `build`'s (a new tree beside the target,
//! exchanged with it in one step).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::plan::FileJob;
use super::{RestoreOptions, RestorePlan};
use crate::chunker::Chunker;
use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::format::manifest::{Node, NodeKind, SnapshotRecord};
use crate::progress::Progress;
use crate::source::{WINDOW, data_extents, holes_of, read_window};
use crate::stage::Layout;

/// How many entries a refusal to delete names.
const NAMED_IN_REFUSAL: usize = 5;

/// What an in-place restore does with one planned entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Change {
    /// Already the snapshot's (a file is hard-linked into the new tree).
    Unchanged,
    /// Absent from the target.
    New,
    /// Present with other content, kind or metadata.
    Changed,
    /// The lock file or `.lifecycle/`: never restored, the target's own is carried over.
    Protected,
}

/// An in-place restore, decided: the plan, what each entry needs, what goes.
pub(super) struct InPlacePlan {
    pub(super) plan: RestorePlan,
    pub(super) dirs: Vec<Change>,
    pub(super) files: Vec<Change>,
    pub(super) links: Vec<Change>,
    /// Paths below the target the snapshot does not have, sorted (a directory before its
    /// entries).
    pub(super) delete: Vec<PathBuf>,
    /// Whether the restore may delete them.
    pub(super) delete_allowed: bool,
    /// Entries below the target that the snapshot's exclude patterns match (the highest
    /// such entry of each branch): left out of the snapshot, so kept as they are, never
    /// deleted.
    pub(super) kept: Vec<PathBuf>,
}

/// The metadata of an entry on disk that a comparison needs.
struct OnDisk {
    meta: std::fs::Metadata,
}

impl InPlacePlan {
    /// Compares `plan` (made for `target`) with what is in `target` (owners count only when
    /// the restore sets them).
    pub(super) fn new(
        plan: RestorePlan,
        rec: &SnapshotRecord,
        target: &Path,
        (chunker, codec): (&Chunker, &Codec),
        opts: &RestoreOptions,
        progress: &dyn Progress,
    ) -> Result<Self> {
        let owner = !opts.skip_owner && rustix::process::geteuid().is_root();
        let excludes = match &rec.excludes {
            Some(r) if rec.paths.len() == 1 => {
                Some(crate::exclude::Excludes::new(&r.patterns, &r.ipatterns)?)
            }
            _ => None,
        };
        let (disk, kept) = on_disk(target, excludes.as_ref())?;
        let files = plan
            .files
            .par_iter()
            .map(|job| {
                let c = file_change(target, job, disk.get(&job.path), (chunker, codec), owner);
                if c == Change::Unchanged {
                    progress.advance(job.node.size, 1);
                }
                c
            })
            .collect();
        let dirs = plan
            .dirs
            .iter()
            .map(|(p, n)| dir_change(target, p, n, disk.get(p), owner))
            .collect();
        let links = plan
            .links
            .iter()
            .map(|(p, n)| link_change(target, p, n, disk.get(p)))
            .collect();
        let wanted: HashSet<&Path> = plan
            .dirs
            .iter()
            .map(|d| d.0.as_path())
            .chain(plan.files.iter().map(|f| f.path.as_path()))
            .chain(plan.links.iter().map(|l| l.0.as_path()))
            .collect();
        let mut delete: Vec<PathBuf> = disk
            .keys()
            .filter(|p| !wanted.contains(p.as_path()))
            .cloned()
            .collect();
        delete.sort();
        let delete_allowed = opts.delete || is_own_target(rec, target, &plan);
        Ok(InPlacePlan {
            plan,
            dirs,
            files,
            links,
            delete,
            delete_allowed,
            kept,
        })
    }

    /// Fails when the restore would delete entries it is not allowed to delete, naming how
    /// many and the first few.
    pub(super) fn check_delete(&self, target: &Path) -> Result<()> {
        if self.delete.is_empty() || self.delete_allowed {
            return Ok(());
        }
        let shown: Vec<String> = self
            .delete
            .iter()
            .take(NAMED_IN_REFUSAL)
            .map(|p| rel_display(target, p))
            .collect();
        let more = if self.delete.len() > NAMED_IN_REFUSAL {
            ", ..."
        } else {
            ""
        };
        Err(Error::InvalidInput(format!(
            "restore --in-place into {} would delete {} {} the snapshot does not have ({}{more}), \
             and {} is not the snapshot's source nor a directory of the same database layout; \
             pass --delete to delete them, or --dry-run to list every change",
            target.display(),
            self.delete.len(),
            if self.delete.len() == 1 {
                "entry"
            } else {
                "entries"
            },
            shown.join(", "),
            target.display(),
        )))
    }
}

/// `path` below `target` as a path inside the snapshot (`/a/b`).
pub(super) fn rel_display(target: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(target).unwrap_or(path);
    format!("/{}", rel.to_string_lossy())
}

/// Whether `target` is the snapshot's own source (a snapshot of one source, whose canonical
/// path is the target's) or holds the same database layout as the snapshot.
fn is_own_target(rec: &SnapshotRecord, target: &Path, plan: &RestorePlan) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    // A snapshot of several sources holds each of them as a root entry, so none of those
    // paths is the snapshot's own tree: only a one-source snapshot has an own directory.
    if let [own] = rec.paths.as_slice()
        && canon(Path::new(own)) == canon(target)
    {
        return true;
    }
    let top = |p: &Path| p.parent() == Some(target);
    let names: Vec<(&[u8], bool)> = plan
        .dirs
        .iter()
        .filter(|d| top(&d.0))
        .map(|d| (d.1.name.as_slice(), true))
        .chain(
            plan.files
                .iter()
                .filter(|f| top(&f.path))
                .map(|f| (f.node.name.as_slice(), false)),
        )
        .collect();
    let layout = Layout::detect_names(&names);
    layout != Layout::Generic && Layout::detect(target) == layout
}

/// Every entry below `target` (not following symlinks), except the protected ones. A
/// directory on another file system (a mount point below the target) is refused: the
/// exchange would move that file system away with the old tree, and removing the old tree
/// must never reach into it.
/// Entries the snapshot's `excludes` match are returned apart (and not walked into).
fn on_disk(
    target: &Path,
    excludes: Option<&crate::exclude::Excludes>,
) -> Result<(HashMap<PathBuf, OnDisk>, Vec<PathBuf>)> {
    let dev = std::fs::metadata(target)
        .map_err(|e| Error::io("stat restore target", target, e))?
        .dev();
    let mut out = HashMap::new();
    let mut kept = Vec::new();
    let mut walk = walkdir::WalkDir::new(target)
        .min_depth(1)
        .follow_links(false)
        .same_file_system(true)
        .into_iter()
        .filter_entry(|e| !protected_in(target, e.path()));
    while let Some(e) = walk.next() {
        let e = e.map_err(|e| {
            let path = e.path().unwrap_or(target).to_path_buf();
            Error::io("list", &path, e.into())
        })?;
        let meta = e
            .metadata()
            .map_err(|err| Error::io("stat", e.path(), err.into()))?;
        if meta.dev() != dev {
            return Err(Error::InvalidInput(format!(
                "{} is a mount point inside the restore target {}; an in-place restore \
                 switches the whole tree in one step and would move that file system away \
                 with the old one: unmount it first, or restore into a new directory",
                e.path().display(),
                target.display()
            )));
        }
        if excludes.is_some_and(|x| x.matches(e.path().strip_prefix(target).unwrap_or(e.path()))) {
            kept.push(e.path().to_path_buf());
            if e.file_type().is_dir() {
                walk.skip_current_dir();
            }
            continue;
        }
        out.insert(e.path().to_path_buf(), OnDisk { meta });
    }
    Ok((out, kept))
}

fn meta_same(m: &std::fs::Metadata, node: &Node, owner: bool) -> bool {
    m.mode() & 0o7777 == node.mode
        && crate::clock::stamp_ns(m.mtime(), m.mtime_nsec()) == node.mtime_ns
        && (!owner || (m.uid() == node.uid && m.gid() == node.gid))
}

fn file_change(
    target: &Path,
    job: &FileJob,
    disk: Option<&OnDisk>,
    (chunker, codec): (&Chunker, &Codec),
    owner: bool,
) -> Change {
    if protected_in(target, &job.path) {
        return Change::Protected;
    }
    let Some(d) = disk else {
        return Change::New;
    };
    if d.meta.is_file()
        && d.meta.len() == job.node.size
        && meta_same(&d.meta, &job.node, owner)
        && same_content(&job.path, &job.node, (chunker, codec)).unwrap_or(false)
    {
        Change::Unchanged
    } else {
        Change::Changed
    }
}

fn dir_change(
    target: &Path,
    path: &Path,
    node: &Node,
    disk: Option<&OnDisk>,
    owner: bool,
) -> Change {
    if protected_in(target, path) {
        return Change::Protected;
    }
    match disk {
        None => Change::New,
        Some(d)
            if d.meta.is_dir()
                && d.meta.mode() & 0o7777 == node.mode
                && (!owner || (d.meta.uid() == node.uid && d.meta.gid() == node.gid)) =>
        {
            Change::Unchanged
        }
        Some(_) => Change::Changed,
    }
}

fn link_change(target: &Path, path: &Path, node: &Node, disk: Option<&OnDisk>) -> Change {
    if protected_in(target, path) {
        return Change::Protected;
    }
    let NodeKind::Symlink { target: want } = &node.kind else {
        return Change::Changed;
    };
    match disk {
        None => Change::New,
        Some(d)
            if d.meta.file_type().is_symlink()
                && std::fs::read_link(path)
                    .is_ok_and(|t| t.as_os_str().as_bytes() == want.as_slice()) =>
        {
            Change::Unchanged
        }
        Some(_) => Change::Changed,
    }
}

/// Whether `rel` (relative to the target) is the lock file or in `.lifecycle/`.
pub(super) fn protected(rel: &Path) -> bool {
    let first = rel
        .components()
        .next()
        .map(|c| c.as_os_str().as_bytes().to_vec())
        .unwrap_or_default();
    first.ends_with(b".alopex.lock") || first == b".lifecycle"
}

/// Whether `path`, below `target`, is the lock file or in `.lifecycle/`.
pub(super) fn protected_in(target: &Path, path: &Path) -> bool {
    protected(path.strip_prefix(target).unwrap_or(path))
}

/// Fails when a process holds an OS lock on a `*.alopex.lock` file at the root, or, for a
/// sidecar directory `X.alopex.d`, on `X.alopex.lock` beside it; otherwise takes those locks
/// itself and returns them. The caller holds them until the exchange is done, so a database
/// started during the restore finds its lock taken and does not open a half-built state.
pub(super) fn check_lock(target: &Path) -> Result<Vec<File>> {
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
    let mut held = Vec::new();
    for path in candidates {
        let Ok(f) = File::open(&path) else { continue };
        match f.try_lock() {
            Ok(()) => held.push(f),
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
    Ok(held)
}

/// Whether the file on disk has exactly the node's content: the same holes and the same chunk
/// ids (FastCDC cut points and blake3, as a snapshot would compute them), read from its data
/// extents only and stopping at the first difference. Size + CRC32 alone would let a
/// crafted or unlucky same-size file with a colliding CRC32 survive.
fn same_content(
    path: &Path,
    node: &Node,
    (chunker, codec): (&Chunker, &Codec),
) -> std::io::Result<bool> {
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
                    Some(c) if c.len as usize == n && codec.chunk_id(&win[p..p + n]) == c.id => {}
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
