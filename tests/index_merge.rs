//! Index files are merged once a snapshot leaves `MERGE_THRESHOLD` of them: the merged index
//! holds exactly the union of the entries, old files are removed, and every snapshot still
//! restores and verifies.

mod common;

use std::collections::HashMap;
use std::fs;

use snapkeep::index::MERGE_THRESHOLD;
use snapkeep::{BackupOptions, NoProgress, Repository, RestoreOptions};

#[test]
fn many_snapshots_merge_their_index_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    let repo_dir = tmp.path().join("repo");
    let repo = common::small_repo(&repo_dir);
    let mut union = HashMap::new();
    let mut ids = Vec::new();
    let mut merged = false;
    for round in 0..MERGE_THRESHOLD + 3 {
        let seed = u64::try_from(round).expect("small") + 1;
        common::write_file(
            &src.join(format!("f{round:02}.bin")),
            &common::random_bytes(20_000, seed),
        );
        let out = snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress)
            .expect("snapshot");
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        ids.push(out.record.id);
        let files = common::index_files(&repo_dir).len();
        assert!(
            files < MERGE_THRESHOLD,
            "{files} index files left after snapshot {round}"
        );
        if round + 1 >= MERGE_THRESHOLD && files <= 2 {
            merged = true;
        }
        let reopened = Repository::open_local(&repo_dir).expect("reopen");
        let now = reopened.index().all_entries();
        for (id, loc) in &union {
            assert_eq!(
                now.get(id),
                Some(loc),
                "entry lost or moved at round {round}"
            );
        }
        union = now;
    }
    assert!(merged, "index files were never merged");

    let repo = Repository::open_local(&repo_dir).expect("reopen");
    let report = common::verify_read_data(&repo);
    assert!(report.ok(), "{:?}", report.findings);
    assert_eq!(report.snapshots, ids.len() as u64);
    for (n, id) in [(1usize, ids[0]), (ids.len(), ids[ids.len() - 1])] {
        let target = tmp.path().join(format!("out{n}"));
        snapkeep::restore(&repo, &id, &target, &RestoreOptions::default(), &NoProgress)
            .expect("restore");
        assert_eq!(fs::read_dir(&target).expect("list").count(), n);
        assert_eq!(
            fs::read(target.join("f00.bin")).expect("read"),
            common::random_bytes(20_000, 1)
        );
    }
}
