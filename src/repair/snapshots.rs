//! Salvaging snapshots that a lost or damaged pack broke: each snapshot's trees are
//! rewritten without the files whose chunks are gone and with lost directories kept empty,
//! then committed as new snapshots (tag `repaired`).
//!
//! Decide, then act: the rewrite only computes new trees; nothing is written with `dry_run`.
//! Invariant: an error that is not a loss (a timeout, a permission) stops the repair, so it
//! never drops a file that is only unreachable now.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::{is_loss, rebuild_index};
use crate::commit::Commit;
use crate::error::{Error, Result};
use crate::format::keys;
use crate::format::manifest::{Node, NodeKind, Tree};
use crate::format::pack::{BlobCompression, BlobKind};
use crate::id::{AsBlob, ChunkId, PackId, SnapshotId, TreeId};
use crate::repository::Repository;
use crate::walk::{Step, TreePath, Visitor, Walker, is_too_deep};

/// Options of [`repair_snapshots`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SnapshotRepairOptions {
    /// Also read and hash-check every chunk (otherwise a chunk counts as present when the
    /// index names it and its pack exists).
    pub read_data: bool,
    /// Remove the damaged originals once their repaired copies are committed, and the records
    /// that cannot be read or whose root tree is lost.
    pub forget: bool,
    /// Report only.
    pub dry_run: bool,
}

/// What became of one snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotRepairStatus {
    /// Every tree and chunk is present.
    Intact,
    /// Salvaged into a new snapshot without the lost files and directories.
    Repaired { new_id: Option<SnapshotId> },
    /// Its root tree is lost: nothing to salvage.
    Lost,
}

/// The repair of one snapshot.
#[derive(Clone, Debug)]
pub struct SnapshotRepair {
    pub id: SnapshotId,
    pub status: SnapshotRepairStatus,
    /// Files dropped because a chunk of theirs is missing or damaged.
    pub dropped_files: Vec<String>,
    /// Directories whose tree is lost, kept as empty directories.
    pub emptied_dirs: Vec<String>,
    /// Whether the original record was removed.
    pub forgotten: bool,
}

/// What `repair snapshots` found and did.
#[derive(Clone, Debug, Default)]
pub struct SnapshotsRepairReport {
    pub snapshots: Vec<SnapshotRepair>,
    /// Records that do not decode (removed with `forget`).
    pub unreadable_records: Vec<(SnapshotId, String)>,
    /// Whether the index was rebuilt first (it named packs that are gone).
    pub index_rebuilt: bool,
}

/// A tree's repair: its new id (the same when nothing was lost), the files dropped and the
/// directories emptied below it (paths relative to it).
type Outcome = (TreeId, Vec<String>, Vec<String>);

/// One directory being rewritten: what it keeps, and the entry of its parent that leads here.
struct Frame {
    id: TreeId,
    nodes: Vec<Node>,
    dropped: Vec<String>,
    emptied: Vec<String>,
    via: Option<Node>,
}

/// The repair of a walk's root.
enum Root {
    /// The walk has not ended.
    Pending,
    /// Its tree is lost.
    Lost,
    Done(Outcome),
}

/// The rewrite of snapshot trees, driven by the walker: entries are checked on the way down,
/// each directory's new tree is made when the walk leaves it.
struct Rewrite<'a> {
    repo: &'a Repository,
    packs: HashSet<PackId>,
    read_data: bool,
    chunks: HashMap<ChunkId, bool>,
    /// Tree id → its repair, so a tree shared by many snapshots is rewritten once.
    trees: HashMap<TreeId, Outcome>,
    /// New trees to store.
    new_trees: Vec<(TreeId, Vec<u8>)>,
    stack: Vec<Frame>,
    /// The directory entry whose tree the walk enters next.
    entering: Option<Node>,
    /// The root's repair once the walk is done.
    root: Root,
    /// The first error that is not a loss.
    error: Option<Error>,
}

impl Rewrite<'_> {
    /// Whether a chunk is there; an error that is not a loss is kept in `error` and stops the
    /// repair, so it never drops a file.
    fn chunk_ok(&mut self, id: &ChunkId) -> bool {
        if let Some(ok) = self.chunks.get(id) {
            return *ok;
        }
        let ok = match self.repo.locate(id) {
            Ok(loc) if self.packs.contains(&loc.pack) => {
                if self.read_data {
                    match self.repo.read_blob(id) {
                        Ok(_) => true,
                        Err(e) if is_loss(&e) => false,
                        Err(e) => {
                            self.error.get_or_insert(e);
                            true
                        }
                    }
                } else {
                    true
                }
            }
            Ok(_) => false,
            Err(e) if is_loss(&e) => false,
            Err(e) => {
                self.error.get_or_insert(e);
                true
            }
        };
        self.chunks.insert(*id, ok);
        ok
    }

    /// The repair of the tree `root` (`None` when it is lost).
    fn repair(&mut self, root: &TreeId) -> Result<Option<Outcome>> {
        if let Some(done) = self.trees.get(root) {
            return Ok(Some(done.clone()));
        }
        self.root = Root::Pending;
        let repo = self.repo;
        Walker::new(repo).walk(root, "", self)?;
        Ok(match std::mem::replace(&mut self.root, Root::Pending) {
            Root::Done(o) => Some(o),
            Root::Lost | Root::Pending => None,
        })
    }

    /// Hands a directory's repair to its parent's frame (or keeps it as the root's).
    fn done(&mut self, via: Option<Node>, outcome: Option<Outcome>) {
        let (Some(mut node), Some(parent)) = (via, self.stack.last_mut()) else {
            self.root = outcome.map_or(Root::Lost, Root::Done);
            return;
        };
        let name = String::from_utf8_lossy(&node.name).into_owned();
        let sub = match outcome {
            Some((new, d, e)) => {
                parent
                    .dropped
                    .extend(d.into_iter().map(|p| format!("{name}/{p}")));
                parent
                    .emptied
                    .extend(e.into_iter().map(|p| format!("{name}/{p}")));
                new
            }
            None => {
                let mut empty = Tree::default();
                let bytes = empty.to_bytes();
                let eid = self.repo.codec().tree_id(&bytes);
                self.new_trees.push((eid, bytes));
                parent.emptied.push(name);
                eid
            }
        };
        node.kind = NodeKind::Dir { tree: sub };
        parent.nodes.push(node);
    }
}

impl Visitor for Rewrite<'_> {
    fn tree(&mut self, _: &TreePath, id: &TreeId, tree: &Tree) -> Result<Step> {
        self.stack.push(Frame {
            id: *id,
            nodes: Vec::with_capacity(tree.nodes.len()),
            dropped: Vec::new(),
            emptied: Vec::new(),
            via: self.entering.take(),
        });
        Ok(Step::Enter)
    }

    fn unreadable(&mut self, _: &TreePath, id: &TreeId, error: Error) -> Result<()> {
        let via = self.entering.take();
        // A tree past the depth bound is not lost: stop rather than empty it.
        let outcome = if is_loss(&error) && !is_too_deep(&error) {
            None
        } else {
            self.error.get_or_insert(error);
            Some((*id, Vec::new(), Vec::new()))
        };
        self.done(via, outcome);
        Ok(())
    }

    fn node(&mut self, _: &TreePath, node: &Node) -> Result<Step> {
        match &node.kind {
            NodeKind::File { chunks, .. } => {
                let ok = chunks.iter().all(|c| self.chunk_ok(&c.id));
                let top = self.stack.last_mut().expect("a node lies in an open tree");
                if ok {
                    top.nodes.push(node.clone());
                } else {
                    top.dropped
                        .push(String::from_utf8_lossy(&node.name).into_owned());
                }
                Ok(Step::Skip)
            }
            NodeKind::Dir { tree } => {
                if let Some(done) = self.trees.get(tree).cloned() {
                    self.done(Some(node.clone()), Some(done));
                    return Ok(Step::Skip);
                }
                self.entering = Some(node.clone());
                Ok(Step::Enter)
            }
            NodeKind::Symlink { .. } => {
                let top = self.stack.last_mut().expect("a node lies in an open tree");
                top.nodes.push(node.clone());
                Ok(Step::Skip)
            }
        }
    }

    fn leave(&mut self, _: &TreePath, _: &TreeId) -> Result<()> {
        let f = self.stack.pop().expect("leave follows its tree");
        let new_id = if f.dropped.is_empty() && f.emptied.is_empty() {
            f.id
        } else {
            let mut t = Tree { nodes: f.nodes };
            let bytes = t.to_bytes();
            let nid = self.repo.codec().tree_id(&bytes);
            self.new_trees.push((nid, bytes));
            nid
        };
        let outcome = (new_id, f.dropped, f.emptied);
        self.trees.insert(f.id, outcome.clone());
        self.done(f.via, Some(outcome));
        Ok(())
    }
}

/// Salvages what a lost or damaged pack breaks: each snapshot whose files or directories
/// cannot be read gets a repaired copy without them (tag `repaired`, same time, host and
/// paths). Decide, then act: with `dry_run` nothing is written.
pub fn repair_snapshots(
    repo: &Repository,
    opts: &SnapshotRepairOptions,
) -> Result<SnapshotsRepairReport> {
    let backend = repo.backend();
    // Records first, then the lock and the index, then the packs: everything a listed record
    // needs is in the later listings (docs/DESIGN.md, "Garbage collection", invariant 9).
    let (records, bad) = repo.snapshots()?;
    if let Some((id, e)) = bad.iter().find(|(_, e)| !is_loss(e)) {
        return Err(crate::error::Error::InvalidInput(format!(
            "snapshot record {id} cannot be read now ({e}); retry the repair when the store answers"
        )));
    }
    let lock = if opts.dry_run {
        None
    } else {
        let l = crate::lock::acquire_job(backend, "repair")?;
        repo.reload_index()?;
        Some(l)
    };
    let packs: HashSet<PackId> = backend
        .list(keys::Kind::Pack.prefix())?
        .into_iter()
        .filter_map(|o| o.key.rsplit('/').next()?.parse().ok())
        .collect();
    // Index entries that name lost packs would shadow the repaired trees stored below (and
    // keep new snapshots from storing those chunks again): rebuild the index from the packs
    // first.
    let dangling = repo
        .index()
        .files()
        .iter()
        .any(|f| f.packs().iter().any(|p| !packs.contains(p)));
    let mut index_rebuilt = false;
    if dangling && !opts.dry_run {
        rebuild_index(repo, false)?;
        index_rebuilt = true;
    }
    let mut walk = Rewrite {
        repo,
        packs,
        read_data: opts.read_data,
        chunks: HashMap::new(),
        trees: HashMap::new(),
        new_trees: Vec::new(),
        stack: Vec::new(),
        entering: None,
        root: Root::Pending,
        error: None,
    };
    let mut report = SnapshotsRepairReport {
        unreadable_records: bad.iter().map(|(id, e)| (*id, e.to_string())).collect(),
        index_rebuilt,
        ..SnapshotsRepairReport::default()
    };
    let mut commits = Vec::new();
    for rec in records {
        let (status, dropped, emptied) = match walk.repair(&rec.tree)? {
            None => (SnapshotRepairStatus::Lost, Vec::new(), Vec::new()),
            Some((new, d, e)) if new == rec.tree => (SnapshotRepairStatus::Intact, d, e),
            Some((new, d, e)) => {
                let mut fixed = rec.clone();
                fixed.id = uuid::Uuid::now_v7();
                fixed.tree = new;
                fixed.summary.files = fixed.summary.files.saturating_sub(d.len() as u64);
                if !fixed.tags.iter().any(|t| t == "repaired") {
                    fixed.tags.push("repaired".into());
                }
                commits.push((rec.id, fixed));
                (SnapshotRepairStatus::Repaired { new_id: None }, d, e)
            }
        };
        report.snapshots.push(SnapshotRepair {
            id: rec.id,
            status,
            dropped_files: dropped,
            emptied_dirs: emptied,
            forgotten: false,
        });
    }
    if let Some(e) = walk.error {
        return Err(e);
    }
    let Some(lock) = lock else {
        return Ok(report);
    };
    act(repo, &lock, &walk.new_trees, &commits, *opts, &mut report)?;
    Ok(report)
}

/// Carries out a repair: trees → index → records (the commit protocol), then the originals
/// go when asked.
fn act(
    repo: &Repository,
    lock: &crate::lock::LockGuard,
    new_trees: &[(TreeId, Vec<u8>)],
    commits: &[(SnapshotId, crate::format::manifest::SnapshotRecord)],
    opts: SnapshotRepairOptions,
    report: &mut SnapshotsRepairReport,
) -> Result<()> {
    let backend = repo.backend();
    let index = repo.index();
    let writer = crate::pack::PackWriter::new(
        Arc::clone(backend),
        repo.codec().clone(),
        u64::from(repo.config().pack_size),
    );
    writer.avoid(crate::lock::marked_packs(
        backend.as_ref(),
        &lock.record().seen_marks,
    )?);
    let mut stored = HashSet::new();
    for (id, bytes) in new_trees {
        if index.contains(id) || !stored.insert(*id) {
            continue;
        }
        let len = u32::try_from(bytes.len())
            .map_err(|_| crate::error::Error::InvalidInput("tree larger than 4 GiB".into()))?;
        let stored = repo.codec().seal_blob(BlobKind::Tree, &id.blob(), bytes)?;
        writer.add(
            id.blob(),
            BlobKind::Tree,
            BlobCompression::Raw,
            &stored,
            len,
        )?;
    }
    let sealed = writer.finish()?;
    let commit = Commit::new(repo, lock, &index, &sealed);
    commit.index_packs()?;
    repo.reload_index()?;
    for (old, fixed) in commits {
        commit.record(fixed)?;
        if let Some(r) = report.snapshots.iter_mut().find(|r| r.id == *old) {
            r.status = SnapshotRepairStatus::Repaired {
                new_id: Some(fixed.id),
            };
        }
    }
    if opts.forget {
        for r in &mut report.snapshots {
            if r.status != SnapshotRepairStatus::Intact {
                repo.forget(&[r.id])?;
                r.forgotten = true;
            }
        }
        let ids: Vec<SnapshotId> = report
            .unreadable_records
            .iter()
            .map(|(id, _)| *id)
            .collect();
        repo.forget(&ids)?;
    }
    Ok(())
}
