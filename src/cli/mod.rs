//! Command-line interface. Output rules: with `--json`, stdout holds exactly one JSON
//! document; without it, stdout holds the command's result (a snapshot id, the snapshot
//! table, verify findings) and everything else (messages, warnings, progress) goes to stderr.
//! Exit codes: 0 ok, 1 verify found problems, 2 usage or input error, 3 repository locked,
//! 4 any other failure, 5 `snapshot` saved but some entries could not be read.
//!
//! Owns: `run` (parse, dispatch, report), the error text and the exit code of a failure.
//! The clap definitions are in `args`, each verb in `cmd/<verb>.rs`, what every verb reads
//! (global options, the repository) in `env`.

mod args;
mod cmd;
mod env;
mod inspect;
mod location;
mod output;
mod password;
mod progress;

use clap::{CommandFactory, FromArgMatches};
use serde_json::json;

use self::args::Cli;
use self::location::RepoOrigin;

/// Runs the CLI and returns the process exit code.
pub fn run() -> i32 {
    let cli = match parse() {
        Ok(c) => c,
        Err(e) => return parse_failure(&e),
    };
    let mut location = None;
    let result = cmd::dispatch(&cli, &mut location);
    cmd::bench::report_rss_if_asked();
    if cli.show_requests
        && let Some(loc) = &location
    {
        eprintln!("{}", json!({ "requests": loc.repo.requests_json() }));
    }
    match result {
        Ok(code) => code,
        Err(e) => {
            let code = exit_code(&e);
            if cli.json {
                println!("{}", json!({ "error": chain(&e), "exit_code": code }));
            }
            eprintln!("snapkeep: error: {}", chain(&e));
            code
        }
    }
}

/// Parses the command line, noting where the repository's location came from.
fn parse() -> Result<Cli, clap::Error> {
    let matches = Cli::command().try_get_matches()?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    cli.repo_origin = match (cli.repo.as_ref(), matches.value_source("repo")) {
        (Some(p), Some(clap::parser::ValueSource::EnvVariable)) if !p.as_os_str().is_empty() => {
            RepoOrigin::Env
        }
        (Some(p), Some(_)) if !p.as_os_str().is_empty() => RepoOrigin::Flag,
        _ => RepoOrigin::Default,
    };
    Ok(cli)
}

/// A command line clap refused (exit 2; with `--json` anywhere on it, also the error document
/// on stdout), or `--help` / `--version` (exit 0, printed as asked).
fn parse_failure(e: &clap::Error) -> i32 {
    if !e.use_stderr() {
        let _ = e.print();
        return 0;
    }
    if std::env::args_os().skip(1).any(|a| a == "--json") {
        println!("{}", json!({ "error": first_line(e), "exit_code": 2 }));
    }
    let _ = e.print();
    2
}

/// clap's error message without its `error: ` prefix, usage and hints: the first line, with
/// what follows on indented lines (the missing arguments) joined to it.
fn first_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let mut out = lines
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_owned();
    for l in lines.take_while(|l| l.starts_with(' ')) {
        out.push(' ');
        out.push_str(l.trim());
    }
    out
}

/// The error and its causes, skipping a cause whose text the message before already holds
/// (our errors name their cause in their own sentence).
fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// The exit code of a failure: 2 for usage and input errors, 3 for a locked repository or a
/// conflicting writer, 4 for the rest.
fn exit_code(e: &anyhow::Error) -> i32 {
    match e.downcast_ref::<snapkeep::Error>() {
        Some(se) if se.is_input_error() => 2,
        Some(snapkeep::Error::Locked(_) | snapkeep::Error::Conflict(_)) => 3,
        _ if e.downcast_ref::<UsageError>().is_some() => 2,
        _ => 4,
    }
}

/// A command line the CLI refuses before the library sees it (exit code 2).
#[derive(Debug)]
struct UsageError(String);
impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for UsageError {}

/// A [`UsageError`] with this message, as an `anyhow::Error`.
fn usage_error(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}
