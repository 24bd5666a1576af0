//! Issue #15, encryption at rest: a format 2 repository round-trips byte for byte, and what it
//! stores reveals nothing of the data: no 64-byte window of an incompressible source file and
//! no plain blake3 (of a file or of any of its chunks) stands anywhere in its bytes or object
//! names. A wrong or missing password opens nothing and writes nothing; a flipped byte in each
//! kind of object, and a record copied from another repository, are refused by name; key
//! files can be added, used, changed and removed, never the last one.

mod common;

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use snapkeep::backend::LocalBackend;
use snapkeep::chunker::Chunker;
use snapkeep::crypto::{KdfParams, Scheme};
use snapkeep::{BackupOptions, Error, NoProgress, Repository, RestoreOptions};

/// Argon2id parameters small enough for debug-build tests (a real key uses the default).
const FAST: KdfParams = KdfParams {
    m_kib: 64,
    t: 1,
    p: 1,
};

fn encrypted(path: &Path, password: &str) -> Repository {
    encrypted_with(path, password, Scheme::DEFAULT)
}

fn encrypted_with(path: &Path, password: &str, scheme: Scheme) -> Repository {
    common::encrypted_repo(path, password, scheme)
}

fn open(path: &Path, password: Option<&str>) -> snapkeep::Result<Repository> {
    Repository::open_local_with(path, password.map(str::as_bytes))
}

fn snapshot(repo: &Repository, src: &Path) -> snapkeep::SnapshotId {
    snapkeep::snapshot(repo, src, &BackupOptions::default(), &NoProgress)
        .expect("snapshot")
        .record
        .id
}

/// Every file under `dir`, with its bytes.
fn stored(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    common::files_under(dir)
        .into_iter()
        .map(|p| {
            let b = fs::read(&p).expect("read stored object");
            (p, b)
        })
        .collect()
}

/// A source tree: an incompressible file, a text file, a small file.
fn source(dir: &Path) -> (PathBuf, Vec<u8>) {
    let src = dir.join("src");
    let random = common::random_bytes(600_000, 42);
    common::write_file(&src.join("db/data.bin"), &random);
    let text: Vec<u8> = (0..4000)
        .flat_map(|i| {
            format!("row {i}: the quick brown fox jumps over the lazy dog\n").into_bytes()
        })
        .collect();
    common::write_file(&src.join("notes.txt"), &text);
    common::write_file(&src.join("small"), b"a small secret");
    (src, random)
}

#[test]
fn round_trip_is_exact_and_the_repository_reveals_no_plaintext() {
    for scheme in Scheme::ALL {
        round_trip_reveals_nothing(scheme);
    }
}

fn round_trip_reveals_nothing(scheme: Scheme) {
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, random) = source(tmp.path());
    let repo_dir = tmp.path().join("repo");
    let repo = encrypted_with(&repo_dir, "correct horse", scheme);
    assert!(repo.codec().is_sealed());
    assert_eq!(repo.codec().scheme(), scheme.name());
    assert_eq!(repo.config().version, 2);
    let id = snapshot(&repo, &src);

    // Opened again with the password: restore is byte-identical, verify finds nothing.
    let repo = open(&repo_dir, Some("correct horse")).expect("open with the password");
    assert_eq!(
        repo.codec().scheme(),
        scheme.name(),
        "the config names the scheme"
    );
    let out = tmp.path().join("out");
    snapkeep::restore(&repo, &id, &out, &RestoreOptions::default(), &NoProgress).expect("restore");
    for rel in ["db/data.bin", "notes.txt", "small"] {
        assert_eq!(
            fs::read(out.join(rel)).expect("restored"),
            fs::read(src.join(rel)).expect("source"),
            "{rel}"
        );
    }
    let report = common::verify_read_data(&repo);
    assert!(report.findings.is_empty(), "{:?}", report.findings);

    // What a reader of the storage sees: every byte and every name.
    let objects = stored(&repo_dir);
    let mut haystack = Vec::new();
    for (p, b) in &objects {
        haystack.extend_from_slice(p.to_string_lossy().as_bytes());
        haystack.extend_from_slice(b);
    }
    // No aligned 64-byte window of the incompressible file: any run of 127 plaintext bytes
    // in the repository would hold one.
    let windows: HashSet<&[u8]> = random.chunks_exact(64).collect();
    assert!(
        !haystack.windows(64).any(|w| windows.contains(w)),
        "a 64-byte window of the source stands in the repository"
    );
    for needle in [&b"quick brown fox"[..], b"a small secret"] {
        assert!(
            !haystack.windows(needle.len()).any(|w| w == needle),
            "plain text {:?} stands in the repository",
            String::from_utf8_lossy(needle)
        );
    }
    // No plain blake3 of a file, or of any chunk as an unkeyed chunker would cut it, raw or
    // as hex.
    let plain = Chunker::new(&common::params(16 * 1024)).expect("chunker");
    let mut ids = Vec::new();
    for rel in ["db/data.bin", "notes.txt", "small"] {
        let data = fs::read(src.join(rel)).expect("source");
        ids.push(*blake3::hash(&data).as_bytes());
        let mut at = 0;
        for n in plain.cut_all(&data) {
            ids.push(*blake3::hash(&data[at..at + n]).as_bytes());
            at += n;
        }
    }
    for id in &ids {
        let hex = hex::encode(id);
        assert!(
            !haystack.windows(32).any(|w| w == id),
            "a plain blake3 stands in the repository"
        );
        assert!(
            !haystack.windows(64).any(|w| w == hex.as_bytes()),
            "a plain blake3 stands in the repository as hex"
        );
    }
}

#[test]
fn a_wrong_or_missing_password_opens_nothing_and_writes_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, _) = source(tmp.path());
    let repo_dir = tmp.path().join("repo");
    let repo = encrypted(&repo_dir, "right");
    snapshot(&repo, &src);
    drop(repo);
    let before = stored(&repo_dir);
    match open(&repo_dir, Some("wrong")) {
        Err(Error::InvalidInput(m)) => {
            assert!(
                m.contains("no key in") && m.contains("opens with this password"),
                "{m}"
            );
        }
        other => panic!("a wrong password: {other:?}"),
    }
    match open(&repo_dir, None) {
        Err(Error::InvalidInput(m)) => assert!(m.contains("encrypted"), "{m}"),
        other => panic!("no password: {other:?}"),
    }
    assert_eq!(stored(&repo_dir), before, "a refused open wrote something");
}

#[test]
fn a_damaged_object_of_each_kind_is_refused_by_name() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, _) = source(tmp.path());
    let base = tmp.path().join("base");
    let repo = encrypted(&base, "pw");
    let id = snapshot(&repo, &src);
    drop(repo);
    let kinds: [(&str, fn(&Path) -> PathBuf); 4] = [
        ("config", |r| r.join("config")),
        ("snapshot record", |r| {
            common::files_under(&r.join("snapshots"))
                .pop()
                .expect("record")
        }),
        ("index file", |r| {
            common::index_files(r).pop().expect("index")
        }),
        ("pack", |r| common::pack_files(r).pop().expect("pack")),
    ];
    for (what, pick) in kinds {
        let r = tmp
            .path()
            .join(format!("damaged-{}", what.replace(' ', "-")));
        common::copy_dir(&base, &r);
        let victim = pick(&r);
        let mut b = fs::read(&victim).expect("read");
        let at = b.len() / 2;
        b[at] ^= 0x20;
        fs::write(&victim, b).expect("write");
        let found = match open(&r, Some("pw")) {
            Err(e) => e.to_string(),
            Ok(repo) => {
                let report = common::verify_read_data(&repo);
                let restored = snapkeep::restore(
                    &repo,
                    &id,
                    &r.join("out"),
                    &RestoreOptions::default(),
                    &NoProgress,
                );
                let mut all: Vec<String> = report
                    .findings
                    .iter()
                    .map(|f| format!("{}: {}", f.object, f.problem))
                    .collect();
                if let Err(e) = restored {
                    all.push(e.to_string());
                }
                all.join("; ")
            }
        };
        assert!(
            !found.is_empty(),
            "a flipped byte in the {what} went unnoticed"
        );
        assert!(!found.contains("panicked"), "{what}: {found}");
    }
}

#[test]
fn a_record_from_another_repository_does_not_open() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, _) = source(tmp.path());
    let a_dir = tmp.path().join("a");
    let b_dir = tmp.path().join("b");
    let a = encrypted(&a_dir, "pw");
    let b = encrypted(&b_dir, "pw");
    let ida = snapshot(&a, &src);
    let idb = snapshot(&b, &src);
    // B's record under A's record's name, and B's record added to A as it is.
    let rec_a = a_dir.join("snapshots").join(ida.hyphenated().to_string());
    let rec_b = b_dir.join("snapshots").join(idb.hyphenated().to_string());
    fs::copy(&rec_b, &rec_a).expect("swap in");
    fs::copy(
        &rec_b,
        a_dir.join("snapshots").join(idb.hyphenated().to_string()),
    )
    .expect("add");
    let a = open(&a_dir, Some("pw")).expect("open");
    for id in [ida, idb] {
        let e = a.load_snapshot(&id).expect_err("a foreign record");
        assert!(e.to_string().contains("fails authentication"), "{e}");
    }
}

#[test]
fn keys_can_be_added_used_changed_and_removed_never_the_last() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, _) = source(tmp.path());
    let dir = tmp.path().join("repo");
    let repo = encrypted(&dir, "first");
    let id = snapshot(&repo, &src);
    let backend = Arc::new(LocalBackend::new(&dir));
    let first = repo.unlocked().expect("unlocked").key_id.clone();
    let master = &repo.unlocked().expect("unlocked").master;
    let second = snapkeep::keyring::add(backend.as_ref(), master, b"second", FAST).expect("add");
    assert_eq!(
        snapkeep::keyring::list(backend.as_ref())
            .expect("list")
            .len(),
        2
    );
    // The second password opens the same repository.
    let by_second = open(&dir, Some("second")).expect("open with the second key");
    assert_eq!(by_second.unlocked().expect("unlocked").key_id, second);
    by_second.load_snapshot(&id).expect("its records read");
    // The key in use is not removed; another one is.
    let e = snapkeep::keyring::remove(backend.as_ref(), &second, &second).expect_err("in use");
    assert!(e.to_string().contains("opened the repository with"), "{e}");
    snapkeep::keyring::remove(backend.as_ref(), &first[..8], &second).expect("remove first");
    assert!(
        open(&dir, Some("first")).is_err(),
        "a removed key still opens"
    );
    // The last key is never removed.
    let e = snapkeep::keyring::remove(backend.as_ref(), &second, "another").expect_err("last");
    assert!(e.to_string().contains("last key"), "{e}");
    // A new password for the key in use: the old one stops opening, the new one opens.
    let master = &by_second.unlocked().expect("unlocked").master;
    snapkeep::keyring::passwd(backend.as_ref(), master, &second, b"third", FAST).expect("passwd");
    assert!(open(&dir, Some("second")).is_err());
    open(&dir, Some("third"))
        .expect("the new password opens")
        .load_snapshot(&id)
        .expect("records read");
}

#[test]
fn prune_repacks_ciphertext_and_what_is_kept_restores() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, _) = source(tmp.path());
    let dir = tmp.path().join("repo");
    let repo = encrypted(&dir, "pw");
    let old = snapshot(&repo, &src);
    common::write_file(&src.join("db/data.bin"), &common::random_bytes(300_000, 7));
    let kept = snapshot(&repo, &src);
    repo.forget(&[old]).expect("forget");
    let opts = snapkeep::prune::PruneOptions {
        grace: std::time::Duration::ZERO,
        max_unused: snapkeep::prune::MaxUnused::parse("0%").expect("limit"),
        ..snapkeep::prune::PruneOptions::default()
    };
    snapkeep::prune::prune(&repo, &opts).expect("prune");
    snapkeep::prune::prune(&repo, &opts).expect("second prune");
    let repo = open(&dir, Some("pw")).expect("open");
    let report = common::verify_read_data(&repo);
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    let out = tmp.path().join("out");
    snapkeep::restore(&repo, &kept, &out, &RestoreOptions::default(), &NoProgress)
        .expect("restore");
    assert_eq!(
        fs::read(out.join("db/data.bin")).expect("restored"),
        fs::read(src.join("db/data.bin")).expect("source")
    );
}

#[test]
fn a_plain_repository_stays_format_1() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, _) = source(tmp.path());
    let dir = tmp.path().join("repo");
    let repo = common::small_repo(&dir);
    assert!(!repo.codec().is_sealed());
    assert_eq!(repo.config().version, 1);
    let id = snapshot(&repo, &src);
    // A plain repository opens without a password (one given is not needed).
    let repo = open(&dir, Some("anything")).expect("open");
    repo.load_snapshot(&id).expect("record");
    assert!(
        !dir.join("keys").exists(),
        "a plain repository has no key files"
    );
}

/// A flipped byte inside one sealed data blob (located through the index) and inside one
/// sealed tree: `verify --read-data` names the snapshot and the file (or directory) that
/// depend on it; a restore fails naming the file; nothing panics.
#[test]
fn a_damaged_sealed_blob_is_a_finding_naming_snapshot_and_file() {
    use snapkeep::format::manifest::NodeKind;
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, _) = source(tmp.path());
    let base = tmp.path().join("base");
    let repo = encrypted(&base, "pw");
    let id = snapshot(&repo, &src);
    let root = repo
        .load_tree(&repo.load_snapshot(&id).expect("record").tree)
        .expect("root");
    let db = root.nodes.iter().find(|n| n.name == b"db").expect("db");
    let NodeKind::Dir { tree } = &db.kind else {
        panic!("db is a directory");
    };
    let db_tree = repo.load_tree(tree).expect("db tree");
    let NodeKind::File { chunks, .. } = &db_tree.nodes[0].kind else {
        panic!("data.bin is a file");
    };
    let data_loc = repo.index().get(&chunks[0].id).expect("located");
    let tree_loc = repo.index().get(tree).expect("located");
    drop(repo);
    for (what, loc, path) in [
        ("data blob", data_loc, "db/data.bin"),
        ("tree blob", tree_loc, "db"),
    ] {
        let dir = tmp
            .path()
            .join(format!("damaged-{}", what.replace(' ', "-")));
        common::copy_dir(&base, &dir);
        let pack = common::pack_files(&dir)
            .into_iter()
            .find(|p| p.to_string_lossy().ends_with(&loc.pack.to_string()))
            .expect("the blob's pack");
        let mut b = fs::read(&pack).expect("read");
        b[loc.offset as usize + loc.length as usize / 2] ^= 0x04;
        fs::write(&pack, b).expect("write");
        let repo = open(&dir, Some("pw")).expect("open");
        let report = common::verify_read_data(&repo);
        let hit = report.findings.iter().find(|f| {
            f.snapshot.as_deref() == Some(&id.to_string())
                && f.path.as_deref().is_some_and(|p| p.contains(path))
        });
        assert!(
            hit.is_some(),
            "{what}: no finding names snapshot {id} and {path}: {:?}",
            report.findings
        );
        let e = snapkeep::restore(
            &repo,
            &id,
            &dir.join("out"),
            &RestoreOptions::default(),
            &NoProgress,
        )
        .expect_err("a damaged blob fails the restore");
        assert!(e.to_string().contains(path), "{what}: {e}");
    }
}
