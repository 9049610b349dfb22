//! Scalar reference kernels over the packed layout. They read one nibble
//! per (vector, sub-quantizer) exactly as the layout in the parent module
//! describes, so the SIMD levels are checked against a plain reading of it.

use super::{BLOCK, pairs};

/// Sums of one block's 32 vectors. `QuantizedLut` guarantees that no sum
/// exceeds 65535, so the u32 accumulation narrows exactly.
#[inline]
pub(crate) fn block_sums(block: &[u8], tables: &[u8], m: usize) -> [u16; BLOCK] {
    let mut acc = [0u32; BLOCK];
    for (codes, table) in block.chunks_exact(32).zip(tables.chunks_exact(32)).take(pairs(m)) {
        for lane in 0..2 {
            let t = &table[lane * 16..][..16];
            for (j, &byte) in codes[lane * 16..][..16].iter().enumerate() {
                acc[j] += t[(byte & 15) as usize] as u32;
                acc[j + 16] += t[(byte >> 4) as usize] as u32;
            }
        }
    }
    acc.map(|a| {
        debug_assert!(a <= u16::MAX as u32, "quantised sums exceed u16");
        a as u16
    })
}
