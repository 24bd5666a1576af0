//! The human output of `show`, `stats`, `ls` and `diff` (issue #19, "familiar to restic
//! users"): sizes in binary units with their byte counts, ratios and shares rounded, plurals
//! that follow the count, `ls` one path a line and `ls -l` in aligned columns, and `diff` in
//! aligned lines with a summary.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::{assert_success, cli, cli_json, random_bytes, stderr_of};

/// stdout of a successful run.
fn stdout(repo: &Path, args: &[&str]) -> String {
    let out = cli(repo, args);
    assert_success(&out, &format!("{args:?}"));
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The value of the `label: value` line of a labelled listing; every label must end in the
/// same column (right-aligned).
fn field<'a>(text: &'a str, label: &str) -> &'a str {
    let colons: Vec<usize> = text.lines().filter_map(|l| l.find(": ")).collect();
    assert!(
        colons.windows(2).all(|w| w[0] == w[1]),
        "labels not aligned:\n{text}"
    );
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(&format!("{label}: ")))
        .unwrap_or_else(|| panic!("no '{label}' line in:\n{text}"))
}

fn init(repo: &Path) {
    assert_success(&cli(repo, &["init"]), "init");
}

fn snapshot(repo: &Path, src: &Path) -> String {
    cli_json(repo, &["snapshot", src.to_str().expect("utf-8")])["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

#[test]
fn show_and_stats_print_units_rounded_ratios_and_plurals() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, repo) = (tmp.path().join("src"), tmp.path().join("repo"));
    fs::create_dir(&src).expect("mkdir");
    fs::write(src.join("data"), random_bytes(1_572_864, 7)).expect("write");
    init(&repo);
    let first = cli(&repo, &["snapshot", src.to_str().expect("utf-8")]);
    assert_success(&first, "snapshot");
    let said = stderr_of(&first);
    assert!(said.contains(" saved: 1 file, 1 dir, 1.5 MiB "), "{said}");
    snapshot(&repo, &src);

    let show = stdout(&repo, &["show", "latest"]);
    assert_eq!(field(&show, "size"), "1.5 MiB (1572864 bytes)", "{show}");
    assert_eq!(
        field(&show, "entries"),
        "1 file, 1 dir, 0 symlinks, 0 skipped"
    );
    let unchanged = cli_json(&repo, &["show", "latest"])["unchanged_files"]
        .as_u64()
        .expect("unchanged_files");
    let files = if unchanged == 1 { "file" } else { "files" };
    assert_eq!(
        field(&show, "not read"),
        format!("{unchanged} {files} unchanged since the parent")
    );
    assert_eq!(field(&show, "changed during read"), "0 files");

    let all = stdout(&repo, &["stats"]);
    let v = cli_json(&repo, &["stats"]);
    assert_eq!(field(&all, "snapshots"), "2");
    assert_eq!(field(&all, "logical size"), "3.0 MiB (3145728 bytes)");
    assert_eq!(field(&all, "dedup ratio"), "2.00x", "{all}");
    let compression = v["compression_ratio"].as_f64().expect("ratio");
    assert_eq!(
        field(&all, "compression ratio"),
        format!("{compression:.2}x")
    );
    let (logical, stored) = (
        v["logical_bytes"].as_u64().expect("logical"),
        v["stored_bytes"].as_u64().expect("stored"),
    );
    let saving = (logical - stored) as f64 * 100.0 / logical as f64;
    assert_eq!(field(&all, "space saving"), format!("{saving:.1}%"));
    assert!(field(&all, "reclaimable").starts_with("0 B ("), "{all}");
    for text in [&show, &all] {
        assert!(
            !text.contains(" 1 files") && !text.contains(" 1 dirs"),
            "{text}"
        );
    }

    let one = stdout(&repo, &["stats", "latest"]);
    assert_eq!(field(&one, "snapshots"), "1");
    assert_eq!(field(&one, "dedup ratio"), "1.00x");
    assert!(!one.contains("reclaimable"), "{one}");
}

/// A source with a file of each mode, a directory, a symlink and a name holding a newline.
fn ls_source(src: &Path) {
    fs::create_dir_all(src.join("sub")).expect("mkdir");
    fs::write(src.join("a.txt"), b"hello").expect("write");
    fs::write(src.join("big.bin"), random_bytes(123_456, 3)).expect("write");
    fs::write(src.join("sub/n.txt"), b"n").expect("write");
    fs::write(src.join("two\nlines"), b"x").expect("write");
    std::os::unix::fs::symlink("a.txt", src.join("link")).expect("symlink");
    let mode = |p: &str, m: u32| {
        fs::set_permissions(src.join(p), fs::Permissions::from_mode(m)).expect("chmod");
    };
    mode("a.txt", 0o644);
    mode("big.bin", 0o600);
    mode("sub", 0o750);
}

#[test]
fn ls_prints_one_path_a_line_and_long_columns_aligned() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, repo) = (tmp.path().join("src"), tmp.path().join("repo"));
    ls_source(&src);
    init(&repo);
    let id = snapshot(&repo, &src);
    let listed = cli_json(&repo, &["ls", &id]);
    let entries = listed.as_array().expect("array");
    let paths: Vec<String> = entries
        .iter()
        .map(|e| e["path"].as_str().expect("path").replace('\n', "\\x0a"))
        .collect();
    assert_eq!(paths.len(), 6, "{listed}");

    let short = stdout(&repo, &["ls", &id]);
    assert_eq!(short.lines().collect::<Vec<_>>(), paths, "{short}");

    let long = stdout(&repo, &["ls", "-l", &id]);
    let lines: Vec<&str> = long.lines().collect();
    assert_eq!(lines.len(), entries.len(), "{long}");
    let meta = fs::metadata(&src).expect("stat");
    let (mut path_columns, mut size_ends) = (Vec::new(), Vec::new());
    for ((line, e), path) in lines.iter().zip(entries).zip(&paths) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[1], meta.uid().to_string(), "{line}");
        assert_eq!(cols[2], meta.gid().to_string(), "{line}");
        assert_eq!(cols[3], e["size"].to_string(), "{line}");
        let mtime = e["mtime"].as_str().expect("mtime");
        let when = format!("{} {}", &mtime[..10], &mtime[11..19]);
        assert_eq!(format!("{} {}", cols[4], cols[5]), when, "{line}");
        let at = line
            .find(&format!("{when} {path}"))
            .expect("time then path");
        path_columns.push(at + when.len() + 1);
        size_ends.push(at - 1);
        let want_mode = match path.as_str() {
            "/a.txt" | "/sub/n.txt" | "/two\\x0alines" => "-rw-r--r--",
            "/big.bin" => "-rw-------",
            "/sub" => "drwxr-x---",
            "/link" => "lrwxrwxrwx",
            other => panic!("unexpected path {other}"),
        };
        assert!(line.starts_with(&format!("{want_mode} ")), "{line}");
    }
    assert!(path_columns.windows(2).all(|w| w[0] == w[1]), "{long}");
    assert!(size_ends.windows(2).all(|w| w[0] == w[1]), "{long}");
    assert!(
        lines.iter().any(|l| l.ends_with(" /link -> a.txt")),
        "{long}"
    );

    let sub = stdout(&repo, &["ls", "--long", &id, "/sub"]);
    assert_eq!(sub.lines().count(), 1, "{sub}");
    assert!(sub.trim_end().ends_with(" /sub/n.txt"), "{sub}");
}

/// The column where each change line's path starts (after `SIGN  TYPE  SIZE  `).
fn path_column(line: &str) -> usize {
    line.find("  /").expect("a path") + 2
}

#[test]
fn diff_lines_are_aligned_and_end_with_a_summary() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, repo) = (tmp.path().join("src"), tmp.path().join("repo"));
    fs::create_dir(&src).expect("mkdir");
    fs::write(src.join("keep.txt"), b"same").expect("write");
    fs::write(src.join("change.txt"), b"before").expect("write");
    fs::write(src.join("gone.txt"), b"bye").expect("write");
    init(&repo);
    let a = snapshot(&repo, &src);
    fs::write(src.join("change.txt"), random_bytes(2048, 1)).expect("write");
    fs::remove_file(src.join("gone.txt")).expect("rm");
    fs::write(src.join("new1.txt"), b"hello").expect("write");
    fs::write(src.join("new2.txt"), b"world!").expect("write");
    let b = snapshot(&repo, &src);

    let text = stdout(&repo, &["diff", &a, &b]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert_eq!(
        lines[4],
        "2 files added, 1 removed, 1 modified, 0 type changed, 0 with new metadata; +11 B, -3 B"
    );
    let changes = &lines[..4];
    let signs: Vec<&str> = changes.iter().map(|l| &l[..1]).collect();
    assert_eq!(signs, ["M", "-", "+", "+"], "path order:\n{text}");
    assert!(changes[0].ends_with("  /change.txt  (was 6 B)"), "{text}");
    assert!(changes[0].contains("  2.0 KiB  "), "{text}");
    let columns: Vec<usize> = changes.iter().map(|l| path_column(l)).collect();
    assert!(columns.windows(2).all(|w| w[0] == w[1]), "{text}");

    fs::create_dir(src.join("d")).expect("mkdir");
    let c = snapshot(&repo, &src);
    let text = stdout(&repo, &["diff", &b, &c]);
    assert_eq!(
        text,
        "+  dir  0 B  /d\n1 entry added, 0 removed, 0 modified, 0 type changed, 0 with new metadata; +0 B, -0 B\n"
    );
    let same = stdout(&repo, &["diff", &c, &c]);
    assert_eq!(
        same,
        "0 files added, 0 removed, 0 modified, 0 type changed, 0 with new metadata; +0 B, -0 B\n"
    );
}
