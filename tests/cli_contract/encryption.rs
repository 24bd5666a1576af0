//! Encryption from the command line (issue #15): `init` encrypts by default and says so; the
//! password comes from a file, a command or the environment, in restic's order; a wrong or
//! missing password is exit 2 and writes nothing; `key list|add|remove|passwd`; `--encryption
//! none` is format 1; a repository this machine knew encrypted that turns up plain is refused.

use std::fs;

use crate::common;
use crate::harness::{Sandbox, expect_code, json, stderr};

#[test]
fn init_encrypts_and_the_password_sources_work_in_order() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let s = src.to_str().expect("utf8");
    let repo = sb.path("repo");
    let init = json(&sb.run(&repo, &["--json", "init"]));
    assert_eq!(init["encryption"], "aegis256x4-blake3", "{init}");
    assert_eq!(init["version"], 2, "{init}");
    assert!(init["key"].is_string(), "{init}");
    expect_code(&sb.run(&repo, &["snapshot", s]), 0, "snapshot");
    let listed = json(&sb.run(&repo, &["--json", "list"]));
    assert_eq!(listed[0]["encryption"], "aegis256x4-blake3", "{listed}");

    // A password file wins over SNAPKEEP_PASSWORD; a wrong one is exit 2 and names the
    // repository; nothing is written.
    let wrong = sb.path("wrong.txt");
    fs::write(&wrong, b"not it\n").expect("write");
    let right = sb.path("right.txt");
    fs::write(&right, b"snapkeep-test\n").expect("write");
    let before = common::files_under(&repo);
    let mut c = sb.cmd();
    c.arg("--repo")
        .arg(&repo)
        .arg("--password-file")
        .arg(&wrong)
        .args(["snapshot", s]);
    let out = crate::harness::run(c);
    expect_code(&out, 2, "a wrong password file");
    assert!(stderr(&out).contains("no key in"), "{}", stderr(&out));
    assert_eq!(
        common::files_under(&repo),
        before,
        "a refused run wrote something"
    );
    let mut c = sb.cmd();
    c.env("SNAPKEEP_PASSWORD", "not it")
        .env("SNAPKEEP_PASSWORD_FILE", &right)
        .arg("--repo")
        .arg(&repo)
        .arg("list");
    expect_code(
        &crate::harness::run(c),
        0,
        "SNAPKEEP_PASSWORD_FILE before SNAPKEEP_PASSWORD",
    );
    // A password command, and a failing one.
    let mut c = sb.cmd();
    c.env_remove("SNAPKEEP_PASSWORD")
        .arg("--repo")
        .arg(&repo)
        .args(["--password-command", "echo snapkeep-test", "list"]);
    expect_code(&crate::harness::run(c), 0, "--password-command");
    let mut c = sb.cmd();
    c.env_remove("SNAPKEEP_PASSWORD")
        .arg("--repo")
        .arg(&repo)
        .args(["--password-command", "exit 7", "list"]);
    expect_code(&crate::harness::run(c), 2, "a failing password command");
    // No source and no terminal: exit 2, one sentence that names the sources.
    let mut c = sb.cmd();
    c.env_remove("SNAPKEEP_PASSWORD")
        .arg("--repo")
        .arg(&repo)
        .arg("list");
    let out = crate::harness::run(c);
    expect_code(&out, 2, "no password");
    assert!(stderr(&out).contains("--password-file"), "{}", stderr(&out));
}

#[test]
fn keys_from_the_command_line() {
    let sb = Sandbox::new();
    let repo = sb.path("repo");
    sb.init(&repo);
    let keys = json(&sb.run(&repo, &["--json", "key", "list"]));
    assert_eq!(keys.as_array().map(Vec::len), Some(1), "{keys}");
    assert_eq!(keys[0]["current"], true, "{keys}");
    let first = keys[0]["id"].as_str().expect("id").to_owned();
    let second_pw = sb.path("second.txt");
    fs::write(&second_pw, b"second\n").expect("write");
    let added = json(&sb.run(
        &repo,
        &[
            "--json",
            "key",
            "add",
            "--new-password-file",
            second_pw.to_str().expect("utf8"),
        ],
    ));
    let second = added["added"].as_str().expect("added").to_owned();
    // The key in use cannot go; opened with the second password, the first can.
    let out = sb.run(&repo, &["key", "remove", &first]);
    expect_code(&out, 2, "remove the key in use");
    let mut c = sb.cmd();
    c.env("SNAPKEEP_PASSWORD", "second")
        .arg("--repo")
        .arg(&repo)
        .args(["--json", "key", "remove", &first[..8]]);
    let removed = json(&crate::harness::run(c));
    assert_eq!(removed["removed"], first.as_str());
    // The last key never goes.
    let mut c = sb.cmd();
    c.env("SNAPKEEP_PASSWORD", "second")
        .arg("--repo")
        .arg(&repo)
        .args(["key", "remove", &second]);
    let out = crate::harness::run(c);
    expect_code(&out, 2, "remove the last key");
    // The old password no longer opens.
    expect_code(&sb.run(&repo, &["list"]), 2, "the removed key's password");
}

#[test]
fn encryption_none_is_format_1_and_a_downgrade_is_refused() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let plain = sb.path("plain");
    let init = json(&sb.run(&plain, &["--json", "init", "--encryption", "none"]));
    assert_eq!(init["encryption"], "none", "{init}");
    assert_eq!(init["version"], 1, "{init}");
    assert!(!plain.join("keys").exists());

    // An encrypted repository this machine opened, whose config is then replaced by a plain
    // one with the same id: refused, exit 2.
    let repo = sb.path("repo");
    let init = json(&sb.run(&repo, &["--json", "init"]));
    expect_code(
        &sb.run(&repo, &["snapshot", src.to_str().expect("utf8")]),
        0,
        "snapshot",
    );
    let mut id = [0u8; 16];
    hex::decode_to_slice(init["id"].as_str().expect("id"), &mut id).expect("hex id");
    let forged = snapkeep::format::repo_config::RepoConfig {
        version: 1,
        id,
        chunker: snapkeep::chunker::ChunkerParams::default(),
        compression: snapkeep::Compression::default(),
        pack_size: snapkeep::format::repo_config::RepoConfig::DEFAULT_PACK_SIZE,
    };
    fs::write(repo.join("config"), forged.to_bytes()).expect("replace config");
    let out = sb.run(&repo, &["list"]);
    expect_code(
        &out,
        2,
        "a repository that was encrypted and now says it is not",
    );
    assert!(stderr(&out).contains("was encrypted"), "{}", stderr(&out));
}

#[test]
fn init_takes_either_scheme_and_refuses_an_unknown_one() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let s = src.to_str().expect("utf8");
    let repo = sb.path("chacha");
    let init = json(&sb.run(
        &repo,
        &["--json", "init", "--encryption", "xchacha20poly1305-blake3"],
    ));
    assert_eq!(init["encryption"], "xchacha20poly1305-blake3", "{init}");
    expect_code(&sb.run(&repo, &["snapshot", s]), 0, "snapshot");
    let listed = json(&sb.run(&repo, &["--json", "list"]));
    assert_eq!(
        listed[0]["encryption"], "xchacha20poly1305-blake3",
        "{listed}"
    );
    let out = sb.path("out");
    expect_code(
        &sb.run(&repo, &["restore", "latest", out.to_str().expect("utf8")]),
        0,
        "restore",
    );
    assert_eq!(
        fs::read(out.join("a.txt")).expect("restored"),
        fs::read(src.join("a.txt")).expect("source")
    );

    let other = sb.path("other");
    let refused = sb.run(&other, &["init", "--encryption", "aes256gcm"]);
    expect_code(&refused, 2, "an unknown scheme");
    let msg = stderr(&refused);
    assert!(
        msg.contains("'aes256gcm' is not known")
            && msg.contains("aegis256x4-blake3")
            && msg.contains("xaes256gcm-blake3")
            && msg.contains("xchacha20poly1305-blake3"),
        "{msg}"
    );
    assert!(!other.join("config").exists(), "nothing is created");
}

/// An encrypted repository with its own password (in a file) and one snapshot of `src`,
/// tagged t1: its location and the password file.
fn encrypted_source(sb: &Sandbox, src: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let from = sb.path("from");
    let from_pw = sb.path("from-pw.txt");
    fs::write(&from_pw, b"the source's password\n").expect("write");
    for (args, what) in [
        (&["init"][..], "init the source"),
        (&["snapshot", "--tag", "t1", src][..], "snapshot the source"),
    ] {
        let mut c = sb.cmd();
        c.arg("--repo")
            .arg(&from)
            .arg("--password-file")
            .arg(&from_pw)
            .args(args);
        expect_code(&crate::harness::run(c), 0, what);
    }
    (from, from_pw)
}

#[test]
fn copy_from_the_command_line() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let s = src.to_str().expect("utf8");
    let (from, from_pw) = encrypted_source(&sb, s);
    let to = sb.path("to");
    sb.init(&to);
    let from_s = from.to_str().expect("utf8");

    // No source password (the destination's SNAPKEEP_PASSWORD is not the source's): exit 2,
    // naming the source's own options; a wrong one: exit 2; nothing copied.
    let out = sb.run(&to, &["copy", "--from-repo", from_s]);
    expect_code(&out, 2, "no source password");
    assert!(
        stderr(&out).contains("--from-password-file"),
        "{}",
        stderr(&out)
    );
    let wrong = sb.path("wrong.txt");
    fs::write(&wrong, b"nope\n").expect("write");
    let out = sb.run(
        &to,
        &[
            "copy",
            "--from-repo",
            from_s,
            "--from-password-file",
            wrong.to_str().expect("utf8"),
        ],
    );
    expect_code(&out, 2, "a wrong source password");
    assert!(
        stderr(&out).contains("opens with this password"),
        "{}",
        stderr(&out)
    );

    let pw = from_pw.to_str().expect("utf8");
    let copy = || {
        json(&sb.run(
            &to,
            &[
                "--json",
                "copy",
                "--from-repo",
                from_s,
                "--from-password-file",
                pw,
            ],
        ))
    };
    let copied = copy();
    assert_eq!(
        copied["copied"].as_array().map(Vec::len),
        Some(1),
        "{copied}"
    );
    assert!(copied["blobs_stored"].as_u64() > Some(0), "{copied}");
    let listed = json(&sb.run(&to, &["--json", "list"]));
    assert_eq!(listed[0]["tags"][0], "t1", "{listed}");
    assert_eq!(
        listed[0]["original"]["id"], copied["copied"][0]["source"],
        "{listed}"
    );
    restored_equals(&sb, &to, &src);
    // Again: skipped.
    let again = copy();
    assert_eq!(again["copied"].as_array().map(Vec::len), Some(0), "{again}");
    assert_eq!(
        again["skipped"].as_array().map(Vec::len),
        Some(1),
        "{again}"
    );
}

/// `restore latest` of `repo` gives `src`'s binary file back.
fn restored_equals(sb: &Sandbox, repo: &std::path::Path, src: &std::path::Path) {
    let out = sb.path("out");
    expect_code(
        &sb.run(repo, &["restore", "latest", out.to_str().expect("utf8")]),
        0,
        "restore the copy",
    );
    assert_eq!(
        fs::read(out.join("sub/b.bin")).expect("restored"),
        fs::read(src.join("sub/b.bin")).expect("source")
    );
}
