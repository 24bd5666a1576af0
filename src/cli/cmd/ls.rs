//! `snapkeep ls SNAPSHOT [PATH] [-l]`: the entries below PATH, recursively, as JSON objects,
//! one path a line, or (`-l`) in aligned columns: type and mode, owner, size, mtime (UTC),
//! path.

use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::Result;
use serde_json::{Value, json};

use snapkeep::clock::rfc3339;
use snapkeep::format::manifest::{Node, NodeKind};

use crate::cli::args::FilterArgs;
use crate::cli::env::Env;
use crate::cli::inspect::{entries, kind_name, name_fields, printable, show_bytes};

/// Lists the entries of snapshot `spec` below `path` (default: its root); `long` for the
/// columns.
pub fn run(
    env: &Env,
    spec: &str,
    path: Option<&str>,
    long: bool,
    filter: &FilterArgs,
) -> Result<i32> {
    let (repo, id) = env.open_snapshot(spec, filter)?;
    let found = entries(&repo, &id, path.unwrap_or("/"))?;
    env.print(
        || Value::Array(found.iter().map(|(p, n)| entry_json(p, n)).collect()),
        || {
            // One buffered writer: a line a write call would be one system call an entry.
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            if long {
                let _ = out.write_all(long_listing(&found).as_bytes());
            } else {
                for (p, _) in &found {
                    let _ = writeln!(out, "{}", printable(p));
                }
            }
            let _ = out.flush();
        },
    );
    Ok(0)
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

/// The `-l` listing: one line an entry, every column as wide as its widest value (sizes and
/// owners right-aligned).
fn long_listing(found: &[(String, Node)]) -> String {
    let rows: Vec<[String; 6]> = found
        .iter()
        .map(|(p, n)| {
            let mut path = printable(p);
            if let NodeKind::Symlink { target } = &n.kind {
                path.push_str(" -> ");
                path.push_str(&printable(&show_bytes(target)));
            }
            [
                mode_string(n),
                n.uid.to_string(),
                n.gid.to_string(),
                n.size.to_string(),
                mtime(n.mtime_ns),
                path,
            ]
        })
        .collect();
    let width = |col: usize| rows.iter().map(|r| r[col].len()).max().unwrap_or(0);
    let (wu, wg, ws) = (width(1), width(2), width(3));
    let mut out = String::new();
    for [mode, uid, gid, size, time, path] in &rows {
        let _ = writeln!(
            out,
            "{mode} {uid:>wu$} {gid:>wg$} {size:>ws$} {time} {path}"
        );
    }
    out
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
