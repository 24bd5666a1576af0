//! A fault-injecting decorator for tests and drills: fails the Nth write operation, optionally
//! leaving a torn (prefix-only) object behind, as a crash or a full disk would.
//!
//! Counted operations: `put`, `put_if_absent`, `put_file`, `flush` and `delete`. Reads pass
//! through. Once the fault has fired, every later write fails too (the process is "dead").

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::Backend;
use crate::error::{Error, Result};

/// How the failing operation fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The operation writes nothing and returns an I/O error (EIO).
    Fail,
    /// A streamed `put_file` (a pack) leaves the first half of the object under its key, then
    /// returns an error. Whole-object `put`s stay atomic, as the `Backend` contract requires of
    /// every store, so for them `Tear` fails like `Fail`.
    Tear,
    /// The operation returns "no space left on device" (ENOSPC) and writes nothing.
    NoSpace,
}

/// Wraps a backend and fails its `fail_at`-th write operation (0-based).
pub struct FaultyBackend {
    inner: Arc<dyn Backend>,
    fail_at: u64,
    fault: Fault,
    ops: AtomicU64,
    fired: AtomicBool,
}

impl FaultyBackend {
    /// A backend whose `fail_at`-th write operation fails with `fault`.
    #[must_use]
    pub fn new(inner: Arc<dyn Backend>, fail_at: u64, fault: Fault) -> Self {
        FaultyBackend {
            inner,
            fail_at,
            fault,
            ops: AtomicU64::new(0),
            fired: AtomicBool::new(false),
        }
    }

    /// Write operations attempted so far.
    #[must_use]
    pub fn ops(&self) -> u64 {
        self.ops.load(Ordering::SeqCst)
    }

    /// Whether the fault has fired.
    #[must_use]
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// `Some(error)` when this write must fail.
    fn tick(&self, op: &'static str, key: &str) -> Option<(Fault, Error)> {
        let n = self.ops.fetch_add(1, Ordering::SeqCst);
        if n < self.fail_at && !self.fired() {
            return None;
        }
        let first = !self.fired.swap(true, Ordering::SeqCst);
        let fault = if first { self.fault } else { Fault::Fail };
        let source = match fault {
            Fault::NoSpace => std::io::Error::from_raw_os_error(28),
            _ => std::io::Error::from_raw_os_error(5),
        };
        Some((fault, Error::backend(op, key, source)))
    }
}

impl Backend for FaultyBackend {
    fn location(&self) -> String {
        format!("faulty({})", self.inner.location())
    }

    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        match self.tick("store", key) {
            None => self.inner.put(key, data),
            Some((_, e)) => Err(e),
        }
    }

    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool> {
        match self.tick("store", key) {
            None => self.inner.put_if_absent(key, data),
            Some((_, e)) => Err(e),
        }
    }

    fn put_file(&self, key: &str, path: &Path) -> Result<()> {
        match self.tick("store", key) {
            None => self.inner.put_file(key, path),
            Some((Fault::Tear, e)) => {
                if let Ok(data) = std::fs::read(path) {
                    let _ = self.inner.put(key, &data[..data.len() / 2]);
                }
                let _ = std::fs::remove_file(path);
                Err(e)
            }
            Some((_, e)) => {
                let _ = std::fs::remove_file(path);
                Err(e)
            }
        }
    }

    fn flush(&self, keys: &[String]) -> Result<()> {
        match self.tick("sync", keys.first().map_or("(none)", String::as_str)) {
            None => self.inner.flush(keys),
            Some((_, e)) => Err(e),
        }
    }

    fn delete(&self, key: &str) -> Result<()> {
        match self.tick("delete", key) {
            None => self.inner.delete(key),
            Some((_, e)) => Err(e),
        }
    }

    forward_backend!(inner: get, get_versioned, get_range, get_range_hot, get_range_hot_among, keep_hot, list, exists, staging, local_path);
}
