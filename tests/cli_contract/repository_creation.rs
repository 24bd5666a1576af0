//! When a repository is created: a snapshot creates only the default repository (private
//! modes) on first use; a location the user named (`--repo`, `SNAPKEEP_REPO`) that holds no
//! repository is an error naming it and the `init` command (issue #19, item 5); `init` refuses
//! non-empty or existing paths; a refused snapshot creates nothing.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::common;
use crate::harness::{Sandbox, assert_uuid_v7, expect_code, json, run, stderr, stdout};

#[test]
fn snapshot_into_the_missing_default_repo_creates_it() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let repo = sb.path("xdg/snapkeep/repo");
    let snapshot = || {
        let mut c = sb.cmd();
        c.args(["snapshot", src.to_str().expect("utf8")]);
        run(c)
    };
    let out = snapshot();
    expect_code(&out, 0, "snapshot into the new default repository");
    let err = stderr(&out);
    assert!(
        err.contains("created") && err.contains(repo.to_str().expect("utf8")),
        "creation not reported on stderr: {err}"
    );
    let text = stdout(&out);
    assert!(
        text.ends_with('\n') && text.lines().count() == 1,
        "stdout: {text:?}"
    );
    let id = assert_uuid_v7(text.trim_end());
    assert!(repo.join("config").is_file());
    let mode = fs::metadata(&repo).expect("repo dir").permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "repository directory is not private");
    let mode = fs::metadata(repo.join("config"))
        .expect("config")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "config is not private");

    let list = json(&sb.run(&repo, &["list", "--json"]));
    assert_eq!(list[0]["id"], id.to_string());

    // The second snapshot does not create anything and says nothing about creating.
    let out = snapshot();
    expect_code(&out, 0, "second snapshot");
    assert!(!stderr(&out).contains("created a new repository"));
}

/// The refusal of a named location without a repository: exit 2, one error naming it and the
/// exact `init` command, with `--json` the error document; nothing created there.
fn assert_refused_naming(out: &std::process::Output, repo: &Path, what: &str) {
    expect_code(out, 2, what);
    let err = stderr(out);
    let init = format!("snapkeep init --repo {}", repo.display());
    assert!(
        err.contains(&init),
        "{what}: the error does not say '{init}': {err}"
    );
    assert!(
        !repo.join("config").exists(),
        "{what}: a repository was created at {}",
        repo.display()
    );
}

#[test]
fn a_named_location_without_a_repository_is_never_created() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let s = src.to_str().expect("utf8");
    // A typo in SNAPKEEP_REPO.
    let typo = sb.path("bakups");
    let mut c = sb.cmd();
    c.env("SNAPKEEP_REPO", &typo).args(["snapshot", s]);
    let out = run(c);
    assert_refused_naming(&out, &typo, "snapshot with SNAPKEEP_REPO naming nothing");
    assert!(!typo.exists(), "SNAPKEEP_REPO's typo became a directory");
    let mut c = sb.cmd();
    c.env("SNAPKEEP_REPO", &typo)
        .args(["--json", "snapshot", s]);
    let out = run(c);
    let v = json(&out);
    assert_eq!(v["exit_code"], 2, "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains(typo.to_str().expect("utf8"))),
        "{v}"
    );
    // --repo naming a path that does not exist, or an empty directory.
    let missing = sb.path("not/yet/repo");
    let out = sb.run(&missing, &["snapshot", s]);
    assert_refused_naming(&out, &missing, "snapshot with --repo naming nothing");
    assert!(!missing.exists());
    let empty = sb.path("empty");
    fs::create_dir(&empty).expect("mkdir");
    let out = sb.run(&empty, &["snapshot", s]);
    assert_refused_naming(
        &out,
        &empty,
        "snapshot with --repo naming an empty directory",
    );
    assert_eq!(fs::read_dir(&empty).expect("read_dir").count(), 0);
    // The command the error gives works, and then the snapshot does.
    expect_code(&sb.run(&missing, &["init"]), 0, "the init the error named");
    expect_code(
        &sb.run(&missing, &["snapshot", s]),
        0,
        "snapshot after init",
    );
}

#[test]
fn init_refuses_non_empty_or_existing_paths() {
    let sb = Sandbox::new();
    let busy = sb.path("busy");
    common::write_file(&busy.join("something"), b"x");
    let out = sb.run(&busy, &["init"]);
    expect_code(&out, 2, "init on a non-empty directory");
    assert!(!busy.join("config").exists());
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));

    let file = sb.path("plain-file");
    fs::write(&file, b"x").expect("write");
    expect_code(&sb.run(&file, &["init"]), 2, "init on a file");

    let repo = sb.path("repo");
    expect_code(&sb.run(&repo, &["init"]), 0, "first init");
    let config = fs::read(repo.join("config")).expect("config");
    expect_code(&sb.run(&repo, &["init"]), 2, "second init");
    assert_eq!(
        fs::read(repo.join("config")).expect("config"),
        config,
        "a refused init changed the config"
    );

    // An empty existing directory is fine.
    let empty = sb.path("empty");
    fs::create_dir(&empty).expect("mkdir");
    expect_code(&sb.run(&empty, &["init"]), 0, "init in an empty directory");
}

/// A snapshot refused for bad input has no side effect: like a missing source, an invalid
/// exclude pattern must not leave a freshly initialized default repository behind.
#[test]
fn refused_snapshot_creates_no_repository() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let repo = sb.path("xdg/snapkeep/repo");
    let snapshot = |args: &[&str]| {
        let mut c = sb.cmd();
        c.arg("snapshot").args(args);
        run(c)
    };
    let out = snapshot(&["--exclude", "[", src.to_str().expect("utf8")]);
    expect_code(&out, 2, "invalid exclude pattern");
    assert!(stderr(&out).contains("exclude"), "{}", stderr(&out));
    assert!(
        !repo.exists(),
        "a snapshot refused for an invalid --exclude initialized {}",
        repo.display()
    );
    let out = snapshot(&[src.join("a.txt").to_str().expect("utf8")]);
    expect_code(&out, 2, "source is a file");
    assert!(
        !repo.exists(),
        "a snapshot refused because its source is a file initialized {}",
        repo.display()
    );
}
