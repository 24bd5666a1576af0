//! The directory walk: metadata only, never following symlinks.
//!
//! Produces a [`ScannedDir`] tree with entries sorted by raw name. Fifos, sockets and devices
//! are skipped with a counted warning; unreadable directories are skipped the same way.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::clock::stamp_ns;
use crate::error::{Error, Result};
use crate::format::manifest::{Node, NodeKind};

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
    fn skip(&mut self, warnings: &mut Vec<String>, path: &Path, why: &str) {
        warnings.push(format!("skipped {}: {why}", path.display()));
        self.skipped += 1;
    }
}

/// Walks `root` (a directory), applying `excludes` to names and root-relative paths.
pub(crate) fn scan(
    root: &Path,
    excludes: &globset::GlobSet,
    warnings: &mut Vec<String>,
) -> Result<ScannedDir> {
    let meta = std::fs::symlink_metadata(root).map_err(|e| Error::io("stat source", root, e))?;
    let mut dir = ScannedDir::new(root.to_path_buf(), Vec::new(), &meta);
    let rd = std::fs::read_dir(root).map_err(|e| Error::io("read directory", root, e))?;
    fill(&mut dir, rd, Path::new(""), excludes, warnings, 0)?;
    Ok(dir)
}

fn fill(
    dir: &mut ScannedDir,
    rd: std::fs::ReadDir,
    rel: &Path,
    excludes: &globset::GlobSet,
    warnings: &mut Vec<String>,
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
        if !excludes.is_empty()
            && (excludes.is_match(&rel_path) || excludes.is_match(Path::new(&name)))
        {
            continue;
        }
        let path = e.path();
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(err) => {
                dir.skip(warnings, &path, &format!("cannot stat it ({err})"));
                continue;
            }
        };
        let ft = meta.file_type();
        let bytes = name.as_bytes().to_vec();
        if ft.is_file() {
            dir.files.push((bytes, Meta::from(&meta)));
        } else if ft.is_symlink() {
            match std::fs::read_link(&path) {
                Ok(t) => {
                    dir.links
                        .push((bytes, Meta::from(&meta), t.as_os_str().as_bytes().to_vec()));
                }
                Err(err) => dir.skip(warnings, &path, &format!("cannot read link ({err})")),
            }
        } else if ft.is_dir() {
            match std::fs::read_dir(&path) {
                Ok(rd) => {
                    let mut sub = ScannedDir::new(path, bytes, &meta);
                    fill(&mut sub, rd, &rel_path, excludes, warnings, depth + 1)?;
                    dir.dirs.push(sub);
                }
                Err(err) => dir.skip(warnings, &path, &format!("cannot list it ({err})")),
            }
        } else {
            let what = if ft.is_fifo() {
                "a fifo"
            } else if ft.is_socket() {
                "a socket"
            } else {
                "a device"
            };
            dir.skip(warnings, &path, &format!("{what} is not snapshotted"));
        }
    }
    Ok(())
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
