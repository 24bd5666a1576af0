//! Issue #15, `copy`: snapshots move between repositories of any kind (plain → encrypted,
//! encrypted → encrypted under other keys, plain → plain), byte-identical on restore, with
//! their time, host, paths and tags, the original's id in the record, the parent mapped, and
//! nothing stored twice: a snapshot copied before is skipped, a later one stores only what
//! changed. Re-keyed ids are recomputed (no plain blake3 of the source reaches an encrypted
//! destination), and a damaged source chunk fails that snapshot's copy by file name, with
//! nothing committed for it.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use snapkeep::crypto::Scheme;
use snapkeep::{BackupOptions, NoProgress, Repository, RestoreOptions, SnapshotId, copy_snapshots};

fn encrypted(path: &Path, password: &str, scheme: Scheme) -> Repository {
    common::encrypted_repo(path, password, scheme)
}

fn snapshot(repo: &Repository, src: &Path, tag: &str) -> SnapshotId {
    let opts = BackupOptions {
        tags: vec![tag.to_owned()],
        ..BackupOptions::default()
    };
    snapkeep::snapshot(repo, src, &opts, &NoProgress)
        .expect("snapshot")
        .record
        .id
}

/// A source tree: an incompressible file (several chunks), text, a small file, a symlink, an
/// empty file and a nested directory.
fn source(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    common::write_file(&src.join("db/data.bin"), &common::random_bytes(400_000, 7));
    let text: Vec<u8> = (0..3000)
        .flat_map(|i| format!("line {i} of a text file that compresses\n").into_bytes())
        .collect();
    common::write_file(&src.join("notes.txt"), &text);
    common::write_file(&src.join("a/b/c/small"), b"small file");
    common::write_file(&src.join("empty"), b"");
    std::os::unix::fs::symlink("notes.txt", src.join("link")).expect("symlink");
    src
}

fn restore_equals(repo: &Repository, id: &SnapshotId, src: &Path, out: &Path) {
    snapkeep::restore(repo, id, out, &RestoreOptions::default(), &NoProgress).expect("restore");
    for rel in ["db/data.bin", "notes.txt", "a/b/c/small", "empty"] {
        assert_eq!(
            fs::read(out.join(rel)).expect("restored file"),
            fs::read(src.join(rel)).expect("source file"),
            "{rel}"
        );
    }
    assert_eq!(
        fs::read_link(out.join("link")).expect("symlink"),
        Path::new("notes.txt")
    );
}

/// Every tree and chunk id under `root`, as bytes.
fn plain_ids(repo: &Repository, root: &snapkeep::TreeId) -> Vec<[u8; 32]> {
    use snapkeep::format::manifest::NodeKind;
    let mut out = vec![*root.as_bytes()];
    let mut todo = vec![*root];
    while let Some(t) = todo.pop() {
        for node in repo.load_tree(&t).expect("tree").nodes {
            match node.kind {
                NodeKind::Dir { tree } => {
                    out.push(*tree.as_bytes());
                    todo.push(tree);
                }
                NodeKind::File { chunks, .. } => {
                    out.extend(chunks.iter().map(|c| *c.id.as_bytes()));
                }
                NodeKind::Symlink { .. } => {}
            }
        }
    }
    out
}

#[test]
fn plain_into_encrypted_and_on_into_another_encrypted() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = source(tmp.path());
    let plain = common::small_repo(&tmp.path().join("plain"));
    let first = snapshot(&plain, &src, "one");
    common::write_file(&src.join("notes.txt"), b"changed text\n");
    let second = snapshot(&plain, &src, "two");

    let enc_dir = tmp.path().join("enc");
    let enc = encrypted(&enc_dir, "pw", Scheme::DEFAULT);
    let report = copy_snapshots(&plain, &enc, &[second, first], &NoProgress).expect("copy");
    assert_eq!(report.copied.len(), 2, "{report:?}");
    assert!(report.skipped.is_empty());
    assert!(report.blobs_stored > 0 && report.stored_bytes > 0);
    let (records, bad) = enc.snapshots().expect("records");
    assert!(bad.is_empty());
    assert_eq!(records.len(), 2);
    for (rec, (from, to)) in records.iter().zip(&report.copied) {
        let orig = plain.load_snapshot(from).expect("source record");
        assert_eq!(rec.id, *to);
        assert_ne!(rec.id, orig.id, "a copy gets an id of its own");
        assert_eq!(
            (rec.time_ns, &rec.host, &rec.paths, &rec.tags),
            (orig.time_ns, &orig.host, &orig.paths, &orig.tags)
        );
        let o = rec.original.expect("the original is in the record");
        assert_eq!((o.id, o.repo), (orig.id, plain.config().id));
        assert_ne!(rec.tree, orig.tree, "tree ids are re-keyed");
    }
    // Oldest first; the second's parent is the first's copy.
    assert_eq!(records[0].tags, ["one"]);
    assert_eq!(records[1].parent, Some(records[0].id));
    restore_equals(&enc, &records[1].id, &src, &tmp.path().join("out-enc"));
    let report_v = common::verify_read_data(&enc);
    assert!(report_v.findings.is_empty(), "{:?}", report_v.findings);

    // None of the source's ids (its chunks' plain blake3, its trees') stands in the
    // encrypted repository, raw or as hex.
    let mut haystack = Vec::new();
    for p in common::files_under(&enc_dir) {
        haystack.extend_from_slice(p.to_string_lossy().as_bytes());
        haystack.extend(fs::read(&p).expect("read"));
    }
    let ids = plain_ids(&plain, &plain.load_snapshot(&second).expect("record").tree);
    assert!(ids.len() > 10, "{} ids", ids.len());
    for id in &ids {
        assert!(
            !haystack.windows(32).any(|w| w == id),
            "a plain id stands in the encrypted repository"
        );
        let hex = hex::encode(id);
        assert!(!haystack.windows(64).any(|w| w == hex.as_bytes()));
    }

    // Copied again: both skipped, nothing written.
    let again = copy_snapshots(&plain, &enc, &[first, second], &NoProgress).expect("copy");
    assert!(again.copied.is_empty());
    assert_eq!(again.skipped.len(), 2);
    assert_eq!((again.blobs_stored, again.stored_bytes), (0, 0));

    // On into another encrypted repository (other keys, the other scheme): the original stays
    // the first repository's snapshot, and copying from either source is then a skip.
    let other = encrypted(&tmp.path().join("other"), "pw2", Scheme::XChaCha20Poly1305);
    let ids: Vec<SnapshotId> = records.iter().map(|r| r.id).collect();
    let onward = copy_snapshots(&enc, &other, &ids, &NoProgress).expect("copy");
    assert_eq!(onward.copied.len(), 2);
    let (copied, _) = other.snapshots().expect("records");
    assert_eq!(
        copied[1].original.map(|o| (o.id, o.repo)),
        Some((second, plain.config().id))
    );
    restore_equals(&other, &copied[1].id, &src, &tmp.path().join("out-other"));
    let from_plain = copy_snapshots(&plain, &other, &[first, second], &NoProgress).expect("copy");
    assert!(from_plain.copied.is_empty(), "{from_plain:?}");
    assert_eq!(from_plain.skipped.len(), 2);
}

#[test]
fn a_later_snapshot_stores_only_what_changed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = source(tmp.path());
    common::write_file(&src.join("big.bin"), &common::random_bytes(2_000_000, 9));
    let a = encrypted(&tmp.path().join("a"), "pw", Scheme::DEFAULT);
    let b = encrypted(&tmp.path().join("b"), "pw", Scheme::DEFAULT);
    let first = snapshot(&a, &src, "one");
    let full = copy_snapshots(&a, &b, &[first], &NoProgress).expect("copy");
    // One small file changes: the next copy stores its chunk and the trees above it, far less
    // than the first copy (the big file is cut alike and deduplicates).
    common::write_file(&src.join("a/b/c/small"), b"small file, changed");
    let second = snapshot(&a, &src, "two");
    let delta = copy_snapshots(&a, &b, &[first, second], &NoProgress).expect("copy");
    assert_eq!(delta.copied.len(), 1);
    assert_eq!(delta.skipped.len(), 1);
    assert!(
        delta.bytes_stored * 20 < full.bytes_stored,
        "first copy {} bytes, the later one {} bytes",
        full.bytes_stored,
        delta.bytes_stored
    );
    let (records, _) = b.snapshots().expect("records");
    restore_equals(&b, &records[1].id, &src, &tmp.path().join("out"));
}

#[test]
fn plain_into_plain_keeps_ids_and_reads_only_what_is_missing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = source(tmp.path());
    let a = common::small_repo(&tmp.path().join("a"));
    let b = common::small_repo(&tmp.path().join("b"));
    let first = snapshot(&a, &src, "one");
    let report = copy_snapshots(&a, &b, &[first], &NoProgress).expect("copy");
    let (records, _) = b.snapshots().expect("records");
    assert_eq!(
        records[0].tree,
        a.load_snapshot(&first).expect("record").tree,
        "same ids, same chunker: the tree keeps its id"
    );
    assert!(report.blobs_stored > 0);
    // The destination's own snapshot of the same source deduplicates against the copy.
    let native =
        snapkeep::snapshot(&b, &src, &BackupOptions::default(), &NoProgress).expect("snapshot");
    assert_eq!(
        native.record.summary.new_chunks, 0,
        "{:?}",
        native.record.summary
    );
    restore_equals(&b, &records[0].id, &src, &tmp.path().join("out"));
}

#[test]
fn a_repository_into_itself_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = source(tmp.path());
    let a = common::small_repo(&tmp.path().join("a"));
    let id = snapshot(&a, &src, "one");
    let again = Repository::open_local(&tmp.path().join("a")).expect("open");
    let e = copy_snapshots(&a, &again, &[id], &NoProgress).expect_err("same repository");
    assert!(e.to_string().contains("the same repository"), "{e}");
}

#[test]
fn a_damaged_source_chunk_fails_that_snapshot_by_file_name() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    common::write_file(&src.join("good/file"), b"intact");
    let a_dir = tmp.path().join("a");
    let a = common::small_repo(&a_dir);
    let good = snapshot(&a, &src, "good");
    let victim = common::random_bytes(100_000, 3);
    common::write_file(&src.join("bad/victim.bin"), &victim);
    let bad = snapshot(&a, &src, "bad");
    // Flip a byte of the victim's content where it stands (plain, incompressible) in a pack.
    let needle = &victim[50_000..50_064];
    let (pack, at) = common::pack_files(&a_dir)
        .into_iter()
        .find_map(|p| {
            let b = fs::read(&p).expect("read");
            let at = b.windows(64).position(|w| w == needle)?;
            Some((p, at))
        })
        .expect("the victim's bytes in a pack");
    let mut bytes = fs::read(&pack).expect("read");
    bytes[at] ^= 0x01;
    fs::write(&pack, bytes).expect("write");
    let a = Repository::open_local(&a_dir).expect("open");
    let b = encrypted(&tmp.path().join("b"), "pw", Scheme::DEFAULT);
    let e = copy_snapshots(&a, &b, &[good, bad], &NoProgress).expect_err("damaged chunk");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("snapshot {bad}")) && msg.contains("bad/victim.bin"),
        "{msg}"
    );
    // The snapshot before it was committed; the damaged one was not.
    let (records, _) = b.snapshots().expect("records");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].original.map(|o| o.id), Some(good));
}

/// A sparse file (data, a 4 MiB hole, data) copied into a repository that cuts again: each
/// data extent is cut on its own, so no chunk spans the hole; the copy restores exactly, with
/// its hole, and verifies clean.
#[test]
fn a_sparse_file_is_cut_again_around_its_hole() {
    use std::io::{Seek, SeekFrom, Write};
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).expect("mkdir");
    let head = common::random_bytes(300_000, 11);
    let tail = common::random_bytes(200_000, 12);
    {
        let mut f = fs::File::create(src.join("sparse.db")).expect("create");
        f.write_all(&head).expect("write");
        f.seek(SeekFrom::Current(4 << 20)).expect("seek");
        f.write_all(&tail).expect("write");
    }
    let expect = fs::read(src.join("sparse.db")).expect("read");
    let plain = common::small_repo(&tmp.path().join("plain"));
    let id = snapshot(&plain, &src, "sparse");
    let root = plain
        .load_tree(&plain.load_snapshot(&id).expect("record").tree)
        .expect("tree");
    let snapkeep::format::manifest::NodeKind::File { holes, .. } = &root.nodes[0].kind else {
        panic!("a file");
    };
    if holes.is_empty() {
        eprintln!("the temporary file system keeps no holes here; the copy is checked without one");
    }
    let enc = encrypted(&tmp.path().join("enc"), "pw", Scheme::DEFAULT);
    let report = copy_snapshots(&plain, &enc, &[id], &NoProgress).expect("copy");
    let copy = report.copied[0].1;
    let out = tmp.path().join("out");
    snapkeep::restore(&enc, &copy, &out, &RestoreOptions::default(), &NoProgress)
        .expect("restore the copy");
    assert_eq!(fs::read(out.join("sparse.db")).expect("restored"), expect);
    let copied_root = enc
        .load_tree(&enc.load_snapshot(&copy).expect("record").tree)
        .expect("tree");
    let snapkeep::format::manifest::NodeKind::File { holes: copied, .. } =
        &copied_root.nodes[0].kind
    else {
        panic!("a file");
    };
    assert_eq!(copied, holes, "the holes are kept");
    let v = common::verify_read_data(&enc);
    assert!(v.findings.is_empty(), "{:?}", v.findings);
}
