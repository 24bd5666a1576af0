//! Bad input never costs data (reliability issue, "bad input" list): a missing or non-directory
//! source, unreadable files and directories, fifos, sockets and devices, symlink loops,
//! non-UTF-8 names, files deleted, swapped, grown or shrunk between the walk and the read, a
//! read-only repository and two snapshots racing into one repository.
//!
//! Each case ends either in a clear error (one sentence naming the path, the contract's exit
//! code, never a panic or a hang) or in a counted, reported skip (`skipped` > 0 and a warning
//! naming the path), and afterwards every earlier snapshot still verifies with `--read-data`
//! and restores what it stored. The tests run as root and drop to `nobody` (65534) where
//! permissions matter; every child process is killed (and the test failed) after 60 s.

mod common;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, Permissions};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use snapkeep::format::manifest::{FLAG_CHANGED_DURING_READ, NodeKind};
use snapkeep::{BackupOptions, Phase, Progress};

/// uid and gid of `nobody`.
const NOBODY: u32 = 65534;
/// No child may run longer than this.
const TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum User {
    Root,
    Nobody,
}

// ---------------------------------------------------------------------------------------------
// Running the CLI with a timeout
// ---------------------------------------------------------------------------------------------

/// A spawned child whose output is drained by two threads (so a full pipe cannot block it).
struct Running {
    what: String,
    child: Child,
    started: Instant,
    out: JoinHandle<Vec<u8>>,
    err: JoinHandle<Vec<u8>>,
}

fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

fn spawn(mut cmd: Command, what: &str) -> Running {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn snapkeep");
    let out = drain(child.stdout.take().expect("child stdout"));
    let err = drain(child.stderr.take().expect("child stderr"));
    Running {
        what: what.to_owned(),
        child,
        started: Instant::now(),
        out,
        err,
    }
}

impl Running {
    /// Waits for the child (at most [`TIMEOUT`] after it started); a hang, a signal or a panic
    /// (exit 101) fails the test.
    fn finish(mut self) -> Output {
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            if self.started.elapsed() > TIMEOUT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let err = self.err.join().unwrap_or_default();
                panic!(
                    "{}: still running after {TIMEOUT:?} (hang; killed); stderr: {}",
                    self.what,
                    String::from_utf8_lossy(&err)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let stdout = self.out.join().expect("stdout reader");
        let stderr = self.err.join().expect("stderr reader");
        let out = Output {
            status,
            stdout,
            stderr,
        };
        assert!(
            status.code().is_some(),
            "{}: killed by a signal ({status:?}); stderr: {}",
            self.what,
            stderr_of(&out)
        );
        assert_ne!(
            status.code(),
            Some(101),
            "{}: panicked; stderr: {}",
            self.what,
            stderr_of(&out)
        );
        out
    }
}

fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

/// stdout as exactly one JSON document.
fn json_of(o: &Output, what: &str) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: stdout is not one JSON document ({e}): {}; stderr: {}",
            String::from_utf8_lossy(&o.stdout),
            stderr_of(o)
        )
    })
}

fn utf8(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

fn chown_nobody(p: &Path) {
    std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY)).expect("chown to nobody");
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, Permissions::from_mode(mode)).expect("chmod");
}

/// A private world: a directory traversable by `nobody` (0755, unlike a 0700 tempdir), a
/// `home` and an `out` directory `nobody` owns, and a clean environment for every child.
struct Sandbox {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    restores: Cell<u32>,
}

impl Sandbox {
    fn new() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("snapkeep-bad-input-")
            .tempdir()
            .expect("tempdir");
        chmod(tmp.path(), 0o755);
        let root = tmp.path().to_path_buf();
        for d in ["home", "out"] {
            fs::create_dir(root.join(d)).expect("mkdir");
            chown_nobody(&root.join(d));
        }
        Sandbox {
            _tmp: tmp,
            root,
            restores: Cell::new(0),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// A fresh restore target `nobody` may create (below `out`).
    fn fresh_target(&self) -> PathBuf {
        let n = self.restores.get();
        self.restores.set(n + 1);
        self.path(&format!("out/restore-{n}"))
    }

    fn cmd(&self, user: User, repo: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_snapkeep"));
        c.env_remove("SNAPKEEP_REPO")
            .env("HOME", self.path("home"))
            .env("XDG_DATA_HOME", self.path("home/xdg"))
            .current_dir(&self.root)
            .arg("--repo")
            .arg(repo)
            .args(args);
        if user == User::Nobody {
            c.uid(NOBODY).gid(NOBODY);
        }
        c
    }

    /// Runs the CLI (with a timeout); any exit code but a panic is returned.
    fn run(&self, user: User, repo: &Path, args: &[&str]) -> Output {
        spawn(
            self.cmd(user, repo, args),
            &format!("snapkeep {args:?} as {user:?}"),
        )
        .finish()
    }

    /// Runs the CLI with `--json`; it must exit 0.
    fn json(&self, user: User, repo: &Path, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(user, repo, &all);
        assert_eq!(
            code(&out),
            0,
            "snapkeep {args:?} as {user:?} failed: {}",
            stderr_of(&out)
        );
        json_of(&out, &format!("{args:?}"))
    }

    /// `snapshot --json SRC`: exit 0 and the snapshot document.
    fn snapshot(&self, user: User, repo: &Path, src: &Path) -> Value {
        let v = self.json(user, repo, &["snapshot", utf8(src)]);
        assert!(v["id"].is_string(), "no id in {v}");
        v
    }

    /// Nothing stored was lost: `verify --read-data` is clean, every snapshot in `expected`
    /// is listed and restores exactly the tree it stored.
    fn assert_intact(&self, user: User, repo: &Path, expected: &[(&str, &Tree)]) {
        let out = self.run(user, repo, &["--json", "verify", "--read-data"]);
        let v = json_of(&out, "verify");
        assert_eq!(
            (code(&out), &v["ok"]),
            (0, &Value::Bool(true)),
            "verify --read-data found problems: {v}; stderr: {}",
            stderr_of(&out)
        );
        let listed = self.json(user, repo, &["list"]);
        let ids: Vec<&str> = listed
            .as_array()
            .expect("list is an array")
            .iter()
            .filter_map(|s| s["id"].as_str())
            .collect();
        for (id, tree) in expected {
            assert!(
                ids.contains(id),
                "snapshot {id} is no longer listed: {ids:?}"
            );
            let target = self.fresh_target();
            self.json(user, repo, &["restore", id, utf8(&target)]);
            let got = tree_of(&target);
            assert!(
                got == **tree,
                "snapshot {id} no longer restores what it stored:\n got {:?}\nwant {:?}",
                got.keys()
                    .map(|k| String::from_utf8_lossy(k))
                    .collect::<Vec<_>>(),
                tree.keys()
                    .map(|k| String::from_utf8_lossy(k))
                    .collect::<Vec<_>>()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Trees as data
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    File(Vec<u8>),
    Dir,
    Link(Vec<u8>),
    Special,
}

/// Relative path (raw bytes) → entry, for everything below `dir`; symlinks are not followed.
type Tree = BTreeMap<Vec<u8>, Entry>;

fn tree_of(dir: &Path) -> Tree {
    fn walk(base: &Path, dir: &Path, out: &mut Tree) {
        for e in fs::read_dir(dir).expect("read_dir") {
            let e = e.expect("entry");
            let path = e.path();
            let rel = path
                .strip_prefix(base)
                .expect("below base")
                .as_os_str()
                .as_bytes()
                .to_vec();
            let ft = fs::symlink_metadata(&path).expect("lstat").file_type();
            if ft.is_dir() {
                out.insert(rel, Entry::Dir);
                walk(base, &path, out);
            } else if ft.is_symlink() {
                let t = fs::read_link(&path).expect("readlink");
                out.insert(rel, Entry::Link(t.as_os_str().as_bytes().to_vec()));
            } else if ft.is_file() {
                out.insert(rel, Entry::File(fs::read(&path).expect("read")));
            } else {
                out.insert(rel, Entry::Special);
            }
        }
    }
    let mut out = Tree::new();
    walk(dir, dir, &mut out);
    out
}

/// Every path below `dir` with its type, size, mode and mtime (to prove nothing changed).
fn listing(dir: &Path) -> Vec<(PathBuf, u32, u64, i64, i64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            let m = fs::symlink_metadata(&p).expect("lstat");
            if m.is_dir() {
                stack.push(p.clone());
            }
            out.push((p, m.mode(), m.len(), m.mtime(), m.mtime_nsec()));
        }
    }
    out.sort();
    out
}

fn warnings_of(v: &Value) -> Vec<String> {
    v["warnings"]
        .as_array()
        .unwrap_or_else(|| panic!("no warnings array in {v}"))
        .iter()
        .map(|w| w.as_str().expect("warning is a string").to_owned())
        .collect()
}

/// Some warning names `path`.
fn assert_warned(warnings: &[String], path: &Path) {
    let p = path.display().to_string();
    assert!(
        warnings.iter().any(|w| w.contains(&p)),
        "no warning names {p}: {warnings:?}"
    );
}

/// An error message: one sentence on one line of stderr, naming `path`.
fn assert_one_line_naming(o: &Output, path: &Path) {
    let err = stderr_of(o);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {err}");
    assert!(
        lines[0].contains(&path.display().to_string()),
        "the error does not name {}: {err}",
        path.display()
    );
}

fn write(path: &Path, data: &[u8]) {
    common::write_file(path, data);
}

fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(st.success(), "mkfifo {} failed", path.display());
}

/// A source with a few ordinary files, and the repository with one snapshot of it: the data
/// that must survive whatever the case does next.
fn baseline(sb: &Sandbox, user: User, repo: &Path) -> (String, Tree) {
    let src = sb.path("baseline-src");
    write(&src.join("base.txt"), b"stored before the bad input\n");
    write(
        &src.join("deep/base.bin"),
        &common::random_bytes(70_000, 4242),
    );
    if user == User::Nobody {
        chown_nobody(&src);
    }
    let v = sb.snapshot(user, repo, &src);
    assert_eq!(v["skipped"], 0, "baseline skipped entries: {v}");
    (v["id"].as_str().expect("id").to_owned(), tree_of(&src))
}

// ---------------------------------------------------------------------------------------------
// 1. missing source, source that is a regular file
// ---------------------------------------------------------------------------------------------

#[test]
fn missing_or_non_directory_source_is_an_input_error_naming_the_path() {
    let sb = Sandbox::new();
    let repo = sb.path("repo");
    let (base_id, base_tree) = baseline(&sb, User::Root, &repo);

    let missing = sb.path("no-such-source");
    let file = sb.path("plain-file");
    write(&file, b"not a directory");
    for (src, what) in [(&missing, "missing source"), (&file, "regular-file source")] {
        let out = sb.run(User::Root, &repo, &["snapshot", utf8(src)]);
        assert_eq!(code(&out), 2, "{what}: stderr: {}", stderr_of(&out));
        assert!(out.stdout.is_empty(), "{what}: stdout is not empty");
        assert_one_line_naming(&out, src);
        assert!(
            stderr_of(&out).contains("directory"),
            "{what}: the message does not say a directory is needed: {}",
            stderr_of(&out)
        );
        let out = sb.run(User::Root, &repo, &["--json", "snapshot", utf8(src)]);
        assert_eq!(code(&out), 2, "{what} (--json)");
        let v = json_of(&out, what);
        assert_eq!(v["exit_code"], 2, "{what}: {v}");
        let msg = v["error"].as_str().expect("error is a string");
        assert!(
            msg.contains(utf8(src)),
            "{what}: --json error lacks the path: {v}"
        );
    }

    // Refused before anything is created: no repository appears at a new path.
    let fresh = sb.path("never-created");
    let out = sb.run(User::Root, &fresh, &["snapshot", utf8(&missing)]);
    assert_eq!(code(&out), 2);
    assert!(
        !fresh.exists(),
        "a repository was created for a missing source"
    );

    let listed = sb.json(User::Root, &repo, &["list"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    sb.assert_intact(User::Root, &repo, &[(&base_id, &base_tree)]);
}

// ---------------------------------------------------------------------------------------------
// 2. unreadable files and directories (run as nobody)
// ---------------------------------------------------------------------------------------------

#[test]
fn unreadable_file_and_directory_are_skipped_counted_and_named() {
    let sb = Sandbox::new();
    let repo = sb.path("repo");
    fs::create_dir(&repo).expect("mkdir repo");
    chown_nobody(&repo);
    let (base_id, base_tree) = baseline(&sb, User::Nobody, &repo);

    let src = sb.path("src");
    write(&src.join("readable.txt"), b"anyone may read this\n");
    write(&src.join("sub/also.bin"), &common::random_bytes(50_000, 7));
    chown_nobody(&src);
    let readable = tree_of(&src);
    let secret = src.join("secret.bin");
    write(&secret, b"root only");
    chmod(&secret, 0o000);
    let locked = src.join("locked");
    write(&locked.join("inner.txt"), b"behind a closed door");
    chmod(&locked, 0o000);

    let out = sb.run(User::Nobody, &repo, &["--json", "snapshot", utf8(&src)]);
    assert_eq!(
        code(&out),
        0,
        "a snapshot with unreadable entries must complete with warnings: {}",
        stderr_of(&out)
    );
    let v = json_of(&out, "snapshot");
    assert_eq!(v["skipped"], 2, "the unreadable file and directory: {v}");
    assert_eq!(v["files"], 2, "{v}");
    let warnings = warnings_of(&v);
    assert_warned(&warnings, &secret);
    assert_warned(&warnings, &locked);
    for p in [&secret, &locked] {
        assert!(
            stderr_of(&out).contains(&p.display().to_string()),
            "stderr does not warn about {}: {}",
            p.display(),
            stderr_of(&out)
        );
    }
    let id = v["id"].as_str().expect("id").to_owned();
    let ls = sb.json(User::Nobody, &repo, &["ls", &id]);
    let paths: Vec<&str> = ls
        .as_array()
        .expect("ls array")
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert!(
        !paths
            .iter()
            .any(|p| p.contains("secret") || p.contains("locked")),
        "skipped entries are in the snapshot: {paths:?}"
    );

    // An unreadable source directory itself: an error naming it, nothing committed.
    let closed = sb.path("closed-src");
    write(&closed.join("x"), b"x");
    chmod(&closed, 0o700);
    let out = sb.run(User::Nobody, &repo, &["snapshot", utf8(&closed)]);
    assert!(
        [2, 4].contains(&code(&out)),
        "unreadable source: exit {} ({})",
        code(&out),
        stderr_of(&out)
    );
    assert!(
        stderr_of(&out).contains(utf8(&closed)),
        "the error does not name {}: {}",
        closed.display(),
        stderr_of(&out)
    );

    let listed = sb.json(User::Nobody, &repo, &["list"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    sb.assert_intact(
        User::Nobody,
        &repo,
        &[(&base_id, &base_tree), (&id, &readable)],
    );
}

// ---------------------------------------------------------------------------------------------
// 3. fifos, sockets, devices
// ---------------------------------------------------------------------------------------------

#[test]
fn fifo_socket_and_device_are_skipped_counted_and_never_block() {
    let sb = Sandbox::new();
    let repo = sb.path("repo");
    let (base_id, base_tree) = baseline(&sb, User::Root, &repo);

    let src = sb.path("src");
    write(&src.join("regular.txt"), b"a regular file\n");
    let expected = tree_of(&src);
    let fifo = src.join("pipe");
    mkfifo(&fifo);
    let sock = src.join("sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind socket");
    let dev = src.join("null-device");
    let mut specials = vec![fifo, sock];
    match Command::new("mknod")
        .arg(&dev)
        .args(["c", "1", "3"])
        .output()
    {
        Ok(o) if o.status.success() => specials.push(dev),
        Ok(o) => eprintln!(
            "note: mknod failed here ({}); the device sub-case is skipped",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => eprintln!("note: cannot run mknod ({e}); the device sub-case is skipped"),
    }

    let v = sb.snapshot(User::Root, &repo, &src);
    drop(listener);
    assert_eq!(v["skipped"], specials.len(), "{v}");
    assert_eq!(v["files"], 1, "{v}");
    let warnings = warnings_of(&v);
    for p in &specials {
        assert_warned(&warnings, p);
    }
    let id = v["id"].as_str().expect("id").to_owned();
    sb.assert_intact(
        User::Root,
        &repo,
        &[(&base_id, &base_tree), (&id, &expected)],
    );
}

// ---------------------------------------------------------------------------------------------
// 4. symlink loops
// ---------------------------------------------------------------------------------------------

#[test]
fn symlink_loops_are_stored_and_restored_as_symlinks() {
    let sb = Sandbox::new();
    let repo = sb.path("repo");
    let (base_id, base_tree) = baseline(&sb, User::Root, &repo);

    let src = sb.path("src");
    write(&src.join("d/file.txt"), b"inside d\n");
    let links: [(&str, &str); 5] = [
        ("a", "b"),
        ("b", "a"),
        ("self", "self"),
        ("d/up", ".."),
        ("dangling", "does/not/exist"),
    ];
    for (link, target) in links {
        std::os::unix::fs::symlink(target, src.join(link)).expect("symlink");
    }
    let expected = tree_of(&src);

    let v = sb.snapshot(User::Root, &repo, &src);
    assert_eq!(v["symlinks"], links.len(), "{v}");
    assert_eq!((&v["skipped"], &v["files"]), (&0.into(), &1.into()), "{v}");
    let id = v["id"].as_str().expect("id").to_owned();

    let ls = sb.json(User::Root, &repo, &["ls", &id]);
    for (link, target) in links {
        let path = format!("/{link}");
        let e = ls
            .as_array()
            .expect("ls array")
            .iter()
            .find(|e| e["path"] == path.as_str())
            .unwrap_or_else(|| panic!("{path} is not listed: {ls}"));
        assert_eq!(
            (&e["type"], &e["target"]),
            (&"symlink".into(), &target.into()),
            "{path}: {e}"
        );
    }

    let target = sb.fresh_target();
    sb.json(User::Root, &repo, &["restore", &id, utf8(&target)]);
    for (link, want) in links {
        let p = target.join(link);
        let m = fs::symlink_metadata(&p).expect("restored link exists");
        assert!(m.file_type().is_symlink(), "{link} is not a symlink");
        assert_eq!(fs::read_link(&p).expect("readlink"), Path::new(want));
    }
    sb.assert_intact(
        User::Root,
        &repo,
        &[(&base_id, &base_tree), (&id, &expected)],
    );
}

// ---------------------------------------------------------------------------------------------
// 5. non-UTF-8 names
// ---------------------------------------------------------------------------------------------

#[test]
fn non_utf8_names_round_trip_byte_identical() {
    let sb = Sandbox::new();
    let repo = sb.path("repo");
    let (base_id, base_tree) = baseline(&sb, User::Root, &repo);

    let src = sb.path("src");
    fs::create_dir(&src).expect("mkdir");
    let file = src.join(OsStr::from_bytes(b"file-\xff\xfe.bin"));
    let dir = src.join(OsStr::from_bytes(b"dir-\xfe\xff"));
    let inner = dir.join(OsStr::from_bytes(b"inner-\xff"));
    write(&file, b"a file with a non-UTF-8 name");
    write(&inner, &common::random_bytes(30_000, 99));
    std::os::unix::fs::symlink(OsStr::from_bytes(b"file-\xff\xfe.bin"), src.join("link"))
        .expect("symlink");
    let expected = tree_of(&src);
    assert_eq!(expected.len(), 4);

    let v = sb.snapshot(User::Root, &repo, &src);
    assert_eq!(
        (&v["files"], &v["symlinks"], &v["skipped"]),
        (&2.into(), &1.into(), &0.into()),
        "{v}"
    );
    let id = v["id"].as_str().expect("id").to_owned();
    let ls = sb.json(User::Root, &repo, &["ls", &id]);
    assert_eq!(ls.as_array().map(Vec::len), Some(4), "{ls}");

    // The restore compares raw name bytes (Tree keys are bytes).
    sb.assert_intact(
        User::Root,
        &repo,
        &[(&base_id, &base_tree), (&id, &expected)],
    );
}

#[test]
fn ls_json_keeps_distinct_non_utf8_names_distinct() {
    let sb = Sandbox::new();
    let repo = sb.path("repo");
    let src = sb.path("src");
    fs::create_dir(&src).expect("mkdir");
    write(&src.join(OsStr::from_bytes(b"name-\xff")), b"one");
    write(&src.join(OsStr::from_bytes(b"name-\xfe")), b"two");
    let v = sb.snapshot(User::Root, &repo, &src);
    let id = v["id"].as_str().expect("id").to_owned();
    let ls = sb.json(User::Root, &repo, &["ls", &id]);
    let paths: Vec<&str> = ls
        .as_array()
        .expect("ls array")
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert_eq!(paths.len(), 2, "{ls}");
    assert_ne!(
        paths[0], paths[1],
        "ls --json shows two different names (b\"name-\\xff\", b\"name-\\xfe\") as the same path: {ls}"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. files that change between the walk and the read, or while read
// ---------------------------------------------------------------------------------------------

const WINDOW_PART: u64 = 1 << 20;
const SPARSE_SIZE: u64 = 9 << 20;
const SPARSE_SHRUNK: u64 = 4 << 20;

/// Changes the source at deterministic moments of a snapshot: when the walk is done
/// (`Phase::Snapshot`) and right after a window of a given file was read (`advance`).
struct Saboteur {
    src: PathBuf,
    /// Size of `keeps-growing.bin` as the next read will see it, and every size read.
    growing: Mutex<(u64, Vec<u64>)>,
    shrinking: Mutex<(u64, Vec<u64>)>,
    sparse_done: Mutex<bool>,
    log: Mutex<Vec<String>>,
}

const GROW_START: u64 = 150_001;
const GROW_STEP: u64 = 1_001;
const SHRINK_START: u64 = 200_003;
const SHRINK_STEP: u64 = 997;

impl Progress for Saboteur {
    fn phase(&self, phase: Phase, _: u64, _: u64) {
        if phase != Phase::Snapshot {
            return;
        }
        let s = &self.src;
        fs::remove_file(s.join("deleted.bin")).expect("delete");
        let f = fs::OpenOptions::new()
            .write(true)
            .open(s.join("grown.bin"))
            .expect("open grown");
        f.write_all_at(&[0xab; 7_000], 60_000).expect("grow");
        fs::OpenOptions::new()
            .write(true)
            .open(s.join("shrunk.bin"))
            .expect("open shrunk")
            .set_len(30_000)
            .expect("shrink");
        fs::remove_file(s.join("became-fifo.bin")).expect("remove");
        mkfifo(&s.join("became-fifo.bin"));
        fs::remove_file(s.join("became-symlink.bin")).expect("remove");
        std::os::unix::fs::symlink("/etc/passwd", s.join("became-symlink.bin")).expect("symlink");
        self.log
            .lock()
            .expect("log")
            .push("walk done: sabotaged".into());
    }

    fn advance(&self, bytes: u64, files: u64) {
        if files != 0 || bytes == 0 {
            return;
        }
        let mut g = self.growing.lock().expect("growing");
        if bytes == g.0 {
            g.1.push(bytes);
            let f = fs::OpenOptions::new()
                .write(true)
                .open(self.src.join("keeps-growing.bin"))
                .expect("open");
            f.write_all_at(&vec![0x5a; usize::try_from(GROW_STEP).expect("fits")], g.0)
                .expect("append");
            g.0 += GROW_STEP;
            return;
        }
        drop(g);
        let mut s = self.shrinking.lock().expect("shrinking");
        if bytes == s.0 {
            s.1.push(bytes);
            s.0 -= SHRINK_STEP;
            fs::OpenOptions::new()
                .write(true)
                .open(self.src.join("keeps-shrinking.bin"))
                .expect("open")
                .set_len(s.0)
                .expect("truncate");
            return;
        }
        drop(s);
        let mut done = self.sparse_done.lock().expect("sparse");
        if bytes == WINDOW_PART && !*done {
            *done = true;
            fs::OpenOptions::new()
                .write(true)
                .open(self.src.join("shrinks-under-read.bin"))
                .expect("open")
                .set_len(SPARSE_SHRUNK)
                .expect("truncate");
        }
    }
}

#[test]
fn files_changing_between_walk_and_read_are_skipped_or_stored_consistently() {
    let sb = Sandbox::new();
    let repo_dir = sb.path("repo");
    let (base_id, base_tree) = baseline(&sb, User::Root, &repo_dir);
    let repo = snapkeep::Repository::open_local(&repo_dir).expect("open repository");

    let src = sb.path("src");
    let sizes: [(&str, u64); 8] = [
        ("steady.bin", 20_000),
        ("deleted.bin", 40_000),
        ("grown.bin", 60_000),
        ("shrunk.bin", 80_000),
        ("became-fifo.bin", 10_000),
        ("became-symlink.bin", 11_000),
        ("keeps-growing.bin", GROW_START),
        ("keeps-shrinking.bin", SHRINK_START),
    ];
    for (i, (name, len)) in (1u64..).zip(sizes) {
        write(
            &src.join(name),
            &common::random_bytes(usize::try_from(len).expect("fits"), i),
        );
    }
    // Sparse: 1 MiB of data, a hole, 1 MiB of data at 8 MiB; truncated to 4 MiB after its
    // first extent was read, so the read of the second one hits the end of the file.
    let sparse = fs::File::create(src.join("shrinks-under-read.bin")).expect("create");
    sparse.set_len(SPARSE_SIZE).expect("set_len");
    let part = common::random_bytes(usize::try_from(WINDOW_PART).expect("fits"), 77);
    sparse.write_all_at(&part, 0).expect("write");
    sparse.write_all_at(&part, 8 << 20).expect("write");
    sparse.sync_all().expect("sync");
    let extents = snapkeep::source::data_extents(&sparse, SPARSE_SIZE).expect("extents");
    drop(sparse);
    let original_shrinking = fs::read(src.join("keeps-shrinking.bin")).expect("read");

    let saboteur = Saboteur {
        src: src.clone(),
        growing: Mutex::new((GROW_START, Vec::new())),
        shrinking: Mutex::new((SHRINK_START, Vec::new())),
        sparse_done: Mutex::new(false),
        log: Mutex::new(Vec::new()),
    };
    let opts = BackupOptions {
        // Read every file (nothing reused from the baseline's parent chain).
        force_read: true,
        ..BackupOptions::default()
    };
    let outcome = snapkeep::snapshot(&repo, &src, &opts, &saboteur).expect("snapshot");
    let rec = &outcome.record;
    let warnings = &outcome.warnings;
    eprintln!("warnings: {warnings:#?}");
    assert_eq!(
        saboteur.log.lock().expect("log").len(),
        1,
        "the walk-done hook did not run"
    );

    // Deleted, swapped for a fifo, swapped for a symlink: skipped, counted, named.
    for name in ["deleted.bin", "became-fifo.bin", "became-symlink.bin"] {
        assert_warned(warnings, &src.join(name));
    }
    assert_eq!(rec.summary.skipped, 3, "{:?}", rec.summary);
    // Kept changing under every read: stored as read, flagged, counted, named.
    assert_eq!(rec.summary.changed_during_read, 2, "{:?}", rec.summary);
    for name in ["keeps-growing.bin", "keeps-shrinking.bin"] {
        assert!(
            warnings
                .iter()
                .any(|w| w.contains(&src.join(name).display().to_string())
                    && w.contains("changed")),
            "no changed-during-read warning for {name}: {warnings:?}"
        );
    }
    assert_eq!(rec.summary.files, 6, "{:?}", rec.summary);
    let tree = repo.load_tree(&rec.tree).expect("root tree");
    let flagged: Vec<String> = tree
        .nodes
        .iter()
        .filter(|n| n.flags & FLAG_CHANGED_DURING_READ != 0)
        .map(|n| String::from_utf8_lossy(&n.name).into_owned())
        .collect();
    assert_eq!(flagged, ["keeps-growing.bin", "keeps-shrinking.bin"]);
    for n in &tree.nodes {
        assert!(
            matches!(n.kind, NodeKind::File { .. }),
            "{} is stored as {:?}",
            String::from_utf8_lossy(&n.name),
            n.kind
        );
    }

    // What was stored is consistent with the files: verify, then compare a restore.
    let id = rec.id.to_string();
    let target = sb.fresh_target();
    sb.json(User::Root, &repo_dir, &["restore", &id, utf8(&target)]);
    let got = tree_of(&target);
    let now = tree_of(&src);
    for name in ["steady.bin", "grown.bin", "shrunk.bin"] {
        assert_eq!(
            got.get(name.as_bytes()),
            now.get(name.as_bytes()),
            "{name} restores other bytes than the file holds"
        );
    }
    if let Some(Entry::File(b)) = got.get(b"grown.bin".as_slice()) {
        assert_eq!(b.len(), 67_000, "grown.bin");
    }
    if let Some(Entry::File(b)) = got.get(b"shrunk.bin".as_slice()) {
        assert_eq!(b.len(), 30_000, "shrunk.bin");
    }
    for name in ["deleted.bin", "became-fifo.bin", "became-symlink.bin"] {
        assert!(
            !got.contains_key(name.as_bytes()),
            "{name} is in the snapshot"
        );
    }
    let (_, grow_reads) = saboteur.growing.lock().expect("growing").clone();
    let Some(Entry::File(grown)) = got.get(b"keeps-growing.bin".as_slice()) else {
        panic!("keeps-growing.bin was not restored");
    };
    let Some(Entry::File(grown_now)) = now.get(b"keeps-growing.bin".as_slice()) else {
        panic!("keeps-growing.bin is gone");
    };
    assert!(
        grow_reads.contains(&(grown.len() as u64)) && grown_now.starts_with(grown),
        "keeps-growing.bin: stored {} bytes, not one of the reads {grow_reads:?} of its content",
        grown.len()
    );
    let (_, shrink_reads) = saboteur.shrinking.lock().expect("shrinking").clone();
    let Some(Entry::File(shrunk)) = got.get(b"keeps-shrinking.bin".as_slice()) else {
        panic!("keeps-shrinking.bin was not restored");
    };
    assert!(
        shrink_reads.contains(&(shrunk.len() as u64)) && original_shrinking.starts_with(shrunk),
        "keeps-shrinking.bin: stored {} bytes, not one of the reads {shrink_reads:?}",
        shrunk.len()
    );
    if extents.len() == 2 {
        // The read of the second extent hit the end of the file: read again, stored whole.
        assert!(
            *saboteur.sparse_done.lock().expect("sparse"),
            "the sparse file was never truncated under its read"
        );
        let restored = got.get(b"shrinks-under-read.bin".as_slice());
        let Some(Entry::File(b)) = restored else {
            panic!("shrinks-under-read.bin was not stored: {restored:?}");
        };
        assert_eq!(b.len() as u64, SPARSE_SHRUNK);
        assert_eq!(
            restored,
            now.get(b"shrinks-under-read.bin".as_slice()),
            "shrinks-under-read.bin restores other bytes than the file holds"
        );
    } else {
        eprintln!(
            "note: this filesystem reports the sparse file's extents as {extents:?}; the \
             shrink-under-read sub-case is not exercised"
        );
    }

    // A snapshot after the storm is ordinary, and nothing earlier was lost.
    let after = sb.snapshot(User::Root, &repo_dir, &src);
    assert_eq!(
        after["skipped"], 1,
        "only the fifo remains to skip: {after}"
    );
    sb.assert_intact(
        User::Root,
        &repo_dir,
        &[(&base_id, &base_tree), (&id, &got)],
    );
}

// ---------------------------------------------------------------------------------------------
// 7. read-only repository
// ---------------------------------------------------------------------------------------------

#[test]
fn read_only_repository_reads_and_refuses_snapshots_cleanly() {
    let sb = Sandbox::new();
    let repo = sb.path("repo");
    let (base_id, base_tree) = baseline(&sb, User::Root, &repo);
    // Owned by root; readable, not writable, by anyone else.
    let mut stack = vec![repo.clone()];
    while let Some(d) = stack.pop() {
        chmod(&d, 0o755);
        for e in fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if fs::symlink_metadata(&p).expect("lstat").is_dir() {
                stack.push(p);
            } else {
                chmod(&p, 0o644);
            }
        }
    }
    let before = listing(&repo);
    let files_before = common::files_under(&repo);

    let listed = sb.json(User::Nobody, &repo, &["list"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    // verify --read-data and restore work (they may warn that no lock could be taken).
    sb.assert_intact(User::Nobody, &repo, &[(&base_id, &base_tree)]);

    let src = sb.path("src");
    write(&src.join("new.txt"), b"cannot be stored here");
    chown_nobody(&src);
    let out = sb.run(User::Nobody, &repo, &["snapshot", utf8(&src)]);
    assert!(
        [2, 4].contains(&code(&out)),
        "snapshot into a read-only repository: exit {} ({})",
        code(&out),
        stderr_of(&out)
    );
    assert!(out.stdout.is_empty(), "stdout: {:?}", out.stdout);
    let json_out = sb.run(User::Nobody, &repo, &["--json", "snapshot", utf8(&src)]);
    let v = json_of(&json_out, "snapshot --json");
    assert_eq!(v["exit_code"], code(&json_out), "{v}");
    assert_eq!(code(&json_out), code(&out), "{v}");

    assert_eq!(
        common::files_under(&repo),
        files_before,
        "repository files changed"
    );
    assert_eq!(listing(&repo), before, "the read-only repository changed");
    // Still readable after the refused snapshots.
    sb.assert_intact(User::Nobody, &repo, &[(&base_id, &base_tree)]);
    // Last, so the checks above always run: the message must say which repository refused.
    assert_one_line_naming(&out, &repo);
}

// ---------------------------------------------------------------------------------------------
// 8. two snapshot processes into one repository at once
// ---------------------------------------------------------------------------------------------

#[test]
fn concurrent_snapshots_both_commit_and_prune_leaves_shared_data_once() {
    let sb = Sandbox::new();
    let repo = sb.path("repo");
    let (base_id, base_tree) = baseline(&sb, User::Root, &repo);

    let shared = common::random_bytes(1 << 20, 555);
    let own_len = 300_000usize;
    let mut sources = Vec::new();
    for (i, seed) in [(0u8, 600u64), (1, 601)] {
        let src = sb.path(&format!("src{i}"));
        write(&src.join("shared.bin"), &shared);
        write(
            &src.join(format!("own{i}.bin")),
            &common::random_bytes(own_len, seed),
        );
        sources.push(src);
    }
    let expected: Vec<Tree> = sources.iter().map(|s| tree_of(s)).collect();
    let running: Vec<Running> = sources
        .iter()
        .map(|s| {
            spawn(
                sb.cmd(User::Root, &repo, &["--json", "snapshot", utf8(s)]),
                &format!("concurrent snapshot of {}", s.display()),
            )
        })
        .collect();
    let mut ids = Vec::new();
    for r in running {
        let out = r.finish();
        assert_eq!(code(&out), 0, "concurrent snapshot: {}", stderr_of(&out));
        let v = json_of(&out, "snapshot");
        ids.push(v["id"].as_str().expect("id").to_owned());
    }
    let before = sb.json(User::Root, &repo, &["stats"]);
    eprintln!("stats after the concurrent snapshots: {before}");
    let listed = sb.json(User::Root, &repo, &["list"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(3), "{listed}");

    sb.json(User::Root, &repo, &["prune", "--grace", "0"]);
    let stats = sb.json(User::Root, &repo, &["stats"]);
    eprintln!("stats after prune --grace 0: {stats}");
    assert_eq!(stats["reclaimable_bytes"], 0, "{stats}");
    let base_bytes: u64 = base_tree
        .values()
        .map(|e| match e {
            Entry::File(b) => b.len() as u64,
            _ => 0,
        })
        .sum();
    let distinct = base_bytes + shared.len() as u64 + 2 * own_len as u64;
    assert_eq!(stats["unique_bytes"], distinct, "{stats}");
    let pack_bytes = stats["repository_pack_bytes"]
        .as_u64()
        .expect("repository_pack_bytes");
    assert!(
        pack_bytes >= distinct && pack_bytes <= distinct + (64 << 10),
        "packs hold {pack_bytes} bytes for {distinct} distinct (incompressible) bytes: \
         shared data is stored more than once after prune: {stats}"
    );
    sb.assert_intact(
        User::Root,
        &repo,
        &[
            (&base_id, &base_tree),
            (&ids[0], &expected[0]),
            (&ids[1], &expected[1]),
        ],
    );
}
