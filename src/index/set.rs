//! A set of blob ids as one bit per index entry: what prune's marking and other walks over
//! a whole repository keep instead of a hash set of ids (an eighth of a byte a blob, not
//! some sixty).

use std::collections::HashSet;
use std::sync::Arc;

use super::{Index, IndexFile};
use crate::id::{AsBlob, BlobId};

/// Blob ids, each kept as the bit of the entry where [`Index::position`] finds it; ids the
/// index lacks go in a hash set beside the bits (few, unless the index is damaged).
pub struct BlobSet {
    files: Vec<Arc<IndexFile>>,
    bits: Vec<Vec<u64>>,
    others: HashSet<BlobId>,
    len: usize,
}

impl BlobSet {
    /// An empty set over the entries of `index` (it holds the index's files, not a copy).
    #[must_use]
    pub fn over(index: &Index) -> Self {
        let files = index.files().to_vec();
        let bits = files
            .iter()
            .map(|f| vec![0u64; f.len().div_ceil(64)])
            .collect();
        BlobSet {
            files,
            bits,
            others: HashSet::new(),
            len: 0,
        }
    }

    /// The file and position of `id` (the first file holding a readable entry for it).
    fn place(&self, id: &BlobId) -> Option<(usize, usize)> {
        super::position_in(&self.files, id)
    }

    /// Adds `id`; returns whether it was new.
    pub fn insert(&mut self, id: &impl AsBlob) -> bool {
        let id = id.blob();
        let new = match self.place(&id) {
            Some((n, i)) => {
                let (word, bit) = (&mut self.bits[n][i / 64], 1u64 << (i % 64));
                let new = *word & bit == 0;
                *word |= bit;
                new
            }
            None => self.others.insert(id),
        };
        self.len += usize::from(new);
        new
    }

    /// Whether `id` is in the set.
    #[must_use]
    pub fn contains(&self, id: &impl AsBlob) -> bool {
        let id = id.blob();
        match self.place(&id) {
            Some((n, i)) => self.contains_at(n, i),
            None => self.others.contains(&id),
        }
    }

    /// Whether the id of entry `position` of file `file` is in the set (the place
    /// [`Index::position`] gives for it, or the first occurrence a [`super::Merged`] gives).
    #[must_use]
    pub fn contains_at(&self, file: usize, position: usize) -> bool {
        self.bits
            .get(file)
            .and_then(|b| b.get(position / 64))
            .is_some_and(|w| w & (1u64 << (position % 64)) != 0)
    }

    /// The ids in the set that the index lacks.
    pub fn unindexed(&self) -> impl Iterator<Item = &BlobId> {
        self.others.iter()
    }

    /// How many ids the set holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::MemoryBackend;
    use crate::codec::Codec;
    use crate::format::index_file::BlobLocation;
    use crate::format::pack::{BlobCompression, BlobKind};
    use crate::id::PackId;
    use crate::index::{Merged, write_index};

    #[test]
    fn a_blob_set_agrees_with_a_hash_set_and_with_merged_positions() {
        let backend = MemoryBackend::new();
        let codec = Codec::Plain;
        let id = |n: u32| BlobId::of(&n.to_le_bytes());
        let loc = BlobLocation {
            pack: PackId::of(b"p"),
            kind: BlobKind::Data,
            compression: BlobCompression::Raw,
            offset: 0,
            length: 1,
            raw_length: 1,
        };
        write_index(&backend, &codec, (0..300).map(|n| (id(n), loc)).collect()).expect("a");
        write_index(&backend, &codec, (200..400).map(|n| (id(n), loc)).collect()).expect("b");
        let index = Index::open(&backend, &codec).expect("open");
        let mut set = BlobSet::over(&index);
        let mut plain = HashSet::new();
        for n in (0..500).filter(|n| n % 3 == 0) {
            assert_eq!(set.insert(&id(n)), plain.insert(id(n)));
        }
        assert!(!set.insert(&id(0)), "a second insert is not new");
        assert_eq!(set.len(), plain.len());
        for n in 0..500 {
            assert_eq!(set.contains(&id(n)), plain.contains(&id(n)), "id {n}");
        }
        assert_eq!(
            set.unindexed().count(),
            (400..500).filter(|n| n % 3 == 0).count()
        );
        for (blob, found) in Merged::new(index.files()) {
            assert_eq!(
                set.contains_at(found[0].file, found[0].position),
                plain.contains(&blob)
            );
        }
    }
}
