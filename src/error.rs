//! The crate's one error type.
//!
//! Rules for every error this crate returns:
//! - `Display` is one sentence that names the path, key or object involved and, where the
//!   caller can act, what to do. Never `{:?}` in a message.
//! - Variants are grouped by what the caller can do about them: retry (`Backend` with
//!   `transient`), fix the input (`InvalidInput`, `NotFound`), wait (`Locked`), repair the
//!   repository (`Corrupt`, `HashMismatch`, `UnsupportedFormat`), or give up (`Io`, `Poisoned`).
//! - Damage found while reading stored objects is an `Err` only when the operation cannot go
//!   on; `verify` turns the same conditions into findings (data) and keeps going.
//! - A module may keep private error types but converts them here at its boundary.

use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A local filesystem operation failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A backend (object store) operation failed.
    #[error("backend cannot {op} object '{key}': {source}")]
    Backend {
        op: &'static str,
        key: String,
        #[source]
        source: std::io::Error,
        transient: bool,
    },
    /// A stored object is damaged: its bytes do not decode or contradict each other.
    #[error(
        "{object} is damaged ({detail}); run 'snapkeep verify --read-data' and 'snapkeep repair index'"
    )]
    Corrupt { object: String, detail: String },
    /// A stored object's content does not hash to its id.
    #[error(
        "{id} does not match its content (content hashes to {actual}); the repository is damaged, run 'snapkeep verify --read-data' to see what is damaged and the repair that helps"
    )]
    HashMismatch { id: String, actual: String },
    /// An object, snapshot or path does not exist.
    #[error("{0} was not found")]
    NotFound(String),
    /// The input given by the caller is not acceptable; the message says why.
    #[error("{0}")]
    InvalidInput(String),
    /// The repository (or a resource in it) is held by another process.
    #[error("{0}")]
    Locked(String),
    /// A previous write or sync failed; the job stopped rather than continue on state that
    /// may be torn.
    #[error("an earlier write failed ({0}); the operation stopped and committed nothing, retry it")]
    Poisoned(String),
    /// The pre-snapshot hook (the database's checkpoint) failed; nothing was captured.
    #[error("the pre-snapshot hook failed: {0}; nothing was captured")]
    HookFailed(String),
    /// A captured file still failed a format stage after the bounded recaptures.
    #[error(
        "{path} failed its format check as captured: {problems}; nothing was committed (fix the database, retry, or pass --allow-inconsistent to keep it flagged)"
    )]
    Inconsistent { path: String, problems: String },
    /// Another job of the same kind is already running for the same source.
    #[error("{0} is already running; wait for it to finish or cancel it")]
    Conflict(String),
    /// The operation was cancelled before it committed anything.
    #[error("the operation was cancelled; nothing was committed")]
    Cancelled,
    /// The repository was written by a format this build does not read.
    #[error(
        "{object} has format version {found}, this build reads version {supported}; use a snapkeep release that supports it"
    )]
    UnsupportedFormat {
        object: String,
        found: u32,
        supported: u32,
    },
}

impl Error {
    /// The problem as a verify finding states it: what is wrong, without the advice to run
    /// verify (the report that holds it ends with the repair that helps).
    #[must_use]
    pub fn finding(&self) -> String {
        match self {
            Error::Corrupt { object, detail } => format!("{object} is damaged ({detail})"),
            Error::HashMismatch { id, actual } => {
                format!("{id} does not match its content (content hashes to {actual})")
            }
            other => other.to_string(),
        }
    }

    /// Build an [`Error::Io`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Build an [`Error::Backend`], classifying the `io::ErrorKind` as transient or not.
    pub fn backend(op: &'static str, key: impl Into<String>, source: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let transient = matches!(
            source.kind(),
            K::Interrupted
                | K::TimedOut
                | K::WouldBlock
                | K::ConnectionReset
                | K::ConnectionAborted
        );
        Error::Backend {
            op,
            key: key.into(),
            source,
            transient,
        }
    }

    /// Build an [`Error::Corrupt`].
    pub fn corrupt(object: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            object: object.into(),
            detail: detail.into(),
        }
    }

    /// Whether retrying the same operation may succeed.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Backend {
                transient: true,
                ..
            }
        )
    }

    /// Whether the error was caused by the caller's input (exit code 2 on the CLI).
    #[must_use]
    pub fn is_input_error(&self) -> bool {
        matches!(self, Error::InvalidInput(_) | Error::NotFound(_))
    }

    /// Whether the error means the backend object does not exist.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::NotFound(_) => true,
            Error::Backend { source, .. } | Error::Io { source, .. } => {
                source.kind() == std::io::ErrorKind::NotFound
            }
            _ => false,
        }
    }
}
