//! Golden cut points: the chunk boundaries and ids of fixed pseudo-random data are pinned.
//!
//! Cut points decide deduplication for the whole life of a repository: a dependency update
//! (the `fastcdc` crate, its gear table, its mask selection) or a refactor that moves a single
//! boundary makes every existing repository re-store everything. These values were computed
//! once and hard-coded; if this test fails, the chunker changed. Do not "fix" the numbers
//! unless a new chunker kind with its own golden values is being introduced.

mod common;

use snapkeep::ChunkId;
use snapkeep::chunker::{Chunker, ChunkerParams};
use snapkeep::format::manifest::NodeKind;
use snapkeep::{BackupOptions, NoProgress};

const SEED: u64 = 0x5eed_cafe_f00d_1234;
const LEN: usize = 4 << 20;

fn golden_data() -> Vec<u8> {
    common::random_bytes(LEN, SEED)
}

/// blake3 of the lengths, each as a little-endian u64.
fn lengths_hash(lens: &[usize]) -> String {
    let mut enc = Vec::with_capacity(lens.len() * 8);
    for &l in lens {
        enc.extend_from_slice(&(l as u64).to_le_bytes());
    }
    blake3::hash(&enc).to_hex().to_string()
}

fn ids_of(data: &[u8], lens: &[usize], n: usize) -> Vec<String> {
    let mut pos = 0;
    let mut out = Vec::new();
    for &l in lens.iter().take(n) {
        out.push(ChunkId::of(&data[pos..pos + l]).to_hex());
        pos += l;
    }
    out
}

fn check_limits(p: &ChunkerParams, lens: &[usize]) {
    assert_eq!(
        lens.iter().sum::<usize>(),
        LEN,
        "lengths must cover the data"
    );
    let (last, body) = lens.split_last().expect("at least one chunk");
    for &l in body {
        assert!(
            (p.min as usize..=p.max as usize).contains(&l),
            "chunk of {l} bytes outside {}..={}",
            p.min,
            p.max
        );
    }
    assert!(*last >= 1 && *last <= p.max as usize);
}

#[test]
fn the_prng_itself_is_stable() {
    // Guards the golden values below against an accidental change of the test's generator.
    let d = common::random_bytes(16, SEED);
    assert_eq!(
        hex::encode(&d),
        hex::encode({
            let mut x = SEED;
            let mut v = Vec::new();
            for _ in 0..2 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                v.extend_from_slice(&x.to_le_bytes());
            }
            v
        })
    );
    assert_eq!(
        blake3::hash(&golden_data()).to_hex().to_string(),
        GOLDEN_DATA_HASH
    );
}

const GOLDEN_DATA_HASH: &str = "58a9a2a23a51df9b75b8e823ec17a25dfbcd602f17a2e65893ed82b4453ca0fa";

#[test]
fn default_params_256k_cut_points_are_pinned() {
    let p = ChunkerParams::default();
    assert_eq!(
        (p.min, p.avg, p.max),
        (128 * 1024, 256 * 1024, 1024 * 1024),
        "the default chunker parameters changed: new repositories would cut differently"
    );
    assert_eq!(p, ChunkerParams::with_avg(256 * 1024).expect("params"));
    let data = golden_data();
    let lens = Chunker::new(&p).expect("chunker").cut_all(&data);
    check_limits(&p, &lens);
    assert_eq!(
        lens,
        vec![
            288_569, 381_438, 240_593, 555_017, 342_713, 339_866, 307_425, 367_909, 268_521,
            262_911, 443_805, 165_875, 229_662
        ]
    );
    assert_eq!(
        ids_of(&data, &lens, 4),
        vec![
            "e22f2e464e1f5b2a1c7063121df244766216b5d637dea975f854cefceedb5dba",
            "1f050cb47234e76e668645507119c2cc6dcbcf0aa33728b170451105cef08133",
            "73e26ddea7c1fc995c7525bfed16ad5e4a2a4db4422a8218f980c986d7c0c2c7",
            "f2d7ae44662463a1083f3deed10a552a9f6fc4cb2ea0b6344a19bee20e9156ec",
        ]
    );
    assert_eq!(
        lengths_hash(&lens),
        "c855ec67db87a2cdbe303ee9a441801b1a47dbae57f5367f4b3cfe49b15ce54a"
    );
}

const GOLDEN_16K_FIRST: [usize; 20] = [
    23597, 16599, 20537, 9888, 24790, 10666, 17690, 15276, 22944, 32873, 10256, 8828, 17851, 31231,
    22662, 24601, 20758, 21934, 8714, 24559,
];
const GOLDEN_16K_COUNT: usize = 191;
const GOLDEN_16K_LAST: [usize; 3] = [14114, 21365, 10043];
const GOLDEN_16K_LENGTHS_HASH: &str =
    "3d904d3b7113df3e1209ba4d6d2b00b5862b6d55e37ae1d7a111ba0207b08497";
const GOLDEN_16K_IDS: [&str; 4] = [
    "43f52d69fb36377e0123c2b685faa1cf8df718fbbd702dce3ba5a0aeca2c9764",
    "006a77c4895444630a1148f4908870a291aedea859c8f7b94be9016ecc0ec6ad",
    "5e2e0f34a83ac92fab79a44175582dc925976e179f37e8bdc18fdf67bbaeeb55",
    "b28ee6ebcc97b79473ad79736dc4c0fa79e9a3759aa56ae3162d199912d40d17",
];

#[test]
fn avg_16k_cut_points_are_pinned() {
    let p = common::params(16 * 1024);
    assert_eq!((p.min, p.avg, p.max), (8 * 1024, 16 * 1024, 64 * 1024));
    let data = golden_data();
    let lens = Chunker::new(&p).expect("chunker").cut_all(&data);
    check_limits(&p, &lens);
    assert_eq!(lens.len(), GOLDEN_16K_COUNT);
    assert_eq!(lens[..20], GOLDEN_16K_FIRST);
    assert_eq!(lens[lens.len() - 3..], GOLDEN_16K_LAST);
    assert_eq!(lengths_hash(&lens), GOLDEN_16K_LENGTHS_HASH);
    assert_eq!(ids_of(&data, &lens, 4), GOLDEN_16K_IDS);
}

/// Explicit parameters with min = avg/4 (what `with_avg` derived before min became avg/2):
/// a repository stores its parameters in its config, so repositories created with these must
/// keep getting exactly these cut points whatever the defaults become.
#[test]
fn explicit_quarter_min_params_are_pinned() {
    let cases: [(u32, u32, u32, usize, &str, &str); 2] = [
        (
            64 * 1024,
            256 * 1024,
            1024 * 1024,
            14,
            "2ea32c712d5be9e9ac37794fb1ce7bc013f15ddfdb02080c9ba86bbae64b1248",
            "a8dcd755f4899107033b706de243ef44b7ba7b6bde17e83b788e89567e551579",
        ),
        (
            4 * 1024,
            16 * 1024,
            64 * 1024,
            212,
            "7c19c363e18315c2b3bde09f47f793790b82186d5ac340cf3b8e5c9f742068da",
            "43f52d69fb36377e0123c2b685faa1cf8df718fbbd702dce3ba5a0aeca2c9764",
        ),
    ];
    let data = golden_data();
    for (min, avg, max, count, hash, first_id) in cases {
        let p = ChunkerParams {
            min,
            avg,
            max,
            ..ChunkerParams::default()
        };
        let lens = Chunker::new(&p).expect("chunker").cut_all(&data);
        check_limits(&p, &lens);
        assert_eq!(lens.len(), count, "chunk count for {p:?}");
        assert_eq!(lengths_hash(&lens), hash, "cut points for {p:?}");
        assert_eq!(ids_of(&data, &lens, 1), vec![first_id]);
    }
    // First cuts of the 256 KiB case, spelled out for a readable failure.
    let p = ChunkerParams {
        min: 64 * 1024,
        ..ChunkerParams::default()
    };
    let lens = Chunker::new(&p).expect("chunker").cut_all(&data);
    assert_eq!(lens[..4], [70621, 315_633, 283_753, 240_593]);
}

/// The backup pipeline (read windows, parallel hashing) must produce exactly the golden chunks.
#[test]
fn snapshot_of_the_golden_file_stores_the_golden_chunks() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    common::write_file(&src.join("golden.bin"), &golden_data());
    let repo = common::small_repo(&tmp.path().join("repo"));
    let out =
        snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress).expect("snapshot");
    assert_eq!(out.record.summary.chunks, GOLDEN_16K_COUNT as u64);
    let tree = repo.load_tree(&out.record.tree).expect("root tree");
    assert_eq!(tree.nodes.len(), 1);
    let NodeKind::File { chunks, holes, .. } = &tree.nodes[0].kind else {
        panic!(
            "golden.bin is not recorded as a file: {:?}",
            tree.nodes[0].kind
        );
    };
    assert!(holes.is_empty(), "a fully written file has no holes");
    let lens: Vec<usize> = chunks.iter().map(|c| c.len as usize).collect();
    assert_eq!(lens.len(), GOLDEN_16K_COUNT);
    assert_eq!(lengths_hash(&lens), GOLDEN_16K_LENGTHS_HASH);
    let ids: Vec<String> = chunks.iter().take(4).map(|c| c.id.to_hex()).collect();
    assert_eq!(ids, GOLDEN_16K_IDS);
}
