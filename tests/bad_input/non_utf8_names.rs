//! Non-UTF-8 names.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;

use crate::common;
use crate::harness::{Sandbox, User, tree_of, with_baseline, write};

#[test]
fn non_utf8_names_round_trip_byte_identical() {
    let (sb, repo, base_id, base_tree) = with_baseline();

    let src = sb.path("src");
    fs::create_dir(&src).expect("mkdir");
    let file = src.join(OsStr::from_bytes(b"file-\xff\xfe.bin"));
    let dir = src.join(OsStr::from_bytes(b"dir-\xfe\xff"));
    let inner = dir.join(OsStr::from_bytes(b"inner-\xff"));
    write(&file, b"a file with a non-UTF-8 name");
    write(&inner, &common::random_bytes(30_000, 99));
    std::os::unix::fs::symlink(OsStr::from_bytes(b"file-\xff\xfe.bin"), src.join("link"))
        .expect("symlink");
    let expected = tree_of(&src);
    assert_eq!(expected.len(), 4);

    let v = sb.snapshot(User::Root, &repo, &src);
    assert_eq!(
        (&v["files"], &v["symlinks"], &v["skipped"]),
        (&2.into(), &1.into(), &0.into()),
        "{v}"
    );
    let id = v["id"].as_str().expect("id").to_owned();
    let ls = sb.json(User::Root, &repo, &["ls", &id]);
    assert_eq!(ls.as_array().map(Vec::len), Some(4), "{ls}");

    // The restore compares raw name bytes (Tree keys are bytes).
    sb.assert_intact(
        User::Root,
        &repo,
        &[(&base_id, &base_tree), (&id, &expected)],
    );
}

#[test]
fn ls_json_keeps_distinct_non_utf8_names_distinct() {
    let sb = Sandbox::new();
    let repo = sb.path("repo");
    let src = sb.path("src");
    fs::create_dir(&src).expect("mkdir");
    write(&src.join(OsStr::from_bytes(b"name-\xff")), b"one");
    write(&src.join(OsStr::from_bytes(b"name-\xfe")), b"two");
    sb.init(User::Root, &repo);
    let v = sb.snapshot(User::Root, &repo, &src);
    let id = v["id"].as_str().expect("id").to_owned();
    let ls = sb.json(User::Root, &repo, &["ls", &id]);
    let paths = common::json_strings(&ls, "path");
    assert_eq!(paths.len(), 2, "{ls}");
    assert_ne!(
        paths[0], paths[1],
        "ls --json shows two different names (b\"name-\\xff\", b\"name-\\xfe\") as the same path: {ls}"
    );
}
