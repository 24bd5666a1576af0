//! `repair snapshots`: after a pack is lost, each affected snapshot is salvaged into a copy
//! without exactly the files whose data is gone (or reported lost when its root tree is gone);
//! `--dry-run` writes nothing; `--forget` removes the damaged originals; afterwards the
//! repository verifies clean and the salvaged snapshots restore what survived.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use common::{cli as run, cli_json as json};
use snapkeep::format::manifest::NodeKind;
use snapkeep::{BackupOptions, NoProgress, PackId, Repository};

fn setup(dir: &Path) -> (Repository, std::path::PathBuf) {
    let src = dir.join("src");
    for (p, seed, len) in [
        ("d1/a", 1, 700_000),
        ("d1/b", 2, 5_000),
        ("d2/c", 3, 700_000),
        ("top", 4, 3_000),
    ] {
        common::write_file(&src.join(p), &common::random_bytes(len, seed));
    }
    let repo = common::small_packs_repo(&dir.join("repo"));
    (repo, src)
}

/// A snapshot of `src` (`what` names it in a failure).
fn take(repo: &Repository, src: &Path, what: &str) -> snapkeep::SnapshotRecord {
    snapkeep::snapshot(repo, src, &BackupOptions::default(), &NoProgress)
        .expect(what)
        .record
}

/// Files of a snapshot (relative paths) with the packs their chunks live in.
fn files_and_packs(repo: &Repository, id: &snapkeep::SnapshotId) -> Vec<(String, Vec<PackId>)> {
    let rec = repo.load_snapshot(id).expect("record");
    let mut out = Vec::new();
    let mut stack = vec![(rec.tree, String::new())];
    while let Some((t, prefix)) = stack.pop() {
        for n in repo.load_tree(&t).expect("tree").nodes {
            let name = format!("{prefix}{}", String::from_utf8_lossy(&n.name));
            match n.kind {
                NodeKind::Dir { tree } => stack.push((tree, format!("{name}/"))),
                NodeKind::File { chunks, .. } => out.push((
                    name,
                    chunks
                        .iter()
                        .map(|c| repo.locate(&c.id).expect("indexed").pack)
                        .collect(),
                )),
                NodeKind::Symlink { .. } => {}
            }
        }
    }
    out
}

fn pack_path(repo_dir: &Path, id: &PackId) -> std::path::PathBuf {
    let h = id.to_hex();
    repo_dir.join("data").join(&h[..2]).join(h)
}

#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, its steps in order")]
fn lost_data_pack_salvages_the_other_files() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (repo, src) = setup(tmp.path());
    let repo_dir = tmp.path().join("repo");
    let s1 = take(&repo, &src, "s1");
    common::write_file(&src.join("d3/e"), &common::random_bytes(2_000, 5));
    let s2 = take(&repo, &src, "s2");
    let files = files_and_packs(&repo, &s2.id);
    // Lose the pack holding the last chunk of d2/c.
    let lost = *files
        .iter()
        .find(|(n, _)| n == "d2/c")
        .and_then(|(_, p)| p.last())
        .expect("d2/c has chunks");
    let expect_dropped: BTreeSet<String> = files
        .iter()
        .filter(|(_, p)| p.contains(&lost))
        .map(|(n, _)| n.clone())
        .collect();
    let survivors: Vec<String> = files
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| !expect_dropped.contains(n))
        .collect();
    assert!(!survivors.is_empty(), "the test needs a file that survives");
    fs::remove_file(pack_path(&repo_dir, &lost)).expect("lose the pack");
    assert_eq!(run(&repo_dir, &["verify"]).status.code(), Some(1));

    let before = common::files_under(&repo_dir);
    let plan = json(&repo_dir, &["repair", "snapshots", "--dry-run"]);
    assert_eq!(common::files_under(&repo_dir), before, "a dry run wrote");
    let snaps = plan["snapshots"].as_array().expect("snapshots");
    assert_eq!(snaps.len(), 2);
    for s in snaps {
        assert_eq!(s["status"], "repaired", "{s}");
        let dropped: BTreeSet<String> = s["dropped_files"]
            .as_array()
            .expect("dropped")
            .iter()
            .map(|v| v.as_str().expect("str").to_owned())
            .collect();
        // s1 lacks d3/e, which never lies in the lost pack anyway.
        assert_eq!(dropped, expect_dropped, "{s}");
    }

    let done = json(&repo_dir, &["repair", "snapshots", "--forget"]);
    assert_eq!(done["index_rebuilt"], true, "{done}");
    let new_ids: Vec<String> = done["snapshots"]
        .as_array()
        .expect("snapshots")
        .iter()
        .map(|s| {
            assert_eq!(s["forgotten"], true, "{s}");
            s["new_id"].as_str().expect("new id").to_owned()
        })
        .collect();
    let listed = json(&repo_dir, &["list"]);
    let listed_ids: Vec<&str> = listed
        .as_array()
        .expect("list")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    assert_eq!(listed_ids, new_ids, "only the repaired copies remain");
    assert!(listed.as_array().expect("list").iter().all(|r| {
        r["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .any(|t| t == "repaired")
    }));
    let ok = json(&repo_dir, &["verify", "--read-data"]);
    assert_eq!(ok["ok"], true, "{ok}");
    // The repaired s2 restores every surviving file byte-identical, and none of the lost.
    let target = tmp.path().join("out");
    json(
        &repo_dir,
        &["restore", &new_ids[1], target.to_str().expect("utf-8")],
    );
    for f in &survivors {
        assert_eq!(
            fs::read(target.join(f)).expect("restored"),
            fs::read(src.join(f)).expect("source"),
            "{f}"
        );
    }
    for f in &expect_dropped {
        assert!(!target.join(f).exists(), "{f} was lost, yet restored");
    }
    // Nothing more to repair.
    let again = json(&repo_dir, &["repair", "snapshots"]);
    assert!(
        again["snapshots"]
            .as_array()
            .expect("snapshots")
            .iter()
            .all(|s| s["status"] == "intact"),
        "{again}"
    );
    let _ = s1;
}

#[test]
fn lost_root_tree_is_reported_and_forgotten() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (repo, src) = setup(tmp.path());
    let repo_dir = tmp.path().join("repo");
    let s1 = take(&repo, &src, "s1");
    common::write_file(&src.join("d3/e"), &common::random_bytes(2_000, 5));
    let s2 = take(&repo, &src, "s2");
    let root_pack = repo.locate(&s2.tree).expect("root").pack;
    assert_ne!(
        repo.locate(&s1.tree).expect("root").pack,
        root_pack,
        "each snapshot writes its own tree pack"
    );
    fs::remove_file(pack_path(&repo_dir, &root_pack)).expect("lose the tree pack");
    let done = json(&repo_dir, &["repair", "snapshots", "--forget"]);
    let snaps = done["snapshots"].as_array().expect("snapshots");
    let status = |id: &snapkeep::SnapshotId| {
        snaps
            .iter()
            .find(|s| s["id"] == id.to_string())
            .map(|s| s["status"].as_str().expect("status").to_owned())
    };
    assert_eq!(status(&s1.id).as_deref(), Some("intact"));
    assert_eq!(status(&s2.id).as_deref(), Some("lost"));
    let listed = json(&repo_dir, &["list"]);
    assert_eq!(listed.as_array().expect("list").len(), 1);
    assert_eq!(listed[0]["id"], s1.id.to_string());
    assert_eq!(json(&repo_dir, &["verify", "--read-data"])["ok"], true);
}

/// Stores `trees` as tree blobs in one pack and indexes them; returns their ids.
fn store_trees(
    repo: &Repository,
    trees: &mut [snapkeep::format::manifest::Tree],
) -> Vec<snapkeep::TreeId> {
    use snapkeep::format::pack::{BlobCompression, BlobKind};
    use snapkeep::id::AsBlob;
    let writer = snapkeep::pack::PackWriter::new(
        std::sync::Arc::clone(repo.backend()),
        repo.codec().clone(),
        1 << 20,
    );
    let mut ids = Vec::with_capacity(trees.len());
    for tree in trees {
        let bytes = tree.to_bytes();
        let id = snapkeep::TreeId::of(&bytes);
        let len = u32::try_from(bytes.len()).expect("small tree");
        writer
            .add(id.blob(), BlobKind::Tree, BlobCompression::Raw, &bytes, len)
            .expect("add");
        ids.push(id);
    }
    let sealed = writer.finish().expect("seal");
    snapkeep::index::write_index(
        repo.backend().as_ref(),
        repo.codec(),
        sealed.iter().map(|s| (s.id, s.loc)).collect(),
    )
    .expect("index");
    repo.reload_index().expect("reload");
    ids
}

/// Stores one tree; returns its id.
fn store_tree(repo: &Repository, tree: &mut snapkeep::format::manifest::Tree) -> snapkeep::TreeId {
    store_trees(repo, std::slice::from_mut(tree))[0]
}

#[test]
fn lost_directory_tree_is_kept_as_an_empty_directory_named_by_its_path() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (repo, src) = setup(tmp.path());
    let repo_dir = tmp.path().join("repo");
    let s1 = take(&repo, &src, "s1");
    // A copy of s1 whose d1 holds one more directory, `lost`, whose tree is in no pack.
    let mut root = repo.load_tree(&s1.tree).expect("root");
    let d1 = root.nodes.iter_mut().find(|n| n.name == b"d1").expect("d1");
    let NodeKind::Dir { tree: d1_tree } = d1.kind.clone() else {
        panic!("d1 is a directory")
    };
    let mut d1_copy = repo.load_tree(&d1_tree).expect("d1 tree");
    let mut lost = d1.clone();
    lost.name = b"lost".to_vec();
    lost.kind = NodeKind::Dir {
        tree: snapkeep::TreeId::of(b"a tree that was never stored"),
    };
    d1_copy.nodes.push(lost);
    d1.kind = NodeKind::Dir {
        tree: store_tree(&repo, &mut d1_copy),
    };
    let mut broken = s1.clone();
    broken.id = uuid::Uuid::now_v7();
    broken.tree = store_tree(&repo, &mut root);
    repo.commit_snapshot(&broken).expect("commit");

    let plan = json(&repo_dir, &["repair", "snapshots", "--dry-run"]);
    let snaps = plan["snapshots"].as_array().expect("snapshots");
    let of = |id: &snapkeep::SnapshotId| {
        snaps
            .iter()
            .find(|s| s["id"] == id.to_string())
            .expect("reported")
    };
    assert_eq!(of(&s1.id)["status"], "intact", "{plan}");
    let b = of(&broken.id);
    assert_eq!(b["status"], "repaired", "{plan}");
    assert_eq!(b["emptied_dirs"], serde_json::json!(["d1/lost"]), "{plan}");
    assert_eq!(b["dropped_files"], serde_json::json!([]), "{plan}");

    let done = json(&repo_dir, &["repair", "snapshots"]);
    let fixed: snapkeep::SnapshotId = done["snapshots"]
        .as_array()
        .expect("snapshots")
        .iter()
        .find_map(|s| s["new_id"].as_str())
        .expect("a repaired copy")
        .parse()
        .expect("id");
    let target = tmp.path().join("out");
    json(
        &repo_dir,
        &[
            "restore",
            &fixed.to_string(),
            target.to_str().expect("utf-8"),
        ],
    );
    assert!(
        target.join("d1/lost").is_dir(),
        "the lost directory is kept"
    );
    assert_eq!(
        fs::read_dir(target.join("d1/lost")).expect("dir").count(),
        0
    );
    assert_eq!(
        fs::read(target.join("d1/a")).expect("restored"),
        fs::read(src.join("d1/a")).expect("source")
    );
}

#[test]
fn a_tree_nested_past_the_depth_bound_stops_the_repair_and_is_kept() {
    use snapkeep::format::manifest::Tree;
    let tmp = tempfile::tempdir().expect("tmp");
    let (repo, src) = setup(tmp.path());
    let s1 = take(&repo, &src, "s1");
    // A record whose root holds `d` nested deeper than any walk goes, every tree present.
    let root = repo.load_tree(&s1.tree).expect("root");
    let template = root
        .nodes
        .iter()
        .find(|n| n.name == b"d1")
        .expect("d1")
        .clone();
    let mut trees = Vec::new();
    let mut below = None;
    for _ in 0..=snapkeep::walk::MAX_DEPTH + 1 {
        let mut t = Tree::default();
        if let Some(sub) = below {
            let mut d = template.clone();
            d.name = b"d".to_vec();
            d.kind = NodeKind::Dir { tree: sub };
            t.nodes.push(d);
        }
        below = Some(snapkeep::TreeId::of(&t.to_bytes()));
        trees.push(t);
    }
    store_trees(&repo, &mut trees);
    let mut deep = s1.clone();
    deep.id = uuid::Uuid::now_v7();
    deep.tree = below.expect("a tree");
    repo.commit_snapshot(&deep).expect("commit");

    let opts = snapkeep::repair::SnapshotRepairOptions {
        forget: true,
        ..Default::default()
    };
    let err = snapkeep::repair::repair_snapshots(&repo, &opts).expect_err("refused");
    assert!(snapkeep::walk::is_too_deep(&err), "{err}");
    let (records, _) = repo.snapshots().expect("records");
    assert_eq!(records.len(), 2, "nothing forgotten, nothing added");
}
