//! Counting the HTTP requests the S3 client sends, by kind, through `object_store`'s
//! `HttpConnector` seam (`--show-requests`, the benchmarks).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use object_store::ClientOptions;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};

/// Number of HTTP requests sent, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// Whole-object GETs.
    pub get: u64,
    /// Ranged GETs.
    pub get_range: u64,
    /// HEADs (exists).
    pub head: u64,
    /// List pages (ListObjectsV2).
    pub list: u64,
    /// Plain PUTs.
    pub put: u64,
    /// Conditional PUTs (`If-None-Match: *`).
    pub put_if_absent: u64,
    /// Multipart requests: create, each part, complete, abort.
    pub multipart: u64,
    /// Deletes (DELETE, or a one-key bulk delete `POST ?delete`).
    pub delete: u64,
    /// Anything else (credential look-ups and the like).
    pub other: u64,
}

impl RequestCounts {
    /// All requests.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.get
            + self.get_range
            + self.head
            + self.list
            + self.put
            + self.put_if_absent
            + self.multipart
            + self.delete
            + self.other
    }

    /// The counts as `(name, count)` pairs, in a fixed order.
    #[must_use]
    pub fn fields(&self) -> [(&'static str, u64); 9] {
        [
            ("get", self.get),
            ("get_range", self.get_range),
            ("head", self.head),
            ("list", self.list),
            ("put", self.put),
            ("put_if_absent", self.put_if_absent),
            ("multipart", self.multipart),
            ("delete", self.delete),
            ("other", self.other),
        ]
    }
}

#[derive(Debug, Default)]
pub(super) struct Counters([AtomicU64; 9]);

impl Counters {
    pub(super) fn bump(&self, slot: usize) {
        self.0[slot].fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> RequestCounts {
        let v = |i: usize| self.0[i].load(Ordering::Relaxed);
        RequestCounts {
            get: v(0),
            get_range: v(1),
            head: v(2),
            list: v(3),
            put: v(4),
            put_if_absent: v(5),
            multipart: v(6),
            delete: v(7),
            other: v(8),
        }
    }
}

/// Counts each request by kind, then hands it to reqwest.
#[derive(Debug)]
struct CountingService {
    inner: HttpClient,
    counters: Arc<Counters>,
}

#[async_trait::async_trait]
impl HttpService for CountingService {
    async fn call(&self, req: HttpRequest) -> std::result::Result<HttpResponse, HttpError> {
        let query = req.uri().query().unwrap_or("");
        let has = |name: &str| query.split('&').any(|q| q.split('=').next() == Some(name));
        let multipart = has("uploadId") || has("uploads");
        let slot = match req.method().as_str() {
            _ if multipart => 6,
            "GET" if has("list-type") => 3,
            "GET" if req.headers().contains_key("range") => 1,
            "GET" => 0,
            "HEAD" => 2,
            "PUT" if req.headers().contains_key("if-none-match") => 5,
            "PUT" => 4,
            // object_store deletes through the bulk API (POST ?delete), one key per request.
            "DELETE" => 7,
            "POST" if has("delete") => 7,
            _ => 8,
        };
        self.counters.bump(slot);
        self.inner.execute(req).await
    }
}

#[derive(Debug)]
pub(super) struct CountingConnector {
    pub(super) counters: Arc<Counters>,
}

impl HttpConnector for CountingConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(CountingService {
            inner,
            counters: Arc::clone(&self.counters),
        }))
    }
}
