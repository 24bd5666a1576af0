//! The decide half of garbage collection: from the state [`super::state`] read, computes a
//! [`GcPlan`], a plain value that says what happens to every pack and why, and what the
//! report of a pass says before anything is done ([`GcPlan::tally`], and for a dry run
//! [`GcPlan::forecast`]).
//!
//! Owns: every decision of a pass: which earlier-marked packs are rescued, unmarked, deleted
//! or left waiting (sweep); which listed packs are kept, marked, rescued or repacked (mark,
//! repack); what the new index file holds; which pack names a repack avoids; and, through
//! [`super::staging`], which left-over staged files go.
//!
//! Invariants:
//! - A pack is planned for deletion only when it is in an earlier mark past the grace period
//!   that every live job lock lists, no index file names it, and R needs nothing that the
//!   index lacks and the pack may hold (design, invariant 2).
//! - A marked or unindexed pack that holds a blob of R the index lacks is rescued: its
//!   trailer entries go into the new index file (invariant 3); one an index file names again
//!   is unmarked.
//! - The new mark holds exactly the packs that leave the index (marked and repacked), and a
//!   repack never produces the name of a marked pack (invariant 5).
//! - Only blob bytes count as unused: header, entries, footer and a salt blob are overhead.
//! - The same state and clock give the same figures, whether the run is a dry one or not.
//!
//! Must not: read or write the repository (the state is read by [`super::state`], the plan
//! carried out by [`super::execute`]), nor ask whether the run is a dry one.

use std::collections::{HashMap, HashSet};
use std::fmt;

use super::staging::{self, StagingPlan};
use super::state::{Entries, Kept, Needs, State, Survey, read_state};
use super::{MaxUnused, PruneOptions, PruneReport};
use crate::clock::now_ns;
use crate::error::Result;
use crate::format::gc::{MarkRecord, MarkedPack};
use crate::format::pack::{ENTRY_LEN, FOOTER_LEN, HEADER};
use crate::id::{BlobId, IndexId, PackId, SnapshotId};
use crate::lock::FoundLock;
use crate::repository::Repository;

/// Bytes of one salt blob and its trailer entry (never counted as unused).
const SALT_ALLOWANCE: usize = 16 + ENTRY_LEN;

/// What one pass does, decided before anything is done.
#[derive(Debug)]
pub struct GcPlan {
    /// The first pass of a run (it reports the state before and cleans the staging dir).
    pub first: bool,
    /// The state read, as the report gives it.
    pub before: Before,
    /// Remarks on the state read (names that are no pack names, dangling index entries).
    pub notes: Vec<String>,
    /// The packs of earlier marks that are still listed, one decision per pack per mark, in
    /// mark order: [`Decision::Rescue`], [`Decision::Unmark`], [`Decision::Delete`] or
    /// [`Decision::Wait`].
    pub sweep: Vec<PackPlan>,
    /// Every other listed pack, and those the sweep unmarks: [`Decision::Keep`],
    /// [`Decision::Mark`], [`Decision::Rescue`] or [`Decision::Repack`]; repacks in the order
    /// they are copied (least live share first).
    pub packs: Vec<PackPlan>,
    /// Earlier marks that lose packs (deleted, rescued, unmarked or gone): the packs that
    /// still wait, or `None` to delete the mark.
    pub mark_updates: Vec<(String, Option<MarkRecord>)>,
    /// The new index file, when packs leave the index or come back to it.
    pub index: Option<IndexRewrite>,
    /// Pending marks of earlier runs, deleted after the index rewrite.
    pub stale_pending: Vec<String>,
    /// Pack names a repack must not produce (invariant 5): every pack of every mark and every
    /// pack marked now.
    pub avoid: Vec<PackId>,
    /// Left-over staged files to remove (first pass only).
    pub staging: Option<StagingPlan>,
    /// Unused bytes left in kept packs.
    pub unused_bytes_after: u64,
    /// Packs, and their bytes, left once the planned deletions are done (repacks' new packs
    /// not counted): what a dry run reports.
    pub packs_after: (u64, u64),
    /// The records R was computed from (records that appear later are checked for rescue
    /// after the new mark).
    pub record_ids: HashSet<SnapshotId>,
}

/// The figures of the state read.
#[derive(Clone, Copy, Debug)]
pub struct Before {
    pub snapshots: u64,
    pub reachable_blobs: u64,
    pub packs: u64,
    pub pack_bytes: u64,
    pub index_files: u64,
}

/// The decision on one pack.
#[derive(Debug)]
pub struct PackPlan {
    pub id: PackId,
    /// The pack's listed size; for a waiting pack, the size its mark records.
    pub size: u64,
    /// The earlier mark that names the pack (sweep decisions only).
    pub mark: Option<String>,
    pub decision: Decision,
}

/// What happens to a pack.
#[derive(Debug)]
pub enum Decision {
    /// Stays as it is.
    Keep(KeepReason),
    /// Its live blobs (these) are copied into new packs, then it is marked: its unused share
    /// would keep the repository above `max_unused`.
    Repack { blobs: Entries },
    /// Marked now; a later pass deletes it.
    Mark(MarkReason),
    /// Holds a blob of R the index lacks: its `entries` trailer entries go back into the
    /// index (and out of its mark).
    Rescue { entries: usize },
    /// Marked earlier, and an index file names it again: kept, out of its mark.
    Unmark,
    /// Marked earlier and stays marked.
    Wait(WaitReason),
    /// Marked earlier, past the grace period, seen marked by every live job, not needed:
    /// deleted.
    Delete,
}

/// Why a pack is kept.
#[derive(Clone, Copy, Debug)]
pub enum KeepReason {
    /// It holds live blobs, and its unused bytes fit within `max_unused` (or there are none).
    Live,
    /// No index file names it and its trailer cannot be read: it might hold what R needs.
    Unreadable,
}

/// Why a pack is marked.
#[derive(Clone, Copy, Debug)]
pub enum MarkReason {
    /// Indexed, and no blob of R is located in it.
    NoLiveBlob,
    /// No index file names it (a crashed writer's leftover, or a running snapshot's pack not
    /// yet indexed: its index file unmarks it) and R needs nothing that only it holds.
    Unindexed,
}

/// Why a marked pack is not deleted yet.
#[derive(Clone, Copy, Debug)]
pub enum WaitReason {
    /// Its mark is younger than the grace period.
    Grace,
    /// A live job lock does not list its mark: the job may use the pack.
    Jobs,
    /// R may need it and its trailer cannot be read, so it cannot be rescued.
    Unreadable,
}

/// The index file that replaces every index file read.
#[derive(Debug)]
pub struct IndexRewrite {
    /// Entries that stay: the chosen location of every blob whose pack exists and stays.
    pub kept: Kept,
    /// Trailer entries of rescued packs, sweep first; added after the moved blobs where the
    /// index lacks the blob.
    pub rescued: Entries,
    /// How many entries the new files hold (kept, moved and rescued, each id once).
    pub entries: u64,
    /// The index files read: deleted once the new one is written.
    pub old_files: Vec<IndexId>,
}

impl GcPlan {
    /// Packs this pass deletes.
    pub fn deletes(&self) -> impl Iterator<Item = &PackPlan> {
        self.sweep
            .iter()
            .filter(|p| matches!(p.decision, Decision::Delete))
    }

    /// Packs this pass repacks, with the blobs to copy, in copy order.
    pub fn repacks(&self) -> impl Iterator<Item = (&PackPlan, &Entries)> {
        self.packs.iter().filter_map(|p| match &p.decision {
            Decision::Repack { blobs } => Some((p, blobs)),
            _ => None,
        })
    }

    /// The packs of the new mark: those marked, then those repacked.
    pub fn new_mark(&self) -> Vec<MarkedPack> {
        let marked = self
            .packs
            .iter()
            .filter(|p| matches!(p.decision, Decision::Mark(_)));
        marked
            .chain(self.repacks().map(|(p, _)| p))
            .map(|p| MarkedPack {
                id: p.id,
                size: p.size,
            })
            .collect()
    }

    /// Adds the plan's figures to the report (the same for a dry run and a real one).
    pub fn tally(&self, report: &mut PruneReport) {
        if self.first {
            report.snapshots = self.before.snapshots;
            report.reachable_blobs = self.before.reachable_blobs;
            report.packs_before = self.before.packs;
            report.pack_bytes_before = self.before.pack_bytes;
            report.index_files_before = self.before.index_files;
        }
        report.notes.extend(self.notes.iter().cloned());
        report.waiting_packs = 0;
        report.waiting_bytes = 0;
        for p in self.sweep.iter().chain(&self.packs) {
            match &p.decision {
                Decision::Keep(_) => {}
                Decision::Repack { blobs } => {
                    report.repacked_packs += 1;
                    report.moved_blobs += blobs.len() as u64;
                    report.moved_bytes +=
                        blobs.iter().map(|(_, l)| u64::from(l.length)).sum::<u64>();
                    report.marked_packs += 1;
                    report.marked_bytes += p.size;
                }
                Decision::Mark(_) => {
                    report.marked_packs += 1;
                    report.marked_bytes += p.size;
                }
                Decision::Rescue { .. } => report.rescued_packs += 1,
                Decision::Unmark => report.unmarked_packs += 1,
                Decision::Wait(_) => {
                    report.waiting_packs += 1;
                    report.waiting_bytes += p.size;
                }
                Decision::Delete => {
                    report.deleted_packs += 1;
                    report.deleted_bytes += p.size;
                }
            }
        }
        report.unused_bytes_after = self.unused_bytes_after;
    }

    /// The figures acting adds, as the plan foresees them (a dry run's report): the new mark
    /// waits, or is deleted by the second pass when `swept_at_once` (grace zero, no live
    /// job); the repack writes the packs [`repack_output`] counts for `pack_size`; a rewritten
    /// index becomes one file (none when it holds no entry). `seal_overhead` is what sealing
    /// adds to a pack's entries region (0 for a plain repository).
    pub fn forecast(
        &self,
        swept_at_once: bool,
        (pack_size, seal_overhead): (u64, u64),
        report: &mut PruneReport,
    ) {
        let new_mark = self.new_mark();
        let mark_packs = new_mark.len() as u64;
        let mark_bytes: u64 = new_mark.iter().map(|p| p.size).sum();
        let (new_packs, new_bytes) = repack_output(self.repacks(), pack_size, seal_overhead);
        let (mut packs, mut bytes) = self.packs_after;
        if swept_at_once {
            report.deleted_packs += mark_packs;
            report.deleted_bytes += mark_bytes;
            packs -= mark_packs;
            bytes -= mark_bytes;
        } else {
            report.waiting_packs += mark_packs;
            report.waiting_bytes += mark_bytes;
        }
        report.new_packs += new_packs;
        report.packs_after = packs + new_packs;
        report.pack_bytes_after = bytes + new_bytes;
        report.index_files_after = match &self.index {
            None => report.index_files_before,
            Some(ix) => index_files_for(ix.entries),
        };
        if let Some(s) = &self.staging {
            staging::forecast(s, report);
        }
    }
}

impl fmt::Display for PackPlan {
    /// One line: the pack, its size, the decision and its reason.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.decision {
            Decision::Keep(KeepReason::Live) => "keep: live, unused share within the limit",
            Decision::Keep(KeepReason::Unreadable) => "keep: unindexed, unreadable trailer",
            Decision::Repack { .. } => "repack its live blobs, then mark",
            Decision::Mark(MarkReason::NoLiveBlob) => "mark: no live blob",
            Decision::Mark(MarkReason::Unindexed) => "mark: unindexed, not needed",
            Decision::Rescue { .. } => "rescue: its entries go back into the index",
            Decision::Unmark => "unmark: an index file names it again",
            Decision::Wait(WaitReason::Grace) => "wait: mark younger than the grace period",
            Decision::Wait(WaitReason::Jobs) => "wait: a live job has not seen the mark",
            Decision::Wait(WaitReason::Unreadable) => "wait: needed, unreadable trailer",
            Decision::Delete => "delete: grace passed, seen by every job, not needed",
        };
        write!(f, "pack {} ({} bytes): {what}", self.id, self.size)?;
        match &self.decision {
            Decision::Repack { blobs } => write!(f, ", {} blobs", blobs.len())?,
            Decision::Rescue { entries } => write!(f, ", {entries} entries")?,
            _ => {}
        }
        match &self.mark {
            Some(m) => write!(f, " ({m})"),
            None => Ok(()),
        }
    }
}

/// The packs (and their bytes) a repack writes: the blobs copied in plan order, one open
/// pack per blob kind, sealed once it reaches `pack_size`, as `PackWriter` does (a salt blob,
/// added only when a pack's id would equal a marked pack's, is not foreseen).
fn repack_output<'a>(
    repacks: impl Iterator<Item = (&'a PackPlan, &'a Entries)>,
    pack_size: u64,
    seal_overhead: u64,
) -> (u64, u64) {
    let header = HEADER.len() as u64;
    let sealed = |len: u64, n: u64| len + n * ENTRY_LEN as u64 + seal_overhead + FOOTER_LEN as u64;
    let (mut packs, mut bytes) = (0, 0);
    let mut open: [(u64, u64); 2] = [(header, 0); 2]; // per kind: (length, blobs)
    for (_, blobs) in repacks {
        for (_, loc) in blobs {
            let slot = &mut open[loc.kind as usize];
            slot.0 += u64::from(loc.length);
            slot.1 += 1;
            if slot.0 >= pack_size {
                packs += 1;
                bytes += sealed(slot.0, slot.1);
                *slot = (header, 0);
            }
        }
    }
    for (len, n) in open {
        if n > 0 {
            packs += 1;
            bytes += sealed(len, n);
        }
    }
    (packs, bytes)
}

/// Reads the rest of the state and decides one pass (`first`: the run's first), as if the
/// records of `forgotten` were gone (a dry run of `forget --prune`; empty otherwise).
pub fn plan(
    repo: &Repository,
    opts: &PruneOptions,
    survey: Survey,
    first: bool,
    forgotten: &[SnapshotId],
) -> Result<GcPlan> {
    let st = read_state(repo, forgotten)?;
    let staging = first
        .then(|| {
            staging::survey(
                repo.backend().as_ref(),
                opts.stale_after,
                survey.live_jobs(),
            )
        })
        .flatten();
    let now = now_ns();
    Ok(decide(opts, st, survey, staging, first, now))
}

/// Turns the state into the plan: sweep, mark, repack, index rewrite.
fn decide(
    opts: &PruneOptions,
    st: State,
    survey: Survey,
    staging: Option<StagingPlan>,
    first: bool,
    now: i64,
) -> GcPlan {
    let needs = Needs::new(&st);
    let grace_ns = i64::try_from(opts.grace.as_nanos()).unwrap_or(i64::MAX);
    let live_jobs: Vec<&FoundLock> = survey.live_jobs().collect();
    let (sweep, mark_updates) = sweep(&st, &survey.marks, &live_jobs, (now, grace_ns), &needs);
    let (packs, unused_bytes_after) = mark(&st, &sweep, &needs, opts.max_unused);
    let mut rescued: Entries = Vec::new();
    for p in sweep.iter().chain(&packs) {
        if let (Decision::Rescue { .. }, Some(es)) = (&p.decision, needs.trailer(&p.id)) {
            rescued.extend(es.iter().copied());
        }
    }
    let deleting: HashSet<PackId> = sweep
        .iter()
        .filter(|p| matches!(p.decision, Decision::Delete))
        .map(|p| p.id)
        .collect();
    let after: Vec<u64> = st
        .listed
        .iter()
        .filter(|(p, _)| !deleting.contains(p))
        .map(|(_, size)| *size)
        .collect();
    let mut plan = GcPlan {
        first,
        before: Before {
            snapshots: st.snapshots,
            reachable_blobs: st.reachable.len() as u64,
            packs: st.listed.len() as u64,
            pack_bytes: st.listed.values().sum(),
            index_files: st.index.files().len() as u64,
        },
        notes: Vec::new(),
        sweep,
        packs,
        mark_updates,
        index: None,
        stale_pending: survey.stale_pending,
        avoid: Vec::new(),
        staging,
        unused_bytes_after,
        packs_after: (after.len() as u64, after.iter().sum()),
        record_ids: HashSet::new(),
    };
    let new_mark = plan.new_mark();
    plan.avoid = survey
        .marks
        .iter()
        .flat_map(|(_, m)| m.packs.iter().map(|p| p.id))
        .chain(new_mark.iter().map(|p| p.id))
        .collect();
    plan.index = index_rewrite(&st, &new_mark, rescued, &plan);
    plan.notes = st.notes;
    plan.record_ids = st.record_ids;
    plan
}

/// Sweeps the earlier marks: one decision per listed pack of each mark, and the marks that
/// change. A mark is past the grace period when `now` is at least `grace_ns` after it.
fn sweep(
    st: &State,
    marks: &[(String, MarkRecord)],
    live_jobs: &[&FoundLock],
    (now, grace_ns): (i64, i64),
    needs: &Needs,
) -> (Vec<PackPlan>, Vec<(String, Option<MarkRecord>)>) {
    let mut plans = Vec::new();
    let mut updates = Vec::new();
    for (key, m) in marks {
        let seen_by_all = live_jobs.iter().all(|l| {
            l.record
                .as_ref()
                .is_some_and(|r| r.seen_marks.iter().any(|k| k == key))
        });
        let mut keep = Vec::new();
        for p in &m.packs {
            let Some(&size) = st.listed.get(&p.id) else {
                continue; // already gone
            };
            let decision = if st.indexed_packs.contains(&p.id) {
                Decision::Unmark
            } else if needs.of(&p.id) {
                match needs.trailer(&p.id) {
                    Some(es) => Decision::Rescue { entries: es.len() },
                    None => Decision::Wait(WaitReason::Unreadable),
                }
            } else if now.saturating_sub(m.marked_ns) < grace_ns {
                Decision::Wait(WaitReason::Grace)
            } else if !seen_by_all {
                Decision::Wait(WaitReason::Jobs)
            } else {
                Decision::Delete
            };
            let size = if let Decision::Wait(_) = decision {
                keep.push(*p);
                p.size
            } else {
                size
            };
            plans.push(PackPlan {
                id: p.id,
                size,
                mark: Some(key.clone()),
                decision,
            });
        }
        if keep.len() != m.packs.len() {
            updates.push((
                key.clone(),
                (!keep.is_empty()).then_some(MarkRecord {
                    marked_ns: m.marked_ns,
                    packs: keep,
                }),
            ));
        }
    }
    (plans, updates)
}

/// Decides every listed pack the sweep leaves alone (and those it unmarks): keep, mark,
/// rescue or repack. Returns the decisions and the unused bytes left in kept packs.
fn mark(
    st: &State,
    sweep: &[PackPlan],
    needs: &Needs,
    max_unused: MaxUnused,
) -> (Vec<PackPlan>, u64) {
    let swept: HashSet<PackId> = sweep
        .iter()
        .filter(|p| !matches!(p.decision, Decision::Unmark))
        .map(|p| p.id)
        .collect();
    let mut live: HashMap<PackId, u64> = HashMap::new();
    for c in st.chosen().filter(|c| c.reachable) {
        *live.entry(c.location.pack).or_default() += u64::from(c.location.length);
    }
    let mut plans = Vec::new();
    let mut kept: Vec<(PackId, u64, u64)> = Vec::new(); // (pack, blob bytes, live bytes)
    let mut decided = |id: PackId, size, decision| {
        plans.push(PackPlan {
            id,
            size,
            mark: None,
            decision,
        });
    };
    for (id, &size) in &st.listed {
        if swept.contains(id) {
            continue;
        }
        if !st.indexed_packs.contains(id) {
            let decision = match (needs.of(id), needs.trailer(id)) {
                (false, _) => Decision::Mark(MarkReason::Unindexed),
                (true, Some(es)) => Decision::Rescue { entries: es.len() },
                (true, None) => Decision::Keep(KeepReason::Unreadable),
            };
            decided(*id, size, decision);
            continue;
        }
        match live.get(id).copied().unwrap_or(0) {
            0 => decided(*id, size, Decision::Mark(MarkReason::NoLiveBlob)),
            l => {
                // Header, entries, footer and a salt blob with its entry (see
                // `PackWriter::avoid`) are not unused space: only blob bytes count.
                let n = st.entry_counts.get(id).copied().unwrap_or(0);
                let overhead =
                    (HEADER.len() + FOOTER_LEN + SALT_ALLOWANCE) as u64 + ENTRY_LEN as u64 * n;
                kept.push((*id, size.saturating_sub(overhead).max(l), l));
            }
        }
    }
    let limit = max_unused.limit(kept.iter().map(|k| k.2).sum());
    let (repack, unused) = choose_repacks(&mut kept, limit);
    let mut blobs = live_blobs_of(st, &repack);
    for (id, _, _) in &kept {
        let decision = match blobs.remove(id) {
            Some(blobs) => Decision::Repack { blobs },
            None if repack.contains(id) => Decision::Repack { blobs: Vec::new() },
            None => Decision::Keep(KeepReason::Live),
        };
        decided(*id, st.listed[id], decision);
    }
    (plans, unused)
}

/// Orders the kept packs least live share first (each repack frees the most per byte moved)
/// and picks packs to repack while the unused bytes exceed `limit`. Returns the picked packs
/// and the unused bytes left.
fn choose_repacks(kept: &mut [(PackId, u64, u64)], limit: u64) -> (HashSet<PackId>, u64) {
    let mut unused: u64 = kept.iter().map(|k| k.1.saturating_sub(k.2)).sum();
    kept.sort_by(|a, b| {
        (u128::from(a.2) * u128::from(b.1)).cmp(&(u128::from(b.2) * u128::from(a.1)))
    });
    let mut repack = HashSet::new();
    for (id, blob_bytes, l) in kept.iter() {
        if unused <= limit {
            break;
        }
        if blob_bytes == l {
            continue;
        }
        unused -= blob_bytes - l;
        repack.insert(*id);
    }
    (repack, unused)
}

/// The live blobs of the packs in `packs`.
fn live_blobs_of(st: &State, packs: &HashSet<PackId>) -> HashMap<PackId, Entries> {
    let mut by_pack: HashMap<PackId, Entries> = HashMap::new();
    if packs.is_empty() {
        return by_pack;
    }
    for c in st.chosen() {
        if c.reachable && packs.contains(&c.location.pack) {
            by_pack
                .entry(c.location.pack)
                .or_default()
                .push((c.id, c.location));
        }
    }
    by_pack
}

/// The new index files, when packs leave the index (`leaving`: the new mark) or rescued
/// entries come back; `None` when the index stays as it is. The repacks of `plan` are
/// counted among the entries the new files hold.
fn index_rewrite(
    st: &State,
    leaving: &[MarkedPack],
    rescued: Entries,
    plan: &GcPlan,
) -> Option<IndexRewrite> {
    if leaving.is_empty() && rescued.is_empty() {
        return None;
    }
    // Entries of packs that are gone go too (a rescued copy may replace them).
    let leaving: HashSet<PackId> = leaving.iter().map(|p| p.id).collect();
    let kept = Kept::new(st, leaving);
    // Moved blobs were chosen in packs that leave, so none is kept; a rescued entry adds
    // an id only where neither holds it.
    let moved: HashSet<BlobId> = plan
        .repacks()
        .flat_map(|(_, blobs)| blobs.iter().map(|(id, _)| *id))
        .collect();
    let mut seen = HashSet::new();
    let rescued_new = rescued
        .iter()
        .filter(|(id, _)| !moved.contains(id) && !kept.holds(id) && seen.insert(*id))
        .count() as u64;
    Some(IndexRewrite {
        entries: kept.count + moved.len() as u64 + rescued_new,
        kept,
        rescued,
        old_files: st.index.files().iter().map(|f| f.id()).collect(),
    })
}

/// How many index files `entries` entries are written as.
fn index_files_for(entries: u64) -> u64 {
    entries.div_ceil(crate::index::ENTRIES_PER_FILE as u64)
}
