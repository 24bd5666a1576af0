//! Snapshot filters (`--host`, `--path`, `--tag`, as restic's) and what `latest` means: the
//! newest snapshot of this machine's host (unless `--host`) among those the filters select,
//! told on stderr; a filter that selects nothing names the hosts that have snapshots.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::common;
use crate::harness::{Sandbox, expect_code, json, stderr, stdout};

/// A directory holding one file `f` with `text`; its canonical path.
fn source(sb: &Sandbox, rel: &str, text: &str) -> String {
    let dir = sb.path(rel);
    common::write_file(&dir.join("f"), text.as_bytes());
    let canonical = fs::canonicalize(&dir).expect("canonical");
    canonical.to_str().expect("utf8").to_owned()
}

/// Takes a snapshot with extra flags and returns its id.
fn snapshot(sb: &Sandbox, repo: &Path, src: &str, flags: &[&str]) -> String {
    let mut args = vec!["--json", "snapshot"];
    args.extend_from_slice(flags);
    args.push(src);
    let out = sb.run(repo, &args);
    expect_code(&out, 0, &format!("snapshot {src} {flags:?}"));
    json(&out)["id"].as_str().expect("id").to_owned()
}

/// Restores `spec` (with `flags`) into the new directory `dir`; returns `f` and stderr.
fn restore(sb: &Sandbox, repo: &Path, spec: &str, dir: &str, flags: &[&str]) -> (String, String) {
    let target = sb.path(dir);
    let mut args = vec!["restore", spec, target.to_str().expect("utf8")];
    args.extend_from_slice(flags);
    let out = sb.run(repo, &args);
    expect_code(&out, 0, &format!("restore {spec} {flags:?}"));
    assert_eq!(stdout(&out), "", "restore prints its result on stderr only");
    let f = fs::read_to_string(target.join("f")).expect("restored f");
    (f, stderr(&out))
}

/// The last 8 hex digits of an id: the short id listings show.
fn short(id: &str) -> &str {
    &id[id.len() - 8..]
}

/// The restic scenario of issue #19: `snapshot bad --host otherhost; restore latest out` must
/// restore this host's snapshot, say which one it chose, and `--host` picks the other one.
#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, its steps in order")]
fn latest_is_this_hosts_and_says_which() {
    let sb = Sandbox::new();
    let repo = sb.path("repo");
    sb.init(&repo);
    let good = source(&sb, "good", "good\n");
    let bad = source(&sb, "bad", "bad\n");
    let mine = snapshot(&sb, &repo, &good, &[]);
    let other = snapshot(&sb, &repo, &bad, &["--host", "otherhost"]);

    let (f, err) = restore(&sb, &repo, "latest", "out", &[]);
    assert_eq!(f, "good\n", "latest restored another host's snapshot");
    for part in [short(&mine), mine.as_str(), good.as_str()] {
        assert!(err.contains(part), "the choice is not told ({part}): {err}");
    }
    assert!(err.contains(&rfc3339_of(&sb, &repo, &mine)), "{err}");
    let (f, err) = restore(&sb, &repo, "latest", "out-other", &["--host", "otherhost"]);
    assert_eq!(
        f, "bad\n",
        "--host did not select the other host's snapshot"
    );
    assert!(err.contains(&other) && err.contains("otherhost"), "{err}");
    // Several --host flags are alternatives: the newest of both.
    let (f, _) = restore(
        &sb,
        &repo,
        "latest",
        "out-both",
        &[
            "--host",
            "otherhost",
            "--host",
            &hostname(&sb, &repo, &mine),
        ],
    );
    assert_eq!(f, "bad\n");
    // --quiet keeps the message off stderr; with --json it never reaches stdout.
    let out = sb.run(
        &repo,
        &[
            "--quiet",
            "restore",
            "latest",
            sb.path("q").to_str().expect("utf8"),
        ],
    );
    expect_code(&out, 0, "quiet restore");
    assert!(!stderr(&out).contains(&mine), "{}", stderr(&out));
    let out = sb.run(&repo, &["--json", "show", "latest"]);
    expect_code(&out, 0, "show latest --json");
    assert_eq!(json(&out)["id"], mine.as_str());
    assert!(stderr(&out).contains(short(&mine)), "{}", stderr(&out));

    // A filter that matches nothing while other snapshots exist: exit 2, naming the hosts
    // that have snapshots and the flag that picks one; nothing is restored.
    let never = sb.path("never");
    let out = sb.run(
        &repo,
        &[
            "restore",
            "latest",
            never.to_str().expect("utf8"),
            "--host",
            "nobody",
        ],
    );
    expect_code(&out, 2, "latest of a host without snapshots");
    let err = stderr(&out);
    for part in ["nobody", "otherhost", "--host"] {
        assert!(err.contains(part), "missing '{part}': {err}");
    }
    assert!(!never.exists(), "a refused restore created its target");
    let out = sb.run(
        &repo,
        &[
            "--json",
            "restore",
            "latest",
            never.to_str().expect("utf8"),
            "--host",
            "nobody",
        ],
    );
    expect_code(&out, 2, "--json");
    assert_eq!(json(&out)["exit_code"], 2);

    // A repository holding only another host's snapshots has no 'latest' for this host.
    let shared = sb.path("shared");
    sb.init(&shared);
    snapshot(&sb, &shared, &bad, &["--host", "otherhost"]);
    let out = sb.run(
        &shared,
        &["restore", "latest", never.to_str().expect("utf8")],
    );
    expect_code(&out, 2, "latest where only another host has snapshots");
    assert!(stderr(&out).contains("otherhost"), "{}", stderr(&out));
    assert!(!never.exists(), "restored another host's snapshot");
    // An explicit id names one snapshot, whichever host took it...
    let (f, _) = restore(&sb, &repo, &other, "by-id", &[]);
    assert_eq!(f, "bad\n");
    // ...but not one the filters given exclude.
    let out = sb.run(
        &repo,
        &["show", &other, "--host", &hostname(&sb, &repo, &mine)],
    );
    expect_code(&out, 2, "an id outside the filter");
    assert!(stderr(&out).contains("otherhost"), "{}", stderr(&out));
}

/// `--path` (made absolute and canonical) and `--tag` (`a,b` both, several flags any) choose
/// `latest`; in `list`, `find` and `forget` the filters narrow the set, with no host default.
#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, its steps in order")]
fn path_and_tag_filters_narrow_every_command() {
    let sb = Sandbox::new();
    let repo = sb.path("repo");
    sb.init(&repo);
    let one = source(&sb, "one", "one\n");
    let two = source(&sb, "two", "two\n");
    let id_one = snapshot(&sb, &repo, &one, &["--tag", "a", "--tag", "b"]);
    let id_two = snapshot(&sb, &repo, &two, &["--tag", "a"]);
    let id_other = snapshot(&sb, &repo, &two, &["--host", "otherhost"]);

    // The newest of this host is 'two'; --path picks 'one' (relative to the current
    // directory, which the sandbox sets to its root, and with a trailing slash).
    assert_eq!(restore(&sb, &repo, "latest", "l", &[]).0, "two\n");
    assert_eq!(
        restore(&sb, &repo, "latest", "p", &["--path", "./one/"]).0,
        "one\n"
    );
    assert_eq!(
        restore(&sb, &repo, "latest", "t", &["--tag", "a,b"]).0,
        "one\n"
    );
    assert_eq!(
        restore(&sb, &repo, "latest", "t2", &["--tag", "b", "--tag", "zzz"]).0,
        "one\n"
    );
    let out = sb.run(&repo, &["show", "latest", "--path", &one, "--tag", "nope"]);
    expect_code(&out, 2, "no snapshot with that path and tag");
    assert!(stderr(&out).contains("--tag"), "{}", stderr(&out));

    let list = |flags: &[&str]| -> Vec<String> {
        let mut args = vec!["--json", "list"];
        args.extend_from_slice(flags);
        let out = sb.run(&repo, &args);
        expect_code(&out, 0, &format!("list {flags:?}"));
        json(&out)
            .as_array()
            .expect("array")
            .iter()
            .map(|r| r["id"].as_str().expect("id").to_owned())
            .collect()
    };
    assert_eq!(
        list(&[]),
        [id_one.as_str(), id_two.as_str(), id_other.as_str()],
        "no host default in list"
    );
    assert_eq!(list(&["--host", "otherhost"]), [id_other.as_str()]);
    assert_eq!(list(&["--tag", "a"]), [id_one.as_str(), id_two.as_str()]);
    assert_eq!(list(&["--tag", "a,b"]), [id_one.as_str()]);
    assert_eq!(
        list(&["--tag", ""]),
        [id_other.as_str()],
        "'' selects untagged ones"
    );
    assert_eq!(
        list(&["--path", &two]),
        [id_two.as_str(), id_other.as_str()]
    );
    assert_eq!(
        list(&["--path", &two, "--path", &one]),
        Vec::<String>::new()
    );
    let table = stdout(&sb.run(&repo, &["list", "--host", "otherhost"]));
    assert!(table.ends_with("\n1 snapshot\n"), "{table}");

    // find searches the selected snapshots only.
    let out = sb.run(&repo, &["--json", "find", "f", "--host", "otherhost"]);
    expect_code(&out, 0, "find --host");
    let hits = json(&out);
    assert_eq!(common::json_strings(&hits, "snapshot"), [id_other.as_str()]);

    // forget: the policy runs over the selected snapshots only.
    let out = sb.run(
        &repo,
        &[
            "--json",
            "forget",
            "--keep-last",
            "1",
            "--group-by",
            "",
            "--tag",
            "a",
            "--dry-run",
        ],
    );
    expect_code(&out, 0, "forget --tag");
    let plan = json(&out);
    assert_eq!(plan["forget"], serde_json::json!([id_one]), "{plan}");
    assert_eq!(plan["decisions"].as_array().expect("decisions").len(), 2);
    assert_eq!(list(&[]).len(), 3, "a dry run forgot");

    // Every verb that resolves 'latest' takes the filters.
    let other_json = |args: &[&str]| -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--host", "otherhost"]);
        let out = sb.run(&repo, &all);
        expect_code(&out, 0, &format!("{args:?} --host otherhost"));
        assert!(
            stderr(&out).contains(short(&id_other)),
            "{args:?}: {}",
            stderr(&out)
        );
        json(&out)
    };
    assert_eq!(other_json(&["show", "latest"])["host"], "otherhost");
    assert_eq!(other_json(&["ls", "latest"])[0]["path"], "/f");
    assert_eq!(other_json(&["stats", "latest"])["snapshots"], 1);
    assert_eq!(other_json(&["verify", "latest"])["snapshots"], 1);
    assert_eq!(
        other_json(&["diff", &id_other, "latest"])["to"],
        id_other.as_str()
    );
    assert_eq!(
        other_json(&["tag", "latest", "--add", "moved"])["tags"],
        serde_json::json!(["moved"])
    );
    let stats = json(&sb.run(&repo, &["--json", "stats", "--tag", "a"]));
    assert_eq!(
        stats["snapshots"], 2,
        "stats without an id narrows: {stats}"
    );
    let out = sb.run(&repo, &["verify", "--host", "otherhost"]);
    expect_code(&out, 2, "verify with a filter and no snapshot");
    for bad in [
        &["list", "--tag", "a,"][..],
        &["list", "--host", ""],
        &["list", "--path", ""],
    ] {
        expect_code(&sb.run(&repo, bad), 2, &format!("{bad:?}"));
    }
}

fn show(sb: &Sandbox, repo: &Path, id: &str) -> Value {
    let out = sb.run(repo, &["--json", "show", id]);
    expect_code(&out, 0, "show");
    json(&out)
}

fn hostname(sb: &Sandbox, repo: &Path, id: &str) -> String {
    show(sb, repo, id)["host"]
        .as_str()
        .expect("host")
        .to_owned()
}

fn rfc3339_of(sb: &Sandbox, repo: &Path, id: &str) -> String {
    show(sb, repo, id)["time"]
        .as_str()
        .expect("time")
        .to_owned()
}

/// `snapshot --parent latest` is this host's newest snapshot of the same source paths, said on
/// stderr: never another host's, never another directory's; none is an error (exit 2) that
/// names the host and path, and nothing is written.
#[test]
fn parent_latest_is_this_hosts_snapshot_of_these_paths() {
    let sb = Sandbox::new();
    let repo = sb.path("repo");
    sb.init(&repo);
    let db = source(&sb, "db", "db\n");
    let other_dir = source(&sb, "other", "other\n");
    // Another host's snapshot of the same path and this host's of another path: neither is
    // a parent for this host's `db`.
    let theirs = snapshot(&sb, &repo, &db, &["--host", "otherhost"]);
    let _elsewhere = snapshot(&sb, &repo, &other_dir, &[]);
    let out = sb.run(&repo, &["snapshot", "--parent", "latest", &db]);
    expect_code(
        &out,
        2,
        "--parent latest with no snapshot of this host and path",
    );
    let err = stderr(&out);
    assert!(
        err.contains("--parent latest") && err.contains(&db),
        "{err}"
    );
    assert!(!err.contains(short(&theirs)), "{err}");
    let list = sb.run(&repo, &["--json", "list"]);
    expect_code(&list, 0, "list");
    assert_eq!(
        json(&list).as_array().map(Vec::len),
        Some(2),
        "nothing was written"
    );

    // This host's snapshot of `db` becomes the parent, and stderr names it.
    let mine = snapshot(&sb, &repo, &db, &[]);
    let out = sb.run(&repo, &["--json", "snapshot", "--parent", "latest", &db]);
    expect_code(&out, 0, "--parent latest");
    assert_eq!(json(&out)["parent"], Value::from(mine.clone()));
    assert!(stderr(&out).contains(short(&mine)), "{}", stderr(&out));
    // With --host the other host's snapshot is the parent.
    let out = sb.run(
        &repo,
        &[
            "--json",
            "snapshot",
            "--host",
            "otherhost",
            "--parent",
            "latest",
            &db,
        ],
    );
    expect_code(&out, 0, "--host otherhost --parent latest");
    assert_eq!(json(&out)["parent"], Value::from(theirs));
}

/// A damaged newest record is not skipped silently: `latest` takes the newest readable one and
/// warns that a newer record could not be read, naming it.
#[test]
fn latest_warns_when_a_newer_record_is_damaged() {
    let sb = Sandbox::new();
    let repo = sb.path("repo");
    sb.init(&repo);
    let db = source(&sb, "db", "db\n");
    let older = snapshot(&sb, &repo, &db, &[]);
    let newer = snapshot(&sb, &repo, &db, &[]);
    let record = repo.join("snapshots").join(&newer);
    let mut bytes = fs::read(&record).expect("record");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    fs::write(&record, bytes).expect("damage the record");
    let out = sb.run(&repo, &["--json", "show", "latest"]);
    expect_code(&out, 0, "show latest with a damaged newest record");
    assert_eq!(json(&out)["id"], Value::from(older));
    let err = stderr(&out);
    assert!(
        err.contains("warning") && err.contains(&newer) && err.contains("may have been the latest"),
        "{err}"
    );
}
