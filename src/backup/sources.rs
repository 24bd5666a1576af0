//! The sources of one snapshot: resolving them, walking each, and capturing them into the
//! root tree.
//!
//! One source (a directory) is the root tree itself, exactly as a single-source snapshot
//! always was. Several sources (directories or files) make a root tree with one entry per
//! source, named by its final path component; each directory source has its own layout,
//! stages and excludes, as if it were snapshotted alone.
//!
//! Invariant: the root entries are sorted by name and no two share one.
//! Must not: write anything but through the run's `Ctx`.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::PoisonError;
use std::sync::atomic::{AtomicBool, Ordering};

use super::BackupOptions;
use super::capture::DirAt;
use super::capture::{capture_one, dir_node, join_rel, process_dir};
use super::ctx::Ctx;
use super::walk::{Listed, Listing, Meta, Notes, WalkRules, count, list};
use crate::error::{Error, Result};
use crate::exclude::Excludes;
use crate::format::manifest::{Node, NodeKind, Tree};
use crate::format::pack::BlobKind;
use crate::id::{AsBlob, TreeId};
use crate::stage::{Layout, StageSet};

/// A resolved source: its canonical path, its name in a multi-source root, and its kind.
pub(super) struct Source {
    pub(super) path: PathBuf,
    name: Vec<u8>,
    is_dir: bool,
}

/// Canonical paths of the sources, sorted by name; refuses a missing source, a single source
/// that is not a directory, a source that is neither a directory nor a file, and two sources
/// with the same final name.
pub(super) fn resolve_sources(sources: &[&Path]) -> Result<Vec<Source>> {
    if sources.is_empty() {
        return Err(Error::InvalidInput(
            "no source given; name a directory to snapshot".into(),
        ));
    }
    let mut out: Vec<Source> = Vec::with_capacity(sources.len());
    for s in sources {
        let src = resolve_one(s, sources.len() == 1)?;
        if out.iter().any(|o| o.path == src.path) {
            continue;
        }
        if let Some(o) = out.iter().find(|o| o.name == src.name) {
            return Err(Error::InvalidInput(format!(
                "sources {} and {} both end in '{}', and a snapshot of several sources names each by its last component; snapshot them separately",
                o.path.display(),
                src.path.display(),
                String::from_utf8_lossy(&src.name)
            )));
        }
        out.push(src);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn resolve_one(source: &Path, alone: bool) -> Result<Source> {
    let path = std::fs::canonicalize(source).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::InvalidInput(format!(
                "source {} does not exist; give an existing directory",
                source.display()
            ))
        } else {
            Error::io("resolve source", source, e)
        }
    })?;
    let meta = std::fs::metadata(&path).map_err(|e| Error::io("stat source", &path, e))?;
    if alone && !meta.is_dir() {
        return Err(Error::InvalidInput(format!(
            "source {} is not a directory; snapshot takes a directory (or several sources)",
            path.display()
        )));
    }
    if !meta.is_dir() && !meta.is_file() {
        return Err(Error::InvalidInput(format!(
            "source {} is neither a directory nor a regular file; give a directory or a file",
            path.display()
        )));
    }
    let name = match path.file_name() {
        Some(n) => n.as_bytes().to_vec(),
        None if alone => Vec::new(),
        None => {
            return Err(Error::InvalidInput(format!(
                "source {} has no name to stand for it among several sources; snapshot it alone",
                path.display()
            )));
        }
    };
    Ok(Source {
        path,
        name,
        is_dir: meta.is_dir(),
    })
}

/// One source, walked and ready to capture.
pub(super) enum Planned {
    Dir(Box<DirPlan>),
    File {
        name: Vec<u8>,
        dir: PathBuf,
        meta: Meta,
    },
}

/// A directory source: its layout, stages and excludes, and its own metadata.
pub(super) struct DirPlan {
    name: Vec<u8>,
    path: PathBuf,
    layout: Layout,
    stages: StageSet,
    excludes: Excludes,
    /// The patterns `excludes` was compiled from (kept in the record).
    rules: crate::format::manifest::ExcludeRules,
    /// The source directory's own metadata.
    meta: Meta,
    /// Its device, when the walk stays on it (one file system).
    device: Option<u64>,
}

/// Prepares every source: a directory with its own layout, stages and excludes (it is listed
/// as it is captured).
pub(super) fn plan_sources(sources: &[Source], opts: &BackupOptions) -> Result<Vec<Planned>> {
    let mut out = Vec::with_capacity(sources.len());
    // A file source is matched by its name, as an entry at the top of a directory source is.
    let file_excludes = Excludes::new(&opts.excludes, &opts.iexcludes)?;
    for s in sources {
        if !s.is_dir && file_excludes.matches(Path::new(std::ffi::OsStr::from_bytes(&s.name))) {
            continue;
        }
        if !s.is_dir {
            let meta = std::fs::symlink_metadata(&s.path)
                .map_err(|e| Error::io("stat source", &s.path, e))?;
            out.push(Planned::File {
                name: s.name.clone(),
                dir: s.path.parent().map(Path::to_path_buf).unwrap_or_default(),
                meta: Meta::from(&meta),
            });
            continue;
        }
        let layout = Layout::detect(&s.path);
        let stages = StageSet::resolve(&opts.stages, layout)?;
        let mut patterns: Vec<String> = layout
            .never_captured()
            .iter()
            .map(|p| (*p).to_owned())
            .collect();
        patterns.extend(opts.excludes.iter().map(|p| anchor(p, &s.path)));
        let ipatterns: Vec<String> = opts.iexcludes.iter().map(|p| anchor(p, &s.path)).collect();
        let excludes = Excludes::new(&patterns, &ipatterns)?;
        let rules_kept = crate::format::manifest::ExcludeRules {
            patterns,
            ipatterns,
        };
        let meta =
            std::fs::symlink_metadata(&s.path).map_err(|e| Error::io("stat source", &s.path, e))?;
        out.push(Planned::Dir(Box::new(DirPlan {
            name: s.name.clone(),
            path: s.path.clone(),
            layout,
            stages,
            excludes,
            rules: rules_kept,
            meta: Meta::from(&meta),
            device: opts.one_file_system.then(|| meta.dev()),
        })));
    }
    Ok(out)
}

/// The metadata of the snapshot's root directory, which restore gives the target: the
/// source's own when there is one directory source; none when the root is made of several.
pub(super) fn root_meta(planned: &[Planned]) -> Option<crate::format::manifest::DirMeta> {
    match planned {
        [Planned::Dir(d)] => Some(crate::format::manifest::DirMeta {
            mode: d.meta.mode,
            uid: d.meta.uid,
            gid: d.meta.gid,
            mtime_ns: d.meta.mtime_ns,
        }),
        _ => None,
    }
}

/// A pattern written as an absolute path inside `source` (`/var/lib/db/cache` for source
/// `/var/lib/db`, as a restic exclude file often has it) anchored at the source instead
/// (`/cache`); any other pattern as it is.
fn anchor(pattern: &str, source: &Path) -> String {
    let src = source.to_string_lossy();
    match pattern.strip_prefix(src.as_ref()) {
        Some(rest) if rest.starts_with('/') && src != "/" => rest.to_owned(),
        _ => pattern.to_owned(),
    }
}

/// The exclude patterns of the snapshot's one directory source, when it has any (an
/// in-place restore keeps what they match); none for several sources.
pub(super) fn exclude_rules(planned: &[Planned]) -> Option<crate::format::manifest::ExcludeRules> {
    match planned {
        [Planned::Dir(d)] if !d.rules.patterns.is_empty() || !d.rules.ipatterns.is_empty() => {
            Some(d.rules.clone())
        }
        _ => None,
    }
}

/// Captures every source; returns the root tree's id. The progress totals are `estimate`
/// (the parent's) when there is one; else a walk that only counts runs beside the capture and
/// gives them when it is done.
pub(super) fn capture_all(
    ctx: &mut Ctx<'_>,
    pool: &rayon::ThreadPool,
    planned: &[Planned],
    opts: &BackupOptions,
    parent_root: Option<&Tree>,
    estimate: Option<(u64, u64)>,
) -> Result<TreeId> {
    let progress = ctx.progress;
    // The phase starts once the first source's top is listed (a file source: at once), with
    // the estimate, or the count when it is already done; a count done later updates it.
    let state = std::sync::Mutex::new((false, estimate));
    let mut start = || {
        let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
        if !std::mem::replace(&mut st.0, true) {
            let (bytes, files) = st.1.unwrap_or((0, 0));
            progress.phase(crate::progress::Phase::Snapshot, bytes, files);
        }
    };
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        if estimate.is_none() {
            let (stop, state) = (&stop, &state);
            scope.spawn(move || {
                let (b, f) = count_sources(planned, stop);
                let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
                if !stop.load(Ordering::Relaxed) {
                    st.1 = Some((b, f));
                    if st.0 {
                        progress.totals(b, f);
                    }
                }
            });
        }
        let tree = capture_sources(ctx, pool, planned, opts, parent_root, &mut start);
        stop.store(true, Ordering::Relaxed);
        tree
    })
}

/// The files and bytes of every source, as [`count`] sees them.
fn count_sources(planned: &[Planned], stop: &AtomicBool) -> (u64, u64) {
    planned.iter().fold((0, 0), |(b, f), p| match p {
        Planned::Dir(d) => {
            let rules = WalkRules {
                excludes: &d.excludes,
                device: d.device,
            };
            let (lb, lf) = count(&d.path, &rules, stop);
            (b + lb, f + lf)
        }
        Planned::File { meta, .. } => (b + meta.size, f + 1),
    })
}

fn capture_sources(
    ctx: &mut Ctx<'_>,
    pool: &rayon::ThreadPool,
    planned: &[Planned],
    opts: &BackupOptions,
    parent_root: Option<&Tree>,
    start: &mut dyn FnMut(),
) -> Result<TreeId> {
    let one = planned.len() == 1;
    let mut nodes = Vec::with_capacity(planned.len());
    for p in planned {
        match p {
            Planned::Dir(d) => {
                ctx.set_source(d.layout, d.stages.clone())?;
                let rules = WalkRules {
                    excludes: &d.excludes,
                    device: d.device,
                };
                if one {
                    return capture_dir(ctx, pool, &d.path, &rules, parent_root, start);
                }
                let sub = sub_tree(ctx, parent_root, &d.name);
                let tree = capture_dir(ctx, pool, &d.path, &rules, sub.as_ref(), start)?;
                nodes.push(dir_node(&d.name, &d.meta, tree));
            }
            Planned::File { name, dir, meta } => {
                ctx.set_source(
                    Layout::Generic,
                    StageSet::resolve(&opts.stages, Layout::Generic)?,
                )?;
                start();
                let ctx: &Ctx<'_> = ctx;
                if let Some(n) =
                    pool.install(|| capture_one(ctx, dir, "", name, meta, parent_root))?
                {
                    nodes.push(n);
                }
            }
        }
    }
    store_root(ctx, nodes)
}

/// The parent's tree of the source named `name` in a multi-source root.
fn sub_tree(ctx: &Ctx<'_>, parent_root: Option<&Tree>, name: &[u8]) -> Option<Tree> {
    match super::parent::find(parent_root, name).map(|n| &n.kind) {
        Some(NodeKind::Dir { tree }) => ctx.repo.load_tree(tree).ok(),
        _ => None,
    }
}

/// Stores the root of a multi-source snapshot.
fn store_root(ctx: &Ctx<'_>, nodes: Vec<Node>) -> Result<TreeId> {
    ctx.counters.dirs.fetch_add(1, Ordering::Relaxed);
    let mut tree = Tree { nodes };
    let bytes = tree.to_bytes();
    let id = ctx.repo.codec().tree_id(&bytes);
    ctx.store(id.blob(), BlobKind::Tree, &bytes)?;
    Ok(id)
}

/// Captures one directory source: its layout's first phase, then the rest from a listing of
/// the top directory made after it (each subdirectory is listed as it is captured).
fn capture_dir(
    ctx: &Ctx<'_>,
    pool: &rayon::ThreadPool,
    source: &Path,
    rules: &WalkRules<'_>,
    parent: Option<&Tree>,
    start: &mut dyn FnMut(),
) -> Result<TreeId> {
    let at = DirAt {
        path: source.to_path_buf(),
        rel_path: PathBuf::new(),
        rel: String::new(),
        depth: 0,
    };
    let listing = capture_first_phase(ctx, pool, &at, rules, parent, start)?;
    pool.install(|| process_dir(ctx, rules, &at, &listing, parent))
}

/// The top directory of a source, listed, with what the listing noticed (a top directory
/// that cannot be listed fails the snapshot).
fn list_top(at: &DirAt, rules: &WalkRules<'_>) -> Result<(Listing, Notes)> {
    let mut notes = Notes::default();
    match list(&at.path, &at.rel_path, 0, rules, &mut notes)? {
        Listed::Entries(l) => Ok((l, notes)),
        Listed::Vanished(e) | Listed::Unlisted(e) => Err(Error::io("read directory", &at.path, e)),
    }
}

/// Hands what a top listing noticed (its notes and skipped entries) to the run.
fn keep_top(ctx: &Ctx<'_>, (listing, notes): (Listing, Notes)) -> Listing {
    ctx.add_notes(notes);
    ctx.counters
        .skipped
        .fetch_add(listing.skipped, Ordering::Relaxed);
    listing
}

/// Captures the layout's first phase (Alopex: lsm.wal) before the top directory is listed
/// again, so a table written after it (a checkpoint in between) is in the listing, and nothing
/// captured later (checkpoint.meta last) can point past what the snapshot holds. Returns the
/// listing to capture the rest from.
fn capture_first_phase(
    ctx: &Ctx<'_>,
    pool: &rayon::ThreadPool,
    at: &DirAt,
    rules: &WalkRules<'_>,
    parent_root: Option<&Tree>,
    start: &mut dyn FnMut(),
) -> Result<Listing> {
    let first = |n: &[u8]| ctx.layout.phase(&join_rel("", n)) == 0;
    let (root, notes) = list_top(at, rules)?;
    start();
    if !root.files.iter().any(|(n, _)| first(n)) {
        return Ok(keep_top(ctx, (root, notes)));
    }
    let early: Vec<(Vec<u8>, Option<Node>)> = pool.install(|| {
        root.files
            .iter()
            .filter(|(n, _)| first(n))
            .map(|(n, m)| {
                Ok((
                    n.clone(),
                    capture_one(ctx, &at.path, "", n, m, parent_root)?,
                ))
            })
            .collect::<Result<_>>()
    })?;
    ctx.precaptured
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .extend(early);
    // The second listing's notes replace the first's.
    Ok(keep_top(ctx, list_top(at, rules)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absolute_pattern_inside_the_source_is_anchored_at_it() {
        let src = Path::new("/var/lib/db");
        assert_eq!(anchor("/var/lib/db/cache", src), "/cache");
        assert_eq!(anchor("/var/lib/db/a/*.tmp", src), "/a/*.tmp");
        assert_eq!(anchor("/var/lib/dbx/cache", src), "/var/lib/dbx/cache");
        assert_eq!(anchor("/cache", src), "/cache");
        assert_eq!(anchor("*.tmp", src), "*.tmp");
        assert_eq!(anchor("/x", Path::new("/")), "/x");
    }

    #[test]
    fn sources_are_sorted_by_name_deduplicated_and_names_must_differ() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let t = tmp.path();
        for d in ["x/data", "y/data", "zeta", "alpha"] {
            std::fs::create_dir_all(t.join(d)).expect("mkdir");
        }
        std::fs::write(t.join("file.txt"), b"f").expect("write");
        let zeta = t.join("zeta");
        let alpha = t.join("alpha");
        let file = t.join("file.txt");
        let got = resolve_sources(&[&zeta, &file, &alpha, &zeta]).expect("resolves");
        let names: Vec<&[u8]> = got.iter().map(|s| s.name.as_slice()).collect();
        assert_eq!(
            names,
            [&b"alpha"[..], b"file.txt", b"zeta"],
            "sorted, the repeat dropped"
        );
        assert!(!got[1].is_dir);

        let e = resolve_sources(&[&t.join("x/data"), &t.join("y/data")])
            .err()
            .expect("same name refused");
        assert!(e.to_string().contains("'data'"), "{e}");
        let e = resolve_sources(&[&file])
            .err()
            .expect("a lone file refused");
        assert!(e.to_string().contains("not a directory"), "{e}");
        assert!(resolve_sources(&[]).is_err());
    }
}
