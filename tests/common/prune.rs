//! Helpers shared by the prune tests (`crash_during_prune`, `kill_during_prune`,
//! `concurrent_prune`): comparing a restored tree with the source state it was taken of, and a
//! backend decorator that runs a callback just before a chosen write (a deterministic
//! interleaving of "something else happens now").

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use snapkeep::backend::{Backend, ObjectInfo};

/// Every regular file below `dir`, by path relative to `dir`, with its bytes.
/// Directories and symlinks other than the files' parents are not compared (the tests make
/// none).
#[must_use]
pub fn tree_contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let ft = e.file_type().expect("file type");
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let rel = e.path().strip_prefix(dir).expect("below dir").to_path_buf();
                out.insert(rel, fs::read(e.path()).expect("read file"));
            }
        }
    }
    out
}

/// `Ok` when `restored` holds exactly the files of `expected` (names and bytes); otherwise a
/// description of the first differences.
pub fn same_tree(expected: &Path, restored: &Path) -> Result<(), String> {
    let a = tree_contents(expected);
    let b = tree_contents(restored);
    if a == b {
        return Ok(());
    }
    let mut diffs = Vec::new();
    for (p, bytes) in &a {
        match b.get(p) {
            None => diffs.push(format!("{} missing", p.display())),
            Some(other) if other != bytes => diffs.push(format!(
                "{} differs ({} vs {} bytes)",
                p.display(),
                bytes.len(),
                other.len()
            )),
            Some(_) => {}
        }
    }
    for p in b.keys() {
        if !a.contains_key(p) {
            diffs.push(format!("{} is extra", p.display()));
        }
    }
    diffs.truncate(5);
    Err(diffs.join("; "))
}

/// Total size of the pack files of a local repository.
#[must_use]
pub fn pack_bytes(repo_dir: &Path) -> u64 {
    super::pack_files(repo_dir)
        .iter()
        .map(|p| fs::metadata(p).expect("stat pack").len())
        .sum()
}

/// A callback run once, just before a write.
pub type Hook = Box<dyn FnOnce(&str) + Send>;

/// Wraps a backend and runs `hook` just before its `at`-th write operation (0-based; counted
/// like `FaultyBackend`: `put`, `put_if_absent`, `put_file`, `flush`, `delete`), then lets
/// the write go through. The hook gets the key of that write.
pub struct HookBackend {
    inner: Arc<dyn Backend>,
    at: u64,
    /// When set, the hook runs before the first write of a key with this prefix instead.
    prefix: Option<String>,
    ops: AtomicU64,
    hook: Mutex<Option<Hook>>,
    /// Key of the write the hook ran before.
    pub fired_at: Mutex<Option<String>>,
}

impl HookBackend {
    #[must_use]
    pub fn new(inner: Arc<dyn Backend>, at: u64, hook: Hook) -> Self {
        HookBackend {
            inner,
            at,
            prefix: None,
            ops: AtomicU64::new(0),
            hook: Mutex::new(Some(hook)),
            fired_at: Mutex::new(None),
        }
    }

    /// Runs `hook` just before the first write of a key that starts with `prefix`.
    #[must_use]
    pub fn before_key(inner: Arc<dyn Backend>, prefix: &str, hook: Hook) -> Self {
        let mut b = Self::new(inner, u64::MAX, hook);
        b.prefix = Some(prefix.to_owned());
        b
    }

    /// Write operations seen so far.
    #[must_use]
    pub fn ops(&self) -> u64 {
        self.ops.load(Ordering::SeqCst)
    }

    /// Whether the hook ran.
    #[must_use]
    pub fn fired(&self) -> bool {
        self.fired_at.lock().expect("lock").is_some()
    }

    fn tick(&self, key: &str) {
        let n = self.ops.fetch_add(1, Ordering::SeqCst);
        let now = match &self.prefix {
            Some(p) => key.starts_with(p.as_str()),
            None => n == self.at,
        };
        if now {
            let hook = self.hook.lock().expect("lock").take();
            if let Some(h) = hook {
                *self.fired_at.lock().expect("lock") = Some(key.to_owned());
                h(key);
            }
        }
    }
}

impl Backend for HookBackend {
    fn location(&self) -> String {
        format!("hook({})", self.inner.location())
    }
    fn put(&self, key: &str, data: &[u8]) -> snapkeep::Result<()> {
        self.tick(key);
        self.inner.put(key, data)
    }
    fn put_if_absent(&self, key: &str, data: &[u8]) -> snapkeep::Result<bool> {
        self.tick(key);
        self.inner.put_if_absent(key, data)
    }
    fn put_file(&self, key: &str, path: &Path) -> snapkeep::Result<()> {
        self.tick(key);
        self.inner.put_file(key, path)
    }
    fn flush(&self, keys: &[String]) -> snapkeep::Result<()> {
        self.tick(keys.first().map_or("(flush)", String::as_str));
        self.inner.flush(keys)
    }
    fn delete(&self, key: &str) -> snapkeep::Result<()> {
        self.tick(key);
        self.inner.delete(key)
    }
    snapkeep::forward_backend!(inner: get, get_versioned, get_range, get_range_hot, list, exists, staging, local_path);
}

/// Wraps a backend; once armed, the next `list` of `prefix` takes its listing, then runs the
/// hook, then returns the listing taken before the hook ran: the caller acts on a listing that
/// the hook made stale (what a reader sees when another process works between its `list` and
/// its next read).
pub struct ListHookBackend {
    inner: Arc<dyn Backend>,
    prefix: String,
    hook: Mutex<Option<Hook>>,
    /// Whether the hook ran.
    pub fired: std::sync::atomic::AtomicBool,
}

impl ListHookBackend {
    #[must_use]
    pub fn new(inner: Arc<dyn Backend>, prefix: &str) -> Self {
        ListHookBackend {
            inner,
            prefix: prefix.to_owned(),
            hook: Mutex::new(None),
            fired: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Runs `hook` at the next listing of the prefix.
    pub fn arm(&self, hook: Hook) {
        *self.hook.lock().expect("lock") = Some(hook);
    }
}

impl Backend for ListHookBackend {
    fn location(&self) -> String {
        format!("list-hook({})", self.inner.location())
    }
    snapkeep::forward_backend!(inner: put, put_if_absent, put_file, flush, get, get_versioned, get_range, get_range_hot, delete, exists, staging, local_path);
    fn list(&self, prefix: &str) -> snapkeep::Result<Vec<ObjectInfo>> {
        let listing = self.inner.list(prefix)?;
        if prefix == self.prefix {
            let hook = self.hook.lock().expect("lock").take();
            if let Some(h) = hook {
                self.fired.store(true, Ordering::SeqCst);
                h(prefix);
            }
        }
        Ok(listing)
    }
}

/// A seed for `common::random_bytes` from a generator's output. The splitmix64 finalizer
/// matters: `random_bytes(n, s)` continues the xorshift sequence after `s`, so seeding with
/// consecutive outputs of one xorshift gives byte streams shifted by 8 bytes — the same data,
/// deduplicated by the chunker.
#[must_use]
pub fn seed(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
