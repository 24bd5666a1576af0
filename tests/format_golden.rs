//! Golden bytes of the on-disk format, version 1 (docs/DESIGN.md): objects written by an
//! earlier build must still decode to the same values and re-encode to the same bytes.
//!
//! The hex below was produced by commit 8ed1830 (the first build documenting format version 1
//! in docs/DESIGN.md). A change that alters any layout without bumping its version (and
//! without a decoder for the old one) makes existing repositories unreadable: these tests fail.

use snapkeep::chunker::ChunkerKind;
use snapkeep::format::index_file::{self, BlobLocation, IndexLayout};
use snapkeep::format::manifest::{FLAG_CHANGED_DURING_READ, NodeKind, SnapshotRecord, Tree};
use snapkeep::format::pack::{
    BlobCompression, BlobKind, FOOTER_LEN, PackEntry, decode_entries, decode_footer, encode_trailer,
};
use snapkeep::format::repo_config::{Compression, RepoConfig};
use snapkeep::id::PackId;
use snapkeep::{BlobId, ChunkId, TreeId};

const CONFIG: &str = "534b434f4e464947010000000111111111111111111111111111111111008020808001808004010680808010049f515600ec68b8323011a03460d9d4f2c98ee6323f303e7c11a026f18a48f1";

const TREE: &str = "534b5452454501000308646174612e73737400effdb6f50d0226d65c79b33e002d5b0ba6a90c62fd2aa763b64396556c17152e973265ff153580800483eefbca8e4c0a8e60d77beaa15b4413bba8facac97fec1a594d89bff7302e470701808004808040a403e80764aab4aed8c7bfce972f09922187804401026cff02042e2e2f78ff03e80764aab4aed8c7bfce972f0992210400037375620137d0e4a50a0ac1cd69fe2445af91644163cc26979503ccfa7055394af9e6e55ced0be80764aab4aed8c7bfce972f0992210000";
const TREE_ID: &str = "191860a86759b253fda7b9485e54b4db0c7607f94f6b5a969c48c69d92c3b0e3";

const RECORD_ID: &str = "01927b7e-1234-7abc-8def-0123456789ab";
const RECORD: &str = "534b534e41505348010000001001927b7e12347abc8def0123456789ab8280cefcbdc3aa8b300964622d686f73742d31010b2f7661722f6c69622f646202076e696768746c79026462011001927b7e000070008000000000000001191860a86759b253fda7b9485e54b4db0c7607f94f6b5a969c48c69d92c3b0e30102030405060708090a0b0c0d0e0f100e736e61706b65657020302e312e30020566696c657306616c6f70657801fd20a881fae9c6133c482e1a4ec7632ccba2debb94f5c02be232d5611b68cf49";

const TRAILER: &str = "17762fddd969a453925d65717ac3eea21320b66b54342fde15128d6caf21215f00010000080000000a0000001e00000010e5cf3d3c8a4f9f3468c8cc58eea84892a22fdadbc1acb22410190044c1d55301000000120000000500000005000000f6554883c84f448f2cff12a04b9d6e09eb9f8ebee297f8738b83b1828a94f306020000001700000001000000534b5045";

const INDEX_LEN: usize = 1340;
const INDEX_HASH: &str = "5d14df40c807edaf6bc0e582d77e67cfa78e1268099533f50a559137019375e5";

fn bytes(h: &str) -> Vec<u8> {
    hex::decode(h).expect("valid hex")
}

#[test]
fn config_v1_decodes_and_reencodes() {
    let b = bytes(CONFIG);
    let cfg = RepoConfig::from_bytes(&b).expect("a v1 config decodes");
    assert_eq!(cfg.version, 1);
    assert_eq!(cfg.id, [0x11; 16]);
    assert_eq!(cfg.chunker.kind, ChunkerKind::FastCdc2020);
    assert_eq!(
        (cfg.chunker.min, cfg.chunker.avg, cfg.chunker.max),
        (4096, 16384, 65536)
    );
    assert_eq!(cfg.compression, Compression::Zstd(3));
    assert_eq!(cfg.pack_size, 32 << 20);
    assert_eq!(
        hex::encode(cfg.to_bytes()),
        CONFIG,
        "config encoding changed"
    );
}

#[test]
fn tree_v1_decodes_and_keeps_its_id() {
    let b = bytes(TREE);
    let id = TreeId::of(&b);
    assert_eq!(id.to_hex(), TREE_ID);
    let mut tree = Tree::from_bytes(&b, &id).expect("a v1 tree decodes");
    let names: Vec<&[u8]> = tree.nodes.iter().map(|n| n.name.as_slice()).collect();
    assert_eq!(names, [&b"data.sst"[..], b"l\xff", b"sub"]);

    let f = &tree.nodes[0];
    assert_eq!((f.mode, f.uid, f.gid), (0o644, 1000, 100));
    assert_eq!((f.mtime_ns, f.ctime_ns), (1_700_000_000_123_456_789, -5));
    assert_eq!((f.inode, f.size), (4242, 65536 + 7 + (1 << 20)));
    assert_eq!(f.flags, FLAG_CHANGED_DURING_READ);
    let NodeKind::File {
        crc32,
        chunks,
        holes,
    } = &f.kind
    else {
        panic!("data.sst is not a file: {:?}", f.kind);
    };
    assert_eq!(*crc32, 0xdead_beef);
    assert_eq!(chunks.len(), 2);
    assert_eq!((chunks[0].id, chunks[0].len), (ChunkId::of(b"c1"), 65536));
    assert_eq!((chunks[1].id, chunks[1].len), (ChunkId::of(b"c2"), 7));
    assert_eq!(holes.len(), 1);
    assert_eq!((holes[0].offset, holes[0].len), (65536, 1 << 20));

    let l = &tree.nodes[1];
    assert_eq!(
        l.kind,
        NodeKind::Symlink {
            target: b"../x".to_vec()
        }
    );
    assert_eq!((l.mode, l.size), (0o777, 4));
    let d = &tree.nodes[2];
    assert_eq!(
        d.kind,
        NodeKind::Dir {
            tree: TreeId::of(b"subtree")
        }
    );
    assert_eq!(d.mode, 0o2755);

    assert_eq!(
        hex::encode(tree.to_bytes()),
        TREE,
        "tree encoding changed: every tree id (and so dedup of trees) changes"
    );
}

#[test]
fn snapshot_record_v1_decodes_and_reencodes() {
    let id: snapkeep::SnapshotId = RECORD_ID.parse().expect("uuid");
    let b = bytes(RECORD);
    let rec = SnapshotRecord::from_bytes(&b, &id).unwrap_or_else(|e| {
        panic!(
            "a snapshot record written by format version 1 no longer decodes ({e}); \
             a layout change needs a new SNAPSHOT_VERSION and a decoder for version 1"
        )
    });
    assert_eq!(rec.id, id);
    assert_eq!(rec.time_ns, 1_732_572_000_000_000_001);
    assert_eq!(rec.host, "db-host-1");
    assert_eq!(rec.paths, ["/var/lib/db"]);
    assert_eq!(rec.tags, ["nightly", "db"]);
    assert_eq!(
        rec.parent.map(|p| p.to_string()).as_deref(),
        Some("01927b7e-0000-7000-8000-000000000001")
    );
    assert_eq!(rec.tree.to_hex(), TREE_ID);
    let s = &rec.summary;
    assert_eq!(
        [
            s.files,
            s.dirs,
            s.symlinks,
            s.skipped,
            s.bytes,
            s.data_bytes,
            s.new_bytes,
            s.stored_bytes,
            s.new_chunks,
            s.chunks,
            s.changed_during_read,
            s.unchanged_files,
            s.stage_files,
            s.stage_bytes,
            s.inconsistent_files,
            s.duration_ns
        ],
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
    );
    assert_eq!(rec.program, "snapkeep 0.1.0");
    assert_eq!(rec.stages, ["files", "alopex"]);
    assert_eq!(rec.flags, 1);
    assert_eq!(
        hex::encode(rec.to_bytes()),
        RECORD,
        "record encoding changed"
    );
}

fn golden_entries() -> Vec<PackEntry> {
    vec![
        PackEntry {
            id: BlobId::of(b"a"),
            kind: BlobKind::Data,
            compression: BlobCompression::Zstd,
            offset: 8,
            length: 10,
            raw_length: 30,
        },
        PackEntry {
            id: BlobId::of(b"b"),
            kind: BlobKind::Tree,
            compression: BlobCompression::Raw,
            offset: 18,
            length: 5,
            raw_length: 5,
        },
    ]
}

#[test]
fn pack_trailer_v1_layout() {
    let t = encode_trailer(&golden_entries(), 23);
    assert_eq!(hex::encode(&t), TRAILER, "pack trailer layout changed");
    let b = bytes(TRAILER);
    let pack_len = 23 + b.len() as u64;
    let footer = decode_footer(&b[b.len() - FOOTER_LEN..], pack_len, "golden").expect("footer");
    assert_eq!((footer.count, footer.entries_offset), (2, 23));
    let back = decode_entries(&b[..b.len() - FOOTER_LEN], &footer, "golden").expect("entries");
    assert_eq!(back, golden_entries());
}

#[test]
fn index_file_v1_layout() {
    let loc = |p: &[u8], kind, compression, offset, length, raw_length| BlobLocation {
        pack: PackId::of(p),
        kind,
        compression,
        offset,
        length,
        raw_length,
    };
    let entries = vec![
        (
            BlobId::of(b"a"),
            loc(b"p1", BlobKind::Data, BlobCompression::Zstd, 8, 10, 30),
        ),
        (
            BlobId::of(b"b"),
            loc(b"p2", BlobKind::Tree, BlobCompression::Raw, 18, 5, 5),
        ),
        (
            BlobId::of(b"c"),
            loc(b"p1", BlobKind::Data, BlobCompression::Raw, 23, 100, 100),
        ),
    ];
    let b = index_file::encode(entries.clone());
    assert_eq!(b.len(), INDEX_LEN);
    assert_eq!(
        blake3::hash(&b).to_hex().to_string(),
        INDEX_HASH,
        "index layout changed"
    );
    let layout = IndexLayout::parse(&b, "golden").expect("parse");
    IndexLayout::check_sum(&b, "golden").expect("checksum");
    for (id, want) in entries {
        let i = layout.find(&b, &id).expect("present");
        assert_eq!(layout.entry_at(&b, i), Some((id, want)));
    }
}
