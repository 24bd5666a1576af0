//! `--json`: one document of the documented keys from every command, errors included.

use std::fs;

use serde_json::Value;

use crate::common;
use crate::harness::{Sandbox, assert_uuid_v7, expect_code, json, now_ms, stdout};
use crate::rfc3339::rfc3339_ms;

/// The documented keys of a snapshot object (README: `snapshot --json`, `list --json`).
const SNAPSHOT_KEYS: [&str; 20] = [
    "id",
    "parent",
    "time",
    "host",
    "paths",
    "tags",
    "tree",
    "files",
    "dirs",
    "symlinks",
    "skipped",
    "bytes",
    "data_bytes",
    "new_bytes",
    "stored_bytes",
    "chunks",
    "new_chunks",
    "changed_during_read",
    "duration_s",
    "program",
];

#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, its steps in order")]
fn json_documents_of_every_command() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let repo = sb.path("repo");

    let init = json(&sb.run(
        &repo,
        &[
            "--json",
            "init",
            "--chunk-avg",
            "16KiB",
            "--compression",
            "zstd:3",
        ],
    ));
    assert_eq!(init["repository"], repo.to_str().expect("utf8"));
    assert_eq!(init["version"], 2);
    assert_eq!(init["encryption"], "aegis256x4-blake3");
    let want = common::params(16 * 1024);
    assert_eq!(
        init["chunker"],
        serde_json::json!({"min": want.min, "avg": want.avg, "max": want.max})
    );
    assert_eq!(init["compression"], "zstd:3");
    assert!(init["pack_size"].as_u64().is_some_and(|p| p >= 1 << 20));
    assert_eq!(init["id"].as_str().map(str::len), Some(32));

    let before = now_ms();
    let out = sb.run(&repo, &["snapshot", "--json", src.to_str().expect("utf8")]);
    let after = now_ms();
    expect_code(&out, 0, "snapshot --json");
    let s1 = json(&out);
    for key in SNAPSHOT_KEYS
        .iter()
        .chain(&["warnings", "unreadable", "dry_run", "unchanged"])
    {
        assert!(s1.get(key).is_some(), "snapshot JSON lacks '{key}': {s1}");
    }
    let id1 = s1["id"].as_str().expect("id").to_owned();
    assert_uuid_v7(&id1);
    assert_eq!(s1["parent"], Value::Null);
    assert_eq!(s1["files"], 2);
    assert_eq!(s1["symlinks"], 1);
    assert_eq!(s1["bytes"], 6 + 40_000);
    assert_eq!(s1["new_bytes"], 6 + 40_000);
    assert!(s1["stored_bytes"].as_u64().is_some_and(|b| b > 0));
    assert!(s1["duration_s"].as_f64().is_some_and(|d| d >= 0.0));
    let taken = rfc3339_ms(s1["time"].as_str().expect("time"));
    assert!(
        before - 1000 <= taken && taken <= after + 1000,
        "snapshot time {} is not the time it was taken",
        s1["time"]
    );

    common::write_file(&src.join("new.txt"), b"second");
    let s2 = json(&sb.run(&repo, &["--json", "snapshot", src.to_str().expect("utf8")]));
    let id2 = s2["id"].as_str().expect("id").to_owned();
    assert_uuid_v7(&id2);
    assert_eq!(s2["parent"], id1.as_str(), "second snapshot's parent");
    assert_eq!(s2["files"], 3);
    assert_eq!(s2["new_bytes"], 6, "only new.txt is new");

    // An explicit --parent is recorded as given; an unknown one is an input error.
    let out = sb.run(
        &repo,
        &[
            "snapshot",
            "--json",
            "--parent",
            &id1[..13],
            src.to_str().expect("utf8"),
        ],
    );
    expect_code(&out, 0, "snapshot --parent");
    let s3 = json(&out);
    assert_eq!(s3["parent"], id1.as_str(), "--parent was not recorded");
    let out = sb.run(
        &repo,
        &[
            "snapshot",
            "--parent",
            "ffffffff",
            src.to_str().expect("utf8"),
        ],
    );
    expect_code(&out, 2, "snapshot --parent with an unknown id");

    let list = json(&sb.run(&repo, &["list", "--json"]));
    let arr = list.as_array().expect("list is an array");
    assert_eq!(arr.len(), 3, "a refused snapshot was listed");
    assert_eq!(arr[2]["id"], s3["id"]);
    assert_eq!(arr[0]["id"], id1.as_str(), "list is not oldest first");
    assert_eq!(arr[1]["id"], id2.as_str());
    assert_eq!(arr[1]["parent"], id1.as_str());
    assert_eq!(arr[0]["parent"], Value::Null);
    let canon = fs::canonicalize(&src).expect("canonicalize");
    for (rec, snap) in arr.iter().zip([&s1, &s2]) {
        assert!(
            rec.get("warnings").is_none(),
            "list entries carry no warnings"
        );
        for key in SNAPSHOT_KEYS {
            assert!(rec.get(key).is_some(), "list entry lacks '{key}': {rec}");
        }
        for (key, value) in snap.as_object().expect("object") {
            // What only the run knows: its warnings, unreadable entries and mode.
            if !["warnings", "unreadable", "dry_run", "unchanged"].contains(&key.as_str()) {
                assert_eq!(&rec[key], value, "list and snapshot disagree on '{key}'");
            }
        }
        let t = rec["time"].as_str().expect("time");
        assert!(
            t.ends_with('Z') || t.ends_with("+00:00"),
            "time is not UTC: {t}"
        );
        rfc3339_ms(t);
        assert!(rec["host"].as_str().is_some_and(|h| !h.is_empty()));
        assert_eq!(
            rec["paths"],
            serde_json::json!([canon.to_str().expect("utf8")])
        );
        assert_eq!(rec["tags"], serde_json::json!([]));
    }

    let target = sb.path("restored");
    let restored = json(&sb.run(
        &repo,
        &["restore", "--json", &id1, target.to_str().expect("utf8")],
    ));
    assert_eq!(restored["id"], id1.as_str());
    assert_eq!(restored["files"], 2);
    assert_eq!(restored["symlinks"], 1);
    assert_eq!(restored["dirs"], 1);
    assert_eq!(restored["bytes"], 6 + 40_000);
    for key in [
        "id",
        "target",
        "files",
        "dirs",
        "symlinks",
        "bytes",
        "data_bytes",
        "duration_s",
    ] {
        assert!(
            restored.get(key).is_some(),
            "restore JSON lacks '{key}': {restored}"
        );
    }
    assert_eq!(
        fs::read(target.join("a.txt")).expect("restored"),
        b"alpha\n"
    );
    assert!(
        !target.join("new.txt").exists(),
        "restored the wrong snapshot"
    );

    for extra in [&[][..], &["--read-data"][..]] {
        let mut args = vec!["verify", "--json"];
        args.extend_from_slice(extra);
        let out = sb.run(&repo, &args);
        expect_code(&out, 0, "verify on a clean repository");
        let report = json(&out);
        assert_eq!(report["ok"], true);
        assert_eq!(report["findings"], serde_json::json!([]));
        assert_eq!(report["snapshots"], 3);
        for key in [
            "ok",
            "findings",
            "snapshots",
            "trees",
            "files",
            "packs_read",
            "blobs_read",
            "bytes_read",
        ] {
            assert!(
                report.get(key).is_some(),
                "verify JSON lacks '{key}': {report}"
            );
        }
    }
    // One snapshot only, by prefix.
    let one = json(&sb.run(&repo, &["verify", "--json", &id2[..13]]));
    assert_eq!(one["ok"], true);
    assert_eq!(one["snapshots"], 1);

    // repair index: --dry-run changes nothing; the real run leaves one index file.
    let before = common::index_files(&repo);
    assert!(before.len() >= 2);
    let dry = json(&sb.run(&repo, &["repair", "index", "--dry-run", "--json"]));
    for key in [
        "dry_run",
        "packs_read",
        "entries",
        "damaged_packs",
        "replaced_index_files",
        "index",
    ] {
        assert!(dry.get(key).is_some(), "repair JSON lacks '{key}': {dry}");
    }
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["index"], Value::Null);
    assert_eq!(dry["damaged_packs"], serde_json::json!([]));
    assert_eq!(
        common::index_files(&repo),
        before,
        "--dry-run changed the index"
    );
    let repaired = json(&sb.run(&repo, &["repair", "index", "--json"]));
    assert_eq!(repaired["dry_run"], false);
    assert_eq!(repaired["entries"], dry["entries"]);
    let new_index = repaired["index"].as_str().expect("index id").to_owned();
    let after = common::index_files(&repo);
    assert_eq!(after.len(), 1);
    assert!(after[0].ends_with(&new_index));

    // Plain verify on a clean repository prints no findings on stdout.
    let out = sb.run(&repo, &["verify"]);
    expect_code(&out, 0, "verify");
    assert_eq!(stdout(&out), "");

    // Errors with --json are one JSON document too.
    let out = sb.run(
        &repo,
        &[
            "--json",
            "restore",
            "ffffffff",
            sb.path("x").to_str().expect("utf8"),
        ],
    );
    expect_code(&out, 2, "unknown snapshot");
    let failure = json(&out);
    assert_eq!(failure["exit_code"], 2);
    assert!(
        failure["error"]
            .as_str()
            .is_some_and(|m| m.contains("ffffffff"))
    );
}
