//! Prune running while snapshots, restores and verifies run: a snapshot never fails because of
//! a prune, and every snapshot that committed restores byte-identical at once and verifies
//! clean — not only after some later prune has put things back.
//!
//! Deterministic interleavings (a backend decorator runs the other party at an exact point):
//! - `prune_before_every_write_of_a_snapshot`: a whole prune (grace 0, repack everything) runs
//!   just before the Nth write of a snapshot, for every N;
//! - `restore_and_verify_loading_the_index_while_prune_rewrites_it`: a reader lists `index/`,
//!   a prune replaces the index files, the reader opens what it listed;
//! - `snapshot_committing_while_prune_reads_its_state`: a whole snapshot commits between the
//!   prune's pack listing and its reading of the records;
//! - `repair_index_while_a_prune_deletes_packs`: `repair index` (now under the prune lock) wrote a plan that
//!   a prune made stale;
//! - `tag_racing_with_forget_and_prune`: a tag writes back a record that a forget removed and
//!   whose packs a prune deleted meanwhile;
//! - `two_prunes_replacing_one_stale_prune_lock`: mutual exclusion of prunes.
//!
//! Free-running concurrency:
//! - `threads_*`: one thread snapshots a source it mutates (and restores each snapshot at
//!   once), another forgets (keep 3) and prunes in a loop (one shared `Repository`, or one
//!   each);
//! - `processes_snapshot_and_forget_prune_loops`: the same with CLI child processes.
//!
//! Its repositories are format 1 (`--encryption none`): the protocol under test is the same
//! for both formats, and sealing in an unoptimized test build would multiply each round's time.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::prune::{HookBackend, ListHookBackend, same_tree};
use snapkeep::backend::{Backend, LocalBackend};
use snapkeep::prune::{MaxUnused, PruneOptions, PruneReport, prune};
use snapkeep::{BackupOptions, NoProgress, Repository, RestoreOptions, SnapshotId};

fn init(dir: &Path) -> Repository {
    common::small_packs_repo(dir)
}

fn grace0(max_unused: MaxUnused) -> PruneOptions {
    PruneOptions {
        grace: Duration::ZERO,
        max_unused,
        ..PruneOptions::default()
    }
}

fn verify_all(repo: &Repository) -> Vec<String> {
    let report = common::verify_read_data(repo);
    report.findings.iter().map(ToString::to_string).collect()
}

/// Restores `id` into a fresh directory below `scratch` and compares it with `state`.
fn restores_as(
    repo: &Repository,
    id: &SnapshotId,
    state: &Path,
    scratch: &Path,
) -> Result<(), String> {
    static N: AtomicU64 = AtomicU64::new(0);
    let out = scratch.join(format!("restore-{}", N.fetch_add(1, Ordering::SeqCst)));
    let r = snapkeep::restore(repo, id, &out, &RestoreOptions::default(), &NoProgress)
        .map_err(|e| format!("restore of {id} failed: {e}"))
        .and_then(|_| same_tree(state, &out).map_err(|d| format!("restore of {id}: {d}")));
    let _ = fs::remove_dir_all(&out);
    r
}

/// After a failed restore: restores once more, through a fresh handle, and says whether that
/// worked — telling a reader's stale index view (its view was loaded while a prune rewrote the
/// index) from a committed snapshot whose blobs the index lacks.
fn diagnose(repo_dir: &Path, id: &SnapshotId, state: &Path, scratch: &Path) -> &'static str {
    let repo = Repository::open_local_with(repo_dir, Some(b"snapkeep-test")).expect("open");
    match restores_as(&repo, id, state, scratch) {
        Ok(()) => {
            "a second restore, with a fresh view, works: the first one's view was stale, or a \
             prune put the blobs back in between"
        }
        Err(_) => "a second restore fails too: the index lacks blobs of the committed snapshot",
    }
}

/// The snapshot under test reuses blobs of a forgotten snapshot (a.bin, in packs a prune will
/// mark), reuses blobs of a kept one (keep.bin) and stores new ones (c.bin). A prune (grace 0,
/// everything repacked) runs just before each of its writes in turn. The snapshot must
/// succeed, and right away — before any other prune — restore byte-identical and verify clean.
#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, its steps in order")]
fn prune_before_every_write_of_a_snapshot() {
    let tmp = tempfile::tempdir().expect("tmp");
    let base = tmp.path().join("base");
    let src = tmp.path().join("src");
    let repo = init(&base);
    common::write_file(&src.join("a.bin"), &common::random_bytes(600_000, 1));
    common::write_file(&src.join("keep.bin"), &common::random_bytes(300_000, 2));
    let s0 = snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress)
        .expect("s0")
        .record
        .id;
    let a = fs::read(src.join("a.bin")).expect("read");
    fs::remove_file(src.join("a.bin")).expect("rm");
    common::write_file(&src.join("b.bin"), &common::random_bytes(400_000, 3));
    let s1 = snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress)
        .expect("s1")
        .record
        .id;
    repo.forget(&[s0]).expect("forget s0");
    let s1_state = tmp.path().join("s1-state");
    common::copy_dir(&src, &s1_state);
    drop(repo);
    // The state the snapshot under test takes: a.bin is back (same bytes as in s0).
    common::write_file(&src.join("a.bin"), &a);
    common::write_file(&src.join("c.bin"), &common::random_bytes(500_000, 4));

    let mut failures = Vec::new();
    let mut points = 0;
    let mut waited = 0;
    for n in 0.. {
        let dir = tmp.path().join(format!("run-{n}"));
        common::copy_dir(&base, &dir);
        let inner: Arc<dyn Backend> = Arc::new(LocalBackend::new(&dir));
        let report: Arc<Mutex<Option<snapkeep::Result<PruneReport>>>> = Arc::new(Mutex::new(None));
        let (hook_inner, hook_report) = (Arc::clone(&inner), Arc::clone(&report));
        let hooked = Arc::new(HookBackend::new(
            Arc::clone(&inner),
            n,
            Box::new(move |_key| {
                let r = Repository::open(hook_inner)
                    .and_then(|r| prune(&r, &grace0(MaxUnused::Percent(0.0))));
                *hook_report.lock().expect("lock") = Some(r);
            }),
        ));
        let repo = Repository::open(hooked.clone() as Arc<dyn Backend>).expect("open");
        let outcome = snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress);
        if !hooked.fired() {
            outcome.expect("snapshot without a prune");
            break;
        }
        points += 1;
        let key = hooked
            .fired_at
            .lock()
            .expect("lock")
            .clone()
            .unwrap_or_default();
        let pruned = report.lock().expect("lock").take().expect("hook ran");
        let pruned = match pruned {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("write {n} ({key}): the prune failed: {e}"));
                continue;
            }
        };
        if pruned.waiting_packs > 0 {
            waited += 1;
        }
        let id = match outcome {
            Ok(o) => o.record.id,
            Err(e) => {
                failures.push(format!("write {n} ({key}): the snapshot failed: {e}"));
                continue;
            }
        };
        // Right away, through a fresh handle: no other prune has run.
        let fresh = Repository::open_local_with(&dir, Some(b"snapkeep-test")).expect("reopen");
        let scratch = tmp.path().join(format!("scratch-{n}"));
        let now = [
            restores_as(&fresh, &id, &src, &scratch),
            restores_as(&fresh, &s1, &s1_state, &scratch),
        ];
        let findings = verify_all(&fresh);
        for r in now.iter().filter_map(|r| r.as_ref().err()) {
            failures.push(format!(
                "write {n} ({key}), right after the snapshot committed: {r}"
            ));
        }
        if !findings.is_empty() {
            failures.push(format!(
                "write {n} ({key}), right after the snapshot committed: verify: {findings:?}"
            ));
        }
        // A later prune must leave everything intact too.
        prune(&fresh, &grace0(MaxUnused::Percent(0.0))).expect("a later prune");
        for r in [
            restores_as(&fresh, &id, &src, &scratch),
            restores_as(&fresh, &s1, &s1_state, &scratch),
        ] {
            if let Err(r) = r {
                failures.push(format!("write {n} ({key}), after a later prune: {r}"));
            }
        }
        let findings = verify_all(&fresh);
        if !findings.is_empty() {
            failures.push(format!(
                "write {n} ({key}), after a later prune: verify: {findings:?}"
            ));
        }
        let _ = fs::remove_dir_all(&dir);
    }
    common::report(&format!(
        "prune interleaved before {points} snapshot writes; {waited} of those prunes left packs waiting for the snapshot's lock"
    ));
    assert!(points >= 5, "the snapshot made only {points} writes");
    assert!(
        waited > 0,
        "no prune ever waited for the running snapshot: the interleaving did not happen"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A restore and a verify that load their index view while a prune rewrites the index: the
/// reader lists `index/`, then the prune writes its new index file and deletes the old ones,
/// then the reader opens the files it listed. Prune "never makes a job fail", so the restore
/// must succeed and the verify must find nothing.
#[test]
fn restore_and_verify_loading_the_index_while_prune_rewrites_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let base = tmp.path().join("base");
    let src = tmp.path().join("src");
    let repo = init(&base);
    common::write_file(&src.join("a.bin"), &common::random_bytes(600_000, 11));
    common::write_file(&src.join("keep.bin"), &common::random_bytes(300_000, 12));
    let s0 = snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress)
        .expect("s0")
        .record
        .id;
    fs::remove_file(src.join("a.bin")).expect("rm");
    common::write_file(&src.join("b.bin"), &common::random_bytes(400_000, 13));
    let s1 = snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress)
        .expect("s1")
        .record
        .id;
    repo.forget(&[s0]).expect("forget s0");
    drop(repo);

    let mut problems = Vec::new();
    for reader in ["restore", "verify"] {
        let dir = tmp.path().join(format!("repo-{reader}"));
        common::copy_dir(&base, &dir);
        let inner: Arc<dyn Backend> = Arc::new(LocalBackend::new(&dir));
        let hooked = Arc::new(ListHookBackend::new(Arc::clone(&inner), "index/"));
        let repo = Repository::open(hooked.clone() as Arc<dyn Backend>).expect("open");
        let report: Arc<Mutex<Option<snapkeep::Result<PruneReport>>>> = Arc::new(Mutex::new(None));
        let (hook_inner, hook_report) = (Arc::clone(&inner), Arc::clone(&report));
        hooked.arm(Box::new(move |_| {
            let r = Repository::open(hook_inner)
                .and_then(|r| prune(&r, &grace0(MaxUnused::Percent(0.0))));
            *hook_report.lock().expect("lock") = Some(r);
        }));
        let result = if reader == "restore" {
            restores_as(&repo, &s1, &src, &tmp.path().join("scratch"))
        } else {
            let findings = verify_all(&repo);
            if findings.is_empty() {
                Ok(())
            } else {
                Err(format!("verify found {findings:?}"))
            }
        };
        assert!(
            hooked.fired.load(Ordering::SeqCst),
            "{reader} never listed the index"
        );
        let pruned = report
            .lock()
            .expect("lock")
            .take()
            .expect("hook ran")
            .expect("the prune succeeds");
        assert!(
            pruned.marked_packs > 0 && pruned.index_files_before > 0,
            "the prune did not rewrite the index: {pruned:?}"
        );
        if let Err(e) = result {
            problems.push(format!(
                "{reader} that listed index/ before the prune rewrote it: {e}"
            ));
        }
        // Afterwards (a fresh view) everything is there.
        let fresh = Repository::open_local_with(&dir, Some(b"snapkeep-test")).expect("reopen");
        restores_as(&fresh, &s1, &src, &tmp.path().join("scratch")).expect("restore later");
        assert_eq!(verify_all(&fresh), Vec::<String>::new());
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A snapshot that commits while a prune reads its state: the prune has opened the index and
/// listed the packs when the whole snapshot (packs, index file, record) happens; then the
/// prune reads the records and finds the new one. Its trees are in packs the prune's listing
/// lacks. The prune must not fail (nor delete anything the snapshot needs): the snapshot
/// holds a live lock until it ends, and it is a normal snapshot.
#[test]
fn snapshot_committing_while_prune_reads_its_state() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("repo");
    let src = tmp.path().join("src");
    let repo = init(&dir);
    common::write_file(&src.join("a.bin"), &common::random_bytes(600_000, 31));
    let s0 = snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress)
        .expect("s0")
        .record
        .id;
    common::write_file(&src.join("b.bin"), &common::random_bytes(400_000, 32));
    snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress).expect("s1");
    repo.forget(&[s0]).expect("forget s0");
    drop(repo);
    let s2_state = tmp.path().join("s2-state");
    common::write_file(&src.join("c.bin"), &common::random_bytes(300_000, 33));
    common::copy_dir(&src, &s2_state);

    let inner: Arc<dyn Backend> = Arc::new(LocalBackend::new(&dir));
    let hooked = Arc::new(ListHookBackend::new(Arc::clone(&inner), "data/"));
    let repo = Repository::open(hooked.clone() as Arc<dyn Backend>).expect("open");
    let s2: Arc<Mutex<Option<SnapshotId>>> = Arc::new(Mutex::new(None));
    let (hook_inner, hook_s2, hook_src) = (Arc::clone(&inner), Arc::clone(&s2), src.clone());
    hooked.arm(Box::new(move |_| {
        let r = Repository::open(hook_inner).expect("open");
        let o = snapkeep::snapshot(&r, &hook_src, &BackupOptions::default(), &NoProgress)
            .expect("the snapshot during the prune");
        *hook_s2.lock().expect("lock") = Some(o.record.id);
    }));
    let pruned = prune(&repo, &grace0(MaxUnused::Percent(0.0)));
    assert!(
        hooked.fired.load(Ordering::SeqCst),
        "the prune never listed data/"
    );
    let s2 = s2.lock().expect("lock").take().expect("the snapshot ran");
    let fresh = Repository::open_local_with(&dir, Some(b"snapkeep-test")).expect("open");
    let restored = restores_as(&fresh, &s2, &s2_state, &tmp.path().join("scratch"));
    let findings = verify_all(&fresh);
    assert!(
        pruned.is_ok() && restored.is_ok() && findings.is_empty(),
        "prune: {:?}; restore of the snapshot: {restored:?}; verify: {findings:?}",
        pruned.map(|r| r.deleted_packs)
    );
}

/// `repair index` racing with a prune: the repair reads every pack trailer (a marked pack's
/// too), then — just before the repair writes its index file — a prune (grace 0, nothing
/// else running) deletes the marked packs; the repair then writes what it read. The index
/// names packs that are gone, and a snapshot of the same data dedups against them: it
/// commits without its data. The repair must keep such a prune out (e.g. hold the prune
/// lock from its listing to its write) or drop entries of packs deleted meanwhile.
#[test]
fn repair_index_while_a_prune_deletes_packs() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("repo");
    let src = tmp.path().join("src");
    let repo = init(&dir);
    common::write_file(&src.join("a.bin"), &common::random_bytes(600_000, 21));
    let s0 = snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress)
        .expect("s0")
        .record
        .id;
    let a = fs::read(src.join("a.bin")).expect("read");
    fs::remove_file(src.join("a.bin")).expect("rm");
    common::write_file(&src.join("b.bin"), &common::random_bytes(400_000, 22));
    snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress).expect("s1");
    repo.forget(&[s0]).expect("forget s0");
    // A prune with the default grace marks s0's packs; they stay for now.
    let first = prune(&repo, &PruneOptions::default()).expect("mark");
    assert!(
        first.marked_packs > 0 && first.deleted_packs == 0,
        "{first:?}"
    );
    drop(repo);

    let inner: Arc<dyn Backend> = Arc::new(LocalBackend::new(&dir));
    let report: Arc<Mutex<Option<snapkeep::Result<PruneReport>>>> = Arc::new(Mutex::new(None));
    let (hook_inner, hook_report) = (Arc::clone(&inner), Arc::clone(&report));
    let hooked = Arc::new(HookBackend::before_key(
        Arc::clone(&inner),
        "index/",
        Box::new(move |_| {
            let r = Repository::open(hook_inner)
                .and_then(|r| prune(&r, &grace0(MaxUnused::Percent(5.0))));
            *hook_report.lock().expect("lock") = Some(r);
        }),
    ));
    let repo = Repository::open(hooked.clone() as Arc<dyn Backend>).expect("open");
    snapkeep::repair::rebuild_index(&repo, false).expect("repair");
    assert!(hooked.fired(), "the repair wrote no index file");
    match report.lock().expect("lock").take().expect("hook ran") {
        Ok(r) => panic!(
            "a prune ran inside the repair and deleted {} packs",
            r.deleted_packs
        ),
        Err(e) => assert!(matches!(e, snapkeep::Error::Locked(_)), "{e}"),
    }
    drop(repo);

    // The same data again: its chunks are "in the index".
    let repo = Repository::open_local_with(&dir, Some(b"snapkeep-test")).expect("open");
    common::write_file(&src.join("a.bin"), &a);
    let s2 = snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress)
        .expect("s2")
        .record
        .id;
    let restored = restores_as(&repo, &s2, &src, &tmp.path().join("scratch"));
    let findings = verify_all(&repo);
    assert!(
        restored.is_ok() && findings.is_empty(),
        "a snapshot taken after repair index raced with a prune lost its data: {restored:?}; \
         verify: {} findings, first {:?}",
        findings.len(),
        &findings[..findings.len().min(3)]
    );
}

/// `tag` racing with `forget --prune --grace 0`: the tag has read the record and checked that
/// it exists; the forget removes it and the prune (the tag holds no lock) deletes its packs;
/// the tag then writes the record back. A snapshot is listed whose data is gone. Either the
/// snapshot stays forgotten or it stays whole.
#[test]
fn tag_racing_with_forget_and_prune() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("repo");
    let src = tmp.path().join("src");
    let repo = init(&dir);
    common::write_file(&src.join("a.bin"), &common::random_bytes(600_000, 41));
    let s0 = snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress)
        .expect("s0")
        .record
        .id;
    fs::remove_file(src.join("a.bin")).expect("rm");
    common::write_file(&src.join("b.bin"), &common::random_bytes(400_000, 42));
    snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress).expect("s1");
    drop(repo);

    let inner: Arc<dyn Backend> = Arc::new(LocalBackend::new(&dir));
    let hook_inner = Arc::clone(&inner);
    let hooked = Arc::new(HookBackend::before_key(
        Arc::clone(&inner),
        "snapshots/",
        Box::new(move |_| {
            let r = Repository::open(hook_inner).expect("open");
            r.forget(&[s0]).expect("forget");
            let p = prune(&r, &grace0(MaxUnused::Percent(5.0))).expect("prune");
            eprintln!("the prune during the tag deleted {} packs", p.deleted_packs);
        }),
    ));
    let repo = Repository::open(hooked.clone() as Arc<dyn Backend>).expect("open");
    let tagged = repo.retag(&s0, &["keep".to_owned()], &[]);
    assert!(hooked.fired(), "the tag wrote nothing");
    drop(repo);
    let repo = Repository::open_local_with(&dir, Some(b"snapkeep-test")).expect("open");
    let listed = repo.snapshot_ids().expect("list").contains(&s0);
    let findings = verify_all(&repo);
    assert!(
        !listed || findings.is_empty(),
        "tag returned {:?}; the forgotten snapshot is listed again and verify finds {} \
         problems, first {:?}",
        tagged.map(|r| r.tags),
        findings.len(),
        &findings[..findings.len().min(2)]
    );
}

/// Two prunes that find the same stale `locks/prune`: B reads it and judges it stale; A then
/// removes it and takes the lock; B's delete removes A's fresh lock and B takes it too. Only
/// one prune may hold the lock: A's check must then fail (or B must not get the lock).
#[test]
fn two_prunes_replacing_one_stale_prune_lock() {
    use snapkeep::format::gc::LockRecord;
    use snapkeep::format::keys::PRUNE_LOCK as PRUNE_LOCK_KEY;
    use snapkeep::lock::{LockGuard, STALE_AFTER, acquire_prune};

    let inner: Arc<dyn Backend> = Arc::new(snapkeep::backend::MemoryBackend::new());
    // The lock of a prune that died: taken, then its pid replaced by one that is gone.
    let mut stale = {
        let g = acquire_prune(&inner, STALE_AFTER, &mut Vec::new()).expect("take");
        let rec = LockRecord::from_bytes(&inner.get(PRUNE_LOCK_KEY).expect("get"), PRUNE_LOCK_KEY)
            .expect("decode");
        drop(g);
        rec
    };
    let mut c = std::process::Command::new("true").spawn().expect("spawn");
    stale.pid = c.id();
    c.wait().expect("wait");
    inner.put(PRUNE_LOCK_KEY, &stale.to_bytes()).expect("put");

    let a_guard: Arc<Mutex<Option<LockGuard>>> = Arc::new(Mutex::new(None));
    let (hook_inner, hook_guard) = (Arc::clone(&inner), Arc::clone(&a_guard));
    // B's writes: 0 = put_if_absent (refused), 1 = delete of the lock it judged stale.
    let b_backend: Arc<dyn Backend> = Arc::new(HookBackend::new(
        Arc::clone(&inner),
        1,
        Box::new(move |key| {
            assert_eq!(key, PRUNE_LOCK_KEY);
            let mut notes = Vec::new();
            let g = acquire_prune(&hook_inner, STALE_AFTER, &mut notes).expect("A takes it");
            *hook_guard.lock().expect("lock") = Some(g);
        }),
    ));
    let mut notes = Vec::new();
    let b = acquire_prune(&b_backend, STALE_AFTER, &mut notes);
    let a = a_guard.lock().expect("lock").take().expect("A ran");
    let both = b.is_ok() && a.check().is_ok();
    assert!(
        !both,
        "two prunes hold {PRUNE_LOCK_KEY} at once (B: {:?}, A's check passes)",
        b.as_ref().map(LockGuard::key)
    );
}

/// A source directory that changes between snapshots: new content, edits inside a big file,
/// removed and re-added files, and files reverted to old content (which may sit in packs a
/// prune has just marked: the rescue path).
struct Workload {
    src: PathBuf,
    states: PathBuf,
    rng: common::XorShift,
    history: Vec<Vec<u8>>,
    round: u64,
}

impl Workload {
    fn new(root: &Path, seed: u64) -> Self {
        let src = root.join("src");
        let states = root.join("states");
        fs::create_dir_all(&states).expect("mkdir");
        let mut rng = common::XorShift::new(seed);
        common::write_file(
            &src.join("big.bin"),
            &common::random_bytes(1_500_000, common::prune::seed(rng.next_u64())),
        );
        let mut history = Vec::new();
        for k in 0..6 {
            let data =
                common::random_bytes(100_000 + 20_000 * k, common::prune::seed(rng.next_u64()));
            common::write_file(&src.join(format!("dir{}/f{k}.bin", k % 2)), &data);
            history.push(data);
        }
        Workload {
            src,
            states,
            rng,
            history,
            round: 0,
        }
    }

    fn small(src: &Path, k: u64) -> PathBuf {
        src.join(format!("dir{}/f{k}.bin", k % 2))
    }

    /// Changes the source and keeps a copy of the new state; returns the copy's path.
    fn step(&mut self) -> PathBuf {
        self.round += 1;
        let r = &mut self.rng;
        // New content for one small file.
        let k = r.next_u64() % 6;
        let len = 50_000 + (r.next_u64() % 200_000) as usize;
        let data = common::random_bytes(len, common::prune::seed(r.next_u64()));
        common::write_file(&Self::small(&self.src, k), &data);
        self.history.push(data);
        // A 64 KiB edit inside the big file: most of its chunks stay shared.
        let mut big = fs::read(self.src.join("big.bin")).expect("read big");
        #[expect(
            clippy::cast_possible_truncation,
            reason = "a value below a usize length or bound fits usize"
        )]
        let at = (r.next_u64() % (big.len() as u64 - 65_536)) as usize;
        big[at..at + 65_536].copy_from_slice(&common::random_bytes(
            65_536,
            common::prune::seed(r.next_u64()),
        ));
        fs::write(self.src.join("big.bin"), &big).expect("write big");
        if self.round.is_multiple_of(3) && self.history.len() > 4 {
            // An old version comes back: its blobs may only be in packs marked meanwhile.
            #[expect(
                clippy::cast_possible_truncation,
                reason = "a value below a usize length or bound fits usize"
            )]
            let old = (r.next_u64() % (self.history.len() as u64 - 3)) as usize;
            let k2 = r.next_u64() % 6;
            common::write_file(&Self::small(&self.src, k2), &self.history[old]);
        }
        if self.round.is_multiple_of(4) {
            let k3 = r.next_u64() % 6;
            let p = Self::small(&self.src, k3);
            if p.exists() {
                fs::remove_file(&p).expect("rm");
            } else {
                common::write_file(&p, &self.history[self.history.len() - 2]);
            }
        }
        let state = self.states.join(format!("state-{}", self.round));
        common::copy_dir(&self.src, &state);
        state
    }
}

/// What the forget + prune side saw in one pass.
#[derive(Debug)]
struct PrunePass {
    grace_zero: bool,
    snapshot_running: bool,
    deleted: u64,
    rescued: u64,
    unmarked: u64,
    waiting: u64,
    repacked: u64,
}

impl PrunePass {
    fn from_report(r: &PruneReport, grace_zero: bool, snapshot_running: bool) -> Self {
        PrunePass {
            grace_zero,
            snapshot_running,
            deleted: r.deleted_packs,
            rescued: r.rescued_packs,
            unmarked: r.unmarked_packs,
            waiting: r.waiting_packs,
            repacked: r.repacked_packs,
        }
    }
}

/// Checks the end state: every listed snapshot is one we took, verify (read data) is clean,
/// and each restores byte-identical to its state. Returns the problems.
fn check_end_state(
    repo_dir: &Path,
    states: &BTreeMap<SnapshotId, PathBuf>,
    scratch: &Path,
    when: &str,
) -> Vec<String> {
    let repo = Repository::open_local_with(repo_dir, Some(b"snapkeep-test")).expect("open");
    let mut problems = Vec::new();
    let (records, damaged) = repo.snapshots().expect("list");
    if !damaged.is_empty() {
        problems.push(format!("{when}: damaged records {damaged:?}"));
    }
    for f in verify_all(&repo) {
        problems.push(format!("{when}: verify: {f}"));
    }
    for r in &records {
        match states.get(&r.id) {
            None => problems.push(format!("{when}: snapshot {} was never taken", r.id)),
            Some(state) => {
                if let Err(e) = restores_as(&repo, &r.id, state, scratch) {
                    problems.push(format!("{when}: {e}"));
                }
            }
        }
    }
    problems
}

/// Summarizes the prune passes and asserts that prunes did meet running snapshots.
fn report_interleavings(what: &str, passes: &[PrunePass], snapshots: usize) {
    let during = passes.iter().filter(|p| p.snapshot_running).count();
    // With grace 0 a pack waits only for a live job lock that has not seen its mark (or was
    // marked in the second pass because a writer added it between the passes).
    let waited = passes
        .iter()
        .filter(|p| p.grace_zero && p.waiting > 0 && p.snapshot_running)
        .count();
    let deleted_during = passes
        .iter()
        .filter(|p| p.snapshot_running && p.deleted > 0)
        .count();
    let rescued = passes.iter().filter(|p| p.rescued > 0).count();
    let rescued_during = passes
        .iter()
        .filter(|p| p.snapshot_running && p.rescued > 0)
        .count();
    let unmarked = passes.iter().filter(|p| p.unmarked > 0).count();
    let repacked = passes.iter().filter(|p| p.repacked > 0).count();
    common::report(&format!(
        "{what}: {snapshots} snapshots, {} prune passes; {during} overlapped a snapshot: \
         {deleted_during} of those deleted packs, {rescued_during} rescued packs, {waited} with \
         grace 0 left packs waiting for the snapshot; overall {rescued} rescued, {unmarked} \
         unmarked, {repacked} repacked",
        passes.len()
    ));
    assert!(
        waited > 0,
        "{what}: no grace-0 prune ever left packs waiting for a running snapshot: the test \
         proved nothing"
    );
    assert!(
        deleted_during > 0,
        "{what}: no prune deleted packs while a snapshot ran"
    );
}

/// One thread snapshots, another forgets (keep 3) and prunes, concurrently.
#[expect(clippy::too_many_lines, reason = "one scenario, its steps in order")]
fn threads(shared: bool, rounds: usize, seed: u64) {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo_dir = tmp.path().join("repo");
    let scratch = tmp.path().join("scratch");
    let first = Arc::new(init(&repo_dir));
    let mut work = Workload::new(tmp.path(), seed);
    let running = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();

    let pruner = {
        let (running, done) = (Arc::clone(&running), Arc::clone(&done));
        let repo = if shared {
            Arc::clone(&first)
        } else {
            Arc::new(Repository::open_local_with(&repo_dir, Some(b"snapkeep-test")).expect("open"))
        };
        std::thread::spawn(move || {
            let mut passes = Vec::new();
            let mut failures = Vec::new();
            let mut i = 0u64;
            while !done.load(Ordering::SeqCst) {
                let (records, _) = repo.snapshots().expect("list");
                let forget: Vec<SnapshotId> = if i.is_multiple_of(2) {
                    let policy = snapkeep::retention::RetentionPolicy {
                        keep_last: Some(3),
                        ..Default::default()
                    };
                    policy
                        .plan(
                            &records,
                            snapkeep::clock::now_ns(),
                            snapkeep::retention::GroupBy::default(),
                        )
                        .expect("plan")
                        .forget_ids()
                } else {
                    let n = records.len().saturating_sub(3);
                    records[..n].iter().map(|r| r.id).collect()
                };
                repo.forget(&forget).expect("forget");
                let opts = match i % 3 {
                    0 => grace0(MaxUnused::Percent(0.0)),
                    1 => PruneOptions {
                        grace: Duration::from_millis(100),
                        max_unused: MaxUnused::Percent(5.0),
                        ..PruneOptions::default()
                    },
                    _ => grace0(MaxUnused::Percent(5.0)),
                };
                let before = running.load(Ordering::SeqCst);
                let r = prune(&repo, &opts);
                let after = running.load(Ordering::SeqCst);
                match r {
                    Ok(r) => passes.push(PrunePass::from_report(
                        &r,
                        opts.grace.is_zero(),
                        before || after,
                    )),
                    Err(e) => failures.push(format!("prune {i} failed: {e}")),
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            (passes, failures)
        })
    };

    let repo = if shared {
        Arc::clone(&first)
    } else {
        Arc::new(Repository::open_local_with(&repo_dir, Some(b"snapkeep-test")).expect("open"))
    };
    let mut states = BTreeMap::new();
    let mut failures = Vec::new();
    for round in 0..rounds {
        let state = work.step();
        running.store(true, Ordering::SeqCst);
        let r = snapkeep::snapshot(&repo, &work.src, &BackupOptions::default(), &NoProgress);
        running.store(false, Ordering::SeqCst);
        match r {
            Ok(o) => {
                // Committed means restorable, now, while prunes go on.
                if let Err(e) = restores_as(&repo, &o.record.id, &state, &scratch) {
                    let why = diagnose(&repo_dir, &o.record.id, &state, &scratch);
                    failures.push(format!(
                        "snapshot {round}, right after it committed: {e} ({why})"
                    ));
                }
                states.insert(o.record.id, state);
            }
            Err(e) => failures.push(format!("snapshot {round} failed: {e}")),
        }
    }
    done.store(true, Ordering::SeqCst);
    let (passes, prune_failures) = pruner.join().expect("prune thread");
    failures.extend(prune_failures);
    let what = if shared {
        "threads, one shared Repository"
    } else {
        "threads, one Repository each"
    };
    failures.extend(check_end_state(&repo_dir, &states, &scratch, "at the end"));
    // A last prune (nothing runs now) keeps all of it.
    prune(&repo, &grace0(MaxUnused::Percent(0.0))).expect("final prune");
    failures.extend(check_end_state(
        &repo_dir,
        &states,
        &scratch,
        "after a final prune",
    ));
    eprintln!("{what}: {:.1} s", started.elapsed().as_secs_f64());
    report_interleavings(what, &passes, states.len());
    assert!(failures.is_empty(), "{what}:\n{}", failures.join("\n"));
}

#[test]
fn threads_sharing_one_repository() {
    threads(true, 24, 0x5eed_0001);
}

#[test]
fn threads_with_a_repository_each() {
    threads(false, 24, 0x5eed_0002);
}

fn bin() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_snapkeep"));
    c.env("SNAPKEEP_PASSWORD", "snapkeep-test")
        .env("SNAPKEEP_KDF", "m=64KiB,t=1,p=1");
    c.stdin(std::process::Stdio::null());
    c
}

fn pass_from_json(v: &serde_json::Value, snapshot_running: bool) -> PrunePass {
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v}"));
    PrunePass {
        grace_zero: true,
        snapshot_running,
        deleted: n("deleted_packs"),
        rescued: n("rescued_packs"),
        unmarked: n("unmarked_packs"),
        waiting: n("waiting_packs"),
        repacked: n("repacked_packs"),
    }
}

/// The same with processes: a chain of `snapkeep snapshot` children, and concurrently a chain
/// of `snapkeep forget --keep-last 3 --prune --grace 0` and `snapkeep prune --grace 0`.
#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, its steps in order")]
fn processes_snapshot_and_forget_prune_loops() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo_dir = tmp.path().join("repo");
    let scratch = tmp.path().join("scratch");
    let started = Instant::now();
    let st = bin()
        .args(["--quiet", "--repo"])
        .arg(&repo_dir)
        .args([
            "init",
            "--pack-size",
            "1MiB",
            "--chunk-avg",
            "16KiB",
            "--encryption",
            "none",
        ])
        .status()
        .expect("init");
    assert!(st.success());
    let mut work = Workload::new(tmp.path(), 0x5eed_0003);
    let running = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));

    let pruner = {
        let (running, done, repo_dir) = (Arc::clone(&running), Arc::clone(&done), repo_dir.clone());
        std::thread::spawn(move || {
            let mut passes = Vec::new();
            let mut failures = Vec::new();
            let mut i = 0u64;
            while !done.load(Ordering::SeqCst) {
                let mut c = bin();
                c.args(["--json", "--quiet", "--repo"]).arg(&repo_dir);
                if i.is_multiple_of(2) {
                    c.args([
                        "forget",
                        "--keep-last",
                        "3",
                        "--prune",
                        "--grace",
                        "0",
                        "--max-unused",
                        "0%",
                    ]);
                } else {
                    c.args(["prune", "--grace", "0"]);
                }
                let before = running.load(Ordering::SeqCst);
                let out = c.output().expect("run forget/prune");
                let after = running.load(Ordering::SeqCst);
                if out.status.success() {
                    let v = common::json_of(&out);
                    let p = if i.is_multiple_of(2) { &v["prune"] } else { &v };
                    passes.push(pass_from_json(p, before || after));
                } else {
                    failures.push(format!(
                        "forget/prune {i} exited {:?}: {}",
                        out.status.code(),
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
                i += 1;
            }
            (passes, failures)
        })
    };

    let mut states = BTreeMap::new();
    let mut failures = Vec::new();
    for round in 0..24 {
        let state = work.step();
        running.store(true, Ordering::SeqCst);
        let out = bin()
            .args(["--quiet", "--repo"])
            .arg(&repo_dir)
            .arg("snapshot")
            .arg(&work.src)
            .output()
            .expect("run snapshot");
        running.store(false, Ordering::SeqCst);
        if !out.status.success() {
            failures.push(format!(
                "snapshot {round} exited {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
            continue;
        }
        let id: SnapshotId = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("snapshot prints its id");
        let repo = Repository::open_local_with(&repo_dir, Some(b"snapkeep-test")).expect("open");
        if let Err(e) = restores_as(&repo, &id, &state, &scratch) {
            let why = diagnose(&repo_dir, &id, &state, &scratch);
            failures.push(format!(
                "snapshot {round}, right after it committed: {e} ({why})"
            ));
        }
        states.insert(id, state);
    }
    done.store(true, Ordering::SeqCst);
    let (passes, prune_failures) = pruner.join().expect("prune thread");
    failures.extend(prune_failures);
    failures.extend(check_end_state(&repo_dir, &states, &scratch, "at the end"));
    let out = bin()
        .args(["--quiet", "--repo"])
        .arg(&repo_dir)
        .args(["prune", "--grace", "0", "--max-unused", "0%"])
        .output()
        .expect("final prune");
    common::assert_success(&out, "");
    failures.extend(check_end_state(
        &repo_dir,
        &states,
        &scratch,
        "after a final prune",
    ));
    let what = "processes";
    eprintln!("{what}: {:.1} s", started.elapsed().as_secs_f64());
    report_interleavings(what, &passes, states.len());
    assert!(failures.is_empty(), "{what}:\n{}", failures.join("\n"));
}
