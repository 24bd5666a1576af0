//! Reading a source file: opened without following links, only its data extents read (holes
//! skipped), in windows cut by the chunker, each window's chunks hashed in parallel.
//!
//! Must not: decide whether a file is captured; that is `capture`'s.

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rayon::prelude::*;

use super::ctx::{Ctx, Prepared};
use crate::error::{Error, Result};
use crate::format::manifest::{ChunkRef, Extent};
use crate::hasher::{FileCrc, PAR_THRESHOLD};
use crate::source::{data_extents, holes_of, read_window};

pub(super) fn open_source(path: &Path) -> std::io::Result<File> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true).custom_flags(libc_flags());
    o.open(path)
}

fn libc_flags() -> i32 {
    // O_NOFOLLOW: the walk saw a regular file; never follow a symlink swapped in since.
    // O_NOCTTY | O_NONBLOCK: a fifo swapped in cannot block or take the terminal.
    (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::NONBLOCK)
        .bits()
        .cast_signed()
}

/// The operation an error of reading a source file names (and only such an error).
pub(super) const READ_OP: &str = "read source file";

pub(super) struct FileContent {
    pub(super) chunks: Vec<ChunkRef>,
    pub(super) holes: Vec<Extent>,
    pub(super) crc: u32,
    pub(super) data_bytes: u64,
}

/// Reads and stores a file's content; `Ok(None)` when the file shrank under the read.
pub(super) fn read_content(
    ctx: &Ctx<'_>,
    file: &File,
    path: &Path,
    size: u64,
    tee: Option<&File>,
) -> Result<Option<FileContent>> {
    let read_err = |e: std::io::Error| Error::io(READ_OP, path, e);
    let extents = data_extents(file, size).map_err(read_err)?;
    let holes: Vec<Extent> = holes_of(&extents, size)
        .into_iter()
        .map(|(offset, len)| Extent { offset, len })
        .collect();
    let mut buf = crate::source::take_buffer();
    let result = read_extents(ctx, file, path, size, tee, &extents, &mut buf);
    crate::source::put_buffer(buf);
    Ok(result?.map(|(chunks, crc, data_bytes)| FileContent {
        chunks,
        holes,
        crc,
        data_bytes,
    }))
}

/// Chunks, hashes and stores the data extents through one reusable buffer, so each chunk is
/// hashed, stored and copied for the stages from the same bytes.
fn read_extents(
    ctx: &Ctx<'_>,
    file: &File,
    path: &Path,
    size: u64,
    tee: Option<&File>,
    extents: &[(u64, u64)],
    win: &mut Vec<u8>,
) -> Result<Option<(Vec<ChunkRef>, u32, u64)>> {
    let read_err = |e: std::io::Error| Error::io(READ_OP, path, e);
    let mut crc = FileCrc::new();
    let mut chunks = Vec::new();
    let mut pos = 0u64;
    let mut data_bytes = 0u64;
    for &(off, len) in extents {
        if off > pos {
            crc.append_zeros(off - pos);
        }
        let end = off + len;
        let mut at = off;
        while at < end {
            if ctx.progress.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let wlen = usize::try_from(end - at)
                .unwrap_or(usize::MAX)
                .min(ctx.window);
            match read_window(file, at, wlen, win) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(read_err(e)),
            }
            let win: &[u8] = win;
            let at_end = at + wlen as u64 == end;
            let cuts = ctx.chunker.cuts(win, at_end);
            let p = cuts.last().map_or(0, |&(s, n)| s + n);
            let mut prepared: Vec<Prepared> = if p >= PAR_THRESHOLD && cuts.len() > 1 {
                cuts.par_iter()
                    .map(|&(s, n)| ctx.prepare_chunk(&win[s..s + n]))
                    .collect::<Result<_>>()?
            } else {
                cuts.iter()
                    .map(|&(s, n)| ctx.prepare_chunk(&win[s..s + n]))
                    .collect::<Result<_>>()?
            };
            ctx.store_chunks(win, &cuts, &mut prepared)?;
            for pc in &prepared {
                crc.append(pc.crc, u64::from(pc.cref.len));
                chunks.push(pc.cref);
            }
            if let Some(t) = tee {
                std::os::unix::fs::FileExt::write_all_at(t, &win[..p], at)
                    .map_err(|e| Error::io("write the stage copy of", path, e))?;
            }
            at += p as u64;
            data_bytes += p as u64;
            ctx.progress.advance(p as u64, 0);
            if p == 0 {
                return Err(Error::corrupt(
                    format!("chunker parameters of {}", ctx.repo.backend().location()),
                    "no chunk boundary within a full window; check the repository config",
                ));
            }
        }
        pos = end;
    }
    if size > pos {
        crc.append_zeros(size - pos);
    }
    Ok(Some((chunks, crc.finalize(), data_bytes)))
}

/// Logical size implied by a file node's chunks and holes (for checks elsewhere).
#[must_use]
pub fn implied_size(chunks: &[ChunkRef], holes: &[Extent]) -> u64 {
    chunks.iter().map(|c| u64::from(c.len)).sum::<u64>() + holes.iter().map(|h| h.len).sum::<u64>()
}
