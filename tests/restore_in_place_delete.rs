//! Issue #19 item 2, "a hint that deletes": restoring into a non-empty directory is refused
//! with a hint that says `--in-place` deletes and points at `--dry-run`; `--in-place` into a
//! directory that is neither the snapshot's source nor of the same database layout deletes
//! nothing unless `--delete` is given (exit 2, naming how many entries and which); into the
//! snapshot's own source, or a directory of the same database layout, it deletes as before.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

/// A repository with one snapshot of `src` (`a`, `sub/b`); the repository, the source and the
/// snapshot id.
fn setup(tmp: &Path) -> (PathBuf, PathBuf, String) {
    let src = tmp.join("src");
    common::write_file(&src.join("a"), b"alpha");
    common::write_file(&src.join("sub/b"), b"beta");
    let repo = tmp.join("repo");
    let _ = common::small_repo(&repo);
    let id = snapshot(&repo, &src, &[]);
    (repo, src, id)
}

fn snapshot(repo: &Path, src: &Path, extra: &[&str]) -> String {
    let mut args = vec!["--quiet", "snapshot", src.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    let out = common::cli(repo, &args);
    common::assert_exit(&out, 0, "snapshot");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn the_non_empty_target_hint_says_that_in_place_deletes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (repo, _src, id) = setup(tmp.path());
    let dir = tmp.path().join("dir");
    common::write_file(&dir.join("unrelated.txt"), b"mine");
    let out = common::cli(&repo, &["restore", &id, dir.to_str().expect("utf-8")]);
    common::assert_exit(&out, 2, "restore into a non-empty directory");
    let err = common::stderr_of(&out);
    assert!(err.contains("not empty"), "{err}");
    assert!(
        err.contains("--in-place") && err.contains("deletes") && err.contains("--dry-run"),
        "the hint must say that --in-place deletes and point at --dry-run: {err}"
    );
    assert!(!err.trim_end().ends_with("(or --in-place)"), "{err}");
    assert_eq!(fs::read(dir.join("unrelated.txt")).expect("kept"), b"mine");
}

#[test]
fn in_place_into_an_unrelated_directory_deletes_only_with_delete() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (repo, _src, id) = setup(tmp.path());
    let dir = tmp.path().join("dir");
    common::write_file(&dir.join("unrelated.txt"), b"mine");
    common::write_file(&dir.join("sub/other"), b"also mine");
    let d = dir.to_str().expect("utf-8");

    // Following the hint does not delete: refused, nothing written, nothing deleted.
    let out = common::cli(&repo, &["restore", &id, d, "--in-place"]);
    common::assert_exit(&out, 2, "in place into an unrelated directory");
    let err = common::stderr_of(&out);
    assert!(err.contains("would delete 2 entries"), "{err}");
    assert!(
        err.contains("/unrelated.txt") && err.contains("/sub/other"),
        "{err}"
    );
    assert!(
        err.contains("--delete") && err.contains("--dry-run"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    assert_eq!(fs::read(dir.join("unrelated.txt")).expect("kept"), b"mine");
    assert_eq!(fs::read(dir.join("sub/other")).expect("kept"), b"also mine");
    assert!(!dir.join("a").exists(), "a refused restore wrote a file");
    let names: Vec<String> = fs::read_dir(tmp.path())
        .expect("list")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains("snapkeep")),
        "a refused restore left {names:?}"
    );

    // The same with --json: {error, exit_code: 2}.
    let out = common::cli(&repo, &["--json", "restore", &id, d, "--in-place"]);
    assert_eq!(out.status.code(), Some(2));
    let v = common::json_of(&out);
    assert_eq!(v["exit_code"], 2);
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("--delete")),
        "{v}"
    );

    // --delete needs --in-place.
    let out = common::cli(&repo, &["restore", &id, d, "--delete"]);
    common::assert_exit(&out, 2, "--delete without --in-place");
    assert!(dir.join("unrelated.txt").exists());

    // With --delete: the directory becomes the snapshot's.
    let v = common::cli_json(&repo, &["restore", &id, d, "--in-place", "--delete"]);
    assert_eq!(v["deleted"], 2, "{v}");
    assert!(!dir.join("unrelated.txt").exists());
    assert!(!dir.join("sub/other").exists());
    assert_eq!(fs::read(dir.join("a")).expect("a"), b"alpha");
    assert_eq!(fs::read(dir.join("sub/b")).expect("b"), b"beta");

    // Nothing to delete: an unrelated directory is restored over without --delete.
    fs::write(dir.join("a"), b"changed").expect("write");
    let out = common::cli(&repo, &["restore", &id, d, "--in-place"]);
    common::assert_exit(&out, 0, "in place with nothing to delete");
    assert_eq!(fs::read(dir.join("a")).expect("a"), b"alpha");
}

#[test]
fn in_place_into_the_snapshot_source_deletes_without_delete() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (repo, src, id) = setup(tmp.path());
    common::write_file(&src.join("new-since"), b"later");
    let out = common::cli(
        &repo,
        &["restore", &id, src.to_str().expect("utf-8"), "--in-place"],
    );
    common::assert_exit(&out, 0, "in place into the snapshot's own source");
    assert!(!src.join("new-since").exists());
    assert_eq!(fs::read(src.join("a")).expect("a"), b"alpha");
}

#[test]
fn in_place_into_a_directory_of_the_same_database_layout_deletes_without_delete() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    let _ = common::small_repo(&repo);
    // An Alopex-shaped directory by its names (the format stages are off: the bytes are not
    // a real database).
    let db = tmp.path().join("db1");
    common::write_file(&db.join("lsm.wal"), b"wal");
    common::write_file(&db.join("checkpoint.meta"), b"meta");
    common::write_file(&db.join("sst/1.sst"), b"sst one");
    let id = snapshot(&repo, &db, &["--stages", "none"]);
    let replica = tmp.path().join("replica");
    common::copy_dir(&db, &replica);
    common::write_file(&replica.join("sst/2.sst"), b"sst two");
    let out = common::cli(
        &repo,
        &[
            "restore",
            &id,
            replica.to_str().expect("utf-8"),
            "--in-place",
            "--stages",
            "none",
        ],
    );
    common::assert_exit(&out, 0, "in place into a replica of the same layout");
    assert!(!replica.join("sst/2.sst").exists());
    assert_eq!(
        fs::read(replica.join("sst/1.sst")).expect("sst"),
        b"sst one"
    );
}

/// What the snapshot's excludes left out is kept by an in-place restore, never deleted: a
/// `--dry-run` does not list it, the real run leaves it as it was (same inode), and what the
/// excludes do not match is deleted as before.
#[test]
fn in_place_keeps_what_the_snapshots_excludes_left_out() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    common::write_file(&src.join("a"), b"alpha");
    common::write_file(&src.join("sub/b"), b"beta");
    common::write_file(&src.join("sub/old.log"), b"log at snapshot time");
    common::write_file(&src.join("cache/blob"), b"cache at snapshot time");
    let repo = tmp.path().join("repo");
    let _ = common::small_repo(&repo);
    let id = snapshot(&repo, &src, &["--exclude", "*.log", "--exclude", "/cache"]);
    // Later: the logs and the cache change, a new log and a new ordinary file appear.
    fs::write(src.join("sub/old.log"), b"log now").expect("write");
    common::write_file(&src.join("new.log"), b"new log");
    common::write_file(&src.join("cache/other"), b"more cache");
    common::write_file(&src.join("stray.txt"), b"not excluded");
    fs::write(src.join("a"), b"changed").expect("write");
    let ino = fs::metadata(src.join("sub/old.log")).expect("stat").ino();
    let s = src.to_str().expect("utf-8");

    let v = common::cli_json(&repo, &["restore", &id, s, "--in-place", "--dry-run"]);
    let deleted: Vec<&str> = v["delete"]
        .as_array()
        .expect("delete")
        .iter()
        .map(|d| d.as_str().expect("path"))
        .collect();
    assert_eq!(deleted, ["/stray.txt"], "{v}");

    let v = common::cli_json(&repo, &["restore", &id, s, "--in-place"]);
    assert_eq!(v["deleted"], 1, "{v}");
    assert!(!src.join("stray.txt").exists());
    assert_eq!(fs::read(src.join("a")).expect("a"), b"alpha");
    assert_eq!(fs::read(src.join("sub/old.log")).expect("kept"), b"log now");
    assert_eq!(
        fs::metadata(src.join("sub/old.log")).expect("stat").ino(),
        ino
    );
    assert_eq!(fs::read(src.join("new.log")).expect("kept"), b"new log");
    assert_eq!(
        fs::read(src.join("cache/other")).expect("kept"),
        b"more cache"
    );
    assert_eq!(
        fs::read(src.join("cache/blob")).expect("kept"),
        b"cache at snapshot time"
    );
}
