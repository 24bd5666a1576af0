//! The `snapshot` verb's restic-familiar options (issue #19): exit code 5 and `unreadable`
//! for entries that cannot be read, several sources, anchored excludes and
//! `--exclude-file`/`--iexclude`, `--files-from`, `--one-file-system`, `--dry-run`,
//! `--skip-if-unchanged` and `-v`.
//!
//! One module per option; each test fails on a binary without it. The sandbox and the checks
//! of exit codes and JSON documents are the contract tests' (`cli_contract/harness.rs`).

#[path = "../common/mod.rs"]
mod common;
#[path = "../cli_contract/harness.rs"]
#[allow(
    dead_code,
    reason = "shared with cli_contract; this target uses a subset"
)]
mod harness;

mod dry_run;
mod excludes;
mod files_from;
mod one_file_system;
mod skip_if_unchanged;
mod sources;
mod unreadable;
mod verbose;

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use harness::{Sandbox, expect_code, json};

/// `snapkeep --repo REPO --json snapshot ARGS...`, which must exit 0; its document.
fn snap(sb: &Sandbox, repo: &Path, args: &[&str]) -> Value {
    let out = snap_out(sb, repo, args);
    expect_code(&out, 0, &format!("snapshot {args:?}"));
    json(&out)
}

/// `snapkeep --repo REPO --json snapshot ARGS...`.
fn snap_out(sb: &Sandbox, repo: &Path, args: &[&str]) -> Output {
    let mut all = vec!["--json", "snapshot"];
    all.extend_from_slice(args);
    sb.run(repo, &all)
}

/// The paths `ls --json` lists for a snapshot.
fn ls_paths(sb: &Sandbox, repo: &Path, id: &str) -> Vec<String> {
    let out = sb.run(repo, &["ls", "--json", id]);
    expect_code(&out, 0, "ls");
    common::json_strings(&json(&out), "path")
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// A path as a `&str` (the sandbox's paths are UTF-8).
fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}
