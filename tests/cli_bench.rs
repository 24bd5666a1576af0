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
    assert_eq!(
        names,
        [
            "initial snapshot",
            "no-change snapshot",
            "snapshot after change",
            "restore",
            "verify --read-data"
        ]
    );
    for s in steps {
        assert!(s["seconds"].as_f64().is_some_and(|x| x > 0.0), "{s}");
        assert!(s["peak_rss_kib"].as_u64().is_some_and(|x| x > 0), "{s}");
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
