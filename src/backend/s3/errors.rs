//! The S3 client's errors as the crate's: one sentence naming the object, `NotFound` as the
//! local backend reports it, and the one place that tells a transient failure from a lasting
//! one.

use object_store::client::HttpError;

use crate::error::Error;

/// Converts an `object_store` error into ours: one sentence naming the object, transient or not.
pub(super) fn store_error(op: &'static str, url: &str, e: &object_store::Error) -> Error {
    use std::io::ErrorKind as K;
    let (kind, transient) = match e {
        object_store::Error::NotFound { .. } => (K::NotFound, false),
        object_store::Error::AlreadyExists { .. } => (K::AlreadyExists, false),
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => (K::PermissionDenied, false),
        object_store::Error::Generic { .. } | object_store::Error::JoinError { .. } => {
            if is_transient(e) {
                (K::TimedOut, true)
            } else {
                (K::Other, false)
            }
        }
        _ => (K::Other, false),
    };
    let hint = match kind {
        K::NotFound => "no such object",
        K::PermissionDenied => {
            "access denied; check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the bucket policy"
        }
        _ if transient => "the store or network failed; retry later",
        _ => "check the endpoint (AWS_ENDPOINT_URL), the bucket and the credentials",
    };
    Error::Backend {
        op,
        key: url.to_owned(),
        source: std::io::Error::new(kind, format!("{hint} ({})", one_line(e))),
        transient,
    }
}

/// Transport failures, 5xx, 408 and 429 (and a 200 whose body is an error) may pass on retry.
pub(super) fn is_transient(e: &object_store::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<HttpError>().is_some() {
            // A transport failure (connect, send, timeout, interrupted, a body cut short): the
            // request may not have reached the store, or its answer was lost. Retrying is safe
            // because every write here is idempotent or conditional.
            return true;
        }
        source = s.source();
    }
    let text = e.to_string();
    if text.contains("error response") {
        return true;
    }
    match text.find("status code: ") {
        Some(i) => {
            let code = text[i + "status code: ".len()..]
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok());
            matches!(code, Some(500..=599 | 408 | 429))
        }
        None => false,
    }
}

/// The error and its causes on one line, without repeating a cause the message already holds.
fn one_line(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        source = s.source();
    }
    out.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_classification_follows_the_status() {
        let generic = |msg: &str| object_store::Error::Generic {
            store: "S3",
            source: msg.to_string().into(),
        };
        assert!(is_transient(&generic(
            "Server returned non-2xx status code: 503 Service Unavailable: slow down"
        )));
        assert!(is_transient(&generic(
            "Server returned non-2xx status code: 429 Too Many Requests: "
        )));
        assert!(!is_transient(&generic(
            "Server returned non-2xx status code: 400 Bad Request: no"
        )));
        let e = store_error(
            "read",
            "s3://b/p/config",
            &object_store::Error::NotFound {
                path: "p/config".into(),
                source: "gone".into(),
            },
        );
        assert!(e.is_not_found());
        assert!(!e.is_transient());
        assert!(e.to_string().contains("s3://b/p/config"), "{e}");
    }
}
