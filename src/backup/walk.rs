//! The directory walk: metadata only, never following symlinks.
//!
//! Lists one directory at a time ([`list`]): its entries sorted by raw name, each stat'ed,
//! and the subdirectories to list next, so the capture lists a directory when it gets to it
//! and memory follows the directories in flight, not the tree. Fifos, sockets and devices are
//! skipped with a counted warning; an entry that cannot be stat'ed, listed or read (a
//! directory, a symlink) is skipped the same way and also recorded as [`Unreadable`]. With
//! one file system, a directory on another device than the source is kept empty (its mount
//! point recorded, nothing below it). [`count`] gives a first snapshot's totals beside it.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

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

/// One directory's entries, listed and stat'ed, sorted by raw name; its subdirectories are
/// listed when they are captured, so a walk holds the listings of the directories in flight,
/// never the whole tree.
#[derive(Default)]
pub(crate) struct Listing {
    pub files: Vec<(Vec<u8>, Meta)>,
    pub links: Vec<(Vec<u8>, Meta, Vec<u8>)>,
    pub dirs: Vec<SubDir>,
    /// Entries left out (and told in the notes): vanished, unreadable, or of a kind not kept.
    pub skipped: u64,
}

/// A subdirectory of a [`Listing`].
pub(crate) struct SubDir {
    pub name: Vec<u8>,
    pub meta: Meta,
    /// On another device than the source with one file system: kept, empty.
    pub other_device: bool,
}

impl Listing {
    /// Counts an entry that is not snapshotted, and says why.
    fn skip(&mut self, notes: &mut Notes, path: &Path, why: &str) {
        notes.skipped(path, why);
        self.skipped += 1;
    }

    /// Counts an entry that could not be read, says why, and records it as unreadable.
    fn unreadable(&mut self, notes: &mut Notes, path: &Path, what: &str, err: &std::io::Error) {
        notes.unreadable(path, what, err);
        self.skipped += 1;
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

impl Notes {
    /// Says that `path` is not snapshotted, and why.
    pub fn skipped(&mut self, path: &Path, why: &str) {
        self.warnings
            .push(format!("skipped {}: {why}", path.display()));
    }

    /// Says that `path` could not be read (`what` failed with `err`), and records it as
    /// unreadable.
    pub fn unreadable(&mut self, path: &Path, what: &str, err: &std::io::Error) {
        self.skipped(path, &format!("{what} ({err})"));
        self.unreadable.push(Unreadable {
            path: path.to_path_buf(),
            error: format!("{what}: {err}"),
        });
    }
}

/// How to walk: the patterns to leave out, and the source's device when the walk stays on it.
pub(crate) struct WalkRules<'a> {
    pub excludes: &'a Excludes,
    pub device: Option<u64>,
}

/// What listing a directory gives.
pub(crate) enum Listed {
    Entries(Listing),
    /// The directory is gone (deleted after its parent was listed).
    Vanished(std::io::Error),
    /// It cannot be listed.
    Unlisted(std::io::Error),
}

/// Lists the directory `path` (at `rel` inside the source, `depth` levels below it): its
/// entries' metadata, symlink targets, and the subdirectories to walk next, excludes applied
/// to source-relative paths.
pub(crate) fn list(
    path: &Path,
    rel: &Path,
    depth: usize,
    rules: &WalkRules<'_>,
    notes: &mut Notes,
) -> Result<Listed> {
    if depth > MAX_DEPTH {
        return Err(Error::InvalidInput(format!(
            "{} is nested more than {MAX_DEPTH} directories deep; exclude it or snapshot a deeper root",
            path.display()
        )));
    }
    let rd = match std::fs::read_dir(path) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Listed::Vanished(e)),
        Err(e) => return Ok(Listed::Unlisted(e)),
    };
    let mut entries = Vec::new();
    for e in rd {
        let e = e.map_err(|e| Error::io("read directory", path, e))?;
        entries.push(e);
    }
    entries.sort_by_key(std::fs::DirEntry::file_name);
    let mut out = Listing::default();
    for e in entries {
        let name = e.file_name();
        if rules.excludes.matches(&rel.join(&name)) {
            continue;
        }
        entry(&mut out, rules, notes, &e.path(), name.as_bytes().to_vec());
    }
    Ok(Listed::Entries(out))
}

/// Adds one entry to `dir`.
fn entry(dir: &mut Listing, rules: &WalkRules<'_>, notes: &mut Notes, path: &Path, name: Vec<u8>) {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            // Deleted between the listing and now (an SST a compaction removed): not part of
            // the tree any more, and nothing that could not be read.
            dir.skip(notes, path, VANISHED);
            return;
        }
        Err(err) => {
            dir.unreadable(notes, path, "cannot stat it", &err);
            return;
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
            Err(err) => dir.unreadable(notes, path, "cannot read link", &err),
        }
    } else if ft.is_dir() {
        dir.dirs.push(SubDir {
            name,
            meta: Meta::from(&meta),
            other_device: rules.device.is_some_and(|d| d != meta.dev()),
        });
    } else {
        let what = if ft.is_fifo() {
            "a fifo"
        } else if ft.is_socket() {
            "a socket"
        } else {
            "a device"
        };
        dir.skip(notes, path, &format!("{what} is not snapshotted"));
    }
}

/// What a directory that could not be listed means for its parent: it is left out, counted
/// and told (quietly when it vanished).
pub(crate) fn not_listed(notes: &mut Notes, path: &Path, listed: &Listed) {
    match listed {
        Listed::Vanished(_) => notes.skipped(path, VANISHED),
        Listed::Unlisted(err) => notes.unreadable(path, "cannot list it", err),
        Listed::Entries(_) => {}
    }
}

/// The files and their bytes below `root` as a walk with `rules` sees them, counted with a
/// stack of open directories (memory bounded by the depth): the totals a first snapshot's
/// progress shows while the capture runs beside it.
pub(crate) fn count(root: &Path, rules: &WalkRules<'_>, stop: &AtomicBool) -> (u64, u64) {
    let (mut bytes, mut files) = (0u64, 0u64);
    let mut stack: Vec<(std::fs::ReadDir, PathBuf)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir(root) {
        stack.push((rd, PathBuf::new()));
    }
    while let Some((rd, rel)) = stack.last_mut() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let Some(e) = rd.next() else {
            stack.pop();
            continue;
        };
        let Ok(e) = e else { continue };
        let rel = rel.join(e.file_name());
        if rules.excludes.matches(&rel) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        if meta.is_file() {
            bytes += meta.len();
            files += 1;
        } else if meta.is_dir()
            && stack.len() <= MAX_DEPTH
            && rules.device.is_none_or(|d| d == meta.dev())
            && let Ok(sub) = std::fs::read_dir(e.path())
        {
            stack.push((sub, rel));
        }
    }
    (bytes, files)
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

    fn listing(path: &Path, rules: &WalkRules<'_>) -> Listing {
        match list(path, Path::new(""), 0, rules, &mut Notes::default()).expect("list") {
            Listed::Entries(l) => l,
            _ => panic!("not listed"),
        }
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

        // The same device: everything is walked.
        let same = WalkRules {
            excludes: &none,
            device: Some(meta.dev()),
        };
        let l = listing(root, &same);
        assert_eq!(l.dirs.len(), 1);
        assert!(!l.dirs[0].other_device);
        assert_eq!(count(root, &same, &AtomicBool::new(false)), (2, 2));

        // A device the subdirectories are not on (as if `mnt` were a mount point): the
        // directory is recorded, nothing below it.
        let other = WalkRules {
            excludes: &none,
            device: Some(meta.dev() + 1),
        };
        let l = listing(root, &other);
        assert_eq!(l.dirs[0].name, b"mnt");
        assert!(l.dirs[0].other_device);
        assert_eq!(l.files.len(), 1);
        assert_eq!(
            count(root, &other, &AtomicBool::new(false)),
            (1, 1),
            "only the top file"
        );
    }

    #[test]
    fn excludes_apply_to_listing_and_count_alike() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        std::fs::create_dir_all(root.join("keep")).expect("mkdir");
        std::fs::create_dir_all(root.join("cache")).expect("mkdir");
        std::fs::write(root.join("keep/a"), b"abc").expect("write");
        std::fs::write(root.join("cache/b"), b"defg").expect("write");
        std::fs::write(root.join("x.tmp"), b"h").expect("write");
        let ex = Excludes::new(&["/cache".to_owned(), "*.tmp".to_owned()], &[]).expect("patterns");
        let rules = WalkRules {
            excludes: &ex,
            device: None,
        };
        let l = listing(root, &rules);
        assert_eq!(l.dirs.len(), 1);
        assert!(l.files.is_empty());
        assert_eq!(count(root, &rules, &AtomicBool::new(false)), (3, 1));
        let gone = list(
            &root.join("nope"),
            Path::new("nope"),
            1,
            &rules,
            &mut Notes::default(),
        )
        .expect("list");
        assert!(matches!(gone, Listed::Vanished(_)));
        assert!(
            list(
                root,
                Path::new(""),
                MAX_DEPTH + 1,
                &rules,
                &mut Notes::default()
            )
            .is_err()
        );
    }
}
