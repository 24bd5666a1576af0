//! Snapshots of a real Alopex DB (`alopex-core`) across several rounds of puts, overwrites,
//! deletes, flushes and checkpoints restore to exactly the committed state of their moment:
//! every restored copy opens with `LsmKV` (WAL replayed) and a full scan and point reads
//! equal a model of that moment. The lock file and the other never-captured names never
//! reach a snapshot; a snapshot of an idle database reuses its files and re-checks nothing.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::alopex::{Model, Op, commit, value};
use snapkeep::format::manifest::FLAG_INCONSISTENT;
use snapkeep::{BackupOptions, Repository, SnapshotId};

/// Names the Alopex layout never captures, planted in the source before every snapshot.
const JUNK: [&str; 6] = [
    "other.alopex.lock",
    ".lifecycle/marker",
    "checkpoint.tmp",
    "lsm.wal.bad.1",
    "lsm.wal.migrate",
    "lsm.wal.bak",
];

fn key(i: u32) -> Vec<u8> {
    format!("key/{i:05}").into_bytes()
}

fn put(i: u32, round: u64) -> Op {
    // Sizes vary from a few bytes to ~1.5 KiB so SSTables span several blocks.
    let len =
        8 + usize::try_from((i * 37 + u32::try_from(round).expect("small")) % 1500).expect("fits");
    (key(i), Some(value(u64::from(i) * 1000 + round, len)))
}

fn del(i: u32) -> Op {
    (key(i), None)
}

fn is_junk(rel: &str) -> bool {
    rel == ".alopex.lock" || rel == ".lifecycle" || JUNK.contains(&rel)
}

fn plant_junk(src: &Path) {
    for j in JUNK {
        let p = src.join(j);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, format!("never captured: {j}\n")).expect("write junk");
    }
}

/// What one round left behind: its snapshot, the model and a copy of the source files.
struct Taken {
    id: SnapshotId,
    model: Model,
    reference: PathBuf,
}

/// Snapshots `src` (after planting the junk) and keeps a reference copy of the captured
/// files (the database is idle while this runs, so the copy is what the snapshot saw).
fn take(
    repo: &Repository,
    src: &Path,
    model: &Model,
    reference: PathBuf,
) -> (Taken, snapkeep::BackupOutcome) {
    plant_junk(src);
    let out = common::alopex::snap(repo, src, &BackupOptions::default());
    common::alopex::copy_data_dir(src, &reference);
    for j in JUNK.iter().chain(&[".alopex.lock"]) {
        let _ = fs::remove_file(reference.join(j));
    }
    let _ = fs::remove_dir_all(reference.join(".lifecycle"));
    let rec = &out.record;
    assert_eq!(rec.flags & FLAG_INCONSISTENT, 0, "a sound DB was flagged");
    assert_eq!(rec.summary.inconsistent_files, 0);
    assert!(
        rec.stages.iter().any(|s| s == "alopex"),
        "the Alopex layout was not detected: stages {:?}",
        rec.stages
    );
    assert!(out.warnings.is_empty(), "warnings: {:?}", out.warnings);
    (
        Taken {
            id: rec.id,
            model: model.clone(),
            reference,
        },
        out,
    )
}

#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, its steps in order")]
fn every_round_restores_to_its_committed_state() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let src = root.join("db");
    let repo_dir = root.join("repo");
    let repo = common::small_repo(&repo_dir);
    let store = common::alopex::open_db(&src);
    let mut model = Model::new();
    let mut taken = Vec::new();

    // Round 0: 150 keys in 5 transactions, a checkpoint (SSTable + checkpoint.meta, WAL
    // emptied), then 30 more keys that live only in the WAL.
    for t in 0..5u32 {
        let ops: Vec<Op> = (t * 30..t * 30 + 30).map(|i| put(i, 0)).collect();
        commit(&store, &mut model, &ops);
    }
    store.checkpoint().expect("checkpoint");
    commit(
        &store,
        &mut model,
        &(150..165).map(|i| put(i, 0)).collect::<Vec<_>>(),
    );
    commit(
        &store,
        &mut model,
        &(165..180).map(|i| put(i, 0)).collect::<Vec<_>>(),
    );
    let (t, out0) = take(&repo, &src, &model, root.join("ref0"));
    assert!(
        out0.record.summary.stage_files >= 3,
        "lsm.wal, the SSTable and checkpoint.meta are staged: {:?}",
        out0.record.summary
    );
    assert!(out0.record.summary.stage_bytes > 0);
    taken.push(t);

    // Round 1: overwrite every third key, delete every seventh, checkpoint, then new keys and
    // a delete of a key that only an SSTable holds.
    let mut ops: Vec<Op> = (0..180).step_by(3).map(|i| put(i, 1)).collect();
    ops.extend((0..180).step_by(7).filter(|i| i % 3 != 0).map(del));
    commit(&store, &mut model, &ops);
    store.checkpoint().expect("checkpoint");
    commit(
        &store,
        &mut model,
        &(180..200).map(|i| put(i, 1)).collect::<Vec<_>>(),
    );
    commit(&store, &mut model, &[del(1), del(2), put(4, 11)]);
    let (t, _) = take(&repo, &src, &model, root.join("ref1"));
    taken.push(t);

    // Round 2: no checkpoint: a flush writes an SSTable without moving checkpoint.meta, so
    // the WAL still holds (and replays) what that SSTable also has; then more writes.
    commit(
        &store,
        &mut model,
        &(0..200).step_by(5).map(|i| put(i, 2)).collect::<Vec<_>>(),
    );
    store.flush().expect("flush");
    commit(
        &store,
        &mut model,
        &(100..140).map(del).chain([put(7, 22)]).collect::<Vec<_>>(),
    );
    let (t, _) = take(&repo, &src, &model, root.join("ref2"));
    taken.push(t);

    // Round 3: more writes and a checkpoint last: everything in SSTables, the WAL empty.
    commit(
        &store,
        &mut model,
        &(200..260)
            .map(|i| put(i, 3))
            .chain((0..50).map(del))
            .collect::<Vec<_>>(),
    );
    store.checkpoint().expect("checkpoint");
    let (t, out3) = take(&repo, &src, &model, root.join("ref3"));
    taken.push(t);

    // Idle database (handle still open): once the files are older than the racy-mtime
    // window, snapshots reuse them. The first re-reads the files the previous snapshot took
    // within 2 s of their change but re-runs no stage (same content, already checked); the
    // second reuses every file without reading it.
    std::thread::sleep(Duration::from_millis(2100));
    let (t4, out4) = take(&repo, &src, &model, root.join("ref4"));
    let s4 = &out4.record.summary;
    assert_eq!(out4.record.parent, Some(out3.record.id));
    assert_eq!(
        s4.stage_bytes, 0,
        "content the parent already checked was checked again: {s4:?}"
    );
    assert_eq!(s4.new_bytes, 0, "an idle DB produced new data: {s4:?}");
    let (t5, out5) = take(&repo, &src, &model, root.join("ref5"));
    let s5 = &out5.record.summary;
    assert_eq!(out5.record.parent, Some(t4.id));
    assert!(s5.unchanged_files > 0, "nothing was reused: {s5:?}");
    assert_eq!(
        s5.unchanged_files, s5.files,
        "every file of an idle DB is reused: {s5:?}"
    );
    assert_eq!(s5.data_bytes, 0, "reused files were read: {s5:?}");
    assert_eq!(s5.stage_files, 0, "reused files were staged: {s5:?}");
    assert_eq!(s5.stage_bytes, 0, "reused files were checked: {s5:?}");
    assert_eq!(
        out5.record.tree, out3.record.tree,
        "same content, same tree"
    );
    taken.push(t4);
    taken.push(t5);
    drop(store);

    // Restore every snapshot into a new directory: byte-identical to what it captured, none
    // of the never-captured names, sound for the stages, and the DB state of its moment.
    for (n, t) in taken.iter().enumerate() {
        let rec = repo.load_snapshot(&t.id).expect("record");
        let in_tree = common::alopex::tree_paths(&repo, &rec.tree);
        for p in &in_tree {
            assert!(!is_junk(p), "snapshot {n} holds never-captured {p}");
        }
        assert!(in_tree.iter().any(|p| p == "lsm.wal"));
        assert!(in_tree.iter().any(|p| p == "checkpoint.meta"));

        let target = root.join(format!("restored{n}"));
        let stats = common::alopex::restore_new(&repo, &t.id, &target);
        assert!(
            stats.stage_problems.is_empty(),
            "restore {n}: {:?}",
            stats.stage_problems
        );
        let ssts = common::alopex::sst_files(&target).len() as u64;
        assert_eq!(
            stats.stage_files,
            2 + ssts,
            "restore {n}: lsm.wal, checkpoint.meta and every SSTable are checked"
        );
        let restored = common::alopex::dir_paths(&target);
        assert!(
            !target.join(".alopex.lock").exists(),
            "restore {n} created the lock file"
        );
        let expected = common::alopex::dir_paths(&t.reference);
        assert_eq!(
            restored, expected,
            "restore {n}: entries differ from the source"
        );
        for rel in &restored {
            let (a, b) = (target.join(rel), t.reference.join(rel));
            if a.is_file() {
                assert!(
                    common::alopex::same_content(&a, &b),
                    "restore {n}: {rel} differs from what was captured"
                );
            }
        }
        let db = common::alopex::open_db(&target);
        common::alopex::assert_state(&db, &t.model, &format!("snapshot {n}"));
    }
    // The states really differ from round to round (the comparisons above are not vacuous).
    for w in taken[..4].windows(2) {
        assert_ne!(w[0].model, w[1].model);
    }

    // The CLI restores the same way and reports no stage problem.
    let target = root.join("restored-cli");
    let out = common::cli_exited(
        &repo_dir,
        &[
            "--json",
            "restore",
            &taken[1].id.to_string(),
            target.to_str().expect("utf-8"),
        ],
    );
    common::assert_exit(&out, 0, "");
    let v = common::json_of(&out);
    assert_eq!(v["stage_problems"], serde_json::json!([]));
    assert!(v["stage_files"].as_u64().is_some_and(|n| n >= 3), "{v}");
    assert!(!target.join(".alopex.lock").exists());
    let db = common::alopex::open_db(&target);
    common::alopex::assert_state(&db, &taken[1].model, "CLI restore of snapshot 1");

    // The whole repository verifies clean, stages included.
    let report = common::verify_read_data(&repo);
    assert!(report.ok(), "{:?}", report.findings);
    assert!(report.stage_files > 0);
    eprintln!("roundtrip took {:?}", started.elapsed());
}
