//! `snapkeep tag SNAPSHOT --add TAG --remove TAG`: change a snapshot's tags.

use anyhow::Result;

use crate::cli::args::FilterArgs;
use crate::cli::env::Env;
use crate::cli::output::record_json;
use crate::cli::usage_error;

/// Retags the snapshot; prints its record (`--json`) or its tags.
pub fn run(
    env: &Env,
    spec: &str,
    add: &[String],
    remove: &[String],
    filter: &FilterArgs,
) -> Result<i32> {
    if add.is_empty() && remove.is_empty() {
        return Err(usage_error("tag needs --add TAG or --remove TAG"));
    }
    let (repo, id) = env.open_snapshot(spec, filter)?;
    let rec = repo.retag(&id, add, remove)?;
    env.print(
        || record_json(&rec),
        || env.say(&format!("snapshot {} tags: {}", rec.id, rec.tags.join(","))),
    );
    Ok(0)
}
