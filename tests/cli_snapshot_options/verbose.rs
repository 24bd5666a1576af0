//! `-v`: one line per new or modified file on stderr and a final count; `-vv` also the
//! unchanged files.

use crate::common;
use crate::harness::{Sandbox, expect_code, stderr};

fn lines(out: &std::process::Output, kind: &str) -> Vec<String> {
    stderr(out)
        .lines()
        .filter_map(|l| l.strip_prefix(kind).map(|r| r.trim().to_owned()))
        .collect()
}

#[test]
fn verbose_lists_new_modified_and_unchanged_files() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let src = std::fs::canonicalize(&src).expect("canonical");
    let repo = sb.path("repo");
    sb.init(&repo);
    let out = sb.run(&repo, &["-v", "snapshot", super::s(&src)]);
    expect_code(&out, 0, "snapshot -v");
    let a = src.join("a.txt").display().to_string();
    let b = src.join("sub/b.bin").display().to_string();
    assert_eq!(
        lines(&out, "new "),
        [a.clone(), b.clone()],
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("files: 2 new, 0 modified, 0 unchanged"),
        "{}",
        stderr(&out)
    );

    common::write_file(&src.join("a.txt"), b"alpha, edited\n");
    let c = src.join("c.txt").display().to_string();
    common::write_file(&src.join("c.txt"), b"new\n");
    let out = sb.run(&repo, &["snapshot", "--verbose", super::s(&src)]);
    expect_code(&out, 0, "snapshot --verbose");
    assert_eq!(
        lines(&out, "modified "),
        std::slice::from_ref(&a),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        lines(&out, "new "),
        std::slice::from_ref(&c),
        "{}",
        stderr(&out)
    );
    assert!(lines(&out, "unchanged ").is_empty(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("files: 1 new, 1 modified, 1 unchanged"),
        "{}",
        stderr(&out)
    );

    let out = sb.run(&repo, &["-vv", "snapshot", super::s(&src)]);
    expect_code(&out, 0, "snapshot -vv");
    // Sorted by path: src/c.txt comes before src/sub/b.bin.
    assert_eq!(lines(&out, "unchanged "), [a, c, b], "{}", stderr(&out));

    let out = sb.run(&repo, &["snapshot", super::s(&src)]);
    assert!(lines(&out, "unchanged ").is_empty() && lines(&out, "new ").is_empty());
}
