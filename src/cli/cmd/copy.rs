//! `snapkeep copy --from-repo SRC [ID...]`: copy snapshots of another repository into this
//! one (its own password options), skipping what is already here.

use anyhow::Result;
use serde_json::json;

use snapkeep::SnapshotId;
use snapkeep::select::short_id;

use crate::cli::args::CopyArgs;
use crate::cli::env::Env;
use crate::cli::output::human_bytes;
use crate::cli::password::PasswordSource;

/// Copies the chosen snapshots; prints what was copied and what was already here.
pub fn run(env: &Env, args: &CopyArgs) -> Result<i32> {
    let password = PasswordSource {
        file: args.from_password_file.clone(),
        command: args.from_password_command.clone(),
        from: true,
    };
    let (src, src_at) = env.open_other(args.from_repo.clone(), &password)?;
    let dst = env.open()?;
    let ids: Vec<SnapshotId> = if args.snapshots.is_empty() {
        let filter = crate::cli::env::snapshot_filter(&args.filter)?;
        let (records, bad) = src.snapshots()?;
        for (id, e) in &bad {
            eprintln!(
                "warning: snapshot record {id} of {src_at} cannot be read, so it is not copied: {e}"
            );
        }
        records
            .iter()
            .filter(|r| filter.matches(r))
            .map(|r| r.id)
            .collect()
    } else {
        args.snapshots
            .iter()
            .map(|s| env.resolve(&src, s, &args.filter))
            .collect::<Result<_>>()?
    };
    let progress = env.progress();
    let report = snapkeep::copy_snapshots(&src, &dst, &ids, &progress)?;
    progress.finish();
    let pairs = |v: &[(SnapshotId, SnapshotId)]| {
        v.iter()
            .map(|(from, to)| json!({"source": from.to_string(), "snapshot": to.to_string()}))
            .collect::<Vec<_>>()
    };
    env.print(
        || {
            json!({
                "from": src_at,
                "copied": pairs(&report.copied),
                "skipped": pairs(&report.skipped),
                "blobs_stored": report.blobs_stored,
                "bytes_stored": report.bytes_stored,
                "stored_bytes": report.stored_bytes,
            })
        },
        || {
            for (from, to) in &report.skipped {
                env.say(&format!(
                    "snapshot {} of {src_at} is here already as {}",
                    short_id(from),
                    short_id(to)
                ));
            }
            for (from, to) in &report.copied {
                env.say(&format!(
                    "copied snapshot {} of {src_at} as {}",
                    short_id(from),
                    short_id(to)
                ));
            }
            env.say(&format!(
                "{} copied, {} here already; {} blobs new here ({}), {} written",
                report.copied.len(),
                report.skipped.len(),
                report.blobs_stored,
                human_bytes(report.bytes_stored),
                human_bytes(report.stored_bytes)
            ));
        },
    );
    Ok(0)
}
