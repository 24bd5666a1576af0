//! What every verb reads: the global options (`--json`, `--quiet`, `--progress`) and the
//! repository location, with the few things all verbs do with them: a message on stderr, a
//! progress display, opening the repository (and resolving a snapshot in it, with the snapshot
//! filters and the host default of 'latest'), and printing a result as JSON or for people.

use std::fmt::Display;
use std::io::IsTerminal;
use std::path::{Component, Path, PathBuf};

use anyhow::Result;
use snapkeep::clock::rfc3339;
use snapkeep::{Repository, SnapshotFilter, SnapshotId, SnapshotSpec, short_id};

use super::args::{Cli, FilterArgs};
use super::location::{CacheChoice, RepoLocation, RepoOrigin};
use super::password::PasswordSource;
use super::progress::{CliProgress, ProgressMode};
use super::usage_error;

/// The global options of one run and the repository they name.
pub struct Env {
    pub json: bool,
    pub quiet: bool,
    pub progress: ProgressMode,
    pub repo: RepoLocation,
    /// Whether `repo` came from `--repo`, `SNAPKEEP_REPO` or neither.
    pub repo_origin: RepoOrigin,
    /// Where an encrypted repository's password comes from.
    pub password: PasswordSource,
    /// `--cache-dir` / `--no-cache`, for another repository the command opens (`copy`).
    pub cache: CacheChoice,
}

impl Env {
    /// The environment of `cli`; the repository is `--repo` (or `SNAPKEEP_REPO`), else the
    /// default location.
    pub fn new(cli: &Cli) -> Result<Self> {
        Ok(Env {
            json: cli.json,
            quiet: cli.quiet,
            progress: cli.progress,
            repo: RepoLocation::new(
                repo_path(cli)?,
                CacheChoice::of(cli.cache_dir.as_deref(), cli.no_cache),
            )?,
            repo_origin: cli.repo_origin,
            password: PasswordSource {
                file: cli.password_file.clone(),
                command: cli.password_command.clone(),
                from: false,
            },
            cache: CacheChoice::of(cli.cache_dir.as_deref(), cli.no_cache),
        })
    }

    /// A message on stderr, unless `--quiet`.
    pub fn say(&self, msg: &str) {
        if !self.quiet {
            eprintln!("{msg}");
        }
    }

    /// The progress display `--progress` and `--quiet` ask for.
    pub fn progress(&self) -> CliProgress {
        let draw =
            !self.quiet && self.progress == ProgressMode::Auto && std::io::stderr().is_terminal();
        CliProgress::new(draw, self.progress == ProgressMode::Json)
    }

    /// Opens the repository.
    pub fn open(&self) -> Result<Repository> {
        let repo = self.repo.open(&self.password)?;
        known_mode(&self.repo.display(), &repo)?;
        Ok(repo)
    }

    /// Opens another repository (`copy --from-repo`) with its own password sources; returns
    /// it with its location as messages name it.
    pub fn open_other(
        &self,
        location: PathBuf,
        password: &PasswordSource,
    ) -> Result<(Repository, String)> {
        if location.as_os_str().is_empty() {
            return Err(usage_error(
                "the source repository location is empty (--from-repo '' or SNAPKEEP_FROM_REPO=''); give its location",
            ));
        }
        let at = RepoLocation::new(location, self.cache.clone())?;
        let repo = at.open(password)?;
        known_mode(&at.display(), &repo)?;
        Ok((repo, at.display()))
    }

    /// Opens the repository and resolves `spec` among the snapshots `filter` selects (see
    /// [`Env::resolve`]).
    pub fn open_snapshot(
        &self,
        spec: &str,
        filter: &FilterArgs,
    ) -> Result<(Repository, SnapshotId)> {
        let repo = self.open()?;
        let id = self.resolve(&repo, spec, filter)?;
        Ok((repo, id))
    }

    /// Resolves `spec` (an id, a unique id prefix, a short id or 'latest') among the snapshots
    /// `filter` selects. 'latest' is the newest of this machine's host unless `--host` is
    /// given, and the snapshot it chose is told on stderr.
    pub fn resolve(
        &self,
        repo: &Repository,
        spec: &str,
        filter: &FilterArgs,
    ) -> Result<SnapshotId> {
        let mut filter = snapshot_filter(filter)?;
        if spec.parse::<SnapshotSpec>()? != SnapshotSpec::Latest {
            return Ok(repo.resolve_filtered(spec, &filter)?);
        }
        if filter.hosts.is_empty() {
            filter.hosts.push(snapkeep::clock::hostname());
        }
        let (r, newer_damaged) = repo.latest_checked(&filter)?;
        for (id, e) in &newer_damaged {
            eprintln!(
                "warning: snapshot record {id} is newer than the one 'latest' chose, but it \
                 cannot be read, so it may have been the latest: {e}"
            );
        }
        self.say(&format!(
            "latest is snapshot {} ({}) of host {}, {}, taken {}",
            short_id(&r.id),
            r.id,
            r.host,
            r.paths.join(" "),
            rfc3339(r.time_ns)
        ));
        Ok(r.id)
    }

    /// Prints the result: with `--json` the document `json` builds on stdout, else `human`.
    pub fn print<T: Display>(&self, json: impl FnOnce() -> T, human: impl FnOnce()) {
        if self.json {
            println!("{}", json());
        } else {
            human();
        }
    }
}

/// The library filter of the filter flags: a `--path` is made absolute and canonical (as
/// `snapshot` records its source), a `--tag a,b` is one list of tags that must all be there.
pub fn snapshot_filter(args: &FilterArgs) -> Result<SnapshotFilter> {
    if args.hosts.iter().any(String::is_empty) {
        return Err(usage_error(
            "--host needs a host name; 'snapkeep list' shows the hosts",
        ));
    }
    let mut tags = Vec::new();
    for t in &args.tags {
        if t.is_empty() {
            tags.push(Vec::new());
            continue;
        }
        let group: Vec<String> = t.split(',').map(str::to_owned).collect();
        if group.iter().any(String::is_empty) {
            return Err(usage_error(format!(
                "--tag '{t}' holds an empty tag; give tags separated by single commas"
            )));
        }
        tags.push(group);
    }
    let paths = args
        .paths
        .iter()
        .map(|p| absolute(p).map(|a| a.to_string_lossy().into_owned()))
        .collect::<Result<_>>()?;
    Ok(SnapshotFilter {
        hosts: args.hosts.clone(),
        paths,
        tags,
    })
}

/// `path` made absolute: canonical when it exists here, else cleaned of `.` and `..` (a
/// source of another host, or one that is gone).
fn absolute(path: &Path) -> Result<PathBuf> {
    if path.as_os_str().is_empty() {
        return Err(usage_error(
            "--path needs a path; 'snapkeep list' shows the paths",
        ));
    }
    if let Ok(p) = std::fs::canonicalize(path) {
        return Ok(p);
    }
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| {
                usage_error(format!(
                    "cannot make --path {} absolute: {e}",
                    path.display()
                ))
            })?
            .join(path)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

fn repo_path(cli: &Cli) -> Result<PathBuf> {
    match &cli.repo {
        Some(p) if !p.as_os_str().is_empty() => Ok(p.clone()),
        // `--repo "$REPO"` with REPO unset, or an exported empty SNAPKEEP_REPO: a location was
        // meant, so the default repository is not silently used (nor created) instead.
        Some(_) => Err(usage_error(
            "the repository location is empty (--repo '' or SNAPKEEP_REPO=''); give the location, or unset SNAPKEEP_REPO and leave out --repo to use the default repository",
        )),
        None => snapkeep::repository::default_repo_path().ok_or_else(|| {
            usage_error(
                "no repository given and no home directory to put the default in; pass --repo PATH or set SNAPKEEP_REPO",
            )
        }),
    }
}

/// Where this machine remembers which repositories it has opened encrypted:
/// `$XDG_STATE_HOME/snapkeep/encrypted/<repository id>` (else `~/.local/state/...`).
fn known_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        })?;
    Some(base.join("snapkeep/encrypted"))
}

/// Refuses a silent downgrade: a repository this machine opened encrypted that now says it
/// is not (its config replaced by a plain one with the same id); remembers an encrypted one.
/// Failing to remember is no error (a read-only home, say).
fn known_mode(location: &str, repo: &Repository) -> Result<()> {
    let Some(dir) = known_dir() else {
        return Ok(());
    };
    let mark = dir.join(hex::encode(repo.config().id));
    if repo.codec().is_sealed() {
        if !mark.exists() {
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(&mark, location.as_bytes());
        }
        return Ok(());
    }
    if mark.exists() {
        return Err(usage_error(format!(
            "the repository at {location} was encrypted when this machine last opened it, and its config now says it is not: someone who can write there may have replaced it; nothing was read or written (if you replaced it yourself, remove {} and run again)",
            mark.display()
        )));
    }
    Ok(())
}
