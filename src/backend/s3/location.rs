//! Where an S3 repository lives: `s3://bucket/prefix`, parsed and shown.

use std::fmt;

use crate::backend::check_key;
use crate::error::{Error, Result};

/// A repository location `s3://bucket/prefix`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// The key prefix without leading or trailing `/` (empty: the bucket's root).
    pub prefix: String,
}

impl S3Location {
    /// Parses `s3://bucket[/prefix]`.
    pub fn parse(url: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::InvalidInput(format!(
                "'{url}' is not a usable S3 location ({why}); write it as s3://bucket/prefix"
            ))
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("it does not start with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok {
            return Err(bad(
                "the bucket name must be 3 to 63 lowercase letters, digits, '-' or '.'",
            ));
        }
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty() && check_key(prefix).is_err() {
            return Err(bad(
                "the prefix may hold only letters, digits, '-', '_', '.' and '/' and no empty, '.' or '..' part",
            ));
        }
        Ok(S3Location {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_or_say_why_not() {
        let l = S3Location::parse("s3://my-bucket/some/prefix/").expect("parse");
        assert_eq!(l.bucket, "my-bucket");
        assert_eq!(l.prefix, "some/prefix");
        assert_eq!(l.to_string(), "s3://my-bucket/some/prefix");
        let root = S3Location::parse("s3://bucket").expect("parse");
        assert_eq!(root.prefix, "");
        assert_eq!(root.to_string(), "s3://bucket");
        for bad in [
            "bucket/x",
            "s3://",
            "s3://UPPER/x",
            "s3://ok-bucket/../x",
            "s3://ok-bucket/a//b",
            "s3://ok-bucket/a b",
        ] {
            let e = S3Location::parse(bad).expect_err(bad);
            assert!(e.is_input_error(), "{bad}: {e}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }
}
