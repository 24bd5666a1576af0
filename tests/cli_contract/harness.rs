//! A sandboxed CLI (no user repository can be touched) and the checks every contract test
//! makes: exit codes, stdout as one JSON document, canonical UUID v7 ids.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::common;

/// A sandbox: HOME and XDG_DATA_HOME point inside it, SNAPKEEP_REPO is unset.
pub struct Sandbox {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
}

impl Sandbox {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().to_path_buf();
        fs::create_dir_all(root.join("home")).expect("home");
        Sandbox { _tmp: tmp, root }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// A command with a clean environment (no user repository can ever be touched).
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_snapkeep"));
        c.env("SNAPKEEP_PASSWORD", "snapkeep-test")
            .env("SNAPKEEP_KDF", "m=64KiB,t=1,p=1");
        c.env_remove("SNAPKEEP_REPO")
            .env("HOME", self.path("home"))
            .env("XDG_DATA_HOME", self.path("xdg"))
            .env("XDG_STATE_HOME", self.path("state"))
            .current_dir(&self.root);
        c
    }

    /// Runs with `--repo <repo>` prepended.
    pub fn run(&self, repo: &Path, args: &[&str]) -> Output {
        let mut c = self.cmd();
        c.arg("--repo").arg(repo).args(args);
        run(c)
    }

    /// `init` at `repo` (a snapshot never creates a repository at a named location); it must
    /// succeed.
    pub fn init(&self, repo: &Path) {
        expect_code(&self.run(repo, &["init"]), 0, "init");
    }

    /// A small source tree.
    pub fn source(&self, rel: &str) -> PathBuf {
        let src = self.path(rel);
        common::write_file(&src.join("a.txt"), b"alpha\n");
        common::write_file(&src.join("sub/b.bin"), &common::random_bytes(40_000, 1));
        std::os::unix::fs::symlink("a.txt", src.join("link")).expect("symlink");
        src
    }
}

/// Runs a command; a panic (101) or a signal is always a failure.
pub fn run(mut c: Command) -> Output {
    let out = c.output().expect("spawn snapkeep");
    assert!(
        out.status.code().is_some(),
        "killed by a signal: {:?}",
        out.status
    );
    assert_ne!(
        out.status.code(),
        Some(101),
        "snapkeep panicked; stderr: {}",
        stderr(&out)
    );
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("stdout is UTF-8")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

pub fn expect_code(o: &Output, want: i32, what: &str) {
    assert_eq!(
        code(o),
        want,
        "{what}: stdout: {} stderr: {}",
        stdout(o),
        stderr(o)
    );
}

/// stdout must be exactly one JSON document (surrounding whitespace allowed).
pub fn json(o: &Output) -> Value {
    let text = stdout(o);
    let mut docs = serde_json::Deserializer::from_str(&text).into_iter::<Value>();
    let first = docs
        .next()
        .unwrap_or_else(|| panic!("no JSON on stdout; stderr: {}", stderr(o)))
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {text}"));
    assert!(
        docs.next().is_none(),
        "more than one document on stdout: {text}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&text).expect("whole stdout parses"),
        first
    );
    first
}

/// A canonical, hyphenated, lower-case UUID of version 7.
pub fn assert_uuid_v7(s: &str) -> uuid::Uuid {
    assert_eq!(s.len(), 36, "'{s}' is not a hyphenated UUID");
    assert_eq!(s.as_bytes()[14], b'7', "'{s}' is not version 7");
    let u = uuid::Uuid::parse_str(s).expect("UUID parses");
    assert_eq!(u.get_version_num(), 7);
    assert_eq!(u.hyphenated().to_string(), s, "not canonical lower-case");
    u
}

pub fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis(),
    )
    .expect("ms fit")
}
