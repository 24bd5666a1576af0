//! `snapkeep restore SNAPSHOT TARGET`: restore into a new or empty directory, or in place;
//! print what was written and the format stages' problems; with `--dry-run`, what would be
//! written and deleted.

use anyhow::{Context, Result};
use serde_json::json;

use snapkeep::{Repository, RestoreOptions, SnapshotId};

use crate::cli::args::RestoreArgs;
use crate::cli::env::Env;
use crate::cli::output::{human_bytes, plural, plural_of};

/// Restores `args.snapshot` into `args.target`; exit code 1 when the restored files fail a
/// format stage.
pub fn run(env: &Env, args: &RestoreArgs) -> Result<i32> {
    let opts = RestoreOptions {
        skip_owner: args.no_owner,
        in_place: args.in_place,
        delete: args.delete,
        force: args.force,
        stages: args.stages.parse()?,
    };
    let target = args.target.as_path();
    let (repo, id) = env.open_snapshot(&args.snapshot, &args.filter)?;
    if args.dry_run {
        return dry_run(env, &repo, &id, target, &opts);
    }
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
                "restored snapshot {id} into {}: {}, {}, {}, {} in {secs:.2}s",
                target.display(),
                plural(stats.files, "file"),
                plural_of(stats.dirs, "dir", "dirs"),
                plural(stats.symlinks, "symlink"),
                human_bytes(stats.bytes)
            ));
            if stats.unchanged + stats.deleted > 0 {
                env.say(&format!(
                    "in place: {} already identical, {} deleted",
                    plural(stats.unchanged, "file"),
                    plural_of(stats.deleted, "entry", "entries")
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

/// `--dry-run`: the paths on stdout (`+` new, `~` changed, `-` deleted), a summary on stderr.
fn dry_run(
    env: &Env,
    repo: &Repository,
    id: &SnapshotId,
    target: &std::path::Path,
    opts: &RestoreOptions,
) -> Result<i32> {
    let p = snapkeep::restore::preview(repo, id, target, opts, &snapkeep::NoProgress)
        .with_context(|| {
            format!(
                "dry run of restoring snapshot {id} into {}",
                target.display()
            )
        })?;
    env.print(
        || {
            json!({
                "dry_run": true,
                "id": id.to_string(),
                "target": target.display().to_string(),
                "in_place": p.in_place,
                "write": p.write.iter().map(|e| json!({
                    "path": e.path,
                    "type": e.kind,
                    "change": if e.new { "new" } else { "changed" },
                })).collect::<Vec<_>>(),
                "delete": p.delete,
                "unchanged": p.unchanged,
                "write_bytes": p.write_bytes,
                "delete_allowed": p.delete_allowed,
            })
        },
        || {
            for e in &p.write {
                println!("{} {}", if e.new { '+' } else { '~' }, e.path);
            }
            for d in &p.delete {
                println!("- {d}");
            }
            let new = p.write.iter().filter(|e| e.new).count();
            env.say(&format!(
                "dry run of snapshot {id} into {}: would write {} ({new} new, {} changed, {}), \
                 delete {}, keep {} unchanged; nothing was written",
                target.display(),
                p.write.len(),
                p.write.len() - new,
                human_bytes(p.write_bytes),
                p.delete.len(),
                p.unchanged
            ));
            if !p.delete.is_empty() && !p.delete_allowed {
                env.say(
                    "the restore would refuse to delete: the target is not the snapshot's \
                     source nor a directory of the same database layout; add --delete to allow it",
                );
            }
        },
    );
    Ok(0)
}
