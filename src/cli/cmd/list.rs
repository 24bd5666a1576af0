//! `snapkeep list`: the snapshots, oldest first, as a table or a JSON array of records.

use anyhow::Result;
use serde_json::Value;

use crate::cli::env::Env;
use crate::cli::output::{record_json, table};

/// Lists the snapshots; a record that cannot be read is a warning on stderr.
pub fn run(env: &Env) -> Result<i32> {
    let repo = env.open()?;
    let (records, damaged) = repo.snapshots()?;
    for (id, e) in &damaged {
        env.say(&format!("warning: snapshot {id} cannot be read: {e}"));
    }
    env.print(
        || Value::Array(records.iter().map(record_json).collect()),
        || print!("{}", table(&records)),
    );
    Ok(0)
}
