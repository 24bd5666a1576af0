//! `snapkeep bench`: end-to-end figures on a deterministic database-like directory (or DIR).
//!
//! Each step runs this same binary as a child process (so times include process start, and
//! each step's peak RSS is its own: the child reports VmHWM on exit when
//! `SNAPKEEP_REPORT_RSS=1`). A plain sequential read of the same files is measured in the same
//! run, and every step is also shown as a ratio to it. With `--cold` (root only) the page
//! cache is dropped before every step.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};

/// Options of one bench run.
pub struct BenchArgs {
    pub dir: Option<PathBuf>,
    pub size: u64,
    pub cold: bool,
    pub keep: bool,
    /// Also measure opening a repository whose index holds this many chunks (0: skip).
    pub index_entries: u64,
    /// Grow the repository to this many snapshots (one churn round each), then measure
    /// `forget --keep-last 10` + prune without and with repacking (0: skip).
    pub prune_snapshots: u64,
}

/// One round of churn for the prune benchmark: 1 MiB of the WAL ring rewritten (the region of
/// five rounds ago), a new table of size/200 bytes, and the table of five rounds ago removed:
/// each round's data lives in five snapshots, so the packs of old rounds die whole.
fn churn(dir: &Path, size: u64, round: u64) -> Result<()> {
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

/// The prune benchmark (see [`BenchArgs::prune_snapshots`]).
fn prune_bench(
    repo: &Path,
    source: &Path,
    size: u64,
    total: u64,
    cold: bool,
    say: &dyn Fn(&str),
) -> Result<Value> {
    let src = source.to_string_lossy().into_owned();
    let have = run_step(repo, &["list"])?
        .json
        .as_array()
        .map_or(0, Vec::len) as u64;
    say(&format!(
        "prune: growing the repository from {have} to {total} snapshots"
    ));
    for round in have..total {
        churn(source, size, round)?;
        run_step(repo, &["snapshot", &src])?;
    }
    let repo_bytes = |p: &Path| -> u64 {
        walkdir::WalkDir::new(p.join("data"))
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file())
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    };
    let before = repo_bytes(repo);
    run_step(repo, &["forget", "--keep-last", "10"])?;
    drop_caches(cold)?;
    let plain = run_step(
        repo,
        &["prune", "--grace", "0", "--max-unused", "unlimited"],
    )?;
    let mid = repo_bytes(repo);
    say(&format!(
        "prune of {total} snapshots (40 forgotten), no repacking: {:.3} s, peak RSS {} MiB, packs {} -> {} ({} -> {} MiB)",
        plain.seconds,
        plain.rss_kib / 1024,
        plain.json["packs_before"],
        plain.json["packs_after"],
        before >> 20,
        mid >> 20
    ));
    drop_caches(cold)?;
    let repack = run_step(repo, &["prune", "--grace", "0", "--max-unused", "0%"])?;
    let after = repo_bytes(repo);
    say(&format!(
        "prune with repacking (--max-unused 0%): {:.3} s, peak RSS {} MiB, repacked {} packs, moved {} blobs ({} MiB of live data), {} -> {} MiB",
        repack.seconds,
        repack.rss_kib / 1024,
        repack.json["repacked_packs"],
        repack.json["moved_blobs"],
        repack.json["moved_bytes"].as_u64().unwrap_or(0) >> 20,
        mid >> 20,
        after >> 20
    ));
    Ok(json!({
        "snapshots": total,
        "kept": 10,
        "pack_bytes_before": before,
        "no_repack": {
            "seconds_including_process_start": plain.seconds,
            "peak_rss_kib": plain.rss_kib,
            "report": plain.json,
            "pack_bytes_after": mid,
        },
        "repack": {
            "seconds_including_process_start": repack.seconds,
            "peak_rss_kib": repack.rss_kib,
            "report": repack.json,
            "pack_bytes_after": after,
        },
    }))
}

/// Writes one index file of `n` random entries into a new repository and measures a `list`
/// (which opens the repository and its memory-mapped index) as a child process.
fn index_open(work: &Path, n: u64, say: &dyn Fn(&str)) -> Result<Value> {
    use snapkeep::format::index_file::{self, BlobLocation};
    use snapkeep::format::pack::{BlobCompression, BlobKind};
    let repo_dir = work.join("index-repo");
    let repo = snapkeep::Repository::init_local(&repo_dir, &snapkeep::InitOptions::default())?;
    say(&format!("writing an index of {n} entries"));
    let mut rng = Rng(0x1de7_0001);
    let packs: Vec<snapkeep::PackId> = (0..(n / 128).max(1))
        .map(|i| snapkeep::PackId::of(&i.to_le_bytes()))
        .collect();
    let mut entries = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    for i in 0..n {
        let mut id = [0u8; 32];
        rng.fill_random(&mut id);
        let pack = packs[usize::try_from(i / 128).unwrap_or(0) % packs.len()];
        entries.push((
            snapkeep::BlobId::from_bytes(id),
            BlobLocation {
                pack,
                kind: BlobKind::Data,
                compression: BlobCompression::Raw,
                offset: 8,
                length: 262_144,
                raw_length: 262_144,
            },
        ));
    }
    let bytes = index_file::encode(entries);
    let size = bytes.len();
    let id = snapkeep::IndexId::of(&bytes);
    repo.backend()
        .put(&snapkeep::format::keys::index(&id), &bytes)?;
    drop(bytes);
    drop_caches(false)?;
    let step = run_step(&repo_dir, &["list"])?;
    say(&format!(
        "open a repository with a {n}-entry index ({} MiB) and list it: {:.3} s, peak RSS {} MiB",
        size >> 20,
        step.seconds,
        step.rss_kib / 1024
    ));
    Ok(json!({
        "entries": n,
        "index_bytes": size,
        "seconds_including_process_start": step.seconds,
        "peak_rss_kib": step.rss_kib,
    }))
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn fill_random(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }

    /// Key/value-like text that zstd:1 compresses about 3:1.
    fn fill_text(&mut self, buf: &mut [u8]) {
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
fn generate(dir: &Path, size: u64) -> Result<()> {
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

/// The deterministic change: new data in the WAL ring, a new table, and 50 small files
/// rewritten (about 120 MB at the default 1 GiB size).
fn change(dir: &Path, size: u64) -> Result<u64> {
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

fn tree_bytes(dir: &Path) -> (u64, u64) {
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

/// Reads every file once, sequentially, holes included (what `cat` does).
fn plain_read(dir: &Path) -> Result<f64> {
    let t = Instant::now();
    let mut buf = vec![0u8; 1 << 20];
    let mut paths: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(walkdir::DirEntry::into_path)
        .collect();
    paths.sort();
    for p in paths {
        let mut f = File::open(&p)?;
        while f.read(&mut buf)? > 0 {}
    }
    Ok(t.elapsed().as_secs_f64())
}

fn drop_caches(cold: bool) -> Result<()> {
    if cold {
        rustix::fs::sync();
        fs::write("/proc/sys/vm/drop_caches", b"3")
            .context("--cold needs root to write /proc/sys/vm/drop_caches")?;
    }
    Ok(())
}

struct Step {
    seconds: f64,
    rss_kib: u64,
    json: Value,
}

fn run_step(repo: &Path, args: &[&str]) -> Result<Step> {
    let exe = std::env::current_exe().context("cannot find the snapkeep executable")?;
    let t = Instant::now();
    let out = Command::new(exe)
        .arg("--repo")
        .arg(repo)
        .arg("--json")
        .arg("--quiet")
        .args(args)
        .env("SNAPKEEP_REPORT_RSS", "1")
        .output()?;
    let seconds = t.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(anyhow!(
            "step '{}' failed: {}",
            args.join(" "),
            stderr.trim()
        ));
    }
    let rss_kib = stderr
        .lines()
        .find_map(|l| l.strip_prefix("SNAPKEEP_PEAK_RSS_KB="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    Ok(Step {
        seconds,
        rss_kib,
        json,
    })
}

/// Prints the calling process's peak RSS for the bench parent (see module doc).
pub fn report_rss_if_asked() {
    if std::env::var_os("SNAPKEEP_REPORT_RSS").is_none() {
        return;
    }
    if let Ok(status) = fs::read_to_string("/proc/self/status")
        && let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:"))
    {
        let kb = line
            .trim_start_matches("VmHWM:")
            .trim()
            .trim_end_matches(" kB");
        eprintln!("SNAPKEEP_PEAK_RSS_KB={kb}");
    }
}

/// Runs the benchmark; returns the JSON report.
pub fn run(args: &BenchArgs, say: &dyn Fn(&str)) -> Result<Value> {
    let work = tempfile::Builder::new()
        .prefix("snapkeep-bench-")
        .tempdir()?;
    let (source, generated) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => {
            let d = work.path().join("data");
            say(&format!(
                "generating {} MiB dataset in {}",
                args.size >> 20,
                d.display()
            ));
            generate(&d, args.size)?;
            (d, true)
        }
    };
    if generated {
        // Let the new files age past the racy-mtime window (2 s): a real data directory's
        // files are mostly old, and a file modified within the window of its parent snapshot
        // is always read again.
        std::thread::sleep(std::time::Duration::from_millis(2100));
    }
    let (bytes, files) = tree_bytes(&source);
    let mb = bytes as f64 / 1e6;
    let repo = work.path().join("repo");
    let mut steps = Vec::new();
    drop_caches(args.cold)?;
    let read_s = plain_read(&source)?;
    say(&format!(
        "plain read: {read_s:.3} s ({:.0} MB/s)",
        mb / read_s
    ));
    let mut record = |name: &str, step: &Step, logical: f64| {
        let rate = logical / step.seconds;
        say(&format!(
            "{name}: {:.3} s, {rate:.0} MB/s, {:.2}x the plain read, peak RSS {} MiB",
            step.seconds,
            read_s / step.seconds,
            step.rss_kib / 1024
        ));
        steps.push(json!({
            "step": name,
            "seconds": step.seconds,
            "mb_per_s": rate,
            "ratio_to_plain_read": read_s / step.seconds,
            "peak_rss_kib": step.rss_kib,
            "new_bytes": step.json.get("new_bytes"),
            "stored_bytes": step.json.get("stored_bytes"),
        }));
    };
    drop_caches(args.cold)?;
    let src = source.to_string_lossy().into_owned();
    let first = run_step(&repo, &["snapshot", &src])?;
    record("initial snapshot", &first, mb);
    drop_caches(args.cold)?;
    let nochange = run_step(&repo, &["snapshot", &src])?;
    record("no-change snapshot", &nochange, mb);
    let changed = if generated {
        change(&source, args.size)?
    } else {
        0
    };
    drop_caches(args.cold)?;
    let after = run_step(&repo, &["snapshot", &src])?;
    record("snapshot after change", &after, mb);
    drop_caches(args.cold)?;
    let target = work.path().join("restored");
    let restore = run_step(&repo, &["restore", "latest", &target.to_string_lossy()])?;
    record("restore", &restore, mb);
    drop_caches(args.cold)?;
    let verify = run_step(&repo, &["verify", "--read-data"])?;
    record("verify --read-data", &verify, mb);

    let prune = if args.prune_snapshots > 0 && generated {
        prune_bench(
            &repo,
            &source,
            args.size,
            args.prune_snapshots,
            args.cold,
            say,
        )?
    } else {
        if args.prune_snapshots > 0 {
            say(
                "prune benchmark skipped: it changes the dataset, so it runs on a generated one only",
            );
        }
        Value::Null
    };
    let index = if args.index_entries > 0 {
        index_open(work.path(), args.index_entries, say)?
    } else {
        Value::Null
    };
    let first_stored = first
        .json
        .get("stored_bytes")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let first_new = first
        .json
        .get("new_bytes")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let first_data = first
        .json
        .get("data_bytes")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let after_stored = after
        .json
        .get("stored_bytes")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let report = json!({
        "dataset": {"path": src, "generated": generated, "bytes": bytes, "files": files},
        "cores": std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        "cold_cache": args.cold,
        "plain_read_seconds": read_s,
        "plain_read_mb_per_s": mb / read_s,
        "steps": steps,
        "changed_bytes": changed,
        "growth_from_change": after_stored,
        "growth_per_changed_byte": if changed > 0 { after_stored as f64 / changed as f64 } else { 0.0 },
        "dedup_ratio": if first_new > 0 { first_data as f64 / first_new as f64 } else { 0.0 },
        "index_open": index,
        "prune": prune,
        "compression_ratio": if first_stored > 0 { first_new as f64 / first_stored as f64 } else { 0.0 },
    });
    if args.keep {
        let kept = work.keep();
        say(&format!("kept the work directory {}", kept.display()));
    }
    Ok(report)
}
