//! A snapshot whose Nth backend write fails (EIO, ENOSPC, or a pack torn halfway), for every N:
//! the job fails instead of carrying on, the repository reopens and verifies clean, no partial
//! snapshot is listed, and the earlier snapshot still restores byte-identical.

mod common;

use std::fs;
use std::path::Path;
use std::sync::Arc;

use snapkeep::backend::{Backend, Fault, FaultyBackend, LocalBackend};
use snapkeep::{BackupOptions, InitOptions, NoProgress, Repository, RestoreOptions};

fn same_tree(a: &Path, b: &Path) {
    for e in fs::read_dir(a).expect("list").flatten() {
        let other = b.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            same_tree(&e.path(), &other);
        } else {
            assert_eq!(
                fs::read(e.path()).expect("read"),
                fs::read(&other).expect("read")
            );
        }
    }
    assert_eq!(
        fs::read_dir(a).expect("list").count(),
        fs::read_dir(b).expect("list").count()
    );
}

#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, its steps in order")]
fn every_failing_write_leaves_a_clean_repository() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("d")).expect("mkdir");
    let mut seed = 7u64;
    let mut noise = |n: usize| {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed & 0xff) as u8
            })
            .collect::<Vec<u8>>()
    };
    fs::write(src.join("a.bin"), noise(300_000)).expect("write");
    fs::write(src.join("d/b.txt"), b"first version").expect("write");
    let base_repo = tmp.path().join("base");
    let opts = InitOptions {
        pack_size: 1 << 20,
        ..InitOptions::default()
    };
    let repo = Repository::init_local(&base_repo, &opts).expect("init");
    let first = snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress)
        .expect("first snapshot");
    let first_copy = tmp.path().join("first-src");
    common::copy_dir(&src, &first_copy);

    // The second snapshot has new data spread over several packs.
    for i in 0..4 {
        fs::write(src.join(format!("new{i}.bin")), noise(700_000)).expect("write");
    }
    fs::write(src.join("d/b.txt"), b"second version").expect("write");

    let mut tried = 0;
    let mut failed = 0;
    for fault in [Fault::Fail, Fault::NoSpace, Fault::Tear] {
        for n in 0.. {
            let dir = tmp.path().join(format!("run-{fault:?}-{n}"));
            common::copy_dir(&base_repo, &dir);
            let faulty = Arc::new(FaultyBackend::new(
                Arc::new(LocalBackend::new(&dir)),
                n,
                fault,
            ));
            let backend: Arc<dyn Backend> = faulty.clone();
            let repo = Repository::open(backend).expect("open through the faulty backend");
            let result = snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress);
            tried += 1;
            if !faulty.fired() {
                result.expect("no fault, so the snapshot succeeds");
                break;
            }
            failed += u32::from(result.is_err());

            // Reopen without faults: clean, nothing partial listed, the first snapshot intact.
            let repo = Repository::open_local(&dir).expect("reopen");
            let (records, damaged) = repo.snapshots().expect("list");
            assert!(
                damaged.is_empty(),
                "{fault:?} at {n}: damaged records {damaged:?}"
            );
            let committed = records.len() == 2;
            assert!(
                records.len() == 1 || (committed && result.is_ok()),
                "{fault:?} at {n}: {} snapshots listed after a failed snapshot",
                records.len()
            );
            let report = common::verify_read_data(&repo);
            assert!(report.ok(), "{fault:?} at {n}: {:?}", report.findings);
            let out = tmp.path().join(format!("out-{fault:?}-{n}"));
            snapkeep::restore(
                &repo,
                &first.record.id,
                &out,
                &RestoreOptions::default(),
                &NoProgress,
            )
            .expect("the first snapshot restores");
            same_tree(&first_copy, &out);
            // And the repository still takes snapshots.
            snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress)
                .expect("a later snapshot succeeds");
            fs::remove_dir_all(&dir).expect("cleanup");
            fs::remove_dir_all(&out).expect("cleanup");
        }
    }
    common::report(&format!(
        "crash points tried: {tried}, snapshots that failed: {failed}"
    ));
    assert!(
        tried > 10,
        "only {tried} runs: the snapshot made too few writes to test"
    );
    assert!(failed > 5, "only {failed} failed runs");
}
