//! Taking a snapshot: walk → read (holes skipped) → chunk → hash → dedup → compress → pack →
//! index → trees → snapshot record.
//!
//! Owns: [`BackupOptions`], [`snapshot`] and the parallel pipeline. Directories and files are
//! processed on the rayon pool (files of a directory and its subdirectories in parallel; the
//! chunks of one large window hashed in parallel); packs are sealed and uploaded by the pack
//! writer's background thread, so reading, hashing, compressing and writing overlap. Memory is
//! bounded by the read windows in flight (one per worker) and the pack upload queue.
//!
//! Invariants: nothing is listed until the snapshot record is written, and the record is
//! written only after every pack and the index file it needs are durable. A chunk is stored at
//! most once per run (in-flight set) and never when the index already has it.

mod parent;
pub(crate) mod walk;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use rayon::prelude::*;

use crate::chunker::Chunker;
use crate::clock::{hostname, now_ns, stamp_ns};
use crate::commit::Commit;
use crate::error::{Error, Result};
use crate::format::manifest::{
    ChunkRef, Extent, FLAG_CHANGED_DURING_READ, FLAG_INCONSISTENT, FLAG_STAGE_FAILED, Node,
    NodeKind, SnapshotRecord, Summary, Tree,
};
use crate::format::pack::{BlobCompression, BlobKind};
use crate::format::repo_config::Compression;
use crate::hasher::{FileCrc, PAR_THRESHOLD, crc_chunk, hash_chunk};
use crate::id::{AsBlob, BlobId, SnapshotId, TreeId};
use crate::index::{Index, MERGE_THRESHOLD, merge};
use crate::pack::{NewBlob, PackWriter};
use crate::progress::{Phase, Progress};
use crate::repository::Repository;
use crate::source::{WINDOW, data_extents, holes_of, read_window};
use crate::stage::{Layout, StageSelection, StageSet};

pub use walk::{MAX_DEPTH, Meta};
use walk::{ScannedDir, scan};

/// What to snapshot and how.
#[derive(Clone, Debug, Default)]
pub struct BackupOptions {
    /// Tags recorded in the snapshot.
    pub tags: Vec<String>,
    /// Glob patterns; an entry is excluded when a pattern matches its name or its path
    /// relative to the source (`*.tmp`, `cache/**`).
    pub excludes: Vec<String>,
    /// Host name to record (default: this machine's).
    pub host: Option<String>,
    /// Parent snapshot (default: the latest of the same host and source path).
    pub parent: Option<SnapshotId>,
    /// How many times a file that changes while read is read again before it is recorded
    /// with the changed-during-read flag (default 2).
    pub max_rereads: Option<u32>,
    /// Read every file even when its metadata equals the parent's entry.
    pub force_read: bool,
    /// Verification stages to run on captured files (default: the detected layout's).
    pub stages: StageSelection,
    /// Runs before anything is read (the database's checkpoint); an `Err` aborts the
    /// snapshot with its message and nothing is captured.
    pub pre_hook: Option<PreHook>,
    /// How many times a file that fails a format stage as captured is captured again before
    /// the snapshot fails (default 3).
    pub max_recaptures: Option<u32>,
    /// Commit a snapshot whose files still fail a stage after the recaptures, flagged
    /// inconsistent, instead of failing it.
    pub allow_inconsistent: bool,
}

/// A pre-snapshot hook: the database's checkpoint.
#[derive(Clone)]
pub struct PreHook(pub Arc<dyn Fn() -> std::result::Result<(), String> + Send + Sync>);

impl std::fmt::Debug for PreHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PreHook(..)")
    }
}

/// A finished snapshot and what was noticed along the way.
#[derive(Clone, Debug)]
pub struct BackupOutcome {
    pub record: SnapshotRecord,
    /// Non-fatal problems: skipped entries, files that changed while read, a failed merge.
    pub warnings: Vec<String>,
}

#[derive(Default)]
struct Counters {
    files: AtomicU64,
    dirs: AtomicU64,
    symlinks: AtomicU64,
    skipped: AtomicU64,
    bytes: AtomicU64,
    data_bytes: AtomicU64,
    new_bytes: AtomicU64,
    new_chunks: AtomicU64,
    chunks: AtomicU64,
    changed: AtomicU64,
    unchanged: AtomicU64,
    stage_files: AtomicU64,
    stage_bytes: AtomicU64,
    inconsistent: AtomicU64,
}

struct Ctx<'a> {
    repo: &'a Repository,
    /// Start time of the parent snapshot (for the racy-mtime rule); `None` without a parent.
    parent_time_ns: Option<i64>,
    /// Whether the parent ran every stage this snapshot runs: only then may a staged file be
    /// reused from it, or its stage result trusted.
    parent_checked: bool,
    index: Arc<Index>,
    chunker: Chunker,
    window: usize,
    compression: Compression,
    writer: PackWriter,
    inflight: Vec<Mutex<HashSet<BlobId>>>,
    counters: Counters,
    progress: &'a dyn Progress,
    warnings: Mutex<Vec<String>>,
    max_rereads: u32,
    layout: Layout,
    stages: StageSet,
    /// Private directory (0700) for the captured copies of staged files; removed at the end.
    stage_dir: Option<tempfile::TempDir>,
    max_recaptures: u32,
    allow_inconsistent: bool,
    /// Root files captured before the final listing (the layout's phase 0), by name.
    precaptured: Mutex<std::collections::HashMap<Vec<u8>, Option<Node>>>,
}

/// Takes a snapshot of the directory `source` into `repo`.
pub fn snapshot(
    repo: &Repository,
    source: &Path,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupOutcome> {
    let started = Instant::now();
    let time_ns = now_ns();
    let source = std::fs::canonicalize(source).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::InvalidInput(format!(
                "source {} does not exist; give an existing directory",
                source.display()
            ))
        } else {
            Error::io("resolve source", source, e)
        }
    })?;
    let meta = std::fs::metadata(&source).map_err(|e| Error::io("stat source", &source, e))?;
    if !meta.is_dir() {
        return Err(Error::InvalidInput(format!(
            "source {} is not a directory; snapshot takes a directory",
            source.display()
        )));
    }
    if let Some(PreHook(hook)) = &opts.pre_hook {
        hook().map_err(Error::HookFailed)?;
    }
    if progress.is_cancelled() {
        return Err(Error::Cancelled);
    }
    // The lock records the prune marks seen before the index is loaded: a pack marked later
    // is not deleted while this snapshot runs (docs/DESIGN.md, "Garbage collection").
    let lock = crate::lock::acquire_job(repo.backend(), "snapshot")?;
    repo.reload_index()?;
    let layout = Layout::detect(&source);
    let stages = StageSet::resolve(&opts.stages, layout)?;
    let mut patterns: Vec<String> = layout
        .never_captured()
        .iter()
        .map(|p| (*p).to_owned())
        .collect();
    patterns.extend(opts.excludes.iter().cloned());
    let excludes = build_excludes(&patterns)?;
    let host = opts.host.clone().unwrap_or_else(hostname);
    let path_str = source.to_string_lossy().into_owned();
    let parent_rec = match opts.parent {
        Some(p) => Some(repo.load_snapshot(&p)?),
        None => {
            let (mut recs, _) = repo.snapshots()?;
            recs.iter()
                .rposition(|r| r.host == host && r.paths == [path_str.clone()])
                .map(|i| recs.swap_remove(i))
        }
    };
    let parent = parent_rec.as_ref().map(|r| r.id);
    // A parent whose root tree cannot be read only costs reading everything again.
    let parent_root = match (&parent_rec, opts.force_read) {
        (Some(r), false) => repo.load_tree(&r.tree).ok().map(Arc::new),
        _ => None,
    };

    progress.phase(Phase::Scan, 0, 0);
    let mut warnings = Vec::new();
    let root = scan(&source, &excludes, &mut warnings)?;
    let (total_bytes, total_files) = root.totals();

    let cfg = repo.config();
    let chunker = Chunker::new(&cfg.chunker)?;
    let window = WINDOW.max(2 * chunker.max_size());
    let ctx = Ctx {
        repo,
        parent_time_ns: parent_rec.as_ref().map(|r| r.time_ns),
        parent_checked: parent_rec
            .as_ref()
            .is_some_and(|r| stages.names.iter().all(|n| r.stages.contains(n))),
        index: repo.index(),
        chunker,
        window,
        compression: cfg.compression,
        writer: PackWriter::new(Arc::clone(repo.backend()), u64::from(cfg.pack_size)),
        inflight: (0..16).map(|_| Mutex::new(HashSet::new())).collect(),
        counters: Counters::default(),
        progress,
        warnings: Mutex::new(warnings),
        max_rereads: opts.max_rereads.unwrap_or(2),
        layout,
        stage_dir: if stages.names.iter().any(|n| n != "files") {
            Some(
                tempfile::Builder::new()
                    .prefix("snapkeep-stage-")
                    .tempdir()
                    .map_err(|e| Error::io("create stage directory", std::env::temp_dir(), e))?,
            )
        } else {
            None
        },
        stages,
        max_recaptures: opts.max_recaptures.unwrap_or(3),
        allow_inconsistent: opts.allow_inconsistent,
        precaptured: Mutex::new(std::collections::HashMap::new()),
    };
    // Never upload a pack under the name of a marked one (see `PackWriter::avoid`).
    ctx.writer.avoid(crate::lock::marked_packs(
        repo.backend().as_ref(),
        &lock.record().seen_marks,
    )?);
    progress.phase(Phase::Snapshot, total_bytes, total_files);
    // Directories recurse on the pool's threads: give them room for MAX_DEPTH levels.
    let pool = rayon::ThreadPoolBuilder::new()
        .stack_size(32 << 20)
        .thread_name(|i| format!("snapkeep-snapshot-{i}"))
        .build()
        .map_err(|e| {
            Error::io(
                "start worker threads for",
                &source,
                std::io::Error::other(e),
            )
        })?;
    // The layout's first phase (Alopex: lsm.wal) is captured before the tree is listed again,
    // so a table written after it (a checkpoint in between) is in the listing, and nothing
    // captured later (checkpoint.meta last) can point past what the snapshot holds.
    let first_listing_warnings = ctx
        .warnings
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .len();
    let root = if root
        .files
        .iter()
        .any(|(n, _)| ctx.layout.phase(&join_rel("", n)) == 0)
    {
        let early: Vec<(Vec<u8>, Option<Node>)> = pool.install(|| {
            root.files
                .iter()
                .filter(|(n, _)| ctx.layout.phase(&join_rel("", n)) == 0)
                .map(|(n, m)| {
                    Ok((
                        n.clone(),
                        capture_one(&ctx, &root.path, "", n, m, parent_root.as_deref())?,
                    ))
                })
                .collect::<Result<_>>()
        })?;
        ctx.precaptured
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(early);
        // The second listing's warnings replace the first's; those of the capture stay.
        let mut listing_warnings = Vec::new();
        let fresh = scan(&source, &excludes, &mut listing_warnings)?;
        let mut w = ctx.warnings.lock().unwrap_or_else(PoisonError::into_inner);
        let keep = first_listing_warnings.min(w.len());
        let from_capture = w.split_off(keep);
        *w = listing_warnings;
        w.extend(from_capture);
        drop(w);
        fresh
    } else {
        root
    };
    ctx.counters
        .skipped
        .fetch_add(root.skipped_total(), Ordering::Relaxed);
    let tree = pool.install(|| process_dir(&ctx, &root, "", parent_root.as_deref()))?;

    progress.phase(Phase::Commit, 0, 0);
    let sealed = ctx.writer.finish()?;
    // The last safe point: after it the index and the record are written.
    if progress.is_cancelled() {
        return Err(Error::Cancelled);
    }
    let commit = Commit::new(repo, &lock, &ctx.index, &sealed);
    let stored = ctx.writer.stored_bytes() + commit.index_packs()?;
    let c = &ctx.counters;
    let summary = Summary {
        files: c.files.load(Ordering::Relaxed),
        dirs: c.dirs.load(Ordering::Relaxed),
        symlinks: c.symlinks.load(Ordering::Relaxed),
        skipped: c.skipped.load(Ordering::Relaxed),
        bytes: c.bytes.load(Ordering::Relaxed),
        data_bytes: c.data_bytes.load(Ordering::Relaxed),
        new_bytes: c.new_bytes.load(Ordering::Relaxed),
        stored_bytes: stored,
        new_chunks: c.new_chunks.load(Ordering::Relaxed),
        chunks: c.chunks.load(Ordering::Relaxed),
        changed_during_read: c.changed.load(Ordering::Relaxed),
        unchanged_files: c.unchanged.load(Ordering::Relaxed),
        stage_files: c.stage_files.load(Ordering::Relaxed),
        stage_bytes: c.stage_bytes.load(Ordering::Relaxed),
        inconsistent_files: c.inconsistent.load(Ordering::Relaxed),
        duration_ns: u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
    };
    let mut record = SnapshotRecord {
        id: uuid::Uuid::now_v7(),
        time_ns,
        host,
        paths: vec![path_str],
        tags: opts.tags.clone(),
        parent,
        tree,
        summary,
        program: concat!("snapkeep ", env!("CARGO_PKG_VERSION")).into(),
        stages: ctx.stages.names.clone(),
        flags: if ctx.counters.inconsistent.load(Ordering::Relaxed) > 0 {
            FLAG_INCONSISTENT
        } else {
            0
        },
    };
    record.summary.stored_bytes += record.to_bytes().len() as u64;
    commit.record(&record)?;
    // A prune that marked packs this snapshot uses (reused from its view, or its own packs
    // before its record existed) took them out of the index; its lock kept them. Index them
    // again, so the snapshot restores through the index (readers also look into marked packs
    // meanwhile, and a later prune would rescue them from the record).
    let late = commit.reindex_marked(&tree);

    let mut warnings = ctx
        .warnings
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    if let Err(e) = late {
        warnings.push(format!(
            "could not re-index blobs of packs a prune marked during this snapshot ({e}); the next prune puts them back"
        ));
    }
    // Merging is housekeeping after the commit; failing it loses nothing.
    if let Err(e) = lock
        .check()
        .and_then(|()| repo.reload_index())
        .and_then(|()| merge(repo.backend().as_ref(), &repo.index(), MERGE_THRESHOLD))
    {
        warnings.push(format!("index merge skipped: {e}"));
    }
    drop(lock);
    Ok(BackupOutcome { record, warnings })
}

/// Checks exclude patterns without taking a snapshot (so callers can refuse early).
pub fn check_excludes(patterns: &[String]) -> Result<()> {
    build_excludes(patterns).map(|_| ())
}

fn build_excludes(patterns: &[String]) -> Result<globset::GlobSet> {
    let mut b = globset::GlobSetBuilder::new();
    for p in patterns {
        let g = globset::GlobBuilder::new(p)
            .literal_separator(false)
            .build()
            .map_err(|e| Error::InvalidInput(format!("exclude pattern '{p}' is not valid: {e}")))?;
        b.add(g);
    }
    b.build()
        .map_err(|e| Error::InvalidInput(format!("exclude patterns cannot be combined: {e}")))
}

impl Ctx<'_> {
    fn warn(&self, msg: String) {
        self.progress.warn(&msg);
        self.warnings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(msg);
    }

    /// True when this caller must store `id` (not in the index, not claimed by another).
    fn claim(&self, id: &BlobId) -> bool {
        if self.index.contains(id) {
            return false;
        }
        let shard = &self.inflight[(id.as_bytes()[0] & 15) as usize];
        shard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(*id)
    }

    fn store(&self, id: BlobId, kind: BlobKind, raw: &[u8]) -> Result<()> {
        if !self.claim(&id) {
            return Ok(());
        }
        let raw_len = u32::try_from(raw.len())
            .map_err(|_| Error::InvalidInput("blob larger than 4 GiB".into()))?;
        match compress(self.compression, raw) {
            Some(z) => self
                .writer
                .add(id, kind, BlobCompression::Zstd, &z, raw_len)?,
            None => self
                .writer
                .add(id, kind, BlobCompression::Raw, raw, raw_len)?,
        }
        if kind == BlobKind::Data {
            self.counters
                .new_bytes
                .fetch_add(raw.len() as u64, Ordering::Relaxed);
            self.counters.new_chunks.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Counts a file reused from the parent snapshot without reading it.
    fn reuse(&self, node: &Node) {
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
    fn prepare_chunk(&self, data: &[u8]) -> Result<Prepared> {
        let id = hash_chunk(data);
        let crc = crc_chunk(data);
        let len = u32::try_from(data.len())
            .map_err(|_| Error::InvalidInput("chunk larger than 4 GiB".into()))?;
        let new = if !self.claim(&id.blob()) {
            NewChunk::Known
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
    /// order, so a restore reads them with one ranged read per run.
    fn store_chunks(
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
struct Prepared {
    cref: ChunkRef,
    crc: u32,
    new: NewChunk,
}

/// Whether a chunk is new to this snapshot, and how it is stored then.
enum NewChunk {
    /// Already stored, or claimed by another file of this snapshot.
    Known,
    /// Claimed by this file: stored raw (incompressible, or compression off).
    Raw,
    /// Claimed by this file: stored as these zstd bytes.
    Zstd(Vec<u8>),
}

/// Size of the sample that decides whether a large chunk is worth compressing.
const SAMPLE: usize = 16 * 1024;

/// zstd-compresses `raw`; `None` when compression is off or does not shrink it.
fn compress(c: Compression, raw: &[u8]) -> Option<Vec<u8>> {
    use std::cell::RefCell;
    thread_local! {
        static COMP: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    }
    let Compression::Zstd(level) = c else {
        return None;
    };
    COMP.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = zstd::bulk::Compressor::new(level).ok().map(|z| (level, z));
        }
        let (_, z) = slot.as_mut()?;
        // Incompressible-data heuristic: a large chunk whose middle 16 KiB does not shrink by
        // 1/16 is stored raw without compressing it all (random or already-compressed data).
        if raw.len() >= 4 * SAMPLE {
            let mid = raw.len() / 2 - SAMPLE / 2;
            let sample = z.compress(&raw[mid..mid + SAMPLE]).ok()?;
            if sample.len() + SAMPLE / 16 >= SAMPLE {
                return None;
            }
        }
        let out = z.compress(raw).ok()?;
        // Keep raw unless compression saves at least 1/32.
        (out.len() + raw.len() / 32 < raw.len()).then_some(out)
    })
}

/// Reuses the parent's entry for an unchanged file, or reads it.
fn capture_one(
    ctx: &Ctx<'_>,
    dir: &Path,
    rel: &str,
    name: &[u8],
    meta: &Meta,
    parent: Option<&Tree>,
) -> Result<Option<Node>> {
    let old = parent::find(parent, name);
    let rel_path = join_rel(rel, name);
    let stage_ok = ctx.parent_checked || !ctx.stages.applies_to(&rel_path);
    if let (Some(old), Some(t), true) = (old, ctx.parent_time_ns, stage_ok)
        && parent::reusable(old, meta, t, &ctx.index)
    {
        ctx.reuse(old);
        return Ok(Some(old.clone()));
    }
    process_file(ctx, dir, &rel_path, name, old)
}

fn join_rel(rel: &str, name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    if rel.is_empty() {
        name.into_owned()
    } else {
        format!("{rel}/{name}")
    }
}

fn process_dir(
    ctx: &Ctx<'_>,
    dir: &ScannedDir,
    rel: &str,
    parent: Option<&Tree>,
) -> Result<TreeId> {
    let do_file = |(name, meta): &&(Vec<u8>, Meta)| -> Result<Option<Node>> {
        if rel.is_empty()
            && let Some(early) = ctx
                .precaptured
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(name)
        {
            return Ok(early);
        }
        capture_one(ctx, &dir.path, rel, name, meta, parent)
    };
    let do_dir = |d: &ScannedDir| -> Result<Node> {
        let sub = match parent::find(parent, &d.name).map(|n| &n.kind) {
            Some(NodeKind::Dir { tree }) => ctx.repo.load_tree(tree).ok(),
            _ => None,
        };
        process_dir(ctx, d, &join_rel(rel, &d.name), sub.as_ref()).map(|t| dir_node(d, t))
    };
    // The layout's capture order: phase 0 files, then phase 1 files together with every
    // subdirectory, then phase 2 files (Alopex: lsm.wal, then sst/ and the rest, then
    // checkpoint.meta last). Within a phase, entries are captured in parallel.
    let mut nodes: Vec<Node> =
        Vec::with_capacity(dir.files.len() + dir.dirs.len() + dir.links.len());
    for phase in 0..=2u8 {
        let files: Vec<&(Vec<u8>, Meta)> = dir
            .files
            .iter()
            .filter(|(n, _)| ctx.layout.phase(&join_rel(rel, n)) == phase)
            .collect();
        if phase == 1 {
            let (f, d) = rayon::join(
                || files.par_iter().map(do_file).collect::<Result<Vec<_>>>(),
                || dir.dirs.par_iter().map(do_dir).collect::<Result<Vec<_>>>(),
            );
            nodes.extend(f?.into_iter().flatten());
            nodes.extend(d?);
        } else {
            nodes.extend(
                files
                    .par_iter()
                    .map(do_file)
                    .collect::<Result<Vec<_>>>()?
                    .into_iter()
                    .flatten(),
            );
        }
    }
    for (name, meta, target) in &dir.links {
        ctx.counters.symlinks.fetch_add(1, Ordering::Relaxed);
        nodes.push(meta.node(
            name.clone(),
            NodeKind::Symlink {
                target: target.clone(),
            },
        ));
    }
    ctx.counters.dirs.fetch_add(1, Ordering::Relaxed);
    let mut tree = Tree { nodes };
    let bytes = tree.to_bytes();
    let id = TreeId::of(&bytes);
    ctx.store(id.blob(), BlobKind::Tree, &bytes)?;
    Ok(id)
}

fn dir_node(d: &ScannedDir, tree: TreeId) -> Node {
    let mut n = d.meta.node(d.name.clone(), NodeKind::Dir { tree });
    n.size = 0;
    n
}

fn open_source(path: &Path) -> std::io::Result<File> {
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

struct FileContent {
    chunks: Vec<ChunkRef>,
    holes: Vec<Extent>,
    crc: u32,
    data_bytes: u64,
}

/// Where the captured bytes of a staged file go while it is read.
struct Tee {
    file: File,
    path: PathBuf,
}

impl Tee {
    fn create(ctx: &Ctx<'_>, size: u64) -> Result<Option<Tee>> {
        let Some(dir) = &ctx.stage_dir else {
            return Ok(None);
        };
        let n = ctx.counters.stage_files.fetch_add(1, Ordering::Relaxed);
        let path = dir.path().join(format!("captured-{n}"));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io("create stage copy", &path, e))?;
        file.set_len(size)
            .map_err(|e| Error::io("size stage copy", &path, e))?;
        Ok(Some(Tee { file, path }))
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether the parent's entry has the same content and passed its stages (check cached).
fn stage_result_cached(ctx: &Ctx<'_>, old: Option<&Node>, content: &FileContent) -> bool {
    ctx.parent_checked
        && matches!(old, Some(Node { kind: NodeKind::File { chunks, holes, .. }, flags, .. })
        if flags & (FLAG_STAGE_FAILED | FLAG_CHANGED_DURING_READ) == 0
            && *chunks == content.chunks
            && *holes == content.holes)
}

fn process_file(
    ctx: &Ctx<'_>,
    dir: &Path,
    rel: &str,
    name: &[u8],
    old: Option<&Node>,
) -> Result<Option<Node>> {
    if ctx.progress.is_cancelled() {
        return Err(Error::Cancelled);
    }
    let path: PathBuf = dir.join(OsStr::from_bytes(name));
    let staged = ctx.stages.applies_to(rel);
    let mut attempt = 0;
    let mut recaptures = 0;
    loop {
        let file = match open_source(&path) {
            Ok(f) => f,
            Err(e) => {
                ctx.warn(format!("skipped {}: cannot open it ({e})", path.display()));
                ctx.counters.skipped.fetch_add(1, Ordering::Relaxed);
                return Ok(None);
            }
        };
        let before = file.metadata().map_err(|e| Error::io("stat", &path, e))?;
        if !before.is_file() {
            ctx.warn(format!(
                "skipped {}: no longer a regular file",
                path.display()
            ));
            ctx.counters.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        let tee = if staged {
            Tee::create(ctx, before.len())?
        } else {
            None
        };
        let content = read_content(
            ctx,
            &file,
            &path,
            before.len(),
            tee.as_ref().map(|t| &t.file),
        )?;
        let after = file.metadata().map_err(|e| Error::io("stat", &path, e))?;
        let stable = Meta::from(&before).same_content_stamp(&Meta::from(&after));
        let last = attempt >= ctx.max_rereads;
        if let (Some(content), true) = (&content, stable || last) {
            // Format stages on exactly the captured bytes, unless the parent already checked
            // this same content.
            let problems = match &tee {
                Some(t) if !stage_result_cached(ctx, old, content) => {
                    ctx.counters
                        .stage_bytes
                        .fetch_add(content.data_bytes, Ordering::Relaxed);
                    ctx.stages.check(rel, &t.path)
                }
                _ => Vec::new(),
            };
            drop(tee);
            if !problems.is_empty() && recaptures < ctx.max_recaptures {
                recaptures += 1;
                ctx.warn(format!(
                    "{} failed a format check as captured ({}); capturing it again ({recaptures}/{})",
                    path.display(),
                    problems.join("; "),
                    ctx.max_recaptures
                ));
                std::thread::sleep(std::time::Duration::from_millis(20 << recaptures.min(6)));
                continue;
            }
            let mut meta = Meta::from(&after);
            meta.size = before.len();
            let mut node = meta.node(
                name.to_vec(),
                NodeKind::File {
                    crc32: content.crc,
                    chunks: content.chunks.clone(),
                    holes: content.holes.clone(),
                },
            );
            if !problems.is_empty() {
                if !ctx.allow_inconsistent {
                    return Err(Error::Inconsistent {
                        path: path.display().to_string(),
                        problems: problems.join("; "),
                    });
                }
                node.flags |= FLAG_STAGE_FAILED;
                ctx.counters.inconsistent.fetch_add(1, Ordering::Relaxed);
                ctx.warn(format!(
                    "{} failed its format check after {} captures ({}); kept and flagged because inconsistent snapshots are allowed",
                    path.display(),
                    recaptures + 1,
                    problems.join("; ")
                ));
            }
            if !stable {
                node.flags |= FLAG_CHANGED_DURING_READ;
                ctx.counters.changed.fetch_add(1, Ordering::Relaxed);
                ctx.warn(format!(
                    "{} changed while it was read ({} attempts); recorded as changed-during-read",
                    path.display(),
                    attempt + 1
                ));
            }
            let c = &ctx.counters;
            c.files.fetch_add(1, Ordering::Relaxed);
            c.bytes.fetch_add(before.len(), Ordering::Relaxed);
            c.data_bytes
                .fetch_add(content.data_bytes, Ordering::Relaxed);
            c.chunks
                .fetch_add(content.chunks.len() as u64, Ordering::Relaxed);
            ctx.progress.advance(0, 1);
            return Ok(Some(node));
        }
        if content.is_none() && last {
            ctx.warn(format!(
                "skipped {}: it kept shrinking while it was read ({} attempts)",
                path.display(),
                attempt + 1
            ));
            ctx.counters.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        attempt += 1;
    }
}

/// Reads and stores a file's content; `Ok(None)` when the file shrank under the read.
fn read_content(
    ctx: &Ctx<'_>,
    file: &File,
    path: &Path,
    size: u64,
    tee: Option<&File>,
) -> Result<Option<FileContent>> {
    let read_err = |e: std::io::Error| Error::io("read", path, e);
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
    let read_err = |e: std::io::Error| Error::io("read", path, e);
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
            let prepared: Vec<Prepared> = if p >= PAR_THRESHOLD && cuts.len() > 1 {
                cuts.par_iter()
                    .map(|&(s, n)| ctx.prepare_chunk(&win[s..s + n]))
                    .collect::<Result<_>>()?
            } else {
                cuts.iter()
                    .map(|&(s, n)| ctx.prepare_chunk(&win[s..s + n]))
                    .collect::<Result<_>>()?
            };
            ctx.store_chunks(win, &cuts, &prepared)?;
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

impl Meta {
    fn node(&self, name: Vec<u8>, kind: NodeKind) -> Node {
        Node {
            name,
            kind,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            mtime_ns: self.mtime_ns,
            ctime_ns: self.ctime_ns,
            inode: self.ino,
            size: self.size,
            flags: 0,
        }
    }
}

impl From<&std::fs::Metadata> for Meta {
    fn from(m: &std::fs::Metadata) -> Self {
        Meta {
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            mtime_ns: stamp_ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: stamp_ns(m.ctime(), m.ctime_nsec()),
            ino: m.ino(),
            size: m.len(),
        }
    }
}
