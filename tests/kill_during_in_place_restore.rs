//! `snapkeep restore --in-place` killed with SIGKILL at moments spread over its whole run: after
//! every kill the target holds exactly its old state or exactly the snapshot's (the same file
//! set, the same bytes, the same symlinks), its lock file and `.lifecycle/` untouched; a re-run
//! then finishes, yields the snapshot's state and removes what the killed run left beside the
//! target.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Kills that must land while the restore runs.
const KILLS: usize = 50;
/// Evenly spaced delays over the measured run, the window adapting to the run's speed (then
/// seeded random ones until `KILLS` landed and both outcomes were seen).
const STEPS: u64 = 60;
const MAX_ROUNDS: u64 = 160;

/// What a path holds, for comparing whole trees.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
}

/// Every entry below `dir` except the lock file and `.lifecycle/`.
fn state(dir: &Path) -> BTreeMap<String, Entry> {
    walk(dir)
        .into_iter()
        .filter(|(rel, _)| !(rel == "db.alopex.lock" || rel.starts_with(".lifecycle")))
        .collect()
}

fn walk(dir: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("list") {
            let p = e.expect("entry").path();
            let rel = p
                .strip_prefix(dir)
                .expect("below")
                .to_string_lossy()
                .into_owned();
            let m = fs::symlink_metadata(&p).expect("stat");
            let entry = if m.file_type().is_symlink() {
                Entry::Link(fs::read_link(&p).expect("readlink"))
            } else if m.is_dir() {
                stack.push(p.clone());
                Entry::Dir
            } else {
                Entry::File(fs::read(&p).expect("read"))
            };
            out.insert(rel, entry);
        }
    }
    out
}

/// Makes `dir` hold exactly `want` (plus the protected entries, which stay).
fn reset(dir: &Path, want: &BTreeMap<String, Entry>) {
    for e in fs::read_dir(dir).expect("list") {
        let e = e.expect("entry");
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "db.alopex.lock" || name == ".lifecycle" {
            continue;
        }
        let p = e.path();
        if e.file_type().expect("type").is_dir() {
            fs::remove_dir_all(&p).expect("rm dir");
        } else {
            fs::remove_file(&p).expect("rm");
        }
    }
    for (rel, entry) in want {
        let p = dir.join(rel);
        match entry {
            Entry::Dir => fs::create_dir_all(&p).expect("mkdir"),
            Entry::File(b) => {
                fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
                fs::write(&p, b).expect("write");
                // One fixed mtime: a file whose bytes A and B share is the same file, kept by
                // hard link, as in a database directory.
                fs::File::options()
                    .write(true)
                    .open(&p)
                    .expect("open")
                    .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
                    .expect("mtime");
            }
            Entry::Link(t) => {
                fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
                std::os::unix::fs::symlink(t, &p).expect("symlink");
            }
        }
    }
}

/// State A: 40 files in 4 directories, a symlink, a directory `swap` the later state turns
/// into a file. The later state B changes a third of the files, deletes some, adds 300 small
/// ones (so the old tree takes a while to remove after the exchange).
fn states() -> (BTreeMap<String, Entry>, BTreeMap<String, Entry>) {
    let mut a = BTreeMap::new();
    for d in 0..4 {
        a.insert(format!("d{d}"), Entry::Dir);
        for f in 0..10 {
            let seed = d * 100 + f + 1;
            a.insert(
                format!("d{d}/f{f}.bin"),
                Entry::File(common::random_bytes(
                    12_000 + usize::try_from(seed * 97 % 9_000).expect("small"),
                    seed,
                )),
            );
        }
    }
    a.insert("swap".into(), Entry::Dir);
    a.insert("swap/inner".into(), Entry::File(b"inner of A".to_vec()));
    a.insert("link".into(), Entry::Link(PathBuf::from("d0/f0.bin")));
    let mut b = a.clone();
    for d in 0..4 {
        for f in (0..10).step_by(3) {
            b.insert(
                format!("d{d}/f{f}.bin"),
                Entry::File(common::random_bytes(15_000, 9_000 + d * 10 + f)),
            );
        }
        b.remove(&format!("d{d}/f9.bin"));
    }
    b.remove("swap/inner");
    b.insert("swap".into(), Entry::File(b"swap is a file in B".to_vec()));
    b.insert("link".into(), Entry::Link(PathBuf::from("d1/f1.bin")));
    b.insert("extra".into(), Entry::Dir);
    for i in 0..300 {
        b.insert(
            format!("extra/n{i:03}"),
            Entry::File(format!("extra {i}").into_bytes()),
        );
    }
    (a, b)
}

/// Staging siblings left beside `db`.
fn leftovers(db: &Path) -> Vec<String> {
    fs::read_dir(db.parent().expect("parent"))
        .expect("list")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".db.snapkeep-inplace-"))
        .collect()
}

struct Fixture {
    _tmp: tempfile::TempDir,
    repo: PathBuf,
    db: PathBuf,
    id: String,
    a: BTreeMap<String, Entry>,
    b: BTreeMap<String, Entry>,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("db");
    fs::create_dir_all(db.join(".lifecycle")).expect("mkdir");
    fs::write(db.join("db.alopex.lock"), b"lock").expect("lock");
    fs::write(db.join(".lifecycle/marker"), b"stopped").expect("marker");
    let (a, b) = states();
    reset(&db, &a);
    let repo = tmp.path().join("repo");
    let _ = common::small_repo(&repo);
    let out = snapkeep_cmd(&repo)
        .args(["snapshot"])
        .arg(&db)
        .output()
        .expect("snapshot");
    assert!(out.status.success(), "{}", common::stderr_of(&out));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Fixture {
        _tmp: tmp,
        repo,
        db,
        id,
        a,
        b,
    }
}

fn snapkeep_cmd(repo: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_snapkeep"));
    c.env("SNAPKEEP_PASSWORD", "snapkeep-test")
        .env("SNAPKEEP_KDF", "m=64KiB,t=1,p=1");
    c.args(["--quiet", "--repo"]).arg(repo);
    c
}

fn restore_cmd(f: &Fixture) -> Command {
    let mut c = snapkeep_cmd(&f.repo);
    c.args(["restore", &f.id]).arg(&f.db).arg("--in-place");
    c
}

/// A whole in-place restore of A over B; its duration.
fn full_run(f: &Fixture, what: &str) -> Duration {
    let t = Instant::now();
    let out = restore_cmd(f).output().expect("restore");
    assert!(out.status.success(), "{what}: {}", common::stderr_of(&out));
    let took = t.elapsed();
    assert!(
        state(&f.db) == f.a,
        "{what}: the target is not the snapshot's state"
    );
    assert_eq!(leftovers(&f.db), Vec::<String>::new(), "{what}: leftovers");
    took
}

#[test]
fn sigkill_during_in_place_restore_leaves_the_old_or_the_new_state() {
    let f = fixture();
    let lock_ino = fs::metadata(f.db.join("db.alopex.lock"))
        .expect("lock")
        .ino();
    reset(&f.db, &f.b);
    assert!(state(&f.db) == f.b);
    let span = full_run(&f, "the timed run");
    let mut span_us = u64::try_from(span.as_micros())
        .unwrap_or(u64::MAX)
        .max(1_000);

    let (mut killed, mut old, mut new, mut left) = (0usize, 0usize, 0usize, 0usize);
    let mut seed = 0x51f1_5eed_u64;
    let mut round = 0u64;
    while (round <= STEPS || killed < KILLS || old == 0 || new == 0) && round < MAX_ROUNDS {
        reset(&f.db, &f.b);
        let delay_us = if round <= STEPS {
            span_us * round / STEPS
        } else {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % span_us
        };
        let mut child = restore_cmd(&f)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_micros(delay_us));
        let landed = child.try_wait().expect("poll").is_none();
        if landed {
            child.kill().expect("SIGKILL");
            // The window follows the machine's speed: a kill that landed widens it a little,
            // a run that had already ended narrows it, so the late kills reach the exchange
            // and the removal of the old tree after it.
            span_us += span_us / 20 + 1;
        } else {
            span_us = (span_us * 9 / 10).max(1_000);
        }
        let _ = child.wait();
        let now = state(&f.db);
        let is_old = now == f.b;
        let is_new = now == f.a;
        assert!(
            is_old || is_new,
            "round {round} (kill after {delay_us} µs): the target matches neither the old \
             state nor the snapshot's"
        );
        if landed {
            killed += 1;
            old += usize::from(is_old);
            new += usize::from(is_new);
            left += usize::from(!leftovers(&f.db).is_empty());
        }
        assert_eq!(
            fs::metadata(f.db.join("db.alopex.lock"))
                .expect("lock file kept")
                .ino(),
            lock_ino,
            "round {round}: the lock file was replaced"
        );
        assert_eq!(
            fs::read(f.db.join(".lifecycle/marker")).expect("marker kept"),
            b"stopped"
        );
        full_run(&f, &format!("the re-run after round {round}"));
        round += 1;
    }
    common::report(&format!(
        "SIGKILL delivered during restore --in-place in {killed} of {round} rounds: {old} left \
         the old state, {new} the snapshot's, none anything else; {left} left a staging \
         sibling that the re-run removed"
    ));
    assert!(
        killed >= KILLS,
        "only {killed} kills landed in {round} rounds"
    );
    assert!(old > 0, "no kill landed before the exchange");
    assert!(new > 0, "no kill landed after the exchange");
}
