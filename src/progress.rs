//! The one progress interface every long operation reports to.
//!
//! Implementations must be cheap and thread-safe: workers call [`Progress::advance`] from many
//! threads. The CLI's bars and the job coordinator's status are implementations of it.

/// What an operation is doing now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Scan,
    Snapshot,
    Commit,
    Restore,
    Verify,
}

impl Phase {
    /// Lower-case name for output.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Phase::Scan => "scan",
            Phase::Snapshot => "snapshot",
            Phase::Commit => "commit",
            Phase::Restore => "restore",
            Phase::Verify => "verify",
        }
    }
}

/// Receives progress of one operation.
pub trait Progress: Send + Sync {
    /// A phase starts with known totals (0 when unknown).
    fn phase(&self, _phase: Phase, _total_bytes: u64, _total_files: u64) {}
    /// The totals of the current phase, known once it runs (a first snapshot counts its
    /// source beside the capture); what is done so far stays.
    fn totals(&self, _total_bytes: u64, _total_files: u64) {}
    /// Work done since the last call.
    fn advance(&self, _bytes: u64, _files: u64) {}
    /// A non-fatal problem (a skipped entry, a retried read).
    fn warn(&self, _message: &str) {}
    /// Whether the operation should stop at its next safe point. An operation that sees
    /// `true` stops with `Error::Cancelled` and commits nothing.
    fn is_cancelled(&self) -> bool {
        false
    }
}

/// Ignores all progress.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
