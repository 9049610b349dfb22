//! Small float kernels the fused attention loops are built from, with an
//! AVX2+FMA+F16C path chosen at run time and a scalar fallback. Every AVX2
//! function is tested against its scalar twin (`tests/kernels.rs`).

use half::f16;
use std::sync::OnceLock;

/// Whether the AVX2 paths are used (probed once).
pub fn has_avx2() -> bool {
    static AVX2: OnceLock<bool> = OnceLock::new();
    *AVX2.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::env::var_os("QUARRY_KV_FORCE_SCALAR").is_some() {
                return false;
            }
            is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// `Σ aᵢ·bᵢ` in f32 (quarry-simd's dispatched kernel).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    (quarry_simd::kernels().f32_dot)(a, b)
}

/// `y += alpha·x`.
#[inline]
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2+FMA (checked above); lengths are equal.
        unsafe { x86::axpy(alpha, x, y) };
        return;
    }
    axpy_scalar(alpha, x, y)
}

/// Scalar reference of [`axpy`].
pub fn axpy_scalar(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi = alpha.mul_add(*xi, *yi);
    }
}

/// `y[i] = scale[i]·y[i] + zero[i]` (per-element affine, used to dequantize
/// per-channel codes).
#[inline]
pub fn affine(y: &mut [f32], scale: &[f32], zero: &[f32]) {
    assert!(scale.len() >= y.len() && zero.len() >= y.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2+FMA present; lengths checked.
        unsafe { x86::affine(y, scale, zero) };
        return;
    }
    for i in 0..y.len() {
        y[i] = y[i].mul_add(scale[i], zero[i]);
    }
}

/// Per-group affine over `rows` rows of stride `dp`: group `i` (of `group`
/// consecutive values, counted across the whole tile) gets
/// `y = y·scale[i] + zero[i]`.
pub fn affine_groups(y: &mut [f32], group: usize, scale: &[f32], zero: &[f32]) {
    assert!(scale.len() * group <= y.len() && zero.len() == scale.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2() && group.is_multiple_of(8) {
        // SAFETY: AVX2+FMA present; `scale.len()·group ≤ y.len()`.
        unsafe { x86::affine_groups(y, group, scale, zero) };
        return;
    }
    for (i, (s, z)) in scale.iter().zip(zero).enumerate() {
        for v in &mut y[i * group..(i + 1) * group] {
            *v = v.mul_add(*s, *z);
        }
    }
}

/// `y[i] = s·y[i] + z` (one affine for a group).
#[inline]
pub fn affine1(y: &mut [f32], s: f32, z: f32) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2+FMA present.
        unsafe { x86::affine1(y, s, z) };
        return;
    }
    for v in y {
        *v = v.mul_add(s, z);
    }
}

/// `x[i] = exp(x[i])`. The AVX2 path is quarry-simd's softmax `exp`
/// (`quarry_simd::softmax`, relative error below 3e-7 on the range softmax
/// uses, `x ≤ 0`); values below -87.3 give exactly 0, like the scalar
/// `f32::exp` underflow.
#[inline]
pub fn exp_inplace(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2+FMA present.
        unsafe { quarry_simd::softmax::avx2::exp_sub_sum(x, 0.0) };
        return;
    }
    exp_scalar(x)
}

/// Scalar reference of [`exp_inplace`].
pub fn exp_scalar(x: &mut [f32]) {
    for v in x {
        *v = v.exp();
    }
}

/// Largest element (`-inf` for an empty slice; NaN-free input assumed, as
/// attention scores of finite keys and queries are).
#[inline]
pub fn max_of(x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 present.
        return unsafe { x86::max_of(x) };
    }
    max_of_scalar(x)
}

/// Scalar reference of [`max_of`].
pub fn max_of_scalar(x: &[f32]) -> f32 {
    x.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b))
}

/// `x[i] = exp(x[i] - m)`, returning `Σ x[i]` (softmax numerators and
/// their sum in one pass).
#[inline]
pub fn exp_shift_sum(x: &mut [f32], m: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2+FMA present.
        return unsafe { quarry_simd::softmax::avx2::exp_sub_sum(x, m) };
    }
    exp_shift_sum_scalar(x, m)
}

/// Scalar reference of [`exp_shift_sum`].
pub fn exp_shift_sum_scalar(x: &mut [f32], m: f32) -> f32 {
    quarry_simd::softmax::exp_sub_sum_scalar(x, m)
}

/// `x[i] = table[x[i]]`: codes unpacked as f32 (small non-negative
/// integers) replaced by their codebook values (KVQuant). Codes are clamped
/// to the table, so any input reads inside it.
pub fn lut(x: &mut [f32], table: &[f32]) {
    assert!(!table.is_empty() && table.len() <= 1 << 24);
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 present; the table is non-empty.
        unsafe { x86::lut(x, table) };
        return;
    }
    lut_scalar(x, table)
}

/// Scalar reference of [`lut`].
pub fn lut_scalar(x: &mut [f32], table: &[f32]) {
    for v in x {
        // `as` saturates: negative and NaN codes read entry 0
        *v = table[(*v as usize).min(table.len() - 1)];
    }
}

/// Widen f16 to f32.
#[inline]
pub fn f16_to_f32(src: &[f16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: F16C present (checked with AVX2); lengths equal.
        unsafe { x86::f16_to_f32(src, dst) };
        return;
    }
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s.to_f32();
    }
}

/// Scores of a tile: `out[j·n + t] = scale · q_j · k_t` for `g` query rows
/// (`q`: `g × dp`) and `n` key rows (`k`: `n × dp`), `dp` a multiple of 16.
pub fn scores_tile(q: &[f32], k: &[f32], n: usize, dp: usize, g: usize, scale: f32, out: &mut [f32]) {
    assert!(q.len() >= g * dp && k.len() >= n * dp && out.len() >= g * n && dp.is_multiple_of(16));
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2+FMA present; every index below is within the asserted lengths.
        unsafe { x86::scores_tile(q, k, n, dp, g, scale, out) };
        return;
    }
    scores_tile_scalar(q, k, n, dp, g, scale, out)
}

/// Scalar reference of [`scores_tile`].
pub fn scores_tile_scalar(q: &[f32], k: &[f32], n: usize, dp: usize, g: usize, scale: f32, out: &mut [f32]) {
    for j in 0..g {
        for t in 0..n {
            let mut acc = 0f32;
            for c in 0..dp {
                acc = q[j * dp + c].mul_add(k[t * dp + c], acc);
            }
            out[j * n + t] = acc * scale;
        }
    }
}

/// Weighted sum of a tile: `acc_j += Σ_t p[j·n + t] · v_t` for `g` rows of
/// `acc` (`g × dp`), `dp` a multiple of 32.
pub fn accum_tile(p: &[f32], v: &[f32], n: usize, dp: usize, g: usize, acc: &mut [f32]) {
    assert!(p.len() >= g * n && v.len() >= n * dp && acc.len() >= g * dp && dp.is_multiple_of(32));
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2+FMA present; indices within the asserted lengths.
        unsafe { x86::accum_tile(p, v, n, dp, g, acc) };
        return;
    }
    accum_tile_scalar(p, v, n, dp, g, acc)
}

/// Scalar reference of [`accum_tile`].
pub fn accum_tile_scalar(p: &[f32], v: &[f32], n: usize, dp: usize, g: usize, acc: &mut [f32]) {
    for t in 0..n {
        for j in 0..g {
            let w = p[j * n + t];
            for c in 0..dp {
                acc[j * dp + c] = w.mul_add(v[t * dp + c], acc[j * dp + c]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use half::f16;
    use std::arch::x86_64::*;


    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn scores_tile(q: &[f32], k: &[f32], n: usize, dp: usize, g: usize, scale: f32, out: &mut [f32]) {
        unsafe {
            let qp = q.as_ptr();
            let kp = k.as_ptr();
            for t in 0..n {
                let kr = kp.add(t * dp);
                for j in 0..g {
                    let qr = qp.add(j * dp);
                    let mut a0 = _mm256_setzero_ps();
                    let mut a1 = _mm256_setzero_ps();
                    let mut c = 0;
                    while c < dp {
                        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(qr.add(c)), _mm256_loadu_ps(kr.add(c)), a0);
                        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(qr.add(c + 8)), _mm256_loadu_ps(kr.add(c + 8)), a1);
                        c += 16;
                    }
                    let a = _mm256_add_ps(a0, a1);
                    let s4 = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
                    let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
                    let s1 = _mm_add_ss(s2, _mm_shuffle_ps::<1>(s2, s2));
                    *out.get_unchecked_mut(j * n + t) = _mm_cvtss_f32(s1) * scale;
                }
            }
        }
    }

    /// Up to `J` (≤ 3) query rows × 32 columns of accumulators stay in
    /// registers while the tile's rows stream by.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn accum_block<const J: usize>(p: *const f32, v: *const f32, n: usize, dp: usize, acc: *mut f32) {
        unsafe {
            let mut a = [[_mm256_setzero_ps(); 4]; J];
            for (j, aj) in a.iter_mut().enumerate() {
                for (i, x) in aj.iter_mut().enumerate() {
                    *x = _mm256_loadu_ps(acc.add(j * dp + 8 * i));
                }
            }
            for t in 0..n {
                let vr = v.add(t * dp);
                let v0 = _mm256_loadu_ps(vr);
                let v1 = _mm256_loadu_ps(vr.add(8));
                let v2 = _mm256_loadu_ps(vr.add(16));
                let v3 = _mm256_loadu_ps(vr.add(24));
                for (j, aj) in a.iter_mut().enumerate() {
                    let w = _mm256_broadcast_ss(&*p.add(j * n + t));
                    aj[0] = _mm256_fmadd_ps(w, v0, aj[0]);
                    aj[1] = _mm256_fmadd_ps(w, v1, aj[1]);
                    aj[2] = _mm256_fmadd_ps(w, v2, aj[2]);
                    aj[3] = _mm256_fmadd_ps(w, v3, aj[3]);
                }
            }
            for (j, aj) in a.iter().enumerate() {
                for (i, x) in aj.iter().enumerate() {
                    _mm256_storeu_ps(acc.add(j * dp + 8 * i), *x);
                }
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn accum_tile(p: &[f32], v: &[f32], n: usize, dp: usize, g: usize, acc: &mut [f32]) {
        unsafe {
            let mut cb = 0;
            while cb < dp {
                let mut jb = 0;
                while jb < g {
                    let pp = p.as_ptr().add(jb * n);
                    let vp = v.as_ptr().add(cb);
                    let ap = acc.as_mut_ptr().add(jb * dp + cb);
                    match g - jb {
                        1 => accum_block::<1>(pp, vp, n, dp, ap),
                        2 => accum_block::<2>(pp, vp, n, dp, ap),
                        _ => accum_block::<3>(pp, vp, n, dp, ap),
                    }
                    jb += 3;
                }
                cb += 32;
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
        let n = x.len();
        let a = _mm256_set1_ps(alpha);
        let mut i = 0;
        unsafe {
            while i + 8 <= n {
                let xv = _mm256_loadu_ps(x.as_ptr().add(i));
                let yv = _mm256_loadu_ps(y.as_ptr().add(i));
                _mm256_storeu_ps(y.as_mut_ptr().add(i), _mm256_fmadd_ps(a, xv, yv));
                i += 8;
            }
        }
        while i < n {
            y[i] = alpha.mul_add(x[i], y[i]);
            i += 1;
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn affine(y: &mut [f32], s: &[f32], z: &[f32]) {
        let n = y.len();
        let mut i = 0;
        unsafe {
            while i + 8 <= n {
                let yv = _mm256_loadu_ps(y.as_ptr().add(i));
                let sv = _mm256_loadu_ps(s.as_ptr().add(i));
                let zv = _mm256_loadu_ps(z.as_ptr().add(i));
                _mm256_storeu_ps(y.as_mut_ptr().add(i), _mm256_fmadd_ps(yv, sv, zv));
                i += 8;
            }
        }
        while i < n {
            y[i] = y[i].mul_add(s[i], z[i]);
            i += 1;
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn affine_groups(y: &mut [f32], group: usize, scale: &[f32], zero: &[f32]) {
        unsafe {
            let yp = y.as_mut_ptr();
            for (i, (s, z)) in scale.iter().zip(zero).enumerate() {
                let sv = _mm256_set1_ps(*s);
                let zv = _mm256_set1_ps(*z);
                let mut c = 0;
                while c < group {
                    let p = yp.add(i * group + c);
                    _mm256_storeu_ps(p, _mm256_fmadd_ps(_mm256_loadu_ps(p), sv, zv));
                    c += 8;
                }
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn affine1(y: &mut [f32], s: f32, z: f32) {
        let n = y.len();
        let sv = _mm256_set1_ps(s);
        let zv = _mm256_set1_ps(z);
        let mut i = 0;
        unsafe {
            while i + 8 <= n {
                let yv = _mm256_loadu_ps(y.as_ptr().add(i));
                _mm256_storeu_ps(y.as_mut_ptr().add(i), _mm256_fmadd_ps(yv, sv, zv));
                i += 8;
            }
        }
        while i < n {
            y[i] = y[i].mul_add(s, z);
            i += 1;
        }
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn max_of(x: &[f32]) -> f32 {
        let n = x.len();
        let mut i = 0;
        let mut m = _mm256_set1_ps(f32::NEG_INFINITY);
        unsafe {
            while i + 8 <= n {
                m = _mm256_max_ps(m, _mm256_loadu_ps(x.as_ptr().add(i)));
                i += 8;
            }
        }
        let mut buf = [0f32; 8];
        unsafe { _mm256_storeu_ps(buf.as_mut_ptr(), m) };
        let mut r = buf.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        for &v in &x[i..] {
            r = r.max(v);
        }
        r
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn lut(x: &mut [f32], table: &[f32]) {
        let n = x.len();
        let top = _mm256_set1_ps((table.len() - 1) as f32);
        let small = (table.len() <= 16).then(|| {
            let mut t = [0f32; 16];
            t[..table.len()].copy_from_slice(table);
            // SAFETY: 16 floats, read as two vectors.
            unsafe { [_mm256_loadu_ps(t.as_ptr()), _mm256_loadu_ps(t.as_ptr().add(8))] }
        });
        let mut i = 0;
        unsafe {
            while i + 8 <= n {
                // clamped as floats first, as `lut_scalar`'s saturating cast:
                // max_ps returns its second operand (0) for NaN
                let c = _mm256_min_ps(_mm256_max_ps(_mm256_loadu_ps(x.as_ptr().add(i)), _mm256_setzero_ps()), top);
                let idx = _mm256_cvttps_epi32(c);
                let v = if let Some([lo, hi]) = small {
                    // codebooks of up to 16 entries (4-bit codes): two
                    // in-register permutes, much faster than a gather here
                    let upper = _mm256_castsi256_ps(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(7)));
                    _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, idx), _mm256_permutevar8x32_ps(hi, idx), upper)
                } else {
                    _mm256_i32gather_ps::<4>(table.as_ptr(), idx)
                };
                _mm256_storeu_ps(x.as_mut_ptr().add(i), v);
                i += 8;
            }
        }
        super::lut_scalar(&mut x[i..], table);
    }

    #[target_feature(enable = "avx2,f16c")]
    pub unsafe fn f16_to_f32(src: &[f16], dst: &mut [f32]) {
        let n = src.len();
        let mut i = 0;
        unsafe {
            while i + 8 <= n {
                let h = _mm_loadu_si128(src.as_ptr().add(i) as *const __m128i);
                _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
                i += 8;
            }
        }
        while i < n {
            dst[i] = src[i].to_f32();
            i += 1;
        }
    }
}
