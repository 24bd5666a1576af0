//! A snapshot's own rescue of blobs it reused from packs that a prune marked meanwhile.
//!
//! A snapshot finds blobs in the index view it loaded at its start. If a prune marks a pack of
//! that view while the snapshot runs, the pack leaves the index, though the pack itself stays
//! (the snapshot's lock did not see the mark). Before and after it commits, the snapshot
//! lists the marks. When there is one its lock did not see, it writes index entries for every
//! blob it references that the current index lacks, with the blob's place in the view. Once
//! an index file names the pack again, no prune deletes it (docs/DESIGN.md, "Garbage
//! collection", invariant 3). After the commit the same holds for the snapshot's own packs:
//! a prune that read the records before this one existed may have marked them.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::format::index_file::BlobLocation;
use crate::id::{AsBlob, BlobId, TreeId};
use crate::index::Index;
use crate::pack::SealedBlob;
use crate::repository::Repository;
use crate::walk::{Located, Reachable};

/// Marks that exist now and are not in `seen`.
pub(crate) fn new_marks(repo: &Repository, seen: &[String]) -> Result<Vec<String>> {
    Ok(crate::lock::list_marks(repo.backend().as_ref())?
        .into_iter()
        .filter(|m| !seen.contains(m))
        .collect())
}

/// Entries for the blobs reachable from `root` that neither `sealed` (stored by this snapshot)
/// nor the current index holds, located through `view`. With `own_too`, blobs this snapshot
/// stored count as well when the current index lacks them (a prune that did not yet see the
/// record marked the snapshot's own packs and dropped its index file), located in `sealed`.
pub(crate) fn reused_missing(
    repo: &Repository,
    view: &Index,
    sealed: &[SealedBlob],
    root: &TreeId,
    own_too: bool,
) -> Result<Vec<(BlobId, BlobLocation)>> {
    let fresh = Index::open(repo.backend().as_ref())?;
    let new: HashMap<BlobId, BlobLocation> = sealed.iter().map(|s| (s.id, s.loc)).collect();
    let source = Located {
        backend: repo.backend().as_ref(),
        locate: |t: &TreeId| {
            new.get(&t.blob())
                .copied()
                .or_else(|| view.get(t))
                .ok_or_else(|| Error::NotFound(format!("tree {} of this snapshot", t.short())))
        },
    };
    let reachable = Reachable::of(&source, [*root])?;
    let mut out = Vec::new();
    for id in reachable.blobs() {
        if fresh.contains(&id) {
            continue;
        }
        if let Some(loc) = new.get(&id) {
            if own_too {
                out.push((id, *loc));
            }
            continue;
        }
        let loc = view.get(&id).ok_or_else(|| {
            Error::NotFound(format!(
                "blob {} of this snapshot in any index; take the snapshot again",
                id.short()
            ))
        })?;
        out.push((id, loc));
    }
    Ok(out)
}
