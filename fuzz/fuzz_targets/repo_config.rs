//! Repository config (`config`, framed `SKCONFIG`, version = repository format version). The
//! input is decoded as a stored object as is, and framed by the harness with `format::frame`
//! so the checksum passes and the postcard decoder and the config checks are exercised. On
//! success: what opening a repository does next, building the chunker from the decoded
//! parameters (it must accept them: `from_bytes` validated them) and cutting the input into
//! chunks (they must cover it exactly). Round trip: `to_bytes` -> `from_bytes` gives the same
//! config.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapkeep::chunker::Chunker;
use snapkeep::format::repo_config::RepoConfig;
use snapkeep::format::{REPO_FORMAT_VERSION, frame};

const MAGIC: &[u8; 8] = b"SKCONFIG";

fn check(bytes: &[u8], data: &[u8]) {
    let Ok(cfg) = RepoConfig::from_bytes(bytes) else {
        return;
    };
    assert!((RepoConfig::MIN_PACK_SIZE..=RepoConfig::MAX_PACK_SIZE).contains(&cfg.pack_size));
    let chunker = Chunker::new(&cfg.chunker).expect("a decoded config's chunker is valid");
    let mut next = 0;
    for (offset, len) in chunker.cuts(data, true) {
        assert_eq!(offset, next);
        assert!(len > 0 && len <= chunker.max_size());
        next = offset + len;
    }
    assert_eq!(next, data.len());
    let _ = cfg.compression.to_string();
    let back = RepoConfig::from_bytes(&cfg.to_bytes()).expect("re-encoded config");
    assert_eq!(back, cfg);
}

fuzz_target!(|data: &[u8]| {
    check(data, data);
    check(&frame(MAGIC, REPO_FORMAT_VERSION, data), data);
});
