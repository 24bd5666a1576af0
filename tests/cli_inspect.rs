//! `ls`, `diff`, `show`, `stats`, `tag`, `completions` and `--progress json`: output parses
//! and says what happened.

mod common;

use common::{cli as run, cli_json as json};

use std::fs;

use serde_json::Value;

fn paths(v: &Value, key: &str) -> Vec<String> {
    let mut p: Vec<String> = v[key]
        .as_array()
        .expect(key)
        .iter()
        .map(|e| e["path"].as_str().expect("path").to_owned())
        .collect();
    p.sort();
    p
}

#[test]
fn inspect_commands_report_a_known_change() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    let repo = tmp.path().join("repo");
    common::cli_init(&repo);
    fs::create_dir_all(src.join("d")).expect("mkdir");
    fs::write(src.join("keep.txt"), b"same").expect("write");
    fs::write(src.join("change.txt"), b"before").expect("write");
    fs::write(src.join("gone.txt"), b"bye").expect("write");
    fs::write(src.join("d/becomes-dir"), b"file").expect("write");
    let src_s = src.to_str().expect("utf-8");
    let a = json(&repo, &["snapshot", src_s])["id"]
        .as_str()
        .expect("id")
        .to_owned();

    fs::write(src.join("change.txt"), b"after!!").expect("write");
    fs::remove_file(src.join("gone.txt")).expect("rm");
    fs::write(src.join("new.txt"), b"hello").expect("write");
    fs::remove_file(src.join("d/becomes-dir")).expect("rm");
    fs::create_dir(src.join("d/becomes-dir")).expect("mkdir");
    let b = json(&repo, &["snapshot", src_s])["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let d = json(&repo, &["diff", &a, &b]);
    assert_eq!(paths(&d, "added"), ["/new.txt"]);
    assert_eq!(paths(&d, "removed"), ["/gone.txt"]);
    assert_eq!(paths(&d, "modified"), ["/change.txt"]);
    assert_eq!(paths(&d, "type_changed"), ["/d/becomes-dir"]);
    assert_eq!(d["modified"][0]["old_size"], 6);
    assert_eq!(d["modified"][0]["new_size"], 7);
    let human = run(&repo, &["diff", &a, &b]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("+  file  5 B  /new.txt\n") && text.contains("-  file  3 B  /gone.txt\n"),
        "{text}"
    );

    let ls = json(&repo, &["ls", &b]);
    let names = common::json_strings(&ls, "path");
    assert!(
        names.contains(&"/d/becomes-dir") && names.contains(&"/new.txt"),
        "{names:?}"
    );
    for e in ls.as_array().expect("array") {
        for k in ["name", "type", "mode", "size", "mtime"] {
            assert!(e.get(k).is_some(), "ls entry lacks {k}: {e}");
        }
    }
    let sub = json(&repo, &["ls", &b, "/d"]);
    assert_eq!(sub.as_array().expect("array").len(), 1);
    assert_eq!(run(&repo, &["ls", &b, "/nope"]).status.code(), Some(2));

    let show = json(&repo, &["show", "latest"]);
    assert_eq!(show["id"], b.as_str());
    assert_eq!(show["parent"], a.as_str());

    let stats = json(&repo, &["stats"]);
    assert_eq!(stats["snapshots"], 2);
    for k in [
        "logical_bytes",
        "stored_bytes",
        "dedup_ratio",
        "compression_ratio",
        "chunks",
        "packs",
        "reclaimable_bytes",
    ] {
        assert!(stats.get(k).is_some(), "stats lacks {k}: {stats}");
    }
    assert_eq!(json(&repo, &["stats", &a])["snapshots"], 1);

    let tagged = json(&repo, &["tag", &a, "--add", "keep", "--add", "weekly"]);
    assert_eq!(tagged["tags"], serde_json::json!(["keep", "weekly"]));
    let untagged = json(&repo, &["tag", &a, "--remove", "keep"]);
    assert_eq!(untagged["tags"], serde_json::json!(["weekly"]));
    let list = json(&repo, &["list"]);
    assert_eq!(list[0]["tags"], serde_json::json!(["weekly"]));
    assert_eq!(run(&repo, &["tag", &a]).status.code(), Some(2));
    assert_eq!(json(&repo, &["verify"])["ok"], true);

    let comp = run(&repo, &["completions", "bash"]);
    assert!(comp.status.success());
    assert!(String::from_utf8_lossy(&comp.stdout).contains("snapkeep"));
}

#[test]
fn progress_json_events_are_valid_and_monotonic() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).expect("mkdir");
    for i in 0..64 {
        fs::write(
            src.join(format!("f{i}")),
            vec![u8::try_from(i).expect("small"); 64 << 10],
        )
        .expect("write");
    }
    let repo = tmp.path().join("repo");
    common::cli_init(&repo);
    let out = run(
        &repo,
        &[
            "--progress",
            "json",
            "snapshot",
            src.to_str().expect("utf-8"),
        ],
    );
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let events: Vec<Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("each event line is JSON"))
        .collect();
    assert!(events.len() >= 3, "{stderr}");
    let percents: Vec<f64> = events
        .iter()
        .filter_map(|e| e["percent"].as_f64())
        .collect();
    assert!(percents.windows(2).all(|w| w[0] <= w[1]), "{percents:?}");
    assert_eq!(events.last().expect("events")["event"], "done");
    assert!(
        events
            .iter()
            .any(|e| e["phase"] == "snapshot" && e["files_total"] == 64)
    );
    // Without --progress json and off a terminal, stderr has no events.
    let quiet = run(&repo, &["snapshot", src.to_str().expect("utf-8")]);
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("\"event\""));
}
