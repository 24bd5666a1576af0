//! The CLI `prune --grace 0` and `forget --keep-last 1 --prune --grace 0`, killed with SIGKILL
//! at seeded moments spread over the duration of a prune measured first, until 50 kills have
//! landed: `verify --read-data` then passes, every kept snapshot restores byte-identical, and
//! the next prune removes the killed one's `locks/prune` as stale (saying so), completes, and
//! leaves a repository that still verifies clean.
//!
//! Its repositories are format 1 (`--encryption none`): the protocol under test is the same
//! for both formats, and sealing in an unoptimized test build would multiply each round's time.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::prune::same_tree;
use snapkeep::{NoProgress, Repository, RestoreOptions, SnapshotId};

/// SIGKILLs to deliver (rounds go on until then, at most `MAX_ROUNDS`).
const KILLS: usize = 50;
const MAX_ROUNDS: usize = 150;
const FILES: u64 = 5;
const FILE_LEN: usize = 1 << 20;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_snapkeep"));
    c.env("SNAPKEEP_PASSWORD", "snapkeep-test")
        .env("SNAPKEEP_KDF", "m=64KiB,t=1,p=1");
    c.stdin(Stdio::null());
    c
}

fn run(repo: &Path, args: &[&str]) -> Output {
    let out = bin()
        .arg("--repo")
        .arg(repo)
        .args(args)
        .output()
        .expect("run snapkeep");
    common::assert_no_panic(&out, &format!("{args:?}"));
    out
}

/// Rewrites two 128 KiB regions of every file: after the older snapshots are forgotten,
/// every data pack is partly used (repacked) and the old tree packs wholly unused (deleted).
fn mutate(src: &Path, rng: &mut common::XorShift) {
    for k in 0..FILES {
        let p = src.join(format!("d{}/f{k}.bin", k % 2));
        let mut data = fs::read(&p).expect("read");
        for _ in 0..2 {
            #[expect(
                clippy::cast_possible_truncation,
                reason = "a value below a usize length or bound fits usize"
            )]
            let at = (rng.next_u64() % (FILE_LEN as u64 - (128 << 10))) as usize;
            data[at..at + (128 << 10)].copy_from_slice(&common::random_bytes(
                128 << 10,
                common::prune::seed(rng.next_u64()),
            ));
        }
        fs::write(&p, &data).expect("write");
    }
}

fn snapshot(repo: &Path, src: &Path) -> SnapshotId {
    let out = bin()
        .args(["--quiet", "--repo"])
        .arg(repo)
        .arg("snapshot")
        .arg(src)
        .output()
        .expect("snapshot");
    common::assert_success(&out, "snapshot failed");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("snapshot prints its id")
}

/// The killed command of a round: a plain prune, or forget + prune.
fn gc_args(round: usize) -> Vec<&'static str> {
    let limit = if round % 4 < 2 { "0%" } else { "5%" };
    if round.is_multiple_of(2) {
        vec!["prune", "--grace", "0", "--max-unused", limit]
    } else {
        vec![
            "forget",
            "--keep-last",
            "1",
            "--prune",
            "--grace",
            "0",
            "--max-unused",
            limit,
        ]
    }
}

#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, its steps in order")]
fn sigkill_during_prune_leaves_a_clean_repository() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    let repo_dir = tmp.path().join("repo");
    let scratch = tmp.path().join("scratch");
    let mut rng = common::XorShift::new(0x0bad_cafe);
    for k in 0..FILES {
        common::write_file(
            &src.join(format!("d{}/f{k}.bin", k % 2)),
            &common::random_bytes(FILE_LEN, common::prune::seed(rng.next_u64())),
        );
    }
    let out = run(
        &repo_dir,
        &[
            "--quiet",
            "init",
            "--encryption",
            "none",
            "--pack-size",
            "1MiB",
            "--chunk-avg",
            "16KiB",
        ],
    );
    assert!(out.status.success());
    let mut states: BTreeMap<SnapshotId, PathBuf> = BTreeMap::new();
    let take = |states: &mut BTreeMap<SnapshotId, PathBuf>, n: usize| {
        let id = snapshot(&repo_dir, &src);
        let state = tmp.path().join(format!("state-{n}"));
        common::copy_dir(&src, &state);
        states.insert(id, state);
    };
    take(&mut states, 0);

    // Calibration: one prune that is not killed, to spread the kills over its duration.
    mutate(&src, &mut rng);
    take(&mut states, 1);
    run(&repo_dir, &["forget", "--keep-last", "1"]);
    let t = Instant::now();
    let out = run(
        &repo_dir,
        &["--json", "prune", "--grace", "0", "--max-unused", "0%"],
    );
    let span = t.elapsed();
    assert!(out.status.success());
    let v = common::json_of(&out);
    eprintln!("calibration prune: {span:?}: {v}");
    assert!(
        v["repacked_packs"].as_u64() > Some(0) && v["deleted_packs"].as_u64() > Some(0),
        "the workload does not make prune repack and delete: {v}"
    );
    #[expect(
        clippy::cast_possible_truncation,
        reason = "a test run lasts far less than u64::MAX milliseconds"
    )]
    let mut span_ms = (span.as_millis() as u64).max(50);

    let mut kill_seed = common::XorShift::new(0x9e37_79b9);
    let mut killed = 0;
    let mut mid_prune = 0;
    let mut mid_act = 0;
    let mut repacked_after = 0;
    let mut round = 0;
    while killed < KILLS && round < MAX_ROUNDS {
        mutate(&src, &mut rng);
        take(&mut states, round + 2);
        if round.is_multiple_of(2) {
            // Plain prune rounds: forget first (not killed), so there is work to do.
            let keep = if round.is_multiple_of(4) { "1" } else { "2" };
            assert!(
                run(&repo_dir, &["forget", "--keep-last", keep])
                    .status
                    .success()
            );
        }
        let packs_before = common::pack_files(&repo_dir);
        let mut child = bin()
            .args(["--quiet", "--repo"])
            .arg(&repo_dir)
            .args(gc_args(round))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let delay = kill_seed.next_u64() % span_ms;
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
        let exit = child.wait().expect("wait");
        let left_lock = repo_dir.join("locks/prune").exists();
        mid_prune += usize::from(left_lock);
        // Killed while acting: some packs written or deleted, and the work left unfinished.
        mid_act += usize::from(left_lock && common::pack_files(&repo_dir) != packs_before);
        assert!(
            exit.code() != Some(101),
            "round {round}: the prune panicked"
        );

        // Verify with every blob read.
        let out = run(&repo_dir, &["--quiet", "verify", "--read-data"]);
        assert!(
            out.status.success(),
            "round {round} (lock left: {left_lock}): verify --read-data exited {:?}: {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Every listed snapshot is one we took and restores byte-identical.
        let repo = Repository::open_local_with(&repo_dir, Some(b"snapkeep-test")).expect("reopen");
        let (records, damaged) = repo.snapshots().expect("list");
        assert!(damaged.is_empty(), "round {round}: {damaged:?}");
        let newest = *states.keys().next_back().expect("a snapshot");
        assert!(
            records.iter().any(|r| r.id == newest),
            "round {round}: the newest snapshot is gone"
        );
        for r in &records {
            let state = states
                .get(&r.id)
                .unwrap_or_else(|| panic!("round {round}: unknown snapshot {}", r.id));
            let out = scratch.join(format!("r{round}-{}", r.id));
            snapkeep::restore(&repo, &r.id, &out, &RestoreOptions::default(), &NoProgress)
                .unwrap_or_else(|e| panic!("round {round}: restore {}: {e}", r.id));
            if let Err(d) = same_tree(state, &out) {
                panic!("round {round}: snapshot {} restored differently: {d}", r.id);
            }
            fs::remove_dir_all(&out).expect("cleanup");
        }
        // Forgotten snapshots stay forgotten: drop their states.
        states.retain(|id, state| {
            let keep = records.iter().any(|r| r.id == *id);
            if !keep {
                let _ = fs::remove_dir_all(state);
            }
            keep
        });
        drop(repo);

        // The next prune removes the dead prune's lock, saying so, and completes.
        let out = run(
            &repo_dir,
            &["--json", "prune", "--grace", "0", "--max-unused", "0%"],
        );
        common::assert_success(&out, &format!("round {round}: the next prune failed"));
        let v = common::json_of(&out);
        let notes: Vec<&str> = v["notes"]
            .as_array()
            .expect("notes")
            .iter()
            .filter_map(|n| n.as_str())
            .collect();
        let said_so = notes.iter().any(|n| {
            n.contains("removed stale lock locks/prune") && n.contains("on this host is gone")
        });
        assert_eq!(
            said_so, left_lock,
            "round {round}: lock left {left_lock}, notes {notes:?}"
        );
        assert_eq!(
            v["waiting_packs"].as_u64(),
            Some(0),
            "round {round}: nothing runs, yet packs wait: {v}"
        );
        assert!(
            !repo_dir.join("locks/prune").exists(),
            "round {round}: lock left"
        );
        repacked_after += usize::from(v["repacked_packs"].as_u64() > Some(0));
        let out = run(&repo_dir, &["--quiet", "verify"]);
        assert!(
            out.status.success(),
            "round {round}: verify after the next prune: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        round += 1;
    }
    // The end state reads back whole.
    let out = run(&repo_dir, &["--quiet", "verify", "--read-data"]);
    assert!(out.status.success(), "final verify --read-data");
    common::report(&format!(
        "SIGKILL delivered in {killed} of {round} rounds, {mid_prune} of them while the prune \
         held locks/prune, {mid_act} of those after it had written or deleted packs; \
         {repacked_after} next prunes had repacking left to do; {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    assert!(killed >= KILLS, "only {killed} kills in {round} rounds");
    assert!(
        mid_prune >= 10,
        "only {mid_prune} kills landed mid-prune: the test did not test much"
    );
    assert!(
        mid_act >= 3,
        "only {mid_act} kills landed after the prune began to write or delete packs"
    );
}
