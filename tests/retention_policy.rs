//! Retention planning: each keep rule, calendar bucket boundaries, grouping, the refusal of an
//! empty policy, the duration parser, and the plan invariants (proptest). Every clock is fixed.

use proptest::prelude::*;
use snapkeep::retention::{GroupBy, RetentionPlan, RetentionPolicy, parse_duration};
use snapkeep::{Error, SnapshotId, SnapshotRecord, Summary, TreeId};

const SEC: i64 = 1_000_000_000;
const HOUR: i64 = 3_600 * SEC;
const DAY: i64 = 24 * HOUR;

/// Nanoseconds of a UTC civil date and time (proleptic Gregorian).
fn utc(y: i64, m: i64, d: i64, h: i64, min: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let doy = (153 * if m > 2 { m - 3 } else { m + 9 } + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    days * DAY + h * HOUR + min * 60 * SEC
}

fn snap(n: u128, time_ns: i64, host: &str, paths: &[&str], tags: &[&str]) -> SnapshotRecord {
    SnapshotRecord {
        id: SnapshotId::from_u128(n),
        time_ns,
        host: host.into(),
        paths: paths.iter().map(|p| (*p).into()).collect(),
        tags: tags.iter().map(|t| (*t).into()).collect(),
        parent: None,
        tree: TreeId::of(b"t"),
        summary: Summary::default(),
        program: "test".into(),
        stages: vec![],
        flags: 0,
        root: None,
        excludes: None,
        original: None,
    }
}

/// Snapshots 1..=n of host "h", path "/db", at the given times.
fn at(times: &[i64]) -> Vec<SnapshotRecord> {
    (1..)
        .zip(times)
        .map(|(n, t)| snap(n, *t, "h", &["/db"], &[]))
        .collect()
}

fn ids(ns: &[u128]) -> Vec<SnapshotId> {
    ns.iter().map(|n| SnapshotId::from_u128(*n)).collect()
}

fn plan(policy: &RetentionPolicy, snaps: &[SnapshotRecord], now: i64) -> RetentionPlan {
    policy
        .plan(snaps, now, GroupBy::default())
        .expect("policy has a rule")
}

/// Kept ids, sorted (plan order is newest first).
fn kept(p: &RetentionPlan) -> Vec<SnapshotId> {
    let mut k = p.keep_ids();
    k.sort();
    k
}

fn reasons_of(p: &RetentionPlan, n: u128) -> Vec<String> {
    let id = SnapshotId::from_u128(n);
    p.groups
        .iter()
        .flat_map(|g| &g.decisions)
        .find(|d| d.id == id)
        .expect("snapshot is in the plan")
        .reasons
        .clone()
}

const NOW: i64 = 1_795_650_352_000_000_000; // 2026-11-25T23:45:52Z

#[test]
fn keep_last_keeps_the_newest_whatever_the_input_order() {
    let snaps = at(&[NOW - 3 * DAY, NOW - DAY, NOW - 5 * DAY, NOW - 2 * DAY]);
    let policy = RetentionPolicy {
        keep_last: Some(2),
        ..Default::default()
    };
    let p = plan(&policy, &snaps, NOW);
    assert_eq!(kept(&p), ids(&[2, 4]));
    assert_eq!(reasons_of(&p, 2), ["last 1"]);
    assert_eq!(reasons_of(&p, 4), ["last 2"]);
    assert_eq!(p.forget_ids(), ids(&[1, 3]), "forgotten newest first");
    assert!(reasons_of(&p, 3).is_empty());
}

#[test]
fn keep_hourly_newest_of_each_hour() {
    let base = utc(2026, 11, 25, 10, 0);
    let snaps = at(&[
        base + 5 * 60 * SEC,  // 10:05
        base + 55 * 60 * SEC, // 10:55, newest of 10h
        base + HOUR,          // 11:00
        base + 3 * HOUR,      // 13:00
    ]);
    let policy = RetentionPolicy {
        keep_hourly: Some(2),
        ..Default::default()
    };
    let p = plan(&policy, &snaps, NOW);
    assert_eq!(kept(&p), ids(&[3, 4]));
    assert_eq!(reasons_of(&p, 4), ["hourly 2026-11-25T13"]);
    let p = plan(
        &RetentionPolicy {
            keep_hourly: Some(3),
            ..Default::default()
        },
        &snaps,
        NOW,
    );
    assert_eq!(kept(&p), ids(&[2, 3, 4]));
    assert_eq!(reasons_of(&p, 2), ["hourly 2026-11-25T10"]);
}

#[test]
fn keep_daily_splits_at_midnight_utc() {
    let midnight = utc(2026, 11, 25, 0, 0);
    let snaps = at(&[
        midnight - 2 * HOUR, // 11-24 22:00
        midnight - 1,        // 11-24 23:59:59.999999999, newest of 11-24
        midnight,            // 11-25 00:00
        midnight + HOUR,     // 11-25 01:00, newest of 11-25
    ]);
    let policy = RetentionPolicy {
        keep_daily: Some(5),
        ..Default::default()
    };
    let p = plan(&policy, &snaps, NOW);
    assert_eq!(kept(&p), ids(&[2, 4]));
    assert_eq!(reasons_of(&p, 2), ["daily 2026-11-24"]);
    assert_eq!(reasons_of(&p, 4), ["daily 2026-11-25"]);
}

#[test]
fn keep_daily_counts_days_that_have_snapshots() {
    // Gaps do not use up the count: 3 daily keeps reach back over empty days.
    let snaps = at(&[
        utc(2026, 1, 1, 12, 0),
        utc(2026, 1, 10, 12, 0),
        utc(2026, 1, 20, 12, 0),
        utc(2026, 1, 30, 12, 0),
    ]);
    let policy = RetentionPolicy {
        keep_daily: Some(3),
        ..Default::default()
    };
    assert_eq!(kept(&plan(&policy, &snaps, NOW)), ids(&[2, 3, 4]));
}

#[test]
fn keep_weekly_uses_iso_weeks_across_the_year_end() {
    let snaps = at(&[
        utc(2024, 12, 29, 12, 0), // Sunday: 2024-W52
        utc(2024, 12, 30, 9, 0),  // Monday: 2025-W01
        utc(2025, 1, 5, 18, 0),   // Sunday: 2025-W01, newest of the week
        utc(2025, 1, 6, 0, 0),    // Monday: 2025-W02
    ]);
    let policy = RetentionPolicy {
        keep_weekly: Some(3),
        ..Default::default()
    };
    let p = plan(&policy, &snaps, NOW);
    assert_eq!(kept(&p), ids(&[1, 3, 4]));
    assert_eq!(reasons_of(&p, 1), ["weekly 2024-W52"]);
    assert_eq!(reasons_of(&p, 3), ["weekly 2025-W01"]);
    assert_eq!(reasons_of(&p, 4), ["weekly 2025-W02"]);
    // 2021-01-03 still belongs to 2020-W53.
    let p = plan(
        &policy,
        &at(&[utc(2020, 12, 31, 0, 0), utc(2021, 1, 3, 0, 0)]),
        NOW,
    );
    assert_eq!(kept(&p), ids(&[2]));
    assert_eq!(reasons_of(&p, 2), ["weekly 2020-W53"]);
}

#[test]
fn keep_monthly_and_yearly_at_their_boundaries_and_leap_day() {
    let snaps = at(&[
        utc(2023, 12, 31, 23, 59), // 2023
        utc(2024, 1, 1, 0, 0),     // 2024-01
        utc(2024, 2, 28, 12, 0),   // 2024-02
        utc(2024, 2, 29, 23, 59),  // 2024-02 leap day, newest of Feb
        utc(2024, 3, 1, 0, 0),     // 2024-03, newest of 2024
    ]);
    let monthly = RetentionPolicy {
        keep_monthly: Some(10),
        ..Default::default()
    };
    let p = plan(&monthly, &snaps, NOW);
    assert_eq!(kept(&p), ids(&[1, 2, 4, 5]));
    assert_eq!(reasons_of(&p, 4), ["monthly 2024-02"]);
    assert_eq!(reasons_of(&p, 1), ["monthly 2023-12"]);
    let yearly = RetentionPolicy {
        keep_yearly: Some(10),
        ..Default::default()
    };
    let p = plan(&yearly, &snaps, NOW);
    assert_eq!(kept(&p), ids(&[1, 5]));
    assert_eq!(reasons_of(&p, 1), ["yearly 2023"]);
    assert_eq!(reasons_of(&p, 5), ["yearly 2024"]);
    let daily = RetentionPolicy {
        keep_daily: Some(1),
        ..Default::default()
    };
    let p = plan(&daily, &at(&[utc(2024, 2, 29, 0, 0)]), NOW);
    assert_eq!(reasons_of(&p, 1), ["daily 2024-02-29"]);
}

#[test]
fn keep_within_includes_the_exact_boundary() {
    let d = parse_duration("7d").expect("7d");
    let snaps = at(&[NOW - d - 1, NOW - d, NOW - DAY, NOW + HOUR]);
    let policy = RetentionPolicy {
        keep_within: Some(d),
        ..Default::default()
    };
    let p = plan(&policy, &snaps, NOW);
    assert_eq!(kept(&p), ids(&[2, 3, 4]));
    assert_eq!(reasons_of(&p, 2), ["within 7d"]);
}

#[test]
fn keep_tag_keeps_any_listed_tag() {
    let snaps = vec![
        snap(1, NOW - 3 * DAY, "h", &["/db"], &["hourly"]),
        snap(2, NOW - 2 * DAY, "h", &["/db"], &["release", "manual"]),
        snap(3, NOW - DAY, "h", &["/db"], &["other"]),
        snap(4, NOW, "h", &["/db"], &[]),
    ];
    let policy = RetentionPolicy {
        keep_tags: vec!["hourly".into(), "manual".into()],
        ..Default::default()
    };
    let p = plan(&policy, &snaps, NOW);
    assert_eq!(kept(&p), ids(&[1, 2]));
    assert_eq!(reasons_of(&p, 1), ["tag hourly"]);
    assert_eq!(reasons_of(&p, 2), ["tag manual"]);
}

#[test]
fn rules_combine_and_every_reason_is_listed() {
    let snaps = at(&[
        utc(2026, 9, 1, 0, 0),
        utc(2026, 10, 1, 0, 0),
        utc(2026, 11, 20, 0, 0),
        utc(2026, 11, 24, 0, 0),
        utc(2026, 11, 25, 1, 0),
        utc(2026, 11, 25, 2, 0),
    ]);
    let policy = RetentionPolicy {
        keep_last: Some(1),
        keep_daily: Some(2),
        keep_monthly: Some(2),
        keep_within: Some(2 * DAY),
        ..Default::default()
    };
    let p = plan(&policy, &snaps, NOW);
    assert_eq!(kept(&p), ids(&[2, 4, 5, 6]));
    assert_eq!(
        reasons_of(&p, 6),
        ["last 1", "daily 2026-11-25", "monthly 2026-11", "within 2d"]
    );
    assert_eq!(reasons_of(&p, 4), ["daily 2026-11-24", "within 2d"]);
    assert_eq!(reasons_of(&p, 5), ["within 2d"]);
    assert_eq!(reasons_of(&p, 2), ["monthly 2026-10"]);
}

#[test]
fn hosts_and_paths_are_planned_independently() {
    let snaps = vec![
        snap(1, NOW - 3 * DAY, "a", &["/db"], &[]),
        snap(2, NOW - 2 * DAY, "a", &["/db"], &[]),
        snap(3, NOW - DAY, "b", &["/db"], &[]),
        snap(4, NOW, "b", &["/db"], &[]),
        snap(5, NOW - 4 * DAY, "a", &["/logs", "/db"], &[]),
        snap(6, NOW - 5 * DAY, "a", &["/db", "/logs"], &["x"]),
    ];
    let policy = RetentionPolicy {
        keep_last: Some(1),
        ..Default::default()
    };
    let p = plan(&policy, &snaps, NOW);
    assert_eq!(kept(&p), ids(&[2, 4, 5]), "one per host+paths group");
    assert_eq!(p.groups.len(), 3);
    assert_eq!(p.groups[0].key.host.as_deref(), Some("a"));
    assert_eq!(
        p.groups[1].key.paths,
        Some(vec!["/db".to_string(), "/logs".to_string()]),
        "paths are compared as a sorted set"
    );
    assert_eq!(p.groups[0].key.tags, None);

    let by_tags = GroupBy {
        host: true,
        paths: true,
        tags: true,
    };
    let p = policy.plan(&snaps, NOW, by_tags).expect("plan");
    assert_eq!(kept(&p), ids(&[2, 4, 5, 6]));
    let everything = GroupBy {
        host: false,
        paths: false,
        tags: false,
    };
    let p = policy.plan(&snaps, NOW, everything).expect("plan");
    assert_eq!(kept(&p), ids(&[4]));
    assert_eq!(p.groups.len(), 1);
}

#[test]
fn empty_policy_is_refused() {
    let snaps = at(&[NOW]);
    let zero = RetentionPolicy {
        keep_last: Some(0),
        keep_within: Some(0),
        ..Default::default()
    };
    for policy in [RetentionPolicy::default(), zero] {
        assert!(policy.is_empty());
        match policy.plan(&snaps, NOW, GroupBy::default()) {
            Err(Error::InvalidInput(msg)) => {
                assert!(msg.starts_with("no keep rule given"), "{msg}");
                assert!(msg.contains("refusing to forget everything"), "{msg}");
            }
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }
}

#[test]
fn bad_input_is_refused() {
    let negative = RetentionPolicy {
        keep_within: Some(-1),
        ..Default::default()
    };
    assert!(matches!(
        negative.plan(&at(&[NOW]), NOW, GroupBy::default()),
        Err(Error::InvalidInput(_))
    ));
    let last = RetentionPolicy {
        keep_last: Some(1),
        ..Default::default()
    };
    let twice = vec![
        snap(1, NOW, "h", &[], &[]),
        snap(1, NOW - DAY, "h", &[], &[]),
    ];
    assert!(matches!(
        last.plan(&twice, NOW, GroupBy::default()),
        Err(Error::InvalidInput(_))
    ));
    let p = last
        .plan(&[], NOW, GroupBy::default())
        .expect("no snapshots");
    assert!(p.groups.is_empty());
}

#[test]
fn durations_parse() {
    for (text, ns) in [
        ("1h", HOUR),
        ("36h", 36 * HOUR),
        ("7d", 7 * DAY),
        ("2w", 14 * DAY),
        ("30m", 30 * 30 * DAY),
        ("1y2m3d", (365 + 60 + 3) * DAY),
        ("3d1y", 368 * DAY),
        ("0d", 0),
        ("1y1m1w1d1h", (365 + 30 + 7 + 1) * DAY + HOUR),
    ] {
        assert_eq!(parse_duration(text).expect(text), ns, "{text}");
    }
}

#[test]
fn duration_errors_say_why() {
    for (text, why) in [
        ("", "empty"),
        ("7", "no unit"),
        ("d", "expected a number"),
        ("7x", "unknown unit 'x'"),
        ("7D", "unknown unit 'D'"),
        ("1d2d", "given twice"),
        ("-1d", "expected a number"),
        (" 1d", "expected a number"),
        ("1d ", "expected a number"),
        ("1.5d", "unknown unit '.'"),
        ("99999999999999999999h", "too large"),
        ("9999999999y", "too long"),
    ] {
        match parse_duration(text) {
            Err(Error::InvalidInput(msg)) => {
                assert!(msg.contains(why), "{text:?}: {msg}");
                assert!(msg.contains(&format!("'{text}'")), "{msg}");
            }
            other => panic!("{text:?}: expected InvalidInput, got {other:?}"),
        }
    }
}

fn arb_snapshots() -> impl Strategy<Value = Vec<SnapshotRecord>> {
    // Times within ~3 years before NOW (and a little after), a few hosts, paths and tags.
    let one = (
        -3 * 366 * DAY..DAY,
        0..3usize,
        0..2usize,
        proptest::collection::vec(0..3usize, 0..3),
    );
    proptest::collection::vec(one, 0..40).prop_map(|v| {
        let hosts = ["a", "b", "c"];
        let paths: [&[&str]; 2] = [&["/db"], &["/db", "/logs"]];
        let tags = ["daily", "manual", "x"];
        (0u128..)
            .zip(v)
            .map(|(n, (dt, h, p, t))| {
                let t: Vec<&str> = t.into_iter().map(|i| tags[i]).collect();
                snap(n + 1, NOW + dt, hosts[h], paths[p], &t)
            })
            .collect()
    })
}

fn arb_policy() -> impl Strategy<Value = RetentionPolicy> {
    let count = || proptest::option::of(0..6u32);
    (
        (count(), count(), count(), count(), count(), count()),
        proptest::option::of(0..400 * DAY),
        proptest::collection::vec(prop_oneof![Just("daily"), Just("manual"), Just("y")], 0..2),
    )
        .prop_map(|((l, h, d, w, m, y), within, tags)| RetentionPolicy {
            keep_last: l,
            keep_hourly: h,
            keep_daily: d,
            keep_weekly: w,
            keep_monthly: m,
            keep_yearly: y,
            keep_within: within,
            keep_tags: tags.into_iter().map(String::from).collect(),
        })
}

/// `base` with one more rule (or a larger count) picked by `which`.
fn with_extra_rule(base: &RetentionPolicy, which: usize, n: u32) -> RetentionPolicy {
    let mut p = base.clone();
    let bump = |c: &mut Option<u32>| *c = Some(c.unwrap_or(0) + n);
    match which {
        0 => bump(&mut p.keep_last),
        1 => bump(&mut p.keep_hourly),
        2 => bump(&mut p.keep_daily),
        3 => bump(&mut p.keep_weekly),
        4 => bump(&mut p.keep_monthly),
        5 => bump(&mut p.keep_yearly),
        6 => p.keep_within = Some(p.keep_within.unwrap_or(0) + i64::from(n) * DAY),
        _ => p.keep_tags.push("manual".into()),
    }
    p
}

fn arb_group_by() -> impl Strategy<Value = GroupBy> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(host, paths, tags)| GroupBy {
        host,
        paths,
        tags,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn plan_invariants(
        snaps in arb_snapshots(),
        policy in arb_policy(),
        group_by in arb_group_by(),
        which in 0..8usize,
        extra in 1..4u32,
        rotate in 0..40usize,
    ) {
        let Ok(p) = policy.plan(&snaps, NOW, group_by) else {
            prop_assert!(policy.is_empty());
            return Ok(());
        };
        prop_assert!(!policy.is_empty());

        // (a) every snapshot is decided exactly once, kept or forgotten.
        let mut decided: Vec<SnapshotId> = p.keep_ids();
        decided.extend(p.forget_ids());
        decided.sort();
        let mut input: Vec<SnapshotId> = snaps.iter().map(|s| s.id).collect();
        input.sort();
        prop_assert_eq!(decided, input);
        for d in p.groups.iter().flat_map(|g| &g.decisions) {
            prop_assert_eq!(d.keep, !d.reasons.is_empty());
        }

        // (b) keep-last N alone keeps min(N, group size) per group, the newest ones.
        if let Some(n) = policy.keep_last {
            let last_only = RetentionPolicy { keep_last: Some(n.max(1)), ..Default::default() };
            let q = last_only.plan(&snaps, NOW, group_by).expect("keep-last is a rule");
            for g in &q.groups {
                let want = g.decisions.len().min(n.max(1) as usize);
                let keeps: Vec<bool> = g.decisions.iter().map(|d| d.keep).collect();
                prop_assert_eq!(keeps.iter().filter(|k| **k).count(), want);
                prop_assert!(keeps[..want].iter().all(|k| *k), "the kept ones are the newest");
                prop_assert!(
                    g.decisions.windows(2).all(|w| w[0].time_ns >= w[1].time_ns),
                    "newest first"
                );
            }
        }

        // (c) adding a rule never forgets a snapshot that was kept without it.
        let bigger = with_extra_rule(&policy, which, extra);
        let q = bigger.plan(&snaps, NOW, group_by).expect("bigger policy has a rule");
        let kept_after: std::collections::BTreeSet<SnapshotId> = q.keep_ids().into_iter().collect();
        for id in p.keep_ids() {
            prop_assert!(kept_after.contains(&id), "{id} was kept, then forgotten");
        }

        // (d) deterministic, also when the input order changes.
        prop_assert_eq!(&policy.plan(&snaps, NOW, group_by).expect("again"), &p);
        let mut shuffled = snaps.clone();
        if !shuffled.is_empty() {
            let k = rotate % shuffled.len();
            shuffled.rotate_left(k);
            shuffled.reverse();
        }
        prop_assert_eq!(&policy.plan(&shuffled, NOW, group_by).expect("shuffled"), &p);
    }
}
