//! Unreadable files and directories (run as nobody).

use std::fs;

use crate::common;
use crate::harness::{
    Sandbox, User, assert_refused, assert_warned, baseline, chmod, chown_nobody, code, json_of,
    stderr_of, tree_of, utf8, warnings_of, write,
};

#[test]
fn unreadable_file_and_directory_are_skipped_counted_and_named() {
    let sb = Sandbox::new();
    let repo = sb.path("repo");
    fs::create_dir(&repo).expect("mkdir repo");
    chown_nobody(&repo);
    let (base_id, base_tree) = baseline(&sb, User::Nobody, &repo);

    let src = sb.path("src");
    write(&src.join("readable.txt"), b"anyone may read this\n");
    write(&src.join("sub/also.bin"), &common::random_bytes(50_000, 7));
    chown_nobody(&src);
    let readable = tree_of(&src);
    let secret = src.join("secret.bin");
    write(&secret, b"root only");
    chmod(&secret, 0o000);
    let locked = src.join("locked");
    write(&locked.join("inner.txt"), b"behind a closed door");
    chmod(&locked, 0o000);

    let out = sb.run(User::Nobody, &repo, &["--json", "snapshot", utf8(&src)]);
    assert_eq!(
        code(&out),
        5,
        "a snapshot with unreadable entries is saved, with warnings and exit code 5: {}",
        stderr_of(&out)
    );
    let v = json_of(&out, "snapshot");
    assert_eq!(v["skipped"], 2, "the unreadable file and directory: {v}");
    assert_eq!(v["files"], 2, "{v}");
    let warnings = warnings_of(&v);
    assert_warned(&warnings, &secret);
    assert_warned(&warnings, &locked);
    for p in [&secret, &locked] {
        assert!(
            stderr_of(&out).contains(&p.display().to_string()),
            "stderr does not warn about {}: {}",
            p.display(),
            stderr_of(&out)
        );
    }
    let id = v["id"].as_str().expect("id").to_owned();
    let ls = sb.json(User::Nobody, &repo, &["ls", &id]);
    let paths = common::json_strings(&ls, "path");
    assert!(
        !paths
            .iter()
            .any(|p| p.contains("secret") || p.contains("locked")),
        "skipped entries are in the snapshot: {paths:?}"
    );

    // An unreadable source directory itself: an error naming it, nothing committed.
    let closed = sb.path("closed-src");
    write(&closed.join("x"), b"x");
    chmod(&closed, 0o700);
    let out = sb.run(User::Nobody, &repo, &["snapshot", utf8(&closed)]);
    assert_refused(&out, "unreadable source");
    assert!(
        stderr_of(&out).contains(utf8(&closed)),
        "the error does not name {}: {}",
        closed.display(),
        stderr_of(&out)
    );

    let listed = sb.json(User::Nobody, &repo, &["list"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    sb.assert_intact(
        User::Nobody,
        &repo,
        &[(&base_id, &base_tree), (&id, &readable)],
    );
}
