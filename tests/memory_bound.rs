//! Memory that does not follow the tree: on 200,000 small files in 2,000 directories, every
//! step (the snapshots, restore, verify, ls, diff, forget --prune) stays within 96 MiB of peak
//! RSS, each measured in its own process (`snapkeep bench` reads the child's VmHWM). At 1M
//! files the same steps are measured by `snapkeep bench --files 1000000` (README).

mod common;

use std::process::Command;

/// The bound the issue sets for a million files; 200k files must be well within it.
const BOUND_MIB: u64 = 96;

/// Every step of the bench, prune included (it keeps its reachable set as bits by index
/// position and merges the index files as streams).
const BOUNDED: &[&str] = &common::BENCH_STEPS;

#[test]
fn streaming_steps_stay_within_the_bound_at_200k_files() {
    let out = Command::new(env!("CARGO_BIN_EXE_snapkeep"))
        .env("SNAPKEEP_PASSWORD", "snapkeep-test")
        .env("SNAPKEEP_KDF", "m=64KiB,t=1,p=1")
        .args(["bench", "--files", "200000", "--json"])
        .output()
        .expect("run bench");
    common::assert_success(&out, "bench failed");
    let v = common::json_of(&out);
    assert_eq!(v["dataset"]["files"], 200_000, "{}", v["dataset"]);
    let steps = v["steps"].as_array().expect("steps");
    let mut seen = Vec::new();
    for s in steps {
        let name = s["step"].as_str().expect("step name");
        let kib = s["peak_rss_kib"].as_u64().expect("peak RSS");
        assert!(
            kib > 1024,
            "{name}: a peak RSS of {kib} KiB was not measured"
        );
        if BOUNDED.contains(&name) {
            seen.push(name);
            assert!(
                kib <= BOUND_MIB * 1024,
                "{name} peaked at {} MiB on 200,000 files (bound {BOUND_MIB} MiB)",
                kib / 1024
            );
        }
    }
    assert_eq!(seen, BOUNDED, "every bounded step ran");
}
