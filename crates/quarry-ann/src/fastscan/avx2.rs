//! AVX2 kernels: one 32-byte load per sub-quantizer pair holds the nibbles
//! of 32 vectors (low lane: sub-quantizer 2q, high lane: 2q + 1); `vpshufb`
//! of the pair's two 16-entry u8 tables by the low nibbles gives the terms
//! of vectors 0..16, by the high nibbles those of vectors 16..32.
//!
//! Widening to u16 without unpacking: a shuffle result read as u16 lanes is
//! `even + 256 · odd` (even/odd = the terms of the even/odd vectors). Each
//! result is added as is to one accumulator and shifted right by 8 (= odd)
//! into another; at the end `acc − (odd << 8)` is Σ even modulo 2^16, which
//! is exact because `QuantizedLut` bounds every total by 65535. That costs
//! one shift and two adds per result instead of two unpacks and two adds.

use core::arch::x86_64::*;

use super::{BLOCK, Collector, Pruner, QuantizedLut, block_bytes, pairs};

/// The 32 sums of one block: vectors 0..16 and 16..32 as u16 lanes.
///
/// # Safety
/// AVX2 must be available; `block` and `tables` must hold `pairs * 32` bytes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn block_sums(block: *const u8, tables: *const u8, pairs: usize) -> (__m256i, __m256i) {
    let low_nibbles = _mm256_set1_epi8(0x0f);
    let mut acc_lo = _mm256_setzero_si256();
    let mut odd_lo = _mm256_setzero_si256();
    let mut acc_hi = _mm256_setzero_si256();
    let mut odd_hi = _mm256_setzero_si256();
    for q in 0..pairs {
        // SAFETY: q < pairs and both buffers hold pairs × 32 bytes.
        let (codes, table) = unsafe {
            (
                _mm256_loadu_si256(block.add(q * 32) as *const __m256i),
                _mm256_loadu_si256(tables.add(q * 32) as *const __m256i),
            )
        };
        let lo = _mm256_and_si256(codes, low_nibbles);
        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(codes), low_nibbles);
        let r_lo = _mm256_shuffle_epi8(table, lo);
        let r_hi = _mm256_shuffle_epi8(table, hi);
        acc_lo = _mm256_add_epi16(acc_lo, r_lo);
        odd_lo = _mm256_add_epi16(odd_lo, _mm256_srli_epi16::<8>(r_lo));
        acc_hi = _mm256_add_epi16(acc_hi, r_hi);
        odd_hi = _mm256_add_epi16(odd_hi, _mm256_srli_epi16::<8>(r_hi));
    }
    (finish(acc_lo, odd_lo), finish(acc_hi, odd_hi))
}

/// Turns (Σ (even + 256·odd), Σ odd) per lane into the 16 totals in vector
/// order: lane 0 carries the even sub-quantizers, lane 1 the odd ones.
#[inline]
#[target_feature(enable = "avx2")]
fn finish(acc: __m256i, odd: __m256i) -> __m256i {
    let even = _mm256_sub_epi16(acc, _mm256_slli_epi16::<8>(odd));
    // Per lane: vectors 0..8 and 8..16 in order.
    let first = _mm256_unpacklo_epi16(even, odd);
    let second = _mm256_unpackhi_epi16(even, odd);
    // Bring both lanes' halves of the same vectors together and add them.
    let subs_even = _mm256_permute2x128_si256::<0x20>(first, second);
    let subs_odd = _mm256_permute2x128_si256::<0x31>(first, second);
    _mm256_add_epi16(subs_even, subs_odd)
}

/// # Safety
/// AVX2 must be available; `packed` holds `packed_len(n, m)` bytes and
/// `out` exactly n values.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn scan(packed: &[u8], n: usize, lut: &QuantizedLut, out: &mut [u16]) {
    let bb = block_bytes(lut.m);
    let p = pairs(lut.m);
    let tables = lut.tables.as_ptr();
    for b in 0..n.div_ceil(BLOCK) {
        let start = b * BLOCK;
        // SAFETY: block b lies inside `packed` (length checked by the caller).
        let (s0, s1) = unsafe { block_sums(packed.as_ptr().add(b * bb), tables, p) };
        if n - start >= BLOCK {
            // SAFETY: out[start..start + 32] is in bounds.
            unsafe {
                _mm256_storeu_si256(out.as_mut_ptr().add(start) as *mut __m256i, s0);
                _mm256_storeu_si256(out.as_mut_ptr().add(start + 16) as *mut __m256i, s1);
            }
        } else {
            let sums = to_array(s0, s1);
            out[start..].copy_from_slice(&sums[..n - start]);
        }
    }
}

#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn to_array(s0: __m256i, s1: __m256i) -> [u16; BLOCK] {
    let mut sums = [0u16; BLOCK];
    // SAFETY: `sums` holds 64 bytes.
    unsafe {
        _mm256_storeu_si256(sums.as_mut_ptr() as *mut __m256i, s0);
        _mm256_storeu_si256(sums.as_mut_ptr().add(16) as *mut __m256i, s1);
    }
    sums
}

/// Bit j set when sum j ≤ bound (unsigned).
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn le_mask(s0: __m256i, s1: __m256i, bound: u16) -> u32 {
    let b = _mm256_set1_epi16(bound as i16);
    let ok0 = _mm256_cmpeq_epi16(_mm256_min_epu16(s0, b), s0);
    let ok1 = _mm256_cmpeq_epi16(_mm256_min_epu16(s1, b), s1);
    // Lane-wise pack gives quadwords [ok0 0..8, ok1 0..8, ok0 8..16, ok1 8..16].
    let bytes = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi16(ok0, ok1));
    _mm256_movemask_epi8(bytes) as u32
}

/// # Safety
/// AVX2 must be available; `packed` holds `packed_len(n, m)` bytes.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn collect(packed: &[u8], n: usize, lut: &QuantizedLut, c: &mut impl Collector) {
    let bb = block_bytes(lut.m);
    let p = pairs(lut.m);
    let tables = lut.tables.as_ptr();
    let mut pruner = Pruner::new(lut, c);
    for b in 0..n.div_ceil(BLOCK) {
        let allowed = c.block_allowed(b);
        if allowed == 0 {
            continue;
        }
        let start = b * BLOCK;
        // SAFETY: block b lies inside `packed` (length checked by the caller).
        let (s0, s1) = unsafe { block_sums(packed.as_ptr().add(b * bb), tables, p) };
        let valid = if n - start >= BLOCK { u32::MAX } else { (1u32 << (n - start)) - 1 };
        let mask = le_mask(s0, s1, pruner.bound) & valid & allowed;
        if mask != 0 {
            pruner.offer_mask(mask, &to_array(s0, s1), start, lut, c);
        }
    }
}

/// Sums of one block for `Q` queries sharing the code loads and nibble
/// splits; the per-query work is the two shuffles and the widening adds.
///
/// # Safety
/// AVX2 must be available; `block` and every table hold `pairs * 32` bytes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn block_sums_multi<const Q: usize>(
    block: *const u8,
    tables: [*const u8; Q],
    pairs: usize,
) -> [(__m256i, __m256i); Q] {
    let low_nibbles = _mm256_set1_epi8(0x0f);
    let zero = _mm256_setzero_si256();
    let mut acc = [[zero; 4]; Q];
    for q in 0..pairs {
        // SAFETY: q < pairs and the block holds pairs × 32 bytes.
        let codes = unsafe { _mm256_loadu_si256(block.add(q * 32) as *const __m256i) };
        let lo = _mm256_and_si256(codes, low_nibbles);
        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(codes), low_nibbles);
        for (a, &t) in acc.iter_mut().zip(&tables) {
            // SAFETY: every table holds pairs × 32 bytes.
            let table = unsafe { _mm256_loadu_si256(t.add(q * 32) as *const __m256i) };
            let r_lo = _mm256_shuffle_epi8(table, lo);
            let r_hi = _mm256_shuffle_epi8(table, hi);
            a[0] = _mm256_add_epi16(a[0], r_lo);
            a[1] = _mm256_add_epi16(a[1], _mm256_srli_epi16::<8>(r_lo));
            a[2] = _mm256_add_epi16(a[2], r_hi);
            a[3] = _mm256_add_epi16(a[3], _mm256_srli_epi16::<8>(r_hi));
        }
    }
    acc.map(|a| (finish(a[0], a[1]), finish(a[2], a[3])))
}

/// # Safety
/// AVX2 must be available; `packed` holds `packed_len(n, m)` bytes; all
/// tables have the same m; `luts.len() == collectors.len()`.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn collect_batch<C: Collector>(
    packed: &[u8],
    n: usize,
    luts: &[&QuantizedLut],
    collectors: &mut [C],
) {
    let mut rest = luts.len();
    let mut at = 0;
    while rest > 0 {
        // Groups of up to 3 keep the 4 accumulators per query in registers.
        let take = rest.min(3);
        let (l, c) = (&luts[at..at + take], &mut collectors[at..at + take]);
        // SAFETY: forwarded from the caller.
        unsafe {
            match take {
                3 => collect_group::<3, C>(packed, n, l, c),
                2 => collect_group::<2, C>(packed, n, l, c),
                _ => collect(packed, n, l[0], &mut c[0]),
            }
        }
        at += take;
        rest -= take;
    }
}

/// # Safety
/// As [`collect_batch`], with exactly `Q` tables and collectors.
#[target_feature(enable = "avx2")]
unsafe fn collect_group<const Q: usize, C: Collector>(
    packed: &[u8],
    n: usize,
    luts: &[&QuantizedLut],
    collectors: &mut [C],
) {
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
        let sums = unsafe { block_sums_multi::<Q>(packed.as_ptr().add(b * bb), tables, p) };
        let valid = if n - start >= BLOCK { u32::MAX } else { (1u32 << (n - start)) - 1 };
        for (i, (s0, s1)) in sums.into_iter().enumerate() {
            let mask = le_mask(s0, s1, pruners[i].bound) & valid & allowed[i];
            if mask != 0 {
                pruners[i].offer_mask(mask, &to_array(s0, s1), start, luts[i], &mut collectors[i]);
            }
        }
    }
}
