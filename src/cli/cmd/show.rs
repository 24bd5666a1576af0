//! `snapkeep show SNAPSHOT`: one snapshot's record, as JSON or one field a line.

use anyhow::Result;

use crate::cli::args::FilterArgs;
use crate::cli::env::Env;
use crate::cli::output::{print_fields, record_json};

/// Prints the record of the snapshot `spec` names.
pub fn run(env: &Env, spec: &str, filter: &FilterArgs) -> Result<i32> {
    let (repo, id) = env.open_snapshot(spec, filter)?;
    let v = record_json(&repo.load_snapshot(&id)?);
    env.print(|| &v, || print_fields(&v, 20));
    Ok(0)
}
