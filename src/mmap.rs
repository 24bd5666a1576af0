//! The one place that memory-maps files: index files.
//!
//! Invariant: only immutable files are mapped (index files never change once written). Source
//! files are never mapped: a live database rewrites them in place, and a chunk must be hashed
//! and stored from one copy of its bytes (see `source`).
#![expect(
    unsafe_code,
    reason = "memory-mapping is the documented exception to forbid(unsafe)"
)]

use std::fs::File;

use memmap2::{Mmap, MmapOptions};

/// Maps a whole immutable file read-only.
pub fn map_immutable(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: index files are written once under a content-addressed name and never modified
    // in place; deletion (by merge or prune) unlinks the name, which leaves this mapping valid.
    unsafe { MmapOptions::new().map(file) }
}
