//! Repairs: rebuilding the index from pack trailers, and salvaging snapshots that a lost or
//! damaged pack broke.
//!
//! Decide, then act: [`plan_index_rebuild`] reads every pack trailer and returns the entries
//! and the packs it could not read; [`repair_index`] writes them as one index file and only
//! then deletes the old index files. `snapshots` salvages broken snapshots.

use crate::error::Result;
use crate::format::index_file::BlobLocation;
use crate::format::keys;
use crate::id::{BlobId, IndexId, PackId};
use crate::pack::{location, read_pack_entries};
use crate::repository::Repository;

/// What a rebuild found.
#[derive(Clone, Debug, Default)]
pub struct IndexRebuild {
    pub entries: Vec<(BlobId, BlobLocation)>,
    pub packs_read: u64,
    /// Packs whose trailer could not be read, with the reason (their blobs are not indexed).
    pub damaged_packs: Vec<(String, String)>,
    /// Index files that the rebuild replaces.
    pub old_index_files: Vec<String>,
}

/// Reads every pack trailer (in parallel) and collects the index entries they describe.
pub fn plan_index_rebuild(repo: &Repository) -> Result<IndexRebuild> {
    use rayon::prelude::*;
    let backend = repo.backend();
    // Index files first: packs are written before the index that names them, so every index
    // file listed here has its packs in the listing below, and replacing it loses nothing.
    let old_index_files: Vec<String> = backend
        .list(keys::Kind::Index.prefix())?
        .into_iter()
        .map(|o| o.key)
        .collect();
    let listed = backend.list(keys::Kind::Pack.prefix())?;
    let results: Vec<_> = listed
        .par_iter()
        .map(|o| {
            let name = o.key.rsplit('/').next().unwrap_or_default();
            match name.parse::<PackId>() {
                Ok(id) => read_pack_entries(backend.as_ref(), repo.codec(), &id, o.size)
                    .map(|es| {
                        es.iter()
                            .map(|e| (e.id, location(id, e)))
                            .collect::<Vec<_>>()
                    })
                    .map_err(|e| (o.key.clone(), e.to_string())),
                Err(_) => Err((o.key.clone(), "name is not a pack id".to_string())),
            }
        })
        .collect();
    let mut plan = IndexRebuild::default();
    for r in results {
        match r {
            Ok(es) => {
                plan.packs_read += 1;
                plan.entries.extend(es);
            }
            Err(d) => plan.damaged_packs.push(d),
        }
    }
    plan.entries
        .sort_by(|a, b| a.0.cmp(&b.0).then(a.1.pack.cmp(&b.1.pack)));
    plan.entries.dedup_by(|a, b| a.0 == b.0);
    plan.old_index_files = old_index_files;
    Ok(plan)
}

/// Plans and (unless `dry_run`) writes a rebuilt index under the prune lock: a prune must not
/// delete a pack between the trailer read and the index write, or the index would name it.
pub fn rebuild_index(repo: &Repository, dry_run: bool) -> Result<(IndexRebuild, Option<IndexId>)> {
    if dry_run {
        return Ok((plan_index_rebuild(repo)?, None));
    }
    let mut notes = Vec::new();
    let lock = crate::lock::acquire_prune(repo.backend(), crate::lock::STALE_AFTER, &mut notes)
        .map_err(|e| match e {
            crate::error::Error::Locked(m) => crate::error::Error::Locked(format!(
                "{m} (repair index waits for prune: it must not index packs a prune deletes)"
            )),
            other => other,
        })?;
    let plan = plan_index_rebuild(repo)?;
    lock.check()?;
    let new = repair_index(repo, &plan)?;
    Ok((plan, new))
}

/// Writes the rebuilt index, then deletes the index files it replaces (callers hold the prune
/// lock: see [`rebuild_index`]).
pub fn repair_index(repo: &Repository, plan: &IndexRebuild) -> Result<Option<IndexId>> {
    let backend = repo.backend();
    // Written with `put`, not put-if-absent: when the rebuilt file has the name of an old one
    // (the same entries), that old file may be the damaged one; the right bytes for its name
    // replace it.
    let new = if plan.entries.is_empty() {
        None
    } else {
        let bytes = repo.codec().seal(
            crate::crypto::SealKind::Index,
            b"",
            crate::format::index_file::encode(plan.entries.clone()),
        )?;
        let id = IndexId::of(&bytes);
        backend.put(&keys::index(&id), &bytes)?;
        Some(id)
    };
    let keep = new.map(|id| keys::index(&id));
    for key in &plan.old_index_files {
        if Some(key) != keep.as_ref() {
            backend.delete(key)?;
        }
    }
    repo.reload_index()?;
    Ok(new)
}

mod snapshots;

pub use snapshots::{
    SnapshotRepair, SnapshotRepairOptions, SnapshotRepairStatus, SnapshotsRepairReport,
    repair_snapshots,
};

/// Whether an error means the object is gone or damaged (as opposed to unreachable now).
pub(crate) fn is_loss(e: &crate::error::Error) -> bool {
    use crate::error::Error as E;
    e.is_not_found()
        || matches!(
            e,
            E::Corrupt { .. } | E::HashMismatch { .. } | E::UnsupportedFormat { .. }
        )
}
