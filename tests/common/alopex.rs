//! Helpers shared by the `alopex_*` integration tests: a real Alopex DB (`alopex-core`), a
//! model of its committed state, repositories, restores, the CLI, and byte surgery on the
//! database's files (SSTables, the WAL ring, pack files).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use alopex_core::kv::{KVStore, KVTransaction};
use alopex_core::lsm::LsmKV;
use alopex_core::lsm::wal::{WAL_SECTION_HEADER_SIZE, WAL_SEGMENT_HEADER_SIZE, WalEntry};
use alopex_core::types::TxnMode;

use snapkeep::format::manifest::{Node, NodeKind};
use snapkeep::id::TreeId;
use snapkeep::{BackupOptions, NoProgress, Repository, RestoreOptions, RestoreStats, SnapshotId};

/// The committed key/value state of a database.
pub type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// One write of a transaction: `Some(value)` puts, `None` deletes.
pub type Op = (Vec<u8>, Option<Vec<u8>>);

/// Opens (or creates) an Alopex DB in `dir`.
#[must_use]
pub fn open_db(dir: &Path) -> LsmKV {
    LsmKV::open(dir).unwrap_or_else(|e| panic!("open Alopex DB at {}: {e}", dir.display()))
}

/// Commits `ops` in one read-write transaction and applies them to `model`.
pub fn commit(store: &LsmKV, model: &mut Model, ops: &[Op]) {
    let mut tx = store.begin(TxnMode::ReadWrite).expect("begin read-write");
    for (k, v) in ops {
        match v {
            Some(v) => tx.put(k.clone(), v.clone()).expect("put"),
            None => tx.delete(k.clone()).expect("delete"),
        }
    }
    tx.commit_self().expect("commit");
    for (k, v) in ops {
        match v {
            Some(v) => {
                model.insert(k.clone(), v.clone());
            }
            None => {
                model.remove(k);
            }
        }
    }
}

/// Everything visible to a new read-only transaction (a full scan).
#[must_use]
pub fn scan_all(store: &LsmKV) -> Model {
    let mut ro = store.begin(TxnMode::ReadOnly).expect("begin read-only");
    ro.scan_prefix(b"").expect("scan").collect()
}

/// Asserts the store holds exactly `model`: a full scan equals it, and a point read of every
/// model key returns its value (both directions, so a key the scan drops or invents fails).
pub fn assert_state(store: &LsmKV, model: &Model, what: &str) {
    let scanned = scan_all(store);
    if scanned != *model {
        let missing: Vec<_> = model
            .keys()
            .filter(|k| !scanned.contains_key(*k))
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .take(10)
            .collect();
        let extra: Vec<_> = scanned
            .keys()
            .filter(|k| !model.contains_key(*k))
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .take(10)
            .collect();
        let differ: Vec<_> = model
            .iter()
            .filter(|(k, v)| scanned.get(*k).is_some_and(|s| s != *v))
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .take(10)
            .collect();
        panic!(
            "{what}: scan differs from the model ({} keys vs {}): missing {missing:?}, extra {extra:?}, different values {differ:?}",
            scanned.len(),
            model.len()
        );
    }
    let mut ro = store.begin(TxnMode::ReadOnly).expect("begin read-only");
    for (k, v) in model {
        let got = ro.get(k).expect("get");
        assert_eq!(
            got.as_deref(),
            Some(v.as_slice()),
            "{what}: get({}) differs from the model",
            String::from_utf8_lossy(k)
        );
    }
}

/// `len` deterministic bytes that depend on `seed` (compressible, but not trivially).
#[must_use]
pub fn value(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len);
    let head = format!("v{seed}:");
    out.extend_from_slice(head.as_bytes());
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Letters only: zstd shrinks it a little, so both raw and compressed blobs occur.
        out.push(b'a' + u8::try_from(x % 26).expect("< 26"));
    }
    out.truncate(len.max(head.len()));
    out
}

/// Takes a snapshot with `opts`, panicking with the error's message on failure.
pub fn snap(repo: &Repository, src: &Path, opts: &BackupOptions) -> snapkeep::BackupOutcome {
    snapkeep::snapshot(repo, src, opts, &NoProgress)
        .unwrap_or_else(|e| panic!("snapshot of {} failed: {e}", src.display()))
}

/// Restores snapshot `id` into the new directory `target`.
pub fn restore_new(repo: &Repository, id: &SnapshotId, target: &Path) -> RestoreStats {
    snapkeep::restore(repo, id, target, &RestoreOptions::default(), &NoProgress)
        .unwrap_or_else(|e| panic!("restore of {id} into {} failed: {e}", target.display()))
}

/// The node at `rel` (`a/b/c`) in the tree `root`.
#[must_use]
pub fn find_node(repo: &Repository, root: &TreeId, rel: &str) -> Option<Node> {
    let mut tree = repo.load_tree(root).expect("load tree");
    let parts: Vec<&str> = rel.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let node = tree
            .nodes
            .iter()
            .find(|n| n.name == part.as_bytes())?
            .clone();
        if i + 1 == parts.len() {
            return Some(node);
        }
        let NodeKind::Dir { tree: sub } = &node.kind else {
            return None;
        };
        tree = repo.load_tree(sub).expect("load subtree");
    }
    None
}

/// Every path (`a/b/c`, files, dirs and symlinks) of the snapshot tree `root`, sorted.
#[must_use]
pub fn tree_paths(repo: &Repository, root: &TreeId) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), *root)];
    while let Some((prefix, id)) = stack.pop() {
        for n in repo.load_tree(&id).expect("load tree").nodes {
            let p = format!("{prefix}{}", String::from_utf8_lossy(&n.name));
            if let NodeKind::Dir { tree } = &n.kind {
                stack.push((format!("{p}/"), *tree));
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Every path below `dir` (relative, `/`-separated, files, dirs and symlinks), sorted.
#[must_use]
pub fn dir_paths(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("read_dir") {
            let e = e.expect("entry");
            let p = e.path();
            let rel = p
                .strip_prefix(dir)
                .expect("below dir")
                .to_string_lossy()
                .into_owned();
            if e.file_type().expect("file type").is_dir() {
                stack.push(p);
            }
            out.push(rel);
        }
    }
    out.sort();
    out
}

/// The `sst/*.sst` files of a data directory, sorted by numeric id.
#[must_use]
pub fn sst_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<(u64, PathBuf)> = fs::read_dir(dir.join("sst"))
        .expect("read sst dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sst"))
        .map(|p| {
            let id = p
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse().ok())
                .unwrap_or(u64::MAX);
            (id, p)
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, p)| p).collect()
}

/// Copies a (closed) data directory, sparse files stay sparse enough (only `lsm.wal` is big,
/// and it is copied extent by extent).
pub fn copy_data_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create copy");
    for e in fs::read_dir(from).expect("read data dir") {
        let e = e.expect("entry");
        let src = e.path();
        let dst = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_data_dir(&src, &dst);
        } else if e.file_name() == "lsm.wal" {
            copy_sparse(&src, &dst);
        } else {
            fs::copy(&src, &dst).expect("copy file");
        }
    }
}

/// Copies a sparse file: only its data extents are read and written.
pub fn copy_sparse(from: &Path, to: &Path) {
    let src = fs::File::open(from).expect("open sparse source");
    let len = src.metadata().expect("meta").len();
    let dst = fs::File::create(to).expect("create sparse copy");
    dst.set_len(len).expect("size sparse copy");
    let mut buf = vec![0u8; 1 << 20];
    for (off, n) in data_extents(from) {
        let mut p = off;
        while p < off + n {
            let k = usize::try_from((off + n - p).min(buf.len() as u64)).expect("fits");
            src.read_exact_at(&mut buf[..k], p).expect("read");
            dst.write_all_at(&buf[..k], p).expect("write");
            p += k as u64;
        }
    }
}

/// Data extents `(offset, len)` of the file at `path` (SEEK_DATA / SEEK_HOLE).
#[must_use]
pub fn data_extents(path: &Path) -> Vec<(u64, u64)> {
    let f = fs::File::open(path).expect("open for extents");
    let len = f.metadata().expect("meta").len();
    let mut out = Vec::new();
    let mut at = 0u64;
    while at < len {
        let Ok(data) = rustix::fs::seek(&f, rustix::fs::SeekFrom::Data(at)) else {
            break;
        };
        if data >= len {
            break;
        }
        let hole =
            rustix::fs::seek(&f, rustix::fs::SeekFrom::Hole(data)).map_or(len, |h| h.min(len));
        out.push((data, hole - data));
        at = hole;
    }
    out
}

/// Whether two (possibly sparse) files have the same length and bytes; only the union of
/// their data extents is read.
#[must_use]
pub fn same_content(a: &Path, b: &Path) -> bool {
    let fa = fs::File::open(a).expect("open a");
    let fb = fs::File::open(b).expect("open b");
    let len = fa.metadata().expect("meta a").len();
    if len != fb.metadata().expect("meta b").len() {
        return false;
    }
    let mut ranges: Vec<(u64, u64)> = data_extents(a)
        .into_iter()
        .chain(data_extents(b))
        .map(|(o, l)| (o, o + l))
        .collect();
    ranges.sort_unstable();
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    let mut done = 0u64;
    for (start, end) in ranges {
        let mut p = start.max(done);
        while p < end {
            let n = usize::try_from((end - p).min(ba.len() as u64)).expect("fits");
            fa.read_exact_at(&mut ba[..n], p).expect("read a");
            fb.read_exact_at(&mut bb[..n], p).expect("read b");
            if ba[..n] != bb[..n] {
                return false;
            }
            p += n as u64;
        }
        done = done.max(end);
    }
    true
}

/// XORs the byte at `offset` of `path` with `mask`.
pub fn flip_byte(path: &Path, offset: u64, mask: u8) {
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open for flipping");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).expect("read byte");
    b[0] ^= mask;
    f.write_all_at(&b, offset).expect("write byte");
    f.sync_all().expect("sync");
}

/// One record of the WAL ring as it lies in the file.
#[derive(Clone, Copy, Debug)]
pub struct WalRecord {
    /// Logical ring offset.
    pub logical: u64,
    /// Physical file offset of its first byte.
    pub physical: u64,
    /// Total length (header, body, CRC).
    pub len: u64,
    pub lsn: u64,
}

/// Physical offset of logical ring offset `logical` (default WAL config: 64 MiB segments).
#[must_use]
pub fn wal_physical(logical: u64) -> u64 {
    let seg = 64 * 1024 * 1024u64;
    let data = seg - WAL_SEGMENT_HEADER_SIZE as u64;
    WAL_SECTION_HEADER_SIZE as u64
        + (logical / data) * seg
        + WAL_SEGMENT_HEADER_SIZE as u64
        + logical % data
}

/// The section header's `(start, end)` logical offsets of the WAL at `path`.
#[must_use]
pub fn wal_bounds(path: &Path) -> (u64, u64) {
    let f = fs::File::open(path).expect("open WAL");
    let mut h = [0u8; WAL_SECTION_HEADER_SIZE];
    f.read_exact_at(&mut h, 0).expect("read WAL section header");
    let s = alopex_core::lsm::wal::WalSectionHeader::from_bytes(&h).expect("valid WAL header");
    (s.start_offset, s.end_offset)
}

/// Rewrites the WAL section header with a new end offset (valid CRC): a torn tail when it
/// cuts into the last record.
pub fn set_wal_end(path: &Path, end: u64) {
    let (start, _) = wal_bounds(path);
    let h = alopex_core::lsm::wal::WalSectionHeader::new(start, end, false);
    let f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open WAL for writing");
    f.write_all_at(&h.to_bytes(), 0).expect("write header");
    f.sync_all().expect("sync");
}

/// The records between the WAL's start and end offsets, decoded from the file's bytes
/// (assumes they do not wrap, which holds for the small logs the tests write).
#[must_use]
pub fn wal_records(path: &Path) -> Vec<WalRecord> {
    let (start, end) = wal_bounds(path);
    assert!(start <= end, "the tests' WAL never wraps");
    let f = fs::File::open(path).expect("open WAL");
    let mut buf = vec![0u8; usize::try_from(end - start).expect("fits")];
    f.read_exact_at(&mut buf, wal_physical(start))
        .expect("read WAL records");
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < buf.len() {
        let (entry, used) = WalEntry::decode(&buf[at..]).expect("a sound WAL record");
        out.push(WalRecord {
            logical: start + at as u64,
            physical: wal_physical(start + at as u64),
            len: used as u64,
            lsn: entry.lsn,
        });
        at += used;
    }
    out
}
