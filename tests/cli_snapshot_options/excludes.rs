//! Excludes as restic reads them: `/sub` is the source's top level only; `*.tmp` and
//! `cache/x` match at any depth; `**` crosses directories; `--exclude-file` (comments and
//! blank lines skipped) and `--iexclude` (ignoring case).

use crate::common;
use crate::harness::{Sandbox, expect_code, stderr};

fn tree(sb: &Sandbox) -> std::path::PathBuf {
    let src = sb.path("src");
    for f in [
        "sub/top.txt",
        "a/sub/deep.txt",
        "a/b.tmp",
        "cache/x",
        "deep/cache/x",
        "deep/cache/y",
        "logs/2024/jan/big.log",
        "logs/keep.txt",
        "Photo.JPG",
        "keep.txt",
    ] {
        common::write_file(&src.join(f), f.as_bytes());
    }
    src
}

fn files(sb: &Sandbox, repo: &std::path::Path, v: &serde_json::Value) -> Vec<String> {
    let mut p = super::ls_paths(sb, repo, v["id"].as_str().expect("id"));
    p.retain(|x| x.contains('.') || x.ends_with("/x") || x.ends_with("/y"));
    p
}

#[test]
fn anchored_unanchored_and_double_star_patterns() {
    let sb = Sandbox::new();
    let src = tree(&sb);
    let repo = sb.path("repo");
    sb.init(&repo);
    let v = super::snap(
        &sb,
        &repo,
        &[
            super::s(&src),
            "--exclude",
            "/sub",
            "--exclude",
            "*.tmp",
            "--exclude",
            "cache/x",
            "--exclude",
            "/logs/**/*.log",
        ],
    );
    let got = files(&sb, &repo, &v);
    let want = [
        "/Photo.JPG",
        "/a/sub/deep.txt",
        "/deep/cache/y",
        "/keep.txt",
        "/logs/keep.txt",
    ];
    assert_eq!(got, want, "{v}");
}

#[test]
fn exclude_file_and_iexclude() {
    let sb = Sandbox::new();
    let src = tree(&sb);
    let repo = sb.path("repo");
    sb.init(&repo);
    let list = sb.path("excludes.txt");
    common::write_file(
        &list,
        // Blanks around a pattern are dropped (a trailing space, an indented line).
        b"# caches and scratch\n\n  /cache\n  \n*.tmp \r\n# /keep.txt\n",
    );
    let v = super::snap(
        &sb,
        &repo,
        &[
            super::s(&src),
            "--exclude-file",
            super::s(&list),
            "--iexclude",
            "*.jpg",
        ],
    );
    let got = files(&sb, &repo, &v);
    let want = [
        "/a/sub/deep.txt",
        "/deep/cache/x",
        "/deep/cache/y",
        "/keep.txt",
        "/logs/2024/jan/big.log",
        "/logs/keep.txt",
        "/sub/top.txt",
    ];
    assert_eq!(got, want, "{v}");

    let out = super::snap_out(
        &sb,
        &repo,
        &[super::s(&src), "--exclude-file", "missing.txt"],
    );
    expect_code(&out, 2, "a missing exclude file");
    assert!(stderr(&out).contains("missing.txt"), "{}", stderr(&out));
}
