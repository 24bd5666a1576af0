//! Pack-ordered restore from a remote store: small files whose chunks lie near each other in
//! one pack are filled from one ranged read, not one request each.
//!
//! Owns: [`plan`] (which files go in which batch: files whose content is one run of one pack,
//! sorted by pack and offset, grouped while the gap to the next is at most [`BATCH_GAP`] and
//! the batch's range at most [`BATCH_BYTES`]) and [`Batch::fetch`].
//!
//! Invariants: a batch changes where bytes come from, never what is checked: every file of a
//! batch is still written by [`crate::content`], each chunk checked against its id and the
//! file against its size and CRC32; a batch whose read fails or comes back short is no error
//! of its own (its files read their runs one by one, and name what is wrong). Memory: one
//! batch's range per worker.
//!
//! Must not: create files or set metadata (the restore does, per file, as for any other).

use crate::content::{Prefetched, single_read};
use crate::format::keys;
use crate::id::PackId;
use crate::repository::Repository;

use super::plan::FileJob;

/// Largest range one batch reads (with the 16 readers of a remote restore, 32 MiB in flight).
const BATCH_BYTES: u64 = 2 << 20;

/// Files at most this far apart in a pack share a batch (the bytes between are read and
/// dropped: a chunk of a file that is not restored, or of a large file restored on its own).
const BATCH_GAP: u64 = 64 << 10;

/// Files filled from one ranged read of one pack.
pub(super) struct Batch {
    pack: PackId,
    start: u64,
    len: u64,
    /// Positions of the files in the plan, in pack order.
    pub(super) members: Vec<usize>,
}

impl Batch {
    /// The batch's range, or `None` when it cannot be read whole (its files then read their
    /// own runs, which retry and name the failure).
    pub(super) fn fetch(&self, repo: &Repository) -> Option<Prefetched> {
        match repo
            .backend()
            .get_range(&keys::pack(&self.pack), self.start, self.len)
        {
            Ok(bytes) if bytes.len() as u64 == self.len => Some(Prefetched {
                pack: self.pack,
                start: self.start,
                bytes,
            }),
            _ => None,
        }
    }
}

/// Whether reads of `repo` go to a remote store (where each request costs a round trip).
pub(super) fn remote(repo: &Repository) -> bool {
    repo.backend().local_path(keys::CONFIG).is_none()
}

/// The batches of `files` and the positions of the files that are read on their own (large
/// ones, ones spread over packs, empty ones). A batch has at least two files.
pub(super) fn plan(repo: &Repository, files: &[FileJob]) -> (Vec<Batch>, Vec<usize>) {
    let mut small: Vec<(PackId, u64, u64, usize)> = Vec::new();
    let mut alone: Vec<usize> = Vec::new();
    for (k, job) in files.iter().enumerate() {
        match single_read(repo, &job.node) {
            Some((pack, start, len)) => small.push((pack, start, len, k)),
            None => alone.push(k),
        }
    }
    small.sort_unstable_by_key(|&(pack, start, _, k)| (pack, start, k));
    let mut batches: Vec<Batch> = Vec::new();
    for (pack, start, len, k) in small {
        let end = start + len;
        if let Some(b) = batches.last_mut()
            && b.pack == pack
            && start <= b.start + b.len + BATCH_GAP
            && end.max(b.start + b.len) - b.start <= BATCH_BYTES
        {
            b.len = end.max(b.start + b.len) - b.start;
            b.members.push(k);
            continue;
        }
        batches.push(Batch {
            pack,
            start,
            len,
            members: vec![k],
        });
    }
    // A batch of one file is that file's own read.
    let (batches, single): (Vec<Batch>, Vec<Batch>) =
        batches.into_iter().partition(|b| b.members.len() > 1);
    alone.extend(single.into_iter().flat_map(|b| b.members));
    (batches, alone)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::backend::{Backend, MemoryBackend};
    use crate::{BackupOptions, InitOptions, NoProgress, RestoreOptions};

    /// 40 small files in a repository on a store without local paths (a remote one's path).
    fn remote_repo(tmp: &std::path::Path) -> (Arc<MemoryBackend>, Repository, crate::SnapshotId) {
        let store = Arc::new(MemoryBackend::new());
        let repo = Repository::init(
            Arc::clone(&store) as Arc<dyn Backend>,
            &InitOptions::default(),
        )
        .expect("init");
        let src = tmp.join("src");
        for k in 0..40u8 {
            let dir = src.join(format!("d{}", k % 4));
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(
                dir.join(format!("f{k:02}")),
                vec![k; 100 + usize::from(k) * 30],
            )
            .expect("write");
        }
        let snap =
            crate::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress).expect("snapshot");
        (store, repo, snap.record.id)
    }

    #[test]
    fn small_files_of_one_pack_share_batches_and_restore_whole() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, repo, id) = remote_repo(tmp.path());
        assert!(remote(&repo));
        let rec = repo.load_snapshot(&id).expect("record");
        let planned = super::super::RestorePlan::new(&repo, &rec.tree, tmp.path()).expect("plan");
        let (batches, alone) = plan(&repo, &planned.files);
        let in_batches: usize = batches.iter().map(|b| b.members.len()).sum();
        assert_eq!(in_batches + alone.len(), 40);
        assert!(
            batches.len() <= 2 && in_batches >= 38,
            "{} batches, {} alone",
            batches.len(),
            alone.len()
        );
        let out = tmp.path().join("out");
        crate::restore(&repo, &id, &out, &RestoreOptions::default(), &NoProgress).expect("restore");
        for k in 0..40u8 {
            let p = out.join(format!("d{}", k % 4)).join(format!("f{k:02}"));
            assert_eq!(
                std::fs::read(&p).expect("read"),
                vec![k; 100 + usize::from(k) * 30]
            );
        }
    }

    /// One damaged chunk in a batch's range is that file's damage, named by its path, and
    /// the restore leaves nothing behind.
    #[test]
    fn a_damaged_chunk_in_a_batch_names_its_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (store, repo, id) = remote_repo(tmp.path());
        let rec = repo.load_snapshot(&id).expect("record");
        let planned = super::super::RestorePlan::new(&repo, &rec.tree, tmp.path()).expect("plan");
        let victim = planned
            .files
            .iter()
            .find(|j| j.display.ends_with("/f17"))
            .expect("f17");
        let (pack, start, _) = single_read(&repo, &victim.node).expect("one read");
        let key = keys::pack(&pack);
        let mut bytes = store.get(&key).expect("pack");
        bytes[usize::try_from(start).expect("offset") + 5] ^= 0x40;
        store.delete(&key).expect("delete");
        store.put(&key, &bytes).expect("damage");
        let out = tmp.path().join("out");
        let err = crate::restore(&repo, &id, &out, &RestoreOptions::default(), &NoProgress)
            .expect_err("damage found");
        assert!(err.to_string().contains("f17"), "{err}");
        assert!(!out.exists(), "a failed restore leaves no target");
    }
}
