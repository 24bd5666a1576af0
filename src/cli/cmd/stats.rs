//! `snapkeep stats [SNAPSHOT]`: sizes, dedup and compression ratios, chunk and pack counts and
//! reclaimable bytes of one snapshot or of the whole repository.

use std::collections::{HashMap, HashSet};

use anyhow::Result;
use serde_json::{Value, json};

use snapkeep::format::manifest::NodeKind;
use snapkeep::{ChunkId, PackId, Repository, SnapshotId, SnapshotRecord};

use crate::cli::env::Env;
use crate::cli::output::print_fields;

/// Prints the figures of snapshot `spec` (default: the whole repository).
pub fn run(env: &Env, spec: Option<&str>) -> Result<i32> {
    let repo = env.open()?;
    let id = spec.map(|s| repo.resolve(s)).transpose()?;
    let v = stats(&repo, id.as_ref())?;
    env.print(|| &v, || print_fields(&v, 22));
    Ok(0)
}

/// What the selected snapshots reach: every blob (trees and data), the data chunks alone,
/// and the sum of their logical sizes.
struct Reach {
    blobs: HashSet<ChunkId>,
    data: HashSet<ChunkId>,
    logical: u64,
}

fn reach(repo: &Repository, selected: &[&SnapshotRecord]) -> Result<Reach> {
    let mut reachable: HashSet<ChunkId> = HashSet::new();
    let mut data: HashSet<ChunkId> = HashSet::new();
    let mut seen_trees: HashSet<ChunkId> = HashSet::new();
    let mut logical = 0u64;
    for rec in selected {
        logical += rec.summary.bytes;
        let mut stack = vec![rec.tree];
        while let Some(t) = stack.pop() {
            reachable.insert(t);
            if !seen_trees.insert(t) {
                continue;
            }
            for n in repo.load_tree(&t)?.nodes {
                match n.kind {
                    NodeKind::Dir { tree } => stack.push(tree),
                    NodeKind::File { chunks, .. } => {
                        reachable.extend(chunks.iter().map(|c| c.id));
                        data.extend(chunks.iter().map(|c| c.id));
                    }
                    NodeKind::Symlink { .. } => {}
                }
            }
        }
    }
    Ok(Reach {
        blobs: reachable,
        data,
        logical,
    })
}

/// Sizes and ratios of one snapshot or of the whole repository.
fn stats(repo: &Repository, only: Option<&SnapshotId>) -> Result<Value> {
    let (records, _) = repo.snapshots()?;
    let selected: Vec<_> = records
        .iter()
        .filter(|r| only.is_none_or(|id| *id == r.id))
        .collect();
    let reach = reach(repo, &selected)?;
    let index = repo.index();
    let all = index.all_entries();
    let (mut raw, mut stored, mut unused_stored) = (0u64, 0u64, 0u64);
    let mut per_pack: HashMap<PackId, u64> = HashMap::new();
    for (id, loc) in &all {
        if reach.blobs.contains(id) {
            if reach.data.contains(id) {
                raw += u64::from(loc.raw_length);
            }
            stored += u64::from(loc.length);
            *per_pack.entry(loc.pack).or_default() += 1;
        } else {
            unused_stored += u64::from(loc.length);
        }
    }
    let packs = repo.backend().list("data/")?;
    let pack_bytes: u64 = packs.iter().map(|o| o.size).sum();
    let indexed: HashSet<PackId> = all.values().map(|l| l.pack).collect();
    let unindexed_bytes: u64 = packs
        .iter()
        .filter(|o| {
            o.key
                .rsplit('/')
                .next()
                .and_then(|n| n.parse::<PackId>().ok())
                .is_none_or(|id| !indexed.contains(&id))
        })
        .map(|o| o.size)
        .sum();
    let reclaimable = if only.is_some() {
        Value::Null
    } else {
        json!(reclaimable(repo, unused_stored + unindexed_bytes))
    };
    let ratio = |a: u64, b: u64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
    Ok(json!({
        "snapshots": selected.len(),
        "logical_bytes": reach.logical,
        "unique_bytes": raw,
        "stored_bytes": stored,
        "dedup_ratio": ratio(reach.logical, raw),
        "compression_ratio": ratio(raw, stored),
        "chunks": reach.data.len(),
        "trees": reach.blobs.len() - reach.data.len(),
        "packs": if only.is_some() { per_pack.len() } else { packs.len() },
        "repository_pack_bytes": pack_bytes,
        "index_entries": all.len(),
        "reclaimable_bytes": reclaimable,
    }))
}

/// What a full prune would give back (whole unused packs, packs already marked, and the
/// unused part of the rest, duplicates included), from its dry run; `estimate` (from the
/// index) when the dry run cannot run (a damaged repository).
fn reclaimable(repo: &Repository, estimate: u64) -> u64 {
    let dry = snapkeep::prune::prune(
        repo,
        &snapkeep::prune::PruneOptions {
            dry_run: true,
            grace: std::time::Duration::ZERO,
            max_unused: snapkeep::prune::MaxUnused::Percent(0.0),
            ..snapkeep::prune::PruneOptions::default()
        },
    );
    match dry {
        Ok(r) => (r.deleted_bytes + r.waiting_bytes + r.marked_bytes).saturating_sub(r.moved_bytes),
        Err(_) => estimate,
    }
}
