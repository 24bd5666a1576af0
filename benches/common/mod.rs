//! Helpers shared by the benchmarks (each one uses a subset): deterministic input data and the
//! flat-sampling group most of them measure in.
#![allow(
    dead_code,
    reason = "shared by the bench binaries; each one uses a subset"
)]

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode};

pub const MIB: usize = 1 << 20;

/// xorshift64: the same bytes on every run, with no dependence on a crate's RNG.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// `len` pseudo-random bytes: incompressible, no repeats.
    pub fn random(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(len);
        v
    }

    /// Log-like text: words from a small vocabulary and decimal numbers (zstd:1 ≈ 3×).
    pub fn text(&mut self, len: usize) -> Vec<u8> {
        const WORDS: [&str; 16] = [
            "INSERT",
            "INTO",
            "users",
            "VALUES",
            "select",
            "from",
            "where",
            "id",
            "name",
            "email",
            "created_at",
            "status",
            "active",
            "pending",
            "orders",
            "total",
        ];
        let mut v = Vec::with_capacity(len + 64);
        while v.len() < len {
            let r = self.next_u64();
            v.extend_from_slice(WORDS[(r & 15) as usize].as_bytes());
            v.push(b' ');
            if r & 0x30 == 0 {
                v.extend_from_slice(format!("{}", (r >> 8) % 1_000_000).as_bytes());
                v.push(if r & 0x40 == 0 { b'\n' } else { b' ' });
            }
        }
        v.truncate(len);
        v
    }

    /// 32 pseudo-random bytes (an id).
    pub fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for part in out.chunks_exact_mut(8) {
            part.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        out
    }

    /// A pseudo-random index below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next_u64() % n as u64).expect("index fits usize")
    }
}

/// `len` pseudo-random bytes from `seed` (xorshift64 output after `seed`).
#[must_use]
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    Rng(seed).random(len)
}

/// `len` bytes of log-like text from `seed`.
#[must_use]
pub fn text_like(len: usize, seed: u64) -> Vec<u8> {
    Rng(seed).text(len)
}

/// A benchmark group of 10 flat samples after `warm_up` (one long iteration per sample, as the
/// large inputs here need).
pub fn flat_group<'a>(
    c: &'a mut Criterion,
    name: &str,
    warm_up: Duration,
) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(warm_up);
    group
}
