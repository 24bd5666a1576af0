//! One flipped byte inside a stored data blob is found by `verify --read-data`, named by
//! snapshot and file path, and makes restoring that file fail cleanly (no panic).

mod common;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use snapkeep::format::keys;
use snapkeep::format::pack::{BlobKind, HEADER};
use snapkeep::{BackupOptions, NoProgress, Repository, RestoreOptions, SnapshotId, VerifyOptions};

const FILE: &str = "victim.bin";

struct Damaged {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    repo_dir: PathBuf,
    /// The snapshot holding the damaged file.
    bad: SnapshotId,
    /// A snapshot of unrelated data: it must stay clean.
    good: SnapshotId,
}

/// Two snapshots of disjoint data; then one byte in the middle of a data blob of the first
/// snapshot's file is flipped in its pack file.
fn damaged_repo() -> Damaged {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().to_path_buf();
    let repo_dir = root.join("repo");
    let repo = common::small_repo(&repo_dir);

    let src1 = root.join("src1");
    // Random data does not compress: blobs are stored raw, the flip hits content directly.
    common::write_file(&src1.join(FILE), &common::random_bytes(300_000, 7));
    common::write_file(&src1.join("other/fine.txt"), b"untouched");
    let bad = snapkeep::snapshot(&repo, &src1, &BackupOptions::default(), &NoProgress)
        .expect("snapshot 1")
        .record;

    let src2 = root.join("src2");
    common::write_file(
        &src2.join("unrelated.bin"),
        &common::random_bytes(100_000, 8),
    );
    let good = snapkeep::snapshot(&repo, &src2, &BackupOptions::default(), &NoProgress)
        .expect("snapshot 2")
        .record;

    // The largest data blob of the victim file, located through its tree and the index.
    let tree = repo.load_tree(&bad.tree).expect("root tree");
    let node = tree
        .nodes
        .iter()
        .find(|n| n.name == FILE.as_bytes())
        .expect("victim node");
    let snapkeep::format::manifest::NodeKind::File { chunks, .. } = &node.kind else {
        panic!("victim is not a file");
    };
    let chunk = chunks.iter().max_by_key(|c| c.len).expect("chunks");
    let loc = repo.locate(&chunk.id).expect("located");
    assert_eq!(loc.kind, BlobKind::Data);
    assert!(u64::from(loc.offset) >= HEADER.len() as u64);
    let pack = repo_dir.join(keys::pack(&loc.pack));
    let at = u64::from(loc.offset) + u64::from(loc.length) / 2;
    let size = fs::metadata(&pack).expect("pack").len();
    assert!(
        at > 8 && at < size - 48,
        "offset {at} not inside the blob region"
    );

    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&pack)
        .expect("open pack for writing (owner may write a 0600 file)");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).expect("read byte");
    b[0] ^= 0x10;
    f.write_all_at(&b, at).expect("flip byte");
    f.sync_all().expect("sync");

    Damaged {
        _tmp: tmp,
        root,
        repo_dir,
        bad: bad.id,
        good: good.id,
    }
}

fn verify(repo: &Repository, read_data: bool) -> snapkeep::VerifyReport {
    common::verify(repo, read_data)
}

#[test]
fn library_verify_names_snapshot_and_path() {
    let d = damaged_repo();
    let repo = Repository::open_local(&d.repo_dir).expect("open");
    let report = verify(&repo, true);
    assert!(!report.ok(), "a flipped byte went unnoticed");
    let bad = d.bad.to_string();
    let named: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.snapshot.as_deref() == Some(bad.as_str()))
        .collect();
    assert!(
        named
            .iter()
            .any(|f| f.path.as_deref().is_some_and(|p| p.ends_with(FILE))
                && f.object.starts_with("chunk ")),
        "no finding names snapshot {bad} and {FILE}: {:?}",
        report.findings
    );
    let good = d.good.to_string();
    for f in &report.findings {
        assert_ne!(
            f.snapshot.as_deref(),
            Some(good.as_str()),
            "the untouched snapshot was blamed: {f}"
        );
        if let Some(p) = &f.path {
            assert!(p.ends_with(FILE), "an intact file was blamed: {f}");
        }
    }
    assert!(report.packs_read >= 2);
    assert_eq!(report.snapshots, 2);

    // Only the damaged snapshot selected: still found; the other alone: clean.
    let only_bad = snapkeep::verify(
        &repo,
        &VerifyOptions {
            snapshot: Some(d.bad),
            read_data: true,
            ..VerifyOptions::default()
        },
        &NoProgress,
    )
    .expect("verify one");
    assert!(
        only_bad
            .findings
            .iter()
            .any(|f| f.snapshot.as_deref() == Some(bad.as_str()))
    );
    let only_good = snapkeep::verify(
        &repo,
        &VerifyOptions {
            snapshot: Some(d.good),
            read_data: true,
            ..VerifyOptions::default()
        },
        &NoProgress,
    )
    .expect("verify one");
    assert!(
        only_good
            .findings
            .iter()
            .all(|f| f.snapshot.as_deref() != Some(good.as_str())),
        "{:?}",
        only_good.findings
    );
}

#[test]
fn structure_only_verify_does_not_read_blob_content() {
    let d = damaged_repo();
    let repo = Repository::open_local(&d.repo_dir).expect("open");
    let report = verify(&repo, false);
    assert!(
        report.ok(),
        "structure is intact, yet findings: {:?}",
        report.findings
    );
    assert_eq!(report.snapshots, 2);
    assert_eq!(report.packs_read, 0);
    let out = common::cli_exited(&d.repo_dir, &["verify", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v = common::json_of(&out);
    assert_eq!(v["ok"], true);
}

#[test]
fn cli_verify_read_data_exits_1_with_findings() {
    let d = damaged_repo();
    let out = common::cli_exited(&d.repo_dir, &["verify", "--read-data", "--json"]);
    common::assert_exit(&out, 1, "stderr");
    let v = common::json_of(&out);
    assert_eq!(v["ok"], false);
    let findings = v["findings"].as_array().expect("findings array");
    let bad = d.bad.to_string();
    assert!(
        findings.iter().any(|f| f["snapshot"] == bad.as_str()
            && f["path"].as_str().is_some_and(|p| p.contains(FILE))),
        "no finding names {bad} and {FILE}: {v}"
    );
    for f in findings {
        assert!(f["object"].is_string() && f["problem"].is_string(), "{f}");
    }

    // Without --json the findings are on stdout, one per line, still exit 1.
    let out = common::cli_exited(&d.repo_dir, &["verify", "--read-data"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&bad) && text.contains(FILE), "stdout: {text}");
}

#[test]
fn restore_of_damaged_snapshot_fails_cleanly() {
    let d = damaged_repo();
    let repo = Repository::open_local(&d.repo_dir).expect("open");
    let err = snapkeep::restore(
        &repo,
        &d.bad,
        &d.root.join("lib-out"),
        &RestoreOptions::default(),
        &NoProgress,
    )
    .expect_err("restoring damaged data must fail");
    let msg = err.to_string();
    assert!(msg.contains(FILE), "error does not name the file: {msg}");
    assert!(
        matches!(
            err,
            snapkeep::Error::Corrupt { .. } | snapkeep::Error::HashMismatch { .. }
        ),
        "unexpected error kind: {err:?}"
    );

    let out = common::cli_exited(
        &d.repo_dir,
        &[
            "restore",
            &d.bad.to_string(),
            d.root.join("cli-out").to_str().expect("utf8"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "stderr: {stderr}");
    assert!(
        stderr.contains("error") && stderr.contains(FILE),
        "stderr: {stderr}"
    );

    // The undamaged snapshot still restores.
    let out = common::cli_exited(
        &d.repo_dir,
        &[
            "restore",
            &d.good.to_string(),
            d.root.join("good-out").to_str().expect("utf8"),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(
        fs::read(d.root.join("good-out/unrelated.bin")).expect("restored")
            == common::random_bytes(100_000, 8)
    );
}

/// A flipped byte in a directory's tree blob: reported for that directory's path.
#[test]
fn flipped_tree_blob_is_reported_for_its_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo_dir = tmp.path().join("repo");
    let repo = common::small_repo(&repo_dir);
    let src = tmp.path().join("src");
    common::write_file(&src.join("top.txt"), b"top");
    common::write_file(&src.join("other/inner.txt"), b"inner");
    let rec = snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress)
        .expect("snapshot")
        .record;
    let root = repo.load_tree(&rec.tree).expect("root");
    let other = root
        .nodes
        .iter()
        .find(|n| n.name == b"other")
        .expect("other");
    let snapkeep::format::manifest::NodeKind::Dir { tree } = &other.kind else {
        panic!("not a dir");
    };
    let loc = repo.locate(tree).expect("located");
    assert_eq!(loc.kind, BlobKind::Tree);
    let pack = repo_dir.join(keys::pack(&loc.pack));
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&pack)
        .expect("open pack");
    let at = u64::from(loc.offset) + u64::from(loc.length) / 2;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).expect("read");
    b[0] ^= 0x01;
    f.write_all_at(&b, at).expect("flip");
    drop(f);

    let report = verify(&repo, true);
    let id = rec.id.to_string();
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.snapshot.as_deref() == Some(id.as_str())
                && f.path.as_deref() == Some("/other")
                && f.object.starts_with("tree ")),
        "damaged tree of /other not reported: {:?}",
        report.findings
    );
    let err = snapkeep::restore(
        &repo,
        &rec.id,
        &tmp.path().join("out"),
        &RestoreOptions::default(),
        &NoProgress,
    )
    .expect_err("restore through a damaged tree");
    assert!(
        matches!(
            err,
            snapkeep::Error::Corrupt { .. } | snapkeep::Error::HashMismatch { .. }
        ),
        "{err:?}"
    );
}
