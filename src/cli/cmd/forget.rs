//! `snapkeep forget`: decide by the `--keep-*` policy (a reason for each kept snapshot) and by
//! explicit ids, remove the forgotten snapshots' records, and with `--prune` run a prune.

use anyhow::Result;
use serde_json::{Value, json};

use snapkeep::SnapshotId;
use snapkeep::clock::{now_ns, rfc3339};
use snapkeep::prune::PruneReport;
use snapkeep::retention::{GroupBy, RetentionPlan, RetentionPolicy};

use super::prune::{print_prune, prune_json};
use crate::cli::args::ForgetArgs;
use crate::cli::env::Env;
use crate::cli::usage_error;

/// Forgets what the policy and the ids select; prints the plan and what was done.
pub fn run(env: &Env, args: &ForgetArgs) -> Result<i32> {
    let gc_opts = if args.prune {
        Some(args.gc.options(args.dry_run)?)
    } else {
        None
    };
    let policy = policy(args)?;
    let group_by = parse_group_by(&args.group_by)?;
    let repo = env.open()?;
    let explicit: Vec<SnapshotId> = args
        .ids
        .iter()
        .map(|s| env.resolve(&repo, s, &args.filter))
        .collect::<Result<_>>()?;
    let (mut records, _) = repo.snapshots()?;
    let filter = crate::cli::env::snapshot_filter(&args.filter)?;
    records.retain(|r| filter.matches(r));
    let (plan, mut forget) = if policy.is_empty() {
        if explicit.is_empty() {
            return Err(usage_error(
                "forget needs snapshot ids or at least one --keep-* rule",
            ));
        }
        (None, Vec::new())
    } else {
        let plan = policy.plan(&records, now_ns(), group_by)?;
        let f = plan.forget_ids();
        (Some(plan), f)
    };
    for id in explicit {
        if !forget.contains(&id) {
            forget.push(id);
        }
    }
    let decisions = decisions_json(plan.as_ref(), &forget);
    if !args.dry_run {
        repo.forget(&forget)?;
    }
    // A dry run plans the prune as if the forgotten records were gone, as the real run's are.
    let pruned = gc_opts
        .as_ref()
        .map(|o| {
            if args.dry_run {
                snapkeep::prune::dry_run_without(&repo, o, &forget)
            } else {
                snapkeep::prune::prune(&repo, o)
            }
        })
        .transpose()?;
    env.print(
        || {
            json!({
                "dry_run": args.dry_run,
                "forget": forget.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "decisions": decisions,
                "prune": pruned.as_ref().map(prune_json),
            })
        },
        || print_human(env, &decisions, pruned.as_ref(), args.dry_run, forget.len()),
    );
    Ok(0)
}

/// The retention policy of the `--keep-*` flags.
fn policy(args: &ForgetArgs) -> Result<RetentionPolicy> {
    Ok(RetentionPolicy {
        keep_last: args.keep_last,
        keep_hourly: args.keep_hourly,
        keep_daily: args.keep_daily,
        keep_weekly: args.keep_weekly,
        keep_monthly: args.keep_monthly,
        keep_yearly: args.keep_yearly,
        keep_within: args
            .keep_within
            .as_deref()
            .map(snapkeep::retention::parse_duration)
            .transpose()?,
        keep_tags: args.keep_tags.clone(),
    })
}

fn parse_group_by(s: &str) -> Result<GroupBy> {
    let mut g = GroupBy {
        host: false,
        paths: false,
        tags: false,
    };
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part {
            "host" => g.host = true,
            "paths" | "path" => g.paths = true,
            "tags" => g.tags = true,
            other => {
                return Err(usage_error(format!(
                    "--group-by '{other}' is not a field; use host, paths and/or tags"
                )));
            }
        }
    }
    Ok(g)
}

/// The plan's decisions as JSON objects; a snapshot also named explicitly is not kept.
fn decisions_json(plan: Option<&RetentionPlan>, forget: &[SnapshotId]) -> Vec<Value> {
    plan.iter()
        .flat_map(|p| p.groups.iter())
        .flat_map(|g| {
            g.decisions.iter().map(move |d| {
                json!({
                    "id": d.id.to_string(),
                    "time": rfc3339(d.time_ns),
                    "host": g.key.host,
                    "paths": g.key.paths,
                    "keep": d.keep && !forget.contains(&d.id),
                    "reasons": d.reasons,
                })
            })
        })
        .collect()
}

/// A line per decision on stdout, what was forgotten on stderr, then the prune's report.
fn print_human(
    env: &Env,
    decisions: &[Value],
    pruned: Option<&PruneReport>,
    dry_run: bool,
    forgotten: usize,
) {
    for d in decisions {
        println!(
            "{} {} {}",
            if d["keep"] == true {
                "keep  "
            } else {
                "forget"
            },
            d["id"].as_str().unwrap_or_default(),
            d["reasons"]
                .as_array()
                .map(|r| r
                    .iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        );
    }
    let verb = if dry_run { "would forget" } else { "forgot" };
    match pruned {
        Some(r) => {
            env.say(&format!("{verb} {forgotten} snapshots"));
            print_prune(env, r);
        }
        None => env.say(&format!(
            "{verb} {forgotten} snapshots; their data stays stored until a prune"
        )),
    }
}
