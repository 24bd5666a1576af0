//! The act half of garbage collection: carries out what [`super::plan`] decided, in the order
//! the design prescribes, and adds to the report what only acting can know (packs written,
//! the listings after, late rescues).
//!
//! Owns: the removal of stale locks and damaged marks ([`tidy`], before the records are
//! listed), and for a [`GcPlan`] ([`execute`]): staged-file removal, repack, the pending mark,
//! the index rewrite, deletion of old index files, stale pending marks and swept packs, mark
//! updates, the new mark, and then the rescue for late records.
//!
//! Invariants:
//! - Order of writes (design, invariant 4): new packs → pending mark → new index file → old
//!   index files deleted → stale pending marks deleted → swept packs deleted → mark updates →
//!   new mark → pending mark deleted → late-record rescue. A crash anywhere leaves only extra
//!   objects for the next prune.
//! - The prune lock is checked before the index write and before every pack deletion
//!   (invariant 10): a prune whose lock another prune took over stops there.
//! - Repacked blobs are copied as stored, each checked against its id, into packs whose names
//!   avoid every marked pack's (invariant 5).
//!
//! Must not: decide anything the plan did not (no pack is deleted, marked or put back here
//! but as planned, the late rescue apart), or be called for a dry run.

use std::sync::Arc;

use super::PruneReport;
use super::plan::{GcPlan, IndexRewrite};
use super::state::Entries;
use super::state::Survey;
use super::{rescue, staging};
use crate::backend::Backend;
use crate::clock::now_ns;
use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::format::gc::MarkRecord;
use crate::format::index_file::BlobLocation;
use crate::format::keys;
use crate::id::{BlobId, IndexId, PackId};
use crate::lock::LockGuard;
use crate::pack::{PackWriter, check_blob_bytes};
use crate::repository::Repository;

/// Deletes the damaged marks and the stale locks the survey found, with a note per lock.
pub fn tidy(backend: &dyn Backend, survey: &Survey, notes: &mut Vec<String>) -> Result<()> {
    for key in &survey.damaged_marks {
        backend.delete(key)?;
    }
    for l in survey.stale_locks() {
        let reason = l.stale.as_deref().unwrap_or_default();
        notes.push(crate::lock::remove(backend, l, reason)?);
    }
    Ok(())
}

/// Carries out `plan` under `guard`, the prune lock.
pub fn execute(
    repo: &Repository,
    mut plan: GcPlan,
    guard: &LockGuard,
    report: &mut PruneReport,
) -> Result<()> {
    let backend = repo.backend().as_ref();
    if let Some(s) = &plan.staging {
        staging::remove(s, report);
    }
    let moved = repack(repo, &plan, report)?;
    let new_mark = plan.new_mark();
    // Readers that miss a blob look into marked packs; the mark proper is written only after
    // the index rewrite (invariant 1), so a pending copy covers the time in between. Jobs'
    // locks never list pending marks.
    let mark_id = uuid::Uuid::now_v7();
    let pending_key = keys::mark(&mark_id, true);
    if !new_mark.is_empty() {
        let pending = MarkRecord {
            marked_ns: now_ns(),
            packs: new_mark.clone(),
        };
        backend.put(&pending_key, &pending.to_bytes())?;
    }
    if let Some(ix) = plan.index.take() {
        rewrite_index(backend, repo.codec(), ix, moved, guard)?;
    }
    for key in &plan.stale_pending {
        backend.delete(key)?;
    }
    for p in plan.deletes() {
        guard.check()?;
        backend.delete(&keys::pack(&p.id))?;
    }
    for (key, m) in std::mem::take(&mut plan.mark_updates) {
        match m {
            Some(m) => backend.put(&key, &m.to_bytes())?,
            None => backend.delete(&key)?,
        }
    }
    // The new mark, now that no index file names its packs.
    if !new_mark.is_empty() {
        report.waiting_packs += new_mark.len() as u64;
        report.waiting_bytes += new_mark.iter().map(|p| p.size).sum::<u64>();
        let rec = MarkRecord {
            marked_ns: now_ns(),
            packs: new_mark,
        };
        let key = keys::mark(&mark_id, false);
        backend.put_if_absent(&key, &rec.to_bytes())?;
        backend.delete(&pending_key)?;
        rescue::late_records(repo, &plan.record_ids, &key, rec, report)?;
    }
    let after = backend.list(keys::Kind::Pack.prefix())?;
    report.packs_after = after.len() as u64;
    report.pack_bytes_after = after.iter().map(|o| o.size).sum();
    report.index_files_after = backend.list(keys::Kind::Index.prefix())?.len() as u64;
    Ok(())
}

/// Copies the live blobs of the packs to repack into new packs; returns their new entries.
fn repack(repo: &Repository, plan: &GcPlan, report: &mut PruneReport) -> Result<Entries> {
    if plan.repacks().next().is_none() {
        return Ok(Vec::new());
    }
    let backend = repo.backend();
    let writer = PackWriter::new(
        Arc::clone(backend),
        repo.codec().clone(),
        u64::from(repo.config().pack_size),
    );
    writer.avoid(plan.avoid.iter().copied());
    for (p, blobs) in plan.repacks() {
        if blobs.is_empty() {
            continue;
        }
        let bytes = backend.get_range(&keys::pack(&p.id), 0, p.size)?;
        for (id, loc) in blobs {
            let stored = blob_bytes(&bytes, &p.id, id, loc)?;
            check_blob_bytes(repo.codec(), stored, loc, id)?;
            writer.add(*id, loc.kind, loc.compression, stored, loc.raw_length)?;
        }
    }
    let sealed = writer.finish()?;
    report.new_packs += writer.packs_written();
    Ok(sealed.iter().map(|s| (s.id, s.loc)).collect())
}

/// The stored bytes of blob `id` at `loc` in the bytes of pack `pack`.
fn blob_bytes<'a>(
    bytes: &'a [u8],
    pack: &PackId,
    id: &BlobId,
    loc: &BlobLocation,
) -> Result<&'a [u8]> {
    let start = loc.offset as usize;
    let end = start + loc.length as usize;
    bytes.get(start..end).ok_or_else(|| {
        Error::corrupt(
            format!("pack {pack}"),
            format!("blob {} lies past its end", id.short()),
        )
    })
}

/// Writes the new index files (kept entries, then moved blobs, then rescued entries, the
/// first location of a blob winning) after a lock check, then deletes every other index
/// file. The kept entries stream from the old files in id order and the new files are
/// written one bounded part at a time; only the moved and rescued entries are sorted in
/// memory.
fn rewrite_index(
    backend: &dyn Backend,
    codec: &Codec,
    ix: IndexRewrite,
    moved: Entries,
    guard: &LockGuard,
) -> Result<()> {
    let mut added: Entries = moved.into_iter().chain(ix.rescued).collect();
    // A stable sort keeps moved entries before rescued ones of the same id: the first stays.
    added.sort_by_key(|e| e.0);
    added.dedup_by_key(|e| e.0);
    guard.check()?;
    let written: Vec<IndexId> = crate::index::write_sorted(
        backend,
        codec,
        crate::index::union(ix.kept.entries(), added),
        crate::index::ENTRIES_PER_FILE,
    )?
    .into_iter()
    .map(|(id, _)| id)
    .collect();
    for f in &ix.old_files {
        if !written.contains(f) {
            backend.delete(&keys::index(f))?;
        }
    }
    Ok(())
}
