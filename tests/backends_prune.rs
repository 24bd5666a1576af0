//! Retention and prune on every backend (local, and S3 when a server is configured): the
//! space the forgotten snapshots alone held is given back, kept snapshots verify and restore
//! byte-identical, duplicates two hosts stored at once are reclaimed, and a prune running
//! while a snapshot runs in another process leaves both whole.

mod common;

use common::s3::{targets, tree_contents};

const OWN: usize = 1 << 20;

#[test]
fn forget_prune_gives_space_back_on_every_backend() {
    for target in targets("forget_prune_gives_space_back_on_every_backend") {
        let t = target.fresh("prune");
        let name = target.name();
        let src = t.path("src");
        let s = src.to_str().expect("utf-8");
        t.cli_json(&["init", "--chunk-avg", "16KiB", "--pack-size", "1MiB"]);
        common::write_file(&src.join("shared.bin"), &common::random_bytes(OWN, 1));
        for i in 0..3u64 {
            if i > 0 {
                std::fs::remove_file(src.join(format!("own{}.bin", i - 1))).expect("rm");
            }
            common::write_file(
                &src.join(format!("own{i}.bin")),
                &common::random_bytes(OWN, 10 + i),
            );
            t.cli_json(&["snapshot", s]);
        }
        let before = t.cli_json(&["stats"]);
        let pack_before = before["repository_pack_bytes"].as_u64().expect("bytes");
        let v = t.cli_json(&[
            "forget",
            "--keep-last",
            "1",
            "--prune",
            "--grace",
            "0",
            "--max-unused",
            "0%",
        ]);
        assert_eq!(
            v["forget"].as_array().expect("forget").len(),
            2,
            "[{name}] {v}"
        );
        let p = &v["prune"];
        assert!(p["deleted_packs"].as_u64() > Some(0), "[{name}] {p}");
        assert_eq!(p["waiting_packs"], 0, "[{name}] {p}");
        let after = t.cli_json(&["stats"]);
        let pack_after = after["repository_pack_bytes"].as_u64().expect("bytes");
        let dropped = pack_before - pack_after;
        let alone = 2 * OWN as u64;
        assert!(
            dropped >= alone && dropped <= alone + alone / 20,
            "[{name}] dropped {dropped}, the forgotten snapshots alone held {alone}"
        );
        assert_eq!(after["reclaimable_bytes"], 0, "[{name}] {after}");
        assert_eq!(
            t.cli_json(&["verify", "--read-data"])["ok"],
            true,
            "[{name}]"
        );
        let out = t.path("out");
        t.cli_json(&["restore", "latest", out.to_str().expect("utf-8")]);
        assert_eq!(tree_contents(&out), tree_contents(&src), "[{name}]");
        // Nothing is left behind: no lock, no mark.
        let again = t.cli_json(&["prune", "--grace", "0"]);
        assert_eq!(again["marked_packs"], 0, "[{name}] {again}");
        assert_eq!(t.cli_json(&["unlock"])["remaining"], serde_json::json!([]));
    }
}

#[test]
fn prune_while_another_process_snapshots() {
    for target in targets("prune_while_another_process_snapshots") {
        let t = target.fresh("prune-concurrent");
        let name = target.name();
        let src = t.path("src");
        let s = src.to_str().expect("utf-8").to_owned();
        t.cli_json(&["init", "--chunk-avg", "16KiB", "--pack-size", "1MiB"]);
        let mut kept = Vec::new();
        for round in 0..6u64 {
            common::write_file(
                &src.join(format!("f{}.bin", round % 3)),
                &common::random_bytes(600_000, 100 + round),
            );
            let snap = t
                .command()
                .args(["--json", "snapshot", &s])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn();
            let prune = t.cli_json(&["forget", "--keep-last", "2", "--prune", "--grace", "0"]);
            assert!(prune["prune"].is_object(), "[{name}] {prune}");
            let out = snap
                .expect("spawn")
                .wait_with_output()
                .expect("snapshot process");
            common::assert_success(&out, &format!("[{name}] a snapshot failed next to a prune"));
            let id = common::json_of(&out);
            kept.push((
                id["id"].as_str().expect("id").to_owned(),
                tree_contents(&src),
            ));
        }
        let listed = t.cli_json(&["list"]);
        let ids: Vec<&str> = listed
            .as_array()
            .expect("list")
            .iter()
            .map(|r| r["id"].as_str().expect("id"))
            .collect();
        assert!(!ids.is_empty(), "[{name}]");
        assert_eq!(
            t.cli_json(&["verify", "--read-data"])["ok"],
            true,
            "[{name}]"
        );
        for (id, want) in kept.iter().filter(|(id, _)| ids.contains(&id.as_str())) {
            let out = t.path(&format!("r-{id}"));
            t.cli_json(&["restore", id, out.to_str().expect("utf-8")]);
            assert_eq!(&tree_contents(&out), want, "[{name}] snapshot {id}");
        }
    }
}
