//! Reading the repository's state for a garbage-collection pass: the survey of marks and
//! locks ([`survey`]), then the records, the index, the pack listing, the trailers of
//! unindexed packs and the reachable set R ([`read_state`], through `walk.rs`), and which
//! packs R may need ([`Needs`]). [`super::plan`] decides on what is read here.
//!
//! Invariants:
//! - Marks and locks are read first; records are listed before the index, and the index
//!   before the packs, so everything a listed record needs is in the later listings (design,
//!   invariant 9). The caller removes stale locks between the survey and [`read_state`].
//! - One location per blob, an existing pack preferred (the live blobs of a pack).
//! - A snapshot record, index file or tree of R that cannot be read stops the prune
//!   (invariant 11): prune cannot prove what a damaged snapshot needs.
//! - A pack whose trailer cannot be read may hold any missing blob, unless every blob R needs
//!   and the index lacks is in a readable trailer.
//!
//! Must not: write, delete or lock anything (it only lists and reads), nor read pack data
//! beyond trailers and trees.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::backend::Backend;
use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::format::gc::{LockKind, MarkRecord};
use crate::format::index_file::BlobLocation;
use crate::format::keys;
use crate::id::{AsBlob, BlobId, PackId, SnapshotId, TreeId};
use crate::index::{Index, Merged, Occurrence};
use crate::lock::{self, FoundLock};
use crate::pack::{location, read_pack_entries};
use crate::repository::Repository;
use crate::walk::{Located, Reachable, ReachableBits, Visitor, Walker};

/// Index entries: blob ids with their locations.
pub type Entries = Vec<(BlobId, BlobLocation)>;

/// The marks and locks of the repository, read before anything else.
pub struct Survey {
    /// Pending marks (`marks/<uuid>.pending`) that earlier runs left behind: deleted once this
    /// run's index file is written (readers may still need them until then).
    pub stale_pending: Vec<String>,
    /// Marks that decode, with their keys.
    pub marks: Vec<(String, MarkRecord)>,
    /// Marks that do not decode: to be deleted. Their packs are unindexed and so get marked
    /// again, with a fresh time: dropping a damaged mark only delays deletion.
    pub damaged_marks: Vec<String>,
    /// Every lock, stale or not ([`FoundLock::stale`]).
    pub locks: Vec<FoundLock>,
    /// One remark per damaged mark.
    pub notes: Vec<String>,
}

impl Survey {
    /// The live locks of jobs (snapshot, restore, verify, tag).
    pub fn live_jobs(&self) -> impl Iterator<Item = &FoundLock> {
        self.locks.iter().filter(|l| {
            l.stale.is_none() && l.record.as_ref().is_some_and(|r| r.kind == LockKind::Job)
        })
    }

    /// The locks that are stale, to be removed.
    pub fn stale_locks(&self) -> impl Iterator<Item = &FoundLock> {
        self.locks.iter().filter(|l| l.stale.is_some())
    }
}

/// Reads the marks (pending ones apart) and every lock.
pub fn survey(backend: &dyn Backend, stale_after: Duration) -> Result<Survey> {
    let stale_pending: Vec<String> = backend
        .list(keys::Kind::Mark.prefix())?
        .into_iter()
        .map(|o| o.key)
        .filter(|k| keys::is_pending_mark(k))
        .collect();
    let (mut marks, mut damaged_marks, mut notes) = (Vec::new(), Vec::new(), Vec::new());
    for key in lock::list_marks(backend)? {
        let bytes = match backend.get(&key) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        match MarkRecord::from_bytes(&bytes, &key) {
            Ok(m) => marks.push((key, m)),
            Err(e) => {
                notes.push(format!("{e}; its packs are marked again"));
                damaged_marks.push(key);
            }
        }
    }
    let locks = lock::list_locks(backend, stale_after)?;
    Ok(Survey {
        stale_pending,
        marks,
        damaged_marks,
        locks,
        notes,
    })
}

/// The state one pass decides on. Per-blob state is kept by index position (bits), never in
/// maps by id: memory follows the index files, not the number of blobs.
pub struct State {
    pub index: Index,
    pub indexed_packs: HashSet<PackId>,
    /// Index entries naming each pack (its trailer size follows from it).
    pub entry_counts: HashMap<PackId, u64>,
    /// The packs listed, with their sizes.
    pub listed: HashMap<PackId, u64>,
    /// Trailers of packs no index file names (marked or not), or why they cannot be read.
    pub trailers: HashMap<PackId, std::result::Result<Entries, String>>,
    /// R: every tree and chunk the records reach.
    pub reachable: ReachableBits,
    /// The blobs of R that no listed pack the index names holds (they live, if anywhere,
    /// in marked or unindexed packs).
    pub missing: HashSet<BlobId>,
    pub record_ids: HashSet<SnapshotId>,
    pub snapshots: u64,
    /// Remarks on what was read (names that are no pack names, dangling index entries).
    pub notes: Vec<String>,
}

impl State {
    /// Every id of the index once, in id order, with its chosen location (one per id, a
    /// listed pack preferred) and the place R's bits keep it: a streaming merge of the
    /// index files.
    pub fn chosen(&self) -> impl Iterator<Item = Chosen> + '_ {
        Merged::new(self.index.files()).map(|(id, found)| Chosen {
            id,
            location: choose(&found, &self.listed).location,
            reachable: self.reachable.contains_at(found[0].file, found[0].position),
        })
    }
}

/// The entries of an index that stay when some packs leave it: the chosen location of every
/// id whose pack is listed and not leaving, streamed in id order from the index files.
pub struct Kept {
    files: Vec<std::sync::Arc<crate::index::IndexFile>>,
    listed: HashMap<PackId, u64>,
    leaving: HashSet<PackId>,
    /// How many entries stay.
    pub count: u64,
}

impl Kept {
    /// What stays of `st`'s index when the packs of `leaving` leave it.
    pub fn new(st: &State, leaving: HashSet<PackId>) -> Self {
        let mut kept = Kept {
            files: st.index.files().to_vec(),
            listed: st.listed.clone(),
            leaving,
            count: 0,
        };
        kept.count = kept.entries().count() as u64;
        kept
    }

    /// Whether `id` stays (its chosen location is in a pack that stays).
    pub fn holds(&self, id: &BlobId) -> bool {
        let found: Vec<Occurrence> = self
            .files
            .iter()
            .enumerate()
            .filter_map(|(n, f)| {
                let i = f.position(id)?;
                let (_, location) = f.entry_at(i)?;
                Some(Occurrence {
                    file: n,
                    position: i,
                    location,
                })
            })
            .collect();
        !found.is_empty() && self.stays(&found).is_some()
    }

    /// The chosen location of an id found at `found`, when it stays.
    fn stays(&self, found: &[Occurrence]) -> Option<BlobLocation> {
        let l = choose(found, &self.listed).location;
        (self.listed.contains_key(&l.pack) && !self.leaving.contains(&l.pack)).then_some(l)
    }

    /// The entries that stay, in id order.
    pub fn entries(&self) -> impl Iterator<Item = (BlobId, BlobLocation)> + '_ {
        Merged::new(&self.files).filter_map(|(id, found)| self.stays(&found).map(|l| (id, l)))
    }
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Kept({} entries of {} index files)",
            self.count,
            self.files.len()
        )
    }
}

/// One id of the index with its chosen location, and whether R holds it.
#[derive(Clone, Copy, Debug)]
pub struct Chosen {
    pub id: BlobId,
    pub location: BlobLocation,
    pub reachable: bool,
}

/// The occurrence of an id that counts: the first in a listed pack, else the last.
fn choose<'a>(found: &'a [Occurrence], listed: &HashMap<PackId, u64>) -> &'a Occurrence {
    found
        .iter()
        .find(|o| listed.contains_key(&o.location.pack))
        .unwrap_or(&found[found.len() - 1])
}

/// Reads records (all but those of `forgotten`), index, packs and trailers, and computes R.
pub fn read_state(repo: &Repository, forgotten: &[SnapshotId]) -> Result<State> {
    let backend = repo.backend().as_ref();
    // Records, then index, then packs: a record is written after its index file and its
    // packs, so everything a listed record needs is in the listings that follow.
    let (mut records, mut bad) = repo.snapshots()?;
    records.retain(|r| !forgotten.contains(&r.id));
    bad.retain(|(id, _)| !forgotten.contains(id));
    if let Some((id, e)) = bad.first() {
        return Err(Error::InvalidInput(format!(
            "snapshot record {id} cannot be read ({e}); prune needs every record: run 'snapkeep verify', then 'snapkeep forget {id}' if it is lost"
        )));
    }
    // Index before packs: every pack an index file names was uploaded before that file was
    // written, so it is in the listing below unless it was deleted.
    let codec = repo.codec();
    let index = Index::open(backend, codec)?;
    if let Some((key, e)) = index.damaged().first() {
        return Err(Error::InvalidInput(format!(
            "index file {key} is damaged ({e}); run 'snapkeep repair index' before prune"
        )));
    }
    // R is kept by index position: that is only sound when every file is in id order (a
    // lookup's binary search and the merge's scan must agree on where an id is), so each
    // file's checksum and order are checked before anything is decided.
    for f in index.files() {
        if let Err(e) = f.check() {
            return Err(Error::InvalidInput(format!(
                "{e}; run 'snapkeep repair index' before prune"
            )));
        }
    }
    let mut notes = Vec::new();
    let listed = list_packs(backend, &mut notes)?;
    let (indexed_packs, entry_counts) = count_entries(&index, &listed, &mut notes);
    let trailers = read_trailers(backend, codec, &listed, &indexed_packs);
    let mut extra: HashMap<BlobId, BlobLocation> = HashMap::new();
    for es in trailers.values().flatten() {
        for (id, loc) in es {
            extra.entry(*id).or_insert(*loc);
        }
    }
    let roots: Vec<(TreeId, SnapshotId)> = records.iter().map(|r| (r.tree, r.id)).collect();
    let mut reachable = ReachableBits::over(&index);
    walk_roots(
        backend,
        codec,
        &roots,
        |id| {
            index
                .files()
                .iter()
                .find_map(|f| f.get(id).filter(|l| listed.contains_key(&l.pack)))
                .or_else(|| extra.get(id).copied())
        },
        &mut reachable,
    )?;
    let mut st = State {
        index,
        indexed_packs,
        entry_counts,
        listed,
        trailers,
        reachable,
        missing: HashSet::new(),
        record_ids: records.iter().map(|r| r.id).collect(),
        snapshots: records.len() as u64,
        notes,
    };
    let missing = st
        .reachable
        .unindexed()
        .copied()
        .chain(
            st.chosen()
                .filter(|c| c.reachable && !st.listed.contains_key(&c.location.pack))
                .map(|c| c.id),
        )
        .collect();
    st.missing = missing;
    Ok(st)
}

/// The packs under `data/` with their sizes; other names are noted and left alone.
fn list_packs(backend: &dyn Backend, notes: &mut Vec<String>) -> Result<HashMap<PackId, u64>> {
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
            _ => notes.push(format!("{} is not a pack name; left in place", o.key)),
        }
    }
    Ok(listed)
}

/// The packs the index names and how many entries name each; a note when chosen entries
/// name packs that do not exist.
fn count_entries(
    index: &Index,
    listed: &HashMap<PackId, u64>,
    notes: &mut Vec<String>,
) -> (HashSet<PackId>, HashMap<PackId, u64>) {
    let mut indexed_packs = HashSet::new();
    let mut entry_counts: HashMap<PackId, u64> = HashMap::new();
    let mut dangling = 0u64;
    for (_, found) in Merged::new(index.files()) {
        for o in &found {
            indexed_packs.insert(o.location.pack);
            *entry_counts.entry(o.location.pack).or_default() += 1;
        }
        dangling += u64::from(!listed.contains_key(&choose(&found, listed).location.pack));
    }
    if dangling > 0 {
        notes.push(format!(
            "{dangling} index entries name packs that do not exist; run 'snapkeep verify' and 'snapkeep repair index'"
        ));
    }
    (indexed_packs, entry_counts)
}

/// The trailers of the listed packs no index file names (read in parallel).
fn read_trailers(
    backend: &dyn Backend,
    codec: &Codec,
    listed: &HashMap<PackId, u64>,
    indexed_packs: &HashSet<PackId>,
) -> HashMap<PackId, std::result::Result<Entries, String>> {
    use rayon::prelude::*;
    let unindexed: Vec<(PackId, u64)> = listed
        .iter()
        .filter(|(id, _)| !indexed_packs.contains(id))
        .map(|(id, size)| (*id, *size))
        .collect();
    unindexed
        .par_iter()
        .map(|(id, size)| {
            let r = read_pack_entries(backend, codec, id, *size)
                .map(|es| es.iter().map(|e| (e.id, location(*id, e))).collect())
                .map_err(|e| e.to_string());
            (*id, r)
        })
        .collect()
}

/// Every tree and chunk reachable from `roots` (root tree, snapshot), trees located by
/// `locate`.
pub fn reachable_from(
    backend: &dyn Backend,
    codec: &Codec,
    roots: &[(TreeId, SnapshotId)],
    locate: impl Fn(&BlobId) -> Option<BlobLocation>,
) -> Result<Reachable> {
    let mut reachable = Reachable::default();
    walk_roots(backend, codec, roots, locate, &mut reachable)?;
    Ok(reachable)
}

/// Walks every tree reachable from `roots` (root tree, snapshot) once, trees located by
/// `locate`, telling `v`.
fn walk_roots(
    backend: &dyn Backend,
    codec: &Codec,
    roots: &[(TreeId, SnapshotId)],
    locate: impl Fn(&BlobId) -> Option<BlobLocation>,
    v: &mut dyn Visitor,
) -> Result<()> {
    let snapshot = std::cell::Cell::new(None::<SnapshotId>);
    let source = Located {
        backend,
        codec,
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
    for (root, snap) in roots {
        snapshot.set(Some(*snap));
        walker.walk(root, "", v)?;
    }
    Ok(())
}

/// Which packs R may need: those that may hold a reachable blob the index lacks (it lives
/// only in marked or unindexed packs).
pub struct Needs<'a> {
    missing: &'a HashSet<BlobId>,
    /// Every missing blob is in a readable trailer.
    accounted: bool,
    trailers: &'a HashMap<PackId, std::result::Result<Entries, String>>,
}

impl<'a> Needs<'a> {
    pub fn new(st: &'a State) -> Self {
        let in_trailers: HashSet<BlobId> = st
            .trailers
            .values()
            .flatten()
            .flat_map(|es| es.iter().map(|(id, _)| *id))
            .collect();
        let accounted = st.missing.iter().all(|id| in_trailers.contains(id));
        Needs {
            missing: &st.missing,
            accounted,
            trailers: &st.trailers,
        }
    }

    /// Whether pack `p` may hold what R needs and the index lacks.
    pub fn of(&self, p: &PackId) -> bool {
        match self.trailers.get(p) {
            Some(Ok(es)) => es.iter().any(|(id, _)| self.missing.contains(id)),
            // A pack whose trailer cannot be read might hold what nothing else does.
            Some(Err(_)) => !self.accounted,
            None => false,
        }
    }

    /// The trailer entries of pack `p`, when they could be read.
    pub fn trailer(&self, p: &PackId) -> Option<&'a Entries> {
        match self.trailers.get(p) {
            Some(Ok(es)) => Some(es),
            _ => None,
        }
    }
}
