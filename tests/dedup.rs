//! Deduplication: unchanged data is never stored twice, and a small change to a large file
//! stores only the few chunks around the change (content-defined boundaries re-synchronise).

mod common;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;

use snapkeep::{BackupOptions, NoProgress, Repository, RestoreOptions, SnapshotId, Summary};

const BIG: usize = 8 << 20;
const AVG: u32 = 64 * 1024;
/// Largest chunk for `AVG` (max = avg * 4).
const MAX_CHUNK: u64 = 4 * AVG as u64;

fn snap(repo: &Repository, src: &Path) -> (SnapshotId, Summary) {
    let out =
        snapkeep::snapshot(repo, src, &BackupOptions::default(), &NoProgress).expect("snapshot");
    (out.record.id, out.record.summary)
}

fn make_tree(src: &Path) {
    common::write_file(&src.join("big.bin"), &common::random_bytes(BIG, 11));
    common::write_file(&src.join("dir/small.txt"), b"hello, dedup\n");
    common::write_file(
        &src.join("dir/sub/mid.bin"),
        &common::random_bytes(300_000, 12),
    );
    common::write_file(&src.join("empty"), b"");
    fs::create_dir_all(src.join("empty_dir")).expect("mkdir");
}

fn restored_equals(repo: &Repository, id: &SnapshotId, dir: &Path, file: &str, want: &[u8]) {
    snapkeep::restore(repo, id, dir, &RestoreOptions::default(), &NoProgress).expect("restore");
    let got = fs::read(dir.join(file)).expect("read restored file");
    assert!(got == want, "restored {file} differs from the source");
}

#[test]
fn unchanged_tree_stores_nothing_new() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    make_tree(&src);
    let repo_dir = tmp.path().join("repo");
    let repo = common::init_repo(&repo_dir, AVG);

    let (first, s1) = snap(&repo, &src);
    assert_eq!(s1.bytes, (BIG + 13 + 300_000) as u64);
    assert_eq!(s1.new_bytes, s1.bytes, "first snapshot stores every byte");
    assert!(s1.new_chunks > 0 && s1.new_chunks == s1.chunks);
    let packs = common::pack_files(&repo_dir);
    let indexes = common::index_files(&repo_dir);
    assert!(!packs.is_empty());

    let (second, s2) = snap(&repo, &src);
    assert_ne!(first, second);
    assert_eq!(
        s2.new_bytes, 0,
        "second snapshot of the same tree stored data"
    );
    assert_eq!(s2.new_chunks, 0);
    assert_eq!(s2.chunks, s1.chunks);
    assert_eq!(s2.bytes, s1.bytes);
    assert_eq!(
        common::pack_files(&repo_dir),
        packs,
        "an unchanged tree wrote new pack files"
    );
    assert_eq!(
        common::index_files(&repo_dir),
        indexes,
        "an unchanged tree wrote new index files"
    );
    let r1 = repo.load_snapshot(&first).expect("load first");
    let r2 = repo.load_snapshot(&second).expect("load second");
    assert_eq!(
        r1.tree, r2.tree,
        "same content and metadata, same root tree"
    );
    assert_eq!(r2.parent, Some(first));
}

#[test]
fn identical_files_within_one_snapshot_are_stored_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    let data = common::random_bytes(1 << 20, 21);
    for name in ["a.bin", "b.bin", "deep/er/c.bin"] {
        common::write_file(&src.join(name), &data);
    }
    let repo = common::init_repo(&tmp.path().join("repo"), AVG);
    let (_, s) = snap(&repo, &src);
    assert_eq!(s.bytes, 3 * data.len() as u64);
    assert_eq!(
        s.new_bytes,
        data.len() as u64,
        "copies were stored more than once"
    );
    assert_eq!(s.new_chunks * 3, s.chunks);
}

#[test]
fn in_place_edit_stores_only_nearby_chunks() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    make_tree(&src);
    let repo = common::init_repo(&tmp.path().join("repo"), AVG);
    let (_, s1) = snap(&repo, &src);

    let path = src.join("big.bin");
    let edit = common::random_bytes(100, 99);
    let f = fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open for edit");
    f.write_all_at(&edit, (BIG / 2) as u64).expect("edit");
    drop(f);
    let mut want = common::random_bytes(BIG, 11);
    want[BIG / 2..BIG / 2 + 100].copy_from_slice(&edit);
    assert_eq!(fs::read(&path).expect("read back"), want);

    let (id, s2) = snap(&repo, &src);
    assert_eq!(s2.chunks, s1.chunks, "an overwrite keeps the chunk count");
    assert!(
        (1..=3).contains(&s2.new_chunks),
        "a 100-byte overwrite stored {} new chunks",
        s2.new_chunks
    );
    assert!(
        s2.new_bytes <= 3 * MAX_CHUNK && s2.new_bytes < BIG as u64 / 8,
        "a 100-byte overwrite stored {} new bytes",
        s2.new_bytes
    );
    restored_equals(&repo, &id, &tmp.path().join("out"), "big.bin", &want);
}

#[test]
fn one_byte_insertion_stores_only_nearby_chunks() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    make_tree(&src);
    let repo = common::init_repo(&tmp.path().join("repo"), AVG);
    let (_, s1) = snap(&repo, &src);

    let mut want = common::random_bytes(BIG, 11);
    want.insert(BIG / 2 + 12_345, 0xA5);
    fs::write(src.join("big.bin"), &want).expect("rewrite with one extra byte");

    let (id, s2) = snap(&repo, &src);
    assert_eq!(s2.bytes, s1.bytes + 1);
    assert!(
        (1..=3).contains(&s2.new_chunks),
        "a one-byte insertion stored {} new chunks (boundaries did not re-synchronise)",
        s2.new_chunks
    );
    assert!(
        s2.new_bytes <= 3 * MAX_CHUNK && s2.new_bytes < BIG as u64 / 8,
        "a one-byte insertion stored {} new bytes",
        s2.new_bytes
    );
    restored_equals(&repo, &id, &tmp.path().join("out"), "big.bin", &want);
}
