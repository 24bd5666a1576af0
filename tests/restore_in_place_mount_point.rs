//! `restore --in-place` into a mount point is refused (exit 2, naming it) before anything is
//! written: the atomic exchange cannot cross file systems, and there is no non-atomic
//! fallback. Needs a real mount: runs as root (as CI does) with a tmpfs, and says so and
//! returns where it cannot mount.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted at a path, unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path) -> Option<Mount> {
        if !rustix::process::geteuid().is_root() {
            return None;
        }
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "none"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Mount(at.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Takes a snapshot of `dir` (a path as text) into `repo`; its id.
fn snapshot_id(repo: &Path, dir: &str) -> String {
    let out = common::cli(repo, &["--quiet", "snapshot", dir]);
    common::assert_exit(&out, 0, "snapshot");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn in_place_into_a_mount_point_is_refused_and_writes_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    common::write_file(&src.join("a"), b"alpha");
    let repo = tmp.path().join("repo");
    let _ = common::small_repo(&repo);
    let id = snapshot_id(&repo, src.to_str().expect("utf-8"));

    let target = tmp.path().join("mnt");
    fs::create_dir(&target).expect("mkdir");
    let Some(_mount) = Mount::tmpfs(&target) else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    fs::write(target.join("a"), b"old").expect("write");
    let t = target.to_str().expect("utf-8");
    for extra in [&[][..], &["--dry-run"][..]] {
        let mut args = vec!["restore", id.as_str(), t, "--in-place", "--delete"];
        args.extend_from_slice(extra);
        let out = common::cli(&repo, &args);
        common::assert_exit(&out, 2, "in place into a mount point");
        let err = common::stderr_of(&out);
        assert!(err.contains("mount point") && err.contains(t), "{err}");
        assert_eq!(fs::read(target.join("a")).expect("a"), b"old");
    }
    let names: Vec<String> = fs::read_dir(tmp.path())
        .expect("list")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("snapkeep"))
        .collect();
    assert!(names.is_empty(), "left beside the target: {names:?}");
}

/// The parent of the target cannot be written (made immutable with `chattr +i`, which binds
/// root too): the error says that an in-place restore writes beside the target, names the
/// parent, and the target is as it was.
#[test]
fn in_place_with_an_unwritable_parent_says_why_and_writes_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let parent = tmp.path().join("parent");
    let target = parent.join("db");
    common::write_file(&target.join("a"), b"alpha");
    let repo = tmp.path().join("repo");
    let _ = common::small_repo(&repo);
    let t = target.to_str().expect("utf-8");
    let id = snapshot_id(&repo, t);
    fs::write(target.join("a"), b"changed").expect("write");
    let immutable = Command::new("chattr")
        .arg("+i")
        .arg(&parent)
        .status()
        .is_ok_and(|s| s.success());
    if !immutable {
        eprintln!("skipped: chattr +i is not available here");
        return;
    }
    let out = common::cli(&repo, &["restore", &id, t, "--in-place"]);
    let _ = Command::new("chattr").arg("-i").arg(&parent).status();
    common::assert_exit(&out, 2, "in place with an unwritable parent");
    let err = common::stderr_of(&out);
    let p = fs::canonicalize(&parent).expect("canonical");
    assert!(
        err.contains("beside") && err.contains(&*p.to_string_lossy()),
        "{err}"
    );
    assert_eq!(fs::read(target.join("a")).expect("a"), b"changed");
}

/// A file system mounted below the target (a WAL volume at `db/wal`): the in-place restore is
/// refused before anything is written, naming the mount point, and what the mounted file
/// system holds is untouched (a restore that went on would move it away with the old tree,
/// and removing that tree would empty it).
#[test]
fn in_place_with_a_mount_point_below_the_target_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("db");
    common::write_file(&db.join("a"), b"alpha");
    fs::create_dir(db.join("wal")).expect("mkdir wal");
    let repo = tmp.path().join("repo");
    let _ = common::small_repo(&repo);
    let d = db.to_str().expect("utf-8");
    let id = snapshot_id(&repo, d);
    let Some(_mount) = Mount::tmpfs(&db.join("wal")) else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    fs::write(db.join("wal/000001.log"), b"on the volume").expect("write");
    fs::write(db.join("a"), b"changed").expect("write");
    for extra in [&[][..], &["--delete"][..], &["--dry-run"][..]] {
        let mut args = vec!["restore", id.as_str(), d, "--in-place"];
        args.extend_from_slice(extra);
        let out = common::cli(&repo, &args);
        common::assert_exit(&out, 2, "in place over a mount point below the target");
        let err = common::stderr_of(&out);
        assert!(err.contains("mount point") && err.contains("wal"), "{err}");
        assert_eq!(
            fs::read(db.join("wal/000001.log")).expect("still on the volume"),
            b"on the volume"
        );
        assert_eq!(fs::read(db.join("a")).expect("a"), b"changed");
    }
}

/// What an interrupted in-place restore left beside the target is removed by the next one,
/// but never across a file system boundary: a file system mounted inside the leftover keeps
/// its files.
#[test]
fn leftover_removal_never_reaches_into_a_mounted_file_system() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("db");
    common::write_file(&db.join("a"), b"alpha");
    let repo = tmp.path().join("repo");
    let _ = common::small_repo(&repo);
    let d = db.to_str().expect("utf-8");
    let id = snapshot_id(&repo, d);
    // A leftover of a restore whose process is gone (pid 4194303 is above Linux's pid_max
    // default), with a file system mounted inside it.
    let leftover = tmp.path().join(".db.snapkeep-inplace-4194303-1");
    common::write_file(&leftover.join("old-file"), b"old");
    fs::create_dir(leftover.join("vol")).expect("mkdir");
    let Some(_mount) = Mount::tmpfs(&leftover.join("vol")) else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    fs::write(leftover.join("vol/keep"), b"on the volume").expect("write");
    fs::write(db.join("a"), b"changed").expect("write");
    let out = common::cli(&repo, &["restore", &id, d, "--in-place"]);
    common::assert_exit(&out, 0, "in place with a leftover holding a mount");
    assert_eq!(fs::read(db.join("a")).expect("a"), b"alpha");
    assert!(
        !leftover.join("old-file").exists(),
        "the leftover was not removed"
    );
    assert_eq!(
        fs::read(leftover.join("vol/keep")).expect("the mounted file system keeps its file"),
        b"on the volume"
    );
    assert!(
        common::stderr_of(&out).contains("mount point"),
        "the leftover that could not go is named: {}",
        common::stderr_of(&out)
    );
}
