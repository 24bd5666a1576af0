//! `--cache-dir DIR` / `--no-cache` and `SNAPKEEP_CACHE_DIR` / `SNAPKEEP_NO_CACHE`: where an S3
//! repository's cache lives, or none, as the request report (`--show-requests`) and the
//! directories show; a local repository has no cache, so neither puts anything anywhere. The
//! S3 case runs against the test server (`SNAPKEEP_TEST_S3_ENDPOINT`, see tests/common/s3.rs).

mod common;

use std::path::Path;
use std::process::Output;

use common::s3::{Target, TestRepo, request_report, targets};

/// The `cache` object of the request report on stderr.
fn cache_report(out: &Output) -> serde_json::Value {
    request_report(out)["cache"].clone()
}

fn files(dir: &Path) -> usize {
    common::files_under(dir).len()
}

/// Runs `list --show-requests` with `extra` args and environment variables.
fn list(t: &TestRepo, extra: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut c = t.command();
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c
        .args(extra)
        .args(["--show-requests", "list"])
        .output()
        .expect("run snapkeep");
    common::assert_no_panic(&out, "list");
    out
}

#[test]
fn cache_dir_and_no_cache_take_effect() {
    for target in targets("cache_dir_and_no_cache_take_effect") {
        let t = target.fresh("cache-dir");
        let src = t.path("src");
        common::write_file(&src.join("f"), &common::random_bytes(50_000, 3));
        t.cli_json(&["init"]);
        t.cli_json(&["snapshot", src.to_str().expect("utf-8")]);
        let default_cache = t.path("cache"); // XDG_CACHE_HOME of every run
        let flag_dir = t.path("flag-cache");
        let env_dir = t.path("env-cache");
        let flag = flag_dir.to_str().expect("utf-8");
        let a = list(&t, &["--cache-dir", flag], &[]);
        let b = list(&t, &[], &[("SNAPKEEP_CACHE_DIR", &env_dir)]);
        let off = list(&t, &["--no-cache"], &[]);
        let env_off = list(&t, &[], &[("SNAPKEEP_NO_CACHE", Path::new("1"))]);
        let both = list(&t, &["--no-cache", "--cache-dir", flag], &[]);
        match target {
            Target::Local => {
                for out in [&a, &b, &off, &env_off, &both] {
                    common::assert_success(out, "local list");
                }
                for d in [&flag_dir, &env_dir, &default_cache] {
                    assert!(
                        !d.exists(),
                        "a local repository made a cache at {}",
                        d.display()
                    );
                }
            }
            Target::S3(_) => {
                let cached_before = files(&default_cache);
                let dir_of = |o: &Output| cache_report(o)["dir"].as_str().map(str::to_owned);
                let a_dir = dir_of(&a).expect("a cache dir with --cache-dir");
                assert!(a_dir.starts_with(flag), "{a_dir} is not under {flag}");
                assert!(files(&flag_dir) > 0, "--cache-dir cached nothing");
                let b_dir = dir_of(&b).expect("a cache dir with SNAPKEEP_CACHE_DIR");
                assert!(
                    b_dir.starts_with(env_dir.to_str().expect("utf-8")),
                    "{b_dir}"
                );
                assert!(files(&env_dir) > 0, "SNAPKEEP_CACHE_DIR cached nothing");
                for (what, out) in [
                    ("--no-cache", &off),
                    ("SNAPKEEP_NO_CACHE", &env_off),
                    ("both", &both),
                ] {
                    assert!(cache_report(out).is_null(), "{what}: a cache was used");
                }
                assert_eq!(
                    files(&default_cache),
                    cached_before,
                    "a run with another cache choice wrote to the default cache"
                );
                // The default still caches there.
                let d = list(&t, &[], &[]);
                let d_dir = dir_of(&d).expect("the default cache");
                assert!(
                    d_dir.starts_with(default_cache.to_str().expect("utf-8")),
                    "{d_dir}"
                );
            }
        }
    }
}

/// The request report's `by_kind` object on stderr.
fn requests_by_kind(out: &Output) -> serde_json::Value {
    request_report(out)["by_kind"].clone()
}

/// A snapshot puts the trees it writes into the cache, so a no-change snapshot right after it
/// on the same host reads no tree from the store (one ranged GET per directory before), and
/// a run with an empty cache still reads them (the saving is the cache's, not a skipped read).
#[test]
fn a_no_change_snapshot_after_a_snapshot_reads_no_tree() {
    for target in targets("a_no_change_snapshot_after_a_snapshot_reads_no_tree") {
        let Target::S3(_) = target else { continue };
        let t = target.fresh("trees-kept");
        let src = t.path("src");
        for d in 0..60 {
            common::write_file(&src.join(format!("d{d}/f")), format!("{d}").as_bytes());
            common::write_file(&src.join(format!("d{d}/sub/g")), format!("g{d}").as_bytes());
        }
        let src = src.to_str().expect("utf-8");
        t.cli_json(&["init"]);
        t.cli_json(&["snapshot", src]);
        let (again, total) = t.cli_counted(&["snapshot", src]);
        let kinds = requests_by_kind(&again);
        assert_eq!(
            kinds["get_range"], 0,
            "tree reads after a snapshot: {kinds}"
        );
        assert!(
            total <= 30,
            "{total} requests for a no-change snapshot: {kinds}"
        );
        // Another host (an empty cache) reads the parent's 121 trees from the store, all of
        // them in the one request for their pack (one per tree before), the rest from the
        // cache that request filled.
        let other_cache = t.path("other-cache");
        let other = t
            .command()
            .args(["--cache-dir", other_cache.to_str().expect("utf-8")])
            .args(["--show-requests", "snapshot", src])
            .output()
            .expect("run snapkeep");
        let report = request_report(&other);
        let ranges = report["by_kind"]["get_range"].as_u64().unwrap_or(0);
        assert!(
            (1..=2).contains(&ranges),
            "an empty cache reads the one tree pack in one request: {report}"
        );
        assert!(
            report["cache"]["hits"].as_u64().unwrap_or(0) >= 120,
            "the other trees come from the cache the first read filled: {report}"
        );
    }
}
