//! Verification's pack pass: every selected pack read once and every blob in it re-hashed.
//!
//! Owns: [`read_packs`] (packs in parallel) and the reading of one pack: header and trailer
//! checked, then the pack read front to back in runs of up to `RUN` bytes, the blobs of a run
//! decoded and hashed in parallel; a pack whose trailer cannot be read is checked blob by blob
//! from the index's view of it.
//!
//! Invariants: memory is bounded by one run per worker; a blob is judged by the copy the
//! index points to (the copy a restore reads): a damaged copy elsewhere is a finding against
//! its pack, not against the files that use the blob; every problem becomes a finding or a
//! "bad" entry, never an error that stops the verification.
//!
//! Must not: walk trees or judge files (that is `structure`), nor write anything.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rayon::prelude::*;

use super::{BlobFacts, VerifyReport};
use crate::backend::Backend;
use crate::codec::Codec;
use crate::format::index_file::BlobLocation;
use crate::format::keys;
use crate::format::pack::{HEADER, PackEntry};
use crate::id::{BlobId, PackId};
use crate::index::Index;
use crate::pack::{check_blob_bytes_in_place, location, read_pack_entries};
use crate::progress::{Phase, Progress};
use crate::repository::Repository;

/// A blob's check: its CRC32 and raw length, or what is wrong with it.
type Checked = std::result::Result<(u32, u32), String>;

/// Reads every pack once; returns facts of good blobs and problems of bad ones. Each pack's
/// result is folded in as it comes (memory: the packs being read, not all their blobs).
pub(super) fn read_packs(
    repo: &Repository,
    packs: &HashMap<PackId, u64>,
    progress: &dyn Progress,
    report: &mut VerifyReport,
) -> (BlobFacts, HashMap<BlobId, String>) {
    let total: u64 = packs.values().sum();
    progress.phase(Phase::Verify, total, packs.len() as u64);
    let bytes_read = AtomicU64::new(0);
    let mut list: Vec<(&PackId, &u64)> = packs.iter().collect();
    list.sort();
    let index = repo.index();
    let first_finding = report.findings.len();
    let folded = Mutex::new(Fold {
        facts: BlobFacts::new(Arc::clone(&index)),
        bad: HashMap::new(),
        report,
    });
    list.par_iter().for_each(|(id, size)| {
        if progress.is_cancelled() {
            return;
        }
        let r = read_pack(repo, id, **size);
        bytes_read.fetch_add(**size, Ordering::Relaxed);
        progress.advance(**size, 1);
        folded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .add(&index, r);
    });
    let fold = folded.into_inner().unwrap_or_else(PoisonError::into_inner);
    fold.report.bytes_read = bytes_read.load(Ordering::Relaxed);
    // Packs finish in any order; their findings are listed in one.
    fold.report.findings[first_finding..]
        .sort_by(|a, b| (&a.object, &a.problem).cmp(&(&b.object, &b.problem)));
    (fold.facts, fold.bad)
}

/// The packs' results folded so far: facts, bad blobs and findings.
struct Fold<'r> {
    facts: BlobFacts,
    bad: HashMap<BlobId, String>,
    report: &'r mut VerifyReport,
}

impl Fold<'_> {
    /// Folds one pack's result in.
    fn add(&mut self, index: &Index, r: PackResult) {
        let report = &mut *self.report;
        report.packs_read += 1;
        if let Some(problem) = r.problem {
            report.add(None, None, format!("pack {}", r.id), problem);
        }
        for (id, res) in r.blobs {
            report.blobs_read += 1;
            // Files are judged by the copy the index points to (the one restore reads); a
            // damaged duplicate elsewhere is reported against its pack.
            let indexed_here = index.get(&id).is_some_and(|l| l.pack == r.id);
            match res {
                Ok(f) => self.facts.set(&id, f, indexed_here),
                Err(problem) if indexed_here => {
                    self.bad.insert(id, problem);
                }
                Err(problem) => report.add(
                    None,
                    None,
                    format!("pack {}", r.id),
                    format!("duplicate copy of chunk {id} is damaged: {problem}"),
                ),
            }
        }
        // Index entries must agree with the pack's own trailer.
        for (id, loc) in r.mismatched {
            if let Some(i) = index.get(&id)
                && i.pack == r.id
                && i != loc
            {
                report.add(
                    None,
                    None,
                    format!("chunk {id}"),
                    format!("index location differs from pack {}'s trailer", r.id),
                );
            }
        }
    }
}

/// What reading one pack found.
struct PackResult {
    id: PackId,
    problem: Option<String>,
    blobs: Vec<(BlobId, Checked)>,
    /// Every blob's location by the pack's trailer (compared with the index's).
    mismatched: Vec<(BlobId, BlobLocation)>,
}

impl PackResult {
    fn new(id: PackId) -> Self {
        PackResult {
            id,
            problem: None,
            blobs: Vec::new(),
            mismatched: Vec::new(),
        }
    }
}

/// Largest single read while verifying a pack (bounds memory: one run per worker).
const RUN: u64 = 8 << 20;

fn read_pack(repo: &Repository, id: &PackId, size: u64) -> PackResult {
    let mut out = PackResult::new(*id);
    let backend = repo.backend().as_ref();
    let codec = repo.codec();
    let entries = match read_pack_entries(backend, codec, id, size) {
        Ok(e) => e,
        Err(e) => {
            out.problem = Some(format!(
                "trailer unreadable ({}); its blobs are reported from the index",
                e.finding()
            ));
            out.blobs = check_from_index(repo, backend, id);
            return out;
        }
    };
    if entries
        .first()
        .is_some_and(|e| u64::from(e.offset) != HEADER.len() as u64)
    {
        out.problem = Some("blobs do not start right after the header".into());
    }
    // The pack is read front to back once, in runs of up to RUN bytes; the blobs of a run
    // are decoded and hashed in parallel.
    let mut sorted = entries;
    sorted.sort_by_key(|e| e.offset);
    let mut i = 0;
    while i < sorted.len() {
        let start = u64::from(sorted[i].offset);
        let mut j = i + 1;
        while j < sorted.len()
            && u64::from(sorted[j].offset) + u64::from(sorted[j].length) - start <= RUN
        {
            j += 1;
        }
        for (cid, r, loc) in check_run(backend, codec, id, &sorted[i..j]) {
            out.blobs.push((cid, r));
            out.mismatched.push((cid, loc));
        }
        i = j;
    }
    out
}

/// The blobs the index places in pack `id`, each read and checked on its own (the pack's
/// trailer could not be read).
fn check_from_index(
    repo: &Repository,
    backend: &dyn Backend,
    id: &PackId,
) -> Vec<(BlobId, Checked)> {
    let index = repo.index();
    let mut from_index = Vec::new();
    for f in index.files() {
        for (cid, loc) in f.entries().flatten() {
            if loc.pack == *id {
                from_index.push((cid, loc));
            }
        }
    }
    from_index
        .into_iter()
        .map(|(cid, loc)| (cid, check_blob(backend, repo.codec(), &cid, &loc)))
        .collect()
}

/// One run of a pack's blobs (sorted by offset, together at most `RUN` bytes) read with one
/// ranged read and checked in parallel.
fn check_run(
    backend: &dyn Backend,
    codec: &Codec,
    id: &PackId,
    run: &[PackEntry],
) -> Vec<(BlobId, Checked, BlobLocation)> {
    let start = run.first().map_or(0, |e| u64::from(e.offset));
    let end = run
        .iter()
        .map(|e| u64::from(e.offset) + u64::from(e.length))
        .max()
        .unwrap_or(start);
    let mut bytes = backend.get_range(&keys::pack(id), start, end - start);
    let parts = match &mut bytes {
        Ok(b) => split_run(b, start, run),
        Err(_) => run.iter().map(|e| (e, None)).collect(),
    };
    parts
        .into_par_iter()
        .map(|(e, stored)| {
            let loc = location(*id, e);
            let r = match stored {
                // Opened in place: each blob has its own part of the buffer.
                Some(stored) => check_blob_bytes_in_place(codec, stored, &loc, &e.id)
                    .map(|crc| (crc, e.raw_length))
                    .map_err(|err| err.finding()),
                // The run could not be read whole, or this entry overlaps another (a damaged
                // trailer): check blob by blob to attribute it.
                None => check_blob(backend, codec, &e.id, &loc),
            };
            (e.id, r, loc)
        })
        .collect()
}

/// The part of `bytes` (read from `start`) of each entry of `run` (sorted by offset); `None`
/// for an entry that overlaps the one before it or lies outside what was read.
fn split_run<'a, 'e>(
    bytes: &'a mut [u8],
    start: u64,
    run: &'e [PackEntry],
) -> Vec<(&'e PackEntry, Option<&'a mut [u8]>)> {
    let mut parts = Vec::with_capacity(run.len());
    let mut rest = bytes;
    let mut pos = start;
    for e in run {
        let (off, len) = (u64::from(e.offset), u64::from(e.length));
        let gap = off.checked_sub(pos).and_then(|g| usize::try_from(g).ok());
        let (Some(gap), Ok(len)) = (gap, usize::try_from(len)) else {
            parts.push((e, None));
            continue;
        };
        if gap.saturating_add(len) > rest.len() {
            parts.push((e, None));
            continue;
        }
        // In bounds: checked just above.
        let tail = std::mem::take(&mut rest);
        let (_, tail) = tail.split_at_mut(gap);
        let (mine, tail) = tail.split_at_mut(len);
        parts.push((e, Some(mine)));
        rest = tail;
        pos = off + len as u64;
    }
    parts
}

fn check_blob(backend: &dyn Backend, codec: &Codec, id: &BlobId, loc: &BlobLocation) -> Checked {
    crate::pack::read_blob(backend, codec, id, loc)
        .map(|raw| (crc32fast::hash(&raw), loc.raw_length))
        .map_err(|e| e.finding())
}
