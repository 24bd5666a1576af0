//! The repository config object (`config`): written once at `init`, never changed.
//!
//! Layout: a framed object (magic `SKCONFIG`, version = repository format version) whose
//! payload is postcard of [`RepoConfig`].

use serde::{Deserialize, Serialize};

use super::{REPO_FORMAT_VERSION, decode, encode, frame, unframe};
use crate::chunker::ChunkerParams;
use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"SKCONFIG";

/// How blob contents are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Compression {
    /// Stored as is.
    Off,
    /// zstd at the given level; a chunk that does not shrink is stored raw.
    Zstd(i32),
}

impl Default for Compression {
    fn default() -> Self {
        Compression::Zstd(1)
    }
}

impl std::str::FromStr for Compression {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::InvalidInput(format!(
                "compression '{s}' is not understood: use 'off', 'zstd' or 'zstd:LEVEL' (1-19)"
            ))
        };
        match s {
            "off" | "none" => Ok(Compression::Off),
            "zstd" => Ok(Compression::Zstd(1)),
            _ => {
                let level: i32 = s
                    .strip_prefix("zstd:")
                    .ok_or_else(bad)?
                    .parse()
                    .map_err(|_| bad())?;
                if (1..=19).contains(&level) {
                    Ok(Compression::Zstd(level))
                } else {
                    Err(bad())
                }
            }
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Compression::Off => f.write_str("off"),
            Compression::Zstd(l) => write!(f, "zstd:{l}"),
        }
    }
}

/// Fixed parameters of a repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoConfig {
    /// Repository format version (also the frame version).
    pub version: u32,
    /// Random id of this repository.
    pub id: [u8; 16],
    /// Chunk boundaries; never changed after init.
    pub chunker: ChunkerParams,
    /// Compression of new blobs.
    pub compression: Compression,
    /// Target size of a pack file in bytes.
    pub pack_size: u32,
}

impl RepoConfig {
    /// Default target pack size: 32 MiB.
    pub const DEFAULT_PACK_SIZE: u32 = 32 << 20;
    /// Smallest target pack size.
    pub const MIN_PACK_SIZE: u32 = 1 << 20;
    /// Largest target pack size (pack offsets are 32-bit; a pack may overshoot its target
    /// by one blob).
    pub const MAX_PACK_SIZE: u32 = 1 << 30;

    /// The rule for a target pack size, one place for every caller (config, init, CLI):
    /// `size` as a pack size when it lies in `MIN_PACK_SIZE..=MAX_PACK_SIZE`.
    #[must_use]
    pub fn pack_size(size: u64) -> Option<u32> {
        u32::try_from(size)
            .ok()
            .filter(|p| (Self::MIN_PACK_SIZE..=Self::MAX_PACK_SIZE).contains(p))
    }

    /// Encodes the framed object.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        frame(MAGIC, self.version, &encode(self))
    }

    /// Decodes and checks a framed config.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let payload = unframe(MAGIC, REPO_FORMAT_VERSION, bytes, "repository config")?;
        let cfg: RepoConfig = decode(payload, "repository config")?;
        if cfg.version != REPO_FORMAT_VERSION {
            return Err(Error::UnsupportedFormat {
                object: "repository config".into(),
                found: cfg.version,
                supported: REPO_FORMAT_VERSION,
            });
        }
        cfg.chunker.validate()?;
        if RepoConfig::pack_size(u64::from(cfg.pack_size)).is_none() {
            return Err(Error::corrupt(
                "repository config",
                format!("pack size {} is outside 1 MiB..1 GiB", cfg.pack_size),
            ));
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_parses() {
        assert_eq!("off".parse::<Compression>().expect("off"), Compression::Off);
        assert_eq!(
            "zstd:3".parse::<Compression>().expect("z3"),
            Compression::Zstd(3)
        );
        assert!("zstd:99".parse::<Compression>().is_err());
        assert!("lz4".parse::<Compression>().is_err());
    }
}
