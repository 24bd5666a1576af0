//! End-to-end snapshot throughput: `snapkeep::snapshot` of a deterministic 64 MiB tree.
//!
//! The tree is generated once in a tempdir (and stays in the page cache):
//! - `text/`: 12 × 2 MiB log/SQL-like text (zstd:1 stores about 28 %);
//! - `random/`: 4 × 6 MiB pseudo-random (incompressible, no duplicates);
//! - `small/`: 256 × 16 KiB, half text, half random, in 4 subdirectories;
//! - `sparse.db`: 12 MiB apparent size: 2 MiB data, an 8 MiB hole, 2 MiB data.
//!
//! That is 64 MiB apparent, 56 MiB of data. Throughput counts the 64 MiB apparent bytes.
//!
//! Benchmarks (10 samples each):
//! - `first/off`, `first/zstd1`: snapshot into a *fresh* local repository each iteration
//!   (created in the untimed setup and deleted after the measurement), compression off or
//!   zstd level 1: chunk, hash, compress, pack, fsync, index, commit, everything new;
//! - `second/unchanged`: a further snapshot of the unchanged tree into a repository that
//!   already holds it, with that first snapshot as explicit parent (files whose metadata
//!   equals the parent's entry are reused unread); every iteration adds one record;
//! - `second/force_read`: the same with `force_read`: every file is read, chunked and
//!   hashed again and every chunk and tree is found in the index (only the snapshot record
//!   is stored).
//!
//! Run: `cargo bench --bench backup_e2e`

mod common;

use std::fs::{self, File};
use std::hint::black_box;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{MIB, Rng};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use snapkeep::{BackupOptions, Compression, InitOptions, NoProgress, Repository};

/// Writes the tree under `root`; returns its apparent size in bytes.
fn generate_tree(root: &Path) -> u64 {
    let mut rng = Rng(0x5eed_f00d_7a3e_b4c1);
    let mut total = 0u64;
    let mut write = |path: PathBuf, data: &[u8]| {
        fs::create_dir_all(path.parent().expect("parent")).expect("create dir");
        fs::write(&path, data).expect("write file");
        total += data.len() as u64;
    };
    for i in 0..12 {
        write(root.join(format!("text/{i:06}.log")), &rng.text(2 * MIB));
    }
    for i in 0..4 {
        write(
            root.join(format!("random/{i:06}.sst")),
            &rng.random(6 * MIB),
        );
    }
    for i in 0..256 {
        let data = if i % 2 == 0 {
            rng.text(16 * 1024)
        } else {
            rng.random(16 * 1024)
        };
        write(root.join(format!("small/{}/{i:04}.dat", i % 4)), &data);
    }
    // Sparse: data, hole, data.
    let path = root.join("sparse.db");
    let mut f = File::create(&path).expect("create sparse file");
    f.write_all(&rng.random(2 * MIB))
        .expect("write sparse head");
    f.seek(SeekFrom::Start(10 * MIB as u64)).expect("seek");
    f.write_all(&rng.random(2 * MIB))
        .expect("write sparse tail");
    f.sync_all().expect("sync sparse file");
    total += f.metadata().expect("stat sparse file").len();
    total
}

fn fresh_repo(compression: Compression) -> (tempfile::TempDir, Repository) {
    let dir = tempfile::tempdir().expect("repo tempdir");
    let repo = Repository::init_local(
        &dir.path().join("repo"),
        &InitOptions {
            compression,
            ..Default::default()
        },
    )
    .expect("init repository");
    (dir, repo)
}

fn bench_backup(c: &mut Criterion) {
    let src_dir = tempfile::tempdir().expect("source tempdir");
    let source = src_dir.path().join("data");
    let total = generate_tree(&source);
    let opts = BackupOptions {
        host: Some("bench".into()),
        ..Default::default()
    };

    let mut group = common::flat_group(c, "backup_e2e", Duration::from_secs(1));
    group.throughput(Throughput::Bytes(total));

    for (name, compression) in [("off", Compression::Off), ("zstd1", Compression::Zstd(1))] {
        let (_d, repo) = fresh_repo(compression);
        let out = snapkeep::snapshot(&repo, &source, &opts, &NoProgress).expect("snapshot");
        let s = &out.record.summary;
        eprintln!(
            "backup_e2e first/{name}: {} files, {} bytes, {} data bytes, {} chunks, {} stored \
             bytes, {:.0} ms",
            s.files,
            s.bytes,
            s.data_bytes,
            s.chunks,
            s.stored_bytes,
            s.duration_ns as f64 / 1e6
        );
        // About 0.1-0.2 s per snapshot here, plus an untimed repository setup and removal.
        group.measurement_time(Duration::from_secs(4));
        group.bench_function(BenchmarkId::new("first", name), |b| {
            b.iter_batched(
                || fresh_repo(compression),
                |(dir, repo)| {
                    let out =
                        snapkeep::snapshot(&repo, &source, &opts, &NoProgress).expect("snapshot");
                    black_box(out);
                    (dir, repo) // deleted after the measurement
                },
                BatchSize::PerIteration,
            );
        });
    }

    let (_repo_dir, repo) = fresh_repo(Compression::Zstd(1));
    let first = snapkeep::snapshot(&repo, &source, &opts, &NoProgress).expect("first snapshot");
    // An explicit parent: every iteration adds a record, and finding the latest one by
    // listing them all would make later iterations slower.
    let unchanged = BackupOptions {
        parent: Some(first.record.id),
        ..opts.clone()
    };
    let force = BackupOptions {
        force_read: true,
        ..unchanged.clone()
    };
    for (name, o) in [("unchanged", &unchanged), ("force_read", &force)] {
        let out = snapkeep::snapshot(&repo, &source, o, &NoProgress).expect("second snapshot");
        let s = &out.record.summary;
        eprintln!(
            "backup_e2e second/{name}: {} unchanged files, {} new chunks, {} stored bytes",
            s.unchanged_files, s.new_chunks, s.stored_bytes
        );
        group.measurement_time(Duration::from_secs(3));
        group.bench_function(BenchmarkId::new("second", name), |b| {
            b.iter(|| {
                black_box(snapkeep::snapshot(&repo, &source, o, &NoProgress).expect("snapshot"))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_backup);
criterion_main!(benches);
