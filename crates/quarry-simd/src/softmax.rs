//! The softmax-numerator pass `x[i] = exp(x[i] - m)`, returning `Σ x[i]`,
//! shared by quarry-kv's decode attention and quarry-attn's prefill: a scalar
//! reference, an AVX2+FMA kernel and its AVX-512F twin. The `exp` is a Cody–Waite reduction
//! `x = n·ln2 + r`, a degree-6 polynomial for `exp(r)` on |r| ≤ ln2/2 (about
//! 2 ulp) and `2^n` by exponent arithmetic (AVX2) or `vscalefps` (AVX-512);
//! results that would be subnormal come out as exactly 0, so masked `-inf`
//! scores add nothing.

/// Cody–Waite split of ln 2 (`LN2_HI` has few mantissa bits, so `n·LN2_HI` is exact), the
/// polynomial for `exp(r)` on |r| <= ln2/2 (`1 + r + r²·(POLY[5] + r·(... + r·POLY[0]))`,
/// Horner from the highest degree) and the input clamp, shared by both SIMD kernels.
#[cfg(target_arch = "x86_64")]
const LN2_HI: f32 = 0.693_359_4;
#[cfg(target_arch = "x86_64")]
const LN2_LO: f32 = -2.121_944_4e-4;
#[cfg(target_arch = "x86_64")]
const POLY: [f32; 6] = [1.987_569_1e-4, 1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5];
#[cfg(target_arch = "x86_64")]
const EXP_MAX_INPUT: f32 = 88.3;

/// Scalar reference: `x[i] = exp(x[i] - m)`, returning the sum.
pub fn exp_sub_sum_scalar(x: &mut [f32], m: f32) -> f32 {
    let mut s = 0f32;
    for v in x {
        *v = (*v - m).exp();
        s += *v;
    }
    s
}

#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use super::{EXP_MAX_INPUT, LN2_HI, LN2_LO, POLY};
    use std::arch::x86_64::*;

    /// `exp` of eight lanes (see the module doc).
    ///
    /// # Safety
    /// Callable only where AVX2 and FMA are present (a `target_feature` function).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub fn exp(x: __m256) -> __m256 {
        let lo = _mm256_set1_ps(-87.3);
        let under = _mm256_cmp_ps::<_CMP_LT_OQ>(x, lo);
        let x = _mm256_min_ps(_mm256_max_ps(x, lo), _mm256_set1_ps(EXP_MAX_INPUT));
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
            x,
            _mm256_set1_ps(std::f32::consts::LOG2_E),
        ));
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
        let mut y = _mm256_set1_ps(POLY[0]);
        for &c in &POLY[1..] {
            y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(c));
        }
        let r2 = _mm256_mul_ps(r, r);
        y = _mm256_fmadd_ps(y, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0)));
        let pow2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127))));
        _mm256_andnot_ps(under, _mm256_mul_ps(y, pow2))
    }

    /// `x[i] = exp(x[i] - m)`, returning the sum.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp_sub_sum(x: &mut [f32], m: f32) -> f32 {
        let n = x.len();
        let p = x.as_mut_ptr();
        let mv = _mm256_set1_ps(m);
        let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        // Two vectors per step: `exp` is a long dependency chain.
        while i + 16 <= n {
            // SAFETY: lanes i..i+16 are within `x`.
            unsafe {
                let e0 = exp(_mm256_sub_ps(_mm256_loadu_ps(p.add(i)), mv));
                let e1 = exp(_mm256_sub_ps(_mm256_loadu_ps(p.add(i + 8)), mv));
                _mm256_storeu_ps(p.add(i), e0);
                _mm256_storeu_ps(p.add(i + 8), e1);
                s0 = _mm256_add_ps(s0, e0);
                s1 = _mm256_add_ps(s1, e1);
            }
            i += 16;
        }
        let mut s = _mm256_add_ps(s0, s1);
        if i + 8 <= n {
            // SAFETY: lanes i..i+8 are within `x`.
            unsafe {
                let e = exp(_mm256_sub_ps(_mm256_loadu_ps(p.add(i)), mv));
                _mm256_storeu_ps(p.add(i), e);
                s = _mm256_add_ps(s, e);
            }
            i += 8;
        }
        if i < n {
            // Lane l is on when l < n - i.
            let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((n - i) as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            // SAFETY: masked lanes stay within `x`.
            unsafe {
                let v = _mm256_maskload_ps(p.add(i), mask);
                let e = _mm256_and_ps(exp(_mm256_sub_ps(v, mv)), _mm256_castsi256_ps(mask));
                _mm256_maskstore_ps(p.add(i), mask, e);
                s = _mm256_add_ps(s, e);
            }
        }
        let s4 = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps::<1>(s));
        let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps::<1>(s2, s2)))
    }
}


/// The AVX-512F twin of [`avx2`] (16 lanes, masked tails).
#[cfg(target_arch = "x86_64")]
pub mod avx512 {
    use super::{EXP_MAX_INPUT, LN2_HI, LN2_LO, POLY};
    use std::arch::x86_64::*;

    /// `exp(x)` per lane: the AVX2 kernel's range reduction and polynomial,
    /// with `vscalefps` applying the power of two. It underflows to exactly
    /// 0 on its own (inputs are clamped to -110, where 2^n is below the
    /// smallest denormal), so `-inf` scores need no separate mask.
    ///
    /// # Safety
    /// Callable only where AVX-512F is present (a `target_feature` function).
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub fn exp(x: __m512) -> __m512 {
        let x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-110.0)), _mm512_set1_ps(EXP_MAX_INPUT));
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)));
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
        let mut y = _mm512_set1_ps(POLY[0]);
        for &c in &POLY[1..] {
            y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(c));
        }
        let r2 = _mm512_mul_ps(r, r);
        y = _mm512_fmadd_ps(y, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0)));
        _mm512_scalef_ps(y, n)
    }

    /// `x[i] = exp(x[i] - m)`, returning the sum.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn exp_sub_sum(x: &mut [f32], m: f32) -> f32 {
        let n = x.len();
        let p = x.as_mut_ptr();
        let mv = _mm512_set1_ps(m);
        let mut sv = _mm512_setzero_ps();
        let mut i = 0;
        while i < n {
            let mask = lane_mask(n - i);
            // SAFETY: lanes past n are masked off in the load and the store.
            unsafe {
                let e = _mm512_maskz_mov_ps(mask, exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, p.add(i)), mv)));
                _mm512_mask_storeu_ps(p.add(i), mask, e);
                sv = _mm512_add_ps(sv, e);
            }
            i += 16;
        }
        _mm512_reduce_add_ps(sv)
    }

    /// Lanes `0..valid` of a 16-lane vector (valid may exceed 16).
    #[inline]
    fn lane_mask(valid: usize) -> __mmask16 {
        if valid >= 16 { 0xffff } else { ((1u32 << valid) - 1) as __mmask16 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn simd_matches_scalar_on_every_tail_length() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return;
        }
        let mut s = 12345u32;
        for n in 0..70 {
            let x: Vec<f32> = (0..n)
                .map(|i| {
                    s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    if i % 11 == 5 { f32::NEG_INFINITY } else { (s >> 8) as f32 / (1u32 << 24) as f32 * 120.0 - 100.0 }
                })
                .collect();
            let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max).max(0.0);
            let (mut a, mut b) = (x.clone(), x.clone());
            // SAFETY: AVX2 and FMA detected above.
            let sa = unsafe { avx2::exp_sub_sum(&mut a, m) };
            let sb = exp_sub_sum_scalar(&mut b, m);
            if is_x86_feature_detected!("avx512f") {
                let mut c = x.clone();
                // SAFETY: AVX-512F detected.
                let sc = unsafe { avx512::exp_sub_sum(&mut c, m) };
                assert!((sc - sb).abs() <= 1e-6 * sb.abs() + 1e-37, "avx512 n {n}: {sc} vs {sb}");
                for (p, q) in c.iter().zip(&b) {
                    assert!((p - q).abs() <= 4e-7 * q.abs() + 1e-37, "avx512 n {n}: {p} vs {q}");
                }
            }
            assert!((sa - sb).abs() <= 1e-6 * sb.abs() + 1e-37, "n {n}: {sa} vs {sb}");
            for (p, q) in a.iter().zip(&b) {
                assert!((p - q).abs() <= 4e-7 * q.abs() + 1e-37, "n {n}: {p} vs {q}");
                if *q == 0.0 {
                    assert_eq!(*p, 0.0);
                }
            }
        }
    }
}
