//! FastCDC 2020 cut points through the pinned `fastcdc` crate's `v2020::cut_gear`.
//!
//! Normalization level 1 and the crate's unseeded gear table, or (an encrypted repository)
//! that table XORed with the repository's secret seed (`v2020::get_gear_with_seed`), so cut
//! points, and so chunk sizes, say nothing about a known file. Changing either changes every
//! cut point and so every chunk id: the golden test in `tests/golden_chunker.rs` pins them.

use std::borrow::Cow;

use fastcdc::v2020;

use super::ChunkerParams;

/// FastCDC 2020 with precomputed masks.
#[derive(Clone, Debug)]
pub struct FastCdc2020 {
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
    /// The gear table and its left-shifted twin: the crate's own (borrowed), or XORed with a
    /// seed.
    gear: std::sync::Arc<(Cow<'static, [u64]>, Cow<'static, [u64]>)>,
}

impl FastCdc2020 {
    pub(crate) fn new(p: &ChunkerParams, seed: u64) -> Self {
        let (mask_s, mask_l) = v2020::select_masks(p.avg as usize, v2020::Normalization::Level1);
        let gear = std::sync::Arc::new(v2020::get_gear_with_seed(seed));
        FastCdc2020 {
            min: p.min as usize,
            avg: p.avg as usize,
            max: p.max as usize,
            mask_s,
            mask_l,
            gear,
        }
    }

    /// Length of the first chunk of `data` (`data` holds at most `max` bytes, or all that is
    /// left of the stream).
    pub(crate) fn cut(&self, data: &[u8]) -> usize {
        if data.is_empty() {
            return 0;
        }
        let (_, n) = v2020::cut_gear(
            data,
            self.min,
            self.avg,
            self.max,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear.0,
            &self.gear.1,
        );
        n.max(1)
    }
}
