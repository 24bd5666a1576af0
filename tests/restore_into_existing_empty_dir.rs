//! Restoring into an existing empty directory fills that directory (same inode), which takes
//! the snapshot root's mode and mtime; a failed restore leaves it empty.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use snapkeep::{BackupOptions, InitOptions, NoProgress, Repository, RestoreOptions};

#[test]
fn existing_empty_target_keeps_its_inode_and_takes_the_snapshot_roots_mode() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("sub")).expect("mkdir");
    fs::write(src.join("a"), b"alpha").expect("write");
    fs::write(src.join("sub/b"), b"beta").expect("write");
    let repo =
        Repository::init_local(&tmp.path().join("repo"), &InitOptions::default()).expect("init");
    let snap =
        snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress).expect("snapshot");

    let target = tmp.path().join("target");
    fs::create_dir(&target).expect("mkdir");
    fs::set_permissions(&target, fs::Permissions::from_mode(0o751)).expect("chmod");
    let ino = fs::metadata(&target).expect("stat").ino();
    snapkeep::restore(
        &repo,
        &snap.record.id,
        &target,
        &RestoreOptions::default(),
        &NoProgress,
    )
    .expect("restore");
    let m = fs::metadata(&target).expect("stat");
    assert_eq!(m.ino(), ino, "the target directory was replaced");
    let src_mode = fs::metadata(&src).expect("stat").permissions().mode() & 0o7777;
    assert_ne!(src_mode, 0o751);
    assert_eq!(m.permissions().mode() & 0o7777, src_mode);
    assert_eq!(fs::read(target.join("a")).expect("a"), b"alpha");
    assert_eq!(fs::read(target.join("sub/b")).expect("b"), b"beta");
    let names: Vec<_> = fs::read_dir(&target)
        .expect("list")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 2, "staging left behind: {names:?}");

    // A restore that fails (a pack is gone) leaves an empty target empty.
    for e in common::files_under(&tmp.path().join("repo/data")) {
        fs::remove_file(e).expect("rm pack");
    }
    let again = tmp.path().join("again");
    fs::create_dir(&again).expect("mkdir");
    snapkeep::restore(
        &repo,
        &snap.record.id,
        &again,
        &RestoreOptions::default(),
        &NoProgress,
    )
    .expect_err("packs are gone");
    assert_eq!(fs::read_dir(&again).expect("list").count(), 0);
}
