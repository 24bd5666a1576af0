//! Prune: reclaims the space of packs no snapshot needs, without ever blocking a snapshot and
//! without ever deleting a blob a snapshot can reach.
//!
//! Owns: the two-phase collection described in `docs/DESIGN.md` ("Garbage collection").
//! One run ([`prune`]) under the exclusive prune lock:
//! 1. reads the state: marks, live job locks (removing stale ones), the index, the pack
//!    listing and every snapshot record, and computes the reachable set R;
//! 2. sweeps earlier marks: a marked pack that holds a reachable blob the index lacks is
//!    rescued (its entries go back into the index); one the index references again is
//!    unmarked; one that is past the grace period and that every live job has seen marked is
//!    deleted; the rest wait;
//! 3. marks: packs without a reachable blob, and packs no index file names, are marked; packs
//!    whose unused share would keep the repository above `max_unused` have their reachable
//!    blobs copied into new packs and are marked too;
//! 4. acts: new packs → new index file → old index files deleted → swept packs deleted →
//!    marks written (a new mark only after the index stopped naming its packs).
//!
//! With `grace` zero a second pass sweeps the new mark at once when no job holds a lock.
//! Work and memory are proportional to the index (one map entry per blob), never to the data.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::format::keys;

use crate::clock::now_ns;
use crate::error::{Error, Result};
use crate::format::gc::{LockKind, MarkRecord, MarkedPack};
use crate::format::index_file::BlobLocation;
use crate::format::pack::{ENTRY_LEN, FOOTER_LEN, HEADER};
use crate::id::{AsBlob, BlobId, PackId, SnapshotId, TreeId};
use crate::index::Index;
use crate::lock::{self, FoundLock, LockGuard, STALE_AFTER};
use crate::pack::{PackWriter, check_blob_bytes, location, read_pack_entries};
use crate::repository::Repository;
use crate::walk::{Located, Reachable, Walker};

/// Bytes of one salt blob and its trailer entry (never counted as unused).
const SALT_ALLOWANCE: usize = 16 + ENTRY_LEN;

/// How much unused space may stay in packs that are kept.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MaxUnused {
    /// At most this percentage of the repository's pack bytes (0..100).
    Percent(f64),
    /// At most this many bytes.
    Bytes(u64),
    /// Never repack.
    Unlimited,
}

impl MaxUnused {
    /// Parses `5%`, `10`, `200MiB`, `1G`, `unlimited`.
    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("unlimited") {
            return Ok(MaxUnused::Unlimited);
        }
        if let Some(p) = t.strip_suffix('%') {
            return match p.trim().parse::<f64>() {
                Ok(v) if (0.0..100.0).contains(&v) => Ok(MaxUnused::Percent(v)),
                _ => Err(Error::InvalidInput(format!(
                    "--max-unused '{s}': give a percentage from 0% to below 100%, a size, or 'unlimited'"
                ))),
            };
        }
        crate::units::parse_size(t)
            .map(MaxUnused::Bytes)
            .map_err(|_| {
                Error::InvalidInput(format!(
                    "--max-unused '{s}': give a percentage (5%), a size (200MiB) or 'unlimited'"
                ))
            })
    }

    /// Unused bytes allowed when `live` bytes stay.
    fn limit(self, live: u64) -> u64 {
        match self {
            MaxUnused::Unlimited => u64::MAX,
            MaxUnused::Bytes(b) => b,
            // unused / (live + unused) <= p  <=>  unused <= live * p / (100 - p)
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            MaxUnused::Percent(p) => (live as f64 * p / (100.0 - p)) as u64,
        }
    }
}

/// Options of a prune.
#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// How long a marked pack waits before it may be deleted (default 1 h).
    pub grace: Duration,
    /// Unused space tolerated in kept packs (default 5%).
    pub max_unused: MaxUnused,
    /// Plan only: read everything, write nothing.
    pub dry_run: bool,
    /// Heartbeat age after which a lock is stale.
    pub stale_after: Duration,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            grace: Duration::from_secs(3600),
            max_unused: MaxUnused::Percent(5.0),
            dry_run: false,
            stale_after: STALE_AFTER,
        }
    }
}

/// What a prune found and did (or, with `dry_run`, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub dry_run: bool,
    pub snapshots: u64,
    pub reachable_blobs: u64,
    pub packs_before: u64,
    pub pack_bytes_before: u64,
    /// Packs marked in this run (unreferenced, unindexed, or repacked).
    pub marked_packs: u64,
    pub marked_bytes: u64,
    /// Packs whose reachable blobs were copied into new packs.
    pub repacked_packs: u64,
    pub moved_blobs: u64,
    pub moved_bytes: u64,
    pub new_packs: u64,
    /// Marked packs deleted.
    pub deleted_packs: u64,
    pub deleted_bytes: u64,
    /// Marked packs put back into the index because a snapshot needs them.
    pub rescued_packs: u64,
    /// Marked packs an index file names again (kept, mark dropped).
    pub unmarked_packs: u64,
    /// Marked packs waiting for the grace period or for jobs that started before the mark.
    pub waiting_packs: u64,
    pub waiting_bytes: u64,
    pub index_files_before: u64,
    pub index_files_after: u64,
    /// Unused bytes left in kept packs.
    pub unused_bytes_after: u64,
    pub packs_after: u64,
    pub pack_bytes_after: u64,
    /// Staged files (half-written packs and objects) that stopped processes left in the
    /// staging directory, removed (or, in a dry run, to be removed).
    pub staging_files_removed: u64,
    pub staging_bytes_removed: u64,
    /// Removed stale locks and other remarks.
    pub notes: Vec<String>,
}

/// Runs a prune (two passes when `grace` is zero).
pub fn prune(repo: &Repository, opts: &PruneOptions) -> Result<PruneReport> {
    let mut report = PruneReport {
        dry_run: opts.dry_run,
        ..PruneReport::default()
    };
    let guard = if opts.dry_run {
        None
    } else {
        Some(lock::acquire_prune(
            repo.backend(),
            opts.stale_after,
            &mut report.notes,
        )?)
    };
    pass(repo, opts, guard.as_ref(), &mut report, true)?;
    if opts.grace.is_zero() && !opts.dry_run && report.marked_packs > 0 {
        pass(repo, opts, guard.as_ref(), &mut report, false)?;
    }
    repo.reload_index()?;
    Ok(report)
}

/// Removes what stopped processes left in the repository's shared staging directory (`tmp/`
/// of a local repository: a snapshot killed while filling a pack leaves up to a pack there).
/// A staged file's name carries its writer's pid and process token
/// (`<pid>-<token>-<thread>-<n>.tmp`, `pack-<pid>-<token>-<n>.tmp`). It is left over when all
/// of these hold: the token is not this process's; the pid holds no live job lock on any host
/// (every process that keeps a staged file open for long, a snapshot filling a pack, holds
/// one; a prune's own repack is this process); the pid runs no live process on this host,
/// unless it is this process's own pid (then the writer was an earlier process with the same
/// pid, as every container's first process is pid 1); and the file was not modified for the
/// stale-lock bound (a holder that pauses longer loses its lock too). Failures to remove are
/// notes, never errors.
fn clean_staging(
    repo: &Repository,
    opts: &PruneOptions,
    live_jobs: &[FoundLock],
    report: &mut PruneReport,
) {
    let Some(dir) = Some(repo.backend().staging())
        .filter(|s| s.shared)
        .map(|s| s.dir)
    else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let (me, my_token) = (std::process::id(), crate::backend::process_token());
    let locked: HashSet<u32> = live_jobs
        .iter()
        .filter_map(|l| l.record.as_ref().map(|r| r.pid))
        .collect();
    let now = std::time::SystemTime::now();
    let mut failed = 0u64;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((pid, token)) = name.to_str().and_then(staged_file_owner) else {
            continue;
        };
        if token == my_token
            || locked.contains(&pid)
            || (pid != me && crate::clock::process_alive(pid))
        {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let idle = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        if !meta.is_file() || idle < opts.stale_after {
            continue;
        }
        if !opts.dry_run && std::fs::remove_file(entry.path()).is_err() {
            failed += 1;
            continue;
        }
        report.staging_files_removed += 1;
        report.staging_bytes_removed += meta.len();
    }
    if report.staging_files_removed > 0 {
        report.notes.push(format!(
            "{} {} staged file(s) ({} bytes) that stopped processes left in {}",
            if opts.dry_run {
                "would remove"
            } else {
                "removed"
            },
            report.staging_files_removed,
            report.staging_bytes_removed,
            dir.display()
        ));
    }
    if failed > 0 {
        report.notes.push(format!(
            "could not remove {failed} left-over staged file(s) in {}; check its permissions",
            dir.display()
        ));
    }
}

/// The writer of a staged file, from its name: `<pid>-<token>-<thread>-<n>.tmp` or
/// `pack-<pid>-<token>-<n>.tmp` (token: 8 hex digits; the rest decimal).
fn staged_file_owner(name: &str) -> Option<(u32, &str)> {
    let stem = name.strip_suffix(".tmp")?;
    let stem = stem.strip_prefix("pack-").unwrap_or(stem);
    let mut parts = stem.split('-');
    let pid = parts.next()?.parse().ok()?;
    let token = parts.next()?;
    let rest: Vec<&str> = parts.collect();
    let decimal = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    (token.len() == 8
        && token.bytes().all(|b| b.is_ascii_hexdigit())
        && !rest.is_empty()
        && rest.iter().all(decimal))
    .then_some((pid, token))
}

/// The state one pass works on.
struct State {
    marks: Vec<(String, MarkRecord)>,
    live_jobs: Vec<FoundLock>,
    index: Index,
    /// One location per blob id, preferring packs that exist.
    entries: HashMap<BlobId, BlobLocation>,
    indexed_packs: HashSet<PackId>,
    /// Index entries naming each pack (its trailer size follows from it).
    entry_counts: HashMap<PackId, u64>,
    listed: HashMap<PackId, u64>,
    /// Trailers of packs no index file names (marked or not), or why they cannot be read.
    trailers: HashMap<PackId, std::result::Result<Vec<(BlobId, BlobLocation)>, String>>,
    reachable: Reachable,
    record_ids: HashSet<SnapshotId>,
    /// Pending marks of earlier runs, found at the start.
    stale_pending: Vec<String>,
    snapshots: u64,
}

#[expect(
    clippy::too_many_lines,
    reason = "reads every part of the state in one place; gc/plan.rs splits it"
)]
fn read_state(repo: &Repository, opts: &PruneOptions, report: &mut PruneReport) -> Result<State> {
    let backend = repo.backend().as_ref();
    // A pending mark left by a prune that stopped before its mark proper: its packs are
    // unindexed, so this run marks (or rescues) them again; the leftover is deleted once this
    // run's index file is written (readers may still need it until then).
    let stale_pending: Vec<String> = backend
        .list(keys::Kind::Mark.prefix())?
        .into_iter()
        .map(|o| o.key)
        .filter(|k| keys::is_pending_mark(k))
        .collect();
    let mut marks = Vec::new();
    for key in lock::list_marks(backend)? {
        let bytes = match backend.get(&key) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        match MarkRecord::from_bytes(&bytes, &key) {
            Ok(m) => marks.push((key, m)),
            Err(e) => {
                // Its packs are unindexed and so get marked again now, with a fresh time:
                // dropping a damaged mark only delays deletion.
                report
                    .notes
                    .push(format!("{e}; its packs are marked again"));
                if !opts.dry_run {
                    backend.delete(&key)?;
                }
            }
        }
    }
    let live_jobs = if opts.dry_run {
        lock::list_locks(backend, opts.stale_after)?
            .into_iter()
            .filter(|l| l.stale.is_none())
            .collect()
    } else {
        let (notes, live) = lock::remove_stale(backend, opts.stale_after, false)?;
        report.notes.extend(notes);
        live
    };
    let live_jobs: Vec<FoundLock> = live_jobs
        .into_iter()
        .filter(|l| l.record.as_ref().is_some_and(|r| r.kind == LockKind::Job))
        .collect();

    // Records, then index, then packs: a record is written after its index file and its
    // packs, so everything a listed record needs is in the listings that follow.
    let (records, bad) = repo.snapshots()?;
    if let Some((id, e)) = bad.first() {
        return Err(Error::InvalidInput(format!(
            "snapshot record {id} cannot be read ({e}); prune needs every record: run 'snapkeep verify', then 'snapkeep forget {id}' if it is lost"
        )));
    }
    // Index before packs: every pack an index file names was uploaded before that file was
    // written, so it is in the listing below unless it was deleted.
    let index = Index::open(backend)?;
    if let Some((key, e)) = index.damaged().first() {
        return Err(Error::InvalidInput(format!(
            "index file {key} is damaged ({e}); run 'snapkeep repair index' before prune"
        )));
    }
    let mut listed = HashMap::new();
    for o in backend.list(keys::Kind::Pack.prefix())? {
        match o
            .key
            .rsplit('/')
            .next()
            .and_then(|n| n.parse::<PackId>().ok())
        {
            Some(id) if keys::pack(&id) == o.key => {
                listed.insert(id, o.size);
            }
            _ => report
                .notes
                .push(format!("{} is not a pack name; left in place", o.key)),
        }
    }
    let mut entries: HashMap<BlobId, BlobLocation> = HashMap::new();
    let mut indexed_packs = HashSet::new();
    let mut dangling = 0u64;
    let mut entry_counts: HashMap<PackId, u64> = HashMap::new();
    for f in index.files() {
        for e in f.entries() {
            let Ok((id, loc)) = e else { continue };
            indexed_packs.insert(loc.pack);
            *entry_counts.entry(loc.pack).or_default() += 1;
            match entries.get(&id) {
                Some(old) if listed.contains_key(&old.pack) => {}
                _ => {
                    entries.insert(id, loc);
                }
            }
        }
    }
    for loc in entries.values() {
        if !listed.contains_key(&loc.pack) {
            dangling += 1;
        }
    }
    if dangling > 0 {
        report.notes.push(format!(
            "{dangling} index entries name packs that do not exist; run 'snapkeep verify' and 'snapkeep repair index'"
        ));
    }
    let unindexed: Vec<(PackId, u64)> = listed
        .iter()
        .filter(|(id, _)| !indexed_packs.contains(id))
        .map(|(id, size)| (*id, *size))
        .collect();
    let trailers: HashMap<PackId, std::result::Result<Vec<(BlobId, BlobLocation)>, String>> = {
        use rayon::prelude::*;
        unindexed
            .par_iter()
            .map(|(id, size)| {
                let r = read_pack_entries(backend, id, *size)
                    .map(|es| {
                        es.iter()
                            .map(|e| (e.id, location(*id, e)))
                            .collect::<Vec<_>>()
                    })
                    .map_err(|e| e.to_string());
                (*id, r)
            })
            .collect::<HashMap<_, _>>()
    };

    let mut extra: HashMap<BlobId, BlobLocation> = HashMap::new();
    for es in trailers.values().flatten() {
        for (id, loc) in es {
            extra.entry(*id).or_insert(*loc);
        }
    }
    let roots: Vec<(TreeId, SnapshotId)> = records.iter().map(|r| (r.tree, r.id)).collect();
    let reachable = reachable_from(backend, &roots, |id| {
        entries
            .get(id)
            .filter(|l| listed.contains_key(&l.pack))
            .or_else(|| extra.get(id))
            .copied()
    })?;
    let record_ids = records.iter().map(|r| r.id).collect();
    Ok(State {
        marks,
        live_jobs,
        index,
        entries,
        indexed_packs,
        entry_counts,
        listed,
        trailers,
        reachable,
        record_ids,
        stale_pending,
        snapshots: records.len() as u64,
    })
}

/// Every tree and chunk reachable from `roots` (root tree, snapshot), trees located by
/// `locate`.
fn reachable_from(
    backend: &dyn crate::backend::Backend,
    roots: &[(TreeId, SnapshotId)],
    locate: impl Fn(&BlobId) -> Option<BlobLocation>,
) -> Result<Reachable> {
    let snapshot = std::cell::Cell::new(None::<SnapshotId>);
    let source = Located {
        backend,
        locate: |t: &TreeId| {
            locate(&t.blob()).ok_or_else(|| {
                let snap = snapshot.get().map(|s| s.to_string()).unwrap_or_default();
                Error::InvalidInput(format!(
                    "tree {} of snapshot {snap} is in no pack; prune cannot tell what that snapshot needs: run 'snapkeep verify' first",
                    t.short()
                ))
            })
        },
    };
    let mut walker = Walker::once(&source);
    let mut reachable = Reachable::default();
    for (root, snap) in roots {
        snapshot.set(Some(*snap));
        walker.walk(root, "", &mut reachable)?;
    }
    Ok(reachable)
}

#[expect(
    clippy::too_many_lines,
    reason = "decides and acts in one pass; gc/ splits it into a plan and its execution"
)]
fn pass(
    repo: &Repository,
    opts: &PruneOptions,
    guard: Option<&LockGuard>,
    report: &mut PruneReport,
    first: bool,
) -> Result<()> {
    let backend = Arc::clone(repo.backend());
    let st = read_state(repo, opts, report)?;
    let now = now_ns();
    if first {
        clean_staging(repo, opts, &st.live_jobs, report);
        report.snapshots = st.snapshots;
        report.reachable_blobs = st.reachable.len() as u64;
        report.packs_before = st.listed.len() as u64;
        report.pack_bytes_before = st.listed.values().sum();
        report.index_files_before = st.index.files().len() as u64;
    }
    // Reachable blobs that the index lacks (they live only in marked or unindexed packs).
    let missing: HashSet<BlobId> = st
        .reachable
        .blobs()
        .filter(|id| {
            !st.entries
                .get(id)
                .is_some_and(|l| st.listed.contains_key(&l.pack))
        })
        .collect();
    let in_trailers: HashSet<BlobId> = st
        .trailers
        .values()
        .flatten()
        .flat_map(|es| es.iter().map(|(id, _)| *id))
        .collect();
    let accounted = missing.iter().all(|id| in_trailers.contains(id));
    drop(in_trailers);
    report.waiting_packs = 0;
    report.waiting_bytes = 0;
    let needed = |p: &PackId| match st.trailers.get(p) {
        Some(Ok(es)) => es.iter().any(|(id, _)| missing.contains(id)),
        // A pack whose trailer cannot be read might hold what nothing else does.
        Some(Err(_)) => !accounted,
        None => false,
    };

    // --- sweep earlier marks ---
    let grace_ns = i64::try_from(opts.grace.as_nanos()).unwrap_or(i64::MAX);
    let mut rescue: Vec<(BlobId, BlobLocation)> = Vec::new();
    let mut rescued_packs: HashSet<PackId> = HashSet::new();
    let mut delete: Vec<(PackId, u64)> = Vec::new();
    let mut mark_updates: Vec<(String, Option<MarkRecord>)> = Vec::new();
    let mut in_marks: HashSet<PackId> = HashSet::new();
    for (key, m) in &st.marks {
        let seen_by_all = st.live_jobs.iter().all(|l| {
            l.record
                .as_ref()
                .is_some_and(|r| r.seen_marks.iter().any(|k| k == key))
        });
        let eligible = now.saturating_sub(m.marked_ns) >= grace_ns && seen_by_all;
        let mut keep = Vec::new();
        for p in &m.packs {
            let Some(&size) = st.listed.get(&p.id) else {
                continue; // already gone
            };
            if st.indexed_packs.contains(&p.id) {
                report.unmarked_packs += 1;
            } else if needed(&p.id) {
                if let Some(Ok(es)) = st.trailers.get(&p.id) {
                    rescue.extend(es.iter().copied());
                    rescued_packs.insert(p.id);
                    report.rescued_packs += 1;
                } else {
                    keep.push(*p);
                }
            } else if eligible {
                delete.push((p.id, size));
            } else {
                keep.push(*p);
            }
        }
        for p in &keep {
            in_marks.insert(p.id);
            report.waiting_packs += 1;
            report.waiting_bytes += p.size;
        }
        if keep.len() != m.packs.len() {
            mark_updates.push((
                key.clone(),
                (!keep.is_empty()).then_some(MarkRecord {
                    marked_ns: m.marked_ns,
                    packs: keep,
                }),
            ));
        }
    }
    let deleting: HashSet<PackId> = delete.iter().map(|(p, _)| *p).collect();

    // --- mark ---
    let mut live: HashMap<PackId, u64> = HashMap::new();
    let mut by_pack: HashMap<PackId, Vec<(BlobId, BlobLocation)>> = HashMap::new();
    for (id, loc) in &st.entries {
        if st.reachable.contains(id) {
            *live.entry(loc.pack).or_default() += u64::from(loc.length);
            by_pack.entry(loc.pack).or_default().push((*id, *loc));
        }
    }
    let mut to_mark: Vec<MarkedPack> = Vec::new();
    let mut kept: Vec<(PackId, u64, u64)> = Vec::new(); // (pack, blob bytes, live bytes)
    for (id, &size) in &st.listed {
        if deleting.contains(id) || in_marks.contains(id) || rescued_packs.contains(id) {
            continue;
        }
        if !st.indexed_packs.contains(id) {
            // A crashed writer's leftover, or a running snapshot's pack not yet indexed: the
            // mark is harmless for the latter (its index file unmarks it). One that holds a
            // reachable blob the index lacks goes back into the index instead.
            if !needed(id) {
                to_mark.push(MarkedPack { id: *id, size });
            } else if let Some(Ok(es)) = st.trailers.get(id) {
                rescue.extend(es.iter().copied());
                report.rescued_packs += 1;
            }
            continue;
        }
        match live.get(id).copied().unwrap_or(0) {
            0 => to_mark.push(MarkedPack { id: *id, size }),
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
    let total_live: u64 = kept.iter().map(|k| k.2).sum();
    let mut unused: u64 = kept.iter().map(|k| k.1.saturating_sub(k.2)).sum();
    let limit = opts.max_unused.limit(total_live);
    kept.sort_by(|a, b| {
        // Least live share first: each repack frees the most per byte moved.
        (u128::from(a.2) * u128::from(b.1)).cmp(&(u128::from(b.2) * u128::from(a.1)))
    });
    let mut repack: Vec<(PackId, u64)> = Vec::new();
    for (id, blob_bytes, l) in &kept {
        if unused <= limit {
            break;
        }
        if blob_bytes == l {
            continue;
        }
        unused -= blob_bytes - l;
        repack.push((*id, st.listed[id]));
    }
    report.unused_bytes_after = unused;

    report.marked_packs += (to_mark.len() + repack.len()) as u64;
    report.marked_bytes +=
        to_mark.iter().map(|p| p.size).sum::<u64>() + repack.iter().map(|r| r.1).sum::<u64>();
    report.deleted_packs += delete.len() as u64;
    report.deleted_bytes += delete.iter().map(|d| d.1).sum::<u64>();
    report.repacked_packs += repack.len() as u64;
    for (p, _) in &repack {
        if let Some(v) = by_pack.get(p) {
            report.moved_blobs += v.len() as u64;
            report.moved_bytes += v.iter().map(|(_, l)| u64::from(l.length)).sum::<u64>();
        }
    }
    let after_packs: HashSet<PackId> = st
        .listed
        .keys()
        .filter(|p| !deleting.contains(p))
        .copied()
        .collect();

    if opts.dry_run {
        report.packs_after = after_packs.len() as u64;
        report.pack_bytes_after = after_packs.iter().map(|p| st.listed[p]).sum();
        report.index_files_after = report.index_files_before;
        return Ok(());
    }
    let check = || guard.map_or(Ok(()), LockGuard::check);

    // --- act: new packs ---
    let mut moved: Vec<(BlobId, BlobLocation)> = Vec::new();
    if !repack.is_empty() {
        let writer = PackWriter::new(Arc::clone(&backend), u64::from(repo.config().pack_size));
        writer.avoid(
            st.marks
                .iter()
                .flat_map(|(_, m)| m.packs.iter().map(|p| p.id))
                .chain(to_mark.iter().map(|p| p.id))
                .chain(repack.iter().map(|r| r.0)),
        );
        for (p, size) in &repack {
            let Some(blobs) = by_pack.get(p) else {
                continue;
            };
            let bytes = backend.get_range(&keys::pack(p), 0, *size)?;
            for (id, loc) in blobs {
                let start = loc.offset as usize;
                let end = start + loc.length as usize;
                let stored = bytes.get(start..end).ok_or_else(|| {
                    Error::corrupt(
                        format!("pack {p}"),
                        format!("blob {} lies past its end", id.short()),
                    )
                })?;
                check_blob_bytes(stored, loc, id)?;
                writer.add(*id, loc.kind, loc.compression, stored, loc.raw_length)?;
            }
        }
        let sealed = writer.finish()?;
        report.new_packs += writer.packs_written();
        moved.extend(sealed.iter().map(|s| (s.id, s.loc)));
    }

    // --- act: index ---
    let leaving: HashSet<PackId> = to_mark
        .iter()
        .map(|p| p.id)
        .chain(repack.iter().map(|r| r.0))
        .collect();
    let index_changes = !leaving.is_empty() || !rescue.is_empty();
    // Readers that miss a blob look into marked packs; the mark proper is written only after
    // the index rewrite (invariant 1), so a pending copy covers the time in between. Jobs'
    // locks never list pending marks.
    let mark_id = uuid::Uuid::now_v7();
    let pending_key = keys::mark(&mark_id, true);
    if !leaving.is_empty() {
        let pending = MarkRecord {
            marked_ns: now_ns(),
            packs: to_mark
                .iter()
                .copied()
                .chain(repack.iter().map(|(id, size)| MarkedPack {
                    id: *id,
                    size: *size,
                }))
                .collect(),
        };
        backend.put(&pending_key, &pending.to_bytes())?;
    }
    if index_changes {
        // Entries of packs that are gone go too (a rescued copy may replace them).
        let mut fresh: HashMap<BlobId, BlobLocation> = st
            .entries
            .iter()
            .filter(|(_, l)| !leaving.contains(&l.pack) && st.listed.contains_key(&l.pack))
            .map(|(i, l)| (*i, *l))
            .collect();
        for (id, loc) in moved.into_iter().chain(rescue) {
            fresh.entry(id).or_insert(loc);
        }
        check()?;
        let new_id =
            crate::index::write_index(backend.as_ref(), fresh.into_iter().collect())?.map(|x| x.0);
        for f in st.index.files() {
            if Some(f.id()) != new_id {
                backend.delete(&keys::index(&f.id()))?;
            }
        }
    }

    for key in &st.stale_pending {
        backend.delete(key)?;
    }

    // --- act: sweep ---
    for (p, _) in &delete {
        check()?;
        backend.delete(&keys::pack(p))?;
    }
    for (key, m) in mark_updates {
        match m {
            Some(m) => backend.put(&key, &m.to_bytes())?,
            None => backend.delete(&key)?,
        }
    }
    // --- act: the new mark, now that no index file names its packs ---
    let mut newly: Vec<MarkedPack> = to_mark;
    newly.extend(repack.iter().map(|(id, size)| MarkedPack {
        id: *id,
        size: *size,
    }));
    if !newly.is_empty() {
        report.waiting_packs += newly.len() as u64;
        report.waiting_bytes += newly.iter().map(|p| p.size).sum::<u64>();
        let rec = MarkRecord {
            marked_ns: now_ns(),
            packs: newly,
        };

        let key = keys::mark(&mark_id, false);
        backend.put_if_absent(&key, &rec.to_bytes())?;
        backend.delete(&pending_key)?;
        rescue_for_late_records(repo, &st.record_ids, &key, rec, report)?;
    }
    let after = backend.list(keys::Kind::Pack.prefix())?;
    report.packs_after = after.len() as u64;
    report.pack_bytes_after = after.iter().map(|o| o.size).sum();
    report.index_files_after = backend.list(keys::Kind::Index.prefix())?.len() as u64;
    Ok(())
}

/// Snapshots committed after this prune read the records may use packs it just marked (their
/// locks keep the packs from deletion; this keeps them restorable now): the marked packs that
/// hold a blob such a snapshot needs and the index lacks go back into the index.
fn rescue_for_late_records(
    repo: &Repository,
    known: &HashSet<SnapshotId>,
    mark_key: &str,
    mut mark: MarkRecord,
    report: &mut PruneReport,
) -> Result<()> {
    let backend = repo.backend().as_ref();
    let late: Vec<SnapshotId> = repo
        .snapshot_ids()?
        .into_iter()
        .filter(|id| !known.contains(id))
        .collect();
    if late.is_empty() {
        return Ok(());
    }
    let mut roots = Vec::new();
    for id in &late {
        match repo.load_snapshot(id) {
            Ok(r) => roots.push((r.tree, r.id)),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    let fresh = Index::open(backend)?;
    let mut trailers: Vec<(MarkedPack, Vec<(BlobId, BlobLocation)>)> = Vec::new();
    for p in &mark.packs {
        let es = read_pack_entries(backend, &p.id, p.size)?;
        trailers.push((*p, es.iter().map(|e| (e.id, location(p.id, e))).collect()));
    }
    let in_marked: HashMap<BlobId, BlobLocation> = trailers
        .iter()
        .flat_map(|(_, es)| es.iter().copied())
        .collect();
    // Trees of late snapshots may also sit in packs of older marks (reused from a view that
    // still had them); a tree found nowhere is left to the snapshot's own re-index and to
    // the next prune rather than failing this one after its work is done.
    let reach = match reachable_from(backend, &roots, |id| {
        fresh
            .get(id)
            .or_else(|| in_marked.get(id).copied())
            .or_else(|| repo.locate_marked(id))
    }) {
        Ok(r) => r,
        Err(e) => {
            report.notes.push(format!(
                "snapshots committed during this prune were not checked for rescue ({e}); the next prune checks them"
            ));
            return Ok(());
        }
    };
    let mut entries = Vec::new();
    let mut rescued = HashSet::new();
    for (p, es) in &trailers {
        if es
            .iter()
            .any(|(id, _)| reach.contains(id) && !fresh.contains(id))
        {
            entries.extend(es.iter().copied());
            rescued.insert(p.id);
        }
    }
    if rescued.is_empty() {
        return Ok(());
    }
    crate::index::write_index(backend, entries)?;
    report.rescued_packs += rescued.len() as u64;
    report.waiting_packs = report.waiting_packs.saturating_sub(rescued.len() as u64);
    let rescued_bytes: u64 = mark
        .packs
        .iter()
        .filter(|p| rescued.contains(&p.id))
        .map(|p| p.size)
        .sum();
    report.waiting_bytes = report.waiting_bytes.saturating_sub(rescued_bytes);
    mark.packs.retain(|p| !rescued.contains(&p.id));
    if mark.packs.is_empty() {
        backend.delete(mark_key)
    } else {
        backend.put(mark_key, &mark.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::staged_file_owner;

    #[test]
    fn staged_file_names_give_their_writer() {
        assert_eq!(
            staged_file_owner("pack-4242-0a1b2c3d-17.tmp"),
            Some((4242, "0a1b2c3d"))
        );
        assert_eq!(
            staged_file_owner("4242-0a1b2c3d-99812-3.tmp"),
            Some((4242, "0a1b2c3d"))
        );
        for other in [
            "notes.txt",
            "4242.tmp",
            "pack-4242-17.tmp",
            "pack-4242-0a1b2c3d.tmp",
            "pack-x-0a1b2c3d-1.tmp",
            "4242-0a1b2c3g-1-3.tmp",
            "4242-0a1b2c3d--3.tmp",
            "4242-0a1b2c3d-1a-3.tmp",
            "pack-4242-0a1b2c3d-17.tmp.part",
            "",
        ] {
            assert_eq!(staged_file_owner(other), None, "{other}");
        }
    }
}
