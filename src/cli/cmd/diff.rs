//! `snapkeep diff FROM TO`: what changed between two snapshots (added, removed, modified,
//! type changed, metadata changed), as JSON or, for people, one aligned line a change in tree
//! order (`SIGN  TYPE  SIZE  PATH`, a directory's entries right after it, as `ls` lists them)
//! and a summary line with the counts.
//!
//! The two snapshots are walked side by side ([`compare`]): a subtree whose id is the same on
//! both sides is not even loaded, and memory stays bounded by the depth of the trees whatever
//! their size. The changes themselves go to temporary files as they are found (the JSON groups
//! them by kind and the listing needs its column widths before its first line), so a diff of
//! two unrelated million-file snapshots needs no more memory than one of two equal ones.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, Write};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use snapkeep::format::manifest::{ChunkRef, Extent, Node, NodeKind};
use snapkeep::walk::{Pair, PairVisitor, TreePath, compare};
use snapkeep::{Repository, SnapshotId};

use crate::cli::args::FilterArgs;
use crate::cli::env::Env;
use crate::cli::inspect::{kind_name, printable, show_bytes};
use crate::cli::output::{human_bytes, plural};

/// Each kind of change with its sign in the human listing, in the JSON's key order.
const KINDS: [(&str, &str); 5] = [
    ("added", "+"),
    ("metadata_changed", "U"),
    ("modified", "M"),
    ("removed", "-"),
    ("type_changed", "T"),
];

/// Prints what changed from snapshot `from` to snapshot `to`.
pub fn run(env: &Env, from: &str, to: &str, filter: &FilterArgs) -> Result<i32> {
    let (repo, a) = env.open_snapshot(from, filter)?;
    let b = env.resolve(&repo, to, filter)?;
    let mut changes = Changes::new(env.json)?;
    diff(&repo, &a, &b, &mut changes)?;
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    let written = if env.json {
        changes.write_json(&a, &b, &mut out)
    } else {
        changes.write_human(&mut out)
    };
    match written.and_then(|()| out.flush().context("cannot write to stdout")) {
        Err(e) if is_broken_pipe(&e) => Ok(0),
        other => other.map(|()| 0),
    }
}

/// Whether the reader of stdout went away (`snapkeep diff A B | head`): not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Walks both snapshots side by side and tells `out` every change.
fn diff(repo: &Repository, from: &SnapshotId, to: &SnapshotId, out: &mut Changes) -> Result<()> {
    let (old, new) = (repo.load_snapshot(from)?.tree, repo.load_snapshot(to)?.tree);
    compare(repo, &old, &new, out)?;
    Ok(())
}

/// The changes found so far: counts and sums in memory, the entries in temporary files.
struct Changes {
    json: bool,
    /// With `--json`, one file a kind (in [`KINDS`] order) of comma-separated JSON objects;
    /// for people, one file of rows, one JSON array a line.
    files: Vec<BufWriter<File>>,
    counts: [u64; 5],
    added_bytes: u64,
    removed_bytes: u64,
    /// Whether every change so far is of a file (the summary's noun).
    all_files: bool,
    /// The widest type and size columns of the listing.
    widths: (usize, usize),
}

impl Changes {
    fn new(json: bool) -> Result<Self> {
        let n = if json { KINDS.len() } else { 1 };
        let files = (0..n)
            .map(|_| {
                tempfile::tempfile()
                    .map(BufWriter::new)
                    .context("cannot create a temporary file for the diff; check TMPDIR")
            })
            .collect::<Result<_>>()?;
        Ok(Changes {
            json,
            files,
            counts: [0; 5],
            added_bytes: 0,
            removed_bytes: 0,
            all_files: true,
            widths: (0, 0),
        })
    }

    /// Records one change of kind `k` (an index into [`KINDS`]).
    fn record(&mut self, k: usize, entry: &Value) -> std::io::Result<()> {
        self.all_files &= entry.get("type").is_some_and(|t| t == "file");
        self.counts[k] += 1;
        if self.json {
            let f = &mut self.files[k];
            if self.counts[k] > 1 {
                f.write_all(b",")?;
            }
            serde_json::to_writer(&mut *f, entry)?;
            return Ok(());
        }
        let row = human_row(KINDS[k].0, entry);
        self.widths.0 = self.widths.0.max(row[1].len());
        self.widths.1 = self.widths.1.max(row[2].len());
        serde_json::to_writer(&mut self.files[0], &row)?;
        self.files[0].write_all(b"\n")?;
        Ok(())
    }

    /// The documented JSON object, keys in order: each kind's array copied from its file,
    /// the sums and snapshot ids between them where the key order puts them.
    fn write_json(self, from: &SnapshotId, to: &SnapshotId, out: &mut dyn Write) -> Result<()> {
        let after = |key: &str| match key {
            "added" => vec![
                ("added_bytes", json!(self.added_bytes)),
                ("from", json!(from.to_string())),
            ],
            "removed" => vec![
                ("removed_bytes", json!(self.removed_bytes)),
                ("to", json!(to.to_string())),
            ],
            _ => Vec::new(),
        };
        out.write_all(b"{")?;
        for (n, (f, (key, _))) in self.files.into_iter().zip(KINDS).enumerate() {
            if n > 0 {
                out.write_all(b",")?;
            }
            write!(out, "\"{key}\":[")?;
            std::io::copy(&mut rewound(f)?, out)?;
            out.write_all(b"]")?;
            for (k, v) in after(key) {
                write!(out, ",\"{k}\":{v}")?;
            }
        }
        out.write_all(b"}\n")?;
        Ok(())
    }

    /// The listing for people: one line a change, the type and size columns as wide as their
    /// widest value, then the summary line.
    fn write_human(self, out: &mut dyn Write) -> Result<()> {
        let summary = self.summary();
        let (wk, ws) = self.widths;
        let rows = BufReader::new(rewound(self.files.into_iter().next().expect("one file"))?);
        for line in rows.lines() {
            let row: [String; 5] = serde_json::from_str(&line?)?;
            let [sign, kind, size, path, note] = row;
            writeln!(out, "{sign}  {kind:<wk$}  {size:>ws$}  {path}{note}")?;
        }
        writeln!(out, "{summary}")?;
        Ok(())
    }

    /// `2 files added, 1 removed, 0 modified, 0 type changed, 0 with new metadata; +5 B, -3 B`:
    /// the noun is `file` when every change is of a file, else `entry`.
    fn summary(&self) -> String {
        let [added, metadata, modified, removed, type_changed] = self.counts;
        let noun = if self.all_files { "file" } else { "entry" };
        format!(
            "{} added, {removed} removed, {modified} modified, {type_changed} type changed, \
             {metadata} with new metadata; +{}, -{}",
            plural(usize::try_from(added).unwrap_or(usize::MAX), noun),
            human_bytes(self.added_bytes),
            human_bytes(self.removed_bytes),
        )
    }
}

/// The spill file `f`, flushed and read from its start.
fn rewound(f: BufWriter<File>) -> Result<File> {
    let mut f = f
        .into_inner()
        .map_err(std::io::IntoInnerError::into_error)
        .context("cannot write the diff's temporary file; check TMPDIR")?;
    f.rewind()?;
    Ok(f)
}

/// One listing row of the change `entry` of kind `key`: sign, type, size, path, note.
fn human_row(key: &str, e: &Value) -> [String; 5] {
    let sign = KINDS
        .iter()
        .find(|(k, _)| *k == key)
        .map_or("?", |(_, s)| s);
    let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
    let size = |k: &str| human_bytes(e[k].as_u64().unwrap_or(0));
    let (kind, size, note) = match key {
        "modified" => (
            text("type"),
            size("new_size"),
            format!("  (was {})", size("old_size")),
        ),
        "type_changed" => (
            text("new_type"),
            size("size"),
            format!("  (was a {})", text("old_type")),
        ),
        "metadata_changed" => (text("type"), String::new(), String::new()),
        _ => (text("type"), size("size"), String::new()),
    };
    let path = printable(e["path"].as_str().unwrap_or_default());
    [sign.to_owned(), kind, size, path, note]
}

impl PairVisitor for Changes {
    fn pair(&mut self, path: &TreePath, pair: Pair<'_>) -> snapkeep::Result<()> {
        let p = show_bytes(path.as_bytes());
        let change = match pair {
            Pair::Added(n) => {
                self.added_bytes += n.size;
                Some((0, json!({"path": p, "type": kind_name(n), "size": n.size})))
            }
            Pair::Removed(o) => {
                self.removed_bytes += o.size;
                Some((3, json!({"path": p, "type": kind_name(o), "size": o.size})))
            }
            Pair::Both { old: o, new: n } if kind_name(o) != kind_name(n) => Some((
                4,
                json!({"path": p, "old_type": kind_name(o), "new_type": kind_name(n), "size": n.size}),
            )),
            Pair::Both { old: o, new: n } if content_differs(o, n) => Some((
                2,
                json!({"path": p, "type": kind_name(n), "old_size": o.size, "new_size": n.size}),
            )),
            Pair::Both { old: o, new: n } if metadata_differs(o, n) => {
                Some((1, json!({"path": p, "type": kind_name(n)})))
            }
            Pair::Both { .. } => None,
        };
        match change {
            Some((k, entry)) => self.record(k, &entry).map_err(|e| {
                snapkeep::Error::io(
                    "write the diff's temporary file in",
                    std::env::temp_dir(),
                    e,
                )
            }),
            None => Ok(()),
        }
    }
}

/// Whether two entries of the same type differ in content (a symlink's target, a file's
/// size, chunks or holes).
fn content_differs(o: &Node, n: &Node) -> bool {
    match (&o.kind, &n.kind) {
        (NodeKind::Symlink { target: x }, NodeKind::Symlink { target: y }) => x != y,
        (NodeKind::File { .. }, NodeKind::File { .. }) => {
            o.size != n.size || content_of(o) != content_of(n)
        }
        _ => false,
    }
}

/// Whether two entries differ in mode, owner or modification time.
fn metadata_differs(o: &Node, n: &Node) -> bool {
    o.mode != n.mode || o.uid != n.uid || o.gid != n.gid || o.mtime_ns != n.mtime_ns
}

fn content_of(n: &Node) -> Option<(&[ChunkRef], &[Extent])> {
    match &n.kind {
        NodeKind::File { chunks, holes, .. } => Some((chunks, holes)),
        _ => None,
    }
}
