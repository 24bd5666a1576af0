//! Content-defined chunk boundaries.
//!
//! Owns: [`ChunkerParams`] (stored in the repository config at `init`, never changed after)
//! and [`Chunker`], which finds cut points and nothing else: no I/O, no hashing.
//!
//! Invariant: the cut points of a byte sequence depend only on the bytes and the parameters,
//! never on how the caller windows them, as long as every window handed to
//! [`Chunker::next_cut`] holds at least `max` bytes or reaches the end of the data.

mod fastcdc;

pub use self::fastcdc::FastCdc2020;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which boundary algorithm a repository uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ChunkerKind {
    /// FastCDC (2020 variant, normalization level 1, unseeded gear table) from the pinned
    /// `fastcdc` crate.
    FastCdc2020,
}

/// Chunk size limits; fixed for the life of a repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub kind: ChunkerKind,
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl ChunkerParams {
    /// Default average chunk size: 256 KiB (min = avg/2, max = avg*4).
    pub const DEFAULT_AVG: u32 = 256 * 1024;

    /// Parameters derived from an average size: min = avg/2, max = avg*4. A minimum of half
    /// the average means the gear hash scans about half of the bytes (cut-point skipping).
    pub fn with_avg(avg: u32) -> Result<Self> {
        let p = ChunkerParams {
            kind: ChunkerKind::FastCdc2020,
            min: avg / 2,
            avg,
            max: avg.saturating_mul(4),
        };
        p.validate()?;
        Ok(p)
    }

    /// Checks the limits the algorithm supports.
    pub fn validate(&self) -> Result<()> {
        let ok = self.avg.is_power_of_two()
            && (4096..=(4 << 20)).contains(&self.avg)
            && self.min >= 1024
            && self.min <= self.avg
            && self.max >= self.avg
            && self.max <= 16 << 20
            && self.min.is_multiple_of(2)
            && self.max.is_multiple_of(2);
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidInput(format!(
                "chunk sizes min={} avg={} max={} are not supported: avg must be a power of two \
                 from 4 KiB to 4 MiB, min ≤ avg ≤ max ≤ 16 MiB",
                self.min, self.avg, self.max
            )))
        }
    }
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams {
            kind: ChunkerKind::FastCdc2020,
            min: Self::DEFAULT_AVG / 2,
            avg: Self::DEFAULT_AVG,
            max: Self::DEFAULT_AVG * 4,
        }
    }
}

/// A boundary finder built from [`ChunkerParams`].
#[derive(Clone, Debug)]
pub struct Chunker {
    inner: FastCdc2020,
    max: usize,
}

impl Chunker {
    /// Builds the chunker for `params` with the published gear table (a plain repository).
    pub fn new(params: &ChunkerParams) -> Result<Self> {
        Self::with_seed(params, 0)
    }

    /// Builds the chunker for `params` with the gear table XORed with `seed` (0: the
    /// published table), an encrypted repository's secret.
    pub fn with_seed(params: &ChunkerParams, seed: u64) -> Result<Self> {
        params.validate()?;
        Ok(Chunker {
            inner: FastCdc2020::new(params, seed),
            max: params.max as usize,
        })
    }

    /// The largest chunk this chunker emits; windows must hold at least this much.
    #[must_use]
    pub fn max_size(&self) -> usize {
        self.max
    }

    /// Length of the chunk that starts at `data[0]`, or `None` when `data` is shorter than the
    /// maximum chunk and `at_end` is false (the caller must supply more bytes first).
    /// Returns `Some(0)` only for empty `data`.
    #[must_use]
    pub fn next_cut(&self, data: &[u8], at_end: bool) -> Option<usize> {
        if !at_end && data.len() < self.max {
            return None;
        }
        Some(self.inner.cut(&data[..data.len().min(self.max)]))
    }

    /// The complete chunks `(offset, len)` at the start of a window, in order. Unless `at_end`,
    /// the tail shorter than a maximum chunk is left for the next window (its start is the
    /// end of the last chunk returned).
    #[must_use]
    pub fn cuts(&self, window: &[u8], at_end: bool) -> Vec<(usize, usize)> {
        let mut out = Vec::with_capacity(window.len() / (self.max / 4).max(1) + 1);
        let mut p = 0;
        while p < window.len() {
            match self.next_cut(&window[p..], at_end) {
                Some(n) if n > 0 => {
                    out.push((p, n));
                    p += n;
                }
                _ => break,
            }
        }
        out
    }

    /// All chunk lengths of a complete buffer, in order.
    #[must_use]
    pub fn cut_all(&self, data: &[u8]) -> Vec<usize> {
        let mut out = Vec::with_capacity(data.len() / (self.max / 4).max(1) + 1);
        let mut pos = 0;
        while pos < data.len() {
            let n = self
                .next_cut(&data[pos..], true)
                .unwrap_or(data.len() - pos);
            out.push(n);
            pos += n;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
        let mut v = Vec::with_capacity(len);
        while v.len() < len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            v.extend_from_slice(&seed.to_le_bytes());
        }
        v.truncate(len);
        v
    }

    #[test]
    fn windowing_does_not_change_cut_points() {
        let p = ChunkerParams::with_avg(16 * 1024).expect("params");
        let c = Chunker::new(&p).expect("chunker");
        let data = pseudo_random(3 << 20, 7);
        let whole = c.cut_all(&data);
        // Feed in windows of exactly `max` bytes (the minimum the contract allows).
        let mut windowed = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let end = (pos + c.max_size()).min(data.len());
            let n = c
                .next_cut(&data[pos..end], end == data.len())
                .expect("window holds max bytes");
            windowed.push(n);
            pos += n;
        }
        assert_eq!(whole, windowed);
        assert_eq!(whole.iter().sum::<usize>(), data.len());
        assert!(whole.iter().all(|&n| n <= c.max_size()));
    }

    #[test]
    fn short_window_asks_for_more() {
        let c = Chunker::new(&ChunkerParams::default()).expect("chunker");
        assert_eq!(c.next_cut(&[0u8; 100], false), None);
        assert_eq!(c.next_cut(&[0u8; 100], true), Some(100));
        assert_eq!(c.next_cut(&[], true), Some(0));
    }

    #[test]
    fn rejects_bad_params() {
        assert!(ChunkerParams::with_avg(1000).is_err());
        assert!(ChunkerParams::with_avg(1 << 30).is_err());
        assert!(ChunkerParams::with_avg(64 * 1024).is_ok());
    }
}
