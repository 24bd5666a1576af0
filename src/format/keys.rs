//! The one table of object kinds: each kind's key, and a key parsed back into its kind.
//!
//! Keys are `/`-separated ASCII: `config`, `data/<2 hex>/<pack id>`, `index/<index id>`,
//! `snapshots/<uuid>`, `locks/<uuid>` (a job) or `locks/prune`, `marks/<uuid>` and
//! `marks/<uuid>.pending`, `keys/<key file id>` (an encrypted repository's key files). Every other module asks this one for a key or a kind; none spells a
//! prefix itself.
//!
//! Must not: do I/O, or know what an object holds.

use crate::id::{IndexId, PackId, SnapshotId};

/// What kind of object a key names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The repository config (one object).
    Config,
    /// A pack of blobs.
    Pack,
    /// An index file.
    Index,
    /// A snapshot record.
    Snapshot,
    /// A lock: a job's or the prune lock.
    Lock,
    /// A prune's mark (or a pending one).
    Mark,
    /// A key file of an encrypted repository.
    Key,
}

impl Kind {
    /// Every kind, in the order the repository's layout lists them.
    pub const ALL: [Kind; 7] = [
        Kind::Config,
        Kind::Pack,
        Kind::Index,
        Kind::Snapshot,
        Kind::Lock,
        Kind::Mark,
        Kind::Key,
    ];

    /// The prefix that lists every object of this kind (the config's own key for `Config`).
    #[must_use]
    pub const fn prefix(self) -> &'static str {
        match self {
            Kind::Config => CONFIG,
            Kind::Pack => "data/",
            Kind::Index => "index/",
            Kind::Snapshot => "snapshots/",
            Kind::Lock => "locks/",
            Kind::Mark => "marks/",
            Kind::Key => "keys/",
        }
    }

    /// The directory a local store keeps objects of this kind in (`None` for the config).
    #[must_use]
    pub fn dir(self) -> Option<&'static str> {
        self.prefix().strip_suffix('/')
    }
}

/// Key of the repository config.
pub const CONFIG: &str = "config";
/// Key of the one prune lock.
pub const PRUNE_LOCK: &str = "locks/prune";
/// Suffix of a pending mark (written before a prune's index rewrite).
pub const PENDING_SUFFIX: &str = ".pending";

/// Key of a pack.
#[must_use]
pub fn pack(id: &PackId) -> String {
    let h = id.to_hex();
    format!("data/{}/{}", &h[..2], h)
}

/// Key of an index file.
#[must_use]
pub fn index(id: &IndexId) -> String {
    format!("index/{id}")
}

/// Key of a snapshot record.
#[must_use]
pub fn snapshot(id: &SnapshotId) -> String {
    format!("snapshots/{}", id.hyphenated())
}

/// Key of a job lock.
#[must_use]
pub fn job_lock(id: &uuid::Uuid) -> String {
    format!("locks/{}", id.simple())
}

/// Key of a mark, or of the pending mark that comes before it.
#[must_use]
pub fn mark(id: &uuid::Uuid, pending: bool) -> String {
    let suffix = if pending { PENDING_SUFFIX } else { "" };
    format!("marks/{}{suffix}", id.simple())
}

/// Key of a key file.
#[must_use]
pub fn key_file(id: &str) -> String {
    format!("keys/{id}")
}

/// Whether a mark key names a pending mark.
#[must_use]
pub fn is_pending_mark(key: &str) -> bool {
    key.ends_with(PENDING_SUFFIX)
}

/// A key, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key<'a> {
    Config,
    /// A pack, with the pack id its name spells (`None` for a name that is no id).
    Pack(&'a str),
    Index(IndexId),
    Snapshot(SnapshotId),
    PruneLock,
    JobLock(&'a str),
    Mark {
        name: &'a str,
        pending: bool,
    },
    /// A key file, with its name.
    KeyFile(&'a str),
    /// Anything else (a foreign or damaged object).
    Other,
}

impl Key<'_> {
    /// The kind of object, when it is one of ours.
    #[must_use]
    pub fn kind(&self) -> Option<Kind> {
        Some(match self {
            Key::Config => Kind::Config,
            Key::Pack(_) => Kind::Pack,
            Key::Index(_) => Kind::Index,
            Key::Snapshot(_) => Kind::Snapshot,
            Key::PruneLock | Key::JobLock(_) => Kind::Lock,
            Key::Mark { .. } => Kind::Mark,
            Key::KeyFile(_) => Kind::Key,
            Key::Other => return None,
        })
    }
}

/// Parses a key. A pack key yields the last segment (its name), which a caller may check.
#[must_use]
pub fn parse(key: &str) -> Key<'_> {
    if key == CONFIG {
        return Key::Config;
    }
    if key == PRUNE_LOCK {
        return Key::PruneLock;
    }
    if let Some(rest) = key.strip_prefix(Kind::Pack.prefix()) {
        return match rest.rsplit_once('/') {
            Some((_, name)) if !name.is_empty() => Key::Pack(name),
            _ => Key::Other,
        };
    }
    if let Some(name) = key.strip_prefix(Kind::Index.prefix()) {
        return name.parse().map_or(Key::Other, Key::Index);
    }
    if let Some(name) = key.strip_prefix(Kind::Snapshot.prefix()) {
        return name.parse().map_or(Key::Other, Key::Snapshot);
    }
    if let Some(name) = key.strip_prefix(Kind::Lock.prefix()) {
        return if name.is_empty() || name.contains('/') {
            Key::Other
        } else {
            Key::JobLock(name)
        };
    }
    if let Some(name) = key.strip_prefix(Kind::Mark.prefix()) {
        return if name.is_empty() || name.contains('/') {
            Key::Other
        } else {
            Key::Mark {
                name,
                pending: is_pending_mark(name),
            }
        };
    }
    if let Some(name) = key.strip_prefix(Kind::Key.prefix()) {
        return if !name.is_empty() && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            Key::KeyFile(name)
        } else {
            Key::Other
        };
    }
    Key::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_parses_back_to_its_kind() {
        let pack_id = PackId::of(b"p");
        let index_id = IndexId::of(b"i");
        let snap = uuid::Uuid::now_v7();
        assert_eq!(parse(CONFIG), Key::Config);
        assert_eq!(parse(&pack(&pack_id)), Key::Pack(&pack_id.to_hex()));
        assert_eq!(parse(&index(&index_id)), Key::Index(index_id));
        assert_eq!(parse(&snapshot(&snap)), Key::Snapshot(snap));
        assert_eq!(parse(PRUNE_LOCK), Key::PruneLock);
        assert_eq!(parse(&job_lock(&snap)).kind(), Some(Kind::Lock));
        assert_eq!(
            parse(&mark(&snap, true)),
            Key::Mark {
                name: &format!("{}.pending", snap.simple()),
                pending: true
            }
        );
        assert!(!is_pending_mark(&mark(&snap, false)));
        assert_eq!(parse(&key_file("0a1b")), Key::KeyFile("0a1b"));
        assert_eq!(parse("keys/x.y"), Key::Other);
        for bad in [
            "index/nothex",
            "snapshots/x",
            "data/",
            "marks/",
            "tmp/x",
            "locks/a/b",
        ] {
            assert_eq!(parse(bad), Key::Other, "{bad}");
        }
        for k in Kind::ALL {
            assert!(k.prefix().starts_with(k.dir().unwrap_or(CONFIG)));
        }
    }
}
