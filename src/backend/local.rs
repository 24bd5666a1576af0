//! The local-directory backend (the embedded default).
//!
//! Every object is a file under the root at its key's path. Writes go to a unique temp file in
//! `<root>/tmp`, are fsynced, then renamed (or hard-linked, for put-if-absent) into place, and
//! the parent directory is fsynced: an object is either absent or complete and durable.
//! Large staged objects (`put_file`, i.e. packs) are renamed into place with their writeback
//! started but not awaited; [`Backend::flush`] fsyncs the caller's objects and their
//! directories, in parallel, so many packs reach the disk in one wait instead of one each.
//! Files are created 0600 and directories 0700. Leftover temp files are garbage.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Backend, ObjectInfo, Staging, check_key};
use crate::error::{Error, Result};

/// Objects as files under a root directory.
#[derive(Debug)]
pub struct LocalBackend {
    root: PathBuf,
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

impl LocalBackend {
    /// A backend rooted at `root` (which need not exist yet; `put` creates directories).
    #[must_use]
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalBackend { root: root.into() }
    }

    /// The root directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    fn tmp_path(&self) -> PathBuf {
        let n = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
        self.root.join("tmp").join(format!(
            "{}-{}-{}-{n}.tmp",
            std::process::id(),
            super::process_token(),
            thread_id()
        ))
    }

    fn ensure_dir(dir: &Path) -> Result<()> {
        match fs::metadata(dir) {
            Ok(m) if m.is_dir() => Ok(()),
            _ => fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::io("create directory", dir, e)),
        }
    }

    fn write_tmp(&self, key: &str, data: &[u8]) -> Result<PathBuf> {
        let tmp = self.tmp_path();
        Self::ensure_dir(tmp.parent().unwrap_or(&self.root))?;
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::backend("create temp file for", key, e))?;
        f.write_all(data).and_then(|()| f.sync_all()).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::backend("write", key, e)
        })?;
        Ok(tmp)
    }

    fn place(&self, key: &str, tmp: &Path, no_replace: bool) -> Result<bool> {
        let dest = self.path(key)?;
        let parent = dest.parent().unwrap_or(&self.root).to_path_buf();
        Self::ensure_dir(&parent)?;
        let placed = if no_replace {
            let r = fs::hard_link(tmp, &dest);
            let _ = fs::remove_file(tmp);
            match r {
                Ok(()) => true,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
                Err(e) => return Err(Error::backend("store", key, e)),
            }
        } else {
            fs::rename(tmp, &dest).map_err(|e| {
                let _ = fs::remove_file(tmp);
                Error::backend("store", key, e)
            })?;
            true
        };
        sync_dir(&parent).map_err(|e| Error::backend("sync directory of", key, e))?;
        Ok(placed)
    }

    fn read_err(key: &str, e: std::io::Error) -> Error {
        Error::backend("read", key, e)
    }
}

fn thread_id() -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::thread::current().id().hash(&mut h);
    h.finish() & 0xffff_ffff
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        self.path(key)?;
        let tmp = self.write_tmp(key, data)?;
        self.place(key, &tmp, false).map(|_| ())
    }

    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool> {
        if self.exists(key)? {
            return Ok(false);
        }
        let tmp = self.write_tmp(key, data)?;
        self.place(key, &tmp, true)
    }

    fn put_file(&self, key: &str, path: &Path) -> Result<()> {
        let dest = self.path(key)?;
        if path.starts_with(self.root.join("tmp")) {
            // Start writeback now (fadvise DONTNEED begins it without waiting); flush() waits.
            if let Ok(f) = File::open(path) {
                let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed);
            }
            let parent = dest.parent().unwrap_or(&self.root).to_path_buf();
            Self::ensure_dir(&parent)?;
            fs::rename(path, &dest).map_err(|e| {
                let _ = fs::remove_file(path);
                Error::backend("store", key, e)
            })?;
            Ok(())
        } else {
            let data = fs::read(path).map_err(|e| Error::io("read staged file", path, e))?;
            self.put(key, &data)?;
            fs::remove_file(path).map_err(|e| Error::io("remove staged file", path, e))
        }
    }

    fn flush(&self, keys: &[String]) -> Result<()> {
        use rayon::prelude::*;
        let files: Vec<PathBuf> = keys.iter().map(|k| self.path(k)).collect::<Result<_>>()?;
        let mut dirs: Vec<PathBuf> = files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect();
        dirs.sort();
        dirs.dedup();
        // Files first, then the directories that name them.
        for group in [files, dirs] {
            group.par_iter().try_for_each(|p| {
                File::open(p)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| Error::io("sync", p, e))
            })?;
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        fs::read(self.path(key)?).map_err(|e| Self::read_err(key, e))
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let f = File::open(self.path(key)?).map_err(|e| Self::read_err(key, e))?;
        let len = usize::try_from(len).map_err(|_| {
            Error::InvalidInput(format!("range of {len} bytes in '{key}' is too large"))
        })?;
        // Never allocate more than the object holds (a damaged length field must not).
        let size = f.metadata().map_err(|e| Self::read_err(key, e))?.len();
        if offset.checked_add(len as u64).is_none_or(|end| end > size) {
            return Err(Error::backend(
                "read range of",
                key,
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("range {offset}+{len} is past the object's end ({size} bytes)"),
                ),
            ));
        }
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, offset)
            .map_err(|e| Error::backend("read range of", key, e))?;
        Ok(buf)
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let dir_part = prefix.rfind('/').map_or("", |i| &prefix[..i]);
        let start = if dir_part.is_empty() {
            self.root.clone()
        } else {
            self.root.join(dir_part)
        };
        if !start.exists() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for entry in walkdir::WalkDir::new(&start).follow_links(false) {
            // An object deleted while the listing runs is simply not listed.
            let entry = match entry {
                Ok(e) => e,
                Err(e)
                    if e.io_error()
                        .is_some_and(|io| io.kind() == ErrorKind::NotFound) =>
                {
                    continue;
                }
                Err(e) => {
                    let p = e.path().map_or_else(|| start.clone(), Path::to_path_buf);
                    return Err(Error::io("list", p, e.into()));
                }
            };
            if !entry.file_type().is_file() {
                continue;
            }
            let Ok(rel) = entry.path().strip_prefix(&self.root) else {
                continue;
            };
            let Some(key) = rel.to_str() else { continue };
            if key.starts_with("tmp/") || !key.starts_with(prefix) {
                continue;
            }
            let size = match entry.metadata() {
                Ok(m) => m.len(),
                Err(e)
                    if e.io_error()
                        .is_some_and(|io| io.kind() == ErrorKind::NotFound) =>
                {
                    continue;
                }
                Err(e) => return Err(Error::io("stat", entry.path(), e.into())),
            };
            out.push(ObjectInfo::new(key, size));
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match fs::remove_file(&path) {
            // Durable on return, like a put: a forgotten snapshot must not come back after a
            // power cut, nor a deleted index file name packs a prune removed later.
            Ok(()) => sync_dir(path.parent().unwrap_or(&self.root))
                .map_err(|e| Error::backend("sync directory of", key, e)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::backend("delete", key, e)),
        }
    }

    fn exists(&self, key: &str) -> Result<bool> {
        match fs::symlink_metadata(self.path(key)?) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::backend("stat", key, e)),
        }
    }

    fn staging(&self) -> Staging {
        Staging {
            dir: self.root.join("tmp"),
            shared: true,
        }
    }

    fn local_path(&self, key: &str) -> Option<PathBuf> {
        self.path(key).ok()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn meets_the_backend_contract_with_private_modes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = LocalBackend::new(dir.path().join("repo"));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(b.staging().dir)
            .expect("mkdir");
        super::super::contract::check(&b);
        let m = fs::metadata(dir.path().join("repo/data/bb/x2")).expect("stat");
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        let d = fs::metadata(dir.path().join("repo/data/bb")).expect("stat");
        assert_eq!(d.permissions().mode() & 0o777, 0o700);
    }
}
