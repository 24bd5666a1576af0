//! Issue #19 items 2 and 6, what a review found: an in-place restore holds the database's
//! lock file and the target from before its plan until after the exchange (a database
//! started meanwhile, or a second in-place restore, finds them taken), and a snapshot of
//! several sources has no "own" directory, so restoring it in place into one of those sources
//! deletes nothing without `--delete`.

mod common;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use snapkeep::{BackupOptions, Error, NoProgress, Phase, Progress, RestoreOptions};

/// What the restore's progress callbacks saw when they tried the locks themselves.
#[derive(Default)]
struct Seen {
    /// `try_lock` of the database's lock file: `true` when it was taken by someone else.
    db_lock_taken: Vec<bool>,
    /// `try_lock` of the target directory.
    target_taken: Vec<bool>,
    /// A second in-place restore into the same target, started from inside the first.
    second: Vec<Result<(), String>>,
}

struct Probe<'a> {
    lock_file: PathBuf,
    target: PathBuf,
    repo: &'a snapkeep::Repository,
    id: snapkeep::SnapshotId,
    seen: Mutex<Seen>,
}

fn taken(path: &Path) -> bool {
    let f = File::open(path).expect("open for a lock test");
    match f.try_lock() {
        Ok(()) => false,
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(std::fs::TryLockError::Error(e)) => panic!("try_lock {}: {e}", path.display()),
    }
}

impl Progress for Probe<'_> {
    fn phase(&self, _phase: Phase, _total_bytes: u64, _total_files: u64) {}

    fn advance(&self, _bytes: u64, _files: u64) {
        let mut seen = self.seen.lock().expect("seen");
        if seen.db_lock_taken.len() >= 3 {
            return;
        }
        seen.db_lock_taken.push(taken(&self.lock_file));
        seen.target_taken.push(taken(&self.target));
        if seen.second.is_empty() {
            let opts = RestoreOptions {
                in_place: true,
                delete: true,
                stages: "none".parse().expect("stages"),
                ..RestoreOptions::default()
            };
            let r = snapkeep::restore(self.repo, &self.id, &self.target, &opts, &NoProgress);
            seen.second.push(match r {
                Ok(_) => Ok(()),
                Err(e @ Error::Locked(_)) => Err(e.to_string()),
                Err(e) => Err(format!("not a lock refusal: {e}")),
            });
        }
    }
}

#[test]
fn in_place_restore_holds_the_database_lock_and_the_target_until_the_exchange() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("db");
    for i in 0..6 {
        common::write_file(&db.join(format!("part-{i}")), format!("v1 {i}").as_bytes());
    }
    common::write_file(&db.join("main.alopex.lock"), b"");
    let repo = common::small_repo(&tmp.path().join("repo"));
    let opts = BackupOptions {
        stages: "none".parse().expect("stages"),
        ..BackupOptions::default()
    };
    let id = snapkeep::snapshot(&repo, &db, &opts, &NoProgress)
        .expect("snapshot")
        .record
        .id;
    for i in 0..6 {
        fs::write(db.join(format!("part-{i}")), format!("v2 {i} changed")).expect("change");
    }
    let target = fs::canonicalize(&db).expect("canonical");
    let probe = Probe {
        lock_file: target.join("main.alopex.lock"),
        target: target.clone(),
        repo: &repo,
        id,
        seen: Mutex::new(Seen::default()),
    };
    let ropts = RestoreOptions {
        in_place: true,
        stages: "none".parse().expect("stages"),
        ..RestoreOptions::default()
    };
    let stats = snapkeep::restore(&repo, &id, &db, &ropts, &probe).expect("restore");
    assert_eq!(stats.files, 6, "{stats:?}");
    let seen = probe.seen.into_inner().expect("seen");
    assert!(
        !seen.db_lock_taken.is_empty(),
        "the progress was never called"
    );
    assert!(
        seen.db_lock_taken.iter().all(|t| *t),
        "the database lock was free while the restore ran: {:?}",
        seen.db_lock_taken
    );
    assert!(
        seen.target_taken.iter().all(|t| *t),
        "the target was not locked while the restore ran: {:?}",
        seen.target_taken
    );
    match seen.second.as_slice() {
        [Err(msg)] => assert!(
            msg.contains("another in-place restore") && msg.contains(&*target.to_string_lossy()),
            "{msg}"
        ),
        other => panic!("a second in-place restore was not refused: {other:?}"),
    }
    // Afterwards the restore holds nothing: the lock file is free, the content the snapshot's.
    assert!(!taken(&db.join("main.alopex.lock")));
    assert!(!taken(&db));
    for i in 0..6 {
        assert_eq!(
            fs::read(db.join(format!("part-{i}"))).expect("restored"),
            format!("v1 {i}").as_bytes()
        );
    }
}

#[test]
fn a_snapshot_of_several_sources_has_no_own_directory_to_delete_in() {
    let tmp = tempfile::tempdir().expect("tmp");
    let one = tmp.path().join("one");
    let two = tmp.path().join("two");
    common::write_file(&one.join("a"), b"alpha");
    common::write_file(&two.join("b"), b"beta");
    let repo = tmp.path().join("repo");
    let _ = common::small_repo(&repo);
    let (o, t) = (one.to_str().expect("utf-8"), two.to_str().expect("utf-8"));
    let out = common::cli(&repo, &["--quiet", "snapshot", o, t]);
    common::assert_exit(&out, 0, "snapshot of two sources");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();

    // The snapshot's root holds `one/` and `two/`; restoring it in place into `one` would
    // delete `one/a` (it is `/one/a` in the snapshot): refused without --delete.
    common::write_file(&one.join("since"), b"mine");
    let out = common::cli(&repo, &["restore", &id, o, "--in-place"]);
    common::assert_exit(&out, 2, "in place into one source of a two-source snapshot");
    let err = common::stderr_of(&out);
    assert!(
        err.contains("would delete") && err.contains("/a") && err.contains("--delete"),
        "{err}"
    );
    assert_eq!(fs::read(one.join("a")).expect("kept"), b"alpha");
    assert_eq!(fs::read(one.join("since")).expect("kept"), b"mine");
    assert!(
        !one.join("one").exists(),
        "the refused restore nested the tree"
    );

    // The one-source snapshot of `one` is its own: deletes without --delete.
    let out = common::cli(&repo, &["--quiet", "snapshot", o]);
    common::assert_exit(&out, 0, "snapshot of one");
    let own = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    common::write_file(&one.join("later"), b"x");
    let out = common::cli(&repo, &["restore", &own, o, "--in-place"]);
    common::assert_exit(&out, 0, "in place into the snapshot's own source");
    assert!(!one.join("later").exists());
    assert_eq!(
        fs::read(one.join("since")).expect("in the snapshot"),
        b"mine"
    );
}
