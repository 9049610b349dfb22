//! The `Neon` level: AArch64 Advanced SIMD.
//!
//! * f32: blocks of 4 lanes, `fmla` into eight independent accumulator sets
//!   (32 elements per iteration: wide cores have up to four FMA pipes with a
//!   latency of about four cycles); cosine keeps dot and both squared norms
//!   in one pass.
//! * f16: stable Rust has no `float16x4_t`, so f16 is widened to f32 in NEON
//!   integer registers ([`f16_to_f32`]): exact for normals, subnormals, ±0,
//!   ±inf and NaN (payload kept), without touching subnormal f32 values (so
//!   the result does not depend on FPCR.FZ). This costs about ten cheap
//!   integer/select instructions per four lanes, all in registers, and is
//!   much faster than a scalar conversion of chunks into a stack buffer.
//! * bf16: `ushll #16` (a bf16 is the upper half of the f32 bits).
//! * i8: `smull`/`smull2` into i16 (each product fits: |p| <= 2^14; two
//!   products are never added in i16, since (-128)² + (-128)² = 2^15 would
//!   overflow) and `sadalp` into i32 lanes. l2sq and u8: `sabd`/`uabd` give
//!   |a - b| <= 255 as u8, `umull`/`umull2` square into u16 (<= 65025) and
//!   `uadalp` adds pairs into u32 lanes; totals are exact below 2^32, which
//!   holds up to `MAX_INT_DIM` elements.
//! * bits: `cnt` per byte, `uaddlp` + `uadalp` into u32 lanes.
//!
//! Tails (the last `len % block` elements): when the vector is at least one
//! block long, the last full block is loaded again (ending exactly at the
//! end of the slice) and its lanes that the main loops already counted are
//! zeroed with a mask before they are used; shorter vectors are copied into
//! a zeroed stack block ([`tail`]). No load reads past the end of a slice,
//! and zero lanes add nothing to any sum. All loads are unaligned (`ld1`).
//!
//! This file gets its intrinsics from `super::arch` and its target features
//! from `neon_target!`; `tests/emulated_neon.rs` compiles it against scalar
//! models of the intrinsics (see `arm/mod.rs`).

use super::arch::*;
use crate::dispatch::{Kernels, SimdLevel};
use crate::reference::{cosine_from_parts, jaccard_from_counts};
use crate::util::tail;
use half::{bf16, f16};

/// The `Neon` kernel table.
///
/// Only [`crate::dispatch::kernels_for`] hands it out, and only after
/// `level_supported(SimdLevel::Neon)` confirmed NEON at runtime (it is part
/// of the AArch64 baseline); the safe wrappers rely on that.
pub(crate) static KERNELS: Kernels = Kernels {
    level: SimdLevel::Neon,
    f32_dot,
    f32_l2sq,
    f32_cosine,
    f16_dot,
    f16_l2sq,
    f16_cosine,
    bf16_dot,
    bf16_l2sq,
    bf16_cosine,
    i8_dot,
    i8_l2sq,
    i8_cosine,
    u8_dot,
    u8_l2sq,
    u8_cosine,
    bits_hamming,
    bits_jaccard,
};

/// Safe wrappers: assert equal lengths (a panic, never an out-of-bounds
/// read), then call the `#[target_feature]` implementation.
macro_rules! safe_wrappers {
    ($($name:ident => $imp:ident($t:ty) -> $r:ty;)*) => {$(
        fn $name(a: &[$t], b: &[$t]) -> $r {
            assert_eq!(a.len(), b.len(), "vectors must have the same length");
            // SAFETY: the lengths agree (checked above), and this function is
            // reachable only through `KERNELS`, which dispatch hands out only
            // after runtime detection of NEON.
            unsafe { $imp(a, b) }
        }
    )*};
}

safe_wrappers! {
    f32_dot => f32_dot_impl(f32) -> f32;
    f32_l2sq => f32_l2sq_impl(f32) -> f32;
    f32_cosine => f32_cosine_impl(f32) -> f32;
    f16_dot => f16_dot_impl(f16) -> f32;
    f16_l2sq => f16_l2sq_impl(f16) -> f32;
    f16_cosine => f16_cosine_impl(f16) -> f32;
    bf16_dot => bf16_dot_impl(bf16) -> f32;
    bf16_l2sq => bf16_l2sq_impl(bf16) -> f32;
    bf16_cosine => bf16_cosine_impl(bf16) -> f32;
    i8_dot => i8_dot_impl(i8) -> i32;
    i8_l2sq => i8_l2sq_impl(i8) -> u32;
    i8_cosine => i8_cosine_impl(i8) -> f32;
    u8_dot => u8_dot_impl(u8) -> u32;
    u8_l2sq => u8_l2sq_impl(u8) -> u32;
    u8_cosine => u8_cosine_impl(u8) -> f32;
    bits_hamming => bits_hamming_impl(u8) -> u32;
    bits_jaccard => bits_jaccard_impl(u8) -> f32;
}

// ---------------------------------------------------------------- loads --

neon_target! {
    /// Four f32.
    #[inline]
    unsafe fn load_f32(p: *const f32) -> float32x4_t {
        // SAFETY: the caller guarantees 4 readable elements at `p`.
        unsafe { vld1q_f32(p) }
    }

    /// Widens four IEEE binary16 values (zero-extended into u32 lanes) to f32.
    ///
    /// With `em` the bits below the sign and `v = em << 13` (exponent and
    /// mantissa moved to their f32 positions):
    /// * normal (`0x0400 <= em < 0x7c00`): add 112 to the exponent (the bias
    ///   difference 127 - 15);
    /// * inf/NaN (`em >= 0x7c00`): set the f32 exponent to all ones; the
    ///   mantissa (NaN payload, quiet bit included) stays;
    /// * zero/subnormal (`em < 0x0400`, value `m * 2^-24`): give `v` the
    ///   exponent of 2^-14, which makes the f32 `2^-14 + m * 2^-24`, then
    ///   subtract 2^-14; exact, and no subnormal f32 is involved.
    ///
    /// Finally the sign bit moves from bit 15 to bit 31.
    #[inline]
    fn f16_to_f32(h: uint32x4_t) -> float32x4_t {
        let em = vandq_u32(h, vdupq_n_u32(0x7fff));
        let sign = vshlq_n_u32::<16>(vandq_u32(h, vdupq_n_u32(0x8000)));
        let v = vshlq_n_u32::<13>(em);
        let normal = vaddq_u32(v, vdupq_n_u32(112 << 23));
        let inf_nan = vorrq_u32(v, vdupq_n_u32(0x7f80_0000));
        let two_m14 = vdupq_n_f32(f32::from_bits(113 << 23)); // 2^-14
        let small = vreinterpretq_u32_f32(vsubq_f32(
            vreinterpretq_f32_u32(vaddq_u32(v, vdupq_n_u32(113 << 23))),
            two_m14,
        ));
        let r = vbslq_u32(vcgeq_u32(em, vdupq_n_u32(0x7c00)), inf_nan, normal);
        let r = vbslq_u32(vcltq_u32(em, vdupq_n_u32(0x0400)), small, r);
        vreinterpretq_f32_u32(vorrq_u32(r, sign))
    }

    /// Four f16, widened exactly to f32.
    #[inline]
    unsafe fn load_f16(p: *const f16) -> float32x4_t {
        // SAFETY: the caller guarantees 4 readable elements (8 bytes) at `p`.
        f16_to_f32(vmovl_u16(unsafe { vld1_u16(p.cast()) }))
    }

    /// Four bf16, widened exactly to f32: a bf16 is the upper half of the f32
    /// with the same bits.
    #[inline]
    unsafe fn load_bf16(p: *const bf16) -> float32x4_t {
        // SAFETY: the caller guarantees 4 readable elements (8 bytes) at `p`.
        vreinterpretq_f32_u32(vshll_n_u16::<16>(unsafe { vld1_u16(p.cast()) }))
    }

    /// Sixteen i8.
    #[inline]
    unsafe fn load_i8(p: *const i8) -> int8x16_t {
        // SAFETY: the caller guarantees 16 readable bytes at `p`.
        unsafe { vld1q_s8(p) }
    }

    /// Sixteen u8.
    #[inline]
    unsafe fn load_u8(p: *const u8) -> uint8x16_t {
        // SAFETY: the caller guarantees 16 readable bytes at `p`.
        unsafe { vld1q_u8(p) }
    }

    /// `acc + Σ pairs of x[i]*y[i]` for i8 lanes, in i32 lanes.
    #[inline]
    fn i8_mul_acc(acc: int32x4_t, x: int8x16_t, y: int8x16_t) -> int32x4_t {
        let acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(x), vget_low_s8(y)));
        vpadalq_s16(acc, vmull_high_s8(x, y))
    }

    /// `acc + Σ pairs of x[i]*y[i]` for u8 lanes, in u32 lanes.
    #[inline]
    fn u8_mul_acc(acc: uint32x4_t, x: uint8x16_t, y: uint8x16_t) -> uint32x4_t {
        let acc = vpadalq_u16(acc, vmull_u8(vget_low_u8(x), vget_low_u8(y)));
        vpadalq_u16(acc, vmull_high_u8(x, y))
    }

    /// Adds the per-byte popcounts of `x` to the u32 lanes of `acc`.
    #[inline]
    fn popcount_acc(acc: uint32x4_t, x: uint8x16_t) -> uint32x4_t {
        vpadalq_u16(acc, vpaddlq_u8(vcntq_u8(x)))
    }
}

/// 16 zero bytes then 16 all-ones bytes: the 16 bytes at offset `n` keep the
/// last `n` bytes of a vector.
static KEEP_LAST: [u8; 32] = {
    let mut t = [0u8; 32];
    let mut i = 16;
    while i < 32 {
        t[i] = 0xFF;
        i += 1;
    }
    t
};

neon_target! {
    /// A mask of all-ones in the last `n` bytes (1 <= n < 16) and zeros before.
    #[inline]
    fn keep_last_bytes(n: usize) -> uint8x16_t {
        assert!(n < 16);
        // SAFETY: n + 16 <= 32 bytes of KEEP_LAST.
        unsafe { vld1q_u8(KEEP_LAST.as_ptr().add(n)) }
    }

    #[inline]
    fn mask_f32(v: float32x4_t, keep: uint8x16_t) -> float32x4_t {
        vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(v), vreinterpretq_u32_u8(keep)))
    }

    #[inline]
    fn mask_s8(v: int8x16_t, keep: uint8x16_t) -> int8x16_t {
        vreinterpretq_s8_u8(vandq_u8(vreinterpretq_u8_s8(v), keep))
    }

    #[inline]
    fn mask_u8(v: uint8x16_t, keep: uint8x16_t) -> uint8x16_t {
        vandq_u8(v, keep)
    }
}

// ---------------------------------------------------------------- drivers --

/// Runs `$step` over `$a`/`$b` in blocks of `$w` elements loaded with
/// `$load` (each load gives one 16-byte vector), with `$sets` independent
/// sets of `$n` accumulators (`$acc` is a `&mut [V; $n]`), and returns the
/// sets added lane-wise. The tail (see the module comment; `$mask` applies
/// a byte mask to a loaded vector) goes into set 1.
macro_rules! drive {
    (
        $t:ty, $w:literal, $sets:literal, $load:ident, $mask:ident, $zero:expr, $add:ident, $a:ident, $b:ident,
        $n:literal, |$acc:ident, $x:ident, $y:ident| $step:block
    ) => {{
        let len = $a.len();
        let (pa, pb) = ($a.as_ptr(), $b.as_ptr());
        let mut sets = [[$zero; $n]; $sets];
        let mut i = 0;
        while i + $sets * $w <= len {
            for (k, $acc) in sets.iter_mut().enumerate() {
                // SAFETY: i + (k + 1) * $w <= len = a.len() = b.len().
                let ($x, $y) = unsafe { ($load(pa.add(i + k * $w)), $load(pb.add(i + k * $w))) };
                $step
            }
            i += $sets * $w;
        }
        while i + $w <= len {
            // SAFETY: i + $w <= len = a.len() = b.len().
            let ($x, $y) = unsafe { ($load(pa.add(i)), $load(pb.add(i))) };
            let $acc = &mut sets[0];
            $step
            i += $w;
        }
        if i < len {
            let ($x, $y) = if len >= $w {
                // Lanes of the last block: the first $w - (len - i) were counted.
                let keep = keep_last_bytes((len - i) * (16 / $w));
                // SAFETY: len - $w + $w = len = a.len() = b.len().
                let (x, y) = unsafe { ($load(pa.add(len - $w)), $load(pb.add(len - $w))) };
                ($mask(x, keep), $mask(y, keep))
            } else {
                let ta: [$t; $w] = tail(&$a[i..]);
                let tb: [$t; $w] = tail(&$b[i..]);
                // SAFETY: the blocks hold $w elements each.
                unsafe { ($load(ta.as_ptr()), $load(tb.as_ptr())) }
            };
            let $acc = &mut sets[1];
            $step
        }
        let mut out = sets[0];
        for set in &sets[1..] {
            for (o, s) in out.iter_mut().zip(set) {
                *o = $add(*o, *s);
            }
        }
        out
    }};
}

macro_rules! float_kernels {
    ($t:ty, $load:ident, $dot:ident, $l2:ident, $cos:ident) => {
        neon_target! {
            unsafe fn $dot(a: &[$t], b: &[$t]) -> f32 {
                let [s] = drive!($t, 4, 8, $load, mask_f32, vdupq_n_f32(0.0), vaddq_f32, a, b, 1, |acc, x, y| {
                    acc[0] = vfmaq_f32(acc[0], x, y);
                });
                vaddvq_f32(s)
            }

            unsafe fn $l2(a: &[$t], b: &[$t]) -> f32 {
                let [s] = drive!($t, 4, 8, $load, mask_f32, vdupq_n_f32(0.0), vaddq_f32, a, b, 1, |acc, x, y| {
                    let d = vsubq_f32(x, y);
                    acc[0] = vfmaq_f32(acc[0], d, d);
                });
                vaddvq_f32(s)
            }

            unsafe fn $cos(a: &[$t], b: &[$t]) -> f32 {
                let [ab, aa, bb] = drive!($t, 4, 8, $load, mask_f32, vdupq_n_f32(0.0), vaddq_f32, a, b, 3, |acc, x, y| {
                    acc[0] = vfmaq_f32(acc[0], x, y);
                    acc[1] = vfmaq_f32(acc[1], x, x);
                    acc[2] = vfmaq_f32(acc[2], y, y);
                });
                cosine_from_parts(vaddvq_f32(ab) as f64, vaddvq_f32(aa) as f64, vaddvq_f32(bb) as f64) as f32
            }
        }
    };
}

float_kernels!(f32, load_f32, f32_dot_impl, f32_l2sq_impl, f32_cosine_impl);
float_kernels!(f16, load_f16, f16_dot_impl, f16_l2sq_impl, f16_cosine_impl);
float_kernels!(bf16, load_bf16, bf16_dot_impl, bf16_l2sq_impl, bf16_cosine_impl);

neon_target! {
    unsafe fn i8_dot_impl(a: &[i8], b: &[i8]) -> i32 {
        let [s] = drive!(i8, 16, 4, load_i8, mask_s8, vdupq_n_s32(0), vaddq_s32, a, b, 1, |acc, x, y| {
            acc[0] = i8_mul_acc(acc[0], x, y);
        });
        vaddvq_s32(s)
    }

    unsafe fn i8_l2sq_impl(a: &[i8], b: &[i8]) -> u32 {
        let [s] = drive!(i8, 16, 4, load_i8, mask_s8, vdupq_n_u32(0), vaddq_u32, a, b, 1, |acc, x, y| {
            // |x - y| <= 255: exact as u8.
            let d = vreinterpretq_u8_s8(vabdq_s8(x, y));
            acc[0] = u8_mul_acc(acc[0], d, d);
        });
        vaddvq_u32(s)
    }

    unsafe fn i8_cosine_impl(a: &[i8], b: &[i8]) -> f32 {
        let [ab, aa, bb] = drive!(i8, 16, 4, load_i8, mask_s8, vdupq_n_s32(0), vaddq_s32, a, b, 3, |acc, x, y| {
            acc[0] = i8_mul_acc(acc[0], x, y);
            acc[1] = i8_mul_acc(acc[1], x, x);
            acc[2] = i8_mul_acc(acc[2], y, y);
        });
        // dot within ±2^30; squared norms within [0, 2^30].
        cosine_from_parts(vaddvq_s32(ab) as f64, vaddvq_s32(aa) as f64, vaddvq_s32(bb) as f64) as f32
    }

    unsafe fn u8_dot_impl(a: &[u8], b: &[u8]) -> u32 {
        let [s] = drive!(u8, 16, 4, load_u8, mask_u8, vdupq_n_u32(0), vaddq_u32, a, b, 1, |acc, x, y| {
            acc[0] = u8_mul_acc(acc[0], x, y);
        });
        vaddvq_u32(s)
    }

    unsafe fn u8_l2sq_impl(a: &[u8], b: &[u8]) -> u32 {
        let [s] = drive!(u8, 16, 4, load_u8, mask_u8, vdupq_n_u32(0), vaddq_u32, a, b, 1, |acc, x, y| {
            let d = vabdq_u8(x, y);
            acc[0] = u8_mul_acc(acc[0], d, d);
        });
        vaddvq_u32(s)
    }

    unsafe fn u8_cosine_impl(a: &[u8], b: &[u8]) -> f32 {
        let [ab, aa, bb] = drive!(u8, 16, 4, load_u8, mask_u8, vdupq_n_u32(0), vaddq_u32, a, b, 3, |acc, x, y| {
            acc[0] = u8_mul_acc(acc[0], x, y);
            acc[1] = u8_mul_acc(acc[1], x, x);
            acc[2] = u8_mul_acc(acc[2], y, y);
        });
        cosine_from_parts(vaddvq_u32(ab) as f64, vaddvq_u32(aa) as f64, vaddvq_u32(bb) as f64) as f32
    }

    unsafe fn bits_hamming_impl(a: &[u8], b: &[u8]) -> u32 {
        let [n] = drive!(u8, 16, 4, load_u8, mask_u8, vdupq_n_u32(0), vaddq_u32, a, b, 1, |acc, x, y| {
            acc[0] = popcount_acc(acc[0], veorq_u8(x, y));
        });
        vaddvq_u32(n)
    }

    unsafe fn bits_jaccard_impl(a: &[u8], b: &[u8]) -> f32 {
        let [inter, union] = drive!(u8, 16, 4, load_u8, mask_u8, vdupq_n_u32(0), vaddq_u32, a, b, 2, |acc, x, y| {
            acc[0] = popcount_acc(acc[0], vandq_u8(x, y));
            acc[1] = popcount_acc(acc[1], vorrq_u8(x, y));
        });
        jaccard_from_counts(vaddvq_u32(inter) as u64, vaddvq_u32(union) as u64) as f32
    }
}
