//! Retention: which snapshots a `forget` keeps (the decide half; acting on the plan is not
//! here).
//!
//! [`RetentionPolicy::plan`] sorts snapshot records into groups ([`GroupBy`], host and paths by
//! default), orders each group newest first, and applies restic's rules:
//! - `keep_last` N keeps the N newest snapshots;
//! - `keep_hourly`/`daily`/`weekly`/`monthly`/`yearly` N keep the newest snapshot of each of
//!   the N most recent distinct buckets that hold a snapshot. Buckets are UTC hours, days, ISO
//!   8601 weeks (`2025-W01` starts on Monday 2024-12-30), months and years, computed from
//!   `time_ns` with the proleptic Gregorian calendar;
//! - `keep_within` D keeps every snapshot with `now - time <= D` (relative to the caller's
//!   clock; restic measures from the group's newest snapshot instead);
//! - `keep_tags` keeps every snapshot that has any of the listed tags.
//!
//! A count of 0 and a zero `keep_within` are the same as an absent rule.
//!
//! Invariants:
//! - A snapshot is kept when any rule keeps it, so the plan never forgets a snapshot a rule
//!   keeps, and adding a rule never forgets a snapshot that was kept without it.
//! - Every input snapshot appears in exactly one decision, kept or forgotten.
//! - Plans are deterministic for the same input set and clock: groups are ordered by key,
//!   snapshots by time then id, whatever the input order.
//! - A policy without any rule is refused rather than forgetting everything.
//!
//! This module must not do I/O or read the system clock: the caller passes the records and
//! `now`.

use crate::clock::civil_from_days;
use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result};
use crate::format::manifest::SnapshotRecord;
use crate::id::SnapshotId;

const NS_PER_SEC: i64 = 1_000_000_000;
const NS_PER_HOUR: i64 = 3_600 * NS_PER_SEC;
const NS_PER_DAY: i64 = 24 * NS_PER_HOUR;

/// Which snapshots to keep. Every field is one rule; see the module doc for their meaning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    /// Nanoseconds (see [`parse_duration`]); must not be negative.
    pub keep_within: Option<i64>,
    pub keep_tags: Vec<String>,
}

/// Which record fields split snapshots into independent groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupBy {
    pub host: bool,
    pub paths: bool,
    pub tags: bool,
}

impl Default for GroupBy {
    /// Host and paths, like restic.
    fn default() -> Self {
        GroupBy {
            host: true,
            paths: true,
            tags: false,
        }
    }
}

/// The values a group shares; a field is `None` when it is not grouped on. Paths and tags are
/// sorted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey {
    pub host: Option<String>,
    pub paths: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
}

/// The verdict on one snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub id: SnapshotId,
    pub time_ns: i64,
    pub keep: bool,
    /// Why it is kept, one entry per rule that keeps it (`"last 1"` for the newest,
    /// `"daily 2026-11-25"`, `"weekly 2025-W01"`, `"within 7d"`, `"tag hourly"`); empty when
    /// forgotten.
    pub reasons: Vec<String>,
}

/// The decisions of one group, newest snapshot first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupPlan {
    pub key: GroupKey,
    pub decisions: Vec<Decision>,
}

/// The decisions for every snapshot given to [`RetentionPolicy::plan`], groups ordered by key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionPlan {
    pub groups: Vec<GroupPlan>,
}

impl RetentionPlan {
    /// Ids of the kept snapshots, in plan order.
    #[must_use]
    pub fn keep_ids(&self) -> Vec<SnapshotId> {
        self.ids_where(true)
    }

    /// Ids of the snapshots to forget, in plan order.
    #[must_use]
    pub fn forget_ids(&self) -> Vec<SnapshotId> {
        self.ids_where(false)
    }

    fn ids_where(&self, keep: bool) -> Vec<SnapshotId> {
        self.groups
            .iter()
            .flat_map(|g| &g.decisions)
            .filter(|d| d.keep == keep)
            .map(|d| d.id)
            .collect()
    }
}

/// A calendar bucket kind, newest-of-each-bucket rules.
#[derive(Clone, Copy)]
enum Bucket {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Bucket {
    /// A number that is equal for two times exactly when they share the bucket, and its label.
    fn of(self, time_ns: i64) -> (i64, String) {
        let days = time_ns.div_euclid(NS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        match self {
            Bucket::Hour => {
                let hour = time_ns.rem_euclid(NS_PER_DAY) / NS_PER_HOUR;
                (
                    time_ns.div_euclid(NS_PER_HOUR),
                    format!("hourly {y:04}-{m:02}-{d:02}T{hour:02}"),
                )
            }
            Bucket::Day => (days, format!("daily {y:04}-{m:02}-{d:02}")),
            Bucket::Week => {
                let (thursday, iso_year, week) = iso_week(days);
                (thursday, format!("weekly {iso_year:04}-W{week:02}"))
            }
            Bucket::Month => (y * 12 + i64::from(m) - 1, format!("monthly {y:04}-{m:02}")),
            Bucket::Year => (y, format!("yearly {y:04}")),
        }
    }
}

impl RetentionPolicy {
    /// Whether no rule is given (counts of 0 and a zero `keep_within` count as absent).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        let counts = [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ];
        counts.iter().all(|c| c.unwrap_or(0) == 0)
            && self.keep_within.unwrap_or(0) == 0
            && self.keep_tags.is_empty()
    }

    /// Decides, for each snapshot, whether to keep or forget it at time `now_ns`.
    ///
    /// Refuses an empty policy, a negative `keep_within`, and a snapshot id given twice.
    pub fn plan(
        &self,
        snapshots: &[SnapshotRecord],
        now_ns: i64,
        group_by: GroupBy,
    ) -> Result<RetentionPlan> {
        if self.is_empty() {
            return Err(Error::InvalidInput(
                "no keep rule given; pass at least one of keep-last, keep-hourly, keep-daily, \
                 keep-weekly, keep-monthly, keep-yearly, keep-within or keep-tag, refusing to \
                 forget everything"
                    .into(),
            ));
        }
        if let Some(within) = self.keep_within.filter(|w| *w < 0) {
            return Err(Error::InvalidInput(format!(
                "keep-within must not be negative (got {within} ns)"
            )));
        }
        let mut seen = BTreeSet::new();
        let mut groups: BTreeMap<GroupKey, Vec<&SnapshotRecord>> = BTreeMap::new();
        for rec in snapshots {
            if !seen.insert(rec.id) {
                return Err(Error::InvalidInput(format!(
                    "snapshot {} is listed twice; cannot plan retention",
                    rec.id
                )));
            }
            groups
                .entry(group_key(rec, group_by))
                .or_default()
                .push(rec);
        }
        let groups = groups
            .into_iter()
            .map(|(key, mut recs)| {
                recs.sort_by_key(|r| std::cmp::Reverse((r.time_ns, r.id)));
                GroupPlan {
                    key,
                    decisions: self.decide_group(&recs, now_ns),
                }
            })
            .collect();
        Ok(RetentionPlan { groups })
    }

    /// `recs` is one group, newest first.
    fn decide_group(&self, recs: &[&SnapshotRecord], now_ns: i64) -> Vec<Decision> {
        let mut buckets: Vec<(Bucket, u32, Option<i64>)> = [
            (Bucket::Hour, self.keep_hourly),
            (Bucket::Day, self.keep_daily),
            (Bucket::Week, self.keep_weekly),
            (Bucket::Month, self.keep_monthly),
            (Bucket::Year, self.keep_yearly),
        ]
        .into_iter()
        .filter_map(|(b, n)| n.filter(|n| *n > 0).map(|n| (b, n, None)))
        .collect();
        let within = self.keep_within.filter(|w| *w > 0);
        let keep_last = self.keep_last.unwrap_or(0);
        let mut decisions = Vec::with_capacity(recs.len());
        for (rank, rec) in recs.iter().enumerate() {
            let mut reasons = Vec::new();
            if u32::try_from(rank).is_ok_and(|r| r < keep_last) {
                reasons.push(format!("last {}", rank + 1));
            }
            // Newest first, so a bucket value differs from the last kept one exactly when it
            // is a new, older bucket.
            for (bucket, left, last) in &mut buckets {
                let (value, label) = bucket.of(rec.time_ns);
                if *left > 0 && *last != Some(value) {
                    *left -= 1;
                    *last = Some(value);
                    reasons.push(label);
                }
            }
            if let Some(w) = within
                && i128::from(now_ns) - i128::from(rec.time_ns) <= i128::from(w)
            {
                reasons.push(format!("within {}", format_duration(w)));
            }
            for tag in &self.keep_tags {
                let reason = format!("tag {tag}");
                if rec.tags.contains(tag) && !reasons.contains(&reason) {
                    reasons.push(reason);
                }
            }
            decisions.push(Decision {
                id: rec.id,
                time_ns: rec.time_ns,
                keep: !reasons.is_empty(),
                reasons,
            });
        }
        decisions
    }
}

fn group_key(rec: &SnapshotRecord, by: GroupBy) -> GroupKey {
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    GroupKey {
        host: by.host.then(|| rec.host.clone()),
        paths: by.paths.then(|| sorted(&rec.paths)),
        tags: by.tags.then(|| sorted(&rec.tags)),
    }
}

/// ISO 8601 week of a day count since 1970-01-01: `(thursday, iso_year, week)`, where
/// `thursday` is the day count of that week's Thursday (unique per week), whose civil year is
/// the ISO year.
fn iso_week(days: i64) -> (i64, i64, i64) {
    // 1970-01-01 was a Thursday; Monday = 0.
    let weekday = (days + 3).rem_euclid(7);
    let thursday = days - weekday + 3;
    let (iso_year, _, _) = civil_from_days(thursday);
    let jan1 = days_from_civil(iso_year, 1, 1);
    (thursday, iso_year, (thursday - jan1) / 7 + 1)
}

/// Day count since 1970-01-01 of a civil date (inverse of [`crate::clock::civil_from_days`]).
fn days_from_civil(y: i64, m: u8, d: u8) -> i64 {
    let (m, d) = (i64::from(m), i64::from(d));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let doy = (153 * if m > 2 { m - 3 } else { m + 9 } + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses a retention duration such as `"7d"`, `"2w"`, `"1y2m3d"` or `"36h"` into nanoseconds.
///
/// Units, as in restic's `--keep-within` (where `m` means months, never minutes): `y` = 365
/// days, `m` = 30 days, `w` = 7 days, `d` = 24 hours, `h` = 1 hour. Months and years are fixed
/// approximations, not calendar arithmetic. Each part is digits then one lower-case unit; parts
/// may come in any order, each unit at most once.
pub fn parse_duration(s: &str) -> Result<i64> {
    let bad = |why: &str| {
        Error::InvalidInput(format!(
            "'{s}' is not a duration: {why} (write parts like '1y2m3d' or '36h' with units \
             y, m = months, w, d, h)"
        ))
    };
    if s.is_empty() {
        return Err(bad("it is empty"));
    }
    let mut total: i64 = 0;
    let mut used = String::new();
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad("expected a number"));
        }
        let n: i64 = rest[..digits]
            .parse()
            .map_err(|_| bad("the number is too large"))?;
        let Some(unit) = rest[digits..].chars().next() else {
            return Err(bad("the last number has no unit"));
        };
        let unit_ns = match unit {
            'y' => 365 * NS_PER_DAY,
            'm' => 30 * NS_PER_DAY,
            'w' => 7 * NS_PER_DAY,
            'd' => NS_PER_DAY,
            'h' => NS_PER_HOUR,
            _ => return Err(bad(&format!("unknown unit '{unit}'"))),
        };
        if used.contains(unit) {
            return Err(bad(&format!("unit '{unit}' is given twice")));
        }
        used.push(unit);
        total = n
            .checked_mul(unit_ns)
            .and_then(|p| total.checked_add(p))
            .ok_or_else(|| bad("it is too long"))?;
        rest = &rest[digits + unit.len_utf8()..];
    }
    Ok(total)
}

/// Renders nanoseconds as days, hours, minutes, seconds (`7d`, `1d12h`, `90s`), unambiguous
/// for reasons; `0s` for zero.
fn format_duration(ns: i64) -> String {
    let parts = [
        (NS_PER_DAY, "d"),
        (NS_PER_HOUR, "h"),
        (60 * NS_PER_SEC, "min"),
        (NS_PER_SEC, "s"),
        (1, "ns"),
    ];
    let mut rest = ns;
    let mut out = Vec::new();
    for (unit, name) in parts {
        if rest >= unit {
            out.push(format!("{}{name}", rest / unit));
            rest %= unit;
        }
    }
    if out.is_empty() {
        return "0s".into();
    }
    out.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_roundtrip_and_known_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        for days in -800_000..800_000 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn iso_weeks_across_year_ends() {
        let week = |y, m, d| {
            let (_, iy, w) = iso_week(days_from_civil(y, m, d));
            (iy, w)
        };
        assert_eq!(week(2024, 12, 29), (2024, 52));
        assert_eq!(week(2024, 12, 30), (2025, 1));
        assert_eq!(week(2025, 1, 5), (2025, 1));
        assert_eq!(week(2021, 1, 3), (2020, 53));
        assert_eq!(week(2020, 12, 31), (2020, 53));
        assert_eq!(week(2026, 1, 1), (2026, 1));
        assert_eq!(week(1970, 1, 1), (1970, 1));
    }

    #[test]
    fn durations_parse_and_format() {
        assert_eq!(parse_duration("1h").expect("1h"), NS_PER_HOUR);
        assert_eq!(parse_duration("1y2m3d").expect("ymd"), 428 * NS_PER_DAY);
        assert_eq!(parse_duration("2w").expect("2w"), 14 * NS_PER_DAY);
        assert_eq!(format_duration(7 * NS_PER_DAY), "7d");
        assert_eq!(format_duration(36 * NS_PER_HOUR), "1d12h");
        assert_eq!(format_duration(90 * NS_PER_SEC + 5), "1min30s5ns");
        assert_eq!(format_duration(0), "0s");
    }
}
