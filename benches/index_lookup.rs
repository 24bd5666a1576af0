//! Chunk index: encoding, opening and looking up.
//!
//! For 100k and 1M random entries (ids from a seeded xorshift, 128 entries per pack):
//! - `encode`: `format::index_file::encode` (sort + dedup + serialize + blake3 footer);
//! - `open`: `index::Index::open` on a `LocalBackend` holding the one index file written by
//!   `index::write_index` (list `index/`, memory-map, check header and fanout: O(1) in the
//!   number of entries);
//! - `lookup_present` / `lookup_absent`: `Index::get` of a batch of 4096 ids that are / are
//!   not in the index (fanout table + binary search over the mapped file, warm page cache).
//!
//! Throughput is in elements (entries encoded, ids looked up); `open` has none.
//!
//! Run: `cargo bench --bench index_lookup`

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::Rng;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use snapkeep::backend::LocalBackend;
use snapkeep::format::index_file::{self, BlobLocation};
use snapkeep::format::pack::{BlobCompression, BlobKind};
use snapkeep::index::{Index, write_index};
use snapkeep::{BlobId, IndexId, PackId};

const SIZES: [usize; 2] = [100_000, 1_000_000];
const BATCH: usize = 4096;
const PER_PACK: usize = 128;

fn entries(n: usize, rng: &mut Rng) -> Vec<(BlobId, BlobLocation)> {
    let mut pack = PackId::from_bytes(rng.bytes32());
    let mut offset = 16u32;
    (0..n)
        .map(|i| {
            if i % PER_PACK == 0 {
                pack = PackId::from_bytes(rng.bytes32());
                offset = 16;
            }
            let raw_length = 64 * 1024 + u32::try_from(rng.below(3 * 64 * 1024)).expect("u32");
            let (compression, length) = if i % 3 == 0 {
                (BlobCompression::Raw, raw_length)
            } else {
                (BlobCompression::Zstd, raw_length / 3)
            };
            let loc = BlobLocation {
                pack,
                kind: BlobKind::Data,
                compression,
                offset,
                length,
                raw_length,
            };
            offset += length;
            (BlobId::from_bytes(rng.bytes32()), loc)
        })
        .collect()
}

fn bench_index(c: &mut Criterion) {
    let mut rng = Rng(0x1dec_0de5_eed0_0001);
    for n in SIZES {
        let all = entries(n, &mut rng);
        let label = format!("{}k", n / 1000);

        let mut group = common::flat_group(c, "index/encode", Duration::from_millis(500));
        group
            // 10 flat samples of one encode each: about 0.6 s per encode at 1M entries.
            .measurement_time(Duration::from_secs(if n >= 1_000_000 { 8 } else { 2 }))
            .throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(&label), &all, |b, all| {
            b.iter_batched(
                || all.clone(),
                |e| black_box(index_file::encode(e)),
                BatchSize::LargeInput,
            );
        });
        group.finish();

        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("repo");
        std::fs::create_dir_all(root.join("tmp")).expect("create staging dir");
        let backend = LocalBackend::new(&root);
        let expected = IndexId::of(&index_file::encode(all.clone()));
        let (id, bytes) = write_index(&backend, &snapkeep::codec::Codec::Plain, all.clone())
            .expect("write index")
            .expect("non-empty index");
        assert_eq!(id, expected, "write_index stores what encode produces");
        eprintln!("index {label}: {bytes} bytes in index/{id}");

        let mut group = c.benchmark_group("index/open");
        group
            .sample_size(20)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(1));
        group.bench_function(BenchmarkId::from_parameter(&label), |b| {
            b.iter(|| {
                black_box(
                    Index::open(&backend, &snapkeep::codec::Codec::Plain).expect("open index"),
                )
            });
        });
        group.finish();

        let index = Index::open(&backend, &snapkeep::codec::Codec::Plain).expect("open index");
        assert_eq!(index.total_entries(), n);
        assert!(index.damaged().is_empty());
        let present: Vec<BlobId> = (0..BATCH).map(|_| all[rng.below(n)].0).collect();
        let absent: Vec<BlobId> = (0..BATCH)
            .map(|_| BlobId::from_bytes(rng.bytes32()))
            .collect();
        assert!(present.iter().all(|id| index.contains(id)));
        assert!(absent.iter().all(|id| !index.contains(id)));

        let mut group = c.benchmark_group("index/lookup");
        group
            .sample_size(20)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .throughput(Throughput::Elements(BATCH as u64));
        for (kind, ids) in [("present", &present), ("absent", &absent)] {
            group.bench_with_input(BenchmarkId::new(kind, &label), ids, |b, ids| {
                b.iter(|| {
                    ids.iter()
                        .filter_map(|id| index.get(black_box(id)))
                        .map(|loc| u64::from(loc.length))
                        .sum::<u64>()
                });
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench_index);
criterion_main!(benches);
