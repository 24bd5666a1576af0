//! A dry run shows what the real run will do (issue #19, item 3): `forget --prune --dry-run`
//! plans the prune as if the forgotten snapshots were gone, and `prune --dry-run` foresees
//! what acting adds (the waiting mark, the repack's new packs, the index after). On one
//! repository, the dry run's figures equal the real run's that follows it.

mod common;

use common::{cli_json as json, files_under};

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Every figure of the prune report (all but `dry_run` and the notes).
const FIGURES: &[&str] = &[
    "snapshots",
    "reachable_blobs",
    "packs_before",
    "pack_bytes_before",
    "marked_packs",
    "marked_bytes",
    "repacked_packs",
    "moved_blobs",
    "moved_bytes",
    "new_packs",
    "deleted_packs",
    "deleted_bytes",
    "rescued_packs",
    "unmarked_packs",
    "waiting_packs",
    "waiting_bytes",
    "index_files_before",
    "index_files_after",
    "unused_bytes_after",
    "packs_after",
    "pack_bytes_after",
    "staging_files_removed",
    "staging_bytes_removed",
];

/// A repository (1 MiB packs) with two snapshots: the first holds `a` and `b` in one data
/// pack, the second `a` and `c`. Forgetting the first leaves its tree pack without a live
/// blob and its data pack half unused (`b`), so a prune marks both and repacks the data pack.
fn two_snapshots() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    fs::create_dir(&src).expect("mkdir");
    let repo = tmp.path().join("repo");
    json(
        &repo,
        &["init", "--chunk-avg", "64KiB", "--pack-size", "1MiB"],
    );
    let src_arg = src.to_str().expect("utf-8");
    fs::write(src.join("a"), common::random_bytes(300_000, 1)).expect("write");
    fs::write(src.join("b"), common::random_bytes(300_000, 2)).expect("write");
    json(&repo, &["snapshot", src_arg]);
    fs::remove_file(src.join("b")).expect("rm");
    fs::write(src.join("c"), common::random_bytes(300_000, 3)).expect("write");
    json(&repo, &["snapshot", src_arg]);
    (tmp, repo)
}

/// The dry run's and the real run's figures are the same.
fn assert_same_figures(dry: &Value, real: &Value) {
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(real["dry_run"], false, "{real}");
    for f in FIGURES {
        assert!(real[f].is_u64(), "{f} missing from {real}");
        assert_eq!(
            dry[f], real[f],
            "{f}: the dry run said {}, the real run did {}\ndry: {dry}\nreal: {real}",
            dry[f], real[f]
        );
    }
}

fn figure(v: &Value, f: &str) -> u64 {
    v[f].as_u64().unwrap_or_else(|| panic!("{f} in {v}"))
}

fn pack_count(repo: &Path) -> u64 {
    files_under(&repo.join("data")).len() as u64
}

#[test]
fn forget_prune_dry_run_reports_what_the_real_run_does() {
    let (_tmp, repo) = two_snapshots();
    let flags = [
        "forget",
        "--keep-last",
        "1",
        "--prune",
        "--grace",
        "0",
        "--max-unused",
        "0%",
    ];
    let before = files_under(&repo);
    let mut dry_flags = flags.to_vec();
    dry_flags.push("--dry-run");
    let dry = json(&repo, &dry_flags);
    assert_eq!(files_under(&repo), before, "the dry run wrote");
    assert_eq!(json(&repo, &["list"]).as_array().map(Vec::len), Some(2));
    assert_eq!(dry["forget"].as_array().map(Vec::len), Some(1), "{dry}");

    let real = json(&repo, &flags);
    assert_eq!(real["forget"], dry["forget"]);
    let (dry_p, real_p) = (&dry["prune"], &real["prune"]);
    assert_same_figures(dry_p, real_p);
    // The scenario frees the first snapshot's tree pack and repacks its data pack; grace 0
    // deletes both at once.
    assert_eq!(figure(real_p, "snapshots"), 1, "{real_p}");
    assert_eq!(figure(real_p, "marked_packs"), 2, "{real_p}");
    assert_eq!(figure(real_p, "repacked_packs"), 1, "{real_p}");
    assert!(figure(real_p, "moved_blobs") > 0, "{real_p}");
    assert!(figure(real_p, "marked_bytes") > 0, "{real_p}");
    assert_eq!(figure(real_p, "deleted_packs"), 2, "{real_p}");
    assert_eq!(figure(real_p, "new_packs"), 1, "{real_p}");
    assert_eq!(figure(real_p, "waiting_packs"), 0, "{real_p}");
    assert_eq!(figure(real_p, "packs_after"), pack_count(&repo), "{real_p}");
    assert_eq!(json(&repo, &["verify", "--read-data"])["ok"], true);
}

#[test]
fn prune_dry_run_reports_what_the_real_run_does() {
    let (_tmp, repo) = two_snapshots();
    json(&repo, &["forget", "--keep-last", "1"]);

    // With the default grace, the new mark waits.
    let before = files_under(&repo);
    let dry = json(&repo, &["prune", "--dry-run", "--max-unused", "0%"]);
    assert_eq!(files_under(&repo), before, "the dry run wrote");
    let real = json(&repo, &["prune", "--max-unused", "0%"]);
    assert_same_figures(&dry, &real);
    assert_eq!(figure(&real, "marked_packs"), 2, "{real}");
    assert_eq!(figure(&real, "repacked_packs"), 1, "{real}");
    assert_eq!(figure(&real, "waiting_packs"), 2, "{real}");
    assert_eq!(figure(&real, "new_packs"), 1, "{real}");
    assert_eq!(figure(&real, "deleted_packs"), 0, "{real}");
    assert_eq!(figure(&real, "packs_after"), pack_count(&repo), "{real}");

    // With grace 0, the next prune deletes what the first marked.
    let dry = json(&repo, &["prune", "--dry-run", "--grace", "0"]);
    let real = json(&repo, &["prune", "--grace", "0"]);
    assert_same_figures(&dry, &real);
    assert_eq!(figure(&real, "deleted_packs"), 2, "{real}");
    assert_eq!(figure(&real, "waiting_packs"), 0, "{real}");
    assert_eq!(figure(&real, "packs_after"), pack_count(&repo), "{real}");
    assert_eq!(json(&repo, &["verify", "--read-data"])["ok"], true);
}
