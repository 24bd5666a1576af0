//! `--skip-if-unchanged`: no record when the tree, host, paths and tags equal the parent's;
//! the parent's id is printed and `--json` says `unchanged: true`.

use crate::common;
use crate::harness::{Sandbox, expect_code, json, stderr, stdout};

#[test]
fn an_unchanged_source_writes_no_snapshot() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let repo = sb.path("repo");
    sb.init(&repo);
    let first = super::snap(&sb, &repo, &[super::s(&src)]);
    let id = first["id"].as_str().expect("id");

    let v = super::snap(&sb, &repo, &[super::s(&src), "--skip-if-unchanged"]);
    assert_eq!(v["unchanged"], true, "{v}");
    assert!(
        v.get("skipped").is_none(),
        "the count of skipped entries is not a flag: {v}"
    );
    assert_eq!(v["parent"], id, "{v}");
    assert_eq!(v["id"], serde_json::Value::Null, "{v}");
    let out = sb.run(&repo, &["snapshot", "--skip-if-unchanged", super::s(&src)]);
    expect_code(&out, 0, "skip without --json");
    assert_eq!(stdout(&out).trim(), id, "the parent's id is the result");
    assert!(stderr(&out).contains("nothing changed"), "{}", stderr(&out));
    let count = |sb: &Sandbox| {
        json(&sb.run(&repo, &["list", "--json"]))
            .as_array()
            .map(Vec::len)
    };
    assert_eq!(count(&sb), Some(1), "a skipped snapshot was written");

    // Other tags are a change; so is a file.
    let tagged = super::snap(
        &sb,
        &repo,
        &[super::s(&src), "--skip-if-unchanged", "--tag", "t"],
    );
    assert!(tagged["id"].is_string(), "{tagged}");
    common::write_file(&src.join("a.txt"), b"changed\n");
    let changed = super::snap(
        &sb,
        &repo,
        &[super::s(&src), "--skip-if-unchanged", "--tag", "t"],
    );
    assert!(
        changed["id"].is_string() && changed["unchanged"] == false && changed["skipped"] == 0,
        "{changed}"
    );
    assert_eq!(count(&sb), Some(3));
}

/// A dry run tells the skip the real run would make (`unchanged: true, dry_run: true`), and a
/// change of the top directory's own mode alone is a change (a restore would give it).
#[test]
fn dry_run_reports_the_skip_and_the_root_mode_counts() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    let src = sb.source("src");
    let repo = sb.path("repo");
    sb.init(&repo);
    let first = super::snap(&sb, &repo, &[super::s(&src)]);
    let v = super::snap(
        &sb,
        &repo,
        &[super::s(&src), "--skip-if-unchanged", "--dry-run"],
    );
    assert_eq!(v["unchanged"], true, "{v}");
    assert_eq!(v["dry_run"], true, "{v}");
    assert_eq!(v["parent"], first["id"], "{v}");

    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let v = super::snap(&sb, &repo, &[super::s(&src), "--skip-if-unchanged"]);
    assert!(
        v["id"].is_string() && v["unchanged"] == false,
        "a new top directory mode is a change: {v}"
    );
}
