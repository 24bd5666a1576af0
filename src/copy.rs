//! Copying snapshots from one repository into another (`snapkeep copy --from-repo`).
//!
//! Owns: [`copy_snapshots`]: each chosen snapshot of the source gets a record in the
//! destination with the same time, host, paths, tags, summary and stages, a new id, and its
//! original (id and repository, [`Original`]); its trees and chunks are stored there unless
//! the destination has them.
//!
//! Invariants:
//! - When both repositories compute ids alike and cut alike (both plain, same chunker), a
//!   blob keeps its id: a tree the destination holds is not read again (its subtrees and
//!   chunks are there), a chunk it holds is not read at all.
//! - Otherwise (an encrypted side: ids are keyed per repository; or another chunker) every
//!   file's content is read, checked, cut again with the destination's chunker (so chunk sizes
//!   follow its secret seed, and new snapshots there deduplicate against the copy) and stored
//!   under the destination's ids; the file's CRC32 and size stay what they were. Within one
//!   run, a file or tree met twice is translated once.
//! - One commit per snapshot (index, then record, then the re-index of marked packs, under a
//!   job lock of the destination; the source is read under its own job lock, so a prune there
//!   cannot delete packs under the copy): an interrupted copy keeps the snapshots it finished.
//! - A snapshot whose copy the destination already holds (same original) is skipped.
//!
//! Must not: write to the source, or change a copied snapshot's content.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use rayon::prelude::*;

use crate::chunker::Chunker;
use crate::commit::Commit;
use crate::error::{Error, Result};
use crate::format::manifest::{ChunkRef, Extent, Node, NodeKind, Original, SnapshotRecord, Tree};
use crate::format::pack::{BlobCompression, BlobKind};
use crate::id::{AsBlob, BlobId, ChunkId, SnapshotId, TreeId};
use crate::index::Index;
use crate::pack::{PackWriter, compress};
use crate::progress::Progress;
use crate::repository::Repository;
use crate::walk::MAX_DEPTH;

/// What a copy did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Each copied snapshot: its id in the source and the new id in the destination.
    pub copied: Vec<(SnapshotId, SnapshotId)>,
    /// Each snapshot the destination already held: source id, the id of its copy there.
    pub skipped: Vec<(SnapshotId, SnapshotId)>,
    /// Blobs (chunks and trees) stored in the destination, and their content bytes.
    pub blobs_stored: u64,
    pub bytes_stored: u64,
    /// Bytes written to the destination (packs, index files, records).
    pub stored_bytes: u64,
}

/// The key two repositories agree on for one snapshot: where it was first made.
fn origin(repo_id: [u8; 16], rec: &SnapshotRecord) -> Original {
    rec.original.unwrap_or(Original {
        id: rec.id,
        repo: repo_id,
    })
}

/// Copies the snapshots `ids` of `src` (oldest first) into `dst`.
pub fn copy_snapshots(
    src: &Repository,
    dst: &Repository,
    ids: &[SnapshotId],
    progress: &dyn Progress,
) -> Result<CopyReport> {
    if src.config().id == dst.config().id {
        return Err(Error::InvalidInput(format!(
            "{} and {} are the same repository; copy into another one",
            src.backend().location(),
            dst.backend().location()
        )));
    }
    // The source under a reader's lock (its index reloaded under it; read-only media go on
    // without one, with a warning), then its records.
    let _src_lock = crate::lock::acquire_reader(src, "copy", progress)?;
    let mut records = ids
        .iter()
        .map(|id| src.load_snapshot(id))
        .collect::<Result<Vec<_>>>()?;
    records.sort_by_key(|r| (r.time_ns, r.id));
    records.dedup_by_key(|r| r.id);
    let lock = crate::lock::acquire_job(dst.backend(), "copy")?;
    dst.reload_index()?;
    // What the destination holds already, by origin (its records are read after the lock, so
    // a copy running beside this one is seen once it committed).
    let (held, _) = dst.snapshots()?;
    let mut copies: HashMap<Original, SnapshotId> = held
        .iter()
        .map(|r| (origin(dst.config().id, r), r.id))
        .collect();
    let mut t = Translator::new(src, dst)?;
    let mut report = CopyReport::default();
    for rec in records {
        let key = origin(src.config().id, &rec);
        if let Some(existing) = copies.get(&key) {
            report.skipped.push((rec.id, *existing));
            continue;
        }
        if progress.is_cancelled() {
            return Err(cancelled(&report));
        }
        let view = dst.index();
        let writer = PackWriter::new(
            Arc::clone(dst.backend()),
            dst.codec().clone(),
            u64::from(dst.config().pack_size),
        );
        writer.avoid(crate::lock::marked_packs(
            dst.backend().as_ref(),
            &lock.record().seen_marks,
        )?);
        let tree = match t.tree(&rec.tree, &view, &writer, &rec.id, progress) {
            Ok(tree) => tree,
            Err(Error::Cancelled) => return Err(cancelled(&report)),
            Err(e) => return Err(e),
        };
        let sealed = writer.finish()?;
        report.stored_bytes += writer.stored_bytes();
        let mut copy = rec.clone();
        copy.id = uuid::Uuid::now_v7();
        copy.tree = tree;
        copy.original = Some(key);
        copy.parent = rec.parent.and_then(|p| {
            let parent = src.load_snapshot(&p).ok()?;
            copies.get(&origin(src.config().id, &parent)).copied()
        });
        let commit = Commit::new(dst, &lock, &view, &sealed);
        report.stored_bytes += commit.index_packs()?;
        report.stored_bytes += commit.record(&copy)?;
        if let Err(e) = commit.reindex_marked(&tree) {
            progress.warn(&format!(
                "could not re-index blobs of packs a prune marked during the copy of snapshot {} ({e}); the next prune puts them back",
                copy.id
            ));
        }
        dst.reload_index()?;
        copies.insert(key, copy.id);
        report.copied.push((rec.id, copy.id));
    }
    report.blobs_stored = t.blobs.load();
    report.bytes_stored = t.bytes.load();
    Ok(report)
}

/// The copy was cancelled: the snapshots copied so far stay.
fn cancelled(report: &CopyReport) -> Error {
    if report.copied.is_empty() {
        return Error::Cancelled;
    }
    Error::InvalidInput(format!(
        "the copy was cancelled after {} snapshot(s) were copied (they are kept; the one in progress was not committed); run it again to copy the rest",
        report.copied.len()
    ))
}

/// Damage of the source is named by the snapshot and path it breaks; any other failure (the
/// destination's storage, a lock, the network) keeps its own message and kind.
fn blame(snapshot: &SnapshotId, what: &str, e: Error) -> Error {
    match e {
        Error::Corrupt { .. } | Error::HashMismatch { .. } => Error::corrupt(
            format!("snapshot {snapshot}"),
            format!("{what} cannot be read from the source: {}", e.finding()),
        ),
        e if e.is_not_found() => Error::corrupt(
            format!("snapshot {snapshot}"),
            format!("{what} cannot be read from the source: {e}"),
        ),
        other => other,
    }
}

/// A counter shared by the copying threads.
#[derive(Default)]
struct Count(std::sync::atomic::AtomicU64);

impl Count {
    fn add(&self, n: u64) {
        self.0.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
    fn load(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// One directory being translated: its source id, its entries, the next entry to look at.
struct Frame {
    src: TreeId,
    tree: Tree,
    next: usize,
    path: String,
}

/// Source trees and files to the destination's, remembered for the run.
struct Translator<'a> {
    src: &'a Repository,
    dst: &'a Repository,
    /// Ids and cut points agree: blobs keep their ids.
    same_ids: bool,
    chunker: Chunker,
    trees: HashMap<TreeId, TreeId>,
    /// A file's source chunk list (blake3 of the ids) → its chunks in the destination.
    files: Mutex<HashMap<[u8; 32], Vec<ChunkRef>>>,
    /// Blobs this run stored (a blob is stored once even when two files share it).
    claimed: Mutex<HashSet<BlobId>>,
    blobs: Count,
    bytes: Count,
}

impl<'a> Translator<'a> {
    fn new(src: &'a Repository, dst: &'a Repository) -> Result<Self> {
        let same_ids = !src.codec().is_sealed()
            && !dst.codec().is_sealed()
            && src.config().chunker == dst.config().chunker;
        Ok(Translator {
            src,
            dst,
            same_ids,
            chunker: dst.chunker()?,
            trees: HashMap::new(),
            files: Mutex::new(HashMap::new()),
            claimed: Mutex::new(HashSet::new()),
            blobs: Count::default(),
            bytes: Count::default(),
        })
    }

    /// Whether the destination has `id` (in its index, or stored by this run).
    fn has(&self, view: &Index, id: &BlobId) -> bool {
        view.contains(id)
            || self
                .claimed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(id)
    }

    /// Stores `raw` as blob `id` unless the destination has it.
    fn put(
        &self,
        view: &Index,
        writer: &PackWriter,
        id: BlobId,
        kind: BlobKind,
        raw: &[u8],
    ) -> Result<()> {
        if view.contains(&id)
            || !self
                .claimed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id)
        {
            return Ok(());
        }
        let raw_len = u32::try_from(raw.len())
            .map_err(|_| Error::InvalidInput("blob larger than 4 GiB".into()))?;
        let (compression, stored) = match compress(self.dst.config().compression, raw) {
            Some(z) => (BlobCompression::Zstd, std::borrow::Cow::Owned(z)),
            None => (BlobCompression::Raw, std::borrow::Cow::Borrowed(raw)),
        };
        let stored = self.dst.codec().seal_blob(kind, &id, &stored)?;
        writer.add(id, kind, compression, &stored, raw_len)?;
        self.blobs.add(1);
        self.bytes.add(raw.len() as u64);
        Ok(())
    }

    /// The destination's id of the source tree `root`, every tree and chunk under it stored
    /// there. Depth first with a stack of frames (no recursion), at most [`MAX_DEPTH`] deep.
    fn tree(
        &mut self,
        root: &TreeId,
        view: &Index,
        writer: &PackWriter,
        snapshot: &SnapshotId,
        progress: &dyn Progress,
    ) -> Result<TreeId> {
        if let Some(done) = self.known_tree(root, view) {
            return Ok(done);
        }
        let mut stack = vec![self.open(root, String::new(), snapshot)?];
        loop {
            let Some(top) = stack.last_mut() else {
                return Err(Error::corrupt(
                    format!("snapshot {snapshot}"),
                    "its tree walk ended without a root",
                ));
            };
            // Files of this directory first, in parallel; then its subdirectories one by one.
            if top.next == 0 {
                let path = top.path.clone();
                self.files_of(&mut top.tree, view, writer, snapshot, &path, progress)?;
            }
            let mut descend = None;
            while top.next < top.tree.nodes.len() {
                let node = &top.tree.nodes[top.next];
                if let NodeKind::Dir { tree } = &node.kind {
                    match self.known_tree(tree, view) {
                        Some(done) => {
                            top.tree.nodes[top.next].kind = NodeKind::Dir { tree: done };
                        }
                        None => {
                            let path =
                                format!("{}/{}", top.path, String::from_utf8_lossy(&node.name));
                            descend = Some((*tree, path));
                            break;
                        }
                    }
                }
                top.next += 1;
            }
            if let Some((child, path)) = descend {
                if stack.len() >= MAX_DEPTH {
                    return Err(Error::corrupt(
                        format!("snapshot {snapshot}"),
                        format!("directories nested deeper than {MAX_DEPTH}"),
                    ));
                }
                let frame = self.open(&child, path, snapshot)?;
                stack.push(frame);
                continue;
            }
            // Every entry translated: store this directory's tree.
            let Some(mut done) = stack.pop() else {
                continue;
            };
            let bytes = done.tree.to_bytes();
            let id = self.dst.codec().tree_id(&bytes);
            self.put(view, writer, id.blob(), BlobKind::Tree, &bytes)?;
            self.trees.insert(done.src, id);
            match stack.last_mut() {
                Some(parent) => {
                    parent.tree.nodes[parent.next].kind = NodeKind::Dir { tree: id };
                    parent.next += 1;
                }
                None => return Ok(id),
            }
        }
    }

    /// A tree already translated this run, or (ids agreeing) one the destination holds.
    fn known_tree(&self, id: &TreeId, view: &Index) -> Option<TreeId> {
        if let Some(done) = self.trees.get(id) {
            return Some(*done);
        }
        (self.same_ids && self.has(view, &id.blob())).then_some(*id)
    }

    fn open(&self, id: &TreeId, path: String, snapshot: &SnapshotId) -> Result<Frame> {
        let tree = self
            .src
            .load_tree(id)
            .map_err(|e| blame(snapshot, &format!("its directory '{}'", display(&path)), e))?;
        Ok(Frame {
            src: *id,
            tree,
            next: 0,
            path,
        })
    }

    /// Translates the chunks of every file node of `tree`, files in parallel.
    fn files_of(
        &self,
        tree: &mut Tree,
        view: &Index,
        writer: &PackWriter,
        snapshot: &SnapshotId,
        dir: &str,
        progress: &dyn Progress,
    ) -> Result<()> {
        tree.nodes
            .par_iter_mut()
            .try_for_each(|node| -> Result<()> {
                let Node {
                    name,
                    kind: NodeKind::File { chunks, holes, .. },
                    size,
                    ..
                } = node
                else {
                    return Ok(());
                };
                if progress.is_cancelled() {
                    return Err(Error::Cancelled);
                }
                let new = self.file(chunks, holes, *size, view, writer).map_err(|e| {
                    blame(
                        snapshot,
                        &format!("its file '{dir}/{}'", String::from_utf8_lossy(name)),
                        e,
                    )
                })?;
                progress.advance(chunks.iter().map(|c| u64::from(c.len)).sum(), 1);
                *chunks = new;
                Ok(())
            })
    }

    /// One file's chunks in the destination.
    fn file(
        &self,
        chunks: &[ChunkRef],
        holes: &[Extent],
        size: u64,
        view: &Index,
        writer: &PackWriter,
    ) -> Result<Vec<ChunkRef>> {
        if self.same_ids {
            for c in chunks {
                if !self.has(view, &c.id.blob()) {
                    let data = self.read(c)?;
                    self.put(view, writer, c.id.blob(), BlobKind::Data, &data)?;
                }
            }
            return Ok(chunks.to_vec());
        }
        let mut key = blake3::Hasher::new();
        for c in chunks {
            key.update(c.id.as_bytes());
            key.update(&c.len.to_le_bytes());
        }
        key.update(&size.to_le_bytes());
        for h in holes {
            key.update(&h.offset.to_le_bytes());
            key.update(&h.len.to_le_bytes());
        }
        let key = *key.finalize().as_bytes();
        if let Some(done) = self
            .files
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok(done.clone());
        }
        let new = self.recut(chunks, &data_extents(holes, size), view, writer)?;
        self.files
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, new.clone());
        Ok(new)
    }

    /// Reads a file's content chunk by chunk, cuts it with the destination's chunker (each
    /// data extent on its own, as a snapshot cuts it: a chunk never spans a hole) and stores
    /// each new chunk under the destination's id.
    fn recut(
        &self,
        chunks: &[ChunkRef],
        extents: &[u64],
        view: &Index,
        writer: &PackWriter,
    ) -> Result<Vec<ChunkRef>> {
        let window = 2 * self.chunker.max_size();
        let mut out = Vec::with_capacity(chunks.len());
        let mut buf: Vec<u8> = Vec::with_capacity(window + self.chunker.max_size());
        let mut extents = extents.iter().copied().filter(|&n| n > 0);
        let mut left = extents.next().unwrap_or(0);
        let disagree = || Error::corrupt("file node", "its chunks and holes do not tile its size");
        for c in chunks {
            let len = u64::from(c.len);
            if len > left {
                return Err(disagree());
            }
            buf.extend_from_slice(&self.read(c)?);
            left -= len;
            let extent_end = left == 0;
            if buf.len() < window && !extent_end {
                continue;
            }
            let cuts = self.chunker.cuts(&buf, extent_end);
            for &(s, n) in &cuts {
                let data = &buf[s..s + n];
                let id: ChunkId = self.dst.codec().chunk_id(data);
                self.put(view, writer, id.blob(), BlobKind::Data, data)?;
                out.push(ChunkRef {
                    id,
                    len: u32::try_from(n)
                        .map_err(|_| Error::InvalidInput("chunk larger than 4 GiB".into()))?,
                });
            }
            let used = cuts.last().map_or(0, |&(s, n)| s + n);
            buf.drain(..used);
            if extent_end {
                left = extents.next().unwrap_or(0);
            }
        }
        if !buf.is_empty() || left != 0 || extents.next().is_some() {
            return Err(disagree());
        }
        Ok(out)
    }

    /// A source chunk, checked against its id and its length.
    fn read(&self, c: &ChunkRef) -> Result<Vec<u8>> {
        let data = self.src.read_blob(&c.id)?;
        if data.len() != c.len as usize {
            return Err(Error::corrupt(
                format!("chunk {}", c.id.short()),
                format!("{} bytes, the tree says {}", data.len(), c.len),
            ));
        }
        Ok(data)
    }
}

/// The lengths of a file's data extents, in order: what lies between its holes.
fn data_extents(holes: &[Extent], size: u64) -> Vec<u64> {
    let mut out = Vec::with_capacity(holes.len() + 1);
    let mut pos = 0u64;
    for h in holes {
        out.push(h.offset.saturating_sub(pos));
        pos = h.offset.saturating_add(h.len);
    }
    out.push(size.saturating_sub(pos));
    out
}

/// A path inside a snapshot as messages show it.
fn display(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}
