//! A file whose metadata is unchanged since the parent snapshot is reused without reading;
//! a changed file, a racy (too recent) file and `force_read` are read again.

use std::fs::{self, File, FileTimes};
use std::time::{Duration, SystemTime};

use snapkeep::{BackupOptions, InitOptions, NoProgress, Repository, RestoreOptions};

fn age(path: &std::path::Path, secs: u64) {
    let t = SystemTime::now() - Duration::from_secs(secs);
    File::options()
        .write(true)
        .open(path)
        .expect("open")
        .set_times(FileTimes::new().set_modified(t))
        .expect("set mtime");
}

#[test]
fn unchanged_files_are_reused_and_changed_ones_read() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("d")).expect("mkdir");
    fs::write(src.join("a"), vec![1u8; 100_000]).expect("write");
    fs::write(src.join("d/b"), vec![2u8; 50_000]).expect("write");
    fs::write(src.join("hot"), b"recent").expect("write");
    age(&src.join("a"), 3600);
    age(&src.join("d/b"), 3600);
    // ctime cannot be set back: it is "now", so the racy rule re-reads every file here
    // unless the parent snapshot started at least RACY_NS after the last metadata change.
    std::thread::sleep(Duration::from_millis(2100));

    let repo =
        Repository::init_local(&tmp.path().join("repo"), &InitOptions::default()).expect("init");
    let first =
        snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress).expect("first");
    assert_eq!(first.record.summary.unchanged_files, 0);

    let second =
        snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress).expect("second");
    assert_eq!(second.record.parent, Some(first.record.id));
    assert_eq!(second.record.summary.files, 3);
    assert_eq!(
        second.record.summary.unchanged_files, 3,
        "all settled files are reused"
    );
    assert_eq!(second.record.summary.data_bytes, 0, "nothing was read");
    assert_eq!(
        second.record.tree, first.record.tree,
        "unchanged tree keeps its id"
    );

    // Change one file (same size, new content): it must be read again.
    fs::write(src.join("d/b"), vec![3u8; 50_000]).expect("rewrite");
    let third =
        snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress).expect("third");
    assert_eq!(third.record.summary.unchanged_files, 2);
    assert_eq!(third.record.summary.data_bytes, 50_000);
    assert!(third.record.summary.new_bytes > 0);

    // The file written just before `third` started is racy for the next snapshot: read again.
    let fourth =
        snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress).expect("fourth");
    assert_eq!(
        fourth.record.summary.unchanged_files, 2,
        "racy file re-read"
    );

    let forced = BackupOptions {
        force_read: true,
        ..BackupOptions::default()
    };
    let fifth = snapkeep::snapshot(&repo, &src, &forced, &NoProgress).expect("fifth");
    assert_eq!(fifth.record.summary.unchanged_files, 0);
    assert_eq!(fifth.record.summary.data_bytes, 150_000 + 6);

    let out = tmp.path().join("out");
    snapkeep::restore(
        &repo,
        &third.record.id,
        &out,
        &RestoreOptions::default(),
        &NoProgress,
    )
    .expect("restore");
    assert_eq!(fs::read(out.join("d/b")).expect("read"), vec![3u8; 50_000]);
    assert_eq!(fs::read(out.join("a")).expect("read"), vec![1u8; 100_000]);
}
