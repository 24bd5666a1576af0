//! `snapkeep diff FROM TO`: what changed between two snapshots (added, removed, modified,
//! type changed, metadata changed), as JSON or one `SIGN    PATH` line each.

use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::{Value, json};

use snapkeep::format::manifest::{ChunkRef, Extent, Node, NodeKind};
use snapkeep::{Repository, SnapshotId};

use crate::cli::args::FilterArgs;
use crate::cli::env::Env;
use crate::cli::inspect::{entries, kind_name};

/// Each kind of change with its sign in the human listing, in the listing's order.
const SIGNS: [(&str, &str); 5] = [
    ("added", "+"),
    ("removed", "-"),
    ("modified", "M"),
    ("type_changed", "T"),
    ("metadata_changed", "U"),
];

/// Prints what changed from snapshot `from` to snapshot `to`.
pub fn run(env: &Env, from: &str, to: &str, filter: &FilterArgs) -> Result<i32> {
    let (repo, a) = env.open_snapshot(from, filter)?;
    let b = env.resolve(&repo, to, filter)?;
    let d = diff(&repo, &a, &b)?;
    env.print(
        || &d,
        || {
            for (key, sign) in SIGNS {
                for e in d[key].as_array().into_iter().flatten() {
                    println!("{sign}    {}", e["path"].as_str().unwrap_or_default());
                }
            }
        },
    );
    Ok(0)
}

/// What changed from snapshot `from` to snapshot `to`, as the documented JSON object.
fn diff(repo: &Repository, from: &SnapshotId, to: &SnapshotId) -> Result<Value> {
    let by_path = |id: &SnapshotId| -> Result<BTreeMap<String, Node>> {
        Ok(entries(repo, id, "")?.into_iter().collect())
    };
    let (old, new) = (by_path(from)?, by_path(to)?);
    let mut added = Vec::new();
    let mut removed = Vec::new();
    let mut modified = Vec::new();
    let mut type_changed = Vec::new();
    let mut metadata = Vec::new();
    let (mut added_bytes, mut removed_bytes) = (0u64, 0u64);
    for (path, n) in &new {
        match old.get(path) {
            None => {
                added_bytes += n.size;
                added.push(json!({"path": path, "type": kind_name(n), "size": n.size}));
            }
            Some(o) if kind_name(o) != kind_name(n) => type_changed.push(json!({
                "path": path, "old_type": kind_name(o), "new_type": kind_name(n), "size": n.size
            })),
            Some(o) if content_differs(o, n) => {
                modified.push(json!({"path": path, "old_size": o.size, "new_size": n.size}));
            }
            Some(o) if metadata_differs(o, n) => metadata.push(json!({"path": path})),
            Some(_) => {}
        }
    }
    for (path, o) in &old {
        if !new.contains_key(path) {
            removed_bytes += o.size;
            removed.push(json!({"path": path, "type": kind_name(o), "size": o.size}));
        }
    }
    Ok(json!({
        "from": from.to_string(),
        "to": to.to_string(),
        "added": added,
        "removed": removed,
        "modified": modified,
        "type_changed": type_changed,
        "metadata_changed": metadata,
        "added_bytes": added_bytes,
        "removed_bytes": removed_bytes,
    }))
}

/// Whether two entries of the same type differ in content (a symlink's target, a file's
/// size, chunks or holes).
fn content_differs(o: &Node, n: &Node) -> bool {
    match (&o.kind, &n.kind) {
        (NodeKind::Symlink { target: x }, NodeKind::Symlink { target: y }) => x != y,
        (NodeKind::File { .. }, NodeKind::File { .. }) => {
            o.size != n.size || content_of(o) != content_of(n)
        }
        _ => false,
    }
}

/// Whether two entries differ in mode, owner or modification time.
fn metadata_differs(o: &Node, n: &Node) -> bool {
    o.mode != n.mode || o.uid != n.uid || o.gid != n.gid || o.mtime_ns != n.mtime_ns
}

fn content_of(n: &Node) -> Option<(&[ChunkRef], &[Extent])> {
    match &n.kind {
        NodeKind::File { chunks, holes, .. } => Some((chunks, holes)),
        _ => None,
    }
}
