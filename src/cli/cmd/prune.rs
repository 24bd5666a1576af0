//! `snapkeep prune`: reclaim the space of data no snapshot needs; the report as JSON or as
//! four lines (also printed by `forget --prune`).

use anyhow::Result;
use serde_json::{Value, json};

use snapkeep::prune::PruneReport;

use crate::cli::args::GcArgs;
use crate::cli::env::Env;
use crate::cli::output::human_bytes;

/// Prunes the repository (or with `dry_run` only tells what a prune would do).
pub fn run(env: &Env, gc: &GcArgs, dry_run: bool) -> Result<i32> {
    let repo = env.open()?;
    let report = snapkeep::prune::prune(&repo, &gc.options(dry_run)?)?;
    env.print(|| prune_json(&report), || print_prune(env, &report));
    Ok(0)
}

/// The report as the documented JSON object.
pub fn prune_json(r: &PruneReport) -> Value {
    json!({
        "dry_run": r.dry_run,
        "snapshots": r.snapshots,
        "reachable_blobs": r.reachable_blobs,
        "packs_before": r.packs_before,
        "pack_bytes_before": r.pack_bytes_before,
        "marked_packs": r.marked_packs,
        "marked_bytes": r.marked_bytes,
        "repacked_packs": r.repacked_packs,
        "moved_blobs": r.moved_blobs,
        "moved_bytes": r.moved_bytes,
        "new_packs": r.new_packs,
        "deleted_packs": r.deleted_packs,
        "deleted_bytes": r.deleted_bytes,
        "rescued_packs": r.rescued_packs,
        "unmarked_packs": r.unmarked_packs,
        "waiting_packs": r.waiting_packs,
        "waiting_bytes": r.waiting_bytes,
        "index_files_before": r.index_files_before,
        "index_files_after": r.index_files_after,
        "unused_bytes_after": r.unused_bytes_after,
        "packs_after": r.packs_after,
        "pack_bytes_after": r.pack_bytes_after,
        "staging_files_removed": r.staging_files_removed,
        "staging_bytes_removed": r.staging_bytes_removed,
        "notes": r.notes,
    })
}

/// The notes on stderr, the report in four lines on stdout.
pub fn print_prune(env: &Env, r: &PruneReport) {
    for n in &r.notes {
        env.say(n);
    }
    let would = if r.dry_run { "would " } else { "" };
    println!(
        "{} snapshots, {} reachable blobs, {} packs ({}) before",
        r.snapshots,
        r.reachable_blobs,
        r.packs_before,
        human_bytes(r.pack_bytes_before)
    );
    println!(
        "{would}mark {} packs ({}), {would}repack {} packs moving {} blobs ({}) into {} new packs",
        r.marked_packs,
        human_bytes(r.marked_bytes),
        r.repacked_packs,
        r.moved_blobs,
        human_bytes(r.moved_bytes),
        r.new_packs
    );
    println!(
        "{would}delete {} packs ({}); rescued {}, unmarked {}; {} packs ({}) wait for their grace period or running jobs",
        r.deleted_packs,
        human_bytes(r.deleted_bytes),
        r.rescued_packs,
        r.unmarked_packs,
        r.waiting_packs,
        human_bytes(r.waiting_bytes)
    );
    println!(
        "{} packs ({}) after, {} unused in kept packs",
        r.packs_after,
        human_bytes(r.pack_bytes_after),
        human_bytes(r.unused_bytes_after)
    );
}
