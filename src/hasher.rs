//! Chunk hashing: blake3 ids and CRC32 of chunk contents.
//!
//! `hash_chunk` is the serial path; `hash_chunks_par` hashes many chunks on the rayon pool and
//! uses `hash_chunk` for each, so both paths produce identical results. Below
//! [`PAR_THRESHOLD`] total bytes the parallel path runs serially: spreading a few small chunks
//! over threads costs more in scheduling than it saves.

use rayon::prelude::*;

use crate::id::ChunkId;

/// Total bytes under which `hash_chunks_par` stays on the calling thread.
pub const PAR_THRESHOLD: usize = 512 * 1024;

/// blake3 id of one chunk, as a plain (format 1) repository names it; [`crate::codec::Codec`]
/// names chunks and trees for every repository (keyed ids when it is encrypted).
#[must_use]
pub fn hash_chunk(data: &[u8]) -> ChunkId {
    ChunkId::of(data)
}

/// CRC32 (IEEE) of one chunk, for the per-file CRC that is combined from chunk CRCs.
#[must_use]
pub fn crc_chunk(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// Ids of `chunks` in order, computed in parallel when they are large enough.
#[must_use]
pub fn hash_chunks_par(chunks: &[&[u8]]) -> Vec<ChunkId> {
    let total: usize = chunks.iter().map(|c| c.len()).sum();
    if total < PAR_THRESHOLD || chunks.len() < 2 {
        chunks.iter().map(|c| hash_chunk(c)).collect()
    } else {
        chunks.par_iter().map(|c| hash_chunk(c)).collect()
    }
}

/// Running CRC32 of a whole file assembled from per-chunk CRCs and zero-filled holes, in
/// any chunk size, without re-reading data.
#[derive(Clone, Default)]
pub struct FileCrc {
    inner: crc32fast::Hasher,
}

impl FileCrc {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `len` bytes whose CRC32 is `crc`.
    pub fn append(&mut self, crc: u32, len: u64) {
        let other = crc32fast::Hasher::new_with_initial_len(crc, len);
        self.inner.combine(&other);
    }

    /// Appends `len` zero bytes (a hole) in O(log len) time.
    pub fn append_zeros(&mut self, mut len: u64) {
        // crc of 2^k zero bytes, by doubling.
        let mut pow_crc = crc32fast::hash(&[0u8]);
        let mut pow_len = 1u64;
        let mut parts: Vec<(u32, u64)> = Vec::new();
        while len > 0 {
            if len & 1 == 1 {
                parts.push((pow_crc, pow_len));
            }
            len >>= 1;
            if len > 0 {
                let mut h = crc32fast::Hasher::new_with_initial_len(pow_crc, pow_len);
                h.combine(&crc32fast::Hasher::new_with_initial_len(pow_crc, pow_len));
                pow_crc = h.finalize();
                pow_len *= 2;
            }
        }
        // All parts are runs of zeros, so their order does not matter.
        for (c, l) in parts {
            self.append(c, l);
        }
    }

    /// Appends raw bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
    }

    #[must_use]
    pub fn finalize(self) -> u32 {
        self.inner.finalize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_crc_equals_direct_crc() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut f = FileCrc::new();
        f.append(crc_chunk(&data[..1234]), 1234);
        f.append_zeros(70_001);
        f.append(crc_chunk(&data[1234..]), (data.len() - 1234) as u64);
        let mut whole = data[..1234].to_vec();
        whole.extend(std::iter::repeat_n(0u8, 70_001));
        whole.extend_from_slice(&data[1234..]);
        assert_eq!(f.finalize(), crc32fast::hash(&whole));
    }

    #[test]
    fn parallel_equals_serial() {
        let bufs: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 40_000]).collect();
        let refs: Vec<&[u8]> = bufs.iter().map(Vec::as_slice).collect();
        let par = hash_chunks_par(&refs);
        let ser: Vec<ChunkId> = refs.iter().map(|c| hash_chunk(c)).collect();
        assert_eq!(par, ser);
    }
}
