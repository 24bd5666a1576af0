//! `snapkeep snapshot DIR`: check what the snapshot can refuse, open (or on first use create)
//! the repository, run the pre-hook and the snapshot, and print its record or id.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;

use snapkeep::{BackupOptions, InitOptions, Repository};

use crate::cli::args::SnapshotArgs;
use crate::cli::env::Env;
use crate::cli::location::RepoLocation;
use crate::cli::output::{record_json, summary_line};
use crate::cli::usage_error;

/// Snapshots `args.source`; prints the record (`--json`) or the new snapshot's id.
pub fn run(env: &Env, args: &SnapshotArgs) -> Result<i32> {
    let source = args.source.as_path();
    // Check everything the snapshot can refuse before a new repository is created.
    check_source(source)?;
    snapkeep::backup::check_excludes(&args.excludes)?;
    let stages: snapkeep::stage::StageSelection = args.stages.parse()?;
    if args.parent.is_some() && env.repo.is_fresh()? {
        return Err(usage_error(format!(
            "--parent names a snapshot, but there is no repository at {} yet",
            env.repo.display()
        )));
    }
    let repo = open_or_create(env)?;
    let parent = args
        .parent
        .as_deref()
        .map(|p| repo.resolve(p))
        .transpose()?;
    let opts = BackupOptions {
        tags: args.tags.clone(),
        excludes: args.excludes.clone(),
        host: args.host.clone(),
        parent,
        force_read: args.force_read,
        stages,
        pre_hook: args.pre_hook.clone().map(shell_hook),
        allow_inconsistent: args.allow_inconsistent,
        ..BackupOptions::default()
    };
    let progress = env.progress();
    let out = snapkeep::snapshot(&repo, source, &opts, &progress)
        .with_context(|| format!("snapshot of {} failed", source.display()))?;
    progress.finish();
    for w in &out.warnings {
        env.say(&format!("warning: {w}"));
    }
    env.print(
        || {
            let mut v = record_json(&out.record);
            v["warnings"] = json!(out.warnings);
            v
        },
        || {
            env.say(&summary_line(&out.record));
            println!("{}", out.record.id);
        },
    );
    Ok(0)
}

/// Refuses a source that is not an existing directory.
fn check_source(source: &Path) -> Result<()> {
    match std::fs::metadata(source) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(usage_error(format!(
            "source {} is not a directory; snapshot takes a directory",
            source.display()
        ))),
        Err(_) => Err(usage_error(format!(
            "source {} does not exist or cannot be read; give an existing directory",
            source.display()
        ))),
    }
}

/// Opens the repository. Only the default location (no `--repo`, no `SNAPKEEP_REPO`) is
/// created, with default parameters, where there is none yet: a location the user named and
/// that holds no repository is an error naming it (a typo must not become a new repository).
fn open_or_create(env: &Env) -> Result<Repository> {
    if !env.repo_origin.explicit() && env.repo.is_fresh()? {
        let repo = env.repo.init(&InitOptions::default())?;
        env.say(&format!(
            "snapkeep: created a new repository at {} (default parameters)",
            env.repo.display()
        ));
        if matches!(env.repo, RepoLocation::Local(_)) {
            return Ok(repo);
        }
        // A remote repository is used through its cache, which needs the new config's id.
    }
    env.open()
}

/// Runs `cmd` through the shell; a non-zero exit is an error carrying its stderr.
fn shell_hook(cmd: String) -> snapkeep::backup::PreHook {
    snapkeep::backup::PreHook(std::sync::Arc::new(move || {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("cannot run '{cmd}': {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "'{cmd}' exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }))
}
