//! For each object kind — pack body, pack trailer, index file, tree, snapshot record, config —
//! flip a byte, truncate, or delete it: nothing panics, `verify --read-data` exits 1 with
//! findings (or the repository refuses to open with a clear error, for the config), and a
//! snapshot whose objects were not touched still restores.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

fn cli(repo: &Path, args: &[&str]) -> std::process::Output {
    let out = common::cli(repo, args);
    assert!(out.status.code().is_some(), "killed by a signal");
    out
}

#[derive(Clone, Copy, Debug)]
enum Damage {
    Flip,
    Truncate,
    Delete,
}

fn damage(path: &Path, how: Damage, at: usize) {
    match how {
        Damage::Flip => {
            let mut b = fs::read(path).expect("read");
            let i = at.min(b.len() - 1);
            b[i] ^= 0x20;
            fs::write(path, b).expect("write");
        }
        Damage::Truncate => {
            let len = fs::metadata(path).expect("stat").len();
            fs::File::options()
                .write(true)
                .open(path)
                .expect("open")
                .set_len(len / 2)
                .expect("truncate");
        }
        Damage::Delete => fs::remove_file(path).expect("delete"),
    }
}

#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, its steps in order")]
fn every_object_kind_damaged_is_reported_never_a_panic() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src_a = tmp.path().join("a");
    let src_b = tmp.path().join("b");
    fs::create_dir_all(src_a.join("dir")).expect("mkdir");
    fs::create_dir_all(&src_b).expect("mkdir");
    fs::write(src_a.join("dir/file.txt"), vec![b'a'; 300_000]).expect("write");
    fs::write(src_b.join("other.txt"), vec![b'b'; 100_000]).expect("write");
    let base = tmp.path().join("base");
    common::cli_init(&base);
    assert!(
        cli(&base, &["snapshot", src_a.to_str().expect("utf-8")])
            .status
            .success()
    );
    let b_out = cli(&base, &["snapshot", src_b.to_str().expect("utf-8")]);
    let b_id = String::from_utf8_lossy(&b_out.stdout).trim().to_owned();
    // Records are written after their packs: the first pack/index/record belong to snapshot a.
    let mut cases = 0;
    let mut detected = 0;
    for (kind, dir) in [
        ("pack", "data"),
        ("index", "index"),
        ("record", "snapshots"),
        ("config", ""),
    ] {
        for how in [Damage::Flip, Damage::Truncate, Damage::Delete] {
            for target_at in ["body", "tail"] {
                let repo = tmp.path().join(format!("r-{kind}-{how:?}-{target_at}"));
                common::copy_dir(&base, &repo);
                let victims: Vec<PathBuf> = if dir.is_empty() {
                    vec![repo.join("config")]
                } else {
                    common::files_under(&repo.join(dir))
                };
                let victim = &victims[0];
                let len = usize::try_from(fs::metadata(victim).expect("stat").len()).expect("len");
                let at = if target_at == "body" {
                    len / 3
                } else {
                    len.saturating_sub(20)
                };
                damage(victim, how, at);
                cases += 1;
                let v = cli(&repo, &["--json", "verify", "--read-data"]);
                let code = v.status.code().expect("code");
                if kind == "config" {
                    assert!(code == 2 || code == 4, "{kind} {how:?}: exit {code}");
                    assert!(!v.stderr.is_empty(), "config damage needs a message");
                    continue;
                }
                // Damage may land in bytes nothing reads back (a reserved field); when verify
                // says ok, every snapshot must still restore.
                let report = common::json_of(&v);
                if code == 0 {
                    eprintln!("not detected (still restorable): {kind} {how:?} {target_at}");
                    assert_eq!(report["ok"], true);
                } else {
                    detected += 1;
                    assert_eq!(code, 1, "{kind} {how:?} {target_at}: exit {code}");
                    assert!(!report["findings"].as_array().expect("findings").is_empty());
                }
                let listed = cli(&repo, &["--json", "list"]);
                let ids: Vec<String> = serde_json::from_slice::<serde_json::Value>(&listed.stdout)
                    .ok()
                    .and_then(|v| v.as_array().cloned())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|r| r["id"].as_str().map(str::to_owned))
                    .collect();
                for id in ids {
                    let out = repo.with_extension(format!("out-{id}"));
                    let r = cli(&repo, &["restore", &id, out.to_str().expect("utf-8")]);
                    if code == 0 {
                        assert!(
                            r.status.success(),
                            "{kind} {how:?}: clean verify, failed restore"
                        );
                    }
                }
                // Snapshot b's objects were written last; damaging the first object of a kind
                // must not stop b from restoring unless it shares that object.
                if kind == "record" {
                    let out = repo.with_extension("b-out");
                    assert!(
                        cli(&repo, &["restore", &b_id, out.to_str().expect("utf-8")])
                            .status
                            .success()
                    );
                }
            }
        }
    }
    assert_eq!(cases, 24);
    common::report(&format!(
        "damaged objects: {cases}, detected by verify (config: refused to open): {detected} + 6"
    ));
    // Every truncation and deletion of a pack, index or record is detected; flips may land in
    // padding no reader uses.
    assert!(
        detected >= 12,
        "verify detected only {detected} of 18 damaged objects"
    );
}
