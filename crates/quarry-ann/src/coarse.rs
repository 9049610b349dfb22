//! Coarse probing of one query: the inner products with every centroid.
//!
//! A single query against the centroids is a matrix-vector product. Scoring
//! centroid by centroid (a dot product each, then a horizontal sum, then a
//! heap push) spent about a third of an IVF-PQ fast-scan search in overhead;
//! here the centroids are packed in panels of 8 (AVX2) or 16 (AVX-512)
//! centroids, dimension by dimension, so one broadcast of a query value and
//! one FMA advance a whole register of centroids and the scores come out as
//! plain vectors. The nearest lists are then picked from the score array in
//! one selection.

use quarry_simd::SimdLevel;

use crate::reservoir::{decode, encode};

/// Centroids packed for [`CoarsePanels::dots`]: panel `p` holds centroids
/// `lanes·p..lanes·(p+1)` as `dim` rows of `lanes` values (zero-padded past
/// the last centroid).
#[derive(Debug, Clone, Default)]
pub struct CoarsePanels {
    dim: usize,
    n: usize,
    /// Centroids per panel: one register of f32 at the kernel's level.
    lanes: usize,
    panels: Vec<f32>,
    /// Squared norm of each centroid (for L2 keys).
    norms: Vec<f32>,
}

impl CoarsePanels {
    /// Packs `centroids` (`n × dim`, row-major) for the best kernel this
    /// CPU runs (capped by `QUARRY_SIMD`).
    pub fn new(centroids: &[f32], dim: usize) -> CoarsePanels {
        let lanes = match quarry_simd::simd_level() {
            SimdLevel::Avx512 if avx512_available() => 16,
            _ => 8,
        };
        Self::with_lanes(centroids, dim, lanes)
    }

    /// Packs with a given panel width (8 or 16; for tests of both layouts).
    pub fn with_lanes(centroids: &[f32], dim: usize, lanes: usize) -> CoarsePanels {
        assert!(lanes == 8 || lanes == 16, "panels are 8 or 16 centroids wide");
        let n = centroids.len().checked_div(dim).unwrap_or(0);
        let np = n.div_ceil(lanes);
        let mut panels = vec![0.0f32; np * dim * lanes];
        for (c, row) in centroids.chunks_exact(dim.max(1)).enumerate() {
            let (p, lane) = (c / lanes, c % lanes);
            for (d, &x) in row.iter().enumerate() {
                panels[(p * dim + d) * lanes + lane] = x;
            }
        }
        let norms = centroids.chunks_exact(dim.max(1)).map(|r| r.iter().map(|x| x * x).sum()).collect();
        CoarsePanels { dim, n, lanes, panels, norms }
    }

    /// Centroids packed.
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Squared norm of centroid `c`.
    pub fn norm(&self, c: usize) -> f32 {
        self.norms[c]
    }

    /// `out[c] = q · centroid c` for every centroid (`out.len() >= len()`).
    pub fn dots(&self, q: &[f32], out: &mut [f32]) {
        assert_eq!(q.len(), self.dim, "query dimension");
        assert!(out.len() >= self.n, "output shorter than the centroid count");
        #[cfg(target_arch = "x86_64")]
        if self.lanes == 16 && avx512_available() {
            // SAFETY: AVX-512F was just detected; panels are 16 wide.
            unsafe { dots_avx512(&self.panels, self.dim, self.n, q, out) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if self.lanes == 8 && std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: AVX2 and FMA were just detected; panels are 8 wide.
            unsafe { dots_avx2(&self.panels, self.dim, self.n, q, out) };
            return;
        }
        self.dots_scalar(q, out);
    }

    /// The scalar kernel (the reference the SIMD ones are tested against).
    pub fn dots_scalar(&self, q: &[f32], out: &mut [f32]) {
        assert_eq!(q.len(), self.dim, "query dimension");
        let (lanes, n) = (self.lanes, self.n);
        for (p, panel) in self.panels.chunks_exact(self.dim * lanes).enumerate() {
            let mut acc = [0.0f32; 16];
            for (row, &x) in panel.chunks_exact(lanes).zip(q) {
                for (a, &c) in acc.iter_mut().zip(row) {
                    *a += x * c;
                }
            }
            let m = lanes.min(n - p * lanes);
            out[p * lanes..p * lanes + m].copy_from_slice(&acc[..m]);
        }
    }
}

fn avx512_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dots_avx512(panels: &[f32], dim: usize, n: usize, q: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    const LANES: usize = 16;
    let stride = dim * LANES;
    let np = n.div_ceil(LANES);
    // A masked store writes only the centroids of a partial last panel.
    let store = |p: usize, v: __m512, out: &mut [f32]| {
        let m = LANES.min(n - p * LANES);
        // SAFETY: out holds at least n values; lanes past m are masked off.
        unsafe { _mm512_mask_storeu_ps(out.as_mut_ptr().add(p * LANES), ((1u32 << m) - 1) as u16, v) };
    };
    // SAFETY: every panel pointer stays inside `panels` (np panels of `stride`
    // values each, reading rows d < dim), and AVX-512F is enabled.
    unsafe {
        // Four panels at a time: four independent FMA chains hide the latency.
        let mut p = 0;
        while p + 4 <= np {
            let base = panels.as_ptr().add(p * stride);
            let (mut a0, mut a1, mut a2, mut a3) = (_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps());
            for (d, &x) in q.iter().enumerate() {
                let xv = _mm512_set1_ps(x);
                let row = base.add(d * LANES);
                a0 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(row), a0);
                a1 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(row.add(stride)), a1);
                a2 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(row.add(2 * stride)), a2);
                a3 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(row.add(3 * stride)), a3);
            }
            store(p, a0, out);
            store(p + 1, a1, out);
            store(p + 2, a2, out);
            store(p + 3, a3, out);
            p += 4;
        }
        while p < np {
            let base = panels.as_ptr().add(p * stride);
            let mut a = _mm512_setzero_ps();
            for (d, &x) in q.iter().enumerate() {
                a = _mm512_fmadd_ps(_mm512_set1_ps(x), _mm512_loadu_ps(base.add(d * LANES)), a);
            }
            store(p, a, out);
            p += 1;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dots_avx2(panels: &[f32], dim: usize, n: usize, q: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    const LANES: usize = 8;
    let stride = dim * LANES;
    let np = n.div_ceil(LANES);
    let mut tmp = [0.0f32; LANES];
    let mut store = |p: usize, v: __m256, out: &mut [f32]| {
        let m = LANES.min(n - p * LANES);
        if m == LANES {
            // SAFETY: out holds at least n >= (p+1)·8 values.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(p * LANES), v) };
        } else {
            // SAFETY: tmp holds 8 values.
            unsafe { _mm256_storeu_ps(tmp.as_mut_ptr(), v) };
            out[p * LANES..p * LANES + m].copy_from_slice(&tmp[..m]);
        }
    };
    // SAFETY: every panel pointer stays inside `panels` (np panels of `stride`
    // values each, reading rows d < dim), and AVX2/FMA are enabled.
    unsafe {
        // Four panels at a time: four independent FMA chains hide the latency.
        let mut p = 0;
        while p + 4 <= np {
            let base = panels.as_ptr().add(p * stride);
            let (mut a0, mut a1, mut a2, mut a3) = (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
            for (d, &x) in q.iter().enumerate() {
                let xv = _mm256_set1_ps(x);
                let row = base.add(d * LANES);
                a0 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(row), a0);
                a1 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(row.add(stride)), a1);
                a2 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(row.add(2 * stride)), a2);
                a3 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(row.add(3 * stride)), a3);
            }
            store(p, a0, out);
            store(p + 1, a1, out);
            store(p + 2, a2, out);
            store(p + 3, a3, out);
            p += 4;
        }
        while p < np {
            let base = panels.as_ptr().add(p * stride);
            let mut a = _mm256_setzero_ps();
            for (d, &x) in q.iter().enumerate() {
                a = _mm256_fmadd_ps(_mm256_set1_ps(x), _mm256_loadu_ps(base.add(d * LANES)), a);
            }
            store(p, a, out);
            p += 1;
        }
    }
}

/// The `k` smallest `(key, id)` pairs, ascending (ties by id; NaN keys last,
/// reported as +inf).
pub fn smallest(keys: &[f32], k: usize) -> Vec<(f32, u32)> {
    // Encoded (key, id) words select and sort as plain integers.
    let mut all: Vec<u64> = keys.iter().enumerate().map(|(i, &x)| encode(if x.is_nan() { f32::INFINITY } else { x }, i as u32)).collect();
    let k = k.min(all.len());
    if k < all.len() {
        all.select_nth_unstable(k);
        all.truncate(k);
    }
    all.sort_unstable();
    all.into_iter().map(decode).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n * dim)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn simd_and_scalar_match_plain_dot_products_for_every_tail() {
        for (n, dim) in [(1, 1), (7, 3), (8, 16), (9, 100), (31, 5), (32, 64), (33, 100), (1024, 100), (1000, 17)] {
            let c = data(n, dim, n as u64 * 31 + dim as u64);
            let q = data(1, dim, 99);
            for lanes in [8, 16] {
                let panels = CoarsePanels::with_lanes(&c, dim, lanes);
                assert_eq!(panels.len(), n);
                let mut fast = vec![f32::NAN; n + 3];
                let mut slow = vec![f32::NAN; n];
                panels.dots(&q, &mut fast);
                panels.dots_scalar(&q, &mut slow);
                assert!(fast[n..].iter().all(|x| x.is_nan()), "wrote past the centroids");
                for i in 0..n {
                    let want: f64 = c[i * dim..(i + 1) * dim].iter().zip(&q).map(|(&a, &b)| a as f64 * b as f64).sum();
                    let (f, s) = (fast[i] as f64, slow[i] as f64);
                    assert!((f - want).abs() <= 1e-4 * (1.0 + want.abs()), "n {n} dim {dim} lanes {lanes} row {i}");
                    assert!((s - want).abs() <= 1e-4 * (1.0 + want.abs()), "n {n} dim {dim} lanes {lanes} row {i}");
                    let norm: f32 = c[i * dim..(i + 1) * dim].iter().map(|x| x * x).sum();
                    assert_eq!(panels.norm(i), norm);
                }
            }
        }
    }

    #[test]
    fn smallest_orders_by_key_then_id_and_puts_nan_last() {
        let keys = [3.0, 1.0, f32::NAN, 1.0, -2.0, 5.0];
        assert_eq!(smallest(&keys, 3), vec![(-2.0, 4), (1.0, 1), (1.0, 3)]);
        assert_eq!(smallest(&keys, 10).last().unwrap().1, 2);
        assert!(smallest(&keys, 0).is_empty());
    }
}
