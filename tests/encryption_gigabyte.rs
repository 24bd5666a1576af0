//! Issue #15 at full size: the 1 GiB generated dataset (`scripts/gen-dataset.py`, the one the
//! benchmarks use) round-trips byte for byte through an encrypted repository on the local disk
//! and on S3 (s3s-fs, when `.ci/run` configured it), and the local repository's bytes and
//! object names hold no plain blake3 of any source file (raw or hex) and none of the 64-byte
//! windows sampled every 64 KiB from every source file (the small exhaustive form of this
//! check is in `encryption_at_rest.rs`). The dataset is generated once into `target/tmp` and
//! kept for later runs.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use snapkeep::backend::Backend;
use snapkeep::crypto::{KdfParams, Scheme};
use snapkeep::{BackupOptions, Encryption, InitOptions, NoProgress, Repository, RestoreOptions};
use zeroize::Zeroizing;

const PASSWORD: &str = "a gigabyte of secrets";

fn options() -> InitOptions {
    InitOptions {
        encryption: Encryption::Password {
            password: Zeroizing::new(PASSWORD.as_bytes().to_vec()),
            kdf: KdfParams {
                m_kib: 64,
                t: 1,
                p: 1,
            },
            scheme: Scheme::DEFAULT,
        },
        ..InitOptions::default()
    }
}

/// The generated dataset, made once (python3 runs the repository's generator).
fn dataset() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gen-dataset-1024");
    let done = dir.join(".complete");
    if !done.exists() {
        let _ = fs::remove_dir_all(&dir);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gen-dataset.py");
        let out = std::process::Command::new("python3")
            .arg(&script)
            .arg(&dir)
            .arg("1024")
            .output()
            .expect("python3 runs scripts/gen-dataset.py (.ci/run installs python3)");
        assert!(
            out.status.success(),
            "gen-dataset.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        fs::write(&done, b"").expect("mark the dataset complete");
    }
    dir
}

/// Every source file's path below `dir` and its bytes' blake3.
fn files(dir: &Path) -> BTreeMap<PathBuf, [u8; 32]> {
    common::files_under(dir)
        .into_iter()
        .filter(|p| p.file_name() != Some(".complete".as_ref()))
        .map(|p| {
            let hash = *blake3::hash(&fs::read(&p).expect("read a source file")).as_bytes();
            (p.strip_prefix(dir).expect("below").to_path_buf(), hash)
        })
        .collect()
}

/// Snapshot, restore into a fresh directory, and compare every file with the source's.
fn round_trip(repo: &Repository, src: &Path, expect: &BTreeMap<PathBuf, [u8; 32]>, out: &Path) {
    let outcome =
        snapkeep::snapshot(repo, src, &BackupOptions::default(), &NoProgress).expect("snapshot");
    snapkeep::restore(
        repo,
        &outcome.record.id,
        out,
        &RestoreOptions::default(),
        &NoProgress,
    )
    .expect("restore");
    let restored = files(out);
    assert_eq!(restored.len(), expect.len(), "the same files");
    for (rel, hash) in expect {
        assert_eq!(restored.get(rel), Some(hash), "{} differs", rel.display());
    }
}

#[test]
fn the_generated_gigabyte_round_trips_and_leaves_no_plaintext() {
    let src = dataset();
    let expect = files(&src);
    assert!(expect.len() > 2000, "{} files", expect.len());

    let tmp = tempfile::tempdir().expect("tmp");
    let local = tmp.path().join("repo");
    let repo = Repository::init_local(&local, &options()).expect("init");
    round_trip(&repo, &src, &expect, &tmp.path().join("out-local"));
    drop(repo);
    let _ = fs::remove_dir_all(tmp.path().join("out-local"));

    // What a reader of the local repository sees: every byte and every name.
    let mut needles: Vec<Vec<u8>> = Vec::new();
    for hash in expect.values() {
        needles.push(hash.to_vec());
        needles.push(hex::encode(hash).into_bytes());
    }
    for rel in expect.keys() {
        let data = fs::read(src.join(rel)).expect("read");
        for w in data.chunks_exact(64).step_by(1024) {
            // Low-entropy windows (runs of one byte) are not evidence of anything.
            let mut seen = [false; 256];
            for &b in w {
                seen[usize::from(b)] = true;
            }
            if seen.iter().filter(|&&s| s).count() >= 16 {
                needles.push(w.to_vec());
            }
        }
    }
    let finder = aho_corasick::AhoCorasick::new(&needles).expect("the needle automaton");
    for p in common::files_under(&local) {
        let name = p.to_string_lossy().into_owned();
        assert!(!finder.is_match(&name), "a plain id in the name {name}");
        let bytes = fs::read(&p).expect("read a stored object");
        if let Some(m) = finder.find(&bytes[..]) {
            panic!(
                "{} holds plaintext (needle {} of {}) at byte {}",
                p.display(),
                m.pattern().as_usize(),
                needles.len(),
                m.start()
            );
        }
    }

    // The same through S3.
    let Some(server) = common::s3::S3Server::from_env("the_generated_gigabyte_round_trips") else {
        return;
    };
    let backend: Arc<dyn Backend> = Arc::new(server.backend(&server.fresh_url("gigabyte")));
    let repo = Repository::init(Arc::clone(&backend), &options()).expect("init on S3");
    drop(repo);
    let repo = Repository::open_with(backend, Some(PASSWORD.as_bytes())).expect("open on S3");
    assert!(repo.codec().is_sealed());
    round_trip(&repo, &src, &expect, &tmp.path().join("out-s3"));
}
