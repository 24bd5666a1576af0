//! `snapkeep diff FROM TO`: what changed between two snapshots (added, removed, modified,
//! type changed, metadata changed), as JSON or, for people, one aligned line a change in path
//! order (`SIGN  TYPE  SIZE  PATH`) and a summary line with the counts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Result;
use serde_json::{Value, json};

use snapkeep::format::manifest::{ChunkRef, Extent, Node, NodeKind};
use snapkeep::{Repository, SnapshotId};

use crate::cli::args::FilterArgs;
use crate::cli::env::Env;
use crate::cli::inspect::{entries, kind_name, printable};
use crate::cli::output::{human_bytes, plural};

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
    env.print(|| &d, || print!("{}", human(&d)));
    Ok(0)
}

/// The listing for people: one line a change, in path order, the type and size columns as
/// wide as their widest value, then the summary line.
fn human(d: &Value) -> String {
    let mut rows: Vec<(String, &str, String, String, String)> = Vec::new();
    for (key, sign) in SIGNS {
        for e in d[key].as_array().into_iter().flatten() {
            let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            let size = |k: &str| human_bytes(e[k].as_u64().unwrap_or(0));
            let (kind, size, note) = match key {
                "modified" => (
                    text("type"),
                    size("new_size"),
                    format!("  (was {})", size("old_size")),
                ),
                "type_changed" => (
                    text("new_type"),
                    size("size"),
                    format!("  (was a {})", text("old_type")),
                ),
                "metadata_changed" => (text("type"), String::new(), String::new()),
                _ => (text("type"), size("size"), String::new()),
            };
            let path = printable(e["path"].as_str().unwrap_or_default());
            rows.push((path, sign, kind, size, note));
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let wk = rows.iter().map(|r| r.2.len()).max().unwrap_or(0);
    let ws = rows.iter().map(|r| r.3.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (path, sign, kind, size, note) in &rows {
        let _ = writeln!(out, "{sign}  {kind:<wk$}  {size:>ws$}  {path}{note}");
    }
    let _ = writeln!(out, "{}", summary(d));
    out
}

/// `2 files added, 1 removed, 0 modified, 0 type changed, 0 with new metadata; +5 B, -3 B`:
/// the noun is `file` when every change is of a file, else `entry`.
fn summary(d: &Value) -> String {
    let count = |k: &str| d[k].as_array().map_or(0, Vec::len);
    let all_files = SIGNS.iter().all(|(k, _)| {
        d[*k]
            .as_array()
            .into_iter()
            .flatten()
            .all(|e| e.get("type").is_some_and(|t| t == "file"))
    });
    let noun = if all_files { "file" } else { "entry" };
    format!(
        "{} added, {} removed, {} modified, {} type changed, {} with new metadata; +{}, -{}",
        plural(count("added"), noun),
        count("removed"),
        count("modified"),
        count("type_changed"),
        count("metadata_changed"),
        human_bytes(d["added_bytes"].as_u64().unwrap_or(0)),
        human_bytes(d["removed_bytes"].as_u64().unwrap_or(0)),
    )
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
                modified.push(json!({
                    "path": path, "type": kind_name(n), "old_size": o.size, "new_size": n.size
                }));
            }
            Some(o) if metadata_differs(o, n) => {
                metadata.push(json!({"path": path, "type": kind_name(n)}));
            }
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
