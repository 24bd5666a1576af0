//! The commit of a job that writes snapshot records: one sequence, one owner.
//!
//! Owns: under a held job lock, (1) the index file for the blobs the job stored, (2) the
//! snapshot record (new ones put-if-absent, a retag replacing the record whole), each write
//! preceded by a check that the lock still holds, and (3) after the record, the rescue of blobs
//! that a prune marked while the job ran: entries for every blob the record reaches that the
//! current index lacks, located in the job's own view (docs/DESIGN.md, "Garbage collection",
//! invariant 3). Also `Repository::retag`, the one verb that replaces a record.
//!
//! Invariant: a record is written only after the index names every pack it needs, and only
//! while the job's lock holds (with a lost lock a prune may have deleted those packs).
//!
//! Must not: decide what goes into a record (the verbs do), or write outside a held lock.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::format::index_file::BlobLocation;
use crate::format::keys;
use crate::format::manifest::SnapshotRecord;
use crate::id::{AsBlob, BlobId, SnapshotId, TreeId};
use crate::index::{ENTRIES_PER_FILE, Index, write_index, write_sorted};
use crate::lock::LockGuard;
use crate::pack::SealedBlob;
use crate::repository::Repository;
use crate::walk::{Located, Reachable};

/// One job's commit: its repository, its lock, the index view it worked from and the blobs it
/// stored.
pub struct Commit<'a> {
    repo: &'a Repository,
    lock: &'a LockGuard,
    view: &'a Index,
    sealed: &'a [SealedBlob],
}

impl<'a> Commit<'a> {
    /// A commit of the blobs in `sealed`, found in `view` or stored by this job.
    #[must_use]
    pub fn new(
        repo: &'a Repository,
        lock: &'a LockGuard,
        view: &'a Index,
        sealed: &'a [SealedBlob],
    ) -> Self {
        Commit {
            repo,
            lock,
            view,
            sealed,
        }
    }

    /// Writes the index files that name the job's own blobs; returns their size (0 when the
    /// job stored nothing). The blobs are put in id order through a list of positions, and the
    /// files are written one bounded part at a time: no copy of every entry is made.
    pub fn index_packs(&self) -> Result<u64> {
        let mut order: Vec<usize> = (0..self.sealed.len()).collect();
        // A stable sort: of an id stored twice, the first entry stays, as before.
        order.sort_by_key(|&i| self.sealed[i].id);
        order.dedup_by_key(|i| self.sealed[*i].id);
        let entries = order
            .iter()
            .map(|&i| (self.sealed[i].id, self.sealed[i].loc));
        self.lock.check()?;
        let written = write_sorted(
            self.repo.backend().as_ref(),
            self.repo.codec(),
            entries,
            ENTRIES_PER_FILE,
        )?;
        Ok(written.iter().map(|(_, len)| len).sum())
    }

    /// Writes a new snapshot record, the commit point; returns its size. A record that exists
    /// already is never overwritten.
    pub fn record(&self, rec: &SnapshotRecord) -> Result<u64> {
        self.lock.check()?;
        self.repo.commit_snapshot(rec)
    }

    /// Replaces an existing record whole (a retag: its id stays). A record forgotten meanwhile
    /// stays forgotten.
    pub fn replace_record(&self, rec: &SnapshotRecord) -> Result<()> {
        let key = keys::snapshot(&rec.id);
        if !self.repo.backend().exists(&key)? {
            return Err(Error::NotFound(format!(
                "snapshot {} (forgotten meanwhile)",
                rec.id
            )));
        }
        self.lock.check()?;
        self.repo.backend().put(&key, &self.repo.record_bytes(rec)?)
    }

    /// After the record: when a prune marked packs while the job ran (marks its lock did not
    /// see), indexes again every blob that `root` reaches and the current index lacks.
    /// Returns whether it wrote anything.
    pub fn reindex_marked(&self, root: &TreeId) -> Result<bool> {
        if new_marks(self.repo, &self.lock.record().seen_marks)?.is_empty() {
            return Ok(false);
        }
        let missing = self.missing(root)?;
        self.lock.check()?;
        Ok(write_index(self.repo.backend().as_ref(), self.repo.codec(), missing)?.is_some())
    }

    /// Entries for the blobs reachable from `root` that the current index lacks: located in
    /// `sealed` (this job stored them, and a prune that did not yet see the record marked their
    /// packs) or else in `view`.
    fn missing(&self, root: &TreeId) -> Result<Vec<(BlobId, BlobLocation)>> {
        let repo = self.repo;
        let fresh = Index::open(repo.backend().as_ref(), repo.codec())?;
        let own: HashMap<BlobId, BlobLocation> =
            self.sealed.iter().map(|s| (s.id, s.loc)).collect();
        let locate = |id: &BlobId| own.get(id).copied().or_else(|| self.view.get(id));
        let source = Located {
            backend: repo.backend().as_ref(),
            codec: repo.codec(),
            locate: |t: &TreeId| {
                locate(&t.blob())
                    .ok_or_else(|| Error::NotFound(format!("tree {} of this snapshot", t.short())))
            },
        };
        let mut out = Vec::new();
        for id in Reachable::of(&source, [*root])?.blobs() {
            if fresh.contains(&id) {
                continue;
            }
            let loc = locate(&id).ok_or_else(|| {
                Error::NotFound(format!(
                    "blob {} of this snapshot in any index; take the snapshot again",
                    id.short()
                ))
            })?;
            out.push((id, loc));
        }
        Ok(out)
    }
}

/// Marks that exist now and are not in `seen`.
fn new_marks(repo: &Repository, seen: &[String]) -> Result<Vec<String>> {
    Ok(crate::lock::list_marks(repo.backend().as_ref())?
        .into_iter()
        .filter(|m| !seen.contains(m))
        .collect())
}

impl Repository {
    /// Adds and removes tags of a snapshot. The record is the one object that is ever
    /// replaced, as a whole and atomically, and only its tags change; its id stays.
    pub fn retag(
        &self,
        id: &SnapshotId,
        add: &[String],
        remove: &[String],
    ) -> Result<SnapshotRecord> {
        // A job lock, so a prune racing with a forget of this snapshot cannot delete its data
        // while the record is rewritten (a record that comes back is then rescued).
        let lock = crate::lock::acquire_job(self.backend(), "tag")?;
        self.reload_index()?;
        let view = self.index();
        let mut rec = self.load_snapshot(id)?;
        rec.tags.retain(|t| !remove.contains(t));
        for t in add {
            if !rec.tags.contains(t) {
                rec.tags.push(t.clone());
            }
        }
        let commit = Commit::new(self, &lock, &view, &[]);
        commit.replace_record(&rec)?;
        // A forget and a prune in between may have taken its packs out of the index (the
        // lock kept them): index them again, as a snapshot does.
        if commit.reindex_marked(&rec.tree)? {
            self.reload_index()?;
        }
        Ok(rec)
    }
}
