//! `snapkeep show SNAPSHOT`: one snapshot's record, as JSON or one labelled line a field, sizes
//! in binary units with their byte counts.

use anyhow::Result;

use crate::cli::args::FilterArgs;
use snapkeep::SnapshotRecord;
use snapkeep::clock::rfc3339;

use crate::cli::env::Env;
use crate::cli::output::{fields, human_bytes, human_bytes_exact, plural, record_json};

/// Prints the record of the snapshot `spec` names.
pub fn run(env: &Env, spec: &str, filter: &FilterArgs) -> Result<i32> {
    let (repo, id) = env.open_snapshot(spec, filter)?;
    let r = repo.load_snapshot(&id)?;
    let mut v = record_json(&r);
    v["encryption"] = repo.codec().scheme().into();
    let mut lines = rows(&r);
    lines.push(("encryption", repo.codec().scheme().to_owned()));
    env.print(|| &v, || print!("{}", fields(&lines)));
    Ok(0)
}

/// The labelled lines of a record for people.
fn rows(r: &SnapshotRecord) -> Vec<(&'static str, String)> {
    let s = &r.summary;
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.join(", ")
        }
    };
    let secs = s.duration_ns as f64 / 1e9;
    let mut rows = vec![
        ("id", r.id.to_string()),
        ("time", rfc3339(r.time_ns)),
        ("host", r.host.clone()),
        ("paths", list(&r.paths)),
        ("tags", list(&r.tags)),
        (
            "parent",
            r.parent.map_or_else(|| "-".to_owned(), |p| p.to_string()),
        ),
        ("tree", r.tree.to_string()),
        (
            "entries",
            format!(
                "{}, {}, {}, {} skipped",
                plural(s.files, "file"),
                plural(s.dirs, "dir"),
                plural(s.symlinks, "symlink"),
                s.skipped
            ),
        ),
        ("size", human_bytes_exact(s.bytes)),
        ("read", human_bytes_exact(s.data_bytes)),
        (
            "not read",
            format!(
                "{} unchanged since the parent",
                plural(s.unchanged_files, "file")
            ),
        ),
        (
            "new",
            format!(
                "{} in {} of {}",
                human_bytes_exact(s.new_bytes),
                plural(s.new_chunks, "new chunk"),
                plural(s.chunks, "chunk")
            ),
        ),
        ("stored", human_bytes_exact(s.stored_bytes)),
        ("duration", format!("{secs:.2} s")),
        ("changed during read", plural(s.changed_during_read, "file")),
    ];
    rows.push((
        "stages",
        if r.stages.is_empty() {
            "-".to_owned()
        } else {
            format!(
                "{}: {} captured, {} checked",
                r.stages.join(", "),
                plural(s.stage_files, "file"),
                human_bytes(s.stage_bytes)
            )
        },
    ));
    rows.push((
        "inconsistent",
        if r.flags & snapkeep::format::manifest::FLAG_INCONSISTENT != 0 {
            format!(
                "yes: {} failed a format stage",
                plural(s.inconsistent_files, "file")
            )
        } else {
            "no".to_owned()
        },
    ));
    rows.push(("program", r.program.clone()));
    rows
}
