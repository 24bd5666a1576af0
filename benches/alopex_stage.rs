//! Cost of the Alopex verification stage in frequent snapshots.
//!
//! A closed Alopex database with 10 SSTs (about 1 MiB each) and a WAL holding a few MiB of
//! commits after the last checkpoint is snapshotted once (the parent). Then more commits go to
//! the WAL only, and:
//! - `full/force_read`: a snapshot that reads and stage-checks every file (the cost of a first
//!   snapshot);
//! - `incremental/after_small_change`: a snapshot against the parent: the unchanged SSTs are
//!   reused by metadata and not re-checked; only the WAL (and `checkpoint.meta` if it changed)
//!   is captured and checked.
//!
//! The summary's `stage_bytes` of both runs is printed once, so the bench shows that the stage
//! cost follows the changed bytes. The WAL is a 512 MiB sparse ring: neither capture nor the
//! stage reads its holes. Run: `cargo bench --bench alopex_stage`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use alopex_core::kv::{KVStore, KVTransaction};
use alopex_core::lsm::LsmKV;
use alopex_core::types::TxnMode;
use criterion::{Criterion, criterion_group, criterion_main};
use snapkeep::{BackupOptions, InitOptions, NoProgress, Repository};

fn commit(store: &LsmKV, round: u32, keys: u32, value_len: usize) {
    let mut tx = store.begin(TxnMode::ReadWrite).expect("begin");
    for i in 0..keys {
        let mut v = format!("round {round} key {i} ").into_bytes();
        v.resize(value_len, b'x');
        tx.put(format!("key-{round:03}-{i:07}").into_bytes(), v)
            .expect("put");
    }
    tx.commit_self().expect("commit");
}

fn build_db(dir: &Path) {
    let store = LsmKV::open(dir).expect("open db");
    for round in 0..10 {
        commit(&store, round, 4000, 250);
        store.checkpoint().expect("checkpoint");
    }
    // A few MiB in the WAL after the last checkpoint.
    for round in 10..13 {
        commit(&store, round, 4000, 250);
    }
    drop(store);
}

fn more_wal(dir: &Path) {
    let store = LsmKV::open(dir).expect("open db");
    commit(&store, 100, 4000, 250);
    drop(store);
}

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("db");
    build_db(&db);
    // Let every file age past the racy-mtime window before the parent snapshot.
    std::thread::sleep(Duration::from_millis(2200));
    let repo =
        Repository::init_local(&tmp.path().join("repo"), &InitOptions::default()).expect("init");
    let parent = snapkeep::snapshot(&repo, &db, &BackupOptions::default(), &NoProgress)
        .expect("parent snapshot");
    more_wal(&db);

    let incremental = BackupOptions {
        parent: Some(parent.record.id),
        ..BackupOptions::default()
    };
    let full = BackupOptions {
        force_read: true,
        ..BackupOptions::default()
    };
    let show = |name: &str, o: &BackupOptions| {
        let out = snapkeep::snapshot(&repo, &db, o, &NoProgress).expect("snapshot");
        let s = &out.record.summary;
        eprintln!(
            "{name}: files {} read {} bytes, stage-checked {} bytes, reused {} files, {:.1} ms",
            s.files,
            s.data_bytes,
            s.stage_bytes,
            s.unchanged_files,
            s.duration_ns as f64 / 1e6
        );
    };
    show("full", &full);
    show("incremental", &incremental);

    let repo = Arc::new(repo);
    let mut g = c.benchmark_group("alopex_stage");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.bench_function("full/force_read", |b| {
        b.iter(|| snapkeep::snapshot(&repo, &db, &full, &NoProgress).expect("snapshot"));
    });
    g.bench_function("incremental/after_small_change", |b| {
        b.iter(|| snapkeep::snapshot(&repo, &db, &incremental, &NoProgress).expect("snapshot"));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
