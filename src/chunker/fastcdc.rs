//! FastCDC 2020 cut points through the pinned `fastcdc` crate's `v2020::cut`.
//!
//! Normalization level 1 and the crate's unseeded gear table. Changing either changes every
//! cut point and so every chunk id: the golden test in `tests/golden_chunker.rs` pins them.

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
}

impl FastCdc2020 {
    pub(crate) fn new(p: &ChunkerParams) -> Self {
        let (mask_s, mask_l) = v2020::select_masks(p.avg as usize, v2020::Normalization::Level1);
        FastCdc2020 {
            min: p.min as usize,
            avg: p.avg as usize,
            max: p.max as usize,
            mask_s,
            mask_l,
        }
    }

    /// Length of the first chunk of `data` (`data` holds at most `max` bytes, or all that is
    /// left of the stream).
    pub(crate) fn cut(&self, data: &[u8]) -> usize {
        if data.is_empty() {
            return 0;
        }
        let (_, n) = v2020::cut(
            data,
            self.min,
            self.avg,
            self.max,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
        );
        n.max(1)
    }
}
