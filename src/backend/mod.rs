//! The storage seam: a small, synchronous store of immutable, named objects.
//!
//! Owns: the [`Backend`] trait, its implementations (`local`, `memory`, and `s3` with the cargo
//! feature `s3`), the decorators that wrap any backend: fault injection (`faulty`), retries
//! with backoff (`retry`) and a local cache of metadata objects (`cache`), and the power-cut
//! store (`crash`).
//! Assumptions every implementation must meet (and nothing more is assumed):
//! - `put` makes a whole object visible atomically: a reader sees all of it or none of it;
//! - `put_if_absent` does the same and fails (returns `false`) when the key exists;
//! - `get_range` reads a byte range of an existing object;
//! - `list` returns every object whose key starts with a prefix, with its size;
//! - no rename, append or partial overwrite is ever needed.
//!
//! Must not: cache, retry or inject faults. Those are decorators that wrap a backend.
//!
//! Keys are `/`-separated ASCII: `config`, `data/<2 hex>/<pack id>`, `index/<index id>`,
//! `snapshots/<uuid>`, `locks/<name>`.

#[macro_use]
mod forward;

mod cache;
mod crash;
mod faulty;
mod local;
mod memory;
mod retry;
#[cfg(feature = "s3")]
mod s3;

use std::path::{Path, PathBuf};

pub use self::cache::{CachingBackend, default_cache_root};
pub use self::crash::{CrashBackend, not_durable};
pub use self::faulty::{Fault, FaultyBackend};
pub use self::local::LocalBackend;
pub use self::memory::MemoryBackend;
pub use self::retry::{RetryPolicy, RetryingBackend};
#[cfg(feature = "s3")]
pub use self::s3::{MULTIPART_THRESHOLD, RequestCounts, S3Backend, S3Location};

use crate::error::{Error, Result};

/// One listed object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// The stored version, as far as the listing tells (unknown for most stores).
    pub version: ObjectVersion,
}

impl ObjectInfo {
    /// An object of unknown version.
    #[must_use]
    pub fn new(key: impl Into<String>, size: u64) -> Self {
        ObjectInfo {
            key: key.into(),
            size,
            version: ObjectVersion::default(),
        }
    }
}

/// What tells one stored version of an object from another, as far as the store says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectVersion {
    /// The store's entity tag (S3 ETag), when it gives one.
    pub etag: Option<String>,
    /// The last-modified time in whole seconds, given only once it is old enough that no later
    /// write can carry the same value (the S3 backend: a minute older than this machine's clock).
    pub settled_mtime: Option<i64>,
}

impl ObjectVersion {
    /// Whether it says anything.
    #[must_use]
    pub fn is_known(&self) -> bool {
        self.etag.is_some() || self.settled_mtime.is_some()
    }

    /// Whether `self` (from a listing) names the same stored bytes as `cached` (from the read
    /// that fetched them): equal ETags when the listing has one, else equal settled times.
    #[must_use]
    pub fn same_as(&self, cached: &ObjectVersion) -> bool {
        match (&self.etag, &cached.etag) {
            (Some(a), Some(b)) => a == b,
            (Some(_), None) => false,
            (None, _) => matches!(
                (self.settled_mtime, cached.settled_mtime),
                (Some(a), Some(b)) if a == b
            ),
        }
    }
}

/// Where large objects are staged before [`Backend::put_file`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Staging {
    /// The directory, on the same filesystem as the objects when the store is local (so the put
    /// is a rename).
    pub dir: PathBuf,
    /// Whether the repository owns the directory and shares it between processes (`tmp/` of a
    /// local repository), so that a prune may remove what stopped processes left there. A
    /// private or system-wide directory is never swept.
    pub shared: bool,
}

/// A synchronous object store. Objects are immutable once written.
///
/// Seven methods make a store; the rest have defaults that serve any store, and exist because
/// a measured need justified each (named beside it). A decorator forwards what it does not
/// change with [`forward_backend!`](crate::forward_backend), never by hand.
pub trait Backend: Send + Sync {
    /// Human-readable location for messages (a path or URL).
    fn location(&self) -> String;

    /// Stores `data` under `key`, replacing nothing that differs: objects are written once.
    fn put(&self, key: &str, data: &[u8]) -> Result<()>;

    /// Stores `data` under `key` unless the key exists; returns whether it was stored.
    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool>;

    /// Reads a whole object.
    fn get(&self, key: &str) -> Result<Vec<u8>>;

    /// Reads `len` bytes at `offset` of an object; a range past its end is an error.
    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>>;

    /// Every object whose key starts with `prefix`, with its size (and version when known).
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;

    /// Deletes an object; deleting a missing object is not an error.
    fn delete(&self, key: &str) -> Result<()>;

    /// Whether an object exists. The default lists the key (a store with a cheaper stat, such
    /// as S3's HEAD or a local `stat`, says so).
    fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.list(key)?.iter().any(|o| o.key == key))
    }

    /// Stores the content of a local file under `key`; the file is consumed (moved or
    /// deleted). The object is visible whole at once, but may become durable only at the
    /// next [`Backend::flush`]. Need: a pack is staged on disk and moved (local) or streamed
    /// in parts (S3), never held in memory whole. The default reads the file and calls
    /// [`Backend::put`].
    fn put_file(&self, key: &str, path: &Path) -> Result<()> {
        let data = std::fs::read(path).map_err(|e| Error::io("read staged file", path, e))?;
        self.put(key, &data)?;
        std::fs::remove_file(path).map_err(|e| Error::io("remove staged file", path, e))
    }

    /// Makes the listed objects, stored with `put_file`, durable (they may be pending until
    /// this returns). Each caller flushes its own keys, so concurrent writers never rely on
    /// one another's flush. The commit protocol calls it before writing anything that
    /// references those objects. Need: one directory sync for a batch of packs.
    fn flush(&self, _keys: &[String]) -> Result<()> {
        Ok(())
    }

    /// Like [`Backend::get`], with the version of the bytes returned (read in the same
    /// request). Need: the cache keeps a snapshot record only while a listing shows the same
    /// version. The default knows no version.
    fn get_versioned(&self, key: &str) -> Result<(Vec<u8>, ObjectVersion)> {
        Ok((self.get(key)?, ObjectVersion::default()))
    }

    /// Like [`Backend::get_range`], for a range that later runs will read again (the tree
    /// blobs of a pack): a caching decorator may keep it. Need: a no-change snapshot over S3
    /// reads every tree of its parent. The default reads it.
    fn get_range_hot(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.get_range(key, offset, len)
    }

    /// Like [`Backend::get_range_hot`] for the range `ranges[want]` (offset, length), where
    /// `ranges` are the ranges of `key` that this and later runs will read too (the tree blobs
    /// of one pack): a caching decorator that does not hold the wanted range fetches every
    /// range it lacks at once, runs of nearby ranges in one request each, and keeps them all.
    /// Need: a walk with an empty cache makes one request per tree pack, not one per tree.
    /// The default reads the one range.
    fn get_range_hot_among(
        &self,
        key: &str,
        ranges: &[(u64, u64)],
        want: usize,
    ) -> Result<Vec<u8>> {
        let Some(&(offset, len)) = ranges.get(want) else {
            return Err(Error::InvalidInput(format!(
                "range {want} of {key} asked among {} ranges",
                ranges.len()
            )));
        };
        self.get_range_hot(key, offset, len)
    }

    /// Bytes at `offset` of `key`, just written, that later runs will read with
    /// [`Backend::get_range_hot`] (the tree blobs of a pack being uploaded): a caching decorator
    /// keeps them as if it had read them. Need: a no-change snapshot over S3 right after a
    /// snapshot makes no tree requests. The default keeps nothing.
    fn keep_hot(&self, _key: &str, _offset: u64, _bytes: &[u8]) {}

    /// Where large objects are staged before [`Backend::put_file`]. The default: the system
    /// temp directory, not shared.
    fn staging(&self) -> Staging {
        Staging {
            dir: std::env::temp_dir(),
            shared: false,
        }
    }

    /// The local file that holds `key`, when objects are plain files. Need: the index is
    /// memory-mapped in place. `None` for remote stores.
    fn local_path(&self, _key: &str) -> Option<PathBuf> {
        None
    }
}

/// A random token of this process (8 hex digits), part of every staged file's name next to
/// the pid: a pid is reused (every container's first process is pid 1), the token tells a
/// leftover of an earlier process from this one's files.
#[must_use]
pub fn process_token() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| {
        let hex = uuid::Uuid::now_v7().simple().to_string();
        hex[hex.len() - 8..].to_owned()
    })
}

/// Rejects keys that could escape a directory-based store.
pub(crate) fn check_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..")
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "'{key}' is not a valid object key"
        )))
    }
}

#[doc(hidden)]
pub mod contract {
    //! The behaviour every backend must show; each implementation's tests call this (the S3
    //! backend's from `tests/s3_backend.rs`, hence public). Panics on the first violation.
    use super::Backend;

    /// Checks `b`, which must hold no object under `data/`, `index/` or `snapshots/`.
    pub fn check(b: &dyn Backend) {
        assert!(!b.exists("data/aa/x1").expect("exists"));
        b.put("data/aa/x1", b"hello world").expect("put");
        assert!(b.exists("data/aa/x1").expect("exists"));
        assert_eq!(b.get("data/aa/x1").expect("get"), b"hello world");
        assert_eq!(b.get_range("data/aa/x1", 6, 5).expect("range"), b"world");
        assert!(b.get_range("data/aa/x1", 6, 50).is_err());
        assert!(!b.put_if_absent("data/aa/x1", b"other").expect("pia"));
        assert_eq!(b.get("data/aa/x1").expect("get"), b"hello world");
        assert!(b.put_if_absent("data/bb/x2", b"two").expect("pia"));
        b.put("index/i1", b"idx").expect("put");
        let mut keys: Vec<String> = b
            .list("data/")
            .expect("list")
            .into_iter()
            .map(|o| o.key)
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            vec!["data/aa/x1".to_string(), "data/bb/x2".to_string()]
        );
        // A prefix that ends inside a name matches by string, not by whole path segment.
        let partial: Vec<String> = b
            .list("data/a")
            .expect("list")
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(partial, vec!["data/aa/x1".to_string()]);
        assert!(b.list("nothing/").expect("list").is_empty());
        // Versioned reads agree with plain ones, and a listing's version names the bytes read.
        let (bytes, version) = b.get_versioned("data/bb/x2").expect("get_versioned");
        assert_eq!(bytes, b"two");
        let listed = b.list("data/bb/").expect("list");
        assert_eq!(listed.len(), 1);
        if listed[0].version.is_known() {
            assert!(
                listed[0].version.same_as(&version),
                "{listed:?} vs {version:?}"
            );
        }
        // A replaced object (same size) never looks like its old version.
        b.put("snapshots/s1", b"first").expect("put");
        let (_, v1) = b.get_versioned("snapshots/s1").expect("get_versioned");
        b.put("snapshots/s1", b"other").expect("replace");
        let (now, _) = b.get_versioned("snapshots/s1").expect("get_versioned");
        assert_eq!(now, b"other");
        for o in b.list("snapshots/").expect("list") {
            assert_eq!(o.key, "snapshots/s1");
            assert!(
                !o.version.same_as(&v1),
                "a replaced object kept its version: {o:?}"
            );
        }
        assert_eq!(
            b.get_range_hot("data/bb/x2", 1, 2).expect("hot range"),
            b"wo"
        );
        assert!(
            b.get_range("data/bb/x2", 3, 0)
                .expect("empty range")
                .is_empty()
        );
        let listed = b.list("index/").expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].key.as_str(), listed[0].size), ("index/i1", 3));
        b.delete("data/aa/x1").expect("delete");
        b.delete("data/aa/x1").expect("delete twice");
        assert!(!b.exists("data/aa/x1").expect("exists"));
        assert!(b.get("data/aa/x1").expect_err("gone").is_not_found());
        assert!(b.put("../evil", b"x").is_err());
        let staged = b
            .staging()
            .dir
            .join(format!("stage-test-{}", std::process::id()));
        std::fs::write(&staged, b"from file").expect("stage");
        b.put_file("data/cc/x3", &staged).expect("put_file");
        b.flush(&["data/cc/x3".to_string()]).expect("flush");
        assert_eq!(b.get("data/cc/x3").expect("get"), b"from file");
        assert!(!staged.exists());
    }
}
