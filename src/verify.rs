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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::error::Result;
use crate::format::keys;
use crate::format::manifest::{FLAG_STAGE_FAILED, Node, NodeKind, SnapshotRecord, Tree};
use crate::format::pack::HEADER;
use crate::hasher::FileCrc;
use crate::id::{AsBlob, BlobId, PackId, SnapshotId, TreeId};
use crate::pack::{check_blob_bytes, location, read_pack_entries};
use crate::progress::{Phase, Progress};
use crate::repository::Repository;
use crate::stage::{Layout, StageSelection, StageSet};

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

/// A verified blob's CRC32 and length.
type BlobFacts = HashMap<BlobId, (u32, u32)>;

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
    for (key, e) in index.damaged() {
        report.add(None, None, key.clone(), e.to_string());
    }
    let packs: HashMap<PackId, u64> = repo
        .backend()
        .list(keys::Kind::Pack.prefix())?
        .into_iter()
        .filter_map(|o| {
            let name = o.key.rsplit('/').next()?;
            Some((name.parse::<PackId>().ok()?, o.size))
        })
        .collect();
    for f in index.files() {
        if opts.read_data
            && let Err(e) = f.check()
        {
            report.add(None, None, format!("index file {}", f.id()), e.to_string());
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

    // Resolve the selection once so a bad stage name is an input error, not a finding.
    StageSet::resolve(&opts.stages, Layout::Generic)?;
    let verified = if opts.read_data || opts.read_data_subset.is_some() {
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
        let (facts, bad) = read_packs(repo, &to_read, progress, &mut report);
        Some(Verified {
            facts,
            bad,
            packs: to_read.keys().copied().collect(),
            all: opts.read_data_subset.is_none(),
        })
    } else {
        None
    };

    for (id, e) in damaged {
        if opts.snapshot.is_none_or(|s| s == id) {
            report.add(
                Some(&id),
                None,
                format!("snapshot record {id}"),
                e.to_string(),
            );
        }
    }
    let selected: Vec<&SnapshotRecord> = records
        .iter()
        .filter(|r| opts.snapshot.is_none_or(|s| s == r.id))
        .collect();
    let mut walker = Walker {
        repo,
        packs: &packs,
        verified: verified.as_ref(),
        trees: HashMap::new(),
        stages: StageSet::default(),
        stage_dir: None,
        stage_cache: HashMap::new(),
    };
    if progress.is_cancelled() {
        return Err(crate::error::Error::Cancelled);
    }
    for rec in selected {
        if progress.is_cancelled() {
            return Err(crate::error::Error::Cancelled);
        }
        report.snapshots += 1;
        let has_data = walker.verified.is_some();
        walker.stages = match (has_data, walker.load(&rec.tree)) {
            (true, Ok(root)) => {
                let names: Vec<(&[u8], bool)> = root
                    .nodes
                    .iter()
                    .map(|n| (n.name.as_slice(), matches!(n.kind, NodeKind::Dir { .. })))
                    .collect();
                StageSet::resolve(&opts.stages, Layout::detect_names(&names))?
            }
            _ => StageSet::default(),
        };
        walker.walk(rec, &rec.tree, "", &mut report);
    }
    report.trees = walker.trees.len() as u64;
    Ok(report)
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

struct Walker<'a> {
    repo: &'a Repository,
    packs: &'a HashMap<PackId, u64>,
    verified: Option<&'a Verified>,
    trees: HashMap<TreeId, std::result::Result<Arc<Tree>, String>>,
    stages: StageSet,
    stage_dir: Option<tempfile::TempDir>,
    /// Stage problems by file content (chunk list and holes), so shared content is checked once.
    stage_cache: HashMap<[u8; 32], Vec<String>>,
}

impl Walker<'_> {
    fn load(&mut self, id: &TreeId) -> std::result::Result<Arc<Tree>, String> {
        if let Some(t) = self.trees.get(id) {
            return t.clone();
        }
        let t = match self.verified.and_then(|v| v.bad.get(&id.blob())) {
            Some(problem) => Err(problem.clone()),
            None => self
                .repo
                .load_tree(id)
                .map(Arc::new)
                .map_err(|e| e.to_string()),
        };
        self.trees.insert(*id, t.clone());
        t
    }

    fn walk(&mut self, rec: &SnapshotRecord, id: &TreeId, path: &str, report: &mut VerifyReport) {
        if path.matches('/').count() > crate::backup::MAX_DEPTH {
            report.add(
                Some(&rec.id),
                Some(path),
                format!("tree {id}"),
                "directories nested too deep".into(),
            );
            return;
        }
        let tree = match self.load(id) {
            Ok(t) => t,
            Err(problem) => {
                let shown = if path.is_empty() { "/" } else { path };
                report.add(Some(&rec.id), Some(shown), format!("tree {id}"), problem);
                return;
            }
        };
        for node in &tree.nodes {
            let p = format!("{path}/{}", String::from_utf8_lossy(&node.name));
            match &node.kind {
                NodeKind::Dir { tree } => self.walk(rec, tree, &p, report),
                NodeKind::Symlink { .. } => {}
                NodeKind::File {
                    crc32,
                    chunks,
                    holes,
                } => {
                    report.files += 1;
                    let mut crc = FileCrc::new();
                    let mut crc_known = self.verified.is_some();
                    let mut pos = 0u64;
                    let mut holes_iter = holes.iter().peekable();
                    for c in chunks {
                        while let Some(h) = holes_iter.next_if(|h| h.offset <= pos) {
                            crc.append_zeros(h.len);
                            pos = h.offset + h.len;
                        }
                        let object = format!("chunk {}", c.id);
                        let indexed = self.repo.index().get(&c.id);
                        if indexed.is_none() && self.repo.locate(&c.id).is_ok() {
                            // In a pack a running prune took out of the index (it puts it
                            // back), or indexed since this view was loaded: check the blob.
                            if self.verified.is_some() {
                                match self.repo.read_blob(&c.id) {
                                    Ok(raw) => crc.append(crc32fast::hash(&raw), raw.len() as u64),
                                    Err(e) => {
                                        report.add(Some(&rec.id), Some(&p), object, e.to_string());
                                        crc_known = false;
                                    }
                                }
                            }
                            pos += u64::from(c.len);
                            continue;
                        }
                        match indexed {
                            None => {
                                report.add(
                                    Some(&rec.id),
                                    Some(&p),
                                    object,
                                    "not in the index".into(),
                                );
                                crc_known = false;
                                continue;
                            }
                            Some(loc) if !self.packs.contains_key(&loc.pack) => {
                                report.add(
                                    Some(&rec.id),
                                    Some(&p),
                                    object,
                                    format!("its pack {} is missing", loc.pack),
                                );
                                crc_known = false;
                                continue;
                            }
                            Some(_) => {}
                        }
                        if let Some(v) = self.verified {
                            let read = self
                                .repo
                                .index()
                                .get(&c.id)
                                .is_some_and(|l| v.packs.contains(&l.pack));
                            if let Some(problem) = v.bad.get(&c.id.blob()) {
                                report.add(Some(&rec.id), Some(&p), object, problem.clone());
                                crc_known = false;
                            } else if !read && !v.all {
                                // Its pack is outside this run's subset: no verdict.
                                crc_known = false;
                            } else if let Some(&(cc, len)) = v.facts.get(&c.id.blob()) {
                                if len != c.len {
                                    report.add(
                                        Some(&rec.id),
                                        Some(&p),
                                        object,
                                        format!("stored length {len}, the tree says {}", c.len),
                                    );
                                    crc_known = false;
                                }
                                crc.append(cc, u64::from(len));
                            } else {
                                report.add(
                                    Some(&rec.id),
                                    Some(&p),
                                    object,
                                    "not found in any pack that was read".into(),
                                );
                                crc_known = false;
                            }
                        }
                        pos += u64::from(c.len);
                    }
                    for h in holes_iter {
                        crc.append_zeros(h.len);
                        pos = h.offset + h.len;
                    }
                    if pos != node.size {
                        report.add(
                            Some(&rec.id),
                            Some(&p),
                            "file".into(),
                            format!(
                                "chunks and holes cover {pos} bytes, the size is {}",
                                node.size
                            ),
                        );
                    } else if crc_known {
                        let actual = crc.finalize();
                        if actual == *crc32 {
                            self.run_stages(rec, node, &p, report);
                        } else {
                            report.add(
                                Some(&rec.id),
                                Some(&p),
                                "file".into(),
                                format!("CRC32 {actual:08x} differs from the recorded {crc32:08x}"),
                            );
                        }
                    }
                    if node.flags & FLAG_STAGE_FAILED != 0 {
                        report.add(
                            Some(&rec.id),
                            Some(&p),
                            "file".into(),
                            "failed its format stage when captured (kept by --allow-inconsistent)"
                                .into(),
                        );
                    }
                }
            }
        }
    }
}

impl Walker<'_> {
    /// Runs the format stages on a file whose chunks all verified, materialized from the
    /// repository into a private directory; results are cached by content.
    fn run_stages(
        &mut self,
        rec: &SnapshotRecord,
        node: &Node,
        path: &str,
        report: &mut VerifyReport,
    ) {
        let rel = path.trim_start_matches('/');
        if !self.stages.applies_to(rel) {
            return;
        }
        let NodeKind::File { chunks, holes, .. } = &node.kind else {
            return;
        };
        let mut h = blake3::Hasher::new();
        h.update(rel.as_bytes());
        for c in chunks {
            h.update(c.id.as_bytes());
        }
        for x in holes {
            h.update(&x.offset.to_le_bytes());
            h.update(&x.len.to_le_bytes());
        }
        let key = *h.finalize().as_bytes();
        if !self.stage_cache.contains_key(&key) {
            let problems = self.materialize_and_check(node, rel);
            report.stage_files += 1;
            self.stage_cache.insert(key, problems);
        }
        for problem in self.stage_cache.get(&key).into_iter().flatten() {
            report.add(Some(&rec.id), Some(path), "file".into(), problem.clone());
        }
    }

    fn materialize_and_check(&mut self, node: &Node, rel: &str) -> Vec<String> {
        if self.stage_dir.is_none() {
            match tempfile::Builder::new()
                .prefix("snapkeep-verify-")
                .tempdir()
            {
                Ok(d) => self.stage_dir = Some(d),
                Err(e) => {
                    return vec![format!(
                        "cannot create a private directory to run stages: {e}"
                    )];
                }
            }
        }
        let Some(dir) = &self.stage_dir else {
            return Vec::new();
        };
        let dest = dir.path().join(format!("file-{}", self.stage_cache.len()));
        let out = match crate::restore::materialize(self.repo, node, rel, &dest) {
            Ok(()) => self.stages.check(rel, &dest),
            Err(e) => vec![format!("cannot materialize it for the format stages: {e}")],
        };
        let _ = std::fs::remove_file(&dest);
        out
    }
}

/// Reads every pack once; returns facts of good blobs and problems of bad ones.
fn read_packs(
    repo: &Repository,
    packs: &HashMap<PackId, u64>,
    progress: &dyn Progress,
    report: &mut VerifyReport,
) -> (BlobFacts, HashMap<BlobId, String>) {
    let total: u64 = packs.values().sum();
    progress.phase(Phase::Verify, total, packs.len() as u64);
    let index = repo.index();
    let bytes_read = AtomicU64::new(0);
    let mut list: Vec<(&PackId, &u64)> = packs.iter().collect();
    list.sort();
    let results: Vec<PackResult> = list
        .par_iter()
        .map(|(id, size)| {
            if progress.is_cancelled() {
                return PackResult {
                    id: **id,
                    problem: None,
                    blobs: Vec::new(),
                    mismatched: Vec::new(),
                };
            }
            let r = read_pack(repo, id, **size);
            bytes_read.fetch_add(**size, Ordering::Relaxed);
            progress.advance(**size, 1);
            r
        })
        .collect();
    let mut facts = BlobFacts::new();
    let mut bad: HashMap<BlobId, String> = HashMap::new();
    for r in results {
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
                Ok(f) if indexed_here => {
                    facts.insert(id, f);
                }
                Ok(f) => {
                    facts.entry(id).or_insert(f);
                }
                Err(problem) if indexed_here => {
                    bad.insert(id, problem);
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
    report.bytes_read = bytes_read.load(Ordering::Relaxed);
    (facts, bad)
}

struct PackResult {
    id: PackId,
    problem: Option<String>,
    blobs: Vec<(BlobId, std::result::Result<(u32, u32), String>)>,
    mismatched: Vec<(BlobId, crate::format::index_file::BlobLocation)>,
}

/// Largest single read while verifying a pack (bounds memory: one run per worker).
const RUN: u64 = 8 << 20;

fn read_pack(repo: &Repository, id: &PackId, size: u64) -> PackResult {
    let mut out = PackResult {
        id: *id,
        problem: None,
        blobs: Vec::new(),
        mismatched: Vec::new(),
    };
    let backend = repo.backend().as_ref();
    let entries = match read_pack_entries(backend, id, size) {
        Ok(e) => e,
        Err(e) => {
            out.problem = Some(format!(
                "trailer unreadable ({e}); its blobs are reported from the index"
            ));
            // Fall back to the index's view of this pack so blobs are still checked.
            let index = repo.index();
            let mut from_index = Vec::new();
            for f in index.files() {
                for (cid, loc) in f.entries().flatten() {
                    if loc.pack == *id {
                        from_index.push((cid, loc));
                    }
                }
            }
            for (cid, loc) in from_index {
                out.blobs.push((cid, check_blob(backend, &cid, &loc)));
            }
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
    let key = keys::pack(id);
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
        let run = &sorted[i..j];
        let end = run
            .iter()
            .map(|e| u64::from(e.offset) + u64::from(e.length))
            .max()
            .unwrap_or(start);
        let bytes = backend.get_range(&key, start, end - start);
        let checked: Vec<_> = run
            .par_iter()
            .map(|e| {
                let loc = location(*id, e);
                let r = match &bytes {
                    Ok(b) => {
                        let from = usize::try_from(u64::from(e.offset) - start).unwrap_or(0);
                        let stored = &b[from..from + e.length as usize];
                        check_blob_bytes(stored, &loc, &e.id)
                            .map(|crc| (crc, e.raw_length))
                            .map_err(|err| err.to_string())
                    }
                    // The run could not be read whole: check blob by blob to attribute it.
                    Err(_) => check_blob(backend, &e.id, &loc),
                };
                (e.id, r, loc)
            })
            .collect();
        for (cid, r, loc) in checked {
            out.blobs.push((cid, r));
            out.mismatched.push((cid, loc));
        }
        i = j;
    }
    out
}

fn check_blob(
    backend: &dyn crate::backend::Backend,
    id: &BlobId,
    loc: &crate::format::index_file::BlobLocation,
) -> std::result::Result<(u32, u32), String> {
    crate::pack::read_blob(backend, id, loc)
        .map(|raw| (crc32fast::hash(&raw), loc.raw_length))
        .map_err(|e| e.to_string())
}
