//! Incremental reuse: a file whose metadata equals its entry in the parent snapshot reuses
//! that entry without being read.
//!
//! Invariant: an entry is reused only when size, mtime, ctime, inode, mode, uid and gid all
//! match, the parent did not flag it changed-during-read or stage-failed, its mtime and ctime are older than
//! the parent snapshot's start by more than the timestamp granularity (otherwise a write in the
//! same tick as the parent's read could hide behind an equal mtime: the racy-mtime case), and
//! every chunk it references is in the index.

use crate::format::manifest::{FLAG_CHANGED_DURING_READ, FLAG_STAGE_FAILED, Node, NodeKind, Tree};
use crate::index::Index;

use super::Meta;

/// Timestamp granularity assumed for the racy-mtime check: the coarsest common filesystem
/// granularity (1 s) plus the same again as margin.
pub const RACY_NS: i64 = 2_000_000_000;

/// The entry named `name` in a parent tree.
pub(crate) fn find<'a>(tree: Option<&'a Tree>, name: &[u8]) -> Option<&'a Node> {
    let t = tree?;
    t.nodes
        .binary_search_by(|n| n.name.as_slice().cmp(name))
        .ok()
        .map(|i| &t.nodes[i])
}

/// Whether the parent's entry can stand for the file scanned now.
pub(crate) fn reusable(node: &Node, meta: &Meta, parent_time_ns: i64, index: &Index) -> bool {
    let NodeKind::File { chunks, .. } = &node.kind else {
        return false;
    };
    let settled = parent_time_ns.saturating_sub(RACY_NS);
    node.flags & (FLAG_CHANGED_DURING_READ | FLAG_STAGE_FAILED) == 0
        && node.size == meta.size
        && node.mtime_ns == meta.mtime_ns
        && node.ctime_ns == meta.ctime_ns
        && node.inode == meta.ino
        && node.mode == meta.mode
        && node.uid == meta.uid
        && node.gid == meta.gid
        && node.mtime_ns < settled
        && node.ctime_ns < settled
        // A saturated (out-of-range) stamp cannot prove anything.
        && node.mtime_ns != i64::MAX
        && node.mtime_ns != i64::MIN
        && chunks.iter().all(|c| index.contains(&c.id))
}
