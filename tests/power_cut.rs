//! Power cuts: a store that keeps only what was made durable (`CrashBackend`) loses power at
//! every sync of a whole snapshot and of a whole prune, in turn. After each cut the repository
//! as found on "reboot" opens, verifies clean (`--read-data`), lists no partial snapshot, every
//! listed snapshot restores byte-identical, and the next snapshot and prune work.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use snapkeep::backend::{Backend, CrashBackend};
use snapkeep::prune::{MaxUnused, PruneOptions};
use snapkeep::{BackupOptions, InitOptions, NoProgress, Repository, RestoreOptions, SnapshotId};

type Image = Vec<(String, Vec<u8>)>;

/// The machine reboots: locks left by the cut process now carry an earlier boot's id.
fn reboot(image: Image) -> Image {
    image
        .into_iter()
        .map(|(k, v)| {
            if k.starts_with("locks/") {
                let mut l = snapkeep::format::gc::LockRecord::from_bytes(&v, &k).expect("lock");
                l.boot_id = "boot-before-the-power-cut".into();
                (k, l.to_bytes())
            } else {
                (k, v)
            }
        })
        .collect()
}

fn state(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    common::files_under(dir)
        .into_iter()
        .map(|f| {
            (
                f.strip_prefix(dir)
                    .expect("under")
                    .to_string_lossy()
                    .into_owned(),
                fs::read(&f).expect("read"),
            )
        })
        .collect()
}

fn open(image: Image, cut_at: u64, staging: &Path) -> (Arc<CrashBackend>, Repository) {
    let b = Arc::new(CrashBackend::new(image, cut_at).with_staging(staging));
    let repo = Repository::open(Arc::clone(&b) as Arc<dyn Backend>).expect("open");
    (b, repo)
}

/// Checks a rebooted repository; returns the listed snapshot ids.
fn check_after_cut(
    image: Image,
    staging: &Path,
    states: &BTreeMap<SnapshotId, BTreeMap<String, Vec<u8>>>,
    scratch: &Path,
) -> Vec<SnapshotId> {
    let (_, repo) = open(image, u64::MAX, staging);
    let report = common::verify_read_data(&repo);
    assert!(report.ok(), "{:?}", report.findings);
    let (records, bad) = repo.snapshots().expect("list");
    assert!(bad.is_empty(), "{bad:?}");
    let ids: Vec<SnapshotId> = records.iter().map(|r| r.id).collect();
    for id in &ids {
        let want = states
            .get(id)
            .unwrap_or_else(|| panic!("snapshot {id} listed but never taken"));
        let target = scratch.join(format!("r-{id}"));
        snapkeep::restore(&repo, id, &target, &RestoreOptions::default(), &NoProgress)
            .expect("restore");
        assert!(
            state(&target) == *want,
            "snapshot {id} restored different bytes"
        );
        fs::remove_dir_all(&target).expect("clean");
    }
    ids
}

struct Fixture {
    _tmp: tempfile::TempDir,
    staging: PathBuf,
    scratch: PathBuf,
    src: PathBuf,
    base: Image,
    states: BTreeMap<SnapshotId, BTreeMap<String, Vec<u8>>>,
    forgotten: SnapshotId,
}

/// Three snapshots with shared and own data; the first is forgotten.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().expect("tmp");
    let staging = tmp.path().join("staging");
    let scratch = tmp.path().join("scratch");
    let src = tmp.path().join("src");
    fs::create_dir_all(&staging).expect("mkdir");
    fs::create_dir_all(&scratch).expect("mkdir");
    let b = Arc::new(CrashBackend::new(Vec::new(), u64::MAX).with_staging(&staging));
    let repo = Repository::init(
        Arc::clone(&b) as Arc<dyn Backend>,
        &InitOptions {
            chunker: common::params(16 * 1024),
            pack_size: 1 << 20,
            ..InitOptions::default()
        },
    )
    .expect("init");
    let mut states = BTreeMap::new();
    let mut ids = Vec::new();
    for i in 0..3u64 {
        common::write_file(&src.join("shared.bin"), &common::random_bytes(400_000, 1));
        common::write_file(
            &src.join(format!("d/own{i}.bin")),
            &common::random_bytes(700_000, 10 + i),
        );
        if i > 0 {
            fs::remove_file(src.join(format!("d/own{}.bin", i - 1))).expect("rm");
        }
        let rec = snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress)
            .expect("snapshot")
            .record;
        states.insert(rec.id, state(&src));
        ids.push(rec.id);
    }
    repo.forget(&[ids[0]]).expect("forget");
    let base = b.durable_image();
    Fixture {
        _tmp: tmp,
        staging,
        scratch,
        src,
        base,
        states,
        forgotten: ids[0],
    }
}

#[test]
fn power_cut_at_every_sync_of_a_snapshot() {
    let mut fx = fixture();
    common::write_file(
        &fx.src.join("d/new.bin"),
        &common::random_bytes(900_000, 99),
    );
    let new_state = state(&fx.src);
    let mut cuts = 0;
    let mut committed_before_cut = 0;
    for n in 0.. {
        let (b, repo) = open(fx.base.clone(), n, &fx.staging);
        let result = snapkeep::snapshot(&repo, &fx.src, &BackupOptions::default(), &NoProgress);
        if !b.cut() {
            let rec = result.expect("no cut: the snapshot succeeds").record;
            eprintln!("snapshot: {n} syncs, power cut at each of them");
            // Lock, flush of the packs, index file, record, lock removal.
            assert!(n >= 5, "a snapshot makes at least 5 syncs");
            fx.states.insert(rec.id, new_state.clone());
            break;
        }
        cuts += 1;
        // The id is unknown when the snapshot failed; a committed record must match the new
        // state, so register the state under any id the image lists that we do not know.
        let image = reboot(b.durable_image());
        let (_, probe) = open(image.clone(), u64::MAX, &fx.staging);
        let mut states = fx.states.clone();
        for id in probe.snapshot_ids().expect("ids") {
            states.entry(id).or_insert_with(|| {
                committed_before_cut += 1;
                new_state.clone()
            });
        }
        let ids = check_after_cut(image.clone(), &fx.staging, &states, &fx.scratch);
        assert!(
            !ids.contains(&fx.forgotten),
            "a forgotten snapshot came back"
        );
        // The next snapshot on the rebooted store works.
        let (_, repo) = open(image, u64::MAX, &fx.staging);
        snapkeep::snapshot(&repo, &fx.src, &BackupOptions::default(), &NoProgress)
            .expect("snapshot after the cut");
    }
    common::report(&format!(
        "{cuts} power cuts; {committed_before_cut} left a committed snapshot"
    ));
    assert!(cuts >= 5);
    assert!(
        committed_before_cut >= 1,
        "a cut after the record's sync keeps the snapshot"
    );
}

#[test]
fn power_cut_at_every_sync_of_a_prune() {
    let fx = fixture();
    let opts = PruneOptions {
        grace: Duration::ZERO,
        max_unused: MaxUnused::Percent(0.0),
        ..PruneOptions::default()
    };
    let clean = {
        let (b, repo) = open(fx.base.clone(), u64::MAX, &fx.staging);
        let r = snapkeep::prune::prune(&repo, &opts).expect("clean prune");
        assert!(r.deleted_packs > 0, "{r:?}");
        assert!(r.repacked_packs > 0, "{r:?}");
        b.durable_image()
            .iter()
            .filter(|(k, _)| k.starts_with("data/"))
            .map(|(_, v)| v.len() as u64)
            .sum::<u64>()
    };
    let mut cuts = 0;
    let mut waited_none = 0;
    for n in 0.. {
        let (b, repo) = open(fx.base.clone(), n, &fx.staging);
        let result = snapkeep::prune::prune(&repo, &opts);
        if !b.cut() {
            result.expect("no cut: the prune succeeds");
            eprintln!("prune: {n} syncs, power cut at each of them");
            break;
        }
        cuts += 1;
        let image = reboot(b.durable_image());
        if result.is_ok() {
            // Only the release of its lock (in drop) met the cut: the work was done.
            assert!(
                image.iter().any(|(k, _)| k == "locks/prune"),
                "a prune that lost power before its end reported success"
            );
        }
        let locks_left = image
            .iter()
            .filter(|(k, _)| k.starts_with("locks/"))
            .count();
        let ids = check_after_cut(image.clone(), &fx.staging, &fx.states, &fx.scratch);
        assert_eq!(ids.len(), 2, "both kept snapshots are listed");
        // A prune on the rebooted store finishes the job.
        let (b2, repo) = open(image, u64::MAX, &fx.staging);
        let r = snapkeep::prune::prune(&repo, &opts).expect("prune after the cut");
        let removed = r.notes.iter().filter(|n| n.contains("booted")).count();
        assert!(
            removed >= locks_left,
            "stale locks not removed: {:?}",
            r.notes
        );
        let again = check_after_cut(b2.durable_image(), &fx.staging, &fx.states, &fx.scratch);
        assert_eq!(again.len(), 2);
        let data: u64 = b2
            .durable_image()
            .iter()
            .filter(|(k, _)| k.starts_with("data/"))
            .map(|(_, v)| v.len() as u64)
            .sum();
        // Marks of the cut prune wait one more run unless this one swept them; when none
        // wait, the space is what a prune without a cut leaves.
        if r.waiting_packs == 0 {
            assert!(
                data <= clean + clean / 100,
                "after cut {n}: {data} pack bytes, a clean prune leaves {clean}: {r:?}"
            );
            waited_none += 1;
        }
    }
    common::report(&format!(
        "{cuts} power cuts during prune; {waited_none} follow-up prunes reached the clean size"
    ));
    assert!(cuts > 3);
    assert!(clean > 0);
}
