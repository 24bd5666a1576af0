//! Concurrent snapshots into one repository need no lock (docs/DESIGN.md): several processes
//! snapshotting overlapping data at once all commit, and the repository verifies clean.

mod common;

use std::fs;
use std::process::Stdio;

#[test]
fn parallel_processes_commit_consistent_snapshots() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    let status = common::cli_command(&repo)
        .args(["init", "--chunk-avg", "16KiB"])
        .status()
        .expect("init");
    assert_eq!(status.code(), Some(0));

    let shared = common::random_bytes(1 << 20, 77);
    let n = 4;
    let mut sources = Vec::new();
    for i in 0..n {
        let src = tmp.path().join(format!("src{i}"));
        common::write_file(&src.join("shared.bin"), &shared);
        common::write_file(
            &src.join(format!("own{i}/data.bin")),
            &common::random_bytes(300_000, 100 + i),
        );
        sources.push(src);
    }
    let children: Vec<_> = sources
        .iter()
        .map(|src| {
            common::cli_command(&repo)
                .args(["--json", "snapshot"])
                .arg(src)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let mut ids = Vec::new();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        common::assert_exit(&out, 0, "concurrent snapshot failed");
        let v = common::json_of(&out);
        ids.push(v["id"].as_str().expect("id").to_owned());
    }

    let out = common::cli_command(&repo)
        .args(["verify", "--read-data", "--json"])
        .output()
        .expect("verify");
    let v = common::json_of(&out);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["snapshots"], n);

    for (i, id) in (0u64..).zip(&ids) {
        let target = tmp.path().join(format!("out{i}"));
        let out = common::cli_command(&repo)
            .args(["restore", id])
            .arg(&target)
            .output()
            .expect("restore");
        common::assert_exit(&out, 0, "");
        assert!(fs::read(target.join("shared.bin")).expect("read") == shared);
        let own = fs::read_dir(&target)
            .expect("list")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|name| name.starts_with("own"))
            .expect("own dir");
        let k: u64 = own[3..].parse().expect("index");
        assert!(
            fs::read(target.join(&own).join("data.bin")).expect("read")
                == common::random_bytes(300_000, 100 + k)
        );
    }
}
