//! Snapshots of an Alopex DB that is being written: every restored snapshot opens with
//! `LsmKV` and equals one committed state of the writer's journal (all batches up to some
//! k, no later batch without every earlier one), never a mix.
//!
//! Batch `b` writes `last = b`, overwrites `slot/<b % 64>`, adds `seq/<b>` and deletes
//! `seq/<b - 20>`, so the state after batch k is a pure function of k and the value of
//! `last` names the state a restored copy claims to be.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alopex_core::kv::{KVStore, KVTransaction};
use alopex_core::lsm::LsmKV;
use alopex_core::types::TxnMode;
use common::alopex::{Model, Op, value};
use snapkeep::backup::PreHook;
use snapkeep::format::manifest::FLAG_INCONSISTENT;
use snapkeep::progress::{Phase, Progress};
use snapkeep::{BackupOptions, Repository, SnapshotId};

fn batch(b: u64) -> Vec<Op> {
    let mut ops: Vec<Op> = vec![
        (b"last".to_vec(), Some(b.to_string().into_bytes())),
        (
            format!("slot/{:02}", b % 64).into_bytes(),
            Some(value(b, 150 + usize::try_from(b % 100).expect("small"))),
        ),
        (
            format!("seq/{b:06}").into_bytes(),
            Some(value(b + 1_000_000, 32)),
        ),
    ];
    if b > 20 {
        ops.push((format!("seq/{:06}", b - 20).into_bytes(), None));
    }
    ops
}

/// The committed state after batches `1..=k`.
fn state_after(k: u64) -> Model {
    let mut m = Model::new();
    for b in 1..=k {
        for (key, v) in batch(b) {
            match v {
                Some(v) => {
                    m.insert(key, v);
                }
                None => {
                    m.remove(&key);
                }
            }
        }
    }
    m
}

fn commit_batch(store: &LsmKV, b: u64) {
    let mut tx = store.begin(TxnMode::ReadWrite).expect("begin");
    for (k, v) in batch(b) {
        match v {
            Some(v) => tx.put(k, v).expect("put"),
            None => tx.delete(k).expect("delete"),
        }
    }
    tx.commit_self().expect("commit");
}

/// The batch number a restored database claims (its `last`), and its full state.
fn restored_state(repo: &Repository, id: &SnapshotId, target: &std::path::Path) -> (u64, Model) {
    let restore = common::alopex::restore_new(repo, id, target);
    assert!(
        restore.stage_problems.is_empty(),
        "restored snapshot {id} fails the Alopex stage: {:?}",
        restore.stage_problems
    );
    assert!(!target.join(".alopex.lock").exists());
    let db = common::alopex::open_db(target);
    let state = common::alopex::scan_all(&db);
    let k = state.get(b"last".as_slice()).map_or(0, |v| {
        String::from_utf8_lossy(v)
            .parse()
            .expect("last holds a batch number")
    });
    (k, state)
}

/// Asserts `state` is exactly the journaled state after batch `k` and that `k` lies in
/// `lo..=hi`.
fn assert_journaled(what: &str, k: u64, state: &Model, lo: u64, hi: u64) {
    let expected = state_after(k);
    if *state != expected {
        let missing: Vec<String> = expected
            .keys()
            .filter(|key| !state.contains_key(*key))
            .map(|key| String::from_utf8_lossy(key).into_owned())
            .take(12)
            .collect();
        let extra: Vec<String> = state
            .keys()
            .filter(|key| !expected.contains_key(*key))
            .map(|key| String::from_utf8_lossy(key).into_owned())
            .take(12)
            .collect();
        panic!(
            "{what}: the restored DB claims batch {k} but is not the state after it \
             (no journaled state has batch {k} without the others): missing {missing:?}, \
             extra {extra:?}"
        );
    }
    assert!(
        (lo..=hi).contains(&k),
        "{what}: restored state is batch {k}, outside {lo}..={hi} (the pre-hook's checkpoint \
         saw {lo} committed, the snapshot returned by {hi})"
    );
}

#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, its steps in order")]
fn snapshots_of_a_running_writer_restore_to_journaled_states() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("db");
    let repo = common::small_repo(&tmp.path().join("repo"));
    let store = Arc::new(common::alopex::open_db(&db));
    let committed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    // Some history before the first snapshot.
    for b in 1..=30 {
        commit_batch(&store, b);
        committed.store(b, Ordering::SeqCst);
    }
    store.checkpoint().expect("checkpoint");

    let writer = {
        let (store, committed, stop) = (
            Arc::clone(&store),
            Arc::clone(&committed),
            Arc::clone(&stop),
        );
        std::thread::spawn(move || {
            let mut b = committed.load(Ordering::SeqCst);
            while !stop.load(Ordering::SeqCst) {
                b += 1;
                commit_batch(&store, b);
                committed.store(b, Ordering::SeqCst);
                if b % 16 == 0 {
                    store.checkpoint().expect("writer checkpoint");
                }
                if b % 37 == 0 {
                    store.flush().expect("writer flush");
                }
            }
        })
    };

    let hook_saw = Arc::new(AtomicU64::new(0));
    let opts = BackupOptions {
        pre_hook: Some(PreHook(Arc::new({
            let (store, committed, hook_saw) = (
                Arc::clone(&store),
                Arc::clone(&committed),
                Arc::clone(&hook_saw),
            );
            move || {
                // Every batch counted here committed before the checkpoint below.
                hook_saw.store(committed.load(Ordering::SeqCst), Ordering::SeqCst);
                store.checkpoint().map(|_| ()).map_err(|e| e.to_string())
            }
        }))),
        ..BackupOptions::default()
    };
    let mut taken = Vec::new();
    let mut warnings = 0usize;
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(400));
        let before = committed.load(Ordering::SeqCst);
        let out = common::alopex::snap(&repo, &db, &opts);
        let after = committed.load(Ordering::SeqCst);
        let lo = hook_saw.load(Ordering::SeqCst);
        assert!(lo >= before);
        assert_eq!(
            out.record.flags & FLAG_INCONSISTENT,
            0,
            "a snapshot of a healthy running DB was flagged: {:?}",
            out.warnings
        );
        warnings += out.warnings.len();
        for w in &out.warnings {
            eprintln!("warning: {w}");
        }
        // A batch whose commit returned but whose counter was not yet bumped may be in it.
        taken.push((out.record.id, lo, after + 1));
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().expect("writer thread");
    let total = committed.load(Ordering::SeqCst);
    assert!(
        total > taken.last().map_or(0, |t| t.1),
        "the writer made no progress during the snapshots"
    );

    let mut claimed = Vec::new();
    for (n, (id, lo, hi)) in taken.iter().enumerate() {
        let target = tmp.path().join(format!("restored{n}"));
        let (k, state) = restored_state(&repo, id, &target);
        assert_journaled(&format!("snapshot {n}"), k, &state, *lo, *hi);
        claimed.push(k);
    }
    assert!(
        claimed.windows(2).all(|w| w[0] < w[1]),
        "later snapshots hold later states: {claimed:?}"
    );

    // The live database itself is still whole.
    common::alopex::assert_state(&store, &state_after(total), "the live DB");
    let report = common::verify_read_data(&repo);
    assert!(report.ok(), "{:?}", report.findings);
    eprintln!(
        "live writer: {total} batches, states {claimed:?}, {warnings} warnings, {:?}",
        started.elapsed()
    );
}

/// A writer that commits, checkpoints and commits again in the instant between the
/// snapshot's directory walk and its first read (deterministically, through the progress
/// callback that announces the capture phase).
struct CheckpointAtCapture {
    store: Arc<LsmKV>,
    next: AtomicU64,
    fired: AtomicBool,
}

impl Progress for CheckpointAtCapture {
    fn phase(&self, phase: Phase, _bytes: u64, _files: u64) {
        if phase == Phase::Snapshot && !self.fired.swap(true, Ordering::SeqCst) {
            let b = self.next.fetch_add(1, Ordering::SeqCst);
            commit_batch(&self.store, b);
            self.store
                .checkpoint()
                .expect("checkpoint during the snapshot");
            commit_batch(&self.store, b + 1);
            self.next.store(b + 2, Ordering::SeqCst);
        }
    }
}

#[test]
fn a_checkpoint_between_walk_and_capture_still_yields_a_journaled_state() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("db");
    let repo = common::small_repo(&tmp.path().join("repo"));
    let store = Arc::new(common::alopex::open_db(&db));
    for b in 1..=10 {
        commit_batch(&store, b);
    }
    store.checkpoint().expect("checkpoint");
    for b in 11..=14 {
        commit_batch(&store, b);
    }
    let progress = CheckpointAtCapture {
        store: Arc::clone(&store),
        next: AtomicU64::new(15),
        fired: AtomicBool::new(false),
    };
    let out = snapkeep::snapshot(&repo, &db, &BackupOptions::default(), &progress)
        .expect("snapshot during a checkpoint");
    assert!(progress.fired.load(Ordering::SeqCst));
    assert_eq!(
        out.record.flags & FLAG_INCONSISTENT,
        0,
        "{:?}",
        out.warnings
    );
    let done = progress.next.load(Ordering::SeqCst) - 1;
    assert_eq!(done, 16);
    common::alopex::assert_state(&store, &state_after(done), "the live DB");
    drop(store);

    // The snapshot began at batch 14 (walked then) and ended at 16: any of 14, 15, 16 is a
    // committed state; a mix (say 1..=10 and 16 without 11..=15) is not.
    let (k, state) = restored_state(&repo, &out.record.id, &tmp.path().join("restored"));
    assert_journaled("snapshot taken across a checkpoint", k, &state, 14, 16);
}

/// The WAL is a 512 MiB ring the database rewrites in place (the section header on every
/// commit; after a checkpoint empties it, new records overwrite the stale ones from the ring's
/// start); snapkeep reads it through memory-mapped windows. Bytes that change between hashing
/// a chunk and storing it must never produce a stored blob that does not hash to its id: the
/// capture may be retried or flagged, but the repository must stay sound and every snapshot
/// restorable.
///
/// Here the WAL holds ~4 MiB of stale records behind a checkpoint and two live records; a
/// writer thread keeps overwriting the stale region (as appends do; replay ignores it, so the
/// WAL stays valid throughout) while snapshots run.
#[test]
fn a_wal_rewritten_in_place_while_captured_never_stores_a_blob_that_mismatches_its_id() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("db");
    let repo = common::small_repo(&tmp.path().join("repo"));
    {
        let store = common::alopex::open_db(&db);
        for b in 0..64u64 {
            let mut tx = store.begin(TxnMode::ReadWrite).expect("begin");
            tx.put(format!("big/{b:02}").into_bytes(), value(b, 64 * 1024))
                .expect("put");
            tx.commit_self().expect("commit");
        }
        store.checkpoint().expect("checkpoint");
        for b in 1..=2 {
            commit_batch(&store, b);
        }
    }
    let mut expected = state_after(2);
    for b in 0..64u64 {
        expected.insert(format!("big/{b:02}").into_bytes(), value(b, 64 * 1024));
    }
    let wal = db.join("lsm.wal");
    let (_, end) = common::alopex::wal_bounds(&wal);
    let stale_from = common::alopex::wal_physical(end) + 4096;
    let stale_len = 4u64 << 20;
    let stop = Arc::new(AtomicBool::new(false));
    let hammer = {
        let (wal, stop) = (wal.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            use std::os::unix::fs::FileExt;
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&wal)
                .expect("open WAL");
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                // Stride through the stale region so every chunk of it keeps changing.
                let at = stale_from + (n.wrapping_mul(40_503) % (stale_len / 8)) * 8;
                f.write_all_at(&n.to_le_bytes(), at)
                    .expect("overwrite stale bytes");
            }
            n
        })
    };
    let mut ids = Vec::new();
    for _ in 0..3 {
        let out = common::alopex::snap(&repo, &db, &BackupOptions::default());
        assert_eq!(
            out.record.flags & FLAG_INCONSISTENT,
            0,
            "{:?}",
            out.warnings
        );
        ids.push(out.record.id);
    }
    stop.store(true, Ordering::SeqCst);
    let writes = hammer.join().expect("writer thread");
    assert!(writes > 1000, "the writer hardly ran ({writes} writes)");

    let report = common::verify_read_data(&repo);
    assert!(
        report.ok(),
        "{} findings after snapshotting a WAL rewritten in place, e.g. {:?}",
        report.findings.len(),
        report
            .findings
            .iter()
            .take(2)
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    );
    for (n, id) in ids.iter().enumerate() {
        let target = tmp.path().join(format!("restored{n}"));
        common::alopex::restore_new(&repo, id, &target);
        let db = common::alopex::open_db(&target);
        common::alopex::assert_state(&db, &expected, &format!("snapshot {n}"));
    }
}
