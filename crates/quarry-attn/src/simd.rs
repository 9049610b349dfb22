//! Inner loops shared by the dense and sparse kernels: a small GEMM
//! (`C = A·B` or `C += A·B`, A and B row-major), the softmax row step
//! (`p = exp(s - m)`, returning `Σp`), row max, scale and axpy. Each has an
//! AVX2+FMA version (chosen at run time) and a scalar version the tests
//! compare it with; the GEMM and the exponential also have AVX-512 versions
//! (row max, scale and axpy are a small share of the time and stay AVX2).

use crate::shape::KernelChoice;

/// Kernel family actually used for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX-512F GEMM and exponential, AVX2 for the rest.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Level {
    /// Resolves a [`KernelChoice`] against this CPU.
    pub fn resolve(choice: KernelChoice) -> Level {
        match choice {
            KernelChoice::Scalar => Level::Scalar,
            KernelChoice::Auto => best(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => "avx512",
        }
    }
}

/// The best level this CPU runs: the level `quarry-simd` dispatches to
/// (probed once; `QUARRY_SIMD=scalar|avx2` lowers it), whose feature sets
/// include what these kernels need.
pub fn best() -> Level {
    match quarry_simd::simd_level() {
        #[cfg(target_arch = "x86_64")]
        quarry_simd::SimdLevel::Avx512 => Level::Avx512,
        #[cfg(target_arch = "x86_64")]
        quarry_simd::SimdLevel::Avx2 => Level::Avx2,
        _ => Level::Scalar,
    }
}

/// Columns of one B panel ([`BMatrix::Panels`]).
pub const PANEL: usize = 16;

/// The B operand of [`gemm`]: its elements and where element `(p, j)` (row
/// `p < k`, column `j < n`) lies.
#[derive(Clone, Copy)]
pub enum BMatrix<'a> {
    /// Row-major with row stride `ld`: `b[p·ld + j]`.
    Rows(&'a [f32], usize),
    /// Column panels of [`PANEL`] columns, `stride` apart:
    /// `b[(j / PANEL)·stride + p·PANEL + j % PANEL]`, the layout the AVX2
    /// kernel copies a row-major B into. An operand used in many products
    /// (the keys and values of a dense run) is packed once instead of once
    /// per product. Columns of the last panel past `n` are not read.
    Panels(&'a [f32], usize),
}

/// Matrix product over raw strides: `C[m×n] (=|+=) A[m×k] · B[k×n]`, A and
/// C row-major.
///
/// # Panics
/// When a slice is too short for its strides (internal callers size them).
#[allow(clippy::too_many_arguments)]
pub fn gemm(level: Level, m: usize, n: usize, k: usize, a: &[f32], lda: usize, b: BMatrix, c: &mut [f32], ldc: usize, accumulate: bool) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(a.len() >= (m - 1) * lda + k, "gemm: A too short");
    let (bs, ldb, panels) = match b {
        BMatrix::Rows(bs, ld) => {
            assert!(k == 0 || bs.len() >= (k - 1) * ld + n, "gemm: B too short");
            (bs, ld, false)
        }
        BMatrix::Panels(bs, stride) => {
            assert!(bs.len() >= (n - 1) / PANEL * stride + k * PANEL, "gemm: B panels too short");
            (bs, stride, true)
        }
    };
    assert!(c.len() >= (m - 1) * ldc + n, "gemm: C too short");
    #[cfg(target_arch = "x86_64")]
    let raw = RawGemm { m, n, k, a: a.as_ptr(), lda, b: bs.as_ptr(), ldb, c: c.as_mut_ptr(), ldc, acc: accumulate };
    match level {
        Level::Scalar if panels => gemm_panels_scalar(m, n, k, a, lda, bs, ldb, c, ldc, accumulate),
        Level::Scalar => gemm_scalar(m, n, k, a, lda, bs, ldb, c, ldc, accumulate),
        // SAFETY: `Avx2` and `Avx512` are only produced when the CPU has AVX2
        // and FMA (AVX-512 machines run the AVX2 panel kernel); bounds
        // asserted above.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 | Level::Avx512 if panels => unsafe { avx2::gemm_panels(raw) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { avx2::gemm(raw) },
        // SAFETY: `Avx512` is only produced when the CPU has AVX-512F (and
        // AVX2/FMA); bounds asserted above.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { avx512::gemm(raw) },
    }
}

/// Scalar [`gemm`] of a [`BMatrix::Panels`] operand.
#[allow(clippy::too_many_arguments)]
fn gemm_panels_scalar(m: usize, n: usize, k: usize, a: &[f32], lda: usize, b: &[f32], panel_stride: usize, c: &mut [f32], ldc: usize, accumulate: bool) {
    for i in 0..m {
        for j in 0..n {
            let bj = &b[j / PANEL * panel_stride + j % PANEL..];
            let mut sum = if accumulate { c[i * ldc + j] } else { 0.0 };
            for p in 0..k {
                sum = a[i * lda + p].mul_add(bj[p * PANEL], sum);
            }
            c[i * ldc + j] = sum;
        }
    }
}

/// [`gemm`]'s operands as raw pointers and strides, once its bounds are
/// checked: what the SIMD kernels take.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct RawGemm {
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    acc: bool,
}

#[allow(clippy::too_many_arguments)]
fn gemm_scalar(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    for i in 0..m {
        let crow = &mut c[i * ldc..i * ldc + n];
        if !accumulate {
            crow.fill(0.0);
        }
        for p in 0..k {
            let av = a[i * lda + p];
            let brow = &b[p * ldb..p * ldb + n];
            for (cv, &bv) in crow.iter_mut().zip(brow) {
                *cv = av.mul_add(bv, *cv);
            }
        }
    }
}

/// Maximum of `x` (`-inf` when empty or all `-inf`; NaN-free input assumed).
pub fn row_max(level: Level, x: &[f32]) -> f32 {
    match level {
        Level::Scalar => x.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        // SAFETY: AVX2 present (see `Level`).
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 | Level::Avx512 => unsafe { avx2::row_max(x) },
    }
}

/// `x[i] = exp(x[i] - m)` in place; returns the sum. `m` must be finite;
/// `-inf` entries become exactly 0.
pub fn exp_sub_sum(level: Level, x: &mut [f32], m: f32) -> f32 {
    match level {
        Level::Scalar => quarry_simd::softmax::exp_sub_sum_scalar(x, m),
        // SAFETY: AVX2 and FMA present (quarry-simd's kernel, shared with quarry-kv).
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { quarry_simd::softmax::avx2::exp_sub_sum(x, m) },
        // SAFETY: AVX-512F present.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { quarry_simd::softmax::avx512::exp_sub_sum(x, m) },
    }
}

/// `y *= a`.
pub fn scale(level: Level, y: &mut [f32], a: f32) {
    match level {
        Level::Scalar => y.iter_mut().for_each(|v| *v *= a),
        // SAFETY: AVX2 present.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 | Level::Avx512 => unsafe { avx2::scale(y, a) },
    }
}

/// `y += a * x`.
pub fn axpy(level: Level, y: &mut [f32], a: f32, x: &[f32]) {
    assert_eq!(y.len(), x.len());
    match level {
        Level::Scalar => y.iter_mut().zip(x).for_each(|(yv, &xv)| *yv = a.mul_add(xv, *yv)),
        // SAFETY: AVX2 present, equal lengths asserted.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 | Level::Avx512 => unsafe { avx2::axpy(y, a, x) },
    }
}

/// One diagonal over a query tile: rows `lo..hi` of the tile each pair with
/// one key, row `i` with key `key + (i - lo)` (consecutive rows, consecutive
/// keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line {
    pub lo: usize,
    pub hi: usize,
    pub key: usize,
}

impl Line {
    /// The key row `i` (in `lo..hi`) pairs with.
    #[inline]
    pub fn key_at(&self, i: usize) -> usize {
        self.key + i - self.lo
    }
}

/// Asserts the bounds the line kernels rely on: every line's rows within the
/// tile (`tile.len() / d` rows), its keys within `keys` (rows of `d`), and
/// its stretch of the line-major buffer (`x * ld + hi`) within `buf_len`.
fn check_lines(lines: &[Line], d: usize, tile: &[f32], keys: &[f32], ld: usize, buf_len: usize) {
    let rows = tile.len().checked_div(d).unwrap_or(0);
    let key_rows = keys.len().checked_div(d).unwrap_or(usize::MAX);
    for (x, ln) in lines.iter().enumerate() {
        assert!(ln.lo <= ln.hi && ln.hi <= rows);
        assert!(ln.lo == ln.hi || (ln.key + (ln.hi - ln.lo) <= key_rows && x * ld + ln.hi <= buf_len));
    }
}

/// Scores of diagonal lines over a query tile: `out[x * ldo + i] = q_i · k_j`
/// for the rows `i` of line `x` and its key `j`, where `q` is the tile's
/// queries and `k` the keys, both row-major with `d` values per row; rows
/// outside a line are left as they are. A line's keys are consecutive rows
/// of `k`, so each line reads one contiguous stretch of K.
pub fn line_scores(level: Level, d: usize, q: &[f32], k: &[f32], lines: &[Line], out: &mut [f32], ldo: usize) {
    check_lines(lines, d, q, k, ldo, out.len());
    match level {
        Level::Scalar => {
            for (x, ln) in lines.iter().enumerate() {
                for i in ln.lo..ln.hi {
                    let j = ln.key_at(i);
                    out[x * ldo + i] = q[i * d..(i + 1) * d].iter().zip(&k[j * d..(j + 1) * d]).fold(0.0, |s, (a, b)| a.mul_add(*b, s));
                }
            }
        }
        // SAFETY: AVX2 and FMA present; every row read and score written is in bounds (asserted above).
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 | Level::Avx512 => unsafe { avx2::line_scores(d, q.as_ptr(), k.as_ptr(), lines, out.as_mut_ptr(), ldo) },
    }
}

/// One online-softmax step over `w` lines of scores stored line-major
/// (`s[x * lds + i]` for row `i < rows`): per row, `m_new = max(m, max_x s)`,
/// the scores become `p = exp(s - m_new)` (exactly 0 for `-inf`),
/// `alpha = exp(m - m_new)` rescales the running sum, `l = l · alpha + Σ_x p`,
/// `m = m_new`. A row with no finite score yet keeps `m = -inf`, `alpha = 1`.
/// The caller rescales its output rows by `alpha` (written for every row).
#[allow(clippy::too_many_arguments)]
pub fn line_softmax_step(level: Level, rows: usize, w: usize, s: &mut [f32], lds: usize, m: &mut [f32], l: &mut [f32], alpha: &mut [f32]) {
    assert!(m.len() >= rows && l.len() >= rows && alpha.len() >= rows && rows <= lds);
    assert!(w == 0 || (w - 1) * lds + rows <= s.len());
    match level {
        Level::Scalar => line_softmax_rows(0, rows, w, s, lds, m, l, alpha),
        // SAFETY: AVX2 and FMA present; all reads and writes within the asserted bounds.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 | Level::Avx512 => unsafe {
            let full = rows / 8 * 8;
            avx2::line_softmax_step(full, w, s.as_mut_ptr(), lds, m.as_mut_ptr(), l.as_mut_ptr(), alpha.as_mut_ptr());
            line_softmax_rows(full, rows, w, s, lds, m, l, alpha);
        },
    }
}

/// [`line_softmax_step`] on rows `r0..r1`, one at a time.
#[allow(clippy::too_many_arguments)]
fn line_softmax_rows(r0: usize, r1: usize, w: usize, s: &mut [f32], lds: usize, m: &mut [f32], l: &mut [f32], alpha: &mut [f32]) {
    for i in r0..r1 {
        let m_new = (0..w).map(|x| s[x * lds + i]).fold(m[i], f32::max);
        if m_new == f32::NEG_INFINITY {
            (0..w).for_each(|x| s[x * lds + i] = 0.0);
            alpha[i] = 1.0;
            continue;
        }
        let mut sum = 0.0;
        for x in 0..w {
            let p = (s[x * lds + i] - m_new).exp();
            s[x * lds + i] = p;
            sum += p;
        }
        alpha[i] = (m[i] - m_new).exp();
        l[i] = l[i] * alpha[i] + sum;
        m[i] = m_new;
    }
}

/// `o_i += Σ_x p[x * ldp + i] · v_j` over the rows `i` of each line `x` and
/// its key `j` (`o`, `v` row-major with `d = o.len() / rows` values per row;
/// `p = 0` terms skipped): the output step of [`line_scores`].
pub fn line_axpy(level: Level, d: usize, o: &mut [f32], p: &[f32], ldp: usize, v: &[f32], lines: &[Line]) {
    check_lines(lines, d, o, v, ldp, p.len());
    match level {
        Level::Scalar => {
            for (x, ln) in lines.iter().enumerate() {
                for i in ln.lo..ln.hi {
                    let w = p[x * ldp + i];
                    if w != 0.0 {
                        let j = ln.key_at(i);
                        o[i * d..(i + 1) * d].iter_mut().zip(&v[j * d..(j + 1) * d]).for_each(|(a, &b)| *a = w.mul_add(b, *a));
                    }
                }
            }
        }
        // SAFETY: AVX2 and FMA present; rows in bounds (asserted above).
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 | Level::Avx512 => unsafe { avx2::line_axpy(d, o.as_mut_ptr(), p.as_ptr(), ldp, v.as_ptr(), lines) },
    }
}

/// Scalar exp of the kind the AVX2 path computes (used by tests to bound the
/// approximation).
#[cfg(target_arch = "x86_64")]
pub fn exp_avx2_lanes(x: &[f32]) -> Option<Vec<f32>> {
    if best() == Level::Scalar {
        return None;
    }
    let mut out = x.to_vec();
    // SAFETY: AVX2 and FMA checked above.
    unsafe { quarry_simd::softmax::avx2::exp_sub_sum(&mut out, 0.0) };
    Some(out)
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::RawGemm;
    use std::arch::x86_64::*;

    /// Rows per micro-tile; with two 16-lane column vectors this is 24
    /// accumulators plus 2 B registers and a broadcast (of 32 zmm).
    const MR: usize = 8;

    #[target_feature(enable = "avx512f")]
    pub unsafe fn gemm(g: RawGemm) {
        let RawGemm { m, n, k, a, lda, b, ldb, c, ldc, acc } = g;
        let mut i0 = 0;
        while i0 < m {
            let rows = (m - i0).min(MR);
            // SAFETY (all pointer offsets below): rows < m and columns < n
            // stay inside the caller's asserted bounds.
            let ai = unsafe { a.add(i0 * lda) };
            let ci = unsafe { c.add(i0 * ldc) };
            let mut j0 = 0;
            while j0 < n {
                let cols = (n - j0).min(32);
                let bj = unsafe { b.add(j0) };
                let cj = unsafe { ci.add(j0) };
                unsafe {
                    match rows {
                        12 => tile::<12>(k, ai, lda, bj, ldb, cj, ldc, cols, acc),
                        11 => tile::<11>(k, ai, lda, bj, ldb, cj, ldc, cols, acc),
                        10 => tile::<10>(k, ai, lda, bj, ldb, cj, ldc, cols, acc),
                        9 => tile::<9>(k, ai, lda, bj, ldb, cj, ldc, cols, acc),
                        8 => tile::<8>(k, ai, lda, bj, ldb, cj, ldc, cols, acc),
                        7 => tile::<7>(k, ai, lda, bj, ldb, cj, ldc, cols, acc),
                        6 => tile::<6>(k, ai, lda, bj, ldb, cj, ldc, cols, acc),
                        5 => tile::<5>(k, ai, lda, bj, ldb, cj, ldc, cols, acc),
                        4 => tile::<4>(k, ai, lda, bj, ldb, cj, ldc, cols, acc),
                        3 => tile::<3>(k, ai, lda, bj, ldb, cj, ldc, cols, acc),
                        2 => tile::<2>(k, ai, lda, bj, ldb, cj, ldc, cols, acc),
                        _ => tile::<1>(k, ai, lda, bj, ldb, cj, ldc, cols, acc),
                    }
                }
                j0 += 32;
            }
            i0 += MR;
        }
    }

    /// Lanes `0..valid` of a 16-lane vector (valid may exceed 16).
    #[inline]
    fn lane_mask(valid: usize) -> __mmask16 {
        if valid >= 16 { 0xffff } else { ((1u32 << valid) - 1) as __mmask16 }
    }

    /// One `R × 32` tile (fewer columns, `cols`, through masked loads and
    /// stores; a fully masked-off half reads and writes nothing).
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const R: usize>(
        k: usize,
        a: *const f32,
        lda: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        cols: usize,
        acc: bool,
    ) {
        let (m0, m1) = (lane_mask(cols), lane_mask(cols.saturating_sub(16)));
        let mut c0 = [_mm512_setzero_ps(); R];
        let mut c1 = [_mm512_setzero_ps(); R];
        for p in 0..k {
            // SAFETY: row p < k of B, masked to the valid columns.
            let (b0, b1) = unsafe {
                let bp = b.add(p * ldb);
                (_mm512_maskz_loadu_ps(m0, bp), _mm512_maskz_loadu_ps(m1, bp.add(16)))
            };
            for r in 0..R {
                // SAFETY: row r < R of the tile, column p < k of A.
                let av = _mm512_set1_ps(unsafe { *a.add(r * lda + p) });
                c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
                c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
            }
        }
        for r in 0..R {
            // SAFETY: row r of C, masked to the valid columns.
            unsafe {
                let cp = c.add(r * ldc);
                if acc {
                    c0[r] = _mm512_add_ps(c0[r], _mm512_maskz_loadu_ps(m0, cp));
                    c1[r] = _mm512_add_ps(c1[r], _mm512_maskz_loadu_ps(m1, cp.add(16)));
                }
                _mm512_mask_storeu_ps(cp, m0, c0[r]);
                _mm512_mask_storeu_ps(cp.add(16), m1, c1[r]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Line, RawGemm};
    use quarry_simd::softmax::avx2::exp;
    use std::arch::x86_64::*;

    /// Rows per micro-tile; with two 8-lane column vectors this is 12
    /// accumulators plus 2 B registers and a broadcast (of 16 ymm).
    const MR: usize = 6;

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gemm(g: RawGemm) {
        let RawGemm { m, n, k, a, lda, b, ldb, c, ldc, acc } = g;
        if m > 2 * MR && k > 0 {
            unsafe { gemm_packed(g) };
            return;
        }
        let mut i0 = 0;
        while i0 < m {
            let rows = (m - i0).min(MR);
            let ai = unsafe { a.add(i0 * lda) };
            let ci = unsafe { c.add(i0 * ldc) };
            let mut j0 = 0;
            while j0 < n {
                let cols = (n - j0).min(16);
                let bj = unsafe { b.add(j0) };
                let cj = unsafe { ci.add(j0) };
                unsafe { tile_rows(rows, k, ai, lda, bj, ldb, cj, ldc, cols, acc) };
                j0 += 16;
            }
            i0 += MR;
        }
    }

    /// Depth of one packed B panel (16 columns × `KC` rows = 16 KiB).
    const KC: usize = 256;

    /// [`gemm`] for taller A: each 16-column panel of B (up to `KC` rows at
    /// a time) is first copied into a contiguous buffer, then every row tile
    /// of A runs against it. The panel stays in L1 across the row tiles and
    /// is read sequentially; B rows far apart (K transposed, a row per
    /// channel) would otherwise be re-fetched from L2 for each row tile with
    /// a stride no prefetcher follows.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn gemm_packed(g: RawGemm) {
        let RawGemm { m, n, k, a, lda, b, ldb, c, ldc, acc } = g;
        let mut panel = [0.0f32; KC * 16];
        let pp = panel.as_mut_ptr();
        let mut j0 = 0;
        while j0 < n {
            let cols = (n - j0).min(16);
            let (m0, m1) = unsafe { (lane_mask(cols), lane_mask(cols.saturating_sub(8))) };
            let mut p0 = 0;
            while p0 < k {
                let kc = (k - p0).min(KC);
                for p in 0..kc {
                    unsafe {
                        let src = b.add((p0 + p) * ldb + j0);
                        let (x0, x1) = if cols == 16 {
                            (_mm256_loadu_ps(src), _mm256_loadu_ps(src.add(8)))
                        } else {
                            (_mm256_maskload_ps(src, m0), _mm256_maskload_ps(src.add(8), m1))
                        };
                        _mm256_storeu_ps(pp.add(16 * p), x0);
                        _mm256_storeu_ps(pp.add(16 * p + 8), x1);
                    }
                }
                // Later depth chunks add to what the first one wrote.
                unsafe { panel_product(m, kc, a.add(p0), lda, pp, c.add(j0), ldc, cols, acc || p0 > 0) };
                p0 += kc;
            }
            j0 += 16;
        }
    }

    /// Every row tile of A (`m` rows, depth `kc`) times one contiguous
    /// `kc × 16` panel of B (`cols` of its columns valid), into C.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn panel_product(m: usize, kc: usize, a: *const f32, lda: usize, panel: *const f32, c: *mut f32, ldc: usize, cols: usize, acc: bool) {
        let mut i0 = 0;
        while i0 < m {
            let rows = (m - i0).min(MR);
            unsafe { tile_rows(rows, kc, a.add(i0 * lda), lda, panel, 16, c.add(i0 * ldc), ldc, cols, acc) };
            i0 += MR;
        }
    }

    /// [`super::gemm`] of [`super::BMatrix::Panels`]: [`gemm_packed`]
    /// without the copy (`ldb` is the panel stride).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gemm_panels(g: RawGemm) {
        let RawGemm { m, n, k, a, lda, b, ldb, c, ldc, acc } = g;
        let mut j0 = 0;
        while j0 < n {
            let cols = (n - j0).min(16);
            let panel = unsafe { b.add(j0 / 16 * ldb) };
            let mut p0 = 0;
            // At least one pass, so that `k == 0` still writes C.
            loop {
                let kc = (k - p0).min(KC);
                unsafe { panel_product(m, kc, a.add(p0), lda, panel.add(16 * p0), c.add(j0), ldc, cols, acc || p0 > 0) };
                p0 += kc;
                if p0 >= k {
                    break;
                }
            }
            j0 += 16;
        }
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn lane_mask(valid: usize) -> __m256i {
        // Lane l is on when l < valid (valid may be <= 0 or >= 8).
        let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(valid as i32), idx)
    }

    /// [`tile`] for `rows` (1..=MR) rows.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_rows(rows: usize, k: usize, a: *const f32, lda: usize, b: *const f32, ldb: usize, c: *mut f32, ldc: usize, cols: usize, acc: bool) {
        unsafe {
            match rows {
                6 => tile::<6>(k, a, lda, b, ldb, c, ldc, cols, acc),
                5 => tile::<5>(k, a, lda, b, ldb, c, ldc, cols, acc),
                4 => tile::<4>(k, a, lda, b, ldb, c, ldc, cols, acc),
                3 => tile::<3>(k, a, lda, b, ldb, c, ldc, cols, acc),
                2 => tile::<2>(k, a, lda, b, ldb, c, ldc, cols, acc),
                _ => tile::<1>(k, a, lda, b, ldb, c, ldc, cols, acc),
            }
        }
    }

    /// One `R × 16` tile (or fewer columns, `cols`, through masked loads).
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const R: usize>(
        k: usize,
        a: *const f32,
        lda: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        cols: usize,
        acc: bool,
    ) {
        let mut c0 = [_mm256_setzero_ps(); R];
        let mut c1 = [_mm256_setzero_ps(); R];
        if cols == 16 {
            for p in 0..k {
                let bp = unsafe { b.add(p * ldb) };
                let b0 = unsafe { _mm256_loadu_ps(bp) };
                let b1 = unsafe { _mm256_loadu_ps(bp.add(8)) };
                for r in 0..R {
                    let av = _mm256_set1_ps(unsafe { *a.add(r * lda + p) });
                    c0[r] = _mm256_fmadd_ps(av, b0, c0[r]);
                    c1[r] = _mm256_fmadd_ps(av, b1, c1[r]);
                }
            }
            for r in 0..R {
                let cp = unsafe { c.add(r * ldc) };
                unsafe {
                    if acc {
                        c0[r] = _mm256_add_ps(c0[r], _mm256_loadu_ps(cp));
                        c1[r] = _mm256_add_ps(c1[r], _mm256_loadu_ps(cp.add(8)));
                    }
                    _mm256_storeu_ps(cp, c0[r]);
                    _mm256_storeu_ps(cp.add(8), c1[r]);
                }
            }
        } else {
            let m0 = unsafe { lane_mask(cols) };
            let m1 = unsafe { lane_mask(cols.saturating_sub(8)) };
            for p in 0..k {
                let bp = unsafe { b.add(p * ldb) };
                let b0 = unsafe { _mm256_maskload_ps(bp, m0) };
                let b1 = unsafe { _mm256_maskload_ps(bp.add(8), m1) };
                for r in 0..R {
                    let av = _mm256_set1_ps(unsafe { *a.add(r * lda + p) });
                    c0[r] = _mm256_fmadd_ps(av, b0, c0[r]);
                    c1[r] = _mm256_fmadd_ps(av, b1, c1[r]);
                }
            }
            for r in 0..R {
                let cp = unsafe { c.add(r * ldc) };
                unsafe {
                    if acc {
                        c0[r] = _mm256_add_ps(c0[r], _mm256_maskload_ps(cp, m0));
                        c1[r] = _mm256_add_ps(c1[r], _mm256_maskload_ps(cp.add(8), m1));
                    }
                    _mm256_maskstore_ps(cp, m0, c0[r]);
                    _mm256_maskstore_ps(cp.add(8), m1, c1[r]);
                }
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn hmax(v: __m256) -> f32 {
        let hi = _mm256_extractf128_ps(v, 1);
        let m = _mm_max_ps(_mm256_castps256_ps128(v), hi);
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
        _mm_cvtss_f32(m)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn row_max(x: &[f32]) -> f32 {
        let n = x.len();
        let p = x.as_ptr();
        let mut mv = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut i = 0;
        while i + 8 <= n {
            mv = _mm256_max_ps(mv, unsafe { _mm256_loadu_ps(p.add(i)) });
            i += 8;
        }
        let mut m = unsafe { hmax(mv) };
        for &v in &x[i..] {
            m = m.max(v);
        }
        m
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn scale(y: &mut [f32], a: f32) {
        let n = y.len();
        let p = y.as_mut_ptr();
        let av = _mm256_set1_ps(a);
        let mut i = 0;
        while i + 8 <= n {
            unsafe { _mm256_storeu_ps(p.add(i), _mm256_mul_ps(_mm256_loadu_ps(p.add(i)), av)) };
            i += 8;
        }
        for v in &mut y[i..] {
            *v *= a;
        }
    }

    /// `q · k` over `d` values.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot1(d: usize, q: *const f32, k: *const f32) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let mut c = 0;
        while c + 8 <= d {
            acc = unsafe { _mm256_fmadd_ps(_mm256_loadu_ps(q.add(c)), _mm256_loadu_ps(k.add(c)), acc) };
            c += 8;
        }
        let mut s = unsafe { hsum(acc) };
        while c < d {
            s = unsafe { (*q.add(c)).mul_add(*k.add(c), s) };
            c += 1;
        }
        s
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let x = _mm_add_ps(x, _mm_movehl_ps(x, x));
        _mm_cvtss_f32(_mm_add_ss(x, _mm_movehdup_ps(x)))
    }

    /// Rows `lo..hi` that all lines of a group of four cover (empty for a
    /// shorter group): the four-line kernels run on them.
    fn shared_rows(group: &[Line]) -> (usize, usize) {
        if group.len() < 4 {
            return (0, 0);
        }
        (group.iter().map(|l| l.lo).max().unwrap_or(0), group.iter().map(|l| l.hi).min().unwrap_or(0))
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn line_scores(d: usize, q: *const f32, k: *const f32, lines: &[Line], out: *mut f32, ldo: usize) {
        let d8 = d / 8 * 8;
        for (x4, group) in lines.chunks(4).enumerate() {
            let x0 = 4 * x4;
            // rows all four lines cover take the four-line kernel: one query row, four key rows
            let (lo, hi) = shared_rows(group);
            for (g, ln) in group.iter().enumerate() {
                let o = unsafe { out.add((x0 + g) * ldo) };
                for i in (ln.lo..ln.hi).filter(|i| !(lo..hi).contains(i)) {
                    unsafe { *o.add(i) = dot1(d, q.add(i * d), k.add(ln.key_at(i) * d)) };
                }
            }
            for i in lo..hi {
                unsafe {
                    let qi = q.add(i * d);
                    let kr = [0, 1, 2, 3].map(|g| k.add(group[g].key_at(i) * d));
                    let mut acc = [_mm256_setzero_ps(); 4];
                    let mut c = 0;
                    while c < d8 {
                        let qv = _mm256_loadu_ps(qi.add(c));
                        for g in 0..4 {
                            acc[g] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(kr[g].add(c)), acc[g]);
                        }
                        c += 8;
                    }
                    // four horizontal sums at once
                    let t = _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]), _mm256_hadd_ps(acc[2], acc[3]));
                    let mut s = [0f32; 4];
                    _mm_storeu_ps(s.as_mut_ptr(), _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps::<1>(t)));
                    for (g, sg) in s.iter_mut().enumerate() {
                        for c in d8..d {
                            *sg = (*qi.add(c)).mul_add(*kr[g].add(c), *sg);
                        }
                        *out.add((x0 + g) * ldo + i) = *sg;
                    }
                }
            }
        }
    }

    /// Rows `0..rows` (a multiple of 8) of [`super::line_softmax_step`], eight rows per vector.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn line_softmax_step(rows: usize, w: usize, s: *mut f32, lds: usize, m: *mut f32, l: *mut f32, alpha: *mut f32) {
        let ninf = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut i = 0;
        while i < rows {
            unsafe {
                let m_old = _mm256_loadu_ps(m.add(i));
                let mut m_new = m_old;
                for x in 0..w {
                    m_new = _mm256_max_ps(m_new, _mm256_loadu_ps(s.add(x * lds + i)));
                }
                // rows with no finite score subtract 0 instead (their scores are all -inf: p = 0)
                let seen = _mm256_cmp_ps::<_CMP_NEQ_OQ>(m_new, ninf);
                let shift = _mm256_and_ps(m_new, seen);
                let mut sum = _mm256_setzero_ps();
                for x in 0..w {
                    let p = exp(_mm256_sub_ps(_mm256_loadu_ps(s.add(x * lds + i)), shift));
                    _mm256_storeu_ps(s.add(x * lds + i), p);
                    sum = _mm256_add_ps(sum, p);
                }
                let a = _mm256_blendv_ps(_mm256_set1_ps(1.0), exp(_mm256_sub_ps(m_old, shift)), seen);
                _mm256_storeu_ps(alpha.add(i), a);
                _mm256_storeu_ps(l.add(i), _mm256_fmadd_ps(_mm256_loadu_ps(l.add(i)), a, sum));
                _mm256_storeu_ps(m.add(i), m_new);
            }
            i += 8;
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn line_axpy(d: usize, o: *mut f32, p: *const f32, ldp: usize, v: *const f32, lines: &[Line]) {
        let d8 = d / 8 * 8;
        // `o_i += w · v_j` for one line's row
        let one = |o: *mut f32, w: f32, vr: *const f32| unsafe {
            let wv = _mm256_set1_ps(w);
            let mut c = 0;
            while c < d8 {
                _mm256_storeu_ps(o.add(c), _mm256_fmadd_ps(wv, _mm256_loadu_ps(vr.add(c)), _mm256_loadu_ps(o.add(c))));
                c += 8;
            }
            for c in d8..d {
                *o.add(c) = w.mul_add(*vr.add(c), *o.add(c));
            }
        };
        for (x4, group) in lines.chunks(4).enumerate() {
            let x0 = 4 * x4;
            let (lo, hi) = shared_rows(group);
            for (g, ln) in group.iter().enumerate() {
                for i in (ln.lo..ln.hi).filter(|i| !(lo..hi).contains(i)) {
                    let w = unsafe { *p.add((x0 + g) * ldp + i) };
                    if w != 0.0 {
                        unsafe { one(o.add(i * d), w, v.add(ln.key_at(i) * d)) };
                    }
                }
            }
            for i in lo..hi {
                unsafe {
                    let w = [0, 1, 2, 3].map(|g| *p.add((x0 + g) * ldp + i));
                    let vr = [0, 1, 2, 3].map(|g| v.add(group[g].key_at(i) * d));
                    let oi = o.add(i * d);
                    if w.contains(&0.0) {
                        // masked keys: only the others (0 · v would turn an infinite v into NaN)
                        for g in 0..4 {
                            if w[g] != 0.0 {
                                one(oi, w[g], vr[g]);
                            }
                        }
                        continue;
                    }
                    // four lines per pass over the row: one load and store of o per eight channels
                    let wv = w.map(|x| _mm256_set1_ps(x));
                    let mut c = 0;
                    while c < d8 {
                        let mut a = _mm256_loadu_ps(oi.add(c));
                        for g in 0..4 {
                            a = _mm256_fmadd_ps(wv[g], _mm256_loadu_ps(vr[g].add(c)), a);
                        }
                        _mm256_storeu_ps(oi.add(c), a);
                        c += 8;
                    }
                    for c in d8..d {
                        let mut a = *oi.add(c);
                        for g in 0..4 {
                            a = w[g].mul_add(*vr[g].add(c), a);
                        }
                        *oi.add(c) = a;
                    }
                }
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
        let n = y.len();
        let yp = y.as_mut_ptr();
        let xp = x.as_ptr();
        let av = _mm256_set1_ps(a);
        let mut i = 0;
        while i + 8 <= n {
            unsafe {
                let r = _mm256_fmadd_ps(av, _mm256_loadu_ps(xp.add(i)), _mm256_loadu_ps(yp.add(i)));
                _mm256_storeu_ps(yp.add(i), r);
            }
            i += 8;
        }
        for j in i..n {
            y[j] = a.mul_add(x[j], y[j]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every level this CPU runs.
    fn available_levels() -> Vec<Level> {
        let mut v = vec![Level::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                v.push(Level::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                v.push(Level::Avx512);
            }
        }
        v
    }

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    #[test]
    fn gemm_levels_agree_on_all_tail_shapes() {
        let mut s = 7u64;
        for &(m, n, k) in &[(1, 1, 1), (6, 16, 8), (7, 17, 5), (13, 33, 64), (5, 3, 0), (64, 64, 64), (2, 9, 3), (12, 32, 7), (25, 47, 64), (11, 15, 3), (13, 33, 300), (40, 20, 513), (19, 16, 256), (14, 8, 0)] {
            // (Taller than two row tiles: B panels are packed, deeper than 256 in chunks.)
            let lda = k + 3;
            let ldb = n + 5;
            let ldc = n + 2;
            let a: Vec<f32> = (0..m * lda).map(|_| lcg(&mut s)).collect();
            let b: Vec<f32> = (0..k.max(1) * ldb).map(|_| lcg(&mut s)).collect();
            let init: Vec<f32> = (0..m * ldc).map(|_| lcg(&mut s)).collect();
            for acc in [false, true] {
                let mut c_ref = init.clone();
                gemm(Level::Scalar, m, n, k, &a, lda, BMatrix::Rows(&b, ldb), &mut c_ref, ldc, acc);
                // naive f64 check of the scalar kernel
                for i in 0..m {
                    for j in 0..n {
                        let mut want = if acc { init[i * ldc + j] as f64 } else { 0.0 };
                        for p in 0..k {
                            want += a[i * lda + p] as f64 * b[p * ldb + j] as f64;
                        }
                        assert!((c_ref[i * ldc + j] as f64 - want).abs() < 1e-4);
                    }
                    // padding between rows untouched
                    for j in n..ldc {
                        assert_eq!(c_ref[i * ldc + j], init[i * ldc + j]);
                    }
                }
                for level in available_levels() {
                    let mut c = init.clone();
                    gemm(level, m, n, k, &a, lda, BMatrix::Rows(&b, ldb), &mut c, ldc, acc);
                    for (x, y) in c.iter().zip(&c_ref) {
                        assert!((x - y).abs() < 1e-4, "{} {m}x{n}x{k}: {x} vs {y}", level.name());
                    }
                }
            }
        }
    }

    #[test]
    fn gemm_on_panels_equals_gemm_on_rows() {
        // B packed into 16-column panels (with a gap between panels and
        // garbage in the columns past n) gives what `gemm` gives on the
        // row-major B, on every level.
        let mut s = 11u64;
        for &(m, n, k) in &[(1, 1, 1), (6, 16, 8), (7, 17, 5), (13, 33, 64), (5, 3, 0), (64, 64, 64), (25, 47, 64), (13, 33, 300), (40, 20, 513), (19, 16, 256), (128, 256, 256)] {
            let (lda, ldb, ldc) = (k + 3, n + 5, n + 2);
            let a: Vec<f32> = (0..m * lda).map(|_| lcg(&mut s)).collect();
            let b: Vec<f32> = (0..k.max(1) * ldb).map(|_| lcg(&mut s)).collect();
            let stride = k * PANEL + 7;
            let mut panels: Vec<f32> = (0..n.div_ceil(PANEL) * stride).map(|_| 1e30).collect();
            for p in 0..k {
                for j in 0..n {
                    panels[j / PANEL * stride + p * PANEL + j % PANEL] = b[p * ldb + j];
                }
            }
            let init: Vec<f32> = (0..m * ldc).map(|_| lcg(&mut s)).collect();
            for acc in [false, true] {
                let mut want = init.clone();
                gemm(Level::Scalar, m, n, k, &a, lda, BMatrix::Rows(&b, ldb), &mut want, ldc, acc);
                for level in available_levels() {
                    let mut c = init.clone();
                    gemm(level, m, n, k, &a, lda, BMatrix::Panels(&panels, stride), &mut c, ldc, acc);
                    for (x, y) in c.iter().zip(&want) {
                        assert!((x - y).abs() < 1e-4, "{} {m}x{n}x{k}: {x} vs {y}", level.name());
                    }
                }
            }
        }
    }

    #[test]
    fn exp_matches_std_closely() {
        let mut xs: Vec<f32> = (0..4000).map(|i| -100.0 + i as f32 * 0.0301).collect();
        xs.extend([0.0, -0.0, f32::NEG_INFINITY, -87.0, -1e-8, 1e-8, 60.0]);
        for level in [Level::Scalar, best()] {
            let mut y = xs.clone();
            let s = exp_sub_sum(level, &mut y, 0.0);
            let mut want_sum = 0.0f64;
            for (x, v) in xs.iter().zip(&y) {
                let want = (*x as f64).exp();
                want_sum += if *x < -87.3 { 0.0 } else { want };
                if *x == f32::NEG_INFINITY {
                    assert_eq!(*v, 0.0);
                } else if *x >= -87.0 {
                    assert!(((*v as f64) - want).abs() <= 4e-7 * want, "exp({x}) = {v}, want {want}");
                }
            }
            assert!((s as f64 - want_sum).abs() <= 1e-5 * want_sum);
        }
    }

    #[test]
    fn helpers_agree() {
        let mut s = 3u64;
        for n in [0usize, 1, 7, 8, 9, 31, 100] {
            let x: Vec<f32> = (0..n).map(|_| lcg(&mut s) * 10.0).collect();
            assert_eq!(row_max(Level::Scalar, &x), row_max(best(), &x));
            let mut y1: Vec<f32> = (0..n).map(|_| lcg(&mut s)).collect();
            let mut y2 = y1.clone();
            axpy(Level::Scalar, &mut y1, 0.7, &x);
            axpy(best(), &mut y2, 0.7, &x);
            assert_eq!(y1, y2);
            scale(Level::Scalar, &mut y1, -1.5);
            scale(best(), &mut y2, -1.5);
            assert_eq!(y1, y2);
        }
    }

    #[test]
    fn exp_sub_sum_agrees_across_levels() {
        let mut s = 5u64;
        for n in [0usize, 1, 7, 8, 15, 16, 17, 33, 100] {
            let mut x: Vec<f32> = (0..n).map(|_| lcg(&mut s) * 30.0).collect();
            if n > 3 {
                x[2] = f32::NEG_INFINITY;
                x[n - 1] = -200.0;
            }
            let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max).max(0.0);
            let mut want = x.clone();
            let want_sum = exp_sub_sum(Level::Scalar, &mut want, m);
            for level in available_levels() {
                let mut got = x.clone();
                let sum = exp_sub_sum(level, &mut got, m);
                assert!((sum - want_sum).abs() <= 1e-5 * want_sum.max(1.0), "{} n {n}: {sum} vs {want_sum}", level.name());
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() <= 2e-6 * w.max(1e-30) + 1e-37, "{} n {n}: {g} vs {w}", level.name());
                }
                if n > 3 {
                    assert_eq!(got[2], 0.0, "-inf becomes exactly 0");
                }
            }
        }
    }

    /// Random lines over a `rows`-row tile of `n` keys: full, cut at either end, empty.
    fn random_lines(s: &mut u64, count: usize, rows: usize, n: usize) -> Vec<Line> {
        (0..count)
            .map(|x| {
                let (a, b) = (((lcg(s) + 1.0) * 0.5 * rows as f32) as usize, ((lcg(s) + 1.0) * 0.5 * rows as f32) as usize);
                let (lo, hi) = match x % 4 {
                    0 => (0, rows),
                    1 => (a.min(b), a.max(b)),
                    2 => (a, a),
                    _ => (0, a),
                };
                let key = ((lcg(s) + 1.0) * 0.5 * (n - (hi - lo)) as f32) as usize;
                Line { lo, hi, key: key.min(n - (hi - lo)) }
            })
            .collect()
    }

    #[test]
    fn line_kernels_agree_across_levels() {
        let mut s = 13u64;
        for &(rows, d, w, n) in &[(64usize, 64usize, 13usize, 300usize), (17, 20, 9, 40), (8, 8, 4, 16), (5, 3, 7, 12), (64, 128, 64, 500), (33, 64, 1, 70)] {
            let q: Vec<f32> = (0..rows * d).map(|_| lcg(&mut s)).collect();
            let k: Vec<f32> = (0..n * d).map(|_| lcg(&mut s)).collect();
            let v: Vec<f32> = (0..n * d).map(|_| lcg(&mut s)).collect();
            let lines = random_lines(&mut s, w, rows, n);
            let ld = rows + 3;
            // scores: naive f64 reference, rows outside a line untouched
            let mut want = vec![f32::NEG_INFINITY; w * ld];
            line_scores(Level::Scalar, d, &q, &k, &lines, &mut want, ld);
            for (x, ln) in lines.iter().enumerate() {
                for i in 0..rows {
                    if (ln.lo..ln.hi).contains(&i) {
                        let j = ln.key_at(i);
                        let dot: f64 = (0..d).map(|c| q[i * d + c] as f64 * k[j * d + c] as f64).sum();
                        assert!((want[x * ld + i] as f64 - dot).abs() < 1e-4);
                    } else {
                        assert_eq!(want[x * ld + i], f32::NEG_INFINITY);
                    }
                }
            }
            // a held key and a row with no key at all
            if w > 1 && rows > 2 {
                want[ld + 1] = f32::NEG_INFINITY;
            }
            for level in available_levels() {
                let mut got = vec![f32::NEG_INFINITY; w * ld];
                line_scores(level, d, &q, &k, &lines, &mut got, ld);
                if w > 1 && rows > 2 {
                    got[ld + 1] = f32::NEG_INFINITY;
                }
                for (a, b) in got.iter().zip(&want) {
                    assert!(a == b || (a - b).abs() < 1e-5, "{} scores {a} vs {b}", level.name());
                }
                // one softmax step from a running state on the same scores, against the scalar step
                let m0: Vec<f32> = (0..rows).map(|i| if i % 3 == 0 { f32::NEG_INFINITY } else { lcg(&mut s) }).collect();
                let l0: Vec<f32> = m0.iter().map(|m| if m.is_finite() { 1.5 } else { 0.0 }).collect();
                let (mut pw, mut mw, mut lw, mut aw) = (want.clone(), m0.clone(), l0.clone(), vec![0.0; rows]);
                line_softmax_step(Level::Scalar, rows, w, &mut pw, ld, &mut mw, &mut lw, &mut aw);
                let (mut pg, mut mg, mut lg, mut ag) = (want.clone(), m0.clone(), l0.clone(), vec![0.0; rows]);
                line_softmax_step(level, rows, w, &mut pg, ld, &mut mg, &mut lg, &mut ag);
                for i in 0..rows {
                    assert_eq!(mg[i], mw[i]);
                    assert!((lg[i] - lw[i]).abs() <= 1e-5 * lw[i].max(1.0) && (ag[i] - aw[i]).abs() <= 1e-6, "{} row {i}", level.name());
                    let seen = m0[i].is_finite() || (0..w).any(|x| want[x * ld + i].is_finite());
                    if !seen {
                        assert_eq!((mg[i], lg[i], ag[i]), (f32::NEG_INFINITY, 0.0, 1.0));
                    }
                    for x in 0..w {
                        let p = pg[x * ld + i];
                        assert!((p - pw[x * ld + i]).abs() <= 1e-6 * pw[x * ld + i].max(1e-30) + 1e-37);
                        if want[x * ld + i] == f32::NEG_INFINITY {
                            assert_eq!(p, 0.0);
                        }
                    }
                }
                // the output step adds p · v per line row
                let o0: Vec<f32> = (0..rows * d).map(|_| lcg(&mut s)).collect();
                let mut ow = o0.clone();
                line_axpy(Level::Scalar, d, &mut ow, &pw, ld, &v, &lines);
                for i in 0..rows {
                    for c in 0..d {
                        let mut e = o0[i * d + c] as f64;
                        for (x, ln) in lines.iter().enumerate() {
                            if (ln.lo..ln.hi).contains(&i) {
                                e += pw[x * ld + i] as f64 * v[ln.key_at(i) * d + c] as f64;
                            }
                        }
                        assert!((ow[i * d + c] as f64 - e).abs() < 1e-4);
                    }
                }
                let mut og = o0.clone();
                line_axpy(level, d, &mut og, &pw, ld, &v, &lines);
                for (a, b) in og.iter().zip(&ow) {
                    assert!((a - b).abs() < 1e-5, "{} axpy {a} vs {b}", level.name());
                }
            }
        }
    }
}
