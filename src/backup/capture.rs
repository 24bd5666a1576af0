//! Capturing one directory's entries into its tree: the layout's capture order, reuse of an
//! unchanged file's entry from the parent, and reading a changed file with its re-reads,
//! format stages and recaptures.
//!
//! Invariant: a file's entry holds exactly the bytes that were read and checked; a file that
//! changed under the read is re-read (bounded) and flagged when it never settled.
//! Must not: store anything but through the run's `Ctx`.

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use rayon::prelude::*;

use super::ctx::Ctx;
use super::parent;
use super::read::{FileContent, open_source, read_content};
use super::walk::{Listed, Listing, Meta, Notes, SubDir, WalkRules, list, not_listed};
use super::{FileChange, FileReport};
use crate::error::{Error, Result};
use crate::format::manifest::{FLAG_CHANGED_DURING_READ, FLAG_STAGE_FAILED, Node, NodeKind, Tree};
use crate::format::pack::BlobKind;
use crate::id::{AsBlob, TreeId};

/// Reuses the parent's entry for an unchanged file, or reads it.
pub(super) fn capture_one(
    ctx: &Ctx<'_>,
    dir: &Path,
    rel: &str,
    name: &[u8],
    meta: &Meta,
    parent: Option<&Tree>,
) -> Result<Option<Node>> {
    let old = parent::find(parent, name);
    let rel_path = join_rel(rel, name);
    let stage_ok = ctx.parent_checked || !ctx.stages.applies_to(&rel_path);
    if let (Some(old), Some(t), true) = (old, ctx.parent_time_ns, stage_ok)
        && parent::reusable(old, meta, t, &ctx.index)
    {
        ctx.reuse(old);
        ctx.report_file(FileChange::Unchanged, || dir.join(OsStr::from_bytes(name)));
        return Ok(Some(old.clone()));
    }
    let node = process_file(ctx, dir, &rel_path, name, old)?;
    if let (Some(n), true) = (&node, ctx.report != FileReport::None) {
        let change = match old {
            None => FileChange::New,
            Some(o) if o == n => FileChange::Unchanged,
            Some(_) => FileChange::Modified,
        };
        ctx.report_file(change, || dir.join(OsStr::from_bytes(name)));
    }
    Ok(node)
}

pub(super) fn join_rel(rel: &str, name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    if rel.is_empty() {
        name.into_owned()
    } else {
        format!("{rel}/{name}")
    }
}

/// Where a directory of a source is: its path, its path inside the source (exact, for the
/// excludes; as text, for layouts and stages) and its depth below the source.
pub(super) struct DirAt {
    pub path: PathBuf,
    pub rel_path: PathBuf,
    pub rel: String,
    pub depth: usize,
}

impl DirAt {
    /// The subdirectory `name` of this one.
    fn child(&self, name: &[u8]) -> DirAt {
        let name_os = OsStr::from_bytes(name);
        DirAt {
            path: self.path.join(name_os),
            rel_path: self.rel_path.join(name_os),
            rel: join_rel(&self.rel, name),
            depth: self.depth + 1,
        }
    }
}

/// Captures the directory at `at`, whose entries are `dir`, into its tree; each subdirectory
/// is listed when its turn comes, so only the listings of the directories in flight are held.
pub(super) fn process_dir(
    ctx: &Ctx<'_>,
    rules: &WalkRules<'_>,
    at: &DirAt,
    dir: &Listing,
    parent: Option<&Tree>,
) -> Result<TreeId> {
    let rel = at.rel.as_str();
    let do_file = |(name, meta): &&(Vec<u8>, Meta)| -> Result<Option<Node>> {
        if rel.is_empty()
            && let Some(early) = ctx
                .precaptured
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(name)
        {
            return Ok(early);
        }
        capture_one(ctx, &at.path, rel, name, meta, parent)
    };
    let do_dir = |d: &SubDir| capture_subdir(ctx, rules, at, d, parent);
    // The layout's capture order: phase 0 files, then phase 1 files together with every
    // subdirectory, then phase 2 files (Alopex: lsm.wal, then sst/ and the rest, then
    // checkpoint.meta last). Within a phase, entries are captured in parallel.
    let mut nodes: Vec<Node> =
        Vec::with_capacity(dir.files.len() + dir.dirs.len() + dir.links.len());
    for phase in 0..=2u8 {
        let files: Vec<&(Vec<u8>, Meta)> = dir
            .files
            .iter()
            .filter(|(n, _)| ctx.layout.phase(&join_rel(rel, n)) == phase)
            .collect();
        if phase == 1 {
            let (f, d) = rayon::join(
                || files.par_iter().map(do_file).collect::<Result<Vec<_>>>(),
                || dir.dirs.par_iter().map(do_dir).collect::<Result<Vec<_>>>(),
            );
            nodes.extend(f?.into_iter().flatten());
            nodes.extend(d?.into_iter().flatten());
        } else {
            nodes.extend(
                files
                    .par_iter()
                    .map(do_file)
                    .collect::<Result<Vec<_>>>()?
                    .into_iter()
                    .flatten(),
            );
        }
    }
    for (name, meta, target) in &dir.links {
        ctx.counters.symlinks.fetch_add(1, Ordering::Relaxed);
        nodes.push(meta.node(
            name.clone(),
            NodeKind::Symlink {
                target: target.clone(),
            },
        ));
    }
    ctx.counters.dirs.fetch_add(1, Ordering::Relaxed);
    let mut tree = Tree { nodes };
    let bytes = tree.to_bytes();
    let id = ctx.repo.codec().tree_id(&bytes);
    ctx.store(id.blob(), BlobKind::Tree, &bytes)?;
    Ok(id)
}

/// Lists the subdirectory `d` of the directory at `at` and captures it: its entry, or none
/// when it could not be listed (left out, counted and told).
fn capture_subdir(
    ctx: &Ctx<'_>,
    rules: &WalkRules<'_>,
    at: &DirAt,
    d: &SubDir,
    parent: Option<&Tree>,
) -> Result<Option<Node>> {
    let sub_at = at.child(&d.name);
    let listing = if d.other_device {
        Listing::default()
    } else {
        let mut notes = Notes::default();
        let listed = list(
            &sub_at.path,
            &sub_at.rel_path,
            sub_at.depth,
            rules,
            &mut notes,
        )?;
        let Listed::Entries(l) = listed else {
            not_listed(&mut notes, &sub_at.path, &listed);
            ctx.add_notes(notes);
            ctx.counters.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        };
        ctx.add_notes(notes);
        ctx.counters.skipped.fetch_add(l.skipped, Ordering::Relaxed);
        l
    };
    let sub = match parent::find(parent, &d.name).map(|n| &n.kind) {
        Some(NodeKind::Dir { tree }) => ctx.repo.load_tree(tree).ok(),
        _ => None,
    };
    let tree = process_dir(ctx, rules, &sub_at, &listing, sub.as_ref())?;
    Ok(Some(dir_node(&d.name, &d.meta, tree)))
}

/// The entry of a directory named `name` with metadata `meta` whose tree is `tree`.
pub(super) fn dir_node(name: &[u8], meta: &Meta, tree: TreeId) -> Node {
    let mut n = meta.node(name.to_vec(), NodeKind::Dir { tree });
    n.size = 0;
    n
}

/// Where the captured bytes of a staged file go while it is read.
struct Tee {
    file: File,
    path: PathBuf,
}

impl Tee {
    fn create(ctx: &Ctx<'_>, size: u64) -> Result<Option<Tee>> {
        let Some(dir) = &ctx.stage_dir else {
            return Ok(None);
        };
        let n = ctx.counters.stage_files.fetch_add(1, Ordering::Relaxed);
        let path = dir.path().join(format!("captured-{n}"));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io("create stage copy", &path, e))?;
        file.set_len(size)
            .map_err(|e| Error::io("size stage copy", &path, e))?;
        Ok(Some(Tee { file, path }))
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What the format stages say of a file's captured copy: nothing when it was not staged, or
/// when the parent's entry has the same content and passed its stages.
fn stage_problems(
    ctx: &Ctx<'_>,
    rel: &str,
    tee: Option<&Tee>,
    old: Option<&Node>,
    content: &FileContent,
) -> Vec<String> {
    match tee {
        Some(t) if !stage_result_cached(ctx, old, content) => {
            ctx.counters
                .stage_bytes
                .fetch_add(content.data_bytes, Ordering::Relaxed);
            ctx.stages.check(rel, &t.path)
        }
        _ => Vec::new(),
    }
}

/// Whether the parent's entry has the same content and passed its stages (check cached).
fn stage_result_cached(ctx: &Ctx<'_>, old: Option<&Node>, content: &FileContent) -> bool {
    ctx.parent_checked
        && matches!(old, Some(Node { kind: NodeKind::File { chunks, holes, .. }, flags, .. })
        if flags & (FLAG_STAGE_FAILED | FLAG_CHANGED_DURING_READ) == 0
            && *chunks == content.chunks
            && *holes == content.holes)
}

fn process_file(
    ctx: &Ctx<'_>,
    dir: &Path,
    rel: &str,
    name: &[u8],
    old: Option<&Node>,
) -> Result<Option<Node>> {
    if ctx.progress.is_cancelled() {
        return Err(Error::Cancelled);
    }
    let path: PathBuf = dir.join(OsStr::from_bytes(name));
    let staged = ctx.stages.applies_to(rel);
    let mut attempt = 0;
    let mut recaptures = 0;
    loop {
        let Some(file) = open_or_skip(ctx, &path) else {
            return Ok(None);
        };
        let before = file.metadata().map_err(|e| Error::io("stat", &path, e))?;
        if !before.is_file() {
            ctx.skip(&path, "no longer a regular file");
            return Ok(None);
        }
        let tee = if staged {
            Tee::create(ctx, before.len())?
        } else {
            None
        };
        let content = match read_content(
            ctx,
            &file,
            &path,
            before.len(),
            tee.as_ref().map(|t| &t.file),
        ) {
            Ok(c) => c,
            Err(e) => return unreadable_or(ctx, &path, e),
        };
        let after = file.metadata().map_err(|e| Error::io("stat", &path, e))?;
        let stable = Meta::from(&before).same_content_stamp(&Meta::from(&after));
        let last = attempt >= ctx.max_rereads;
        if let (Some(content), true) = (&content, stable || last) {
            // Format stages on exactly the captured bytes, unless the parent already checked
            // this same content.
            let problems = stage_problems(ctx, rel, tee.as_ref(), old, content);
            drop(tee);
            if !problems.is_empty() && recaptures < ctx.max_recaptures {
                recaptures += 1;
                ctx.warn(format!(
                    "{} failed a format check as captured ({}); capturing it again ({recaptures}/{})",
                    path.display(),
                    problems.join("; "),
                    ctx.max_recaptures
                ));
                std::thread::sleep(std::time::Duration::from_millis(20 << recaptures.min(6)));
                continue;
            }
            let read = Read {
                before: &before,
                after: &after,
                stable,
                attempts: attempt + 1,
                captures: recaptures + 1,
            };
            return file_node(ctx, &path, name, content, &problems, &read).map(Some);
        }
        if content.is_none() && last {
            ctx.skip(
                &path,
                &format!(
                    "it kept shrinking while it was read ({} attempts)",
                    attempt + 1
                ),
            );
            return Ok(None);
        }
        attempt += 1;
    }
}

/// Opens a source file; one that vanished since it was listed is a warning, one that cannot
/// be opened is unreadable, and both are left out (`None`).
fn open_or_skip(ctx: &Ctx<'_>, path: &Path) -> Option<std::fs::File> {
    match open_source(path) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            ctx.skip(path, super::walk::VANISHED);
            None
        }
        Err(e) => {
            ctx.unreadable(path, "cannot open it", &e);
            None
        }
    }
}

/// A read that failed: when the source itself failed to read (a bad sector, EIO), the file is
/// left out and named, and the snapshot goes on (exit 5), as for a file that cannot be
/// opened; any other failure (storing, cancelling) stops the snapshot.
fn unreadable_or(ctx: &Ctx<'_>, path: &Path, e: Error) -> Result<Option<Node>> {
    match e {
        Error::Io {
            op: super::read::READ_OP,
            path: p,
            source,
        } if p == path => {
            ctx.unreadable(path, "cannot read it", &source);
            Ok(None)
        }
        e => Err(e),
    }
}

/// How a file's read went: its metadata before and after, whether they agreed, and how many
/// reads and captures it took.
struct Read<'a> {
    before: &'a std::fs::Metadata,
    after: &'a std::fs::Metadata,
    stable: bool,
    attempts: u32,
    captures: u32,
}

/// The entry of a file read as `content`, flagged for what its read and its stages showed.
fn file_node(
    ctx: &Ctx<'_>,
    path: &Path,
    name: &[u8],
    content: &FileContent,
    problems: &[String],
    read: &Read<'_>,
) -> Result<Node> {
    let mut meta = Meta::from(read.after);
    meta.size = read.before.len();
    let mut node = meta.node(
        name.to_vec(),
        NodeKind::File {
            crc32: content.crc,
            chunks: content.chunks.clone(),
            holes: content.holes.clone(),
        },
    );
    if !problems.is_empty() {
        if !ctx.allow_inconsistent {
            return Err(Error::Inconsistent {
                path: path.display().to_string(),
                problems: problems.join("; "),
            });
        }
        node.flags |= FLAG_STAGE_FAILED;
        ctx.counters.inconsistent.fetch_add(1, Ordering::Relaxed);
        ctx.warn(format!(
            "{} failed its format check after {} captures ({}); kept and flagged because inconsistent snapshots are allowed",
            path.display(),
            read.captures,
            problems.join("; ")
        ));
    }
    if !read.stable {
        node.flags |= FLAG_CHANGED_DURING_READ;
        ctx.counters.changed.fetch_add(1, Ordering::Relaxed);
        ctx.warn(format!(
            "{} changed while it was read ({} attempts); recorded as changed-during-read",
            path.display(),
            read.attempts
        ));
    }
    let c = &ctx.counters;
    c.files.fetch_add(1, Ordering::Relaxed);
    c.bytes.fetch_add(read.before.len(), Ordering::Relaxed);
    c.data_bytes
        .fetch_add(content.data_bytes, Ordering::Relaxed);
    c.chunks
        .fetch_add(content.chunks.len() as u64, Ordering::Relaxed);
    ctx.progress.advance(0, 1);
    Ok(node)
}
