//! Item 4: an entry that cannot be read is left out, the snapshot is saved, and the exit code
//! is 5 with the paths in `unreadable` (not exit 0 with only a warning). The child runs as
//! `nobody` when the tests run as root, because root reads a mode-000 file.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

use crate::common;
use crate::harness::{Sandbox, code, expect_code, json, run, stderr};

const NOBODY: u32 = 65534;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Runs the CLI as `nobody` when root (else as ourselves).
fn run_as_user(sb: &Sandbox, repo: &Path, args: &[&str]) -> std::process::Output {
    let mut c = sb.cmd();
    c.arg("--repo").arg(repo).args(args);
    if is_root() {
        c.uid(NOBODY).gid(NOBODY);
    }
    run(c)
}

/// Gives the sandbox to the user the CLI runs as (0755 root, repository and home owned).
fn share(sb: &Sandbox, owned: &[&Path]) {
    fs::set_permissions(&sb.root, fs::Permissions::from_mode(0o755)).expect("chmod sandbox");
    if is_root() {
        for p in owned {
            for f in common::files_under(p)
                .iter()
                .map(std::path::PathBuf::as_path)
                .chain([*p])
            {
                std::os::unix::fs::lchown(f, Some(NOBODY), Some(NOBODY)).expect("chown");
            }
        }
    }
}

#[test]
fn unreadable_file_gives_exit_5_and_its_path_in_json() {
    let sb = Sandbox::new();
    let src = sb.path("src");
    common::write_file(&src.join("ok.txt"), b"readable\n");
    common::write_file(&src.join("sub/also.txt"), b"readable too\n");
    let repo = sb.path("repo");
    fs::create_dir(&repo).expect("mkdir repo");
    share(&sb, &[&src, &repo, &sb.path("home")]);
    expect_code(&run_as_user(&sb, &repo, &["init"]), 0, "init");
    // Owned by root (or by us) with mode 000: nobody else can open it.
    let secret = src.join("sub/secret.db");
    common::write_file(&secret, b"the database file");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).expect("chmod");
    if !is_root() {
        println!("not root: the mode-000 file is our own and unreadable to us as well");
    }

    let out = run_as_user(&sb, &repo, &["--json", "snapshot", super::s(&src)]);
    expect_code(&out, 5, "a snapshot missing an unreadable file");
    let v = json(&out);
    let unreadable = v["unreadable"].as_array().expect("unreadable is an array");
    assert_eq!(unreadable.len(), 1, "{v}");
    assert_eq!(unreadable[0]["path"], super::s(&secret), "{v}");
    assert!(
        unreadable[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("open")),
        "the error says what failed: {v}"
    );
    assert_eq!(v["files"], 2, "the readable files are saved: {v}");
    assert!(
        v["warnings"].as_array().is_some_and(|w| w
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("secret.db")))),
        "the warning stays: {v}"
    );
    assert!(
        stderr(&out).contains("exit code 5"),
        "stderr explains the exit code: {}",
        stderr(&out)
    );
    // The snapshot was saved.
    let list = run_as_user(&sb, &repo, &["--json", "list"]);
    expect_code(&list, 0, "list");
    assert_eq!(json(&list)[0]["id"], v["id"]);

    // Readable again: exit 0, nothing unreadable.
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = run_as_user(&sb, &repo, &["--json", "snapshot", super::s(&src)]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(json(&out)["unreadable"], serde_json::json!([]));

    // Without --json: the id on stdout, exit 5 all the same.
    let closed = src.join("closed");
    fs::create_dir(&closed).expect("mkdir");
    fs::set_permissions(&closed, fs::Permissions::from_mode(0o000)).expect("chmod");
    let out = run_as_user(&sb, &repo, &["snapshot", super::s(&src)]);
    expect_code(&out, 5, "an unlistable directory");
    assert!(stderr(&out).contains(super::s(&closed)), "{}", stderr(&out));
}
