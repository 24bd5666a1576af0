//! The pack writer: many producer threads, one staged pack at a time per blob kind, and
//! background threads that seal and upload full packs (one for a local store, four for a
//! remote one; a bounded queue gives back-pressure).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use crate::backend::Backend;
use crate::codec::Codec;
use crate::crypto::SealKind;
use crate::error::{Error, Result};
use crate::format::index_file::BlobLocation;
use crate::format::keys;
use crate::format::pack::{
    BlobCompression, BlobKind, HEADER, HEADER_SEALED, PACK_VERSION_SEALED, PackEntry,
    encode_entries, encode_footer, encode_trailer,
};
use crate::id::{BlobId, PackId};

use super::location;

/// A blob that is now durably stored in an uploaded pack.
#[derive(Clone, Copy, Debug)]
pub struct SealedBlob {
    pub id: BlobId,
    pub loc: BlobLocation,
}

struct OpenPack {
    file: File,
    path: PathBuf,
    len: u64,
    entries: Vec<PackEntry>,
}

struct Shared {
    backend: Arc<dyn Backend>,
    /// Seals the trailers (and salts) of a sealed repository's packs.
    codec: Codec,
    sealed: Mutex<Vec<SealedBlob>>,
    poison: Mutex<Option<String>>,
    stored_bytes: AtomicU64,
    packs: AtomicU64,
    /// Keys of the packs this writer uploaded (flushed by `finish`).
    keys: Mutex<Vec<String>>,
    /// Pack ids this writer must not produce (packs a prune marked for deletion).
    avoid: Mutex<std::collections::HashSet<PackId>>,
}

impl Shared {
    fn poison(&self, e: &Error) {
        let mut p = self.poison.lock().unwrap_or_else(PoisonError::into_inner);
        if p.is_none() {
            *p = Some(e.to_string());
        }
    }

    fn check(&self) -> Result<()> {
        match &*self.poison.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(msg) => Err(Error::Poisoned(msg.clone())),
            None => Ok(()),
        }
    }
}

/// One blob for [`PackWriter::add_all`]: its id, how it is stored, the stored bytes (sealed
/// by the caller, [`Codec::seal_blob`], when the repository is: sealing runs on the callers'
/// threads, in parallel) and the length of the raw bytes.
pub struct NewBlob<'a> {
    pub id: BlobId,
    pub compression: BlobCompression,
    pub stored: &'a [u8],
    pub raw_length: u32,
}

/// Appends blobs into packs of about `target` bytes and uploads them in the background.
pub struct PackWriter {
    shared: Arc<Shared>,
    target: u64,
    current: [Mutex<Option<OpenPack>>; 2],
    tx: Mutex<Option<SyncSender<OpenPack>>>,
    uploaders: Mutex<Vec<JoinHandle<()>>>,
}

/// Size of a salt blob (see [`PackWriter::avoid`]).
const SALT_LEN: u32 = 16;

/// Packs uploading at once to a remote store.
const REMOTE_UPLOADERS: usize = 4;

static STAGE_SEQ: AtomicU64 = AtomicU64::new(0);

impl PackWriter {
    /// A writer that stages packs in the backend's staging directory; `codec` seals their
    /// trailers when the repository is sealed.
    #[must_use]
    pub fn new(backend: Arc<dyn Backend>, codec: Codec, target: u64) -> Self {
        let shared = Arc::new(Shared {
            backend,
            codec,
            sealed: Mutex::new(Vec::new()),
            poison: Mutex::new(None),
            stored_bytes: AtomicU64::new(0),
            packs: AtomicU64::new(0),
            keys: Mutex::new(Vec::new()),
            avoid: Mutex::new(std::collections::HashSet::new()),
        });
        // A local store renames a staged pack into place: one uploader keeps up. A remote one
        // is latency-bound: several packs upload at once. Staged packs waiting beyond that
        // block the producers (bounded disk use).
        let uploaders = if shared.backend.local_path(keys::CONFIG).is_some() {
            1
        } else {
            REMOTE_UPLOADERS
        };
        let (tx, rx) = sync_channel::<OpenPack>(uploaders);
        let rx = Arc::new(Mutex::new(rx));
        let handles = (0..uploaders)
            .filter_map(|i| {
                let sh = Arc::clone(&shared);
                let rx = Arc::clone(&rx);
                std::thread::Builder::new()
                    .name(format!("snapkeep-pack-upload-{i}"))
                    .spawn(move || upload_loop(&sh, &rx))
                    .ok()
            })
            .collect();
        PackWriter {
            shared,
            target,
            current: [Mutex::new(None), Mutex::new(None)],
            tx: Mutex::new(Some(tx)),
            uploaders: Mutex::new(handles),
        }
    }

    fn open_pack(&self) -> Result<OpenPack> {
        let dir = self.shared.backend.staging().dir;
        std::fs::DirBuilder::new()
            .recursive(true)
            .create(&dir)
            .map_err(|e| Error::io("create staging directory", &dir, e))?;
        let n = STAGE_SEQ.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(
            "pack-{}-{}-{n}.tmp",
            std::process::id(),
            crate::backend::process_token()
        ));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io("create staged pack", &path, e))?;
        let header = if self.shared.codec.is_sealed() {
            HEADER_SEALED
        } else {
            HEADER
        };
        file.write_all(&header)
            .map_err(|e| Error::io("write staged pack", &path, e))?;
        Ok(OpenPack {
            file,
            path,
            len: header.len() as u64,
            entries: Vec::new(),
        })
    }

    /// Pack ids this writer must never upload: the packs of prune marks. A pack id is the hash
    /// of its trailer, so a pack holding exactly the blobs of a marked pack would get that
    /// pack's name, and a prune could delete it after this writer's upload. Such a pack gets
    /// a salt blob (16 unique bytes, not indexed) before it is sealed, which changes its id.
    pub fn avoid(&self, ids: impl IntoIterator<Item = PackId>) {
        self.shared
            .avoid
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(ids);
    }

    /// Appends one blob's stored bytes. Blocks when the upload queue is full.
    pub fn add(
        &self,
        id: BlobId,
        kind: BlobKind,
        compression: BlobCompression,
        stored: &[u8],
        raw_length: u32,
    ) -> Result<()> {
        self.add_all(
            kind,
            &[NewBlob {
                id,
                compression,
                stored,
                raw_length,
            }],
        )
    }

    /// Appends blobs of one kind back to back, in order, with no other writer's blob between
    /// them (until a pack fills up), so a reader can fetch them with one ranged read. Blocks
    /// when the upload queue is full.
    pub fn add_all(&self, kind: BlobKind, blobs: &[NewBlob<'_>]) -> Result<()> {
        self.shared.check()?;
        let mut full = Vec::new();
        let appended = {
            let mut slot = self.current[kind as usize]
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.append(kind, blobs, &mut slot, &mut full)
        };
        let mut sent = appended;
        let mut full = full.into_iter();
        if sent.is_ok() {
            for pack in full.by_ref() {
                if let Err(e) = self.send(pack) {
                    sent = Err(e);
                    break;
                }
            }
        }
        if let Err(e) = &sent {
            // The job stops: nothing later may be written, and the sealed packs that were not
            // handed over leave no staged file behind.
            self.shared.poison(e);
            for pack in full {
                let _ = std::fs::remove_file(&pack.path);
            }
        }
        sent
    }

    /// Writes `blobs` into the open pack of their kind (opening one when needed); packs that
    /// fill up are moved to `full`.
    fn append(
        &self,
        kind: BlobKind,
        blobs: &[NewBlob<'_>],
        slot: &mut Option<OpenPack>,
        full: &mut Vec<OpenPack>,
    ) -> Result<()> {
        for b in blobs {
            let length = u32::try_from(b.stored.len())
                .map_err(|_| Error::InvalidInput(format!("blob {} is too large", b.id.short())))?;
            if slot.is_none() {
                *slot = Some(self.open_pack()?);
            }
            let Some(pack) = slot.as_mut() else {
                return Err(Error::Poisoned("staged pack missing".into()));
            };
            let offset = u32::try_from(pack.len)
                .map_err(|_| Error::InvalidInput("pack grew past 4 GiB".into()))?;
            pack.file
                .write_all(b.stored)
                .map_err(|e| Error::io("write staged pack", &pack.path, e))?;
            pack.len += u64::from(length);
            pack.entries.push(PackEntry {
                id: b.id,
                kind,
                compression: b.compression,
                offset,
                length,
                raw_length: b.raw_length,
            });
            if pack.len >= self.target
                && let Some(p) = slot.take()
            {
                full.push(p);
            }
        }
        Ok(())
    }

    fn send(&self, pack: OpenPack) -> Result<()> {
        let tx = self
            .tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match tx {
            Some(tx) => tx
                .send(pack)
                .map_err(|_| Error::Poisoned("the pack upload thread stopped".into())),
            None => Err(Error::Poisoned("the pack writer is finished".into())),
        }
    }

    /// Seals the open packs, waits for every upload and returns every stored blob.
    pub fn finish(&self) -> Result<Vec<SealedBlob>> {
        for slot in &self.current {
            let pack = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(pack) = pack {
                self.send(pack)?;
            }
        }
        self.stop_uploaders();
        self.shared.check()?;
        let keys = std::mem::take(
            &mut *self
                .shared
                .keys
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        if let Err(e) = self.shared.backend.flush(&keys) {
            self.shared.poison(&e);
            return Err(e);
        }
        Ok(std::mem::take(
            &mut *self
                .shared
                .sealed
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        ))
    }

    /// Closes the upload queue and waits for the uploaders to finish what it held.
    fn stop_uploaders(&self) {
        drop(
            self.tx
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let handles = std::mem::take(
            &mut *self
                .uploaders
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for h in handles {
            let _ = h.join();
        }
    }

    /// Bytes of packs uploaded so far.
    #[must_use]
    pub fn stored_bytes(&self) -> u64 {
        self.shared.stored_bytes.load(Ordering::Relaxed)
    }

    /// Number of packs uploaded so far.
    #[must_use]
    pub fn packs_written(&self) -> u64 {
        self.shared.packs.load(Ordering::Relaxed)
    }
}

impl Drop for PackWriter {
    fn drop(&mut self) {
        self.stop_uploaders();
        for slot in &self.current {
            if let Some(p) = slot.lock().unwrap_or_else(PoisonError::into_inner).take() {
                let _ = std::fs::remove_file(&p.path);
            }
        }
    }
}

fn upload_loop(shared: &Shared, rx: &Mutex<Receiver<OpenPack>>) {
    loop {
        let next = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(pack) = next else { return };
        if shared.check().is_err() {
            let _ = std::fs::remove_file(&pack.path);
            continue;
        }
        if let Err(e) = seal_and_upload(shared, pack) {
            shared.poison(&e);
        }
    }
}

/// The trailer of a pack whose blobs end at `entries_offset`: plain, or with its entries
/// region sealed.
fn trailer(codec: &Codec, entries: &[PackEntry], entries_offset: u32) -> Result<Vec<u8>> {
    if !codec.is_sealed() {
        return Ok(encode_trailer(entries, entries_offset));
    }
    let mut region = codec.seal(SealKind::PackTrailer, b"", encode_entries(entries))?;
    let footer = encode_footer(&region, entries.len(), entries_offset, PACK_VERSION_SEALED);
    region.extend_from_slice(&footer);
    Ok(region)
}

fn seal_and_upload(shared: &Shared, mut pack: OpenPack) -> Result<()> {
    let path = pack.path.clone();
    let blobs = pack.entries.len();
    let (trailer, id) = loop {
        let entries_offset = u32::try_from(pack.len)
            .map_err(|_| Error::InvalidInput("pack grew past 4 GiB".into()))?;
        let trailer = trailer(&shared.codec, &pack.entries, entries_offset)?;
        let id: PackId = super::pack_id_of_trailer(&trailer);
        let avoided = shared
            .avoid
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&id);
        if !avoided {
            break (trailer, id);
        }
        let salt = *uuid::Uuid::now_v7().as_bytes();
        let salt_id = shared.codec.blob_id(&salt);
        let stored = shared.codec.seal_blob(BlobKind::Data, &salt_id, &salt)?;
        if let Err(e) = pack.file.write_all(&stored) {
            let _ = std::fs::remove_file(&path);
            return Err(Error::io("write staged pack", &path, e));
        }
        pack.entries.push(PackEntry {
            id: salt_id,
            kind: BlobKind::Data,
            compression: BlobCompression::Raw,
            offset: entries_offset,
            length: u32::try_from(stored.len()).unwrap_or(u32::MAX),
            raw_length: SALT_LEN,
        });
        pack.len += stored.len() as u64;
    };
    let res = pack
        .file
        .write_all(&trailer)
        .map_err(|e| Error::io("write staged pack", &path, e));
    drop(pack.file);
    if let Err(e) = res {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    let total = pack.len + trailer.len() as u64;
    // A remote store's tree packs are read again by the next snapshot (its parent's trees):
    // their blobs go to the backend's cache, read back one at a time from the staged file (in
    // the page cache) before it is handed over. An entry of a pack whose upload then fails
    // names bytes no index refers to, and goes with the next listing of the packs; a local
    // store reads its packs in place and keeps nothing.
    if pack.entries.first().map(|e| e.kind) == Some(BlobKind::Tree)
        && shared.backend.local_path(keys::CONFIG).is_none()
        && let Ok(staged) = File::open(&path)
    {
        let key = keys::pack(&id);
        let mut blob = Vec::new();
        for e in &pack.entries[..blobs] {
            blob.resize(e.length as usize, 0);
            if staged.read_exact_at(&mut blob, u64::from(e.offset)).is_ok() {
                shared.backend.keep_hot(&key, u64::from(e.offset), &blob);
            }
        }
    }
    if let Err(e) = shared.backend.put_file(&keys::pack(&id), &path) {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    shared
        .keys
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(keys::pack(&id));
    shared.stored_bytes.fetch_add(total, Ordering::Relaxed);
    shared.packs.fetch_add(1, Ordering::Relaxed);
    let mut sealed = shared.sealed.lock().unwrap_or_else(PoisonError::into_inner);
    // A salt is not indexed: no snapshot references it.
    sealed.extend(pack.entries[..blobs].iter().map(|e| SealedBlob {
        id: e.id,
        loc: location(id, e),
    }));
    Ok(())
}
