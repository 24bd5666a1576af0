//! A repository location that holds no (usable) repository: errors that say what is true
//! (issue #19): a file, a directory without `config` (empty or not), a place this user may
//! not read, a damaged `config`; and after verify findings, a hint naming the repair that
//! helps, which then works.

use std::fs;
use std::path::Path;
use std::process::Output;

use crate::harness::{
    Sandbox, User, assert_one_line_naming, chmod, code, json_of, stderr_of, utf8, with_baseline,
    write,
};

/// The run refused with `want` (and with `--json` the same error document), one line naming
/// `names`, containing every one of `says` and none of `never`.
fn assert_error(
    sb: &Sandbox,
    user: User,
    repo: &Path,
    want: i32,
    names: &Path,
    says: &[&str],
    never: &[&str],
) -> Output {
    let out = sb.run(user, repo, &["list"]);
    assert_eq!(
        code(&out),
        want,
        "list at {}: {}",
        repo.display(),
        stderr_of(&out)
    );
    assert!(out.stdout.is_empty(), "stdout: {:?}", out.stdout);
    assert_one_line_naming(&out, names);
    let err = stderr_of(&out);
    for s in says {
        assert!(err.contains(s), "the error does not say '{s}': {err}");
    }
    for s in never {
        assert!(!err.contains(s), "the error says '{s}': {err}");
    }
    let json_out = sb.run(user, repo, &["--json", "list"]);
    let v = json_of(&json_out, "list --json");
    assert_eq!(v["exit_code"], want, "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains(&names.display().to_string())),
        "{v}"
    );
    out
}

#[test]
fn a_file_is_not_a_repository() {
    let sb = Sandbox::new();
    let file = sb.path("plain-file");
    write(&file, b"not a repository");
    assert_error(
        &sb,
        User::Root,
        &file,
        2,
        &file,
        &["is a file, not a snapkeep repository"],
        &["init"],
    );
    assert_eq!(fs::read(&file).expect("read"), b"not a repository");
}

#[test]
fn a_directory_without_config_is_not_a_repository() {
    let sb = Sandbox::new();
    let empty = sb.path("empty");
    fs::create_dir(&empty).expect("mkdir");
    let init = format!("run 'snapkeep init --repo {}' to create one", utf8(&empty));
    assert_error(
        &sb,
        User::Root,
        &empty,
        2,
        &empty,
        &["is not a snapkeep repository", &init],
        &["was not found"],
    );
    // The command it gives works.
    sb.init(User::Root, &empty);
    assert_eq!(
        sb.json(User::Root, &empty, &["list"]),
        serde_json::json!([])
    );

    // A directory with other files: init would refuse it, so the error does not send there.
    let other = sb.path("other");
    write(&other.join("notes.txt"), b"someone else's files");
    assert_error(
        &sb,
        User::Root,
        &other,
        2,
        &other,
        &["is not a snapkeep repository (no config"],
        &[&format!("init --repo {}", utf8(&other))],
    );
    assert_eq!(fs::read_dir(&other).expect("read_dir").count(), 1);
}

#[test]
fn a_repository_this_user_may_not_read_says_permission_denied() {
    let (sb, repo, _, _) = with_baseline();
    chmod(&repo, 0o700); // root's; nobody may not enter it
    assert_error(
        &sb,
        User::Nobody,
        &repo,
        2,
        &repo,
        &["permission denied on"],
        &["not a snapkeep repository", "init"],
    );
    // Readable directory, unreadable config.
    chmod(&repo, 0o755);
    chmod(&repo.join("config"), 0o600);
    let config = repo.join("config");
    assert_error(
        &sb,
        User::Nobody,
        &repo,
        2,
        &config,
        &["permission denied on"],
        &["not a snapkeep repository", "init"],
    );
    // Root still reads it: nothing was changed.
    assert_eq!(
        sb.json(User::Root, &repo, &["list"])
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[test]
fn a_damaged_config_names_the_repository_and_a_step_that_works() {
    let (sb, repo, _, _) = with_baseline();
    let config = repo.join("config");
    let mut bytes = fs::read(&config).expect("read config");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&config, &bytes).expect("damage config");
    // The steps it used to suggest fail the same way: they are not suggested.
    for args in [&["verify", "--read-data"][..], &["repair", "index"]] {
        let out = sb.run(User::Root, &repo, args);
        assert_eq!(code(&out), 4, "{args:?}: {}", stderr_of(&out));
    }
    let out = assert_error(
        &sb,
        User::Root,
        &repo,
        4,
        &repo,
        &[
            "config is damaged",
            "cannot be rebuilt",
            "from a copy of this repository",
        ],
        &["repair index", "verify --read-data"],
    );
    drop(out);
    // The step it gives works: the config put back from a copy.
    bytes[last] ^= 0xff;
    fs::write(&config, &bytes).expect("restore config");
    assert_eq!(code(&sb.run(User::Root, &repo, &["verify"])), 0);
}

/// The last non-empty line of stderr.
fn hint(o: &Output) -> String {
    stderr_of(o)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn verify_findings_suggest_the_repair_that_helps() {
    let (sb, repo, _, _) = with_baseline();
    let packs = crate::common::pack_files(&repo);
    assert!(packs.len() >= 2, "{packs:?}");
    // A lost pack: `repair snapshots`, not the verify just run.
    fs::remove_file(&packs[0]).expect("rm pack");
    let out = sb.run(User::Root, &repo, &["verify"]);
    assert_eq!(code(&out), 1, "{}", stderr_of(&out));
    let h = hint(&out);
    assert!(h.contains("'snapkeep repair snapshots'"), "{h}");
    assert!(!h.contains("verify"), "{h}");
    let out = sb.run(User::Root, &repo, &["verify", "--read-data"]);
    assert_eq!(code(&out), 1, "{}", stderr_of(&out));
    // No finding sends the user back to the command that printed it.
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr_of(&out)
    );
    assert!(
        !all.contains("run 'snapkeep verify"),
        "a finding suggests the verify just run: {all}"
    );
    assert!(
        hint(&out).contains("'snapkeep repair snapshots --read-data'"),
        "{}",
        hint(&out)
    );
    // Following it (with --forget, as the hint says, for the damaged original) clears the
    // findings.
    let out = sb.run(User::Root, &repo, &["repair", "snapshots", "--forget"]);
    assert_eq!(code(&out), 0, "{}", stderr_of(&out));
    assert_eq!(code(&sb.run(User::Root, &repo, &["verify"])), 0);

    // A damaged pack: the findings say what is wrong, none sends the user back to the
    // verify that printed it, and the hint names the repair.
    let (sb, repo, _, _) = with_baseline();
    let pack = crate::common::pack_files(&repo)[0].clone();
    let mut bytes = fs::read(&pack).expect("read pack");
    for b in bytes.iter_mut().take(64) {
        *b ^= 0x55;
    }
    write(&pack, &bytes);
    let out = sb.run(User::Root, &repo, &["verify", "--read-data"]);
    assert_eq!(code(&out), 1, "{}", stderr_of(&out));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr_of(&out)
    );
    assert!(
        all.contains("damaged") || all.contains("does not match"),
        "no finding names the damage: {all}"
    );
    assert!(
        !all.contains("run 'snapkeep verify"),
        "a finding suggests the verify just run: {all}"
    );
    assert!(hint(&out).contains("'snapkeep repair snapshots"), "{all}");

    // A damaged index file: `repair index` first.
    let (sb, repo, _, _) = with_baseline();
    let index = crate::common::index_files(&repo);
    write(&index[0], b"not an index file");
    let out = sb.run(User::Root, &repo, &["verify"]);
    assert_eq!(code(&out), 1, "{}", stderr_of(&out));
    let h = hint(&out);
    assert!(h.contains("'snapkeep repair index'"), "{h}");
    let out = sb.run(User::Root, &repo, &["repair", "index"]);
    assert_eq!(code(&out), 0, "{}", stderr_of(&out));
    assert_eq!(
        code(&sb.run(User::Root, &repo, &["verify"])),
        0,
        "after repair index"
    );
}
