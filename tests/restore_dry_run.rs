//! `restore --dry-run` lists what a restore would write (`+` new, `~` changed) and delete (`-`)
//! and writes nothing (no target, no staging directory), for a restore into a new directory
//! and for an in-place one; `--json` gives `{dry_run, id, target, in_place, write: [{path,
//! type, change}], delete, unchanged, write_bytes, delete_allowed}`; the real run then does
//! exactly what the preview said.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

fn snapshot(repo: &Path, src: &Path) -> String {
    let out = common::cli(repo, &["--quiet", "snapshot", src.to_str().expect("utf-8")]);
    common::assert_exit(&out, 0, "snapshot");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Name → (inode, mtime, content) of every entry below `dir` (symlinks not followed).
fn tree(dir: &Path) -> BTreeMap<String, (u64, i64, Vec<u8>)> {
    walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .flatten()
        .map(|e| {
            let m = fs::symlink_metadata(e.path()).expect("stat");
            let content = if m.is_file() {
                fs::read(e.path()).expect("read")
            } else {
                Vec::new()
            };
            (
                e.path().to_string_lossy().into_owned(),
                (m.ino(), m.mtime_nsec() + m.mtime() * 1_000_000_000, content),
            )
        })
        .collect()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("list")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn dry_run_into_a_new_directory_lists_everything_and_writes_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    common::write_file(&src.join("a"), b"alpha");
    common::write_file(&src.join("sub/b"), b"beta");
    std::os::unix::fs::symlink("a", src.join("l")).expect("symlink");
    let repo = tmp.path().join("repo");
    let _ = common::small_repo(&repo);
    let id = snapshot(&repo, &src);
    let out_dir = tmp.path().join("out");
    let o = out_dir.to_str().expect("utf-8");
    let before = names_in(tmp.path());

    let out = common::cli(&repo, &["restore", &id, o, "--dry-run"]);
    common::assert_exit(&out, 0, "dry run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["+ /a", "+ /l", "+ /sub", "+ /sub/b"], "{stdout}");
    assert!(common::stderr_of(&out).contains("nothing was written"));
    assert!(!out_dir.exists(), "a dry run created the target");
    assert_eq!(names_in(tmp.path()), before, "a dry run left something");

    let v = common::cli_json(&repo, &["restore", &id, o, "--dry-run"]);
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["in_place"], false);
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["delete"].as_array().expect("delete").len(), 0);
    assert_eq!(v["write_bytes"], 9);
    let mut write: Vec<(String, String, String)> = v["write"]
        .as_array()
        .expect("write")
        .iter()
        .map(|e| {
            (
                e["path"].as_str().expect("path").to_owned(),
                e["type"].as_str().expect("type").to_owned(),
                e["change"].as_str().expect("change").to_owned(),
            )
        })
        .collect();
    write.sort();
    let want = [
        ("/a", "file"),
        ("/l", "symlink"),
        ("/sub", "dir"),
        ("/sub/b", "file"),
    ]
    .map(|(p, t)| (p.to_owned(), t.to_owned(), "new".to_owned()));
    assert_eq!(write, want);
    assert!(!out_dir.exists());

    // Into a non-empty directory without --in-place, the dry run refuses as the run would.
    common::write_file(&out_dir.join("x"), b"x");
    let out = common::cli(&repo, &["restore", &id, o, "--dry-run"]);
    common::assert_exit(&out, 2, "dry run into a non-empty directory");
}

#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, its steps in order")]
fn dry_run_in_place_lists_changes_and_deletes_and_the_run_does_them() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    common::write_file(&src.join("a"), b"alpha");
    common::write_file(&src.join("same"), b"unchanged content");
    common::write_file(&src.join("sub/b"), b"beta");
    let repo = tmp.path().join("repo");
    let _ = common::small_repo(&repo);
    let id = snapshot(&repo, &src);
    // Another directory: `a` changed, `sub/b` gone, `extra` and `old/x` added; `same` is the
    // same file (content and mtime).
    let dir = tmp.path().join("dir");
    fs::create_dir_all(dir.join("old")).expect("mkdir");
    fs::write(dir.join("a"), b"ALPHA!").expect("write");
    fs::write(dir.join("extra"), b"extra").expect("write");
    fs::write(dir.join("old/x"), b"x").expect("write");
    let same = fs::File::create(dir.join("same")).expect("create");
    std::io::Write::write_all(&mut &same, b"unchanged content").expect("write");
    same.set_modified(
        fs::metadata(src.join("same"))
            .expect("stat")
            .modified()
            .expect("mtime"),
    )
    .expect("mtime");
    drop(same);
    let d = dir.to_str().expect("utf-8");
    let before = tree(&dir);
    let siblings = names_in(tmp.path());

    let out = common::cli(&repo, &["restore", &id, d, "--in-place", "--dry-run"]);
    common::assert_exit(&out, 0, "in-place dry run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "+ /sub", "+ /sub/b", "- /extra", "- /old", "- /old/x", "~ /a"
        ],
        "{stdout}"
    );
    let err = common::stderr_of(&out);
    assert!(
        err.contains("--delete"),
        "the refusal to come is named: {err}"
    );
    assert_eq!(
        tree(&dir),
        before,
        "an in-place dry run changed the directory"
    );
    assert_eq!(
        names_in(tmp.path()),
        siblings,
        "a dry run left a staging directory"
    );

    let v = common::cli_json(&repo, &["restore", &id, d, "--in-place", "--dry-run"]);
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["in_place"], true);
    assert_eq!(v["unchanged"], 1, "{v}");
    assert_eq!(v["delete_allowed"], false, "{v}");
    assert_eq!(v["write_bytes"], 9, "{v}");
    let delete: Vec<&str> = v["delete"]
        .as_array()
        .expect("delete")
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    assert_eq!(delete, ["/extra", "/old", "/old/x"]);
    let changed: Vec<&str> = v["write"]
        .as_array()
        .expect("write")
        .iter()
        .filter(|e| e["change"] == "changed")
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert_eq!(changed, ["/a"]);
    assert_eq!(tree(&dir), before);

    // With --delete the preview says the deletes are allowed, and the run does exactly that.
    let v = common::cli_json(
        &repo,
        &["restore", &id, d, "--in-place", "--delete", "--dry-run"],
    );
    assert_eq!(v["delete_allowed"], true);
    let same_ino = fs::metadata(dir.join("same")).expect("stat").ino();
    let r = common::cli_json(&repo, &["restore", &id, d, "--in-place", "--delete"]);
    assert_eq!(r["deleted"], 3, "{r}");
    assert_eq!(r["unchanged"], 1, "{r}");
    assert_eq!(names_in(&dir), ["a", "same", "sub"]);
    assert_eq!(fs::read(dir.join("a")).expect("a"), b"alpha");
    assert_eq!(fs::read(dir.join("sub/b")).expect("b"), b"beta");
    assert_eq!(
        fs::metadata(dir.join("same")).expect("stat").ino(),
        same_ino,
        "the unchanged file was rewritten"
    );
    assert_eq!(names_in(tmp.path()), siblings, "the restore left a sibling");
}
