//! The verbs: one module each (`repair` holds both of its kinds; `unlock` and `completions`
//! are a few lines), and `dispatch`, which hands each parsed command to its module.

pub mod bench;
mod cat;
mod completions;
mod copy;
mod diff;
mod find;
mod forget;
mod init;
mod key;
mod list;
mod ls;
mod prune;
mod repair;
mod restore;
mod show;
mod snapshot;
mod stats;
mod tag;
mod unlock;
mod verify;

use anyhow::Result;

use super::args::{Cli, Command};
use super::env::Env;

/// Runs the command of `cli` and returns its exit code. The environment is left in
/// `location` (also when the command fails) for the request report of `--show-requests`.
pub fn dispatch(cli: &Cli, location: &mut Option<Env>) -> Result<i32> {
    let env: &Env = location.insert(Env::new(cli)?);
    match &cli.command {
        Command::Init {
            chunk_avg,
            compression,
            pack_size,
            encryption,
            kdf,
        } => init::run(
            env,
            &init::Flags {
                chunk_avg: *chunk_avg,
                compression,
                pack_size: *pack_size,
                encryption,
                kdf,
            },
        ),
        Command::Snapshot(args) => snapshot::run(env, args, cli.verbose),
        Command::List { filter } => list::run(env, filter),
        Command::Ls {
            snapshot,
            path,
            long,
            filter,
        } => ls::run(env, snapshot, path.as_deref(), *long, filter),
        Command::Diff { from, to, filter } => diff::run(env, from, to, filter),
        Command::Show { snapshot, filter } => show::run(env, snapshot, filter),
        Command::Stats { snapshot, filter } => stats::run(env, snapshot.as_deref(), filter),
        Command::Cat { kind, id, filter } => cat::run(env, *kind, id.as_deref(), filter),
        Command::Tag {
            snapshot,
            add,
            remove,
            filter,
        } => tag::run(env, snapshot, add, remove, filter),
        Command::Find { patterns, filter } => find::run(env, patterns, filter),
        Command::Forget(args) => forget::run(env, args),
        Command::Prune { gc, dry_run } => prune::run(env, gc, *dry_run),
        Command::Unlock { remove_all } => unlock::run(env, *remove_all),
        Command::Completions { shell } => {
            completions::run(*shell);
            Ok(0)
        }
        Command::Restore(args) => restore::run(env, args),
        Command::Verify {
            snapshot,
            read_data,
            read_data_subset,
            stages,
            filter,
        } => verify::run(
            env,
            snapshot.as_deref(),
            *read_data,
            read_data_subset.as_deref(),
            stages,
            filter,
        ),
        Command::Repair { what } => repair::run(env, what),
        Command::Key { what } => key::run(env, what),
        Command::Copy(args) => copy::run(env, args),
        Command::Bench(args) => bench::run(env, args),
    }
}
