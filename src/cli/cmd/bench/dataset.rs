//! The bench's data: a deterministic database-like directory (tables, a sparse WAL ring, small
//! files), the change between the second and the third snapshot, and the churn rounds of the
//! prune benchmark.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::Result;

/// A xorshift generator: the same data on every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn fill_random(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }

    /// Key/value-like text that zstd:1 compresses about 3:1.
    pub fn fill_text(&mut self, buf: &mut [u8]) {
        const WORDS: [&[u8]; 12] = [
            b"user",
            b"order",
            b"INSERT",
            b"value",
            b"status=ok",
            b"amount",
            b"2026-11-25",
            b"region-eu",
            b"key",
            b"txn",
            b"commit",
            b"payload",
        ];
        let mut i = 0;
        while i < buf.len() {
            let r = self.next();
            let w = WORDS[(r % 12) as usize];
            let n = w.len().min(buf.len() - i);
            buf[i..i + n].copy_from_slice(&w[..n]);
            i += n;
            if i < buf.len() {
                buf[i] = if r & 0x100 == 0 {
                    b' '
                } else {
                    b"0123456789"[((r >> 9) % 10) as usize]
                };
                i += 1;
            }
        }
    }
}

/// Writes the deterministic dataset: `tables/` of 8 MiB tables (half random, half text), a
/// 64 MiB sparse `ring.wal` with data at its start, `MANIFEST`, and small files under `meta/`.
/// The names are generic on purpose: format stages do not apply to this synthetic data.
pub fn generate(dir: &Path, size: u64) -> Result<()> {
    fs::create_dir_all(dir.join("tables"))?;
    fs::create_dir_all(dir.join("meta"))?;
    let mut rng = Rng(0x5eed_2026_1125);
    let mut used = 0u64;
    // WAL ring: 64 MiB apparent, 8 MiB of data.
    let wal = File::create(dir.join("ring.wal"))?;
    wal.set_len(64 << 20)?;
    let mut buf = vec![0u8; 1 << 20];
    for i in 0..8u64 {
        rng.fill_text(&mut buf);
        wal.write_all_at(&buf, i << 20)?;
    }
    used += 8 << 20;
    fs::write(dir.join("MANIFEST"), [7u8; 24])?;
    // Small files: ~1/32 of the budget, 4 KiB..32 KiB each.
    let mut n = 0;
    let small_budget = size / 32;
    let mut small = 0u64;
    while small < small_budget {
        let len = 4096 + (rng.next() % (28 << 10)) as usize;
        let mut b = vec![0u8; len];
        if n % 2 == 0 {
            rng.fill_text(&mut b);
        } else {
            rng.fill_random(&mut b);
        }
        fs::write(dir.join("meta").join(format!("part-{n:05}.json")), &b)?;
        small += len as u64;
        n += 1;
    }
    used += small;
    let mut k = 0;
    let table = 8u64 << 20;
    while used < size {
        let len = usize::try_from((size - used).min(table)).unwrap_or(1 << 20);
        let mut f = File::create(dir.join("tables").join(format!("{k:06}.tbl")))?;
        let mut left = len;
        while left > 0 {
            let m = left.min(buf.len());
            if k % 2 == 0 {
                rng.fill_random(&mut buf[..m]);
            } else {
                rng.fill_text(&mut buf[..m]);
            }
            f.write_all(&buf[..m])?;
            left -= m;
        }
        used += len as u64;
        k += 1;
    }
    Ok(())
}

/// Files per directory of the many-small-files dataset.
const FILES_PER_DIR: u64 = 100;

/// The path of small file `i` of the many-small-files dataset.
fn small_file(dir: &Path, i: u64) -> std::path::PathBuf {
    dir.join(format!("d{:05}", i / FILES_PER_DIR))
        .join(format!("f{i:07}.txt"))
}

/// Writes `n` small files, 0..=8 KiB each (three in four text, one random), 100 per
/// directory: the many-small-files dataset of `bench --files N`.
pub fn generate_files(dir: &Path, n: u64) -> Result<()> {
    let mut rng = Rng(0x5eed_f11e_2026);
    let mut buf = vec![0u8; 8 << 10];
    for i in 0..n {
        if i % FILES_PER_DIR == 0 {
            fs::create_dir_all(small_file(dir, i).parent().unwrap_or(dir))?;
        }
        let len = (rng.next() % ((8 << 10) + 1)) as usize;
        if i % 4 == 3 {
            rng.fill_random(&mut buf[..len]);
        } else {
            rng.fill_text(&mut buf[..len]);
        }
        fs::write(small_file(dir, i), &buf[..len])?;
    }
    Ok(())
}

/// The change of the many-small-files dataset: every 100th file rewritten (new text, one
/// byte longer, so its size changes too). Returns the bytes written.
pub fn change_files(dir: &Path, n: u64) -> Result<u64> {
    let mut rng = Rng(0xc4a4_6e01);
    let mut changed = 0u64;
    for i in (0..n).step_by(100) {
        let p = small_file(dir, i);
        let len = fs::read(&p).map_or(0, |b| b.len()) + 1;
        let mut b = vec![0u8; len];
        rng.fill_text(&mut b);
        fs::write(&p, &b)?;
        changed += len as u64;
    }
    Ok(changed)
}

/// The deterministic change: new data in the WAL ring, a new table, and 50 small files
/// rewritten (about 120 MB at the default 1 GiB size).
pub fn change(dir: &Path, size: u64) -> Result<u64> {
    let mut rng = Rng(0xc4a4_6e00);
    let mut changed = 0u64;
    let wal = fs::OpenOptions::new()
        .write(true)
        .open(dir.join("ring.wal"))?;
    let mut buf = vec![0u8; 1 << 20];
    for i in 8..12u64 {
        rng.fill_text(&mut buf);
        wal.write_all_at(&buf, i << 20)?;
        changed += 1 << 20;
    }
    let sst_bytes = (size / 10).max(1 << 20);
    let mut f = File::create(dir.join("tables").join("new-000001.tbl"))?;
    let mut left = sst_bytes;
    while left > 0 {
        let m = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        rng.fill_random(&mut buf[..m]);
        f.write_all(&buf[..m])?;
        left -= m as u64;
    }
    changed += sst_bytes;
    for i in 0..50 {
        let p = dir.join("meta").join(format!("part-{:05}.json", i * 7));
        if let Ok(old) = fs::read(&p) {
            let mut b = old.clone();
            rng.fill_random(&mut b[..old.len().min(256)]);
            fs::write(&p, &b)?;
            changed += b.len() as u64;
        }
    }
    fs::write(dir.join("MANIFEST"), [8u8; 24])?;
    Ok(changed)
}

/// One round of churn for the prune benchmark: 1 MiB of the WAL ring rewritten (the region of
/// five rounds ago), a new table of size/200 bytes, and the table of five rounds ago removed:
/// each round's data lives in five snapshots, so the packs of old rounds die whole.
pub fn churn(dir: &Path, size: u64, round: u64) -> Result<()> {
    let mut rng = Rng(0xc4a4_6e00 ^ (round + 1).wrapping_mul(0x9e37_79b9));
    let mut buf = vec![0u8; 1 << 20];
    rng.fill_text(&mut buf);
    let wal = fs::OpenOptions::new()
        .write(true)
        .open(dir.join("ring.wal"))?;
    wal.write_all_at(&buf, (round % 5) << 20)?;
    let len = usize::try_from((size / 200).max(1 << 16)).unwrap_or(1 << 20);
    let mut t = vec![0u8; len];
    rng.fill_random(&mut t);
    fs::write(dir.join("tables").join(format!("churn-{round:04}.tbl")), &t)?;
    if round >= 5 {
        let old = dir
            .join("tables")
            .join(format!("churn-{:04}.tbl", round - 5));
        if old.exists() {
            fs::remove_file(old)?;
        }
    }
    Ok(())
}

/// The bytes and the number of the regular files below `dir`.
pub fn tree_bytes(dir: &Path) -> (u64, u64) {
    let mut bytes = 0;
    let mut files = 0;
    for e in walkdir::WalkDir::new(dir).into_iter().flatten() {
        if e.file_type().is_file() {
            files += 1;
            bytes += e.metadata().map_or(0, |m| m.len());
        }
    }
    (bytes, files)
}
