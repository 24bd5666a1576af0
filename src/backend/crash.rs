//! A store that tells "written" from "durable", for power-cut drills: it loses, at a chosen
//! sync, everything that was not yet made durable.
//!
//! The model follows the local backend on a journaling filesystem:
//! - `put` and `put_if_absent` are durable when they return (tmp + fsync + rename + fsync of
//!   the directory): each is one sync;
//! - `put_file` (a pack) is visible at once and durable only after a `flush` that names its
//!   key: the flush is one sync;
//! - `delete` is durable when it returns (unlink + fsync of the directory): one sync.
//!
//! `CrashBackend::new(objects, cut_at)` starts from durable `objects`; sync number `cut_at`
//! (0-based) never happens: the power goes out instead. That operation and every later one
//! fail with EIO, and [`CrashBackend::durable_image`] returns what a machine would find after
//! rebooting.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use super::{Backend, ObjectInfo, Staging, check_key};
use crate::error::{Error, Result};

#[derive(Default)]
struct State {
    visible: BTreeMap<String, Vec<u8>>,
    durable: BTreeMap<String, Vec<u8>>,
    syncs: u64,
    dead: bool,
}

/// A store that loses what was not durable when the power is cut (see the module doc).
pub struct CrashBackend {
    state: Mutex<State>,
    cut_at: u64,
    staging: PathBuf,
}

impl CrashBackend {
    /// A store holding `objects` (all durable) whose sync number `cut_at` cuts the power.
    #[must_use]
    pub fn new(objects: impl IntoIterator<Item = (String, Vec<u8>)>, cut_at: u64) -> Self {
        let durable: BTreeMap<String, Vec<u8>> = objects.into_iter().collect();
        CrashBackend {
            state: Mutex::new(State {
                visible: durable.clone(),
                durable,
                ..State::default()
            }),
            cut_at,
            staging: std::env::temp_dir(),
        }
    }

    /// Stages `put_file` inputs in `dir` instead of the system temp directory.
    #[must_use]
    pub fn with_staging(mut self, dir: &Path) -> Self {
        self.staging = dir.to_path_buf();
        self
    }

    /// Syncs that happened so far.
    #[must_use]
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// Whether the power was cut.
    #[must_use]
    pub fn cut(&self) -> bool {
        self.lock().dead
    }

    /// What survives: the durable objects.
    #[must_use]
    pub fn durable_image(&self) -> Vec<(String, Vec<u8>)> {
        self.lock()
            .durable
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn dead(key: &str) -> Error {
        Error::backend(
            "reach the store for",
            key,
            std::io::Error::other("power cut (simulated)"),
        )
    }

    /// Runs one sync: cuts the power instead when it is sync number `cut_at`.
    fn sync(&self, st: &mut State, key: &str, apply: impl FnOnce(&mut State)) -> Result<()> {
        if st.dead {
            return Err(Self::dead(key));
        }
        if st.syncs == self.cut_at {
            st.dead = true;
            return Err(Self::dead(key));
        }
        apply(st);
        st.syncs += 1;
        Ok(())
    }

    fn alive(st: &State, key: &str) -> Result<()> {
        if st.dead {
            Err(Self::dead(key))
        } else {
            Ok(())
        }
    }
}

impl Backend for CrashBackend {
    fn location(&self) -> String {
        "crash-test store".into()
    }

    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        check_key(key)?;
        let mut st = self.lock();
        self.sync(&mut st, key, |st| {
            st.visible.insert(key.to_owned(), data.to_vec());
            st.durable.insert(key.to_owned(), data.to_vec());
        })
    }

    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool> {
        check_key(key)?;
        let mut st = self.lock();
        Self::alive(&st, key)?;
        if st.visible.contains_key(key) {
            return Ok(false);
        }
        self.sync(&mut st, key, |st| {
            st.visible.insert(key.to_owned(), data.to_vec());
            st.durable.insert(key.to_owned(), data.to_vec());
        })?;
        Ok(true)
    }

    fn put_file(&self, key: &str, path: &Path) -> Result<()> {
        check_key(key)?;
        let data = std::fs::read(path).map_err(|e| Error::io("read staged file", path, e))?;
        std::fs::remove_file(path).map_err(|e| Error::io("remove staged file", path, e))?;
        let mut st = self.lock();
        Self::alive(&st, key)?;
        st.visible.insert(key.to_owned(), data);
        Ok(())
    }

    fn flush(&self, keys: &[String]) -> Result<()> {
        let mut st = self.lock();
        let first = keys.first().map_or("(nothing)", String::as_str).to_owned();
        self.sync(&mut st, &first, |st| {
            for k in keys {
                if let Some(v) = st.visible.get(k).cloned() {
                    st.durable.insert(k.clone(), v);
                }
            }
        })
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        let st = self.lock();
        Self::alive(&st, key)?;
        st.visible.get(key).cloned().ok_or_else(|| {
            Error::backend(
                "read",
                key,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            )
        })
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let whole = self.get(key)?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| start.checked_add(l))
            .unwrap_or(usize::MAX);
        whole.get(start..end).map(<[u8]>::to_vec).ok_or_else(|| {
            Error::corrupt(
                key,
                format!(
                    "range {offset}+{len} is past the end ({} bytes)",
                    whole.len()
                ),
            )
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let st = self.lock();
        Self::alive(&st, prefix)?;
        Ok(st
            .visible
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| ObjectInfo::new(k.clone(), v.len() as u64))
            .collect())
    }

    fn delete(&self, key: &str) -> Result<()> {
        let mut st = self.lock();
        Self::alive(&st, key)?;
        if !st.visible.contains_key(key) {
            return Ok(());
        }
        self.sync(&mut st, key, |st| {
            st.visible.remove(key);
            st.durable.remove(key);
        })
    }

    fn exists(&self, key: &str) -> Result<bool> {
        let st = self.lock();
        Self::alive(&st, key)?;
        Ok(st.visible.contains_key(key))
    }

    fn staging(&self) -> Staging {
        Staging {
            dir: self.staging.clone(),
            shared: false,
        }
    }
}

/// Keys that are visible but not durable now (for tests of the model itself).
#[must_use]
pub fn not_durable(b: &CrashBackend) -> HashSet<String> {
    let st = b.lock();
    st.visible
        .keys()
        .filter(|k| st.durable.get(*k) != st.visible.get(*k))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meets_the_backend_contract() {
        super::super::contract::check(&CrashBackend::new(Vec::new(), u64::MAX));
    }

    #[test]
    fn unflushed_files_do_not_survive_a_cut() {
        let dir = tempfile::tempdir().expect("tmp");
        let b =
            CrashBackend::new(vec![("old".to_string(), b"o".to_vec())], 3).with_staging(dir.path());
        b.put("a", b"1").expect("sync 0");
        let f = dir.path().join("p");
        std::fs::write(&f, b"pack").expect("stage");
        b.put_file("data/p", &f).expect("visible");
        assert!(not_durable(&b).contains("data/p"));
        b.delete("old").expect("sync 1");
        let g = dir.path().join("q");
        std::fs::write(&g, b"pack2").expect("stage");
        b.put_file("data/q", &g).expect("visible");
        b.flush(&["data/p".to_string()]).expect("sync 2");
        assert!(b.put("b", b"2").is_err(), "sync 3 is the cut");
        assert!(b.cut());
        assert!(b.get("data/p").is_err(), "dead after the cut");
        let image: BTreeMap<String, Vec<u8>> = b.durable_image().into_iter().collect();
        assert_eq!(
            image.keys().cloned().collect::<Vec<_>>(),
            vec!["a".to_string(), "data/p".to_string()],
            "the flushed pack survives; the unflushed one, the deleted object and 'b' do not"
        );
    }
}
