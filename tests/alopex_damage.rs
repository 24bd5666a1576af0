//! Damage to an Alopex DB's files is caught by the `alopex` stage and named:
//! (a) a flipped byte in a source SSTable fails the snapshot (after the recaptures) with
//!     `Error::Inconsistent` naming the file, or with `allow_inconsistent` commits a flagged
//!     snapshot that `list --json` and `verify --read-data` report;
//! (b) a flipped byte in a stored pack is found by `verify --read-data`, naming snapshot and
//!     file;
//! (c) a damaged WAL record in the middle of the ring is the strict-replay finding ("damaged
//!     record in the middle"), distinct from a torn tail.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use common::alopex::{Model, Op, commit, value};
use snapkeep::format::keys;
use snapkeep::format::manifest::{FLAG_INCONSISTENT, FLAG_STAGE_FAILED, NodeKind};
use snapkeep::progress::Progress;
use snapkeep::{BackupOptions, Error, NoProgress, Repository, VerifyReport};

fn batch(b: u32) -> Vec<Op> {
    (0..25)
        .map(|i| {
            (
                format!("t/{b:02}/{i:03}").into_bytes(),
                Some(value(
                    u64::from(b * 1000 + i),
                    300 + (i as usize * 13) % 700,
                )),
            )
        })
        .collect()
}

/// A stopped Alopex DB: batches 1-4 checkpointed into `sst/1.sst`, batches 5-6 only in the
/// WAL (checkpoint.meta present). Returns its model.
fn stopped_db(dir: &Path, checkpoint: bool) -> Model {
    let store = common::alopex::open_db(dir);
    let mut model = Model::new();
    for b in 1..=4 {
        commit(&store, &mut model, &batch(b));
    }
    if checkpoint {
        store.checkpoint().expect("checkpoint");
    }
    for b in 5..=6 {
        commit(&store, &mut model, &batch(b));
    }
    drop(store);
    model
}

/// Counts the warnings a snapshot reports while it runs (recaptures show up here even when
/// the snapshot then fails).
#[derive(Default)]
struct Warnings(Mutex<Vec<String>>);

impl Progress for Warnings {
    fn warn(&self, message: &str) {
        self.0.lock().expect("lock").push(message.to_owned());
    }
}

fn verify_read_data(repo: &Repository) -> VerifyReport {
    common::verify_read_data(repo)
}

fn allow_inconsistent() -> BackupOptions {
    BackupOptions {
        allow_inconsistent: true,
        ..BackupOptions::default()
    }
}

/// Expects `Error::Inconsistent` for the file `rel` and returns its problems.
fn expect_inconsistent(result: snapkeep::Result<snapkeep::BackupOutcome>, rel: &str) -> String {
    match result {
        Err(Error::Inconsistent { path, problems }) => {
            assert!(path.ends_with(rel), "the error names {path}, not {rel}");
            let shown = Error::Inconsistent {
                path: path.clone(),
                problems: problems.clone(),
            }
            .to_string();
            assert!(
                shown.contains(rel),
                "the message does not name {rel}: {shown}"
            );
            problems
        }
        Err(other) => panic!("expected Error::Inconsistent for {rel}, got: {other}"),
        Ok(out) => panic!(
            "a damaged {rel} was snapshotted without complaint: {:?}",
            out.record.summary
        ),
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    db: PathBuf,
    repo_dir: PathBuf,
    repo: Repository,
}

fn fixture(checkpoint: bool) -> (Fixture, Model) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().to_path_buf();
    let db = root.join("db");
    let model = stopped_db(&db, checkpoint);
    let repo_dir = root.join("repo");
    let repo = common::small_repo(&repo_dir);
    (
        Fixture {
            _tmp: tmp,
            root,
            db,
            repo_dir,
            repo,
        },
        model,
    )
}

#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, its steps in order")]
fn a_flipped_byte_in_a_source_sstable_fails_the_snapshot_or_flags_it() {
    let (f, _) = fixture(true);
    // A clean snapshot of a healthy copy first, to tell flagged from unflagged.
    let healthy = f.root.join("healthy");
    common::alopex::copy_data_dir(&f.db, &healthy);
    let clean = common::alopex::snap(&f.repo, &healthy, &BackupOptions::default());
    assert_eq!(clean.record.flags & FLAG_INCONSISTENT, 0);

    let ssts = common::alopex::sst_files(&f.db);
    assert_eq!(ssts.len(), 1, "{ssts:?}");
    let sst = &ssts[0];
    let len = std::fs::metadata(sst).expect("stat").len();
    assert!(
        len > 4096,
        "the SSTable is big enough to have a middle: {len}"
    );
    common::alopex::flip_byte(sst, len / 2, 0x40);
    let rel = "sst/1.sst";

    // Default: recaptured 3 times, then refused; nothing committed.
    let warned = Warnings::default();
    let result = snapkeep::snapshot(&f.repo, &f.db, &BackupOptions::default(), &warned);
    let problems = expect_inconsistent(result, rel);
    assert!(problems.contains("alopex"), "{problems}");
    assert!(problems.contains("SSTable"), "{problems}");
    let recaptures = warned
        .0
        .lock()
        .expect("lock")
        .iter()
        .filter(|w| w.contains(rel) && w.contains("capturing it again"))
        .count();
    assert_eq!(recaptures, 3, "default max_recaptures: {:?}", warned.0);
    let (records, _) = f.repo.snapshots().expect("list");
    assert_eq!(records.len(), 1, "a failed snapshot committed a record");

    // max_recaptures is honoured.
    let warned = Warnings::default();
    let opts = BackupOptions {
        max_recaptures: Some(1),
        ..BackupOptions::default()
    };
    expect_inconsistent(snapkeep::snapshot(&f.repo, &f.db, &opts, &warned), rel);
    assert_eq!(
        warned
            .0
            .lock()
            .expect("lock")
            .iter()
            .filter(|w| w.contains("capturing it again"))
            .count(),
        1
    );

    // allow_inconsistent: committed, flagged, the file node flagged, the others not.
    let out = common::alopex::snap(&f.repo, &f.db, &allow_inconsistent());
    let rec = &out.record;
    assert_ne!(rec.flags & FLAG_INCONSISTENT, 0, "record not flagged");
    assert_eq!(rec.summary.inconsistent_files, 1, "{:?}", rec.summary);
    assert!(
        out.warnings
            .iter()
            .any(|w| w.contains(rel) && w.contains("flagged")),
        "{:?}",
        out.warnings
    );
    for p in ["lsm.wal", "checkpoint.meta", rel] {
        let node = common::alopex::find_node(&f.repo, &rec.tree, p).expect("node in the tree");
        let flagged = node.flags & FLAG_STAGE_FAILED != 0;
        assert_eq!(flagged, p == rel, "{p}: flags {:#x}", node.flags);
    }
    // The next snapshot of the still-damaged file checks it again (a flagged entry is never
    // reused or taken as already checked).
    let again = common::alopex::snap(&f.repo, &f.db, &allow_inconsistent());
    assert_ne!(again.record.flags & FLAG_INCONSISTENT, 0);
    assert_eq!(again.record.parent, Some(rec.id));

    // list --json shows which snapshots are inconsistent.
    let out = common::cli_exited(&f.repo_dir, &["--json", "list"]);
    assert_eq!(out.status.code(), Some(0));
    let list = common::json_of(&out);
    let flag_of = |id: &str| {
        list.as_array()
            .expect("array")
            .iter()
            .find(|s| s["id"] == id)
            .map(|s| s["inconsistent"].clone())
    };
    assert_eq!(
        flag_of(&rec.id.to_string()),
        Some(serde_json::json!(true)),
        "{list}"
    );
    assert_eq!(
        flag_of(&clean.record.id.to_string()),
        Some(serde_json::json!(false)),
        "{list}"
    );

    // verify --read-data names the file in the flagged snapshots and blames nothing else.
    let report = verify_read_data(&f.repo);
    assert!(!report.ok());
    let id = rec.id.to_string();
    assert!(
        report
            .findings
            .iter()
            .any(|x| x.snapshot.as_deref() == Some(id.as_str())
                && x.path.as_deref().is_some_and(|p| p.ends_with(rel))),
        "{:?}",
        report.findings
    );
    for x in &report.findings {
        assert!(
            x.path.as_deref().is_some_and(|p| p.ends_with(rel)),
            "another file was blamed: {x}"
        );
        assert_ne!(
            x.snapshot.as_deref(),
            Some(clean.record.id.to_string().as_str()),
            "the clean snapshot was blamed: {x}"
        );
    }
    let out = common::cli_exited(&f.repo_dir, &["--json", "verify", "--read-data"]);
    assert_eq!(out.status.code(), Some(1));
    let v = common::json_of(&out);
    assert_eq!(v["ok"], false);
    assert!(
        v["findings"].as_array().expect("findings").iter().any(|x| {
            x["snapshot"] == id.as_str() && x["path"].as_str().is_some_and(|p| p.ends_with(rel))
        }),
        "{v}"
    );

    // The CLI: refused (exit 4, named on stderr) unless --allow-inconsistent.
    let db = f.db.to_str().expect("utf-8");
    let out = common::cli_exited(&f.repo_dir, &["snapshot", db]);
    assert_eq!(out.status.code(), Some(4));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains(rel));
    let out = common::cli_exited(
        &f.repo_dir,
        &["--json", "snapshot", db, "--allow-inconsistent"],
    );
    common::assert_exit(&out, 0, "");
    assert_eq!(common::json_of(&out)["inconsistent"], true);
    // --stages none takes it as plain bytes.
    let out = common::cli_exited(&f.repo_dir, &["--json", "snapshot", db, "--stages", "none"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(common::json_of(&out)["inconsistent"], false);
}

#[test]
fn a_flipped_byte_in_a_stored_pack_is_named_by_snapshot_and_file() {
    let (f, _) = fixture(true);
    let id = common::alopex::snap(&f.repo, &f.db, &BackupOptions::default())
        .record
        .id;
    let rec = f.repo.load_snapshot(&id).expect("record");
    let rel = "sst/1.sst";
    let node = common::alopex::find_node(&f.repo, &rec.tree, rel).expect("sst node");
    let NodeKind::File { chunks, .. } = &node.kind else {
        panic!("{rel} is not a file");
    };
    let chunk = chunks.iter().max_by_key(|c| c.len).expect("chunks");
    let loc = f.repo.locate(&chunk.id).expect("located");
    let pack = f.repo_dir.join(keys::pack(&loc.pack));
    common::alopex::flip_byte(
        &pack,
        u64::from(loc.offset) + u64::from(loc.length) / 2,
        0x08,
    );

    let report = verify_read_data(&f.repo);
    let sid = id.to_string();
    assert!(
        report
            .findings
            .iter()
            .any(|x| x.snapshot.as_deref() == Some(sid.as_str())
                && x.path.as_deref().is_some_and(|p| p.ends_with(rel))
                && x.object.contains(&chunk.id.to_string())),
        "no finding names snapshot {sid}, {rel} and chunk {}: {:?}",
        chunk.id,
        report.findings
    );
    for x in &report.findings {
        if let Some(p) = &x.path {
            assert!(p.ends_with(rel), "an intact file was blamed: {x}");
        }
    }
    let out = common::cli_exited(&f.repo_dir, &["--json", "verify", "--read-data"]);
    assert_eq!(out.status.code(), Some(1));
    let v = common::json_of(&out);
    assert!(
        v["findings"].as_array().expect("findings").iter().any(|x| {
            x["snapshot"] == sid.as_str() && x["path"].as_str().is_some_and(|p| p.ends_with(rel))
        }),
        "{v}"
    );
    // Restoring it fails cleanly, naming the file.
    let err = snapkeep::restore(
        &f.repo,
        &id,
        &f.root.join("restored"),
        &snapkeep::RestoreOptions::default(),
        &NoProgress,
    )
    .expect_err("a damaged chunk must not restore silently");
    assert!(err.to_string().contains(rel), "{err}");
}

/// The WAL fixture: six batches and no checkpoint, so every batch lives only in the WAL.
fn wal_fixture() -> (Fixture, Model, Vec<common::alopex::WalRecord>) {
    let (f, model) = fixture(false);
    let records = common::alopex::wal_records(&f.db.join("lsm.wal"));
    assert_eq!(records.len(), 6, "one record per commit: {records:?}");
    (f, model, records)
}

fn keys_after_open(dir: &Path) -> usize {
    let db = common::alopex::open_db(dir);
    common::alopex::scan_all(&db).len()
}

#[test]
fn a_damaged_wal_record_in_the_middle_is_the_strict_finding() {
    let (f, model, records) = wal_fixture();
    let wal = f.db.join("lsm.wal");
    let victim = records[1];
    common::alopex::flip_byte(&wal, victim.physical + victim.len / 2, 0x01);

    // What the database itself would do with it: replay stops at the damage and every later
    // batch is silently gone. That is why the stage is strict.
    let probe = f.root.join("probe");
    common::alopex::copy_data_dir(&f.db, &probe);
    let _ = std::fs::remove_file(probe.join(".alopex.lock"));
    assert_eq!(keys_after_open(&probe), 25, "only batch 1 survives replay");
    assert_eq!(model.len(), 150);

    let problems = expect_inconsistent(
        snapkeep::snapshot(&f.repo, &f.db, &BackupOptions::default(), &NoProgress),
        "lsm.wal",
    );
    assert!(
        problems.contains("damaged record in the middle"),
        "{problems}"
    );
    assert!(!problems.contains("torn tail"), "{problems}");
    assert!(
        problems.contains(&format!("ring offset {}", victim.logical)),
        "the offset of the damaged record is named: {problems}"
    );

    let out = common::alopex::snap(&f.repo, &f.db, &allow_inconsistent());
    assert_ne!(out.record.flags & FLAG_INCONSISTENT, 0);
    let report = verify_read_data(&f.repo);
    let sid = out.record.id.to_string();
    assert!(
        report
            .findings
            .iter()
            .any(|x| x.snapshot.as_deref() == Some(sid.as_str())
                && x.path.as_deref().is_some_and(|p| p.ends_with("lsm.wal"))
                && x.problem.contains("damaged record in the middle")),
        "{:?}",
        report.findings
    );
}

#[test]
fn a_wal_cut_inside_its_last_record_is_a_torn_tail() {
    let (f, _, records) = wal_fixture();
    let wal = f.db.join("lsm.wal");
    let last = records[records.len() - 1];
    // The section header says the log ends 5 bytes into... short of the last record's end.
    common::alopex::set_wal_end(&wal, last.logical + last.len - 5);
    let problems = expect_inconsistent(
        snapkeep::snapshot(
            &f.repo,
            &f.db,
            &BackupOptions {
                max_recaptures: Some(0),
                ..BackupOptions::default()
            },
            &NoProgress,
        ),
        "lsm.wal",
    );
    assert!(problems.contains("torn tail"), "{problems}");
    assert!(!problems.contains("in the middle"), "{problems}");
}

#[test]
fn a_wal_whose_last_record_was_half_written_is_a_torn_tail() {
    let (f, _, records) = wal_fixture();
    let wal = f.db.join("lsm.wal");
    let last = records[records.len() - 1];
    // A torn write of the newest record: the header already counts it, its second half never
    // reached the disk (zeros). Every earlier record is intact and nothing follows it.
    let fh = std::fs::OpenOptions::new()
        .write(true)
        .open(&wal)
        .expect("open WAL");
    let half = last.len / 2;
    std::os::unix::fs::FileExt::write_all_at(
        &fh,
        &vec![0u8; usize::try_from(last.len - half).expect("fits")],
        last.physical + half,
    )
    .expect("zero the tail of the last record");
    drop(fh);
    let problems = expect_inconsistent(
        snapkeep::snapshot(
            &f.repo,
            &f.db,
            &BackupOptions {
                max_recaptures: Some(0),
                ..BackupOptions::default()
            },
            &NoProgress,
        ),
        "lsm.wal",
    );
    assert!(
        problems.contains("torn tail") && !problems.contains("in the middle"),
        "the damaged record is the last one, nothing follows it, yet: {problems}"
    );
}
