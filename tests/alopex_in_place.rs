//! In-place restore into a live Alopex data directory: a snapshot of state A restored over
//! the directory at a later state B keeps identical files (same inode), rewrites changed
//! ones, deletes SSTables A did not have, never touches `.alopex.lock` or `.lifecycle/`, and
//! the database opens at exactly state A. While a handle holds the database's OS lock the
//! restore refuses (`Error::Locked`, CLI exit 3) and changes nothing; `force` overrides.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::alopex::{Model, Op, commit, value};
use snapkeep::{BackupOptions, NoProgress, Repository, RestoreOptions, SnapshotId};

fn put(k: &str, seed: u64) -> Op {
    (
        k.as_bytes().to_vec(),
        Some(value(seed, 40 + (seed % 300) as usize)),
    )
}

fn del(k: &str) -> Op {
    (k.as_bytes().to_vec(), None)
}

/// State A (two SSTables via checkpoints, a WAL tail) snapshotted; then state B on top
/// (overwrites, deletes, a checkpoint and a close that add SSTables, a WAL tail). The
/// database is closed and dropped at B.
struct Fixture {
    _tmp: tempfile::TempDir,
    db: PathBuf,
    repo_dir: PathBuf,
    repo: Repository,
    snap_a: SnapshotId,
    model_a: Model,
    model_b: Model,
    /// Copy of the files snapshot A captured.
    reference_a: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().to_path_buf();
    let db = root.join("db");
    let repo_dir = root.join("repo");
    let repo = common::small_repo(&repo_dir);
    let store = common::alopex::open_db(&db);
    let mut model = Model::new();

    let batch = |from: u64, to: u64, seed: u64| -> Vec<Op> {
        (from..to)
            .map(|i| put(&format!("row/{i:04}"), i * 10 + seed))
            .collect()
    };
    commit(&store, &mut model, &batch(0, 80, 1));
    store.checkpoint().expect("checkpoint");
    commit(&store, &mut model, &batch(80, 120, 1));
    store.checkpoint().expect("checkpoint");
    commit(&store, &mut model, &batch(120, 140, 1));
    commit(&store, &mut model, &[del("row/0005"), put("row/0006", 99)]);
    fs::create_dir_all(db.join(".lifecycle")).expect("mkdir .lifecycle");
    fs::write(db.join(".lifecycle/marker"), b"lifecycle state: serving\n").expect("marker");
    let snap_a = common::alopex::snap(&repo, &db, &BackupOptions::default())
        .record
        .id;
    let model_a = model.clone();
    let reference_a = root.join("reference-a");
    common::alopex::copy_data_dir(&db, &reference_a);
    let _ = fs::remove_file(reference_a.join(".alopex.lock"));
    let _ = fs::remove_dir_all(reference_a.join(".lifecycle"));

    // State B.
    let mut ops = batch(0, 140, 2).into_iter().step_by(4).collect::<Vec<_>>();
    ops.extend((100..140).step_by(3).map(|i| del(&format!("row/{i:04}"))));
    commit(&store, &mut model, &ops);
    store.checkpoint().expect("checkpoint");
    commit(&store, &mut model, &batch(140, 200, 2));
    commit(&store, &mut model, &[del("row/0000"), del("row/0081")]);
    store.close().expect("close");
    drop(store);
    fs::write(db.join(".lifecycle/marker"), b"lifecycle state: stopped\n").expect("marker");
    assert_ne!(model, model_a);

    Fixture {
        _tmp: tmp,
        db,
        repo_dir,
        repo,
        snap_a,
        model_a,
        model_b: model,
        reference_a,
    }
}

/// Relative path → (inode, content) of every regular file below `dir`.
fn files_with_inodes(dir: &Path) -> BTreeMap<String, (u64, Vec<u8>)> {
    common::alopex::dir_paths(dir)
        .into_iter()
        .filter(|rel| dir.join(rel).is_file())
        .filter(|rel| rel != "lsm.wal")
        .map(|rel| {
            let p = dir.join(&rel);
            let ino = fs::metadata(&p).expect("stat").ino();
            (rel, (ino, fs::read(&p).expect("read")))
        })
        .collect()
}

fn in_place(force: bool) -> RestoreOptions {
    RestoreOptions {
        in_place: true,
        force,
        ..RestoreOptions::default()
    }
}

#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, its steps in order")]
fn in_place_restore_returns_the_directory_to_state_a() {
    let f = fixture();
    let lock_before = fs::read(f.db.join(".alopex.lock")).expect("lock file exists");
    let lock_ino = fs::metadata(f.db.join(".alopex.lock")).expect("stat").ino();
    let marker_before = fs::read(f.db.join(".lifecycle/marker")).expect("marker");
    let before = common::alopex::dir_paths(&f.db);
    let ssts_b = common::alopex::sst_files(&f.db);
    let ino_of = |rel: &str| fs::metadata(f.db.join(rel)).expect("stat").ino();

    // What the restore must do, worked out from the files themselves.
    let wanted = common::alopex::dir_paths(&f.reference_a);
    let mut identical = Vec::new();
    let mut differing = Vec::new();
    for rel in &wanted {
        let (a, b) = (f.reference_a.join(rel), f.db.join(rel));
        if !a.is_file() {
            continue;
        }
        if b.is_file() && common::alopex::same_content(&a, &b) {
            identical.push(rel.clone());
        } else {
            differing.push(rel.clone());
        }
    }
    let extra: Vec<&String> = before
        .iter()
        .filter(|p| !wanted.contains(p))
        .filter(|p| {
            !(p.as_str() == ".alopex.lock"
                || p.as_str() == ".lifecycle"
                || p.starts_with(".lifecycle/"))
        })
        .collect();
    assert!(
        identical.iter().any(|p| p.starts_with("sst/")),
        "A's SSTables are still there unchanged: {identical:?}"
    );
    assert!(differing.iter().any(|p| p == "lsm.wal"), "{differing:?}");
    assert!(
        differing.iter().any(|p| p == "checkpoint.meta"),
        "{differing:?}"
    );
    assert!(
        extra.iter().any(|p| p.starts_with("sst/")),
        "B added SSTables: {extra:?} (B has {ssts_b:?})"
    );
    let identical_inodes: Vec<u64> = identical.iter().map(|p| ino_of(p)).collect();
    let differing_inodes: Vec<u64> = differing.iter().map(|p| ino_of(p)).collect();

    let stats = snapkeep::restore(&f.repo, &f.snap_a, &f.db, &in_place(false), &NoProgress)
        .expect("in-place restore of a stopped database");
    // Identical files were left alone, differing ones replaced, extra ones gone.
    for (rel, ino) in identical.iter().zip(&identical_inodes) {
        assert_eq!(ino_of(rel), *ino, "identical {rel} was rewritten");
    }
    for (rel, ino) in differing.iter().zip(&differing_inodes) {
        assert_ne!(ino_of(rel), *ino, "differing {rel} was not replaced");
        assert!(
            common::alopex::same_content(&f.reference_a.join(rel), &f.db.join(rel)),
            "{rel} does not hold A's bytes"
        );
    }
    for rel in &extra {
        assert!(!f.db.join(rel).exists(), "{rel} (not in A) survived");
    }
    // Counted as done.
    assert_eq!(stats.unchanged, identical.len() as u64, "{stats:?}");
    assert_eq!(stats.deleted, extra.len() as u64, "{stats:?}");
    assert_eq!(stats.files, (identical.len() + differing.len()) as u64);
    assert!(
        stats.stage_problems.is_empty(),
        "{:?}",
        stats.stage_problems
    );
    assert!(stats.stage_files >= 3, "{stats:?}");

    let mut after = common::alopex::dir_paths(&f.db);
    after.retain(|p| !(p == ".alopex.lock" || p == ".lifecycle" || p.starts_with(".lifecycle/")));
    assert_eq!(
        after, wanted,
        "the directory does not hold exactly A's entries"
    );
    assert!(
        !common::alopex::dir_paths(&f.db)
            .iter()
            .any(|p| p.contains(".snapkeep-restore-")),
        "a temp file was left behind"
    );

    // The protected entries are byte-identical (and the lock file is the same inode).
    assert_eq!(
        fs::read(f.db.join(".alopex.lock")).expect("lock"),
        lock_before
    );
    assert_eq!(
        fs::metadata(f.db.join(".alopex.lock")).expect("stat").ino(),
        lock_ino
    );
    assert_eq!(
        fs::read(f.db.join(".lifecycle/marker")).expect("marker"),
        marker_before
    );

    // The database is at state A, and keeps working from there.
    let store = common::alopex::open_db(&f.db);
    common::alopex::assert_state(&store, &f.model_a, "in-place restore of A");
    let mut model = f.model_a.clone();
    commit(
        &store,
        &mut model,
        &[put("after/restore", 7), del("row/0010")],
    );
    drop(store);
    let store = common::alopex::open_db(&f.db);
    common::alopex::assert_state(&store, &model, "a write after the in-place restore");
    drop(store);

    // Restoring the same snapshot again changes nothing: everything is identical.
    let stats2 = snapkeep::restore(&f.repo, &f.snap_a, &f.db, &in_place(false), &NoProgress);
    // The write above changed lsm.wal, so exactly that file is rewritten.
    let stats2 = stats2.expect("second in-place restore");
    assert_eq!(stats2.deleted, 0, "{stats2:?}");
    assert_eq!(stats2.unchanged, stats2.files - 1, "{stats2:?}");
    let store = common::alopex::open_db(&f.db);
    common::alopex::assert_state(&store, &f.model_a, "second in-place restore of A");
}

#[test]
fn in_place_restore_refuses_while_the_database_runs_unless_forced() {
    let f = fixture();
    let store = common::alopex::open_db(&f.db);
    common::alopex::assert_state(&store, &f.model_b, "state B");
    let before = files_with_inodes(&f.db);
    let wal_before = fs::metadata(f.db.join("lsm.wal")).expect("stat").ino();

    let err = snapkeep::restore(&f.repo, &f.snap_a, &f.db, &in_place(false), &NoProgress)
        .expect_err("a running database must not be restored over");
    match &err {
        snapkeep::Error::Locked(msg) => {
            assert!(
                msg.contains(".alopex.lock"),
                "the message names the lock: {msg}"
            );
        }
        other => panic!("expected Error::Locked, got {other}"),
    }
    assert_eq!(
        files_with_inodes(&f.db),
        before,
        "a refused restore changed files"
    );
    assert_eq!(
        fs::metadata(f.db.join("lsm.wal")).expect("stat").ino(),
        wal_before
    );

    // The CLI: exit 3, nothing on stdout, the reason on stderr; --force needs --in-place.
    let db = f.db.to_str().expect("utf-8");
    let id = f.snap_a.to_string();
    let out = common::cli_exited(&f.repo_dir, &["restore", &id, db, "--in-place"]);
    common::assert_exit(&out, 3, "");
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("alopex.lock"));
    let out = common::cli_exited(&f.repo_dir, &["--json", "restore", &id, db, "--in-place"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(common::json_of(&out)["exit_code"], 3);
    let out = common::cli_exited(&f.repo_dir, &["restore", &id, db, "--force"]);
    assert_eq!(out.status.code(), Some(2), "--force without --in-place");
    assert_eq!(
        files_with_inodes(&f.db),
        before,
        "a refused CLI restore changed files"
    );

    // Forced: it proceeds under the running database.
    let stats = snapkeep::restore(&f.repo, &f.snap_a, &f.db, &in_place(true), &NoProgress)
        .expect("forced in-place restore");
    assert!(stats.deleted > 0 && stats.unchanged > 0, "{stats:?}");
    assert!(
        stats.stage_problems.is_empty(),
        "{:?}",
        stats.stage_problems
    );
    drop(store);
    let store = common::alopex::open_db(&f.db);
    common::alopex::assert_state(&store, &f.model_a, "forced in-place restore of A");
    drop(store);

    // The CLI with --force while a handle is open succeeds too (exit 0).
    let holder = common::alopex::open_db(&f.db);
    let out = common::cli_exited(&f.repo_dir, &["restore", &id, db, "--in-place", "--force"]);
    common::assert_exit(&out, 0, "");
    drop(holder);
    let store = common::alopex::open_db(&f.db);
    common::alopex::assert_state(&store, &f.model_a, "CLI forced in-place restore of A");
}

/// Minimal form of the in-place "identical" check's blind spot: two files of the same size
/// that each end with the CRC32 of their preceding bytes (as `checkpoint.meta` does, and any
/// self-checksummed format) have the same whole-file CRC32 (the CRC residue), so a check by
/// size and CRC32 alone takes a different file for an identical one.
#[test]
fn in_place_restore_replaces_a_same_size_file_whose_crc32_collides() {
    fn self_crc(body: &[u8]) -> Vec<u8> {
        let mut v = body.to_vec();
        v.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        v
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).expect("mkdir");
    let old = self_crc(b"checkpoint lsn 0000000002");
    let new = self_crc(b"checkpoint lsn 0000000099");
    assert_eq!(old.len(), new.len());
    assert_eq!(
        crc32fast::hash(&old),
        crc32fast::hash(&new),
        "CRC32 residue"
    );
    fs::write(src.join("meta"), &old).expect("write");
    let repo = common::small_repo(&tmp.path().join("repo"));
    let id = common::alopex::snap(&repo, &src, &BackupOptions::default())
        .record
        .id;
    fs::write(src.join("meta"), &new).expect("rewrite");
    let stats = snapkeep::restore(&repo, &id, &src, &in_place(false), &NoProgress)
        .expect("in-place restore");
    assert_eq!(
        fs::read(src.join("meta")).expect("read"),
        old,
        "in-place restore kept a file whose content differs from the snapshot ({stats:?})"
    );
    assert_eq!(stats.unchanged, 0, "{stats:?}");
}
