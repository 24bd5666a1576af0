//! Rebuilding the index from pack trailers reproduces exactly the index the snapshots wrote,
//! whether the old index files are still there or were all lost.

mod common;

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use snapkeep::format::index_file::BlobLocation;
use snapkeep::repair::{plan_index_rebuild, repair_index};
use snapkeep::{BackupOptions, BlobId, NoProgress, Repository, RestoreOptions, SnapshotId};

/// Several snapshots of an evolving tree: several index files and packs of both kinds.
fn repo_with_history(root: &Path) -> (Repository, Vec<(SnapshotId, Vec<u8>)>) {
    let src = root.join("src");
    let repo = common::small_repo(&root.join("repo"));
    let mut snaps = Vec::new();
    for (round, seed) in (0..4usize).zip(100u64..) {
        let payload = common::random_bytes(200_000 + round * 50_000, seed);
        common::write_file(&src.join(format!("round{round}.bin")), &payload);
        common::write_file(&src.join("changing.bin"), &payload[..150_000]);
        common::write_file(
            &src.join(format!("d{round}/note.txt")),
            format!("round {round}\n").as_bytes(),
        );
        let out = snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress)
            .expect("snapshot");
        snaps.push((out.record.id, payload[..150_000].to_vec()));
    }
    (repo, snaps)
}

fn entries(repo_dir: &Path) -> HashMap<BlobId, BlobLocation> {
    Repository::open_local(repo_dir)
        .expect("reopen")
        .index()
        .all_entries()
}

fn assert_restores(repo_dir: &Path, snaps: &[(SnapshotId, Vec<u8>)], out: &Path) {
    let repo = Repository::open_local(repo_dir).expect("reopen");
    for (i, (id, changing)) in snaps.iter().enumerate() {
        let target = out.join(format!("r{i}"));
        snapkeep::restore(&repo, id, &target, &RestoreOptions::default(), &NoProgress)
            .expect("restore after rebuild");
        assert!(
            fs::read(target.join("changing.bin")).expect("read") == *changing,
            "snapshot {i} restored wrong content"
        );
        assert!(target.join(format!("round{i}.bin")).is_file());
    }
    let report = common::verify_read_data(&repo);
    assert!(report.ok(), "verify after rebuild: {:?}", report.findings);
    assert_eq!(report.snapshots, snaps.len() as u64);
}

#[test]
fn rebuild_with_old_index_present_reproduces_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo_dir = tmp.path().join("repo");
    let (repo, snaps) = repo_with_history(tmp.path());
    let before = repo.index().all_entries();
    let old_files = common::index_files(&repo_dir);
    assert_eq!(old_files.len(), snaps.len(), "one index file per snapshot");
    assert!(before.len() > 20);

    let plan = plan_index_rebuild(&repo).expect("plan");
    assert!(plan.damaged_packs.is_empty(), "{:?}", plan.damaged_packs);
    assert_eq!(plan.packs_read, common::pack_files(&repo_dir).len() as u64);
    assert_eq!(plan.old_index_files.len(), old_files.len());
    assert_eq!(plan.entries.len(), before.len());
    let planned: HashMap<_, _> = plan.entries.iter().copied().collect();
    assert_eq!(planned, before, "the plan differs from the index");

    let new = repair_index(&repo, &plan)
        .expect("repair")
        .expect("a non-empty index was written");
    assert_eq!(repo.index().all_entries(), before, "reloaded index differs");
    let now = common::index_files(&repo_dir);
    assert_eq!(now.len(), 1, "old index files were not replaced: {now:?}");
    assert_eq!(
        now[0].file_name().and_then(|n| n.to_str()),
        Some(new.to_hex().as_str())
    );
    assert_eq!(entries(&repo_dir), before, "reopened index differs");

    // Idempotent: a second rebuild writes the same file and must not delete it.
    let again = plan_index_rebuild(&repo).expect("plan again");
    assert_eq!(
        repair_index(&repo, &again).expect("repair again"),
        Some(new)
    );
    assert_eq!(common::index_files(&repo_dir), now);
    assert_eq!(entries(&repo_dir), before);

    assert_restores(&repo_dir, &snaps, &tmp.path().join("out"));
}

#[test]
fn rebuild_after_losing_every_index_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo_dir = tmp.path().join("repo");
    let (repo, snaps) = repo_with_history(tmp.path());
    let before = repo.index().all_entries();
    drop(repo);

    for f in common::index_files(&repo_dir) {
        fs::remove_file(f).expect("delete index file");
    }
    let repo = Repository::open_local(&repo_dir).expect("open without index");
    assert!(repo.index().all_entries().is_empty());
    // Without the index, restore cannot find the trees: an error, not a panic.
    let latest = repo.resolve("latest").expect("records are still listed");
    assert_eq!(latest, snaps.last().expect("snapshots").0);
    assert!(
        snapkeep::restore(
            &repo,
            &latest,
            &tmp.path().join("too-early"),
            &RestoreOptions::default(),
            &NoProgress
        )
        .is_err()
    );

    let plan = plan_index_rebuild(&repo).expect("plan");
    assert!(plan.damaged_packs.is_empty(), "{:?}", plan.damaged_packs);
    assert!(plan.old_index_files.is_empty());
    repair_index(&repo, &plan).expect("repair");
    assert_eq!(repo.index().all_entries(), before);
    assert_eq!(entries(&repo_dir), before);
    assert_eq!(common::index_files(&repo_dir).len(), 1);

    assert_restores(&repo_dir, &snaps, &tmp.path().join("out"));
}

#[test]
fn rebuild_replaces_a_damaged_index_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo_dir = tmp.path().join("repo");
    let (repo, snaps) = repo_with_history(tmp.path());
    let before = repo.index().all_entries();
    drop(repo);

    // Flip one byte in the middle of the entries of the largest index file.
    let victim = common::index_files(&repo_dir)
        .into_iter()
        .max_by_key(|p| fs::metadata(p).expect("stat").len())
        .expect("an index file");
    let mut b = fs::read(&victim).expect("read index");
    let at = b.len() - 32 - 52 / 2 - 52 * 3;
    b[at] ^= 0x40;
    fs::write(&victim, &b).expect("damage index");

    let repo = Repository::open_local(&repo_dir).expect("open with a damaged index file");
    let report = common::verify_read_data(&repo);
    let name = victim
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name")
        .to_owned();
    assert!(
        report.findings.iter().any(|f| f.object.contains(&name)),
        "the damaged index file is not reported: {:?}",
        report.findings
    );

    let plan = plan_index_rebuild(&repo).expect("plan");
    assert!(plan.damaged_packs.is_empty());
    repair_index(&repo, &plan).expect("repair");
    assert!(!victim.exists(), "the damaged index file was kept");
    assert_eq!(entries(&repo_dir), before);
    assert_restores(&repo_dir, &snaps, &tmp.path().join("out"));
}
