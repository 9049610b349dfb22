//! GEMM-style building blocks for exact k-NN over floats: packing of query and
//! base rows into register-tile panels, and one register-blocked micro-kernel
//! per SIMD level that computes an `MR × NR` tile of inner products.
//!
//! # Layout
//!
//! A *panel* of `R` rows (`R` = `MR` for queries, `NR` for base rows) is stored
//! dim-major: `panel[d * R + j] = row[r0 + j][d]`, zero-padded past the last
//! row. A micro-kernel walks `d` once, broadcasting the `MR` query values and
//! multiplying them with the `NR` base values (one or more vector registers),
//! keeping all `MR × NR` accumulators in registers, then stores the tile
//! row-major (`tile[i * NR + j]`).
//!
//! Each kernel then evaluates the k-NN key of every pair of the tile,
//! `(qadd[i] + badd[j]) + alpha * dot` (clamped at 0 for distances, see
//! [`key_from_dot`]), compares it with its query's current top-k threshold
//! and returns a bit mask of the tile rows holding at least one candidate
//! that may enter; the caller only revisits those rows, almost never after the
//! first few chunks.
//!
//! Within a level, every `(query, base)` pair is accumulated by the same
//! sequence of operations (`acc += q[d] * b[d]` for `d = 0, 1, ...`, fused on
//! the SIMD levels) whatever its position in the tile, so a result never
//! depends on how rows were blocked or split between threads. (Different
//! levels may round differently.)
//!
//! | level  | MR | NR | accumulators |
//! |--------|----|----|--------------|
//! | scalar | 4  | 8  | 32 scalars (auto-vectorised) |
//! | avx2   | 6  | 16 | 12 ymm |
//! | avx512 | 8  | 32 | 16 zmm |
//! | neon   | 4  | 16 | 16 q-registers |

use crate::SimdLevel;
use crate::dispatch::level_supported;
use crate::topk::may_enter;
use half::{bf16, f16};
use std::sync::OnceLock;

/// Largest `MR * NR` of any level (the tile buffer size).
pub const MAX_TILE: usize = 256;

/// A micro-kernel: `qp` points at an `MR`-row query panel and `bp` at an
/// `NR`-row base panel, both of `dim` steps; writes the `MR × NR` inner
/// products row-major to `out` and returns the candidate-row mask: bit `i` is
/// set when some `j` has `!(key(i, j) > ep.thr[i])` (see [`Epilogue`]).
///
/// # Safety
/// `qp` must be valid for `MR * dim` reads, `bp` for `NR * dim` reads, `out`
/// for `MR * NR` writes, `ep`'s pointers as [`Epilogue`] says, and the CPU
/// must support the kernel's level.
pub type TileFn = unsafe fn(qp: *const f32, bp: *const f32, dim: usize, out: *mut f32, ep: &Epilogue) -> u32;

/// Terms of the key `(qadd[i] + badd[j]) + alpha * dot(i, j)` and the
/// per-row thresholds a micro-kernel compares keys with.
#[derive(Debug, Clone, Copy)]
pub struct Epilogue {
    /// `MR` per-query terms.
    pub qadd: *const f32,
    /// `NR` per-base-row terms.
    pub badd: *const f32,
    /// `MR` thresholds (the queries' [`crate::topk::TopK::threshold`]).
    pub thr: *const f32,
    pub alpha: f32,
    /// Clamp keys below at 0 (distances).
    pub clamp: bool,
}

/// The key of a pair from its inner product: `(qa + ba) + alpha * dot`,
/// clamped below at 0 (NaN kept) when `CLAMP`. Every micro-kernel's vector
/// evaluation performs exactly these IEEE operations (no fused multiply-add),
/// so the key is bitwise the same wherever it is computed.
#[inline(always)]
pub fn key_from_dot<const CLAMP: bool>(qa: f32, ba: f32, alpha: f32, dot: f32) -> f32 {
    let x = (qa + ba) + alpha * dot;
    if CLAMP && x < 0.0 { 0.0 } else { x }
}

/// Portable candidate-row mask of a stored tile (inlined into each level's
/// kernel, so it is vectorised with that level's instructions).
///
/// # Safety
/// `tile` must hold `MR * NR` floats; `ep` as [`Epilogue`] says.
#[inline(always)]
unsafe fn tile_mask<const MR: usize, const NR: usize>(tile: *const f32, ep: &Epilogue) -> u32 {
    #[inline(always)]
    fn rows<const MR: usize, const NR: usize, const CLAMP: bool>(
        tile: &[f32],
        qadd: &[f32],
        badd: &[f32],
        thr: &[f32],
        alpha: f32,
    ) -> u32 {
        let mut mask = 0;
        for i in 0..MR {
            let row: &[f32; NR] = tile[i * NR..(i + 1) * NR].try_into().expect("tile row");
            let badd: &[f32; NR] = badd.try_into().expect("NR terms");
            let mut any = false;
            for j in 0..NR {
                any |= may_enter(key_from_dot::<CLAMP>(qadd[i], badd[j], alpha, row[j]), thr[i]);
            }
            mask |= (any as u32) << i;
        }
        mask
    }
    // SAFETY: sizes per the caller's contract.
    let (tile, qadd, badd, thr) = unsafe {
        (
            std::slice::from_raw_parts(tile, MR * NR),
            std::slice::from_raw_parts(ep.qadd, MR),
            std::slice::from_raw_parts(ep.badd, NR),
            std::slice::from_raw_parts(ep.thr, MR),
        )
    };
    if ep.clamp {
        rows::<MR, NR, true>(tile, qadd, badd, thr, ep.alpha)
    } else {
        rows::<MR, NR, false>(tile, qadd, badd, thr, ep.alpha)
    }
}

/// A micro-kernel with its tile shape.
#[derive(Clone, Copy)]
pub struct MicroKernel {
    pub level: SimdLevel,
    pub mr: usize,
    pub nr: usize,
    pub tile: TileFn,
}

impl std::fmt::Debug for MicroKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MicroKernel({}, {}x{})", self.level.name(), self.mr, self.nr)
    }
}

/// The micro-kernel of `level`, if this build has one for it (whether the
/// CPU runs it is [`level_available`]'s business).
pub fn micro_kernel(level: SimdLevel) -> Option<MicroKernel> {
    match level {
        SimdLevel::Scalar => Some(MicroKernel { level, mr: 4, nr: 8, tile: tile_scalar }),
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => Some(MicroKernel { level, mr: 6, nr: 16, tile: x86::tile_avx2 }),
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => Some(MicroKernel { level, mr: 8, nr: 32, tile: x86::tile_avx512 }),
        #[cfg(target_arch = "aarch64")]
        SimdLevel::Neon => Some(MicroKernel { level, mr: 4, nr: 16, tile: arm::tile_neon }),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Whether this build has a GEMM micro-kernel for `level` and this CPU runs
/// it. Independent of the one-to-one kernel tables.
pub fn level_available(level: SimdLevel) -> bool {
    micro_kernel(level).is_some() && level_supported(level)
}

/// Every level with a runnable GEMM micro-kernel, lowest first.
pub fn gemm_levels() -> Vec<SimdLevel> {
    [SimdLevel::Scalar, SimdLevel::Neon, SimdLevel::Avx2, SimdLevel::Avx512]
        .into_iter()
        .filter(|&l| level_available(l))
        .collect()
}

fn parse_level(name: &str) -> Option<SimdLevel> {
    [SimdLevel::Scalar, SimdLevel::Neon, SimdLevel::Avx2, SimdLevel::Avx512]
        .into_iter()
        .find(|l| l.name().eq_ignore_ascii_case(name.trim()))
}

/// The GEMM level for this process: the level of the dispatched one-to-one
/// kernels ([`crate::kernels`]) when that is a SIMD level with a GEMM kernel;
/// otherwise the highest level with a runnable micro-kernel that is not above
/// the one named by `QUARRY_SIMD` (when set to a known level name).
pub fn gemm_level() -> SimdLevel {
    static CHOSEN: OnceLock<SimdLevel> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let dispatched = crate::kernels().level;
        if dispatched != SimdLevel::Scalar && level_available(dispatched) {
            return dispatched;
        }
        let cap = std::env::var("QUARRY_SIMD").ok().and_then(|v| parse_level(&v));
        gemm_levels()
            .into_iter()
            .rev()
            .find(|&l| cap.is_none_or(|c| l <= c))
            .unwrap_or(SimdLevel::Scalar)
    })
}

/// The portable micro-kernel (4 × 8). Plain loops over fixed-size arrays,
/// which the compiler keeps in registers and vectorises at the baseline
/// target features.
///
/// # Safety
/// See [`TileFn`] (with `MR = 4`, `NR = 8`).
unsafe fn tile_scalar(qp: *const f32, bp: *const f32, dim: usize, out_ptr: *mut f32, ep: &Epilogue) -> u32 {
    const MR: usize = 4;
    const NR: usize = 8;
    // SAFETY: the caller guarantees the panel and tile sizes.
    let (q, b, out) = unsafe {
        (
            std::slice::from_raw_parts(qp, MR * dim),
            std::slice::from_raw_parts(bp, NR * dim),
            std::slice::from_raw_parts_mut(out_ptr, MR * NR),
        )
    };
    let mut acc = [[0f32; NR]; MR];
    for (qd, bd) in q.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        for i in 0..MR {
            let a = qd[i];
            for j in 0..NR {
                acc[i][j] += a * bd[j];
            }
        }
    }
    for i in 0..MR {
        out[i * NR..(i + 1) * NR].copy_from_slice(&acc[i]);
    }
    // SAFETY: the tile was just written; `ep` per the caller's contract.
    unsafe { tile_mask::<MR, NR>(out_ptr, ep) }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Epilogue, tile_mask};
    use core::arch::x86_64::*;

    /// AVX2 + FMA micro-kernel, 6 × 16: two ymm of base values per step,
    /// six broadcast query values, twelve accumulators (of 16 ymm).
    ///
    /// # Safety
    /// See [`super::TileFn`] (`MR = 6`, `NR = 16`); needs AVX2 and FMA.
    ///
    /// The key evaluation and threshold test run on the accumulators in
    /// registers: `(qa + ba) + alpha * dot` as separate add/mul/add (the same
    /// IEEE operations as [`super::key_from_dot`]), `max(0, x)` for the clamp
    /// (`vmaxps` returns its second operand, `x`, when `x` is NaN or a zero),
    /// and `!(key > thr)` as an unordered not-greater-than compare.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile_avx2(qp: *const f32, bp: *const f32, dim: usize, out: *mut f32, ep: &Epilogue) -> u32 {
        const MR: usize = 6;
        const NR: usize = 16;
        let mut c = [[_mm256_setzero_ps(); 2]; MR];
        let mut q = qp;
        let mut b = bp;
        // SAFETY: reads stay within the MR*dim and NR*dim panels, writes within
        // the MR*NR tile (caller's contract).
        unsafe {
            for _ in 0..dim {
                let b0 = _mm256_loadu_ps(b);
                let b1 = _mm256_loadu_ps(b.add(8));
                for (i, ci) in c.iter_mut().enumerate() {
                    let a = _mm256_broadcast_ss(&*q.add(i));
                    ci[0] = _mm256_fmadd_ps(a, b0, ci[0]);
                    ci[1] = _mm256_fmadd_ps(a, b1, ci[1]);
                }
                q = q.add(MR);
                b = b.add(NR);
            }
            for (i, ci) in c.iter().enumerate() {
                _mm256_storeu_ps(out.add(i * NR), ci[0]);
                _mm256_storeu_ps(out.add(i * NR + 8), ci[1]);
            }
            let alpha = _mm256_set1_ps(ep.alpha);
            let ba0 = _mm256_loadu_ps(ep.badd);
            let ba1 = _mm256_loadu_ps(ep.badd.add(8));
            let zero = _mm256_setzero_ps();
            let mut mask = 0u32;
            for (i, ci) in c.iter().enumerate() {
                let qa = _mm256_broadcast_ss(&*ep.qadd.add(i));
                let thr = _mm256_broadcast_ss(&*ep.thr.add(i));
                let mut k0 = _mm256_add_ps(_mm256_add_ps(qa, ba0), _mm256_mul_ps(alpha, ci[0]));
                let mut k1 = _mm256_add_ps(_mm256_add_ps(qa, ba1), _mm256_mul_ps(alpha, ci[1]));
                if ep.clamp {
                    k0 = _mm256_max_ps(zero, k0);
                    k1 = _mm256_max_ps(zero, k1);
                }
                let pass = _mm256_or_ps(_mm256_cmp_ps::<_CMP_NGT_UQ>(k0, thr), _mm256_cmp_ps::<_CMP_NGT_UQ>(k1, thr));
                mask |= ((_mm256_movemask_ps(pass) != 0) as u32) << i;
            }
            mask
        }
    }

    /// AVX-512F micro-kernel, 8 × 32: two zmm of base values per step, eight
    /// broadcast query values, sixteen accumulators (of 32 zmm).
    ///
    /// # Safety
    /// See [`super::TileFn`] (`MR = 8`, `NR = 32`); needs AVX-512F.
    /// [`super::transpose_rows`] for `r % 8 == 0`: 8 rows × 8 dims at a time
    /// through registers (unpack, shuffle, 128-bit lane permute), the
    /// `dim % 8` tail element by element.
    ///
    /// # Safety
    /// Needs AVX2; `rows` and `panel` hold `r * dim` floats; `r % 8 == 0`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn transpose_rows_avx2(rows: &[f32], r: usize, dim: usize, panel: &mut [f32]) {
        debug_assert!(r.is_multiple_of(8) && rows.len() == r * dim && panel.len() == r * dim);
        let src = rows.as_ptr();
        let dst = panel.as_mut_ptr();
        let d8 = dim - dim % 8;
        for g in (0..r).step_by(8) {
            let mut d0 = 0;
            while d0 < d8 {
                // SAFETY: rows g..g+8 and dims d0..d0+8 are in bounds, as are
                // panel lines d0..d0+8 at columns g..g+8.
                unsafe {
                    let ld = |j: usize| _mm256_loadu_ps(src.add((g + j) * dim + d0));
                    let (r0, r1, r2, r3) = (ld(0), ld(1), ld(2), ld(3));
                    let (r4, r5, r6, r7) = (ld(4), ld(5), ld(6), ld(7));
                    // Pairs of rows interleaved per 128-bit lane.
                    let t0 = _mm256_unpacklo_ps(r0, r1);
                    let t1 = _mm256_unpackhi_ps(r0, r1);
                    let t2 = _mm256_unpacklo_ps(r2, r3);
                    let t3 = _mm256_unpackhi_ps(r2, r3);
                    let t4 = _mm256_unpacklo_ps(r4, r5);
                    let t5 = _mm256_unpackhi_ps(r4, r5);
                    let t6 = _mm256_unpacklo_ps(r6, r7);
                    let t7 = _mm256_unpackhi_ps(r6, r7);
                    // s0: column 0 | column 4 of rows 0..4; s1: 1 | 5; ...
                    let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                    let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                    let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                    let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                    let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
                    let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
                    let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
                    let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
                    let st = |t: usize, v: __m256| _mm256_storeu_ps(dst.add((d0 + t) * r + g), v);
                    st(0, _mm256_permute2f128_ps::<0x20>(s0, s4));
                    st(1, _mm256_permute2f128_ps::<0x20>(s1, s5));
                    st(2, _mm256_permute2f128_ps::<0x20>(s2, s6));
                    st(3, _mm256_permute2f128_ps::<0x20>(s3, s7));
                    st(4, _mm256_permute2f128_ps::<0x31>(s0, s4));
                    st(5, _mm256_permute2f128_ps::<0x31>(s1, s5));
                    st(6, _mm256_permute2f128_ps::<0x31>(s2, s6));
                    st(7, _mm256_permute2f128_ps::<0x31>(s3, s7));
                }
                d0 += 8;
            }
            for d in d8..dim {
                for j in g..g + 8 {
                    panel[d * r + j] = rows[j * dim + d];
                }
            }
        }
    }

    // AVX-512 intrinsics and `target_feature(enable = "avx512f")` are stable
    // since Rust 1.89 (the workspace still says 1.85).
    #[clippy::msrv = "1.89"]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile_avx512(qp: *const f32, bp: *const f32, dim: usize, out: *mut f32, ep: &Epilogue) -> u32 {
        const MR: usize = 8;
        const NR: usize = 32;
        let mut c = [[_mm512_setzero_ps(); 2]; MR];
        let mut q = qp;
        let mut b = bp;
        // SAFETY: as in `tile_avx2`, with this kernel's panel sizes.
        unsafe {
            for _ in 0..dim {
                let b0 = _mm512_loadu_ps(b);
                let b1 = _mm512_loadu_ps(b.add(16));
                for (i, ci) in c.iter_mut().enumerate() {
                    let a = _mm512_set1_ps(*q.add(i));
                    ci[0] = _mm512_fmadd_ps(a, b0, ci[0]);
                    ci[1] = _mm512_fmadd_ps(a, b1, ci[1]);
                }
                q = q.add(MR);
                b = b.add(NR);
            }
            for (i, ci) in c.iter().enumerate() {
                _mm512_storeu_ps(out.add(i * NR), ci[0]);
                _mm512_storeu_ps(out.add(i * NR + 16), ci[1]);
            }
            tile_mask::<MR, NR>(out, ep)
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::{Epilogue, tile_mask};
    use core::arch::aarch64::*;

    /// NEON micro-kernel, 4 × 16: the four query values of a step are one
    /// q-register, used lane by lane (`fmla v.4s, v.4s, v.s[lane]`) against
    /// four q-registers of base values; sixteen accumulators (of 32).
    ///
    /// # Safety
    /// See [`super::TileFn`] (`MR = 4`, `NR = 16`); needs NEON.
    #[target_feature(enable = "neon")]
    pub(super) unsafe fn tile_neon(qp: *const f32, bp: *const f32, dim: usize, out: *mut f32, ep: &Epilogue) -> u32 {
        const MR: usize = 4;
        const NR: usize = 16;
        let mut c = [[vdupq_n_f32(0.0); 4]; MR];
        let mut q = qp;
        let mut b = bp;
        // SAFETY: reads stay within the MR*dim and NR*dim panels, writes within
        // the MR*NR tile (caller's contract).
        unsafe {
            for _ in 0..dim {
                let a = vld1q_f32(q);
                let bv = [vld1q_f32(b), vld1q_f32(b.add(4)), vld1q_f32(b.add(8)), vld1q_f32(b.add(12))];
                for (j, &bj) in bv.iter().enumerate() {
                    // c[i][j] += bj * a[i]
                    c[0][j] = vfmaq_laneq_f32::<0>(c[0][j], bj, a);
                    c[1][j] = vfmaq_laneq_f32::<1>(c[1][j], bj, a);
                    c[2][j] = vfmaq_laneq_f32::<2>(c[2][j], bj, a);
                    c[3][j] = vfmaq_laneq_f32::<3>(c[3][j], bj, a);
                }
                q = q.add(MR);
                b = b.add(NR);
            }
            for (i, ci) in c.iter().enumerate() {
                for (j, &v) in ci.iter().enumerate() {
                    vst1q_f32(out.add(i * NR + j * 4), v);
                }
            }
            tile_mask::<MR, NR>(out, ep)
        }
    }
}

/// A 64-byte-aligned, zero-initialised `f32` buffer (panels start on cache
/// lines when their size is a multiple of 16 floats).
#[derive(Default)]
pub struct AlignedBuf {
    lines: Vec<Line>,
    len: usize,
}

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([f32; 16]);

impl AlignedBuf {
    /// Resizes to `len` floats (contents unspecified; packing overwrites).
    pub fn resize(&mut self, len: usize) {
        self.lines.resize(len.div_ceil(16), Line([0.0; 16]));
        self.len = len;
    }

    pub fn as_slice(&self) -> &[f32] {
        // SAFETY: `lines` holds at least `len` contiguous, initialised f32s.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<f32>(), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as in `as_slice`, uniquely borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<f32>(), self.len) }
    }
}

/// Row-major float rows of any of the float element types, read as f32.
#[derive(Debug, Clone, Copy)]
pub enum FloatRows<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    BF16(&'a [bf16]),
}

impl FloatRows<'_> {
    /// Converts row `r` (of `dim` elements) into `out` (exactly: f16 and
    /// bf16 values are all representable in f32).
    #[inline]
    pub fn row_into(&self, r: usize, dim: usize, out: &mut [f32]) {
        use half::slice::HalfFloatSliceExt;
        let range = r * dim..(r + 1) * dim;
        match self {
            FloatRows::F32(s) => out.copy_from_slice(&s[range]),
            FloatRows::F16(s) => s[range].convert_to_f32_slice(out),
            FloatRows::BF16(s) => s[range].convert_to_f32_slice(out),
        }
    }
}

/// Squared norm in f64 with eight independent partial sums (vectorised; the
/// same value whichever instruction set runs it). Zero exactly when every
/// element is ±0; NaN or inf when an element is.
pub fn sum_squares(x: &[f32]) -> f64 {
    #[inline(always)]
    fn body(x: &[f32]) -> f64 {
        let mut acc = [0f64; 8];
        let mut chunks = x.chunks_exact(8);
        for c in &mut chunks {
            for i in 0..8 {
                acc[i] += c[i] as f64 * c[i] as f64;
            }
        }
        let tail: f64 = chunks.remainder().iter().map(|&v| v as f64 * v as f64).sum();
        acc.iter().sum::<f64>() + tail
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        fn avx2(x: &[f32]) -> f64 {
            body(x)
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 was just detected.
            return unsafe { avx2(x) };
        }
    }
    body(x)
}

/// Transposes `r` rows of `dim` floats (`rows[j * dim + d]`) into a panel
/// (`panel[d * r + j]`). Uses 8 × 8 AVX2 transposes when `r` is a multiple
/// of 8 and the CPU has AVX2.
pub fn transpose_rows(rows: &[f32], r: usize, dim: usize, panel: &mut [f32]) {
    assert!(rows.len() == r * dim && panel.len() == r * dim, "transpose_rows: sizes");
    #[cfg(target_arch = "x86_64")]
    if r.is_multiple_of(8) && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was just detected; sizes were checked.
        unsafe { x86::transpose_rows_avx2(rows, r, dim, panel) };
        return;
    }
    for (d, line) in panel.chunks_exact_mut(r).enumerate() {
        for (j, x) in line.iter_mut().enumerate() {
            *x = rows[j * dim + d];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every runnable micro-kernel against a plain f64 tile.
    #[test]
    fn micro_kernels_match_plain_products() {
        for level in gemm_levels() {
            let mk = micro_kernel(level).unwrap();
            for dim in [1usize, 2, 3, 7, 16, 33] {
                let qp: Vec<f32> = (0..mk.mr * dim).map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.25).collect();
                let bp: Vec<f32> = (0..mk.nr * dim).map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.5).collect();
                let mut out = vec![f32::NAN; mk.mr * mk.nr];
                let qadd: Vec<f32> = (0..mk.mr).map(|i| i as f32 * 0.5).collect();
                let mut badd: Vec<f32> = (0..mk.nr).map(|j| j as f32 * 0.25).collect();
                badd[mk.nr - 1] = f32::INFINITY;
                for clamp in [false, true] {
                    for alpha in [-1.0f32, -2.0] {
                        // Thresholds: each row's median key, -inf, +inf, NaN, ...
                        let mut keys = vec![0f32; mk.mr * mk.nr];
                        for i in 0..mk.mr {
                            for j in 0..mk.nr {
                                let dot: f32 = (0..dim).map(|d| qp[d * mk.mr + i] * bp[d * mk.nr + j]).sum();
                                keys[i * mk.nr + j] = if clamp {
                                    key_from_dot::<true>(qadd[i], badd[j], alpha, dot)
                                } else {
                                    key_from_dot::<false>(qadd[i], badd[j], alpha, dot)
                                };
                            }
                        }
                        let thr: Vec<f32> = (0..mk.mr)
                            .map(|i| match i % 4 {
                                0 => f32::NEG_INFINITY,
                                1 => f32::NAN,
                                2 => keys[i * mk.nr + (i * 3) % mk.nr],
                                _ => -1e30,
                            })
                            .collect();
                        let ep = Epilogue { qadd: qadd.as_ptr(), badd: badd.as_ptr(), thr: thr.as_ptr(), alpha, clamp };
                        // SAFETY: sizes match the kernel's contract; the level is available.
                        let mask = unsafe { (mk.tile)(qp.as_ptr(), bp.as_ptr(), dim, out.as_mut_ptr(), &ep) };
                        let mut want_mask = 0u32;
                        for i in 0..mk.mr {
                            for j in 0..mk.nr {
                                let want: f64 =
                                    (0..dim).map(|d| qp[d * mk.mr + i] as f64 * bp[d * mk.nr + j] as f64).sum();
                                // Products of quarter/half integers are exact in f32.
                                assert_eq!(out[i * mk.nr + j] as f64, want, "{level:?} dim {dim} ({i},{j})");
                                if may_enter(keys[i * mk.nr + j], thr[i]) {
                                    want_mask |= 1 << i;
                                }
                            }
                        }
                        assert_eq!(mask, want_mask, "{level:?} dim {dim} clamp {clamp} alpha {alpha}");
                    }
                }
            }
        }
    }

    /// The candidate mask, column by column: with zero queries every dot is
    /// 0 and the key is `qadd + badd` (clamped), so one column at a time can
    /// be made the only possible candidate. Checks ties at the threshold,
    /// NaN keys, NaN and -inf thresholds and the clamp.
    #[test]
    fn micro_kernel_masks_column_by_column() {
        for level in gemm_levels() {
            let mk = micro_kernel(level).unwrap();
            let dim = 3;
            let qp = vec![0f32; mk.mr * dim];
            let bp: Vec<f32> = (0..mk.nr * dim).map(|i| i as f32).collect();
            let mut out = vec![0f32; mk.mr * mk.nr];
            let qadd = vec![0f32; mk.mr];
            for j0 in 0..mk.nr {
                for (v, clamp) in [(2.0f32, false), (2.0, true), (-3.0, true), (-3.0, false), (f32::NAN, true)] {
                    let mut badd = vec![10f32; mk.nr];
                    badd[j0] = v;
                    let key = if clamp && v < 0.0 { 0.0 } else { v };
                    // Row i's threshold: key (tie: passes), key - 1 (fails
                    // unless NaN), NaN (passes), -inf (fails unless NaN),
                    // 9.5 (passes), cycling.
                    let thr: Vec<f32> = (0..mk.mr)
                        .map(|i| match (i + j0) % 5 {
                            0 => key,
                            1 => key - 1.0,
                            2 => f32::NAN,
                            3 => f32::NEG_INFINITY,
                            _ => 9.5,
                        })
                        .collect();
                    let want: u32 = (0..mk.mr)
                        .map(|i| {
                            let pass = key.is_nan() || thr[i].is_nan() || key <= thr[i];
                            (pass as u32) << i
                        })
                        .sum();
                    let ep = Epilogue { qadd: qadd.as_ptr(), badd: badd.as_ptr(), thr: thr.as_ptr(), alpha: -2.0, clamp };
                    // SAFETY: sizes match the kernel's contract; the level is available.
                    let mask = unsafe { (mk.tile)(qp.as_ptr(), bp.as_ptr(), dim, out.as_mut_ptr(), &ep) };
                    assert_eq!(mask, want, "{level:?} column {j0} value {v} clamp {clamp} thresholds {thr:?}");
                }
            }
        }
    }

    #[test]
    fn transpose_matches_plain_loop() {
        for r in [4usize, 6, 8, 16, 32] {
            for dim in [1usize, 7, 8, 9, 16, 31, 100] {
                let rows: Vec<f32> = (0..r * dim).map(|i| i as f32).collect();
                let mut panel = vec![f32::NAN; r * dim];
                transpose_rows(&rows, r, dim, &mut panel);
                for d in 0..dim {
                    for j in 0..r {
                        assert_eq!(panel[d * r + j], rows[j * dim + d], "r {r} dim {dim} ({d},{j})");
                    }
                }
            }
        }
    }

    #[test]
    fn sum_squares_exact_on_small_ints() {
        for n in 0..40 {
            let x: Vec<f32> = (0..n).map(|i| (i % 7) as f32 - 3.0).collect();
            let want: f64 = x.iter().map(|&v| (v * v) as f64).sum();
            assert_eq!(sum_squares(&x), want);
        }
        assert!(sum_squares(&[1.0, f32::NAN]).is_nan());
        assert_eq!(sum_squares(&[-0.0; 9]), 0.0);
    }
}
