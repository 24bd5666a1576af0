//! A prune whose Nth backend write fails (EIO, ENOSPC, or a repacked pack torn halfway), for
//! every N until the prune completes: the prune returns an error (never panics), and then the
//! repository reopens, verifies clean with every blob read, the kept snapshots restore
//! byte-identical, the forgotten ones stay forgotten, and a later prune finishes the work to
//! the same size as a prune that never failed.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::prune::{pack_bytes, same_tree};
use snapkeep::backend::{Backend, Fault, FaultyBackend, LocalBackend};
use snapkeep::format::gc::LockRecord;
use snapkeep::format::keys::PRUNE_LOCK as PRUNE_LOCK_KEY;
use snapkeep::prune::{MaxUnused, PruneOptions, PruneReport, prune};
use snapkeep::{BackupOptions, NoProgress, Repository, RestoreOptions, SnapshotId};

fn opts() -> PruneOptions {
    PruneOptions {
        grace: Duration::ZERO,
        // Every kept pack with an unused blob is repacked: the crash points include repacks.
        max_unused: MaxUnused::Percent(0.0),
        ..PruneOptions::default()
    }
}

fn verify_findings(repo: &Repository) -> Vec<String> {
    common::verify_read_data(repo)
        .findings
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// A pid no process has: a child that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut c = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    let pid = c.id();
    c.wait().expect("wait");
    pid
}

struct Fixture {
    base: PathBuf,
    kept: Vec<(SnapshotId, PathBuf)>,
    forgotten: Vec<SnapshotId>,
}

/// Four snapshots: s0 (y.bin only), s1 (x.bin, shared.bin), s2 (x.bin with three regions
/// rewritten, shared.bin, z.bin), s3 (shared.bin, z.bin, w.bin); s0 and s1 forgotten.
/// s0's packs become wholly unused (deleted); the packs of x.bin keep most of their blobs for
/// s2 but lose the rewritten regions' (repacked).
fn fixture(root: &Path) -> Fixture {
    let base = root.join("base");
    let src = root.join("src");
    let repo = common::small_packs_repo(&base);
    let snap = |repo: &Repository| {
        snapkeep::snapshot(repo, &src, &BackupOptions::default(), &NoProgress)
            .expect("snapshot")
            .record
            .id
    };
    common::write_file(&src.join("y.bin"), &common::random_bytes(2_500_000, 1));
    let s0 = snap(&repo);
    fs::remove_file(src.join("y.bin")).expect("rm");
    let mut x = common::random_bytes(3_000_000, 2);
    common::write_file(&src.join("x.bin"), &x);
    common::write_file(
        &src.join("d/shared.bin"),
        &common::random_bytes(1_000_000, 3),
    );
    let s1 = snap(&repo);
    for (i, at) in [300_000usize, 1_400_000, 2_500_000].into_iter().enumerate() {
        x[at..at + 200_000].copy_from_slice(&common::random_bytes(200_000, 10 + i as u64));
    }
    common::write_file(&src.join("x.bin"), &x);
    common::write_file(&src.join("d/z.bin"), &common::random_bytes(500_000, 4));
    let s2 = snap(&repo);
    let s2_state = root.join("s2-state");
    common::copy_dir(&src, &s2_state);
    fs::remove_file(src.join("x.bin")).expect("rm");
    common::write_file(&src.join("w.bin"), &common::random_bytes(300_000, 5));
    let s3 = snap(&repo);
    let s3_state = root.join("s3-state");
    common::copy_dir(&src, &s3_state);
    repo.forget(&[s0, s1]).expect("forget");
    Fixture {
        base,
        kept: vec![(s2, s2_state), (s3, s3_state)],
        forgotten: vec![s0, s1],
    }
}

/// Checks a repository after a prune (failed or not). Returns the problems found.
fn check(dir: &Path, fx: &Fixture, scratch: &Path, when: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let repo = match Repository::open_local(dir) {
        Ok(r) => r,
        Err(e) => return vec![format!("{when}: does not reopen: {e}")],
    };
    let (records, damaged) = repo.snapshots().expect("list");
    if !damaged.is_empty() {
        problems.push(format!("{when}: damaged records {damaged:?}"));
    }
    let listed: BTreeSet<SnapshotId> = records.iter().map(|r| r.id).collect();
    let kept: BTreeSet<SnapshotId> = fx.kept.iter().map(|k| k.0).collect();
    if listed != kept {
        problems.push(format!(
            "{when}: snapshots {listed:?} listed, expected exactly {kept:?} (forgotten: {:?})",
            fx.forgotten
        ));
    }
    for f in verify_findings(&repo) {
        problems.push(format!("{when}: verify: {f}"));
    }
    for (id, state) in &fx.kept {
        let out = scratch.join(format!("restore-{id}"));
        let r = snapkeep::restore(&repo, id, &out, &RestoreOptions::default(), &NoProgress)
            .map_err(|e| e.to_string())
            .and_then(|_| same_tree(state, &out));
        if let Err(e) = r {
            problems.push(format!("{when}: snapshot {id}: {e}"));
        }
        let _ = fs::remove_dir_all(&out);
    }
    problems
}

#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, its steps in order")]
fn every_failing_write_of_a_prune_leaves_a_clean_repository() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tmp");
    let fx = fixture(tmp.path());
    let scratch = tmp.path().join("scratch");

    // The clean run: what a prune that never fails does here.
    let clean_dir = tmp.path().join("clean");
    common::copy_dir(&fx.base, &clean_dir);
    let clean: PruneReport =
        prune(&Repository::open_local(&clean_dir).expect("open"), &opts()).expect("clean prune");
    eprintln!(
        "clean prune: {} packs ({} bytes) before; deleted {}, repacked {} (moving {} blobs into {} new packs); {} packs ({} bytes) after",
        clean.packs_before,
        clean.pack_bytes_before,
        clean.deleted_packs,
        clean.repacked_packs,
        clean.moved_blobs,
        clean.new_packs,
        clean.packs_after,
        clean.pack_bytes_after
    );
    assert!(
        clean.deleted_packs > 0,
        "the fixture has no wholly unused pack"
    );
    assert!(
        clean.repacked_packs > 0,
        "the fixture has no partly used pack"
    );
    assert_eq!(clean.waiting_packs, 0, "nothing runs, nothing waits");
    assert_eq!(clean.pack_bytes_after, pack_bytes(&clean_dir));
    let problems = check(&clean_dir, &fx, &scratch, "clean run");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Slack for the size after a failed prune and a later one: a repack after a failure can
    // cut the same live blobs into packs at other places, which changes only per-pack
    // overhead (8-byte header + 48-byte footer) and so costs at most two packs' overhead;
    // everything else (the live blobs and their 48-byte entries) is the same. A repack copies
    // blobs in id order, so after a failure it can write a pack with the very bytes of one the
    // failed run left (now marked): that pack gets a salt blob (16 bytes and its 48-byte
    // entry) to change its name, at most one per pack the clean run wrote.
    let slack = 2 * (8 + 48) + clean.new_packs * (16 + 48);

    let mut tried = 0u32;
    let mut failed = 0u32;
    let mut stale_notes = 0u32;
    let mut lock_release_failed = 0u32;
    let mut size_diffs: Vec<i64> = Vec::new();
    let mut problems = Vec::new();
    for fault in [Fault::Fail, Fault::NoSpace, Fault::Tear] {
        for n in 0.. {
            let dir = tmp.path().join(format!("run-{fault:?}-{n}"));
            common::copy_dir(&fx.base, &dir);
            let faulty = Arc::new(FaultyBackend::new(
                Arc::new(LocalBackend::new(&dir)),
                n,
                fault,
            ));
            let repo =
                Repository::open(faulty.clone() as Arc<dyn Backend>).expect("open (no writes)");
            let result = catch_unwind(AssertUnwindSafe(|| prune(&repo, &opts())));
            drop(repo);
            tried += 1;
            let when = format!("{fault:?} at write {n}");
            let Ok(result) = result else {
                problems.push(format!("{when}: prune panicked"));
                continue;
            };
            if !faulty.fired() {
                let report = result.expect("no fault fired, so the prune succeeds");
                assert_eq!(
                    report.pack_bytes_after, clean.pack_bytes_after,
                    "an unfailed run through the decorator differs from the clean run"
                );
                break;
            }
            match &result {
                // The one write after the work is the release of the prune lock, whose
                // failure a `Drop` cannot report: the work is done, the lock stays behind.
                Ok(r)
                    if r.pack_bytes_after == clean.pack_bytes_after
                        && LocalBackend::new(&dir)
                            .exists(PRUNE_LOCK_KEY)
                            .expect("exists") =>
                {
                    lock_release_failed += 1;
                }
                Ok(r) => problems.push(format!(
                    "{when}: the fault fired but the prune reported success: {r:?}"
                )),
                Err(_) => failed += 1,
            }
            problems.extend(check(&dir, &fx, &scratch, &format!("{when}, after it")));

            // The crashed process is gone: its prune lock (its removal failed too) names a
            // dead pid, as after a real crash, and the next prune removes it, saying so.
            let local: Arc<dyn Backend> = Arc::new(LocalBackend::new(&dir));
            let left_lock = local.exists(PRUNE_LOCK_KEY).expect("exists");
            if left_lock {
                let mut rec = LockRecord::from_bytes(
                    &local.get(PRUNE_LOCK_KEY).expect("get"),
                    PRUNE_LOCK_KEY,
                )
                .expect("the lock left behind decodes");
                rec.pid = dead_pid();
                local.put(PRUNE_LOCK_KEY, &rec.to_bytes()).expect("put");
            }
            let repo = Repository::open_local(&dir).expect("reopen");
            match prune(&repo, &opts()) {
                Ok(r) => {
                    let noted = r.notes.iter().any(|n| {
                        n.contains("removed stale lock locks/prune") && n.contains("gone")
                    });
                    if left_lock && !noted {
                        problems.push(format!(
                            "{when}: the next prune did not say it removed the stale prune lock: {:?}",
                            r.notes
                        ));
                    }
                    stale_notes += u32::from(noted);
                    if r.waiting_packs != 0 {
                        problems.push(format!(
                            "{when}: the next prune (grace 0, no job running) left {} packs waiting",
                            r.waiting_packs
                        ));
                    }
                    let bytes = pack_bytes(&dir);
                    #[expect(
                        clippy::cast_possible_wrap,
                        reason = "pack byte totals of a test repository are far below i64::MAX"
                    )]
                    size_diffs.push(bytes as i64 - clean.pack_bytes_after as i64);
                    if bytes > clean.pack_bytes_after + slack {
                        problems.push(format!(
                            "{when}: {bytes} pack bytes after the next prune, the clean run left {} (slack {slack})",
                            clean.pack_bytes_after
                        ));
                    }
                }
                Err(e) => problems.push(format!("{when}: the next prune failed: {e}")),
            }
            drop(repo);
            problems.extend(check(
                &dir,
                &fx,
                &scratch,
                &format!("{when}, after the next prune"),
            ));
            if !local.list("locks/").expect("list").is_empty() {
                problems.push(format!("{when}: locks left after the next prune"));
            }
            fs::remove_dir_all(&dir).expect("cleanup");
        }
    }
    common::report(&format!(
        "crash points tried: {tried}, prunes that failed: {failed}, succeeded but could not \
         remove their lock: {lock_release_failed}, stale prune locks removed with a note: \
         {stale_notes}; pack bytes after the next prune minus the clean run's: {:?}..={:?}; \
         {:.1} s",
        size_diffs.iter().min(),
        size_diffs.iter().max(),
        started.elapsed().as_secs_f64()
    ));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        tried > 30,
        "only {tried} runs: the prune made too few writes to test"
    );
    assert!(stale_notes > 10, "only {stale_notes} stale prune locks");
}
