//! `snapkeep completions SHELL`: the shell completion script of this command line.

use clap::CommandFactory;

use crate::cli::args::Cli;

/// Prints the completion script for `shell` on stdout.
pub fn run(shell: clap_complete::Shell) {
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "snapkeep",
        &mut std::io::stdout(),
    );
}
