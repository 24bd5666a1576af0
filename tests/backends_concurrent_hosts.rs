//! Many hosts, one repository, on every backend (local, and S3 when a server is configured):
//! two processes snapshot two different sources into one repository at the same time; both
//! commit, the repository verifies, both restore byte-identical, and data the two sources share
//! is stored at most once per writer that could not see the other's, and once from then on.

mod common;

use std::process::Stdio;

use common::s3::{targets, tree_contents};

const SHARED: usize = 2 << 20;
const OWN: usize = 1 << 20;

#[test]
fn two_hosts_snapshot_concurrently_into_one_repository() {
    for target in targets("two_hosts_snapshot_concurrently_into_one_repository") {
        let t = target.fresh("hosts");
        let name = target.name();
        let shared = common::random_bytes(SHARED, 21);
        let sources: Vec<_> = (0..2u64)
            .map(|i| {
                let src = t.path(&format!("host{i}"));
                common::write_file(&src.join("db/shared.sst"), &shared);
                common::write_file(&src.join("own.bin"), &common::random_bytes(OWN, 30 + i));
                src
            })
            .collect();
        t.cli_json(&["init", "--chunk-avg", "16KiB"]);

        let children: Vec<_> = sources
            .iter()
            .enumerate()
            .map(|(i, src)| {
                t.command()
                    .args(["--json", "snapshot", "--host", &format!("host-{i}")])
                    .arg(src)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn")
            })
            .collect();
        let mut ids = Vec::new();
        for child in children {
            let out = child.wait_with_output().expect("wait");
            common::assert_exit(&out, 0, &format!("[{name}] concurrent snapshot failed"));
            let v = common::json_of(&out);
            ids.push(v["id"].as_str().expect("id").to_owned());
        }

        let v = t.cli_json(&["verify", "--read-data"]);
        assert_eq!(v["ok"], true, "[{name}] {v}");
        assert_eq!(v["snapshots"], 2, "[{name}] {v}");
        for (src, id) in sources.iter().zip(&ids) {
            let dest = t.path(&format!("restore-{id}"));
            let out = t.cli(&["restore", id, dest.to_str().expect("utf-8")]);
            common::assert_success(&out, &format!("[{name}]"));
            assert!(
                tree_contents(src) == tree_contents(&dest),
                "[{name}] restore of {id} differs"
            );
        }

        // Each distinct chunk counts once in the index, whatever the writers raced.
        let stats = t.cli_json(&["stats"]);
        let unique = stats["unique_bytes"].as_u64().expect("unique");
        assert_eq!(unique, (SHARED + 2 * OWN) as u64, "[{name}] {stats}");
        // Neither writer could see the other's uncommitted chunks, so the shared file is in
        // the packs at most twice; never more.
        let packed = stats["repository_pack_bytes"].as_u64().expect("packed");
        assert!(
            packed < (2 * SHARED + 2 * OWN + 256 * 1024) as u64,
            "[{name}] {stats}"
        );
        eprintln!("[{name}] concurrent hosts: {packed} pack bytes for {unique} unique bytes");

        // A third host after both: the shared data is stored once from now on.
        let third = t.path("host2");
        common::write_file(&third.join("copy/shared.sst"), &shared);
        let v = t.cli_json(&[
            "snapshot",
            "--host",
            "host-2",
            third.to_str().expect("utf-8"),
        ]);
        assert_eq!(v["new_bytes"], 0, "[{name}] {v}");

        // A prune gives the duplicate back: afterwards the shared data is stored once.
        let p = t.cli_json(&["prune", "--grace", "0", "--max-unused", "0%"]);
        assert_eq!(p["waiting_packs"], 0, "[{name}] {p}");
        let stats = t.cli_json(&["stats"]);
        let packed_after = stats["repository_pack_bytes"].as_u64().expect("packed");
        assert!(
            packed_after < (SHARED + 2 * OWN + 256 * 1024) as u64,
            "[{name}] after prune: {stats}"
        );
        assert_eq!(stats["reclaimable_bytes"], 0, "[{name}] {stats}");
        let v = t.cli_json(&["verify", "--read-data"]);
        assert_eq!(v["ok"], true, "[{name}] {v}");
    }
}
