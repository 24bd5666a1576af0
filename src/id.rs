//! Content ids: 32-byte blake3 digests as distinct newtypes.
//!
//! Invariant: an id is the blake3 hash of the exact bytes it names (for chunks and trees: the
//! uncompressed content; for packs: the pack's trailer, entries + footer; for index files: the
//! whole stored object). No `Deref`: an id
//! is not a byte slice, and a `ChunkId` is never silently used where a `PackId` is meant.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

macro_rules! blake3_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The id of `data` (its blake3 hash).
            #[must_use]
            pub fn of(data: &[u8]) -> Self {
                Self(*blake3::hash(data).as_bytes())
            }

            /// The raw 32 bytes.
            #[must_use]
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Lower-case hex form.
            #[must_use]
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// The first 8 hex digits, for messages.
            #[must_use]
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                let mut out = [0u8; 32];
                hex::decode_to_slice(s, &mut out).map_err(|_| {
                    Error::InvalidInput(format!(
                        "'{s}' is not a {} id: expected 64 hex digits",
                        $what
                    ))
                })?;
                Ok(Self(out))
            }
        }

        impl From<blake3::Hash> for $name {
            fn from(h: blake3::Hash) -> Self {
                Self(*h.as_bytes())
            }
        }
    };
}

blake3_id!(
    /// Id of a blob (a file chunk or a tree): blake3 of its uncompressed bytes.
    ChunkId,
    "chunk"
);
blake3_id!(
    /// Id of a pack file: blake3 of its trailer (entries + footer), which holds the ids of
    /// all its blobs; each blob's bytes are checked against the blob id.
    PackId,
    "pack"
);
blake3_id!(
    /// Id of an index file: blake3 of the whole index file as stored.
    IndexId,
    "index"
);

/// A tree is a blob too; the alias documents intent where a tree is meant.
pub type TreeId = ChunkId;

/// Snapshot ids are UUID v7 (time-ordered), shown in canonical hyphenated form.
pub type SnapshotId = uuid::Uuid;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_roundtrip_and_bad_input() {
        let id = ChunkId::of(b"hello");
        let back: ChunkId = id.to_string().parse().expect("parse");
        assert_eq!(id, back);
        assert!("zz".parse::<ChunkId>().is_err());
        assert_eq!(id.short().len(), 8);
    }
}
