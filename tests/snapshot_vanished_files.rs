//! A file deleted while the snapshot runs (an SST a compaction removed after its directory
//! was listed) is not "unreadable": it is left out with a warning that says it vanished, and
//! the snapshot's `unreadable` list (exit code 5 in the CLI) stays empty.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use snapkeep::{BackupOptions, Phase, Progress};

/// Deletes every file of `dir` the first time the snapshot reports progress (the listing of
/// `dir` is done by then, the reading has begun).
struct DeleteOnFirstAdvance {
    dir: PathBuf,
    done: AtomicBool,
}

impl Progress for DeleteOnFirstAdvance {
    fn phase(&self, _: Phase, _: u64, _: u64) {}

    fn advance(&self, _: u64, _: u64) {
        if self.done.swap(true, Ordering::SeqCst) {
            return;
        }
        for e in std::fs::read_dir(&self.dir).expect("list").flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[test]
fn files_deleted_during_the_snapshot_are_warnings_not_unreadable() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    // The tables sit in the top directory: it is listed before anything is read, so every
    // one of them is listed before the first read (a subdirectory is listed only when the
    // capture gets to it, and a file deleted before that is simply not in the snapshot).
    let ssts = src.clone();
    for i in 0..64 {
        common::write_file(
            &ssts.join(format!("{i:04}.sst")),
            &common::random_bytes(20_000, i),
        );
    }
    common::write_file(&src.join("CURRENT"), b"MANIFEST-000001\n");
    let repo = common::small_repo(&tmp.path().join("repo"));
    let progress = DeleteOnFirstAdvance {
        dir: ssts.clone(),
        done: AtomicBool::new(false),
    };
    let opts = BackupOptions {
        stages: "none".parse().expect("stages"),
        ..BackupOptions::default()
    };
    let out = snapkeep::snapshot(&repo, &src, &opts, &progress).expect("the snapshot is saved");
    assert!(
        progress.done.load(Ordering::SeqCst),
        "progress was never reported"
    );
    assert!(out.unreadable.is_empty(), "{:?}", out.unreadable);
    let vanished = out
        .warnings
        .iter()
        .filter(|w| w.contains("vanished"))
        .count();
    let stored = out.record.summary.files;
    assert!(vanished > 0, "no file vanished: {:?}", out.warnings);
    assert_eq!(
        stored + vanished as u64,
        65,
        "every file is either stored or said to have vanished: {:?}",
        out.warnings
    );
}
