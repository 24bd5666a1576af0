//! The S3 backend against a real S3-compatible server (s3s-fs in CI): the backend contract,
//! multipart uploads and split ranged reads, conditional writes, missing objects and the
//! decorator stack. Skipped (with a line saying so) when no server is configured.

mod common;

use std::sync::Arc;

use snapkeep::backend::{
    Backend, CachingBackend, MULTIPART_THRESHOLD, RetryPolicy, RetryingBackend, contract,
};

use common::s3::S3Server;

#[test]
fn meets_the_backend_contract() {
    let Some(server) = S3Server::from_env("meets_the_backend_contract") else {
        return;
    };
    let b = server.backend(&server.fresh_url("contract"));
    contract::check(&b);
    let c = b.request_counts();
    assert!(
        c.put_if_absent >= 2 && c.list >= 3 && c.delete >= 2,
        "{c:?}"
    );
}

#[test]
fn the_decorated_stack_meets_the_backend_contract() {
    let Some(server) = S3Server::from_env("the_decorated_stack_meets_the_backend_contract") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let s3: Arc<dyn Backend> = Arc::new(server.backend(&server.fresh_url("stack")));
    let retrying: Arc<dyn Backend> = Arc::new(RetryingBackend::new(s3, RetryPolicy::default()));
    contract::check(&CachingBackend::new(retrying, tmp.path().join("cache")));
}

#[test]
fn large_objects_go_multipart_and_large_ranges_are_read_in_parallel_parts() {
    let Some(server) = S3Server::from_env("large_objects_go_multipart") else {
        return;
    };
    let b = server.backend(&server.fresh_url("multipart"));
    let len = usize::try_from(MULTIPART_THRESHOLD).expect("size") + 3 * 1024 * 1024 + 17;
    let data = common::random_bytes(len, 42);
    let staged = b.staging().dir.join("big.pack");
    std::fs::write(&staged, &data).expect("stage");
    b.put_file("data/ab/big", &staged)
        .expect("multipart upload");
    assert!(!staged.exists(), "put_file consumes the staged file");
    let c = b.request_counts();
    // create + 3 parts of 8 MiB + complete
    assert!(c.multipart >= 4, "{c:?}");
    assert_eq!(c.put, 0, "{c:?}");
    assert_eq!(b.list("data/ab/").expect("list")[0].size, data.len() as u64);
    let before = b.request_counts().get_range;
    let offset = 5 * 1024 * 1024 + 3;
    let range = b
        .get_range("data/ab/big", offset as u64, 9 * 1024 * 1024)
        .expect("range");
    assert!(range == data[offset..offset + 9 * 1024 * 1024]);
    assert!(
        b.request_counts().get_range - before >= 4,
        "a 9 MiB range is read as several parallel GETs"
    );
    assert!(b.get("data/ab/big").expect("get") == data);
    // A range past the end is an error, not a short read.
    let e = b
        .get_range("data/ab/big", data.len() as u64 - 10, 11)
        .expect_err("past the end");
    assert!(!e.is_not_found() && !e.is_transient(), "{e}");
}

#[test]
fn conditional_writes_and_missing_objects_behave_as_locally() {
    let Some(server) = S3Server::from_env("conditional_writes_and_missing_objects") else {
        return;
    };
    let url = server.fresh_url("conditional");
    let b = server.backend(&url);
    assert!(b.put_if_absent("config", b"first").expect("create"));
    assert!(!b.put_if_absent("config", b"second").expect("exists"));
    assert_eq!(b.get("config").expect("get"), b"first");
    let c = b.request_counts();
    assert_eq!(c.put_if_absent, 2, "{c:?}");
    // A second client on the same prefix sees the same object and is refused as well.
    let other = server.backend(&url);
    assert!(!other.put_if_absent("config", b"third").expect("exists"));
    let e = b.get("snapshots/none").expect_err("missing");
    assert!(e.is_not_found(), "{e}");
    assert!(
        e.to_string().contains(&format!("{url}/snapshots/none")),
        "{e}"
    );
    assert!(!b.exists("snapshots/none").expect("exists"));
    b.delete("snapshots/none")
        .expect("deleting a missing object is fine");
}

#[test]
fn a_wrong_secret_is_a_clear_permanent_error() {
    let Some(server) = S3Server::from_env("a_wrong_secret_is_a_clear_permanent_error") else {
        return;
    };
    let mut bad = server.clone();
    bad.secret_key = "not-the-secret".into();
    let b = bad.backend(&server.fresh_url("denied"));
    let e = b.get("config").expect_err("refused");
    assert!(!e.is_transient(), "{e}");
    assert!(!e.is_not_found(), "{e}");
    assert!(e.to_string().contains("/config"), "{e}");
    // Retrying does not retry what cannot pass.
    let r = RetryingBackend::new(Arc::new(b), RetryPolicy::default());
    assert!(r.get("config").is_err());
    assert_eq!(r.retries(), 0);
}

#[test]
fn an_unreachable_endpoint_is_transient_and_retried() {
    let Some(server) = S3Server::from_env("an_unreachable_endpoint_is_transient") else {
        return;
    };
    // A port nothing listens on (bound then closed), on loopback only.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut dead = server.clone();
    dead.endpoint = format!("http://127.0.0.1:{port}");
    let b = Arc::new(dead.backend(&server.fresh_url("dead")));
    let e = b.get("config").expect_err("nothing listens");
    assert!(e.is_transient(), "{e}");
    let r = RetryingBackend::new(
        Arc::clone(&b) as Arc<dyn Backend>,
        RetryPolicy {
            max_attempts: 3,
            base_delay: std::time::Duration::from_millis(5),
            max_delay: std::time::Duration::from_millis(20),
        },
    );
    assert!(r.get("config").is_err());
    assert_eq!(r.retries(), 2);
    assert_eq!(b.request_counts().get, 4);
}
