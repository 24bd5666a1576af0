//! The store a dry run writes to: reads go to the repository, writes go nowhere.
//!
//! Invariant: nothing reaches the repository through it (no put, no delete, no staged file
//! left behind); reads see the repository as it is, so dedup is counted against it.

use std::path::Path;
use std::sync::Arc;

use crate::backend::Backend;
use crate::error::{Error, Result};

/// Forwards reads to `inner` and drops every write.
pub(super) struct Discard {
    inner: Arc<dyn Backend>,
}

impl Discard {
    pub(super) fn new(inner: Arc<dyn Backend>) -> Self {
        Discard { inner }
    }
}

impl Backend for Discard {
    crate::forward_backend!(inner: location, get, get_versioned, get_range, get_range_hot, get_range_hot_among, list, exists);

    fn put(&self, _key: &str, _data: &[u8]) -> Result<()> {
        Ok(())
    }

    fn put_if_absent(&self, key: &str, _data: &[u8]) -> Result<bool> {
        Ok(!self.inner.exists(key)?)
    }

    fn delete(&self, _key: &str) -> Result<()> {
        Ok(())
    }

    fn put_file(&self, _key: &str, path: &Path) -> Result<()> {
        std::fs::remove_file(path).map_err(|e| Error::io("remove staged file", path, e))
    }
}
