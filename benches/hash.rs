//! Chunk hashing throughput: blake3 ids and CRC32, serial vs rayon.
//!
//! The buffer is cut into fixed 256 KiB chunks (the default average chunk size) and each
//! chunk is hashed on its own, as the backup pipeline does:
//! - `blake3_serial`: `hasher::hash_chunk` per chunk on the calling thread;
//! - `blake3_rayon`: `hasher::hash_chunks_par` (rayon pool; serial below `PAR_THRESHOLD`);
//! - `crc32_serial`: `hasher::crc_chunk` per chunk on the calling thread;
//! - `crc32_rayon`: `hasher::crc_chunk` per chunk over a rayon `par_iter`.
//!
//! Sizes 1, 16 and 64 MiB. The rayon speed-up is bounded by the number of cores.
//!
//! Run: `cargo bench --bench hash`

use std::hint::black_box;
use std::time::Duration;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use rayon::prelude::*;
use snapkeep::hasher::{crc_chunk, hash_chunk, hash_chunks_par};

const MIB: usize = 1 << 20;
const CHUNK: usize = 256 * 1024;
const SIZES: [usize; 3] = [MIB, 16 * MIB, 64 * MIB];

/// Deterministic xorshift64 bytes.
fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.extend_from_slice(&seed.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn bench_hash(c: &mut Criterion) {
    let data = pseudo_random(SIZES[SIZES.len() - 1], 0x0bad_5eed_dead_beef);
    let mut group = c.benchmark_group("hash");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for size in SIZES {
        let chunks: Vec<&[u8]> = data[..size].chunks(CHUNK).collect();
        let label = format!("{}MiB", size / MIB);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(
            BenchmarkId::new("blake3_serial", &label),
            &chunks,
            |b, chunks| {
                b.iter(|| {
                    black_box(
                        chunks
                            .iter()
                            .map(|c| hash_chunk(black_box(c)))
                            .collect::<Vec<_>>(),
                    )
                });
            },
        );
        group.bench_with_input(
            BenchmarkId::new("blake3_rayon", &label),
            &chunks,
            |b, chunks| b.iter(|| black_box(hash_chunks_par(black_box(chunks)))),
        );
        group.bench_with_input(
            BenchmarkId::new("crc32_serial", &label),
            &chunks,
            |b, chunks| {
                b.iter(|| {
                    black_box(
                        chunks
                            .iter()
                            .map(|c| crc_chunk(black_box(c)))
                            .collect::<Vec<_>>(),
                    )
                });
            },
        );
        group.bench_with_input(
            BenchmarkId::new("crc32_rayon", &label),
            &chunks,
            |b, chunks| {
                b.iter(|| {
                    black_box(
                        chunks
                            .par_iter()
                            .map(|c| crc_chunk(black_box(c)))
                            .collect::<Vec<_>>(),
                    )
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_hash);
criterion_main!(benches);
