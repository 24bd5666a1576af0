//! `--quiet`: the snapshot id on stdout, nothing on stderr.

use crate::harness::{Sandbox, assert_uuid_v7, expect_code, stderr, stdout};

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
