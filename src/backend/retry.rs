//! A decorator that retries transient backend errors with exponential backoff and jitter.
//!
//! Owns: [`RetryingBackend`] and its [`RetryPolicy`].
//!
//! Invariants:
//! - only errors whose [`Error::is_transient`] is true are retried (the backend that raised
//!   them decides: the S3 backend marks transport failures, 5xx, 408 and 429); a missing object,
//!   bad input, damage or a refused request fails at once;
//! - at most `max_attempts` attempts per call; the delay before attempt `n + 1` is drawn
//!   uniformly from `[d/2, d]` with `d = min(max_delay, base_delay · 2ⁿ)`;
//! - `put_if_absent` stays exact: when an attempt failed ambiguously (its write may have
//!   landed) and a later attempt finds the key taken, the stored bytes are read and compared
//!   with ours; equal bytes mean our write landed and the answer is `true`;
//! - `put_file` keeps a hard link (or copy) of the staged file while it tries, since an attempt
//!   consumes the file; the link is removed when the call returns.
//!
//! Must not: retry anything that is not transient, or hold state between calls.

use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::Backend;
use crate::error::{Error, Result};

/// How many times and how patiently to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included (at least 1).
    pub max_attempts: u32,
    /// Delay before the first retry (before jitter).
    pub base_delay: Duration,
    /// Largest delay between two attempts (before jitter).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 6 attempts, 200 ms doubling up to 5 s: about 10 s of patience in all.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (0 for the first), with jitter.
    #[must_use]
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(30)).unwrap_or(u32::MAX);
        let full = self
            .base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        let half = full / 2;
        let spread = full.saturating_sub(half);
        let nanos = u64::try_from(spread.as_nanos()).unwrap_or(u64::MAX);
        let jitter = if nanos == 0 {
            0
        } else {
            random_u64() % (nanos + 1)
        };
        half + Duration::from_nanos(jitter)
    }
}

/// A random number from the standard library's per-process random hash keys.
fn random_u64() -> u64 {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(SEQ.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// Wraps a backend and retries its transient failures.
pub struct RetryingBackend {
    inner: Arc<dyn Backend>,
    policy: RetryPolicy,
    retries: AtomicU64,
}

impl RetryingBackend {
    /// Retries `inner`'s transient failures by `policy`.
    #[must_use]
    pub fn new(inner: Arc<dyn Backend>, policy: RetryPolicy) -> Self {
        RetryingBackend {
            inner,
            policy,
            retries: AtomicU64::new(0),
        }
    }

    /// Retries made so far (attempts after a first one failed).
    #[must_use]
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Runs `op` until it succeeds, fails for good, or the attempts are used up. `op` gets
    /// whether an earlier attempt failed transiently.
    fn retry<T>(&self, mut op: impl FnMut(bool) -> Result<T>) -> Result<T> {
        let mut failed_before = false;
        let mut attempt = 1;
        loop {
            match op(failed_before) {
                Err(e) if e.is_transient() && attempt < self.policy.max_attempts.max(1) => {
                    std::thread::sleep(self.policy.delay(attempt - 1));
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    failed_before = true;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// A sibling name for the kept copy of a staged file.
fn keep_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".retry");
    path.with_file_name(name)
}

impl Backend for RetryingBackend {
    forward_backend!(inner: location, keep_hot);
    forward_backend!(inner via retry: put);

    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool> {
        self.retry(|failed_before| match self.inner.put_if_absent(key, data)? {
            true => Ok(true),
            // An earlier attempt may have stored our bytes before its answer was lost.
            false if failed_before => Ok(self.inner.get(key)? == data),
            false => Ok(false),
        })
    }

    fn put_file(&self, key: &str, path: &Path) -> Result<()> {
        let keep = keep_path(path);
        let _ = std::fs::remove_file(&keep);
        let kept = std::fs::hard_link(path, &keep).is_ok() || std::fs::copy(path, &keep).is_ok();
        if !kept {
            // Without a second copy the staged file cannot be offered twice: one attempt.
            return self.inner.put_file(key, path);
        }
        let res = self.retry(|failed_before| {
            if failed_before {
                // The failed attempt consumed (or left) the file: put the kept copy back.
                let _ = std::fs::remove_file(path);
                std::fs::hard_link(&keep, path)
                    .or_else(|_| std::fs::copy(&keep, path).map(|_| ()))
                    .map_err(|e| Error::io("restore staged file", path, e))?;
            }
            self.inner.put_file(key, path)
        });
        let _ = std::fs::remove_file(&keep);
        if res.is_err() {
            let _ = std::fs::remove_file(path);
        }
        res
    }

    forward_backend!(inner via retry: flush, get, get_versioned, get_range, get_range_hot, get_range_hot_among, list, delete, exists);
    forward_backend!(inner: staging, local_path);
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::backend::{MemoryBackend, ObjectInfo};

    /// Fails chosen calls transiently; a "lost answer" failure performs the write first.
    struct Flaky {
        inner: MemoryBackend,
        /// Per call (in order): `None` passes, `Some(true)` writes then fails, `Some(false)`
        /// fails without writing. Calls past the end pass.
        script: Mutex<Vec<Option<bool>>>,
        calls: AtomicU64,
        permanent: bool,
    }

    impl Flaky {
        fn new(script: Vec<Option<bool>>) -> Self {
            Flaky {
                inner: MemoryBackend::new(),
                script: Mutex::new(script.into_iter().rev().collect()),
                calls: AtomicU64::new(0),
                permanent: false,
            }
        }

        fn step(&self) -> Option<bool> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.script
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop()
                .flatten()
        }

        fn fail(&self, key: &str) -> Error {
            let kind = if self.permanent {
                std::io::ErrorKind::PermissionDenied
            } else {
                std::io::ErrorKind::ConnectionReset
            };
            Error::backend("store", key, std::io::Error::new(kind, "flaky"))
        }
    }

    impl Backend for Flaky {
        fn location(&self) -> String {
            "flaky".into()
        }
        fn put(&self, key: &str, data: &[u8]) -> Result<()> {
            match self.step() {
                None => self.inner.put(key, data),
                Some(write) => {
                    if write {
                        self.inner.put(key, data)?;
                    }
                    Err(self.fail(key))
                }
            }
        }
        fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool> {
            match self.step() {
                None => self.inner.put_if_absent(key, data),
                Some(write) => {
                    if write {
                        self.inner.put_if_absent(key, data)?;
                    }
                    Err(self.fail(key))
                }
            }
        }
        fn get(&self, key: &str) -> Result<Vec<u8>> {
            match self.step() {
                None => self.inner.get(key),
                Some(_) => Err(self.fail(key)),
            }
        }
        fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
            self.inner.get_range(key, offset, len)
        }
        fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
            self.inner.list(prefix)
        }
        fn delete(&self, key: &str) -> Result<()> {
            self.inner.delete(key)
        }
        fn exists(&self, key: &str) -> Result<bool> {
            self.inner.exists(key)
        }
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
        }
    }

    #[test]
    fn meets_the_backend_contract() {
        crate::backend::contract::check(&RetryingBackend::new(
            Arc::new(MemoryBackend::new()),
            fast(),
        ));
    }

    #[test]
    fn transient_failures_are_retried_until_success() {
        let flaky = Arc::new(Flaky::new(vec![Some(false), Some(false)]));
        let r = RetryingBackend::new(Arc::clone(&flaky) as Arc<dyn Backend>, fast());
        r.put("index/a", b"x").expect("third attempt succeeds");
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 3);
        assert_eq!(r.retries(), 2);
        assert_eq!(r.get("index/a").expect("get"), b"x");
    }

    #[test]
    fn attempts_are_bounded() {
        let flaky = Arc::new(Flaky::new(vec![Some(false); 10]));
        let r = RetryingBackend::new(Arc::clone(&flaky) as Arc<dyn Backend>, fast());
        let e = r.get("index/a").expect_err("all attempts fail");
        assert!(e.is_transient());
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn permanent_failures_and_missing_objects_are_not_retried() {
        let mut f = Flaky::new(vec![Some(false), Some(false)]);
        f.permanent = true;
        let flaky = Arc::new(f);
        let r = RetryingBackend::new(Arc::clone(&flaky) as Arc<dyn Backend>, fast());
        assert!(r.put("index/a", b"x").is_err());
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 1);
        let ok = Arc::new(Flaky::new(Vec::new()));
        let r = RetryingBackend::new(Arc::clone(&ok) as Arc<dyn Backend>, fast());
        assert!(r.get("index/missing").expect_err("missing").is_not_found());
        assert_eq!(ok.calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn put_if_absent_after_a_lost_answer_reports_our_own_write() {
        // First attempt stores the object but its answer is lost; the retry finds the key
        // taken by identical bytes: that is our write.
        let flaky = Arc::new(Flaky::new(vec![Some(true)]));
        let r = RetryingBackend::new(Arc::clone(&flaky) as Arc<dyn Backend>, fast());
        assert!(r.put_if_absent("snapshots/s", b"ours").expect("pia"));
        // A key taken by other bytes stays taken, lost answer or not.
        let flaky = Arc::new(Flaky::new(vec![None, Some(false)]));
        let r = RetryingBackend::new(Arc::clone(&flaky) as Arc<dyn Backend>, fast());
        flaky.inner.put("snapshots/s", b"theirs").expect("seed");
        assert!(!r.put_if_absent("snapshots/s", b"ours").expect("pia"));
        assert_eq!(r.get("snapshots/s").expect("get"), b"theirs");
        // Without an earlier failure, "exists" is simply false even for equal bytes.
        let flaky = Arc::new(Flaky::new(Vec::new()));
        let r = RetryingBackend::new(Arc::clone(&flaky) as Arc<dyn Backend>, fast());
        flaky.inner.put("config", b"same").expect("seed");
        assert!(!r.put_if_absent("config", b"same").expect("pia"));
    }

    #[test]
    fn put_file_is_retried_from_a_kept_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let staged = dir.path().join("pack.tmp");
        std::fs::write(&staged, b"pack bytes").expect("stage");
        // The default put_file reads the file, puts (fails once), and the retry reads the
        // restored copy.
        let flaky = Arc::new(Flaky::new(vec![Some(false)]));
        let r = RetryingBackend::new(Arc::clone(&flaky) as Arc<dyn Backend>, fast());
        r.put_file("data/aa/p", &staged).expect("put_file");
        assert_eq!(r.get("data/aa/p").expect("get"), b"pack bytes");
        assert!(!staged.exists());
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
    }

    #[test]
    fn delays_grow_and_stay_bounded() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        for retry in 0..40 {
            let d = p.delay(retry);
            let full = (Duration::from_millis(100) * 2u32.saturating_pow(retry.min(20)))
                .min(Duration::from_secs(1));
            assert!(d >= full / 2 && d <= full, "retry {retry}: {d:?}");
        }
    }
}
