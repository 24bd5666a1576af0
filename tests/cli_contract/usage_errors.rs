//! Usage and input errors exit 2.

use crate::harness::{Sandbox, expect_code, json, run, stderr, stdout};

#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, its steps in order")]
fn usage_and_input_errors_exit_2() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let repo = sb.path("repo");
    let s = src.to_str().expect("utf8");

    let missing = sb.path("no-such-dir");
    let out = sb.run(&repo, &["snapshot", missing.to_str().expect("utf8")]);
    expect_code(&out, 2, "missing source");
    assert_eq!(stdout(&out), "");
    assert!(stderr(&out).contains("no-such-dir"), "{}", stderr(&out));
    assert!(!repo.exists(), "a failed snapshot created the repository");
    let out = sb.run(
        &repo,
        &["--json", "snapshot", missing.to_str().expect("utf8")],
    );
    expect_code(&out, 2, "missing source, --json");
    assert_eq!(json(&out)["exit_code"], 2);

    let file = src.join("a.txt");
    let file_repo = sb.path("file-repo");
    expect_code(
        &sb.run(&file_repo, &["snapshot", file.to_str().expect("utf8")]),
        2,
        "source is a file",
    );
    expect_code(
        &sb.run(&repo, &["snapshot", "--bogus-flag", s]),
        2,
        "unknown flag",
    );
    expect_code(&sb.run(&repo, &["frobnicate"]), 2, "unknown command");
    expect_code(
        &sb.run(&repo, &["restore", "latest"]),
        2,
        "missing argument",
    );
    expect_code(&run(sb.cmd()), 2, "no command");
    let glob_repo = sb.path("glob-repo");
    expect_code(
        &sb.run(&glob_repo, &["snapshot", "--exclude", "[", s]),
        2,
        "bad glob",
    );

    let fresh = sb.path("fresh");
    expect_code(
        &sb.run(&fresh, &["init", "--chunk-avg", "1000"]),
        2,
        "bad avg",
    );
    expect_code(
        &sb.run(&fresh, &["init", "--chunk-avg", "lots"]),
        2,
        "bad size",
    );
    expect_code(
        &sb.run(&fresh, &["init", "--compression", "lz4"]),
        2,
        "bad compression",
    );
    expect_code(
        &sb.run(&fresh, &["init", "--pack-size", "1KiB"]),
        2,
        "small pack size",
    );
    assert!(
        !fresh.join("config").exists(),
        "a refused init wrote a config"
    );

    // Commands that need a repository, on a path without one.
    for args in [&["list"][..], &["verify"], &["restore", "latest", "t"]] {
        let out = sb.run(&sb.path("nothing-here"), args);
        expect_code(&out, 2, &format!("{args:?} without a repository"));
        assert!(stderr(&out).contains("init"), "no hint: {}", stderr(&out));
    }
    // An empty repository has no 'latest'.
    expect_code(&sb.run(&repo, &["init"]), 0, "init");
    expect_code(
        &sb.run(
            &repo,
            &["restore", "latest", sb.path("t").to_str().expect("utf8")],
        ),
        2,
        "latest of an empty repository",
    );

    let out = run({
        let mut c = sb.cmd();
        c.arg("--help");
        c
    });
    expect_code(&out, 0, "--help");
    assert!(stdout(&out).contains("snapshot"));
    let out = run({
        let mut c = sb.cmd();
        c.arg("--version");
        c
    });
    expect_code(&out, 0, "--version");
}

/// With `--json` anywhere on the command line, a command line clap refuses (unknown flag,
/// unknown command, missing argument, bad value, no command) still gives exactly the error
/// document `{error, exit_code}` on stdout, exit 2, and the human text on stderr; `--help` and
/// `--version` are no errors.
#[test]
fn usage_errors_with_json_give_the_error_document() {
    let sb = Sandbox::new();
    let repo = sb.path("repo");
    expect_code(&sb.run(&repo, &["init"]), 0, "init");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--json", "snapshot", "--bogus-flag", "src"],
            "--bogus-flag",
        ),
        (&["list", "--bogus-flag", "--json"], "--bogus-flag"),
        (&["--json", "frobnicate"], "frobnicate"),
        (&["--json", "restore", "latest"], "TARGET"),
        (&["ls", "--json"], "SNAPSHOT"),
        (&["--json", "--progress", "sideways", "list"], "sideways"),
        (&["--json"], "subcommand"),
    ];
    for (args, names) in cases {
        let out = sb.run(&repo, args);
        expect_code(&out, 2, &format!("{args:?}"));
        let v = json(&out);
        let keys: Vec<&String> = v.as_object().expect("an object").keys().collect();
        assert_eq!(keys, ["error", "exit_code"], "{args:?}: {v}");
        assert_eq!(v["exit_code"], 2, "{args:?}: {v}");
        let error = v["error"].as_str().expect("error is a string");
        assert!(
            error.contains(names),
            "{args:?}: the error does not name {names}: {error}"
        );
        assert!(!error.contains('\n'), "{args:?}: not one line: {error:?}");
        assert!(
            stderr(&out).contains(names),
            "{args:?}: no human text on stderr: {}",
            stderr(&out)
        );
    }
    // Without --json, stdout stays empty.
    let out = sb.run(&repo, &["frobnicate"]);
    expect_code(&out, 2, "unknown command without --json");
    assert_eq!(stdout(&out), "");
    // --help and --version are answers, not errors, also with --json.
    for flag in ["--help", "--version"] {
        let out = sb.run(&repo, &["--json", flag]);
        expect_code(&out, 0, flag);
        assert!(
            stdout(&out).contains("snapkeep"),
            "{flag}: {}",
            stdout(&out)
        );
    }
}
