//! The repository config object (`config`): written once at `init`, never changed.
//!
//! Layout: a framed object (magic `SKCONFIG`, version = repository format version). Format 1
//! (plain): the payload is postcard of [`RepoConfig`]. Format 2 (encrypted): the payload is
//! postcard of [`SealedConfig`]: the repository id and the encryption scheme in the clear (a
//! reader needs them before it has a key), and the [`RepoConfig`] sealed.

use serde::{Deserialize, Serialize};

use super::{REPO_FORMAT_SEALED, REPO_FORMAT_VERSION, decode, encode, frame, read_u32, unframe};
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

    /// Encodes the framed object of a plain (format 1) repository.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        frame(MAGIC, self.version, &encode(self))
    }

    /// Decodes and checks a framed config of a plain repository.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        match StoredConfig::parse(bytes)? {
            StoredConfig::Plain(c) => Ok(c),
            StoredConfig::Sealed(_) => Err(Error::InvalidInput(
                "the repository is encrypted; open it with its password".into(),
            )),
        }
    }

    /// The postcard payload, for sealing into a [`SealedConfig`].
    #[must_use]
    pub fn payload(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes and checks a config payload of format `version` (a plain one's, or a sealed
    /// one's once opened).
    pub fn from_payload(payload: &[u8], version: u32) -> Result<Self> {
        let cfg: RepoConfig = decode(payload, "repository config")?;
        if cfg.version != version {
            return Err(Error::corrupt(
                "repository config",
                format!(
                    "it says format {} inside a format {version} frame",
                    cfg.version
                ),
            ));
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

/// The config of an encrypted repository as stored: what a reader needs before it has a key,
/// and the [`RepoConfig`] sealed (kind `Config`, named by the id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedConfig {
    /// The repository id (the same as inside the sealed config).
    pub id: [u8; 16],
    /// The encryption scheme, e.g. `xchacha20poly1305-blake3`.
    pub encryption: String,
    /// The sealed postcard of the [`RepoConfig`].
    pub sealed: Vec<u8>,
}

impl SealedConfig {
    /// Encodes the framed object (format 2).
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        frame(MAGIC, REPO_FORMAT_SEALED, &encode(self))
    }
}

/// A stored config, before any key is used: plain, or sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredConfig {
    Plain(RepoConfig),
    Sealed(SealedConfig),
}

impl StoredConfig {
    /// Decodes a framed config of either format; a newer format is `UnsupportedFormat`.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let object = "repository config";
        let version = if bytes.len() >= 12 {
            read_u32(bytes, 8)
        } else {
            REPO_FORMAT_VERSION
        };
        match version {
            REPO_FORMAT_SEALED => {
                let payload = unframe(MAGIC, REPO_FORMAT_SEALED, bytes, object)?;
                let s: SealedConfig = decode(payload, object)?;
                Ok(StoredConfig::Sealed(s))
            }
            _ => {
                let payload =
                    unframe(MAGIC, REPO_FORMAT_VERSION, bytes, object).map_err(|e| match e {
                        Error::UnsupportedFormat { object, found, .. } => {
                            Error::UnsupportedFormat {
                                object,
                                found,
                                supported: REPO_FORMAT_SEALED,
                            }
                        }
                        e => e,
                    })?;
                RepoConfig::from_payload(payload, REPO_FORMAT_VERSION).map(StoredConfig::Plain)
            }
        }
    }

    /// The repository id, readable without a key.
    #[must_use]
    pub fn id(&self) -> [u8; 16] {
        match self {
            StoredConfig::Plain(c) => c.id,
            StoredConfig::Sealed(s) => s.id,
        }
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
