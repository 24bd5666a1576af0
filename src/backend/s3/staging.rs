//! The S3 backend's staging directories (packs waiting for upload) in the system temp
//! directory: one per process, and the sweep of those that stopped processes left.

use std::path::Path;
use std::time::Duration;

/// Name prefix of a process's staging directory (packs waiting for upload) in the system
/// temp directory: `snapkeep-s3-staging-<pid>-<random>`.
pub(super) const STAGING_PREFIX: &str = "snapkeep-s3-staging-";

/// Removes the staging directories in `tmp` that killed processes left behind (a process
/// that exits removes its own): those whose pid runs on no live process of this host, with
/// nothing in them modified for `idle` (a guard for a temp directory shared across pid
/// namespaces). Returns how many were removed; failures are skipped.
pub fn sweep_staging(tmp: &Path, idle: Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return 0;
    };
    let now = std::time::SystemTime::now();
    let idle_since = |p: &Path| -> Option<Duration> {
        let mut newest = std::fs::symlink_metadata(p).ok()?.modified().ok()?;
        for e in std::fs::read_dir(p).ok()?.flatten() {
            newest = newest.max(e.metadata().ok()?.modified().ok()?);
        }
        now.duration_since(newest).ok()
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(STAGING_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let path = e.path();
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if !is_dir
            || pid == std::process::id()
            || crate::clock::process_alive(pid)
            || idle_since(&path).is_none_or(|d| d < idle)
        {
            continue;
        }
        if std::fs::remove_dir_all(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// A pid that ran on this host and is gone now.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        child.wait().expect("wait");
        pid
    }

    fn staging_dir(root: &Path, name: &str, idle: Duration) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir(&dir).expect("mkdir");
        let file = dir.join("pack-1-0.tmp");
        std::fs::write(&file, b"half a pack").expect("write");
        let then = std::time::SystemTime::now() - idle;
        for p in [&file, &dir] {
            std::fs::File::open(p)
                .and_then(|f| f.set_modified(then))
                .expect("set mtime");
        }
        dir
    }

    #[test]
    fn sweep_removes_only_staging_of_processes_gone_for_a_while() {
        let root = tempfile::tempdir().expect("tmp");
        let hour = Duration::from_secs(3600);
        let dead = dead_pid();
        let me = std::process::id();
        let gone = staging_dir(root.path(), &format!("{STAGING_PREFIX}{dead}-ab12"), hour);
        let young = staging_dir(
            root.path(),
            &format!("{STAGING_PREFIX}{dead}-cd34"),
            Duration::from_secs(5),
        );
        let mine = staging_dir(root.path(), &format!("{STAGING_PREFIX}{me}-ef56"), hour);
        let foreign = staging_dir(root.path(), "snapkeep-other-1", hour);
        assert_eq!(sweep_staging(root.path(), Duration::from_secs(600)), 1);
        assert!(!gone.exists());
        for kept in [&young, &mine, &foreign] {
            assert!(kept.exists(), "{} was removed", kept.display());
        }
        // A missing temp directory is no error.
        assert_eq!(
            sweep_staging(&root.path().join("none"), Duration::from_secs(600)),
            0
        );
    }
}
