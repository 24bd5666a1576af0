//! FastCDC cut-point throughput: `Chunker::cut_all` over seeded pseudo-random data.
//!
//! Sizes 1, 16 and 64 MiB at average chunk sizes 64 KiB and 256 KiB (min = avg/4,
//! max = avg*4, as `ChunkerParams::with_avg` derives them). Chunking is serial by design
//! (cut points depend on the previous cut), so there is no rayon variant here; see `hash`.
//!
//! Run: `cargo bench --bench chunker`

use std::hint::black_box;
use std::time::Duration;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use snapkeep::chunker::{Chunker, ChunkerParams};

const MIB: usize = 1 << 20;
const SIZES: [usize; 3] = [MIB, 16 * MIB, 64 * MIB];
const AVGS: [u32; 2] = [64 * 1024, 256 * 1024];

/// Deterministic xorshift64 bytes: incompressible, no repeats, same on every run.
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

fn bench_cut_all(c: &mut Criterion) {
    let data = pseudo_random(SIZES[SIZES.len() - 1], 0x5eed_c0de_1234_5678);
    let mut group = c.benchmark_group("chunker/cut_all");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for avg in AVGS {
        let params = ChunkerParams::with_avg(avg).expect("valid chunker params");
        let chunker = Chunker::new(&params).expect("chunker");
        for size in SIZES {
            let input = &data[..size];
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_with_input(
                BenchmarkId::new(
                    format!("avg{}KiB", avg / 1024),
                    format!("{}MiB", size / MIB),
                ),
                input,
                |b, input| b.iter(|| black_box(chunker.cut_all(black_box(input)))),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench_cut_all);
criterion_main!(benches);
