//! File content from the repository: writing a file node's bytes into a real file.
//!
//! Owns: [`write_content`] (a file node's chunks read in runs, decoded, checked and written at
//! their logical offsets, sparse where the node has holes), [`create_private`] (the one way a
//! file to be filled is created) and [`materialize`] (both together, for a caller that only
//! needs the bytes on disk). Restore writes every file through here; verify hands the format
//! stages files made here.
//!
//! Invariants: every chunk is checked against its id and its length, and the whole file
//! against its size and CRC32, before [`write_content`] returns `Ok`; damage is reported
//! against the file it breaks (`file '<path>'`); chunks stored back to back in one pack are
//! fetched with one ranged read of at most `RUN_BYTES` stored bytes, one run in flight per
//! worker.
//!
//! Must not: know about verbs. It does not walk trees, set owners, modes or times, choose
//! paths, or decide what a failure means for a restore or a verification; it writes one
//! file's content and says whether it is right.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::format::index_file::BlobLocation;
use crate::format::keys;
use crate::format::manifest::{ChunkRef, Extent, Node, NodeKind};
use crate::hasher::FileCrc;
use crate::id::PackId;
use crate::progress::Progress;
use crate::repository::Repository;

/// Dense files at least this large are preallocated before their chunks are written.
const PREALLOCATE_FROM: u64 = 1 << 20;

/// Largest ranged read of a restore: chunks stored back to back in one pack are fetched
/// together up to this many stored bytes (one run in flight per worker bounds memory; on S3
/// a run stays one GET, below the size at which a range is split into parts).
const RUN_BYTES: u64 = 2 << 20;

/// Creates `dest` for writing: it must not exist (`O_EXCL`), is never a symlink followed
/// (`O_NOFOLLOW`), and is private (0600) until its metadata is restored.
pub fn create_private(dest: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits().cast_signed())
        .open(dest)
        .map_err(|e| Error::io("create", dest, e))
}

/// Writes the content of file `node` (shown as `display`) into a new file at `dest`,
/// checked like a restore (used to hand stages a real file).
pub fn materialize(repo: &Repository, node: &Node, display: &str, dest: &Path) -> Result<()> {
    let file = create_private(dest)?;
    write_content(
        repo,
        &file,
        dest,
        node,
        display,
        &crate::progress::NoProgress,
    )
    .map(|_| ())
}

/// A range of one pack read ahead for several files (a restore's batch of small files stored
/// back to back): a run that lies inside it is taken from it, not read again.
pub struct Prefetched {
    pub pack: PackId,
    pub start: u64,
    pub bytes: Vec<u8>,
}

impl Prefetched {
    /// A copy of `len` bytes at `offset` of `pack`, when this range holds them (a copy: the
    /// run is opened in place, and two files may share a chunk).
    fn take(&self, pack: &PackId, offset: u64, len: u64) -> Option<Vec<u8>> {
        if *pack != self.pack || offset < self.start {
            return None;
        }
        let from = usize::try_from(offset - self.start).ok()?;
        let n = usize::try_from(len).ok()?;
        self.bytes
            .get(from..from.checked_add(n)?)
            .map(<[u8]>::to_vec)
    }
}

/// The one ranged read that holds all of file `node`'s chunks, when there is one (every chunk
/// in one pack, back to back, at most `RUN_BYTES` together): where a restore can batch the
/// file with its neighbours in the pack.
#[must_use]
pub fn single_read(repo: &Repository, node: &Node) -> Option<(PackId, u64, u64)> {
    let NodeKind::File { chunks, .. } = &node.kind else {
        return None;
    };
    match plan_runs(repo, chunks).as_slice() {
        [one] => one.read,
        _ => None,
    }
}

/// Writes a file node's content into `file` (created empty at `path`): sparse where the node
/// has holes, every chunk checked against its id, the whole file against its size and CRC32.
/// Returns the data bytes written.
pub fn write_content(
    repo: &Repository,
    file: &File,
    path: &Path,
    node: &Node,
    display: &str,
    progress: &dyn Progress,
) -> Result<u64> {
    write_content_with(repo, file, path, node, display, progress, None)
}

/// [`write_content`], taking the runs that `ahead` holds from it instead of the store.
pub fn write_content_with(
    repo: &Repository,
    file: &File,
    path: &Path,
    node: &Node,
    display: &str,
    progress: &dyn Progress,
    ahead: Option<&Prefetched>,
) -> Result<u64> {
    let NodeKind::File {
        crc32,
        chunks,
        holes,
    } = &node.kind
    else {
        return Ok(0);
    };
    let size = node.size;
    if !holes.is_empty() {
        file.set_len(size).map_err(|e| Error::io("size", path, e))?;
    } else if size >= PREALLOCATE_FROM {
        // A dense file written by parallel chunk writes: reserve it in one extent first, so
        // out-of-order writes do not fragment it. Filesystems without fallocate just skip it.
        let _ = rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, size);
    }
    let writer = Writer {
        repo,
        file,
        path,
        display,
        progress,
        chunks,
        positions: chunk_positions(chunks, holes),
        ahead,
    };
    let runs = plan_runs(repo, chunks);
    let crcs: Vec<u32> = if runs.len() > 1 {
        runs.par_iter()
            .map(|r| writer.write_run(r))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect()
    } else {
        runs.iter()
            .map(|r| writer.write_run(r))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect()
    };
    writer.check_whole(&crcs, holes, size, *crc32)
}

/// Logical offset of every chunk, given the holes between data extents.
fn chunk_positions(chunks: &[ChunkRef], holes: &[Extent]) -> Vec<u64> {
    let mut out = Vec::with_capacity(chunks.len());
    let mut pos = 0u64;
    let mut h = holes.iter().peekable();
    for c in chunks {
        while let Some(hole) = h.peek() {
            if hole.offset <= pos {
                pos = pos.max(hole.offset + hole.len);
                h.next();
            } else {
                break;
            }
        }
        out.push(pos);
        pos += u64::from(c.len);
    }
    out
}

/// Consecutive chunks of a file (by index) and, when they lie back to back in one pack, the
/// range that holds them all.
struct Run {
    chunks: std::ops::Range<usize>,
    /// Pack, offset and length of the one read; `None`: read chunk by chunk.
    read: Option<(PackId, u64, u64)>,
    /// The chunks' locations, in order (empty without `read`).
    locs: Vec<BlobLocation>,
}

/// Splits a file's chunks into runs: each run is either one chunk the index does not locate
/// (read on its own, so the usual lookup and error apply) or chunks that follow each other in
/// one pack, at most [`RUN_BYTES`] stored bytes together (a single larger chunk is a run alone).
fn plan_runs(repo: &Repository, chunks: &[ChunkRef]) -> Vec<Run> {
    // The index as loaded; a chunk it lacks is left to `Repository::read_blob`, which looks
    // into marked packs and reloads the index (once per such chunk, when it is read).
    let index = repo.index();
    let mut runs: Vec<Run> = Vec::new();
    for (k, c) in chunks.iter().enumerate() {
        let Some(loc) = index.get(&c.id) else {
            runs.push(Run {
                chunks: k..k + 1,
                read: None,
                locs: Vec::new(),
            });
            continue;
        };
        let (off, len) = (u64::from(loc.offset), u64::from(loc.length));
        if let Some(Run {
            chunks: range,
            read: Some((pack, start, run_len)),
            locs,
        }) = runs.last_mut()
            && *pack == loc.pack
            && *start + *run_len == off
            && *run_len + len <= RUN_BYTES
        {
            range.end = k + 1;
            *run_len += len;
            locs.push(loc);
            continue;
        }
        runs.push(Run {
            chunks: k..k + 1,
            read: Some((loc.pack, off, len)),
            locs: vec![loc],
        });
    }
    runs
}

/// One file being written: where its chunks go and how a failure is named.
struct Writer<'a> {
    repo: &'a Repository,
    file: &'a File,
    path: &'a Path,
    display: &'a str,
    progress: &'a dyn Progress,
    chunks: &'a [ChunkRef],
    /// The logical offset of each chunk.
    positions: Vec<u64>,
    /// A range read ahead that may hold this file's runs.
    ahead: Option<&'a Prefetched>,
}

impl Writer<'_> {
    /// Damage is reported against the file it breaks; other failures (a missing pack, an I/O
    /// error) keep their own cause and advice.
    fn blame(&self, c: &ChunkRef, e: Error) -> Error {
        match e {
            Error::HashMismatch { .. } | Error::Corrupt { .. } => Error::corrupt(
                format!("file '{}'", self.display),
                format!("chunk {} does not match its id", c.id.short()),
            ),
            e if e.is_not_found() => Error::corrupt(
                format!("file '{}'", self.display),
                format!("chunk {} cannot be read: {e}", c.id.short()),
            ),
            other => other,
        }
    }

    /// Writes chunk `k`'s decoded bytes at its offset; returns their CRC32.
    fn put(&self, k: usize, data: &[u8]) -> Result<u32> {
        let c = &self.chunks[k];
        if data.len() != c.len as usize {
            return Err(Error::corrupt(
                format!("file '{}'", self.display),
                format!(
                    "chunk {} has {} bytes, the tree says {}",
                    c.id.short(),
                    data.len(),
                    c.len
                ),
            ));
        }
        self.file
            .write_all_at(data, self.positions[k])
            .map_err(|e| Error::io("write", self.path, e))?;
        self.progress.advance(data.len() as u64, 0);
        Ok(crc32fast::hash(data))
    }

    /// Chunk `k` read on its own (the usual lookup: index reload, marked packs).
    fn write_one(&self, k: usize) -> Result<u32> {
        let c = &self.chunks[k];
        let data = self.repo.read_blob(&c.id).map_err(|e| self.blame(c, e))?;
        self.put(k, &data)
    }

    /// Chunks stored back to back in one pack are fetched with one ranged read (a remote
    /// store pays per request); each is still decoded and checked against its id on its own.
    fn write_run(&self, run: &Run) -> Result<Vec<u32>> {
        let Some((pack, start, len)) = run.read else {
            return run.chunks.clone().map(|k| self.write_one(k)).collect();
        };
        let read = || match self.ahead.and_then(|a| a.take(&pack, start, len)) {
            Some(b) => Ok(b),
            None => self
                .repo
                .backend()
                .get_range(&keys::pack(&pack), start, len),
        };
        let mut bytes = match read() {
            Ok(b) if b.len() as u64 == len => b,
            // A pack gone (a prune repacked it meanwhile), short or unreadable: chunk by
            // chunk, in parallel, each looked up again (index reload, marked packs) and named
            // when it cannot be read.
            _ => {
                return run
                    .chunks
                    .clone()
                    .into_par_iter()
                    .map(|k| self.write_one(k))
                    .collect();
            }
        };
        let mut one = |(k, loc): (usize, &BlobLocation)| -> Result<u32> {
            let c = &self.chunks[k];
            // In bounds: the run's locations tile `start..start + len` exactly. Each blob is
            // opened in place in its own part of the buffer.
            let from = usize::try_from(u64::from(loc.offset) - start).unwrap_or(usize::MAX);
            let stored = bytes
                .get_mut(from..from.saturating_add(loc.length as usize))
                .unwrap_or_default();
            let data = crate::pack::decode_blob_in_place(self.repo.codec(), stored, loc, &c.id)
                .map_err(|e| self.blame(c, e))?;
            self.put(k, &data)
        };
        // One after another: a worker holds one run's buffer at a time (runs of a file and
        // files go in parallel), which bounds memory to a run per worker.
        run.chunks
            .clone()
            .zip(run.locs.iter())
            .map(&mut one)
            .collect()
    }

    /// The file CRC over the logical content (chunk CRCs and zero runs in file order) and the
    /// size, against the node's; returns the data bytes written.
    fn check_whole(&self, crcs: &[u32], holes: &[Extent], size: u64, crc32: u32) -> Result<u64> {
        let mut crc = FileCrc::new();
        let mut pos = 0u64;
        let mut written = 0u64;
        let mut hi = holes.iter().peekable();
        for ((c, &at), cc) in self.chunks.iter().zip(&self.positions).zip(crcs) {
            while let Some(h) = hi.peek() {
                if h.offset + h.len <= at {
                    crc.append_zeros(h.len);
                    pos = h.offset + h.len;
                    hi.next();
                } else {
                    break;
                }
            }
            if at != pos {
                return Err(Error::corrupt(
                    format!("file '{}'", self.display),
                    "chunks and holes overlap",
                ));
            }
            crc.append(*cc, u64::from(c.len));
            pos += u64::from(c.len);
            written += u64::from(c.len);
        }
        for h in hi {
            crc.append_zeros(h.len);
            pos = h.offset + h.len;
        }
        if pos != size {
            return Err(Error::corrupt(
                format!("file '{}'", self.display),
                format!("chunks and holes cover {pos} bytes, the file has {size}"),
            ));
        }
        let actual = crc.finalize();
        if actual != crc32 {
            return Err(Error::corrupt(
                format!("file '{}'", self.display),
                format!("restored CRC32 {actual:08x} differs from the recorded {crc32:08x}"),
            ));
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ChunkId;

    #[test]
    fn positions_skip_holes() {
        let c = |len| ChunkRef {
            id: ChunkId::of(b"x"),
            len,
        };
        let holes = [Extent { offset: 0, len: 10 }, Extent { offset: 15, len: 5 }];
        assert_eq!(chunk_positions(&[c(5), c(3)], &holes), vec![10, 20]);
        assert_eq!(chunk_positions(&[c(4)], &[]), vec![0]);
    }
}
