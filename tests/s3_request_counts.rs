//! Request counts of a real tree over S3 (the test server, see tests/common/s3.rs): a restore
//! reads by pack, not by file, and a walk with an empty cache reads each tree pack about once.
//! Pinned from `--show-requests`: restore GETs at most twice the packs it touches plus the
//! tree reads, and tree reads at most twice the tree packs; every restore byte-identical.

mod common;

use common::s3::{Target, TestRepo, request_report, targets};

/// `args` run with `--show-requests` (and `--cache-dir DIR` when given); its request report.
fn counted(t: &TestRepo, cache: Option<&std::path::Path>, args: &[&str]) -> serde_json::Value {
    let mut c = t.command();
    if let Some(dir) = cache {
        c.arg("--cache-dir").arg(dir);
    }
    let out = c
        .arg("--show-requests")
        .args(args)
        .output()
        .expect("run snapkeep");
    common::assert_no_panic(&out, &format!("{args:?}"));
    request_report(&out)
}

fn ranges(report: &serde_json::Value) -> u64 {
    report["by_kind"]["get_range"].as_u64().unwrap_or(0)
}

/// 150 directories of 6 small files each, one large file, packs of 1 MiB.
fn many_small_files(t: &TestRepo) -> std::path::PathBuf {
    let src = t.path("src");
    let mut rng = common::XorShift::new(18);
    for d in 0..150 {
        for f in 0..6 {
            let len = usize::try_from(rng.next_u64() % 4096).expect("len");
            let data = common::random_bytes(len, rng.next_u64());
            common::write_file(&src.join(format!("d{:03}/s{}/f{f}", d / 10, d % 10)), &data);
        }
    }
    common::write_file(&src.join("large"), &common::random_bytes(3 << 20, 7));
    src
}

#[test]
fn a_restore_reads_by_pack_and_a_cold_walk_by_tree_pack() {
    for target in targets("a_restore_reads_by_pack_and_a_cold_walk_by_tree_pack") {
        let Target::S3(_) = target else { continue };
        let t = target.fresh("by-pack");
        let src = many_small_files(&t);
        let src_s = src.to_str().expect("utf-8");
        t.cli_json(&["init", "--pack-size", "1MiB"]);
        t.cli_json(&["snapshot", src_s]);
        let packs = t.cli_json(&["stats"])["packs"].as_u64().expect("packs");
        assert!(packs >= 4, "{packs} packs: the test wants several");
        let expected = common::s3::tree_contents(&src);

        // Another host: an empty cache, every tree and chunk from the store.
        let out = t.path("cold");
        let cold = counted(
            &t,
            Some(&t.path("cold-cache")),
            &["restore", "latest", out.to_str().expect("utf-8")],
        );
        assert_eq!(common::s3::tree_contents(&out), expected, "cold restore");
        assert!(
            (1..=2 * packs).contains(&ranges(&cold)),
            "{packs} packs, yet a restore of 900 small files made these requests: {cold}"
        );
        // The 166 trees lie in one pack: the first tree read fetches them all, the others
        // are cache hits (misses also count the index file and the snapshot record).
        assert!(
            cold["cache"]["hits"].as_u64().unwrap_or(0) >= 160
                && cold["cache"]["misses"].as_u64().unwrap_or(u64::MAX) <= 4,
            "tree reads: {cold}"
        );

        // The same host right after the snapshot: the trees are cached, only data is read.
        let out = t.path("warm");
        let warm = counted(
            &t,
            None,
            &["restore", "latest", out.to_str().expect("utf-8")],
        );
        assert_eq!(common::s3::tree_contents(&out), expected, "warm restore");
        assert!(
            ranges(&warm) < ranges(&cold) && warm["cache"]["hits"].as_u64() >= Some(166),
            "the trees come from the cache: {warm}, cold: {cold}"
        );

        // verify --read-data with an empty cache: per pack its footer, trailer and header,
        // then its blobs in one run (a pack of 1 MiB); the trees in one fetch.
        let verify = counted(
            &t,
            Some(&t.path("verify-cache")),
            &["verify", "--read-data"],
        );
        assert!(ranges(&verify) <= 4 * packs + 2, "{packs} packs: {verify}");
    }
}
