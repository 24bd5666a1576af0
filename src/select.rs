//! Choosing snapshots: the filter restic's commands take (hosts, paths, tags), the spec that
//! names one snapshot (`latest`, a full id, a unique id prefix, a short id), the short id shown
//! in listings, and which record `latest` is.
//!
//! Owns: what a [`SnapshotFilter`] matches, what a [`SnapshotSpec`] matches, and the sentences
//! that say why nothing (or more than one snapshot) matched.
//!
//! Invariants:
//! - A short id is the last [`SHORT_ID_LEN`] hex digits of the id: its random part. UUID v7
//!   ids taken minutes apart share their leading (time) digits, so a leading prefix of that
//!   length is not unique in practice.
//! - A spec names a snapshot only when exactly one id matches it, counting both a prefix match
//!   of the full id and an exact short id match: a short id that is also another id's prefix
//!   is ambiguous, never silently one of them.
//! - `latest` is the newest matching record by time (then id), never one outside the filter.
//!
//! Must not: read the repository or the system (the host default of the CLI's `latest` is the
//! caller's); [`crate::Repository::resolve`] reads the records and uses this.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::format::manifest::SnapshotRecord;
use crate::id::SnapshotId;

/// Length of a short id.
pub const SHORT_ID_LEN: usize = 8;

/// The short id of `id`: its last [`SHORT_ID_LEN`] hex digits (the random part of a UUID v7).
#[must_use]
pub fn short_id(id: &SnapshotId) -> String {
    let simple = id.simple().to_string();
    simple[simple.len() - SHORT_ID_LEN..].to_owned()
}

/// Which snapshots a command considers. Every field narrows; an empty field does not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotFilter {
    /// The record's host is one of these.
    pub hosts: Vec<String>,
    /// Each of these absolute paths is one of the record's paths.
    pub paths: Vec<String>,
    /// The record has every tag of at least one of these groups; an empty group matches a
    /// record without tags (restic's `--tag ''`).
    pub tags: Vec<Vec<String>>,
}

impl SnapshotFilter {
    /// Whether the filter lets every snapshot through.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.paths.is_empty() && self.tags.is_empty()
    }

    /// Whether `r` passes the filter.
    #[must_use]
    pub fn matches(&self, r: &SnapshotRecord) -> bool {
        let host = self.hosts.is_empty() || self.hosts.contains(&r.host);
        let paths = self.paths.iter().all(|p| r.paths.contains(p));
        let tags = self.tags.is_empty()
            || self.tags.iter().any(|group| {
                if group.is_empty() {
                    r.tags.is_empty()
                } else {
                    group.iter().all(|t| r.tags.contains(t))
                }
            });
        host && paths && tags
    }

    /// The filter in words, for messages: `host 'a' or 'b', path '/x' and tags 'p,q'`.
    #[must_use]
    pub fn describe(&self) -> String {
        let quoted = |v: &[String], sep: &str| {
            v.iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(sep)
        };
        let mut parts = Vec::new();
        if !self.hosts.is_empty() {
            parts.push(format!("host {}", quoted(&self.hosts, " or ")));
        }
        if !self.paths.is_empty() {
            let noun = if self.paths.len() == 1 {
                "path"
            } else {
                "paths"
            };
            parts.push(format!("{noun} {}", quoted(&self.paths, " and ")));
        }
        if !self.tags.is_empty() {
            let groups: Vec<String> = self.tags.iter().map(|g| g.join(",")).collect();
            parts.push(format!("tags {}", quoted(&groups, " or ")));
        }
        if parts.is_empty() {
            "any host, path and tags".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// What a snapshot spec names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotSpec {
    /// The newest snapshot the filter lets through.
    Latest,
    /// A full id, a unique prefix of it (hyphenated or not), or an exact short id; lower case.
    Id(String),
}

impl FromStr for SnapshotSpec {
    type Err = Error;

    fn from_str(spec: &str) -> Result<Self> {
        if spec == "latest" {
            return Ok(SnapshotSpec::Latest);
        }
        let want = spec.to_ascii_lowercase();
        if want.is_empty() || !want.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return Err(Error::InvalidInput(format!(
                "'{spec}' is not a snapshot id: give 'latest', an id, a unique id prefix or an \
                 {SHORT_ID_LEN}-character short id"
            )));
        }
        Ok(SnapshotSpec::Id(want))
    }
}

impl SnapshotSpec {
    /// Whether `id` matches: always for `latest`; for an id spec, when it is a prefix of the
    /// hyphenated or plain id, or is its short id.
    #[must_use]
    pub fn matches_id(&self, id: &SnapshotId) -> bool {
        match self {
            SnapshotSpec::Latest => true,
            SnapshotSpec::Id(want) => {
                id.hyphenated().to_string().starts_with(want.as_str())
                    || id.simple().to_string().starts_with(want.as_str())
                    || *want == short_id(id)
            }
        }
    }

    /// The one id among `ids` this spec names (`latest` is not an id: see [`latest`]).
    pub fn pick(&self, spec: &str, ids: &[SnapshotId]) -> Result<SnapshotId> {
        let matches: Vec<&SnapshotId> = ids.iter().filter(|id| self.matches_id(id)).collect();
        match matches.as_slice() {
            [one] => Ok(**one),
            [] => Err(Error::NotFound(format!(
                "snapshot '{spec}' (run 'snapkeep list' to see the ids)"
            ))),
            many => Err(Error::InvalidInput(format!(
                "snapshot '{spec}' matches {} snapshots; give more digits of the full id",
                many.len()
            ))),
        }
    }
}

/// The newest of `records` (oldest first, as [`crate::Repository::snapshots`] gives them) that
/// `filter` lets through. When none does, the error says what the repository at `location`
/// holds instead: the hosts with their counts, the paths of the asked hosts' snapshots, and the
/// flag that picks one.
pub fn latest<'a>(
    records: &'a [SnapshotRecord],
    filter: &SnapshotFilter,
    location: &str,
) -> Result<&'a SnapshotRecord> {
    if let Some(r) = records.iter().rev().find(|r| filter.matches(r)) {
        return Ok(r);
    }
    if records.is_empty() {
        return Err(Error::InvalidInput(format!(
            "{location} holds no snapshot yet, so there is no 'latest'; take one with \
             'snapkeep snapshot DIR'"
        )));
    }
    let mut hosts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in records {
        *hosts.entry(r.host.as_str()).or_default() += 1;
    }
    let mut msg = format!(
        "no snapshot of {} in {location} for 'latest'; the repository has snapshots of ",
        filter.describe()
    );
    let listed: Vec<String> = hosts
        .iter()
        .map(|(h, n)| format!("host '{h}' ({n})"))
        .collect();
    msg.push_str(&listed.join(", "));
    if !filter.paths.is_empty() || !filter.tags.is_empty() {
        let mut paths: Vec<&str> = records
            .iter()
            .filter(|r| filter.hosts.is_empty() || filter.hosts.contains(&r.host))
            .flat_map(|r| r.paths.iter().map(String::as_str))
            .collect();
        paths.sort_unstable();
        paths.dedup();
        if !paths.is_empty() {
            let whose = if filter.hosts.is_empty() {
                "their paths are"
            } else {
                "those of the host asked for have paths"
            };
            let _ = write!(
                msg,
                "; {whose} {}",
                paths
                    .iter()
                    .map(|p| format!("'{p}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        msg.push_str(": choose with --host NAME, --path PATH and --tag TAG");
    } else {
        let example = hosts.keys().next().copied().unwrap_or_default();
        let _ = write!(msg, ": choose one with --host NAME (e.g. --host {example})");
    }
    Err(Error::InvalidInput(msg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::Summary;
    use crate::id::TreeId;

    fn rec(n: u128, host: &str, paths: &[&str], tags: &[&str]) -> SnapshotRecord {
        SnapshotRecord {
            id: SnapshotId::from_u128(n),
            time_ns: i64::try_from(n).expect("small"),
            host: host.into(),
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            parent: None,
            tree: TreeId::of(b"t"),
            summary: Summary::default(),
            program: String::new(),
            stages: Vec::new(),
            flags: 0,
            root: None,
            excludes: None,
            original: None,
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn short_id_is_the_random_tail() {
        let id: SnapshotId = "01a23d2b-c353-700a-8c82-44c26d696d60".parse().expect("id");
        assert_eq!(short_id(&id), "6d696d60");
        let spec: SnapshotSpec = "6D696D60".parse().expect("spec");
        assert!(spec.matches_id(&id));
        assert!(
            !"6d696d6"
                .parse::<SnapshotSpec>()
                .expect("spec")
                .matches_id(&id)
        );
        assert!(
            "01a23d2b-c3"
                .parse::<SnapshotSpec>()
                .expect("p")
                .matches_id(&id)
        );
        assert!(
            "01a23d2bc3"
                .parse::<SnapshotSpec>()
                .expect("p")
                .matches_id(&id)
        );
        for bad in ["", "xyz", "latest!", "01a2 3d"] {
            assert!(bad.parse::<SnapshotSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_short_id_that_is_another_prefix_is_ambiguous() {
        let a: SnapshotId = "6d696d60-0000-7000-8000-000000000001".parse().expect("a");
        let b: SnapshotId = "01a23d2b-c353-700a-8c82-44c26d696d60".parse().expect("b");
        let spec: SnapshotSpec = "6d696d60".parse().expect("spec");
        let e = spec.pick("6d696d60", &[a, b]).expect_err("ambiguous");
        assert!(e.to_string().contains("matches 2 snapshots"), "{e}");
        assert_eq!(spec.pick("6d696d60", &[b]).expect("one"), b);
        assert!(spec.pick("6d696d60", &[]).expect_err("none").is_not_found());
    }

    #[test]
    fn filters_match_as_restic() {
        let r = rec(1, "db1", &["/data", "/etc"], &["daily", "pg"]);
        let f = |hosts: &[&str], paths: &[&str], tags: &[&[&str]]| SnapshotFilter {
            hosts: strings(hosts),
            paths: strings(paths),
            tags: tags.iter().map(|g| strings(g)).collect(),
        };
        assert!(f(&[], &[], &[]).matches(&r));
        assert!(f(&["x", "db1"], &[], &[]).matches(&r));
        assert!(!f(&["x"], &[], &[]).matches(&r));
        assert!(f(&[], &["/data", "/etc"], &[]).matches(&r));
        assert!(!f(&[], &["/data", "/var"], &[]).matches(&r));
        assert!(f(&[], &[], &[&["daily", "pg"]]).matches(&r));
        assert!(!f(&[], &[], &[&["daily", "mysql"]]).matches(&r));
        assert!(f(&[], &[], &[&["daily", "mysql"], &["pg"]]).matches(&r));
        assert!(!f(&[], &[], &[&[]]).matches(&r), "'' selects untagged ones");
        assert!(f(&[], &[], &[&[]]).matches(&rec(2, "db1", &["/data"], &[])));
    }

    #[test]
    fn latest_is_the_newest_match_and_the_miss_names_the_hosts() {
        let recs = vec![
            rec(1, "me", &["/data"], &[]),
            rec(2, "other", &["/data"], &[]),
            rec(3, "other", &["/srv"], &[]),
        ];
        let mine = SnapshotFilter {
            hosts: strings(&["me"]),
            ..SnapshotFilter::default()
        };
        assert_eq!(latest(&recs, &mine, "/r").expect("mine").id.as_u128(), 1);
        let any = SnapshotFilter::default();
        assert_eq!(latest(&recs, &any, "/r").expect("any").id.as_u128(), 3);

        let nobody = SnapshotFilter {
            hosts: strings(&["nobody"]),
            ..SnapshotFilter::default()
        };
        let e = latest(&recs, &nobody, "/r").expect_err("none").to_string();
        assert!(e.contains("host 'me' (1), host 'other' (2)"), "{e}");
        assert!(e.contains("--host"), "{e}");
        let wrong_path = SnapshotFilter {
            hosts: strings(&["me"]),
            paths: strings(&["/srv"]),
            ..SnapshotFilter::default()
        };
        let e = latest(&recs, &wrong_path, "/r")
            .expect_err("none")
            .to_string();
        assert!(e.contains("paths '/data'"), "{e}");
        let empty = latest(&[], &any, "/r").expect_err("empty").to_string();
        assert!(
            empty.contains("/r holds no snapshot yet") && empty.contains("snapkeep snapshot"),
            "{empty}"
        );
    }
}
