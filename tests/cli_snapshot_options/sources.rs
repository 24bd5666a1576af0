//! Several sources: one root entry per source named by its last component, every path in
//! the record, the parent found by host and the same set of paths, and a restore that gives
//! TARGET/<name>/...; two sources with the same last name are refused (exit 2).

use std::fs;

use crate::common;
use crate::harness::{Sandbox, expect_code, stderr};

#[test]
fn two_directories_and_a_file_make_one_snapshot() {
    let sb = Sandbox::new();
    let db = sb.source("var/db");
    common::write_file(&sb.path("etc/conf/app.toml"), b"port = 1\n");
    common::write_file(&sb.path("notes.txt"), b"a single file\n");
    let conf = sb.path("etc/conf");
    let notes = sb.path("notes.txt");
    let repo = sb.path("repo");
    sb.init(&repo);

    let first = super::snap(
        &sb,
        &repo,
        &[super::s(&db), super::s(&conf), super::s(&notes)],
    );
    let canon = |p: &std::path::Path| {
        fs::canonicalize(p)
            .expect("canonical")
            .display()
            .to_string()
    };
    let mut want = vec![canon(&conf), canon(&db), canon(&notes)];
    want.sort();
    assert_eq!(first["paths"], serde_json::json!(want), "{first}");
    assert_eq!(first["files"], 4, "{first}");
    let id = first["id"].as_str().expect("id").to_owned();
    let paths = super::ls_paths(&sb, &repo, &id);
    for p in [
        "/db",
        "/db/a.txt",
        "/db/sub/b.bin",
        "/conf",
        "/conf/app.toml",
        "/notes.txt",
    ] {
        assert!(paths.iter().any(|x| x == p), "{p} missing from {paths:?}");
    }

    let target = sb.path("out");
    expect_code(
        &sb.run(&repo, &["restore", &id, super::s(&target)]),
        0,
        "restore",
    );
    assert_eq!(
        fs::read(target.join("db/a.txt")).expect("db/a.txt"),
        b"alpha\n"
    );
    assert_eq!(
        fs::read(target.join("conf/app.toml")).expect("conf"),
        b"port = 1\n"
    );
    assert_eq!(
        fs::read(target.join("notes.txt")).expect("notes"),
        b"a single file\n"
    );

    // The same set in another order: the first is the parent, and the tree is the same.
    let second = super::snap(
        &sb,
        &repo,
        &[super::s(&notes), super::s(&conf), super::s(&db)],
    );
    assert_eq!(second["parent"], id.as_str(), "{second}");
    assert_eq!(second["tree"], first["tree"]);

    // One of them alone has another set of paths: no parent, and its root is the directory.
    let alone = super::snap(&sb, &repo, &[super::s(&db)]);
    assert_eq!(alone["parent"], serde_json::Value::Null, "{alone}");
    let paths = super::ls_paths(&sb, &repo, alone["id"].as_str().expect("id"));
    assert!(paths.iter().any(|p| p == "/a.txt"), "{paths:?}");
}

#[test]
fn two_sources_with_the_same_last_name_are_refused() {
    let sb = Sandbox::new();
    let a = sb.source("one/data");
    let b = sb.source("two/data");
    let repo = sb.path("repo");
    sb.init(&repo);
    let before = common::files_under(&repo);
    let out = super::snap_out(&sb, &repo, &[super::s(&a), super::s(&b)]);
    expect_code(&out, 2, "two sources named data");
    let err = stderr(&out);
    assert!(
        err.contains("'data'") && err.contains("one/data") && err.contains("two/data"),
        "{err}"
    );
    assert_eq!(
        common::files_under(&repo),
        before,
        "a refused snapshot wrote to the repository"
    );
}

/// Excludes apply to a file given as a source as to an entry of a directory source.
#[test]
fn a_file_source_that_an_exclude_matches_is_left_out() {
    let sb = Sandbox::new();
    let db = sb.source("var/db");
    common::write_file(&sb.path("notes.tmp"), b"scratch\n");
    common::write_file(&sb.path("keep.txt"), b"kept\n");
    let repo = sb.path("repo");
    sb.init(&repo);
    let v = super::snap(
        &sb,
        &repo,
        &[
            super::s(&db),
            super::s(&sb.path("notes.tmp")),
            super::s(&sb.path("keep.txt")),
            "--exclude",
            "*.tmp",
        ],
    );
    let paths = super::ls_paths(&sb, &repo, v["id"].as_str().expect("id"));
    assert!(paths.iter().any(|p| p == "/keep.txt"), "{paths:?}");
    assert!(!paths.iter().any(|p| p.contains("notes.tmp")), "{paths:?}");
}
