//! `prune`, `forget --prune` and `unlock` through the CLI: the space the forgotten snapshots
//! alone held is given back, a running prune is respected, stale locks are removed with a
//! note, and bad options are refused.

mod common;

use common::{cli as run, cli_json as json};

use std::fs;
use std::path::Path;

use snapkeep::format::gc::{LockKind, LockRecord};

fn dir_bytes(dir: &Path) -> u64 {
    common::files_under(dir)
        .iter()
        .map(|f| fs::metadata(f).expect("stat").len())
        .sum()
}

fn snapshot(repo: &Path, src: &Path) -> String {
    json(repo, &["snapshot", src.to_str().expect("utf-8")])["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// A repository (in a temp dir) holding one snapshot of a one-file tree.
fn one_snapshot_repo() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    fs::create_dir(&src).expect("mkdir");
    fs::write(src.join("f"), b"data").expect("write");
    let repo = tmp.path().join("repo");
    common::cli_init(&repo);
    snapshot(&repo, &src);
    (tmp, repo)
}

#[test]
fn forget_prune_gives_back_what_the_forgotten_snapshots_alone_held() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    fs::create_dir(&src).expect("mkdir");
    let repo = tmp.path().join("repo");
    let out = run(&repo, &["init", "--chunk-avg", "64KiB"]);
    assert!(out.status.success());
    // Shared by every snapshot: 1 MiB. Each snapshot adds 2 MiB of its own (random, so
    // stored raw), and the next one removes it.
    fs::write(src.join("shared"), common::random_bytes(1 << 20, 1)).expect("write");
    let mut ids = Vec::new();
    for i in 0..4u64 {
        if i > 0 {
            fs::remove_file(src.join(format!("own{}", i - 1))).expect("rm");
        }
        fs::write(
            src.join(format!("own{i}")),
            common::random_bytes(2 << 20, 100 + i),
        )
        .expect("write");
        ids.push(snapshot(&repo, &src));
    }
    let data = repo.join("data");
    let before = dir_bytes(&data);
    let reclaimable = json(&repo, &["stats"])["reclaimable_bytes"]
        .as_u64()
        .expect("reclaimable");
    assert_eq!(reclaimable, 0, "nothing is unused yet");

    // Forget the two oldest: their own files (2 × 2 MiB) are what they alone held; `stats`
    // tells how much a prune would give back.
    json(&repo, &["forget", "--keep-last", "2"]);
    let reclaimable = json(&repo, &["stats"])["reclaimable_bytes"]
        .as_u64()
        .expect("reclaimable");
    // `forget --prune` on what is left forgets nothing more and runs the prune.
    let v = json(
        &repo,
        &[
            "forget",
            "--keep-last",
            "2",
            "--prune",
            "--grace",
            "0",
            "--max-unused",
            "0%",
        ],
    );
    assert_eq!(v["forget"].as_array().expect("forget").len(), 0);
    let p = &v["prune"];
    assert_eq!(p["snapshots"], 2, "{p}");
    assert!(p["deleted_packs"].as_u64().expect("deleted") > 0, "{p}");
    assert_eq!(p["waiting_packs"], 0, "{p}");
    let after = dir_bytes(&data);
    let dropped = before - after;
    let alone = 2 * (2u64 << 20);
    // Pack overhead (headers, trailers, 48 bytes per chunk) is the only slack.
    assert!(
        dropped >= alone && dropped <= alone + alone / 50,
        "dropped {dropped} bytes, the forgotten snapshots alone held {alone}"
    );
    assert!(
        reclaimable.abs_diff(dropped) <= dropped / 50,
        "stats said {reclaimable} bytes were reclaimable, prune gave back {dropped}"
    );
    assert_eq!(json(&repo, &["stats"])["reclaimable_bytes"], 0);
    assert_eq!(json(&repo, &["verify", "--read-data"])["ok"], true);
    for id in &ids[2..] {
        let target = tmp.path().join(format!("r-{id}"));
        json(&repo, &["restore", id, target.to_str().expect("utf-8")]);
        assert_eq!(
            fs::read(target.join("shared")).expect("read"),
            fs::read(src.join("shared")).expect("read")
        );
    }
    // Nothing left to do: a second prune changes nothing.
    let again = json(&repo, &["prune", "--grace", "0"]);
    assert_eq!(again["marked_packs"], 0, "{again}");
    assert_eq!(again["deleted_packs"], 0, "{again}");
    assert_eq!(dir_bytes(&data), after);
}

#[test]
fn prune_respects_a_running_prune_and_removes_a_dead_ones_lock() {
    let (_tmp, repo) = one_snapshot_repo();
    let host = snapkeep::clock::hostname();
    let now = snapkeep::clock::now_ns();
    // This test process is alive on this host: its prune lock is respected.
    let live = LockRecord {
        kind: LockKind::Prune,
        purpose: "prune".into(),
        host: host.clone(),
        boot_id: snapkeep::clock::boot_id(),
        pid: std::process::id(),
        started_ns: now,
        heartbeat_ns: now,
        seen_marks: Vec::new(),
    };
    fs::write(repo.join("locks/prune"), live.to_bytes()).expect("write lock");
    let out = run(&repo, &["prune"]);
    assert_eq!(out.status.code(), Some(3), "a second prune must wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another prune") && err.contains("unlock"),
        "{err}"
    );
    // `unlock` keeps it (still running) ...
    let v = json(&repo, &["unlock"]);
    assert_eq!(v["removed"].as_array().expect("removed").len(), 0, "{v}");
    assert!(repo.join("locks/prune").exists());

    // ... but a lock whose process is gone is removed by the next prune, which says so.
    let dead = dead_pid();
    let stale = LockRecord { pid: dead, ..live };
    fs::write(repo.join("locks/prune"), stale.to_bytes()).expect("write lock");
    let v = json(&repo, &["prune", "--grace", "0"]);
    let notes: Vec<&str> = v["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("locks/prune") && n.contains(&format!("process {dead}"))),
        "{notes:?}"
    );
    assert!(!repo.join("locks/prune").exists());

    // A job lock of a dead process: `unlock` removes it and says whose it was.
    let job = LockRecord {
        kind: LockKind::Job,
        purpose: "snapshot".into(),
        ..stale
    };
    fs::write(repo.join("locks/0123456789abcdef"), job.to_bytes()).expect("write lock");
    let out = run(&repo, &["unlock"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("locks/0123456789abcdef") && text.contains("snapshot"),
        "{text}"
    );
    assert!(!repo.join("locks/0123456789abcdef").exists());
    // And a live one only goes with --remove-all.
    let live_job = LockRecord {
        pid: std::process::id(),
        ..job
    };
    fs::write(repo.join("locks/fedcba9876543210"), live_job.to_bytes()).expect("write lock");
    assert_eq!(
        json(&repo, &["unlock"])["removed"]
            .as_array()
            .expect("removed")
            .len(),
        0
    );
    assert_eq!(
        json(&repo, &["unlock", "--remove-all"])["removed"]
            .as_array()
            .expect("removed")
            .len(),
        1
    );
}

#[test]
fn prune_dry_run_and_bad_options() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    fs::create_dir(&src).expect("mkdir");
    let repo = tmp.path().join("repo");
    common::cli_init(&repo);
    fs::write(src.join("f"), common::random_bytes(300_000, 5)).expect("write");
    let first = snapshot(&repo, &src);
    fs::write(src.join("f"), common::random_bytes(300_000, 6)).expect("write");
    snapshot(&repo, &src);
    json(&repo, &["forget", &first]);
    let before = common::files_under(&repo);
    let v = json(&repo, &["prune", "--dry-run", "--grace", "0"]);
    assert_eq!(v["dry_run"], true);
    assert!(v["marked_packs"].as_u64().expect("marked") > 0, "{v}");
    assert_eq!(common::files_under(&repo), before, "a dry run wrote");
    for bad in [
        vec!["prune", "--grace", "soon"],
        vec!["prune", "--grace", "5"],
        vec!["prune", "--max-unused", "150%"],
        vec!["prune", "--max-unused", "lots"],
    ] {
        let out = run(&repo, &bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(bad[2]), "{bad:?}: {err}");
    }
    assert_eq!(common::files_under(&repo), before, "a refused prune wrote");
    // The human form says what it did.
    let out = run(&repo, &["prune", "--grace", "0"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("delete") && text.contains("packs"), "{text}");
}

/// A pid that ran on this host and is gone now.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().expect("spawn");
    let pid = child.id();
    child.wait().expect("wait");
    pid
}

/// Writes a staged file into the repository's `tmp/`, last modified `idle` ago.
fn staged(repo: &Path, name: &str, idle: std::time::Duration) -> std::path::PathBuf {
    let path = repo.join("tmp").join(name);
    fs::create_dir_all(repo.join("tmp")).expect("mkdir");
    fs::write(&path, vec![7u8; 1000]).expect("write");
    let f = fs::File::options().write(true).open(&path).expect("open");
    f.set_modified(std::time::SystemTime::now() - idle)
        .expect("set mtime");
    path
}

#[test]
fn prune_removes_what_stopped_processes_left_in_tmp() {
    let (_tmp, repo) = one_snapshot_repo();
    let hour = std::time::Duration::from_secs(3600);
    let (dead, locked_dead) = (dead_pid(), dead_pid());
    let me = std::process::id();
    // Left over: an hour idle, its process gone, no lock names it.
    let gone_pack = staged(&repo, &format!("pack-{dead}-0badf00d-3.tmp"), hour);
    let gone_obj = staged(&repo, &format!("{dead}-0badf00d-77-12.tmp"), hour);
    // Kept: idle for less than the stale bound (10 min).
    let young = staged(
        &repo,
        &format!("pack-{dead}-0badf00d-4.tmp"),
        std::time::Duration::from_secs(60),
    );
    // Kept: its process (this test) is alive.
    let alive = staged(&repo, &format!("pack-{me}-0badf00d-5.tmp"), hour);
    // Kept: a live job lock on another host carries its pid.
    let remote = staged(&repo, &format!("pack-{locked_dead}-0badf00d-6.tmp"), hour);
    let now = snapkeep::clock::now_ns();
    let lock = LockRecord {
        kind: LockKind::Job,
        purpose: "snapshot".into(),
        host: "another-host".into(),
        boot_id: String::new(),
        pid: locked_dead,
        started_ns: now,
        heartbeat_ns: now,
        seen_marks: Vec::new(),
    };
    fs::write(repo.join("locks/0123456789abcdef"), lock.to_bytes()).expect("write lock");
    // Not ours: a name without a pid.
    let other = staged(&repo, "notes.txt", hour);

    // A dry run reports them and removes nothing.
    let v = json(&repo, &["prune", "--dry-run"]);
    assert_eq!(v["staging_files_removed"], 2, "{v}");
    assert_eq!(v["staging_bytes_removed"], 2000, "{v}");
    assert!(gone_pack.exists() && gone_obj.exists());

    let v = json(&repo, &["prune"]);
    assert_eq!(v["staging_files_removed"], 2, "{v}");
    let notes = v["notes"].to_string();
    assert!(
        notes.contains("removed 2 staged file(s) (2000 bytes)"),
        "{notes}"
    );
    assert!(!gone_pack.exists() && !gone_obj.exists());
    for kept in [&young, &alive, &remote, &other] {
        assert!(kept.exists(), "{} was removed", kept.display());
    }
    // Once the lock is gone, the other host's leftover goes too.
    fs::remove_file(repo.join("locks/0123456789abcdef")).expect("unlock");
    let v = json(&repo, &["prune"]);
    assert_eq!(v["staging_files_removed"], 1, "{v}");
    assert!(!remote.exists());
    assert!(run(&repo, &["verify"]).status.success());
}

#[test]
fn prune_tells_a_reused_pid_from_its_own_files() {
    let (_tmp, repo_dir) = one_snapshot_repo();
    let hour = std::time::Duration::from_secs(3600);
    let me = std::process::id();
    let token = snapkeep::backend::process_token();
    // An earlier process with this pid (a container's pid 1 after a restart) left a pack.
    let earlier = staged(&repo_dir, &format!("pack-{me}-0badf00d-1.tmp"), hour);
    // This process's own staged file is never touched, however old.
    let own = staged(&repo_dir, &format!("pack-{me}-{token}-2.tmp"), hour);
    let repo =
        snapkeep::Repository::open_local_with(&repo_dir, Some(b"snapkeep-test")).expect("open");
    let r =
        snapkeep::prune::prune(&repo, &snapkeep::prune::PruneOptions::default()).expect("prune");
    assert_eq!(r.staging_files_removed, 1, "{:?}", r.notes);
    assert!(!earlier.exists());
    assert!(own.exists());
}
