//! `forget`: decide (a plan with reasons), then remove only the forgotten records.

mod common;

use common::{cli as run, cli_json as json};

use std::fs;
use std::path::Path;

use serde_json::Value;

fn ids(repo: &Path) -> Vec<String> {
    json(repo, &["list"])
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect()
}

#[test]
fn forget_by_policy_and_by_id() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    fs::create_dir(&src).expect("mkdir");
    let repo = tmp.path().join("repo");
    common::cli_init(&repo);
    for i in 0..5 {
        fs::write(src.join("f"), format!("version {i}")).expect("write");
        json(&repo, &["snapshot", src.to_str().expect("utf-8")]);
    }
    let all = ids(&repo);
    assert_eq!(all.len(), 5);

    let plan = json(&repo, &["forget", "--keep-last", "2", "--dry-run"]);
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["forget"].as_array().expect("forget").len(), 3);
    assert_eq!(ids(&repo).len(), 5, "a dry run removed records");
    let kept: Vec<&Value> = plan["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .filter(|d| d["keep"] == true)
        .collect();
    assert_eq!(kept.len(), 2);
    assert!(kept.iter().all(|d| {
        d["reasons"][0]
            .as_str()
            .is_some_and(|r| r.starts_with("last"))
    }));

    json(&repo, &["forget", "--keep-last", "2"]);
    assert_eq!(ids(&repo), all[3..].to_vec(), "the two newest remain");

    json(&repo, &["forget", &all[3]]);
    assert_eq!(ids(&repo), all[4..].to_vec());
    assert_eq!(json(&repo, &["verify", "--read-data"])["ok"], true);
    let out = tmp.path().join("out");
    json(&repo, &["restore", "latest", out.to_str().expect("utf-8")]);
    assert_eq!(fs::read(out.join("f")).expect("read"), b"version 4");

    assert_eq!(run(&repo, &["forget"]).status.code(), Some(2));
    assert_eq!(
        run(&repo, &["forget", "--keep-within", "soon"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        run(
            &repo,
            &["forget", "--keep-last", "1", "--group-by", "color"]
        )
        .status
        .code(),
        Some(2)
    );
}
