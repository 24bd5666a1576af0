//! A decorator that keeps the repository's metadata objects in a local directory, so that
//! `list`, `ls`, `diff` and an incremental snapshot against a remote store make a handful of
//! requests instead of one per index file, snapshot record and tree.
//!
//! Owns: [`CachingBackend`], the cache directory `<cache root>/<repo id hex>/` (see
//! [`default_cache_root`]) and the format of its entries.
//!
//! What is cached, and the rule that makes each entry valid:
//! - `config`: held in memory once read; it is written once (put-if-absent) and never replaced;
//! - `index/<id>`: content-addressed; an entry is used only if its bytes hash (blake3) to `<id>`;
//! - `snapshots/<uuid>`: records are replaced whole by `tag`, so the name is not enough. An entry
//!   stores the record's size and version tag (the S3 ETag) and is used only when a listing of
//!   `snapshots/` made by this process gave the same size and tag for that key; with no such
//!   listing, or a store without tags, the record is fetched. A record forgotten since is dropped
//!   from the cache by the next listing;
//! - tree blobs (ranges read with [`Backend::get_range_hot`], and those a pack writer hands to
//!   [`Backend::keep_hot`] as it stages their pack for upload, so the next snapshot finds its parent's
//!   trees here): packs are immutable and named by their trailer's hash, so (pack, offset,
//!   length) names fixed bytes. Each blob is also checked
//!   against its id by the reader. A pack deleted through this cache, or missing from a listing
//!   of `data/` (prune and verify make one), takes its tree entries with it, so the cache holds
//!   no more than the trees the repository still has.
//!
//! Every entry carries a blake3 checksum of itself. An entry that is unreadable, damaged or does
//! not match its rule is deleted and the object is fetched again: the cache never causes an
//! error. Entries are written to a temp name and renamed, so concurrent processes sharing a cache
//! see whole entries only. A cache directory that cannot be created turns the cache off.
//!
//! Must not: serve data chunks (restore and `verify --read-data` always read the store), or
//! answer `exists`/`list` from the cache.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

mod entry;
#[cfg(test)]
mod tests;

use self::entry::{Slot, decode_version, encode_version, pack_name, slot};
use super::{Backend, ObjectInfo, ObjectVersion};
use crate::error::Result;
use crate::format::keys::{self};
use crate::format::repo_config::StoredConfig;
use crate::id::IndexId;

const MAGIC: &[u8; 8] = b"SKCACHE1";

/// `$XDG_CACHE_HOME/snapkeep`, else `~/.cache/snapkeep`; `None` without either variable.
#[must_use]
pub fn default_cache_root() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join("snapkeep"));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|h| PathBuf::from(h).join(".cache/snapkeep"))
}

/// Hits and misses of the cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Reads answered from the cache.
    pub hits: u64,
    /// Cacheable reads that went to the store.
    pub misses: u64,
    /// Entries found damaged or stale and deleted.
    pub dropped: u64,
}

/// Wraps a (remote) backend with a local cache of its metadata objects.
pub struct CachingBackend {
    inner: Arc<dyn Backend>,
    dir: Option<PathBuf>,
    config: Mutex<Option<Vec<u8>>>,
    /// `snapshots/<name>` → (size, version) from this process's latest listing.
    listed: Mutex<HashMap<String, (u64, ObjectVersion)>>,
    hits: AtomicU64,
    misses: AtomicU64,
    dropped: AtomicU64,
    seq: AtomicU64,
    /// One lock per pack whose tree ranges are being fetched: threads that miss in the same
    /// pack at once wait for one fetch instead of each making it.
    fetching: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

/// Tree ranges of a pack at most this far apart are fetched in one request (the bytes
/// between are read and dropped).
const SPAN_GAP: u64 = 256 << 10;

/// Largest request of a tree-pack fetch: longer runs of tree ranges take several.
const SPAN_MAX: u64 = 16 << 20;

impl CachingBackend {
    /// A cache of `inner` in `dir` (created 0700). If `dir` cannot be created, nothing is cached.
    #[must_use]
    pub fn new(inner: Arc<dyn Backend>, dir: PathBuf) -> Self {
        let usable = ["index", "snapshots", "trees"].iter().all(|sub| {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir.join(sub))
                .is_ok()
        });
        Self::with_dir(inner, usable.then_some(dir))
    }

    fn with_dir(inner: Arc<dyn Backend>, dir: Option<PathBuf>) -> Self {
        CachingBackend {
            inner,
            dir,
            config: Mutex::new(None),
            listed: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            seq: AtomicU64::new(0),
            fetching: Mutex::new(HashMap::new()),
        }
    }

    /// A cache of the repository on `inner` in `<root>/<repo id hex>`: reads the config (one
    /// request) to learn the id and keeps it. Without a readable config (no repository yet, or a
    /// damaged one) nothing is cached and every call goes to `inner`, so the caller's own open
    /// reports the problem as it would without a cache.
    pub fn for_repository(inner: Arc<dyn Backend>, root: &Path) -> Result<Self> {
        let bytes = match inner.get(keys::CONFIG) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Ok(Self::with_dir(inner, None)),
            Err(e) => return Err(e),
        };
        let Ok(config) = StoredConfig::parse(&bytes) else {
            return Ok(Self::with_dir(inner, None));
        };
        let cache = Self::new(inner, root.join(hex::encode(config.id())));
        *cache.config.lock().unwrap_or_else(PoisonError::into_inner) = Some(bytes);
        Ok(cache)
    }

    /// The cache directory, when caching is on.
    #[must_use]
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Hits and misses so far.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }

    /// Reads an entry: `(tag, payload)`, or `None` (a damaged entry is deleted).
    fn read_entry(&self, path: &Path) -> Option<(String, Vec<u8>)> {
        let bytes = std::fs::read(path).ok()?;
        let parsed = (|| {
            let body_len = bytes.len().checked_sub(32)?;
            let (body, sum) = bytes.split_at(body_len);
            if body.get(..8)? != MAGIC || blake3::hash(body).as_bytes() != sum {
                return None;
            }
            let tag_len = usize::from(u16::from_le_bytes(body.get(8..10)?.try_into().ok()?));
            let tag = std::str::from_utf8(body.get(10..10 + tag_len)?).ok()?;
            Some((tag.to_owned(), body.get(10 + tag_len..)?.to_vec()))
        })();
        if parsed.is_none() {
            self.drop_entry(path);
        }
        parsed
    }

    fn drop_entry(&self, path: &Path) {
        if std::fs::remove_file(path).is_ok() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes an entry atomically (temp name + rename); failures only mean no entry.
    fn write_entry(&self, path: &Path, tag: &str, payload: &[u8]) {
        let Ok(tag_len) = u16::try_from(tag.len()) else {
            return;
        };
        let Some(dir) = path.parent() else { return };
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".tmp-{}-{n}", std::process::id()));
        let mut body = Vec::with_capacity(10 + tag.len() + payload.len() + 32);
        body.extend_from_slice(MAGIC);
        body.extend_from_slice(&tag_len.to_le_bytes());
        body.extend_from_slice(tag.as_bytes());
        body.extend_from_slice(payload);
        let sum = blake3::hash(&body);
        body.extend_from_slice(sum.as_bytes());
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(&body))
            .and_then(|()| std::fs::rename(&tmp, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }

    fn hit<T>(&self, v: T) -> T {
        self.hits.fetch_add(1, Ordering::Relaxed);
        v
    }

    fn get_index(&self, dir: &Path, id: IndexId, key: &str) -> Result<Vec<u8>> {
        let path = dir.join("index").join(id.to_string());
        if let Some((_, bytes)) = self.read_entry(&path) {
            if IndexId::of(&bytes) == id {
                return Ok(self.hit(bytes));
            }
            self.drop_entry(&path);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let bytes = self.inner.get(key)?;
        // A stored file that does not match its name is returned as it is (the index reports
        // it) but never cached.
        if IndexId::of(&bytes) == id {
            self.write_entry(&path, "", &bytes);
        }
        Ok(bytes)
    }

    fn get_snapshot(&self, dir: &Path, name: &str, key: &str) -> Result<(Vec<u8>, ObjectVersion)> {
        let path = dir.join("snapshots").join(name);
        let listed = self
            .listed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned();
        if let Some((size, version)) = listed.filter(|(_, v)| v.is_known())
            && let Some((tag, bytes)) = self.read_entry(&path)
        {
            let cached = decode_version(&tag);
            if version.same_as(&cached) && bytes.len() as u64 == size {
                return Ok(self.hit((bytes, cached)));
            }
            self.drop_entry(&path);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        // Bytes and version come from one read, so an entry never pairs a version with bytes
        // of another.
        let (bytes, version) = self.inner.get_versioned(key)?;
        if version.is_known() {
            self.write_entry(&path, &encode_version(&version), &bytes);
        }
        Ok((bytes, version))
    }

    /// Forgets cache entries of `sub` whose names the store no longer lists.
    /// Removes the tree entries (`trees/<pack>-<offset>-<len>`) whose pack `gone` selects.
    fn drop_trees(dir: &Path, gone: impl Fn(&str) -> bool) {
        let Ok(rd) = std::fs::read_dir(dir.join("trees")) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(pack) = name.to_str().and_then(|n| n.split('-').next()) else {
                continue;
            };
            if gone(pack) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    fn drop_unlisted(dir: &Path, sub: &str, listed: &[ObjectInfo]) {
        let Ok(rd) = std::fs::read_dir(dir.join(sub)) else {
            return;
        };
        let prefix = format!("{sub}/");
        let names: std::collections::HashSet<&str> = listed
            .iter()
            .filter_map(|o| o.key.strip_prefix(&prefix))
            .collect();
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if !names.contains(name) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

impl Backend for CachingBackend {
    forward_backend!(inner: location);

    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        self.inner.put(key, data)?;
        if let (Some(dir), Slot::Snapshot(name)) = (&self.dir, slot(key)) {
            // Replaced (tag): the old entry is stale; the next read fetches and caches anew.
            self.listed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&name);
            let _ = std::fs::remove_file(dir.join("snapshots").join(name));
        }
        Ok(())
    }

    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool> {
        let stored = self.inner.put_if_absent(key, data)?;
        if stored && let (Some(dir), Slot::Index(id)) = (&self.dir, slot(key)) {
            // Written through: the next open of the index reads it from here.
            if IndexId::of(data) == id {
                self.write_entry(&dir.join("index").join(id.to_string()), "", data);
            }
        }
        Ok(stored)
    }

    forward_backend!(inner: put_file, flush, exists, staging, local_path);

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        if key == keys::CONFIG {
            if let Some(c) = self
                .config
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
            {
                return Ok(self.hit(c));
            }
            let c = self.inner.get(key)?;
            *self.config.lock().unwrap_or_else(PoisonError::into_inner) = Some(c.clone());
            return Ok(c);
        }
        match (&self.dir, slot(key)) {
            (Some(dir), Slot::Index(id)) => self.get_index(dir, id, key),
            (Some(dir), Slot::Snapshot(name)) => self.get_snapshot(dir, &name, key).map(|(b, _)| b),
            _ => self.inner.get(key),
        }
    }

    fn get_versioned(&self, key: &str) -> Result<(Vec<u8>, ObjectVersion)> {
        match (&self.dir, slot(key)) {
            (Some(dir), Slot::Snapshot(name)) => self.get_snapshot(dir, &name, key),
            _ => self.inner.get_versioned(key),
        }
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.inner.get_range(key, offset, len)
    }

    fn get_range_hot(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let Some(dir) = &self.dir else {
            return self.inner.get_range(key, offset, len);
        };
        let Some(pack) = pack_name(key) else {
            return self.inner.get_range(key, offset, len);
        };
        let path = dir.join("trees").join(format!("{pack}-{offset}-{len}"));
        if let Some((_, bytes)) = self.read_entry(&path) {
            if bytes.len() as u64 == len {
                return Ok(self.hit(bytes));
            }
            self.drop_entry(&path);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let bytes = self.inner.get_range(key, offset, len)?;
        self.write_entry(&path, "", &bytes);
        Ok(bytes)
    }

    fn get_range_hot_among(
        &self,
        key: &str,
        ranges: &[(u64, u64)],
        want: usize,
    ) -> Result<Vec<u8>> {
        let (Some(dir), Some(pack), Some(&(offset, len))) =
            (&self.dir, pack_name(key), ranges.get(want))
        else {
            return match ranges.get(want) {
                Some(&(offset, len)) => self.get_range_hot(key, offset, len),
                None => self.inner.get_range_hot_among(key, ranges, want),
            };
        };
        let trees = dir.join("trees");
        let path_of = |(off, len): (u64, u64)| trees.join(format!("{pack}-{off}-{len}"));
        let cached = |path: &Path| -> Option<Vec<u8>> {
            let (_, bytes) = self.read_entry(path)?;
            if bytes.len() as u64 == len {
                return Some(bytes);
            }
            self.drop_entry(path);
            None
        };
        let wanted = path_of((offset, len));
        if let Some(bytes) = cached(&wanted) {
            return Ok(self.hit(bytes));
        }
        let gate = Arc::clone(
            self.fetching
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(pack.to_owned())
                .or_default(),
        );
        let _fetching = gate.lock().unwrap_or_else(PoisonError::into_inner);
        // Another thread may have fetched the pack's trees while this one waited.
        if let Some(bytes) = cached(&wanted) {
            return Ok(self.hit(bytes));
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let spans = spans(ranges);
        let mut out = None;
        // The span that holds the wanted range first, its failure the caller's; the others
        // only when they hold a range not kept yet, their failures leaving those uncached.
        let first = spans
            .iter()
            .position(|sp| sp.members.contains(&want))
            .unwrap_or_default();
        for (k, sp) in std::iter::once(first)
            .chain((0..spans.len()).filter(|k| *k != first))
            .map(|k| (k, &spans[k]))
        {
            if k != first && sp.members.iter().all(|&m| path_of(ranges[m]).exists()) {
                continue;
            }
            let bytes = match self.inner.get_range(key, sp.start, sp.end - sp.start) {
                Ok(b) if b.len() as u64 == sp.end - sp.start => b,
                Ok(_) if k == first => return self.inner.get_range(key, offset, len),
                Err(e) if k == first => return Err(e),
                _ => continue,
            };
            for &m in &sp.members {
                let (off, n) = ranges[m];
                let from = usize::try_from(off - sp.start).unwrap_or(usize::MAX);
                let Some(slice) =
                    bytes.get(from..from.saturating_add(usize::try_from(n).unwrap_or(usize::MAX)))
                else {
                    continue;
                };
                self.write_entry(&path_of((off, n)), "", slice);
                if m == want {
                    out = Some(slice.to_vec());
                }
            }
        }
        match out {
            Some(bytes) => Ok(bytes),
            None => self.inner.get_range(key, offset, len),
        }
    }

    fn keep_hot(&self, key: &str, offset: u64, bytes: &[u8]) {
        if let (Some(dir), Some(pack)) = (&self.dir, pack_name(key)) {
            let path = dir
                .join("trees")
                .join(format!("{pack}-{offset}-{}", bytes.len()));
            self.write_entry(&path, "", bytes);
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let listed = self.inner.list(prefix)?;
        if let Some(dir) = &self.dir {
            let mut map = self.listed.lock().unwrap_or_else(PoisonError::into_inner);
            for o in &listed {
                if let Slot::Snapshot(name) = slot(&o.key) {
                    map.insert(name, (o.size, o.version.clone()));
                }
            }
            drop(map);
            for sub in ["snapshots", "index"] {
                if prefix == format!("{sub}/") {
                    Self::drop_unlisted(dir, sub, &listed);
                }
            }
            if prefix == keys::Kind::Pack.prefix() {
                // Tree entries of packs that are gone (a prune deleted them) go too, so the
                // cache stays as large as the trees the repository still holds.
                let packs: std::collections::HashSet<&str> = listed
                    .iter()
                    .filter_map(|o| o.key.rsplit('/').next())
                    .collect();
                Self::drop_trees(dir, |pack| !packs.contains(pack));
            }
        }
        Ok(listed)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key)?;
        if let Some(dir) = &self.dir {
            match slot(key) {
                Slot::Index(id) => {
                    let _ = std::fs::remove_file(dir.join("index").join(id.to_string()));
                }
                Slot::Snapshot(name) => {
                    self.listed
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&name);
                    let _ = std::fs::remove_file(dir.join("snapshots").join(name));
                }
                Slot::Other => {
                    if let Some(pack) = pack_name(key) {
                        Self::drop_trees(dir, |p| p == pack);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Ranges of one pack fetched in one request: `start..end` and the indices of the ranges it
/// covers.
struct Span {
    start: u64,
    end: u64,
    members: Vec<usize>,
}

/// `ranges` (offset, length) grouped by offset into spans: a range joins the span before it
/// when the gap is at most [`SPAN_GAP`] and the span stays within [`SPAN_MAX`] (a single
/// longer range is a span alone).
fn spans(ranges: &[(u64, u64)]) -> Vec<Span> {
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    order.sort_by_key(|&k| ranges[k].0);
    let mut out: Vec<Span> = Vec::new();
    for k in order {
        let (off, len) = ranges[k];
        let end = off.saturating_add(len);
        if let Some(sp) = out.last_mut()
            && off <= sp.end.saturating_add(SPAN_GAP)
            && end.max(sp.end) - sp.start <= SPAN_MAX
        {
            sp.end = sp.end.max(end);
            sp.members.push(k);
            continue;
        }
        out.push(Span {
            start: off,
            end,
            members: vec![k],
        });
    }
    out
}
