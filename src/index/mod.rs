//! The chunk index: blob id → place in a pack, over all index files of a repository.
//!
//! Owns: [`Index`] (opens every `index/*` file, memory-mapped when the backend is local, and
//! looks ids up by binary search), writing a new index file, merging many into one, and
//! rebuilding from pack trailers.
//!
//! Invariants:
//! - every entry of a committed index file points into a pack that was fully uploaded before
//!   the index file was written (commit order: packs → index → snapshot record);
//! - opening a plain repository's index costs O(number of index files), never O(number of
//!   entries) (a sealed file is opened, so it costs its bytes);
//! - a damaged index file is set aside (listed in [`Index::damaged`]) rather than failing the
//!   open: a missing entry only makes a chunk be stored again, and verify reports the damage.

use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::backend::Backend;
use crate::codec::Codec;
use crate::crypto::SealKind;
use crate::error::{Error, Result};
use crate::format::index_file::{self, BlobLocation, IndexLayout};
use crate::format::keys;
use crate::id::{AsBlob, BlobId, IndexId, PackId};

mod merged;
mod set;
pub use merged::{ENTRIES_PER_FILE, Merged, Occurrence, union, write_sorted};
pub use set::BlobSet;

enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// One opened index file.
pub struct IndexFile {
    id: IndexId,
    /// The plain bytes (a sealed file's once opened).
    bytes: Bytes,
    layout: IndexLayout,
    /// Whether the stored file is sealed (its name was checked against the stored bytes
    /// when it was opened; `bytes` are the plaintext).
    sealed: bool,
    /// The first and last ids of the file (`None` when empty): a lookup outside them is not
    /// searched (the files a merge writes hold disjoint ranges of ids).
    range: Option<(BlobId, BlobId)>,
    /// Accesses to a mapped file's pages, weighted (a lookup touches more pages than an entry
    /// read): every [`RELEASE_EVERY`] the mapped pages are released from the resident set.
    touches: AtomicU64,
}

/// Sealed index files larger than this are opened into an unlinked temporary file and
/// mapped, rather than held on the heap.
const SPILL_OVER: usize = 64 * 1024;

/// How many weighted accesses a mapped index file takes between releases of its pages: a
/// sequential scan keeps at most some 13 pages of each file resident, 64 lookups in a row
/// at most the pages they touched.
const RELEASE_EVERY: u64 = 1024;

/// The weight of a lookup (a binary search) and of reading one entry.
const LOOKUP_WEIGHT: u64 = 16;

impl IndexFile {
    /// Opens `index/<id>` (memory-mapped when local and plain; a sealed file is checked
    /// against its name, opened and held in memory).
    pub fn open(backend: &dyn Backend, codec: &Codec, id: IndexId) -> Result<Self> {
        let key = keys::index(&id);
        if codec.is_sealed() {
            let object = format!("index file {id}");
            let stored = backend.get(&key)?;
            let actual = IndexId::of(&stored);
            if actual != id {
                return Err(Error::HashMismatch {
                    id: object,
                    actual: actual.to_hex(),
                });
            }
            let plain = codec.open_vec(SealKind::Index, b"", stored, &object)?;
            let layout = IndexLayout::parse(&plain, &object)?;
            let bytes = if plain.len() > SPILL_OVER {
                Bytes::Mapped(crate::mmap::spill(plain).map_err(|e| {
                    Error::io(
                        "write an index file's plaintext to a temporary file in",
                        std::env::temp_dir(),
                        e,
                    )
                })?)
            } else {
                Bytes::Owned(plain)
            };
            return Ok(IndexFile::new(id, bytes, layout, true));
        }
        let bytes = match backend.local_path(&key) {
            Some(path) => {
                let f = File::open(&path).map_err(|e| Error::backend("open", &key, e))?;
                let len = f
                    .metadata()
                    .map_err(|e| Error::backend("stat", &key, e))?
                    .len();
                if len == 0 {
                    Bytes::Owned(Vec::new())
                } else {
                    Bytes::Mapped(
                        crate::mmap::map_immutable(&f)
                            .map_err(|e| Error::backend("map", &key, e))?,
                    )
                }
            }
            None => Bytes::Owned(backend.get(&key)?),
        };
        let layout = IndexLayout::parse(&bytes, &format!("index file {id}"))?;
        Ok(IndexFile::new(id, bytes, layout, false))
    }

    fn new(id: IndexId, bytes: Bytes, layout: IndexLayout, sealed: bool) -> Self {
        let range = (!layout.is_empty()).then(|| {
            (
                layout.id_at(&bytes, 0),
                layout.id_at(&bytes, layout.len() - 1),
            )
        });
        IndexFile {
            id,
            bytes,
            layout,
            sealed,
            range,
            touches: AtomicU64::new(0),
        }
    }

    /// Counts an access of `weight`; a mapped file's pages are released each time the count
    /// passes a multiple of [`RELEASE_EVERY`].
    fn touch(&self, weight: u64) {
        if let Bytes::Mapped(map) = &self.bytes {
            let before = self.touches.fetch_add(weight, Ordering::Relaxed);
            if before / RELEASE_EVERY != (before + weight) / RELEASE_EVERY {
                // Releasing is only about memory: a failure leaves the pages resident.
                let _ = crate::mmap::release(map);
            }
        }
    }

    /// The file's id.
    #[must_use]
    pub fn id(&self) -> IndexId {
        self.id
    }

    /// Number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.layout.len()
    }

    /// Whether it has no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.layout.is_empty()
    }

    /// Looks an id up.
    #[must_use]
    pub fn get(&self, id: &impl AsBlob) -> Option<BlobLocation> {
        let i = self.position(id)?;
        self.entry_at(i).map(|(_, l)| l)
    }

    /// The position of `id` among this file's entries (id order), when its entry decodes.
    #[must_use]
    pub fn position(&self, id: &impl AsBlob) -> Option<usize> {
        let id = id.blob();
        let (first, last) = self.range?;
        if id < first || id > last {
            return None;
        }
        self.touch(LOOKUP_WEIGHT);
        self.layout
            .find(&self.bytes, &id)
            .filter(|&i| self.entry_at(i).is_some())
    }

    /// The id at position `i` (`i < len`).
    #[must_use]
    pub fn id_at(&self, i: usize) -> BlobId {
        self.touch(1);
        self.layout.id_at(&self.bytes, i)
    }

    /// The entry at position `i` (`i < len`); `None` when it does not decode.
    #[must_use]
    pub fn entry_at(&self, i: usize) -> Option<(BlobId, BlobLocation)> {
        self.touch(1);
        self.layout.entry_at(&self.bytes, i)
    }

    /// Every entry in id order; entries that do not decode are reported as `Err(position)`.
    pub fn entries(
        &self,
    ) -> impl Iterator<Item = std::result::Result<(BlobId, BlobLocation), usize>> + '_ {
        (0..self.layout.len()).map(move |i| self.entry_at(i).ok_or(i))
    }

    /// Checks the whole file against its footer checksum and its name.
    pub fn check(&self) -> Result<()> {
        let object = format!("index file {}", self.id);
        IndexLayout::check_sum(&self.bytes, &object)?;
        let actual = IndexId::of(&self.bytes);
        if !self.sealed && actual != self.id {
            return Err(Error::HashMismatch {
                id: object,
                actual: actual.to_hex(),
            });
        }
        for (i, e) in self.entries().enumerate() {
            if e.is_err() {
                return Err(Error::corrupt(
                    &object,
                    format!("entry {i} does not decode"),
                ));
            }
            if i > 0 && self.layout.id_at(&self.bytes, i - 1) >= self.layout.id_at(&self.bytes, i) {
                return Err(Error::corrupt(
                    &object,
                    format!("entry {i} is out of order"),
                ));
            }
        }
        Ok(())
    }

    /// Packs this file references.
    #[must_use]
    pub fn packs(&self) -> Vec<PackId> {
        self.layout.packs(&self.bytes)
    }
}

/// All index files of a repository.
pub struct Index {
    files: Vec<Arc<IndexFile>>,
    damaged: Vec<(String, Error)>,
}

/// How many index files trigger a merge after a snapshot.
pub const MERGE_THRESHOLD: usize = 32;

impl Index {
    /// An index with no files.
    #[must_use]
    pub fn empty() -> Self {
        Index {
            files: Vec::new(),
            damaged: Vec::new(),
        }
    }

    /// Opens every index file of the repository. Writers write a replacement before they
    /// delete what it replaces, so when a listed file has vanished before it could be opened
    /// (a merge or a prune replaced it), listing again finds the replacement.
    pub fn open(backend: &dyn Backend, codec: &Codec) -> Result<Self> {
        Self::reopen(backend, codec, &Index::empty())
    }

    /// [`Index::open`] that takes the files `previous` has already opened from it rather
    /// than reading them again (an index file is named by its bytes and never changes): a
    /// reload costs the files that are new, and holds each file once.
    pub fn reopen(backend: &dyn Backend, codec: &Codec, previous: &Index) -> Result<Self> {
        for _ in 0..16 {
            if let (index, false) = Self::open_listed(backend, codec, previous)? {
                return Ok(index);
            }
        }
        // Replaced sixteen times in a row: no whole view could be read.
        Err(Error::Locked(format!(
            "the index files of {} kept being replaced while they were read; retry",
            backend.location()
        )))
    }

    /// One listing and open; the flag says whether a listed file vanished meanwhile.
    fn open_listed(backend: &dyn Backend, codec: &Codec, previous: &Index) -> Result<(Self, bool)> {
        let mut vanished = false;
        let mut files = Vec::new();
        let mut damaged = Vec::new();
        for obj in backend.list(keys::Kind::Index.prefix())? {
            let name = &obj.key[keys::Kind::Index.prefix().len()..];
            let id: IndexId = match name.parse() {
                Ok(id) => id,
                Err(_) => {
                    damaged.push((
                        obj.key.clone(),
                        Error::corrupt(&obj.key, "name is not an index id"),
                    ));
                    continue;
                }
            };
            if let Some(f) = previous.files.iter().find(|f| f.id == id) {
                files.push(Arc::clone(f));
                continue;
            }
            match IndexFile::open(backend, codec, id) {
                Ok(f) => files.push(Arc::new(f)),
                Err(e) if e.is_not_found() => vanished = true,
                // A local failure (no room in TMPDIR for a sealed file's plaintext) says
                // nothing about the stored file: it stops the open rather than set it aside.
                Err(e @ Error::Io { .. }) => return Err(e),
                Err(e) => damaged.push((obj.key.clone(), e)),
            }
        }
        // Larger files first: most lookups end in the first one.
        files.sort_by_key(|f| std::cmp::Reverse(f.len()));
        Ok((Index { files, damaged }, vanished))
    }

    /// Looks an id up in every file.
    #[must_use]
    pub fn get(&self, id: &impl AsBlob) -> Option<BlobLocation> {
        let id = &id.blob();
        self.files.iter().find_map(|f| f.get(id))
    }

    /// Where [`Index::get`] finds `id`: the number of the file (in [`Index::files`] order)
    /// and the position in it. Need: per-blob state kept in arrays by position (8 bytes a blob),
    /// not in a map by id.
    #[must_use]
    pub fn position(&self, id: &impl AsBlob) -> Option<(usize, usize)> {
        position_in(&self.files, &id.blob())
    }

    /// Whether `id` is stored.
    #[must_use]
    pub fn contains(&self, id: &impl AsBlob) -> bool {
        self.get(id).is_some()
    }

    /// The opened files.
    #[must_use]
    pub fn files(&self) -> &[Arc<IndexFile>] {
        &self.files
    }

    /// Index files that could not be opened, with the reason.
    #[must_use]
    pub fn damaged(&self) -> &[(String, Error)] {
        &self.damaged
    }

    /// Total entries over all files (an id may appear in more than one).
    #[must_use]
    pub fn total_entries(&self) -> usize {
        self.files.iter().map(|f| f.len()).sum()
    }

    /// Every (id, location), first file wins for duplicates; loads all entries into memory.
    #[must_use]
    pub fn all_entries(&self) -> HashMap<BlobId, BlobLocation> {
        let mut out = HashMap::with_capacity(self.total_entries());
        for f in &self.files {
            for (id, loc) in f.entries().flatten() {
                out.entry(id).or_insert(loc);
            }
        }
        out
    }
}

/// Where `id` is found in `files`: the number of the first file holding a readable entry for
/// it, and the position in that file.
fn position_in(files: &[Arc<IndexFile>], id: &BlobId) -> Option<(usize, usize)> {
    files
        .iter()
        .enumerate()
        .find_map(|(n, f)| f.position(id).map(|p| (n, p)))
}

/// Writes one index file holding `entries`; returns its id (nothing is written for none).
pub fn write_index(
    backend: &dyn Backend,
    codec: &Codec,
    entries: Vec<(BlobId, BlobLocation)>,
) -> Result<Option<(IndexId, u64)>> {
    if entries.is_empty() {
        return Ok(None);
    }
    let bytes = codec.seal(SealKind::Index, b"", index_file::encode(entries))?;
    let id = IndexId::of(&bytes);
    backend.put_if_absent(&keys::index(&id), &bytes)?;
    Ok(Some((id, bytes.len() as u64)))
}

/// Merges the index files that are not full (fewer than [`ENTRIES_PER_FILE`] entries) when
/// there are at least `threshold` of them, streaming them in id order into as few files as
/// hold them (full files are left as they are, so a large repository is not rewritten after
/// every snapshot). The merged files are written before any old file is deleted, so a
/// concurrent reader always finds every entry in one of them. Returns the files written.
pub fn merge(
    backend: &dyn Backend,
    codec: &Codec,
    index: &Index,
    threshold: usize,
) -> Result<Vec<IndexId>> {
    let small: Vec<Arc<IndexFile>> = index
        .files
        .iter()
        .filter(|f| f.len() < ENTRIES_PER_FILE)
        .cloned()
        .collect();
    if small.len() < threshold.max(2) {
        return Ok(Vec::new());
    }
    for f in &small {
        f.check()?;
    }
    let entries = Merged::new(&small).map(|(id, found)| (id, found[0].location));
    let written: Vec<IndexId> = write_sorted(backend, codec, entries, ENTRIES_PER_FILE)?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    for f in &small {
        if !written.contains(&f.id) {
            backend.delete(&keys::index(&f.id))?;
        }
    }
    Ok(written)
}
