//! `--quiet`: the snapshot id on stdout, nothing on stderr.

use crate::harness::{Sandbox, assert_uuid_v7, expect_code, run, stderr, stdout};

#[test]
fn quiet_snapshot_prints_only_the_id() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    // `--quiet`: "no progress bar and no messages on stderr (errors still go there)".
    let mut c = sb.cmd();
    c.args(["--quiet", "snapshot", src.to_str().expect("utf8")]);
    let out = run(c);
    expect_code(&out, 0, "quiet snapshot");
    assert_uuid_v7(stdout(&out).trim_end());
    assert_eq!(
        stderr(&out),
        "",
        "--quiet snapshot that creates the default repository wrote to stderr"
    );
    let repo = sb.path("repo");
    sb.init(&repo);
    let out = sb.run(&repo, &["-q", "snapshot", src.to_str().expect("utf8")]);
    expect_code(&out, 0, "quiet snapshot");
    assert_eq!(stderr(&out), "", "--quiet snapshot wrote to stderr");
}
