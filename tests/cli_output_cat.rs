//! `snapkeep cat` (issue #19, "familiar to restic users"): each kind of repository object is
//! printed as JSON with the fields that were stored, is read through the checked read paths (a
//! damaged object is refused, not printed), and a wrong kind or id is refused with a message
//! that says what to give.

mod common;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use common::{assert_exit, assert_success, cli, cli_json, stderr_of};

/// `cat ARGS...` as JSON; without `--json` too, the same document.
fn cat(repo: &Path, args: &[&str]) -> Value {
    let mut all = vec!["cat"];
    all.extend_from_slice(args);
    let out = cli(repo, &all);
    assert_success(&out, &format!("{all:?}"));
    let plain: Value = serde_json::from_slice(&out.stdout).expect("cat prints JSON");
    assert_eq!(
        plain,
        cli_json(repo, &all),
        "{all:?} with and without --json"
    );
    plain
}

fn strings<'a>(v: &'a Value, key: &str) -> Vec<&'a str> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|e| e[key].as_str().expect(key))
        .collect()
}

/// A source with a file, a subdirectory, a symlink and a name that is not UTF-8.
fn source(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    fs::create_dir_all(src.join("sub")).expect("mkdir");
    fs::write(src.join("a.txt"), b"hello").expect("write");
    fs::write(src.join("sub/b.txt"), b"bee").expect("write");
    fs::write(
        src.join(std::ffi::OsStr::from_bytes(b"\xffname")),
        b"raw name",
    )
    .expect("write");
    std::os::unix::fs::symlink("a.txt", src.join("link")).expect("symlink");
    src
}

/// Every entry of every index file (each with the index file's id as `index`).
fn index_entries(repo: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    for id in strings(&cat(repo, &["index"]), "id") {
        let file = cat(repo, &["index", id]);
        assert_eq!(file["id"], id);
        for e in file["entries"].as_array().expect("entries") {
            let mut e = e.clone();
            e["index"] = Value::from(id);
            out.push(e);
        }
    }
    out
}

/// A repository with one snapshot of [`source`], made with chosen parameters.
fn repo_with_snapshot(tmp: &Path) -> (PathBuf, Value, Value) {
    let repo = tmp.join("repo");
    let init = cli_json(
        &repo,
        &["init", "--chunk-avg", "64KiB", "--compression", "zstd:3"],
    );
    let src = source(tmp);
    let snap = cli_json(&repo, &["snapshot", src.to_str().expect("utf-8")]);
    (repo, init, snap)
}

#[test]
fn cat_prints_each_kind_as_it_was_stored() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (repo, init, snap) = repo_with_snapshot(tmp.path());

    let config = cat(&repo, &["config"]);
    for k in ["id", "version", "compression", "pack_size"] {
        assert_eq!(config[k], init[k], "config {k}");
    }
    assert_eq!(config["compression"], "zstd:3");
    assert_eq!(config["chunker"]["avg"], 65536);
    assert_eq!(config["chunker"]["min"], init["chunker"]["min"]);

    let id = snap["id"].as_str().expect("id");
    let show = cli_json(&repo, &["show", "latest"]);
    let record = cat(&repo, &["snapshot", "latest"]);
    for k in ["id", "tree", "time", "host", "paths", "parent"] {
        assert_eq!(record[k], show[k], "snapshot {k}");
    }
    assert_eq!(record["summary"]["files"], show["files"]);
    assert_eq!(record["summary"]["bytes"], show["bytes"]);
    assert_eq!(cat(&repo, &["snapshot", &id[..8]]), record, "by prefix");

    let tree_id = record["tree"].as_str().expect("tree");
    let root = cat(&repo, &["tree", tree_id]);
    assert_eq!(root["id"], tree_id);
    assert_eq!(cat(&repo, &["tree", &format!("{id}:/")]), root);
    let nodes = root["nodes"].as_array().expect("nodes");
    assert_eq!(
        strings(&root["nodes"], "name"),
        ["a.txt", "link", "sub", "\\xffname"]
    );
    assert_eq!(nodes[3]["name_hex"], hex::encode(b"\xffname"));
    assert!(nodes[0].get("name_hex").is_none(), "{root}");
    assert_eq!(nodes[0]["type"], "file");
    assert_eq!(nodes[0]["size"], 5);
    let chunk_total: u64 = nodes[0]["chunks"]
        .as_array()
        .expect("chunks")
        .iter()
        .map(|c| c["len"].as_u64().expect("len"))
        .sum();
    assert_eq!(chunk_total, 5);
    assert_eq!(nodes[1]["type"], "symlink");
    assert_eq!(nodes[1]["target"], "a.txt");
    let sub = cat(&repo, &["tree", "latest:/sub"]);
    assert_eq!(sub["id"], nodes[2]["tree"]);
    assert_eq!(strings(&sub["nodes"], "name"), ["b.txt"]);

    let entries = index_entries(&repo);
    let tree_entry = entries
        .iter()
        .find(|e| e["id"] == tree_id)
        .expect("the root tree is indexed");
    assert_eq!(tree_entry["kind"], "tree");
    let pack_id = tree_entry["pack"].as_str().expect("pack");
    let pack = cat(&repo, &["pack", pack_id]);
    assert_eq!(pack["id"], pack_id);
    let on_disk = fs::metadata(repo.join("data").join(&pack_id[..2]).join(pack_id))
        .expect("pack file")
        .len();
    assert_eq!(pack["size"], on_disk);
    let blob = pack["blobs"]
        .as_array()
        .expect("blobs")
        .iter()
        .find(|b| b["id"] == tree_id)
        .expect("the pack holds the tree");
    for k in ["kind", "compression", "offset", "length", "raw_length"] {
        assert_eq!(blob[k], tree_entry[k], "pack and index agree on {k}");
    }
    assert_eq!(cat(&repo, &["pack", &pack_id[..10]]), pack, "by prefix");
    assert_eq!(cat(&repo, &["lock"]), Value::Array(Vec::new()));
}

#[test]
fn cat_lock_lists_a_held_lock() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    assert_success(&cli(&repo, &["init"]), "init");
    let opened =
        snapkeep::Repository::open_local_with(&repo, Some(b"snapkeep-test")).expect("open");
    let guard = snapkeep::lock::acquire_job(opened.backend(), "cat-test").expect("lock");
    let locks = cat(&repo, &["lock"]);
    let held = locks.as_array().expect("array");
    assert_eq!(held.len(), 1, "{locks}");
    let l = &held[0];
    assert_eq!(l["purpose"], "cat-test");
    assert_eq!(l["kind"], "job");
    assert_eq!(l["pid"], std::process::id());
    assert_eq!(l["host"], snapkeep::clock::hostname());
    assert_eq!(
        l["stale"],
        Value::Null,
        "a running holder's lock is not stale"
    );
    assert_eq!(l["damaged"], false);
    assert_eq!(l["key"], guard.key());
    drop(guard);
    assert_eq!(cat(&repo, &["locks"]), Value::Array(Vec::new()));
}

/// Flips one byte of the file at `path` at `offset`.
fn flip(path: &Path, offset: usize) {
    let mut b = fs::read(path).expect("read");
    b[offset] ^= 0x5a;
    fs::write(path, b).expect("write");
}

/// The run must fail with `code`, print nothing on stdout, and name `what` on stderr.
fn refused(repo: &Path, args: &[&str], code: i32, what: &str) -> String {
    let out = cli(repo, args);
    assert_exit(&out, code, &format!("{args:?}"));
    assert!(out.stdout.is_empty(), "{args:?} printed on stdout");
    let err = stderr_of(&out);
    assert!(
        err.contains(what),
        "{args:?}: the error names {what}: {err}"
    );
    err
}

#[test]
fn cat_refuses_wrong_names_and_damaged_objects() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (repo, _, snap) = repo_with_snapshot(tmp.path());
    let zeros = "0".repeat(64);
    refused(&repo, &["cat", "bogus"], 2, "bogus");
    let err = refused(&repo, &["cat", "snapshot"], 2, "cat snapshot");
    assert!(err.contains("'latest'"), "says what to give: {err}");
    refused(&repo, &["cat", "config", "x"], 2, "'x'");
    refused(&repo, &["cat", "tree", "xyz"], 2, "'xyz'");
    refused(&repo, &["cat", "tree", &zeros], 2, &zeros);
    refused(&repo, &["cat", "tree", "latest:/nope"], 2, "/nope");
    refused(&repo, &["cat", "index", &zeros], 2, &zeros);
    refused(&repo, &["cat", "pack", &zeros], 2, &zeros);
    refused(&repo, &["cat", "pack", "not-hex"], 2, "not-hex");
    // Snapshot filters choose a snapshot; with an object of the whole repository (or a tree
    // by id) they would be ignored, so they are refused.
    for args in [
        &["cat", "config", "--host", "h"][..],
        &["cat", "lock", "--tag", "t"],
        &["cat", "index", "--host", "h"],
        &["cat", "tree", &zeros, "--host", "h"],
    ] {
        refused(&repo, args, 2, "choose a snapshot");
    }
    // With a snapshot spec the filters apply: nothing of host 'nobody'.
    refused(
        &repo,
        &["cat", "tree", "latest:/", "--host", "nobody"],
        2,
        "host 'nobody'",
    );

    let tree_id = snap["tree"].as_str().expect("tree");
    let entries = index_entries(&repo);
    let e = entries
        .iter()
        .find(|e| e["id"] == tree_id)
        .expect("the root tree is indexed");
    let (pack_id, index_id) = (
        e["pack"].as_str().expect("pack"),
        e["index"].as_str().expect("index"),
    );
    let offset = usize::try_from(e["offset"].as_u64().expect("offset")).expect("small");
    let pack_file = repo.join("data").join(&pack_id[..2]).join(pack_id);
    flip(&pack_file, offset + 1);
    refused(&repo, &["cat", "tree", tree_id], 4, &tree_id[..8]);
    // The trailer is intact: the pack's own object still reads.
    cat(&repo, &["pack", pack_id]);
    let size = usize::try_from(fs::metadata(&pack_file).expect("stat").len()).expect("small");
    flip(&pack_file, size - 60);
    refused(&repo, &["cat", "pack", pack_id], 4, pack_id);

    flip(&repo.join("index").join(index_id), 64 + 1024 + 3);
    refused(&repo, &["cat", "index", index_id], 4, index_id);
}
