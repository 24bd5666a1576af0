//! `snapkeep cat KIND [ID]`: one repository object as pretty JSON on stdout: the config, a
//! snapshot record, a tree (by id, or `SNAPSHOT:PATH` for a directory inside a snapshot), an
//! index file's entries (the list of index files without an id), a pack's trailer entries, or
//! the locks present.
//!
//! Every object is read through the checked read paths: a record, the config and a lock
//! through their framed checksum, a tree against its blob id, an index file against its name
//! and footer checksum, a pack trailer against the pack id. A damaged object is an error, never
//! printed. Names are text with `\xNN` for bytes that are not UTF-8, plus `*_hex` then.

use anyhow::Result;
use serde_json::{Value, json};

use snapkeep::backend::Backend;
use snapkeep::clock::rfc3339;
use snapkeep::format::gc::LockKind;
use snapkeep::format::index_file::BlobLocation;
use snapkeep::format::keys;
use snapkeep::format::manifest::{Node, NodeKind, Tree};
use snapkeep::format::pack::{BlobCompression, BlobKind};
use snapkeep::index::IndexFile;
use snapkeep::{Error, IndexId, PackId, Repository, SnapshotRecord, TreeId};

use crate::cli::args::{CatKind, FilterArgs};
use crate::cli::env::Env;
use crate::cli::inspect::{kind_name, name_fields, tree_at};
use crate::cli::output::plural;
use crate::cli::usage_error;

/// Prints the object `kind` and `id` name.
pub fn run(env: &Env, kind: CatKind, id: Option<&str>, filter: &FilterArgs) -> Result<i32> {
    refuse_unused_filter(kind, id, filter)?;
    let doc = match (kind, id) {
        (CatKind::Config, None) => config_json(&env.open()?),
        (CatKind::Lock, None) => locks_json(&env.open()?)?,
        (CatKind::Index, None) => index_list_json(&env.open()?)?,
        (CatKind::Config | CatKind::Lock, Some(extra)) => {
            return Err(usage_error(format!(
                "'cat {}' takes no id, but '{extra}' was given; leave it out",
                kind.name()
            )));
        }
        (CatKind::Snapshot, Some(spec)) => {
            let (repo, id) = env.open_snapshot(spec, filter)?;
            snapshot_json(&repo.load_snapshot(&id)?)
        }
        (CatKind::Tree, Some(spec)) => tree_spec_json(env, spec, filter)?,
        (CatKind::Index, Some(spec)) => index_json(&env.open()?, spec)?,
        (CatKind::Pack, Some(spec)) => pack_json(&env.open()?, spec)?,
        (CatKind::Snapshot | CatKind::Tree | CatKind::Pack, None) => {
            return Err(usage_error(format!(
                "'cat {}' needs an id: give {}",
                kind.name(),
                kind.what_to_give()
            )));
        }
    };
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(0)
}

/// Snapshot filters choose a snapshot: they apply to `cat snapshot` and `cat tree
/// SNAPSHOT:PATH` only. Given with any other object they would be ignored, so they are
/// refused.
fn refuse_unused_filter(kind: CatKind, id: Option<&str>, filter: &FilterArgs) -> Result<()> {
    if filter.hosts.is_empty() && filter.paths.is_empty() && filter.tags.is_empty() {
        return Ok(());
    }
    let chooses_snapshot = match kind {
        CatKind::Snapshot => true,
        CatKind::Tree => id.is_some_and(|s| s.contains(':')),
        _ => false,
    };
    if chooses_snapshot {
        return Ok(());
    }
    let what = if kind == CatKind::Tree {
        "a tree id names one tree whatever the snapshot".to_owned()
    } else {
        format!(
            "'cat {}' prints an object of the whole repository",
            kind.name()
        )
    };
    Err(usage_error(format!(
        "--host, --path and --tag choose a snapshot, and {what}; leave the filters out \
         (they apply to 'cat snapshot' and 'cat tree SNAPSHOT:PATH')"
    )))
}

impl CatKind {
    /// The kind as the command line spells it.
    fn name(self) -> &'static str {
        match self {
            CatKind::Config => "config",
            CatKind::Snapshot => "snapshot",
            CatKind::Tree => "tree",
            CatKind::Index => "index",
            CatKind::Pack => "pack",
            CatKind::Lock => "lock",
        }
    }

    /// What the id of this kind can be, for an error message.
    fn what_to_give(self) -> &'static str {
        match self {
            CatKind::Snapshot => "a snapshot id, a unique id prefix or 'latest'",
            CatKind::Tree => {
                "a tree id (64 hex digits, from 'snapkeep cat snapshot ID') or SNAPSHOT:PATH for a directory in a snapshot"
            }
            CatKind::Index => {
                "an index file id or a unique prefix ('snapkeep cat index' lists them)"
            }
            CatKind::Pack => {
                "a pack id or a unique prefix (the 'pack' of an entry of 'snapkeep cat index ID')"
            }
            CatKind::Config | CatKind::Lock => "nothing",
        }
    }
}

/// The repository config as stored.
fn config_json(repo: &Repository) -> Value {
    let c = repo.config();
    json!({
        "id": hex::encode(c.id),
        "version": c.version,
        "chunker": {
            "kind": serde_json::to_value(c.chunker.kind).unwrap_or(Value::Null),
            "min": c.chunker.min,
            "avg": c.chunker.avg,
            "max": c.chunker.max,
        },
        "compression": c.compression.to_string(),
        "pack_size": c.pack_size,
    })
}

/// A snapshot record with every stored field (times also as RFC 3339 UTC).
fn snapshot_json(r: &SnapshotRecord) -> Value {
    json!({
        "id": r.id.to_string(),
        "time": rfc3339(r.time_ns),
        "time_ns": r.time_ns,
        "host": r.host,
        "paths": r.paths,
        "tags": r.tags,
        "parent": r.parent.map(|p| p.to_string()),
        "tree": r.tree.to_string(),
        "summary": serde_json::to_value(&r.summary).unwrap_or(Value::Null),
        "program": r.program,
        "stages": r.stages,
        "flags": r.flags,
        "root": r.root.map(|m| json!({
            "mode": format!("{:04o}", m.mode),
            "uid": m.uid,
            "gid": m.gid,
            "mtime": rfc3339(m.mtime_ns),
            "mtime_ns": m.mtime_ns,
        })),
        "excludes": r.excludes.as_ref().map(|x| json!({
            "patterns": x.patterns,
            "ipatterns": x.ipatterns,
        })),
    })
}

/// The tree `spec` names: a tree id, or `SNAPSHOT:PATH` (the tree of the directory PATH in
/// the snapshot SNAPSHOT; `SNAPSHOT:` or `SNAPSHOT:/` for its root).
fn tree_spec_json(env: &Env, spec: &str, filter: &FilterArgs) -> Result<Value> {
    let (repo, tree) = match spec.split_once(':') {
        Some((snap, path)) => {
            let (repo, id) = env.open_snapshot(snap, filter)?;
            let (tree, _) = tree_at(&repo, &id, path)?;
            (repo, tree)
        }
        None => {
            let tree = spec.parse::<TreeId>().map_err(|_| {
                usage_error(format!(
                    "'{spec}' is not a tree: give {}",
                    CatKind::Tree.what_to_give()
                ))
            })?;
            (env.open()?, tree)
        }
    };
    let t = repo.load_tree(&tree).map_err(|e| match e {
        Error::NotFound(_) => Error::InvalidInput(format!(
            "tree {tree} is not in this repository's index: give {}",
            CatKind::Tree.what_to_give()
        )),
        other => other,
    })?;
    Ok(tree_json(&tree, &t))
}

/// A tree and every field of its entries.
fn tree_json(id: &TreeId, t: &Tree) -> Value {
    json!({
        "id": id.to_string(),
        "nodes": t.nodes.iter().map(node_json).collect::<Vec<_>>(),
    })
}

fn node_json(n: &Node) -> Value {
    let mut v = json!({
        "type": kind_name(n),
        "mode": format!("{:04o}", n.mode),
        "uid": n.uid,
        "gid": n.gid,
        "mtime": rfc3339(n.mtime_ns),
        "mtime_ns": n.mtime_ns,
        "ctime_ns": n.ctime_ns,
        "inode": n.inode,
        "size": n.size,
        "flags": n.flags,
    });
    name_fields(&mut v, "name", &n.name);
    match &n.kind {
        NodeKind::File {
            crc32,
            chunks,
            holes,
        } => {
            v["crc32"] = json!(format!("{crc32:08x}"));
            v["chunks"] = chunks
                .iter()
                .map(|c| json!({"id": c.id.to_string(), "len": c.len}))
                .collect();
            v["holes"] = holes
                .iter()
                .map(|h| json!({"offset": h.offset, "len": h.len}))
                .collect();
        }
        NodeKind::Dir { tree } => v["tree"] = json!(tree.to_string()),
        NodeKind::Symlink { target } => name_fields(&mut v, "target", target),
    }
    v
}

/// Every index file: its id and size.
fn index_list_json(repo: &Repository) -> Result<Value> {
    let mut files: Vec<Value> = repo
        .backend()
        .list(keys::Kind::Index.prefix())?
        .into_iter()
        .filter_map(|o| match keys::parse(&o.key) {
            keys::Key::Index(id) => Some(json!({"id": id.to_string(), "size": o.size})),
            _ => None,
        })
        .collect();
    files.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    Ok(Value::Array(files))
}

/// One index file, checked whole (footer checksum, name, entry order), with its entries.
fn index_json(repo: &Repository, spec: &str) -> Result<Value> {
    let names = repo
        .backend()
        .list(keys::Kind::Index.prefix())?
        .into_iter()
        .filter_map(|o| match keys::parse(&o.key) {
            keys::Key::Index(id) => Some((id.to_string(), o.size)),
            _ => None,
        });
    let (name, _) = unique(CatKind::Index, spec, names)?;
    let id: IndexId = name.parse()?;
    let file = IndexFile::open(repo.backend().as_ref(), repo.codec(), id)?;
    file.check()?;
    let mut entries = Vec::with_capacity(file.len());
    for e in file.entries() {
        let (blob, loc) = e.map_err(|i| {
            Error::corrupt(
                format!("index file {id}"),
                format!("entry {i} does not decode"),
            )
        })?;
        let mut v = location_json(&loc);
        v["id"] = json!(blob.to_string());
        v["pack"] = json!(loc.pack.to_string());
        entries.push(v);
    }
    Ok(json!({
        "id": id.to_string(),
        "packs": file.packs().iter().map(ToString::to_string).collect::<Vec<_>>(),
        "entries": entries,
    }))
}

/// One pack's trailer entries, checked against the pack id.
fn pack_json(repo: &Repository, spec: &str) -> Result<Value> {
    let want = checked_prefix(CatKind::Pack, spec)?;
    let backend: &dyn Backend = repo.backend().as_ref();
    let prefix = if want.len() >= 2 {
        format!("{}{}/", keys::Kind::Pack.prefix(), &want[..2])
    } else {
        keys::Kind::Pack.prefix().to_owned()
    };
    let names = backend
        .list(&prefix)?
        .into_iter()
        .filter_map(|o| match keys::parse(&o.key) {
            keys::Key::Pack(name) => Some((name.to_owned(), o.size)),
            _ => None,
        });
    let (name, size) = unique(CatKind::Pack, spec, names)?;
    let id: PackId = name.parse()?;
    let blobs: Vec<Value> = snapkeep::pack::read_pack_entries(backend, repo.codec(), &id, size)?
        .iter()
        .map(|e| {
            let mut v = location_json(&snapkeep::pack::location(id, e));
            v["id"] = json!(e.id.to_string());
            v
        })
        .collect();
    Ok(json!({"id": id.to_string(), "size": size, "blobs": blobs}))
}

/// Kind, compression, offset and lengths of a stored blob.
fn location_json(l: &BlobLocation) -> Value {
    json!({
        "kind": match l.kind {
            BlobKind::Data => "data",
            BlobKind::Tree => "tree",
        },
        "compression": match l.compression {
            BlobCompression::Raw => "raw",
            BlobCompression::Zstd => "zstd",
        },
        "offset": l.offset,
        "length": l.length,
        "raw_length": l.raw_length,
    })
}

/// `spec` lowercased, refused unless it is 1 to 64 hex digits.
fn checked_prefix(kind: CatKind, spec: &str) -> Result<String> {
    let want = spec.to_ascii_lowercase();
    if want.is_empty() || want.len() > 64 || !want.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(usage_error(format!(
            "'{spec}' is not {} id: give {}",
            match kind {
                CatKind::Index => "an index file",
                _ => "a pack",
            },
            kind.what_to_give()
        )));
    }
    Ok(want)
}

/// The one name (and its size) of `names` that starts with `spec`.
fn unique(
    kind: CatKind,
    spec: &str,
    names: impl Iterator<Item = (String, u64)>,
) -> Result<(String, u64)> {
    let want = checked_prefix(kind, spec)?;
    let what = match kind {
        CatKind::Index => "index file",
        _ => "pack",
    };
    let mut found: Vec<(String, u64)> = names.filter(|(n, _)| n.starts_with(&want)).collect();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Error::InvalidInput(format!(
            "no {what} of this repository has an id starting with '{spec}': give {}",
            kind.what_to_give()
        ))
        .into()),
        n => Err(Error::InvalidInput(format!(
            "{what} prefix '{spec}' matches {}; give more digits",
            plural(n, what)
        ))
        .into()),
    }
}

/// The locks present, each with its holder and whether it is stale; a lock object that does
/// not decode is listed with `damaged: true`.
fn locks_json(repo: &Repository) -> Result<Value> {
    let found = snapkeep::lock::list_locks(repo.backend().as_ref(), snapkeep::lock::STALE_AFTER)?;
    Ok(found
        .iter()
        .map(|l| match &l.record {
            Some(r) => json!({
                "key": l.key,
                "kind": match r.kind {
                    LockKind::Job => "job",
                    LockKind::Prune => "prune",
                },
                "purpose": r.purpose,
                "host": r.host,
                "boot_id": r.boot_id,
                "pid": r.pid,
                "started": rfc3339(r.started_ns),
                "heartbeat": rfc3339(r.heartbeat_ns),
                "seen_marks": r.seen_marks,
                "stale": l.stale,
                "damaged": false,
            }),
            None => json!({"key": l.key, "stale": l.stale, "damaged": true}),
        })
        .collect())
}
