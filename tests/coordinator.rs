//! The job API: start → handle at once; status with monotonic progress; conflict; failures
//! carry their error; cancel commits nothing; the checkpoint runs before capture; tokio use.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use snapkeep::job::Checkpoint;
use snapkeep::{
    BackupOptions, Error, InitOptions, JobKind, JobOutcome, JobState, Repository,
    SnapshotCoordinator,
};

fn tree(dir: &Path, mib: usize) {
    fs::create_dir_all(dir.join("sst")).expect("mkdir");
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for f in 0..mib {
        let mut data = vec![0u8; 1 << 20];
        for c in data.chunks_mut(8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            c.copy_from_slice(&seed.to_le_bytes());
        }
        fs::write(dir.join("sst").join(format!("{f:03}.sst")), data).expect("write");
    }
}

fn ok_checkpoint() -> Checkpoint<String> {
    Arc::new(|| Ok(()))
}

fn setup(mib: usize) -> (tempfile::TempDir, Arc<Repository>, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("db");
    tree(&src, mib);
    let repo =
        Repository::init_local(&tmp.path().join("repo"), &InitOptions::default()).expect("init");
    (tmp, Arc::new(repo), src)
}

#[test]
fn status_runs_to_completed_with_monotonic_percent() {
    let (_tmp, repo, src) = setup(48);
    let coord = SnapshotCoordinator::new(Arc::clone(&repo), &src, ok_checkpoint());
    let h = coord
        .start_snapshot(BackupOptions::default())
        .expect("start");
    assert_eq!(h.kind, JobKind::Snapshot);
    let mut seen = Vec::new();
    loop {
        let st = coord.status(&h).expect("status");
        seen.push(st.percent().expect("not failed"));
        if st.is_finished() {
            let JobState::Completed {
                snapshot_id,
                outcome: JobOutcome::Snapshot { summary, .. },
            } = st
            else {
                panic!("job did not complete: {st:?}");
            };
            assert_eq!(summary.files, 48);
            assert_eq!(coord.latest_snapshot().expect("latest"), snapshot_id);
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(seen.len() > 2, "the job was never seen running: {seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "percent went down: {seen:?}"
    );
    assert!((seen.last().copied().unwrap_or_default() - 100.0).abs() < f64::EPSILON);
    assert!(seen[..seen.len() - 1].iter().all(|&p| p < 100.0));
    assert_eq!(coord.history().len(), 1);
    // An unknown handle is NotFound.
    let bogus = snapkeep::JobHandle {
        id: 999,
        kind: JobKind::Snapshot,
    };
    assert!(matches!(coord.status(&bogus), Err(Error::NotFound(_))));
}

#[test]
fn a_second_start_while_one_runs_is_a_conflict() {
    let (_tmp, repo, src) = setup(4);
    let gate = Arc::new(AtomicBool::new(false));
    let g = Arc::clone(&gate);
    let slow: Checkpoint<String> = Arc::new(move || {
        while !g.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    });
    let coord = SnapshotCoordinator::new(repo, &src, slow);
    let h = coord
        .start_snapshot(BackupOptions::default())
        .expect("start");
    let second = coord.start_snapshot(BackupOptions::default());
    assert!(matches!(second, Err(Error::Conflict(_))), "{second:?}");
    gate.store(true, Ordering::Relaxed);
    assert!(matches!(
        coord.wait(&h).expect("wait"),
        JobState::Completed { .. }
    ));
    // Once it finished, a new start is accepted.
    let h2 = coord
        .start_snapshot(BackupOptions::default())
        .expect("restart");
    assert!(matches!(
        coord.wait(&h2).expect("wait"),
        JobState::Completed { .. }
    ));
}

#[test]
fn failures_carry_the_error() {
    let (tmp, repo, src) = setup(1);
    let failing: Checkpoint<String> = Arc::new(|| Err("disk full while checkpointing".into()));
    let coord = SnapshotCoordinator::new(Arc::clone(&repo), &src, failing);
    let h = coord
        .start_snapshot(BackupOptions::default())
        .expect("start");
    match coord.wait(&h).expect("wait") {
        JobState::Failed { error, cancelled } => {
            assert!(error.contains("disk full while checkpointing"), "{error}");
            assert!(!cancelled);
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    let missing = SnapshotCoordinator::new(repo, tmp.path().join("nope"), ok_checkpoint());
    let h = missing
        .start_snapshot(BackupOptions::default())
        .expect("start");
    match missing.wait(&h).expect("wait") {
        JobState::Failed { error, .. } => assert!(error.contains("nope"), "{error}"),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn cancel_commits_nothing() {
    let (_tmp, repo, src) = setup(8);
    let gate = Arc::new(AtomicBool::new(false));
    let g = Arc::clone(&gate);
    let slow: Checkpoint<String> = Arc::new(move || {
        while !g.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    });
    let coord = SnapshotCoordinator::new(Arc::clone(&repo), &src, slow);
    let h = coord
        .start_snapshot(BackupOptions::default())
        .expect("start");
    coord.cancel(&h).expect("cancel");
    gate.store(true, Ordering::Relaxed);
    match coord.wait(&h).expect("wait") {
        JobState::Failed { cancelled, .. } => assert!(cancelled),
        other => panic!("expected cancelled, got {other:?}"),
    }
    assert!(
        repo.snapshot_ids().expect("ids").is_empty(),
        "a cancelled job committed"
    );
    assert!(repo.backend().list("index/").expect("list").is_empty());
}

#[test]
fn the_checkpoint_runs_before_capture() {
    let (_tmp, repo, src) = setup(1);
    let marker_dir = src.clone();
    let cp: Checkpoint<std::io::Error> = Arc::new(move || {
        fs::write(
            marker_dir.join("checkpoint.done"),
            b"written by the checkpoint",
        )
    });
    let coord = SnapshotCoordinator::new(Arc::clone(&repo), &src, cp);
    let h = coord
        .start_snapshot(BackupOptions::default())
        .expect("start");
    let JobState::Completed {
        snapshot_id: Some(id),
        ..
    } = coord.wait(&h).expect("wait")
    else {
        panic!("snapshot failed");
    };
    let out = src.with_file_name("restored");
    let r = coord
        .start_restore(id, &out, snapkeep::RestoreOptions::default())
        .expect("restore");
    assert!(matches!(
        coord.wait(&r).expect("wait"),
        JobState::Completed { .. }
    ));
    assert_eq!(
        fs::read(out.join("checkpoint.done")).expect("marker captured"),
        b"written by the checkpoint"
    );
    let v = coord
        .start_verify(snapkeep::VerifyOptions {
            read_data: true,
            ..Default::default()
        })
        .expect("verify");
    match coord.wait(&v).expect("wait") {
        JobState::Completed {
            outcome: JobOutcome::Verify(report),
            ..
        } => assert!(report.ok(), "{:?}", report.findings),
        other => panic!("verify failed: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usable_from_tokio_through_spawn_blocking() {
    let (_tmp, repo, src) = setup(2);
    let coord = Arc::new(SnapshotCoordinator::new(repo, &src, ok_checkpoint()));
    let c = Arc::clone(&coord);
    let state = tokio::task::spawn_blocking(move || {
        let h = c.start_snapshot(BackupOptions::default())?;
        c.wait(&h)
    })
    .await
    .expect("join")
    .expect("job");
    assert!(matches!(state, JobState::Completed { .. }));
    // status() is cheap enough to call directly from async code.
    assert_eq!(coord.history().len(), 1);
}

#[test]
fn a_panicking_checkpoint_fails_the_job_and_frees_the_slot() {
    let (_tmp, repo, src) = setup(1);
    let bad: Checkpoint<String> = Arc::new(|| panic!("checkpoint exploded"));
    let coord = SnapshotCoordinator::new(Arc::clone(&repo), &src, bad);
    let h = coord
        .start_snapshot(BackupOptions::default())
        .expect("start");
    match coord.wait(&h).expect("wait") {
        JobState::Failed { error, cancelled } => {
            assert!(error.contains("checkpoint exploded"), "{error}");
            assert!(!cancelled);
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    // The next start is not a conflict with the dead job.
    let h2 = coord
        .start_snapshot(BackupOptions::default())
        .expect("not a conflict");
    assert!(matches!(
        coord.wait(&h2).expect("wait"),
        JobState::Failed { .. }
    ));
    assert!(repo.snapshot_ids().expect("ids").is_empty());
}
