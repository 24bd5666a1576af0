//! Prune keeps what snapshots reach as one bit per index position, which is only sound when
//! every index file is in id order: a file whose entries are out of order (with a valid
//! checksum and name, so only the order is wrong) makes prune refuse, and nothing is deleted.

mod common;

use std::fs;

use snapkeep::prune::{PruneOptions, prune};
use snapkeep::{BackupOptions, NoProgress, Repository};

#[test]
fn prune_refuses_an_index_file_out_of_order_and_deletes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (src, repo_dir) = (tmp.path().join("src"), tmp.path().join("repo"));
    let repo = common::small_repo(&repo_dir);
    for n in 0..4u64 {
        common::write_file(
            &src.join(format!("f{n}.bin")),
            &common::random_bytes(60_000, n + 1),
        );
    }
    snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress).expect("snapshot");
    drop(repo);

    // Swap the first two entries, then give the file a valid footer and name.
    let files = common::index_files(&repo_dir);
    assert_eq!(files.len(), 1, "one index file");
    let mut b = fs::read(&files[0]).expect("read index");
    let packs = u32::from_le_bytes(b[24..28].try_into().expect("4 bytes")) as usize;
    let at = 64 + 1024 + packs * 32;
    let (first, second) = (b[at..at + 52].to_vec(), b[at + 52..at + 104].to_vec());
    b[at..at + 52].copy_from_slice(&second);
    b[at + 52..at + 104].copy_from_slice(&first);
    let body = b.len() - 32;
    let sum = *blake3::hash(&b[..body]).as_bytes();
    b[body..].copy_from_slice(&sum);
    let name = blake3::hash(&b).to_hex().to_string();
    fs::remove_file(&files[0]).expect("remove old index");
    fs::write(repo_dir.join("index").join(&name), &b).expect("write index");

    let packs_before = common::pack_files(&repo_dir);
    let repo = Repository::open_local(&repo_dir).expect("open");
    let opts = PruneOptions {
        grace: std::time::Duration::ZERO,
        ..PruneOptions::default()
    };
    let err = prune(&repo, &opts).expect_err("prune must refuse an unsorted index file");
    let msg = err.to_string();
    assert!(
        msg.contains("out of order") && msg.contains("repair index"),
        "{msg}"
    );
    assert_eq!(
        common::pack_files(&repo_dir),
        packs_before,
        "a pack was touched"
    );
    assert!(
        repo_dir.join("index").join(&name).exists(),
        "the index file was removed"
    );
}
