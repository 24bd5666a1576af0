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

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{MIB, pseudo_random};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rayon::prelude::*;
use snapkeep::hasher::{crc_chunk, hash_chunk, hash_chunks_par};

const CHUNK: usize = 256 * 1024;
const SIZES: [usize; 3] = [MIB, 16 * MIB, 64 * MIB];

/// `f` of every chunk in turn, on one thread.
fn serial<T>(chunks: &[&[u8]], f: impl Fn(&[u8]) -> T) -> Vec<T> {
    chunks.iter().map(|c| f(black_box(c))).collect()
}

fn bench_hash(c: &mut Criterion) {
    let data = pseudo_random(SIZES[SIZES.len() - 1], 0x0bad_5eed_dead_beef);
    let mut group = common::flat_group(c, "hash", Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for size in SIZES {
        let chunks: Vec<&[u8]> = data[..size].chunks(CHUNK).collect();
        let label = format!("{}MiB", size / MIB);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(
            BenchmarkId::new("blake3_serial", &label),
            &chunks,
            |b, chunks| b.iter(|| black_box(serial(chunks, hash_chunk))),
        );
        group.bench_with_input(
            BenchmarkId::new("blake3_rayon", &label),
            &chunks,
            |b, chunks| b.iter(|| black_box(hash_chunks_par(black_box(chunks)))),
        );
        group.bench_with_input(
            BenchmarkId::new("crc32_serial", &label),
            &chunks,
            |b, chunks| b.iter(|| black_box(serial(chunks, crc_chunk))),
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
