//! The `Avx512` level: AVX-512 F/BW/VL/DQ (plus the AVX2-level features).
//!
//! * f32/f16: blocks of 16 lanes (f16 widened exactly by `vcvtph2ps zmm`),
//!   FMA into four independent accumulator sets (64 elements per
//!   iteration); cosine keeps dot and both squared norms in one pass.
//! * bf16: blocks of 32 loaded as 32-bit lanes of two bf16 each; a 16-bit
//!   left shift gives the even-indexed elements as f32 and clearing the low
//!   halves the odd ones (a bf16 is the upper half of the same f32), and
//!   evens meet evens, odds meet odds (as on the AVX2 level).
//! * i8/u8: blocks of 32 sign-/zero-extended to i16 (`vpmovsxbw`/`vpmovzxbw`),
//!   `vpmaddwd` into i32 lanes, l2sq on i16 differences. The i32 lane sums
//!   wrap; as on the AVX2 level the true totals are within ±2^30 (i8 dot) or
//!   non-negative and below 2^32 (everything else) up to `MAX_INT_DIM`
//!   elements, so the wrapped bits read as i32/u32 are exact.
//! * bits: with VPOPCNTDQ ([`KERNELS_VPOPCNT`], chosen by dispatch after a
//!   separate runtime check), `vpopcntq` over 64-byte blocks; without it
//!   ([`KERNELS`]) the AVX2 level's 64-bit POPCNT loop.
//!
//! Tails are read with masked loads (`vmovdqu8/16`, `vmovups` with a
//! zeroing mask): masked-off lanes are neither read nor faulted on, so
//! nothing past the end of a slice is touched. All loads are unaligned.
//!
//! This file gets its intrinsics from `super::arch` and its target features
//! from `avx512_target!`; `tests/emulated_avx512.rs` compiles it against
//! scalar models of the intrinsics (see `x86/mod.rs`).

use super::arch::*;
use super::avx2;
use crate::dispatch::{Kernels, SimdLevel};
use crate::reference::{cosine_from_parts, jaccard_from_counts};
use half::{bf16, f16};

const BASE: Kernels = Kernels {
    level: SimdLevel::Avx512,
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
    // SAFETY of reuse: the Avx512 level requires the Avx2 level (see
    // `level_supported`), so the AVX2 + POPCNT bit kernels run wherever this
    // table is handed out.
    bits_hamming: avx2::bits_hamming,
    bits_jaccard: avx2::bits_jaccard,
};

/// The `Avx512` table for CPUs without VPOPCNTDQ.
///
/// Only [`crate::dispatch::kernels_for`] hands it out, and only after
/// `level_supported(SimdLevel::Avx512)` confirmed at runtime AVX-512
/// F/BW/VL/DQ and the AVX2 level's features; the safe wrappers rely on that.
pub(crate) static KERNELS: Kernels = BASE;

/// The `Avx512` table for CPUs that also have AVX512_VPOPCNTDQ; dispatch
/// hands it out only after an additional runtime check for that feature.
pub(crate) static KERNELS_VPOPCNT: Kernels = Kernels { bits_hamming, bits_jaccard, ..BASE };

/// Safe wrappers: assert equal lengths (a panic, never an out-of-bounds
/// read), then call the `#[target_feature]` implementation.
macro_rules! safe_wrappers {
    ($($name:ident => $imp:ident($t:ty) -> $r:ty;)*) => {$(
        fn $name(a: &[$t], b: &[$t]) -> $r {
            assert_eq!(a.len(), b.len(), "vectors must have the same length");
            // SAFETY: the lengths agree (checked above), and this function is
            // reachable only through `KERNELS`/`KERNELS_VPOPCNT`, which
            // dispatch hands out only after runtime detection of the
            // features the implementation enables.
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
//
// `load_*` read one full block; `load_*_masked` read the first lanes named by
// the mask (which must be in bounds) and zero the rest.

avx512_target! {
    /// Sixteen f32.
    #[inline]
    unsafe fn load_f32(p: *const f32) -> __m512 {
        // SAFETY: the caller guarantees 16 readable elements at `p`.
        unsafe { _mm512_loadu_ps(p) }
    }

    #[inline]
    unsafe fn load_f32_masked(m: __mmask16, p: *const f32) -> __m512 {
        // SAFETY: the caller guarantees the lanes enabled in `m` are readable.
        unsafe { _mm512_maskz_loadu_ps(m, p) }
    }

    /// Sixteen f16, widened exactly to f32.
    #[inline]
    unsafe fn load_f16(p: *const f16) -> __m512 {
        // SAFETY: the caller guarantees 16 readable elements (32 bytes) at `p`.
        _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(p.cast()) })
    }

    #[inline]
    unsafe fn load_f16_masked(m: __mmask16, p: *const f16) -> __m512 {
        // SAFETY: the caller guarantees the lanes enabled in `m` are readable.
        _mm512_cvtph_ps(unsafe { _mm256_maskz_loadu_epi16(m, p.cast()) })
    }

    /// Thirty-two bf16, as raw bits.
    #[inline]
    unsafe fn load_bf16(p: *const bf16) -> __m512i {
        // SAFETY: the caller guarantees 32 readable elements (64 bytes) at `p`.
        unsafe { _mm512_loadu_si512(p.cast()) }
    }

    #[inline]
    unsafe fn load_bf16_masked(m: __mmask32, p: *const bf16) -> __m512i {
        // SAFETY: the caller guarantees the lanes enabled in `m` are readable.
        unsafe { _mm512_maskz_loadu_epi16(m, p.cast()) }
    }

    /// The even- and odd-indexed elements of 32 raw bf16, widened exactly to f32.
    #[inline]
    fn split_bf16(v: __m512i) -> (__m512, __m512) {
        let even = _mm512_slli_epi32::<16>(v);
        let odd = _mm512_and_si512(v, _mm512_set1_epi32(0xFFFF_0000_u32 as i32));
        (_mm512_castsi512_ps(even), _mm512_castsi512_ps(odd))
    }

    /// Thirty-two i8, sign-extended to i16.
    #[inline]
    unsafe fn load_i8(p: *const i8) -> __m512i {
        // SAFETY: the caller guarantees 32 readable bytes at `p`.
        _mm512_cvtepi8_epi16(unsafe { _mm256_loadu_si256(p.cast()) })
    }

    #[inline]
    unsafe fn load_i8_masked(m: __mmask32, p: *const i8) -> __m512i {
        // SAFETY: the caller guarantees the bytes enabled in `m` are readable.
        _mm512_cvtepi8_epi16(unsafe { _mm256_maskz_loadu_epi8(m, p) })
    }

    /// Thirty-two u8, zero-extended to i16.
    #[inline]
    unsafe fn load_u8(p: *const u8) -> __m512i {
        // SAFETY: the caller guarantees 32 readable bytes at `p`.
        _mm512_cvtepu8_epi16(unsafe { _mm256_loadu_si256(p.cast()) })
    }

    #[inline]
    unsafe fn load_u8_masked(m: __mmask32, p: *const u8) -> __m512i {
        // SAFETY: the caller guarantees the bytes enabled in `m` are readable.
        _mm512_cvtepu8_epi16(unsafe { _mm256_maskz_loadu_epi8(m, p.cast()) })
    }
}

// ---------------------------------------------------------------- drivers --

/// Runs `$step` over `$a`/`$b` in blocks of `$w` lanes loaded with `$load`,
/// with four independent sets of `$n` accumulators (`$acc` is a
/// `&mut [V; $n]`); the last partial block is loaded with `$masked` under a
/// `$mask` of its length (into set 1). Returns the four sets added lane-wise.
macro_rules! drive {
    (
        $w:literal, $load:ident, $masked:ident, $mask:ty, $zero:expr, $add:ident, $a:ident, $b:ident, $n:literal,
        |$acc:ident, $x:ident, $y:ident| $step:block
    ) => {{
        let len = $a.len();
        let (pa, pb) = ($a.as_ptr(), $b.as_ptr());
        let mut sets = [[$zero; $n]; 4];
        let mut i = 0;
        while i + 4 * $w <= len {
            for (k, $acc) in sets.iter_mut().enumerate() {
                // SAFETY: i + (k + 1) * $w <= len = a.len() = b.len().
                let ($x, $y) = unsafe { ($load(pa.add(i + k * $w)), $load(pb.add(i + k * $w))) };
                $step
            }
            i += 4 * $w;
        }
        while i + $w <= len {
            // SAFETY: i + $w <= len = a.len() = b.len().
            let ($x, $y) = unsafe { ($load(pa.add(i)), $load(pb.add(i))) };
            let $acc = &mut sets[0];
            $step
            i += $w;
        }
        if i < len {
            // 1 <= len - i < $w, so the shift stays inside the mask type.
            let m: $mask = ((1 as $mask) << (len - i)) - 1;
            // SAFETY: `pa.add(i)`/`pb.add(i)` are in bounds and the mask
            // enables exactly the len - i elements that remain.
            let ($x, $y) = unsafe { ($masked(m, pa.add(i)), $masked(m, pb.add(i))) };
            let $acc = &mut sets[1];
            $step
        }
        let mut out = [$zero; $n];
        for (j, o) in out.iter_mut().enumerate() {
            *o = $add($add(sets[0][j], sets[1][j]), $add(sets[2][j], sets[3][j]));
        }
        out
    }};
}

macro_rules! float_kernels {
    ($t:ty, $load:ident, $masked:ident, $dot:ident, $l2:ident, $cos:ident) => {
        avx512_target! {
            unsafe fn $dot(a: &[$t], b: &[$t]) -> f32 {
                let [s] = drive!(16, $load, $masked, __mmask16, _mm512_setzero_ps(), _mm512_add_ps, a, b, 1,
                    |acc, x, y| {
                        acc[0] = _mm512_fmadd_ps(x, y, acc[0]);
                    });
                _mm512_reduce_add_ps(s)
            }

            unsafe fn $l2(a: &[$t], b: &[$t]) -> f32 {
                let [s] = drive!(16, $load, $masked, __mmask16, _mm512_setzero_ps(), _mm512_add_ps, a, b, 1,
                    |acc, x, y| {
                        let d = _mm512_sub_ps(x, y);
                        acc[0] = _mm512_fmadd_ps(d, d, acc[0]);
                    });
                _mm512_reduce_add_ps(s)
            }

            unsafe fn $cos(a: &[$t], b: &[$t]) -> f32 {
                let [ab, aa, bb] = drive!(16, $load, $masked, __mmask16, _mm512_setzero_ps(), _mm512_add_ps, a, b, 3,
                    |acc, x, y| {
                        acc[0] = _mm512_fmadd_ps(x, y, acc[0]);
                        acc[1] = _mm512_fmadd_ps(x, x, acc[1]);
                        acc[2] = _mm512_fmadd_ps(y, y, acc[2]);
                    });
                cosine_from_parts(
                    _mm512_reduce_add_ps(ab) as f64,
                    _mm512_reduce_add_ps(aa) as f64,
                    _mm512_reduce_add_ps(bb) as f64,
                ) as f32
            }
        }
    };
}

float_kernels!(f32, load_f32, load_f32_masked, f32_dot_impl, f32_l2sq_impl, f32_cosine_impl);
float_kernels!(f16, load_f16, load_f16_masked, f16_dot_impl, f16_l2sq_impl, f16_cosine_impl);

avx512_target! {
    unsafe fn bf16_dot_impl(a: &[bf16], b: &[bf16]) -> f32 {
        let [even, odd] = drive!(32, load_bf16, load_bf16_masked, __mmask32, _mm512_setzero_ps(), _mm512_add_ps, a, b, 2,
            |acc, x, y| {
                let ((xe, xo), (ye, yo)) = (split_bf16(x), split_bf16(y));
                acc[0] = _mm512_fmadd_ps(xe, ye, acc[0]);
                acc[1] = _mm512_fmadd_ps(xo, yo, acc[1]);
            });
        _mm512_reduce_add_ps(_mm512_add_ps(even, odd))
    }

    unsafe fn bf16_l2sq_impl(a: &[bf16], b: &[bf16]) -> f32 {
        let [even, odd] = drive!(32, load_bf16, load_bf16_masked, __mmask32, _mm512_setzero_ps(), _mm512_add_ps, a, b, 2,
            |acc, x, y| {
                let ((xe, xo), (ye, yo)) = (split_bf16(x), split_bf16(y));
                let (de, d_o) = (_mm512_sub_ps(xe, ye), _mm512_sub_ps(xo, yo));
                acc[0] = _mm512_fmadd_ps(de, de, acc[0]);
                acc[1] = _mm512_fmadd_ps(d_o, d_o, acc[1]);
            });
        _mm512_reduce_add_ps(_mm512_add_ps(even, odd))
    }

    unsafe fn bf16_cosine_impl(a: &[bf16], b: &[bf16]) -> f32 {
        let [ab, aa, bb] = drive!(32, load_bf16, load_bf16_masked, __mmask32, _mm512_setzero_ps(), _mm512_add_ps, a, b, 3,
            |acc, x, y| {
                let ((xe, xo), (ye, yo)) = (split_bf16(x), split_bf16(y));
                acc[0] = _mm512_fmadd_ps(xo, yo, _mm512_fmadd_ps(xe, ye, acc[0]));
                acc[1] = _mm512_fmadd_ps(xo, xo, _mm512_fmadd_ps(xe, xe, acc[1]));
                acc[2] = _mm512_fmadd_ps(yo, yo, _mm512_fmadd_ps(ye, ye, acc[2]));
            });
        cosine_from_parts(
            _mm512_reduce_add_ps(ab) as f64,
            _mm512_reduce_add_ps(aa) as f64,
            _mm512_reduce_add_ps(bb) as f64,
        ) as f32
    }
}

/// Integer dot, l2sq and `[dot, |a|², |b|²]` as wrapping i32 sums.
macro_rules! int_kernels {
    ($t:ty, $load:ident, $masked:ident, $dot:ident, $l2:ident, $parts:ident) => {
        avx512_target! {
            unsafe fn $dot(a: &[$t], b: &[$t]) -> i32 {
                let [s] = drive!(32, $load, $masked, __mmask32, _mm512_setzero_si512(), _mm512_add_epi32, a, b, 1,
                    |acc, x, y| {
                        acc[0] = _mm512_add_epi32(acc[0], _mm512_madd_epi16(x, y));
                    });
                _mm512_reduce_add_epi32(s)
            }

            unsafe fn $l2(a: &[$t], b: &[$t]) -> u32 {
                let [s] = drive!(32, $load, $masked, __mmask32, _mm512_setzero_si512(), _mm512_add_epi32, a, b, 1,
                    |acc, x, y| {
                        let d = _mm512_sub_epi16(x, y);
                        acc[0] = _mm512_add_epi32(acc[0], _mm512_madd_epi16(d, d));
                    });
                _mm512_reduce_add_epi32(s) as u32
            }

            unsafe fn $parts(a: &[$t], b: &[$t]) -> [i32; 3] {
                let [ab, aa, bb] = drive!(32, $load, $masked, __mmask32, _mm512_setzero_si512(), _mm512_add_epi32, a, b, 3,
                    |acc, x, y| {
                        acc[0] = _mm512_add_epi32(acc[0], _mm512_madd_epi16(x, y));
                        acc[1] = _mm512_add_epi32(acc[1], _mm512_madd_epi16(x, x));
                        acc[2] = _mm512_add_epi32(acc[2], _mm512_madd_epi16(y, y));
                    });
                [_mm512_reduce_add_epi32(ab), _mm512_reduce_add_epi32(aa), _mm512_reduce_add_epi32(bb)]
            }
        }
    };
}

int_kernels!(i8, load_i8, load_i8_masked, i8_dot_impl, i8_l2sq_impl, i8_parts);
int_kernels!(u8, load_u8, load_u8_masked, u8_dot_wrapped, u8_l2sq_impl, u8_parts);

avx512_target! {
    unsafe fn u8_dot_impl(a: &[u8], b: &[u8]) -> u32 {
        // Non-negative partial sums: the wrapped i32 bits are the exact u32 total.
        unsafe { u8_dot_wrapped(a, b) as u32 }
    }

    unsafe fn i8_cosine_impl(a: &[i8], b: &[i8]) -> f32 {
        // dot within ±2^30; squared norms within [0, 2^30].
        let [ab, aa, bb] = unsafe { i8_parts(a, b) };
        cosine_from_parts(ab as f64, aa as f64, bb as f64) as f32
    }

    unsafe fn u8_cosine_impl(a: &[u8], b: &[u8]) -> f32 {
        // All three are non-negative and below 2^32: read the bits as u32.
        let [ab, aa, bb] = unsafe { u8_parts(a, b) };
        cosine_from_parts(ab as u32 as f64, aa as u32 as f64, bb as u32 as f64) as f32
    }
}

// ----------------------------------------------------------------- bits --

avx512_vpopcnt_target! {
    /// Sixty-four bytes.
    #[inline]
    unsafe fn load_bytes(p: *const u8) -> __m512i {
        // SAFETY: the caller guarantees 64 readable bytes at `p`.
        unsafe { _mm512_loadu_si512(p.cast()) }
    }

    #[inline]
    unsafe fn load_bytes_masked(m: __mmask64, p: *const u8) -> __m512i {
        // SAFETY: the caller guarantees the bytes enabled in `m` are readable.
        unsafe { _mm512_maskz_loadu_epi8(m, p.cast()) }
    }

    unsafe fn bits_hamming_impl(a: &[u8], b: &[u8]) -> u32 {
        let [n] = drive!(64, load_bytes, load_bytes_masked, __mmask64, _mm512_setzero_si512(), _mm512_add_epi64, a, b, 1,
            |acc, x, y| {
                acc[0] = _mm512_add_epi64(acc[0], _mm512_popcnt_epi64(_mm512_xor_si512(x, y)));
            });
        _mm512_reduce_add_epi64(n) as u32
    }

    unsafe fn bits_jaccard_impl(a: &[u8], b: &[u8]) -> f32 {
        let [inter, union] = drive!(64, load_bytes, load_bytes_masked, __mmask64, _mm512_setzero_si512(), _mm512_add_epi64, a, b, 2,
            |acc, x, y| {
                acc[0] = _mm512_add_epi64(acc[0], _mm512_popcnt_epi64(_mm512_and_si512(x, y)));
                acc[1] = _mm512_add_epi64(acc[1], _mm512_popcnt_epi64(_mm512_or_si512(x, y)));
            });
        jaccard_from_counts(_mm512_reduce_add_epi64(inter) as u64, _mm512_reduce_add_epi64(union) as u64) as f32
    }
}
