//! The one place that memory-maps files (index files and source-file windows).
//!
//! Invariant: a mapping is only read, and only of files whose content the caller either owns
//! exclusively (index files are immutable once written) or re-validates (source windows are
//! hashed and checked for change after reading; a concurrent truncation of a mapped source
//! file is the one hazard mmap adds, see the SAFETY notes).
#![expect(
    unsafe_code,
    reason = "memory-mapping is the documented exception to forbid(unsafe)"
)]

use std::fs::File;

use memmap2::{Advice, Mmap, MmapOptions};

/// Maps a whole immutable file read-only.
pub fn map_immutable(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: index files are written once under a content-addressed name and never modified
    // in place; deletion (by merge or prune) unlinks the name, which leaves this mapping valid.
    unsafe { MmapOptions::new().map(file) }
}

/// Maps `len` bytes of a source file at `offset`, advising sequential access.
pub fn map_window(file: &File, offset: u64, len: usize) -> std::io::Result<Mmap> {
    // SAFETY: the file is only read through the returned slice. If another process truncates
    // the file while mapped, touching pages past the new end raises SIGBUS; callers map only
    // a range that `fstat` showed the file still covers immediately before mapping, which
    // narrows that to a race with a truncating writer (documented in docs/DESIGN.md as the
    // limit of mmap reads; windows under `source::MMAP_THRESHOLD` are read with `pread`).
    let map = unsafe { MmapOptions::new().offset(offset).len(len).map(file)? };
    let _ = map.advise(Advice::Sequential);
    Ok(map)
}
