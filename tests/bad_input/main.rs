//! Bad input never costs data (reliability issue, "bad input" list): a missing or non-directory
//! source, unreadable files and directories, fifos, sockets and devices, symlink loops,
//! non-UTF-8 names, files deleted, swapped, grown or shrunk between the walk and the read, a
//! read-only repository and two snapshots racing into one repository.
//!
//! Each case ends either in a clear error (one sentence naming the path, the contract's exit
//! code, never a panic or a hang) or in a counted, reported skip (`skipped` > 0 and a warning
//! naming the path), and afterwards every earlier snapshot still verifies with `--read-data`
//! and restores what it stored. The tests run as root and drop to `nobody` (65534) where
//! permissions matter; every child process is killed (and the test failed) after 60 s.
//!
//! One module per kind of bad input; `harness` holds the sandbox, the CLI runner with its
//! timeout, and trees as data.

#[path = "../common/mod.rs"]
mod common;

mod changing_files;
mod concurrent_snapshots;
mod harness;
mod missing_source;
mod non_utf8_names;
mod not_a_repository;
mod read_only_repository;
mod special_files;
mod symlink_loops;
mod unreadable;
