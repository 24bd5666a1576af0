//! The rescue for late records (design, invariant 7): snapshots committed after this prune
//! listed the records may use packs it just marked. Their locks keep the packs from deletion;
//! this keeps them restorable now: the just-marked packs that hold a blob such a snapshot
//! needs and the index lacks go back into the index, and out of the mark.
//!
//! Owns: reading the records that appeared since the plan's listing, walking their trees
//! (through the current index, the trailers of the just-marked packs and older marks), and
//! the index file and mark update that put the needed packs back.
//!
//! Invariants: runs only after the new mark is written (a record committed before that is
//! in this listing; one committed later saw the mark and re-indexes itself); it never
//! deletes a pack, and it only shrinks the mark.
//!
//! Must not: fail a prune whose work is done because a late snapshot's tree cannot be
//! found: that snapshot's own re-index and the next prune take care of it (a note says so).

use std::collections::{HashMap, HashSet};

use super::PruneReport;
use super::state::Entries;
use super::state::reachable_from;
use crate::error::Result;
use crate::format::gc::{MarkRecord, MarkedPack};
use crate::format::index_file::BlobLocation;
use crate::id::{BlobId, PackId, SnapshotId, TreeId};
use crate::index::Index;
use crate::pack::{location, read_pack_entries};
use crate::repository::Repository;

/// Puts back into the index the packs of `mark` (written under `mark_key`) that snapshots
/// committed after the records `known` were listed need.
pub fn late_records(
    repo: &Repository,
    known: &HashSet<SnapshotId>,
    mark_key: &str,
    mut mark: MarkRecord,
    report: &mut PruneReport,
) -> Result<()> {
    let Some(roots) = late_roots(repo, known)? else {
        return Ok(());
    };
    let Some((entries, rescued)) = needed_packs(repo, &roots, &mark, &mut report.notes)? else {
        return Ok(());
    };
    let backend = repo.backend().as_ref();
    crate::index::write_index(backend, repo.codec(), entries)?;
    report.rescued_packs += rescued.len() as u64;
    report.waiting_packs = report.waiting_packs.saturating_sub(rescued.len() as u64);
    let rescued_bytes: u64 = mark
        .packs
        .iter()
        .filter(|p| rescued.contains(&p.id))
        .map(|p| p.size)
        .sum();
    report.waiting_bytes = report.waiting_bytes.saturating_sub(rescued_bytes);
    mark.packs.retain(|p| !rescued.contains(&p.id));
    if mark.packs.is_empty() {
        backend.delete(mark_key)
    } else {
        backend.put(mark_key, &mark.to_bytes())
    }
}

/// The root trees of the records that `known` lacks (a record deleted meanwhile is skipped);
/// `None` when there is no such record.
fn late_roots(
    repo: &Repository,
    known: &HashSet<SnapshotId>,
) -> Result<Option<Vec<(TreeId, SnapshotId)>>> {
    let late: Vec<SnapshotId> = repo
        .snapshot_ids()?
        .into_iter()
        .filter(|id| !known.contains(id))
        .collect();
    if late.is_empty() {
        return Ok(None);
    }
    let mut roots = Vec::new();
    for id in &late {
        match repo.load_snapshot(id) {
            Ok(r) => roots.push((r.tree, r.id)),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(roots))
}

/// The trailer entries of the packs of `mark` that hold a blob reachable from `roots` and
/// missing from the current index, and those packs; `None` when there are none, or when the
/// trees cannot all be found (then with a note).
fn needed_packs(
    repo: &Repository,
    roots: &[(TreeId, SnapshotId)],
    mark: &MarkRecord,
    notes: &mut Vec<String>,
) -> Result<Option<(Entries, HashSet<PackId>)>> {
    let backend = repo.backend().as_ref();
    let fresh = Index::open(backend, repo.codec())?;
    let mut trailers: Vec<(MarkedPack, Entries)> = Vec::new();
    for p in &mark.packs {
        let es = read_pack_entries(backend, repo.codec(), &p.id, p.size)?;
        trailers.push((*p, es.iter().map(|e| (e.id, location(p.id, e))).collect()));
    }
    let in_marked: HashMap<BlobId, BlobLocation> = trailers
        .iter()
        .flat_map(|(_, es)| es.iter().copied())
        .collect();
    // Trees of late snapshots may also sit in packs of older marks (reused from a view that
    // still had them); a tree found nowhere is left to the snapshot's own re-index and to
    // the next prune rather than failing this one after its work is done.
    let reach = match reachable_from(backend, repo.codec(), roots, |id| {
        fresh
            .get(id)
            .or_else(|| in_marked.get(id).copied())
            .or_else(|| repo.locate_marked(id))
    }) {
        Ok(r) => r,
        Err(e) => {
            notes.push(format!(
                "snapshots committed during this prune were not checked for rescue ({e}); the next prune checks them"
            ));
            return Ok(None);
        }
    };
    let mut entries = Vec::new();
    let mut rescued = HashSet::new();
    for (p, es) in &trailers {
        if es
            .iter()
            .any(|(id, _)| reach.contains(id) && !fresh.contains(id))
        {
            entries.extend(es.iter().copied());
            rescued.insert(p.id);
        }
    }
    Ok((!rescued.is_empty()).then_some((entries, rescued)))
}
