//! `snapkeep stats [SNAPSHOT]`: sizes, dedup and compression ratios, chunk and pack counts and
//! reclaimable bytes of one snapshot, of the snapshots the filters select, or of the whole
//! repository.

use std::collections::{HashMap, HashSet};

use anyhow::Result;
use serde_json::{Value, json};

use snapkeep::format::keys;
use snapkeep::index::Merged;
use snapkeep::walk::ReachableBits;
use snapkeep::{PackId, Repository, SnapshotId};

use crate::cli::args::FilterArgs;
use crate::cli::env::{Env, snapshot_filter};
use crate::cli::output::{fields, human_bytes, human_bytes_exact, human_percent, human_ratio};

/// Prints the figures of snapshot `spec` (default: the snapshots the filters select, or the
/// whole repository without filters).
pub fn run(env: &Env, spec: Option<&str>, filter: &FilterArgs) -> Result<i32> {
    let repo = env.open()?;
    let only: Option<HashSet<SnapshotId>> = match spec {
        Some(s) => Some(HashSet::from([env.resolve(&repo, s, filter)?])),
        None => {
            let f = snapshot_filter(filter)?;
            if f.is_empty() {
                None
            } else {
                Some(
                    repo.snapshots()?
                        .0
                        .iter()
                        .filter(|r| f.matches(r))
                        .map(|r| r.id)
                        .collect(),
                )
            }
        }
    };
    let v = stats(&repo, only.as_ref())?;
    env.print(|| &v, || print!("{}", fields(&rows(&v))));
    Ok(0)
}

/// The labelled lines of the figures for people: sizes in binary units (with the byte
/// count), ratios and shares rounded.
fn rows(v: &Value) -> Vec<(&'static str, String)> {
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    let (logical, unique, stored) = (n("logical_bytes"), n("unique_bytes"), n("stored_bytes"));
    let mut rows = vec![
        ("snapshots", n("snapshots").to_string()),
        ("logical size", human_bytes_exact(logical)),
        ("unique size", human_bytes_exact(unique)),
        ("stored size", human_bytes_exact(stored)),
        ("dedup ratio", human_ratio(logical, unique)),
        ("compression ratio", human_ratio(unique, stored)),
        (
            "space saving",
            human_percent(logical.saturating_sub(stored), logical),
        ),
        ("chunks", n("chunks").to_string()),
        ("trees", n("trees").to_string()),
        ("packs", n("packs").to_string()),
        (
            "repository packs",
            human_bytes_exact(n("repository_pack_bytes")),
        ),
        ("index entries", n("index_entries").to_string()),
    ];
    if let Some(r) = v["reclaimable_bytes"].as_u64() {
        let packs = n("repository_pack_bytes");
        rows.push((
            "reclaimable",
            if packs == 0 {
                human_bytes(r)
            } else {
                format!(
                    "{} ({} of the packs)",
                    human_bytes(r),
                    human_percent(r, packs)
                )
            },
        ));
    }
    rows
}

/// Sizes and ratios of some snapshots or of the whole repository.
fn stats(repo: &Repository, only: Option<&HashSet<SnapshotId>>) -> Result<Value> {
    let (records, _) = repo.snapshots()?;
    let selected: Vec<_> = records
        .iter()
        .filter(|r| only.is_none_or(|ids| ids.contains(&r.id)))
        .collect();
    let logical = selected.iter().map(|r| r.summary.bytes).sum::<u64>();
    // What the snapshots reach, as bits over the index; the index read once in id order.
    let index = repo.index();
    let reach = ReachableBits::of(repo, &index, selected.iter().map(|r| r.tree))?;
    let (mut raw, mut stored, mut unused_stored, mut entries) = (0u64, 0u64, 0u64, 0u64);
    let mut per_pack: HashMap<PackId, u64> = HashMap::new();
    let mut indexed: HashSet<PackId> = HashSet::new();
    for (_, found) in Merged::new(index.files()) {
        // The first file's entry, as lookups find it.
        let (o, loc) = (found[0], found[0].location);
        entries += 1;
        indexed.insert(loc.pack);
        if reach.contains_at(o.file, o.position) {
            if reach.chunks.contains_at(o.file, o.position) {
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
        "trees": reach.trees.len(),
        "packs": if only.is_some() { per_pack.len() } else { packs.len() },
        "repository_pack_bytes": pack_bytes,
        "index_entries": entries,
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
