//! Fused decode attention straight from the packed records (AVX2+FMA+F16C).
//!
//! One job covers one KV head and a range of chunks. It runs two passes:
//! 1. scores of every row for the `g` query heads of the GQA group, four
//!    rows × up to three query heads at a time, so each decoded 8-lane piece
//!    of a key feeds three FMAs and the four per-row sums are reduced with
//!    horizontal adds once per four rows;
//! 2. softmax weights (max, exp, sum) then the weighted sum of the value
//!    rows, 32 channels × up to three query heads of accumulators held in
//!    registers while the rows stream by.
//!
//! Codes are widened to f32 in registers (shift, mask, zero/sign extend,
//! convert) and dequantized with one FMA against the row's (scale, zero) of
//! that 32-channel block, or — for KIVI's per-channel keys — not at all:
//! the chunk's channel scales are folded into the query once per chunk
//! (`q'_c = q_c·s_c`) and its zero-points into a per-head bias
//! (`Σ_c q_c·z_c`), so keys are scored straight from their integer codes.
//!
//! Used when AVX2 is present, `head_dim` is a multiple of 32 and the method
//! is f32, f16, q8_0, q4_0, or KIVI / RotateKV with 2-, 4- or 8-bit codes
//! and groups that are a multiple of 32 channels; everything else (and the
//! attention-statistics methods MiKV/H2O) takes the tile-decoding path in
//! `cache.rs`. Both are tested against naive attention over `dequantize()`.

use crate::codec::{Codec, Head};
use crate::config::Method;
use crate::kernels;
use crate::quant;

/// Row encodings the kernels are specialised for.
const E_F32: u8 = 0;
const E_F16: u8 = 1;
const E_U2: u8 = 2;
const E_U4: u8 = 4;
const E_U8: u8 = 8;
const E_I8: u8 = 9;

/// How the (scale, zero) of a 32-channel block is read from its row.
const P_PAIR: u8 = 0; // f16 zero then f16 scale (per-token asymmetric groups)
const P_Q4: u8 = 1; // f16 Δ, x = Δ·(q - 8)
const P_Q8: u8 = 2; // f16 Δ, x = Δ·q

/// Where one side's rows lie and how to read them.
#[derive(Clone, Copy)]
struct Raw {
    ptr: *const u8,
    /// Bytes per row.
    stride: usize,
    /// Codes of 32-channel block `b` of row `r` start at
    /// `r·stride + off + b·bstride`.
    off: usize,
    bstride: usize,
    /// Affine encodings: the block's parameters lie at `r·stride + poff[b]`.
    pkind: u8,
    poff: *const usize,
}

/// How a side is decoded in this job.
struct Side<'a> {
    enc: u8,
    affine: bool,
    rec: &'a [u8],
    stride: usize,
    off: usize,
    bstride: usize,
    pkind: u8,
    poff: Vec<usize>,
}

impl Side<'_> {
    fn raw(&self) -> Raw {
        Raw { ptr: self.rec.as_ptr(), stride: self.stride, off: self.off, bstride: self.bstride, pkind: self.pkind, poff: self.poff.as_ptr() }
    }
}

fn code_enc(bits: u8) -> Option<u8> {
    match bits {
        2 => Some(E_U2),
        4 => Some(E_U4),
        8 => Some(E_U8),
        _ => None,
    }
}

/// Per-token asymmetric rows (KIVI values, RotateKV): `d/gs` f16 (zero,
/// scale) pairs then the packed codes.
fn token_asym_side(rec: &[u8], d: usize, gs: usize, bits: u8) -> Option<Side<'_>> {
    let enc = code_enc(bits)?;
    if !gs.is_multiple_of(32) {
        return None;
    }
    let stride = quant::token_asym_bytes(d, gs, bits);
    let poff = (0..d / 32).map(|b| 4 * (b * 32 / gs)).collect();
    Some(Side { enc, affine: true, rec, stride, off: 4 * (d / gs), bstride: 4 * bits as usize, pkind: P_PAIR, poff })
}

fn plain_side(rec: &[u8], enc: u8, stride: usize) -> Side<'_> {
    Side { enc, affine: false, rec, stride, off: 0, bstride: 0, pkind: P_PAIR, poff: Vec::new() }
}

/// llama.cpp blocks: per 32 channels an f16 scale then the codes.
fn block_side(rec: &[u8], d: usize, q4: bool) -> Side<'_> {
    let nb = d / 32;
    let bs = if q4 { 18 } else { 34 };
    let poff = (0..nb).map(|b| b * bs).collect();
    Side { enc: if q4 { E_U4 } else { E_I8 }, affine: true, rec, stride: nb * bs, off: 2, bstride: bs, pkind: if q4 { P_Q4 } else { P_Q8 }, poff }
}

/// The online-softmax state of one job: per query head of the group the
/// running max, the sum of exponentials and the unnormalised output
/// (`g × dp`).
pub(crate) struct JobState {
    pub m: Vec<f32>,
    pub l: Vec<f32>,
    pub acc: Vec<f32>,
}

/// Attention of the `g` prepared query rows `q` (`g × dp`) over chunks
/// `c0..c1` of `head`, or `None` when this method/shape has no fused
/// kernel (the caller then takes the tile-decoding path).
pub(crate) fn job(codec: &Codec, head: &Head, c0: usize, c1: usize, q: &[f32], g: usize, scale: f32) -> Option<JobState> {
    if !kernels::has_avx2() || codec.d != codec.dp || codec.cfg.rope.is_some() {
        return None;
    }
    let cfg = codec.cfg;
    let (d, t) = (codec.d, codec.t);
    let (kb, vb) = codec.rec_bytes();
    let n = (c1 - c0) * t;
    let kr = &head.krec[c0 * kb..c1 * kb];
    let vr = &head.vrec[c0 * vb..c1 * vb];
    // Keys: either one side over all `n` rows, or KIVI per-channel chunks.
    let mut kivi_keys = None;
    let (kside, vside) = match cfg.method {
        Method::F32 => (plain_side(kr, E_F32, 4 * d), plain_side(vr, E_F32, 4 * d)),
        Method::F16 => (plain_side(kr, E_F16, 2 * d), plain_side(vr, E_F16, 2 * d)),
        Method::Q8_0 => (block_side(kr, d, false), block_side(vr, d, false)),
        Method::Q4_0 => (block_side(kr, d, true), block_side(vr, d, true)),
        Method::Rotate => (
            token_asym_side(kr, d, cfg.group_size, cfg.bits)?,
            token_asym_side(vr, d, cfg.group_size, cfg.bits)?,
        ),
        Method::Kivi => {
            let enc = code_enc(cfg.bits)?;
            kivi_keys = Some(enc);
            let rb = crate::pack::row_bytes(cfg.bits, d);
            // Placeholder key side: rows are addressed per chunk below.
            (plain_side(kr, enc, rb), token_asym_side(vr, d, cfg.group_size, cfg.bits)?)
        }
        _ => return None,
    };
    let dp = d;
    let mut sc = vec![0f32; g * n];
    let mut jb = 0;
    while jb < g {
        let jn = (g - jb).min(3);
        let qb = &q[jb * dp..(jb + jn) * dp];
        let out = &mut sc[jb * n..(jb + jn) * n];
        match kivi_keys {
            None => {
                let raw = kside.raw();
                // SAFETY: AVX2+FMA+F16C present; `raw` addresses `n` rows of
                // `kside.rec`, whose length is `n·stride` by construction.
                unsafe { scores_dispatch(kside.enc, kside.affine, jn, &raw, n, qb.as_ptr(), dp, &[0.0; 3], scale, out.as_mut_ptr(), n) };
            }
            Some(enc) => {
                let rb = crate::pack::row_bytes(cfg.bits, d);
                let mut zs = vec![0f32; d];
                let mut ss = vec![0f32; d];
                let mut qf = vec![0f32; jn * dp];
                for c in 0..c1 - c0 {
                    let rec = &kr[c * kb..(c + 1) * kb];
                    channel_params(rec, d, &mut zs, &mut ss);
                    let mut bias = [0f32; 3];
                    for j in 0..jn {
                        let qj = &qb[j * dp..(j + 1) * dp];
                        for ch in 0..d {
                            qf[j * dp + ch] = qj[ch] * ss[ch];
                        }
                        bias[j] = kernels::dot(qj, &zs);
                    }
                    let raw = Raw { ptr: rec[4 * d..].as_ptr(), stride: rb, off: 0, bstride: 4 * cfg.bits as usize, pkind: P_PAIR, poff: std::ptr::null() };
                    // SAFETY: AVX2+FMA+F16C present; the chunk record holds
                    // `t` rows of `rb` code bytes after its `4·d` parameter bytes.
                    unsafe { scores_dispatch(enc, false, jn, &raw, t, qf.as_ptr(), dp, &bias, scale, out[c * t..].as_mut_ptr(), n) };
                }
            }
        }
        jb += jn;
    }
    // Softmax weights per query head.
    let mut m = vec![f32::NEG_INFINITY; g];
    let mut l = vec![0f32; g];
    for j in 0..g {
        let s = &mut sc[j * n..(j + 1) * n];
        m[j] = kernels::max_of(s);
        l[j] = kernels::exp_shift_sum(s, m[j]);
    }
    let mut acc = vec![0f32; g * dp];
    let raw = vside.raw();
    let mut jb = 0;
    while jb < g {
        let jn = (g - jb).min(3);
        // SAFETY: AVX2+FMA+F16C present; `raw` addresses `n` rows of
        // `vside.rec`; `sc` holds `g × n` weights and `acc` `g × dp` sums.
        unsafe { accum_dispatch(vside.enc, vside.affine, jn, &raw, n, sc[jb * n..].as_ptr(), n, dp, acc[jb * dp..].as_mut_ptr()) };
        jb += jn;
    }
    Some(JobState { m, l, acc })
}

/// KIVI key chunk parameters: `d` f16 zeros then `d` f16 scales, widened in bulk.
fn channel_params(rec: &[u8], d: usize, zero: &mut [f32], scale: &mut [f32]) {
    match bytemuck::try_cast_slice::<u8, half::f16>(&rec[..4 * d]) {
        Ok(h) => {
            kernels::f16_to_f32(&h[..d], &mut zero[..d]);
            kernels::f16_to_f32(&h[d..], &mut scale[..d]);
        }
        Err(_) => quant::channel_asym_params(rec, d, zero, scale),
    }
}

macro_rules! dispatch {
    ($f:ident, $enc:expr, $aff:expr, $j:expr, $($arg:expr),*) => {
        match ($enc, $aff, $j) {
            (E_F32, _, 1) => x86::$f::<E_F32, false, 1>($($arg),*),
            (E_F32, _, 2) => x86::$f::<E_F32, false, 2>($($arg),*),
            (E_F32, _, _) => x86::$f::<E_F32, false, 3>($($arg),*),
            (E_F16, _, 1) => x86::$f::<E_F16, false, 1>($($arg),*),
            (E_F16, _, 2) => x86::$f::<E_F16, false, 2>($($arg),*),
            (E_F16, _, _) => x86::$f::<E_F16, false, 3>($($arg),*),
            (E_U2, false, 1) => x86::$f::<E_U2, false, 1>($($arg),*),
            (E_U2, false, 2) => x86::$f::<E_U2, false, 2>($($arg),*),
            (E_U2, false, _) => x86::$f::<E_U2, false, 3>($($arg),*),
            (E_U4, false, 1) => x86::$f::<E_U4, false, 1>($($arg),*),
            (E_U4, false, 2) => x86::$f::<E_U4, false, 2>($($arg),*),
            (E_U4, false, _) => x86::$f::<E_U4, false, 3>($($arg),*),
            (E_U8, false, 1) => x86::$f::<E_U8, false, 1>($($arg),*),
            (E_U8, false, 2) => x86::$f::<E_U8, false, 2>($($arg),*),
            (E_U8, false, _) => x86::$f::<E_U8, false, 3>($($arg),*),
            (E_U2, true, 1) => x86::$f::<E_U2, true, 1>($($arg),*),
            (E_U2, true, 2) => x86::$f::<E_U2, true, 2>($($arg),*),
            (E_U2, true, _) => x86::$f::<E_U2, true, 3>($($arg),*),
            (E_U4, true, 1) => x86::$f::<E_U4, true, 1>($($arg),*),
            (E_U4, true, 2) => x86::$f::<E_U4, true, 2>($($arg),*),
            (E_U4, true, _) => x86::$f::<E_U4, true, 3>($($arg),*),
            (E_U8, true, 1) => x86::$f::<E_U8, true, 1>($($arg),*),
            (E_U8, true, 2) => x86::$f::<E_U8, true, 2>($($arg),*),
            (E_U8, true, _) => x86::$f::<E_U8, true, 3>($($arg),*),
            (_, _, 1) => x86::$f::<E_I8, true, 1>($($arg),*),
            (_, _, 2) => x86::$f::<E_I8, true, 2>($($arg),*),
            (_, _, _) => x86::$f::<E_I8, true, 3>($($arg),*),
        }
    };
}

/// # Safety
/// AVX2+FMA+F16C present; `raw` addresses `n` readable rows; `q` holds
/// `j × dp` floats; `out` has `j` rows of stride `ostride ≥ n`.
#[allow(clippy::too_many_arguments)]
unsafe fn scores_dispatch(enc: u8, aff: bool, j: usize, raw: &Raw, n: usize, q: *const f32, dp: usize, bias: &[f32; 3], scale: f32, out: *mut f32, ostride: usize) {
    #[cfg(target_arch = "x86_64")]
    unsafe {
        dispatch!(scores, enc, aff, j, raw, n, q, dp, bias, scale, out, ostride)
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("fused kernels are only selected on x86_64 with AVX2")
}

/// # Safety
/// AVX2+FMA+F16C present; `raw` addresses `n` readable rows; `p` holds `j`
/// rows of stride `pstride ≥ n`; `acc` holds `j × dp` floats.
#[allow(clippy::too_many_arguments)]
unsafe fn accum_dispatch(enc: u8, aff: bool, j: usize, raw: &Raw, n: usize, p: *const f32, pstride: usize, dp: usize, acc: *mut f32) {
    #[cfg(target_arch = "x86_64")]
    unsafe {
        dispatch!(accum, enc, aff, j, raw, n, p, pstride, dp, acc)
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("fused kernels are only selected on x86_64 with AVX2")
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use std::arch::x86_64::*;

    /// (scale, zero) of block `b` of row `r`, broadcast.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn params<const AFF: bool>(raw: &Raw, r: usize, b: usize) -> (__m256, __m256) {
        if !AFF {
            return (_mm256_setzero_ps(), _mm256_setzero_ps());
        }
        unsafe {
            let p = raw.ptr.add(r * raw.stride + *raw.poff.add(b));
            // Two f16 at once: (zero, scale) or (Δ, first codes).
            let x = _mm_cvtph_ps(_mm_cvtsi32_si128(std::ptr::read_unaligned(p as *const i32)));
            let a = _mm256_broadcastss_ps(x);
            match raw.pkind {
                P_PAIR => (_mm256_broadcastss_ps(_mm_movehdup_ps(x)), a),
                P_Q4 => (a, _mm256_mul_ps(a, _mm256_set1_ps(-8.0))),
                _ => (a, _mm256_setzero_ps()),
            }
        }
    }

    /// Channels `32·b + 8·i .. +8` of row `r`, as f32 (affine encodings
    /// dequantized with the block's `sz`; plain codes for KIVI keys).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn piece<const E: u8, const AFF: bool>(raw: &Raw, r: usize, b: usize, i: usize, sz: (__m256, __m256)) -> __m256 {
        unsafe {
            let row = raw.ptr.add(r * raw.stride);
            let x = match E {
                E_F32 => return _mm256_loadu_ps(row.add(4 * (32 * b + 8 * i)) as *const f32),
                E_F16 => return _mm256_cvtph_ps(_mm_loadu_si128(row.add(2 * (32 * b + 8 * i)) as *const __m128i)),
                _ => {
                    let blk = row.add(raw.off + b * raw.bstride);
                    // pack.rs layout: byte j of a block holds codes j + k·(4·bits).
                    let codes = match E {
                        E_U2 => {
                            let w = _mm256_cvtepu8_epi32(_mm_loadl_epi64(blk as *const __m128i));
                            _mm256_and_si256(_mm256_srl_epi32(w, _mm_cvtsi32_si128(2 * i as i32)), _mm256_set1_epi32(3))
                        }
                        E_U4 => {
                            let w = _mm256_cvtepu8_epi32(_mm_loadl_epi64(blk.add(8 * (i & 1)) as *const __m128i));
                            _mm256_and_si256(_mm256_srl_epi32(w, _mm_cvtsi32_si128(4 * (i >> 1) as i32)), _mm256_set1_epi32(15))
                        }
                        E_U8 => _mm256_cvtepu8_epi32(_mm_loadl_epi64(blk.add(8 * i) as *const __m128i)),
                        _ => _mm256_cvtepi8_epi32(_mm_loadl_epi64(blk.add(8 * i) as *const __m128i)),
                    };
                    _mm256_cvtepi32_ps(codes)
                }
            };
            if AFF {
                _mm256_fmadd_ps(x, sz.0, sz.1)
            } else {
                x
            }
        }
    }

    /// `[Σa, Σb, Σc, Σd]` of four 8-lane vectors.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn reduce4(a: __m256, b: __m256, c: __m256, d: __m256) -> __m128 {
        let ab = _mm256_hadd_ps(a, b);
        let cd = _mm256_hadd_ps(c, d);
        let h = _mm256_hadd_ps(ab, cd);
        _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn hsum(a: __m256) -> f32 {
        let s4 = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
        let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps::<1>(s2, s2)))
    }

    /// `out[j·ostride + r] = scale·(q_j · row_r + bias_j)` for `J` query rows.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    pub unsafe fn scores<const E: u8, const AFF: bool, const J: usize>(
        raw: &Raw,
        n: usize,
        q: *const f32,
        dp: usize,
        bias: &[f32; 3],
        scale: f32,
        out: *mut f32,
        ostride: usize,
    ) {
        unsafe {
            let nb = dp / 32;
            let mut r = 0;
            while r + 4 <= n {
                let mut acc = [[_mm256_setzero_ps(); 4]; J];
                for b in 0..nb {
                    for u in 0..4 {
                        let sz = params::<AFF>(raw, r + u, b);
                        for i in 0..4 {
                            let k = piece::<E, AFF>(raw, r + u, b, i, sz);
                            for j in 0..J {
                                acc[j][u] = _mm256_fmadd_ps(_mm256_loadu_ps(q.add(j * dp + 32 * b + 8 * i)), k, acc[j][u]);
                            }
                        }
                    }
                }
                for j in 0..J {
                    let s = reduce4(acc[j][0], acc[j][1], acc[j][2], acc[j][3]);
                    let s = _mm_mul_ps(_mm_add_ps(s, _mm_set1_ps(bias[j])), _mm_set1_ps(scale));
                    _mm_storeu_ps(out.add(j * ostride + r), s);
                }
                r += 4;
            }
            while r < n {
                let mut acc = [_mm256_setzero_ps(); J];
                for b in 0..nb {
                    let sz = params::<AFF>(raw, r, b);
                    for i in 0..4 {
                        let k = piece::<E, AFF>(raw, r, b, i, sz);
                        for j in 0..J {
                            acc[j] = _mm256_fmadd_ps(_mm256_loadu_ps(q.add(j * dp + 32 * b + 8 * i)), k, acc[j]);
                        }
                    }
                }
                for j in 0..J {
                    *out.add(j * ostride + r) = (hsum(acc[j]) + bias[j]) * scale;
                }
                r += 1;
            }
        }
    }

    /// `acc_j += Σ_r p[j·pstride + r] · row_r` for `J` query rows.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    pub unsafe fn accum<const E: u8, const AFF: bool, const J: usize>(
        raw: &Raw,
        n: usize,
        p: *const f32,
        pstride: usize,
        dp: usize,
        acc: *mut f32,
    ) {
        unsafe {
            for b in 0..dp / 32 {
                let mut a = [[_mm256_setzero_ps(); 4]; J];
                for r in 0..n {
                    let sz = params::<AFF>(raw, r, b);
                    for i in 0..4 {
                        let v = piece::<E, AFF>(raw, r, b, i, sz);
                        for j in 0..J {
                            a[j][i] = _mm256_fmadd_ps(_mm256_broadcast_ss(&*p.add(j * pstride + r)), v, a[j][i]);
                        }
                    }
                }
                for j in 0..J {
                    for i in 0..4 {
                        let o = acc.add(j * dp + 32 * b + 8 * i);
                        _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), a[j][i]));
                    }
                }
            }
        }
    }
}
