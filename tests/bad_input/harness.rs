//! The sandbox every case runs in, the CLI with a timeout (as root or as `nobody`), trees as
//! data, and the baseline snapshot that must survive each case.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::{self, Permissions};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common;

/// uid and gid of `nobody`.
const NOBODY: u32 = 65534;
/// No child may run longer than this.
const TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum User {
    Root,
    Nobody,
}

// ---------------------------------------------------------------------------------------------
// Running the CLI with a timeout
// ---------------------------------------------------------------------------------------------

/// A spawned child whose output is drained by two threads (so a full pipe cannot block it).
pub struct Running {
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

pub fn spawn(mut cmd: Command, what: &str) -> Running {
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
    pub fn finish(mut self) -> Output {
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

pub fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

/// stdout as exactly one JSON document.
pub fn json_of(o: &Output, what: &str) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: stdout is not one JSON document ({e}): {}; stderr: {}",
            String::from_utf8_lossy(&o.stdout),
            stderr_of(o)
        )
    })
}

pub fn utf8(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

pub fn chown_nobody(p: &Path) {
    std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY)).expect("chown to nobody");
}

pub fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, Permissions::from_mode(mode)).expect("chmod");
}

/// A private world: a directory traversable by `nobody` (0755, unlike a 0700 tempdir), a
/// `home` and an `out` directory `nobody` owns, and a clean environment for every child.
pub struct Sandbox {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    restores: Cell<u32>,
}

impl Sandbox {
    pub fn new() -> Self {
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

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// A fresh restore target `nobody` may create (below `out`).
    pub fn fresh_target(&self) -> PathBuf {
        let n = self.restores.get();
        self.restores.set(n + 1);
        self.path(&format!("out/restore-{n}"))
    }

    pub fn cmd(&self, user: User, repo: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_snapkeep"));
        c.env("SNAPKEEP_PASSWORD", "snapkeep-test")
            .env("SNAPKEEP_KDF", "m=64KiB,t=1,p=1");
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
    pub fn run(&self, user: User, repo: &Path, args: &[&str]) -> Output {
        spawn(
            self.cmd(user, repo, args),
            &format!("snapkeep {args:?} as {user:?}"),
        )
        .finish()
    }

    /// Runs the CLI with `--json`; it must exit 0.
    pub fn json(&self, user: User, repo: &Path, args: &[&str]) -> Value {
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

    /// `init`: a repository at `repo` (a named location is never created by a snapshot).
    pub fn init(&self, user: User, repo: &Path) {
        self.json(user, repo, &["init"]);
    }

    /// `snapshot --json SRC`: exit 0 and the snapshot document.
    pub fn snapshot(&self, user: User, repo: &Path, src: &Path) -> Value {
        let v = self.json(user, repo, &["snapshot", utf8(src)]);
        assert!(v["id"].is_string(), "no id in {v}");
        v
    }

    /// Nothing stored was lost: `verify --read-data` is clean, every snapshot in `expected`
    /// is listed and restores exactly the tree it stored.
    pub fn assert_intact(&self, user: User, repo: &Path, expected: &[(&str, &Tree)]) {
        let out = self.run(user, repo, &["--json", "verify", "--read-data"]);
        let v = json_of(&out, "verify");
        assert_eq!(
            (code(&out), &v["ok"]),
            (0, &Value::Bool(true)),
            "verify --read-data found problems: {v}; stderr: {}",
            stderr_of(&out)
        );
        let listed = self.json(user, repo, &["list"]);
        let ids = common::json_strings(&listed, "id");
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
pub enum Entry {
    File(Vec<u8>),
    Dir,
    Link(Vec<u8>),
    Special,
}

/// Relative path (raw bytes) → entry, for everything below `dir`; symlinks are not followed.
pub type Tree = BTreeMap<Vec<u8>, Entry>;

pub fn tree_of(dir: &Path) -> Tree {
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
pub fn listing(dir: &Path) -> Vec<(PathBuf, u32, u64, i64, i64)> {
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

pub fn warnings_of(v: &Value) -> Vec<String> {
    v["warnings"]
        .as_array()
        .unwrap_or_else(|| panic!("no warnings array in {v}"))
        .iter()
        .map(|w| w.as_str().expect("warning is a string").to_owned())
        .collect()
}

/// Some warning names `path`.
pub fn assert_warned(warnings: &[String], path: &Path) {
    let p = path.display().to_string();
    assert!(
        warnings.iter().any(|w| w.contains(&p)),
        "no warning names {p}: {warnings:?}"
    );
}

/// An error message: one sentence on one line of stderr, naming `path`.
pub fn assert_one_line_naming(o: &Output, path: &Path) {
    let err = stderr_of(o);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {err}");
    assert!(
        lines[0].contains(&path.display().to_string()),
        "the error does not name {}: {err}",
        path.display()
    );
}

pub fn write(path: &Path, data: &[u8]) {
    common::write_file(path, data);
}

pub fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(st.success(), "mkfifo {} failed", path.display());
}

/// A new sandbox whose repository `repo` holds the baseline snapshot (taken as root): the
/// sandbox, the repository's path, and the baseline's id and tree.
pub fn with_baseline() -> (Sandbox, PathBuf, String, Tree) {
    let sb = Sandbox::new();
    let repo = sb.path("repo");
    let (base_id, base_tree) = baseline(&sb, User::Root, &repo);
    (sb, repo, base_id, base_tree)
}

/// A refused run: exit 2 (input) or 4 (other failure), never 0.
pub fn assert_refused(o: &Output, what: &str) {
    assert!(
        [2, 4].contains(&code(o)),
        "{what}: exit {} ({})",
        code(o),
        stderr_of(o)
    );
}

/// A source with a few ordinary files, and the repository with one snapshot of it: the data
/// that must survive whatever the case does next.
pub fn baseline(sb: &Sandbox, user: User, repo: &Path) -> (String, Tree) {
    let src = sb.path("baseline-src");
    write(&src.join("base.txt"), b"stored before the bad input\n");
    write(
        &src.join("deep/base.bin"),
        &common::random_bytes(70_000, 4242),
    );
    if user == User::Nobody {
        chown_nobody(&src);
    }
    sb.init(user, repo);
    let v = sb.snapshot(user, repo, &src);
    assert_eq!(v["skipped"], 0, "baseline skipped entries: {v}");
    (v["id"].as_str().expect("id").to_owned(), tree_of(&src))
}
