//! `restore --dry-run`: what a restore would write and delete, worked out exactly as the real
//! run decides it, with nothing written (no staging directory, no leftover cleanup, no
//! repository lock).
//!
//! Owns: [`RestorePreview`] and [`preview`].
//!
//! Invariants: the preview refuses where the real run refuses (a non-empty target without
//! `in_place`, a running database without `force`, a mount point), except for deletes the
//! real run would refuse: those are listed, with `delete_allowed` false.
//!
//! Must not: create, change or remove anything.

use std::path::Path;

use super::in_place::{Change, InPlacePlan, check_lock, rel_display};
use super::{RestoreOptions, RestorePlan, decide_in_place, exchange, is_non_empty_dir};
use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::progress::Progress;
use crate::repository::Repository;

/// One entry a restore would write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviewEntry {
    /// The path inside the snapshot (and below the target), `/a/b`.
    pub path: String,
    /// `dir`, `file` or `symlink`.
    pub kind: &'static str,
    /// Whether the target lacks it (else it is there with other content, kind or metadata).
    pub new: bool,
}

/// What a restore would do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestorePreview {
    /// Whether it is an in-place restore (into a non-empty directory).
    pub in_place: bool,
    /// Entries to write, in plan order: directories, files, symlinks.
    pub write: Vec<PreviewEntry>,
    /// Entries to delete (paths below the target, sorted).
    pub delete: Vec<String>,
    /// Entries already as the snapshot has them.
    pub unchanged: u64,
    /// Logical bytes of the files to write.
    pub write_bytes: u64,
    /// Whether the real run would delete `delete` (false: it would refuse without `delete`).
    pub delete_allowed: bool,
}

/// What [`super::restore`] of snapshot `id` into `target` with `opts` would write and delete.
pub fn preview(
    repo: &Repository,
    id: &SnapshotId,
    target: &Path,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestorePreview> {
    let rec = repo.load_snapshot(id)?;
    if opts.in_place && is_non_empty_dir(target)? {
        let target = std::fs::canonicalize(target)
            .map_err(|e| Error::io("resolve restore target", target, e))?;
        if !opts.force {
            drop(check_lock(&target)?);
        }
        exchange::refuse_mount_point(&target)?;
        let ip = decide_in_place(repo, &rec, &target, opts, progress)?;
        return Ok(of_in_place(&ip, &target));
    }
    super::prepare_target(target)?;
    let plan = RestorePlan::new(repo, &rec.tree, target)?;
    let mut out = RestorePreview {
        write_bytes: plan.total_bytes,
        delete_allowed: true,
        ..RestorePreview::default()
    };
    for (path, kind) in entries(&plan) {
        out.write.push(PreviewEntry {
            path: rel_display(target, path),
            kind,
            new: true,
        });
    }
    Ok(out)
}

/// Every planned path with its kind, in plan order.
fn entries(plan: &RestorePlan) -> impl Iterator<Item = (&Path, &'static str)> {
    plan.dirs
        .iter()
        .map(|d| (d.0.as_path(), "dir"))
        .chain(plan.files.iter().map(|f| (f.path.as_path(), "file")))
        .chain(plan.links.iter().map(|l| (l.0.as_path(), "symlink")))
}

fn of_in_place(ip: &InPlacePlan, target: &Path) -> RestorePreview {
    let changes = ip.dirs.iter().chain(&ip.files).chain(&ip.links);
    let mut out = RestorePreview {
        in_place: true,
        delete: ip.delete.iter().map(|p| rel_display(target, p)).collect(),
        delete_allowed: ip.delete_allowed,
        ..RestorePreview::default()
    };
    let sizes = ip
        .plan
        .dirs
        .iter()
        .map(|_| 0)
        .chain(ip.plan.files.iter().map(|f| f.node.size))
        .chain(ip.plan.links.iter().map(|_| 0));
    for (((path, kind), change), size) in entries(&ip.plan).zip(changes).zip(sizes) {
        match change {
            Change::Protected => {}
            Change::Unchanged => out.unchanged += 1,
            Change::New | Change::Changed => {
                out.write_bytes += size;
                out.write.push(PreviewEntry {
                    path: rel_display(target, path),
                    kind,
                    new: *change == Change::New,
                });
            }
        }
    }
    out
}
