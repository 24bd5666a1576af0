//! Helpers shared by the integration tests (each test binary uses a subset): test data,
//! repositories, the CLI, and in submodules the fixtures of one family of tests:
//! [`alopex`] (a real Alopex DB), [`prune`] (tree comparison, hooked backends) and [`s3`]
//! (local and S3 targets).
#![allow(
    dead_code,
    reason = "shared by the test binaries; each one uses a subset"
)]

#[cfg(feature = "alopex")]
pub mod alopex;
pub mod prune;
#[cfg(feature = "s3")]
pub mod s3;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use snapkeep::chunker::ChunkerParams;
use snapkeep::{InitOptions, NoProgress, Repository, VerifyOptions, VerifyReport};

/// xorshift64: a tiny deterministic PRNG, so test data never depends on a crate's RNG.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (a zero seed is replaced: xorshift would stay at zero).
    #[must_use]
    pub fn new(seed: u64) -> Self {
        XorShift(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Fills `buf` with pseudo-random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// `len` pseudo-random bytes from `seed`.
#[must_use]
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    XorShift::new(seed).fill(&mut v);
    v
}

/// Chunker parameters with the given average (min = avg/4, max = avg*4).
#[must_use]
pub fn params(avg: u32) -> ChunkerParams {
    ChunkerParams::with_avg(avg).expect("valid chunker params")
}

/// A new local repository at `path` with the given average chunk size.
#[must_use]
pub fn init_repo(path: &Path, avg: u32) -> Repository {
    Repository::init_local(
        path,
        &InitOptions {
            chunker: params(avg),
            ..Default::default()
        },
    )
    .expect("init repository")
}

/// A new encrypted local repository with small chunks (16 KiB average), sealed with `scheme`,
/// its key behind `password` with Argon2id parameters small enough for debug builds.
#[must_use]
pub fn encrypted_repo(path: &Path, password: &str, scheme: snapkeep::crypto::Scheme) -> Repository {
    Repository::init_local(
        path,
        &InitOptions {
            chunker: params(16 * 1024),
            encryption: snapkeep::Encryption::Password {
                password: zeroize::Zeroizing::new(password.as_bytes().to_vec()),
                kdf: snapkeep::crypto::KdfParams {
                    m_kib: 64,
                    t: 1,
                    p: 1,
                },
                scheme,
            },
            ..InitOptions::default()
        },
    )
    .expect("init an encrypted repository")
}

/// A new local repository with small (16 KiB average) chunks: fast in debug builds.
#[must_use]
pub fn small_repo(path: &Path) -> Repository {
    init_repo(path, 16 * 1024)
}

/// Verifies every snapshot of `repo`, reading every pack when `read_data`; the report, whatever
/// it found (only an error that stops the run fails the test).
pub fn verify(repo: &Repository, read_data: bool) -> VerifyReport {
    snapkeep::verify(
        repo,
        &VerifyOptions {
            read_data,
            ..VerifyOptions::default()
        },
        &NoProgress,
    )
    .expect("verify runs to the end")
}

/// `verify --read-data` of the whole repository: its report.
pub fn verify_read_data(repo: &Repository) -> VerifyReport {
    verify(repo, true)
}

/// A new local repository with small chunks (16 KiB average) and small packs (1 MiB): a few
/// MiB of data fill several packs, so prune has whole packs to delete and some to repack.
#[must_use]
pub fn small_packs_repo(path: &Path) -> Repository {
    Repository::init_local(
        path,
        &InitOptions {
            chunker: params(16 * 1024),
            pack_size: 1 << 20,
            ..InitOptions::default()
        },
    )
    .expect("init repository")
}

/// Every regular file below `dir` (recursively), sorted.
#[must_use]
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd {
            let e = e.expect("read_dir entry");
            let ft = e.file_type().expect("file type");
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// The pack files of a local repository (`repo/data/xx/<id>`).
#[must_use]
pub fn pack_files(repo_dir: &Path) -> Vec<PathBuf> {
    files_under(&repo_dir.join("data"))
}

/// The index files of a local repository (`repo/index/<id>`).
#[must_use]
pub fn index_files(repo_dir: &Path) -> Vec<PathBuf> {
    files_under(&repo_dir.join("index"))
}

/// Writes `data` to `path`, creating parent directories.
pub fn write_file(path: &Path, data: &[u8]) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).expect("create parent dirs");
    }
    fs::write(path, data).expect("write file");
}

/// Commits a copy of `rec` that started `secs` later, and returns its id: as if the parent
/// snapshot had been taken well after the files last changed, so its entries are "settled"
/// and an incremental snapshot may reuse them without sleeping in the test.
pub fn later_parent(
    repo: &Repository,
    rec: &snapkeep::SnapshotRecord,
    secs: i64,
) -> snapkeep::SnapshotId {
    let mut fake = rec.clone();
    fake.id = uuid::Uuid::now_v7();
    fake.time_ns += secs * 1_000_000_000;
    repo.commit_snapshot(&fake).expect("commit parent copy");
    fake.id
}

/// Copies a directory tree (regular files and directories).
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for e in fs::read_dir(from).expect("list").flatten() {
        let dest = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            fs::copy(e.path(), &dest).expect("copy");
        }
    }
}

/// The CLI with `--repo repo` (and no inherited `SNAPKEEP_REPO`), not yet run.
#[must_use]
pub fn cli_command(repo: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_snapkeep"));
    c.env("SNAPKEEP_PASSWORD", "snapkeep-test")
        .env("SNAPKEEP_KDF", "m=64KiB,t=1,p=1");
    c.arg("--repo").arg(repo).env_remove("SNAPKEEP_REPO");
    c
}

/// Runs the CLI against `repo`; a panic (exit 101) fails the test.
pub fn cli(repo: &Path, args: &[&str]) -> Output {
    let out = cli_command(repo).args(args).output().expect("run snapkeep");
    assert_no_panic(&out, &format!("snapkeep {args:?}"));
    out
}

/// `init` of a repository at `repo` through the CLI (a snapshot creates only the default
/// repository, never one at a named location); it must succeed.
pub fn cli_init(repo: &Path) {
    let out = cli(repo, &["init"]);
    assert_success(&out, &format!("init of {}", repo.display()));
}

/// Runs the CLI against `repo`; a panic (exit 101) or a signal fails the test.
pub fn cli_exited(repo: &Path, args: &[&str]) -> Output {
    let out = cli(repo, args);
    assert!(
        out.status.code().is_some(),
        "snapkeep {args:?} was killed by a signal"
    );
    out
}

/// Runs the CLI with `--json`; it must succeed and print one JSON document.
pub fn cli_json(repo: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = cli(repo, &all);
    assert_success(&out, &format!("{args:?} failed"));
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

/// stderr of a run, for messages.
#[must_use]
pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A panic (exit 101) of the run `what` fails the test.
pub fn assert_no_panic(out: &Output, what: &str) {
    assert_ne!(
        out.status.code(),
        Some(101),
        "{what} panicked: {}",
        stderr_of(out)
    );
}

/// The run `what` must have exited with `code`.
pub fn assert_exit(out: &Output, code: i32, what: &str) {
    assert_eq!(out.status.code(), Some(code), "{what}: {}", stderr_of(out));
}

/// The run `what` must have succeeded.
pub fn assert_success(out: &Output, what: &str) {
    assert!(out.status.success(), "{what}: {}", stderr_of(out));
}

/// The steps `snapkeep bench` reports, in order.
pub const BENCH_STEPS: [&str; 8] = [
    "initial snapshot",
    "no-change snapshot",
    "snapshot after change",
    "restore",
    "verify --read-data",
    "ls",
    "diff",
    "forget --prune",
];

/// The `key` strings of the elements of the JSON array `v` (e.g. the paths of `ls --json`);
/// elements without one are left out.
#[must_use]
pub fn json_strings<'a>(v: &'a serde_json::Value, key: &str) -> Vec<&'a str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a JSON array: {v}"))
        .iter()
        .filter_map(|e| e[key].as_str())
        .collect()
}

/// stdout of a `--json` run as one JSON document.
#[must_use]
pub fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            stderr_of(out)
        )
    })
}

/// Prints a reliability test's summary line and appends it to
/// `target/tmp/reliability-counts.txt`, which `.ci/run` prints after the tests (cargo hides the
/// output of passing tests).
pub fn report(line: &str) {
    use std::io::Write;
    eprintln!("{line}");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("reliability-counts.txt");
    if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(path) {
        let test = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .map(|s| s.rsplit_once('-').map_or(s.clone(), |(n, _)| n.to_owned()))
            .unwrap_or_default();
        let _ = writeln!(f, "{test}: {line}");
    }
}
