//! `snapkeep ls SNAPSHOT [PATH] [-l]`: the entries below PATH, recursively, as JSON objects,
//! one path a line, or (`-l`) in aligned columns: type and mode, owner, size, mtime (UTC),
//! path.

use anyhow::Result;
use serde_json::{Value, json};
use snapkeep::walk::{Step, TreePath, Visitor, Walker};

use snapkeep::clock::rfc3339;
use snapkeep::format::manifest::{Node, NodeKind};

use crate::cli::args::FilterArgs;
use crate::cli::env::Env;
use crate::cli::inspect::{kind_name, name_fields, printable, show_bytes, tree_at};

/// Lists the entries of snapshot `spec` below `path` (default: its root); `long` for the
/// columns. Entries are written as the trees are walked (memory: the open directories, not
/// the listing); `-l` walks twice, first for the widths of its columns.
pub fn run(
    env: &Env,
    spec: &str,
    path: Option<&str>,
    long: bool,
    filter: &FilterArgs,
) -> Result<i32> {
    let (repo, id) = env.open_snapshot(spec, filter)?;
    let (tree, prefix) = tree_at(&repo, &id, path.unwrap_or("/"))?;
    // One buffered writer: a line a write call would be one system call an entry.
    let out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut lines = if env.json {
        Lines::new(out, Form::Json)
    } else if long {
        let mut widths = Widths::default();
        Walker::new(&repo).walk(&tree, &prefix, &mut widths)?;
        Lines::new(out, Form::Long(widths))
    } else {
        Lines::new(out, Form::Plain)
    };
    let walked = Walker::new(&repo).walk(&tree, &prefix, &mut lines);
    if lines.closed {
        // The reader went away (`| head`): not an error of the listing.
        return Ok(0);
    }
    walked?;
    lines.finish();
    Ok(0)
}

/// How `ls` writes an entry.
enum Form {
    /// One JSON array, an object an entry.
    Json,
    /// One path a line.
    Plain,
    /// `-l`: aligned columns, as wide as measured.
    Long(Widths),
}

/// The widths of the right-aligned `-l` columns: uid, gid, size.
#[derive(Default)]
struct Widths(usize, usize, usize);

impl Visitor for Widths {
    fn node(&mut self, _: &TreePath, n: &Node) -> snapkeep::Result<Step> {
        self.0 = self.0.max(digits(u64::from(n.uid)));
        self.1 = self.1.max(digits(u64::from(n.gid)));
        self.2 = self.2.max(digits(n.size));
        Ok(Step::Enter)
    }
}

/// Decimal digits of `v`.
fn digits(v: u64) -> usize {
    v.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// The visitor that writes the listing.
struct Lines<W: std::io::Write> {
    out: W,
    form: Form,
    first: bool,
    /// A write failed (the reader closed the pipe): the walk stops.
    closed: bool,
}

impl<W: std::io::Write> Lines<W> {
    fn new(mut out: W, form: Form) -> Self {
        let closed = matches!(form, Form::Json) && out.write_all(b"[").is_err();
        Lines {
            out,
            form,
            first: true,
            closed,
        }
    }

    fn finish(mut self) {
        if matches!(self.form, Form::Json) {
            let _ = self.out.write_all(b"]\n");
        }
        let _ = self.out.flush();
    }
}

impl<W: std::io::Write> Visitor for Lines<W> {
    fn node(&mut self, path: &TreePath, n: &Node) -> snapkeep::Result<Step> {
        let p = show_bytes(path.as_bytes());
        let written = match &self.form {
            Form::Json => {
                let sep = if self.first { "" } else { "," };
                write!(self.out, "{sep}{}", entry_json(&p, n))
            }
            Form::Plain => writeln!(self.out, "{}", printable(&p)),
            Form::Long(w) => writeln!(self.out, "{}", long_line(&p, n, w)),
        };
        self.first = false;
        if written.is_err() {
            self.closed = true;
            return Err(snapkeep::Error::Cancelled);
        }
        Ok(Step::Enter)
    }
}

fn entry_json(path: &str, n: &Node) -> Value {
    let mut v = json!({
        "path": path,
        "type": kind_name(n),
        "mode": format!("{:04o}", n.mode),
        "size": n.size,
        "mtime": rfc3339(n.mtime_ns),
        "uid": n.uid,
        "gid": n.gid,
    });
    name_fields(&mut v, "name", &n.name);
    if let NodeKind::Symlink { target } = &n.kind {
        name_fields(&mut v, "target", target);
    }
    v
}

/// One `-l` line: mode, owner, group and size right-aligned to `w`, mtime (UTC), path (and
/// a symlink's target).
fn long_line(p: &str, n: &Node, w: &Widths) -> String {
    let mut path = printable(p);
    if let NodeKind::Symlink { target } = &n.kind {
        path.push_str(" -> ");
        path.push_str(&printable(&show_bytes(target)));
    }
    let (wu, wg, ws) = (w.0, w.1, w.2);
    format!(
        "{} {:>wu$} {:>wg$} {:>ws$} {} {path}",
        mode_string(n),
        n.uid,
        n.gid,
        n.size,
        mtime(n.mtime_ns)
    )
}

/// `drwxr-xr-x` of an entry: its type, then the permission bits with set-id and sticky bits
/// as `ls` shows them (`s`/`S`, `t`/`T`).
fn mode_string(n: &Node) -> String {
    let kind = match n.kind {
        NodeKind::File { .. } => '-',
        NodeKind::Dir { .. } => 'd',
        NodeKind::Symlink { .. } => 'l',
    };
    let m = n.mode;
    let mut s = String::with_capacity(10);
    s.push(kind);
    for (shift, special, set, unset) in [
        (6, 0o4000, 's', 'S'),
        (3, 0o2000, 's', 'S'),
        (0, 0o1000, 't', 'T'),
    ] {
        let bits = (m >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(match (bits & 1 != 0, m & special != 0) {
            (true, true) => set,
            (false, true) => unset,
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// `YYYY-MM-DD HH:MM:SS` in UTC (no local time zone: the same on every host).
fn mtime(ns: i64) -> String {
    let t = rfc3339(ns);
    format!("{} {}", &t[..10], &t[11..19])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(kind: NodeKind, mode: u32) -> Node {
        Node {
            name: b"x".to_vec(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            inode: 0,
            size: 0,
            flags: 0,
        }
    }

    #[test]
    fn modes_read_as_ls_shows_them() {
        let file = |m| {
            mode_string(&node(
                NodeKind::File {
                    crc32: 0,
                    chunks: Vec::new(),
                    holes: Vec::new(),
                },
                m,
            ))
        };
        assert_eq!(file(0o644), "-rw-r--r--");
        assert_eq!(file(0o4755), "-rwsr-xr-x");
        assert_eq!(file(0o2640), "-rw-r-S---");
        let link = mode_string(&node(
            NodeKind::Symlink {
                target: b"t".to_vec(),
            },
            0o777,
        ));
        assert_eq!(link, "lrwxrwxrwx");
        let sticky = mode_string(&node(
            NodeKind::Dir {
                tree: snapkeep::TreeId::of(b""),
            },
            0o1777,
        ));
        assert_eq!(sticky, "drwxrwxrwt");
    }

    #[test]
    fn times_are_utc_and_paths_one_line() {
        assert_eq!(mtime(1_700_000_000_000_000_000), "2023-11-14 22:13:20");
        assert_eq!(printable("/a\nb"), "/a\\x0ab");
    }
}
