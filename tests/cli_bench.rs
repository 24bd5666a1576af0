//! `snapkeep bench --json` runs every step on a small generated dataset and reports them.

mod common;

use std::process::Command;

#[test]
fn bench_reports_every_step_as_json() {
    let out = Command::new(env!("CARGO_BIN_EXE_snapkeep"))
        .env("SNAPKEEP_PASSWORD", "snapkeep-test")
        .env("SNAPKEEP_KDF", "m=64KiB,t=1,p=1")
        .args([
            "bench",
            "--size",
            "8MiB",
            "--prune-snapshots",
            "20",
            "--json",
        ])
        .output()
        .expect("run bench");
    common::assert_success(&out, "bench failed");
    let v = common::json_of(&out);
    let steps = v["steps"].as_array().expect("steps");
    let names: Vec<&str> = steps.iter().filter_map(|s| s["step"].as_str()).collect();
    assert_eq!(names, common::BENCH_STEPS);
    for s in steps {
        assert!(s["seconds"].as_f64().is_some_and(|x| x > 0.0), "{s}");
        assert!(s["peak_rss_kib"].as_u64().is_some_and(|x| x > 0), "{s}");
    }
    for s in &steps[..5] {
        assert!(
            s["ratio_to_plain_read"].as_f64().is_some_and(|x| x > 0.0),
            "{s}"
        );
    }
    // The no-change snapshot stores only its record; the change stores new data.
    assert_eq!(steps[1]["new_bytes"], 0);
    assert!(steps[1]["stored_bytes"].as_u64().is_some_and(|b| b < 4096));
    assert!(steps[2]["new_bytes"].as_u64().is_some_and(|b| b > 0));
    assert!(v["changed_bytes"].as_u64().is_some_and(|b| b > 0));
    assert!(v["dataset"]["files"].as_u64().is_some_and(|f| f > 10));
    // The prune section: 20 snapshots, 10 forgotten; their churn tables are deleted without
    // repacking, and repacking then moves only live blobs and never grows the repository.
    let p = &v["prune"];
    assert_eq!(p["snapshots"], 20, "{p}");
    let plain = &p["no_repack"]["report"];
    assert_eq!(plain["snapshots"], 10, "{p}");
    assert_eq!(plain["repacked_packs"], 0, "{p}");
    assert!(
        plain["deleted_packs"].as_u64().is_some_and(|n| n > 0),
        "{p}"
    );
    let before = p["pack_bytes_before"].as_u64().expect("before");
    let mid = p["no_repack"]["pack_bytes_after"].as_u64().expect("mid");
    let after = p["repack"]["pack_bytes_after"].as_u64().expect("after");
    assert!(mid < before && after <= mid, "{p}");
    let rep = &p["repack"]["report"];
    let moved = rep["moved_bytes"].as_u64().expect("moved");
    let marked = rep["marked_bytes"].as_u64().expect("marked");
    assert!(
        moved <= marked,
        "repacking moved more than the packs it rewrote held: {p}"
    );
    assert_eq!(rep["unused_bytes_after"], 0, "{p}");
}

/// `bench --files N`: the same steps on N generated small files; it conflicts with a DIR and
/// with the prune benchmark (which churns the database-like dataset), never ignoring either.
#[test]
fn bench_files_runs_the_steps_on_many_small_files() {
    let bench = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_snapkeep"))
            .env("SNAPKEEP_PASSWORD", "snapkeep-test")
            .env("SNAPKEEP_KDF", "m=64KiB,t=1,p=1")
            .arg("bench")
            .args(args)
            .output()
            .expect("run bench")
    };
    let out = bench(&["--files", "1500", "--json"]);
    common::assert_success(&out, "bench --files failed");
    let v = common::json_of(&out);
    assert_eq!(v["dataset"]["files"], 1500, "{}", v["dataset"]);
    assert!(
        v["dataset"]["bytes"]
            .as_u64()
            .is_some_and(|b| b <= 1500 * 8192),
        "{}",
        v["dataset"]
    );
    let steps = v["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 8, "{v}");
    assert_eq!(steps[1]["new_bytes"], 0, "no change stores no data");
    assert!(steps[2]["new_bytes"].as_u64().is_some_and(|b| b > 0));
    assert!(v["changed_bytes"].as_u64().is_some_and(|b| b > 0));
    let dir = tempfile::tempdir().expect("tempdir");
    for args in [
        vec!["--files", "10", dir.path().to_str().expect("utf-8")],
        vec!["--files", "10", "--prune-snapshots", "5"],
        vec!["--files", "10", "--size", "8MiB"],
    ] {
        let out = bench(&args);
        common::assert_exit(&out, 2, &format!("bench {args:?}"));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("cannot be used with"),
            "{args:?}"
        );
    }
}
