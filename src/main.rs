//! The `snapkeep` command-line tool: a thin layer over the library (see `cli/`).

mod cli;

fn main() {
    restore_default_sigpipe();
    std::process::exit(cli::run());
}

/// Rust ignores SIGPIPE, so printing to a closed pipe (`snapkeep ls | head`) would panic.
/// A command-line filter should end quietly instead, as `cat` does.
#[expect(
    unsafe_code,
    reason = "resetting a signal disposition has no safe std API"
)]
fn restore_default_sigpipe() {
    // SAFETY: called first thing in main, before any other thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE and no handler of ours is replaced.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
