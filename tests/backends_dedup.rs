//! Deduplication on every backend (local, and S3 when a server is configured): a second
//! snapshot of the same data stores nothing but its record, and a second host whose source
//! shares a file with the first stores only what is its own.

mod common;

use common::s3::targets;

const SHARED: usize = 2 << 20;
const OWN: usize = 1 << 20;

#[test]
fn unchanged_and_shared_data_is_stored_once() {
    for target in targets("unchanged_and_shared_data_is_stored_once") {
        let t = target.fresh("dedup");
        let name = target.name();
        let shared = common::random_bytes(SHARED, 7);
        let (a, b) = (t.path("a"), t.path("b"));
        common::write_file(&a.join("shared.bin"), &shared);
        common::write_file(&a.join("own.bin"), &common::random_bytes(OWN, 8));
        common::write_file(&b.join("data/shared.bin"), &shared);
        common::write_file(&b.join("own.bin"), &common::random_bytes(OWN, 9));
        let (a_s, b_s) = (a.to_str().expect("utf-8"), b.to_str().expect("utf-8"));
        t.cli_json(&["init", "--chunk-avg", "16KiB"]);

        let first = t.cli_json(&["snapshot", "--host", "host-a", a_s]);
        let stored_first = first["stored_bytes"].as_u64().expect("stored");
        assert!(stored_first >= (SHARED + OWN) as u64, "[{name}] {first}");

        // Same data again, read again in full: only the snapshot record is new.
        let again = t.cli_json(&["snapshot", "--host", "host-a", "--force-read", a_s]);
        assert_eq!(again["new_bytes"], 0, "[{name}] {again}");
        assert!(
            again["stored_bytes"].as_u64() < Some(4096),
            "[{name}] {again}"
        );

        // Another host with the shared file elsewhere in its tree: only its own file is new.
        let other = t.cli_json(&["snapshot", "--host", "host-b", b_s]);
        let new = other["new_bytes"].as_u64().expect("new");
        assert!(
            new >= OWN as u64 && new < (OWN + 64 * 1024) as u64,
            "[{name}] host-b stored {new} new bytes: {other}"
        );

        let stats = t.cli_json(&["stats"]);
        let pack_bytes = stats["repository_pack_bytes"].as_u64().expect("pack bytes");
        assert!(
            pack_bytes < (SHARED + 2 * OWN + 256 * 1024) as u64,
            "[{name}] the shared file is stored once: {stats}"
        );
        let v = t.cli_json(&["verify", "--read-data"]);
        assert_eq!(v["ok"], true, "[{name}] {v}");
        assert_eq!(v["snapshots"], 3);
    }
}
