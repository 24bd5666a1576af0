//! JSON and table rendering of library values.

use serde_json::{Value, json};
use snapkeep::SnapshotRecord;
use snapkeep::clock::rfc3339;

/// A snapshot record as the documented JSON object.
pub fn record_json(r: &SnapshotRecord) -> Value {
    let s = &r.summary;
    json!({
        "id": r.id.to_string(),
        "time": rfc3339(r.time_ns),
        "host": r.host,
        "paths": r.paths,
        "tags": r.tags,
        "parent": r.parent.map(|p| p.to_string()),
        "tree": r.tree.to_string(),
        "files": s.files,
        "dirs": s.dirs,
        "symlinks": s.symlinks,
        "skipped": s.skipped,
        "bytes": s.bytes,
        "data_bytes": s.data_bytes,
        "new_bytes": s.new_bytes,
        "stored_bytes": s.stored_bytes,
        "chunks": s.chunks,
        "new_chunks": s.new_chunks,
        "changed_during_read": s.changed_during_read,
        "unchanged_files": s.unchanged_files,
        "duration_s": s.duration_ns as f64 / 1e9,
        "program": r.program,
        "stages": r.stages,
        "stage_files": s.stage_files,
        "stage_bytes": s.stage_bytes,
        "inconsistent": r.flags & snapkeep::format::manifest::FLAG_INCONSISTENT != 0,
        "inconsistent_files": s.inconsistent_files,
    })
}

/// `1.5 GiB` style sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// One line for stderr after a snapshot.
pub fn summary_line(r: &SnapshotRecord) -> String {
    let s = &r.summary;
    let secs = s.duration_ns as f64 / 1e9;
    let rate =
        u64::try_from(u128::from(s.data_bytes) * 1_000_000_000 / u128::from(s.duration_ns.max(1)))
            .unwrap_or(u64::MAX);
    format!(
        "snapshot {} saved: {} files, {} dirs, {} ({} new, {} stored) in {secs:.2}s ({}/s){}",
        r.id,
        s.files,
        s.dirs,
        human_bytes(s.bytes),
        human_bytes(s.new_bytes),
        human_bytes(s.stored_bytes),
        human_bytes(rate),
        if s.skipped > 0 {
            format!(", {} entries skipped", s.skipped)
        } else {
            String::new()
        }
    )
}

/// A JSON object one field a line, the names right-aligned in `width` columns (`show`,
/// `stats`).
pub fn print_fields(v: &Value, width: usize) {
    if let Some(obj) = v.as_object() {
        for (k, val) in obj {
            println!("{k:>width$}: {val}");
        }
    }
}
