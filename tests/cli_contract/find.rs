//! `find PATTERN...`: which snapshots hold a path, over every snapshot (or the filtered ones).

use crate::common;
use crate::harness::{Sandbox, expect_code, json, stderr, stdout};

#[test]
fn find_names_and_anchored_paths_in_every_snapshot() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let repo = sb.path("repo");
    sb.init(&repo);
    let s = src.to_str().expect("utf8");
    let id1 = stdout(&sb.run(&repo, &["snapshot", s])).trim().to_owned();
    std::fs::remove_file(src.join("sub/b.bin")).expect("rm");
    common::write_file(&src.join("other/sub/b.bin"), b"moved");
    let id2 = stdout(&sb.run(&repo, &["snapshot", s])).trim().to_owned();

    let find = |args: &[&str]| {
        let mut all = vec!["--json", "find"];
        all.extend_from_slice(args);
        let out = sb.run(&repo, &all);
        expect_code(&out, 0, &format!("find {args:?}"));
        json(&out)
    };
    // A name matches in any directory of every snapshot.
    let hits = find(&["b.bin"]);
    let pairs: Vec<(&str, &str)> = hits
        .as_array()
        .expect("array")
        .iter()
        .map(|h| {
            (
                h["snapshot"].as_str().expect("id"),
                h["path"].as_str().expect("path"),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        [
            (id1.as_str(), "/sub/b.bin"),
            (id2.as_str(), "/other/sub/b.bin")
        ],
        "{hits}"
    );
    let first = &hits[0];
    assert_eq!(first["type"], "file");
    assert_eq!(first["size"], 40_000);
    assert!(
        first["host"].as_str().is_some_and(|h| !h.is_empty()),
        "{first}"
    );
    for key in ["time", "mtime"] {
        assert!(
            first[key].as_str().is_some_and(|t| t.ends_with('Z')),
            "{key}: {first}"
        );
    }
    // A leading '/' anchors at the snapshot root; '*' stays within one name.
    assert_eq!(
        common::json_strings(&find(&["/sub/*"]), "path"),
        ["/sub/b.bin"]
    );
    assert_eq!(
        common::json_strings(&find(&["sub/*.bin"]), "path"),
        ["/sub/b.bin", "/other/sub/b.bin"]
    );
    assert_eq!(find(&["/b.bin"]), serde_json::json!([]));
    // Several patterns: any of them; directories and symlinks are found too.
    let both = find(&["link", "/other"]);
    assert_eq!(
        common::json_strings(&both, "type"),
        ["symlink", "symlink", "dir"]
    );

    // The human listing: short id, time, type, size, mtime, path; the count on stderr.
    let out = sb.run(&repo, &["find", "/other/sub/b.bin"]);
    expect_code(&out, 0, "find, human");
    let text = stdout(&out);
    let line = text.lines().next().expect("one line");
    assert!(line.starts_with(&id2[id2.len() - 8..]), "{text}");
    assert!(
        line.contains(" file ") && line.ends_with(" /other/sub/b.bin"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        stderr(&out).contains("1 match in 1 of 2 snapshots searched"),
        "{}",
        stderr(&out)
    );
    expect_code(&sb.run(&repo, &["find", "["]), 2, "a bad glob");
    expect_code(&sb.run(&repo, &["find"]), 2, "no pattern");
}
