//! Where the repository is: a local directory, or `s3://bucket/prefix` (cargo feature `s3`).
//!
//! Owns: turning `--repo` into a [`Repository`] for each kind of location, what is true of a
//! location that holds no repository (the error that says so), where an S3 repository's cache
//! lives (`--cache-dir`, `--no-cache`), and the request report of `--show-requests`. An S3
//! repository is opened through the stack `CachingBackend(RetryingBackend(S3Backend))` (or
//! without the cache); it is created (`init`) without the cache. A local repository has no
//! cache.

use std::path::{Path, PathBuf};
#[cfg(feature = "s3")]
use std::sync::Arc;

use anyhow::Result;
#[cfg(feature = "s3")]
use serde_json::json;

use snapkeep::format::keys;
use snapkeep::format::repo_config::StoredConfig;
use snapkeep::{InitOptions, Repository};

use super::password::PasswordSource;

/// Worker threads (at least) for restore and verify of a remote repository.
#[cfg(feature = "s3")]
const REMOTE_READERS: usize = 16;

/// Where the repository's location came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RepoOrigin {
    /// Neither `--repo` nor `SNAPKEEP_REPO`: the default location, created on first use.
    #[default]
    Default,
    /// `--repo` on the command line.
    Flag,
    /// The `SNAPKEEP_REPO` variable.
    Env,
}

impl RepoOrigin {
    /// Whether the user named the location (then a missing repository is an error, never
    /// created on the fly: a typo must not become a new repository).
    pub fn explicit(self) -> bool {
        self != RepoOrigin::Default
    }
}

/// Where an S3 repository's cache lives (`--cache-dir`, `--no-cache`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CacheChoice {
    /// `$XDG_CACHE_HOME/snapkeep`, else `~/.cache/snapkeep`.
    #[default]
    Default,
    /// This directory (`--cache-dir`, `SNAPKEEP_CACHE_DIR`).
    Dir(PathBuf),
    /// No cache (`--no-cache`, `SNAPKEEP_NO_CACHE`).
    Off,
}

impl CacheChoice {
    /// The choice of the flags: `--no-cache` wins over a directory.
    pub fn of(cache_dir: Option<&Path>, no_cache: bool) -> Self {
        match (cache_dir, no_cache) {
            (_, true) => CacheChoice::Off,
            (Some(d), false) if !d.as_os_str().is_empty() => CacheChoice::Dir(d.to_path_buf()),
            _ => CacheChoice::Default,
        }
    }

    /// The cache root (each repository gets `<root>/<repo id>`), or `None` for no cache.
    pub fn root(&self) -> Option<PathBuf> {
        match self {
            CacheChoice::Default => snapkeep::backend::default_cache_root(),
            CacheChoice::Dir(d) => Some(d.clone()),
            CacheChoice::Off => None,
        }
    }
}

/// A repository location given by `--repo`.
pub enum RepoLocation {
    /// A directory on this machine.
    Local(PathBuf),
    /// An S3-compatible bucket and prefix, with the clients built for it.
    #[cfg(feature = "s3")]
    S3(S3Repo),
}

/// The backend stack of an S3 repository, kept so that its counters can be reported.
#[cfg(feature = "s3")]
pub struct S3Repo {
    s3: Arc<snapkeep::backend::S3Backend>,
    retrying: Arc<snapkeep::backend::RetryingBackend>,
    cache: std::sync::Mutex<Option<Arc<snapkeep::backend::CachingBackend>>>,
    /// Where the cache goes.
    cache_choice: CacheChoice,
}

impl RepoLocation {
    /// A location from `--repo` (a path, or a URL starting with `s3://`); `cache` says where an
    /// S3 repository's cache lives.
    pub fn new(repo: PathBuf, cache: CacheChoice) -> Result<Self> {
        match repo.to_str() {
            Some(url) if url.starts_with("s3://") => Self::s3(url, cache),
            _ => Ok(RepoLocation::Local(repo)),
        }
    }

    #[cfg(feature = "s3")]
    fn s3(url: &str, cache_choice: CacheChoice) -> Result<Self> {
        use snapkeep::backend::{RetryPolicy, RetryingBackend, S3Backend};
        let s3 = Arc::new(S3Backend::from_env(url)?);
        // Restore and verify read chunks and pack runs on the global rayon pool, one request
        // per worker at a time: against a remote store they wait on latency, not on the CPU,
        // so give them more workers than cores (RAYON_NUM_THREADS still decides when set).
        if std::env::var_os("RAYON_NUM_THREADS").is_none() {
            let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
            let _ = rayon::ThreadPoolBuilder::new()
                .num_threads((cores * 4).max(REMOTE_READERS))
                .build_global();
        }
        let retrying = Arc::new(RetryingBackend::new(
            Arc::clone(&s3) as Arc<dyn snapkeep::backend::Backend>,
            RetryPolicy::default(),
        ));
        Ok(RepoLocation::S3(S3Repo {
            s3,
            retrying,
            cache: std::sync::Mutex::new(None),
            cache_choice,
        }))
    }

    #[cfg(not(feature = "s3"))]
    fn s3(url: &str, _cache: CacheChoice) -> Result<Self> {
        Err(super::usage_error(format!(
            "--repo {url} needs the S3 backend, and this snapkeep was built without the 's3' feature; rebuild with it or give a local path"
        )))
    }

    /// For messages: the path or URL.
    pub fn display(&self) -> String {
        match self {
            RepoLocation::Local(p) => p.display().to_string(),
            #[cfg(feature = "s3")]
            RepoLocation::S3(r) => snapkeep::backend::Backend::location(r.s3.as_ref()),
        }
    }

    /// Whether no repository is there yet (a local path that is absent or an empty directory;
    /// an S3 prefix without a config object).
    pub fn is_fresh(&self) -> Result<bool> {
        match self {
            RepoLocation::Local(p) => Ok(match std::fs::read_dir(p) {
                Err(e) => e.kind() == std::io::ErrorKind::NotFound,
                Ok(mut rd) => rd.next().is_none(),
            }),
            #[cfg(feature = "s3")]
            RepoLocation::S3(r) => {
                use snapkeep::backend::Backend;
                Ok(!r.retrying.exists(keys::CONFIG)?)
            }
        }
    }

    /// Opens the repository; the password is asked for only when it is encrypted.
    pub fn open(&self, password: &PasswordSource) -> Result<Repository> {
        match self {
            RepoLocation::Local(p) => {
                let config = std::fs::read(p.join(keys::CONFIG)).ok();
                let pw = self.password_for(config.as_deref(), password)?;
                Ok(Repository::open_local_with(
                    p,
                    pw.as_deref().map(Vec::as_slice),
                )?)
            }
            #[cfg(feature = "s3")]
            RepoLocation::S3(r) => {
                use snapkeep::backend::{Backend, CachingBackend};
                let inner = Arc::clone(&r.retrying) as Arc<dyn Backend>;
                let backend: Arc<dyn Backend> = match r.cache_choice.root() {
                    Some(root) => {
                        let cache = Arc::new(CachingBackend::for_repository(inner, &root)?);
                        *r.cache
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner) =
                            Some(Arc::clone(&cache));
                        cache
                    }
                    None => inner,
                };
                let config = backend.get(keys::CONFIG).ok();
                let pw = self.password_for(config.as_deref(), password)?;
                Ok(Repository::open_with(
                    backend,
                    pw.as_deref().map(Vec::as_slice),
                )?)
            }
        }
    }

    /// The password, when `config` (the stored config, if it could be read) is an encrypted
    /// repository's; `None` otherwise (opening then says what is wrong).
    fn password_for(
        &self,
        config: Option<&[u8]>,
        password: &PasswordSource,
    ) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
        match config.map(StoredConfig::parse) {
            Some(Ok(StoredConfig::Sealed(_))) => password
                .get(&format!("the repository at {}", self.display()), false)
                .map(Some),
            _ => Ok(None),
        }
    }

    /// Creates a repository; refuses if one is there.
    pub fn init(&self, opts: &InitOptions) -> Result<Repository> {
        match self {
            RepoLocation::Local(p) => Ok(Repository::init_local(p, opts)?),
            #[cfg(feature = "s3")]
            RepoLocation::S3(r) => Ok(Repository::init(
                Arc::clone(&r.retrying) as Arc<dyn snapkeep::backend::Backend>,
                opts,
            )?),
        }
    }

    /// The requests sent so far, as one JSON object (`null` for a local repository).
    pub fn requests_json(&self) -> serde_json::Value {
        match self {
            RepoLocation::Local(_) => serde_json::Value::Null,
            #[cfg(feature = "s3")]
            RepoLocation::S3(r) => {
                let c = r.s3.request_counts();
                let mut by_kind = serde_json::Map::new();
                for (name, n) in c.fields() {
                    by_kind.insert(name.to_owned(), json!(n));
                }
                let cache = r
                    .cache
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .as_ref()
                    .map(|c| {
                        let s = c.stats();
                        json!({"hits": s.hits, "misses": s.misses, "dropped": s.dropped,
                               "dir": c.dir().map(|d| d.display().to_string())})
                    });
                json!({
                    "repository": self.display(),
                    "total": c.total(),
                    "by_kind": by_kind,
                    "retries": r.retrying.retries(),
                    "cache": cache,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use clap::Parser;

    use super::CacheChoice;
    use crate::cli::args::Cli;

    /// The cache choice of a command line (no environment variable involved).
    fn choice(args: &[&str]) -> CacheChoice {
        let cli = Cli::try_parse_from(args).expect("parses");
        CacheChoice::of(cli.cache_dir.as_deref(), cli.no_cache)
    }

    #[test]
    fn cache_flags_choose_where_the_cache_lives() {
        assert_eq!(
            CacheChoice::of(Some(Path::new("/c")), false),
            CacheChoice::Dir(PathBuf::from("/c"))
        );
        assert_eq!(
            CacheChoice::of(Some(Path::new("/c")), true),
            CacheChoice::Off
        );
        assert_eq!(CacheChoice::of(None, true), CacheChoice::Off);
        assert_eq!(
            CacheChoice::of(Some(Path::new("")), false),
            CacheChoice::Default
        );
        assert_eq!(CacheChoice::of(None, false), CacheChoice::Default);
        assert_eq!(
            CacheChoice::Dir(PathBuf::from("/c")).root(),
            Some(PathBuf::from("/c"))
        );
        assert_eq!(CacheChoice::Off.root(), None);
        assert_eq!(
            CacheChoice::Default.root(),
            snapkeep::backend::default_cache_root()
        );
    }

    #[test]
    fn cache_flags_parse_before_and_after_the_command() {
        assert_eq!(
            choice(&["snapkeep", "--cache-dir", "/c", "list"]),
            CacheChoice::Dir(PathBuf::from("/c"))
        );
        assert_eq!(
            choice(&["snapkeep", "list", "--cache-dir", "/c"]),
            CacheChoice::Dir(PathBuf::from("/c"))
        );
        assert_eq!(
            choice(&["snapkeep", "list", "--no-cache"]),
            CacheChoice::Off
        );
        assert_eq!(
            choice(&["snapkeep", "--no-cache", "--cache-dir", "/c", "list"]),
            CacheChoice::Off
        );
    }
}
