//! `verify --read-data-subset`: the parts N/M of a repository of Alopex snapshots together
//! read every pack exactly once and each is clean; 100% reads everything; a damaged pack is
//! found by exactly the part that holds it; the CLI rejects subsets that select nothing or
//! do not parse (exit 2).

mod common;

use std::collections::HashSet;

use common::alopex::{Model, Op, commit, value};
use snapkeep::format::keys;
use snapkeep::verify::Subset;
use snapkeep::{BackupOptions, NoProgress, PackId, Repository, VerifyOptions, VerifyReport};

fn verify(repo: &Repository, subset: Option<Subset>) -> VerifyReport {
    snapkeep::verify(
        repo,
        &VerifyOptions {
            read_data: subset.is_none(),
            read_data_subset: subset,
            ..VerifyOptions::default()
        },
        &NoProgress,
    )
    .expect("verify")
}

/// Which part of `m` a pack belongs to (1-based), as documented on `Subset::Part`.
fn part_of(id: &PackId, m: u32) -> u32 {
    u32::from_le_bytes([
        id.as_bytes()[0],
        id.as_bytes()[1],
        id.as_bytes()[2],
        id.as_bytes()[3],
    ]) % m
        + 1
}

/// A repository with several snapshots of a changing Alopex DB: one pack or more each.
fn repository(root: &std::path::Path) -> (std::path::PathBuf, Repository) {
    let db = root.join("db");
    let repo_dir = root.join("repo");
    let repo = common::small_repo(&repo_dir);
    let store = common::alopex::open_db(&db);
    let mut model = Model::new();
    for round in 0..6u64 {
        let ops: Vec<Op> = (0..40u64)
            .map(|i| {
                (
                    format!("r{round}/{i:03}").into_bytes(),
                    Some(value(
                        round * 100 + i,
                        500 + usize::try_from(i * 31).expect("small"),
                    )),
                )
            })
            .collect();
        commit(&store, &mut model, &ops);
        if round % 2 == 1 {
            store.checkpoint().expect("checkpoint");
        }
        common::alopex::snap(&repo, &db, &BackupOptions::default());
    }
    (repo_dir, repo)
}

#[test]
fn parts_partition_the_packs_and_percent_100_reads_all() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (repo_dir, repo) = repository(tmp.path());
    let packs: Vec<PackId> = common::alopex::dir_paths(&repo_dir.join("data"))
        .iter()
        .filter_map(|p| p.rsplit('/').next()?.parse().ok())
        .collect();
    assert!(
        packs.len() >= 6,
        "one pack per snapshot at least: {packs:?}"
    );

    let full = verify(&repo, None);
    assert!(full.ok(), "{:?}", full.findings);
    assert_eq!(full.packs_read, packs.len() as u64);
    assert!(
        full.stage_files > 0,
        "the Alopex stage ran on the stored files"
    );

    for m in [2u32, 3] {
        let reports: Vec<VerifyReport> = (1..=m)
            .map(|n| verify(&repo, Some(Subset::Part { n, m })))
            .collect();
        for (n, r) in (1..=m).zip(&reports) {
            assert!(r.ok(), "part {n}/{m}: {:?}", r.findings);
            let expected = packs.iter().filter(|p| part_of(p, m) == n).count();
            assert_eq!(r.packs_read, expected as u64, "part {n}/{m}");
            assert_eq!(r.snapshots, full.snapshots);
            assert_eq!(r.files, full.files);
        }
        let sum = |f: fn(&VerifyReport) -> u64| reports.iter().map(f).sum::<u64>();
        assert_eq!(sum(|r| r.packs_read), full.packs_read, "parts of {m}");
        assert_eq!(sum(|r| r.blobs_read), full.blobs_read, "parts of {m}");
        assert_eq!(sum(|r| r.bytes_read), full.bytes_read, "parts of {m}");
    }

    let all = verify(&repo, Some(Subset::Percent(100.0)));
    assert!(all.ok(), "{:?}", all.findings);
    assert_eq!(all.packs_read, full.packs_read);
    assert_eq!(all.blobs_read, full.blobs_read);
    assert_eq!(all.bytes_read, full.bytes_read);
    assert_eq!(all.stage_files, full.stage_files);

    // A damaged pack: found by the one part of 2 that reads it, and by 100%.
    let pack_of_data: HashSet<PackId> = packs.iter().copied().collect();
    let victim = {
        let rec = &repo.snapshots().expect("list").0[0];
        let node = common::alopex::find_node(&repo, &rec.tree, "lsm.wal").expect("wal");
        let snapkeep::format::manifest::NodeKind::File { chunks, .. } = &node.kind else {
            panic!("lsm.wal is not a file");
        };
        let c = chunks.iter().max_by_key(|c| c.len).expect("chunk");
        repo.locate(&c.id).expect("located")
    };
    assert!(pack_of_data.contains(&victim.pack));
    common::alopex::flip_byte(
        &repo_dir.join(keys::pack(&victim.pack)),
        u64::from(victim.offset) + u64::from(victim.length) / 2,
        0x20,
    );
    let hit = part_of(&victim.pack, 2);
    let hit_report = verify(&repo, Some(Subset::Part { n: hit, m: 2 }));
    let miss_report = verify(&repo, Some(Subset::Part { n: 3 - hit, m: 2 }));
    assert!(
        hit_report
            .findings
            .iter()
            .any(|f| f.path.as_deref().is_some_and(|p| p.ends_with("lsm.wal"))),
        "part {hit}/2 holds the damaged pack: {:?}",
        hit_report.findings
    );
    assert!(
        miss_report.ok(),
        "part {}/2 does not read the damaged pack: {:?}",
        3 - hit,
        miss_report.findings
    );
    assert!(!verify(&repo, Some(Subset::Percent(100.0))).ok());
}

#[test]
fn the_cli_rejects_subsets_that_select_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (repo_dir, _repo) = repository(tmp.path());
    for bad in [
        "3/2", "0/2", "1/0", "0%", "101%", "-5%", "half", "1/2/3", "",
    ] {
        let arg = format!("--read-data-subset={bad}");
        let out = common::cli_exited(&repo_dir, &["verify", &arg]);
        common::assert_exit(&out, 2, &format!("--read-data-subset {bad:?}"));
        assert!(out.stdout.is_empty(), "{bad:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("subset"),
            "{bad:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut read = 0;
    for part in ["1/2", "2/2"] {
        let out = common::cli_exited(&repo_dir, &["--json", "verify", "--read-data-subset", part]);
        common::assert_exit(&out, 0, part);
        let v = common::json_of(&out);
        assert_eq!(v["ok"], true, "{v}");
        read += v["packs_read"].as_u64().expect("packs_read");
    }
    let out = common::cli_exited(
        &repo_dir,
        &["--json", "verify", "--read-data-subset", "100%"],
    );
    assert_eq!(out.status.code(), Some(0));
    let v = common::json_of(&out);
    assert_eq!(v["packs_read"].as_u64(), Some(read), "{v}");
    let out = common::cli_exited(&repo_dir, &["--json", "verify", "--read-data"]);
    assert_eq!(common::json_of(&out)["packs_read"].as_u64(), Some(read));
}
