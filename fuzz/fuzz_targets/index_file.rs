//! Index file: the input is a whole index file. `IndexLayout::parse`, then what `IndexFile`
//! does next: the footer checksum, the pack list, every entry (`id_at`, `entry_at`) and
//! lookups (`find`) of present ids, of absent neighbours and of fixed ids. On a well-formed
//! table (ids sorted and unique, fanout consistent with them) `find` must return each entry's
//! own position. Round trip: the decoded entries re-encoded with `index_file::encode` parse
//! back to the same entries and a valid checksum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapkeep::format::index_file::{HEADER_LEN, IndexLayout, encode};
use snapkeep::id::BlobId;

const OBJECT: &str = "index fuzz";
/// Bound on the per-input work, so a large input cannot slow the run down.
const MAX_ENTRIES: usize = 4096;

fuzz_target!(|data: &[u8]| {
    // `verify` checks the footer checksum on its own; it must refuse or accept any bytes.
    let _ = IndexLayout::check_sum(data, OBJECT);
    let Ok(layout) = IndexLayout::parse(data, OBJECT) else {
        return;
    };
    let n = layout.len();
    assert_eq!(layout.is_empty(), n == 0);
    let packs = layout.packs(data);

    let mut entries = Vec::with_capacity(n.min(MAX_ENTRIES));
    let mut all_decode = true;
    let mut sorted = true;
    let mut prev: Option<BlobId> = None;
    for i in 0..n.min(MAX_ENTRIES) {
        let id = layout.id_at(data, i);
        match layout.entry_at(data, i) {
            Some((eid, loc)) => {
                assert_eq!(eid, id);
                entries.push((eid, loc));
            }
            None => all_decode = false,
        }
        if prev.is_some_and(|p| p >= id) {
            sorted = false;
        }
        prev = Some(id);
    }
    // The fanout table must agree with the ids' first bytes for `find` to be exact.
    let fanout_ok = sorted && n <= MAX_ENTRIES && {
        let mut counts = [0u32; 256];
        for i in 0..n {
            counts[usize::from(layout.id_at(data, i).as_bytes()[0])] += 1;
        }
        let mut acc = 0u32;
        counts.iter().enumerate().all(|(b, c)| {
            acc += c;
            let at = HEADER_LEN + b * 4;
            u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) == acc
        })
    };

    for i in 0..n.min(MAX_ENTRIES) {
        let id = layout.id_at(data, i);
        let found = layout.find(data, &id);
        if fanout_ok {
            assert_eq!(found, Some(i), "entry {i} of a well-formed table not found");
        }
        if let Some(j) = found {
            assert!(j < n);
            assert_eq!(layout.id_at(data, j), id);
        }
        // Neighbours of a present id are absent from a well-formed table.
        let mut bytes = *id.as_bytes();
        bytes[31] = bytes[31].wrapping_add(1);
        let next = BlobId::from_bytes(bytes);
        if let Some(j) = layout.find(data, &next) {
            assert_eq!(layout.id_at(data, j), next);
        }
    }
    for probe in [
        BlobId::from_bytes([0; 32]),
        BlobId::from_bytes([0xff; 32]),
        BlobId::from_bytes([0x80; 32]),
        BlobId::of(data),
    ] {
        if let Some(j) = layout.find(data, &probe) {
            assert!(j < n);
            assert_eq!(layout.id_at(data, j), probe);
        }
    }

    // Round trip: decode -> encode -> decode.
    if all_decode && sorted && n <= MAX_ENTRIES {
        let bytes = encode(entries.clone());
        IndexLayout::check_sum(&bytes, OBJECT).expect("re-encoded checksum");
        let l2 = IndexLayout::parse(&bytes, OBJECT).expect("re-encoded index parses");
        assert_eq!(l2.len(), n);
        for (i, want) in entries.iter().enumerate() {
            assert_eq!(l2.entry_at(&bytes, i).as_ref(), Some(want));
            assert_eq!(l2.find(&bytes, &want.0), Some(i));
        }
        // Only referenced packs are written again.
        assert!(l2.packs(&bytes).len() <= packs.len());
    }
});
