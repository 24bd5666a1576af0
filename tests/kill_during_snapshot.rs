//! The CLI snapshot killed with SIGKILL at seeded random moments until 50 kills have landed
//! while it ran: the repository always reopens and verifies clean, lists only whole snapshots,
//! and the first and the newest snapshots restore.
//!
//! Its repositories are format 1 (`--encryption none`): the protocol under test is the same
//! for both formats, and sealing in an unoptimized test build would multiply each round's time.

mod common;

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// SIGKILLs to deliver while a snapshot runs (rounds go on until then, at most `MAX_ROUNDS`).
const KILLS: usize = 50;
const MAX_ROUNDS: usize = 150;

use snapkeep::{NoProgress, Repository, RestoreOptions, VerifyOptions};

#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, its steps in order")]
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
        .env("SNAPKEEP_PASSWORD", "snapkeep-test")
        .env("SNAPKEEP_KDF", "m=64KiB,t=1,p=1")
        .args(["--quiet", "--repo"])
        .arg(&repo_dir)
        .args(["init", "--pack-size", "1MiB", "--encryption", "none"])
        .status()
        .expect("init");
    assert!(status.success());
    // The first snapshot is timed: the kills are spread over about its duration.
    let t = Instant::now();
    let first = Command::new(bin)
        .env("SNAPKEEP_PASSWORD", "snapkeep-test")
        .env("SNAPKEEP_KDF", "m=64KiB,t=1,p=1")
        .args(["--quiet", "--repo"])
        .arg(&repo_dir)
        .args(["snapshot", "--force-read"])
        .arg(&src)
        .output()
        .expect("first snapshot");
    assert!(first.status.success());
    #[expect(
        clippy::cast_possible_truncation,
        reason = "a test run lasts far less than u64::MAX milliseconds"
    )]
    let mut span_ms = (t.elapsed().as_millis() as u64).max(40);
    let first_id = String::from_utf8_lossy(&first.stdout).trim().to_owned();
    let base = fs::read(src.join("base.bin")).expect("read");

    let mut kill_seed = 0x9e37_79b9_u64;
    let mut killed = 0;
    let mut mid_write = 0;
    let mut round = 0;
    // Until 50 kills have landed, and at least one between a snapshot's packs and its record.
    while (killed < KILLS || mid_write == 0) && round < MAX_ROUNDS {
        // New content each round, so every snapshot has packs to write.
        fs::write(
            src.join("sub").join(format!("r{round}.bin")),
            noise(400_000),
        )
        .expect("write");
        let packs_before = common::pack_files(&repo_dir).len();
        let records_before = Repository::open_local_with(&repo_dir, Some(b"snapkeep-test"))
            .expect("open")
            .snapshots()
            .expect("list")
            .0
            .len();
        let mut child = Command::new(bin)
            .env("SNAPKEEP_PASSWORD", "snapkeep-test")
            .env("SNAPKEEP_KDF", "m=64KiB,t=1,p=1")
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
        let delay = kill_seed % span_ms;
        std::thread::sleep(Duration::from_millis(delay));
        if child.try_wait().expect("poll").is_none() {
            child.kill().expect("SIGKILL");
            killed += 1;
            // A staircase: a kill widens the window by a tenth, a miss narrows it by a
            // quarter, so it settles where about three kills in four land, spread over the
            // whole run of the job, on a fast machine or a slow one.
            span_ms += span_ms / 10 + 1;
        } else {
            span_ms = (span_ms * 3 / 4).max(5);
        }
        let _ = child.wait();

        let repo = Repository::open_local_with(&repo_dir, Some(b"snapkeep-test"))
            .expect("reopens after the kill");
        let (records, damaged) = repo.snapshots().expect("list");
        assert!(
            damaged.is_empty(),
            "round {round}: damaged records {damaged:?}"
        );
        assert!(records.iter().any(|r| r.id.to_string() == first_id));
        // Killed after its packs were written and before its record: the packs stay as
        // garbage for prune, and no snapshot is listed for them.
        mid_write += usize::from(
            common::pack_files(&repo_dir).len() > packs_before && records.len() == records_before,
        );
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
        round += 1;
    }
    common::report(&format!(
        "SIGKILL delivered mid-snapshot in {killed} of {round} rounds, {mid_write} of them \
         after the snapshot had written packs but before its record"
    ));
    assert!(
        killed >= KILLS,
        "only {killed} kills landed mid-snapshot in {round} rounds"
    );
    assert!(
        mid_write >= 1,
        "no kill landed between a snapshot's packs and its record: the test did not test much"
    );
}
