//! Restoring a snapshot into a new or empty directory.
//!
//! Owns: [`RestorePlan`] (the trees walked and checked: every name one safe component, unique
//! per directory) and its execution: directories created first, files written in parallel
//! (chunks of a large file in parallel too), sparse where the source had holes, symlinks last,
//! directory modes and times last of all (deepest first), so a read-only directory can still
//! be filled.
//!
//! Invariants: every chunk is checked against its id and every file against its size and
//! CRC32 as it is written; nothing is written outside the target: names are single safe
//! components, files are created with `O_CREAT | O_EXCL | O_NOFOLLOW`, and since names are
//! unique per directory no path ever passes through a symlink this restore created.

use std::ffi::OsStr;
use std::fs::{File, FileTimes, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::format::index_file::BlobLocation;
use crate::format::keys;
use crate::format::manifest::{ChunkRef, Extent, Node, NodeKind};
use crate::hasher::FileCrc;
use crate::id::{PackId, SnapshotId, TreeId};
use crate::progress::{Phase, Progress};
use crate::repository::Repository;
use crate::stage::{Layout, StageSelection, StageSet};

mod in_place;

/// Dense files at least this large are preallocated before their chunks are written.
const PREALLOCATE_FROM: u64 = 1 << 20;

/// Options for [`restore`].
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// Do not restore owner and group even when running as root.
    pub skip_owner: bool,
    /// Restore into an existing directory (a database's): rewrite only files whose content
    /// differs (atomically per file), delete what the snapshot does not have, never touch
    /// the lock file or `.lifecycle/`.
    pub in_place: bool,
    /// With `in_place`: proceed even while a process holds the database's lock.
    pub force: bool,
    /// Format stages run on the restored files (default: by detected layout).
    pub stages: StageSelection,
}

/// What a restore did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Logical bytes of restored files.
    pub bytes: u64,
    /// Bytes of chunk data written.
    pub data_bytes: u64,
    /// In place: files already identical (not rewritten).
    pub unchanged: u64,
    /// In place: entries deleted because the snapshot does not have them.
    pub deleted: u64,
    /// Problems the format stages found in the restored files (`<path>: <problem>`).
    pub stage_problems: Vec<String>,
    /// Files the format stages checked.
    pub stage_files: u64,
    pub duration_ns: u64,
}

struct FileJob {
    path: PathBuf,
    display: String,
    node: Node,
}

/// Everything a restore will create, checked before anything is written.
pub struct RestorePlan {
    dirs: Vec<(PathBuf, Node)>,
    files: Vec<FileJob>,
    links: Vec<(PathBuf, Node)>,
    total_bytes: u64,
}

impl RestorePlan {
    /// Walks the snapshot's trees below `target` and checks every name.
    pub fn new(repo: &Repository, tree: &TreeId, target: &Path) -> Result<Self> {
        let mut plan = RestorePlan {
            dirs: Vec::new(),
            files: Vec::new(),
            links: Vec::new(),
            total_bytes: 0,
        };
        plan.add_tree(repo, tree, target, "", 0)?;
        Ok(plan)
    }

    fn add_tree(
        &mut self,
        repo: &Repository,
        id: &TreeId,
        dir: &Path,
        rel: &str,
        depth: u32,
    ) -> Result<()> {
        if depth > 4096 {
            return Err(Error::corrupt(
                format!("tree {}", id.short()),
                "directories nested deeper than 4096",
            ));
        }
        let tree = repo.load_tree(id)?;
        for node in tree.nodes {
            if !Node::name_is_safe(&node.name) {
                return Err(Error::InvalidInput(format!(
                    "snapshot entry '{}' in directory '/{rel}' is not a safe file name; restore refused",
                    String::from_utf8_lossy(&node.name).escape_debug()
                )));
            }
            let path = dir.join(OsStr::from_bytes(&node.name));
            let display = format!("{rel}/{}", String::from_utf8_lossy(&node.name));
            match &node.kind {
                NodeKind::Dir { tree } => {
                    let tree = *tree;
                    self.dirs.push((path.clone(), node));
                    self.add_tree(repo, &tree, &path, &display, depth + 1)?;
                }
                NodeKind::File { .. } => {
                    self.total_bytes += node.size;
                    self.files.push(FileJob {
                        path,
                        display,
                        node,
                    });
                }
                NodeKind::Symlink { .. } => self.links.push((path, node)),
            }
        }
        Ok(())
    }

    /// Number of files to write.
    #[must_use]
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Logical bytes to write.
    #[must_use]
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }
}

/// Restores snapshot `id` into `target`, which must not exist or be an empty directory.
pub fn restore(
    repo: &Repository,
    id: &SnapshotId,
    target: &Path,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreStats> {
    let started = Instant::now();
    let rec = repo.load_snapshot(id)?;
    StageSet::resolve(&opts.stages, Layout::Generic)?;
    let _lock = crate::lock::acquire_reader(repo, "restore", progress)?;
    if opts.in_place && target.is_dir() {
        let mut stats = in_place::restore_in_place(repo, &rec.tree, target, opts, progress)?;
        run_stages(target, opts, &mut stats)?;
        stats.duration_ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        return Ok(stats);
    }
    // Restore into a private staging directory and move the result into place only when every
    // file has been written and checked. A new target is the staging directory renamed; an
    // existing empty target (perhaps a mount point, owned by a service user) keeps its own
    // inode, owner and mode: staging is made inside it and its entries are moved up.
    let existing = prepare_target(target)?.is_some();
    let staging = if existing {
        let dir = target.join(format!(
            ".snapkeep-restore-{}-{}",
            std::process::id(),
            crate::clock::now_ns()
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::io("create restore staging directory", &dir, e))?;
        dir
    } else {
        staging_dir_for(target)?
    };
    let result = restore_into(repo, &rec.tree, &staging, opts, progress).and_then(|stats| {
        if existing {
            move_entries_up(&staging, target)?;
            std::fs::remove_dir(&staging)
                .map_err(|e| Error::io("remove restore staging directory", &staging, e))?;
        } else {
            std::fs::rename(&staging, target)
                .map_err(|e| Error::io("move the restored tree into", target, e))?;
        }
        Ok(stats)
    });
    let mut stats = match result {
        Ok(stats) => stats,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            if existing {
                clear_dir(target, &staging);
            }
            return Err(e);
        }
    };
    run_stages(target, opts, &mut stats)?;
    stats.duration_ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    Ok(stats)
}

/// Moves every entry of `staging` into `target` (same filesystem: renames).
fn move_entries_up(staging: &Path, target: &Path) -> Result<()> {
    let rd = std::fs::read_dir(staging).map_err(|e| Error::io("list", staging, e))?;
    for e in rd {
        let e = e.map_err(|e| Error::io("list", staging, e))?;
        let dest = target.join(e.file_name());
        std::fs::rename(e.path(), &dest).map_err(|err| Error::io("move into place", &dest, err))?;
    }
    Ok(())
}

/// After a failed restore into an existing empty target: removes what was moved into it, so
/// it is empty again (the target was empty before, so everything in it is ours).
fn clear_dir(target: &Path, staging: &Path) {
    if let Ok(rd) = std::fs::read_dir(target) {
        for e in rd.flatten() {
            let p = e.path();
            if p != staging {
                let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
            }
        }
    }
}

/// A new private directory beside `target` to restore into.
fn staging_dir_for(target: &Path) -> Result<PathBuf> {
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&parent)
        .map_err(|e| Error::io("create the parent of restore target", &parent, e))?;
    let name = target
        .file_name()
        .map_or_else(|| "restore".into(), |n| n.to_string_lossy().into_owned());
    let staging = parent.join(format!(
        ".{name}.snapkeep-restore-{}-{}",
        std::process::id(),
        crate::clock::now_ns()
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(|e| Error::io("create restore staging directory", &staging, e))?;
    Ok(staging)
}

/// Writes the whole tree into the existing empty directory `dir`.
fn restore_into(
    repo: &Repository,
    tree: &TreeId,
    dir: &Path,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreStats> {
    let plan = RestorePlan::new(repo, tree, dir)?;
    progress.phase(Phase::Restore, plan.total_bytes, plan.files.len() as u64);
    let owner = !opts.skip_owner && rustix::process::geteuid().is_root();

    for (path, _) in &plan.dirs {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(path)
            .map_err(|e| Error::io("create directory", path, e))?;
    }
    let data_bytes = AtomicU64::new(0);
    plan.files
        .par_iter()
        .try_for_each(|job| restore_file(repo, job, owner, progress, &data_bytes))?;
    for (path, node) in &plan.links {
        restore_link(path, node, owner)?;
    }
    for (path, node) in plan.dirs.iter().rev() {
        finish_dir(path, node, owner)?;
    }
    let stats = RestoreStats {
        files: plan.files.len() as u64,
        dirs: plan.dirs.len() as u64,
        symlinks: plan.links.len() as u64,
        bytes: plan.total_bytes,
        data_bytes: data_bytes.load(Ordering::Relaxed),
        ..RestoreStats::default()
    };
    Ok(stats)
}

/// Runs the format stages on the restored tree (the layout detected in `target`).
fn run_stages(target: &Path, opts: &RestoreOptions, stats: &mut RestoreStats) -> Result<()> {
    let stages = StageSet::resolve(&opts.stages, Layout::detect(target))?;
    for entry in walkdir::WalkDir::new(target)
        .follow_links(false)
        .sort_by_file_name()
    {
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(target) else {
            continue;
        };
        let rel = rel.to_string_lossy();
        if stages.applies_to(&rel) {
            stats.stage_files += 1;
            for p in stages.check(&rel, entry.path()) {
                stats.stage_problems.push(format!("{rel}: {p}"));
            }
        }
    }
    Ok(())
}

use std::os::unix::fs::DirBuilderExt;

/// Checks that `target` is absent or an empty directory; returns the mode of an existing one.
fn prepare_target(target: &Path) -> Result<Option<u32>> {
    match std::fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => {
            let mut rd = std::fs::read_dir(target).map_err(|e| Error::io("list", target, e))?;
            if rd.next().is_some() {
                return Err(Error::InvalidInput(format!(
                    "restore target {} is not empty; give a new or empty directory (or --in-place)",
                    target.display()
                )));
            }
            Ok(Some(m.permissions().mode() & 0o7777))
        }
        Ok(_) => Err(Error::InvalidInput(format!(
            "restore target {} exists and is not a directory; give a new or empty directory",
            target.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("stat restore target", target, e)),
    }
}

fn time_of(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
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

/// Largest ranged read of a restore: chunks stored back to back in one pack are fetched
/// together up to this many stored bytes (one run in flight per worker bounds memory; on S3
/// a run stays one GET, below the size at which a range is split into parts).
const RUN_BYTES: u64 = 2 << 20;

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

/// Writes a file node's content into `file` (created empty at `path`): sparse where the node
/// has holes, every chunk checked against its id, the whole file against its size and CRC32.
/// Returns the data bytes written.
fn write_content(
    repo: &Repository,
    file: &File,
    path: &Path,
    node: &Node,
    display: &str,
    progress: &dyn Progress,
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
    let positions = chunk_positions(chunks, holes);
    // Damage is reported against the file it breaks; other failures (a missing pack, an I/O
    // error) keep their own cause and advice.
    let blame = |c: &ChunkRef, e: Error| match e {
        Error::HashMismatch { .. } | Error::Corrupt { .. } => Error::corrupt(
            format!("file '{display}'"),
            format!("chunk {} does not match its id", c.id.short()),
        ),
        e if e.is_not_found() => Error::corrupt(
            format!("file '{display}'"),
            format!("chunk {} cannot be read: {e}", c.id.short()),
        ),
        other => other,
    };
    let put = |c: &ChunkRef, pos: u64, data: &[u8]| -> Result<u32> {
        if data.len() != c.len as usize {
            return Err(Error::corrupt(
                format!("file '{display}'"),
                format!(
                    "chunk {} has {} bytes, the tree says {}",
                    c.id.short(),
                    data.len(),
                    c.len
                ),
            ));
        }
        file.write_all_at(data, pos)
            .map_err(|e| Error::io("write", path, e))?;
        progress.advance(data.len() as u64, 0);
        Ok(crc32fast::hash(data))
    };
    let write_one = |k: usize| -> Result<u32> {
        let c = &chunks[k];
        let data = repo.read_blob(&c.id).map_err(|e| blame(c, e))?;
        put(c, positions[k], &data)
    };
    // Chunks stored back to back in one pack are fetched with one ranged read (a remote
    // store pays per request); each is still decoded and checked against its id on its own.
    let write_run = |run: &Run| -> Result<Vec<u32>> {
        let Some((pack, start, len)) = run.read else {
            return run.chunks.clone().map(write_one).collect();
        };
        let bytes = match repo.backend().get_range(&keys::pack(&pack), start, len) {
            Ok(b) if b.len() as u64 == len => b,
            // A pack gone (a prune repacked it meanwhile), short or unreadable: chunk by
            // chunk, in parallel, each looked up again (index reload, marked packs) and named
            // when it cannot be read.
            _ => {
                return run.chunks.clone().into_par_iter().map(write_one).collect();
            }
        };
        let one = |(k, loc): (usize, &BlobLocation)| -> Result<u32> {
            let c = &chunks[k];
            // In bounds: the run's locations tile `start..start + len` exactly.
            let from = usize::try_from(u64::from(loc.offset) - start).unwrap_or(usize::MAX);
            let stored = bytes
                .get(from..from.saturating_add(loc.length as usize))
                .unwrap_or_default();
            let data = crate::pack::decode_blob_cow(stored, loc, &c.id).map_err(|e| blame(c, e))?;
            put(c, positions[k], &data)
        };
        // One after another: a worker holds one run's buffer at a time (runs of a file and
        // files go in parallel), which bounds memory to a run per worker.
        run.chunks.clone().zip(run.locs.iter()).map(one).collect()
    };
    let runs = plan_runs(repo, chunks);
    let crcs: Vec<u32> = if runs.len() > 1 {
        runs.par_iter()
            .map(write_run)
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect()
    } else {
        runs.iter()
            .map(write_run)
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect()
    };
    // File CRC over the logical content: chunk CRCs and zero runs in file order.
    let mut crc = FileCrc::new();
    let mut pos = 0u64;
    let mut written = 0u64;
    let mut hi = holes.iter().peekable();
    for ((c, &at), cc) in chunks.iter().zip(&positions).zip(&crcs) {
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
                format!("file '{display}'"),
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
            format!("file '{display}'"),
            format!("chunks and holes cover {pos} bytes, the file has {size}"),
        ));
    }
    let actual = crc.finalize();
    if actual != *crc32 {
        return Err(Error::corrupt(
            format!("file '{display}'"),
            format!("restored CRC32 {actual:08x} differs from the recorded {crc32:08x}"),
        ));
    }
    Ok(written)
}

/// Creates `dest` for writing: it must not exist (`O_EXCL`), is never a symlink followed
/// (`O_NOFOLLOW`), and is private (0600) until its metadata is restored.
fn create_private(dest: &Path) -> Result<File> {
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

fn restore_file(
    repo: &Repository,
    job: &FileJob,
    owner: bool,
    progress: &dyn Progress,
    data_bytes: &AtomicU64,
) -> Result<()> {
    if !matches!(job.node.kind, NodeKind::File { .. }) {
        return Ok(());
    }
    if progress.is_cancelled() {
        return Err(Error::Cancelled);
    }
    let written = write_file_at(repo, &job.node, &job.display, &job.path, owner, progress)?;
    data_bytes.fetch_add(written, Ordering::Relaxed);
    progress.advance(0, 1);
    Ok(())
}

/// Creates `dest` (which must not exist) with the node's content, owner, mode and mtime.
fn write_file_at(
    repo: &Repository,
    node: &Node,
    display: &str,
    dest: &Path,
    owner: bool,
    progress: &dyn Progress,
) -> Result<u64> {
    let file = create_private(dest)?;
    let written = write_content(repo, &file, dest, node, display, progress)?;
    set_file_meta(&file, dest, node, owner)?;
    Ok(written)
}

fn set_file_meta(file: &File, path: &Path, node: &Node, owner: bool) -> Result<()> {
    if owner {
        std::os::unix::fs::fchown(file, Some(node.uid), Some(node.gid))
            .map_err(|e| Error::io("set owner of", path, e))?;
    }
    file.set_permissions(std::fs::Permissions::from_mode(node.mode))
        .map_err(|e| Error::io("set mode of", path, e))?;
    file.set_times(FileTimes::new().set_modified(time_of(node.mtime_ns)))
        .map_err(|e| Error::io("set times of", path, e))
}

fn set_mtime_nofollow(path: &Path, ns: i64) -> Result<()> {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, UTIME_OMIT, utimensat};
    let ts = Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: ns.div_euclid(1_000_000_000),
            tv_nsec: ns.rem_euclid(1_000_000_000),
        },
    };
    utimensat(CWD, path, &ts, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| Error::io("set times of", path, e.into()))
}

fn restore_link(path: &Path, node: &Node, owner: bool) -> Result<()> {
    let NodeKind::Symlink { target } = &node.kind else {
        return Ok(());
    };
    std::os::unix::fs::symlink(OsStr::from_bytes(target), path)
        .map_err(|e| Error::io("create symlink", path, e))?;
    if owner {
        std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid))
            .map_err(|e| Error::io("set owner of", path, e))?;
    }
    set_mtime_nofollow(path, node.mtime_ns)
}

fn finish_dir(path: &Path, node: &Node, owner: bool) -> Result<()> {
    let dir = File::open(path).map_err(|e| Error::io("open directory", path, e))?;
    if owner {
        std::os::unix::fs::fchown(&dir, Some(node.uid), Some(node.gid))
            .map_err(|e| Error::io("set owner of", path, e))?;
    }
    dir.set_permissions(std::fs::Permissions::from_mode(node.mode))
        .map_err(|e| Error::io("set mode of", path, e))?;
    set_mtime_nofollow(path, node.mtime_ns)
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
