//! An unknown config version or a damaged config is a clear error (exit 4), never a write.

use std::fs;

use crate::common;
use crate::harness::{Sandbox, code, expect_code, stderr};

/// Rewrites the config frame with another version and a valid checksum.
fn reframe(config: &[u8], version: u32) -> Vec<u8> {
    let body = &config[..config.len() - 32];
    let mut out = body[..8].to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&body[12..]);
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

#[test]
fn unknown_config_version_is_a_clear_error() {
    let sb = Sandbox::new();
    let src = sb.source("src");
    let repo = sb.path("repo");
    sb.init(&repo);
    expect_code(
        &sb.run(&repo, &["snapshot", src.to_str().expect("utf8")]),
        0,
        "snapshot",
    );
    let path = repo.join("config");
    let config = fs::read(&path).expect("read config");

    // The documented frame: "SKCONFIG" | version u32 LE | payload | blake3 of the rest.
    assert_eq!(&config[..8], b"SKCONFIG");
    assert_eq!(
        u32::from_le_bytes(config[8..12].try_into().expect("4 bytes")),
        2,
        "an encrypted repository is format 2"
    );
    let (body, sum) = config.split_at(config.len() - 32);
    assert_eq!(blake3::hash(body).as_bytes(), sum, "config checksum layout");
    assert_eq!(reframe(&config, 2), config, "re-framing is faithful");

    fs::write(&path, reframe(&config, 99)).expect("rewrite config");
    match snapkeep::Repository::open_local(&repo) {
        Err(snapkeep::Error::UnsupportedFormat {
            found, supported, ..
        }) => {
            assert_eq!((found, supported), (99, 2));
        }
        other => panic!("expected UnsupportedFormat, got {other:?}"),
    }
    let snapshots_before = common::files_under(&repo.join("snapshots"));
    for args in [
        &["list"][..],
        &["verify"],
        &["snapshot", src.to_str().expect("utf8")],
        &["restore", "latest", sb.path("t").to_str().expect("utf8")],
    ] {
        let out = sb.run(&repo, args);
        let err = stderr(&out);
        assert_eq!(code(&out), 4, "{args:?} on a version-99 repository: {err}");
        assert!(
            err.contains("version 99") && err.contains("config"),
            "{args:?}: unclear error: {err}"
        );
    }
    assert_eq!(
        common::files_under(&repo.join("snapshots")),
        snapshots_before,
        "a snapshot was written into a repository of unknown version"
    );

    // A damaged config (one flipped byte): also a clear error, never a panic.
    let mut damaged = config.clone();
    damaged[20] ^= 0x01;
    fs::write(&path, &damaged).expect("damage config");
    let out = sb.run(&repo, &["list"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 4, "list on a damaged config: {err}");
    assert!(
        err.contains("config") && err.contains("damaged"),
        "unclear error: {err}"
    );
}
