//! The CLI snapshot killed with SIGKILL at seeded random moments (50 times): the repository
//! always reopens and verifies clean, lists only whole snapshots, and the first snapshot
//! restores byte-identical.

mod common;

use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

use snapkeep::{NoProgress, Repository, RestoreOptions, VerifyOptions};

#[test]
fn sigkill_at_random_moments_leaves_a_clean_repository() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("sub")).expect("mkdir");
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut noise = |n: usize| -> Vec<u8> { (0..n).map(|_| (next() & 0xff) as u8).collect() };
    fs::write(src.join("base.bin"), noise(200_000)).expect("write");
    let repo_dir = tmp.path().join("repo");
    let bin = env!("CARGO_BIN_EXE_snapkeep");
    let status = Command::new(bin)
        .args(["--quiet", "--repo"])
        .arg(&repo_dir)
        .args(["init", "--pack-size", "1MiB"])
        .status()
        .expect("init");
    assert!(status.success());
    let first = Command::new(bin)
        .args(["--quiet", "--repo"])
        .arg(&repo_dir)
        .arg("snapshot")
        .arg(&src)
        .output()
        .expect("first snapshot");
    assert!(first.status.success());
    let first_id = String::from_utf8_lossy(&first.stdout).trim().to_owned();
    let base = fs::read(src.join("base.bin")).expect("read");

    let mut kill_seed = 0x9e37_79b9_u64;
    let mut killed = 0;
    for round in 0..50 {
        // New content each round, so every snapshot has packs to write.
        fs::write(
            src.join("sub").join(format!("r{round}.bin")),
            noise(400_000),
        )
        .expect("write");
        let mut child = Command::new(bin)
            .args(["--quiet", "--repo"])
            .arg(&repo_dir)
            .args(["snapshot", "--force-read"])
            .arg(&src)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        kill_seed ^= kill_seed << 13;
        kill_seed ^= kill_seed >> 7;
        kill_seed ^= kill_seed << 17;
        std::thread::sleep(Duration::from_millis(kill_seed % 120));
        if child.try_wait().expect("poll").is_none() {
            child.kill().expect("SIGKILL");
            killed += 1;
        }
        let _ = child.wait();

        let repo = Repository::open_local(&repo_dir).expect("reopens after the kill");
        let (records, damaged) = repo.snapshots().expect("list");
        assert!(
            damaged.is_empty(),
            "round {round}: damaged records {damaged:?}"
        );
        assert!(records.iter().any(|r| r.id.to_string() == first_id));
        let report = snapkeep::verify(
            &repo,
            &VerifyOptions {
                read_data: round % 5 == 0,
                ..VerifyOptions::default()
            },
            &NoProgress,
        )
        .expect("verify runs");
        assert!(report.ok(), "round {round}: {:?}", report.findings);
        if round % 10 == 9 {
            let out = tmp.path().join(format!("out{round}"));
            let id = repo.resolve(&first_id).expect("resolve");
            snapkeep::restore(&repo, &id, &out, &RestoreOptions::default(), &NoProgress)
                .expect("the first snapshot restores");
            assert_eq!(fs::read(out.join("base.bin")).expect("read"), base);
            let latest = repo.resolve("latest").expect("latest");
            snapkeep::restore(
                &repo,
                &latest,
                &out.with_extension("latest"),
                &RestoreOptions::default(),
                &NoProgress,
            )
            .expect("the newest whole snapshot restores");
        }
    }
    common::report(&format!(
        "SIGKILL delivered mid-snapshot in {killed} of 50 rounds"
    ));
    assert!(
        killed >= 10,
        "only {killed} kills landed mid-snapshot; the test did not test much"
    );
}
