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
        pub struct $name([u8; 32]);

        impl $name {
            /// The id of `data` (its blake3 hash).
            #[must_use]
            pub fn of(data: &[u8]) -> Self {
                Self(*blake3::hash(data).as_bytes())
            }

            /// The id whose raw bytes are `bytes` (as decoded from a stored object).
            #[must_use]
            pub const fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
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
    /// Id of a blob in a pack, whatever it holds (a file chunk or a tree): blake3 of its
    /// uncompressed bytes. The index and the packs speak of blobs; the trees speak of
    /// [`ChunkId`]s and [`TreeId`]s, which name a blob of one kind.
    BlobId,
    "blob"
);
blake3_id!(
    /// Id of a chunk of file content: blake3 of its uncompressed bytes.
    ChunkId,
    "chunk"
);
blake3_id!(
    /// Id of a tree (one directory): blake3 of its encoded bytes.
    TreeId,
    "tree"
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

/// Any id that names a blob in a pack: the index and the pack readers take one of these, so
/// a [`ChunkId`] and a [`TreeId`] are looked up alike while staying apart everywhere else.
pub trait AsBlob {
    /// The blob this id names.
    fn blob(&self) -> BlobId;
}

impl AsBlob for BlobId {
    fn blob(&self) -> BlobId {
        *self
    }
}

macro_rules! blob_kind {
    ($name:ident) => {
        impl AsBlob for $name {
            fn blob(&self) -> BlobId {
                BlobId(self.0)
            }
        }

        impl From<$name> for BlobId {
            fn from(id: $name) -> BlobId {
                id.blob()
            }
        }

        impl PartialEq<BlobId> for $name {
            fn eq(&self, other: &BlobId) -> bool {
                self.0 == other.0
            }
        }
    };
}

blob_kind!(ChunkId);
blob_kind!(TreeId);

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

    #[test]
    fn kinds_name_the_same_blob() {
        let chunk = ChunkId::of(b"same bytes");
        let tree = TreeId::of(b"same bytes");
        assert_eq!(chunk.blob(), tree.blob());
        assert_eq!(chunk, chunk.blob());
        assert_eq!(BlobId::from(tree).as_bytes(), chunk.as_bytes());
        assert!("zz".parse::<TreeId>().is_err());
    }
}
