//! Coarse probing of one query: the inner products with every centroid.
//!
//! A single query against the centroids is a matrix-vector product. Scoring
//! centroid by centroid (a dot product each, then a horizontal sum, then a
//! heap push) spent about a third of an IVF-PQ fast-scan search in overhead;
//! here the centroids are packed in panels of [`LANES`] centroids, dimension
//! by dimension, so one broadcast of a query value and one FMA advance eight
//! centroids at once and the scores come out as plain vectors. The nearest
//! lists are then picked from the score array in one selection.

/// Centroids per panel (one AVX2 register of f32).
pub const LANES: usize = 8;

/// Centroids packed for [`CoarsePanels::dots`]: panel `p` holds centroids
/// `8p..8p+8` as `dim` rows of 8 values (zero-padded past the last centroid).
#[derive(Debug, Clone, Default)]
pub struct CoarsePanels {
    dim: usize,
    n: usize,
    panels: Vec<f32>,
    /// Squared norm of each centroid (for L2 keys).
    norms: Vec<f32>,
}

impl CoarsePanels {
    /// Packs `centroids` (`n × dim`, row-major).
    pub fn new(centroids: &[f32], dim: usize) -> CoarsePanels {
        let n = centroids.len().checked_div(dim).unwrap_or(0);
        let np = n.div_ceil(LANES);
        let mut panels = vec![0.0f32; np * dim * LANES];
        for (c, row) in centroids.chunks_exact(dim.max(1)).enumerate() {
            let (p, lane) = (c / LANES, c % LANES);
            for (d, &x) in row.iter().enumerate() {
                panels[(p * dim + d) * LANES + lane] = x;
            }
        }
        let norms = centroids.chunks_exact(dim.max(1)).map(|r| r.iter().map(|x| x * x).sum()).collect();
        CoarsePanels { dim, n, panels, norms }
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
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: AVX2 and FMA were just detected.
            unsafe { dots_avx2(&self.panels, self.dim, self.n, q, out) };
            return;
        }
        dots_scalar(&self.panels, self.dim, self.n, q, out);
    }

    /// The scalar kernel (the reference the SIMD one is tested against).
    pub fn dots_scalar(&self, q: &[f32], out: &mut [f32]) {
        assert_eq!(q.len(), self.dim, "query dimension");
        dots_scalar(&self.panels, self.dim, self.n, q, out);
    }
}

fn dots_scalar(panels: &[f32], dim: usize, n: usize, q: &[f32], out: &mut [f32]) {
    for (p, panel) in panels.chunks_exact(dim * LANES).enumerate() {
        let mut acc = [0.0f32; LANES];
        for (row, &x) in panel.chunks_exact(LANES).zip(q) {
            for (a, &c) in acc.iter_mut().zip(row) {
                *a += x * c;
            }
        }
        let m = LANES.min(n - p * LANES);
        out[p * LANES..p * LANES + m].copy_from_slice(&acc[..m]);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dots_avx2(panels: &[f32], dim: usize, n: usize, q: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
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

/// The `k` smallest `(key, id)` pairs, ascending (ties by id; NaN keys last).
pub fn smallest(keys: &[f32], k: usize) -> Vec<(f32, u32)> {
    let mut all: Vec<(f32, u32)> = keys.iter().enumerate().map(|(i, &x)| (if x.is_nan() { f32::INFINITY } else { x }, i as u32)).collect();
    let k = k.min(all.len());
    let cmp = |a: &(f32, u32), b: &(f32, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    if k < all.len() {
        all.select_nth_unstable_by(k, cmp);
        all.truncate(k);
    }
    all.sort_unstable_by(cmp);
    all
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
            let panels = CoarsePanels::new(&c, dim);
            assert_eq!(panels.len(), n);
            let mut fast = vec![f32::NAN; n];
            let mut slow = vec![f32::NAN; n];
            panels.dots(&q, &mut fast);
            panels.dots_scalar(&q, &mut slow);
            for i in 0..n {
                let want: f64 = c[i * dim..(i + 1) * dim].iter().zip(&q).map(|(&a, &b)| a as f64 * b as f64).sum();
                assert!((fast[i] as f64 - want).abs() <= 1e-4 * (1.0 + want.abs()), "n {n} dim {dim} row {i}");
                assert!((slow[i] as f64 - want).abs() <= 1e-4 * (1.0 + want.abs()), "n {n} dim {dim} row {i}");
                let norm: f32 = c[i * dim..(i + 1) * dim].iter().map(|x| x * x).sum();
                assert_eq!(panels.norm(i), norm);
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
