//! `snapkeep bench`: end-to-end figures on a deterministic database-like directory (or DIR).
//!
//! Each step runs this same binary as a child process (so times include process start, and
//! each step's peak RSS is its own: the child reports VmHWM on exit when
//! `SNAPKEEP_REPORT_RSS=1`). A plain sequential read of the same files is measured in the same
//! run, and every step is also shown as a ratio to it. With `--cold` (root only) the page
//! cache is dropped before every step. The data is in `dataset`, the optional index and prune
//! measurements in `extra`.

mod dataset;
mod extra;

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};

use self::dataset::{change, change_files, generate, generate_files, tree_bytes};
use crate::cli::args::BenchArgs;
use crate::cli::env::Env;

/// Runs the benchmark; the report goes to stdout with `--json`, the figures to stderr.
pub fn run(env: &Env, args: &BenchArgs) -> Result<i32> {
    let report = measure(args, &|m| env.say(m))?;
    env.print(|| &report, || {});
    Ok(0)
}

/// The dataset the steps run on.
struct Dataset {
    path: PathBuf,
    /// Generated here (so the bench may change it), not given as DIR.
    generated: bool,
    bytes: u64,
    files: u64,
}

/// The timed steps, each also as a ratio to the plain read of the dataset.
struct Steps<'a> {
    say: &'a dyn Fn(&str),
    read_s: f64,
    mb: f64,
    rows: Vec<Value>,
}

impl Steps<'_> {
    fn record(&mut self, name: &str, step: &Step) {
        let rate = self.mb / step.seconds;
        (self.say)(&format!(
            "{name}: {:.3} s, {rate:.0} MB/s, {:.2}x the plain read, peak RSS {} MiB",
            step.seconds,
            self.read_s / step.seconds,
            step.rss_kib / 1024
        ));
        self.rows.push(json!({
            "step": name,
            "seconds": step.seconds,
            "mb_per_s": rate,
            "ratio_to_plain_read": self.read_s / step.seconds,
            "peak_rss_kib": step.rss_kib,
            "new_bytes": step.json.get("new_bytes"),
            "stored_bytes": step.json.get("stored_bytes"),
        }));
    }

    /// A step that reads metadata only (`ls`, `diff`, `forget --prune`): its time and peak
    /// RSS, no rate against the plain read.
    fn record_meta(&mut self, name: &str, step: &Step) {
        (self.say)(&format!(
            "{name}: {:.3} s, peak RSS {} MiB",
            step.seconds,
            step.rss_kib / 1024
        ));
        self.rows.push(json!({
            "step": name,
            "seconds": step.seconds,
            "peak_rss_kib": step.rss_kib,
        }));
    }
}

/// Runs the benchmark; returns the JSON report.
fn measure(args: &BenchArgs, say: &dyn Fn(&str)) -> Result<Value> {
    let work = tempfile::Builder::new()
        .prefix("snapkeep-bench-")
        .tempdir()?;
    let data = dataset(args, work.path(), say)?;
    let mb = data.bytes as f64 / 1e6;
    let repo = work.path().join("repo");
    drop_caches(args.cold)?;
    let read_s = plain_read(&data.path)?;
    say(&format!(
        "plain read: {read_s:.3} s ({:.0} MB/s)",
        mb / read_s
    ));
    let mut steps = Steps {
        say,
        read_s,
        mb,
        rows: Vec::new(),
    };
    let (first, after, changed) = snapshot_steps(args, &repo, work.path(), &data, &mut steps)?;
    let (prune, index) = extras(args, &repo, work.path(), &data, say)?;
    let first_stored = first.u64("stored_bytes");
    let first_new = first.u64("new_bytes");
    let first_data = first.u64("data_bytes");
    let after_stored = after.u64("stored_bytes");
    let report = json!({
        "dataset": {"path": data.path.to_string_lossy(), "generated": data.generated, "bytes": data.bytes, "files": data.files},
        "cores": std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        "cold_cache": args.cold,
        "plain_read_seconds": read_s,
        "plain_read_mb_per_s": mb / read_s,
        "steps": steps.rows,
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

/// The snapshot, no-change snapshot, change + snapshot, restore and verify steps; returns the
/// first and the third snapshot's steps and the bytes the change wrote.
fn snapshot_steps(
    args: &BenchArgs,
    repo: &Path,
    work: &Path,
    data: &Dataset,
    steps: &mut Steps<'_>,
) -> Result<(Step, Step, u64)> {
    let src = data.path.to_string_lossy();
    let src = src.as_ref();
    run_step(repo, &["init", "--encryption", &args.encryption])?;
    drop_caches(args.cold)?;
    let first = run_step(repo, &["snapshot", src])?;
    steps.record("initial snapshot", &first);
    drop_caches(args.cold)?;
    let nochange = run_step(repo, &["snapshot", src])?;
    steps.record("no-change snapshot", &nochange);
    let changed = match (data.generated, args.files) {
        (false, _) => 0,
        (true, 0) => change(&data.path, args.size)?,
        (true, n) => change_files(&data.path, n)?,
    };
    drop_caches(args.cold)?;
    let after = run_step(repo, &["snapshot", src])?;
    steps.record("snapshot after change", &after);
    drop_caches(args.cold)?;
    let target = work.join("restored");
    let restore = run_step(repo, &["restore", "latest", &target.to_string_lossy()])?;
    steps.record("restore", &restore);
    drop_caches(args.cold)?;
    let verify = run_step(repo, &["verify", "--read-data"])?;
    steps.record("verify --read-data", &verify);
    // The listing goes to /dev/null: its size is the snapshot's, its memory should not be.
    let ls = run_step_to_null(repo, &["ls", "latest"])?;
    steps.record_meta("ls", &ls);
    let first_id = first.json["id"].as_str().unwrap_or("latest").to_owned();
    let diff = run_step_to_null(repo, &["diff", &first_id, "latest"])?;
    steps.record_meta("diff", &diff);
    let prune = run_step(
        repo,
        &["forget", "--keep-last", "1", "--prune", "--grace", "0"],
    )?;
    steps.record_meta("forget --prune", &prune);
    Ok((first, after, changed))
}

/// The optional measurements (`--prune-snapshots`, `--index-entries`): their reports, or null.
fn extras(
    args: &BenchArgs,
    repo: &Path,
    work: &Path,
    data: &Dataset,
    say: &dyn Fn(&str),
) -> Result<(Value, Value)> {
    let prune = if args.prune_snapshots > 0 && data.generated {
        extra::prune_bench(
            repo,
            &data.path,
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
        extra::index_open(work, args.index_entries, say)?
    } else {
        Value::Null
    };
    Ok((prune, index))
}

/// DIR, or a dataset of `--size` generated in `work` (and aged past the racy-mtime window).
fn dataset(args: &BenchArgs, work: &Path, say: &dyn Fn(&str)) -> Result<Dataset> {
    let (path, generated) = match &args.dir {
        Some(d) => (d.clone(), false),
        None if args.files > 0 => {
            let d = work.join("data");
            say(&format!(
                "generating {} small files in {}",
                args.files,
                d.display()
            ));
            generate_files(&d, args.files)?;
            (d, true)
        }
        None => {
            let d = work.join("data");
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
    let (bytes, files) = tree_bytes(&path);
    Ok(Dataset {
        path,
        generated,
        bytes,
        files,
    })
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

/// With `cold`, drops the page cache (root only).
fn drop_caches(cold: bool) -> Result<()> {
    if cold {
        rustix::fs::sync();
        fs::write("/proc/sys/vm/drop_caches", b"3")
            .context("--cold needs root to write /proc/sys/vm/drop_caches")?;
    }
    Ok(())
}

/// One step: its time (process start included), the child's peak RSS and its JSON output.
struct Step {
    seconds: f64,
    rss_kib: u64,
    json: Value,
}

impl Step {
    /// A number of the step's JSON output (0 when absent).
    fn u64(&self, key: &str) -> u64 {
        self.json.get(key).and_then(Value::as_u64).unwrap_or(0)
    }
}

/// The password of the throwaway repository a bench measures.
const BENCH_PASSWORD: &str = "snapkeep-bench";

/// Runs `snapkeep --repo REPO --json --quiet ARGS` as a child process.
fn run_step(repo: &Path, args: &[&str]) -> Result<Step> {
    run_child(repo, args, true)
}

/// [`run_step`] with the child's output thrown away (a listing as large as the snapshot).
fn run_step_to_null(repo: &Path, args: &[&str]) -> Result<Step> {
    run_child(repo, args, false)
}

fn run_child(repo: &Path, args: &[&str], keep_stdout: bool) -> Result<Step> {
    let exe = std::env::current_exe().context("cannot find the snapkeep executable")?;
    let t = Instant::now();
    let out = Command::new(exe)
        .stdout(if keep_stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .arg("--repo")
        .arg(repo)
        .arg("--json")
        .arg("--quiet")
        .args(args)
        .env("SNAPKEEP_REPORT_RSS", "1")
        // The measured repository is a throwaway: its own password, whatever the caller's.
        .env("SNAPKEEP_PASSWORD", BENCH_PASSWORD)
        .env_remove("SNAPKEEP_PASSWORD_FILE")
        .env_remove("SNAPKEEP_PASSWORD_COMMAND")
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
