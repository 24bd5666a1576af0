//! Restore fetches chunks stored back to back in one pack with one ranged read (a remote
//! store pays per request), still checks every chunk against its id, and falls back to
//! reading chunk by chunk when a run cannot be read whole.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use snapkeep::backend::{Backend, MemoryBackend};
use snapkeep::chunker::ChunkerParams;
use snapkeep::{BackupOptions, InitOptions, NoProgress, Repository, RestoreOptions};

const AVG: u32 = 16 * 1024;

/// Counts ranged reads of packs; fails those longer than `fail_longer_than` bytes.
struct Counting {
    inner: Arc<dyn Backend>,
    pack_reads: AtomicU64,
    failed: AtomicU64,
    fail_longer_than: AtomicU64,
}

impl Counting {
    fn new(inner: Arc<dyn Backend>) -> Self {
        Counting {
            inner,
            pack_reads: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            fail_longer_than: AtomicU64::new(u64::MAX),
        }
    }
}

impl Backend for Counting {
    fn location(&self) -> String {
        format!("counting({})", self.inner.location())
    }
    snapkeep::forward_backend!(inner: put, put_if_absent, put_file, flush, get, get_versioned, list, delete, exists, staging);
    fn get_range(&self, key: &str, offset: u64, len: u64) -> snapkeep::Result<Vec<u8>> {
        if key.starts_with("data/") {
            self.pack_reads.fetch_add(1, Ordering::SeqCst);
            if len > self.fail_longer_than.load(Ordering::SeqCst) {
                // Not found: what a reader sees when a prune deleted the pack meanwhile.
                self.failed.fetch_add(1, Ordering::SeqCst);
                return self.inner.get_range("data/00/none", 0, len);
            }
        }
        self.inner.get_range(key, offset, len)
    }
    fn get_range_hot(&self, key: &str, offset: u64, len: u64) -> snapkeep::Result<Vec<u8>> {
        // Tree reads: not counted.
        self.inner.get_range(key, offset, len)
    }
}

struct Setup {
    _tmp: tempfile::TempDir,
    tmp: PathBuf,
    src: PathBuf,
    counting: Arc<Counting>,
    repo: Repository,
    id: snapkeep::SnapshotId,
    chunks: u64,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tmp");
    let tmp = dir.path().to_path_buf();
    let src = tmp.join("src");
    // 6 MiB of incompressible data (about 290 chunks), a small file and an empty one.
    common::write_file(&src.join("big.bin"), &common::random_bytes(6 << 20, 7));
    common::write_file(&src.join("d/small.bin"), &common::random_bytes(40_000, 8));
    common::write_file(&src.join("d/empty"), b"");
    let counting = Arc::new(Counting::new(Arc::new(MemoryBackend::new())));
    let backend: Arc<dyn Backend> = counting.clone();
    let opts = InitOptions {
        chunker: ChunkerParams::with_avg(AVG).expect("params"),
        ..InitOptions::default()
    };
    let repo = Repository::init(backend, &opts).expect("init");
    let out =
        snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress).expect("snapshot");
    let chunks = out.record.summary.chunks;
    Setup {
        _tmp: dir,
        tmp,
        src,
        counting,
        repo,
        id: out.record.id,
        chunks,
    }
}

fn same_files(src: &Path, out: &Path) {
    for rel in ["big.bin", "d/small.bin", "d/empty"] {
        assert!(
            fs::read(src.join(rel)).expect("source") == fs::read(out.join(rel)).expect("restored"),
            "{rel} restored differently"
        );
    }
}

/// Restores the snapshot into a new directory, checks the files, and returns the ranged
/// pack reads it made.
fn restore_counted(s: &Setup) -> u64 {
    s.counting.pack_reads.store(0, Ordering::SeqCst);
    let out = s.tmp.join("out");
    snapkeep::restore(
        &s.repo,
        &s.id,
        &out,
        &RestoreOptions::default(),
        &NoProgress,
    )
    .expect("restore");
    same_files(&s.src, &out);
    s.counting.pack_reads.load(Ordering::SeqCst)
}

#[test]
fn restore_reads_back_to_back_chunks_together() {
    let s = setup();
    assert!(s.chunks > 200, "{} chunks: the test needs many", s.chunks);
    let reads = restore_counted(&s);
    // A snapshot stores a file's new chunks back to back: big.bin's 6 MiB take 3 or 4 reads
    // of at most 2 MiB, small.bin 1; a per-chunk restore would make one read per chunk.
    assert!(
        reads <= 5,
        "{reads} ranged pack reads for {} chunks",
        s.chunks
    );
}

#[test]
fn a_run_that_cannot_be_read_whole_is_read_chunk_by_chunk() {
    let s = setup();
    // Every read longer than one chunk fails as if its pack were gone.
    s.counting
        .fail_longer_than
        .store(u64::from(AVG) * 4, Ordering::SeqCst);
    let reads = restore_counted(&s);
    let failed = s.counting.failed.load(Ordering::SeqCst);
    // big.bin's runs failed; each of their chunks was then read on its own (a run alone in
    // its read, and small.bin's, are short enough to succeed).
    assert!(failed >= 2, "{failed} failed run reads");
    assert!(
        reads - failed >= s.chunks * 9 / 10,
        "{reads} reads, {failed} failed: expected about one read per chunk ({})",
        s.chunks
    );
}

#[test]
fn a_damaged_chunk_inside_a_run_is_named() {
    let s = setup();
    // Damage one byte in the middle of the data pack (the other, small pack holds the trees).
    let packs = s.repo.backend().list("data/").expect("list");
    let key = &packs.iter().max_by_key(|p| p.size).expect("a pack").key;
    let mut bytes = s.repo.backend().get(key).expect("pack");
    let at = 1 << 20;
    bytes[at] ^= 0x40;
    // The memory store writes objects once: replace it through delete + put.
    s.repo.backend().delete(key).expect("delete");
    s.repo.backend().put(key, &bytes).expect("put");
    let out = s.tmp.join("out");
    let err = snapkeep::restore(
        &s.repo,
        &s.id,
        &out,
        &RestoreOptions::default(),
        &NoProgress,
    )
    .expect_err("a damaged chunk fails the restore");
    let msg = err.to_string();
    assert!(
        msg.contains("big.bin' is damaged") && msg.contains("does not match its id"),
        "{msg}"
    );
}
