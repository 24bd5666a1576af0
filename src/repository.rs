//! A repository: its config, its index and its snapshots, over a [`Backend`].
//!
//! Owns: `init` / `open`, the commit protocol (packs → index → snapshot record, the record
//! last and written put-if-absent), resolving snapshot specs (`latest`, id, unique prefix,
//! short id) among the snapshots a filter lets through (what they match is `select`'s), and
//! reading trees and blobs with their ids checked.
//!
//! Invariant: a snapshot is listed if and only if its record exists, and a record is written
//! only after every pack and index file it depends on is durable. Anything else in the
//! repository that no record reaches is garbage for prune, never a finding.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use zeroize::Zeroizing;

use crate::backend::{Backend, LocalBackend};
use crate::chunker::ChunkerParams;
use crate::codec::Codec;
use crate::crypto::{KdfParams, MasterKey, Scheme, SealKind};
use crate::error::{Error, Result};
use crate::format::index_file::BlobLocation;
use crate::format::keys;
use crate::format::manifest::{SnapshotRecord, Tree};
use crate::format::pack::BlobKind;
use crate::format::repo_config::{Compression, RepoConfig, SealedConfig, StoredConfig};
use crate::format::{REPO_FORMAT_SEALED, REPO_FORMAT_VERSION};
use crate::id::{AsBlob, BlobId, PackId, SnapshotId, TreeId};
use crate::index::Index;
use crate::select::{SnapshotFilter, SnapshotSpec};

/// Options for [`Repository::init`].
#[derive(Clone, Debug)]
pub struct InitOptions {
    pub chunker: ChunkerParams,
    pub compression: Compression,
    pub pack_size: u32,
    /// Plain (format 1), or encrypted with a first key file sealed by a password (format 2).
    /// The library's default is plain; the CLI's `init` encrypts unless told
    /// `--encryption none`.
    pub encryption: Encryption,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            chunker: ChunkerParams::default(),
            compression: Compression::default(),
            pack_size: RepoConfig::DEFAULT_PACK_SIZE,
            encryption: Encryption::None,
        }
    }
}

/// Whether a new repository is encrypted, and the password of its first key.
#[derive(Clone, Default)]
pub enum Encryption {
    /// Format 1: nothing sealed.
    #[default]
    None,
    /// Format 2: every object sealed; the master key wrapped in a key file by `password`
    /// through Argon2id with `kdf`.
    Password {
        password: Zeroizing<Vec<u8>>,
        kdf: KdfParams,
        scheme: Scheme,
    },
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Encryption::None => f.write_str("None"),
            Encryption::Password { kdf, scheme, .. } => {
                write!(f, "Password {{ scheme: {scheme}, kdf: {kdf:?}, .. }}")
            }
        }
    }
}

/// The key an encrypted repository was opened with: its master key and the key file that
/// gave it (key management adds and removes key files with it).
pub struct Unlocked {
    pub master: MasterKey,
    pub key_id: String,
}

/// An open repository.
pub struct Repository {
    backend: Arc<dyn Backend>,
    config: RepoConfig,
    /// Plain, or the keys that seal and open every object.
    codec: Codec,
    /// The master key and key file of an encrypted repository.
    unlocked: Option<Unlocked>,
    index: RwLock<Arc<Index>>,
    /// Blobs of packs a prune marked (out of the index, still stored), read on a miss.
    marked: std::sync::Mutex<Option<MarkedBlobs>>,
    /// Of a remote store: the tree blobs of each pack, (offset, length) by offset, from the
    /// index, made on the first tree read (see [`Repository::load_tree`]).
    tree_ranges: std::sync::Mutex<Option<Arc<TreeRanges>>>,
}

/// The tree blobs of each pack, (offset, length) sorted by offset.
type TreeRanges = HashMap<PackId, Vec<(u64, u64)>>;

/// The blobs of marked packs, and the mark keys they were read from.
struct MarkedBlobs {
    keys: Vec<String>,
    blobs: Arc<HashMap<BlobId, BlobLocation>>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("location", &self.backend.location())
            .finish_non_exhaustive()
    }
}

impl Repository {
    /// Creates a repository on `backend`; refuses if one is already there. An encrypted one
    /// gets its first key file before its config (the config is the commit point: without it
    /// there is no repository, and a stray key file is removed).
    pub fn init(backend: Arc<dyn Backend>, opts: &InitOptions) -> Result<Self> {
        opts.chunker.validate()?;
        let sealed = matches!(opts.encryption, Encryption::Password { .. });
        let config = RepoConfig {
            version: if sealed {
                REPO_FORMAT_SEALED
            } else {
                REPO_FORMAT_VERSION
            },
            id: *uuid::Uuid::now_v7().as_bytes(),
            chunker: opts.chunker,
            compression: opts.compression,
            pack_size: opts
                .pack_size
                .clamp(RepoConfig::MIN_PACK_SIZE, RepoConfig::MAX_PACK_SIZE),
        };
        let exists = || {
            Error::InvalidInput(format!(
                "a repository already exists at {}; use it, or choose an empty path",
                backend.location()
            ))
        };
        let (codec, unlocked, bytes) = match &opts.encryption {
            Encryption::None => (Codec::Plain, None, config.to_bytes()),
            Encryption::Password {
                password,
                kdf,
                scheme,
            } => {
                if backend.exists(keys::CONFIG)? {
                    return Err(exists());
                }
                let master = MasterKey::generate()?;
                let key_id = crate::keyring::add(backend.as_ref(), &master, password, *kdf)?;
                let codec = Codec::Sealed(Arc::new(master.keys(*scheme, &config.id)));
                let stored = SealedConfig {
                    id: config.id,
                    encryption: codec.scheme().to_owned(),
                    sealed: codec.seal(SealKind::Config, &config.id, config.payload())?,
                };
                (codec, Some(Unlocked { master, key_id }), stored.to_bytes())
            }
        };
        if !backend.put_if_absent(keys::CONFIG, &bytes)? {
            if let Some(u) = &unlocked {
                let _ = backend.delete(&keys::key_file(&u.key_id));
            }
            return Err(exists());
        }
        Ok(Repository {
            backend,
            config,
            codec,
            unlocked,
            index: RwLock::new(Arc::new(Index::empty())),
            marked: std::sync::Mutex::new(None),
            tree_ranges: std::sync::Mutex::new(None),
        })
    }

    /// Opens the repository on `backend`; an encrypted one needs [`Repository::open_with`].
    pub fn open(backend: Arc<dyn Backend>) -> Result<Self> {
        Self::open_with(backend, None)
    }

    /// Opens the repository on `backend`, with `password` when it is encrypted (a plain
    /// repository ignores it). A password that opens no key file is refused before anything
    /// is read or written.
    pub fn open_with(backend: Arc<dyn Backend>, password: Option<&[u8]>) -> Result<Self> {
        let bytes = match backend.get(keys::CONFIG) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                let at = backend.location();
                return Err(Error::InvalidInput(format!(
                    "{at} is not a snapkeep repository (no config); run 'snapkeep init --repo {at}' to create one"
                )));
            }
            Err(e) => return Err(e),
        };
        let stored = StoredConfig::parse(&bytes).map_err(|e| damaged_config(&backend, e))?;
        let (config, codec, unlocked) = match stored {
            StoredConfig::Plain(c) => (c, Codec::Plain, None),
            StoredConfig::Sealed(s) => {
                let Some(scheme) = Scheme::from_name(&s.encryption) else {
                    return Err(Error::InvalidInput(format!(
                        "the repository at {} is sealed with '{}', a scheme this build does not know (it knows {}); use a snapkeep release that supports it",
                        backend.location(),
                        s.encryption,
                        Scheme::names()
                    )));
                };
                let Some(password) = password else {
                    return Err(Error::InvalidInput(format!(
                        "the repository at {} is encrypted; give its password",
                        backend.location()
                    )));
                };
                let (master, key_id) = crate::keyring::unlock(backend.as_ref(), password)?;
                let codec = Codec::Sealed(Arc::new(master.keys(scheme, &s.id)));
                let payload = codec
                    .open(SealKind::Config, &s.id, &s.sealed, "repository config")
                    .map_err(|e| damaged_config(&backend, e))?;
                let config = RepoConfig::from_payload(&payload, REPO_FORMAT_SEALED)
                    .map_err(|e| damaged_config(&backend, e))?;
                if config.id != s.id {
                    return Err(damaged_config(
                        &backend,
                        Error::corrupt(
                            "repository config",
                            "its sealed id is another repository's",
                        ),
                    ));
                }
                (config, codec, Some(Unlocked { master, key_id }))
            }
        };
        let index = Index::open(backend.as_ref(), &codec)?;
        Ok(Repository {
            backend,
            config,
            codec,
            unlocked,
            index: RwLock::new(Arc::new(index)),
            marked: std::sync::Mutex::new(None),
            tree_ranges: std::sync::Mutex::new(None),
        })
    }

    /// Initializes a local directory repository: `path` must not exist or be empty.
    pub fn init_local(path: &Path, opts: &InitOptions) -> Result<Self> {
        if let Ok(mut rd) = std::fs::read_dir(path) {
            if rd.next().is_some() {
                return Err(Error::InvalidInput(format!(
                    "{} is not empty; choose a new or empty directory for the repository",
                    path.display()
                )));
            }
        } else if path.exists() {
            return Err(Error::InvalidInput(format!(
                "{} exists and is not a directory; choose another repository path",
                path.display()
            )));
        }
        create_private_dir(path)?;
        create_private_dir(&path.join("tmp"))?;
        Self::init(Arc::new(LocalBackend::new(path)), opts)
    }

    /// Opens a local directory repository. A path that holds none gets an error that says
    /// what is there instead (nothing, a file, an empty or a foreign directory, a place this
    /// user may not read).
    pub fn open_local(path: &Path) -> Result<Self> {
        Self::open_local_with(path, None)
    }

    /// [`Repository::open_local`] with the password of an encrypted repository.
    pub fn open_local_with(path: &Path, password: Option<&[u8]>) -> Result<Self> {
        use std::io::ErrorKind;
        let at = path.display();
        let init = format!("run 'snapkeep init --repo {at}' to create one");
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {}
            Ok(m) => {
                let what = if m.is_file() {
                    "a file"
                } else {
                    "not a directory"
                };
                return Err(Error::InvalidInput(format!(
                    "{at} is {what}, not a snapkeep repository; give the repository's directory"
                )));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::InvalidInput(format!(
                    "there is no snapkeep repository at {at} (the path does not exist); {init}"
                )));
            }
            Err(e) => return Err(unreadable(path, e)),
        }
        let config = path.join(keys::CONFIG);
        match std::fs::File::open(&config) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let empty = std::fs::read_dir(path)
                    .map_err(|e| unreadable(path, e))?
                    .next()
                    .is_none();
                return Err(Error::InvalidInput(if empty {
                    format!("{at} is not a snapkeep repository (an empty directory); {init}")
                } else {
                    format!(
                        "{at} is not a snapkeep repository (no config, and other files are there); give the repository's path, or create one in a new or empty directory with 'snapkeep init --repo DIR'"
                    )
                }));
            }
            Err(e) => return Err(unreadable(&config, e)),
        }
        Self::open_with(Arc::new(LocalBackend::new(path)), password)
    }

    /// The backend.
    #[must_use]
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The fixed config.
    #[must_use]
    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// How objects are kept at rest: plain, or sealed with the repository's keys.
    #[must_use]
    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    /// The master key and key file an encrypted repository was opened with.
    #[must_use]
    pub fn unlocked(&self) -> Option<&Unlocked> {
        self.unlocked.as_ref()
    }

    /// The chunker of this repository (its secret gear seed when encrypted).
    pub fn chunker(&self) -> Result<crate::chunker::Chunker> {
        crate::chunker::Chunker::with_seed(&self.config.chunker, self.codec.chunker_seed())
    }

    /// The current index.
    #[must_use]
    pub fn index(&self) -> Arc<Index> {
        Arc::clone(
            &self
                .index
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Re-reads the index files (after this or another process wrote new ones).
    pub fn reload_index(&self) -> Result<()> {
        let fresh = Arc::new(Index::reopen(
            self.backend.as_ref(),
            &self.codec,
            &self.index(),
        )?);
        *self
            .index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        *self
            .marked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        *self
            .tree_ranges
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        Ok(())
    }

    /// Location of a blob, or `NotFound`. A blob the index lacks is looked for in the packs
    /// of prune marks: a prune that did not yet see a new snapshot's record takes such packs
    /// out of the index and puts them back moments later (docs/DESIGN.md, "Garbage
    /// collection"); a reader in between still finds the blob.
    pub fn locate(&self, id: &impl AsBlob) -> Result<BlobLocation> {
        let id = &id.blob();
        if let Some(loc) = self.index().get(id) {
            return Ok(loc);
        }
        if let Some(loc) = self.locate_marked(id) {
            return Ok(loc);
        }
        // A prune may have put the blob back into the index (and dropped it from its mark)
        // since: read the index and the marks again, once, before calling it missing.
        self.reload_index()?;
        if let Some(loc) = self.index().get(id) {
            return Ok(loc);
        }
        if let Some(loc) = self.locate_marked(id) {
            return Ok(loc);
        }
        Err(Error::NotFound(format!("blob {id} in the index")))
    }

    /// Location of a blob in a marked pack that still exists. Each miss lists the marks
    /// (pending ones included) and reads their packs' trailers again when the list changed.
    pub fn locate_marked(&self, id: &impl AsBlob) -> Option<BlobLocation> {
        let id = &id.blob();
        let mut cache = self
            .marked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(m) = cache.as_ref()
            && let Some(loc) = m.blobs.get(id)
        {
            return Some(*loc);
        }
        // A mark that vanishes between the listing and its read was replaced (a pending mark
        // by its mark proper) or swept: list again.
        for _ in 0..8 {
            let mut keys: Vec<String> = self
                .backend
                .list(keys::Kind::Mark.prefix())
                .ok()?
                .into_iter()
                .map(|o| o.key)
                .collect();
            keys.sort();
            if cache.as_ref().is_some_and(|m| m.keys == keys) {
                return None;
            }
            let Some(blobs) = self.read_marked_blobs(&keys) else {
                continue;
            };
            let blobs = Arc::new(blobs);
            let found = blobs.get(id).copied();
            *cache = Some(MarkedBlobs { keys, blobs });
            return found;
        }
        None
    }

    /// The blobs of the packs of marks `keys`; `None` when one of them vanished meanwhile.
    fn read_marked_blobs(&self, keys: &[String]) -> Option<HashMap<BlobId, BlobLocation>> {
        let mut out = HashMap::new();
        // Pending marks too: a prune writes one before its index rewrite.
        for key in keys {
            let bytes = match self.backend.get(key) {
                Ok(b) => b,
                Err(e) if e.is_not_found() => return None,
                Err(_) => continue,
            };
            let Ok(mark) = crate::format::gc::MarkRecord::from_bytes(&bytes, key) else {
                continue;
            };
            for p in mark.packs {
                if let Ok(entries) = crate::pack::read_pack_entries(
                    self.backend.as_ref(),
                    &self.codec,
                    &p.id,
                    p.size,
                ) {
                    for e in &entries {
                        out.entry(e.id)
                            .or_insert_with(|| crate::pack::location(p.id, e));
                    }
                }
            }
        }
        Some(out)
    }

    /// Reads one blob, checked against its id.
    pub fn read_blob(&self, id: &impl AsBlob) -> Result<Vec<u8>> {
        let id = &id.blob();
        let loc = self.locate(id)?;
        match crate::pack::read_blob(self.backend.as_ref(), &self.codec, id, &loc) {
            // The pack went (a prune swept a mark this view knew, or repacked the blob
            // elsewhere): read the index and the marks again, once.
            Err(e) if e.is_not_found() => {
                self.reload_index()?;
                let again = self.locate(id)?;
                if again == loc {
                    return Err(e);
                }
                crate::pack::read_blob(self.backend.as_ref(), &self.codec, id, &again)
            }
            other => other,
        }
    }

    /// Reads and decodes a tree. From a remote store, a tree that is not cached brings every
    /// tree of its pack into the cache with it (one request per run of them), so a walk with
    /// an empty cache makes about one request per tree pack.
    pub fn load_tree(&self, id: &TreeId) -> Result<Tree> {
        // The blob kind is not checked: a file whose bytes equal an encoded tree dedups with
        // it (same id, same bytes). The bytes are hash-checked and the decoder checks the rest.
        let bytes = self.read_tree_blob(id)?;
        Tree::from_bytes(&bytes, id)
    }

    /// A tree's bytes, with the other trees of its pack when the store is remote.
    fn read_tree_blob(&self, id: &TreeId) -> Result<Vec<u8>> {
        let loc = self.locate(id)?;
        if loc.kind == BlobKind::Tree
            && let Some((ranges, want)) = self.tree_ranges_of(&loc)
        {
            let among = &ranges[&loc.pack];
            match crate::pack::read_blob_among(
                self.backend.as_ref(),
                &self.codec,
                id,
                &loc,
                among,
                want,
            ) {
                // A pack gone: the usual path reloads the index and the marks.
                Err(e) if e.is_not_found() => {}
                other => return other,
            }
        }
        self.read_blob(id)
    }

    /// The tree ranges of `loc`'s pack and the position of `loc` among them; `None` for a
    /// local store (each read is cheap there) or a blob the index's ranges do not show.
    fn tree_ranges_of(&self, loc: &BlobLocation) -> Option<(Arc<TreeRanges>, usize)> {
        if self.backend.local_path(&keys::pack(&loc.pack)).is_some() {
            return None;
        }
        let ranges = {
            let mut slot = self
                .tree_ranges
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(slot.get_or_insert_with(|| Arc::new(tree_ranges(&self.index()))))
        };
        let want = (u64::from(loc.offset), u64::from(loc.length));
        let pos = ranges.get(&loc.pack)?.binary_search(&want).ok()?;
        Some((ranges, pos))
    }

    /// Ids of every stored snapshot record (unordered).
    pub fn snapshot_ids(&self) -> Result<Vec<SnapshotId>> {
        let mut ids = Vec::new();
        for obj in self.backend.list(keys::Kind::Snapshot.prefix())? {
            if let Ok(id) = obj.key[keys::Kind::Snapshot.prefix().len()..].parse::<SnapshotId>() {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// Loads one snapshot record.
    pub fn load_snapshot(&self, id: &SnapshotId) -> Result<SnapshotRecord> {
        let bytes = match self.backend.get(&keys::snapshot(id)) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Err(Error::NotFound(format!("snapshot {id}"))),
            Err(e) => return Err(e),
        };
        let plain = self.codec.open(
            SealKind::Snapshot,
            id.as_bytes(),
            &bytes,
            &format!("snapshot record {id}"),
        )?;
        SnapshotRecord::from_bytes(&plain, id)
    }

    /// A record as it is stored: framed, and sealed when the repository is.
    pub fn record_bytes(&self, rec: &SnapshotRecord) -> Result<Vec<u8>> {
        self.codec
            .seal(SealKind::Snapshot, rec.id.as_bytes(), rec.to_bytes())
    }

    /// All readable snapshot records, oldest first, and the ids whose records are damaged.
    pub fn snapshots(&self) -> Result<(Vec<SnapshotRecord>, Vec<(SnapshotId, Error)>)> {
        let mut ok = Vec::new();
        let mut bad = Vec::new();
        for id in self.snapshot_ids()? {
            match self.load_snapshot(&id) {
                Ok(r) => ok.push(r),
                Err(e) if e.is_not_found() => {}
                Err(e) => bad.push((id, e)),
            }
        }
        ok.sort_by_key(|a| (a.time_ns, a.id));
        Ok((ok, bad))
    }

    /// Resolves `spec` among every snapshot: `latest` is the newest snapshot of any host and
    /// path (the CLI's `latest` is this machine's host: it calls [`Repository::resolve_filtered`]
    /// with the host); an id is a full id, a unique prefix of it, or its short id
    /// ([`crate::select::short_id`]).
    pub fn resolve(&self, spec: &str) -> Result<SnapshotId> {
        self.resolve_filtered(spec, &SnapshotFilter::default())
    }

    /// Resolves `spec` among the snapshots `filter` lets through: `latest` is the newest of
    /// them; an id must name exactly one of them (a snapshot it names outside the filter is an
    /// error that says why, not another snapshot).
    pub fn resolve_filtered(&self, spec: &str, filter: &SnapshotFilter) -> Result<SnapshotId> {
        let parsed: SnapshotSpec = spec.parse()?;
        if parsed == SnapshotSpec::Latest {
            return self.latest(filter).map(|r| r.id);
        }
        let matching: Vec<SnapshotId> = self
            .snapshot_ids()?
            .into_iter()
            .filter(|id| parsed.matches_id(id))
            .collect();
        if filter.is_empty() || matching.is_empty() {
            return parsed.pick(spec, &matching);
        }
        let mut passing = Vec::new();
        let mut outside = None;
        for id in matching {
            match self.load_snapshot(&id) {
                Ok(r) if filter.matches(&r) => passing.push(id),
                Ok(r) => outside = Some(r),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        match (passing.as_slice(), outside) {
            ([], Some(r)) => Err(Error::InvalidInput(format!(
                "snapshot {} (host '{}', paths {}) is not one of {}; drop the filter or give \
                 another id",
                r.id,
                r.host,
                r.paths.join(" "),
                filter.describe()
            ))),
            _ => parsed.pick(spec, &passing),
        }
    }

    /// The newest snapshot `filter` lets through; when there is none, the error names the
    /// hosts (and paths) the repository does have snapshots of.
    pub fn latest(&self, filter: &SnapshotFilter) -> Result<SnapshotRecord> {
        self.latest_checked(filter).map(|(r, _)| r)
    }

    /// [`Repository::latest`], and the records that could not be read whose ids are newer
    /// than the one chosen (a UUID v7 id starts with its time): one of them may have been the
    /// latest, so a caller should say so rather than silently use an older snapshot.
    pub fn latest_checked(
        &self,
        filter: &SnapshotFilter,
    ) -> Result<(SnapshotRecord, Vec<(SnapshotId, Error)>)> {
        let (mut recs, bad) = self.snapshots()?;
        let location = self.backend.location();
        let id = crate::select::latest(&recs, filter, &location)?.id;
        let at = recs.iter().rposition(|r| r.id == id).unwrap_or_default();
        let newer = bad.into_iter().filter(|(b, _)| *b > id).collect();
        Ok((recs.swap_remove(at), newer))
    }

    /// Removes snapshot records (forget). Their data stays until a prune; nothing else is
    /// touched. Deleting a record that is already gone is not an error.
    pub fn forget(&self, ids: &[SnapshotId]) -> Result<()> {
        for id in ids {
            self.backend.delete(&keys::snapshot(id))?;
        }
        Ok(())
    }

    /// Writes the snapshot record: the commit point of a snapshot.
    pub fn commit_snapshot(&self, rec: &SnapshotRecord) -> Result<u64> {
        let bytes = self.record_bytes(rec)?;
        if !self
            .backend
            .put_if_absent(&keys::snapshot(&rec.id), &bytes)?
        {
            return Err(Error::InvalidInput(format!(
                "snapshot {} already exists; not overwritten",
                rec.id
            )));
        }
        Ok(bytes.len() as u64)
    }
}

/// The error for a config that does not decode: it names the repository and says what helps.
/// Nothing else in the repository holds the config (it is written once, by `init`), so no
/// command can rebuild it; a newer format version is reported as such.
/// The tree blobs of every pack in `index`.
fn tree_ranges(index: &Index) -> TreeRanges {
    let mut out: TreeRanges = HashMap::new();
    for f in index.files() {
        for (_, loc) in f.entries().flatten() {
            if loc.kind == BlobKind::Tree {
                out.entry(loc.pack)
                    .or_default()
                    .push((u64::from(loc.offset), u64::from(loc.length)));
            }
        }
    }
    for v in out.values_mut() {
        v.sort_unstable();
        v.dedup();
    }
    out
}

fn damaged_config(backend: &Arc<dyn Backend>, e: Error) -> Error {
    let detail = match e {
        e @ Error::UnsupportedFormat { .. } => return e,
        Error::Corrupt { detail, .. } => detail,
        e => e.to_string(),
    };
    Error::Io {
        op: "open the repository at",
        path: PathBuf::from(backend.location()),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "its config is damaged ({detail}); the config is written once by 'snapkeep init' and nothing else holds a copy, so it cannot be rebuilt from the packs: put back 'config' from a copy of this repository (a backup or a replica), then run 'snapkeep verify'"
            ),
        ),
    }
}

/// The error for a repository path (or its config) this process may not read.
fn unreadable(path: &Path, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        Error::InvalidInput(format!(
            "permission denied on {}; run snapkeep as a user who may read the repository, or fix its permissions",
            path.display()
        ))
    } else {
        Error::io("open the repository at", path, e)
    }
}

fn create_private_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| Error::io("create repository directory", path, e))
}

/// The default local repository: `$XDG_DATA_HOME/snapkeep/repo` or
/// `~/.local/share/snapkeep/repo`.
#[must_use]
pub fn default_repo_path() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join("snapkeep/repo"));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|h| PathBuf::from(h).join(".local/share/snapkeep/repo"))
}
