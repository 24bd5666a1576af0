//! Where the repository is: a local directory, or `s3://bucket/prefix` (cargo feature `s3`).
//!
//! Owns: turning `--repo` into a [`Repository`] for each kind of location, and the request
//! report of `--show-requests`. An S3 repository is opened through the stack
//! `CachingBackend(RetryingBackend(S3Backend))`; it is created (`init`) without the cache.

use std::path::PathBuf;
#[cfg(feature = "s3")]
use std::sync::Arc;

use anyhow::Result;
#[cfg(feature = "s3")]
use serde_json::json;

use snapkeep::format::keys;
use snapkeep::{InitOptions, Repository};

/// Worker threads (at least) for restore and verify of a remote repository.
#[cfg(feature = "s3")]
const REMOTE_READERS: usize = 16;

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
}

impl RepoLocation {
    /// A location from `--repo` (a path, or a URL starting with `s3://`).
    pub fn new(repo: PathBuf) -> Result<Self> {
        match repo.to_str() {
            Some(url) if url.starts_with("s3://") => Self::s3(url),
            _ => Ok(RepoLocation::Local(repo)),
        }
    }

    #[cfg(feature = "s3")]
    fn s3(url: &str) -> Result<Self> {
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
        }))
    }

    #[cfg(not(feature = "s3"))]
    fn s3(url: &str) -> Result<Self> {
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

    /// Opens the repository.
    pub fn open(&self) -> Result<Repository> {
        match self {
            RepoLocation::Local(p) => Ok(Repository::open_local(p)?),
            #[cfg(feature = "s3")]
            RepoLocation::S3(r) => {
                use snapkeep::backend::{Backend, CachingBackend, default_cache_root};
                let inner = Arc::clone(&r.retrying) as Arc<dyn Backend>;
                let backend: Arc<dyn Backend> = match default_cache_root() {
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
                Ok(Repository::open(backend)?)
            }
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
