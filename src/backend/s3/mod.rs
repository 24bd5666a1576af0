//! The S3-compatible backend (cargo feature `s3`): objects under `s3://bucket/prefix/<key>`.
//!
//! Owns: [`S3Backend`], a synchronous [`Backend`] over `object_store`'s `AmazonS3` client, its
//! private tokio runtime, and the count of HTTP requests it sent ([`S3Backend::request_counts`]).
//!
//! Invariants:
//! - nothing async leaves this module: every call builds a `'static` future, runs it on the
//!   private runtime and waits for it on the calling thread (so it also works when the caller is
//!   itself inside another tokio runtime);
//! - `put` and `put_file` return only after the store acknowledged the whole object (a PUT, or a
//!   completed multipart upload for objects over [`MULTIPART_THRESHOLD`]); `flush` is a no-op;
//! - `put_if_absent` is a PUT with `If-None-Match: *`: "already exists" is `Ok(false)`. For keys
//!   that are not named by their content (everything outside `data/` and `index/`), a created
//!   object is read back and compared, so a lost race that the server did not detect is
//!   reported as `Ok(false)` once the winner's write is visible (see docs/DESIGN.md, "S3 backend");
//! - a missing object is an [`Error::Backend`] with `io::ErrorKind::NotFound`, exactly as the
//!   local backend reports it, so callers' `is_not_found()` checks behave the same;
//! - errors are classified once, here: transport failures, 5xx, 408 and 429 are transient
//!   (retried by [`super::RetryingBackend`]), everything else is not. `object_store`'s own
//!   retries are switched off so that retry policy lives in the decorator only and every
//!   request sent is counted.
//!
//! Must not: cache, retry or assume a local filesystem (`local_path` is `None`).

use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as StorePath;
use object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig, WriteMultipart,
};

mod errors;
mod location;
mod requests;
mod staging;

pub use location::S3Location;
pub use requests::RequestCounts;
pub use staging::sweep_staging;

use errors::store_error;
use requests::{Counters, CountingConnector};
use staging::STAGING_PREFIX;

use super::{Backend, ObjectInfo, ObjectVersion, Staging, check_key};
use crate::error::{Error, Result};
use crate::format::keys;

/// Objects larger than this are uploaded in parts, several at once.
pub const MULTIPART_THRESHOLD: u64 = 16 << 20;
/// Size of one uploaded part.
const PART_SIZE: usize = 8 << 20;
/// Parts of one object in flight at once.
const PART_CONCURRENCY: usize = 4;
/// A last-modified time is trusted as a version only once it is this much older than this
/// machine's clock: HTTP gives it in whole seconds, and the store's clock may differ from ours.
const SETTLE_SECS: i64 = 60;
/// Ranged reads of at least this many bytes are split into parallel GETs...
const SPLIT_READ_AT: u64 = 4 << 20;
/// ...of this many bytes each.
const READ_PART: u64 = 2 << 20;

/// Objects in an S3-compatible bucket, under a prefix.
pub struct S3Backend {
    store: Arc<AmazonS3>,
    runtime: Option<tokio::runtime::Runtime>,
    location: S3Location,
    staging: tempfile::TempDir,
    counters: Arc<Counters>,
}

impl fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Backend")
            .field("location", &self.location.to_string())
            .finish_non_exhaustive()
    }
}

impl Drop for S3Backend {
    fn drop(&mut self) {
        // Never blocks and never panics, even when dropped inside another async runtime.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl S3Backend {
    /// A backend for `url` (`s3://bucket/prefix`), configured by the standard AWS variables
    /// (`AWS_ENDPOINT_URL` or `AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_REGION` or `AWS_DEFAULT_REGION`, `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint).
    /// Sends no request.
    pub fn from_env(url: &str) -> Result<Self> {
        Self::with_options(url, &[])
    }

    /// Like [`S3Backend::from_env`], with settings named as the AWS variables are
    /// (`aws_endpoint`, `aws_access_key_id`, `aws_allow_http`, ...; any case) taking precedence
    /// over the environment. Sends no request.
    pub fn with_options(url: &str, options: &[(&str, &str)]) -> Result<Self> {
        let location = S3Location::parse(url)?;
        let mut builder = AmazonS3Builder::from_env();
        let set = |name: &str| -> bool {
            let env = std::env::var_os(name.to_ascii_uppercase()).is_some_and(|v| !v.is_empty());
            env || options.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
        };
        // A custom endpoint (MinIO, s3s, Ceph...) is addressed path-style unless told otherwise.
        let custom_endpoint = ["aws_endpoint_url", "aws_endpoint", "aws_endpoint_url_s3"]
            .iter()
            .any(|v| set(v));
        if custom_endpoint && !set("aws_virtual_hosted_style_request") {
            builder = builder.with_virtual_hosted_style_request(false);
        }
        if !set("aws_region") && !set("aws_default_region") {
            builder = builder.with_region("us-east-1");
        }
        for (name, value) in options {
            let key = name.to_ascii_lowercase().parse().map_err(|_| {
                Error::InvalidInput(format!(
                    "'{name}' is not an S3 setting for {location}; use the names of the AWS_* variables"
                ))
            })?;
            builder = builder.with_config(key, *value);
        }
        Self::build(builder.with_bucket_name(&location.bucket), location)
    }

    fn build(builder: AmazonS3Builder, location: S3Location) -> Result<Self> {
        let counters = Arc::new(Counters::default());
        let store = builder
            .with_retry(RetryConfig {
                max_retries: 0,
                ..RetryConfig::default()
            })
            .with_http_connector(CountingConnector {
                counters: Arc::clone(&counters),
            })
            .build()
            .map_err(|e| {
                Error::InvalidInput(format!(
                    "cannot configure the S3 client for {location}: {e}; check the AWS_* variables"
                ))
            })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .thread_name("snapkeep-s3")
            .enable_all()
            .build()
            .map_err(|e| Error::io("start the S3 client runtime for", location.to_string(), e))?;
        let tmp = std::env::temp_dir();
        sweep_staging(&tmp, crate::clock::STALE_AFTER);
        let staging = tempfile::Builder::new()
            .prefix(&format!("{STAGING_PREFIX}{}-", std::process::id()))
            .tempdir()
            .map_err(|e| Error::io("create a staging directory in", &tmp, e))?;
        Ok(S3Backend {
            store: Arc::new(store),
            runtime: Some(runtime),
            location,
            staging,
            counters,
        })
    }

    /// Requests sent so far, by kind.
    #[must_use]
    pub fn request_counts(&self) -> RequestCounts {
        self.counters.snapshot()
    }

    /// The bucket and prefix.
    #[must_use]
    pub fn s3_location(&self) -> &S3Location {
        &self.location
    }

    fn path(&self, key: &str) -> Result<StorePath> {
        check_key(key)?;
        Ok(StorePath::from(self.full(key)))
    }

    fn full(&self, key: &str) -> String {
        if self.location.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.location.prefix)
        }
    }

    fn url(&self, key: &str) -> String {
        format!("{}/{key}", self.location)
    }

    /// Runs `fut` on the private runtime and waits for its result on this thread.
    fn run<T, F>(&self, key: &str, fut: F) -> Result<T>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        let Some(rt) = self.runtime.as_ref() else {
            return Err(Error::Poisoned(format!(
                "the S3 client for {} was shut down",
                self.location
            )));
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().map_err(|_| Error::Backend {
            op: "finish a request for",
            key: self.url(key),
            source: std::io::Error::other("the S3 client task stopped"),
            transient: true,
        })?
    }

    fn read_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let end = offset.checked_add(len).ok_or_else(|| {
            Error::InvalidInput(format!("range {offset}+{len} of '{key}' overflows"))
        })?;
        let path = self.path(key)?;
        let store = Arc::clone(&self.store);
        let url = self.url(key);
        let mut data = self.run(key, async move {
            let step = if len >= SPLIT_READ_AT { READ_PART } else { len };
            let ranges: Vec<Range<u64>> = (offset..end)
                .step_by(usize::try_from(step).unwrap_or(usize::MAX))
                .map(|s| s..s.saturating_add(step).min(end))
                .collect();
            let parts = futures_util::future::try_join_all(ranges.into_iter().map(|r| {
                let store = Arc::clone(&store);
                let path = path.clone();
                async move { store.get_range(&path, r).await }
            }))
            .await
            .map_err(|e| store_error("read range of", &url, &e))?;
            let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            for p in parts {
                out.extend_from_slice(&p);
            }
            Ok(out)
        })?;
        // A range past the end comes back short (the remainder): the contract calls it an error.
        if data.len() as u64 != len {
            let got = data.len();
            data.clear();
            return Err(Error::Backend {
                op: "read range of",
                key: self.url(key),
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("range {offset}+{len} is past the object's end ({got} bytes read)"),
                ),
                transient: false,
            });
        }
        Ok(data)
    }

    fn put_mode(&self, key: &str, data: Vec<u8>, mode: PutMode) -> Result<bool> {
        let path = self.path(key)?;
        let store = Arc::clone(&self.store);
        let url = self.url(key);
        self.run(key, async move {
            let opts = PutOptions {
                mode,
                ..PutOptions::default()
            };
            match store.put_opts(&path, PutPayload::from(data), opts).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
                Err(e) => Err(store_error("store", &url, &e)),
            }
        })
    }

    fn upload_multipart(&self, key: &str, file: &Path) -> Result<()> {
        let path = self.path(key)?;
        let store = Arc::clone(&self.store);
        let url = self.url(key);
        let file = file.to_path_buf();
        self.run(key, async move {
            let upload = store
                .put_multipart(&path)
                .await
                .map_err(|e| store_error("start a multipart upload of", &url, &e))?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            let res = feed_parts(&mut writer, &file, &url).await;
            match res {
                Ok(()) => writer
                    .finish()
                    .await
                    .map(|_| ())
                    .map_err(|e| store_error("complete the multipart upload of", &url, &e)),
                Err(e) => {
                    let _ = writer.abort().await;
                    Err(e)
                }
            }
        })
    }
}

/// Streams a staged file into a multipart upload, `PART_CONCURRENCY` parts in flight.
async fn feed_parts(writer: &mut WriteMultipart, file: &Path, url: &str) -> Result<()> {
    use std::io::Read;
    let mut f = std::fs::File::open(file).map_err(|e| Error::io("read staged file", file, e))?;
    let mut buf = vec![0u8; PART_SIZE];
    loop {
        writer
            .wait_for_capacity(PART_CONCURRENCY)
            .await
            .map_err(|e| store_error("upload a part of", url, &e))?;
        // A blocking read of a local file on a runtime worker: bounded (one part) and rare.
        let mut filled = 0;
        while filled < buf.len() {
            match f.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("read staged file", file, e)),
            }
        }
        if filled == 0 {
            return Ok(());
        }
        writer.write(&buf[..filled]);
        if filled < buf.len() {
            return Ok(());
        }
    }
}

/// The ETag, and the last-modified second once it is [`SETTLE_SECS`] old by our clock.
fn version_of(meta: &object_store::ObjectMeta) -> ObjectVersion {
    let secs = meta.last_modified.timestamp();
    let now = crate::clock::now_ns() / 1_000_000_000;
    ObjectVersion {
        etag: meta.e_tag.clone(),
        settled_mtime: (secs <= now - SETTLE_SECS).then_some(secs),
    }
}

impl Backend for S3Backend {
    fn location(&self) -> String {
        self.location.to_string()
    }

    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        self.put_mode(key, data.to_vec(), PutMode::Overwrite)
            .map(|_| ())
    }

    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool> {
        if !self.put_mode(key, data.to_vec(), PutMode::Create)? {
            return Ok(false);
        }
        // Only a name two writers can both choose is read back, so a race the server let
        // through (a check-then-write store) is seen once the winner is visible: the config
        // and the prune lock. Content-named objects (packs, index files) cannot differ from
        // ours, and records, job locks and marks have fresh UUID v7 names.
        if key != keys::CONFIG && key != keys::PRUNE_LOCK {
            return Ok(true);
        }
        match self.get(key) {
            Ok(stored) => Ok(stored == data),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn put_file(&self, key: &str, path: &Path) -> Result<()> {
        let size = std::fs::metadata(path)
            .map_err(|e| Error::io("read staged file", path, e))?
            .len();
        if size > MULTIPART_THRESHOLD {
            self.upload_multipart(key, path)?;
        } else {
            let data = std::fs::read(path).map_err(|e| Error::io("read staged file", path, e))?;
            self.put(key, &data)?;
        }
        std::fs::remove_file(path).map_err(|e| Error::io("remove staged file", path, e))
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.get_versioned(key).map(|(data, _)| data)
    }

    fn get_versioned(&self, key: &str) -> Result<(Vec<u8>, ObjectVersion)> {
        let path = self.path(key)?;
        let store = Arc::clone(&self.store);
        let url = self.url(key);
        self.run(key, async move {
            let res = store
                .get(&path)
                .await
                .map_err(|e| store_error("read", &url, &e))?;
            let version = version_of(&res.meta);
            let bytes = res
                .bytes()
                .await
                .map_err(|e| store_error("read", &url, &e))?;
            Ok((bytes.to_vec(), version))
        })
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        if len == 0 {
            // A zero-length range is not a valid HTTP range: check that the object is there.
            return if self.exists(key)? {
                Ok(Vec::new())
            } else {
                Err(store_error(
                    "read range of",
                    &self.url(key),
                    &object_store::Error::NotFound {
                        path: self.full(key),
                        source: "no such object".into(),
                    },
                ))
            };
        }
        self.read_range(key, offset, len)
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        // object_store lists whole path segments: list the directory part, filter the rest.
        let dir = prefix.rfind('/').map_or("", |i| &prefix[..i]);
        let list_path = match (self.location.prefix.is_empty(), dir.is_empty()) {
            (true, true) => None,
            (true, false) => Some(StorePath::from(dir)),
            (false, true) => Some(StorePath::from(self.location.prefix.as_str())),
            (false, false) => Some(StorePath::from(self.full(dir))),
        };
        let store = Arc::clone(&self.store);
        let url = self.url(prefix);
        let metas = self.run(prefix, async move {
            store
                .list(list_path.as_ref())
                .try_collect::<Vec<_>>()
                .await
                .map_err(|e| store_error("list", &url, &e))
        })?;
        let strip = if self.location.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.location.prefix)
        };
        let mut out = Vec::with_capacity(metas.len());
        for m in metas {
            let Some(key) = m.location.as_ref().strip_prefix(&strip) else {
                continue;
            };
            if key.starts_with(prefix) && check_key(key).is_ok() {
                out.push(ObjectInfo {
                    key: key.to_owned(),
                    size: m.size,
                    version: version_of(&m),
                });
            }
        }
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        let store = Arc::clone(&self.store);
        let url = self.url(key);
        self.run(key, async move {
            match store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(store_error("delete", &url, &e)),
            }
        })
    }

    fn exists(&self, key: &str) -> Result<bool> {
        let path = self.path(key)?;
        let store = Arc::clone(&self.store);
        let url = self.url(key);
        self.run(key, async move {
            match store.head(&path).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(store_error("stat", &url, &e)),
            }
        })
    }

    fn staging(&self) -> Staging {
        Staging {
            dir: self.staging.path().to_path_buf(),
            shared: false,
        }
    }
}
