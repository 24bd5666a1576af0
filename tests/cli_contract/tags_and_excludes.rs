//! Tags are recorded and listed; excluded files are neither counted nor restored.

use std::fs;

use crate::common;
use crate::harness::{Sandbox, expect_code, json, stdout};

#[test]
fn tags_and_excludes() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    common::write_file(&src.join("scratch.tmp"), b"temporary");
    common::write_file(&src.join("sub/deeper/x.tmp"), b"temporary too");
    common::write_file(&src.join("sub/keep.tmpl"), b"kept");
    let repo = sb.path("repo");
    sb.init(&repo);
    let out = sb.run(
        &repo,
        &[
            "snapshot",
            "--json",
            "--tag",
            "nightly",
            "--tag",
            "db",
            "--exclude",
            "*.tmp",
            src.to_str().expect("utf8"),
        ],
    );
    expect_code(&out, 0, "snapshot with tags and excludes");
    let snap = json(&out);
    assert_eq!(snap["files"], 3, "excluded files were counted: {snap}");
    assert_eq!(snap["tags"], serde_json::json!(["nightly", "db"]));

    let list = json(&sb.run(&repo, &["list", "--json"]));
    assert_eq!(list[0]["tags"], serde_json::json!(["nightly", "db"]));
    let table = stdout(&sb.run(&repo, &["list"]));
    assert!(
        table.contains("nightly,db"),
        "tags missing from the table: {table}"
    );

    let target = sb.path("out");
    expect_code(
        &sb.run(
            &repo,
            &["restore", "latest", target.to_str().expect("utf8")],
        ),
        0,
        "restore",
    );
    assert!(
        !target.join("scratch.tmp").exists(),
        "excluded file restored"
    );
    assert!(
        !target.join("sub/deeper/x.tmp").exists(),
        "excluded file restored"
    );
    assert!(target.join("sub/deeper").is_dir(), "its directory is kept");
    assert_eq!(
        fs::read(target.join("sub/keep.tmpl")).expect("kept"),
        b"kept"
    );
    assert_eq!(fs::read(target.join("a.txt")).expect("kept"), b"alpha\n");
}

/// `--tag a,b` is two tags (as restic); an empty tag is refused before anything is created.
#[test]
fn tags_split_on_commas_and_empty_tags_are_refused() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let repo = sb.path("repo");
    sb.init(&repo);
    let before = common::files_under(&repo);
    let src_arg = src.to_str().expect("utf8");
    for bad in ["", "a,,b", "a,"] {
        let out = sb.run(&repo, &["snapshot", "--tag", bad, src_arg]);
        expect_code(&out, 2, &format!("--tag '{bad}'"));
        let err = crate::harness::stderr(&out);
        assert!(
            err.contains("empty tag") && err.contains(&format!("'{bad}'")),
            "{err}"
        );
        assert_eq!(
            common::files_under(&repo),
            before,
            "a refused snapshot wrote to the repository"
        );
    }
    let out = sb.run(
        &repo,
        &[
            "snapshot", "--json", "--tag", "daily,db", "--tag", "eu", src_arg,
        ],
    );
    expect_code(&out, 0, "comma-separated tags");
    assert_eq!(json(&out)["tags"], serde_json::json!(["daily", "db", "eu"]));
}
