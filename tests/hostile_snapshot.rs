//! Restore of crafted snapshots: names `..`, `a/b`, `/abs`, NUL, duplicates (a symlink `x -> /`
//! and a directory `x` holding `etc/passwd`) are refused with a clear error, and nothing is
//! written outside the target.

use std::fs;
use std::sync::Arc;

use snapkeep::format::manifest::{Node, NodeKind, SnapshotRecord, Summary, Tree};
use snapkeep::format::pack::{BlobCompression, BlobKind};
use snapkeep::pack::PackWriter;
use snapkeep::{BlobId, Error, InitOptions, NoProgress, Repository, RestoreOptions, TreeId};

fn node(name: &[u8], kind: NodeKind) -> Node {
    Node {
        name: name.to_vec(),
        kind,
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime_ns: 0,
        ctime_ns: 0,
        inode: 0,
        size: 0,
        flags: 0,
    }
}

fn empty_file(name: &[u8]) -> Node {
    node(
        name,
        NodeKind::File {
            crc32: 0,
            chunks: vec![],
            holes: vec![],
        },
    )
}

/// Stores raw tree bytes (bypassing the sorting `Tree::to_bytes` does) and commits a record.
fn commit(repo: &Repository, trees: &[Vec<u8>]) -> snapkeep::SnapshotId {
    let writer = PackWriter::new(Arc::clone(repo.backend()), repo.codec().clone(), 1 << 20);
    for bytes in trees {
        let len = u32::try_from(bytes.len()).expect("small");
        writer
            .add(
                BlobId::of(bytes),
                BlobKind::Tree,
                BlobCompression::Raw,
                bytes,
                len,
            )
            .expect("add");
    }
    let sealed = writer.finish().expect("finish");
    snapkeep::index::write_index(
        repo.backend().as_ref(),
        repo.codec(),
        sealed.iter().map(|s| (s.id, s.loc)).collect(),
    )
    .expect("index");
    repo.reload_index().expect("reload");
    let rec = SnapshotRecord {
        id: uuid::Uuid::now_v7(),
        time_ns: 1,
        host: "h".into(),
        paths: vec!["/x".into()],
        tags: vec![],
        parent: None,
        tree: TreeId::of(trees.last().expect("root")),
        summary: Summary::default(),
        program: "crafted".into(),
        stages: vec![],
        flags: 0,
        root: None,
        excludes: None,
        original: None,
    };
    repo.commit_snapshot(&rec).expect("commit");
    rec.id
}

/// Encodes a tree exactly as given (unsorted, duplicates kept), like a hostile writer would.
fn raw_tree(nodes: Vec<Node>) -> Vec<u8> {
    let mut sorted = Tree {
        nodes: nodes.clone(),
    };
    let proper = sorted.to_bytes();
    // Same header, then the hostile node order/content.
    let mut out = proper[..8].to_vec();
    out.extend_from_slice(&postcard::to_stdvec(&Tree { nodes }).expect("encode"));
    out
}

#[test]
fn crafted_names_are_refused_and_nothing_escapes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo =
        Repository::init_local(&tmp.path().join("repo"), &InitOptions::default()).expect("init");
    let outside = tmp.path().join("outside-marker");
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("dotdot", vec![raw_tree(vec![empty_file(b"..")])]),
        ("slash", vec![raw_tree(vec![empty_file(b"a/b")])]),
        ("absolute", vec![raw_tree(vec![empty_file(b"/etc-passwd")])]),
        ("nul", vec![raw_tree(vec![empty_file(b"a\0b")])]),
        ("dot", vec![raw_tree(vec![empty_file(b".")])]),
        ("empty", vec![raw_tree(vec![empty_file(b"")])]),
        ("symlink-then-dir", {
            let inner = raw_tree(vec![empty_file(b"outside-marker")]);
            let root = raw_tree(vec![
                node(
                    b"x",
                    NodeKind::Symlink {
                        target: tmp.path().as_os_str().as_encoded_bytes().to_vec(),
                    },
                ),
                node(
                    b"x",
                    NodeKind::Dir {
                        tree: TreeId::of(&inner),
                    },
                ),
            ]);
            vec![inner, root]
        }),
    ];
    for (what, trees) in cases {
        let id = commit(&repo, &trees);
        let target = tmp.path().join(format!("target-{what}"));
        let err = snapkeep::restore(&repo, &id, &target, &RestoreOptions::default(), &NoProgress)
            .expect_err(what);
        assert!(
            matches!(err, Error::InvalidInput(_) | Error::Corrupt { .. }),
            "{what}: {err}"
        );
        assert!(!err.to_string().is_empty());
        assert!(
            !target.exists(),
            "{what}: a refused restore left {}",
            target.display()
        );
        assert!(!outside.exists(), "{what}: wrote outside the target");
        assert!(!tmp.path().join("etc-passwd").exists());
        // The CLI says so with exit 2 or 4, never a panic.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_snapkeep"))
            .env("SNAPKEEP_PASSWORD", "snapkeep-test")
            .env("SNAPKEEP_KDF", "m=64KiB,t=1,p=1")
            .arg("--repo")
            .arg(tmp.path().join("repo"))
            .args(["restore", &id.to_string()])
            .arg(&target)
            .output()
            .expect("cli");
        let code = out.status.code().expect("exit code");
        assert!(code == 2 || code == 4, "{what}: exit {code}");
    }
    // No staging directory is left beside the targets either.
    let leftovers: Vec<_> = fs::read_dir(tmp.path())
        .expect("list")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("snapkeep-restore"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
