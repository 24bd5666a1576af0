//! `snapkeep restore SNAPSHOT TARGET`: restore into a new or empty directory, or in place;
//! print what was written and the format stages' problems.

use anyhow::{Context, Result};
use serde_json::json;

use snapkeep::RestoreOptions;

use crate::cli::args::RestoreArgs;
use crate::cli::env::Env;
use crate::cli::output::human_bytes;

/// Restores `args.snapshot` into `args.target`; exit code 1 when the restored files fail a
/// format stage.
pub fn run(env: &Env, args: &RestoreArgs) -> Result<i32> {
    let opts = RestoreOptions {
        skip_owner: args.no_owner,
        in_place: args.in_place,
        force: args.force,
        stages: args.stages.parse()?,
    };
    let target = args.target.as_path();
    let (repo, id) = env.open_snapshot(&args.snapshot, &args.filter)?;
    let progress = env.progress().printing_warnings(!env.quiet);
    let stats = snapkeep::restore(&repo, &id, target, &opts, &progress)
        .with_context(|| format!("restore of snapshot {id} into {} failed", target.display()))?;
    progress.finish();
    let secs = stats.duration_ns as f64 / 1e9;
    env.print(
        || {
            json!({
                "id": id.to_string(),
                "target": target.display().to_string(),
                "files": stats.files,
                "dirs": stats.dirs,
                "symlinks": stats.symlinks,
                "bytes": stats.bytes,
                "data_bytes": stats.data_bytes,
                "unchanged": stats.unchanged,
                "deleted": stats.deleted,
                "stage_files": stats.stage_files,
                "stage_problems": stats.stage_problems,
                "duration_s": secs,
            })
        },
        || {
            env.say(&format!(
                "restored snapshot {id} into {}: {} files, {} dirs, {} symlinks, {} in {secs:.2}s",
                target.display(),
                stats.files,
                stats.dirs,
                stats.symlinks,
                human_bytes(stats.bytes)
            ));
            if stats.unchanged + stats.deleted > 0 {
                env.say(&format!(
                    "in place: {} files already identical, {} entries deleted",
                    stats.unchanged, stats.deleted
                ));
            }
            for p in &stats.stage_problems {
                println!("{p}");
            }
        },
    );
    // Like verify: the restore ran, but the result failed a format stage.
    Ok(i32::from(!stats.stage_problems.is_empty()))
}
