//! `snapkeep stats [SNAPSHOT]`: sizes, dedup and compression ratios, chunk and pack counts and
//! reclaimable bytes of one snapshot or of the whole repository.

use std::collections::{HashMap, HashSet};

use anyhow::Result;
use serde_json::{Value, json};

use snapkeep::format::keys;
use snapkeep::walk::Reachable;
use snapkeep::{PackId, Repository, SnapshotId};

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

/// Sizes and ratios of one snapshot or of the whole repository.
fn stats(repo: &Repository, only: Option<&SnapshotId>) -> Result<Value> {
    let (records, _) = repo.snapshots()?;
    let selected: Vec<_> = records
        .iter()
        .filter(|r| only.is_none_or(|id| *id == r.id))
        .collect();
    let logical = selected.iter().map(|r| r.summary.bytes).sum::<u64>();
    let reach = Reachable::of(repo, selected.iter().map(|r| r.tree))?;
    let index = repo.index();
    let all = index.all_entries();
    let (mut raw, mut stored, mut unused_stored) = (0u64, 0u64, 0u64);
    let mut per_pack: HashMap<PackId, u64> = HashMap::new();
    for (id, loc) in &all {
        if reach.contains(id) {
            if reach.is_chunk(id) {
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
        "logical_bytes": logical,
        "unique_bytes": raw,
        "stored_bytes": stored,
        "dedup_ratio": ratio(logical, raw),
        "compression_ratio": ratio(raw, stored),
        "chunks": reach.chunks.len(),
        "trees": reach.len() - reach.chunks.len(),
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
        // The new mark is foreseen as deleted (or waiting): in deleted or waiting bytes.
        Ok(r) => (r.deleted_bytes + r.waiting_bytes).saturating_sub(r.moved_bytes),
        Err(_) => estimate,
    }
}
