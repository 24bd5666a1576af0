//! `snapkeep ls SNAPSHOT [PATH]`: the entries below PATH, recursively, as JSON objects or one
//! line each.

use anyhow::Result;
use serde_json::{Value, json};

use snapkeep::clock::rfc3339;
use snapkeep::format::manifest::{Node, NodeKind};

use crate::cli::args::FilterArgs;
use crate::cli::env::Env;
use crate::cli::inspect::{entries, kind_name, show_bytes};

/// Lists the entries of snapshot `spec` below `path` (default: its root).
pub fn run(env: &Env, spec: &str, path: Option<&str>, filter: &FilterArgs) -> Result<i32> {
    let (repo, id) = env.open_snapshot(spec, filter)?;
    let list = Value::Array(
        entries(&repo, &id, path.unwrap_or("/"))?
            .iter()
            .map(|(p, n)| entry_json(p, n))
            .collect(),
    );
    env.print(
        || &list,
        || {
            for e in list.as_array().into_iter().flatten() {
                println!("{}", ls_line(e));
            }
        },
    );
    Ok(0)
}

fn entry_json(path: &str, n: &Node) -> Value {
    let mut v = json!({
        "path": path,
        "name": show_bytes(&n.name),
        "type": kind_name(n),
        "mode": format!("{:04o}", n.mode),
        "size": n.size,
        "mtime": rfc3339(n.mtime_ns),
        "uid": n.uid,
        "gid": n.gid,
    });
    if std::str::from_utf8(&n.name).is_err() {
        v["name_hex"] = json!(hex::encode(&n.name));
    }
    if let NodeKind::Symlink { target } = &n.kind {
        v["target"] = json!(show_bytes(target));
        if std::str::from_utf8(target).is_err() {
            v["target_hex"] = json!(hex::encode(target));
        }
    }
    v
}

/// Human line of an `ls` entry.
fn ls_line(v: &Value) -> String {
    format!(
        "{:<7} {} {:>12} {}  {}{}",
        v["type"].as_str().unwrap_or_default(),
        v["mode"].as_str().unwrap_or_default(),
        v["size"],
        v["mtime"].as_str().unwrap_or_default(),
        v["path"].as_str().unwrap_or_default(),
        v.get("target")
            .and_then(Value::as_str)
            .map_or_else(String::new, |t| format!(" -> {t}"))
    )
}
