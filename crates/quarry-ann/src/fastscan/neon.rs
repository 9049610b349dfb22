//! AArch64 Neon kernel: the block sums with `tbl` (`vqtbl1q_u8`) lookups.
//!
//! Each 16-byte half of a pair group holds one sub-quantizer's nibbles for
//! 32 vectors (low nibble: vectors 0..16, high nibble: 16..32). Neon has a
//! per-byte shift, so the high nibbles need no mask, and widening adds
//! (`uaddw`, `uaddw2`) add u8 lookups straight into u16 lanes, so the
//! accumulators come out in vector order with no fix-up.
//!
//! The file reaches its intrinsics through `super::arch` and gets its
//! `#[target_feature]` attributes from `neon_target!`, so that
//! `tests/fastscan_neon.rs` compiles this very file against scalar models
//! of the intrinsics and checks it on any host.

use super::arch::*;

neon_target! {
    /// The 32 sums of one block, in vector order.
    ///
    /// # Safety
    /// Neon must be available; `block` and `tables` must hold `pairs * 32`
    /// bytes.
    pub(crate) unsafe fn block_sums(block: *const u8, tables: *const u8, pairs: usize) -> [u16; 32] {
        let low_nibbles = vdupq_n_u8(0x0f);
        let mut acc = [vdupq_n_u16(0); 4];
        for q in 0..pairs * 2 {
            // SAFETY: q < 2 · pairs and both buffers hold pairs × 32 bytes.
            let (codes, table) = unsafe { (vld1q_u8(block.add(q * 16)), vld1q_u8(tables.add(q * 16))) };
            let r_lo = vqtbl1q_u8(table, vandq_u8(codes, low_nibbles));
            let r_hi = vqtbl1q_u8(table, vshrq_n_u8::<4>(codes));
            acc[0] = vaddw_u8(acc[0], vget_low_u8(r_lo));
            acc[1] = vaddw_high_u8(acc[1], r_lo);
            acc[2] = vaddw_u8(acc[2], vget_low_u8(r_hi));
            acc[3] = vaddw_high_u8(acc[3], r_hi);
        }
        let mut sums = [0u16; 32];
        for (i, a) in acc.into_iter().enumerate() {
            // SAFETY: sums holds 4 × 8 lanes.
            unsafe { vst1q_u16(sums.as_mut_ptr().add(i * 8), a) };
        }
        sums
    }
}
