//! A restore into a new (staging) directory, streamed as the trees are walked: memory holds
//! one window of files and the open directories, not the whole snapshot.
//!
//! Owns: [`restore_into`]: the one walker visits the snapshot depth first; a directory is
//! created when it is met, a symlink made at once, a file queued; a full window (by files or
//! chunks) is written in parallel (from a remote store, small files in pack-ordered batches,
//! see `batch`), then the directories left since the last window get their mode, owner and
//! mtime, children before parents.
//!
//! Invariants: every name is checked before its entry is made; a directory's metadata is set
//! only after every entry below it exists (a read-only directory is filled first); all of
//! this happens in the staging directory, which the caller removes after any failure, so a
//! bad name or damaged tree found halfway leaves the target as it was.
//!
//! Must not: decide in-place restores (they need the whole plan to compare with the target).

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use super::plan::{FileJob, check_name, unreadable_tree};
use super::{RestoreStats, batch, finish_dir, restore_file, restore_link};
use crate::error::{Error, Result};
use crate::format::manifest::{Node, NodeKind};
use crate::id::TreeId;
use crate::progress::Progress;
use crate::repository::Repository;
use crate::walk::{Step, TreePath, Visitor, Walker};

/// Files written together (in parallel, batched by pack from a remote store).
const WINDOW_FILES: usize = 4096;

/// Chunk references a window holds at most (a few very large files fill it alone).
const WINDOW_CHUNKS: usize = 1 << 16;

/// Directories whose metadata waits for the window's files, at most.
const WINDOW_DIRS: usize = 4096;

/// Writes the tree `tree` into the existing empty directory `dir`.
pub(super) fn restore_into(
    repo: &Repository,
    tree: &TreeId,
    dir: &Path,
    owner: bool,
    progress: &dyn Progress,
) -> Result<RestoreStats> {
    let mut r = Fresh {
        repo,
        target: dir,
        owner,
        progress,
        remote: batch::remote(repo),
        files: Vec::new(),
        chunks: 0,
        open: Vec::new(),
        left: Vec::new(),
        data_bytes: AtomicU64::new(0),
        stats: RestoreStats::default(),
    };
    Walker::new(repo).walk(tree, "", &mut r)?;
    r.flush()?;
    r.stats.data_bytes = r.data_bytes.load(Ordering::Relaxed);
    Ok(r.stats)
}

/// One streamed restore.
struct Fresh<'a> {
    repo: &'a Repository,
    target: &'a Path,
    owner: bool,
    progress: &'a dyn Progress,
    remote: bool,
    /// The window: files queued, not yet written.
    files: Vec<FileJob>,
    /// Chunk references of the queued files.
    chunks: usize,
    /// Directories being walked (their metadata set when they are left and their files
    /// written).
    open: Vec<(PathBuf, Node)>,
    /// Directories left whose files may still be queued, children before parents.
    left: Vec<(PathBuf, Node)>,
    data_bytes: AtomicU64,
    stats: RestoreStats,
}

impl Fresh<'_> {
    /// Writes the queued files, then finishes the directories left so far.
    fn flush(&mut self) -> Result<()> {
        let files = std::mem::take(&mut self.files);
        self.chunks = 0;
        let (repo, owner, progress, data_bytes) =
            (self.repo, self.owner, self.progress, &self.data_bytes);
        if self.remote {
            // Small files come in batches, one read each; the others one by one.
            let (batches, alone) = batch::plan(repo, &files);
            batches.par_iter().try_for_each(|b| {
                let ahead = b.fetch(repo);
                b.members.iter().try_for_each(|&k| {
                    restore_file(repo, &files[k], owner, progress, data_bytes, ahead.as_ref())
                })
            })?;
            alone.par_iter().try_for_each(|&k| {
                restore_file(repo, &files[k], owner, progress, data_bytes, None)
            })?;
        } else {
            files
                .par_iter()
                .try_for_each(|job| restore_file(repo, job, owner, progress, data_bytes, None))?;
        }
        for (path, node) in self.left.drain(..) {
            finish_dir(&path, &node, owner, false)?;
        }
        Ok(())
    }
}

impl Visitor for Fresh<'_> {
    fn unreadable(&mut self, path: &TreePath, id: &TreeId, error: Error) -> Result<()> {
        Err(unreadable_tree(path, id, error))
    }

    fn node(&mut self, path: &TreePath, node: &Node) -> Result<Step> {
        check_name(path, node)?;
        if self.progress.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let dest = self.target.join(path.relative());
        match &node.kind {
            NodeKind::Dir { .. } => {
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&dest)
                    .map_err(|e| Error::io("create directory", &dest, e))?;
                self.stats.dirs += 1;
                self.open.push((dest, node.clone()));
            }
            NodeKind::File { chunks, .. } => {
                self.stats.files += 1;
                self.stats.bytes += node.size;
                self.chunks += chunks.len();
                self.files.push(FileJob {
                    path: dest,
                    display: path.lossy(),
                    node: node.clone(),
                });
                if self.files.len() >= WINDOW_FILES || self.chunks >= WINDOW_CHUNKS {
                    self.flush()?;
                }
            }
            NodeKind::Symlink { .. } => {
                restore_link(&dest, node, self.owner)?;
                self.stats.symlinks += 1;
            }
        }
        Ok(Step::Enter)
    }

    fn leave(&mut self, _path: &TreePath, _id: &TreeId) -> Result<()> {
        // The root's leave comes last, with no directory of its own open (the caller
        // finishes the top directory).
        if let Some(dir) = self.open.pop() {
            self.left.push(dir);
            if self.left.len() >= WINDOW_DIRS {
                self.flush()?;
            }
        }
        Ok(())
    }
}
