//! Reading a snapshot's trees for the verbs that show them (`ls`, `diff`, `cat`): every entry
//! below a path with its path, the tree of a directory, an entry's type, and names as text.

use std::fmt::Write as _;

use anyhow::{Result, anyhow};
use serde_json::{Value, json};

use snapkeep::format::manifest::{Node, NodeKind};
use snapkeep::{Repository, SnapshotId, TreeId};

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

/// Sets `key` of the JSON object `v` to the name bytes `b` as text ([`show_bytes`]), and
/// `key_hex` to their hex when they are not UTF-8.
pub fn name_fields(v: &mut Value, key: &str, b: &[u8]) {
    v[key] = json!(show_bytes(b));
    if std::str::from_utf8(b).is_err() {
        v[format!("{key}_hex")] = json!(hex::encode(b));
    }
}

/// The id of the tree at `path` inside a snapshot (`/` or empty for the root), and the path
/// as shown.
pub fn tree_at(repo: &Repository, id: &SnapshotId, path: &str) -> Result<(TreeId, String)> {
    let mut tree = repo.load_snapshot(id)?.tree;
    let mut shown = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        let dir = repo.load_tree(&tree)?;
        let node = dir
            .nodes
            .iter()
            .find(|n| n.name == part.as_bytes())
            .ok_or_else(|| {
                snapkeep::Error::InvalidInput(format!(
                    "snapshot {id} has no '{path}'; run 'snapkeep ls {id}' to see its paths"
                ))
            })?;
        let NodeKind::Dir { tree: sub } = &node.kind else {
            return Err(anyhow!(snapkeep::Error::InvalidInput(format!(
                "'{path}' in snapshot {id} is not a directory"
            ))));
        };
        tree = *sub;
        shown.push('/');
        shown.push_str(part);
    }
    Ok((tree, shown))
}

/// A path for a terminal line: control characters (a newline in a name) as `\xNN`, so one
/// entry is always one line.
pub fn printable(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for c in p.chars() {
        if c.is_control() {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}
