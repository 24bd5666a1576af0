//! `snapkeep verify`: check the repository's structure, and with `--read-data` every byte;
//! print the findings and a summary. Exit code 1 when there are findings.

use anyhow::Result;
use serde_json::json;

use snapkeep::VerifyOptions;
use snapkeep::verify::VerifyReport;

use crate::cli::args::FilterArgs;
use crate::cli::env::{Env, snapshot_filter};
use crate::cli::output::human_bytes;
use crate::cli::usage_error;

/// Verifies the repository (or one snapshot).
pub fn run(
    env: &Env,
    spec: Option<&str>,
    read_data: bool,
    subset: Option<&str>,
    stages: &str,
    filter: &FilterArgs,
) -> Result<i32> {
    let read_data_subset: Option<snapkeep::verify::Subset> = subset.map(str::parse).transpose()?;
    let stages: snapkeep::stage::StageSelection = stages.parse()?;
    if spec.is_none() && !snapshot_filter(filter)?.is_empty() {
        return Err(usage_error(
            "verify checks one snapshot or the whole repository: with --host, --path or --tag \
             give 'latest' (or an id) to check the newest snapshot they select",
        ));
    }
    let repo = env.open()?;
    let snapshot = spec.map(|s| env.resolve(&repo, s, filter)).transpose()?;
    let progress = env.progress().printing_warnings(!env.quiet);
    let report = snapkeep::verify(
        &repo,
        &VerifyOptions {
            snapshot,
            read_data,
            read_data_subset,
            stages,
        },
        &progress,
    )?;
    progress.finish();
    env.print(
        || {
            json!({
                "ok": report.ok(),
                "findings": report.findings,
                "snapshots": report.snapshots,
                "trees": report.trees,
                "files": report.files,
                "packs_read": report.packs_read,
                "blobs_read": report.blobs_read,
                "bytes_read": report.bytes_read,
                "stage_files": report.stage_files,
            })
        },
        || print_report(env, &report, read_data),
    );
    Ok(i32::from(!report.ok()))
}

/// The findings on stdout, the summary on stderr.
fn print_report(env: &Env, report: &VerifyReport, read_data: bool) {
    for f in &report.findings {
        println!("{f}");
    }
    env.say(&format!(
        "verified {} snapshots, {} trees, {} files{}: {}",
        report.snapshots,
        report.trees,
        report.files,
        if read_data {
            format!(
                ", read {} packs ({})",
                report.packs_read,
                human_bytes(report.bytes_read)
            )
        } else {
            String::new()
        },
        if report.ok() {
            "no problems found".to_string()
        } else {
            format!("{} problems found", report.findings.len())
        }
    ));
}
