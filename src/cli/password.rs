//! Where the password of an encrypted repository comes from, in restic's order: `--password-file
//! PATH`, `SNAPKEEP_PASSWORD_FILE`, `--password-command CMD`, `SNAPKEEP_PASSWORD_COMMAND`,
//! `SNAPKEEP_PASSWORD`, else a prompt when stdin is a terminal (twice when a new password is
//! set). No source and no terminal is a usage error (exit 2).
//!
//! A password file or command output loses one trailing newline (`\n` or `\r\n`), nothing
//! else. The password is held in a buffer that is wiped when dropped.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use zeroize::Zeroizing;

use super::usage_error;

/// The password sources the command line names (the environment is read when asked).
#[derive(Clone, Debug, Default)]
pub struct PasswordSource {
    pub file: Option<PathBuf>,
    pub command: Option<String>,
    /// `copy`'s source repository: its own flags (`--from-password-file`, …) and variables
    /// (`SNAPKEEP_FROM_PASSWORD_FILE`, …).
    pub from: bool,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl PasswordSource {
    /// The password for `what` (e.g. "the repository at /r"); `new` asks twice at a prompt.
    pub fn get(&self, what: &str, new: bool) -> Result<Zeroizing<Vec<u8>>> {
        let (flag, var) = if self.from {
            ("--from-", "SNAPKEEP_FROM_")
        } else {
            ("--", "SNAPKEEP_")
        };
        let (flag_file, flag_command) = (
            format!("{flag}password-file"),
            format!("{flag}password-command"),
        );
        let (env_file, env_command, env_password) = (
            format!("{var}PASSWORD_FILE"),
            format!("{var}PASSWORD_COMMAND"),
            format!("{var}PASSWORD"),
        );
        if let Some(f) = &self.file {
            return from_file(f, &flag_file);
        }
        if let Some(f) = env(&env_file) {
            return from_file(Path::new(&f), &env_file);
        }
        if let Some(c) = &self.command {
            return from_command(c, &flag_command);
        }
        if let Some(c) = env(&env_command) {
            return from_command(&c, &env_command);
        }
        if let Some(p) = env(&env_password) {
            return Ok(Zeroizing::new(p.into_bytes()));
        }
        if !std::io::stdin().is_terminal() {
            return Err(usage_error(format!(
                "{what} is encrypted and no password was given; use {flag_file}, \
                 {flag_command}, {env_file}, {env_command} or {env_password} (or run on a terminal to be asked)"
            )));
        }
        prompt(what, new)
    }

    /// A new password at the terminal (twice), for `key add` and `key passwd`.
    pub fn prompt_only(what: &str) -> Result<Zeroizing<Vec<u8>>> {
        if !std::io::stdin().is_terminal() {
            return Err(usage_error(format!(
                "no new password for {what}: give --new-password-file (or run on a terminal to be asked)"
            )));
        }
        prompt(what, true)
    }
}

/// The password a file holds.
pub fn from_file(path: &Path, flag: &str) -> Result<Zeroizing<Vec<u8>>> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
        usage_error(format!(
            "cannot read the password file {} ({flag}): {e}",
            path.display()
        ))
    })?);
    let p = strip_newline(&bytes);
    if p.is_empty() {
        return Err(usage_error(format!(
            "the password file {} ({flag}) is empty; put the password in it",
            path.display()
        )));
    }
    Ok(Zeroizing::new(p.to_vec()))
}

/// The password a shell command prints on stdout.
fn from_command(cmd: &str, flag: &str) -> Result<Zeroizing<Vec<u8>>> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run the password command '{cmd}' ({flag})"))?;
    let stdout = Zeroizing::new(out.stdout);
    if !out.status.success() {
        return Err(usage_error(format!(
            "the password command '{cmd}' ({flag}) failed with {}; fix it or give the password another way",
            out.status
        )));
    }
    let p = strip_newline(&stdout);
    if p.is_empty() {
        return Err(usage_error(format!(
            "the password command '{cmd}' ({flag}) printed nothing; it must print the password"
        )));
    }
    Ok(Zeroizing::new(p.to_vec()))
}

/// Reads the password at the terminal (twice for a new one).
fn prompt(what: &str, new: bool) -> Result<Zeroizing<Vec<u8>>> {
    let first = Zeroizing::new(
        rpassword::prompt_password(format!("password for {what}: "))
            .context("cannot read the password from the terminal")?
            .into_bytes(),
    );
    if first.is_empty() {
        return Err(usage_error(
            "an empty password protects nothing; give a password",
        ));
    }
    if new {
        let again = Zeroizing::new(
            rpassword::prompt_password("the same password again: ")
                .context("cannot read the password from the terminal")?
                .into_bytes(),
        );
        if *again != *first {
            return Err(usage_error("the two passwords differ; nothing was changed"));
        }
    }
    Ok(first)
}

/// `b` without one trailing `\n` or `\r\n`.
fn strip_newline(b: &[u8]) -> &[u8] {
    let b = b.strip_suffix(b"\n").unwrap_or(b);
    b.strip_suffix(b"\r").unwrap_or(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_trailing_newline_is_dropped() {
        assert_eq!(strip_newline(b"pw\n"), b"pw");
        assert_eq!(strip_newline(b"pw\r\n"), b"pw");
        assert_eq!(strip_newline(b"pw\n\n"), b"pw\n");
        assert_eq!(strip_newline(b" pw "), b" pw ");
    }

    #[test]
    fn file_and_command_sources() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("pw");
        std::fs::write(&f, b"secret\n").expect("write");
        assert_eq!(&*from_file(&f, "--password-file").expect("file"), b"secret");
        std::fs::write(&f, b"\n").expect("write");
        assert!(from_file(&f, "--password-file").is_err());
        assert!(from_file(&dir.path().join("missing"), "--password-file").is_err());
        assert_eq!(
            &*from_command("printf 'abc\\n'", "--password-command").expect("cmd"),
            b"abc"
        );
        assert!(from_command("exit 3", "--password-command").is_err());
        assert!(from_command("true", "--password-command").is_err());
    }
}
