//! Command-line interface. Output rules: with `--json`, stdout holds exactly one JSON
//! document; without it, stdout holds the command's result (a snapshot id, the snapshot
//! table, verify findings) and everything else (messages, warnings, progress) goes to stderr.
//! Exit codes: 0 ok, 1 verify found problems, 2 usage or input error, 3 repository locked,
//! 4 any other failure.

mod bench;
mod inspect;
mod location;
mod output;
mod progress;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use clap::{Parser, Subcommand};
use serde_json::json;

use snapkeep::chunker::ChunkerParams;
use snapkeep::{
    BackupOptions, Compression, InitOptions, Repository, RestoreOptions, VerifyOptions,
};

use self::output::{record_json, summary_line};
use self::progress::CliProgress;

const EXAMPLES: &str = "Examples:
  snapkeep snapshot ./data                     snapshot into the default repository
  snapkeep --repo /backups/r init --chunk-avg 256KiB --compression zstd:1
  snapkeep --repo /backups/r snapshot /var/lib/db --tag hourly --exclude '*.tmp'
  snapkeep --repo /backups/r list --json
  snapkeep --repo /backups/r restore latest /restore/here
  snapkeep --repo /backups/r verify --read-data
  snapkeep --repo s3://bucket/prefix snapshot /var/lib/db   (AWS_* variables configure S3)";

#[derive(Parser, Debug)]
#[command(name = "snapkeep", version, about = "Content-addressed, incremental snapshots of database data directories", after_help = EXAMPLES)]
struct Cli {
    /// Repository: a path (default: $XDG_DATA_HOME/snapkeep/repo) or s3://bucket/prefix
    /// (configured by AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
    /// AWS_ALLOW_HTTP).
    #[arg(long, global = true, env = "SNAPKEEP_REPO")]
    repo: Option<PathBuf>,
    /// At the end, print on stderr one JSON line with the requests sent to an S3 repository
    /// (by kind), the retries and the cache hits.
    #[arg(long, global = true)]
    show_requests: bool,
    /// Print one JSON document on stdout and nothing else there.
    #[arg(long, global = true)]
    json: bool,
    /// No progress bar and no messages on stderr (errors still go there).
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Progress on stderr: auto (a bar on a terminal), json (one JSON event per line), none.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    progress: progress::ProgressMode,
    #[command(subcommand)]
    command: Command,
}

/// Options shared by `prune` and `forget --prune`.
#[derive(clap::Args, Debug)]
struct GcArgs {
    /// How long unused packs stay marked before a later prune deletes them (0: in this run,
    /// when no snapshot, restore or verify is running).
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    grace: String,
    /// Unused space tolerated in kept packs before they are repacked: a percentage of the
    /// repository (5%), a size (200MiB), or 'unlimited'.
    #[arg(long, default_value = "5%", value_name = "LIMIT")]
    max_unused: String,
}

impl GcArgs {
    fn options(&self, dry_run: bool) -> Result<snapkeep::prune::PruneOptions> {
        Ok(snapkeep::prune::PruneOptions {
            grace: snapkeep::units::parse_interval(&self.grace)?,
            max_unused: snapkeep::prune::MaxUnused::parse(&self.max_unused)?,
            dry_run,
            ..snapkeep::prune::PruneOptions::default()
        })
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a repository.
    Init {
        /// Average chunk size (power of two, 4KiB..4MiB); min = avg/2, max = avg*4.
        #[arg(long, value_parser = parse_size)]
        chunk_avg: Option<u64>,
        /// Compression of new data: off, zstd or zstd:LEVEL.
        #[arg(long, default_value = "zstd:1")]
        compression: String,
        /// Target pack size (1MiB..1GiB).
        #[arg(long, value_parser = parse_size)]
        pack_size: Option<u64>,
    },
    /// Snapshot a directory (creates the repository on first use when the path is new).
    Snapshot {
        /// The directory to snapshot.
        source: PathBuf,
        /// Tag to record (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Glob of names or relative paths to leave out (repeatable).
        #[arg(long = "exclude")]
        excludes: Vec<String>,
        /// Host name to record instead of this machine's.
        #[arg(long)]
        host: Option<String>,
        /// Parent snapshot for change detection (default: latest of this host and path).
        #[arg(long)]
        parent: Option<String>,
        /// Read every file, even those whose metadata is unchanged since the parent.
        #[arg(long)]
        force_read: bool,
        /// Verification stages on captured files: auto (by detected layout), none, or a
        /// comma-separated list (files, alopex).
        #[arg(long, default_value = "auto")]
        stages: String,
        /// Shell command run before capture (e.g. the database's checkpoint); a non-zero
        /// exit aborts the snapshot and shows its stderr.
        #[arg(long)]
        pre_hook: Option<String>,
        /// Commit even if a file still fails a format stage after recaptures (flagged).
        #[arg(long)]
        allow_inconsistent: bool,
    },
    /// List snapshots, oldest first.
    List,
    /// List the entries of a snapshot below PATH (recursively).
    Ls {
        /// Snapshot id, unique id prefix, or 'latest'.
        snapshot: String,
        /// Directory inside the snapshot (default: its root).
        path: Option<String>,
    },
    /// Show what changed between two snapshots.
    Diff {
        /// The older snapshot.
        from: String,
        /// The newer snapshot.
        to: String,
    },
    /// Show one snapshot's record and summary.
    Show {
        /// Snapshot id, unique id prefix, or 'latest'.
        snapshot: String,
    },
    /// Sizes, dedup and compression ratios, chunk and pack counts, reclaimable bytes.
    Stats {
        /// Only this snapshot (default: the whole repository).
        snapshot: Option<String>,
    },
    /// Add or remove tags of a snapshot.
    Tag {
        /// Snapshot id, unique id prefix, or 'latest'.
        snapshot: String,
        /// Tag to add (repeatable).
        #[arg(long = "add")]
        add: Vec<String>,
        /// Tag to remove (repeatable).
        #[arg(long = "remove")]
        remove: Vec<String>,
    },
    /// Forget snapshots by policy or by id: decide (the plan, with a reason for each kept
    /// snapshot), then remove the forgotten snapshots' records. Their data stays stored.
    Forget {
        /// Snapshots to forget explicitly (id, prefix or 'latest').
        ids: Vec<String>,
        /// Keep the N newest snapshots of each group.
        #[arg(long)]
        keep_last: Option<u32>,
        /// Keep the newest snapshot of each of the last N hours.
        #[arg(long)]
        keep_hourly: Option<u32>,
        /// Keep the newest snapshot of each of the last N days.
        #[arg(long)]
        keep_daily: Option<u32>,
        /// Keep the newest snapshot of each of the last N ISO weeks.
        #[arg(long)]
        keep_weekly: Option<u32>,
        /// Keep the newest snapshot of each of the last N months.
        #[arg(long)]
        keep_monthly: Option<u32>,
        /// Keep the newest snapshot of each of the last N years.
        #[arg(long)]
        keep_yearly: Option<u32>,
        /// Keep every snapshot newer than this (e.g. 36h, 7d, 2w, 1y2m).
        #[arg(long)]
        keep_within: Option<String>,
        /// Keep snapshots with this tag (repeatable).
        #[arg(long = "keep-tag")]
        keep_tags: Vec<String>,
        /// Group snapshots by these fields before applying the policy.
        #[arg(long, default_value = "host,paths")]
        group_by: String,
        /// Print the plan without removing anything.
        #[arg(long)]
        dry_run: bool,
        /// Run a prune after forgetting.
        #[arg(long)]
        prune: bool,
        #[command(flatten)]
        gc: GcArgs,
    },
    /// Reclaim the space of data no snapshot needs. Never blocks a running snapshot: unused
    /// packs are first marked and deleted by a later prune after the grace period.
    Prune {
        #[command(flatten)]
        gc: GcArgs,
        /// Print what would be marked, repacked and deleted, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove stale locks (of processes that are gone, or without a heartbeat for 10 min).
    Unlock {
        /// Remove every lock, also those of running processes (only when you know none runs).
        #[arg(long)]
        remove_all: bool,
    },
    /// Print a shell completion script.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Restore a snapshot into a new or empty directory.
    Restore {
        /// Snapshot id, unique id prefix, or 'latest'.
        snapshot: String,
        /// Target directory (must not exist or be empty, unless --in-place).
        target: PathBuf,
        /// Do not restore file owners even as root.
        #[arg(long)]
        no_owner: bool,
        /// Restore into an existing (database) directory: rewrite only files that differ,
        /// delete what the snapshot lacks, never touch the lock file or .lifecycle/.
        #[arg(long)]
        in_place: bool,
        /// With --in-place: proceed even while a process holds the database's lock.
        #[arg(long, requires = "in_place")]
        force: bool,
        /// Format stages run on the restored files: auto, none, or a list (files,alopex).
        #[arg(long, default_value = "auto")]
        stages: String,
    },
    /// Check the repository: structure always, every byte with --read-data.
    Verify {
        /// Only this snapshot (id, prefix or 'latest').
        snapshot: Option<String>,
        /// Read every pack, re-hash every chunk, recompute every file's CRC32, run the
        /// format stages on the stored files.
        #[arg(long)]
        read_data: bool,
        /// Read only part of the data: N/M (part N of M) or P% (a random P percent of packs).
        #[arg(long, value_name = "N/M|P%")]
        read_data_subset: Option<String>,
        /// Format stages with --read-data: auto (by layout), none, or a list (files,alopex).
        #[arg(long, default_value = "auto")]
        stages: String,
    },
    /// Measure snapshot, no-change snapshot, change + snapshot, restore and verify on a
    /// generated database-like directory (or DIR), against a plain read of the same files.
    Bench {
        /// Directory to measure instead of a generated one (it is not modified).
        dir: Option<PathBuf>,
        /// Size of the generated dataset.
        #[arg(long, value_parser = parse_size, default_value = "1GiB")]
        size: u64,
        /// Drop the page cache before every step (root only).
        #[arg(long)]
        cold: bool,
        /// Keep the temporary dataset, repository and restore.
        #[arg(long)]
        keep: bool,
        /// Also time opening a repository whose index holds this many chunks (e.g. 10000000).
        #[arg(long, default_value_t = 0)]
        index_entries: u64,
        /// Also grow the repository to N snapshots (a churn round before each), forget all
        /// but 10, and time prune without and with repacking (e.g. 50; generated data only).
        #[arg(long, default_value_t = 0)]
        prune_snapshots: u64,
    },
    /// Repair repository metadata.
    Repair {
        #[command(subcommand)]
        what: RepairWhat,
    },
}

#[derive(Subcommand, Debug)]
enum RepairWhat {
    /// Rebuild the index from the pack trailers.
    Index {
        /// Show what would be written without changing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Salvage snapshots that a lost or damaged pack broke: each gets a repaired copy (tag
    /// 'repaired') without the files whose data is gone; a directory whose tree is gone
    /// becomes empty. Rebuilds the index first when it names lost packs.
    Snapshots {
        /// Also read and hash-check every chunk (finds damaged, not only missing, data).
        #[arg(long)]
        read_data: bool,
        /// Remove the damaged originals (and unreadable or lost records) after the repair.
        #[arg(long)]
        forget: bool,
        /// Show what would be repaired without changing anything.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Runs the CLI and returns the process exit code.
pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let mut location = None;
    let result = dispatch(&cli, &mut location);
    bench::report_rss_if_asked();
    if cli.show_requests
        && let Some(loc) = &location
    {
        eprintln!("{}", json!({ "requests": loc.repo.requests_json() }));
    }
    match result {
        Ok(code) => code,
        Err(e) => {
            let code = exit_code(&e);
            if cli.json {
                println!("{}", json!({ "error": chain(&e), "exit_code": code }));
            }
            eprintln!("snapkeep: error: {}", chain(&e));
            code
        }
    }
}

/// The error and its causes, skipping a cause whose text the message before already holds
/// (our errors name their cause in their own sentence).
fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn exit_code(e: &anyhow::Error) -> i32 {
    match e.downcast_ref::<snapkeep::Error>() {
        Some(se) if se.is_input_error() => 2,
        Some(snapkeep::Error::Locked(_) | snapkeep::Error::Conflict(_)) => 3,
        _ if e.downcast_ref::<UsageError>().is_some() => 2,
        _ => 4,
    }
}

#[derive(Debug)]
struct UsageError(String);
impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for UsageError {}

fn parse_size(s: &str) -> std::result::Result<u64, String> {
    snapkeep::units::parse_size(s).map_err(|e| e.to_string())
}

struct Env {
    json: bool,
    quiet: bool,
    progress: progress::ProgressMode,
    repo: location::RepoLocation,
}

impl Env {
    fn say(&self, msg: &str) {
        if !self.quiet {
            eprintln!("{msg}");
        }
    }

    fn progress(&self) -> CliProgress {
        let draw = !self.quiet
            && self.progress == progress::ProgressMode::Auto
            && std::io::stderr().is_terminal();
        CliProgress::new(draw, self.progress == progress::ProgressMode::Json)
    }

    fn open(&self) -> Result<Repository> {
        self.repo.open()
    }
}

fn repo_path(cli: &Cli) -> Result<PathBuf> {
    match &cli.repo {
        Some(p) if !p.as_os_str().is_empty() => Ok(p.clone()),
        _ => snapkeep::repository::default_repo_path().ok_or_else(|| {
            anyhow!(UsageError(
                "no repository given and no home directory to put the default in; pass --repo PATH or set SNAPKEEP_REPO".into()
            ))
        }),
    }
}

fn dispatch(cli: &Cli, location: &mut Option<Env>) -> Result<i32> {
    let env: &Env = location.insert(Env {
        json: cli.json,
        quiet: cli.quiet,
        progress: cli.progress,
        repo: location::RepoLocation::new(repo_path(cli)?)?,
    });
    match &cli.command {
        Command::Init {
            chunk_avg,
            compression,
            pack_size,
        } => cmd_init(env, *chunk_avg, compression, *pack_size),
        Command::Snapshot {
            source,
            tags,
            excludes,
            host,
            parent,
            force_read,
            stages,
            pre_hook,
            allow_inconsistent,
        } => cmd_snapshot(
            env,
            source,
            &SnapshotArgs {
                tags,
                excludes,
                host: host.as_deref(),
                parent: parent.as_deref(),
                force_read: *force_read,
                stages,
                pre_hook: pre_hook.as_deref(),
                allow_inconsistent: *allow_inconsistent,
            },
        ),
        Command::List => cmd_list(env),
        Command::Ls { snapshot, path } => {
            let repo = env.open()?;
            let id = repo.resolve(snapshot)?;
            let entries = inspect::ls(&repo, &id, path.as_deref().unwrap_or("/"))?;
            if env.json {
                println!("{}", serde_json::Value::Array(entries));
            } else {
                for e in &entries {
                    println!("{}", inspect::ls_line(e));
                }
            }
            Ok(0)
        }
        Command::Diff { from, to } => {
            let repo = env.open()?;
            let (a, b) = (repo.resolve(from)?, repo.resolve(to)?);
            let d = inspect::diff(&repo, &a, &b)?;
            if env.json {
                println!("{d}");
            } else {
                for (key, sign) in [
                    ("added", "+"),
                    ("removed", "-"),
                    ("modified", "M"),
                    ("type_changed", "T"),
                    ("metadata_changed", "U"),
                ] {
                    for e in d[key].as_array().into_iter().flatten() {
                        println!("{sign}    {}", e["path"].as_str().unwrap_or_default());
                    }
                }
            }
            Ok(0)
        }
        Command::Show { snapshot } => {
            let repo = env.open()?;
            let rec = repo.load_snapshot(&repo.resolve(snapshot)?)?;
            let v = record_json(&rec);
            if env.json {
                println!("{v}");
            } else if let Some(obj) = v.as_object() {
                for (k, val) in obj {
                    println!("{k:>20}: {val}");
                }
            }
            Ok(0)
        }
        Command::Stats { snapshot } => {
            let repo = env.open()?;
            let id = snapshot.as_deref().map(|s| repo.resolve(s)).transpose()?;
            let v = inspect::stats(&repo, id.as_ref())?;
            if env.json {
                println!("{v}");
            } else if let Some(obj) = v.as_object() {
                for (k, val) in obj {
                    println!("{k:>22}: {val}");
                }
            }
            Ok(0)
        }
        Command::Tag {
            snapshot,
            add,
            remove,
        } => {
            if add.is_empty() && remove.is_empty() {
                return Err(anyhow!(UsageError(
                    "tag needs --add TAG or --remove TAG".into()
                )));
            }
            let repo = env.open()?;
            let rec = repo.retag(&repo.resolve(snapshot)?, add, remove)?;
            if env.json {
                println!("{}", record_json(&rec));
            } else {
                env.say(&format!("snapshot {} tags: {}", rec.id, rec.tags.join(",")));
            }
            Ok(0)
        }
        Command::Forget {
            ids,
            keep_last,
            keep_hourly,
            keep_daily,
            keep_weekly,
            keep_monthly,
            keep_yearly,
            keep_within,
            keep_tags,
            group_by,
            dry_run,
            prune,
            gc,
        } => {
            let gc_opts = if *prune {
                Some(gc.options(*dry_run)?)
            } else {
                None
            };
            let policy = snapkeep::retention::RetentionPolicy {
                keep_last: *keep_last,
                keep_hourly: *keep_hourly,
                keep_daily: *keep_daily,
                keep_weekly: *keep_weekly,
                keep_monthly: *keep_monthly,
                keep_yearly: *keep_yearly,
                keep_within: keep_within
                    .as_deref()
                    .map(snapkeep::retention::parse_duration)
                    .transpose()?,
                keep_tags: keep_tags.clone(),
            };
            cmd_forget(env, ids, &policy, group_by, *dry_run, gc_opts.as_ref())
        }
        Command::Prune { gc, dry_run } => {
            let repo = env.open()?;
            let report = snapkeep::prune::prune(&repo, &gc.options(*dry_run)?)?;
            if env.json {
                println!("{}", prune_json(&report));
            } else {
                print_prune(env, &report);
            }
            Ok(0)
        }
        Command::Unlock { remove_all } => {
            let repo = env.open()?;
            let (notes, live) = snapkeep::lock::remove_stale(
                repo.backend().as_ref(),
                snapkeep::lock::STALE_AFTER,
                *remove_all,
            )?;
            if env.json {
                println!(
                    "{}",
                    json!({
                        "removed": notes,
                        "remaining": live.iter().map(|l| json!({
                            "key": l.key,
                            "purpose": l.record.as_ref().map(|r| r.purpose.clone()),
                            "host": l.record.as_ref().map(|r| r.host.clone()),
                            "pid": l.record.as_ref().map(|r| r.pid),
                        })).collect::<Vec<_>>(),
                    })
                );
            } else {
                for n in &notes {
                    println!("{n}");
                }
                for l in &live {
                    if let Some(r) = &l.record {
                        println!(
                            "kept {} of {} (pid {} on {}): still running",
                            l.key, r.purpose, r.pid, r.host
                        );
                    }
                }
                env.say(&format!(
                    "removed {} locks, {} remain",
                    notes.len(),
                    live.len()
                ));
            }
            Ok(0)
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "snapkeep",
                &mut std::io::stdout(),
            );
            Ok(0)
        }
        Command::Restore {
            snapshot,
            target,
            no_owner,
            in_place,
            force,
            stages,
        } => cmd_restore(
            env,
            snapshot,
            target,
            &RestoreOptions {
                skip_owner: *no_owner,
                in_place: *in_place,
                force: *force,
                stages: stages.parse()?,
            },
        ),
        Command::Verify {
            snapshot,
            read_data,
            read_data_subset,
            stages,
        } => cmd_verify(
            env,
            snapshot.as_deref(),
            *read_data,
            read_data_subset.as_deref(),
            stages,
        ),
        Command::Repair {
            what: RepairWhat::Index { dry_run },
        } => cmd_repair_index(env, *dry_run),
        Command::Repair {
            what:
                RepairWhat::Snapshots {
                    read_data,
                    forget,
                    dry_run,
                },
        } => cmd_repair_snapshots(
            env,
            snapkeep::repair::SnapshotRepairOptions {
                read_data: *read_data,
                forget: *forget,
                dry_run: *dry_run,
            },
        ),
        Command::Bench {
            dir,
            size,
            cold,
            keep,
            index_entries,
            prune_snapshots,
        } => {
            let report = bench::run(
                &bench::BenchArgs {
                    dir: dir.clone(),
                    size: *size,
                    cold: *cold,
                    keep: *keep,
                    index_entries: *index_entries,
                    prune_snapshots: *prune_snapshots,
                },
                &|m| env.say(m),
            )?;
            if env.json {
                println!("{report}");
            }
            Ok(0)
        }
    }
}

fn cmd_init(
    env: &Env,
    chunk_avg: Option<u64>,
    compression: &str,
    pack_size: Option<u64>,
) -> Result<i32> {
    let mut opts = InitOptions::default();
    if let Some(avg) = chunk_avg {
        let avg = u32::try_from(avg)
            .map_err(|_| UsageError(format!("--chunk-avg {avg} is too large")))?;
        opts.chunker = ChunkerParams::with_avg(avg)?;
    }
    opts.compression = compression.parse::<Compression>()?;
    if let Some(ps) = pack_size {
        opts.pack_size = u32::try_from(ps)
            .ok()
            .filter(|&p| (1 << 20..=1 << 30).contains(&p))
            .ok_or_else(|| UsageError(format!("--pack-size {ps} must be between 1MiB and 1GiB")))?;
    }
    let repo = env.repo.init(&opts)?;
    let c = repo.config();
    if env.json {
        println!(
            "{}",
            json!({
                "repository": env.repo.display(),
                "id": hex::encode(c.id),
                "version": c.version,
                "chunker": {"min": c.chunker.min, "avg": c.chunker.avg, "max": c.chunker.max},
                "compression": c.compression.to_string(),
                "pack_size": c.pack_size,
            })
        );
    } else {
        env.say(&format!(
            "created repository {} at {}",
            hex::encode(&c.id[..4]),
            env.repo.display()
        ));
    }
    Ok(0)
}

fn open_or_create(env: &Env) -> Result<Repository> {
    let fresh = match &env.repo {
        location::RepoLocation::Local(_) => env.repo.is_fresh()?,
        // Remote: one request to open, and a missing config means there is none yet.
        #[cfg(feature = "s3")]
        location::RepoLocation::S3(_) => match env.open() {
            Ok(repo) => return Ok(repo),
            Err(e)
                if e.downcast_ref::<snapkeep::Error>()
                    .is_some_and(snapkeep::Error::is_not_found) =>
            {
                true
            }
            Err(e) => return Err(e),
        },
    };
    if fresh {
        let repo = env.repo.init(&InitOptions::default())?;
        env.say(&format!(
            "snapkeep: created a new repository at {} (default parameters)",
            env.repo.display()
        ));
        if matches!(env.repo, location::RepoLocation::Local(_)) {
            return Ok(repo);
        }
        // A remote repository is used through its cache, which needs the new config's id.
    }
    env.open()
}

struct SnapshotArgs<'a> {
    tags: &'a [String],
    excludes: &'a [String],
    host: Option<&'a str>,
    parent: Option<&'a str>,
    force_read: bool,
    stages: &'a str,
    pre_hook: Option<&'a str>,
    allow_inconsistent: bool,
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

fn cmd_snapshot(env: &Env, source: &Path, args: &SnapshotArgs<'_>) -> Result<i32> {
    // Check everything the snapshot can refuse before a new repository is created.
    match std::fs::metadata(source) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(anyhow!(UsageError(format!(
                "source {} is not a directory; snapshot takes a directory",
                source.display()
            ))));
        }
        Err(_) => {
            return Err(anyhow!(UsageError(format!(
                "source {} does not exist or cannot be read; give an existing directory",
                source.display()
            ))));
        }
    }
    snapkeep::backup::check_excludes(args.excludes)?;
    let stages: snapkeep::stage::StageSelection = args.stages.parse()?;
    if args.parent.is_some() && env.repo.is_fresh()? {
        return Err(anyhow!(UsageError(format!(
            "--parent names a snapshot, but there is no repository at {} yet",
            env.repo.display()
        ))));
    }
    let repo = open_or_create(env)?;
    let parent = args.parent.map(|p| repo.resolve(p)).transpose()?;
    let opts = BackupOptions {
        tags: args.tags.to_vec(),
        excludes: args.excludes.to_vec(),
        host: args.host.map(str::to_owned),
        parent,
        force_read: args.force_read,
        stages,
        pre_hook: args.pre_hook.map(|c| shell_hook(c.to_owned())),
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
    if env.json {
        let mut v = record_json(&out.record);
        v["warnings"] = json!(out.warnings);
        println!("{v}");
    } else {
        env.say(&summary_line(&out.record));
        println!("{}", out.record.id);
    }
    Ok(0)
}

fn cmd_list(env: &Env) -> Result<i32> {
    let repo = env.open()?;
    let (records, damaged) = repo.snapshots()?;
    for (id, e) in &damaged {
        env.say(&format!("warning: snapshot {id} cannot be read: {e}"));
    }
    if env.json {
        let arr: Vec<_> = records.iter().map(record_json).collect();
        println!("{}", serde_json::Value::Array(arr));
    } else {
        print!("{}", output::table(&records));
    }
    Ok(0)
}

fn cmd_restore(env: &Env, spec: &str, target: &Path, opts: &RestoreOptions) -> Result<i32> {
    let repo = env.open()?;
    let id = repo.resolve(spec)?;
    let progress = env.progress().printing_warnings(!env.quiet);
    let stats = snapkeep::restore(&repo, &id, target, opts, &progress)
        .with_context(|| format!("restore of snapshot {id} into {} failed", target.display()))?;
    progress.finish();
    let secs = stats.duration_ns as f64 / 1e9;
    if env.json {
        println!(
            "{}",
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
        );
    } else {
        env.say(&format!(
            "restored snapshot {id} into {}: {} files, {} dirs, {} symlinks, {} in {secs:.2}s",
            target.display(),
            stats.files,
            stats.dirs,
            stats.symlinks,
            output::human_bytes(stats.bytes)
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
    }
    // Like verify: the restore ran, but the result failed a format stage.
    Ok(i32::from(!stats.stage_problems.is_empty()))
}

fn cmd_verify(
    env: &Env,
    spec: Option<&str>,
    read_data: bool,
    subset: Option<&str>,
    stages: &str,
) -> Result<i32> {
    let read_data_subset: Option<snapkeep::verify::Subset> = subset.map(str::parse).transpose()?;
    let stages: snapkeep::stage::StageSelection = stages.parse()?;
    let repo = env.open()?;
    let snapshot = spec.map(|s| repo.resolve(s)).transpose()?;
    let progress = env.progress().printing_warnings(!env.quiet);
    let report = snapkeep::verify(
        &repo,
        &VerifyOptions {
            snapshot,
            read_data,
            read_data_subset,
            stages,
        },
        &progress,
    )?;
    progress.finish();
    if env.json {
        println!(
            "{}",
            json!({
                "ok": report.ok(),
                "findings": report.findings,
                "snapshots": report.snapshots,
                "trees": report.trees,
                "files": report.files,
                "packs_read": report.packs_read,
                "blobs_read": report.blobs_read,
                "bytes_read": report.bytes_read,
                "stage_files": report.stage_files,
            })
        );
    } else {
        for f in &report.findings {
            println!("{f}");
        }
        env.say(&format!(
            "verified {} snapshots, {} trees, {} files{}: {}",
            report.snapshots,
            report.trees,
            report.files,
            if read_data {
                format!(
                    ", read {} packs ({})",
                    report.packs_read,
                    output::human_bytes(report.bytes_read)
                )
            } else {
                String::new()
            },
            if report.ok() {
                "no problems found".to_string()
            } else {
                format!("{} problems found", report.findings.len())
            }
        ));
    }
    Ok(i32::from(!report.ok()))
}

fn parse_group_by(s: &str) -> Result<snapkeep::retention::GroupBy> {
    let mut g = snapkeep::retention::GroupBy {
        host: false,
        paths: false,
        tags: false,
    };
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part {
            "host" => g.host = true,
            "paths" | "path" => g.paths = true,
            "tags" => g.tags = true,
            other => {
                return Err(anyhow!(UsageError(format!(
                    "--group-by '{other}' is not a field; use host, paths and/or tags"
                ))));
            }
        }
    }
    Ok(g)
}

fn cmd_forget(
    env: &Env,
    ids: &[String],
    policy: &snapkeep::retention::RetentionPolicy,
    group_by: &str,
    dry_run: bool,
    prune: Option<&snapkeep::prune::PruneOptions>,
) -> Result<i32> {
    let group_by = parse_group_by(group_by)?;
    let repo = env.open()?;
    let explicit: Vec<snapkeep::SnapshotId> = ids
        .iter()
        .map(|s| repo.resolve(s))
        .collect::<snapkeep::Result<_>>()?;
    let (records, _) = repo.snapshots()?;
    let (plan, mut forget) = if policy.is_empty() {
        if explicit.is_empty() {
            return Err(anyhow!(UsageError(
                "forget needs snapshot ids or at least one --keep-* rule".into()
            )));
        }
        (None, Vec::new())
    } else {
        let plan = policy.plan(&records, snapkeep::clock::now_ns(), group_by)?;
        let f = plan.forget_ids();
        (Some(plan), f)
    };
    for id in explicit {
        if !forget.contains(&id) {
            forget.push(id);
        }
    }
    let forget_ref = &forget;
    let decisions: Vec<serde_json::Value> = plan
        .iter()
        .flat_map(|p| p.groups.iter())
        .flat_map(|g| {
            g.decisions.iter().map(move |d| {
                json!({
                    "id": d.id.to_string(),
                    "time": snapkeep::clock::rfc3339(d.time_ns),
                    "host": g.key.host,
                    "paths": g.key.paths,
                    "keep": d.keep && !forget_ref.contains(&d.id),
                    "reasons": d.reasons,
                })
            })
        })
        .collect();
    if !dry_run {
        repo.forget(&forget)?;
    }
    let pruned = prune
        .map(|o| snapkeep::prune::prune(&repo, o))
        .transpose()?;
    if env.json {
        println!(
            "{}",
            json!({
                "dry_run": dry_run,
                "forget": forget.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "decisions": decisions,
                "prune": pruned.as_ref().map(prune_json),
            })
        );
    } else {
        for d in &decisions {
            println!(
                "{} {} {}",
                if d["keep"] == true {
                    "keep  "
                } else {
                    "forget"
                },
                d["id"].as_str().unwrap_or_default(),
                d["reasons"]
                    .as_array()
                    .map(|r| r
                        .iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default()
            );
        }
        match &pruned {
            Some(r) => {
                env.say(&format!(
                    "{} {} snapshots",
                    if dry_run { "would forget" } else { "forgot" },
                    forget.len()
                ));
                print_prune(env, r);
            }
            None => env.say(&format!(
                "{} {} snapshots; their data stays stored until a prune",
                if dry_run { "would forget" } else { "forgot" },
                forget.len()
            )),
        }
    }
    Ok(0)
}

fn prune_json(r: &snapkeep::prune::PruneReport) -> serde_json::Value {
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

fn print_prune(env: &Env, r: &snapkeep::prune::PruneReport) {
    for n in &r.notes {
        env.say(n);
    }
    let would = if r.dry_run { "would " } else { "" };
    println!(
        "{} snapshots, {} reachable blobs, {} packs ({}) before",
        r.snapshots,
        r.reachable_blobs,
        r.packs_before,
        output::human_bytes(r.pack_bytes_before)
    );
    println!(
        "{would}mark {} packs ({}), {would}repack {} packs moving {} blobs ({}) into {} new packs",
        r.marked_packs,
        output::human_bytes(r.marked_bytes),
        r.repacked_packs,
        r.moved_blobs,
        output::human_bytes(r.moved_bytes),
        r.new_packs
    );
    println!(
        "{would}delete {} packs ({}); rescued {}, unmarked {}; {} packs ({}) wait for their grace period or running jobs",
        r.deleted_packs,
        output::human_bytes(r.deleted_bytes),
        r.rescued_packs,
        r.unmarked_packs,
        r.waiting_packs,
        output::human_bytes(r.waiting_bytes)
    );
    println!(
        "{} packs ({}) after, {} unused in kept packs",
        r.packs_after,
        output::human_bytes(r.pack_bytes_after),
        output::human_bytes(r.unused_bytes_after)
    );
}

fn cmd_repair_snapshots(env: &Env, opts: snapkeep::repair::SnapshotRepairOptions) -> Result<i32> {
    use snapkeep::repair::SnapshotRepairStatus as S;
    let repo = env.open()?;
    let r = snapkeep::repair::repair_snapshots(&repo, &opts)?;
    let snaps: Vec<serde_json::Value> = r
        .snapshots
        .iter()
        .map(|s| {
            let (status, new_id) = match &s.status {
                S::Intact => ("intact", None),
                S::Repaired { new_id } => ("repaired", new_id.map(|i| i.to_string())),
                S::Lost => ("lost", None),
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
    let unreadable: Vec<serde_json::Value> = r
        .unreadable_records
        .iter()
        .map(|(id, e)| json!({"id": id.to_string(), "problem": e}))
        .collect();
    if env.json {
        println!(
            "{}",
            json!({
                "dry_run": opts.dry_run,
                "index_rebuilt": r.index_rebuilt,
                "snapshots": snaps,
                "unreadable_records": unreadable,
            })
        );
        return Ok(0);
    }
    if r.index_rebuilt {
        env.say("the index named packs that are gone: rebuilt it from the packs first");
    }
    let would = if opts.dry_run { "would be " } else { "" };
    for s in &snaps {
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
    for u in &unreadable {
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
    Ok(0)
}

fn cmd_repair_index(env: &Env, dry_run: bool) -> Result<i32> {
    let repo = env.open()?;
    let (plan, new) = snapkeep::repair::rebuild_index(&repo, dry_run)?;
    let damaged: Vec<_> = plan
        .damaged_packs
        .iter()
        .map(|(k, p)| json!({"object": k, "problem": p}))
        .collect();
    if env.json {
        println!(
            "{}",
            json!({
                "dry_run": dry_run,
                "packs_read": plan.packs_read,
                "entries": plan.entries.len(),
                "damaged_packs": damaged,
                "replaced_index_files": plan.old_index_files,
                "index": new.map(|i| i.to_string()),
            })
        );
    } else {
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
    }
    Ok(0)
}
