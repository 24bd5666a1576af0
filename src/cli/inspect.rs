//! Read-only views of snapshots: `ls`, `diff`, `show`, `stats`; and `tag`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use anyhow::{Result, anyhow};
use serde_json::{Value, json};

use snapkeep::clock::rfc3339;
use snapkeep::format::keys;
use snapkeep::format::manifest::{Node, NodeKind, Tree};
use snapkeep::walk::Reachable;
use snapkeep::{Repository, SnapshotId};

fn kind_name(n: &Node) -> &'static str {
    match n.kind {
        NodeKind::File { .. } => "file",
        NodeKind::Dir { .. } => "dir",
        NodeKind::Symlink { .. } => "symlink",
    }
}

/// Text for raw name bytes: valid UTF-8 as is, every other byte as `\xNN`, so two different
/// names never print the same. The exact bytes are in the `*_hex` fields when not UTF-8.
pub fn show_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        out.push_str(chunk.valid());
        for x in chunk.invalid() {
            let _ = write!(out, "\\x{x:02x}");
        }
    }
    out
}

fn entry_json(path: &str, n: &Node) -> Value {
    let mut v = json!({
        "path": path,
        "name": show_bytes(&n.name),
        "type": kind_name(n),
        "mode": format!("{:04o}", n.mode),
        "size": n.size,
        "mtime": rfc3339(n.mtime_ns),
        "uid": n.uid,
        "gid": n.gid,
    });
    if std::str::from_utf8(&n.name).is_err() {
        v["name_hex"] = json!(hex::encode(&n.name));
    }
    if let NodeKind::Symlink { target } = &n.kind {
        v["target"] = json!(show_bytes(target));
        if std::str::from_utf8(target).is_err() {
            v["target_hex"] = json!(hex::encode(target));
        }
    }
    v
}

/// Every entry below `tree`, depth first, with its path (`/a/b`).
fn walk(repo: &Repository, tree: &Tree, prefix: &str, out: &mut Vec<(String, Node)>) -> Result<()> {
    for n in &tree.nodes {
        let path = format!("{prefix}/{}", show_bytes(&n.name));
        out.push((path.clone(), n.clone()));
        if let NodeKind::Dir { tree } = &n.kind {
            let sub = repo.load_tree(tree)?;
            walk(repo, &sub, &path, out)?;
        }
    }
    Ok(())
}

/// The tree at `path` inside a snapshot (`/` or empty for the root).
fn tree_at(repo: &Repository, id: &SnapshotId, path: &str) -> Result<(Tree, String)> {
    let rec = repo.load_snapshot(id)?;
    let mut tree = repo.load_tree(&rec.tree)?;
    let mut shown = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        let node = tree
            .nodes
            .iter()
            .find(|n| n.name == part.as_bytes())
            .ok_or_else(|| snapkeep::Error::NotFound(format!("'{path}' in snapshot {id}")))?;
        let NodeKind::Dir { tree: sub } = &node.kind else {
            return Err(anyhow!(snapkeep::Error::InvalidInput(format!(
                "'{path}' in snapshot {id} is not a directory"
            ))));
        };
        tree = repo.load_tree(sub)?;
        shown.push('/');
        shown.push_str(part);
    }
    Ok((tree, shown))
}

/// `ls`: entries below `path`, recursively.
pub fn ls(repo: &Repository, id: &SnapshotId, path: &str) -> Result<Vec<Value>> {
    let (tree, prefix) = tree_at(repo, id, path)?;
    let mut out = Vec::new();
    walk(repo, &tree, &prefix, &mut out)?;
    Ok(out.iter().map(|(p, n)| entry_json(p, n)).collect())
}

/// Human line of an `ls` entry.
pub fn ls_line(v: &Value) -> String {
    format!(
        "{:<7} {} {:>12} {}  {}{}",
        v["type"].as_str().unwrap_or_default(),
        v["mode"].as_str().unwrap_or_default(),
        v["size"],
        v["mtime"].as_str().unwrap_or_default(),
        v["path"].as_str().unwrap_or_default(),
        v.get("target")
            .and_then(Value::as_str)
            .map_or_else(String::new, |t| format!(" -> {t}"))
    )
}

fn content_of(
    n: &Node,
) -> Option<(
    &[snapkeep::format::manifest::ChunkRef],
    &[snapkeep::format::manifest::Extent],
)> {
    match &n.kind {
        NodeKind::File { chunks, holes, .. } => Some((chunks, holes)),
        _ => None,
    }
}

/// `diff`: what changed from snapshot `a` to snapshot `b`.
pub fn diff(repo: &Repository, from: &SnapshotId, to: &SnapshotId) -> Result<Value> {
    let entries = |id: &SnapshotId| -> Result<BTreeMap<String, Node>> {
        let (tree, _) = tree_at(repo, id, "")?;
        let mut v = Vec::new();
        walk(repo, &tree, "", &mut v)?;
        Ok(v.into_iter().collect())
    };
    let (old, new) = (entries(from)?, entries(to)?);
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
            Some(o) => {
                let content_differs = match (&o.kind, &n.kind) {
                    (NodeKind::Symlink { target: x }, NodeKind::Symlink { target: y }) => x != y,
                    (NodeKind::File { .. }, NodeKind::File { .. }) => {
                        o.size != n.size || content_of(o) != content_of(n)
                    }
                    _ => false,
                };
                if content_differs {
                    modified.push(json!({"path": path, "old_size": o.size, "new_size": n.size}));
                } else if o.mode != n.mode
                    || o.uid != n.uid
                    || o.gid != n.gid
                    || o.mtime_ns != n.mtime_ns
                {
                    metadata.push(json!({"path": path}));
                }
            }
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

/// `stats`: sizes and ratios of one snapshot or of the whole repository.
pub fn stats(repo: &Repository, only: Option<&SnapshotId>) -> Result<Value> {
    let (records, _) = repo.snapshots()?;
    let selected: Vec<_> = records
        .iter()
        .filter(|r| only.is_none_or(|id| *id == r.id))
        .collect();
    let logical = selected.iter().map(|r| r.summary.bytes).sum::<u64>();
    let reachable = Reachable::of(repo, selected.iter().map(|r| r.tree))?;
    let index = repo.index();
    let all = index.all_entries();
    let (mut raw, mut stored, mut unused_stored) = (0u64, 0u64, 0u64);
    let mut per_pack: HashMap<snapkeep::PackId, u64> = HashMap::new();
    for (id, loc) in &all {
        if reachable.contains(id) {
            if reachable.is_chunk(id) {
                raw += u64::from(loc.raw_length);
            }
            stored += u64::from(loc.length);
            *per_pack.entry(loc.pack).or_default() += 1;
        } else {
            unused_stored += u64::from(loc.length);
        }
    }
    let packs = repo.backend().list(keys::Kind::Pack.prefix())?;
    let pack_bytes: u64 = packs.iter().map(|o| o.size).sum();
    let indexed: HashSet<snapkeep::PackId> = all.values().map(|l| l.pack).collect();
    let unindexed_bytes: u64 = packs
        .iter()
        .filter(|o| {
            o.key
                .rsplit('/')
                .next()
                .and_then(|n| n.parse::<snapkeep::PackId>().ok())
                .is_none_or(|id| !indexed.contains(&id))
        })
        .map(|o| o.size)
        .sum();
    // What a full prune would give back (whole unused packs, packs already marked, and the
    // unused part of the rest, duplicates included), from its dry run; the index-based
    // estimate when the dry run cannot run (a damaged repository).
    let reclaimable = if only.is_some() {
        Value::Null
    } else {
        let dry = snapkeep::prune::prune(
            repo,
            &snapkeep::prune::PruneOptions {
                dry_run: true,
                grace: std::time::Duration::ZERO,
                max_unused: snapkeep::prune::MaxUnused::Percent(0.0),
                ..snapkeep::prune::PruneOptions::default()
            },
        );
        json!(match dry {
            Ok(r) =>
                (r.deleted_bytes + r.waiting_bytes + r.marked_bytes).saturating_sub(r.moved_bytes),
            Err(_) => unused_stored + unindexed_bytes,
        })
    };
    let ratio = |a: u64, b: u64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
    Ok(json!({
        "snapshots": selected.len(),
        "logical_bytes": logical,
        "unique_bytes": raw,
        "stored_bytes": stored,
        "dedup_ratio": ratio(logical, raw),
        "compression_ratio": ratio(raw, stored),
        "chunks": reachable.chunks.len(),
        "trees": reachable.len() - reachable.chunks.len(),
        "packs": if only.is_some() { per_pack.len() } else { packs.len() },
        "repository_pack_bytes": pack_bytes,
        "index_entries": all.len(),
        "reclaimable_bytes": reclaimable,
    }))
}
