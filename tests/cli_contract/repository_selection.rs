//! Which repository: `--repo` (any bytes), `SNAPKEEP_REPO`, `$XDG_DATA_HOME`, `~/.local/share`.

use std::ffi::OsStr;

use crate::harness::{Sandbox, expect_code, json, run, stderr, stdout};

#[test]
fn repository_from_env_and_default_location() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let s = src.to_str().expect("utf8");

    // SNAPKEEP_REPO in place of --repo.
    let env_repo = sb.path("env-repo");
    let mut c = sb.cmd();
    c.env("SNAPKEEP_REPO", &env_repo).arg("init");
    expect_code(&run(c), 0, "init with SNAPKEEP_REPO");
    let mut c = sb.cmd();
    c.env("SNAPKEEP_REPO", &env_repo).args(["snapshot", s]);
    let out = run(c);
    expect_code(&out, 0, "snapshot with SNAPKEEP_REPO");
    let id = stdout(&out).trim().to_owned();
    assert!(
        env_repo.join("config").is_file(),
        "SNAPKEEP_REPO was ignored"
    );
    let mut c = sb.cmd();
    c.env("SNAPKEEP_REPO", &env_repo).args(["list", "--json"]);
    assert_eq!(json(&run(c))[0]["id"], id.as_str());
    // --repo wins over the variable.
    let flag_repo = sb.path("flag-repo");
    sb.init(&flag_repo);
    let mut c = sb.cmd();
    c.env("SNAPKEEP_REPO", &env_repo)
        .arg("--repo")
        .arg(&flag_repo)
        .args(["snapshot", s]);
    expect_code(&run(c), 0, "snapshot with --repo and SNAPKEEP_REPO");
    assert!(flag_repo.join("config").is_file());
    let mut c = sb.cmd();
    c.env("SNAPKEEP_REPO", &env_repo).args(["list", "--json"]);
    assert_eq!(json(&run(c)).as_array().map(Vec::len), Some(1));

    // Neither: $XDG_DATA_HOME/snapkeep/repo.
    let mut c = sb.cmd();
    c.args(["snapshot", s]);
    let out = run(c);
    expect_code(&out, 0, "snapshot into the default repository");
    let default = sb.path("xdg/snapkeep/repo");
    assert!(
        default.join("config").is_file(),
        "default repository not at $XDG_DATA_HOME/snapkeep/repo"
    );
    assert!(stderr(&out).contains(default.to_str().expect("utf8")));
    let mut c = sb.cmd();
    c.args(["list", "--json"]);
    assert_eq!(json(&run(c))[0]["id"], stdout(&out).trim());

    // XDG_DATA_HOME unset (or empty): ~/.local/share/snapkeep/repo.
    for xdg in [None, Some("")] {
        let mut c = sb.cmd();
        match xdg {
            None => c.env_remove("XDG_DATA_HOME"),
            Some(v) => c.env("XDG_DATA_HOME", v),
        };
        c.args(["snapshot", s]);
        expect_code(&run(c), 0, "snapshot with HOME only");
        assert!(sb.path("home/.local/share/snapkeep/repo/config").is_file());
    }
}

#[test]
fn repo_argument_may_be_non_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let sb = Sandbox::new();
    let src = sb.source("src");
    let repo = sb.root.join(OsStr::from_bytes(b"repo-\xff"));
    sb.init(&repo);
    let out = sb.run(&repo, &["snapshot", "--json", src.to_str().expect("utf8")]);
    expect_code(&out, 0, "non-UTF-8 repository path");
    json(&out);
    assert!(repo.join("config").is_file());
}

/// An empty location (`--repo "$REPO"` with REPO unset, or `SNAPKEEP_REPO=`) is an error (exit
/// 2), never the default repository used or created in its place.
#[test]
fn an_empty_location_is_refused_not_the_default() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let s = src.to_str().expect("utf8");
    let default = sb.path("xdg").join("snapkeep");
    let mut c = sb.cmd();
    c.args(["--repo", "", "snapshot", s]);
    let out = run(c);
    expect_code(&out, 2, "--repo ''");
    assert!(stderr(&out).contains("--repo"), "{}", stderr(&out));
    let mut c = sb.cmd();
    c.env("SNAPKEEP_REPO", "").args(["snapshot", s]);
    let out = run(c);
    expect_code(&out, 2, "SNAPKEEP_REPO=''");
    assert!(stderr(&out).contains("--repo"), "{}", stderr(&out));
    assert!(!default.exists(), "the default repository was created");
}
