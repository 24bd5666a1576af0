//! Index file layout: a sorted, fixed-width table from blob id to its place in a pack.
//!
//! ```text
//! header   64 bytes     "SKINDEX\0" | version u32 (1) | 0u32 | n u64 | p u32 | 0u32 | 0[32]
//! fanout   256 × u32    fanout[b] = number of entries whose id[0] <= b
//! packs    p × 32       pack ids referenced by the entries
//! entries  n × 52       id[32] | pack u32 | offset u32 | length u32 | raw_length u32 |
//!                       kind u8 | compression u8 | 0u16          (sorted by id, unique)
//! footer   32 bytes     blake3 of everything before it
//! ```
//! All integers little-endian. The file's name is `index/<blake3 of the whole file>`.
//! Opening checks sizes and the fanout table (O(1) in the number of entries); the footer
//! checksum is checked by `verify` and whenever an index is merged or rebuilt. A damaged
//! entry cannot yield wrong data: every blob read is checked against its id.

use super::pack::{BlobCompression, BlobKind};
use super::{read_32, read_u32, read_u64};
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId};

const MAGIC: &[u8; 8] = b"SKINDEX\0";
/// Index layout version.
pub const INDEX_VERSION: u32 = 1;
/// Header size.
pub const HEADER_LEN: usize = 64;
/// Fanout table size.
pub const FANOUT_LEN: usize = 256 * 4;
/// One entry.
pub const ENTRY_LEN: usize = 52;

/// Where a blob is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlobLocation {
    pub pack: PackId,
    pub kind: BlobKind,
    pub compression: BlobCompression,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
}

/// Encodes an index file from `(id, location)` pairs; duplicates keep the first.
#[must_use]
pub fn encode(mut entries: Vec<(BlobId, BlobLocation)>) -> Vec<u8> {
    entries.sort_by_key(|a| a.0);
    entries.dedup_by(|a, b| a.0 == b.0);
    let mut packs: Vec<PackId> = entries.iter().map(|e| e.1.pack).collect();
    packs.sort();
    packs.dedup();
    let mut out = Vec::with_capacity(
        HEADER_LEN + FANOUT_LEN + packs.len() * 32 + entries.len() * ENTRY_LEN + 32,
    );
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&INDEX_VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    out.extend_from_slice(&u32::try_from(packs.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&[0u8; 32]);
    let mut fanout = [0u32; 256];
    for (id, _) in &entries {
        fanout[id.as_bytes()[0] as usize] += 1;
    }
    let mut acc = 0u32;
    for f in &mut fanout {
        acc += *f;
        out.extend_from_slice(&acc.to_le_bytes());
    }
    for p in &packs {
        out.extend_from_slice(p.as_bytes());
    }
    for (id, loc) in &entries {
        let pack_no = u32::try_from(packs.binary_search(&loc.pack).unwrap_or(0)).unwrap_or(0);
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(&pack_no.to_le_bytes());
        out.extend_from_slice(&loc.offset.to_le_bytes());
        out.extend_from_slice(&loc.length.to_le_bytes());
        out.extend_from_slice(&loc.raw_length.to_le_bytes());
        out.push(loc.kind as u8);
        out.push(loc.compression as u8);
        out.extend_from_slice(&[0, 0]);
    }
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// A checked view of an index file's layout; lookups read the bytes it was checked on.
#[derive(Clone, Copy, Debug)]
pub struct IndexLayout {
    count: usize,
    pack_count: usize,
}

impl IndexLayout {
    /// Checks the header, sizes and fanout of `b` (O(1) in the number of entries).
    pub fn parse(b: &[u8], object: &str) -> Result<Self> {
        if b.len() < HEADER_LEN + FANOUT_LEN + 32 || &b[..8] != MAGIC {
            return Err(Error::corrupt(object, "not an index file (header missing)"));
        }
        let version = read_u32(b, 8);
        if version != INDEX_VERSION {
            return Err(Error::UnsupportedFormat {
                object: object.to_owned(),
                found: version,
                supported: INDEX_VERSION,
            });
        }
        let count = read_u64(b, 16);
        let pack_count = u64::from(read_u32(b, 24));
        let expected = (HEADER_LEN + FANOUT_LEN + 32) as u128
            + u128::from(pack_count) * 32
            + u128::from(count) * ENTRY_LEN as u128;
        if expected != b.len() as u128 {
            return Err(Error::corrupt(
                object,
                format!(
                    "header describes {expected} bytes but the file has {}",
                    b.len()
                ),
            ));
        }
        let mut prev = 0u32;
        for i in 0..256 {
            let f = read_u32(b, HEADER_LEN + i * 4);
            if f < prev {
                return Err(Error::corrupt(object, "fanout table is not monotonic"));
            }
            prev = f;
        }
        if u64::from(prev) != count {
            return Err(Error::corrupt(
                object,
                "fanout table does not match the entry count",
            ));
        }
        // Both fit in usize: they were bounded by the file length above.
        Ok(IndexLayout {
            count: usize::try_from(count).unwrap_or(0),
            pack_count: usize::try_from(pack_count).unwrap_or(0),
        })
    }

    /// Number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the index has no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn entries_at(&self) -> usize {
        HEADER_LEN + FANOUT_LEN + self.pack_count * 32
    }

    /// Checks the footer checksum (reads the whole file).
    pub fn check_sum(b: &[u8], object: &str) -> Result<()> {
        if b.len() < 32 {
            return Err(Error::corrupt(object, "index file too short"));
        }
        let (body, sum) = b.split_at(b.len() - 32);
        if blake3::hash(body).as_bytes() == sum {
            Ok(())
        } else {
            Err(Error::corrupt(object, "index checksum mismatch"))
        }
    }

    /// Id of entry `i` (`i < len()`).
    #[must_use]
    pub fn id_at(&self, b: &[u8], i: usize) -> BlobId {
        BlobId::from_bytes(read_32(b, self.entries_at() + i * ENTRY_LEN))
    }

    /// Decodes entry `i`; `None` if it names a pack or kind that does not exist.
    #[must_use]
    pub fn entry_at(&self, b: &[u8], i: usize) -> Option<(BlobId, BlobLocation)> {
        let at = self.entries_at() + i * ENTRY_LEN;
        let pack_no = read_u32(b, at + 32) as usize;
        if pack_no >= self.pack_count {
            return None;
        }
        let pack = PackId::from_bytes(read_32(b, HEADER_LEN + FANOUT_LEN + pack_no * 32));
        Some((
            BlobId::from_bytes(read_32(b, at)),
            BlobLocation {
                pack,
                offset: read_u32(b, at + 36),
                length: read_u32(b, at + 40),
                raw_length: read_u32(b, at + 44),
                kind: BlobKind::from_u8(b[at + 48])?,
                compression: BlobCompression::from_u8(b[at + 49])?,
            },
        ))
    }

    /// Binary search for `id`, narrowed by the fanout table.
    #[must_use]
    pub fn find(&self, b: &[u8], id: &BlobId) -> Option<usize> {
        let first = id.as_bytes()[0] as usize;
        let hi = read_u32(b, HEADER_LEN + first * 4) as usize;
        let lo = if first == 0 {
            0
        } else {
            read_u32(b, HEADER_LEN + (first - 1) * 4) as usize
        };
        let (mut lo, mut hi) = (lo, hi.min(self.count));
        let base = self.entries_at();
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let at = base + mid * ENTRY_LEN;
            match b[at..at + 32].cmp(&id.as_bytes()[..]) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// The pack ids this index references.
    #[must_use]
    pub fn packs(&self, b: &[u8]) -> Vec<PackId> {
        (0..self.pack_count)
            .map(|i| PackId::from_bytes(read_32(b, HEADER_LEN + FANOUT_LEN + i * 32)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(n: u8) -> BlobLocation {
        BlobLocation {
            pack: PackId::of(&[n % 3]),
            kind: BlobKind::Data,
            compression: BlobCompression::Raw,
            offset: u32::from(n),
            length: 10,
            raw_length: 10,
        }
    }

    #[test]
    fn encode_find_roundtrip() {
        let entries: Vec<_> = (0..200u8).map(|n| (BlobId::of(&[n]), loc(n))).collect();
        let bytes = encode(entries.clone());
        let l = IndexLayout::parse(&bytes, "i").expect("parse");
        IndexLayout::check_sum(&bytes, "i").expect("sum");
        assert_eq!(l.len(), 200);
        assert_eq!(l.packs(&bytes).len(), 3);
        for (id, want) in &entries {
            let i = l.find(&bytes, id).expect("present");
            assert_eq!(l.entry_at(&bytes, i), Some((*id, *want)));
        }
        assert!(l.find(&bytes, &BlobId::of(b"absent")).is_none());
        let mut bad = bytes.clone();
        bad[HEADER_LEN + 4] = 0xff;
        assert!(IndexLayout::parse(&bad, "i").is_err());
        assert!(IndexLayout::parse(&bytes[..100], "i").is_err());
    }
}
