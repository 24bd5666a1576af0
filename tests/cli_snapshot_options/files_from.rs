//! `--files-from F`: sources read from F (comments and blank lines skipped, `-` is stdin),
//! together with the positional ones.

use std::io::Write;
use std::process::Stdio;

use crate::common;
use crate::harness::{Sandbox, expect_code, json};

#[test]
fn sources_from_a_file_and_from_stdin_join_the_positional_ones() {
    let sb = Sandbox::new();
    let a = sb.source("a");
    let b = sb.source("b");
    let c = sb.source("c");
    let list = sb.path("list.txt");
    common::write_file(
        &list,
        format!("# what to back up\n\n{}\n", super::s(&b)).as_bytes(),
    );
    let repo = sb.path("repo");
    sb.init(&repo);
    let v = super::snap(&sb, &repo, &[super::s(&a), "--files-from", super::s(&list)]);
    assert_eq!(v["paths"].as_array().map(Vec::len), Some(2), "{v}");
    let paths = super::ls_paths(&sb, &repo, v["id"].as_str().expect("id"));
    assert!(
        paths.iter().any(|p| p == "/a/a.txt") && paths.iter().any(|p| p == "/b/a.txt"),
        "{paths:?}"
    );

    let mut cmd = sb.cmd();
    cmd.arg("--repo")
        .arg(&repo)
        .args(["--json", "snapshot", "--files-from", "-", "--files-from"])
        .arg(&list)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{}\n#{}\n", super::s(&c), super::s(&a)).as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    expect_code(&out, 0, "--files-from -");
    let v = json(&out);
    let got: Vec<&str> = v["paths"]
        .as_array()
        .expect("paths")
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    assert_eq!(got.len(), 2, "{v}");
    assert!(
        got.iter().any(|p| p.ends_with("/b")) && got.iter().any(|p| p.ends_with("/c")),
        "{v}"
    );

    let empty = sb.path("empty.txt");
    common::write_file(&empty, b"# nothing\n");
    let out = super::snap_out(&sb, &repo, &["--files-from", super::s(&empty)]);
    expect_code(&out, 2, "an empty list and no source");
}
