//! Issue #19, listings one entry a line: a name with a newline (or bytes that are not UTF-8)
//! prints escaped (`\x0a`, `\xff`) in `ls`, `diff` and `find`, and `find --json` carries the
//! exact bytes (`path_hex`). `find` goes on past a snapshot it cannot read to the end and says
//! so with exit code 4.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use common::{assert_exit, cli, cli_json, stderr_of};
use serde_json::Value;

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn snapshot(repo: &Path, src: &Path) -> String {
    let v = cli_json(repo, &["snapshot", src.to_str().expect("utf-8")]);
    v["id"].as_str().expect("id").to_owned()
}

#[test]
fn names_with_newlines_print_one_entry_a_line() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    let _ = common::small_repo(&repo);
    let src = tmp.path().join("src");
    common::write_file(&src.join("a\nb"), b"one");
    common::write_file(&src.join(OsStr::from_bytes(b"x\xffy")), b"two");
    let id1 = snapshot(&repo, &src);
    common::write_file(&src.join("c\nd"), b"three");
    let id2 = snapshot(&repo, &src);

    let out = cli(&repo, &["ls", &id2]);
    assert_exit(&out, 0, "ls");
    let text = stdout_of(&out);
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["/a\\x0ab", "/c\\x0ad", "/x\\xffy"], "{text}");

    let out = cli(&repo, &["ls", "-l", &id2]);
    assert_exit(&out, 0, "ls -l");
    assert_eq!(stdout_of(&out).lines().count(), 3, "{}", stdout_of(&out));

    let out = cli(&repo, &["diff", &id1, &id2]);
    assert_exit(&out, 0, "diff");
    let text = stdout_of(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "one change and the summary: {text}");
    assert!(
        lines[0].starts_with('+') && lines[0].ends_with("/c\\x0ad"),
        "{text}"
    );

    let out = cli(&repo, &["find", "--host", &hostname(&repo, &id2), "*\nd"]);
    assert_exit(&out, 0, "find");
    let text = stdout_of(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.trim_end().ends_with("/c\\x0ad"), "{text}");

    // JSON keeps the name (a newline is valid text) and gives the bytes when not UTF-8.
    let v = cli_json(&repo, &["find", "x*"]);
    let hits = v.as_array().expect("array");
    assert_eq!(hits.len(), 2, "{v}");
    assert_eq!(hits[0]["path"], "/x\\xffy");
    assert_eq!(hits[0]["path_hex"], hex_of(b"/x\xffy"));
    let v = cli_json(&repo, &["find", "a*"]);
    assert_eq!(v[0]["path"], "/a\nb");
    assert_eq!(v[0].get("path_hex"), None, "{v}");
}

fn hex_of(b: &[u8]) -> String {
    hex::encode(b)
}

fn hostname(repo: &Path, id: &str) -> String {
    let v = cli_json(repo, &["show", id]);
    v["host"].as_str().expect("host").to_owned()
}

#[test]
fn find_goes_on_past_a_damaged_snapshot_and_exits_4() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    let _ = common::small_repo(&repo);
    let one = tmp.path().join("one");
    let two = tmp.path().join("two");
    common::write_file(&one.join("sub/hit.txt"), b"first");
    common::write_file(&two.join("sub/hit.txt"), b"second");
    let id1 = snapshot(&repo, &one);
    let id2 = snapshot(&repo, &two);

    // The pack that holds snapshot one's root tree goes missing.
    let tree = cli_json(&repo, &["cat", "snapshot", &id1])["tree"]
        .as_str()
        .expect("tree")
        .to_owned();
    let mut pack = None;
    for index in cli_json(&repo, &["cat", "index"])
        .as_array()
        .expect("index list")
    {
        let file = cli_json(&repo, &["cat", "index", index["id"].as_str().expect("id")]);
        for e in file["entries"].as_array().expect("entries") {
            if e["id"] == tree.as_str() {
                pack = e["pack"].as_str().map(str::to_owned);
            }
        }
    }
    let pack = pack.expect("the root tree is indexed");
    fs::remove_file(repo.join("data").join(&pack[..2]).join(&pack)).expect("remove pack");

    let out = cli(&repo, &["--json", "find", "hit.txt"]);
    assert_exit(&out, 4, "find with a damaged snapshot");
    let v: Value = serde_json::from_slice(&out.stdout).expect("the matches are still printed");
    let found: Vec<&str> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|h| h["snapshot"].as_str().expect("id"))
        .collect();
    assert_eq!(found, [id2.as_str()], "{v}");
    let err = stderr_of(&out);
    assert!(
        err.contains(&id1) && err.contains("could not be searched"),
        "{err}"
    );
}
