//! A parent snapshot taken without a stage cannot vouch for files that stage checks: the next
//! snapshot reads and checks them again instead of reusing or trusting the parent.

use std::fs;

use snapkeep::stage::StageSelection;
use snapkeep::{BackupOptions, Error, InitOptions, NoProgress, Repository};

#[test]
fn a_parent_without_the_stage_does_not_vouch_for_staged_files() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("db");
    fs::create_dir_all(db.join("sst")).expect("mkdir");
    // An Alopex-looking directory whose WAL is garbage: the alopex stage must reject it.
    fs::write(db.join("lsm.wal"), vec![0x5a; 64 << 10]).expect("wal");
    let repo =
        Repository::init_local(&tmp.path().join("repo"), &InitOptions::default()).expect("init");
    let err = snapkeep::snapshot(&repo, &db, &BackupOptions::default(), &NoProgress)
        .expect_err("a garbage WAL fails the stage");
    assert!(matches!(err, Error::Inconsistent { .. }), "{err}");

    let unchecked = BackupOptions {
        stages: StageSelection::Explicit(vec![]),
        ..BackupOptions::default()
    };
    let parent = snapkeep::snapshot(&repo, &db, &unchecked, &NoProgress).expect("no stages");
    assert!(parent.record.stages.is_empty());

    // Same content, new metadata (like `touch`): still checked, still rejected.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let f = fs::File::options()
        .write(true)
        .open(db.join("lsm.wal"))
        .expect("open");
    f.set_times(fs::FileTimes::new().set_modified(std::time::SystemTime::now()))
        .expect("touch");
    let err = snapkeep::snapshot(&repo, &db, &BackupOptions::default(), &NoProgress)
        .expect_err("the unchecked parent must not vouch for the WAL");
    assert!(matches!(err, Error::Inconsistent { .. }), "{err}");

    // Unchanged metadata, old enough to be reused: still not reused from an unchecked parent.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let err = snapkeep::snapshot(&repo, &db, &BackupOptions::default(), &NoProgress)
        .expect_err("no reuse by metadata from an unchecked parent");
    assert!(err.to_string().contains("lsm.wal"), "{err}");
}
