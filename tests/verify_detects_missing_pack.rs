//! A lost pack file is found by the structure check alone (no `--read-data`): the finding
//! names the missing pack, and every affected file by snapshot and path.

mod common;

use std::fs;

use snapkeep::format::keys;
use snapkeep::format::manifest::NodeKind;
use snapkeep::{BackupOptions, NoProgress, Repository, RestoreOptions};

#[test]
fn missing_data_pack_is_reported_with_paths() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    common::write_file(
        &src.join("lost/table.sst"),
        &common::random_bytes(100_000, 3),
    );
    common::write_file(&src.join("kept.txt"), b"small");
    let repo_dir = tmp.path().join("repo");
    let repo = common::small_repo(&repo_dir);
    let rec = snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress)
        .expect("snapshot")
        .record;

    // The data pack holding table.sst's chunks.
    let root = repo.load_tree(&rec.tree).expect("root");
    let lost = root
        .nodes
        .iter()
        .find(|n| n.name == b"lost")
        .expect("lost dir");
    let NodeKind::Dir { tree } = &lost.kind else {
        panic!("not a dir")
    };
    let sub = repo.load_tree(tree).expect("subtree");
    let NodeKind::File { chunks, .. } = &sub.nodes[0].kind else {
        panic!("not a file")
    };
    let pack = repo.locate(&chunks[0].id).expect("located").pack;
    fs::remove_file(repo_dir.join(keys::pack(&pack))).expect("delete pack");

    for read_data in [false, true] {
        let report = common::verify(&repo, read_data);
        assert!(
            !report.ok(),
            "a missing pack went unnoticed (read_data={read_data})"
        );
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.object == format!("pack {pack}")),
            "the missing pack is not named: {:?}",
            report.findings
        );
        let id = rec.id.to_string();
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.snapshot.as_deref() == Some(id.as_str())
                    && f.path.as_deref() == Some("/lost/table.sst")),
            "the affected file is not named: {:?}",
            report.findings
        );
    }

    let out = common::cli(&repo_dir, &["verify", "--json"]);
    common::assert_exit(&out, 1, "");
    let v = common::json_of(&out);
    assert_eq!(v["ok"], false);

    let err = snapkeep::restore(
        &Repository::open_local(&repo_dir).expect("open"),
        &rec.id,
        &tmp.path().join("out"),
        &RestoreOptions::default(),
        &NoProgress,
    )
    .expect_err("restore needs the lost pack");
    // Both files' chunks were in that pack: whichever is written first fails, naming the pack.
    let msg = err.to_string();
    assert!(
        msg.contains(&pack.to_hex()) && (msg.contains("table.sst") || msg.contains("kept.txt")),
        "{msg}"
    );
}
