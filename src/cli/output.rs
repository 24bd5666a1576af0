//! JSON and table rendering of library values.

use std::fmt::Write as _;

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
        "original": r.original.map(|o| json!({
            "id": o.id.to_string(),
            "repository": hex::encode(o.repo),
        })),
    })
}

/// `1.5 GiB` style sizes: binary units, one decimal (bytes below 1 KiB exactly).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    // 1023.96 KiB would print as "1024.0 KiB": move up a unit once the rounded value reaches 1024.
    while v >= 1023.95 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A size for people with its exact byte count when the unit rounds it: `2.9 MiB (3000005
/// bytes)`, or `512 B`.
pub fn human_bytes_exact(n: u64) -> String {
    if n < 1024 {
        format!("{n} B")
    } else {
        format!("{} ({n} bytes)", human_bytes(n))
    }
}

/// `n` and the noun in the number `n` asks for: `1 file`, `2 files`, `0 files`, `3 entries`,
/// `2 matches`. Nouns with an irregular plural go through [`plural_of`].
pub fn plural<N>(n: N, noun: &str) -> String
where
    N: std::fmt::Display + PartialEq + From<u8> + Copy,
{
    let many = if let Some(stem) = noun.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'o', 'u'])
    {
        format!("{stem}ies")
    } else if noun.ends_with(['s', 'x', 'z']) || noun.ends_with("ch") || noun.ends_with("sh") {
        format!("{noun}es")
    } else {
        format!("{noun}s")
    };
    plural_of(n, noun, &many)
}

/// `n` with `one` when it is 1 and `many` otherwise (`1 child`, `2 children`).
pub fn plural_of<N>(n: N, one: &str, many: &str) -> String
where
    N: std::fmt::Display + PartialEq + From<u8> + Copy,
{
    let word = if n == N::from(1) { one } else { many };
    format!("{n} {word}")
}

/// A ratio rounded for people: `3.21x`; `-` when there is nothing to divide by.
pub fn human_ratio(num: u64, den: u64) -> String {
    if den == 0 {
        "-".to_owned()
    } else {
        format!("{:.2}x", num as f64 / den as f64)
    }
}

/// A share rounded for people: `12.5%`; `-` when the whole is 0.
pub fn human_percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
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
        "snapshot {} saved: {}, {}, {} ({} new, {} stored) in {secs:.2}s ({}/s){}",
        r.id,
        plural(s.files, "file"),
        plural(s.dirs, "dir"),
        human_bytes(s.bytes),
        human_bytes(s.new_bytes),
        human_bytes(s.stored_bytes),
        human_bytes(rate),
        if s.skipped > 0 {
            format!(", {} skipped", plural(s.skipped, "entry"))
        } else {
            String::new()
        }
    )
}

/// Label and value pairs one a line, the labels right-aligned to the longest (`show`,
/// `stats`).
pub fn fields(rows: &[(&str, String)]) -> String {
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (k, v) in rows {
        let _ = writeln!(out, "{k:>width$}: {v}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_binary_units_with_one_decimal() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
        assert_eq!(human_bytes((1 << 20) - 1), "1.0 MiB");
        assert_eq!(human_bytes(u64::MAX), "16384.0 PiB");
        assert_eq!(human_bytes_exact(5), "5 B");
        assert_eq!(human_bytes_exact(2048), "2.0 KiB (2048 bytes)");
    }

    #[test]
    fn plurals_follow_the_count() {
        assert_eq!(plural(1u64, "file"), "1 file");
        assert_eq!(plural(0u64, "file"), "0 files");
        assert_eq!(plural(2usize, "snapshot"), "2 snapshots");
        assert_eq!(plural(3u32, "entry"), "3 entries");
        assert_eq!(plural(1u32, "entry"), "1 entry");
        assert_eq!(plural(2u64, "key"), "2 keys");
        assert_eq!(plural(2u64, "match"), "2 matches");
        assert_eq!(plural(2u64, "index"), "2 indexes");
        assert_eq!(plural_of(2u64, "child", "children"), "2 children");
    }

    #[test]
    fn ratios_and_percentages_are_rounded() {
        assert_eq!(human_ratio(321, 100), "3.21x");
        assert_eq!(human_ratio(2, 3), "0.67x");
        assert_eq!(human_ratio(5, 0), "-");
        assert_eq!(human_percent(1, 8), "12.5%");
        assert_eq!(human_percent(1, 0), "-");
    }

    #[test]
    fn fields_align_their_labels() {
        let text = fields(&[("id", "x".into()), ("parent", "y".into())]);
        assert_eq!(text, "    id: x\nparent: y\n");
    }
}
