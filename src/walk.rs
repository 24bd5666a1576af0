//! The one walker over snapshot trees.
//!
//! Owns: visiting the directories of a snapshot depth first, in tree order, with each entry's
//! path; the nesting bound ([`MAX_DEPTH`]) and the visit-each-tree-once rule in one place; and
//! [`Reachable`], every tree and chunk that a set of roots reaches (what prune keeps, what a
//! snapshot rescues, what `stats` counts).
//!
//! Invariants: memory is bounded by the depth of the tree, not its size (a stack of frames, one
//! per open directory; no recursion, so a deep tree cannot overflow a thread's stack); a walk
//! that visits each tree once ([`Walker::once`]) also cannot loop on a tree that names itself,
//! and any walk stops at [`MAX_DEPTH`] levels.
//!
//! Must not: decide what a missing tree means. That is the visitor's: prune stops, verify
//! records a finding and goes on.

use std::collections::HashSet;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::format::index_file::BlobLocation;
use crate::format::manifest::{Node, NodeKind, Tree};
use crate::id::{AsBlob, BlobId, ChunkId, TreeId};
use crate::index::{BlobSet, Index};

/// The deepest nesting of directories a snapshot may hold (a snapshot refuses deeper sources,
/// and every walk stops there).
pub const MAX_DEPTH: usize = 4096;

/// What the walker says of a tree nested deeper than [`MAX_DEPTH`].
fn too_deep() -> String {
    format!("directories nested deeper than {MAX_DEPTH}")
}

/// Whether `e` is the walker's refusal of a tree nested deeper than [`MAX_DEPTH`] (as told to
/// [`Visitor::unreadable`]), not a tree that failed to load.
#[must_use]
pub fn is_too_deep(e: &Error) -> bool {
    matches!(e, Error::Corrupt { detail, .. } if *detail == too_deep())
}

/// Where a walk loads trees from.
pub trait TreeSource {
    /// The tree `id`, checked against its id.
    fn load_tree(&self, id: &TreeId) -> Result<Tree>;
}

impl TreeSource for crate::repository::Repository {
    fn load_tree(&self, id: &TreeId) -> Result<Tree> {
        crate::repository::Repository::load_tree(self, id)
    }
}

/// Trees read from packs of `backend` at the places `locate` gives: a view of the packs that is
/// not the repository's current index (a prune's listing, a snapshot's own view).
pub struct Located<'a, F> {
    pub backend: &'a dyn Backend,
    /// Opens the trees of a sealed repository.
    pub codec: &'a crate::codec::Codec,
    pub locate: F,
}

impl<F: Fn(&TreeId) -> Result<BlobLocation>> TreeSource for Located<'_, F> {
    fn load_tree(&self, id: &TreeId) -> Result<Tree> {
        let loc = (self.locate)(id)?;
        let bytes = crate::pack::read_blob(self.backend, self.codec, id, &loc)?;
        Tree::from_bytes(&bytes, id)
    }
}

/// What a visitor wants next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Go on into it (its entries, or the directory's tree).
    Enter,
    /// Pass it by.
    Skip,
}

/// The raw path of an entry inside a snapshot: `/` then the raw names, `/`-separated (the root
/// is empty). Names are bytes: a non-UTF-8 name survives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreePath(Vec<u8>);

impl TreePath {
    /// The path `base` (as `/a/b`, or empty for the root).
    #[must_use]
    pub fn new(base: &str) -> Self {
        TreePath(base.trim_end_matches('/').as_bytes().to_vec())
    }

    /// The raw bytes (`/a/b`).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The path relative to the root (`a/b`), as an OS path.
    #[must_use]
    pub fn relative(&self) -> &std::path::Path {
        use std::os::unix::ffi::OsStrExt;
        std::path::Path::new(std::ffi::OsStr::from_bytes(
            self.0.strip_prefix(b"/").unwrap_or(&self.0),
        ))
    }

    /// Text for messages (invalid UTF-8 replaced).
    #[must_use]
    pub fn lossy(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }

    fn push(&mut self, name: &[u8]) -> usize {
        let len = self.0.len();
        self.0.push(b'/');
        self.0.extend_from_slice(name);
        len
    }

    fn truncate(&mut self, len: usize) {
        self.0.truncate(len);
    }
}

/// What a walk calls. Every method has a default, so a visitor writes only what it needs.
pub trait Visitor {
    /// A directory's tree, loaded; [`Step::Skip`] leaves its entries unvisited (and
    /// [`Visitor::leave`] uncalled).
    fn tree(&mut self, _path: &TreePath, _id: &TreeId, _tree: &Tree) -> Result<Step> {
        Ok(Step::Enter)
    }

    /// A tree that could not be loaded, or that lies deeper than [`MAX_DEPTH`]. The default
    /// stops the walk with the error; a visitor that reports findings returns `Ok` and the walk
    /// goes on past it.
    fn unreadable(&mut self, _path: &TreePath, _id: &TreeId, error: Error) -> Result<()> {
        Err(error)
    }

    /// One entry of a visited tree, at its path. For a directory, [`Step::Skip`] does not go
    /// into it.
    fn node(&mut self, _path: &TreePath, _node: &Node) -> Result<Step> {
        Ok(Step::Enter)
    }

    /// After every entry of a directory whose tree was entered.
    fn leave(&mut self, _path: &TreePath, _id: &TreeId) -> Result<()> {
        Ok(())
    }
}

/// Walks trees from a [`TreeSource`].
pub struct Walker<'a> {
    source: &'a dyn TreeSource,
    /// With `Some`, each distinct tree is visited once across every walk of this walker.
    seen: Option<HashSet<TreeId>>,
}

/// One open directory: its tree, the next entry, and the path length to go back to.
struct Frame {
    id: TreeId,
    tree: Tree,
    next: usize,
    path_len: usize,
}

impl<'a> Walker<'a> {
    /// A walker that visits every occurrence of a tree (paths matter: restore, verify, ls).
    #[must_use]
    pub fn new(source: &'a dyn TreeSource) -> Self {
        Walker { source, seen: None }
    }

    /// A walker that visits each distinct tree once, over all its walks (reachability).
    #[must_use]
    pub fn once(source: &'a dyn TreeSource) -> Self {
        Walker {
            source,
            seen: Some(HashSet::new()),
        }
    }

    /// Walks the tree `root`, whose path is `base` (`""` for a snapshot's root).
    pub fn walk(&mut self, root: &TreeId, base: &str, v: &mut dyn Visitor) -> Result<()> {
        let mut path = TreePath::new(base);
        let mut stack: Vec<Frame> = Vec::new();
        let base_len = path.0.len();
        self.open(root, &mut path, base_len, &mut stack, v)?;
        while let Some(top) = stack.last_mut() {
            let Some(node) = top.tree.nodes.get(top.next) else {
                let done = stack.pop().expect("a frame is on the stack");
                v.leave(&path, &done.id)?;
                path.truncate(done.path_len);
                continue;
            };
            top.next += 1;
            let len = path.push(&node.name);
            let step = v.node(&path, node)?;
            match (&node.kind, step) {
                (NodeKind::Dir { tree }, Step::Enter) => {
                    let tree = *tree;
                    self.open(&tree, &mut path, len, &mut stack, v)?;
                }
                _ => path.truncate(len),
            }
        }
        Ok(())
    }

    /// Loads `id` at `path` and pushes its frame, or tells the visitor why not (then the path
    /// goes back to `path_len`).
    fn open(
        &mut self,
        id: &TreeId,
        path: &mut TreePath,
        path_len: usize,
        stack: &mut Vec<Frame>,
        v: &mut dyn Visitor,
    ) -> Result<()> {
        if let Some(seen) = &mut self.seen
            && !seen.insert(*id)
        {
            path.truncate(path_len);
            return Ok(());
        }
        let loaded = if stack.len() > MAX_DEPTH {
            Err(Error::corrupt(format!("tree {id}"), too_deep()))
        } else {
            self.source.load_tree(id)
        };
        match loaded {
            Ok(tree) => {
                if v.tree(path, id, &tree)? == Step::Enter {
                    stack.push(Frame {
                        id: *id,
                        tree,
                        next: 0,
                        path_len,
                    });
                    return Ok(());
                }
            }
            Err(e) => v.unreadable(path, id, e)?,
        }
        path.truncate(path_len);
        Ok(())
    }
}

/// One name of a [`compare`] walk: there only in the new tree, only in the old one, or in
/// both (then the visitor decides whether they differ).
#[derive(Clone, Copy, Debug)]
pub enum Pair<'a> {
    Added(&'a Node),
    Removed(&'a Node),
    Both { old: &'a Node, new: &'a Node },
}

/// What a [`compare`] walk calls, once a name, in tree order (a directory's entries right
/// after the directory).
pub trait PairVisitor {
    /// The name at `path`, on one side or both.
    fn pair(&mut self, path: &TreePath, pair: Pair<'_>) -> Result<()>;
}

/// One open pair of directories: either side may be absent (a directory only on one side
/// lists every entry below it as added or removed).
struct PairFrame {
    old: Tree,
    new: Tree,
    i: usize,
    j: usize,
    path_len: usize,
}

/// Walks the trees `old` and `new` side by side, telling `v` every name that is in either,
/// and going into a pair of directories only when their tree ids differ (equal ids hold equal
/// content, so an unchanged subtree is never loaded). Memory is bounded by the depth, like
/// [`Walker`]'s; the first tree that cannot be loaded stops the walk with its error.
pub fn compare(
    source: &dyn TreeSource,
    old: &TreeId,
    new: &TreeId,
    v: &mut dyn PairVisitor,
) -> Result<()> {
    if old == new {
        return Ok(());
    }
    let mut path = TreePath::default();
    let mut stack = vec![PairFrame {
        old: sorted(source.load_tree(old)?),
        new: sorted(source.load_tree(new)?),
        i: 0,
        j: 0,
        path_len: 0,
    }];
    while let Some(top) = stack.last_mut() {
        let (o, n) = (top.old.nodes.get(top.i), top.new.nodes.get(top.j));
        let pair = match (o, n) {
            (None, None) => {
                let done = stack.pop().expect("a frame is on the stack");
                path.truncate(done.path_len);
                continue;
            }
            (Some(o), Some(n)) if o.name == n.name => Pair::Both { old: o, new: n },
            (Some(o), Some(n)) if o.name < n.name => Pair::Removed(o),
            (Some(o), None) => Pair::Removed(o),
            (_, Some(n)) => Pair::Added(n),
        };
        let (name, below_old, below_new) = match pair {
            Pair::Added(n) => {
                top.j += 1;
                (&n.name, None, dir_tree(n))
            }
            Pair::Removed(o) => {
                top.i += 1;
                (&o.name, dir_tree(o), None)
            }
            Pair::Both { old: o, new: n } => {
                top.i += 1;
                top.j += 1;
                let (below_o, below_n) = (dir_tree(o), dir_tree(n));
                if below_o.is_some() && below_o == below_n {
                    (&n.name, None, None)
                } else {
                    (&n.name, below_o, below_n)
                }
            }
        };
        let len = path.push(name);
        v.pair(&path, pair)?;
        if below_old.is_none() && below_new.is_none() {
            path.truncate(len);
            continue;
        }
        if stack.len() > MAX_DEPTH {
            return Err(Error::corrupt(
                format!("tree at {}", path.lossy()),
                too_deep(),
            ));
        }
        let load = |id: Option<TreeId>| -> Result<Tree> {
            id.map_or_else(
                || Ok(Tree { nodes: Vec::new() }),
                |id| source.load_tree(&id).map(sorted),
            )
        };
        let frame = PairFrame {
            old: load(below_old)?,
            new: load(below_new)?,
            i: 0,
            j: 0,
            path_len: len,
        };
        stack.push(frame);
    }
    Ok(())
}

/// The tree of a directory node.
fn dir_tree(n: &Node) -> Option<TreeId> {
    match &n.kind {
        NodeKind::Dir { tree } => Some(*tree),
        _ => None,
    }
}

/// `t` with its entries in name order (as every snapshot writes them; a tree from elsewhere is
/// put in order, so the side-by-side walk stays right).
fn sorted(mut t: Tree) -> Tree {
    if !t.nodes.is_sorted_by(|a, b| a.name <= b.name) {
        t.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    }
    t
}

/// Walks every tree reachable from `roots` once (a tree shared by several is entered the first
/// time only), telling `v`; the first tree that cannot be loaded stops it with its error.
fn walk_once(
    source: &dyn TreeSource,
    roots: impl IntoIterator<Item = TreeId>,
    v: &mut dyn Visitor,
) -> Result<()> {
    let mut walker = Walker::once(source);
    for root in roots {
        walker.walk(&root, "", v)?;
    }
    Ok(())
}

/// Every tree and chunk that some roots reach.
#[derive(Clone, Debug, Default)]
pub struct Reachable {
    pub trees: HashSet<TreeId>,
    pub chunks: HashSet<ChunkId>,
}

impl Reachable {
    /// What `roots` reach, trees loaded from `source`; the first tree that cannot be loaded
    /// stops it with its error.
    pub fn of(source: &dyn TreeSource, roots: impl IntoIterator<Item = TreeId>) -> Result<Self> {
        let mut out = Reachable::default();
        walk_once(source, roots, &mut out)?;
        Ok(out)
    }

    /// Whether the blob `id` is a reachable tree or chunk.
    #[must_use]
    pub fn contains(&self, id: &impl AsBlob) -> bool {
        let b = id.blob();
        self.trees.contains(&TreeId::from_bytes(*b.as_bytes()))
            || self.chunks.contains(&ChunkId::from_bytes(*b.as_bytes()))
    }

    /// Whether the blob `id` is a reachable chunk of file content.
    #[must_use]
    pub fn is_chunk(&self, id: &impl AsBlob) -> bool {
        self.chunks
            .contains(&ChunkId::from_bytes(*id.blob().as_bytes()))
    }

    /// Every reachable blob (a blob that is both a tree and a chunk, once).
    pub fn blobs(&self) -> impl Iterator<Item = BlobId> + '_ {
        self.trees.iter().map(AsBlob::blob).chain(
            self.chunks
                .iter()
                .filter(|c| !self.trees.contains(&TreeId::from_bytes(*c.as_bytes())))
                .map(AsBlob::blob),
        )
    }

    /// How many distinct blobs are reachable.
    #[must_use]
    pub fn len(&self) -> usize {
        self.blobs().count()
    }

    /// Whether nothing is reachable.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.trees.is_empty() && self.chunks.is_empty()
    }
}

impl Visitor for Reachable {
    fn tree(&mut self, _: &TreePath, id: &TreeId, _: &Tree) -> Result<Step> {
        self.trees.insert(*id);
        Ok(Step::Enter)
    }

    fn node(&mut self, _: &TreePath, node: &Node) -> Result<Step> {
        if let NodeKind::File { chunks, .. } = &node.kind {
            self.chunks.extend(chunks.iter().map(|c| c.id));
        }
        Ok(Step::Enter)
    }
}

/// Every tree and chunk some roots reach, kept as bits over the entries of an index
/// ([`BlobSet`]): what walks over a whole repository keep instead of [`Reachable`]'s sets.
pub struct ReachableBits {
    pub trees: BlobSet,
    pub chunks: BlobSet,
}

impl ReachableBits {
    /// Nothing reached yet, over the entries of `index`.
    #[must_use]
    pub fn over(index: &Index) -> Self {
        ReachableBits {
            trees: BlobSet::over(index),
            chunks: BlobSet::over(index),
        }
    }

    /// What `roots` reach, trees loaded from `source`, bits over `index`; the first tree that
    /// cannot be loaded stops it with its error.
    pub fn of(
        source: &dyn TreeSource,
        index: &Index,
        roots: impl IntoIterator<Item = TreeId>,
    ) -> Result<Self> {
        let mut out = ReachableBits::over(index);
        walk_once(source, roots, &mut out)?;
        Ok(out)
    }

    /// Whether the id of entry `position` of index file `file` is reached (see
    /// [`BlobSet::contains_at`]).
    #[must_use]
    pub fn contains_at(&self, file: usize, position: usize) -> bool {
        self.trees.contains_at(file, position) || self.chunks.contains_at(file, position)
    }

    /// The reached blobs the index lacks.
    pub fn unindexed(&self) -> impl Iterator<Item = &BlobId> {
        self.trees.unindexed().chain(self.chunks.unindexed())
    }

    /// How many trees and chunks are reached (a blob both a tree and a chunk counts twice,
    /// which distinct hashes of tree and chunk bytes make a theoretical case).
    #[must_use]
    pub fn len(&self) -> usize {
        self.trees.len() + self.chunks.len()
    }

    /// Whether nothing is reached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Visitor for ReachableBits {
    fn tree(&mut self, _: &TreePath, id: &TreeId, _: &Tree) -> Result<Step> {
        self.trees.insert(id);
        Ok(Step::Enter)
    }

    fn node(&mut self, _: &TreePath, node: &Node) -> Result<Step> {
        if let NodeKind::File { chunks, .. } = &node.kind {
            for c in chunks {
                self.chunks.insert(&c.id);
            }
        }
        Ok(Step::Enter)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::format::manifest::ChunkRef;

    struct Trees(HashMap<TreeId, Tree>);

    impl TreeSource for Trees {
        fn load_tree(&self, id: &TreeId) -> Result<Tree> {
            self.0
                .get(id)
                .cloned()
                .ok_or_else(|| Error::NotFound(format!("tree {id}")))
        }
    }

    fn node(name: &str, kind: NodeKind) -> Node {
        Node {
            name: name.as_bytes().to_vec(),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            inode: 0,
            size: 0,
            flags: 0,
        }
    }

    fn file(name: &str, chunk: &[u8]) -> Node {
        node(
            name,
            NodeKind::File {
                crc32: 0,
                chunks: vec![ChunkRef {
                    id: ChunkId::of(chunk),
                    len: 1,
                }],
                holes: vec![],
            },
        )
    }

    /// root/{a, sub/{b}, again -> sub}
    fn sample() -> (Trees, TreeId, TreeId) {
        let sub = Tree {
            nodes: vec![file("b", b"b")],
        };
        let sub_id = TreeId::of(b"sub");
        let root = Tree {
            nodes: vec![
                file("a", b"a"),
                node("again", NodeKind::Dir { tree: sub_id }),
                node("sub", NodeKind::Dir { tree: sub_id }),
            ],
        };
        let root_id = TreeId::of(b"root");
        let trees = Trees(HashMap::from([(sub_id, sub), (root_id, root)]));
        (trees, root_id, sub_id)
    }

    #[derive(Default)]
    struct Paths(Vec<String>);

    impl Visitor for Paths {
        fn node(&mut self, path: &TreePath, _: &Node) -> Result<Step> {
            self.0.push(path.lossy());
            Ok(Step::Enter)
        }

        fn leave(&mut self, path: &TreePath, _: &TreeId) -> Result<()> {
            self.0.push(format!("leave {}", path.lossy()));
            Ok(())
        }
    }

    #[test]
    fn visits_in_tree_order_with_paths() {
        let (trees, root, _) = sample();
        let mut p = Paths::default();
        Walker::new(&trees).walk(&root, "", &mut p).expect("walk");
        assert_eq!(
            p.0,
            [
                "/a",
                "/again",
                "/again/b",
                "leave /again",
                "/sub",
                "/sub/b",
                "leave /sub",
                "leave "
            ]
        );
    }

    #[test]
    fn once_visits_a_shared_tree_once() {
        let (trees, root, _) = sample();
        let mut p = Paths::default();
        Walker::once(&trees).walk(&root, "", &mut p).expect("walk");
        assert_eq!(p.0.iter().filter(|s| s.ends_with("/b")).count(), 1);
        let r = Reachable::of(&trees, [root, root]).expect("reachable");
        assert_eq!(r.trees.len(), 2);
        assert_eq!(r.chunks.len(), 2);
        assert_eq!(r.len(), 4);
        assert!(r.contains(&ChunkId::of(b"a")));
    }

    struct Count(Vec<String>);

    impl Visitor for Count {
        fn unreadable(&mut self, path: &TreePath, _: &TreeId, _: Error) -> Result<()> {
            self.0.push(path.lossy());
            Ok(())
        }
    }

    #[test]
    fn a_missing_tree_stops_a_plain_visitor_and_is_told_to_others() {
        let (mut trees, root, sub) = sample();
        trees.0.remove(&sub);
        assert!(Reachable::of(&trees, [root]).is_err());
        let mut c = Count(Vec::new());
        Walker::new(&trees).walk(&root, "", &mut c).expect("walk");
        assert_eq!(c.0, ["/again", "/sub"]);
    }

    #[derive(Default)]
    struct Pairs(Vec<String>);

    impl PairVisitor for Pairs {
        fn pair(&mut self, path: &TreePath, pair: Pair<'_>) -> Result<()> {
            let sign = match pair {
                Pair::Added(_) => "+",
                Pair::Removed(_) => "-",
                Pair::Both { .. } => "=",
            };
            self.0.push(format!("{sign}{}", path.lossy()));
            Ok(())
        }
    }

    #[test]
    fn compare_merges_names_and_skips_equal_subtrees() {
        let (mut trees, root, sub) = sample();
        // new root: "a" gone, "again" the same subtree, "sub" now a file, "z" a new dir.
        let z = Tree {
            nodes: vec![file("y", b"y")],
        };
        let z_id = TreeId::of(b"z");
        let new_root = Tree {
            nodes: vec![
                node("again", NodeKind::Dir { tree: sub }),
                file("sub", b"now a file"),
                node("z", NodeKind::Dir { tree: z_id }),
            ],
        };
        let new_id = TreeId::of(b"new root");
        trees.0.insert(z_id, z);
        trees.0.insert(new_id, new_root);
        let mut p = Pairs::default();
        compare(&trees, &root, &new_id, &mut p).expect("compare");
        assert_eq!(p.0, ["-/a", "=/again", "=/sub", "-/sub/b", "+/z", "+/z/y"]);
        // Equal trees, and equal subtrees, are never loaded: with "sub"'s tree gone, a walk
        // that meets it only on both sides still works.
        let mut p = Pairs::default();
        compare(&trees, &new_id, &new_id, &mut p).expect("same");
        assert!(p.0.is_empty());
        let only_again = Tree {
            nodes: vec![node("again", NodeKind::Dir { tree: sub })],
        };
        let only_id = TreeId::of(b"only again");
        trees.0.insert(only_id, only_again);
        trees.0.remove(&sub);
        let mut p = Pairs::default();
        compare(&trees, &only_id, &new_id, &mut p).expect("no subtree load");
        assert_eq!(p.0, ["=/again", "+/sub", "+/z", "+/z/y"]);
        // A tree that is needed and missing stops the walk.
        assert!(compare(&trees, &root, &new_id, &mut Pairs::default()).is_err());
    }

    #[test]
    fn a_self_naming_tree_ends_at_the_depth_bound() {
        let id = TreeId::of(b"loop");
        let t = Tree {
            nodes: vec![node("d", NodeKind::Dir { tree: id })],
        };
        let trees = Trees(HashMap::from([(id, t)]));
        let err = Walker::new(&trees)
            .walk(&id, "", &mut Paths::default())
            .expect_err("bounded");
        assert!(is_too_deep(&err), "{err}");
        // Visiting each tree once ends at once.
        Walker::once(&trees)
            .walk(&id, "", &mut Paths::default())
            .expect("once");
    }
}
