//! `snapkeep repair index` (rebuild the index from the pack trailers) and `snapkeep repair
//! snapshots` (salvage the snapshots a lost or damaged pack broke).

use anyhow::Result;
use serde_json::{Value, json};

use snapkeep::repair::{SnapshotRepairOptions, SnapshotRepairStatus, SnapshotsRepairReport};

use crate::cli::args::RepairWhat;
use crate::cli::env::Env;

/// Runs the repair `what` names.
pub fn run(env: &Env, what: &RepairWhat) -> Result<i32> {
    match *what {
        RepairWhat::Index { dry_run } => index(env, dry_run),
        RepairWhat::Snapshots {
            read_data,
            forget,
            dry_run,
        } => snapshots(
            env,
            SnapshotRepairOptions {
                read_data,
                forget,
                dry_run,
            },
        ),
    }
}

fn index(env: &Env, dry_run: bool) -> Result<i32> {
    let repo = env.open()?;
    let (plan, new) = snapkeep::repair::rebuild_index(&repo, dry_run)?;
    env.print(
        || {
            let damaged: Vec<_> = plan
                .damaged_packs
                .iter()
                .map(|(k, p)| json!({"object": k, "problem": p}))
                .collect();
            json!({
                "dry_run": dry_run,
                "packs_read": plan.packs_read,
                "entries": plan.entries.len(),
                "damaged_packs": damaged,
                "replaced_index_files": plan.old_index_files,
                "index": new.map(|i| i.to_string()),
            })
        },
        || {
            for (k, p) in &plan.damaged_packs {
                env.say(&format!("warning: {k}: {p}"));
            }
            env.say(&format!(
                "{} index from {} packs: {} entries, replacing {} index files",
                if dry_run { "would rebuild" } else { "rebuilt" },
                plan.packs_read,
                plan.entries.len(),
                plan.old_index_files.len()
            ));
        },
    );
    Ok(0)
}

fn snapshots(env: &Env, opts: SnapshotRepairOptions) -> Result<i32> {
    let repo = env.open()?;
    let r = snapkeep::repair::repair_snapshots(&repo, &opts)?;
    let (snaps, unreadable) = report_json(&r);
    env.print(
        || {
            json!({
                "dry_run": opts.dry_run,
                "index_rebuilt": r.index_rebuilt,
                "snapshots": snaps,
                "unreadable_records": unreadable,
            })
        },
        || print_human(env, opts, r.index_rebuilt, &snaps, &unreadable),
    );
    Ok(0)
}

/// The snapshots' repairs and the unreadable records as JSON objects.
fn report_json(r: &SnapshotsRepairReport) -> (Vec<Value>, Vec<Value>) {
    let snaps = r
        .snapshots
        .iter()
        .map(|s| {
            let (status, new_id) = match &s.status {
                SnapshotRepairStatus::Intact => ("intact", None),
                SnapshotRepairStatus::Repaired { new_id } => {
                    ("repaired", new_id.map(|i| i.to_string()))
                }
                SnapshotRepairStatus::Lost => ("lost", None),
            };
            json!({
                "id": s.id.to_string(),
                "status": status,
                "new_id": new_id,
                "dropped_files": s.dropped_files,
                "emptied_dirs": s.emptied_dirs,
                "forgotten": s.forgotten,
            })
        })
        .collect();
    let unreadable = r
        .unreadable_records
        .iter()
        .map(|(id, e)| json!({"id": id.to_string(), "problem": e}))
        .collect();
    (snaps, unreadable)
}

/// Each damaged snapshot with what it lost, each unreadable record, and a summary.
fn print_human(
    env: &Env,
    opts: SnapshotRepairOptions,
    index_rebuilt: bool,
    snaps: &[Value],
    unreadable: &[Value],
) {
    if index_rebuilt {
        env.say("the index named packs that are gone: rebuilt it from the packs first");
    }
    let would = if opts.dry_run { "would be " } else { "" };
    for s in snaps {
        let status = s["status"].as_str().unwrap_or_default();
        if status == "intact" {
            continue;
        }
        println!(
            "snapshot {} {would}{status}{}",
            s["id"].as_str().unwrap_or_default(),
            s["new_id"]
                .as_str()
                .map(|n| format!(" as {n}"))
                .unwrap_or_default()
        );
        for f in s["dropped_files"].as_array().into_iter().flatten() {
            println!("  dropped file {}", f.as_str().unwrap_or_default());
        }
        for d in s["emptied_dirs"].as_array().into_iter().flatten() {
            println!("  emptied directory {}", d.as_str().unwrap_or_default());
        }
    }
    for u in unreadable {
        println!(
            "record {} cannot be read: {}{}",
            u["id"].as_str().unwrap_or_default(),
            u["problem"].as_str().unwrap_or_default(),
            if opts.forget && !opts.dry_run {
                " (removed)"
            } else {
                ""
            }
        );
    }
    let broken = snaps.iter().filter(|s| s["status"] != "intact").count();
    env.say(&format!(
        "{} snapshots checked, {broken} damaged{}",
        snaps.len(),
        if opts.forget || opts.dry_run || broken == 0 {
            ""
        } else {
            "; the damaged originals stay (remove them with --forget)"
        }
    ));
}
