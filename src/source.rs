//! Reading source files: data extents (holes are never read) and windows of content.
//!
//! Owns: finding data extents with SEEK_DATA/SEEK_HOLE, and handing out the bytes of an
//! extent window by window, copied into a reusable per-thread buffer.
//! Must not: chunk, hash or store anything.

use std::fs::File;
use std::io::{Read, Seek};

use rustix::fs::SeekFrom;
use rustix::io::Errno;

/// Size of one read window (at least twice the largest chunk is used).
pub const WINDOW: usize = 8 << 20;

/// Data extents `(offset, len)` of a file of `size` bytes, in order. Filesystems without
/// SEEK_DATA support report the whole file as data.
pub fn data_extents(file: &File, size: u64) -> std::io::Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let start = match rustix::fs::seek(file, SeekFrom::Data(pos)) {
            Ok(p) => p,
            Err(Errno::NXIO) => break,
            Err(Errno::INVAL | Errno::OPNOTSUPP) => return Ok(vec![(0, size)]),
            Err(e) => return Err(e.into()),
        };
        if start >= size {
            break;
        }
        let end = match rustix::fs::seek(file, SeekFrom::Hole(start)) {
            Ok(p) => p.min(size),
            Err(Errno::NXIO) => size,
            Err(e) => return Err(e.into()),
        };
        if end <= start {
            break;
        }
        out.push((start, end - start));
        pos = end;
    }
    Ok(out)
}

/// Holes of a file of `size` bytes given its data extents.
#[must_use]
pub fn holes_of(extents: &[(u64, u64)], size: u64) -> Vec<(u64, u64)> {
    let mut holes = Vec::new();
    let mut pos = 0;
    for &(off, len) in extents {
        if off > pos {
            holes.push((pos, off - pos));
        }
        pos = off + len;
    }
    if size > pos {
        holes.push((pos, size - pos));
    }
    holes
}

/// Reads `len` bytes at `offset` into `buf` (replacing its content; its allocation is
/// reused). A file that shrank under the read gives `UnexpectedEof`.
///
/// Source files are copied, never memory-mapped: a database rewrites its WAL in place while
/// it is captured, and a chunk must be hashed, stored and stage-checked from one and the same
/// copy of its bytes (a map would let them change between the hash and the store).
pub fn read_window(file: &File, offset: u64, len: usize, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.clear();
    buf.reserve(len);
    let _ = rustix::fs::fadvise(
        file,
        offset,
        std::num::NonZeroU64::new(len as u64),
        rustix::fs::Advice::Sequential,
    );
    let mut f = file;
    f.seek(std::io::SeekFrom::Start(offset))?;
    // read_to_end fills spare capacity without zeroing it first.
    f.take(len as u64).read_to_end(buf)?;
    if buf.len() < len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "file shrank while being read",
        ));
    }
    Ok(())
}

thread_local! {
    static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Takes this thread's reusable read buffer (give it back with [`put_buffer`]).
#[must_use]
pub fn take_buffer() -> Vec<u8> {
    BUFFER.with(|b| std::mem::take(&mut *b.borrow_mut()))
}

/// Returns a read buffer for the next [`take_buffer`] on this thread.
pub fn put_buffer(buf: Vec<u8>) {
    BUFFER.with(|b| *b.borrow_mut() = buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_file_extents_skip_holes() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("sparse");
        let f = File::create(&p).expect("create");
        f.set_len(64 << 20).expect("len");
        std::os::unix::fs::FileExt::write_all_at(&f, &[7u8; 8192], 8 << 20).expect("write");
        let size = f.metadata().expect("meta").len();
        let ext = data_extents(&f, size).expect("extents");
        let data: u64 = ext.iter().map(|e| e.1).sum();
        assert!(data < 1 << 20, "holes were reported as data: {ext:?}");
        assert!(
            ext.iter()
                .any(|&(o, l)| o <= 8 << 20 && o + l >= (8 << 20) + 8192)
        );
        let holes = holes_of(&ext, size);
        let hole_bytes: u64 = holes.iter().map(|h| h.1).sum();
        assert_eq!(hole_bytes + data, size);
    }
}
