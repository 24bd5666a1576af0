//! `snapkeep snapshot DIR...`: check what the snapshot can refuse, open (or on first use
//! create) the repository, run the pre-hook and the snapshot, and print its record or id.
//! Exit code 5: the snapshot was saved, but some source entries could not be read.

use std::io::BufRead;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;

use snapkeep::backup::{BackupOutcome, FileChange, FileReport, Written};
use snapkeep::{BackupOptions, InitOptions, Repository};

use crate::cli::args::SnapshotArgs;
use crate::cli::env::Env;
use crate::cli::location::RepoLocation;
use crate::cli::output::{record_json, summary_line};
use crate::cli::usage_error;

/// The Argon2id parameters of a default repository's first key (`init --kdf`'s default).
const DEFAULT_KDF: &str = "auto";

/// The exit code of a snapshot that was saved without some entries it could not read.
pub const EXIT_UNREADABLE: i32 = 5;

/// The snapshot `--parent` names: an id (or prefix, or short id) of any snapshot, or
/// `latest`: the newest of this host (or `--host`) with exactly these source paths, told on
/// stderr; none is an error, never another host's or another directory's snapshot.
fn resolve_parent(
    env: &Env,
    repo: &Repository,
    spec: &str,
    host: Option<&str>,
    sources: &[PathBuf],
) -> Result<snapkeep::SnapshotId> {
    if spec.parse::<snapkeep::SnapshotSpec>()? != snapkeep::SnapshotSpec::Latest {
        return Ok(repo.resolve(spec)?);
    }
    let host = host.map_or_else(snapkeep::clock::hostname, str::to_owned);
    let mut paths: Vec<String> = sources
        .iter()
        .map(|s| {
            std::fs::canonicalize(s)
                .with_context(|| format!("cannot resolve source {}", s.display()))
                .map(|p| p.to_string_lossy().into_owned())
        })
        .collect::<Result<_>>()?;
    paths.sort();
    paths.dedup();
    let (recs, _) = repo.snapshots()?;
    let found = recs.iter().rev().find(|r| {
        let mut theirs = r.paths.clone();
        theirs.sort();
        theirs.dedup();
        r.host == host && theirs == paths
    });
    let Some(r) = found else {
        return Err(usage_error(format!(
            "--parent latest: {} has no snapshot of host '{host}' and {} {}; give the parent's \
             id, or drop --parent (the newest snapshot of this host and these paths is the \
             parent when there is one)",
            env.repo.display(),
            if paths.len() == 1 { "path" } else { "paths" },
            paths.join(" ")
        )));
    };
    env.say(&format!(
        "parent is snapshot {} ({}) of host {}, {}, taken {}",
        snapkeep::short_id(&r.id),
        r.id,
        r.host,
        r.paths.join(" "),
        snapkeep::clock::rfc3339(r.time_ns)
    ));
    Ok(r.id)
}

/// Snapshots the sources; prints the record (`--json`) or the new snapshot's id.
pub fn run(env: &Env, args: &SnapshotArgs, verbose: u8) -> Result<i32> {
    // Check everything the snapshot can refuse before a new repository is created.
    let sources = sources(args)?;
    let refs: Vec<&Path> = sources.iter().map(PathBuf::as_path).collect();
    check_sources(&refs)?;
    let tags = split_tags(&args.tags)?;
    let mut excludes = args.excludes.clone();
    for f in &args.exclude_file {
        excludes.extend(read_list(f, "--exclude-file", true)?);
    }
    snapkeep::backup::check_excludes(&excludes, &args.iexcludes)?;
    let stages: snapkeep::stage::StageSelection = args.stages.parse()?;
    if args.parent.is_some() && env.repo.is_fresh()? {
        return Err(usage_error(format!(
            "--parent names a snapshot, but there is no repository at {} yet",
            env.repo.display()
        )));
    }
    let repo = if args.dry_run {
        open_for_dry_run(env)?
    } else {
        open_or_create(env)?
    };
    let parent = args
        .parent
        .as_deref()
        .map(|p| resolve_parent(env, &repo, p, args.host.as_deref(), &sources))
        .transpose()?;
    let opts = BackupOptions {
        tags,
        excludes,
        iexcludes: args.iexcludes.clone(),
        host: args.host.clone(),
        parent,
        force_read: args.force_read,
        stages,
        pre_hook: args.pre_hook.clone().map(shell_hook),
        allow_inconsistent: args.allow_inconsistent,
        one_file_system: args.one_file_system,
        dry_run: args.dry_run,
        skip_if_unchanged: args.skip_if_unchanged,
        report: match verbose {
            0 => FileReport::None,
            1 => FileReport::Changed,
            _ => FileReport::All,
        },
        ..BackupOptions::default()
    };
    let progress = env.progress();
    let out = snapkeep::backup::snapshot_paths(&repo, &refs, &opts, &progress)
        .with_context(|| format!("snapshot of {} failed", shown(&sources)))?;
    progress.finish();
    report(env, &out, verbose);
    Ok(if out.unreadable.is_empty() {
        0
    } else {
        EXIT_UNREADABLE
    })
}

/// The sources: the positional ones, then those of each `--files-from` list.
fn sources(args: &SnapshotArgs) -> Result<Vec<PathBuf>> {
    let mut out = args.sources.clone();
    for f in &args.files_from {
        out.extend(
            read_list(f, "--files-from", false)?
                .into_iter()
                .map(PathBuf::from),
        );
    }
    if out.is_empty() {
        return Err(usage_error(
            "no source given: the --files-from lists are empty; name a directory to snapshot",
        ));
    }
    Ok(out)
}

/// The lines of a list file (`-`: stdin), without blank lines and `#` comments.
fn read_list(file: &Path, flag: &str, trim: bool) -> Result<Vec<String>> {
    let lines: Vec<String> = if file == Path::new("-") {
        std::io::stdin()
            .lock()
            .lines()
            .collect::<std::io::Result<_>>()
            .map_err(|e| usage_error(format!("{flag} -: cannot read stdin ({e})")))?
    } else {
        std::fs::read_to_string(file)
            .map_err(|e| {
                usage_error(format!(
                    "{flag} {}: cannot read it ({e}); give a readable text file",
                    file.display()
                ))
            })?
            .lines()
            .map(str::to_owned)
            .collect()
    };
    Ok(lines
        .into_iter()
        .map(|l| {
            let l = l.trim_end_matches('\r');
            // Patterns lose the blanks around them (as restic's exclude files do); a path
            // list keeps its lines exact, since a name may begin or end with a space.
            if trim { l.trim() } else { l }.to_owned()
        })
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect())
}

/// Each `--tag` value split on commas; an empty tag is refused.
fn split_tags(values: &[String]) -> Result<Vec<String>> {
    let mut tags: Vec<String> = Vec::new();
    for v in values {
        for t in v.split(',') {
            if t.trim().is_empty() {
                return Err(usage_error(format!(
                    "--tag '{v}' holds an empty tag; give non-empty tags separated by commas"
                )));
            }
            if !tags.iter().any(|x| x == t) {
                tags.push(t.to_owned());
            }
        }
    }
    Ok(tags)
}

/// Refuses a missing source, a single source that is not a directory, and sources that
/// cannot stand side by side (the same last name).
fn check_sources(sources: &[&Path]) -> Result<()> {
    let alone = sources.len() == 1;
    for source in sources {
        match std::fs::metadata(source) {
            Ok(m) if m.is_dir() || (!alone && m.is_file()) => {}
            Ok(_) if alone => {
                return Err(usage_error(format!(
                    "source {} is not a directory; snapshot takes a directory (or several sources)",
                    source.display()
                )));
            }
            Ok(_) => {
                return Err(usage_error(format!(
                    "source {} is neither a directory nor a regular file; give a directory or a file",
                    source.display()
                )));
            }
            Err(_) => {
                return Err(usage_error(format!(
                    "source {} does not exist or cannot be read; give an existing directory",
                    source.display()
                )));
            }
        }
    }
    snapkeep::backup::check_sources(sources)?;
    Ok(())
}

fn shown(sources: &[PathBuf]) -> String {
    sources
        .iter()
        .map(|s| s.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A dry run's repository: the one there is, or (none yet) an empty one in memory, so a
/// dry run creates nothing.
fn open_for_dry_run(env: &Env) -> Result<Repository> {
    // Only the default repository is one a real run would create; a dry run against it
    // before its first use runs against an empty repository in memory. An explicit location
    // that does not exist is the same error as for the real run.
    if !env.repo_origin.explicit() && env.repo.is_fresh()? {
        let backend = std::sync::Arc::new(snapkeep::backend::MemoryBackend::new());
        return Ok(Repository::init(backend, &InitOptions::default())?);
    }
    env.open()
}

/// Prints the outcome: the files `-v` asks for and the warnings on stderr, then the
/// document (`--json`) or the id.
fn report(env: &Env, out: &BackupOutcome, verbose: u8) {
    if verbose > 0 {
        report_files(env, out);
    }
    for w in &out.warnings {
        env.say(&format!("warning: {w}"));
    }
    if !out.unreadable.is_empty() {
        env.say(&format!(
            "snapkeep: {} {} could not be read and {} not in the snapshot (exit code 5)",
            out.unreadable.len(),
            if out.unreadable.len() == 1 {
                "entry"
            } else {
                "entries"
            },
            if out.unreadable.len() == 1 {
                "is"
            } else {
                "are"
            },
        ));
    }
    let unreadable: Vec<_> = out
        .unreadable
        .iter()
        .map(|u| {
            let mut v = json!({ "error": u.error });
            // The exact bytes as `path_hex` when the path is not UTF-8 (as `find` gives them).
            crate::cli::inspect::name_fields(&mut v, "path", u.path.as_os_str().as_bytes());
            v
        })
        .collect();
    let rec = &out.record;
    match out.written {
        Written::Committed => env.print(
            || {
                let mut v = record_json(rec);
                v["dry_run"] = json!(false);
                v["unchanged"] = json!(false);
                v["warnings"] = json!(out.warnings);
                v["unreadable"] = json!(unreadable);
                v
            },
            || {
                env.say(&summary_line(rec));
                println!("{}", rec.id);
            },
        ),
        Written::DryRun => env.print(
            || {
                let mut v = record_json(rec);
                v["id"] = serde_json::Value::Null;
                v["dry_run"] = json!(true);
                v["unchanged"] = json!(false);
                v["warnings"] = json!(out.warnings);
                v["unreadable"] = json!(unreadable);
                v
            },
            || println!("dry run, nothing written: {}", summary_line(rec)),
        ),
        Written::Unchanged => report_unchanged(env, out, &unreadable, false),
        Written::UnchangedDryRun => report_unchanged(env, out, &unreadable, true),
    }
}

/// `--skip-if-unchanged` found nothing new: the parent's id is the result.
fn report_unchanged(
    env: &Env,
    out: &BackupOutcome,
    unreadable: &[serde_json::Value],
    dry_run: bool,
) {
    let rec = &out.record;
    let parent = rec.parent.map(|p| p.to_string()).unwrap_or_default();
    env.print(
        || {
            json!({
                "unchanged": true,
                "id": null,
                "parent": parent,
                "dry_run": dry_run,
                "host": rec.host,
                "paths": rec.paths,
                "tags": rec.tags,
                "tree": rec.tree.to_string(),
                "warnings": out.warnings,
                "unreadable": unreadable,
            })
        },
        || {
            env.say(&format!(
                "snapkeep: nothing changed since snapshot {parent}; {} (--skip-if-unchanged)",
                if dry_run {
                    "the real run would write no snapshot (dry run)"
                } else {
                    "no snapshot written"
                }
            ));
            println!("{parent}");
        },
    );
}

/// One line per reported file, then the counts.
fn report_files(env: &Env, out: &BackupOutcome) {
    let mut counts = [0u64; 2];
    for (change, path) in &out.files {
        match change {
            FileChange::New => counts[0] += 1,
            FileChange::Modified => counts[1] += 1,
            FileChange::Unchanged => {}
        }
        env.say(&format!("{:<9} {}", change.as_str(), path.display()));
    }
    let s = &out.record.summary;
    let unchanged = s.files.saturating_sub(counts[0] + counts[1]);
    env.say(&format!(
        "files: {} new, {} modified, {unchanged} unchanged",
        counts[0], counts[1]
    ));
}

/// Opens the repository. Only the default location (no `--repo`, no `SNAPKEEP_REPO`) is
/// created, with default parameters, where there is none yet: a location the user named and
/// that holds no repository is an error naming it (a typo must not become a new repository).
fn open_or_create(env: &Env) -> Result<Repository> {
    if !env.repo_origin.explicit() && env.repo.is_fresh()? {
        // As `init` would: encrypted, with the password from the password sources.
        let opts = InitOptions {
            encryption: super::init::encryption(
                env,
                snapkeep::crypto::Scheme::DEFAULT.name(),
                &std::env::var("SNAPKEEP_KDF").unwrap_or_else(|_| DEFAULT_KDF.to_owned()),
            )?,
            ..InitOptions::default()
        };
        let repo = env.repo.init(&opts)?;
        env.say(&format!(
            "snapkeep: created a new encrypted repository at {} (default parameters; keep the password)",
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
