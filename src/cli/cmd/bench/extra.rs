//! The bench's optional measurements: opening a repository with a large index
//! (`--index-entries`), and prune without and with repacking on a grown repository
//! (`--prune-snapshots`).

use std::path::Path;

use anyhow::Result;
use serde_json::{Value, json};

use super::dataset::{Rng, churn, tree_bytes};
use super::{Step, drop_caches, run_step};

/// The prune benchmark (see `--prune-snapshots`).
pub fn prune_bench(
    repo: &Path,
    source: &Path,
    size: u64,
    total: u64,
    cold: bool,
    say: &dyn Fn(&str),
) -> Result<Value> {
    let src = source.to_string_lossy().into_owned();
    let have = run_step(repo, &["list"])?
        .json
        .as_array()
        .map_or(0, Vec::len) as u64;
    say(&format!(
        "prune: growing the repository from {have} to {total} snapshots"
    ));
    for round in have..total {
        churn(source, size, round)?;
        run_step(repo, &["snapshot", &src])?;
    }
    let repo_bytes = |p: &Path| tree_bytes(&p.join("data")).0;
    let before = repo_bytes(repo);
    run_step(repo, &["forget", "--keep-last", "10"])?;
    drop_caches(cold)?;
    let plain = run_step(
        repo,
        &["prune", "--grace", "0", "--max-unused", "unlimited"],
    )?;
    let mid = repo_bytes(repo);
    say(&format!(
        "prune of {total} snapshots (40 forgotten), no repacking: {:.3} s, peak RSS {} MiB, packs {} -> {} ({} -> {} MiB)",
        plain.seconds,
        plain.rss_kib / 1024,
        plain.json["packs_before"],
        plain.json["packs_after"],
        before >> 20,
        mid >> 20
    ));
    drop_caches(cold)?;
    let repack = run_step(repo, &["prune", "--grace", "0", "--max-unused", "0%"])?;
    let after = repo_bytes(repo);
    say(&format!(
        "prune with repacking (--max-unused 0%): {:.3} s, peak RSS {} MiB, repacked {} packs, moved {} blobs ({} MiB of live data), {} -> {} MiB",
        repack.seconds,
        repack.rss_kib / 1024,
        repack.json["repacked_packs"],
        repack.json["moved_blobs"],
        repack.json["moved_bytes"].as_u64().unwrap_or(0) >> 20,
        mid >> 20,
        after >> 20
    ));
    Ok(json!({
        "snapshots": total,
        "kept": 10,
        "pack_bytes_before": before,
        "no_repack": prune_run_json(&plain, mid),
        "repack": prune_run_json(&repack, after),
    }))
}

/// One prune run of the prune benchmark.
fn prune_run_json(step: &Step, pack_bytes_after: u64) -> Value {
    json!({
        "seconds_including_process_start": step.seconds,
        "peak_rss_kib": step.rss_kib,
        "report": step.json,
        "pack_bytes_after": pack_bytes_after,
    })
}

/// Writes one index file of `n` random entries into a new repository and measures a `list`
/// (which opens the repository and its memory-mapped index) as a child process.
pub fn index_open(work: &Path, n: u64, say: &dyn Fn(&str)) -> Result<Value> {
    use snapkeep::format::index_file::{self, BlobLocation};
    use snapkeep::format::pack::{BlobCompression, BlobKind};
    let repo_dir = work.join("index-repo");
    let repo = snapkeep::Repository::init_local(&repo_dir, &snapkeep::InitOptions::default())?;
    say(&format!("writing an index of {n} entries"));
    let mut rng = Rng(0x1de7_0001);
    let packs: Vec<snapkeep::PackId> = (0..(n / 128).max(1))
        .map(|i| snapkeep::PackId::of(&i.to_le_bytes()))
        .collect();
    let mut entries = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    for i in 0..n {
        let mut id = [0u8; 32];
        rng.fill_random(&mut id);
        let pack = packs[usize::try_from(i / 128).unwrap_or(0) % packs.len()];
        entries.push((
            snapkeep::BlobId::from_bytes(id),
            BlobLocation {
                pack,
                kind: BlobKind::Data,
                compression: BlobCompression::Raw,
                offset: 8,
                length: 262_144,
                raw_length: 262_144,
            },
        ));
    }
    let bytes = index_file::encode(entries);
    let size = bytes.len();
    let id = snapkeep::IndexId::of(&bytes);
    repo.backend()
        .put(&snapkeep::format::keys::index(&id), &bytes)?;
    drop(bytes);
    drop_caches(false)?;
    let step = run_step(&repo_dir, &["list"])?;
    say(&format!(
        "open a repository with a {n}-entry index ({} MiB) and list it: {:.3} s, peak RSS {} MiB",
        size >> 20,
        step.seconds,
        step.rss_kib / 1024
    ));
    Ok(json!({
        "entries": n,
        "index_bytes": size,
        "seconds_including_process_start": step.seconds,
        "peak_rss_kib": step.rss_kib,
    }))
}
