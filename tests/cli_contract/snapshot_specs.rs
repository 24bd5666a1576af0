//! Snapshot specs (id, unique prefix, latest) and restore targets.

use std::fs;

use crate::common;
use crate::harness::{Sandbox, assert_uuid_v7, expect_code, stderr, stdout};

#[test]
fn restore_specs_and_targets() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let repo = sb.path("repo");
    sb.init(&repo);
    let s = src.to_str().expect("utf8");
    let id1 = stdout(&sb.run(&repo, &["snapshot", s])).trim().to_owned();
    common::write_file(&src.join("a.txt"), b"changed\n");
    let id2 = stdout(&sb.run(&repo, &["snapshot", s])).trim().to_owned();
    assert_uuid_v7(&id1);
    assert_uuid_v7(&id2);
    assert_ne!(
        id1[..13],
        id2[..13],
        "snapshots taken in the same millisecond"
    );

    let restore_a = |spec: &str, dir: &str| -> Vec<u8> {
        let target = sb.path(dir);
        let out = sb.run(&repo, &["restore", spec, target.to_str().expect("utf8")]);
        expect_code(&out, 0, &format!("restore {spec}"));
        assert_eq!(stdout(&out), "", "restore prints its result on stderr only");
        fs::read(target.join("a.txt")).expect("restored a.txt")
    };
    assert_eq!(restore_a(&id1, "by-id"), b"alpha\n");
    assert_eq!(restore_a(&id2[..13], "by-prefix"), b"changed\n");
    assert_eq!(restore_a("latest", "by-latest"), b"changed\n");
    assert_eq!(restore_a(&id1.to_uppercase(), "by-upper"), b"alpha\n");
    let simple: String = id1.chars().filter(|c| *c != '-').take(16).collect();
    assert_eq!(restore_a(&simple, "by-simple-prefix"), b"alpha\n");

    let common_len = id1
        .bytes()
        .zip(id2.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    assert!(common_len >= 1, "ids share no prefix: {id1} {id2}");
    let shared = &id1[..common_len.min(8)];
    for (spec, what) in [
        (shared, "ambiguous prefix"),
        ("ffffffff", "unknown prefix"),
        ("not-a-snapshot!", "malformed spec"),
        ("", "empty spec"),
    ] {
        let target = sb.path("never");
        let out = sb.run(&repo, &["restore", spec, target.to_str().expect("utf8")]);
        expect_code(&out, 2, what);
        assert!(!stderr(&out).is_empty(), "{what}: no message");
    }
    let out = sb.run(
        &repo,
        &["restore", shared, sb.path("never").to_str().expect("utf8")],
    );
    assert!(stderr(&out).contains("matches 2"), "{}", stderr(&out));

    let busy = sb.path("busy");
    common::write_file(&busy.join("keep.me"), b"mine");
    let out = sb.run(&repo, &["restore", "latest", busy.to_str().expect("utf8")]);
    expect_code(&out, 2, "restore into a non-empty directory");
    assert_eq!(
        common::files_under(&busy),
        vec![busy.join("keep.me")],
        "a refused restore wrote into the target"
    );
    let out = sb.run(
        &repo,
        &[
            "restore",
            "latest",
            busy.join("keep.me").to_str().expect("utf8"),
        ],
    );
    expect_code(&out, 2, "restore onto a file");
    assert_eq!(fs::read(busy.join("keep.me")).expect("read"), b"mine");

    // An empty existing directory is a valid target.
    let empty = sb.path("empty");
    fs::create_dir(&empty).expect("mkdir");
    restore_a("latest", "empty");
}

/// Listings show an 8-character short id taken from the random end of the id (ids taken
/// moments apart share their leading, time-ordered digits), and every spec accepts it.
#[test]
fn short_ids_are_listed_and_accepted() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let repo = sb.path("repo");
    sb.init(&repo);
    let s = src.to_str().expect("utf8");
    let id1 = stdout(&sb.run(&repo, &["snapshot", s])).trim().to_owned();
    common::write_file(&src.join("a.txt"), b"changed\n");
    let id2 = stdout(&sb.run(&repo, &["snapshot", s])).trim().to_owned();
    let short = |id: &str| id[id.len() - 8..].to_owned();
    let (s1, s2) = (short(&id1), short(&id2));
    assert_ne!(s1, s2, "two snapshots with one short id: {id1} {id2}");

    let table = stdout(&sb.run(&repo, &["list"]));
    let first_column: Vec<&str> = table
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        first_column,
        ["ID", s1.as_str(), s2.as_str(), "2"],
        "the table's ID column: {table}"
    );

    let target = sb.path("by-short");
    let out = sb.run(&repo, &["restore", &s1, target.to_str().expect("utf8")]);
    expect_code(&out, 0, "restore by short id");
    assert_eq!(
        fs::read(target.join("a.txt")).expect("restored"),
        b"alpha\n"
    );
    for spec in [s2.clone(), s2.to_uppercase()] {
        let out = sb.run(&repo, &["--json", "show", &spec]);
        expect_code(&out, 0, &format!("show {spec}"));
        assert_eq!(crate::harness::json(&out)["id"], id2.as_str());
    }
    // A short id is exact: a part of one is no id.
    let out = sb.run(&repo, &["show", &s1[..7]]);
    expect_code(&out, 2, "part of a short id");
    let out = sb.run(&repo, &["show", "latest"]);
    assert!(
        stderr(&out).contains(&s2),
        "latest is told by short id: {}",
        stderr(&out)
    );
}
