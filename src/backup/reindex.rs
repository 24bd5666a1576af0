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

use std::collections::{HashMap, HashSet};

use crate::error::{Error, Result};
use crate::format::index_file::BlobLocation;
use crate::format::manifest::{NodeKind, Tree};
use crate::id::{ChunkId, TreeId};
use crate::index::Index;
use crate::pack::SealedBlob;
use crate::repository::Repository;

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
) -> Result<Vec<(ChunkId, BlobLocation)>> {
    let fresh = Index::open(repo.backend().as_ref())?;
    let new: HashMap<ChunkId, BlobLocation> = sealed.iter().map(|s| (s.id, s.loc)).collect();
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut seen_chunks = HashSet::new();
    let missing = |id: &ChunkId| -> Result<Option<BlobLocation>> {
        if fresh.contains(id) {
            return Ok(None);
        }
        if let Some(loc) = new.get(id) {
            return Ok(own_too.then_some(*loc));
        }
        view.get(id).map(Some).ok_or_else(|| {
            Error::NotFound(format!(
                "blob {} of this snapshot in any index; take the snapshot again",
                id.short()
            ))
        })
    };
    let mut stack = vec![*root];
    while let Some(t) = stack.pop() {
        if !seen.insert(t) {
            continue;
        }
        if seen_chunks.insert(t)
            && let Some(loc) = missing(&t)?
        {
            out.push((t, loc));
        }
        let loc = new
            .get(&t)
            .copied()
            .or_else(|| view.get(&t))
            .ok_or_else(|| Error::NotFound(format!("tree {} of this snapshot", t.short())))?;
        let bytes = crate::pack::read_blob(repo.backend().as_ref(), &t, &loc)?;
        for n in Tree::from_bytes(&bytes, &t)?.nodes {
            match n.kind {
                NodeKind::Dir { tree } => stack.push(tree),
                NodeKind::File { chunks, .. } => {
                    for c in &chunks {
                        if seen_chunks.insert(c.id)
                            && let Some(loc) = missing(&c.id)?
                        {
                            out.push((c.id, loc));
                        }
                    }
                }
                NodeKind::Symlink { .. } => {}
            }
        }
    }
    Ok(out)
}
