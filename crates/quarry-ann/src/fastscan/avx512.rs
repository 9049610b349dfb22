//! AVX-512BW kernels: one 64-byte load holds two consecutive sub-quantizer
//! pairs of a block (four 128-bit lanes: sub-quantizers 2q, 2q + 1, 2q + 2,
//! 2q + 3), matching 64 bytes of tables, so each `vpshufb` looks up four
//! sub-quantizers of 16 vectors — twice the work per instruction of the
//! AVX2 kernels. An odd last pair is loaded with its upper half masked to
//! zero (a zero table adds nothing). The widening trick is the AVX2 one
//! (see `avx2.rs`); at the end the two 256-bit halves, which hold partial
//! sums of the same vectors, are added and finished as in AVX2.

use core::arch::x86_64::*;

use super::avx2::{le_mask, to_array};
use super::{BLOCK, Collector, Pruner, QuantizedLut, block_bytes, pairs};

/// Mask of the lower 32 bytes of a 64-byte load (one pair).
const LOW_PAIR: __mmask64 = 0xffff_ffff;

/// Four accumulators of one query: Σ for low-nibble vectors, Σ odd of them,
/// and the same for high-nibble vectors.
#[derive(Clone, Copy)]
struct Acc([__m512i; 4]);

impl Acc {
    #[inline]
    #[target_feature(enable = "avx512bw")]
    fn zero() -> Self {
        Acc([_mm512_setzero_si512(); 4])
    }

    /// Adds the lookups of one 64-byte table group for split nibbles.
    #[inline]
    #[target_feature(enable = "avx512bw")]
    fn add(&mut self, table: __m512i, lo: __m512i, hi: __m512i) {
        let r_lo = _mm512_shuffle_epi8(table, lo);
        let r_hi = _mm512_shuffle_epi8(table, hi);
        self.0[0] = _mm512_add_epi16(self.0[0], r_lo);
        self.0[1] = _mm512_add_epi16(self.0[1], _mm512_srli_epi16::<8>(r_lo));
        self.0[2] = _mm512_add_epi16(self.0[2], r_hi);
        self.0[3] = _mm512_add_epi16(self.0[3], _mm512_srli_epi16::<8>(r_hi));
    }

    /// The 32 sums in vector order (vectors 0..16, 16..32).
    #[inline]
    #[target_feature(enable = "avx512bw")]
    fn finish(self) -> (__m256i, __m256i) {
        (
            finish256(fold(self.0[0]), fold(self.0[1])),
            finish256(fold(self.0[2]), fold(self.0[3])),
        )
    }
}

/// Sum of the two 256-bit halves (partial sums of the same vectors).
#[inline]
#[target_feature(enable = "avx512bw")]
fn fold(z: __m512i) -> __m256i {
    _mm256_add_epi16(_mm512_castsi512_si256(z), _mm512_extracti64x4_epi64::<1>(z))
}

/// As `avx2::finish`: (Σ (even + 256·odd), Σ odd) per 16-bit lane, lane 0
/// and lane 1 holding different sub-quantizers of the same vectors.
#[inline]
#[target_feature(enable = "avx512bw")]
fn finish256(acc: __m256i, odd: __m256i) -> __m256i {
    let even = _mm256_sub_epi16(acc, _mm256_slli_epi16::<8>(odd));
    let first = _mm256_unpacklo_epi16(even, odd);
    let second = _mm256_unpackhi_epi16(even, odd);
    let subs_even = _mm256_permute2x128_si256::<0x20>(first, second);
    let subs_odd = _mm256_permute2x128_si256::<0x31>(first, second);
    _mm256_add_epi16(subs_even, subs_odd)
}

/// Low and high nibbles of 64 code bytes.
#[inline]
#[target_feature(enable = "avx512bw")]
fn split(codes: __m512i) -> (__m512i, __m512i) {
    let low_nibbles = _mm512_set1_epi8(0x0f);
    (_mm512_and_si512(codes, low_nibbles), _mm512_and_si512(_mm512_srli_epi16::<4>(codes), low_nibbles))
}

/// The 32 sums of one block for `Q` queries sharing the code loads.
///
/// # Safety
/// AVX-512BW must be available; `block` and every table hold `pairs * 32` bytes.
#[inline]
#[target_feature(enable = "avx512bw")]
unsafe fn block_sums<const Q: usize>(block: *const u8, tables: [*const u8; Q], pairs: usize) -> [(__m256i, __m256i); Q] {
    let mut acc = [Acc::zero(); Q];
    let full = pairs / 2;
    for g in 0..full {
        // SAFETY: 2g + 1 < pairs, so 64 bytes from g·64 are inside every buffer.
        let codes = unsafe { _mm512_loadu_si512(block.add(g * 64) as *const __m512i) };
        let (lo, hi) = split(codes);
        for (a, &t) in acc.iter_mut().zip(&tables) {
            // SAFETY: as above.
            a.add(unsafe { _mm512_loadu_si512(t.add(g * 64) as *const __m512i) }, lo, hi);
        }
    }
    if pairs % 2 == 1 {
        // The last pair alone: masked loads read only its 32 bytes.
        let at = full * 64;
        // SAFETY: bytes at..at + 32 are inside every buffer; masked-off bytes are not read.
        let codes = unsafe { _mm512_maskz_loadu_epi8(LOW_PAIR, block.add(at) as *const i8) };
        let (lo, hi) = split(codes);
        for (a, &t) in acc.iter_mut().zip(&tables) {
            // SAFETY: as above.
            a.add(unsafe { _mm512_maskz_loadu_epi8(LOW_PAIR, t.add(at) as *const i8) }, lo, hi);
        }
    }
    acc.map(|a| a.finish())
}

/// # Safety
/// AVX-512BW must be available; `packed` holds `packed_len(n, m)` bytes and
/// `out` exactly n values.
#[target_feature(enable = "avx512bw")]
pub(crate) unsafe fn scan(packed: &[u8], n: usize, lut: &QuantizedLut, out: &mut [u16]) {
    let bb = block_bytes(lut.m);
    let p = pairs(lut.m);
    let tables = [lut.tables.as_ptr()];
    for b in 0..n.div_ceil(BLOCK) {
        let start = b * BLOCK;
        // SAFETY: block b lies inside `packed` (length checked by the caller).
        let [(s0, s1)] = unsafe { block_sums::<1>(packed.as_ptr().add(b * bb), tables, p) };
        if n - start >= BLOCK {
            // SAFETY: out[start..start + 32] is in bounds.
            unsafe {
                _mm256_storeu_si256(out.as_mut_ptr().add(start) as *mut __m256i, s0);
                _mm256_storeu_si256(out.as_mut_ptr().add(start + 16) as *mut __m256i, s1);
            }
        } else {
            out[start..].copy_from_slice(&to_array(s0, s1)[..n - start]);
        }
    }
}

/// # Safety
/// AVX-512BW must be available; `packed` holds `packed_len(n, m)` bytes.
#[target_feature(enable = "avx512bw")]
pub(crate) unsafe fn collect(packed: &[u8], n: usize, lut: &QuantizedLut, c: &mut impl Collector) {
    // SAFETY: forwarded from the caller.
    unsafe { collect_group::<1, _>(packed, n, &[lut], std::slice::from_mut(c)) }
}

/// # Safety
/// AVX-512BW must be available; `packed` holds `packed_len(n, m)` bytes; all
/// tables have the same m; `luts.len() == collectors.len()`.
#[target_feature(enable = "avx512bw")]
pub(crate) unsafe fn collect_batch<C: Collector>(packed: &[u8], n: usize, luts: &[&QuantizedLut], collectors: &mut [C]) {
    let mut at = 0;
    while at < luts.len() {
        // Groups of up to 4: 16 accumulators plus codes and nibbles stay in
        // the 32 zmm registers.
        let take = (luts.len() - at).min(4);
        let (l, c) = (&luts[at..at + take], &mut collectors[at..at + take]);
        // SAFETY: forwarded from the caller.
        unsafe {
            match take {
                4 => collect_group::<4, C>(packed, n, l, c),
                3 => collect_group::<3, C>(packed, n, l, c),
                2 => collect_group::<2, C>(packed, n, l, c),
                _ => collect_group::<1, C>(packed, n, l, c),
            }
        }
        at += take;
    }
}

/// # Safety
/// As [`collect_batch`], with exactly `Q` tables and collectors.
#[target_feature(enable = "avx512bw")]
unsafe fn collect_group<const Q: usize, C: Collector>(packed: &[u8], n: usize, luts: &[&QuantizedLut], collectors: &mut [C]) {
    let m = luts[0].m;
    let bb = block_bytes(m);
    let p = pairs(m);
    let tables: [*const u8; Q] = std::array::from_fn(|i| luts[i].tables.as_ptr());
    let mut pruners: [Pruner; Q] = std::array::from_fn(|i| Pruner::new(luts[i], &collectors[i]));
    for b in 0..n.div_ceil(BLOCK) {
        let allowed: [u32; Q] = std::array::from_fn(|i| collectors[i].block_allowed(b));
        if allowed.iter().all(|&a| a == 0) {
            continue;
        }
        let start = b * BLOCK;
        // SAFETY: block b lies inside `packed`; tables hold pairs × 32 bytes.
        let sums = unsafe { block_sums::<Q>(packed.as_ptr().add(b * bb), tables, p) };
        let valid = if n - start >= BLOCK { u32::MAX } else { (1u32 << (n - start)) - 1 };
        for (i, (s0, s1)) in sums.into_iter().enumerate() {
            let mask = le_mask(s0, s1, pruners[i].bound) & valid & allowed[i];
            if mask != 0 {
                pruners[i].offer_mask(mask, &to_array(s0, s1), start, luts[i], &mut collectors[i]);
            }
        }
    }
}
