//! [`forward_backend!`](crate::forward_backend): how a decorator forwards the [`Backend`]
//! methods it does not change. Declared first in `backend`, so every decorator below can use
//! it by name; exported, so tests' decorators can too.
//!
//! [`Backend`]: super::Backend

/// Forwards the named [`Backend`] methods of a decorator to the backend in one of its fields,
/// so that a decorator writes only the methods it changes. With `via METHOD`, each forwarded
/// call that touches the store runs inside `self.METHOD(|failed_before| ...)` (a retry loop);
/// `location`, `staging` and `local_path` are always forwarded plainly.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use snapkeep::backend::{Backend, MemoryBackend};
///
/// /// Counts the writes that reach the store.
/// struct Counting {
///     inner: Arc<dyn Backend>,
///     puts: AtomicU64,
/// }
///
/// impl Backend for Counting {
///     snapkeep::forward_backend!(inner: location, put_if_absent, get, get_range, list, delete);
///     fn put(&self, key: &str, data: &[u8]) -> snapkeep::Result<()> {
///         self.puts.fetch_add(1, Ordering::Relaxed);
///         self.inner.put(key, data)
///     }
/// }
///
/// let c = Counting { inner: Arc::new(MemoryBackend::new()), puts: AtomicU64::new(0) };
/// c.put("index/a", b"x").unwrap();
/// assert_eq!(c.get("index/a").unwrap(), b"x");
/// assert_eq!(c.puts.load(Ordering::Relaxed), 1);
/// ```
#[macro_export]
macro_rules! forward_backend {
    ($inner:ident: $($m:ident),+ $(,)?) => {
        $( $crate::forward_backend!(@one [] $inner $m); )+
    };
    ($inner:ident via $via:ident: $($m:ident),+ $(,)?) => {
        $( $crate::forward_backend!(@one [$via] $inner $m); )+
    };
    (@call [] $inner:ident $self:ident $e:expr) => { $e };
    (@call [$via:ident] $inner:ident $self:ident $e:expr) => { $self.$via(|_| $e) };
    (@one [$($via:ident)?] $inner:ident location) => {
        fn location(&self) -> String { self.$inner.location() }
    };
    (@one [$($via:ident)?] $inner:ident staging) => {
        fn staging(&self) -> $crate::backend::Staging { self.$inner.staging() }
    };
    (@one [$($via:ident)?] $inner:ident keep_hot) => {
        fn keep_hot(&self, key: &str, offset: u64, bytes: &[u8]) { self.$inner.keep_hot(key, offset, bytes) }
    };
    (@one [$($via:ident)?] $inner:ident local_path) => {
        fn local_path(&self, key: &str) -> Option<std::path::PathBuf> { self.$inner.local_path(key) }
    };
    (@one [$($via:ident)?] $inner:ident put) => {
        fn put(&self, key: &str, data: &[u8]) -> $crate::error::Result<()> {
            $crate::forward_backend!(@call [$($via)?] $inner self self.$inner.put(key, data))
        }
    };
    (@one [$($via:ident)?] $inner:ident put_if_absent) => {
        fn put_if_absent(&self, key: &str, data: &[u8]) -> $crate::error::Result<bool> {
            $crate::forward_backend!(@call [$($via)?] $inner self self.$inner.put_if_absent(key, data))
        }
    };
    (@one [$($via:ident)?] $inner:ident put_file) => {
        fn put_file(&self, key: &str, path: &std::path::Path) -> $crate::error::Result<()> {
            $crate::forward_backend!(@call [$($via)?] $inner self self.$inner.put_file(key, path))
        }
    };
    (@one [$($via:ident)?] $inner:ident flush) => {
        fn flush(&self, keys: &[String]) -> $crate::error::Result<()> {
            $crate::forward_backend!(@call [$($via)?] $inner self self.$inner.flush(keys))
        }
    };
    (@one [$($via:ident)?] $inner:ident get) => {
        fn get(&self, key: &str) -> $crate::error::Result<Vec<u8>> {
            $crate::forward_backend!(@call [$($via)?] $inner self self.$inner.get(key))
        }
    };
    (@one [$($via:ident)?] $inner:ident get_versioned) => {
        fn get_versioned(&self, key: &str) -> $crate::error::Result<(Vec<u8>, $crate::backend::ObjectVersion)> {
            $crate::forward_backend!(@call [$($via)?] $inner self self.$inner.get_versioned(key))
        }
    };
    (@one [$($via:ident)?] $inner:ident get_range) => {
        fn get_range(&self, key: &str, offset: u64, len: u64) -> $crate::error::Result<Vec<u8>> {
            $crate::forward_backend!(@call [$($via)?] $inner self self.$inner.get_range(key, offset, len))
        }
    };
    (@one [$($via:ident)?] $inner:ident get_range_hot) => {
        fn get_range_hot(&self, key: &str, offset: u64, len: u64) -> $crate::error::Result<Vec<u8>> {
            $crate::forward_backend!(@call [$($via)?] $inner self self.$inner.get_range_hot(key, offset, len))
        }
    };
    (@one [$($via:ident)?] $inner:ident get_range_hot_among) => {
        fn get_range_hot_among(&self, key: &str, ranges: &[(u64, u64)], want: usize) -> $crate::error::Result<Vec<u8>> {
            $crate::forward_backend!(@call [$($via)?] $inner self self.$inner.get_range_hot_among(key, ranges, want))
        }
    };
    (@one [$($via:ident)?] $inner:ident list) => {
        fn list(&self, prefix: &str) -> $crate::error::Result<Vec<$crate::backend::ObjectInfo>> {
            $crate::forward_backend!(@call [$($via)?] $inner self self.$inner.list(prefix))
        }
    };
    (@one [$($via:ident)?] $inner:ident delete) => {
        fn delete(&self, key: &str) -> $crate::error::Result<()> {
            $crate::forward_backend!(@call [$($via)?] $inner self self.$inner.delete(key))
        }
    };
    (@one [$($via:ident)?] $inner:ident exists) => {
        fn exists(&self, key: &str) -> $crate::error::Result<bool> {
            $crate::forward_backend!(@call [$($via)?] $inner self self.$inner.exists(key))
        }
    };
}
