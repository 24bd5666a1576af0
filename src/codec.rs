//! How a repository's objects are kept at rest: plain (format 1) or sealed (format 2).
//!
//! Owns: [`Codec`], the one place that knows whether a repository is encrypted. It computes
//! content ids (plain blake3, or blake3 keyed with the repository's id key, so an id reveals
//! nothing about the plaintext), seals an object before it is stored and opens it after it
//! is read (the repository's AEAD scheme with the object's kind and name in the associated data; see
//! [`crate::crypto`]), and gives the chunker its secret seed.
//!
//! Invariants: a plain codec changes no byte (format 1 stays exactly what it was); a sealed
//! codec seals every blob (after compression, one by one, so a repack moves ciphertext
//! without opening it), every pack trailer's entries, every index file, every snapshot record
//! and the config's secret part. An object that does not open is `Corrupt`.
//!
//! Must not: do I/O, or know an object's layout (that is `format`'s).

use std::borrow::Cow;
use std::sync::Arc;

use crate::crypto::{Keys, SealKind};
use crate::error::Result;
use crate::format::pack::BlobKind;
use crate::id::{BlobId, ChunkId, TreeId};

/// Plain or sealed, with the keys of a sealed repository.
#[derive(Clone, Default)]
pub enum Codec {
    /// Format 1: stored as is, ids are plain blake3.
    #[default]
    Plain,
    /// Format 2: sealed with these keys, ids keyed.
    Sealed(Arc<Keys>),
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.scheme())
    }
}

impl Codec {
    /// Whether objects are sealed.
    #[must_use]
    pub fn is_sealed(&self) -> bool {
        matches!(self, Codec::Sealed(_))
    }

    /// The encryption scheme's name as `show` and `--json` give it: `none` or a
    /// [`crate::crypto::Scheme`]'s name.
    #[must_use]
    pub fn scheme(&self) -> &'static str {
        match self {
            Codec::Plain => "none",
            Codec::Sealed(keys) => keys.scheme().name(),
        }
    }

    /// The bytes sealing adds to an object.
    #[must_use]
    pub fn overhead(&self) -> usize {
        match self {
            Codec::Plain => 0,
            Codec::Sealed(keys) => keys.overhead(),
        }
    }

    fn id(&self, data: &[u8]) -> [u8; 32] {
        match self {
            Codec::Plain => *crate::hasher::hash_chunk(data).as_bytes(),
            Codec::Sealed(k) => k.id_hash(data),
        }
    }

    /// The id of a chunk of file content.
    #[must_use]
    pub fn chunk_id(&self, data: &[u8]) -> ChunkId {
        ChunkId::from_bytes(self.id(data))
    }

    /// The id of an encoded tree.
    #[must_use]
    pub fn tree_id(&self, bytes: &[u8]) -> TreeId {
        TreeId::from_bytes(self.id(bytes))
    }

    /// The id of a blob's raw bytes, whatever its kind (chunk and tree ids are computed
    /// alike, so a chunk whose bytes equal an encoded tree has the tree's id).
    #[must_use]
    pub fn blob_id(&self, raw: &[u8]) -> BlobId {
        BlobId::from_bytes(self.id(raw))
    }

    /// The chunker's gear-table seed: 0 (the published table) when plain, a secret of the
    /// repository when sealed, so chunk sizes do not fingerprint known files.
    #[must_use]
    pub fn chunker_seed(&self) -> u64 {
        match self {
            Codec::Plain => 0,
            Codec::Sealed(k) => k.chunker_seed(),
        }
    }

    /// Seals `bytes`, an object of `kind` named `name`; a plain codec returns them as they are.
    pub fn seal(&self, kind: SealKind, name: &[u8], bytes: Vec<u8>) -> Result<Vec<u8>> {
        match self {
            Codec::Plain => Ok(bytes),
            Codec::Sealed(k) => k.seal_vec(kind, name, bytes),
        }
    }

    /// Seals a borrowed object; a plain codec borrows it through.
    pub fn seal_ref<'a>(
        &self,
        kind: SealKind,
        name: &[u8],
        bytes: &'a [u8],
    ) -> Result<Cow<'a, [u8]>> {
        match self {
            Codec::Plain => Ok(Cow::Borrowed(bytes)),
            Codec::Sealed(k) => k.seal(kind, name, bytes).map(Cow::Owned),
        }
    }

    /// Opens what [`Codec::seal`] made of an object of `kind` named `name` (`object` names it
    /// in an error); a plain codec borrows the bytes through.
    pub fn open<'a>(
        &self,
        kind: SealKind,
        name: &[u8],
        stored: &'a [u8],
        object: &str,
    ) -> Result<Cow<'a, [u8]>> {
        match self {
            Codec::Plain => Ok(Cow::Borrowed(stored)),
            Codec::Sealed(k) => k.open(kind, name, stored, object).map(Cow::Owned),
        }
    }

    /// [`Codec::open`] of a buffer the caller gives up (opened in place: no second copy of a
    /// large object); a plain codec returns it as it is.
    pub fn open_vec(
        &self,
        kind: SealKind,
        name: &[u8],
        stored: Vec<u8>,
        object: &str,
    ) -> Result<Vec<u8>> {
        match self {
            Codec::Plain => Ok(stored),
            Codec::Sealed(k) => k.open_vec(kind, name, stored, object),
        }
    }

    /// Seals a blob's stored bytes (compressed or raw), bound to its id and kind.
    pub fn seal_blob<'a>(
        &self,
        kind: BlobKind,
        id: &BlobId,
        stored: &'a [u8],
    ) -> Result<Cow<'a, [u8]>> {
        self.seal_ref(blob_kind(kind), id.as_bytes(), stored)
    }

    /// Seals a blob's stored bytes into `out` (cleared first; a plain codec copies them), so
    /// the backup reuses its buffers.
    pub fn seal_blob_into(
        &self,
        kind: BlobKind,
        id: &BlobId,
        stored: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        match self {
            Codec::Plain => {
                out.clear();
                out.extend_from_slice(stored);
                Ok(())
            }
            Codec::Sealed(k) => k.seal_into(blob_kind(kind), id.as_bytes(), stored, out),
        }
    }

    /// Opens a blob's stored bytes in the caller's buffer (see [`Keys::open_in_place`]); a
    /// plain codec returns them as they are.
    pub fn open_blob_in_place<'a>(
        &self,
        kind: BlobKind,
        id: &BlobId,
        stored: &'a mut [u8],
        object: &str,
    ) -> Result<&'a [u8]> {
        match self {
            Codec::Plain => Ok(stored),
            Codec::Sealed(k) => k.open_in_place(blob_kind(kind), id.as_bytes(), stored, object),
        }
    }

    /// Opens a blob's stored bytes as read from its pack.
    pub fn open_blob<'a>(
        &self,
        kind: BlobKind,
        id: &BlobId,
        stored: &'a [u8],
        object: &str,
    ) -> Result<Cow<'a, [u8]>> {
        self.open(blob_kind(kind), id.as_bytes(), stored, object)
    }
}

/// The seal kind of a blob kind.
fn blob_kind(kind: BlobKind) -> SealKind {
    match kind {
        BlobKind::Data => SealKind::DataBlob,
        BlobKind::Tree => SealKind::TreeBlob,
    }
}
