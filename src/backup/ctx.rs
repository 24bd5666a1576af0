//! The shared state of one snapshot run: counters, the in-flight set, and storing a chunk or
//! a tree once (hash → dedup against the index and the in-flight set → compress → pack).
//!
//! Invariant: a blob is stored at most once per run, and never when the index has it.
//! Must not: read the source or decide what a node holds.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::dry_run::Discard;
use super::walk::Notes;
use super::{BackupOptions, FileChange, FileReport, Unreadable};
use crate::chunker::Chunker;
use crate::error::{Error, Result};
use crate::format::manifest::{ChunkRef, Node, NodeKind, SnapshotRecord, Summary};
use crate::format::pack::{BlobCompression, BlobKind};
use crate::format::repo_config::Compression;
use crate::hasher::crc_chunk;
use crate::id::{AsBlob, BlobId};
use crate::index::Index;
use crate::pack::{NewBlob, PackWriter, compress};
use crate::progress::Progress;
use crate::repository::Repository;
use crate::source::WINDOW;
use crate::stage::{Layout, StageSet};

#[derive(Default)]
pub(super) struct Counters {
    pub(super) files: AtomicU64,
    pub(super) dirs: AtomicU64,
    pub(super) symlinks: AtomicU64,
    pub(super) skipped: AtomicU64,
    pub(super) bytes: AtomicU64,
    pub(super) data_bytes: AtomicU64,
    pub(super) new_bytes: AtomicU64,
    pub(super) new_chunks: AtomicU64,
    pub(super) chunks: AtomicU64,
    pub(super) changed: AtomicU64,
    pub(super) unchanged: AtomicU64,
    pub(super) stage_files: AtomicU64,
    pub(super) stage_bytes: AtomicU64,
    pub(super) inconsistent: AtomicU64,
}

pub(super) struct Ctx<'a> {
    pub(super) repo: &'a Repository,
    parent: Option<&'a SnapshotRecord>,
    /// Start time of the parent snapshot (for the racy-mtime rule); `None` without a parent.
    pub(super) parent_time_ns: Option<i64>,
    /// Whether the parent ran every stage this snapshot runs: only then may a staged file be
    /// reused from it, or its stage result trusted.
    pub(super) parent_checked: bool,
    pub(super) index: Arc<Index>,
    pub(super) chunker: Chunker,
    pub(super) window: usize,
    pub(super) compression: Compression,
    pub(super) writer: PackWriter,
    pub(super) inflight: Vec<Mutex<HashSet<BlobId>>>,
    /// Buffers of sealed chunks, given back after they are appended to a pack: a fresh
    /// allocation per chunk costs page faults of its size each time.
    sealed_buffers: Mutex<Vec<Vec<u8>>>,
    pub(super) counters: Counters,
    pub(super) progress: &'a dyn Progress,
    pub(super) warnings: Mutex<Vec<String>>,
    /// Entries that could not be read (also among the warnings).
    pub(super) unreadable: Mutex<Vec<Unreadable>>,
    /// Which files are reported by how they compare to the parent, and those reported.
    pub(super) report: FileReport,
    pub(super) files: Mutex<Vec<(FileChange, PathBuf)>>,
    pub(super) max_rereads: u32,
    pub(super) layout: Layout,
    pub(super) stages: StageSet,
    /// Names of every stage any source ran (the record's `stages`).
    pub(super) stage_names: Vec<String>,
    /// Private directory (0700) for the captured copies of staged files; removed at the end.
    pub(super) stage_dir: Option<tempfile::TempDir>,
    pub(super) max_recaptures: u32,
    pub(super) allow_inconsistent: bool,
    /// Root files captured before the final listing (the layout's phase 0), by name.
    pub(super) precaptured: Mutex<std::collections::HashMap<Vec<u8>, Option<Node>>>,
}

impl Counters {
    /// The record's summary of these counts.
    pub(super) fn summary(&self, stored_bytes: u64, started: std::time::Instant) -> Summary {
        Summary {
            files: self.files.load(Ordering::Relaxed),
            dirs: self.dirs.load(Ordering::Relaxed),
            symlinks: self.symlinks.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            data_bytes: self.data_bytes.load(Ordering::Relaxed),
            new_bytes: self.new_bytes.load(Ordering::Relaxed),
            stored_bytes,
            new_chunks: self.new_chunks.load(Ordering::Relaxed),
            chunks: self.chunks.load(Ordering::Relaxed),
            changed_during_read: self.changed.load(Ordering::Relaxed),
            unchanged_files: self.unchanged.load(Ordering::Relaxed),
            stage_files: self.stage_files.load(Ordering::Relaxed),
            stage_bytes: self.stage_bytes.load(Ordering::Relaxed),
            inconsistent_files: self.inconsistent.load(Ordering::Relaxed),
            duration_ns: u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
        }
    }
}

impl<'a> Ctx<'a> {
    /// The state of a run over `repo` with `parent` (when there is one); a dry run's packs go
    /// nowhere. [`Ctx::set_source`] then names each source's layout and stages.
    pub(super) fn new(
        repo: &'a Repository,
        opts: &BackupOptions,
        parent: Option<&'a SnapshotRecord>,
        progress: &'a dyn Progress,
    ) -> Result<Self> {
        let cfg = repo.config();
        let chunker = repo.chunker()?;
        let backend: Arc<dyn crate::backend::Backend> = if opts.dry_run {
            Arc::new(Discard::new(Arc::clone(repo.backend())))
        } else {
            Arc::clone(repo.backend())
        };
        Ok(Ctx {
            repo,
            parent,
            parent_time_ns: parent.map(|r| r.time_ns),
            parent_checked: false,
            index: repo.index(),
            window: WINDOW.max(2 * chunker.max_size()),
            chunker,
            compression: cfg.compression,
            writer: PackWriter::new(backend, repo.codec().clone(), u64::from(cfg.pack_size)),
            inflight: (0..16).map(|_| Mutex::new(HashSet::new())).collect(),
            sealed_buffers: Mutex::new(Vec::new()),
            counters: Counters::default(),
            progress,
            warnings: Mutex::new(Vec::new()),
            unreadable: Mutex::new(Vec::new()),
            report: opts.report,
            files: Mutex::new(Vec::new()),
            max_rereads: opts.max_rereads.unwrap_or(2),
            layout: Layout::Generic,
            stages: StageSet::default(),
            stage_names: Vec::new(),
            stage_dir: None,
            max_recaptures: opts.max_recaptures.unwrap_or(3),
            allow_inconsistent: opts.allow_inconsistent,
            precaptured: Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// The layout and stages of the source captured next.
    pub(super) fn set_source(&mut self, layout: Layout, stages: StageSet) -> Result<()> {
        if self.stage_dir.is_none() && stages.names.iter().any(|n| n != "files") {
            self.stage_dir = Some(
                tempfile::Builder::new()
                    .prefix("snapkeep-stage-")
                    .tempdir()
                    .map_err(|e| Error::io("create stage directory", std::env::temp_dir(), e))?,
            );
        }
        self.parent_checked = self
            .parent
            .is_some_and(|r| stages.names.iter().all(|n| r.stages.contains(n)));
        for n in &stages.names {
            if !self.stage_names.contains(n) {
                self.stage_names.push(n.clone());
            }
        }
        self.layout = layout;
        self.stages = stages;
        Ok(())
    }
}

impl Ctx<'_> {
    pub(super) fn warn(&self, msg: String) {
        self.progress.warn(&msg);
        self.warnings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(msg);
    }

    /// Adds what a walk noticed.
    pub(super) fn add_notes(&self, notes: Notes) {
        self.warnings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(notes.warnings);
        self.unreadable
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(notes.unreadable);
    }

    /// A file that could not be opened: warned, counted as skipped, recorded as unreadable.
    pub(super) fn unreadable(&self, path: &Path, what: &str, err: &std::io::Error) {
        let mut notes = Notes::default();
        notes.unreadable(path, what, err);
        self.add_notes(notes);
        self.counters.skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// An entry left out of the snapshot: warned (with `why`) and counted as skipped.
    pub(super) fn skip(&self, path: &Path, why: &str) {
        let mut notes = Notes::default();
        notes.skipped(path, why);
        self.add_notes(notes);
        self.counters.skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// Reports a captured file as `change` when `--verbose` asks for it.
    pub(super) fn report_file(&self, change: FileChange, path: impl FnOnce() -> PathBuf) {
        let wanted = match self.report {
            FileReport::None => false,
            FileReport::Changed => change != FileChange::Unchanged,
            FileReport::All => true,
        };
        if wanted {
            self.files
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((change, path()));
        }
    }

    /// True when this caller must store `id` (not in the index, not claimed by another).
    pub(super) fn claim(&self, id: &BlobId) -> bool {
        if self.index.contains(id) {
            return false;
        }
        let shard = &self.inflight[(id.as_bytes()[0] & 15) as usize];
        shard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(*id)
    }

    pub(super) fn store(&self, id: BlobId, kind: BlobKind, raw: &[u8]) -> Result<()> {
        if !self.claim(&id) {
            return Ok(());
        }
        let raw_len = u32::try_from(raw.len())
            .map_err(|_| Error::InvalidInput("blob larger than 4 GiB".into()))?;
        let (compression, stored) = match compress(self.compression, raw) {
            Some(z) => (BlobCompression::Zstd, std::borrow::Cow::Owned(z)),
            None => (BlobCompression::Raw, std::borrow::Cow::Borrowed(raw)),
        };
        let stored = self.repo.codec().seal_blob(kind, &id, &stored)?;
        self.writer.add(id, kind, compression, &stored, raw_len)?;
        if kind == BlobKind::Data {
            self.counters
                .new_bytes
                .fetch_add(raw.len() as u64, Ordering::Relaxed);
            self.counters.new_chunks.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Counts a file reused from the parent snapshot without reading it.
    pub(super) fn reuse(&self, node: &Node) {
        let c = &self.counters;
        c.files.fetch_add(1, Ordering::Relaxed);
        c.unchanged.fetch_add(1, Ordering::Relaxed);
        c.bytes.fetch_add(node.size, Ordering::Relaxed);
        if let NodeKind::File { chunks, .. } = &node.kind {
            c.chunks.fetch_add(chunks.len() as u64, Ordering::Relaxed);
        }
        self.progress.advance(node.size, 1);
    }

    /// Hashes one chunk of a file and, when this snapshot is the first to claim it, compresses
    /// it; [`Ctx::store_chunks`] then appends the new ones in file order.
    pub(super) fn prepare_chunk(&self, data: &[u8]) -> Result<Prepared> {
        let id = self.repo.codec().chunk_id(data);
        let crc = crc_chunk(data);
        let len = u32::try_from(data.len())
            .map_err(|_| Error::InvalidInput("chunk larger than 4 GiB".into()))?;
        let codec = self.repo.codec();
        let new = if !self.claim(&id.blob()) {
            NewChunk::Known
        } else if codec.is_sealed() {
            // Sealed here, on the hashing threads: the pack writer only appends.
            let (compression, stored) = match compress(self.compression, data) {
                Some(z) => (BlobCompression::Zstd, std::borrow::Cow::Owned(z)),
                None => (BlobCompression::Raw, std::borrow::Cow::Borrowed(data)),
            };
            let mut sealed = self.sealed_buffer(stored.len() + codec.overhead());
            codec.seal_blob_into(BlobKind::Data, &id.blob(), &stored, &mut sealed)?;
            NewChunk::Sealed(compression, sealed)
        } else if let Some(z) = compress(self.compression, data) {
            NewChunk::Zstd(z)
        } else {
            NewChunk::Raw
        };
        Ok(Prepared {
            cref: ChunkRef { id, len },
            crc,
            new,
        })
    }

    /// Appends the claimed chunks of one read window to the pack, back to back in file
    /// order, so a restore reads them with one ranged read per run; the sealed chunks'
    /// buffers go back to the pool.
    pub(super) fn store_chunks(
        &self,
        win: &[u8],
        cuts: &[(usize, usize)],
        prepared: &mut [Prepared],
    ) -> Result<()> {
        let stored = self.append_chunks(win, cuts, prepared);
        let mut pool = self
            .sealed_buffers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut kept: usize = pool.iter().map(Vec::capacity).sum();
        for p in prepared.iter_mut() {
            if let NewChunk::Sealed(_, b) = &mut p.new
                && kept + b.capacity() <= SEALED_POOL_BYTES
            {
                kept += b.capacity();
                pool.push(std::mem::take(b));
            }
        }
        stored
    }

    /// A buffer of at least `len` bytes' capacity: the smallest such from the pool, else a new
    /// one (a smaller buffer would be reallocated, which costs what the pool saves).
    fn sealed_buffer(&self, len: usize) -> Vec<u8> {
        let mut pool = self
            .sealed_buffers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let best = pool
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= len)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        match best {
            Some(i) => pool.swap_remove(i),
            None => Vec::with_capacity(len),
        }
    }

    fn append_chunks(
        &self,
        win: &[u8],
        cuts: &[(usize, usize)],
        prepared: &[Prepared],
    ) -> Result<()> {
        let mut blobs = Vec::new();
        let mut bytes = 0u64;
        for (&(s, n), p) in cuts.iter().zip(prepared) {
            let (compression, stored) = match &p.new {
                NewChunk::Known => continue,
                NewChunk::Zstd(z) => (BlobCompression::Zstd, z.as_slice()),
                NewChunk::Raw => (BlobCompression::Raw, &win[s..s + n]),
                NewChunk::Sealed(c, b) => (*c, b.as_slice()),
            };
            blobs.push(NewBlob {
                id: p.cref.id.blob(),
                compression,
                stored,
                raw_length: p.cref.len,
            });
            bytes += u64::from(p.cref.len);
        }
        if blobs.is_empty() {
            return Ok(());
        }
        self.writer.add_all(BlobKind::Data, &blobs)?;
        self.counters.new_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.counters
            .new_chunks
            .fetch_add(blobs.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// A hashed chunk of a read window.
pub(super) struct Prepared {
    pub(super) cref: ChunkRef,
    pub(super) crc: u32,
    pub(super) new: NewChunk,
}

/// Whether a chunk is new to this snapshot, and how it is stored then.
pub(super) enum NewChunk {
    /// Already stored, or claimed by another file of this snapshot.
    Known,
    /// Claimed by this file: stored raw (incompressible, or compression off).
    Raw,
    /// Claimed by this file: stored as these zstd bytes.
    Zstd(Vec<u8>),
    /// Claimed by this file in a sealed repository: these bytes (compressed or not, as the
    /// flag says), sealed.
    Sealed(BlobCompression, Vec<u8>),
}

/// Bytes of sealed-chunk buffers kept for reuse: two read windows' worth, about what is in
/// flight on two threads.
const SEALED_POOL_BYTES: usize = 16 << 20;
