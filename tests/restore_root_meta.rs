//! `restore` gives the target's top directory the snapshot root's mode and mtime: into a new
//! directory, into an existing empty one (which keeps its inode), and in place.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Mode bits and mtime (ns) of `dir`.
fn meta(dir: &Path) -> (u32, i64) {
    let m = fs::metadata(dir).expect("stat");
    (
        m.permissions().mode() & 0o7777,
        m.mtime() * 1_000_000_000 + m.mtime_nsec(),
    )
}

fn set_meta(dir: &Path, mode: u32, mtime: SystemTime) {
    fs::set_permissions(dir, fs::Permissions::from_mode(mode)).expect("chmod");
    fs::File::open(dir)
        .expect("open dir")
        .set_modified(mtime)
        .expect("set mtime");
}

#[test]
fn the_target_directory_takes_the_snapshot_roots_mode_and_mtime() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    common::write_file(&src.join("a"), b"alpha");
    common::write_file(&src.join("sub/b"), b"beta");
    let then = SystemTime::UNIX_EPOCH + Duration::new(1_600_000_000, 123_456_789);
    set_meta(&src, 0o750, then);
    let want = meta(&src);
    assert_eq!(want.0, 0o750);
    let repo = tmp.path().join("repo");
    let _ = common::small_repo(&repo);
    let out = common::cli(
        &repo,
        &["--quiet", "snapshot", src.to_str().expect("utf-8")],
    );
    common::assert_exit(&out, 0, "snapshot");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let restore = |target: &Path, extra: &[&str]| {
        let mut args = vec!["restore", id.as_str(), target.to_str().expect("utf-8")];
        args.extend_from_slice(extra);
        let out = common::cli(&repo, &args);
        common::assert_exit(&out, 0, "restore");
    };

    let fresh = tmp.path().join("fresh");
    restore(&fresh, &[]);
    assert_eq!(meta(&fresh), want, "a new target");

    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).expect("mkdir");
    fs::set_permissions(&empty, fs::Permissions::from_mode(0o711)).expect("chmod");
    let ino = fs::metadata(&empty).expect("stat").ino();
    restore(&empty, &[]);
    assert_eq!(meta(&empty), want, "an existing empty target");
    assert_eq!(fs::metadata(&empty).expect("stat").ino(), ino);

    set_meta(&src, 0o700, SystemTime::now());
    fs::write(src.join("a"), b"changed").expect("write");
    restore(&src, &["--in-place"]);
    assert_eq!(meta(&src), want, "in place");
    assert_eq!(fs::read(src.join("a")).expect("a"), b"alpha");
}
