//! Reading source files: data extents (holes are never read) and windows of content.
//!
//! Owns: finding data extents with SEEK_DATA/SEEK_HOLE, and handing out the bytes of an
//! extent window by window: memory-mapped for large files, `pread` into a buffer for small.
//! Must not: chunk, hash or store anything.

use std::fs::File;
use std::io::{Read, Seek};

use rustix::fs::SeekFrom;
use rustix::io::Errno;

/// Windows at least this large are read through a memory map.
pub const MMAP_THRESHOLD: u64 = 1 << 20;
/// Size of one read window (must exceed the largest chunk).
pub const WINDOW: usize = 32 << 20;

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

/// Bytes of one window of a file.
pub enum Window {
    Mapped(memmap2::Mmap),
    Buffer(Vec<u8>),
}

impl std::ops::Deref for Window {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Window::Mapped(m) => m,
            Window::Buffer(b) => b,
        }
    }
}

/// Reads `len` bytes at `offset`: mapped when the file is large, else `pread`.
/// A file that shrank under the read gives `UnexpectedEof`.
pub fn read_window(file: &File, offset: u64, len: usize) -> std::io::Result<Window> {
    // Chosen by the window, not the file: the small data extents of a sparse file are
    // cheaper to pread than to map.
    if len as u64 >= MMAP_THRESHOLD {
        let now = file.metadata()?.len();
        if now < offset + len as u64 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "file shrank while being read",
            ));
        }
        let _ = rustix::fs::fadvise(
            file,
            offset,
            std::num::NonZeroU64::new(len as u64),
            rustix::fs::Advice::Sequential,
        );
        return crate::mmap::map_window(file, offset, len).map(Window::Mapped);
    }
    // read_to_end fills spare capacity without zeroing it first.
    let mut buf = Vec::with_capacity(len);
    let mut f = file;
    f.seek(std::io::SeekFrom::Start(offset))?;
    f.take(len as u64).read_to_end(&mut buf)?;
    if buf.len() < len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "file shrank while being read",
        ));
    }
    Ok(Window::Buffer(buf))
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
