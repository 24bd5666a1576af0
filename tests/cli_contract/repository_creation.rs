//! When a repository is created: a snapshot into a missing path creates it (private modes),
//! `init` refuses non-empty or existing paths, a refused snapshot creates nothing.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::common;
use crate::harness::{Sandbox, assert_uuid_v7, expect_code, json, stderr, stdout};

#[test]
fn snapshot_into_missing_repo_creates_it() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let repo = sb.path("not/yet/repo");
    let out = sb.run(&repo, &["snapshot", src.to_str().expect("utf8")]);
    expect_code(&out, 0, "snapshot into a new path");
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
    let out = sb.run(&repo, &["snapshot", src.to_str().expect("utf8")]);
    expect_code(&out, 0, "second snapshot");
    assert!(!stderr(&out).contains("created a new repository"));
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
/// exclude pattern must not leave a freshly initialized repository behind.
#[test]
fn refused_snapshot_creates_no_repository() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let repo = sb.path("repo");
    let out = sb.run(
        &repo,
        &["snapshot", "--exclude", "[", src.to_str().expect("utf8")],
    );
    expect_code(&out, 2, "invalid exclude pattern");
    assert!(stderr(&out).contains("exclude"), "{}", stderr(&out));
    assert!(
        !repo.exists(),
        "a snapshot refused for an invalid --exclude initialized {}",
        repo.display()
    );
    let out = sb.run(
        &repo,
        &["snapshot", src.join("a.txt").to_str().expect("utf8")],
    );
    expect_code(&out, 2, "source is a file");
    assert!(
        !repo.exists(),
        "a snapshot refused because its source is a file initialized {}",
        repo.display()
    );
}
