//! The one place that memory-maps files: index files, and the plaintext of sealed index files
//! spilled to an unlinked temporary file.
//!
//! Invariant: only immutable files are mapped (index files never change once written, and a
//! spilled file is written once before it is mapped and never named). Source
//! files are never mapped: a live database rewrites them in place, and a chunk must be hashed
//! and stored from one copy of its bytes (see `source`).
#![expect(
    unsafe_code,
    reason = "memory-mapping is the documented exception to forbid(unsafe)"
)]

use std::fs::File;

use std::io::Write;

use memmap2::{Mmap, MmapOptions, UncheckedAdvice};

/// Maps a whole immutable file read-only.
pub fn map_immutable(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: index files are written once under a content-addressed name and never modified
    // in place; deletion (by merge or prune) unlinks the name, which leaves this mapping valid.
    let map = unsafe { MmapOptions::new().map(file) }?;
    // Lookups jump around: no readahead around the page a fault needs. Only a hint (a kernel
    // that keeps the page cache in large folios still maps a whole folio on a fault); a
    // failure changes nothing.
    let _ = map.advise(memmap2::Advice::Random);
    Ok(map)
}

/// Writes `bytes` to an unlinked temporary file (in `TMPDIR`) and maps it: the bytes leave the
/// heap for the page cache, and only the pages in use count as this process's memory.
pub fn spill(bytes: Vec<u8>) -> std::io::Result<Mmap> {
    let mut file = tempfile::tempfile()?;
    file.write_all(&bytes)?;
    drop(bytes);
    map_immutable(&file)
}

/// Drops the pages of `map` from this process's page tables; they stay in the page cache and
/// come back on the next access. Bounds the resident set that scans and lookups over mapped
/// index files leave behind.
pub fn release(map: &Mmap) -> std::io::Result<()> {
    // SAFETY: every mapping made here is read-only, so no page of it was ever written:
    // MADV_DONTNEED only unmaps pages of the file, and a later access reads the same bytes
    // from the page cache (or the file) again. No reference into the mapping is invalidated.
    unsafe { map.unchecked_advise(UncheckedAdvice::DontNeed) }
}
