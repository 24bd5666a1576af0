//! Model test of retention and prune: random sequences of write / snapshot / forget / prune /
//! restore. After every prune, every kept snapshot restores byte-identical to the state it was
//! taken of, and every blob a kept snapshot reaches is in the index; at the end
//! `verify --read-data` finds nothing.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use snapkeep::format::manifest::NodeKind;
use snapkeep::prune::{MaxUnused, PruneOptions};
use snapkeep::{BackupOptions, NoProgress, Repository, RestoreOptions, SnapshotId};

#[derive(Clone, Debug)]
enum Op {
    /// Writes file `file` with `kib` KiB from content seed `seed` (few seeds: shared data).
    Write {
        file: u8,
        seed: u8,
        kib: u16,
    },
    Remove {
        file: u8,
    },
    Snapshot,
    Forget {
        pick: usize,
    },
    /// `grace0`: delete in this run; otherwise only mark. `limit`: 0%, 5%, unlimited.
    Prune {
        grace0: bool,
        limit: u8,
    },
    Restore {
        pick: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..5, 0u8..6, 1u16..160).prop_map(|(file, seed, kib)| Op::Write { file, seed, kib }),
        1 => (0u8..5).prop_map(|file| Op::Remove { file }),
        3 => Just(Op::Snapshot),
        2 => any::<usize>().prop_map(|pick| Op::Forget { pick }),
        2 => (any::<bool>(), 0u8..3).prop_map(|(grace0, limit)| Op::Prune { grace0, limit }),
        1 => any::<usize>().prop_map(|pick| Op::Restore { pick }),
    ]
}

type State = BTreeMap<String, Vec<u8>>;

fn content(seed: u8, kib: u16) -> Vec<u8> {
    // Files with the same seed share their prefix: chunks dedup across files and snapshots.
    common::random_bytes(usize::from(kib) * 1024, u64::from(seed) + 1)
}

fn restore_matches(repo: &Repository, id: &SnapshotId, want: &State, scratch: &Path) {
    let target = scratch.join(format!("r-{id}"));
    snapkeep::restore(repo, id, &target, &RestoreOptions::default(), &NoProgress)
        .unwrap_or_else(|e| panic!("restore of kept snapshot {id}: {e}"));
    let mut got = State::new();
    for e in fs::read_dir(&target).expect("list").flatten() {
        got.insert(
            e.file_name().to_string_lossy().into_owned(),
            fs::read(e.path()).expect("read"),
        );
    }
    assert!(got == *want, "snapshot {id} restored different content");
    fs::remove_dir_all(&target).expect("clean");
}

fn all_blobs_indexed(repo: &Repository, id: &SnapshotId) {
    let rec = repo.load_snapshot(id).expect("record");
    let index = repo.index();
    let mut stack = vec![rec.tree];
    while let Some(t) = stack.pop() {
        assert!(index.contains(&t), "tree {t} of {id} left the index");
        for n in repo.load_tree(&t).expect("tree").nodes {
            match n.kind {
                NodeKind::Dir { tree } => stack.push(tree),
                NodeKind::File { chunks, .. } => {
                    for c in chunks {
                        assert!(
                            index.contains(&c.id),
                            "chunk {} of {id} left the index",
                            c.id
                        );
                    }
                }
                NodeKind::Symlink { .. } => {}
            }
        }
    }
}

/// Totals over every prune of the run: (deleted packs, repacked packs, moved blobs).
#[expect(clippy::too_many_lines, reason = "one scenario, its steps in order")]
fn run(ops: &[Op]) -> (u64, u64, u64) {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    fs::create_dir(&src).expect("mkdir");
    let repo_dir = tmp.path().join("repo");
    let repo = common::small_packs_repo(&repo_dir);
    let mut state = State::new();
    let mut kept: Vec<(SnapshotId, State)> = Vec::new();
    let mut forgotten: Vec<SnapshotId> = Vec::new();
    let mut totals = (0, 0, 0);
    for op in ops {
        match op {
            Op::Write { file, seed, kib } => {
                let name = format!("f{file}");
                let data = content(*seed, *kib);
                fs::write(src.join(&name), &data).expect("write");
                state.insert(name, data);
            }
            Op::Remove { file } => {
                let name = format!("f{file}");
                if state.remove(&name).is_some() {
                    fs::remove_file(src.join(&name)).expect("remove");
                }
            }
            Op::Snapshot => {
                let out = snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress)
                    .expect("snapshot");
                kept.push((out.record.id, state.clone()));
            }
            Op::Forget { pick } => {
                if !kept.is_empty() {
                    let (id, _) = kept.remove(pick % kept.len());
                    repo.forget(&[id]).expect("forget");
                    forgotten.push(id);
                }
            }
            Op::Prune { grace0, limit } => {
                let prune_opts = PruneOptions {
                    grace: if *grace0 {
                        Duration::ZERO
                    } else {
                        Duration::from_secs(3600)
                    },
                    max_unused: match limit {
                        0 => MaxUnused::Percent(0.0),
                        1 => MaxUnused::Percent(5.0),
                        _ => MaxUnused::Unlimited,
                    },
                    ..PruneOptions::default()
                };
                let report = snapkeep::prune::prune(&repo, &prune_opts).expect("prune");
                totals.0 += report.deleted_packs;
                totals.1 += report.repacked_packs;
                totals.2 += report.moved_blobs;
                if !grace0 {
                    assert_eq!(
                        report.deleted_packs, 0,
                        "grace 1h deleted packs: {report:?}"
                    );
                }
                assert_eq!(report.rescued_packs, 0, "nothing to rescue: {report:?}");
                for (id, want) in &kept {
                    all_blobs_indexed(&repo, id);
                    restore_matches(&repo, id, want, tmp.path());
                }
            }
            Op::Restore { pick } => {
                if !kept.is_empty() {
                    let (id, want) = &kept[pick % kept.len()];
                    restore_matches(&repo, id, want, tmp.path());
                }
            }
        }
    }
    // A final collection leaves only what kept snapshots need, within the unused limit.
    let last = snapkeep::prune::prune(
        &repo,
        &PruneOptions {
            grace: Duration::ZERO,
            max_unused: MaxUnused::Percent(0.0),
            ..PruneOptions::default()
        },
    )
    .expect("final prune");
    assert_eq!(last.waiting_packs, 0, "{last:?}");
    assert_eq!(last.unused_bytes_after, 0, "{last:?}");
    for (id, want) in &kept {
        restore_matches(&repo, id, want, tmp.path());
    }
    for id in &forgotten {
        assert!(repo.load_snapshot(id).is_err(), "forgotten {id} came back");
    }
    let report = common::verify_read_data(&repo);
    assert!(report.ok(), "{:?}", report.findings);
    if kept.is_empty() {
        assert!(
            common::pack_files(&repo_dir).is_empty(),
            "no snapshot left, yet packs remain"
        );
    }
    totals
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn prune_never_loses_what_a_kept_snapshot_needs(ops in prop::collection::vec(op(), 1..16)) {
        let _ = run(&ops);
    }
}

#[test]
fn a_fixed_sequence_deletes_and_repacks() {
    // Two snapshots share f0; forgetting the first leaves its f1 unused (delete) and a pack
    // mixing live and dead blobs (repack at a 0% limit).
    let (deleted, repacked, moved) = run(&[
        Op::Write {
            file: 0,
            seed: 0,
            kib: 100,
        },
        Op::Write {
            file: 1,
            seed: 1,
            kib: 150,
        },
        Op::Snapshot,
        Op::Remove { file: 1 },
        Op::Write {
            file: 2,
            seed: 2,
            kib: 40,
        },
        Op::Snapshot,
        Op::Forget { pick: 0 },
        Op::Prune {
            grace0: false,
            limit: 0,
        },
        Op::Restore { pick: 0 },
        Op::Prune {
            grace0: true,
            limit: 0,
        },
    ]);
    assert!(deleted > 0, "nothing was deleted");
    assert!(repacked > 0 && moved > 0, "nothing was repacked");
}
