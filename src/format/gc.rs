//! The small objects of garbage collection: locks (`locks/<name>`, magic `SKLOCK00`) and
//! marks of packs awaiting deletion (`marks/<uuid>`, magic `SKMARK00`).
//!
//! Both are framed postcard (see [`super::frame`]); `docs/DESIGN.md` ("Garbage collection")
//! gives the rules that use them.

use serde::{Deserialize, Serialize};

use super::{decode, encode, frame, unframe};
use crate::error::Result;
use crate::id::PackId;

const LOCK_MAGIC: &[u8; 8] = b"SKLOCK00";
const MARK_MAGIC: &[u8; 8] = b"SKMARK00";
const VERSION: u32 = 1;

/// What holds a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockKind {
    /// A job that reads or writes through the index (snapshot, restore, verify): shared.
    Job,
    /// A prune: exclusive among prunes, never blocks a job.
    Prune,
}

/// The content of a lock object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    pub kind: LockKind,
    /// What the holder does (`snapshot`, `restore`, `verify`, `prune`).
    pub purpose: String,
    pub host: String,
    /// The host's boot id (`/proc/sys/kernel/random/boot_id`; empty where there is none): a
    /// lock from an earlier boot of this host is stale whatever its pid.
    pub boot_id: String,
    pub pid: u32,
    pub started_ns: i64,
    /// Refreshed while the holder runs; a lock whose heartbeat is old is stale.
    pub heartbeat_ns: i64,
    /// Names (`marks/<uuid>` keys) of every mark that existed before the holder loaded its
    /// index: the holder cannot use a pack of these marks.
    pub seen_marks: Vec<String>,
}

impl LockRecord {
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        frame(LOCK_MAGIC, VERSION, &encode(self))
    }

    pub fn from_bytes(bytes: &[u8], key: &str) -> Result<Self> {
        let object = format!("lock {key}");
        decode(unframe(LOCK_MAGIC, VERSION, bytes, &object)?, &object)
    }
}

/// One pack of a mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkedPack {
    pub id: PackId,
    pub size: u64,
}

/// Packs a prune found unreferenced and took out of the index; a later prune deletes them
/// when they are still unreferenced, or puts them back (rescue).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkRecord {
    /// When the index stopped referencing these packs (written after that).
    pub marked_ns: i64,
    pub packs: Vec<MarkedPack>,
}

impl MarkRecord {
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        frame(MARK_MAGIC, VERSION, &encode(self))
    }

    pub fn from_bytes(bytes: &[u8], key: &str) -> Result<Self> {
        let object = format!("mark {key}");
        decode(unframe(MARK_MAGIC, VERSION, bytes, &object)?, &object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_and_mark_roundtrip_and_refuse_damage() {
        let l = LockRecord {
            kind: LockKind::Job,
            purpose: "snapshot".into(),
            host: "h".into(),
            boot_id: "b".into(),
            pid: 42,
            started_ns: 1,
            heartbeat_ns: 2,
            seen_marks: vec!["marks/x".into()],
        };
        let b = l.to_bytes();
        assert_eq!(LockRecord::from_bytes(&b, "locks/a").expect("lock"), l);
        let m = MarkRecord {
            marked_ns: 5,
            packs: vec![MarkedPack {
                id: PackId::from_bytes([7; 32]),
                size: 99,
            }],
        };
        let mb = m.to_bytes();
        assert_eq!(MarkRecord::from_bytes(&mb, "marks/a").expect("mark"), m);
        assert!(MarkRecord::from_bytes(&b, "marks/a").is_err());
        let mut bad = mb.clone();
        bad[14] ^= 1;
        assert!(MarkRecord::from_bytes(&bad, "marks/a").is_err());
        for cut in 0..mb.len() {
            assert!(MarkRecord::from_bytes(&mb[..cut], "marks/a").is_err());
        }
    }
}
