//! Every decoder of an on-disk type gets arbitrary bytes, and valid encodings with random
//! damage: it returns `Ok` or `Err`, never panics, and never allocates from an unchecked
//! length field (a run under a tight allocation would fail; here the inputs are at most a few
//! KiB, so a decoder that trusted a length field would try gigabytes and abort the test).
//! The payloads are framed with a valid checksum, so the decoders behind the frame are
//! reached, not just the checksum test.

mod common;

use proptest::prelude::*;
use snapkeep::format::frame;
use snapkeep::format::gc::{LockRecord, MarkRecord};
use snapkeep::format::index_file::{self, BlobLocation, IndexLayout};
use snapkeep::format::manifest::{SnapshotRecord, Tree};
use snapkeep::format::pack::{
    BlobCompression, BlobKind, FOOTER_LEN, PackEntry, check_header, decode_entries, decode_footer,
    encode_trailer,
};
use snapkeep::format::repo_config::RepoConfig;
use snapkeep::{BlobId, PackId, TreeId};

fn index_reader(bytes: &[u8]) {
    if let Ok(layout) = IndexLayout::parse(bytes, "fuzz") {
        let _ = IndexLayout::check_sum(bytes, "fuzz");
        let _ = layout.packs(bytes);
        for i in 0..layout.len().min(64) {
            if let Some((id, _)) = layout.entry_at(bytes, i) {
                let _ = layout.find(bytes, &id);
            }
        }
        let _ = layout.find(bytes, &BlobId::from_bytes([0x5a; 32]));
    }
}

fn pack_reader(bytes: &[u8], pack_len: u64) {
    let _ = check_header(bytes, "fuzz");
    if bytes.len() >= FOOTER_LEN {
        let footer_bytes = &bytes[bytes.len() - FOOTER_LEN..];
        if let Ok(f) = decode_footer(footer_bytes, pack_len, "fuzz") {
            let start = usize::try_from(f.entries_offset).unwrap_or(usize::MAX);
            let len = usize::try_from(f.entries_len()).unwrap_or(usize::MAX);
            if let Some(entries) = start.checked_add(len).and_then(|end| bytes.get(start..end)) {
                let _ = decode_entries(entries, &f, "fuzz");
            }
            let _ = decode_entries(&bytes[..bytes.len() - FOOTER_LEN], &f, "fuzz");
        }
    }
}

fn framed_readers(payload: &[u8]) {
    let id = uuid::Uuid::from_bytes([7; 16]);
    let _ = SnapshotRecord::from_bytes(&frame(b"SKSNAPSH", 1, payload), &id);
    let _ = SnapshotRecord::from_bytes(payload, &id);
    let _ = RepoConfig::from_bytes(&frame(b"SKCONFIG", 1, payload));
    let _ = RepoConfig::from_bytes(payload);
    let _ = LockRecord::from_bytes(&frame(b"SKLOCK00", 1, payload), "locks/x");
    let _ = MarkRecord::from_bytes(&frame(b"SKMARK00", 1, payload), "marks/x");
    let mut tree = b"SKTREE\x01\x00".to_vec();
    tree.extend_from_slice(payload);
    let _ = Tree::from_bytes(&tree, &TreeId::of(&tree));
    let _ = Tree::from_bytes(payload, &TreeId::of(payload));
}

fn valid_index(n: u8) -> Vec<u8> {
    let entries = (0..n)
        .map(|i| {
            (
                BlobId::of(&[i]),
                BlobLocation {
                    pack: PackId::of(&[i % 3]),
                    kind: BlobKind::Data,
                    compression: BlobCompression::Raw,
                    offset: 8,
                    length: u32::from(i) + 1,
                    raw_length: u32::from(i) + 1,
                },
            )
        })
        .collect();
    index_file::encode(entries)
}

fn valid_pack(n: u8) -> Vec<u8> {
    let mut out = b"SKPACK\x01\x00".to_vec();
    let mut entries = Vec::new();
    for i in 0..n {
        let data = vec![i; usize::from(i) + 1];
        entries.push(PackEntry {
            id: BlobId::of(&data),
            kind: BlobKind::Data,
            compression: BlobCompression::Raw,
            offset: u32::try_from(out.len()).expect("small"),
            length: u32::from(i) + 1,
            raw_length: u32::from(i) + 1,
        });
        out.extend_from_slice(&data);
    }
    let off = u32::try_from(out.len()).expect("small");
    out.extend_from_slice(&encode_trailer(&entries, off));
    out
}

fn damage(mut b: Vec<u8>, edits: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    if !b.is_empty() {
        for (at, x) in edits {
            let i = at % b.len();
            b[i] ^= x | 1;
        }
    }
    if let Some(c) = cut {
        b.truncate(c % (b.len() + 1));
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096), len in any::<u64>()) {
        index_reader(&bytes);
        pack_reader(&bytes, len);
        pack_reader(&bytes, bytes.len() as u64);
        framed_readers(&bytes);
    }

    #[test]
    fn damaged_valid_encodings_never_panic(
        n in 0u8..40,
        edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in prop::option::of(any::<usize>()),
    ) {
        let idx = damage(valid_index(n), &edits, cut);
        index_reader(&idx);
        let pack = damage(valid_pack(n), &edits, cut);
        pack_reader(&pack, pack.len() as u64);
        let mark = MarkRecord { marked_ns: 1, packs: Vec::new() }.to_bytes();
        // Damage inside the payload, then reframe so the checksum is right again.
        let payload = damage(mark[12..mark.len() - 32].to_vec(), &edits, cut);
        framed_readers(&payload);
    }
}

#[test]
fn valid_encodings_decode() {
    common::report(
        "proptest: 2000 arbitrary inputs and 2000 damaged valid encodings, each into every decoder (index, pack trailer, tree, snapshot record, config, lock, mark)",
    );
    // The generators above are meaningful only if their undamaged forms are accepted.
    let idx = valid_index(20);
    let layout = IndexLayout::parse(&idx, "t").expect("index");
    assert_eq!(layout.len(), 20);
    IndexLayout::check_sum(&idx, "t").expect("sum");
    let pack = valid_pack(20);
    check_header(&pack, "t").expect("header");
    let f = decode_footer(&pack[pack.len() - FOOTER_LEN..], pack.len() as u64, "t").expect("f");
    let start = f.entries_offset as usize;
    let es = decode_entries(
        &pack[start..start + usize::try_from(f.entries_len()).expect("len")],
        &f,
        "t",
    )
    .expect("entries");
    assert_eq!(es.len(), 20);
}

/// A zstd frame header that declares 512 MiB in an 11-byte blob (found by fuzzing): refused
/// by the per-kind size cap, and, under the cap, decoded without trusting the header (the fuzz
/// run, with a 256 MiB allocation limit, checks the allocation side).
#[test]
fn a_lying_zstd_header_is_refused() {
    let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd, 0xa0];
    frame.extend_from_slice(&0x2000_0000u32.to_le_bytes());
    frame.extend_from_slice(&[0x01, 0x00]);
    let id = BlobId::from_bytes([1; 32]);
    for (kind, raw_length) in [
        (BlobKind::Data, 0x2000_0000),
        (BlobKind::Tree, 0x2000_0000),
        (BlobKind::Tree, 200 << 20),
        (BlobKind::Data, 8 << 20),
    ] {
        let mut f = frame.clone();
        f[5..9].copy_from_slice(&u32::to_le_bytes(raw_length));
        let loc = BlobLocation {
            pack: PackId::from_bytes([2; 32]),
            kind,
            compression: BlobCompression::Zstd,
            offset: 8,
            length: u32::try_from(f.len()).expect("small"),
            raw_length,
        };
        let e = snapkeep::pack::decode_blob(&snapkeep::codec::Codec::Plain, &f, &loc, &id)
            .expect_err("refused");
        assert!(
            matches!(e, snapkeep::Error::Corrupt { .. }),
            "{kind:?} {raw_length}: {e}"
        );
    }
}
