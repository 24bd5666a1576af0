//! The two-phase collection against a snapshot that runs across a prune, made deterministic
//! by pausing the snapshot after it loaded its index view (its `Phase::Snapshot` report).

mod common;

use std::fs;
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use snapkeep::prune::{MaxUnused, PruneOptions, PruneReport};
use snapkeep::{BackupOptions, NoProgress, Phase, Progress, Repository, RestoreOptions};

/// Stops the snapshot at its main phase until the test lets it go.
struct Pause {
    reached: Mutex<Sender<()>>,
    go: Mutex<Receiver<()>>,
}

impl Progress for Pause {
    fn phase(&self, phase: Phase, _: u64, _: u64) {
        if phase == Phase::Snapshot {
            let _ = self.reached.lock().expect("lock").send(());
            let _ = self.go.lock().expect("lock").recv();
        }
    }
}

fn setup(dir: &Path) -> (Repository, std::path::PathBuf) {
    let src = dir.join("src");
    fs::create_dir(&src).expect("mkdir");
    fs::write(src.join("a.bin"), common::random_bytes(600 * 1024, 11)).expect("write");
    fs::write(src.join("b.txt"), b"small file").expect("write");
    let repo = common::small_packs_repo(&dir.join("repo"));
    (repo, src)
}

fn prune0(repo: &Repository) -> PruneReport {
    snapkeep::prune::prune(
        repo,
        &PruneOptions {
            grace: Duration::ZERO,
            max_unused: MaxUnused::Percent(0.0),
            ..PruneOptions::default()
        },
    )
    .expect("prune")
}

fn verify_clean(repo: &Repository) {
    let r = common::verify_read_data(repo);
    assert!(r.ok(), "{:?}", r.findings);
}

fn restores_as(repo: &Repository, id: &snapkeep::SnapshotId, src: &Path, target: &Path) {
    snapkeep::restore(repo, id, target, &RestoreOptions::default(), &NoProgress).expect("restore");
    for name in ["a.bin", "b.txt"] {
        assert_eq!(
            fs::read(target.join(name)).expect("restored"),
            fs::read(src.join(name)).expect("source"),
            "{name}"
        );
    }
}

/// Starts a snapshot on a thread and returns once it has loaded its index view.
fn paused_snapshot(
    repo: &Arc<Repository>,
    src: &Path,
) -> (
    Sender<()>,
    std::thread::JoinHandle<snapkeep::Result<snapkeep::BackupOutcome>>,
) {
    let (reached_tx, reached_rx) = channel();
    let (go_tx, go_rx) = channel();
    let pause = Pause {
        reached: Mutex::new(reached_tx),
        go: Mutex::new(go_rx),
    };
    let r = Arc::clone(repo);
    let s = src.to_path_buf();
    let h =
        std::thread::spawn(move || snapkeep::snapshot(&r, &s, &BackupOptions::default(), &pause));
    reached_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("snapshot reached its main phase");
    (go_tx, h)
}

#[test]
fn a_snapshot_that_reuses_a_marked_pack_rescues_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (repo, src) = setup(tmp.path());
    let repo = Arc::new(repo);
    let repo_dir = tmp.path().join("repo");
    let s1 = snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress)
        .expect("s1")
        .record;
    let packs_before = common::pack_files(&repo_dir);

    // s2 loads a view holding s1's packs, then waits; s1 is forgotten and a prune marks them.
    let (go, h) = paused_snapshot(&repo, &src);
    repo.forget(&[s1.id]).expect("forget");
    let r = prune0(&repo);
    assert_eq!(r.reachable_blobs, 0, "{r:?}");
    assert_eq!(r.marked_packs, packs_before.len() as u64, "{r:?}");
    assert_eq!(r.deleted_packs, 0, "s2's lock must hold the packs: {r:?}");
    assert_eq!(r.waiting_packs, packs_before.len() as u64, "{r:?}");
    assert_eq!(common::pack_files(&repo_dir), packs_before);

    go.send(()).expect("release");
    let s2 = h.join().expect("thread").expect("s2 completes").record;
    assert_eq!(
        s2.summary.new_chunks, 0,
        "s2 reused s1's chunks from its view"
    );
    // Restorable at once, before any further prune: s2 indexed what it reused.
    restores_as(&repo, &s2.id, &src, &tmp.path().join("r1"));
    verify_clean(&repo);

    // The next prune sees an index naming the marked packs again: unmarked and kept.
    let r = prune0(&repo);
    assert_eq!(r.deleted_packs, 0, "{r:?}");
    assert!(r.unmarked_packs > 0, "{r:?}");
    restores_as(&repo, &s2.id, &src, &tmp.path().join("r2"));
    verify_clean(&repo);

    // With nothing left, everything goes.
    repo.forget(&[s2.id]).expect("forget");
    let r = prune0(&repo);
    assert_eq!(r.waiting_packs, 0, "{r:?}");
    assert!(common::pack_files(&repo_dir).is_empty());
    assert!(common::index_files(&repo_dir).is_empty());
}

#[test]
fn a_snapshot_whose_lock_was_removed_commits_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (repo, src) = setup(tmp.path());
    let repo = Arc::new(repo);
    let s1 = snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress)
        .expect("s1")
        .record;
    let (go, h) = paused_snapshot(&repo, &src);
    repo.forget(&[s1.id]).expect("forget");
    let r = prune0(&repo);
    assert_eq!(r.deleted_packs, 0, "{r:?}");
    // An operator removes every lock (unlock --remove-all): the next prune deletes the packs
    // the paused snapshot relies on.
    let (notes, _) =
        snapkeep::lock::remove_stale(repo.backend().as_ref(), snapkeep::lock::STALE_AFTER, true)
            .expect("unlock");
    assert_eq!(notes.len(), 1, "{notes:?}");
    let r = prune0(&repo);
    assert!(r.deleted_packs > 0, "{r:?}");
    go.send(()).expect("release");
    let e = h.join().expect("thread").expect_err("s2 must not commit");
    assert!(
        matches!(e, snapkeep::Error::Locked(_) | snapkeep::Error::NotFound(_)),
        "{e}"
    );
    assert!(repo.snapshot_ids().expect("ids").is_empty());
    verify_clean(&repo);
}

#[test]
fn grace_keeps_marked_packs_and_new_snapshots_store_again() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (repo, src) = setup(tmp.path());
    let repo_dir = tmp.path().join("repo");
    let s1 = snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress)
        .expect("s1")
        .record;
    repo.forget(&[s1.id]).expect("forget");
    let hour = PruneOptions::default();
    assert_eq!(hour.grace, Duration::from_secs(3600));
    let r = snapkeep::prune::prune(&repo, &hour).expect("prune");
    assert!(r.marked_packs > 0 && r.deleted_packs == 0, "{r:?}");
    let marked = r.marked_packs;
    // A second run within the grace period waits too.
    let r = snapkeep::prune::prune(&repo, &hour).expect("prune");
    assert_eq!((r.marked_packs, r.deleted_packs), (0, 0), "{r:?}");
    assert_eq!(r.waiting_packs, marked, "{r:?}");
    // A snapshot taken after the mark does not see the marked packs: it stores again, and
    // its packs, though they hold the same blobs, get names of their own (a salt blob).
    let marked_files = common::pack_files(&repo_dir);
    let s2 = snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress)
        .expect("s2")
        .record;
    assert_eq!(s2.summary.new_chunks, s2.summary.chunks, "{:?}", s2.summary);
    let now = common::pack_files(&repo_dir);
    assert_eq!(now.len(), 2 * marked_files.len(), "{now:?}");
    // Past the grace period (here: zero), the marked packs go; s2 is intact.
    let r = prune0(&repo);
    assert_eq!(r.deleted_packs, marked, "{r:?}");
    restores_as(&repo, &s2.id, &src, &tmp.path().join("r"));
    verify_clean(&repo);
    assert!(!common::pack_files(&repo_dir).is_empty());
}

#[test]
fn a_dry_run_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (repo, src) = setup(tmp.path());
    let repo_dir = tmp.path().join("repo");
    let s1 = snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress)
        .expect("s1")
        .record;
    repo.forget(&[s1.id]).expect("forget");
    let before = common::files_under(&repo_dir);
    let r = snapkeep::prune::prune(
        &repo,
        &PruneOptions {
            dry_run: true,
            grace: Duration::ZERO,
            ..PruneOptions::default()
        },
    )
    .expect("dry run");
    assert!(r.dry_run);
    assert!(r.marked_packs > 0, "{r:?}");
    assert_eq!(common::files_under(&repo_dir), before);
}
