//! The command line's shape: the clap definitions of the global options (`Cli`), every verb
//! (`Command`, with an argument struct for the verbs that take many), the prune options that
//! `prune` and `forget --prune` share (`GcArgs`), and the value parsers. No behaviour: the verbs
//! are in `cmd/`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use super::progress;

const EXAMPLES: &str = "Examples:
  snapkeep snapshot ./data                     snapshot into the default repository
  snapkeep --repo /backups/r init --chunk-avg 256KiB --compression zstd:1
  snapkeep --repo /backups/r snapshot /var/lib/db --tag hourly --exclude '*.tmp'
  snapkeep --repo /backups/r list --json
  snapkeep --repo /backups/r restore latest /restore/here
  snapkeep --repo /backups/r verify --read-data
  snapkeep --repo s3://bucket/prefix snapshot /var/lib/db   (AWS_* variables configure S3)";

/// The command line: global options and one verb.
#[derive(Parser, Debug)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "each bool is one command-line flag"
)]
#[command(name = "snapkeep", version, next_help_heading = "Global options", about = "Content-addressed, incremental snapshots of database data directories", after_help = EXAMPLES)]
pub struct Cli {
    /// Repository: a path (default: $XDG_DATA_HOME/snapkeep/repo) or s3://bucket/prefix
    /// (configured by AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
    /// AWS_ALLOW_HTTP).
    #[arg(long, global = true, env = "SNAPKEEP_REPO")]
    pub repo: Option<PathBuf>,
    /// At the end, print on stderr one JSON line with the requests sent to an S3 repository
    /// (by kind), the retries and the cache hits.
    #[arg(long, global = true)]
    pub show_requests: bool,
    /// Print one JSON document on stdout and nothing else there.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bar and no messages on stderr (errors still go there).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Progress on stderr: auto (a bar on a terminal), json (one JSON event per line), none.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    pub progress: progress::ProgressMode,
    /// More detail on stderr (repeatable): with `snapshot`, -v lists new and modified files,
    /// -vv unchanged files too.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Where an S3 repository caches index files, records and trees (default:
    /// $XDG_CACHE_HOME/snapkeep, else ~/.cache/snapkeep). A local repository has no cache.
    #[arg(long, global = true, env = "SNAPKEEP_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Use no cache (wins over --cache-dir): an S3 repository is read from the bucket only.
    /// A local repository has no cache. SNAPKEEP_NO_CACHE: empty, 0, false, no or off is off.
    #[arg(long, global = true, env = "SNAPKEEP_NO_CACHE",
          value_parser = clap::builder::FalseyValueParser::new())]
    pub no_cache: bool,
    /// Read the password of an encrypted repository from this file (then
    /// SNAPKEEP_PASSWORD_FILE, --password-command, SNAPKEEP_PASSWORD_COMMAND,
    /// SNAPKEEP_PASSWORD, else a prompt on a terminal).
    #[arg(long, global = true, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
    /// Run this shell command and read the password from its output.
    #[arg(long, global = true, value_name = "CMD")]
    pub password_command: Option<String>,
    /// Where `repo` came from (set after parsing).
    #[arg(skip)]
    pub repo_origin: super::location::RepoOrigin,
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by `prune` and `forget --prune`.
#[derive(clap::Args, Debug)]
pub struct GcArgs {
    /// How long unused packs stay marked before a later prune deletes them (0: in this run,
    /// when no snapshot, restore or verify is running).
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    pub grace: String,
    /// Unused space tolerated in kept packs before they are repacked: a percentage of the
    /// repository (5%), a size (200MiB), or 'unlimited'.
    #[arg(long, default_value = "5%", value_name = "LIMIT")]
    pub max_unused: String,
}

impl GcArgs {
    /// The prune options these flags give (`dry_run` from the verb's own flag).
    pub fn options(&self, dry_run: bool) -> Result<snapkeep::prune::PruneOptions> {
        Ok(snapkeep::prune::PruneOptions {
            grace: snapkeep::units::parse_interval(&self.grace)?,
            max_unused: snapkeep::prune::MaxUnused::parse(&self.max_unused)?,
            dry_run,
            ..snapkeep::prune::PruneOptions::default()
        })
    }
}

/// The snapshot filters (restic's): which snapshots a command considers, and among which
/// `latest` is the newest.
#[derive(clap::Args, Debug, Default)]
#[command(next_help_heading = "Snapshot filters")]
pub struct FilterArgs {
    /// Only snapshots of this host (repeatable: any of them). 'latest' is of this machine's
    /// host unless --host is given.
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Only snapshots of this source directory (repeatable: each of them); a relative path is
    /// taken from the current directory.
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Only snapshots with these tags (repeatable: any of the lists; 'a,b' means both a and b;
    /// '' means no tags).
    #[arg(long = "tag", value_name = "TAG[,TAG]")]
    pub tags: Vec<String>,
}

/// The verbs.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a repository.
    #[command(display_order = 1)]
    Init {
        /// Average chunk size (power of two, 4KiB..4MiB); min = avg/2, max = avg*4.
        #[arg(long, value_parser = parse_size)]
        chunk_avg: Option<u64>,
        /// Compression of new data: off, zstd or zstd:LEVEL.
        #[arg(long, default_value_t = snapkeep::Compression::default().to_string())]
        compression: String,
        /// Target pack size (1MiB..1GiB).
        #[arg(long, value_parser = parse_size)]
        pack_size: Option<u64>,
        /// Encryption: aegis256x4-blake3 (every object sealed, format 2; fastest with AES
        /// instructions), xaes256gcm-blake3 (format 2, AES-GCM based),
        /// xchacha20poly1305-blake3 (format 2, for CPUs without AES instructions) or none
        /// (nothing encrypted nor authenticated, format 1).
        #[arg(long, default_value = snapkeep::crypto::Scheme::DEFAULT.name())]
        encryption: String,
        /// Argon2id parameters of the first key: auto (m=64MiB, p=4 and as many passes, at
        /// least 3, as take 0.3 s here) or m=MEMORY,t=PASSES,p=LANES (lower values make a
        /// stolen key file cheaper to attack).
        #[arg(long, env = "SNAPKEEP_KDF", default_value = "auto")]
        kdf: String,
    },
    /// Snapshot a directory, or several directories and files (creates the default
    /// repository on first use; a --repo or SNAPKEEP_REPO location must be created with init).
    #[command(display_order = 2, visible_alias = "backup")]
    Snapshot(SnapshotArgs),
    /// List snapshots, oldest first.
    #[command(display_order = 3, visible_alias = "snapshots")]
    List {
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// List the entries of a snapshot below PATH (recursively).
    #[command(display_order = 6)]
    Ls {
        /// Snapshot id, unique id prefix, or 'latest'.
        snapshot: String,
        /// Directory inside the snapshot (default: its root).
        path: Option<String>,
        /// Aligned columns: type and mode, uid, gid, size, mtime (UTC), path.
        #[arg(long, short = 'l')]
        long: bool,
        // Last: the filters' help heading applies to every argument after them.
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Show what changed between two snapshots.
    #[command(display_order = 8)]
    Diff {
        /// The older snapshot.
        from: String,
        /// The newer snapshot.
        to: String,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Show one snapshot's record and summary.
    #[command(display_order = 9)]
    Show {
        /// Snapshot id, unique id prefix, or 'latest'.
        snapshot: String,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Sizes, dedup and compression ratios, chunk and pack counts, reclaimable bytes.
    #[command(display_order = 10)]
    Stats {
        /// Only this snapshot (default: the whole repository, or the snapshots the filters
        /// select).
        snapshot: Option<String>,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Print a repository object as JSON: config, snapshot ID, tree ID (or SNAPSHOT:PATH),
    /// index [ID] (without an id: the list of index files), pack ID, or lock (the locks
    /// present). Every object is checked against its hash or checksum first.
    #[command(display_order = 11)]
    Cat {
        /// The kind of object.
        #[arg(value_enum)]
        kind: CatKind,
        /// Which one: a snapshot id, prefix or 'latest'; a tree id or SNAPSHOT:PATH; an index
        /// or pack id or unique prefix.
        id: Option<String>,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Add or remove tags of a snapshot.
    #[command(display_order = 12)]
    Tag {
        /// Snapshot id, unique id prefix, or 'latest'.
        snapshot: String,
        /// Tag to add (repeatable).
        #[arg(long = "add")]
        add: Vec<String>,
        /// Tag to remove (repeatable).
        #[arg(long = "remove")]
        remove: Vec<String>,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Which snapshots hold a path: each PATTERN is a glob matched against an entry's path
    /// inside the snapshot from any directory down (so '*.sst' matches names), or with a
    /// leading '/' from the snapshot's root ('/db/*.sst').
    #[command(display_order = 7)]
    Find {
        /// Glob of names or paths (repeatable: any of them).
        #[arg(required = true)]
        patterns: Vec<String>,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Forget snapshots by policy or by id: decide (the plan, with a reason for each kept
    /// snapshot), then remove the forgotten snapshots' records. Their data stays stored.
    #[command(display_order = 13)]
    Forget(ForgetArgs),
    /// Reclaim the space of data no snapshot needs. Never blocks a running snapshot: unused
    /// packs are first marked and deleted by a later prune after the grace period.
    #[command(display_order = 14)]
    Prune {
        #[command(flatten)]
        gc: GcArgs,
        /// Print what would be marked, repacked and deleted, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove stale locks (of processes that are gone, or without a heartbeat for 10 min).
    #[command(display_order = 15)]
    Unlock {
        /// Remove every lock, also those of running processes (only when you know none runs).
        #[arg(long)]
        remove_all: bool,
    },
    /// Print a shell completion script.
    #[command(display_order = 18)]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Restore a snapshot into a new or empty directory.
    #[command(display_order = 4)]
    Restore(RestoreArgs),
    /// Check the repository: structure always, every byte with --read-data.
    #[command(display_order = 5, visible_alias = "check")]
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
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Measure snapshot, no-change snapshot, change + snapshot, restore and verify on a
    /// generated database-like directory (or DIR), against a plain read of the same files.
    #[command(display_order = 17)]
    Bench(BenchArgs),
    /// Repair repository metadata.
    #[command(display_order = 16)]
    Repair {
        #[command(subcommand)]
        what: RepairWhat,
    },
    /// Manage the key files of an encrypted repository (each opens it with its own password).
    #[command(display_order = 15)]
    Key {
        #[command(subcommand)]
        what: KeyWhat,
    },
    /// Copy snapshots from another repository into this one (--repo), with their trees and
    /// the chunks this one lacks; each copy keeps its time, host, paths and tags.
    #[command(display_order = 14)]
    Copy(CopyArgs),
}

/// `snapkeep copy`: the source repository and its password, which snapshots.
#[derive(clap::Args, Debug)]
pub struct CopyArgs {
    /// The repository to copy from (a path or s3://bucket/prefix).
    #[arg(long, env = "SNAPKEEP_FROM_REPO", value_name = "REPO")]
    pub from_repo: PathBuf,
    /// The source repository's password, from this file (else SNAPKEEP_FROM_PASSWORD_FILE,
    /// --from-password-command, SNAPKEEP_FROM_PASSWORD_COMMAND, SNAPKEEP_FROM_PASSWORD, a
    /// prompt).
    #[arg(long, value_name = "FILE")]
    pub from_password_file: Option<PathBuf>,
    /// The source repository's password, from this command's output.
    #[arg(long, value_name = "COMMAND")]
    pub from_password_command: Option<String>,
    /// Snapshots of the source to copy (id, unique prefix or 'latest'); none: every snapshot
    /// the filters select. Snapshots already copied here are skipped.
    pub snapshots: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// What `key` does.
#[derive(Subcommand, Debug)]
pub enum KeyWhat {
    /// List the key files: id, host, creation time, Argon2id parameters; the one in use marked.
    List,
    /// Add a key file with a new password (from --new-password-file, else asked twice).
    Add {
        #[command(flatten)]
        new: NewKeyArgs,
    },
    /// Remove a key file (a unique id prefix is enough); never the last one, nor the one in use.
    Remove {
        /// The key file's id (from 'snapkeep key list').
        id: String,
    },
    /// Change the password of the key in use: a new key file is written, then the old one
    /// removed.
    Passwd {
        #[command(flatten)]
        new: NewKeyArgs,
    },
}

/// The new password and its key derivation.
#[derive(clap::Args, Debug)]
pub struct NewKeyArgs {
    /// Read the new password from this file (else it is asked for twice at a terminal).
    #[arg(long, value_name = "PATH")]
    pub new_password_file: Option<PathBuf>,
    /// Argon2id parameters of the new key: auto (m=64MiB, p=4, passes for 0.3 s here, at
    /// least 3) or m=MEMORY,t=PASSES,p=LANES.
    #[arg(long, env = "SNAPKEEP_KDF", default_value = "auto")]
    pub kdf: String,
}

/// The kinds of object `cat` prints.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatKind {
    /// The repository config.
    Config,
    /// A snapshot record.
    Snapshot,
    /// A tree (one directory).
    Tree,
    /// An index file (or the list of them).
    Index,
    /// A pack's trailer entries.
    Pack,
    /// The locks present.
    #[value(alias = "locks")]
    Lock,
}

/// What `repair` repairs.
#[derive(Subcommand, Debug)]
pub enum RepairWhat {
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

/// The arguments of `snapshot` (its help text is on [`Command::Snapshot`]).
#[derive(clap::Args, Debug)]
#[expect(clippy::struct_excessive_bools, reason = "one field per flag")]
pub struct SnapshotArgs {
    /// The directory to snapshot, or several directories and files (each then a top-level
    /// entry named by its last component).
    #[arg(required_unless_present = "files_from")]
    pub sources: Vec<PathBuf>,
    /// Read more sources from FILE, one per line ('#' comments and blank lines skipped;
    /// '-' reads stdin; repeatable).
    #[arg(long, value_name = "FILE")]
    pub files_from: Vec<PathBuf>,
    /// Tags to record, comma-separated (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Pattern of entries to leave out (repeatable): '/x' is the source's top level, 'x' a
    /// name or trailing path at any depth, '**' crosses directories.
    #[arg(long = "exclude", value_name = "PATTERN")]
    pub excludes: Vec<String>,
    /// The same as --exclude, ignoring case (repeatable).
    #[arg(long = "iexclude", value_name = "PATTERN")]
    pub iexcludes: Vec<String>,
    /// Read exclude patterns from FILE, one per line ('#' comments and blank lines
    /// skipped; repeatable).
    #[arg(long, value_name = "FILE")]
    pub exclude_file: Vec<PathBuf>,
    /// Do not descend into directories on another file system (their mount points are
    /// recorded empty).
    #[arg(long, short = 'x')]
    pub one_file_system: bool,
    /// Read and hash everything, report what would be stored, and write nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Write no snapshot when nothing changed since the parent (same tree, host, paths and
    /// tags); print the parent's id.
    #[arg(long)]
    pub skip_if_unchanged: bool,
    /// Host name to record instead of this machine's.
    #[arg(long)]
    pub host: Option<String>,
    /// Parent snapshot for change detection: an id, or `latest` (this host's newest of these
    /// paths; default: that one when there is one).
    #[arg(long)]
    pub parent: Option<String>,
    /// Read every file, even those whose metadata is unchanged since the parent.
    #[arg(long)]
    pub force_read: bool,
    /// Verification stages on captured files: auto (by detected layout), none, or a
    /// comma-separated list (files, alopex).
    #[arg(long, default_value = "auto")]
    pub stages: String,
    /// Shell command run before capture (e.g. the database's checkpoint); a non-zero
    /// exit aborts the snapshot and shows its stderr.
    #[arg(long)]
    pub pre_hook: Option<String>,
    /// Commit even if a file still fails a format stage after recaptures (flagged).
    #[arg(long)]
    pub allow_inconsistent: bool,
}

/// The arguments of `forget` (its help text is on [`Command::Forget`]).
#[derive(clap::Args, Debug)]
pub struct ForgetArgs {
    /// Snapshots to forget explicitly (id, prefix or 'latest').
    pub ids: Vec<String>,
    /// Keep the N newest snapshots of each group.
    #[arg(long)]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours.
    #[arg(long)]
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the last N days.
    #[arg(long)]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the last N ISO weeks.
    #[arg(long)]
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the last N months.
    #[arg(long)]
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the last N years.
    #[arg(long)]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot newer than this (e.g. 36h, 7d, 2w, 1y2m).
    #[arg(long)]
    pub keep_within: Option<String>,
    /// Keep snapshots with this tag (repeatable).
    #[arg(long = "keep-tag")]
    pub keep_tags: Vec<String>,
    /// Group snapshots by these fields before applying the policy.
    #[arg(long, default_value = "host,paths")]
    pub group_by: String,
    /// Print the plan without removing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Run a prune after forgetting.
    #[arg(long)]
    pub prune: bool,
    #[command(flatten)]
    pub gc: GcArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// The arguments of `restore` (its help text is on [`Command::Restore`]).
#[derive(clap::Args, Debug)]
#[expect(clippy::struct_excessive_bools, reason = "one field per flag")]
pub struct RestoreArgs {
    /// Snapshot id, unique id prefix, or 'latest'.
    pub snapshot: String,
    /// Target directory (must not exist or be empty, unless --in-place).
    pub target: PathBuf,
    /// Do not restore file owners even as root.
    #[arg(long)]
    pub no_owner: bool,
    /// Restore into an existing (database) directory: it becomes exactly the snapshot's
    /// tree (files that differ rewritten, what the snapshot lacks DELETED), switched over in
    /// one atomic step; the lock file and .lifecycle/ are kept.
    #[arg(long)]
    pub in_place: bool,
    /// With --in-place: proceed even while a process holds the database's lock.
    #[arg(long, requires = "in_place")]
    pub force: bool,
    /// With --in-place: delete what the snapshot lacks even when TARGET is not the
    /// snapshot's own source nor a directory of the same database layout.
    #[arg(long, requires = "in_place")]
    pub delete: bool,
    /// Show what would be written (+ new, ~ changed) and deleted (-); write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Format stages run on the restored files: auto, none, or a list (files,alopex).
    #[arg(long, default_value = "auto")]
    pub stages: String,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// The arguments of `bench` (its help text is on [`Command::Bench`]).
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Directory to measure instead of a generated one (it is not modified).
    pub dir: Option<PathBuf>,
    /// Size of the generated dataset.
    #[arg(long, value_parser = parse_size, default_value = "1GiB", conflicts_with = "files")]
    pub size: u64,
    /// Generate N small files instead (0-8 KiB each, mostly text, 100 per directory: the
    /// many-small-files case), and run the same steps on them.
    #[arg(long, default_value_t = 0, conflicts_with_all = ["dir", "prune_snapshots"])]
    pub files: u64,
    /// Drop the page cache before every step (root only).
    #[arg(long)]
    pub cold: bool,
    /// Keep the temporary dataset, repository and restore.
    #[arg(long)]
    pub keep: bool,
    /// Also time opening a repository whose index holds this many chunks (e.g. 10000000).
    #[arg(long, default_value_t = 0)]
    pub index_entries: u64,
    /// Also grow the repository to N snapshots (a churn round before each), forget all
    /// but 10, and time prune without and with repacking (e.g. 50; generated data only).
    #[arg(long, default_value_t = 0)]
    pub prune_snapshots: u64,
    /// Encryption of the measured repository: aegis256x4-blake3, xaes256gcm-blake3,
    /// xchacha20poly1305-blake3
    /// (its key sealed with a throwaway password and the default Argon2id parameters, or
    /// SNAPKEEP_KDF) or none.
    #[arg(long, default_value = snapkeep::crypto::Scheme::DEFAULT.name())]
    pub encryption: String,
}

/// `--chunk-avg 256KiB`, `--size 1GiB`: a size with an optional binary unit.
fn parse_size(s: &str) -> std::result::Result<u64, String> {
    snapkeep::units::parse_size(s).map_err(|e| e.to_string())
}
