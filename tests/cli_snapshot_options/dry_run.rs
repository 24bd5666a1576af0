//! `--dry-run`: everything is read and hashed and what would be stored is reported, but the
//! repository is left exactly as it was (no pack, index, record or lock), and a repository
//! that does not exist yet is not created.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common;
use crate::harness::{Sandbox, expect_code, json, stdout};

/// Every file below `dir` with its size.
fn listing(dir: &Path) -> BTreeMap<String, u64> {
    common::files_under(dir)
        .into_iter()
        .map(|f| {
            let len = std::fs::metadata(&f).map_or(0, |m| m.len());
            (f.display().to_string(), len)
        })
        .collect()
}

#[test]
fn dry_run_reports_and_writes_nothing() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    // Before the default repository's first use a dry run runs against an empty one in
    // memory, and creates nothing.
    let mut c = sb.cmd();
    c.args(["--json", "snapshot", "--dry-run", super::s(&src)]);
    let out = crate::harness::run(c);
    expect_code(&out, 0, "dry run before the default repository exists");
    let v = json(&out);
    assert_eq!(v["dry_run"], true, "{v}");
    assert_eq!(v["id"], serde_json::Value::Null, "{v}");
    assert_eq!(v["files"], 2, "{v}");
    assert!(v["new_bytes"].as_u64().is_some_and(|b| b >= 40_000), "{v}");
    assert!(v["new_chunks"].as_u64().is_some_and(|c| c >= 2), "{v}");
    let default = sb.path("xdg").join("snapkeep");
    assert!(
        !default.exists(),
        "a dry run created the default repository"
    );
    // A named location without a repository is refused, as the real run is.
    let fresh = sb.path("fresh-repo");
    let out = sb.run(&fresh, &["snapshot", "--dry-run", super::s(&src)]);
    expect_code(
        &out,
        2,
        "dry run into a named location without a repository",
    );
    assert!(!fresh.exists(), "a dry run created a repository");

    let repo = sb.path("repo");
    sb.init(&repo);
    let first = super::snap(&sb, &repo, &[super::s(&src)]);
    common::write_file(&src.join("new.bin"), &common::random_bytes(30_000, 9));
    let before = listing(&repo);
    let v = super::snap(&sb, &repo, &[super::s(&src), "-n"]);
    assert_eq!(listing(&repo), before, "a dry run changed the repository");
    assert_eq!(v["parent"], first["id"], "{v}");
    assert_eq!(v["files"], 3, "{v}");
    assert!(
        v["new_bytes"]
            .as_u64()
            .is_some_and(|b| (30_000..40_000).contains(&b)),
        "only the new file's bytes are new: {v}"
    );
    let list = json(&sb.run(&repo, &["list", "--json"]));
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");

    let out = sb.run(&repo, &["snapshot", "--dry-run", super::s(&src)]);
    expect_code(&out, 0, "dry run without --json");
    assert!(
        stdout(&out).starts_with("dry run, nothing written"),
        "{}",
        stdout(&out)
    );
    assert_eq!(listing(&repo), before);
}
