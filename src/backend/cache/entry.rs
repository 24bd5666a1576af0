//! What names a cache entry: the slot a key falls in (index file, snapshot record, a pack's
//! tree blobs), the names that are safe as file names, and a version written as an entry's tag.

use super::super::ObjectVersion;
use crate::format::keys::{self, Key};
use crate::id::IndexId;

/// A version as an entry's tag: `E<etag>` and `M<seconds>` lines, each when known.
pub(super) fn encode_version(v: &ObjectVersion) -> String {
    let mut lines = Vec::new();
    if let Some(e) = &v.etag {
        lines.push(format!("E{e}"));
    }
    if let Some(m) = v.settled_mtime {
        lines.push(format!("M{m}"));
    }
    lines.join("\n")
}

pub(super) fn decode_version(tag: &str) -> ObjectVersion {
    let mut v = ObjectVersion::default();
    for line in tag.lines() {
        if let Some(e) = line.strip_prefix('E') {
            v.etag = Some(e.to_owned());
        } else if let Some(m) = line.strip_prefix('M') {
            v.settled_mtime = m.parse().ok();
        }
    }
    v
}

/// Where a key's entry lives, by kind.
pub(super) enum Slot {
    Index(IndexId),
    Snapshot(String),
    Other,
}

pub(super) fn slot(key: &str) -> Slot {
    match keys::parse(key) {
        Key::Index(id) => Slot::Index(id),
        Key::Snapshot(_) => {
            let name = &key[keys::Kind::Snapshot.prefix().len()..];
            if safe_name(name) {
                Slot::Snapshot(name.to_owned())
            } else {
                Slot::Other
            }
        }
        _ => Slot::Other,
    }
}

/// The name of the pack `key` names, when it is a pack key with a name safe for a file.
pub(super) fn pack_name(key: &str) -> Option<&str> {
    match keys::parse(key) {
        Key::Pack(name) if safe_name(name) => Some(name),
        _ => None,
    }
}

pub(super) fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}
