//! `snapkeep bench --json` runs every step on a small generated dataset and reports them.

use std::process::Command;

#[test]
fn bench_reports_every_step_as_json() {
    let out = Command::new(env!("CARGO_BIN_EXE_snapkeep"))
        .args(["bench", "--size", "8MiB", "--json"])
        .output()
        .expect("run bench");
    assert!(
        out.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
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
}
