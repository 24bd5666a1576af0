//! On-disk types only: their byte layouts, encoders and checked decoders.
//!
//! Owns: the framing of small objects (config, snapshot records), the pack layout, the index
//! file layout, and the tree / snapshot types. Decoders never panic and never allocate from an
//! unchecked length field: every length is bounded by the bytes actually present.
//! Must not: do I/O. `docs/DESIGN.md` describes each layout byte by byte.

pub mod gc;
pub mod index_file;
pub mod keys;
pub mod manifest;
pub mod pack;
pub mod repo_config;

use crate::error::{Error, Result};

/// The repository format of a plain repository (`init --encryption none`): objects stored as
/// they are. This build writes and reads it.
pub const REPO_FORMAT_VERSION: u32 = 1;
/// The repository format of an encrypted repository: every object sealed (see
/// [`crate::codec`]). This build writes and reads it.
pub const REPO_FORMAT_SEALED: u32 = 2;

/// Size of the framing around a small object: magic (8) + version (4) + checksum (32).
pub const FRAME_OVERHEAD: usize = 8 + 4 + 32;

/// Frames a small object: `magic[8] | version u32 LE | payload | blake3(magic..payload)[32]`.
#[must_use]
pub fn frame(magic: &[u8; 8], version: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + FRAME_OVERHEAD);
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(payload);
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// Checks magic, checksum and version of a framed object; returns the payload.
pub fn unframe<'a>(
    magic: &[u8; 8],
    supported: u32,
    bytes: &'a [u8],
    object: &str,
) -> Result<&'a [u8]> {
    if bytes.len() < FRAME_OVERHEAD {
        return Err(Error::corrupt(
            object,
            format!("only {} bytes", bytes.len()),
        ));
    }
    if &bytes[..8] != magic {
        return Err(Error::corrupt(object, "wrong magic bytes"));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    let actual = blake3::hash(body);
    if actual.as_bytes() != sum {
        return Err(Error::corrupt(object, "checksum mismatch"));
    }
    let version = read_u32(bytes, 8);
    if version != supported {
        return Err(Error::UnsupportedFormat {
            object: object.to_owned(),
            found: version,
            supported,
        });
    }
    Ok(&body[12..])
}

/// Little-endian u32 at `at`; callers check bounds first.
pub(crate) fn read_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

/// Little-endian u64 at `at`; callers check bounds first.
pub(crate) fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Little-endian u16 at `at`; callers check bounds first.
pub(crate) fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// 32 bytes at `at`; callers check bounds first.
pub(crate) fn read_32(b: &[u8], at: usize) -> [u8; 32] {
    let mut a = [0u8; 32];
    a.copy_from_slice(&b[at..at + 32]);
    a
}

/// Decodes a postcard payload, naming the object on failure.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(payload: &[u8], object: &str) -> Result<T> {
    postcard::from_bytes(payload).map_err(|e| Error::corrupt(object, format!("cannot decode: {e}")))
}

/// Encodes a value with postcard.
pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Serializing our own plain data types into a Vec cannot fail.
    postcard::to_stdvec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_roundtrip_and_damage() {
        let f = frame(b"SKTEST00", 1, b"payload");
        assert_eq!(unframe(b"SKTEST00", 1, &f, "t").expect("ok"), b"payload");
        let mut bad = f.clone();
        bad[13] ^= 1;
        assert!(matches!(
            unframe(b"SKTEST00", 1, &bad, "t"),
            Err(Error::Corrupt { .. })
        ));
        assert!(matches!(
            unframe(b"SKTEST00", 2, &f, "t"),
            Err(Error::UnsupportedFormat { found: 1, .. })
        ));
        assert!(unframe(b"SKTEST00", 1, &f[..10], "t").is_err());
        assert!(unframe(b"SKOTHER0", 1, &f, "t").is_err());
    }
}
