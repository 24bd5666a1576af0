//! `snapkeep unlock`: remove stale locks (or with `--remove-all` every lock) and tell which
//! remain.

use anyhow::Result;
use serde_json::json;

use crate::cli::env::Env;

/// Removes the locks; prints what was removed and what is kept.
pub fn run(env: &Env, remove_all: bool) -> Result<i32> {
    let repo = env.open()?;
    let (notes, live) = snapkeep::lock::remove_stale(
        repo.backend().as_ref(),
        snapkeep::lock::STALE_AFTER,
        remove_all,
    )?;
    env.print(
        || {
            json!({
                "removed": notes,
                "remaining": live.iter().map(|l| json!({
                    "key": l.key,
                    "purpose": l.record.as_ref().map(|r| r.purpose.clone()),
                    "host": l.record.as_ref().map(|r| r.host.clone()),
                    "pid": l.record.as_ref().map(|r| r.pid),
                })).collect::<Vec<_>>(),
            })
        },
        || {
            for n in &notes {
                println!("{n}");
            }
            for l in &live {
                if let Some(r) = &l.record {
                    println!(
                        "kept {} of {} (pid {} on {}): still running",
                        l.key, r.purpose, r.pid, r.host
                    );
                }
            }
            env.say(&format!(
                "removed {} locks, {} remain",
                notes.len(),
                live.len()
            ));
        },
    );
    Ok(0)
}
