//! Repositories for the tests that run against both backends: a local directory and an S3
//! prefix. The S3 server is this test process's own (s3s-fs on a loopback port, started on
//! first use: [`in_process`]) unless an external one is configured:
//!
//! | variable | meaning |
//! |---|---|
//! | `SNAPKEEP_TEST_S3_ENDPOINT` | e.g. `http://127.0.0.1:9000` (unset: the in-process server) |
//! | `SNAPKEEP_TEST_S3_ACCESS_KEY`, `SNAPKEEP_TEST_S3_SECRET_KEY` | credentials |
//! | `SNAPKEEP_TEST_S3_BUCKET` | an existing bucket |
//!
//! Every S3 repository gets a prefix of its own, so tests never see one another's objects, and
//! every CLI run gets the test's own cache directory (`XDG_CACHE_HOME`).
//!
//! A later test (e.g. prune against S3) uses it like this:
//!
//! ```ignore
//! for target in common::s3::targets("prune_keeps_referenced") {
//!     let t = target.fresh("prune");
//!     let out = t.cli(&["init"]);
//!     // ... t.cli_json(&["prune", "--dry-run"]) ...
//! }
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Connection settings of the test S3 server.
#[derive(Clone, Debug)]
pub struct S3Server {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub bucket: String,
}

impl S3Server {
    /// The server from `SNAPKEEP_TEST_S3_*`; when unset, this process's own (s3s-fs on a
    /// loopback port, see [`in_process`]). `None` (after printing why) only when that one
    /// cannot start.
    pub fn from_env(test: &str) -> Option<S3Server> {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        let Some(endpoint) = var("SNAPKEEP_TEST_S3_ENDPOINT") else {
            return match in_process() {
                Ok(server) => Some(server.clone()),
                Err(why) => {
                    eprintln!("skipping the S3 case of {test}: {why}");
                    None
                }
            };
        };
        Some(S3Server {
            endpoint,
            access_key: var("SNAPKEEP_TEST_S3_ACCESS_KEY").unwrap_or_default(),
            secret_key: var("SNAPKEEP_TEST_S3_SECRET_KEY").unwrap_or_default(),
            bucket: var("SNAPKEEP_TEST_S3_BUCKET").unwrap_or_else(|| "snapkeep-test".into()),
        })
    }

    /// The settings as `(AWS variable, value)` pairs.
    #[must_use]
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
            ("AWS_REGION", "us-east-1".into()),
            (
                "AWS_ALLOW_HTTP",
                self.endpoint.starts_with("http://").to_string(),
            ),
        ]
    }

    /// A URL `s3://bucket/<name>-<unique>` under which nothing is stored yet.
    #[must_use]
    pub fn fresh_url(&self, name: &str) -> String {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!(
            "s3://{}/{name}-{}-{nanos}-{n}",
            self.bucket,
            std::process::id()
        )
    }

    /// An S3 backend on `url`, configured in-process (no environment change).
    #[must_use]
    pub fn backend(&self, url: &str) -> snapkeep::backend::S3Backend {
        let env = self.aws_env();
        let opts: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        snapkeep::backend::S3Backend::with_options(url, &opts).expect("S3 backend")
    }
}

/// Credentials of the in-process server.
const IN_PROCESS_KEYS: (&str, &str) = ("snapkeep-test", "snapkeep-test-secret");
/// The bucket of the in-process server.
const IN_PROCESS_BUCKET: &str = "snapkeep-test";

/// This test process's S3 server: s3s-fs serving `target/tmp/s3-<pid>` on 127.0.0.1 (a free
/// port), started on first use on a thread of its own and alive until the process exits.
/// Directories of earlier test processes that are gone are removed when it starts.
pub fn in_process() -> Result<&'static S3Server, &'static str> {
    static SERVER: std::sync::OnceLock<Result<S3Server, String>> = std::sync::OnceLock::new();
    SERVER
        .get_or_init(start_in_process)
        .as_ref()
        .map_err(String::as_str)
}

fn start_in_process() -> Result<S3Server, String> {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    if let Ok(rd) = std::fs::read_dir(base) {
        for e in rd.flatten() {
            let name = e.file_name();
            let pid = name.to_str().and_then(|n| n.strip_prefix("s3-"));
            if pid.is_some_and(|p| !Path::new("/proc").join(p).exists()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let root = base.join(format!("s3-{}", std::process::id()));
    std::fs::create_dir_all(root.join(IN_PROCESS_BUCKET))
        .map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("test-s3-server".into())
        .spawn(move || serve(&root, &tx))
        .map_err(|e| format!("cannot start the S3 server thread: {e}"))?;
    let port = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .map_err(|_| "the in-process S3 server did not start".to_owned())??;
    Ok(S3Server {
        endpoint: format!("http://127.0.0.1:{port}"),
        access_key: IN_PROCESS_KEYS.0.into(),
        secret_key: IN_PROCESS_KEYS.1.into(),
        bucket: IN_PROCESS_BUCKET.into(),
    })
}

/// Runs s3s-fs on `root` until the process exits; sends the port (or why not) on `ready`.
fn serve(root: &Path, ready: &std::sync::mpsc::Sender<Result<u16, String>>) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = ready.send(Err(format!("no tokio runtime for the S3 server: {e}")));
            return;
        }
    };
    runtime.block_on(async {
        let fs = match s3s_fs::FileSystem::new(root) {
            Ok(fs) => fs,
            Err(e) => {
                let _ = ready.send(Err(format!("s3s-fs on {}: {e:?}", root.display())));
                return;
            }
        };
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(
            IN_PROCESS_KEYS.0,
            IN_PROCESS_KEYS.1,
        ));
        let service = builder.build();
        let listener = match tokio::net::TcpListener::bind(("127.0.0.1", 0)).await {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(format!("cannot listen on 127.0.0.1: {e}")));
                return;
            }
        };
        let port = listener.local_addr().map_or(0, |a| a.port());
        let _ = ready.send(Ok(port));
        let http = Builder::new(TokioExecutor::new());
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let conn = http
                .serve_connection(TokioIo::new(socket), service.clone())
                .into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
}

/// Where a test's repositories live.
#[derive(Clone, Debug)]
pub enum Target {
    Local,
    S3(S3Server),
}

impl Target {
    /// "local" or "s3", for messages.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Target::Local => "local",
            Target::S3(_) => "s3",
        }
    }

    /// A new, empty repository location for this target.
    #[must_use]
    pub fn fresh(&self, name: &str) -> TestRepo {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = match self {
            Target::Local => tmp.path().join("repo").display().to_string(),
            Target::S3(s) => s.fresh_url(name),
        };
        TestRepo {
            repo,
            target: self.clone(),
            tmp,
        }
    }
}

/// The local target, and the S3 one when a server is configured (else a skip line is printed).
#[must_use]
pub fn targets(test: &str) -> Vec<Target> {
    let mut out = vec![Target::Local];
    if let Some(s) = S3Server::from_env(test) {
        out.push(Target::S3(s));
    }
    out
}

/// One repository of a test, with a scratch directory (and the cache directory of its CLI runs).
pub struct TestRepo {
    /// The `--repo` argument: a path or an `s3://` URL.
    pub repo: String,
    pub target: Target,
    pub tmp: tempfile::TempDir,
}

impl TestRepo {
    /// A scratch path inside the test's temp directory.
    #[must_use]
    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// The CLI with `--repo`, the S3 settings and a private cache directory, not yet run.
    #[must_use]
    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_snapkeep"));
        c.env("SNAPKEEP_PASSWORD", "snapkeep-test")
            .env("SNAPKEEP_KDF", "m=64KiB,t=1,p=1");
        c.arg("--repo")
            .arg(&self.repo)
            .env_remove("SNAPKEEP_REPO")
            .env("XDG_CACHE_HOME", self.tmp.path().join("cache"));
        if let Target::S3(s) = &self.target {
            for (k, v) in s.aws_env() {
                c.env(k, v);
            }
        }
        c
    }

    /// Runs the CLI; a panic (exit 101) fails the test.
    pub fn cli(&self, args: &[&str]) -> Output {
        let out = self.command().args(args).output().expect("run snapkeep");
        super::assert_no_panic(&out, &format!("[{}]", self.target.name()));
        out
    }

    /// Runs the CLI with `--json`; it must succeed and print one JSON document.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.cli(&all);
        super::assert_success(&out, &format!("[{}] {args:?} failed", self.target.name()));
        serde_json::from_slice(&out.stdout).expect("one JSON document")
    }

    /// Runs the CLI with `--show-requests` and returns its output and the total number of
    /// requests it sent (0 for a local repository).
    pub fn cli_counted(&self, args: &[&str]) -> (Output, u64) {
        let mut all = vec!["--show-requests"];
        all.extend_from_slice(args);
        let out = self.cli(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr
            .lines()
            .rev()
            .find(|l| l.starts_with("{\"requests\""))
            .expect("a request report on stderr");
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON report");
        let total = v["requests"]["total"].as_u64().unwrap_or(0);
        (out, total)
    }
}

/// Files below `dir` with their contents, by relative path, for byte-for-byte comparison.
#[must_use]
pub fn tree_contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if e.file_type().expect("type").is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("inside").to_path_buf();
                out.push((rel, std::fs::read(&p).expect("read")));
            }
        }
    }
    out.sort();
    out
}

/// The `requests` object of the request report (`--show-requests`) on stderr; the run must
/// have succeeded.
#[must_use]
pub fn request_report(out: &Output) -> serde_json::Value {
    super::assert_success(out, "run with --show-requests");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("{\"requests\""))
        .unwrap_or_else(|| panic!("no request report on stderr: {stderr}"));
    let v: serde_json::Value = serde_json::from_str(line).expect("JSON report");
    v["requests"].clone()
}
