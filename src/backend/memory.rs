//! An in-memory backend for tests and fault-injection wrappers.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use super::{Backend, ObjectInfo, check_key};
use crate::error::{Error, Result};

/// Objects kept in a map; cloning shares the same store.
#[derive(Clone, Default)]
pub struct MemoryBackend {
    objects: Arc<RwLock<BTreeMap<String, Arc<Vec<u8>>>>>,
}

impl MemoryBackend {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn missing(key: &str) -> Error {
        Error::backend(
            "read",
            key,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such object"),
        )
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Vec<u8>>>> {
        self.objects
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Vec<u8>>>> {
        self.objects
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Backend for MemoryBackend {
    fn location(&self) -> String {
        "memory".into()
    }

    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        check_key(key)?;
        self.write().insert(key.to_owned(), Arc::new(data.to_vec()));
        Ok(())
    }

    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool> {
        check_key(key)?;
        let mut map = self.write();
        if map.contains_key(key) {
            return Ok(false);
        }
        map.insert(key.to_owned(), Arc::new(data.to_vec()));
        Ok(true)
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.read()
            .get(key)
            .map(|v| v.as_ref().clone())
            .ok_or_else(|| Self::missing(key))
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let map = self.read();
        let v = map.get(key).ok_or_else(|| Self::missing(key))?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
        v.get(start..end).map(<[u8]>::to_vec).ok_or_else(|| {
            Error::backend(
                "read range of",
                key,
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "range past end of object",
                ),
            )
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        Ok(self
            .read()
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| ObjectInfo::new(k.clone(), v.len() as u64))
            .collect())
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.write().remove(key);
        Ok(())
    }

    fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.read().contains_key(key))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn meets_the_backend_contract() {
        super::super::contract::check(&super::MemoryBackend::new());
    }
}
