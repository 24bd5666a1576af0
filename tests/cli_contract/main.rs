//! The command-line contract: exit codes (0 ok, 1 verify found problems, 2 usage or input
//! error, 4 other failure, never 101), stdout holding only the result (one JSON document with
//! `--json`), snapshot ids as canonical UUID v7, repository selection (--repo, SNAPKEEP_REPO,
//! $XDG_DATA_HOME), snapshot specs (id, unique prefix, short id, latest) and filters (host, path,
//! tag), tags and excludes.
//!
//! One module per part of the contract; `harness` holds the sandbox and the checks of exit
//! codes, JSON documents and snapshot ids.

#[path = "../common/mod.rs"]
mod common;

mod config_version;
mod encryption;
mod find;
mod harness;
mod help_and_aliases;
mod json_documents;
mod quiet;
mod repository_creation;
mod repository_selection;
mod rfc3339;
mod snapshot_filters;
mod snapshot_specs;
mod tags_and_excludes;
mod usage_errors;
