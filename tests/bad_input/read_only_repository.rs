//! A read-only repository.

use std::fs;

use crate::common;
use crate::harness::{
    User, assert_one_line_naming, assert_refused, chmod, chown_nobody, code, json_of, listing,
    utf8, with_baseline, write,
};

#[test]
fn read_only_repository_reads_and_refuses_snapshots_cleanly() {
    let (sb, repo, base_id, base_tree) = with_baseline();
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
    assert_refused(&out, "snapshot into a read-only repository");
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
