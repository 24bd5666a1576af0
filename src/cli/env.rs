//! What every verb reads: the global options (`--json`, `--quiet`, `--progress`) and the
//! repository location, with the few things all verbs do with them: a message on stderr, a
//! progress display, opening the repository (and resolving a snapshot in it), and printing a
//! result as JSON or for people.

use std::fmt::Display;
use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use snapkeep::{Repository, SnapshotId};

use super::args::Cli;
use super::location::{CacheChoice, RepoLocation, RepoOrigin};
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
        self.repo.open()
    }

    /// Opens the repository and resolves `spec` (an id, a unique id prefix or 'latest').
    pub fn open_snapshot(&self, spec: &str) -> Result<(Repository, SnapshotId)> {
        let repo = self.open()?;
        let id = repo.resolve(spec)?;
        Ok((repo, id))
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

fn repo_path(cli: &Cli) -> Result<PathBuf> {
    match &cli.repo {
        Some(p) if !p.as_os_str().is_empty() => Ok(p.clone()),
        _ => snapkeep::repository::default_repo_path().ok_or_else(|| {
            usage_error(
                "no repository given and no home directory to put the default in; pass --repo PATH or set SNAPKEEP_REPO",
            )
        }),
    }
}
