//! FastCDC cut-point throughput: `Chunker::cut_all` over seeded pseudo-random data.
//!
//! Sizes 1, 16 and 64 MiB at average chunk sizes 64 KiB and 256 KiB (min = avg/4,
//! max = avg*4, as `ChunkerParams::with_avg` derives them). Chunking is serial by design
//! (cut points depend on the previous cut), so there is no rayon variant here; see `hash`.
//!
//! Run: `cargo bench --bench chunker`

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{MIB, pseudo_random};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use snapkeep::chunker::{Chunker, ChunkerParams};

const SIZES: [usize; 3] = [MIB, 16 * MIB, 64 * MIB];
const AVGS: [u32; 2] = [64 * 1024, 256 * 1024];

fn bench_cut_all(c: &mut Criterion) {
    let data = pseudo_random(SIZES[SIZES.len() - 1], 0x5eed_c0de_1234_5678);
    let mut group = common::flat_group(c, "chunker/cut_all", Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
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
