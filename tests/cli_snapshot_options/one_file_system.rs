//! `--one-file-system`: a directory on another file system is recorded as an empty directory
//! (its mount point) and nothing below it is read. Needs a mount: as root a tmpfs is mounted
//! under the source; otherwise the case prints one line and returns (the device rule itself
//! is unit-tested in `src/backup/walk.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common;
use crate::harness::Sandbox;

/// A tmpfs mounted at a path, unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path) -> Option<Mount> {
        std::fs::create_dir_all(at).expect("mkdir mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "snapkeep-test"])
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

#[test]
fn another_file_system_is_kept_as_an_empty_directory() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let Some(_mount) = Mount::tmpfs(&src.join("mnt")) else {
        println!(
            "skipped: cannot mount a tmpfs here (not root); the walk's unit test covers the rule"
        );
        return;
    };
    common::write_file(&src.join("mnt/other/inside.txt"), b"on the tmpfs");
    let repo = sb.path("repo");
    sb.init(&repo);

    let all = super::snap(&sb, &repo, &[super::s(&src)]);
    let paths = super::ls_paths(&sb, &repo, all["id"].as_str().expect("id"));
    assert!(
        paths.iter().any(|p| p == "/mnt/other/inside.txt"),
        "{paths:?}"
    );

    let one = super::snap(&sb, &repo, &[super::s(&src), "--one-file-system"]);
    let paths = super::ls_paths(&sb, &repo, one["id"].as_str().expect("id"));
    assert!(
        paths.iter().any(|p| p == "/mnt"),
        "the mount point is kept: {paths:?}"
    );
    assert!(!paths.iter().any(|p| p.starts_with("/mnt/")), "{paths:?}");
    assert!(paths.iter().any(|p| p == "/sub/b.bin"), "{paths:?}");
    assert_eq!(one["files"], 2, "{one}");
    let x = super::snap(&sb, &repo, &[super::s(&src), "-x"]);
    assert_eq!(x["tree"], one["tree"]);
}
