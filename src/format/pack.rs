//! Pack file layout.
//!
//! ```text
//! header   8 bytes   "SKPACK" | version u16 LE (1 plain, 2 sealed)
//! blobs    ...       each blob's stored bytes (zstd frame or raw; sealed: nonce | ciphertext | tag
//!                    of those bytes), back to back
//! entries  48 × n    id[32] | kind u8 | compression u8 | 0u16 | offset u32 | length u32 | raw_length u32
//!                    (sealed: the whole region sealed as one object, 48 × n + the scheme's
//!                    nonce and tag: 40 bytes for XAES-256-GCM and XChaCha20-Poly1305, 64 for
//!                    AEGIS-256X4; its length is what lies between `entries_offset` and the footer)
//! footer   48 bytes  blake3(entries region as stored)[32] | n u32 | entries_offset u32 | version u16 | 0u16 | "SKPE"
//! ```
//! All integers little-endian. `offset` and `length` are of the blob's bytes as stored (sealed
//! included); `raw_length` is of its plaintext. The pack id is the blake3 of the trailer
//! (entries region as stored + footer). The footer is fixed-size, so a reader fetches the
//! last 48 bytes, then the entries: the index can be rebuilt from packs alone.

use crate::error::{Error, Result};
use crate::id::BlobId;

use super::{read_32, read_u16, read_u32};

/// Pack header magic + version of a plain pack.
pub const HEADER: [u8; 8] = *b"SKPACK\x01\x00";
/// Pack header magic + version of a sealed pack.
pub const HEADER_SEALED: [u8; 8] = *b"SKPACK\x02\x00";
/// Size of the fixed footer.
pub const FOOTER_LEN: usize = 48;
/// Size of one trailer entry.
pub const ENTRY_LEN: usize = 48;
/// Pack layout version of a plain pack.
pub const PACK_VERSION: u16 = 1;
/// Pack layout version of a sealed pack (format 2).
pub const PACK_VERSION_SEALED: u16 = 2;
/// The fewest and the most bytes sealing adds to one object (a blob, or a sealed pack's entries
/// region) over the schemes: 40 (24-byte nonce, 16-byte tag) to 64 (32 and 32). The layout
/// does not name the scheme; the sealed region's length is the pack's, bounded by these.
pub const SEALED_OVERHEAD_RANGE: std::ops::RangeInclusive<u64> = 40..=64;
const FOOTER_MAGIC: &[u8; 4] = b"SKPE";

/// What a blob is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlobKind {
    /// A chunk of file content.
    Data = 0,
    /// A tree object (one directory).
    Tree = 1,
}

impl BlobKind {
    pub(crate) fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(BlobKind::Data),
            1 => Some(BlobKind::Tree),
            _ => None,
        }
    }
}

/// How a blob's bytes are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlobCompression {
    Raw = 0,
    Zstd = 1,
}

impl BlobCompression {
    pub(crate) fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(BlobCompression::Raw),
            1 => Some(BlobCompression::Zstd),
            _ => None,
        }
    }
}

/// One blob in a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PackEntry {
    pub id: BlobId,
    pub kind: BlobKind,
    pub compression: BlobCompression,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
}

impl PackEntry {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.id.as_bytes());
        out.push(self.kind as u8);
        out.push(self.compression as u8);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.length.to_le_bytes());
        out.extend_from_slice(&self.raw_length.to_le_bytes());
    }

    fn read(b: &[u8], object: &str) -> Result<Self> {
        let kind = BlobKind::from_u8(b[32])
            .ok_or_else(|| Error::corrupt(object, format!("unknown blob kind {}", b[32])))?;
        let compression = BlobCompression::from_u8(b[33])
            .ok_or_else(|| Error::corrupt(object, format!("unknown compression {}", b[33])))?;
        Ok(PackEntry {
            id: BlobId::from_bytes(read_32(b, 0)),
            kind,
            compression,
            offset: read_u32(b, 36),
            length: read_u32(b, 40),
            raw_length: read_u32(b, 44),
        })
    }
}

/// Encodes the entries and footer that end a plain pack whose blobs end at `entries_offset`.
#[must_use]
pub fn encode_trailer(entries: &[PackEntry], entries_offset: u32) -> Vec<u8> {
    let mut out = encode_entries(entries);
    let footer = encode_footer(&out, entries.len(), entries_offset, PACK_VERSION);
    out.extend_from_slice(&footer);
    out
}

/// The entries region of a pack, before any sealing.
#[must_use]
pub fn encode_entries(entries: &[PackEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY_LEN + FOOTER_LEN);
    for e in entries {
        e.write(&mut out);
    }
    out
}

/// The footer after `region`, the entries region as stored (sealed for version 2).
#[must_use]
pub fn encode_footer(
    region: &[u8],
    count: usize,
    entries_offset: u32,
    version: u16,
) -> [u8; FOOTER_LEN] {
    let mut out = [0u8; FOOTER_LEN];
    out[..32].copy_from_slice(blake3::hash(region).as_bytes());
    let n = u32::try_from(count).unwrap_or(u32::MAX);
    out[32..36].copy_from_slice(&n.to_le_bytes());
    out[36..40].copy_from_slice(&entries_offset.to_le_bytes());
    out[40..42].copy_from_slice(&version.to_le_bytes());
    out[44..48].copy_from_slice(FOOTER_MAGIC);
    out
}

/// What the footer says: where the entries are and how many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footer {
    pub entries_hash: [u8; 32],
    pub count: u32,
    pub entries_offset: u32,
    /// [`PACK_VERSION`] or [`PACK_VERSION_SEALED`].
    pub version: u16,
    /// Length of the entries region as stored: `count × 48`, or for a sealed pack what lies
    /// between `entries_offset` and the footer (checked against [`SEALED_OVERHEAD_RANGE`]).
    pub stored_entries_len: u64,
}

impl Footer {
    /// Whether the pack is sealed (its blobs and its entries region).
    #[must_use]
    pub fn sealed(&self) -> bool {
        self.version == PACK_VERSION_SEALED
    }

    /// Length of the entries region as stored.
    #[must_use]
    pub fn entries_len(&self) -> u64 {
        self.stored_entries_len
    }
}

/// Decodes the 48-byte footer of a pack of `pack_len` bytes.
pub fn decode_footer(b: &[u8], pack_len: u64, object: &str) -> Result<Footer> {
    if b.len() != FOOTER_LEN {
        return Err(Error::corrupt(object, "footer has the wrong size"));
    }
    if &b[44..48] != FOOTER_MAGIC {
        return Err(Error::corrupt(
            object,
            "footer magic missing (truncated pack?)",
        ));
    }
    let version = read_u16(b, 40);
    if version != PACK_VERSION && version != PACK_VERSION_SEALED {
        return Err(Error::UnsupportedFormat {
            object: object.to_owned(),
            found: u32::from(version),
            supported: u32::from(PACK_VERSION_SEALED),
        });
    }
    let count = read_u32(b, 32);
    let entries_offset = read_u32(b, 36);
    let plain = u64::from(count) * ENTRY_LEN as u64;
    let offset = u64::from(entries_offset);
    let region = pack_len.checked_sub(offset + FOOTER_LEN as u64);
    let fits = match region {
        _ if offset < HEADER.len() as u64 => false,
        None => false,
        Some(r) if version == PACK_VERSION_SEALED => r
            .checked_sub(plain)
            .is_some_and(|over| SEALED_OVERHEAD_RANGE.contains(&over)),
        Some(r) => r == plain,
    };
    let Some(stored_entries_len) = region.filter(|_| fits) else {
        let expected_len = offset + plain + FOOTER_LEN as u64;
        let detail = if version == PACK_VERSION_SEALED {
            format!(
                "footer describes {count} sealed entries from byte {offset}, which do not fit \
                 a pack of {pack_len} bytes"
            )
        } else {
            format!("footer describes {expected_len} bytes but the pack has {pack_len}")
        };
        return Err(Error::corrupt(object, detail));
    };
    Ok(Footer {
        entries_hash: read_32(b, 0),
        count,
        entries_offset,
        version,
        stored_entries_len,
    })
}

/// Checks the entries region as stored (its size and the footer's hash of it).
pub fn check_entries(stored: &[u8], footer: &Footer, object: &str) -> Result<()> {
    if stored.len() as u64 != footer.entries_len() {
        return Err(Error::corrupt(object, "entries region has the wrong size"));
    }
    if blake3::hash(stored).as_bytes() != &footer.entries_hash {
        return Err(Error::corrupt(object, "entries checksum mismatch"));
    }
    Ok(())
}

/// Decodes and checks the entries region of a plain pack described by `footer`.
pub fn decode_entries(b: &[u8], footer: &Footer, object: &str) -> Result<Vec<PackEntry>> {
    check_entries(b, footer, object)?;
    parse_entries(b, footer, object)
}

/// Decodes the entries of `plain` (a plain pack's region, or a sealed one's once opened):
/// `footer.count` entries, each lying inside the pack's data region.
pub fn parse_entries(plain: &[u8], footer: &Footer, object: &str) -> Result<Vec<PackEntry>> {
    if plain.len() as u64 != u64::from(footer.count) * ENTRY_LEN as u64 {
        return Err(Error::corrupt(object, "entries region has the wrong size"));
    }
    let mut out = Vec::with_capacity(footer.count as usize);
    for raw in plain.chunks_exact(ENTRY_LEN) {
        let e = PackEntry::read(raw, object)?;
        let end = u64::from(e.offset) + u64::from(e.length);
        if u64::from(e.offset) < HEADER.len() as u64 || end > u64::from(footer.entries_offset) {
            return Err(Error::corrupt(
                object,
                format!("blob {} lies outside the pack's data region", e.id.short()),
            ));
        }
        out.push(e);
    }
    Ok(out)
}

/// Checks a pack's header bytes.
pub fn check_header(b: &[u8], object: &str) -> Result<()> {
    if b.len() < HEADER.len() || b[..6] != HEADER[..6] {
        return Err(Error::corrupt(object, "pack header missing"));
    }
    Ok(())
}

/// Checks that a pack's header names the version its footer does.
pub fn check_header_version(b: &[u8], footer: &Footer, object: &str) -> Result<()> {
    check_header(b, object)?;
    if read_u16(b, 6) != footer.version {
        return Err(Error::corrupt(
            object,
            "header and footer name different pack versions",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_roundtrip() {
        let entries = vec![
            PackEntry {
                id: BlobId::of(b"a"),
                kind: BlobKind::Data,
                compression: BlobCompression::Zstd,
                offset: 8,
                length: 10,
                raw_length: 30,
            },
            PackEntry {
                id: BlobId::of(b"b"),
                kind: BlobKind::Tree,
                compression: BlobCompression::Raw,
                offset: 18,
                length: 5,
                raw_length: 5,
            },
        ];
        let t = encode_trailer(&entries, 23);
        let pack_len = 23 + t.len() as u64;
        let f = decode_footer(&t[t.len() - FOOTER_LEN..], pack_len, "p").expect("footer");
        assert_eq!(f.count, 2);
        let back = decode_entries(&t[..t.len() - FOOTER_LEN], &f, "p").expect("entries");
        assert_eq!(back, entries);
        assert!(decode_footer(&t[t.len() - FOOTER_LEN..], pack_len + 1, "p").is_err());
        let mut bad = t.clone();
        bad[3] ^= 0x40;
        assert!(decode_entries(&bad[..bad.len() - FOOTER_LEN], &f, "p").is_err());
    }

    /// A sealed pack's entries region is what lies between `entries_offset` and the footer:
    /// 48 bytes per entry plus 40 to 64 of nonce and tag (the schemes' range), nothing else.
    #[test]
    fn sealed_footer_takes_the_region_between_offset_and_footer() {
        let offset = 1000u32;
        for over in [39u64, 40, 52, 64, 65] {
            let region = 2 * ENTRY_LEN as u64 + over;
            let stored = vec![0u8; usize::try_from(region).expect("small")];
            let footer = encode_footer(&stored, 2, offset, PACK_VERSION_SEALED);
            let pack_len = u64::from(offset) + region + FOOTER_LEN as u64;
            let decoded = decode_footer(&footer, pack_len, "p");
            if SEALED_OVERHEAD_RANGE.contains(&over) {
                let f = decoded.expect("a region the schemes can seal");
                assert_eq!(f.entries_len(), region);
                check_entries(&stored, &f, "p").expect("its hash");
            } else {
                let err = decoded.expect_err("outside the schemes' range").to_string();
                assert!(err.contains("2 sealed entries from byte 1000"), "{err}");
            }
        }
        // A plain pack's region is exactly 48 bytes per entry.
        let stored = vec![0u8; 2 * ENTRY_LEN + 40];
        let footer = encode_footer(&stored, 2, offset, PACK_VERSION);
        let pack_len = u64::from(offset) + stored.len() as u64 + FOOTER_LEN as u64;
        assert!(decode_footer(&footer, pack_len, "p").is_err());
    }
}
