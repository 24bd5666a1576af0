//! The CLI round trip on every backend (a local directory, and S3 when a server is configured):
//! init, snapshot, list, restore byte-identical, verify --read-data; init refuses an existing
//! repository; and on S3, `list` and a no-change snapshot make a handful of requests.

mod common;

use common::s3::{TestRepo, targets, tree_contents};

fn source(t: &TestRepo) -> std::path::PathBuf {
    let src = t.path("src");
    common::write_file(&src.join("big.bin"), &common::random_bytes(3 << 20, 1));
    common::write_file(&src.join("sub/small.txt"), b"hello");
    common::write_file(&src.join("sub/deeper/empty"), b"");
    // Compressible, and larger than one 16 KiB-average chunk.
    common::write_file(&src.join("text.log"), &b"line of log\n".repeat(20_000));
    src
}

#[test]
fn round_trip_on_every_backend() {
    for target in targets("round_trip_on_every_backend") {
        let t = target.fresh("roundtrip");
        let name = target.name();
        let src = source(&t);
        let init = t.cli_json(&["init", "--chunk-avg", "16KiB"]);
        assert_eq!(init["repository"], t.repo.as_str(), "[{name}]");
        let again = t.cli(&["init"]);
        assert_eq!(again.status.code(), Some(2), "[{name}] init twice");
        let refusal = String::from_utf8_lossy(&again.stderr);
        // Local: "... is not empty"; S3: "a repository already exists at s3://...".
        assert!(
            refusal.contains(&t.repo)
                && (refusal.contains("already exists") || refusal.contains("not empty")),
            "[{name}] {refusal}"
        );

        let snap = t.cli_json(&["snapshot", src.to_str().expect("utf-8")]);
        let id = snap["id"].as_str().expect("id").to_owned();
        let listed = t.cli_json(&["list"]);
        assert_eq!(
            listed.as_array().map(Vec::len),
            Some(1),
            "[{name}] {listed}"
        );
        assert_eq!(listed[0]["id"], id.as_str());

        let target_dir = t.path("restored");
        let out = t.cli(&["restore", &id, target_dir.to_str().expect("utf-8")]);
        common::assert_success(&out, &format!("[{name}] restore"));
        assert!(
            tree_contents(&src) == tree_contents(&target_dir),
            "[{name}] restored bytes differ"
        );

        let v = t.cli_json(&["verify", "--read-data"]);
        assert_eq!(v["ok"], true, "[{name}] {v}");
        assert_eq!(v["snapshots"], 1);
        assert!(v["packs_read"].as_u64() >= Some(1), "[{name}] {v}");
    }
}

#[test]
fn list_and_a_no_change_snapshot_make_few_requests() {
    for target in targets("list_and_a_no_change_snapshot_make_few_requests") {
        let t = target.fresh("requests");
        let name = target.name();
        let src = source(&t);
        let src_s = src.to_str().expect("utf-8");
        t.cli_json(&["init", "--chunk-avg", "16KiB"]);
        t.cli_json(&["snapshot", src_s]);
        let second = t.cli_json(&["snapshot", src_s]);
        assert_eq!(second["new_bytes"], 0, "[{name}] {second}");

        // Measured on s3s-fs: `list` = GET config + LIST index + LIST snapshots (+ one GET per
        // record newer than a minute, since s3s-fs lists no ETags); index files and older
        // records come from the cache.
        let (out, list_requests) = t.cli_counted(&["list"]);
        assert!(out.status.success(), "[{name}]");
        // Measured: GET config, LIST index, LIST snapshots, the fresh records, LIST marks +
        // PUT lock (the job lock), LIST index (reload under the lock), GET lock (the check
        // before the commit), PUT record, LIST marks (re-index check), LIST index (merge
        // check), GET lock + DELETE lock (released only while it is still ours) — trees and
        // index files come from the cache.
        let (out, snap_requests) = t.cli_counted(&["snapshot", src_s]);
        assert!(out.status.success(), "[{name}]");
        match target {
            common::s3::Target::Local => {
                assert_eq!((list_requests, snap_requests), (0, 0), "[{name}]");
            }
            common::s3::Target::S3(_) => {
                let fresh_records = 2;
                // An encrypted repository adds LIST keys and GET of the key file that opens.
                let keys = 2;
                assert!(
                    list_requests <= 3 + fresh_records + keys,
                    "[{name}] list sent {list_requests} requests"
                );
                assert!(
                    // Measured: 14 once the records are a minute old, 16 right after two
                    // snapshots (two more GETs while records are young).
                    snap_requests <= 12 + 2 * fresh_records + keys,
                    "[{name}] a no-change snapshot sent {snap_requests} requests"
                );
                eprintln!(
                    "[{name}] list: {list_requests} requests; no-change snapshot: {snap_requests} requests"
                );
                // With the cache gone, the same listing costs one GET per index file and record.
                std::fs::remove_dir_all(t.path("cache")).expect("drop cache");
                let (_, cold) = t.cli_counted(&["list"]);
                assert!(
                    cold > list_requests,
                    "[{name}] cold {cold} vs {list_requests}"
                );
            }
        }
    }
}
