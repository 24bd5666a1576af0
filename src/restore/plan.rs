//! The restore plan: everything a restore will create, found by walking the snapshot's trees
//! with the one walker ([`crate::walk::Walker`]) before anything is written.
//!
//! Owns: [`RestorePlan`] (directories in walk order, files, symlinks, the logical byte total)
//! and the name check: every entry name is one safe component, or the restore is refused.
//!
//! Invariants: a planned path is the target joined with the entry's raw path in the snapshot
//! (`TreePath::relative`), so non-UTF-8 names survive byte for byte; a directory is planned
//! before its entries (parents are created first, finished last); the first tree that cannot
//! be loaded, or lies too deep, stops the plan with its error.
//!
//! Must not: touch the filesystem. Writing is the restore's, in `super` and `in_place`.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::manifest::{Node, NodeKind};
use crate::id::TreeId;
use crate::repository::Repository;
use crate::walk::{MAX_DEPTH, Step, TreePath, Visitor, Walker, is_too_deep};

/// One file to write: where, how it is named in messages, and its node.
pub(super) struct FileJob {
    pub(super) path: PathBuf,
    pub(super) display: String,
    pub(super) node: Node,
}

/// Everything a restore will create, checked before anything is written.
pub struct RestorePlan {
    pub(super) dirs: Vec<(PathBuf, Node)>,
    pub(super) files: Vec<FileJob>,
    pub(super) links: Vec<(PathBuf, Node)>,
    pub(super) total_bytes: u64,
}

impl RestorePlan {
    /// Walks the snapshot's trees below `target` and checks every name.
    pub fn new(repo: &Repository, tree: &TreeId, target: &Path) -> Result<Self> {
        let mut planner = Planner {
            plan: RestorePlan {
                dirs: Vec::new(),
                files: Vec::new(),
                links: Vec::new(),
                total_bytes: 0,
            },
            target,
        };
        Walker::new(repo).walk(tree, "", &mut planner)?;
        Ok(planner.plan)
    }

    /// Number of files to write.
    #[must_use]
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Logical bytes to write.
    #[must_use]
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }
}

/// The visitor that fills a plan.
struct Planner<'a> {
    plan: RestorePlan,
    target: &'a Path,
}

/// What a restore says of a tree it cannot read at `path` (or one nested too deep).
pub(super) fn unreadable_tree(path: &TreePath, id: &TreeId, error: Error) -> Error {
    if is_too_deep(&error) {
        return Error::corrupt(
            format!("tree {}", id.short()),
            format!("directories nested deeper than {MAX_DEPTH}"),
        );
    }
    // Damage is named by the directory it takes away; other failures keep their own cause.
    match error {
        Error::Corrupt { .. } | Error::HashMismatch { .. } => Error::corrupt(
            if path.as_bytes().is_empty() {
                "the snapshot's top directory".to_owned()
            } else {
                format!("directory '{}'", path.relative().display())
            },
            format!(
                "its tree {} cannot be read: {}",
                id.short(),
                error.finding()
            ),
        ),
        other => other,
    }
}

/// Refuses an entry whose name is not one safe component (`..`, a `/`, empty).
pub(super) fn check_name(path: &TreePath, node: &Node) -> Result<()> {
    if Node::name_is_safe(&node.name) {
        return Ok(());
    }
    // The directory's own path: the entry's without `/<name>`.
    let raw = path.as_bytes();
    let dir = &raw[..raw.len().saturating_sub(node.name.len() + 1)];
    Err(Error::InvalidInput(format!(
        "snapshot entry '{}' in directory '/{}' is not a safe file name; restore refused",
        String::from_utf8_lossy(&node.name).escape_debug(),
        String::from_utf8_lossy(dir)
    )))
}

impl Visitor for Planner<'_> {
    fn unreadable(&mut self, path: &TreePath, id: &TreeId, error: Error) -> Result<()> {
        Err(unreadable_tree(path, id, error))
    }

    fn node(&mut self, path: &TreePath, node: &Node) -> Result<Step> {
        check_name(path, node)?;
        let dest = self.target.join(path.relative());
        match &node.kind {
            NodeKind::Dir { .. } => self.plan.dirs.push((dest, node.clone())),
            NodeKind::File { .. } => {
                self.plan.total_bytes += node.size;
                self.plan.files.push(FileJob {
                    path: dest,
                    display: path.lossy(),
                    node: node.clone(),
                });
            }
            NodeKind::Symlink { .. } => self.plan.links.push((dest, node.clone())),
        }
        Ok(Step::Enter)
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    use super::*;
    use crate::{BackupOptions, InitOptions, NoProgress};

    #[test]
    fn raw_names_survive_into_planned_paths() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let src = tmp.path().join("src");
        let name = OsStr::from_bytes(b"caf\xe9");
        std::fs::create_dir_all(src.join("sub")).expect("mkdir");
        std::fs::write(src.join("sub").join(name), b"x").expect("write");
        let repo = Repository::init_local(&tmp.path().join("repo"), &InitOptions::default())
            .expect("init");
        let snap =
            crate::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress).expect("snapshot");
        let target = tmp.path().join("out");
        let plan = RestorePlan::new(&repo, &snap.record.tree, &target).expect("plan");
        assert_eq!(plan.dirs.len(), 1);
        assert_eq!(plan.dirs[0].0, target.join("sub"));
        assert_eq!(plan.files.len(), 1);
        assert_eq!(plan.files[0].path, target.join("sub").join(name));
        assert_eq!(plan.files[0].display, "/sub/caf\u{fffd}");
        assert_eq!(plan.total_bytes(), 1);
    }
}
