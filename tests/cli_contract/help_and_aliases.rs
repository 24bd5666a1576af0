//! `--help`: commands in the order a user needs them, global options under their own heading
//! apart from a command's own, defaults shown; the aliases restic users type.

use crate::harness::{Sandbox, expect_code, json, stdout};

/// The command names of the top-level help, in the order listed.
fn listed_commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn help_lists_commands_in_the_order_of_use_and_groups_global_options() {
    let sb = Sandbox::new();
    let mut c = sb.cmd();
    c.arg("--help");
    let out = crate::harness::run(c);
    expect_code(&out, 0, "--help");
    let help = stdout(&out);
    let names = listed_commands(&help);
    let first: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
    assert_eq!(
        first,
        ["init", "snapshot", "list", "restore", "verify"],
        "commands not in the order of use: {names:?}"
    );
    for alias in ["[alias: backup]", "[alias: snapshots]", "[alias: check]"] {
        assert!(
            help.contains(alias),
            "--help does not show {alias}:\n{help}"
        );
    }

    // A command's help: its own options first, the global ones under their own heading.
    let mut c = sb.cmd();
    c.args(["restore", "--help"]);
    let out = crate::harness::run(c);
    expect_code(&out, 0, "restore --help");
    let help = stdout(&out);
    let global = help
        .find("Global options:")
        .unwrap_or_else(|| panic!("restore --help has no 'Global options:' heading:\n{help}"));
    let own = help
        .find("--no-owner")
        .expect("restore's own --no-owner listed");
    let repo = help.find("--repo").expect("--repo listed");
    assert!(
        own < global && global < repo,
        "restore's own options and the global ones are not apart:\n{help}"
    );
    assert!(
        help.contains("[default: auto]"),
        "defaults are not shown in restore --help:\n{help}"
    );
}

#[test]
fn backup_snapshots_and_check_are_aliases() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let repo = sb.path("repo");
    expect_code(&sb.run(&repo, &["init"]), 0, "init");
    let out = sb.run(&repo, &["--json", "backup", src.to_str().expect("utf8")]);
    expect_code(&out, 0, "backup (alias of snapshot)");
    let id = json(&out)["id"].as_str().expect("id").to_owned();
    let out = sb.run(&repo, &["--json", "snapshots"]);
    expect_code(&out, 0, "snapshots (alias of list)");
    let listed = json(&out);
    assert_eq!(
        listed[0]["id"],
        id.as_str(),
        "snapshots did not list the backup"
    );
    let out = sb.run(&repo, &["--json", "check"]);
    expect_code(&out, 0, "check (alias of verify)");
    assert_eq!(json(&out)["ok"], true, "check did not verify: {listed}");
}

/// Under "Snapshot filters" stand the filters only: a command's own flags (ls -l, find's
/// patterns' options, restore's) never appear under that heading.
#[test]
fn snapshot_filters_heading_holds_only_the_filters() {
    let sb = Sandbox::new();
    for cmd in [
        "list", "restore", "verify", "ls", "diff", "show", "stats", "tag", "find", "cat", "forget",
    ] {
        let mut c = sb.cmd();
        c.args([cmd, "--help"]);
        let out = crate::harness::run(c);
        expect_code(&out, 0, &format!("{cmd} --help"));
        let help = stdout(&out);
        let section: Vec<&str> = help
            .lines()
            .skip_while(|l| !l.starts_with("Snapshot filters:"))
            .skip(1)
            .take_while(|l| l.is_empty() || l.starts_with(' '))
            .filter(|l| l.trim_start().starts_with('-'))
            .collect();
        let flags: Vec<&str> = section
            .iter()
            .map(|l| l.trim_start().split([' ', '<']).next().unwrap_or(""))
            .collect();
        assert_eq!(
            flags,
            ["--host", "--path", "--tag"],
            "{cmd} --help: flags under 'Snapshot filters':\n{help}"
        );
    }
}
