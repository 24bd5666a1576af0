//! Incremental snapshots never miss a change: whatever a snapshot may reuse from its parent,
//! a file whose content changed (same size, mtime put back) or that was replaced, re-moded or
//! whose chunks are no longer indexed comes back from the new snapshot as it is now.

mod common;

use std::fs::{self, File, FileTimes};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use snapkeep::{BackupOptions, NoProgress, Repository, RestoreOptions, SnapshotId, SnapshotRecord};

/// An mtime long before any snapshot: old enough for any "settled file" rule.
fn old_time() -> std::time::SystemTime {
    UNIX_EPOCH + Duration::new(1_600_000_000, 123_456_789)
}

fn set_old_mtime(path: &Path) {
    File::options()
        .write(true)
        .open(path)
        .expect("open")
        .set_times(FileTimes::new().set_modified(old_time()))
        .expect("set mtime");
}

fn snap(repo: &Repository, src: &Path) -> SnapshotId {
    snapkeep::snapshot(repo, src, &BackupOptions::default(), &NoProgress)
        .expect("snapshot")
        .record
        .id
}

fn restore(repo: &Repository, id: &SnapshotId, target: &Path) {
    snapkeep::restore(repo, id, target, &RestoreOptions::default(), &NoProgress).expect("restore");
}

fn verify_ok(repo: &Repository) {
    let r = common::verify_read_data(repo);
    assert!(r.ok(), "{:?}", r.findings);
}

fn snap_with_parent(repo: &Repository, src: &Path, parent: SnapshotId) -> SnapshotRecord {
    let opts = BackupOptions {
        parent: Some(parent),
        ..BackupOptions::default()
    };
    snapkeep::snapshot(repo, src, &opts, &NoProgress)
        .expect("snapshot")
        .record
}

#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, its steps in order")]
fn changes_behind_unchanged_looking_metadata_are_captured() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    let a = common::random_bytes(200_000, 1);
    let b = common::random_bytes(200_000, 2);
    let c = common::random_bytes(50_000, 3);
    let (s1, s2) = (
        common::random_bytes(30_000, 5),
        common::random_bytes(30_000, 6),
    );
    common::write_file(&src.join("same-size.db"), &a);
    common::write_file(&src.join("replaced.db"), &c);
    common::write_file(&src.join("chmod.db"), b"mode only");
    common::write_file(&src.join("untouched.db"), b"never changes");
    common::write_file(&src.join("sub/swap1"), &s1);
    common::write_file(&src.join("sub/swap2"), &s2);
    let files = [
        "same-size.db",
        "replaced.db",
        "chmod.db",
        "untouched.db",
        "sub/swap1",
        "sub/swap2",
    ];
    for f in files {
        set_old_mtime(&src.join(f));
    }
    let repo = common::small_repo(&tmp.path().join("repo"));
    let first = snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress)
        .expect("snapshot")
        .record;
    let parent = common::later_parent(&repo, &first, 10);

    // Nothing changed: everything may be reused from the parent, and the result is the same.
    let second = snap_with_parent(&repo, &src, parent);
    assert_eq!(second.parent, Some(parent));
    assert_eq!(second.summary.files, files.len() as u64);
    assert_eq!(second.tree, first.tree, "an unchanged tree changed its id");
    assert_eq!(
        second.summary.data_bytes, 0,
        "settled, unchanged files were read again (reuse not exercised)"
    );

    // Same size, mtime put back to the old value: only ctime tells.
    let path = src.join("same-size.db");
    let before = fs::metadata(&path).expect("stat");
    File::options()
        .write(true)
        .open(&path)
        .expect("open")
        .write_all_at(&b, 0)
        .expect("overwrite");
    set_old_mtime(&path);
    let after = fs::metadata(&path).expect("stat");
    assert_eq!(
        (
            before.len(),
            before.mtime(),
            before.mtime_nsec(),
            before.ino()
        ),
        (after.len(), after.mtime(), after.mtime_nsec(), after.ino())
    );

    // Replaced by another file of the same size and mtime (a new inode).
    let tmpfile = src.join("replaced.db.new");
    let c2 = common::random_bytes(50_000, 4);
    fs::write(&tmpfile, &c2).expect("write");
    set_old_mtime(&tmpfile);
    fs::rename(&tmpfile, src.join("replaced.db")).expect("rename");

    // Two files of equal size and mtime swap names.
    fs::rename(src.join("sub/swap1"), src.join("sub/swap.tmp")).expect("rename");
    fs::rename(src.join("sub/swap2"), src.join("sub/swap1")).expect("rename");
    fs::rename(src.join("sub/swap.tmp"), src.join("sub/swap2")).expect("rename");

    // Only the mode changes.
    fs::set_permissions(src.join("chmod.db"), fs::Permissions::from_mode(0o751)).expect("chmod");

    let third = snap_with_parent(&repo, &src, parent);
    let reread = 200_000 + 50_000 + 9 + 2 * 30_000;
    assert_eq!(
        third.summary.data_bytes, reread,
        "exactly the changed files are read again"
    );
    let out = tmp.path().join("r3");
    restore(&repo, &third.id, &out);
    assert!(
        fs::read(out.join("same-size.db")).expect("read") == b,
        "same-size rewrite with the old mtime was missed"
    );
    assert!(
        fs::read(out.join("replaced.db")).expect("read") == c2,
        "replaced file was missed"
    );
    assert!(
        fs::read(out.join("sub/swap1")).expect("read") == s2
            && fs::read(out.join("sub/swap2")).expect("read") == s1,
        "swapped files were missed"
    );
    let m = fs::metadata(out.join("chmod.db")).expect("stat");
    assert_eq!(
        m.permissions().mode() & 0o7777,
        0o751,
        "mode change was missed"
    );
    assert_eq!(
        fs::read(out.join("untouched.db")).expect("read"),
        b"never changes"
    );
    let m = fs::metadata(out.join("untouched.db")).expect("stat");
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_600_000_000, 123_456_789));

    // The first snapshot still restores its own content.
    restore(&repo, &first.id, &tmp.path().join("r1"));
    assert!(fs::read(tmp.path().join("r1/same-size.db")).expect("read") == a);
    verify_ok(&repo);
}

#[test]
fn unindexed_parent_chunks_are_stored_again() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    let data = common::random_bytes(300_000, 9);
    common::write_file(&src.join("f.db"), &data);
    set_old_mtime(&src.join("f.db"));
    let repo_dir = tmp.path().join("repo");
    let repo = common::small_repo(&repo_dir);
    snap(&repo, &src);
    drop(repo);

    // Lose the index: the parent's chunks are no longer known to be stored.
    for f in common::index_files(&repo_dir) {
        fs::remove_file(f).expect("delete index file");
    }
    let repo = Repository::open_local(&repo_dir).expect("reopen");
    let id = snap(&repo, &src);
    let rec = repo.load_snapshot(&id).expect("record");
    assert_eq!(
        rec.summary.new_bytes,
        data.len() as u64,
        "chunks were not stored again"
    );
    // Restorable without a repair: the new snapshot's index covers everything it needs.
    restore(&repo, &id, &tmp.path().join("out"));
    assert!(fs::read(tmp.path().join("out/f.db")).expect("read") == data);
}
