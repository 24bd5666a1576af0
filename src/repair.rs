//! Repairs: rebuilding the index from pack trailers, and salvaging snapshots that a lost or
//! damaged pack broke.
//!
//! Decide, then act: [`plan_index_rebuild`] reads every pack trailer and returns the entries
//! and the packs it could not read; [`repair_index`] writes them as one index file and only
//! then deletes the old index files.

use crate::commit::Commit;
use crate::error::Result;
use crate::format::index_file::BlobLocation;
use crate::format::keys;
use crate::id::{AsBlob, BlobId, ChunkId, IndexId, PackId, SnapshotId, TreeId};
use crate::pack::{location, read_pack_entries};
use crate::repository::Repository;

/// What a rebuild found.
#[derive(Clone, Debug, Default)]
pub struct IndexRebuild {
    pub entries: Vec<(BlobId, BlobLocation)>,
    pub packs_read: u64,
    /// Packs whose trailer could not be read, with the reason (their blobs are not indexed).
    pub damaged_packs: Vec<(String, String)>,
    /// Index files that the rebuild replaces.
    pub old_index_files: Vec<String>,
}

/// Reads every pack trailer (in parallel) and collects the index entries they describe.
pub fn plan_index_rebuild(repo: &Repository) -> Result<IndexRebuild> {
    use rayon::prelude::*;
    let backend = repo.backend();
    // Index files first: packs are written before the index that names them, so every index
    // file listed here has its packs in the listing below, and replacing it loses nothing.
    let old_index_files: Vec<String> = backend
        .list(keys::Kind::Index.prefix())?
        .into_iter()
        .map(|o| o.key)
        .collect();
    let listed = backend.list(keys::Kind::Pack.prefix())?;
    let results: Vec<_> = listed
        .par_iter()
        .map(|o| {
            let name = o.key.rsplit('/').next().unwrap_or_default();
            match name.parse::<PackId>() {
                Ok(id) => read_pack_entries(backend.as_ref(), &id, o.size)
                    .map(|es| {
                        es.iter()
                            .map(|e| (e.id, location(id, e)))
                            .collect::<Vec<_>>()
                    })
                    .map_err(|e| (o.key.clone(), e.to_string())),
                Err(_) => Err((o.key.clone(), "name is not a pack id".to_string())),
            }
        })
        .collect();
    let mut plan = IndexRebuild::default();
    for r in results {
        match r {
            Ok(es) => {
                plan.packs_read += 1;
                plan.entries.extend(es);
            }
            Err(d) => plan.damaged_packs.push(d),
        }
    }
    plan.entries
        .sort_by(|a, b| a.0.cmp(&b.0).then(a.1.pack.cmp(&b.1.pack)));
    plan.entries.dedup_by(|a, b| a.0 == b.0);
    plan.old_index_files = old_index_files;
    Ok(plan)
}

/// Plans and (unless `dry_run`) writes a rebuilt index under the prune lock: a prune must not
/// delete a pack between the trailer read and the index write, or the index would name it.
pub fn rebuild_index(repo: &Repository, dry_run: bool) -> Result<(IndexRebuild, Option<IndexId>)> {
    if dry_run {
        return Ok((plan_index_rebuild(repo)?, None));
    }
    let mut notes = Vec::new();
    let lock = crate::lock::acquire_prune(repo.backend(), crate::lock::STALE_AFTER, &mut notes)
        .map_err(|e| match e {
            crate::error::Error::Locked(m) => crate::error::Error::Locked(format!(
                "{m} (repair index waits for prune: it must not index packs a prune deletes)"
            )),
            other => other,
        })?;
    let plan = plan_index_rebuild(repo)?;
    lock.check()?;
    let new = repair_index(repo, &plan)?;
    Ok((plan, new))
}

/// Writes the rebuilt index, then deletes the index files it replaces (callers hold the prune
/// lock: see [`rebuild_index`]).
pub fn repair_index(repo: &Repository, plan: &IndexRebuild) -> Result<Option<IndexId>> {
    let backend = repo.backend();
    let new = crate::index::write_index(backend.as_ref(), plan.entries.clone())?.map(|(id, _)| id);
    let keep = new.map(|id| keys::index(&id));
    for key in &plan.old_index_files {
        if Some(key) != keep.as_ref() {
            backend.delete(key)?;
        }
    }
    repo.reload_index()?;
    Ok(new)
}

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

/// Salvages what a lost or damaged pack breaks: each snapshot whose files or directories
/// cannot be read gets a repaired copy without them (tag `repaired`, same time, host and
/// paths). Decide, then act: with `dry_run` nothing is written.
pub fn repair_snapshots(
    repo: &Repository,
    opts: &SnapshotRepairOptions,
) -> Result<SnapshotsRepairReport> {
    use std::collections::{HashMap, HashSet};
    use std::sync::Arc;

    use crate::format::manifest::{NodeKind, Tree};
    use crate::format::pack::{BlobCompression, BlobKind};

    struct Walk<'a> {
        repo: &'a Repository,
        packs: HashSet<PackId>,
        read_data: bool,
        chunks: HashMap<ChunkId, bool>,
        /// Tree id → (repaired tree id, dropped files, emptied dirs; paths relative to it).
        trees: HashMap<TreeId, (TreeId, Vec<String>, Vec<String>)>,
        /// New trees to store.
        new_trees: Vec<(TreeId, Vec<u8>)>,
        /// The first error that is not a loss.
        error: Option<crate::error::Error>,
    }

    impl Walk<'_> {
        /// Whether a chunk is there; an error that is not a loss (a timeout, a permission)
        /// is kept in `error` and stops the repair, so it never drops a file.
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

        /// The repaired id of `tree`, or `None` when it cannot be read.
        fn tree(&mut self, id: &TreeId) -> Option<(TreeId, Vec<String>, Vec<String>)> {
            if let Some(done) = self.trees.get(id) {
                return Some(done.clone());
            }
            let tree = match self.repo.load_tree(id) {
                Ok(t) => t,
                Err(e) if is_loss(&e) => return None,
                Err(e) => {
                    self.error.get_or_insert(e);
                    return Some((*id, Vec::new(), Vec::new()));
                }
            };
            let mut dropped = Vec::new();
            let mut emptied = Vec::new();
            let mut nodes = Vec::with_capacity(tree.nodes.len());
            for mut n in tree.nodes {
                let name = String::from_utf8_lossy(&n.name).into_owned();
                match &mut n.kind {
                    NodeKind::File { chunks, .. } => {
                        if !chunks.iter().all(|c| self.chunk_ok(&c.id)) {
                            dropped.push(name);
                            continue;
                        }
                    }
                    NodeKind::Dir { tree: sub } => match self.tree(sub) {
                        Some((new, d, e)) => {
                            *sub = new;
                            dropped.extend(d.into_iter().map(|p| format!("{name}/{p}")));
                            emptied.extend(e.into_iter().map(|p| format!("{name}/{p}")));
                        }
                        None => {
                            let mut empty = Tree::default();
                            let bytes = empty.to_bytes();
                            let eid = TreeId::of(&bytes);
                            self.new_trees.push((eid, bytes));
                            *sub = eid;
                            emptied.push(name);
                        }
                    },
                    NodeKind::Symlink { .. } => {}
                }
                nodes.push(n);
            }
            let new_id = if dropped.is_empty() && emptied.is_empty() {
                *id
            } else {
                let mut t = Tree { nodes };
                let bytes = t.to_bytes();
                let nid = TreeId::of(&bytes);
                self.new_trees.push((nid, bytes));
                nid
            };
            let out = (new_id, dropped, emptied);
            self.trees.insert(*id, out.clone());
            Some(out)
        }
    }

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
    let mut walk = Walk {
        repo,
        packs,
        read_data: opts.read_data,
        chunks: HashMap::new(),
        trees: HashMap::new(),
        new_trees: Vec::new(),
        error: None,
    };
    let mut report = SnapshotsRepairReport {
        unreadable_records: bad.iter().map(|(id, e)| (*id, e.to_string())).collect(),
        index_rebuilt,
        ..SnapshotsRepairReport::default()
    };
    let mut commits = Vec::new();
    for rec in records {
        let (status, dropped, emptied) = match walk.tree(&rec.tree) {
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
    // Trees → index → records (the commit protocol), then the originals go.
    let index = repo.index();
    let writer =
        crate::pack::PackWriter::new(Arc::clone(backend), u64::from(repo.config().pack_size));
    writer.avoid(crate::lock::marked_packs(
        backend.as_ref(),
        &lock.record().seen_marks,
    )?);
    let mut stored = HashSet::new();
    for (id, bytes) in &walk.new_trees {
        if index.contains(id) || !stored.insert(*id) {
            continue;
        }
        let len = u32::try_from(bytes.len())
            .map_err(|_| crate::error::Error::InvalidInput("tree larger than 4 GiB".into()))?;
        writer.add(id.blob(), BlobKind::Tree, BlobCompression::Raw, bytes, len)?;
    }
    let sealed = writer.finish()?;
    let commit = Commit::new(repo, &lock, &index, &sealed);
    commit.index_packs()?;
    repo.reload_index()?;
    for (old, fixed) in &commits {
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
    Ok(report)
}

/// Whether an error means the object is gone or damaged (as opposed to unreachable now).
fn is_loss(e: &crate::error::Error) -> bool {
    use crate::error::Error as E;
    e.is_not_found()
        || matches!(
            e,
            E::Corrupt { .. } | E::HashMismatch { .. } | E::UnsupportedFormat { .. }
        )
}
