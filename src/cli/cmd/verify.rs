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
    if !report.ok() {
        env.say(&repair_hint(report, read_data));
    }
}

/// The repair that helps with the findings: `repair index` first when an index file is
/// damaged, then `repair snapshots` (with `--read-data` when data was read and found damaged).
fn repair_hint(report: &VerifyReport, read_data: bool) -> String {
    let index = report
        .findings
        .iter()
        .any(|f| f.object.starts_with("index"));
    let snapshots = if read_data {
        "'snapkeep repair snapshots --read-data'"
    } else {
        "'snapkeep repair snapshots'"
    };
    let salvage = format!(
        "{snapshots} to salvage the snapshots the damage broke (each gets a repaired copy, tagged 'repaired', without the files whose data is gone; --dry-run shows what it would do, --forget also removes the damaged originals)"
    );
    if index {
        format!(
            "to repair: run 'snapkeep repair index' to rebuild the index from the packs, then {salvage}"
        )
    } else {
        format!("to repair: run {salvage}")
    }
}
