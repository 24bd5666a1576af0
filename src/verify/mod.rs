//! Verification: findings, not failures.
//!
//! Owns: [`verify`] and its stages, run in this order and never stopping at the first problem:
//! 1. index: every index file opens; with `read_data`, its checksum and entries are checked;
//! 2. packs (`read_data`): every pack's header and trailer are checked, every blob is read
//!    once, front to back in runs of up to 8 MiB per pack, decompressed and re-hashed (the
//!    blobs of a run in parallel, packs in parallel);
//! 3. structure: every selected snapshot record decodes, every tree it reaches decodes, and
//!    every tree and chunk is in the index and points into an existing pack;
//! 4. files (`read_data`): every file's size and CRC32 is recomputed from the CRC32 of its
//!    verified chunks and its holes, without reading the data twice.
//!
//! Every finding names the snapshot, the file path and the object where they are known.
//!
//! Layout: this file holds the options, the report and its findings, and [`verify`], which
//! runs the stages; `packs` reads and checks packs and blobs (stage 2); `structure` walks the
//! snapshots' trees with the one walker and checks files and format stages (stages 3 and 4).
//!
//! Invariants: verification only reads (format stages run on private copies in a temporary
//! directory); a problem in the repository is a [`Finding`], and only bad input, a lock or
//! cancellation is an error.
//!
//! Must not: import another verb (restore, backup): file content for the stages comes from
//! [`crate::content`], trees from [`crate::walk`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::error::Result;
use crate::format::keys;
use crate::format::manifest::SnapshotRecord;
use crate::id::{BlobId, PackId, SnapshotId};
use crate::index::Index;
use crate::progress::Progress;
use crate::repository::Repository;
use crate::stage::{Layout, StageSelection, StageSet};

mod packs;
mod structure;

/// What to verify.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Only this snapshot (default: all).
    pub snapshot: Option<SnapshotId>,
    /// Read every pack and re-hash every blob; recompute every file's CRC32; run the format
    /// stages on files materialized from the repository.
    pub read_data: bool,
    /// Read only a subset of the packs (implies reading data); files whose chunks were all
    /// read get the file and format checks.
    pub read_data_subset: Option<Subset>,
    /// Format stages for `read_data` (default: by the layout detected in each snapshot).
    pub stages: StageSelection,
}

/// A subset of packs to read, to spread a full check over several runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Subset {
    /// Part `n` of `m` (1-based): packs whose id, as a number, is `n-1` modulo `m`.
    Part { n: u32, m: u32 },
    /// A random share of the packs, in percent (a new sample each run).
    Percent(f64),
}

impl std::str::FromStr for Subset {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            crate::error::Error::InvalidInput(format!(
                "read-data subset '{s}' is not understood: use N/M (1 <= N <= M) or P% (0 < P <= 100)"
            ))
        };
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            return if p > 0.0 && p <= 100.0 {
                Ok(Subset::Percent(p))
            } else {
                Err(bad())
            };
        }
        let (n, m) = s.split_once('/').ok_or_else(bad)?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        let m: u32 = m.trim().parse().map_err(|_| bad())?;
        if n >= 1 && n <= m {
            Ok(Subset::Part { n, m })
        } else {
            Err(bad())
        }
    }
}

impl Subset {
    fn selects(self, id: &PackId, salt: &[u8; 16]) -> bool {
        match self {
            Subset::Part { n, m } => {
                let v = u32::from_le_bytes([
                    id.as_bytes()[0],
                    id.as_bytes()[1],
                    id.as_bytes()[2],
                    id.as_bytes()[3],
                ]);
                v % m == n - 1
            }
            Subset::Percent(p) => {
                let mut h = blake3::Hasher::new();
                h.update(salt);
                h.update(id.as_bytes());
                let b = h.finalize();
                let v = u64::from_le_bytes(b.as_bytes()[..8].try_into().unwrap_or([0; 8]));
                (v as f64) < p / 100.0 * (u64::MAX as f64)
            }
        }
    }
}

/// One problem found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The snapshot affected, when known.
    pub snapshot: Option<String>,
    /// The file path inside the snapshot, when known.
    pub path: Option<String>,
    /// The damaged or missing object (`pack <id>`, `chunk <id>`, `index file <id>`, ...).
    pub object: String,
    /// What is wrong.
    pub problem: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(s) = &self.snapshot {
            write!(f, "snapshot {s}: ")?;
        }
        if let Some(p) = &self.path {
            write!(f, "{p}: ")?;
        }
        write!(f, "{}: {}", self.object, self.problem)
    }
}

/// The result of a verification.
#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    pub findings: Vec<Finding>,
    pub snapshots: u64,
    pub trees: u64,
    pub files: u64,
    pub packs_read: u64,
    pub blobs_read: u64,
    pub bytes_read: u64,
    /// Files checked by format stages.
    pub stage_files: u64,
}

impl VerifyReport {
    /// Whether nothing was found.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }

    fn add(
        &mut self,
        snapshot: Option<&SnapshotId>,
        path: Option<&str>,
        object: String,
        problem: String,
    ) {
        self.findings.push(Finding {
            snapshot: snapshot.map(ToString::to_string),
            path: path.map(str::to_owned),
            object,
            problem,
        });
    }
}

/// What the pack pass found of each good blob, its CRC32 and raw length, kept in arrays by
/// the blob's position in the index the pass judged by (8 bytes a blob, not a map by id).
struct BlobFacts {
    index: Arc<Index>,
    /// Per index file, per entry: `(crc32, length)`, or [`BlobFacts::NONE`] as the length.
    slots: Vec<Vec<(u32, u32)>>,
}

impl BlobFacts {
    /// The length of a slot with no fact (no blob is 4 GiB long).
    const NONE: u32 = u32::MAX;

    fn new(index: Arc<Index>) -> Self {
        let slots = index
            .files()
            .iter()
            .map(|f| vec![(0, Self::NONE); f.len()])
            .collect();
        BlobFacts { index, slots }
    }

    /// The fact of blob `id`, when one was found.
    fn get(&self, id: &BlobId) -> Option<(u32, u32)> {
        let (file, pos) = self.index.position(id)?;
        let fact = *self.slots.get(file)?.get(pos)?;
        (fact.1 != Self::NONE).then_some(fact)
    }

    /// Records the fact of blob `id` (replacing one found before when `replace`); a blob
    /// outside the index has no slot, and no fact is kept.
    fn set(&mut self, id: &BlobId, fact: (u32, u32), replace: bool) {
        if let Some((file, pos)) = self.index.position(id)
            && let Some(slot) = self.slots.get_mut(file).and_then(|f| f.get_mut(pos))
            && (replace || slot.1 == Self::NONE)
        {
            *slot = fact;
        }
    }
}

/// Verifies the repository (or one snapshot) and reports what it finds.
pub fn verify(
    repo: &Repository,
    opts: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    // Records first: a listed record's index file and packs were written before it, so the
    // index loaded next covers them.
    let (records, damaged) = repo.snapshots()?;
    let _lock = crate::lock::acquire_reader(repo, "verify", progress)?;
    let index = repo.index();
    let packs = list_packs(repo)?;
    check_index(&index, &packs, opts, &mut report);

    // Resolve the selection once so a bad stage name is an input error, not a finding.
    StageSet::resolve(&opts.stages, Layout::Generic)?;
    let verified = if opts.read_data || opts.read_data_subset.is_some() {
        Some(read_data(repo, &index, &packs, opts, progress, &mut report))
    } else {
        None
    };

    for (id, e) in damaged {
        if opts.snapshot.is_none_or(|s| s == id) {
            report.add(
                Some(&id),
                None,
                format!("snapshot record {id}"),
                e.finding(),
            );
        }
    }
    let selected: Vec<&SnapshotRecord> = records
        .iter()
        .filter(|r| opts.snapshot.is_none_or(|s| s == r.id))
        .collect();
    structure::check_snapshots(
        repo,
        opts,
        &packs,
        verified.as_ref(),
        &selected,
        progress,
        &mut report,
    )?;
    Ok(report)
}

/// Every pack in the backend, with its size.
fn list_packs(repo: &Repository) -> Result<HashMap<PackId, u64>> {
    Ok(repo
        .backend()
        .list(keys::Kind::Pack.prefix())?
        .into_iter()
        .filter_map(|o| {
            let name = o.key.rsplit('/').next()?;
            Some((name.parse::<PackId>().ok()?, o.size))
        })
        .collect())
}

/// The index stage: damaged index files, checksums and entries (with read data), and packs
/// the index references that are missing.
fn check_index(
    index: &Index,
    packs: &HashMap<PackId, u64>,
    opts: &VerifyOptions,
    report: &mut VerifyReport,
) {
    for (key, e) in index.damaged() {
        report.add(None, None, key.clone(), e.finding());
    }
    for f in index.files() {
        if opts.read_data
            && let Err(e) = f.check()
        {
            report.add(None, None, format!("index file {}", f.id()), e.finding());
        }
        for p in f.packs() {
            if !packs.contains_key(&p) {
                report.add(
                    None,
                    None,
                    format!("pack {p}"),
                    format!("missing, but index file {} references it", f.id()),
                );
            }
        }
    }
}

/// The pack stage: the referenced packs (or the subset's share of them) read and checked.
fn read_data(
    repo: &Repository,
    index: &Index,
    packs: &HashMap<PackId, u64>,
    opts: &VerifyOptions,
    progress: &dyn Progress,
    report: &mut VerifyReport,
) -> Verified {
    // Only packs the index references: anything else is an unfinished write's leftover,
    // garbage for prune, not a finding.
    let referenced: HashSet<PackId> = index.files().iter().flat_map(|f| f.packs()).collect();
    let salt = *uuid::Uuid::now_v7().as_bytes();
    let to_read: HashMap<PackId, u64> = packs
        .iter()
        .filter(|(id, _)| referenced.contains(id))
        .filter(|(id, _)| opts.read_data_subset.is_none_or(|s| s.selects(id, &salt)))
        .map(|(id, size)| (*id, *size))
        .collect();
    let (facts, bad) = packs::read_packs(repo, &to_read, progress, report);
    Verified {
        facts,
        bad,
        packs: to_read.keys().copied().collect(),
        all: opts.read_data_subset.is_none(),
    }
}

/// What the pack pass established.
struct Verified {
    facts: BlobFacts,
    bad: HashMap<BlobId, String>,
    /// Packs that were read.
    packs: HashSet<PackId>,
    /// Whether every referenced pack was read (no subset).
    all: bool,
}
