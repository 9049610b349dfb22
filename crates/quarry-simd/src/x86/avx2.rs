//! The `Avx2` level: AVX2 + FMA + F16C + POPCNT.
//!
//! * f32/f16: blocks of 8 lanes (f16 widened exactly by `vcvtph2ps`), FMA
//!   into four independent accumulator sets (32 elements per iteration) so
//!   the FMA latency is hidden; cosine keeps dot and both squared norms in
//!   one pass.
//! * bf16: blocks of 16 loaded as 32-bit lanes of two bf16 each; a bf16 is
//!   the upper half of the f32 with the same bits, so a 16-bit left shift
//!   gives the even-indexed elements as f32 and clearing the low halves the
//!   odd ones. The metrics are sums over index pairs, so evens of `a` meet
//!   evens of `b` and odds meet odds; this takes one load, one shift and one
//!   AND per 16 elements instead of two widening loads and two shifts.
//! * i8/u8: blocks of 16 sign-/zero-extended to i16, `vpmaddwd` into i32
//!   lanes. l2sq takes differences in i16 (|d| <= 255, so `d*d + d*d` fits the
//!   i32 pair sum). Lane sums are added with wrapping i32 adds: for dot/norms
//!   of u8 and every l2sq the partial sums are non-negative and the true total
//!   is below 2^32 for up to `MAX_INT_DIM` elements, so reading the wrapped
//!   i32 bit pattern as u32 is exact; i8 dot stays within ±2^30.
//! * bits: 32-byte blocks counted with a nibble table (`vpshufb`) and
//!   summed per 8 bytes with `vpsadbw`; the last < 32 bytes with 64-bit POPCNT.
//!
//! Tails (the last `len % block` elements): when the vector is at least one
//! block long, the last full block is loaded again (ending exactly at the
//! end of the slice) and its lanes that the main loops already counted are
//! zeroed with a mask before they are used; shorter vectors are copied into
//! a zeroed stack block ([`tail`]). No load ever reads past the end of a
//! slice, and zero lanes add nothing to any sum. All loads are unaligned.

use crate::dispatch::{Kernels, SimdLevel};
use crate::reference::{cosine_from_parts, jaccard_from_counts};
use crate::util::tail;
use core::arch::x86_64::*;
use half::{bf16, f16};

/// The `Avx2` kernel table.
///
/// Only [`crate::dispatch::kernels_for`] hands it out, and only after
/// `level_supported(SimdLevel::Avx2)` confirmed at runtime that the CPU has
/// AVX2, FMA, F16C and POPCNT; the safe wrappers in it rely on that.
pub(crate) static KERNELS: Kernels = Kernels {
    level: SimdLevel::Avx2,
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
    ($($vis:vis $name:ident => $imp:ident($t:ty) -> $r:ty;)*) => {$(
        $vis fn $name(a: &[$t], b: &[$t]) -> $r {
            assert_eq!(a.len(), b.len(), "vectors must have the same length");
            // SAFETY: the lengths agree (checked above), and this function is
            // reachable only through `KERNELS` (and, for the bit kernels, the
            // Avx512 tables), which dispatch hands out only after runtime
            // detection of (at least) AVX2, FMA, F16C and POPCNT.
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
    // Also used by the Avx512 level without VPOPCNTDQ.
    pub(super) bits_hamming => bits_hamming_impl(u8) -> u32;
    pub(super) bits_jaccard => bits_jaccard_impl(u8) -> f32;
}

// ---------------------------------------------------------------- loads --

/// Eight f32 from `p`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load_f32(p: *const f32) -> __m256 {
    // SAFETY: the caller guarantees 8 readable elements at `p`.
    unsafe { _mm256_loadu_ps(p) }
}

/// Eight f16 from `p`, widened exactly to f32 (F16C handles subnormals,
/// infinities and NaN).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load_f16(p: *const f16) -> __m256 {
    // SAFETY: the caller guarantees 8 readable elements (16 bytes) at `p`.
    _mm256_cvtph_ps(unsafe { _mm_loadu_si128(p.cast()) })
}

/// Sixteen bf16 from `p`, as raw bits.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load_bf16(p: *const bf16) -> __m256i {
    // SAFETY: the caller guarantees 16 readable elements (32 bytes) at `p`.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

/// The even- and odd-indexed elements of 16 raw bf16, widened exactly to f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn split_bf16(v: __m256i) -> (__m256, __m256) {
    let even = _mm256_slli_epi32::<16>(v);
    let odd = _mm256_and_si256(v, _mm256_set1_epi32(0xFFFF_0000_u32 as i32));
    (_mm256_castsi256_ps(even), _mm256_castsi256_ps(odd))
}

/// Sixteen i8 from `p`, sign-extended to i16.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load_i8(p: *const i8) -> __m256i {
    // SAFETY: the caller guarantees 16 readable bytes at `p`.
    _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(p.cast()) })
}

/// Sixteen u8 from `p`, zero-extended to i16.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load_u8(p: *const u8) -> __m256i {
    // SAFETY: the caller guarantees 16 readable bytes at `p`.
    _mm256_cvtepu8_epi16(unsafe { _mm_loadu_si128(p.cast()) })
}

/// 32 zero bytes then 32 all-ones bytes: the 32 bytes at offset `n` keep the
/// last `n` bytes of a vector.
static KEEP_LAST: [u8; 64] = {
    let mut t = [0u8; 64];
    let mut i = 32;
    while i < 64 {
        t[i] = 0xFF;
        i += 1;
    }
    t
};

/// A mask of all-ones in the last `n` bytes (1 <= n < 32) and zeros before.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn keep_last_bytes(n: usize) -> __m256i {
    assert!(n < 32);
    // SAFETY: n + 32 <= 64 bytes of KEEP_LAST.
    unsafe { _mm256_loadu_si256(KEEP_LAST.as_ptr().add(n).cast()) }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn mask_ps(v: __m256, keep: __m256i) -> __m256 {
    _mm256_and_ps(v, _mm256_castsi256_ps(keep))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn mask_si(v: __m256i, keep: __m256i) -> __m256i {
    _mm256_and_si256(v, keep)
}

// ----------------------------------------------------------- reductions --

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_ps(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// Wrapping sum of the eight i32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_epi32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

// ---------------------------------------------------------------- drivers --

/// Runs `$step` over `$a`/`$b` in blocks of `$w` elements loaded with
/// `$load` (each load gives one 32-byte vector), with four independent sets
/// of `$n` accumulators (`$acc` is a `&mut [V; $n]`), and returns the four
/// sets reduced lane-wise to one `[V; $n]`. The tail (see the module
/// comment; `$mask` applies a byte mask to a loaded vector) goes into set 1.
macro_rules! drive {
    (
        $t:ty, $w:literal, $load:ident, $mask:ident, $zero:expr, $add:ident, $a:ident, $b:ident, $n:literal,
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
            let ($x, $y) = if len >= $w {
                // Lanes of the last block: the first $w - (len - i) were counted.
                let keep = keep_last_bytes((len - i) * (32 / $w));
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
        let mut out = [$zero; $n];
        for (j, o) in out.iter_mut().enumerate() {
            *o = $add($add(sets[0][j], sets[1][j]), $add(sets[2][j], sets[3][j]));
        }
        out
    }};
}

macro_rules! float_kernels {
    ($t:ty, $load:ident, $dot:ident, $l2:ident, $cos:ident) => {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $dot(a: &[$t], b: &[$t]) -> f32 {
            let [s] = drive!($t, 8, $load, mask_ps, _mm256_setzero_ps(), _mm256_add_ps, a, b, 1, |acc, x, y| {
                acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
            });
            hsum_ps(s)
        }

        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $l2(a: &[$t], b: &[$t]) -> f32 {
            let [s] = drive!($t, 8, $load, mask_ps, _mm256_setzero_ps(), _mm256_add_ps, a, b, 1, |acc, x, y| {
                let d = _mm256_sub_ps(x, y);
                acc[0] = _mm256_fmadd_ps(d, d, acc[0]);
            });
            hsum_ps(s)
        }

        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $cos(a: &[$t], b: &[$t]) -> f32 {
            let [ab, aa, bb] =
                drive!($t, 8, $load, mask_ps, _mm256_setzero_ps(), _mm256_add_ps, a, b, 3, |acc, x, y| {
                    acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
                    acc[1] = _mm256_fmadd_ps(x, x, acc[1]);
                    acc[2] = _mm256_fmadd_ps(y, y, acc[2]);
                });
            cosine_from_parts(hsum_ps(ab) as f64, hsum_ps(aa) as f64, hsum_ps(bb) as f64) as f32
        }
    };
}

float_kernels!(f32, load_f32, f32_dot_impl, f32_l2sq_impl, f32_cosine_impl);
float_kernels!(f16, load_f16, f16_dot_impl, f16_l2sq_impl, f16_cosine_impl);

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bf16_dot_impl(a: &[bf16], b: &[bf16]) -> f32 {
    let [even, odd] = drive!(bf16, 16, load_bf16, mask_si, _mm256_setzero_ps(), _mm256_add_ps, a, b, 2, |acc, x, y| {
        let ((xe, xo), (ye, yo)) = (split_bf16(x), split_bf16(y));
        acc[0] = _mm256_fmadd_ps(xe, ye, acc[0]);
        acc[1] = _mm256_fmadd_ps(xo, yo, acc[1]);
    });
    hsum_ps(_mm256_add_ps(even, odd))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bf16_l2sq_impl(a: &[bf16], b: &[bf16]) -> f32 {
    let [even, odd] = drive!(bf16, 16, load_bf16, mask_si, _mm256_setzero_ps(), _mm256_add_ps, a, b, 2, |acc, x, y| {
        let ((xe, xo), (ye, yo)) = (split_bf16(x), split_bf16(y));
        let (de, d_o) = (_mm256_sub_ps(xe, ye), _mm256_sub_ps(xo, yo));
        acc[0] = _mm256_fmadd_ps(de, de, acc[0]);
        acc[1] = _mm256_fmadd_ps(d_o, d_o, acc[1]);
    });
    hsum_ps(_mm256_add_ps(even, odd))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bf16_cosine_impl(a: &[bf16], b: &[bf16]) -> f32 {
    let [ab, aa, bb] =
        drive!(bf16, 16, load_bf16, mask_si, _mm256_setzero_ps(), _mm256_add_ps, a, b, 3, |acc, x, y| {
            let ((xe, xo), (ye, yo)) = (split_bf16(x), split_bf16(y));
            acc[0] = _mm256_fmadd_ps(xo, yo, _mm256_fmadd_ps(xe, ye, acc[0]));
            acc[1] = _mm256_fmadd_ps(xo, xo, _mm256_fmadd_ps(xe, xe, acc[1]));
            acc[2] = _mm256_fmadd_ps(yo, yo, _mm256_fmadd_ps(ye, ye, acc[2]));
        });
    cosine_from_parts(hsum_ps(ab) as f64, hsum_ps(aa) as f64, hsum_ps(bb) as f64) as f32
}

/// `(dot, |a|², |b|²)` and l2sq for 8-bit integers, as wrapping i32 lane sums.
macro_rules! int_kernels {
    ($t:ty, $load:ident, $dot:ident, $l2:ident, $parts:ident) => {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $dot(a: &[$t], b: &[$t]) -> i32 {
            let [s] = drive!($t, 16, $load, mask_si, _mm256_setzero_si256(), _mm256_add_epi32, a, b, 1, |acc, x, y| {
                acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(x, y));
            });
            hsum_epi32(s)
        }

        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $l2(a: &[$t], b: &[$t]) -> u32 {
            let [s] = drive!($t, 16, $load, mask_si, _mm256_setzero_si256(), _mm256_add_epi32, a, b, 1, |acc, x, y| {
                let d = _mm256_sub_epi16(x, y);
                acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(d, d));
            });
            hsum_epi32(s) as u32
        }

        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $parts(a: &[$t], b: &[$t]) -> [i32; 3] {
            let [ab, aa, bb] =
                drive!($t, 16, $load, mask_si, _mm256_setzero_si256(), _mm256_add_epi32, a, b, 3, |acc, x, y| {
                    acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(x, y));
                    acc[1] = _mm256_add_epi32(acc[1], _mm256_madd_epi16(x, x));
                    acc[2] = _mm256_add_epi32(acc[2], _mm256_madd_epi16(y, y));
                });
            [hsum_epi32(ab), hsum_epi32(aa), hsum_epi32(bb)]
        }
    };
}

int_kernels!(i8, load_i8, i8_dot_impl, i8_l2sq_impl, i8_parts);
int_kernels!(u8, load_u8, u8_dot_wrapped, u8_l2sq_impl, u8_parts);

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn u8_dot_impl(a: &[u8], b: &[u8]) -> u32 {
    // Non-negative partial sums: the wrapped i32 bits are the exact u32 total.
    unsafe { u8_dot_wrapped(a, b) as u32 }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn i8_cosine_impl(a: &[i8], b: &[i8]) -> f32 {
    // dot within ±2^30; squared norms within [0, 2^30].
    let [ab, aa, bb] = unsafe { i8_parts(a, b) };
    cosine_from_parts(ab as f64, aa as f64, bb as f64) as f32
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn u8_cosine_impl(a: &[u8], b: &[u8]) -> f32 {
    // All three are non-negative and below 2^32: read the bits as u32.
    let [ab, aa, bb] = unsafe { u8_parts(a, b) };
    cosine_from_parts(ab as u32 as f64, aa as u32 as f64, bb as u32 as f64) as f32
}

// ----------------------------------------------------------------- bits --

#[inline(always)]
fn word(s: &[u8]) -> u64 {
    u64::from_le_bytes(s.try_into().expect("8-byte chunk"))
}

/// The last `len % 8` bytes of `s` (1..=7 of them) as the low bytes of a
/// word: the last 8 bytes shifted right when `s` is that long, else
/// assembled byte by byte.
#[inline(always)]
fn last_partial_word(s: &[u8], rem: usize) -> u64 {
    if s.len() >= 8 {
        word(&s[s.len() - 8..]) >> (64 - 8 * rem)
    } else {
        s.iter().rev().fold(0u64, |w, &b| (w << 8) | b as u64)
    }
}

/// Per-byte popcounts of `x` (a 16-entry nibble table looked up with
/// `vpshufb`), summed into the four u64 lanes with `vpsadbw`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,popcnt")]
fn popcount_lanes(x: __m256i) -> __m256i {
    let table = _mm256_setr_epi8(
        0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
    );
    let low = _mm256_set1_epi8(0x0f);
    let lo = _mm256_shuffle_epi8(table, _mm256_and_si256(x, low));
    let hi = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16::<4>(x), low));
    _mm256_sad_epu8(_mm256_add_epi8(lo, hi), _mm256_setzero_si256())
}

/// Sum of the four u64 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,popcnt")]
fn hsum_epi64(v: __m256i) -> u64 {
    let s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    (_mm_cvtsi128_si64(s) as u64).wrapping_add(_mm_extract_epi64::<1>(s) as u64)
}

/// Bit counts of `$a`/`$b`: `$block(x, y)` (returning `[__m256i; N]` of
/// per-lane counts) for every 32-byte block, two blocks in flight; then
/// `$word(wx, wy)` (returning `[u64; N]`) for the remaining whole words and
/// the zero-extended last partial word. Returns the `[u64; N]` totals.
macro_rules! bit_counts {
    ($a:ident, $b:ident, $n:literal, |$x:ident, $y:ident| $block:block, |$wx:ident, $wy:ident| $word:block) => {{
        let len = $a.len();
        let (pa, pb) = ($a.as_ptr(), $b.as_ptr());
        let mut acc = [[_mm256_setzero_si256(); $n]; 2];
        let mut count = |off: usize, set: usize| {
            // SAFETY: callers keep off + 32 <= len = a.len() = b.len().
            let ($x, $y) = unsafe { (_mm256_loadu_si256(pa.add(off).cast()), _mm256_loadu_si256(pb.add(off).cast())) };
            let c: [__m256i; $n] = $block;
            for (s, c) in acc[set].iter_mut().zip(c) {
                *s = _mm256_add_epi64(*s, c);
            }
        };
        let mut i = 0;
        while i + 64 <= len {
            count(i, 0);
            count(i + 32, 1);
            i += 64;
        }
        if i + 32 <= len {
            count(i, 0);
            i += 32;
        }
        let mut total = [0u64; $n];
        for (j, t) in total.iter_mut().enumerate() {
            *t = hsum_epi64(_mm256_add_epi64(acc[0][j], acc[1][j]));
        }
        let mut add = |c: [u64; $n]| {
            for (t, c) in total.iter_mut().zip(c) {
                *t += c;
            }
        };
        let (ra, rb) = ($a[i..].chunks_exact(8), $b[i..].chunks_exact(8));
        let rem = ra.remainder().len();
        for (x, y) in ra.zip(rb) {
            let ($wx, $wy) = (word(x), word(y));
            add($word);
        }
        if rem > 0 {
            let ($wx, $wy) = (last_partial_word($a, rem), last_partial_word($b, rem));
            add($word);
        }
        total
    }};
}

#[target_feature(enable = "avx2,fma,f16c,popcnt")]
unsafe fn bits_hamming_impl(a: &[u8], b: &[u8]) -> u32 {
    let [n] = bit_counts!(a, b, 1, |x, y| { [popcount_lanes(_mm256_xor_si256(x, y))] }, |x, y| {
        [(x ^ y).count_ones() as u64]
    });
    n as u32
}

#[target_feature(enable = "avx2,fma,f16c,popcnt")]
unsafe fn bits_jaccard_impl(a: &[u8], b: &[u8]) -> f32 {
    let [inter, union] = bit_counts!(
        a,
        b,
        2,
        |x, y| { [popcount_lanes(_mm256_and_si256(x, y)), popcount_lanes(_mm256_or_si256(x, y))] },
        |x, y| { [(x & y).count_ones() as u64, (x | y).count_ones() as u64] }
    );
    jaccard_from_counts(inter, union) as f32
}
