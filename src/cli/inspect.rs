//! Reading a snapshot's trees for the verbs that show them (`ls`, `diff`): every entry below
//! a path with its path, an entry's type, and names as text.

use std::fmt::Write as _;

use anyhow::{Result, anyhow};

use snapkeep::format::manifest::{Node, NodeKind, Tree};
use snapkeep::{Repository, SnapshotId};

/// The type of an entry as `ls` and `diff` name it.
pub fn kind_name(n: &Node) -> &'static str {
    match n.kind {
        NodeKind::File { .. } => "file",
        NodeKind::Dir { .. } => "dir",
        NodeKind::Symlink { .. } => "symlink",
    }
}

/// Text for raw name bytes: valid UTF-8 as is, every other byte as `\xNN`, so two different
/// names never print the same. The exact bytes are in the `*_hex` fields when not UTF-8.
pub fn show_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        out.push_str(chunk.valid());
        for x in chunk.invalid() {
            let _ = write!(out, "\\x{x:02x}");
        }
    }
    out
}

/// Every entry below `path` inside a snapshot (`/` or empty for the root), depth first, each
/// with its path (`/a/b`).
pub fn entries(repo: &Repository, id: &SnapshotId, path: &str) -> Result<Vec<(String, Node)>> {
    let (tree, prefix) = tree_at(repo, id, path)?;
    let mut out = Vec::new();
    walk(repo, &tree, &prefix, &mut out)?;
    Ok(out)
}

/// Every entry below `tree`, depth first, with its path (`/a/b`).
fn walk(repo: &Repository, tree: &Tree, prefix: &str, out: &mut Vec<(String, Node)>) -> Result<()> {
    for n in &tree.nodes {
        let path = format!("{prefix}/{}", show_bytes(&n.name));
        out.push((path.clone(), n.clone()));
        if let NodeKind::Dir { tree } = &n.kind {
            let sub = repo.load_tree(tree)?;
            walk(repo, &sub, &path, out)?;
        }
    }
    Ok(())
}

/// The tree at `path` inside a snapshot (`/` or empty for the root).
fn tree_at(repo: &Repository, id: &SnapshotId, path: &str) -> Result<(Tree, String)> {
    let rec = repo.load_snapshot(id)?;
    let mut tree = repo.load_tree(&rec.tree)?;
    let mut shown = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        let node = tree
            .nodes
            .iter()
            .find(|n| n.name == part.as_bytes())
            .ok_or_else(|| snapkeep::Error::NotFound(format!("'{path}' in snapshot {id}")))?;
        let NodeKind::Dir { tree: sub } = &node.kind else {
            return Err(anyhow!(snapkeep::Error::InvalidInput(format!(
                "'{path}' in snapshot {id} is not a directory"
            ))));
        };
        tree = repo.load_tree(sub)?;
        shown.push('/');
        shown.push_str(part);
    }
    Ok((tree, shown))
}
