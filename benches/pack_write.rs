//! Pack writer throughput: `PackWriter::add` of 256 KiB blobs, then `finish()` (seal the
//! open pack, wait for every upload), over a `LocalBackend` in a tempdir (staging in
//! `<root>/tmp`, so an upload is fsync + rename + directory fsync) and over a `MemoryBackend`
//! (staging in the system temp dir, upload = read the staged file into memory).
//!
//! Inputs:
//! - `raw`: pseudo-random 256 KiB blobs stored as `BlobCompression::Raw`;
//! - `zstd`: text-like 256 KiB blobs compressed with zstd level 1 *before* the measurement
//!   and stored as `BlobCompression::Zstd`: only the writer is timed, not the compressor.
//!
//! Throughput counts the raw (uncompressed) bytes of the blobs added, so `raw` and `zstd`
//! are comparable as "source bytes per second"; the `zstd` blobs write about 28 % of the
//! bytes. Every iteration uses a fresh backend (and tempdir) with a fresh writer; the pack
//! target is the repository default (`RepoConfig::DEFAULT_PACK_SIZE`, 32 MiB).
//!
//! Run: `cargo bench --bench pack_write`

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use common::{MIB, pseudo_random, text_like};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use snapkeep::ChunkId;
use snapkeep::backend::{Backend, LocalBackend, MemoryBackend};
use snapkeep::format::pack::{BlobCompression, BlobKind};
use snapkeep::format::repo_config::RepoConfig;
use snapkeep::id::AsBlob;
use snapkeep::pack::PackWriter;

const CHUNK: usize = 256 * 1024;
/// Total raw bytes added per iteration (N = size / 256 KiB blobs).
const SIZES: [usize; 2] = [16 * MIB, 64 * MIB];

struct Blob {
    id: ChunkId,
    compression: BlobCompression,
    stored: Vec<u8>,
    raw_length: u32,
}

fn blobs(total: usize, compressed: bool) -> Vec<Blob> {
    (0..total / CHUNK)
        .map(|i| {
            let seed = 0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1).wrapping_mul(0x1234_5678_9abc_def1);
            let raw = if compressed {
                text_like(CHUNK, seed)
            } else {
                pseudo_random(CHUNK, seed)
            };
            let id = ChunkId::of(&raw);
            let raw_length = u32::try_from(raw.len()).expect("chunk fits u32");
            if compressed {
                let stored = zstd::bulk::compress(&raw, 1).expect("zstd compress");
                Blob {
                    id,
                    compression: BlobCompression::Zstd,
                    stored,
                    raw_length,
                }
            } else {
                Blob {
                    id,
                    compression: BlobCompression::Raw,
                    stored: raw,
                    raw_length,
                }
            }
        })
        .collect()
}

fn write_all(backend: Arc<dyn Backend>, blobs: &[Blob]) -> usize {
    let writer = PackWriter::new(
        backend,
        snapkeep::codec::Codec::Plain,
        u64::from(RepoConfig::DEFAULT_PACK_SIZE),
    );
    for b in blobs {
        writer
            .add(
                b.id.blob(),
                BlobKind::Data,
                b.compression,
                &b.stored,
                b.raw_length,
            )
            .expect("add blob");
    }
    writer.finish().expect("finish").len()
}

fn local_backend() -> (tempfile::TempDir, Arc<dyn Backend>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("repo");
    std::fs::create_dir_all(root.join("tmp")).expect("create staging dir");
    (dir, Arc::new(LocalBackend::new(root)))
}

fn bench_pack_write(c: &mut Criterion) {
    let mut group = common::flat_group(c, "pack_write", Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for (input, compressed) in [("raw", false), ("zstd", true)] {
        for size in SIZES {
            let data = blobs(size, compressed);
            let stored: usize = data.iter().map(|b| b.stored.len()).sum();
            let label = format!("{}MiB", size / MIB);
            eprintln!(
                "pack_write {input}/{label}: {} blobs, {stored} stored bytes for {size} raw",
                data.len()
            );
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("local/{input}"), &label),
                &data,
                |b, data| {
                    b.iter_batched(
                        local_backend,
                        |(dir, backend)| {
                            black_box(write_all(backend, data));
                            dir // removed after the measurement
                        },
                        BatchSize::PerIteration,
                    );
                },
            );
            group.bench_with_input(
                BenchmarkId::new(format!("memory/{input}"), &label),
                &data,
                |b, data| {
                    b.iter_batched(
                        || Arc::new(MemoryBackend::new()),
                        |backend| {
                            let dyn_backend: Arc<dyn Backend> = backend.clone();
                            black_box(write_all(dyn_backend, data));
                            backend // freed after the measurement
                        },
                        BatchSize::PerIteration,
                    );
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench_pack_write);
criterion_main!(benches);
