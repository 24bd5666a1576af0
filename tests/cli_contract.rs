//! The command-line contract: exit codes (0 ok, 1 verify found problems, 2 usage or input
//! error, 4 other failure, never 101), stdout holding only the result (one JSON document with
//! `--json`), snapshot ids as canonical UUID v7, repository selection (--repo, SNAPKEEP_REPO,
//! $XDG_DATA_HOME), snapshot specs (id, unique prefix, latest), tags and excludes.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The documented keys of a snapshot object (README: `snapshot --json`, `list --json`).
const SNAPSHOT_KEYS: [&str; 20] = [
    "id",
    "parent",
    "time",
    "host",
    "paths",
    "tags",
    "tree",
    "files",
    "dirs",
    "symlinks",
    "skipped",
    "bytes",
    "data_bytes",
    "new_bytes",
    "stored_bytes",
    "chunks",
    "new_chunks",
    "changed_during_read",
    "duration_s",
    "program",
];

/// A sandbox: HOME and XDG_DATA_HOME point inside it, SNAPKEEP_REPO is unset.
struct Sandbox {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().to_path_buf();
        fs::create_dir_all(root.join("home")).expect("home");
        Sandbox { _tmp: tmp, root }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// A command with a clean environment (no user repository can ever be touched).
    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_snapkeep"));
        c.env_remove("SNAPKEEP_REPO")
            .env("HOME", self.path("home"))
            .env("XDG_DATA_HOME", self.path("xdg"))
            .current_dir(&self.root);
        c
    }

    /// Runs with `--repo <repo>` prepended.
    fn run(&self, repo: &Path, args: &[&str]) -> Output {
        let mut c = self.cmd();
        c.arg("--repo").arg(repo).args(args);
        run(c)
    }

    /// A small source tree.
    fn source(&self, rel: &str) -> PathBuf {
        let src = self.path(rel);
        common::write_file(&src.join("a.txt"), b"alpha\n");
        common::write_file(&src.join("sub/b.bin"), &common::random_bytes(40_000, 1));
        std::os::unix::fs::symlink("a.txt", src.join("link")).expect("symlink");
        src
    }
}

/// Runs a command; a panic (101) or a signal is always a failure.
fn run(mut c: Command) -> Output {
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

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

fn expect_code(o: &Output, want: i32, what: &str) {
    assert_eq!(
        code(o),
        want,
        "{what}: stdout: {} stderr: {}",
        stdout(o),
        stderr(o)
    );
}

/// stdout must be exactly one JSON document (surrounding whitespace allowed).
fn json(o: &Output) -> Value {
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
fn assert_uuid_v7(s: &str) -> uuid::Uuid {
    assert_eq!(s.len(), 36, "'{s}' is not a hyphenated UUID");
    assert_eq!(s.as_bytes()[14], b'7', "'{s}' is not version 7");
    let u = uuid::Uuid::parse_str(s).expect("UUID parses");
    assert_eq!(u.get_version_num(), 7);
    assert_eq!(u.hyphenated().to_string(), s, "not canonical lower-case");
    u
}

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis(),
    )
    .expect("ms fit")
}

/// Parses RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`) into milliseconds since the epoch.
fn rfc3339_ms(text: &str) -> i64 {
    let raw = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> i64 {
        let digits = &text[range.clone()];
        assert!(
            digits.bytes().all(|c| c.is_ascii_digit()),
            "'{text}': not digits at {range:?}"
        );
        digits.parse().expect("digits")
    };
    assert!(raw.len() >= 20, "'{text}' is too short for RFC 3339");
    assert_eq!(
        (raw[4], raw[7], raw[10], raw[13], raw[16]),
        (b'-', b'-', b'T', b':', b':'),
        "'{text}' is not RFC 3339"
    );
    let year = num(0..4);
    let month = num(5..7);
    let day = num(8..10);
    let hour = num(11..13);
    let minute = num(14..16);
    let second = num(17..19);
    assert!(
        (1..=12).contains(&month)
            && (1..=31).contains(&day)
            && hour < 24
            && minute < 60
            && second < 61,
        "'{text}': field out of range"
    );
    let mut pos = 19;
    let mut millis = 0i64;
    if raw[pos] == b'.' {
        let start = pos + 1;
        pos = start;
        while pos < raw.len() && raw[pos].is_ascii_digit() {
            pos += 1;
        }
        assert!(pos > start, "'{text}': empty fraction");
        let frac = format!("{:0<3}", &text[start..pos]);
        millis = frac[..3].parse().expect("fraction");
    }
    let offset_min = match &text[pos..] {
        "Z" | "z" => 0,
        rest => {
            assert_eq!(rest.len(), 6, "'{text}': bad offset");
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => panic!("'{text}': bad offset"),
            };
            assert_eq!(rest.as_bytes()[3], b':');
            sign * (num(pos + 1..pos + 3) * 60 + num(pos + 4..pos + 6))
        }
    };
    // Days from civil (proleptic Gregorian), Howard Hinnant's algorithm.
    let shifted = if month <= 2 { year - 1 } else { year };
    let era = shifted.div_euclid(400);
    let yoe = shifted - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 86_400 + hour * 3600 + minute * 60 + second - offset_min * 60) * 1000) + millis
}

#[test]
fn rfc3339_parser_self_check() {
    assert_eq!(rfc3339_ms("1970-01-01T00:00:00Z"), 0);
    assert_eq!(rfc3339_ms("2000-02-29T00:00:00.5Z"), 951_782_400_500);
    assert_eq!(rfc3339_ms("2000-02-29T01:00:00+01:00"), 951_782_400_000);
}

#[test]
fn snapshot_into_missing_repo_creates_it() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let repo = sb.path("not/yet/repo");
    let out = sb.run(&repo, &["snapshot", src.to_str().expect("utf8")]);
    expect_code(&out, 0, "snapshot into a new path");
    let err = stderr(&out);
    assert!(
        err.contains("created") && err.contains(repo.to_str().expect("utf8")),
        "creation not reported on stderr: {err}"
    );
    let text = stdout(&out);
    assert!(
        text.ends_with('\n') && text.lines().count() == 1,
        "stdout: {text:?}"
    );
    let id = assert_uuid_v7(text.trim_end());
    assert!(repo.join("config").is_file());
    let mode = fs::metadata(&repo).expect("repo dir").permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "repository directory is not private");
    let mode = fs::metadata(repo.join("config"))
        .expect("config")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "config is not private");

    let list = json(&sb.run(&repo, &["list", "--json"]));
    assert_eq!(list[0]["id"], id.to_string());

    // The second snapshot does not create anything and says nothing about creating.
    let out = sb.run(&repo, &["snapshot", src.to_str().expect("utf8")]);
    expect_code(&out, 0, "second snapshot");
    assert!(!stderr(&out).contains("created a new repository"));
}

#[test]
fn quiet_snapshot_prints_only_the_id() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let repo = sb.path("repo");
    // `--quiet`: "no progress bar and no messages on stderr (errors still go there)".
    let out = sb.run(&repo, &["--quiet", "snapshot", src.to_str().expect("utf8")]);
    expect_code(&out, 0, "quiet snapshot");
    assert_uuid_v7(stdout(&out).trim_end());
    assert_eq!(
        stderr(&out),
        "",
        "--quiet snapshot that creates the repository wrote to stderr"
    );
    let out = sb.run(&repo, &["-q", "snapshot", src.to_str().expect("utf8")]);
    expect_code(&out, 0, "quiet snapshot");
    assert_eq!(stderr(&out), "", "--quiet snapshot wrote to stderr");
}

#[test]
fn init_refuses_non_empty_or_existing_paths() {
    let sb = Sandbox::new();
    let busy = sb.path("busy");
    common::write_file(&busy.join("something"), b"x");
    let out = sb.run(&busy, &["init"]);
    expect_code(&out, 2, "init on a non-empty directory");
    assert!(!busy.join("config").exists());
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));

    let file = sb.path("plain-file");
    fs::write(&file, b"x").expect("write");
    expect_code(&sb.run(&file, &["init"]), 2, "init on a file");

    let repo = sb.path("repo");
    expect_code(&sb.run(&repo, &["init"]), 0, "first init");
    let config = fs::read(repo.join("config")).expect("config");
    expect_code(&sb.run(&repo, &["init"]), 2, "second init");
    assert_eq!(
        fs::read(repo.join("config")).expect("config"),
        config,
        "a refused init changed the config"
    );

    // An empty existing directory is fine.
    let empty = sb.path("empty");
    fs::create_dir(&empty).expect("mkdir");
    expect_code(&sb.run(&empty, &["init"]), 0, "init in an empty directory");
}

#[test]
fn json_documents_of_every_command() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let repo = sb.path("repo");

    let init = json(&sb.run(
        &repo,
        &[
            "--json",
            "init",
            "--chunk-avg",
            "16KiB",
            "--compression",
            "zstd:3",
        ],
    ));
    assert_eq!(init["repository"], repo.to_str().expect("utf8"));
    assert_eq!(init["version"], 1);
    let want = common::params(16 * 1024);
    assert_eq!(
        init["chunker"],
        serde_json::json!({"min": want.min, "avg": want.avg, "max": want.max})
    );
    assert_eq!(init["compression"], "zstd:3");
    assert!(init["pack_size"].as_u64().is_some_and(|p| p >= 1 << 20));
    assert_eq!(init["id"].as_str().map(str::len), Some(32));

    let before = now_ms();
    let out = sb.run(&repo, &["snapshot", "--json", src.to_str().expect("utf8")]);
    let after = now_ms();
    expect_code(&out, 0, "snapshot --json");
    let s1 = json(&out);
    for key in SNAPSHOT_KEYS.iter().chain(&["warnings"]) {
        assert!(s1.get(key).is_some(), "snapshot JSON lacks '{key}': {s1}");
    }
    let id1 = s1["id"].as_str().expect("id").to_owned();
    assert_uuid_v7(&id1);
    assert_eq!(s1["parent"], Value::Null);
    assert_eq!(s1["files"], 2);
    assert_eq!(s1["symlinks"], 1);
    assert_eq!(s1["bytes"], 6 + 40_000);
    assert_eq!(s1["new_bytes"], 6 + 40_000);
    assert!(s1["stored_bytes"].as_u64().is_some_and(|b| b > 0));
    assert!(s1["duration_s"].as_f64().is_some_and(|d| d >= 0.0));
    let taken = rfc3339_ms(s1["time"].as_str().expect("time"));
    assert!(
        before - 1000 <= taken && taken <= after + 1000,
        "snapshot time {} is not the time it was taken",
        s1["time"]
    );

    common::write_file(&src.join("new.txt"), b"second");
    let s2 = json(&sb.run(&repo, &["--json", "snapshot", src.to_str().expect("utf8")]));
    let id2 = s2["id"].as_str().expect("id").to_owned();
    assert_uuid_v7(&id2);
    assert_eq!(s2["parent"], id1.as_str(), "second snapshot's parent");
    assert_eq!(s2["files"], 3);
    assert_eq!(s2["new_bytes"], 6, "only new.txt is new");

    // An explicit --parent is recorded as given; an unknown one is an input error.
    let out = sb.run(
        &repo,
        &[
            "snapshot",
            "--json",
            "--parent",
            &id1[..13],
            src.to_str().expect("utf8"),
        ],
    );
    expect_code(&out, 0, "snapshot --parent");
    let s3 = json(&out);
    assert_eq!(s3["parent"], id1.as_str(), "--parent was not recorded");
    let out = sb.run(
        &repo,
        &[
            "snapshot",
            "--parent",
            "ffffffff",
            src.to_str().expect("utf8"),
        ],
    );
    expect_code(&out, 2, "snapshot --parent with an unknown id");

    let list = json(&sb.run(&repo, &["list", "--json"]));
    let arr = list.as_array().expect("list is an array");
    assert_eq!(arr.len(), 3, "a refused snapshot was listed");
    assert_eq!(arr[2]["id"], s3["id"]);
    assert_eq!(arr[0]["id"], id1.as_str(), "list is not oldest first");
    assert_eq!(arr[1]["id"], id2.as_str());
    assert_eq!(arr[1]["parent"], id1.as_str());
    assert_eq!(arr[0]["parent"], Value::Null);
    let canon = fs::canonicalize(&src).expect("canonicalize");
    for (rec, snap) in arr.iter().zip([&s1, &s2]) {
        assert!(
            rec.get("warnings").is_none(),
            "list entries carry no warnings"
        );
        for key in SNAPSHOT_KEYS {
            assert!(rec.get(key).is_some(), "list entry lacks '{key}': {rec}");
        }
        for (key, value) in snap.as_object().expect("object") {
            if key != "warnings" {
                assert_eq!(&rec[key], value, "list and snapshot disagree on '{key}'");
            }
        }
        let t = rec["time"].as_str().expect("time");
        assert!(
            t.ends_with('Z') || t.ends_with("+00:00"),
            "time is not UTC: {t}"
        );
        rfc3339_ms(t);
        assert!(rec["host"].as_str().is_some_and(|h| !h.is_empty()));
        assert_eq!(
            rec["paths"],
            serde_json::json!([canon.to_str().expect("utf8")])
        );
        assert_eq!(rec["tags"], serde_json::json!([]));
    }

    let target = sb.path("restored");
    let restored = json(&sb.run(
        &repo,
        &["restore", "--json", &id1, target.to_str().expect("utf8")],
    ));
    assert_eq!(restored["id"], id1.as_str());
    assert_eq!(restored["files"], 2);
    assert_eq!(restored["symlinks"], 1);
    assert_eq!(restored["dirs"], 1);
    assert_eq!(restored["bytes"], 6 + 40_000);
    for key in [
        "id",
        "target",
        "files",
        "dirs",
        "symlinks",
        "bytes",
        "data_bytes",
        "duration_s",
    ] {
        assert!(
            restored.get(key).is_some(),
            "restore JSON lacks '{key}': {restored}"
        );
    }
    assert_eq!(
        fs::read(target.join("a.txt")).expect("restored"),
        b"alpha\n"
    );
    assert!(
        !target.join("new.txt").exists(),
        "restored the wrong snapshot"
    );

    for extra in [&[][..], &["--read-data"][..]] {
        let mut args = vec!["verify", "--json"];
        args.extend_from_slice(extra);
        let out = sb.run(&repo, &args);
        expect_code(&out, 0, "verify on a clean repository");
        let report = json(&out);
        assert_eq!(report["ok"], true);
        assert_eq!(report["findings"], serde_json::json!([]));
        assert_eq!(report["snapshots"], 3);
        for key in [
            "ok",
            "findings",
            "snapshots",
            "trees",
            "files",
            "packs_read",
            "blobs_read",
            "bytes_read",
        ] {
            assert!(
                report.get(key).is_some(),
                "verify JSON lacks '{key}': {report}"
            );
        }
    }
    // One snapshot only, by prefix.
    let one = json(&sb.run(&repo, &["verify", "--json", &id2[..13]]));
    assert_eq!(one["ok"], true);
    assert_eq!(one["snapshots"], 1);

    // repair index: --dry-run changes nothing; the real run leaves one index file.
    let before = common::index_files(&repo);
    assert!(before.len() >= 2);
    let dry = json(&sb.run(&repo, &["repair", "index", "--dry-run", "--json"]));
    for key in [
        "dry_run",
        "packs_read",
        "entries",
        "damaged_packs",
        "replaced_index_files",
        "index",
    ] {
        assert!(dry.get(key).is_some(), "repair JSON lacks '{key}': {dry}");
    }
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["index"], Value::Null);
    assert_eq!(dry["damaged_packs"], serde_json::json!([]));
    assert_eq!(
        common::index_files(&repo),
        before,
        "--dry-run changed the index"
    );
    let repaired = json(&sb.run(&repo, &["repair", "index", "--json"]));
    assert_eq!(repaired["dry_run"], false);
    assert_eq!(repaired["entries"], dry["entries"]);
    let new_index = repaired["index"].as_str().expect("index id").to_owned();
    let after = common::index_files(&repo);
    assert_eq!(after.len(), 1);
    assert!(after[0].ends_with(&new_index));

    // Plain verify on a clean repository prints no findings on stdout.
    let out = sb.run(&repo, &["verify"]);
    expect_code(&out, 0, "verify");
    assert_eq!(stdout(&out), "");

    // Errors with --json are one JSON document too.
    let out = sb.run(
        &repo,
        &[
            "--json",
            "restore",
            "ffffffff",
            sb.path("x").to_str().expect("utf8"),
        ],
    );
    expect_code(&out, 2, "unknown snapshot");
    let failure = json(&out);
    assert_eq!(failure["exit_code"], 2);
    assert!(
        failure["error"]
            .as_str()
            .is_some_and(|m| m.contains("ffffffff"))
    );
}

#[test]
fn restore_specs_and_targets() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let repo = sb.path("repo");
    let s = src.to_str().expect("utf8");
    let id1 = stdout(&sb.run(&repo, &["snapshot", s])).trim().to_owned();
    common::write_file(&src.join("a.txt"), b"changed\n");
    let id2 = stdout(&sb.run(&repo, &["snapshot", s])).trim().to_owned();
    assert_uuid_v7(&id1);
    assert_uuid_v7(&id2);
    assert_ne!(
        id1[..13],
        id2[..13],
        "snapshots taken in the same millisecond"
    );

    let restore_a = |spec: &str, dir: &str| -> Vec<u8> {
        let target = sb.path(dir);
        let out = sb.run(&repo, &["restore", spec, target.to_str().expect("utf8")]);
        expect_code(&out, 0, &format!("restore {spec}"));
        assert_eq!(stdout(&out), "", "restore prints its result on stderr only");
        fs::read(target.join("a.txt")).expect("restored a.txt")
    };
    assert_eq!(restore_a(&id1, "by-id"), b"alpha\n");
    assert_eq!(restore_a(&id2[..13], "by-prefix"), b"changed\n");
    assert_eq!(restore_a("latest", "by-latest"), b"changed\n");
    assert_eq!(restore_a(&id1.to_uppercase(), "by-upper"), b"alpha\n");
    let simple: String = id1.chars().filter(|c| *c != '-').take(16).collect();
    assert_eq!(restore_a(&simple, "by-simple-prefix"), b"alpha\n");

    let common_len = id1
        .bytes()
        .zip(id2.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    assert!(common_len >= 1, "ids share no prefix: {id1} {id2}");
    let shared = &id1[..common_len.min(8)];
    for (spec, what) in [
        (shared, "ambiguous prefix"),
        ("ffffffff", "unknown prefix"),
        ("not-a-snapshot!", "malformed spec"),
        ("", "empty spec"),
    ] {
        let target = sb.path("never");
        let out = sb.run(&repo, &["restore", spec, target.to_str().expect("utf8")]);
        expect_code(&out, 2, what);
        assert!(!stderr(&out).is_empty(), "{what}: no message");
    }
    let out = sb.run(
        &repo,
        &["restore", shared, sb.path("never").to_str().expect("utf8")],
    );
    assert!(stderr(&out).contains("matches 2"), "{}", stderr(&out));

    let busy = sb.path("busy");
    common::write_file(&busy.join("keep.me"), b"mine");
    let out = sb.run(&repo, &["restore", "latest", busy.to_str().expect("utf8")]);
    expect_code(&out, 2, "restore into a non-empty directory");
    assert_eq!(
        common::files_under(&busy),
        vec![busy.join("keep.me")],
        "a refused restore wrote into the target"
    );
    let out = sb.run(
        &repo,
        &[
            "restore",
            "latest",
            busy.join("keep.me").to_str().expect("utf8"),
        ],
    );
    expect_code(&out, 2, "restore onto a file");
    assert_eq!(fs::read(busy.join("keep.me")).expect("read"), b"mine");

    // An empty existing directory is a valid target.
    let empty = sb.path("empty");
    fs::create_dir(&empty).expect("mkdir");
    restore_a("latest", "empty");
}

#[test]
fn repository_from_env_and_default_location() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let s = src.to_str().expect("utf8");

    // SNAPKEEP_REPO in place of --repo.
    let env_repo = sb.path("env-repo");
    let mut c = sb.cmd();
    c.env("SNAPKEEP_REPO", &env_repo).args(["snapshot", s]);
    let out = run(c);
    expect_code(&out, 0, "snapshot with SNAPKEEP_REPO");
    let id = stdout(&out).trim().to_owned();
    assert!(
        env_repo.join("config").is_file(),
        "SNAPKEEP_REPO was ignored"
    );
    let mut c = sb.cmd();
    c.env("SNAPKEEP_REPO", &env_repo).args(["list", "--json"]);
    assert_eq!(json(&run(c))[0]["id"], id.as_str());
    // --repo wins over the variable.
    let flag_repo = sb.path("flag-repo");
    let mut c = sb.cmd();
    c.env("SNAPKEEP_REPO", &env_repo)
        .arg("--repo")
        .arg(&flag_repo)
        .args(["snapshot", s]);
    expect_code(&run(c), 0, "snapshot with --repo and SNAPKEEP_REPO");
    assert!(flag_repo.join("config").is_file());
    let mut c = sb.cmd();
    c.env("SNAPKEEP_REPO", &env_repo).args(["list", "--json"]);
    assert_eq!(json(&run(c)).as_array().map(Vec::len), Some(1));

    // Neither: $XDG_DATA_HOME/snapkeep/repo.
    let mut c = sb.cmd();
    c.args(["snapshot", s]);
    let out = run(c);
    expect_code(&out, 0, "snapshot into the default repository");
    let default = sb.path("xdg/snapkeep/repo");
    assert!(
        default.join("config").is_file(),
        "default repository not at $XDG_DATA_HOME/snapkeep/repo"
    );
    assert!(stderr(&out).contains(default.to_str().expect("utf8")));
    let mut c = sb.cmd();
    c.args(["list", "--json"]);
    assert_eq!(json(&run(c))[0]["id"], stdout(&out).trim());

    // XDG_DATA_HOME unset (or empty): ~/.local/share/snapkeep/repo.
    for xdg in [None, Some("")] {
        let mut c = sb.cmd();
        match xdg {
            None => c.env_remove("XDG_DATA_HOME"),
            Some(v) => c.env("XDG_DATA_HOME", v),
        };
        c.args(["snapshot", s]);
        expect_code(&run(c), 0, "snapshot with HOME only");
        assert!(sb.path("home/.local/share/snapkeep/repo/config").is_file());
    }
}

#[test]
fn usage_and_input_errors_exit_2() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let repo = sb.path("repo");
    let s = src.to_str().expect("utf8");

    let missing = sb.path("no-such-dir");
    let out = sb.run(&repo, &["snapshot", missing.to_str().expect("utf8")]);
    expect_code(&out, 2, "missing source");
    assert_eq!(stdout(&out), "");
    assert!(stderr(&out).contains("no-such-dir"), "{}", stderr(&out));
    assert!(!repo.exists(), "a failed snapshot created the repository");
    let out = sb.run(
        &repo,
        &["--json", "snapshot", missing.to_str().expect("utf8")],
    );
    expect_code(&out, 2, "missing source, --json");
    assert_eq!(json(&out)["exit_code"], 2);

    let file = src.join("a.txt");
    let file_repo = sb.path("file-repo");
    expect_code(
        &sb.run(&file_repo, &["snapshot", file.to_str().expect("utf8")]),
        2,
        "source is a file",
    );
    expect_code(
        &sb.run(&repo, &["snapshot", "--bogus-flag", s]),
        2,
        "unknown flag",
    );
    expect_code(&sb.run(&repo, &["frobnicate"]), 2, "unknown command");
    expect_code(
        &sb.run(&repo, &["restore", "latest"]),
        2,
        "missing argument",
    );
    expect_code(&run(sb.cmd()), 2, "no command");
    let glob_repo = sb.path("glob-repo");
    expect_code(
        &sb.run(&glob_repo, &["snapshot", "--exclude", "[", s]),
        2,
        "bad glob",
    );

    let fresh = sb.path("fresh");
    expect_code(
        &sb.run(&fresh, &["init", "--chunk-avg", "1000"]),
        2,
        "bad avg",
    );
    expect_code(
        &sb.run(&fresh, &["init", "--chunk-avg", "lots"]),
        2,
        "bad size",
    );
    expect_code(
        &sb.run(&fresh, &["init", "--compression", "lz4"]),
        2,
        "bad compression",
    );
    expect_code(
        &sb.run(&fresh, &["init", "--pack-size", "1KiB"]),
        2,
        "small pack size",
    );
    assert!(
        !fresh.join("config").exists(),
        "a refused init wrote a config"
    );

    // Commands that need a repository, on a path without one.
    for args in [&["list"][..], &["verify"], &["restore", "latest", "t"]] {
        let out = sb.run(&sb.path("nothing-here"), args);
        expect_code(&out, 2, &format!("{args:?} without a repository"));
        assert!(stderr(&out).contains("init"), "no hint: {}", stderr(&out));
    }
    // An empty repository has no 'latest'.
    expect_code(&sb.run(&repo, &["init"]), 0, "init");
    expect_code(
        &sb.run(
            &repo,
            &["restore", "latest", sb.path("t").to_str().expect("utf8")],
        ),
        2,
        "latest of an empty repository",
    );

    let out = run({
        let mut c = sb.cmd();
        c.arg("--help");
        c
    });
    expect_code(&out, 0, "--help");
    assert!(stdout(&out).contains("snapshot"));
    let out = run({
        let mut c = sb.cmd();
        c.arg("--version");
        c
    });
    expect_code(&out, 0, "--version");
}

/// A snapshot refused for bad input has no side effect: like a missing source, an invalid
/// exclude pattern must not leave a freshly initialized repository behind.
#[test]
fn refused_snapshot_creates_no_repository() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let repo = sb.path("repo");
    let out = sb.run(
        &repo,
        &["snapshot", "--exclude", "[", src.to_str().expect("utf8")],
    );
    expect_code(&out, 2, "invalid exclude pattern");
    assert!(stderr(&out).contains("exclude"), "{}", stderr(&out));
    assert!(
        !repo.exists(),
        "a snapshot refused for an invalid --exclude initialized {}",
        repo.display()
    );
    let out = sb.run(
        &repo,
        &["snapshot", src.join("a.txt").to_str().expect("utf8")],
    );
    expect_code(&out, 2, "source is a file");
    assert!(
        !repo.exists(),
        "a snapshot refused because its source is a file initialized {}",
        repo.display()
    );
}

#[test]
fn tags_and_excludes() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    common::write_file(&src.join("scratch.tmp"), b"temporary");
    common::write_file(&src.join("sub/deeper/x.tmp"), b"temporary too");
    common::write_file(&src.join("sub/keep.tmpl"), b"kept");
    let repo = sb.path("repo");
    let out = sb.run(
        &repo,
        &[
            "snapshot",
            "--json",
            "--tag",
            "nightly",
            "--tag",
            "db",
            "--exclude",
            "*.tmp",
            src.to_str().expect("utf8"),
        ],
    );
    expect_code(&out, 0, "snapshot with tags and excludes");
    let snap = json(&out);
    assert_eq!(snap["files"], 3, "excluded files were counted: {snap}");
    assert_eq!(snap["tags"], serde_json::json!(["nightly", "db"]));

    let list = json(&sb.run(&repo, &["list", "--json"]));
    assert_eq!(list[0]["tags"], serde_json::json!(["nightly", "db"]));
    let table = stdout(&sb.run(&repo, &["list"]));
    assert!(
        table.contains("nightly,db"),
        "tags missing from the table: {table}"
    );

    let target = sb.path("out");
    expect_code(
        &sb.run(
            &repo,
            &["restore", "latest", target.to_str().expect("utf8")],
        ),
        0,
        "restore",
    );
    assert!(
        !target.join("scratch.tmp").exists(),
        "excluded file restored"
    );
    assert!(
        !target.join("sub/deeper/x.tmp").exists(),
        "excluded file restored"
    );
    assert!(target.join("sub/deeper").is_dir(), "its directory is kept");
    assert_eq!(
        fs::read(target.join("sub/keep.tmpl")).expect("kept"),
        b"kept"
    );
    assert_eq!(fs::read(target.join("a.txt")).expect("kept"), b"alpha\n");
}

/// Rewrites the config frame with another version and a valid checksum.
fn reframe(config: &[u8], version: u32) -> Vec<u8> {
    let body = &config[..config.len() - 32];
    let mut out = body[..8].to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&body[12..]);
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

#[test]
fn unknown_config_version_is_a_clear_error() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let repo = sb.path("repo");
    expect_code(
        &sb.run(&repo, &["snapshot", src.to_str().expect("utf8")]),
        0,
        "snapshot",
    );
    let path = repo.join("config");
    let config = fs::read(&path).expect("read config");

    // The documented frame: "SKCONFIG" | version u32 LE | payload | blake3 of the rest.
    assert_eq!(&config[..8], b"SKCONFIG");
    assert_eq!(
        u32::from_le_bytes(config[8..12].try_into().expect("4 bytes")),
        1
    );
    let (body, sum) = config.split_at(config.len() - 32);
    assert_eq!(blake3::hash(body).as_bytes(), sum, "config checksum layout");
    assert_eq!(reframe(&config, 1), config, "re-framing is faithful");

    fs::write(&path, reframe(&config, 99)).expect("rewrite config");
    match snapkeep::Repository::open_local(&repo) {
        Err(snapkeep::Error::UnsupportedFormat {
            found, supported, ..
        }) => {
            assert_eq!((found, supported), (99, 1));
        }
        other => panic!("expected UnsupportedFormat, got {other:?}"),
    }
    let snapshots_before = common::files_under(&repo.join("snapshots"));
    for args in [
        &["list"][..],
        &["verify"],
        &["snapshot", src.to_str().expect("utf8")],
        &["restore", "latest", sb.path("t").to_str().expect("utf8")],
    ] {
        let out = sb.run(&repo, args);
        let err = stderr(&out);
        assert_eq!(code(&out), 4, "{args:?} on a version-99 repository: {err}");
        assert!(
            err.contains("version 99") && err.contains("config"),
            "{args:?}: unclear error: {err}"
        );
    }
    assert_eq!(
        common::files_under(&repo.join("snapshots")),
        snapshots_before,
        "a snapshot was written into a repository of unknown version"
    );

    // A damaged config (one flipped byte): also a clear error, never a panic.
    let mut damaged = config.clone();
    damaged[20] ^= 0x01;
    fs::write(&path, &damaged).expect("damage config");
    let out = sb.run(&repo, &["list"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 4, "list on a damaged config: {err}");
    assert!(
        err.contains("config") && err.contains("damaged"),
        "unclear error: {err}"
    );
}

#[test]
fn repo_argument_may_be_non_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let sb = Sandbox::new();
    let src = sb.source("src");
    let repo = sb.root.join(OsStr::from_bytes(b"repo-\xff"));
    let out = sb.run(&repo, &["snapshot", "--json", src.to_str().expect("utf8")]);
    expect_code(&out, 0, "non-UTF-8 repository path");
    json(&out);
    assert!(repo.join("config").is_file());
}
