//! Index files read together in id order, and sorted entries written as index files of
//! bounded size: the streaming k-way merge that index merges and prune's index rewrite use,
//! so that neither holds more than one entry per file plus one output file in memory.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use super::{IndexFile, write_index};
use crate::backend::Backend;
use crate::codec::Codec;
use crate::error::Result;
use crate::format::index_file::BlobLocation;
use crate::id::{BlobId, IndexId};

/// Entries an index file written from a sorted stream holds at most (about 6.8 MB a file):
/// what a writer holds in memory is bounded by this, not by the repository.
pub const ENTRIES_PER_FILE: usize = 1 << 17;

/// One place an id is found: the file (its number in the slice merged), the position in it,
/// and the location the entry gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Occurrence {
    pub file: usize,
    pub position: usize,
    pub location: BlobLocation,
}

/// Every id of some index files in increasing order, each with all its occurrences in file
/// order: a k-way merge over the sorted files (a heap of one entry per file). Entries that do
/// not decode are left out, as lookups leave them out.
pub struct Merged<'a> {
    files: &'a [Arc<IndexFile>],
    /// The next id of each file not yet passed: (id, file, position).
    heads: BinaryHeap<Reverse<(BlobId, usize, usize)>>,
}

impl<'a> Merged<'a> {
    /// The merge of `files` (numbered by their place in the slice).
    #[must_use]
    pub fn new(files: &'a [Arc<IndexFile>]) -> Self {
        let heads = files
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.is_empty())
            .map(|(n, f)| Reverse((f.id_at(0), n, 0)))
            .collect();
        Merged { files, heads }
    }

    /// Moves file `n` past position `i`.
    fn advance(&mut self, n: usize, i: usize) {
        let f = &self.files[n];
        if i + 1 < f.len() {
            self.heads.push(Reverse((f.id_at(i + 1), n, i + 1)));
        }
    }
}

impl Iterator for Merged<'_> {
    type Item = (BlobId, Vec<Occurrence>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let Reverse((id, n, i)) = self.heads.pop()?;
            let mut found = Vec::with_capacity(1);
            let mut take = |this: &mut Self, n: usize, i: usize| {
                if let Some((_, location)) = this.files[n].entry_at(i) {
                    found.push(Occurrence {
                        file: n,
                        position: i,
                        location,
                    });
                }
                this.advance(n, i);
            };
            take(self, n, i);
            while let Some(Reverse((next, m, j))) = self.heads.peek().copied() {
                if next != id {
                    break;
                }
                self.heads.pop();
                take(self, m, j);
            }
            if found.is_empty() {
                continue;
            }
            // Ties pop in file order (the heap orders by id, then file), so `found` is too.
            return Some((id, found));
        }
    }
}

/// Writes `entries` (increasing ids, each once) as index files of at most `per_file` entries,
/// one file in memory at a time; returns the files written with their stored sizes.
pub fn write_sorted(
    backend: &dyn Backend,
    codec: &Codec,
    entries: impl IntoIterator<Item = (BlobId, BlobLocation)>,
    per_file: usize,
) -> Result<Vec<(IndexId, u64)>> {
    let per_file = per_file.max(1);
    let mut written = Vec::new();
    let mut part = Vec::with_capacity(per_file.min(4096));
    for e in entries {
        part.push(e);
        if part.len() == per_file {
            written.extend(write_index(backend, codec, std::mem::take(&mut part))?);
        }
    }
    written.extend(write_index(backend, codec, part)?);
    Ok(written)
}

/// The ids of `a` and `b` (each increasing, each id once) in one increasing stream; where
/// both hold an id, `a`'s entry wins.
pub fn union<A, B>(a: A, b: B) -> impl Iterator<Item = (BlobId, BlobLocation)>
where
    A: IntoIterator<Item = (BlobId, BlobLocation)>,
    B: IntoIterator<Item = (BlobId, BlobLocation)>,
{
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) if y.0 < x.0 => b.next(),
        (Some(x), Some(y)) if y.0 == x.0 => {
            b.next();
            a.next()
        }
        (Some(_), _) => a.next(),
        (None, _) => b.next(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::MemoryBackend;
    use crate::format::pack::{BlobCompression, BlobKind};
    use crate::id::PackId;
    use crate::index::Index;

    fn loc(pack: u8, offset: u32) -> BlobLocation {
        BlobLocation {
            pack: PackId::of(&[pack]),
            kind: BlobKind::Data,
            compression: BlobCompression::Raw,
            offset,
            length: 10,
            raw_length: 10,
        }
    }

    fn id(n: u32) -> BlobId {
        BlobId::of(&n.to_le_bytes())
    }

    #[test]
    fn merged_files_give_each_id_once_in_order_with_every_occurrence() {
        let backend = MemoryBackend::new();
        let codec = Codec::Plain;
        // File A holds 0..100, file B holds 50..150 with other locations.
        let a: Vec<_> = (0..100).map(|n| (id(n), loc(1, n))).collect();
        let b: Vec<_> = (50..150).map(|n| (id(n), loc(2, n))).collect();
        write_index(&backend, &codec, a).expect("a");
        write_index(&backend, &codec, b).expect("b");
        let index = Index::open(&backend, &codec).expect("open");
        let merged: Vec<_> = Merged::new(index.files()).collect();
        assert_eq!(merged.len(), 150);
        assert!(
            merged.windows(2).all(|w| w[0].0 < w[1].0),
            "not in id order"
        );
        for (blob, found) in &merged {
            let n = (0..150).find(|n| id(*n) == *blob).expect("a known id");
            assert_eq!(found.len(), if (50..100).contains(&n) { 2 } else { 1 });
            assert!(found.windows(2).all(|w| w[0].file < w[1].file));
            for o in found {
                let f = &index.files()[o.file];
                assert_eq!(f.entry_at(o.position), Some((*blob, o.location)));
            }
        }
    }

    #[test]
    fn sorted_entries_are_written_in_bounded_files_that_lookups_find() {
        let backend = MemoryBackend::new();
        let codec = Codec::Plain;
        let mut entries: Vec<_> = (0..1000).map(|n| (id(n), loc(3, n))).collect();
        entries.sort_by_key(|e| e.0);
        let written = write_sorted(&backend, &codec, entries.clone(), 300).expect("write");
        assert_eq!(written.len(), 4, "1000 entries at 300 a file");
        let index = Index::open(&backend, &codec).expect("open");
        let mut lens: Vec<usize> = index.files().iter().map(|f| f.len()).collect();
        lens.sort_unstable();
        assert_eq!(lens, [100, 300, 300, 300]);
        for (blob, l) in &entries {
            assert_eq!(index.get(blob), Some(*l));
        }
        assert_eq!(index.get(&id(5000)), None);
        let again: Vec<_> = Merged::new(index.files())
            .map(|(b, found)| (b, found[0].location))
            .collect();
        assert_eq!(again, entries);
    }

    #[test]
    fn a_union_keeps_the_first_streams_entry_on_a_tie() {
        let a = vec![(id(1), loc(1, 1)), (id(2), loc(1, 2))];
        let b = vec![(id(2), loc(2, 2)), (id(3), loc(2, 3))];
        let (mut a, mut b) = (a, b);
        a.sort_by_key(|e| e.0);
        b.sort_by_key(|e| e.0);
        let u: Vec<_> = union(a.clone(), b.clone()).collect();
        assert_eq!(u.len(), 3);
        assert!(u.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(
            u.iter().find(|e| e.0 == id(2)).map(|e| e.1),
            Some(loc(1, 2))
        );
    }

    #[test]
    fn a_merge_leaves_full_files_alone_and_joins_the_small_ones() {
        let backend = MemoryBackend::new();
        let codec = Codec::Plain;
        let n = u32::try_from(ENTRIES_PER_FILE).expect("fits");
        let full: Vec<_> = (0..n).map(|k| (id(k), loc(1, k))).collect();
        let (full_id, _) = write_index(&backend, &codec, full)
            .expect("full")
            .expect("id");
        for part in 0..3u32 {
            let es: Vec<_> = (0..10)
                .map(|k| (id(n + part * 10 + k), loc(2, k)))
                .collect();
            write_index(&backend, &codec, es).expect("small");
        }
        let index = Index::open(&backend, &codec).expect("open");
        assert!(
            super::super::merge(&backend, &codec, &index, 4)
                .expect("merge")
                .is_empty()
        );
        let written = super::super::merge(&backend, &codec, &index, 3).expect("merge");
        assert_eq!(written.len(), 1);
        let after = Index::open(&backend, &codec).expect("reopen");
        let mut ids: Vec<_> = after.files().iter().map(|f| f.id()).collect();
        ids.sort();
        let mut want = vec![full_id, written[0]];
        want.sort();
        assert_eq!(ids, want, "the full file stays, the small ones became one");
        assert_eq!(after.total_entries(), ENTRIES_PER_FILE + 30);
        assert_eq!(after.get(&id(n + 25)), Some(loc(2, 5)));
    }
}
