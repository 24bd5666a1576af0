//! The cache's rules, each against a store that counts its reads.

use super::*;
use crate::backend::MemoryBackend;

/// A memory store with version tags (a counter per write) and a count of reads.
#[derive(Default)]
struct Tagged {
    inner: MemoryBackend,
    versions: Mutex<HashMap<String, u64>>,
    next: AtomicU64,
    reads: AtomicU64,
}

impl Tagged {
    fn tag(&self, key: &str) -> ObjectVersion {
        ObjectVersion {
            etag: self
                .versions
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(key)
                .map(|v| format!("v{v}")),
            settled_mtime: None,
        }
    }
    fn bump(&self, key: &str) {
        let v = self.next.fetch_add(1, Ordering::SeqCst);
        self.versions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_owned(), v);
    }
    fn reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }
}

impl Backend for Tagged {
    fn location(&self) -> String {
        "tagged".into()
    }
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        self.inner.put(key, data)?;
        self.bump(key);
        Ok(())
    }
    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool> {
        let stored = self.inner.put_if_absent(key, data)?;
        if stored {
            self.bump(key);
        }
        Ok(stored)
    }
    fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key)
    }
    fn get_versioned(&self, key: &str) -> Result<(Vec<u8>, ObjectVersion)> {
        Ok((self.get(key)?, self.tag(key)))
    }
    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get_range(key, offset, len)
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        Ok(self
            .inner
            .list(prefix)?
            .into_iter()
            .map(|o| ObjectInfo {
                version: self.tag(&o.key),
                ..o
            })
            .collect())
    }
    forward_backend!(inner: delete, exists);
}

fn setup() -> (tempfile::TempDir, Arc<Tagged>, CachingBackend) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Tagged::default());
    let cache = CachingBackend::new(Arc::clone(&store) as Arc<dyn Backend>, tmp.path().join("c"));
    (tmp, store, cache)
}

#[test]
fn meets_the_backend_contract() {
    let (_tmp, _store, cache) = setup();
    crate::backend::contract::check(&cache);
}

#[test]
fn index_files_are_served_locally_and_checked_by_id() {
    let (_tmp, store, cache) = setup();
    let bytes = b"an index file".to_vec();
    let id = IndexId::of(&bytes);
    let key = format!("index/{id}");
    store.put(&key, &bytes).expect("put");
    assert_eq!(cache.get(&key).expect("miss"), bytes);
    assert_eq!(cache.get(&key).expect("hit"), bytes);
    assert_eq!(store.reads(), 1);
    // Damage the entry: it is dropped and refetched, never an error.
    let entry = cache.dir().expect("on").join("index").join(id.to_string());
    let mut raw = std::fs::read(&entry).expect("entry");
    let last = raw.len() - 40;
    raw[last] ^= 1;
    std::fs::write(&entry, &raw).expect("damage");
    assert_eq!(cache.get(&key).expect("refetched"), bytes);
    assert_eq!(store.reads(), 2);
    assert_eq!(cache.stats().dropped, 1);
    // An entry with a valid checksum but other content than its name is not used either.
    cache.write_entry(&entry, "", b"something else");
    assert_eq!(cache.get(&key).expect("refetched"), bytes);
    assert_eq!(store.reads(), 3);
    // A truncated entry, too.
    std::fs::write(&entry, b"SKC").expect("truncate");
    assert_eq!(cache.get(&key).expect("refetched"), bytes);
    assert_eq!(store.reads(), 4);
}

#[test]
fn snapshot_records_follow_the_listing_and_see_retags() {
    let (_tmp, store, cache) = setup();
    let key = "snapshots/0190b8a1-0000-7000-8000-000000000001";
    store.put(key, b"record v1").expect("put");
    cache.list("snapshots/").expect("list");
    assert_eq!(cache.get(key).expect("miss"), b"record v1");
    cache.list("snapshots/").expect("list");
    assert_eq!(cache.get(key).expect("hit"), b"record v1");
    assert_eq!(store.reads(), 1);
    // Replaced by another process with a record of the same size: the tag tells.
    store.put(key, b"record v2").expect("retag elsewhere");
    cache.list("snapshots/").expect("list");
    assert_eq!(cache.get(key).expect("refetched"), b"record v2");
    assert_eq!(store.reads(), 2);
    // Replaced through the cache: its entry goes at once, even before a new listing.
    cache.put(key, b"record v3").expect("retag here");
    assert_eq!(cache.get(key).expect("fetched"), b"record v3");
    // Forgotten elsewhere: the next listing drops the entry.
    let entry = cache.dir().expect("on").join("snapshots").join(&key[10..]);
    assert!(entry.exists());
    store.delete(key).expect("forget elsewhere");
    cache.list("snapshots/").expect("list");
    assert!(!entry.exists());
    assert!(cache.get(key).expect_err("gone").is_not_found());
}

#[test]
fn without_a_listing_records_are_always_fetched() {
    let (_tmp, store, cache) = setup();
    let key = "snapshots/0190b8a1-0000-7000-8000-000000000002";
    store.put(key, b"rec").expect("put");
    cache.get(key).expect("get");
    cache.get(key).expect("get");
    assert_eq!(store.reads(), 2);
}

#[test]
fn tree_ranges_are_kept_and_damage_is_refetched() {
    let (_tmp, store, cache) = setup();
    let pack = "ab".repeat(32);
    let key = format!("data/ab/{pack}");
    store.put(&key, b"header tree-bytes trailer").expect("put");
    assert_eq!(
        cache.get_range_hot(&key, 7, 10).expect("miss"),
        b"tree-bytes"
    );
    assert_eq!(
        cache.get_range_hot(&key, 7, 10).expect("hit"),
        b"tree-bytes"
    );
    assert_eq!(store.reads(), 1);
    // Plain ranges (data chunks) are never cached.
    cache.get_range(&key, 0, 6).expect("range");
    cache.get_range(&key, 0, 6).expect("range");
    assert_eq!(store.reads(), 3);
    let entry = cache
        .dir()
        .expect("on")
        .join("trees")
        .join(format!("{pack}-7-10"));
    std::fs::write(&entry, b"garbage that is long enough to parse as something").expect("damage");
    assert_eq!(
        cache.get_range_hot(&key, 7, 10).expect("refetch"),
        b"tree-bytes"
    );
    assert_eq!(store.reads(), 4);
}

/// What a writer hands over after uploading a pack is served as a read would have been, and
/// goes with its pack like any tree entry.
#[test]
fn kept_tree_bytes_are_served_without_a_read() {
    let (_tmp, store, cache) = setup();
    let pack = "ef".repeat(32);
    let key = format!("data/ef/{pack}");
    cache.put(&key, b"header tree-bytes trailer").expect("put");
    cache.keep_hot(&key, 7, b"tree-bytes");
    assert_eq!(
        cache.get_range_hot(&key, 7, 10).expect("kept"),
        b"tree-bytes"
    );
    assert_eq!(store.reads(), 0, "a kept range is not read from the store");
    assert_eq!(cache.stats().hits, 1);
    // Only pack keys are kept.
    cache.keep_hot("index/abc", 0, b"x");
    cache.keep_hot("snapshots/abc", 0, b"x");
    let trees = cache.dir().expect("on").join("trees");
    assert_eq!(std::fs::read_dir(&trees).expect("trees").count(), 1);
    cache.delete(&key).expect("prune here");
    assert_eq!(
        cache
            .get_range_hot(&key, 7, 10)
            .map_err(|e| e.is_not_found())
            .err(),
        Some(true),
        "a deleted pack's kept trees are gone too"
    );
}

#[test]
fn tree_entries_go_with_their_pack() {
    let (_tmp, store, cache) = setup();
    let (a, b) = ("ab".repeat(32), "cd".repeat(32));
    let (ka, kb) = (format!("data/ab/{a}"), format!("data/cd/{b}"));
    store.put(&ka, b"header tree-a trailer").expect("put");
    store.put(&kb, b"header tree-b trailer").expect("put");
    let trees = cache.dir().expect("on").join("trees");
    let entries = || std::fs::read_dir(&trees).expect("trees").count();
    cache.get_range_hot(&ka, 7, 6).expect("a");
    cache.get_range_hot(&kb, 7, 6).expect("b");
    cache.get_range_hot(&kb, 0, 6).expect("b again");
    assert_eq!(entries(), 3);
    // Deleted elsewhere: the next listing of the packs drops its entries.
    store.delete(&kb).expect("prune elsewhere");
    cache.list("data/").expect("list");
    assert_eq!(entries(), 1);
    // Other listings leave them alone; a delete through the cache drops them at once.
    cache.list("data/ab/").expect("list");
    assert_eq!(entries(), 1);
    cache.delete(&ka).expect("prune here");
    assert_eq!(entries(), 0);
}

#[test]
fn for_repository_without_config_caches_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let c = CachingBackend::for_repository(Arc::clone(&store), tmp.path()).expect("cache");
    assert!(c.dir().is_none());
    assert!(c.get(keys::CONFIG).expect_err("none").is_not_found());
}

#[test]
fn an_unusable_directory_turns_the_cache_off() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").expect("file");
    let c = CachingBackend::new(Arc::new(MemoryBackend::new()), file.join("sub"));
    assert!(c.dir().is_none());
    crate::backend::contract::check(&c);
}

/// The first tree read of a pack brings every tree of the pack the caller names: nearby ones
/// in one request, a far one in another; the rest are hits, and a later miss of a damaged
/// entry fetches again.
#[test]
fn the_first_tree_of_a_pack_brings_the_others() {
    let (_tmp, store, cache) = setup();
    let pack = "ba".repeat(32);
    let key = format!("data/ba/{pack}");
    let far = 1 << 20;
    let mut body = vec![0u8; far + 64];
    for (k, b) in body.iter_mut().enumerate() {
        *b = u8::try_from(k % 251).expect("byte");
    }
    store.put(&key, &body).expect("put");
    // Three trees back to back, one 10 bytes after them, one a MiB away.
    let ranges = [(8u64, 16u64), (24, 8), (32, 20), (62, 2), (far as u64, 64)];
    let want = |k: usize| {
        let (o, l) = ranges[k];
        body[usize::try_from(o).expect("o")..usize::try_from(o + l).expect("end")].to_vec()
    };
    assert_eq!(
        cache.get_range_hot_among(&key, &ranges, 1).expect("miss"),
        want(1)
    );
    assert_eq!(
        store.reads(),
        2,
        "one span for the near trees, one for the far one"
    );
    for k in 0..ranges.len() {
        assert_eq!(
            cache.get_range_hot_among(&key, &ranges, k).expect("hit"),
            want(k)
        );
        let (o, l) = ranges[k];
        assert_eq!(cache.get_range_hot(&key, o, l).expect("hot"), want(k));
    }
    assert_eq!(store.reads(), 2, "every range came from the first fetch");
    assert_eq!(cache.stats().misses, 1);
    // A damaged entry is dropped; the fetch that follows skips spans still cached whole.
    let entry = cache
        .dir()
        .expect("on")
        .join("trees")
        .join(format!("{pack}-24-8"));
    std::fs::write(&entry, b"not an entry").expect("damage");
    assert_eq!(
        cache.get_range_hot_among(&key, &ranges, 1).expect("again"),
        want(1)
    );
    assert_eq!(store.reads(), 3, "the near span again, not the far one");
    // A position past the ranges is bad input, not a panic.
    assert!(cache.get_range_hot_among(&key, &ranges, 9).is_err());
}

#[test]
fn spans_join_near_ranges_up_to_the_limit() {
    let s = spans(&[(100, 10), (0, 50), (50, 50), (110 + SPAN_GAP + 1, 5)]);
    let got: Vec<(u64, u64, Vec<usize>)> = s
        .iter()
        .map(|sp| (sp.start, sp.end, sp.members.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (0, 110, vec![1, 2, 0]),
            (111 + SPAN_GAP, 116 + SPAN_GAP, vec![3])
        ]
    );
    // Back-to-back ranges longer together than SPAN_MAX split.
    let half = SPAN_MAX / 2 + 1;
    assert_eq!(spans(&[(0, half), (half, half)]).len(), 2);
    assert_eq!(
        spans(&[(0, SPAN_MAX * 2)]).len(),
        1,
        "one large range alone"
    );
}
