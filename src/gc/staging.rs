//! Left-over staged files: what stopped processes left in the repository's shared staging
//! directory (`tmp/` of a local repository: a snapshot killed while filling a pack leaves up
//! to a pack there). [`survey`] decides which files go, [`remove`] removes them, [`forecast`]
//! reports them for a dry run.
//!
//! A staged file's name carries its writer's pid and process token
//! (`<pid>-<token>-<thread>-<n>.tmp`, `pack-<pid>-<token>-<n>.tmp`). It is left over when all
//! of these hold: the token is not this process's; the pid holds no live job lock on any host
//! (every process that keeps a staged file open for long, a snapshot filling a pack, holds
//! one; a prune's own repack is this process); the pid runs no live process on this host,
//! unless it is this process's own pid (then the writer was an earlier process with the same
//! pid, as every container's first process is pid 1); and the file was not modified for the
//! stale-lock bound (a holder that pauses longer loses its lock too).
//!
//! Must not: touch a file whose name does not follow the pattern, anything outside the shared
//! staging directory, or the repository's objects; a failure to remove is a note, never an
//! error.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::PruneReport;
use crate::backend::Backend;
use crate::lock::FoundLock;

/// The staged files to remove.
#[derive(Debug)]
pub struct StagingPlan {
    pub dir: PathBuf,
    /// Each file with its size.
    pub files: Vec<(PathBuf, u64)>,
}

/// The left-over files of the backend's shared staging directory, `None` when it has none or
/// cannot be read. `live_jobs`: the live job locks.
pub fn survey<'a>(
    backend: &dyn Backend,
    stale_after: Duration,
    live_jobs: impl Iterator<Item = &'a FoundLock>,
) -> Option<StagingPlan> {
    let staging = backend.staging();
    let dir = staging.shared.then_some(staging.dir)?;
    let entries = std::fs::read_dir(&dir).ok()?;
    let (me, my_token) = (std::process::id(), crate::backend::process_token());
    let locked: HashSet<u32> = live_jobs
        .filter_map(|l| l.record.as_ref().map(|r| r.pid))
        .collect();
    let now = std::time::SystemTime::now();
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((pid, token)) = name.to_str().and_then(staged_file_owner) else {
            continue;
        };
        if token == my_token
            || locked.contains(&pid)
            || (pid != me && crate::clock::process_alive(pid))
        {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let idle = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        if meta.is_file() && idle >= stale_after {
            files.push((entry.path(), meta.len()));
        }
    }
    Some(StagingPlan { dir, files })
}

/// Removes the planned files; counts those removed and notes those that could not be.
pub fn remove(plan: &StagingPlan, report: &mut PruneReport) {
    let mut failed = 0u64;
    for (path, size) in &plan.files {
        if std::fs::remove_file(path).is_err() {
            failed += 1;
            continue;
        }
        report.staging_files_removed += 1;
        report.staging_bytes_removed += size;
    }
    note("removed", &plan.dir, report);
    if failed > 0 {
        report.notes.push(format!(
            "could not remove {failed} left-over staged file(s) in {}; check its permissions",
            plan.dir.display()
        ));
    }
}

/// Counts the planned files as a dry run's report gives them.
pub fn forecast(plan: &StagingPlan, report: &mut PruneReport) {
    report.staging_files_removed += plan.files.len() as u64;
    report.staging_bytes_removed += plan.files.iter().map(|(_, size)| size).sum::<u64>();
    note("would remove", &plan.dir, report);
}

fn note(verb: &str, dir: &Path, report: &mut PruneReport) {
    if report.staging_files_removed > 0 {
        report.notes.push(format!(
            "{verb} {} staged file(s) ({} bytes) that stopped processes left in {}",
            report.staging_files_removed,
            report.staging_bytes_removed,
            dir.display()
        ));
    }
}

/// The writer of a staged file, from its name: `<pid>-<token>-<thread>-<n>.tmp` or
/// `pack-<pid>-<token>-<n>.tmp` (token: 8 hex digits; the rest decimal).
fn staged_file_owner(name: &str) -> Option<(u32, &str)> {
    let stem = name.strip_suffix(".tmp")?;
    let stem = stem.strip_prefix("pack-").unwrap_or(stem);
    let mut parts = stem.split('-');
    let pid = parts.next()?.parse().ok()?;
    let token = parts.next()?;
    let rest: Vec<&str> = parts.collect();
    let decimal = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    (token.len() == 8
        && token.bytes().all(|b| b.is_ascii_hexdigit())
        && !rest.is_empty()
        && rest.iter().all(decimal))
    .then_some((pid, token))
}

#[cfg(test)]
mod tests {
    use super::staged_file_owner;

    #[test]
    fn staged_file_names_give_their_writer() {
        assert_eq!(
            staged_file_owner("pack-4242-0a1b2c3d-17.tmp"),
            Some((4242, "0a1b2c3d"))
        );
        assert_eq!(
            staged_file_owner("4242-0a1b2c3d-99812-3.tmp"),
            Some((4242, "0a1b2c3d"))
        );
        for other in [
            "notes.txt",
            "4242.tmp",
            "pack-4242-17.tmp",
            "pack-4242-0a1b2c3d.tmp",
            "pack-x-0a1b2c3d-1.tmp",
            "4242-0a1b2c3g-1-3.tmp",
            "4242-0a1b2c3d--3.tmp",
            "4242-0a1b2c3d-1a-3.tmp",
            "pack-4242-0a1b2c3d-17.tmp.part",
            "",
        ] {
            assert_eq!(staged_file_owner(other), None, "{other}");
        }
    }
}
