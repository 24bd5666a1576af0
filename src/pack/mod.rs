//! Writing and reading packs.
//!
//! Owns: [`PackWriter`] (appends blobs to a staged file, seals it by size into a pack and hands
//! it to a background uploader) and the reading helpers ([`read_blob`], [`read_pack_entries`]).
//!
//! Invariants:
//! - a blob's stored bytes are written before its trailer entry; a pack is uploaded whole with
//!   its trailer, so a reader never sees a pack without its entries;
//! - the pack id is the blake3 of the trailer (entries + footer); the stored bytes of every
//!   blob are checked by opening them (a sealed repository), decompressing them and hashing
//!   to the blob id;
//! - after any failed write or upload the writer is poisoned: later calls return
//!   `Error::Poisoned` and nothing of the failed pack is ever referenced by an index.

mod writer;

pub use writer::{NewBlob, PackWriter, SealedBlob};

use crate::backend::Backend;
use crate::codec::Codec;
use crate::crypto::SealKind;
use crate::error::{Error, Result};
use crate::format::index_file::BlobLocation;
use crate::format::keys;
use crate::format::pack::{
    BlobCompression, BlobKind, FOOTER_LEN, HEADER, PackEntry, check_entries, check_header_version,
    decode_footer, parse_entries,
};
use crate::format::repo_config::Compression;
use crate::id::{AsBlob, BlobId, PackId};

/// Size of the sample that decides whether a large chunk is worth compressing.
const SAMPLE: usize = 16 * 1024;

/// zstd-compresses `raw` (a blob about to be stored); `None` when compression is off or does
/// not shrink it.
#[must_use]
pub fn compress(c: Compression, raw: &[u8]) -> Option<Vec<u8>> {
    use std::cell::RefCell;
    thread_local! {
        static COMP: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    }
    let Compression::Zstd(level) = c else {
        return None;
    };
    COMP.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = zstd::bulk::Compressor::new(level).ok().map(|z| (level, z));
        }
        let (_, z) = slot.as_mut()?;
        // Incompressible-data heuristic: a large chunk whose middle 16 KiB does not shrink by
        // 1/16 is stored raw without compressing it all (random or already-compressed data).
        if raw.len() >= 4 * SAMPLE {
            let mid = raw.len() / 2 - SAMPLE / 2;
            let sample = z.compress(&raw[mid..mid + SAMPLE]).ok()?;
            if sample.len() + SAMPLE / 16 >= SAMPLE {
                return None;
            }
        }
        let out = z.compress(raw).ok()?;
        // Keep raw unless compression saves at least 1/32.
        (out.len() + raw.len() / 32 < raw.len()).then_some(out)
    })
}

/// Decodes stored blob bytes (opened first when the repository is sealed) and checks them
/// against `id`.
pub fn decode_blob(
    codec: &Codec,
    stored: &[u8],
    loc: &BlobLocation,
    id: &impl AsBlob,
) -> Result<Vec<u8>> {
    let id = &id.blob();
    match open_stored(codec, stored, loc, id)? {
        // A sealed raw blob was opened into a buffer of its own: check it, do not copy it.
        std::borrow::Cow::Owned(opened)
            if loc.compression == BlobCompression::Raw
                && opened.len() == loc.raw_length as usize =>
        {
            check_raw(codec, &opened, loc, id)?;
            Ok(opened)
        }
        opened => decode_opened(codec, &opened, loc, id),
    }
}

/// Opens a blob's stored bytes (a plain codec borrows them through).
fn open_stored<'a>(
    codec: &Codec,
    stored: &'a [u8],
    loc: &BlobLocation,
    id: &BlobId,
) -> Result<std::borrow::Cow<'a, [u8]>> {
    codec.open_blob(
        loc.kind,
        id,
        stored,
        &format!("blob {} in pack {}", id.short(), loc.pack.short()),
    )
}

/// Decompresses opened blob bytes and checks them against `id`.
fn decode_opened(codec: &Codec, stored: &[u8], loc: &BlobLocation, id: &BlobId) -> Result<Vec<u8>> {
    let object = || format!("blob {} in pack {}", id.short(), loc.pack.short());
    let raw = match loc.compression {
        BlobCompression::Raw => {
            if stored.len() != loc.raw_length as usize {
                return Err(Error::corrupt(
                    object(),
                    format!(
                        "{} stored bytes, the index says {}",
                        stored.len(),
                        loc.raw_length
                    ),
                ));
            }
            stored.to_vec()
        }
        BlobCompression::Zstd => {
            // No blob of its kind can be larger: a damaged or hostile length (here or in the
            // frame header) must not make a reader allocate gigabytes.
            let cap = match loc.kind {
                BlobKind::Data => MAX_DATA_BLOB,
                BlobKind::Tree => MAX_TREE_BLOB,
            };
            if loc.raw_length > cap {
                return Err(Error::corrupt(
                    object(),
                    format!(
                        "it declares {} bytes, more than any {} blob may hold ({cap})",
                        loc.raw_length,
                        if loc.kind == BlobKind::Data {
                            "data"
                        } else {
                            "tree"
                        }
                    ),
                ));
            }
            // Bound the allocation by what the frame itself declares, so a damaged length
            // field cannot ask for gigabytes.
            match zstd::zstd_safe::get_frame_content_size(stored) {
                Ok(Some(n)) if n == u64::from(loc.raw_length) => {}
                other => {
                    let declared = match other {
                        Ok(Some(n)) => format!("{n} bytes"),
                        Ok(None) => "no size".to_string(),
                        Err(_) => "an unreadable header".to_string(),
                    };
                    return Err(Error::corrupt(
                        object(),
                        format!(
                            "its zstd frame declares {declared}, the index says {} bytes",
                            loc.raw_length
                        ),
                    ));
                }
            }
            let raw = decompress_bounded(stored, loc.raw_length).map_err(|e| {
                Error::corrupt(
                    format!("blob {} in pack {}", id.short(), loc.pack.short()),
                    format!("cannot decompress: {e}"),
                )
            })?;
            if raw.len() != loc.raw_length as usize {
                return Err(Error::corrupt(
                    format!("blob {} in pack {}", id.short(), loc.pack.short()),
                    format!(
                        "decompressed to {} bytes, expected {}",
                        raw.len(),
                        loc.raw_length
                    ),
                ));
            }
            raw
        }
    };
    let actual = codec.blob_id(&raw);
    if actual != *id {
        return Err(Error::HashMismatch {
            id: format!("blob {id} in pack {}", loc.pack),
            actual: actual.to_hex(),
        });
    }
    Ok(raw)
}

/// The largest data blob: the chunker's largest cut (4 × the largest average, 4 MiB).
pub const MAX_DATA_BLOB: u32 = 16 << 20;
/// The largest tree blob a reader accepts (a directory of about two million entries).
pub const MAX_TREE_BLOB: u32 = 256 << 20;

/// Decompresses one zstd frame of at most `len` bytes. Small frames are decoded at once;
/// larger ones stream into a buffer that grows only as real output arrives, so a frame header
/// that lies about its size costs nothing.
fn decompress_bounded(stored: &[u8], len: u32) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    if len <= 1 << 20 {
        return zstd::bulk::decompress(stored, len as usize);
    }
    let mut out = Vec::with_capacity(1 << 20);
    zstd::stream::read::Decoder::new(stored)?
        .take(u64::from(len) + 1)
        .read_to_end(&mut out)?;
    Ok(out)
}

/// Decodes stored blob bytes and checks them against `id`, borrowing raw blobs of a plain
/// repository instead of copying them (the restore path, which writes them straight out).
pub fn decode_blob_cow<'a>(
    codec: &Codec,
    stored: &'a [u8],
    loc: &BlobLocation,
    id: &impl AsBlob,
) -> Result<std::borrow::Cow<'a, [u8]>> {
    let id = &id.blob();
    if !codec.is_sealed()
        && loc.compression == BlobCompression::Raw
        && stored.len() == loc.raw_length as usize
    {
        check_raw(codec, stored, loc, id)?;
        return Ok(std::borrow::Cow::Borrowed(stored));
    }
    decode_blob(codec, stored, loc, id).map(std::borrow::Cow::Owned)
}

/// [`decode_blob_cow`] on a buffer the caller owns and gives up: a sealed blob is opened in
/// place, so a raw one is borrowed, not copied (the restore path).
pub fn decode_blob_in_place<'a>(
    codec: &Codec,
    stored: &'a mut [u8],
    loc: &BlobLocation,
    id: &impl AsBlob,
) -> Result<std::borrow::Cow<'a, [u8]>> {
    let id = &id.blob();
    if !codec.is_sealed() {
        return decode_blob_cow(codec, stored, loc, id);
    }
    let opened = open_in_place(codec, stored, loc, id)?;
    if loc.compression == BlobCompression::Raw && opened.len() == loc.raw_length as usize {
        check_raw(codec, opened, loc, id)?;
        return Ok(std::borrow::Cow::Borrowed(opened));
    }
    decode_opened(codec, opened, loc, id).map(std::borrow::Cow::Owned)
}

/// [`check_blob_bytes`] on a buffer the caller owns and gives up (opened in place): the
/// CRC32 of the raw content, which is borrowed when it can be.
pub fn check_blob_bytes_in_place(
    codec: &Codec,
    stored: &mut [u8],
    loc: &BlobLocation,
    id: &impl AsBlob,
) -> Result<u32> {
    decode_blob_in_place(codec, stored, loc, id).map(|raw| crc32fast::hash(&raw))
}

fn open_in_place<'a>(
    codec: &Codec,
    stored: &'a mut [u8],
    loc: &BlobLocation,
    id: &BlobId,
) -> Result<&'a [u8]> {
    codec.open_blob_in_place(
        loc.kind,
        id,
        stored,
        &format!("blob {} in pack {}", id.short(), loc.pack.short()),
    )
}

/// Checks stored blob bytes against `id` and returns the CRC32 of the raw content, without
/// copying raw blobs (the verify path).
pub fn check_blob_bytes(
    codec: &Codec,
    stored: &[u8],
    loc: &BlobLocation,
    id: &impl AsBlob,
) -> Result<u32> {
    let id = &id.blob();
    let opened = open_stored(codec, stored, loc, id)?;
    if loc.compression == BlobCompression::Raw && opened.len() == loc.raw_length as usize {
        check_raw(codec, &opened, loc, id)?;
        return Ok(crc32fast::hash(&opened));
    }
    decode_opened(codec, &opened, loc, id).map(|raw| crc32fast::hash(&raw))
}

fn check_raw(codec: &Codec, raw: &[u8], loc: &BlobLocation, id: &BlobId) -> Result<()> {
    let actual = codec.blob_id(raw);
    if actual == *id {
        Ok(())
    } else {
        Err(Error::HashMismatch {
            id: format!("blob {id} in pack {}", loc.pack),
            actual: actual.to_hex(),
        })
    }
}

/// Reads one blob from its pack and checks it against its id.
pub fn read_blob(
    backend: &dyn Backend,
    codec: &Codec,
    id: &impl AsBlob,
    loc: &BlobLocation,
) -> Result<Vec<u8>> {
    let id = &id.blob();
    let (key, offset, len) = (
        keys::pack(&loc.pack),
        u64::from(loc.offset),
        u64::from(loc.length),
    );
    let stored = if loc.kind == BlobKind::Tree {
        backend.get_range_hot(&key, offset, len)?
    } else {
        backend.get_range(&key, offset, len)?
    };
    decode_stored(codec, stored, loc, id)
}

/// Reads one tree blob, `ranges[want]` of the tree ranges `ranges` of its pack (see
/// [`Backend::get_range_hot_among`]), and checks it against its id.
pub fn read_blob_among(
    backend: &dyn Backend,
    codec: &Codec,
    id: &impl AsBlob,
    loc: &BlobLocation,
    ranges: &[(u64, u64)],
    want: usize,
) -> Result<Vec<u8>> {
    let stored = backend.get_range_hot_among(&keys::pack(&loc.pack), ranges, want)?;
    decode_stored(codec, stored, loc, &id.blob())
}

/// A blob's stored bytes opened (when sealed), decompressed and checked against its id.
fn decode_stored(
    codec: &Codec,
    stored: Vec<u8>,
    loc: &BlobLocation,
    id: &BlobId,
) -> Result<Vec<u8>> {
    if !codec.is_sealed()
        && loc.compression == BlobCompression::Raw
        && stored.len() == loc.raw_length as usize
    {
        check_raw(codec, &stored, loc, id)?;
        return Ok(stored);
    }
    decode_blob(codec, &stored, loc, id)
}

/// Pack id implied by a trailer (entries + footer).
#[must_use]
pub fn pack_id_of_trailer(trailer: &[u8]) -> PackId {
    PackId::of(trailer)
}

/// Reads and checks the trailer of a pack of `size` bytes; the pack id must match it, and a
/// sealed pack's entries must open with the repository's keys.
pub fn read_pack_entries(
    backend: &dyn Backend,
    codec: &Codec,
    id: &PackId,
    size: u64,
) -> Result<Vec<PackEntry>> {
    let key = keys::pack(id);
    let object = format!("pack {id}");
    if size < (HEADER.len() + FOOTER_LEN) as u64 {
        return Err(Error::corrupt(&object, format!("only {size} bytes")));
    }
    let footer_bytes = backend.get_range(&key, size - FOOTER_LEN as u64, FOOTER_LEN as u64)?;
    let footer = decode_footer(&footer_bytes, size, &object)?;
    let entries_bytes =
        backend.get_range(&key, u64::from(footer.entries_offset), footer.entries_len())?;
    let mut trailer = entries_bytes.clone();
    trailer.extend_from_slice(&footer_bytes);
    let actual = pack_id_of_trailer(&trailer);
    if actual != *id {
        return Err(Error::HashMismatch {
            id: object,
            actual: actual.to_hex(),
        });
    }
    let header = backend.get_range(&key, 0, HEADER.len() as u64)?;
    check_header_version(&header, &footer, &object)?;
    check_entries(&entries_bytes, &footer, &object)?;
    if footer.sealed() != codec.is_sealed() {
        return Err(Error::corrupt(
            &object,
            if footer.sealed() {
                "it is sealed, and this repository is not encrypted"
            } else {
                "it is not sealed, and this repository is encrypted"
            },
        ));
    }
    let plain = codec.open(SealKind::PackTrailer, b"", &entries_bytes, &object)?;
    parse_entries(&plain, &footer, &object)
}

/// Location of an entry of pack `pack`.
#[must_use]
pub fn location(pack: PackId, e: &PackEntry) -> BlobLocation {
    BlobLocation {
        pack,
        kind: e.kind,
        compression: e.compression,
        offset: e.offset,
        length: e.length,
        raw_length: e.raw_length,
    }
}
