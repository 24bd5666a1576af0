//! `snapkeep list`: the snapshots the filters select (all by default; no host default, as
//! restic), oldest first, as a table or a JSON array of records.

use std::fmt::Write as _;

use anyhow::Result;
use serde_json::Value;

use snapkeep::SnapshotRecord;
use snapkeep::clock::rfc3339;
use snapkeep::format::manifest::FLAG_INCONSISTENT;

use crate::cli::args::FilterArgs;
use crate::cli::env::{Env, snapshot_filter};
use crate::cli::output::{human_bytes, record_json};

/// Lists the snapshots; a record that cannot be read is a warning on stderr.
pub fn run(env: &Env, filter: &FilterArgs) -> Result<i32> {
    let filter = snapshot_filter(filter)?;
    let repo = env.open()?;
    let (mut records, damaged) = repo.snapshots()?;
    for (id, e) in &damaged {
        env.say(&format!("warning: snapshot {id} cannot be read: {e}"));
    }
    records.retain(|r| filter.matches(r));
    env.print(
        || {
            Value::Array(
                records
                    .iter()
                    .map(|r| {
                        let mut v = record_json(r);
                        v["encryption"] = repo.codec().scheme().into();
                        v
                    })
                    .collect(),
            )
        },
        || print!("{}", table(&records)),
    );
    Ok(0)
}

/// The `list` table: short id, time, host, sizes, tags and paths, one snapshot a line, the
/// text columns as wide as their widest value, then the count.
fn table(records: &[SnapshotRecord]) -> String {
    let rows: Vec<[String; 7]> = records
        .iter()
        .map(|r| {
            let tags = r.tags.join(",");
            [
                snapkeep::short_id(&r.id),
                rfc3339(r.time_ns),
                r.host.clone(),
                human_bytes(r.summary.bytes),
                human_bytes(r.summary.new_bytes),
                if r.flags & FLAG_INCONSISTENT == 0 {
                    tags
                } else {
                    format!("INCONSISTENT {tags}").trim_end().to_owned()
                },
                r.paths.join(" "),
            ]
        })
        .collect();
    let header = ["ID", "TIME", "HOST", "SIZE", "NEW", "TAGS", "PATHS"].map(str::to_owned);
    let mut width = [0usize; 7];
    for row in rows.iter().chain(std::iter::once(&header)) {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let _ = writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}  {:>w4$}  {:<w5$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            row[6],
            w0 = width[0],
            w1 = width[1],
            w2 = width[2],
            w3 = width[3],
            w4 = width[4],
            w5 = width[5],
        );
    }
    let n = records.len();
    let _ = writeln!(out, "{n} {}", if n == 1 { "snapshot" } else { "snapshots" });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_the_count_is_singular_for_one() {
        let rec = |n: u128, host: &str, bytes: u64| SnapshotRecord {
            id: snapkeep::SnapshotId::from_u128(n),
            time_ns: 0,
            host: host.into(),
            paths: vec!["/data".into()],
            tags: vec![],
            parent: None,
            tree: snapkeep::TreeId::of(b"t"),
            summary: snapkeep::Summary {
                bytes,
                ..snapkeep::Summary::default()
            },
            program: String::new(),
            stages: vec![],
            flags: 0,
            root: None,
            excludes: None,
            original: None,
        };
        let one = table(&[rec(0xabcd_ef01, "h", 1536 << 20)]);
        let lines: Vec<&str> = one.lines().collect();
        assert_eq!(lines.last(), Some(&"1 snapshot"), "{one}");
        assert!(
            lines[1].starts_with("abcdef01  1970-01-01T00:00:00.000Z  h   "),
            "{one}"
        );
        assert!(lines[1].contains("1.5 GiB"), "{one}");
        let two = table(&[rec(1, "a-long-host-name", 10), rec(2, "b", 20)]);
        let lines: Vec<&str> = two.lines().collect();
        assert_eq!(lines.last(), Some(&"2 snapshots"), "{two}");
        let col = |l: &str| l.find("/data").expect("paths column");
        assert_eq!(col(lines[1]), col(lines[2]), "{two}");
        assert_eq!(lines[0].find("PATHS"), Some(col(lines[1])), "{two}");
    }
}
