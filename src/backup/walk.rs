//! The directory walk: metadata only, never following symlinks.
//!
//! Produces a [`ScannedDir`] tree with entries sorted by raw name. Fifos, sockets and devices
//! are skipped with a counted warning; an entry that cannot be stat'ed, listed or read (a
//! directory, a symlink) is skipped the same way and also recorded as [`Unreadable`]. With
//! one file system, a directory on another device than the source is kept empty (its mount
//! point recorded, nothing below it).

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::clock::stamp_ns;
use crate::error::{Error, Result};
use crate::format::manifest::{Node, NodeKind};

use super::Unreadable;
use crate::exclude::Excludes;

/// The metadata kept for each entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    pub size: u64,
}

impl Meta {
    /// Whether two stats of the same file show no change of content in between.
    #[must_use]
    pub fn same_content_stamp(&self, other: &Meta) -> bool {
        self.size == other.size
            && self.mtime_ns == other.mtime_ns
            && self.ctime_ns == other.ctime_ns
            && self.ino == other.ino
    }
}

pub use crate::walk::MAX_DEPTH;

/// One scanned directory.
pub(crate) struct ScannedDir {
    pub path: PathBuf,
    pub name: Vec<u8>,
    pub meta: Meta,
    pub dirs: Vec<ScannedDir>,
    pub files: Vec<(Vec<u8>, Meta)>,
    pub links: Vec<(Vec<u8>, Meta, Vec<u8>)>,
    pub skipped: u64,
}

impl ScannedDir {
    /// Total file bytes and file count below this directory.
    pub fn totals(&self) -> (u64, u64) {
        let mut bytes: u64 = self.files.iter().map(|f| f.1.size).sum();
        let mut files = self.files.len() as u64;
        for d in &self.dirs {
            let (b, f) = d.totals();
            bytes += b;
            files += f;
        }
        (bytes, files)
    }

    /// Entries skipped during the walk below this directory.
    pub fn skipped_total(&self) -> u64 {
        self.skipped + self.dirs.iter().map(ScannedDir::skipped_total).sum::<u64>()
    }
}

impl ScannedDir {
    fn new(path: PathBuf, name: Vec<u8>, meta: &std::fs::Metadata) -> Self {
        ScannedDir {
            path,
            name,
            meta: Meta::from(meta),
            dirs: Vec::new(),
            files: Vec::new(),
            links: Vec::new(),
            skipped: 0,
        }
    }

    /// Counts an entry that is not snapshotted, and says why.
    fn skip(&mut self, notes: &mut Notes, path: &Path, why: &str) {
        notes
            .warnings
            .push(format!("skipped {}: {why}", path.display()));
        self.skipped += 1;
    }

    /// Counts an entry that could not be read, says why, and records it as unreadable.
    fn unreadable(&mut self, notes: &mut Notes, path: &Path, what: &str, err: &std::io::Error) {
        self.skip(notes, path, &format!("{what} ({err})"));
        notes.unreadable.push(Unreadable {
            path: path.to_path_buf(),
            error: format!("{what}: {err}"),
        });
    }
}

/// Why an entry that was deleted while the snapshot ran is not in it.
pub(crate) const VANISHED: &str =
    "it vanished while the snapshot ran (deleted after its directory was listed)";

/// What a walk noticed: warnings, and the entries it could not read.
#[derive(Default)]
pub(crate) struct Notes {
    pub warnings: Vec<String>,
    pub unreadable: Vec<Unreadable>,
}

/// How to walk: the patterns to leave out, and whether to stay on the source's device.
pub(crate) struct WalkRules<'a> {
    pub excludes: &'a Excludes,
    pub one_file_system: bool,
}

/// Walks `root` (a directory), applying the excludes to root-relative paths.
pub(crate) fn scan(root: &Path, rules: &WalkRules<'_>, notes: &mut Notes) -> Result<ScannedDir> {
    let meta = std::fs::symlink_metadata(root).map_err(|e| Error::io("stat source", root, e))?;
    let device = rules.one_file_system.then(|| meta.dev());
    scan_on(root, &meta, rules.excludes, device, notes)
}

/// Walks `root`, not descending into directories whose device differs from `device` (when
/// given).
fn scan_on(
    root: &Path,
    meta: &std::fs::Metadata,
    excludes: &Excludes,
    device: Option<u64>,
    notes: &mut Notes,
) -> Result<ScannedDir> {
    let mut dir = ScannedDir::new(root.to_path_buf(), Vec::new(), meta);
    let rd = std::fs::read_dir(root).map_err(|e| Error::io("read directory", root, e))?;
    let mut walk = Walk {
        excludes,
        device,
        notes,
    };
    walk.fill(&mut dir, rd, Path::new(""), 0).map(|()| dir)
}

/// The fixed state of one walk.
struct Walk<'a, 'n> {
    excludes: &'a Excludes,
    device: Option<u64>,
    notes: &'n mut Notes,
}

impl Walk<'_, '_> {
    fn fill(
        &mut self,
        dir: &mut ScannedDir,
        rd: std::fs::ReadDir,
        rel: &Path,
        depth: usize,
    ) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::InvalidInput(format!(
                "{} is nested more than {MAX_DEPTH} directories deep; exclude it or snapshot a deeper root",
                dir.path.display()
            )));
        }
        let mut entries = Vec::new();
        for e in rd {
            let e = e.map_err(|e| Error::io("read directory", &dir.path, e))?;
            entries.push(e);
        }
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for e in entries {
            let name = e.file_name();
            let rel_path = rel.join(&name);
            if self.excludes.matches(&rel_path) {
                continue;
            }
            self.entry(dir, &e.path(), name.as_bytes().to_vec(), &rel_path, depth)?;
        }
        Ok(())
    }

    /// Adds one entry of `dir` (its subdirectories walked in turn).
    fn entry(
        &mut self,
        dir: &mut ScannedDir,
        path: &Path,
        name: Vec<u8>,
        rel_path: &Path,
        depth: usize,
    ) -> Result<()> {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                // Deleted between the listing and now (an SST a compaction removed): not
                // part of the tree any more, and nothing that could not be read.
                dir.skip(self.notes, path, VANISHED);
                return Ok(());
            }
            Err(err) => {
                dir.unreadable(self.notes, path, "cannot stat it", &err);
                return Ok(());
            }
        };
        let ft = meta.file_type();
        if ft.is_file() {
            dir.files.push((name, Meta::from(&meta)));
        } else if ft.is_symlink() {
            match std::fs::read_link(path) {
                Ok(t) => {
                    dir.links
                        .push((name, Meta::from(&meta), t.as_os_str().as_bytes().to_vec()));
                }
                Err(err) => dir.unreadable(self.notes, path, "cannot read link", &err),
            }
        } else if ft.is_dir() {
            let mut sub = ScannedDir::new(path.to_path_buf(), name, &meta);
            if self.device.is_some_and(|d| d != meta.dev()) {
                // Another file system: its mount point is kept, empty.
                dir.dirs.push(sub);
                return Ok(());
            }
            match std::fs::read_dir(path) {
                Ok(rd) => {
                    self.fill(&mut sub, rd, rel_path, depth + 1)?;
                    dir.dirs.push(sub);
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    dir.skip(self.notes, path, VANISHED);
                }
                Err(err) => dir.unreadable(self.notes, path, "cannot list it", &err),
            }
        } else {
            let what = if ft.is_fifo() {
                "a fifo"
            } else if ft.is_socket() {
                "a socket"
            } else {
                "a device"
            };
            dir.skip(self.notes, path, &format!("{what} is not snapshotted"));
        }
        Ok(())
    }
}

impl Meta {
    pub(crate) fn node(&self, name: Vec<u8>, kind: NodeKind) -> Node {
        Node {
            name,
            kind,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            mtime_ns: self.mtime_ns,
            ctime_ns: self.ctime_ns,
            inode: self.ino,
            size: self.size,
            flags: 0,
        }
    }
}

impl From<&std::fs::Metadata> for Meta {
    fn from(m: &std::fs::Metadata) -> Self {
        Meta {
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            mtime_ns: stamp_ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: stamp_ns(m.ctime(), m.ctime_nsec()),
            ino: m.ino(),
            size: m.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(d: &ScannedDir) -> Vec<String> {
        d.dirs
            .iter()
            .map(|s| String::from_utf8_lossy(&s.name).into_owned())
            .collect()
    }

    #[test]
    fn a_directory_on_another_device_is_kept_empty() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        std::fs::create_dir_all(root.join("mnt/inner")).expect("mkdir");
        std::fs::write(root.join("mnt/inner/f"), b"x").expect("write");
        std::fs::write(root.join("top"), b"y").expect("write");
        let meta = std::fs::symlink_metadata(root).expect("stat");
        let none = Excludes::new(&[], &[]).expect("no patterns");
        let mut notes = Notes::default();

        // The same device: everything is walked.
        let same = scan_on(root, &meta, &none, Some(meta.dev()), &mut notes).expect("scan");
        assert_eq!(names(&same), ["mnt"]);
        assert_eq!(same.totals(), (2, 2));

        // A device the subdirectories are not on (as if `mnt` were a mount point): the
        // directory is recorded, nothing below it.
        let other = scan_on(root, &meta, &none, Some(meta.dev() + 1), &mut notes).expect("scan");
        assert_eq!(names(&other), ["mnt"]);
        assert!(other.dirs[0].dirs.is_empty() && other.dirs[0].files.is_empty());
        assert_eq!(other.totals(), (1, 1), "only the top file");
        assert!(notes.warnings.is_empty() && notes.unreadable.is_empty());
    }
}
