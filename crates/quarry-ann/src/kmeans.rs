//! k-means training: k-means++ seeding, sub-sampling of large inputs, Lloyd
//! iterations with GEMM-based assignment (`quarry_simd::knn`), empty-cluster
//! repair, and an optional balanced variant that bounds cluster sizes (as
//! SPANN's balanced clustering does). Everything is deterministic given the
//! seed and independent of the number of rayon threads.

mod rng;

pub use rng::Rng;

use quarry_simd::{Metric as SimdMetric, VectorsRef};
use rayon::prelude::*;

use crate::control::Control;
use crate::error::{AnnError, Result, invalid};
use crate::check_finite;
use crate::coarse::CoarsePanels;

/// Options of [`train`].
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansConfig {
    /// Number of centroids.
    pub k: usize,
    /// Lloyd iterations (training stops earlier once no assignment changes).
    pub iterations: usize,
    /// Seed of every random choice (sub-sample, seeding, repair).
    pub seed: u64,
    /// Train on a random sub-sample of at most `k * max_points_per_centroid`
    /// vectors; 0 trains on all of them.
    pub max_points_per_centroid: usize,
    /// `None`: plain Lloyd. `Some(f)` with `f >= 1`: every assignment step
    /// bounds each cluster to `ceil(f * n / k)` training points (see
    /// [`KMeans::assign_balanced`]).
    pub balance: Option<f32>,
    /// Normalise centroids to unit length after each update and assign by
    /// largest inner product (spherical k-means, for inner-product / cosine data).
    pub spherical: bool,
}

impl Default for KMeansConfig {
    /// 256 centroids (one PQ sub-space of 8-bit codes), 20 iterations, seed 0,
    /// at most 256 training points per centroid, unbalanced, Euclidean.
    fn default() -> Self {
        KMeansConfig { k: 256, iterations: 20, seed: 0, max_points_per_centroid: 256, balance: None, spherical: false }
    }
}

/// Trained centroids.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeans {
    pub dim: usize,
    /// `k × dim`, row-major.
    pub centroids: Vec<f32>,
}

/// Candidate points per centroid for k-means++ seeding: seeding costs
/// `k × pool × dim`, so it runs on a sub-sample of the training set.
const SEED_POOL_PER_CENTROID: usize = 16;
/// Nearest centroids considered per point before the balanced assignment
/// falls back to a scan of every centroid with room left.
const BALANCE_CANDIDATES: usize = 8;
/// Greedy seeding (several draws per centroid) only while it costs at most
/// this many distance flops; larger problems draw once per centroid.
const GREEDY_SEEDING_MAX_FLOPS: f64 = 2e9;

/// Trains `cfg.k` centroids on the `n × dim` row-major `data`.
///
/// Errors: `dim` of 0 or `data` not a whole number of rows (`DimMismatch`),
/// NaN/inf (`InvalidInput`), `k` of 0, fewer vectors than `k`, or a balance
/// factor below 1 (`InvalidArgument`), cancellation (`Aborted`).
pub fn train(data: &[f32], dim: usize, cfg: &KMeansConfig, ctl: Control) -> Result<KMeans> {
    check_finite(data, dim)?;
    let n = data.len() / dim;
    if cfg.k == 0 {
        return Err(invalid("k-means needs k >= 1"));
    }
    if n < cfg.k {
        return Err(invalid(format!("too few training vectors: {n} for k = {}", cfg.k)));
    }
    if cfg.k > u32::MAX as usize {
        return Err(invalid("k must fit in 32 bits"));
    }
    if let Some(f) = cfg.balance
        && !(f.is_finite() && f >= 1.0)
    {
        return Err(invalid(format!("balance factor must be >= 1, got {f}")));
    }
    let k = cfg.k;
    let mut rng = Rng::new(cfg.seed);

    // Sub-sample (a seeded partial shuffle), keeping the original order so
    // the sample does not depend on anything but the seed.
    let sample_storage;
    let train: &[f32] = if cfg.max_points_per_centroid > 0 && n > k.saturating_mul(cfg.max_points_per_centroid) {
        let mut idx = rng.sample_indices(n, k * cfg.max_points_per_centroid);
        idx.sort_unstable();
        sample_storage = gather_rows(data, dim, &idx);
        &sample_storage
    } else {
        data
    };
    let n = train.len() / dim;

    ctl.report("kmeans", 0.0);
    let mut centroids = seed_plus_plus(train, dim, k, &mut rng, ctl)?;
    if cfg.spherical {
        normalize_rows(&mut centroids, dim);
    }
    let model_metric = if cfg.spherical { SimdMetric::InnerProduct } else { SimdMetric::L2sq };
    let mut assignment: Vec<u32> = vec![u32::MAX; n];
    for it in 0..cfg.iterations {
        ctl.check()?;
        let km = KMeans { dim, centroids };
        let nearest = match cfg.balance {
            Some(f) => km.balanced_assignment(train, f, cfg.spherical)?,
            None if it > 0 => knn1_near(train, &km.centroids, dim, model_metric, &assignment)?,
            None => knn1(train, &km.centroids, dim, model_metric)?,
        };
        centroids = km.centroids;
        let changed = nearest.iter().zip(&assignment).filter(|(a, b)| a.0 != **b).count();
        for (a, (c, _)) in assignment.iter_mut().zip(&nearest) {
            *a = *c;
        }
        update_centroids(train, dim, k, &assignment, &mut centroids);
        repair_empty(train, dim, k, &mut assignment, &mut centroids, &mut rng);
        if cfg.spherical {
            normalize_rows(&mut centroids, dim);
        }
        ctl.report("kmeans", (it + 1) as f64 / cfg.iterations as f64);
        if changed == 0 {
            break;
        }
    }
    ctl.report("kmeans", 1.0);
    Ok(KMeans { dim, centroids })
}

impl KMeans {
    /// Number of centroids.
    pub fn k(&self) -> usize {
        self.centroids.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Nearest centroid (squared L2) of each row of `data`, with the squared
    /// distance (computed as `‖x‖² + ‖c‖² − 2x·c`, clamped at 0). Returns an
    /// empty vector when `data` is not a whole number of rows or the model is
    /// empty; [`KMeans::try_assign`] says why instead.
    pub fn assign(&self, data: &[f32]) -> Vec<(u32, f32)> {
        self.try_assign(data).unwrap_or_default()
    }

    /// [`KMeans::assign`] with errors.
    pub fn try_assign(&self, data: &[f32]) -> Result<Vec<(u32, f32)>> {
        self.check_model()?;
        check_rows(data, self.dim)?;
        knn1(data, &self.centroids, self.dim, SimdMetric::L2sq)
    }

    /// Centroid with the largest inner product for each row of `data`, with
    /// that inner product (for inner-product / cosine indexes).
    pub fn assign_ip(&self, data: &[f32]) -> Result<Vec<(u32, f32)>> {
        self.check_model()?;
        check_rows(data, self.dim)?;
        knn1(data, &self.centroids, self.dim, SimdMetric::InnerProduct)
    }

    /// The `nprobe` nearest centroids (squared L2, nearest first) of each row:
    /// `n × nprobe` ids and distances, row-major.
    pub fn nearest(&self, data: &[f32], nprobe: usize) -> Result<(Vec<u32>, Vec<f32>)> {
        self.check_model()?;
        check_rows(data, self.dim)?;
        if nprobe == 0 || nprobe > self.k() {
            return Err(invalid(format!("nprobe must be in 1..={}, got {nprobe}", self.k())));
        }
        let r = quarry_simd::knn(SimdMetric::L2sq, VectorsRef::F32(data), VectorsRef::F32(&self.centroids), self.dim, nprobe)
            .map_err(simd_err)?;
        Ok((r.ids, r.distances))
    }

    /// Capacity-bounded assignment: each centroid receives at most
    /// `ceil(factor * n / k)` rows of `data`. Rows are placed greedily, those
    /// with the most to lose (largest gap between their first and second
    /// choice) first, each to its nearest centroid with room left. Returns the
    /// centroid and squared L2 distance of each row.
    pub fn assign_balanced(&self, data: &[f32], factor: f32) -> Result<Vec<(u32, f32)>> {
        self.check_model()?;
        check_finite_rows(data, self.dim)?;
        if !(factor.is_finite() && factor >= 1.0) {
            return Err(invalid(format!("balance factor must be >= 1, got {factor}")));
        }
        self.balanced_assignment(data, factor, false)
    }

    /// Sum over rows of the squared distance to the nearest centroid.
    pub fn inertia(&self, data: &[f32]) -> Result<f64> {
        let k = quarry_simd::kernels();
        check_rows(data, self.dim)?;
        let a = self.try_assign(data)?;
        Ok(data
            .par_chunks_exact(self.dim)
            .zip(&a)
            .map(|(x, &(c, _))| (k.f32_l2sq)(x, self.centroid(c as usize)) as f64)
            .collect::<Vec<_>>()
            .iter()
            .sum())
    }

    /// Row `c` of the centroids.
    pub fn centroid(&self, c: usize) -> &[f32] {
        &self.centroids[c * self.dim..(c + 1) * self.dim]
    }

    fn check_model(&self) -> Result<()> {
        if self.dim == 0 || self.centroids.is_empty() || !self.centroids.len().is_multiple_of(self.dim) {
            return Err(invalid("k-means model has no centroids or a ragged centroid matrix"));
        }
        Ok(())
    }

    fn balanced_assignment(&self, data: &[f32], factor: f32, spherical: bool) -> Result<Vec<(u32, f32)>> {
        let dim = self.dim;
        let n = data.len() / dim;
        let k = self.k();
        let cap = ((factor as f64 * n as f64 / k as f64).ceil() as usize).max(1);
        let t = BALANCE_CANDIDATES.min(k);
        let metric = if spherical { SimdMetric::InnerProduct } else { SimdMetric::L2sq };
        if n == 0 {
            return Ok(Vec::new());
        }
        let r = quarry_simd::knn(metric, VectorsRef::F32(data), VectorsRef::F32(&self.centroids), dim, t)
            .map_err(simd_err)?;
        // Distances as "smaller is nearer" keys.
        let sign = if spherical { -1.0f32 } else { 1.0 };
        let mut order: Vec<u32> = (0..n as u32).collect();
        let regret = |i: usize| -> f32 {
            if t < 2 { 0.0 } else { sign * (r.distances[i * t + 1] - r.distances[i * t]) }
        };
        order.sort_by(|&a, &b| regret(b as usize).total_cmp(&regret(a as usize)).then(a.cmp(&b)));
        let mut load = vec![0usize; k];
        let mut out = vec![(0u32, 0f32); n];
        let kern = quarry_simd::kernels();
        for &i in &order {
            let i = i as usize;
            let pick = (0..t).map(|j| r.ids[i * t + j]).find(|&c| load[c as usize] < cap);
            let c = match pick {
                Some(c) => c,
                None => {
                    // Every candidate is full: nearest centroid with room, by a full scan.
                    let x = &data[i * dim..(i + 1) * dim];
                    let mut best = (f32::INFINITY, u32::MAX);
                    for (c, _) in load.iter().enumerate().filter(|(_, l)| **l < cap) {
                        {
                            let d = if spherical { -(kern.f32_dot)(x, self.centroid(c)) } else { (kern.f32_l2sq)(x, self.centroid(c)) };
                            if d < best.0 || best.1 == u32::MAX {
                                best = (d, c as u32);
                            }
                        }
                    }
                    best.1
                }
            };
            load[c as usize] += 1;
            let x = &data[i * dim..(i + 1) * dim];
            out[i] = (c, (kern.f32_l2sq)(x, self.centroid(c as usize)));
        }
        Ok(out)
    }
}

pub(crate) fn simd_err(e: quarry_simd::SimdError) -> AnnError {
    AnnError::InvalidArgument(e.to_string())
}

fn check_rows(data: &[f32], dim: usize) -> Result<()> {
    if dim == 0 || !data.len().is_multiple_of(dim) {
        return Err(AnnError::DimMismatch(format!("{} values do not divide into vectors of dim {dim}", data.len())));
    }
    Ok(())
}

fn check_finite_rows(data: &[f32], dim: usize) -> Result<()> {
    if data.is_empty() {
        return check_rows(data, dim);
    }
    check_finite(data, dim)
}

/// At most this many dimensions, L2 assignment uses the fused
/// distance-and-argmin loop of the PQ encoder instead of GEMM (whose packing
/// and per-tile top-k dominate at PQ sub-space sizes such as 2 or 4).
const SMALL_DIM: usize = 8;

/// Nearest centroid of every row by `metric` (GEMM path for 8+ rows).
fn knn1(data: &[f32], centroids: &[f32], dim: usize, metric: SimdMetric) -> Result<Vec<(u32, f32)>> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    if metric == SimdMetric::L2sq && dim <= SMALL_DIM {
        let k = centroids.len() / dim;
        let mut t = vec![0f32; centroids.len()];
        for c in 0..k {
            for d in 0..dim {
                t[d * k + c] = centroids[c * dim + d];
            }
        }
        return Ok(data
            .par_chunks(4096 * dim)
            .flat_map_iter(|rows| {
                let mut scratch = vec![0f32; k];
                rows.chunks_exact(dim)
                    .map(|x| {
                        let c = crate::pq::nearest_centroid(&t, x, &mut scratch);
                        (c as u32, l2sq(x, &centroids[c * dim..(c + 1) * dim]))
                    })
                    .collect::<Vec<_>>()
            })
            .collect());
    }
    let r = quarry_simd::knn(metric, VectorsRef::F32(data), VectorsRef::F32(centroids), dim, 1).map_err(simd_err)?;
    Ok(r.ids.into_iter().zip(r.distances).collect())
}

/// Margin per dimension, relative to `‖x‖² + ‖c‖²`, by which [`knn1_near`]
/// widens its bounds: several times the rounding error of an f32 dot
/// product (about `dim · 2⁻²⁴ · ‖x‖‖c‖`), so a bound always holds.
const BOUND_MARGIN: f32 = 1.0 / (1 << 20) as f32;

/// [`knn1`] for rows that were assigned before (`previous`, any centroid
/// ids): the distance to the previous centroid bounds the nearest one, so
/// the GEMM's selection drops nearly every candidate early
/// ([`quarry_simd::knn_bounded`]); the result is the same. A row whose bound
/// failed (none, with the margin above) is assigned again in full.
fn knn1_near(data: &[f32], centroids: &[f32], dim: usize, metric: SimdMetric, previous: &[u32]) -> Result<Vec<(u32, f32)>> {
    if dim <= SMALL_DIM || !matches!(metric, SimdMetric::L2sq | SimdMetric::InnerProduct) {
        return knn1(data, centroids, dim, metric);
    }
    let kern = quarry_simd::kernels();
    // Squared centroid norms once, not once per row.
    let cnorm: Vec<f32> = centroids.chunks_exact(dim).map(|c| (kern.f32_dot)(c, c)).collect();
    let bounds: Vec<f32> = data
        .par_chunks_exact(dim)
        .zip(previous.par_iter())
        .map(|(x, &c)| {
            let margin = BOUND_MARGIN * dim as f32 * ((kern.f32_dot)(x, x) + cnorm[c as usize]);
            let c = &centroids[c as usize * dim..(c as usize + 1) * dim];
            if metric == SimdMetric::L2sq { (kern.f32_l2sq)(x, c) + margin } else { (kern.f32_dot)(x, c) - margin }
        })
        .collect();
    let r = quarry_simd::knn_bounded(metric, VectorsRef::F32(data), VectorsRef::F32(centroids), dim, 1, &bounds).map_err(simd_err)?;
    let mut out: Vec<(u32, f32)> = r.ids.into_iter().zip(r.distances).collect();
    let missed: Vec<usize> = (0..out.len()).filter(|&i| out[i].0 == u32::MAX).collect();
    if !missed.is_empty() {
        let again = knn1(&gather_rows(data, dim, &missed), centroids, dim, metric)?;
        for (&i, a) in missed.iter().zip(again) {
            out[i] = a;
        }
    }
    Ok(out)
}

/// Rows `idx` of `data`, copied in parallel.
pub(crate) fn gather_rows(data: &[f32], dim: usize, idx: &[usize]) -> Vec<f32> {
    let mut out = vec![0f32; idx.len() * dim];
    out.par_chunks_mut(dim).zip(idx.par_iter()).for_each(|(row, &i)| row.copy_from_slice(&data[i * dim..(i + 1) * dim]));
    out
}

fn normalize_rows(rows: &mut [f32], dim: usize) {
    for r in rows.chunks_exact_mut(dim) {
        let norm = r.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
        if norm > 0.0 {
            let inv = (1.0 / norm) as f32;
            r.iter_mut().for_each(|x| *x *= inv);
        }
    }
}

/// k-means++ (D² sampling) on a seeded sub-sample of at most
/// `k * SEED_POOL_PER_CENTROID` points. When every remaining point coincides
/// with a chosen centroid (fewer distinct points than `k`), the rest are
/// drawn uniformly.
fn seed_plus_plus(data: &[f32], dim: usize, k: usize, rng: &mut Rng, ctl: Control) -> Result<Vec<f32>> {
    let n = data.len() / dim;
    let pool_storage;
    let pool: &[f32] = if n > k.saturating_mul(SEED_POOL_PER_CENTROID) {
        let mut idx = rng.sample_indices(n, k * SEED_POOL_PER_CENTROID);
        idx.sort_unstable();
        pool_storage = gather_rows(data, dim, &idx);
        &pool_storage
    } else {
        data
    };
    let np = pool.len() / dim;
    let mut centroids = Vec::with_capacity(k * dim);
    let first = rng.below(np as u64) as usize;
    centroids.extend_from_slice(&pool[first * dim..(first + 1) * dim]);
    // Squared distances from every pool point to a candidate as
    // |x|² + |c|² − 2·x·c, with the pool packed once into panels: one
    // matrix-vector product per candidate instead of a call of the l2
    // kernel per point (which spent most of the seeding in call overhead
    // and horizontal sums).
    let panels: Vec<CoarsePanels> = pool.par_chunks(SEED_CHUNK * dim).map(|c| CoarsePanels::new(c, dim)).collect();
    let distances = |c: &[f32], out: &mut [f32]| {
        let cn: f32 = c.iter().map(|x| x * x).sum();
        out.par_chunks_mut(SEED_CHUNK).zip(&panels).for_each(|(o, p)| {
            p.dots(c, o);
            for (i, v) in o.iter_mut().enumerate() {
                *v = (p.norm(i) + cn - 2.0 * *v).max(0.0);
            }
        });
    };
    let mut d2 = vec![0f32; np];
    distances(&centroids[..dim], &mut d2);
    // Greedy k-means++ (as scikit-learn does): several D² draws per step,
    // keeping the one that lowers the potential most, while that stays cheap.
    let greedy = 2 + (k as f64).ln() as usize;
    let trials = if (k as f64) * (np as f64) * (dim as f64) * (greedy as f64) <= GREEDY_SEEDING_MAX_FLOPS { greedy } else { 1 };
    let mut dist = vec![0f32; np * trials];
    for c in 1..k {
        if c % 64 == 0 {
            ctl.check()?;
            ctl.report("kmeans seeding", c as f64 / k as f64);
        }
        let total: f64 = d2.iter().map(|&d| d as f64).sum();
        let picks: Vec<usize> = (0..trials).map(|_| draw_d2(&d2, total, np, rng)).collect();
        for (t, &p) in picks.iter().enumerate() {
            distances(&pool[p * dim..(p + 1) * dim], &mut dist[t * np..(t + 1) * np]);
        }
        let mut best = 0;
        if trials > 1 {
            let potential = |t: usize| -> f64 { d2.iter().zip(&dist[t * np..(t + 1) * np]).map(|(&d, &e)| d.min(e) as f64).sum() };
            let mut best_pot = potential(0);
            for t in 1..trials {
                let p = potential(t);
                if p < best_pot {
                    (best, best_pot) = (t, p);
                }
            }
        }
        d2.iter_mut().zip(&dist[best * np..(best + 1) * np]).for_each(|(d, &e)| *d = d.min(e));
        centroids.extend_from_slice(&pool[picks[best] * dim..(picks[best] + 1) * dim]);
    }
    Ok(centroids)
}

/// Pool points per parallel task in seeding.
const SEED_CHUNK: usize = 2048;

/// Squared L2: the dispatched kernel for long vectors, an inlined loop for
/// short ones (PQ sub-spaces), where the call through the table dominates.
#[inline]
fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    if a.len() >= 16 {
        (quarry_simd::kernels().f32_l2sq)(a, b)
    } else {
        a.iter().zip(b).map(|(&x, &y)| (x - y) * (x - y)).sum()
    }
}

/// One D² draw: index `i` with probability `d2[i] / total`; uniform when every
/// point coincides with a chosen centroid.
fn draw_d2(d2: &[f32], total: f64, np: usize, rng: &mut Rng) -> usize {
    if !(total > 0.0 && total.is_finite()) {
        return rng.below(np as u64) as usize;
    }
    let target = rng.next_f64() * total;
    let mut acc = 0.0f64;
    for (i, &d) in d2.iter().enumerate() {
        acc += d as f64;
        if acc > target && d > 0.0 {
            return i;
        }
    }
    // Rounding can leave `target` past the final sum: take the last positive.
    d2.iter().rposition(|&d| d > 0.0).unwrap_or(0)
}

/// Centroids become the means of their members. Empty clusters keep their
/// previous centroid until [`repair_empty`].
///
/// Sums are f64, over fixed blocks of rows (read in order; members of one
/// cluster lie scattered over the data, and gathering them cluster by
/// cluster spent most of the update waiting on memory), then added block by
/// block in order: the result does not depend on the thread count. When one
/// block's sums would be large (many centroids × dimensions), the rows are
/// grouped by cluster instead.
fn update_centroids(data: &[f32], dim: usize, k: usize, assignment: &[u32], centroids: &mut [f32]) {
    if k * dim > UPDATE_BLOCK_SUMS_MAX {
        return update_centroids_by_members(data, dim, k, assignment, centroids);
    }
    let blocks: Vec<(Vec<f64>, Vec<u32>)> = data
        .par_chunks(UPDATE_BLOCK_ROWS * dim)
        .zip(assignment.par_chunks(UPDATE_BLOCK_ROWS))
        .map(|(rows, owners)| {
            let mut sum = vec![0f64; k * dim];
            let mut count = vec![0u32; k];
            sum_block(rows, owners, dim, &mut sum, &mut count);
            (sum, count)
        })
        .collect();
    centroids.par_chunks_exact_mut(dim).enumerate().for_each(|(c, row)| {
        let count: u64 = blocks.iter().map(|(_, n)| n[c] as u64).sum();
        if count == 0 {
            return;
        }
        let mut sum = vec![0f64; dim];
        for (block, _) in &blocks {
            for (s, &b) in sum.iter_mut().zip(&block[c * dim..(c + 1) * dim]) {
                *s += b;
            }
        }
        let inv = 1.0 / count as f64;
        for (r, s) in row.iter_mut().zip(sum) {
            *r = (s * inv) as f32;
        }
    });
}

/// Adds each row of a block to its cluster's f64 sum (AVX where present:
/// the same additions, four lanes at a time).
fn sum_block(rows: &[f32], owners: &[u32], dim: usize, sum: &mut [f64], count: &mut [u32]) {
    #[inline(always)]
    fn portable(rows: &[f32], owners: &[u32], dim: usize, sum: &mut [f64], count: &mut [u32]) {
        for (x, &c) in rows.chunks_exact(dim).zip(owners) {
            let c = c as usize;
            count[c] += 1;
            for (s, &v) in sum[c * dim..(c + 1) * dim].iter_mut().zip(x) {
                *s += v as f64;
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx")]
        fn avx(rows: &[f32], owners: &[u32], dim: usize, sum: &mut [f64], count: &mut [u32]) {
            portable(rows, owners, dim, sum, count)
        }
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: AVX is present on this CPU.
            return unsafe { avx(rows, owners, dim, sum, count) };
        }
    }
    portable(rows, owners, dim, sum, count)
}

/// Rows per block of [`update_centroids`] (fixed: see there).
const UPDATE_BLOCK_ROWS: usize = 32_768;
/// Largest `k × dim` summed by blocks (one block's sums: 2 MiB of f64).
const UPDATE_BLOCK_SUMS_MAX: usize = 1 << 18;

/// [`update_centroids`] cluster by cluster (f64 sums over each cluster's
/// members in row order), for many centroids × dimensions.
fn update_centroids_by_members(data: &[f32], dim: usize, k: usize, assignment: &[u32], centroids: &mut [f32]) {
    let members = members_by_cluster(assignment, k);
    centroids.par_chunks_exact_mut(dim).enumerate().for_each(|(c, row)| {
        let m = &members.ids[members.start[c]..members.start[c + 1]];
        if m.is_empty() {
            return;
        }
        let mut sum = vec![0f64; dim];
        for &i in m {
            for (s, &x) in sum.iter_mut().zip(&data[i as usize * dim..(i as usize + 1) * dim]) {
                *s += x as f64;
            }
        }
        let inv = 1.0 / m.len() as f64;
        for (r, s) in row.iter_mut().zip(sum) {
            *r = (s * inv) as f32;
        }
    });
}

struct Members {
    start: Vec<usize>,
    ids: Vec<u32>,
}

/// Rows grouped by cluster (counting sort; ascending row order within a cluster).
fn members_by_cluster(assignment: &[u32], k: usize) -> Members {
    let mut start = vec![0usize; k + 1];
    for &a in assignment {
        start[a as usize + 1] += 1;
    }
    for c in 0..k {
        start[c + 1] += start[c];
    }
    let mut fill = start.clone();
    let mut ids = vec![0u32; assignment.len()];
    for (i, &a) in assignment.iter().enumerate() {
        ids[fill[a as usize]] = i as u32;
        fill[a as usize] += 1;
    }
    Members { start, ids }
}

/// Empty-cluster repair by splitting the largest cluster: the empty centroid
/// moves to the member of the largest cluster that lies farthest from its
/// centroid, and that member is re-assigned to it. Clusters whose members all
/// coincide with their centroid cannot be split and are skipped; when no
/// cluster can be split the empty centroid stays where it is.
fn repair_empty(data: &[f32], dim: usize, k: usize, assignment: &mut [u32], centroids: &mut [f32], rng: &mut Rng) {
    let mut sizes = vec![0usize; k];
    for &a in assignment.iter() {
        sizes[a as usize] += 1;
    }
    let empties: Vec<usize> = (0..k).filter(|&c| sizes[c] == 0).collect();
    if empties.is_empty() {
        return;
    }
    let kern = quarry_simd::kernels();
    // Donor order: largest first, ties broken by a seeded shuffle so repeated
    // repairs do not always pick the same cluster.
    let mut tiebreak: Vec<u64> = (0..k).map(|_| rng.next_u64()).collect();
    for e in empties {
        let mut donors: Vec<usize> = (0..k).filter(|&c| sizes[c] >= 2).collect();
        donors.sort_by(|&a, &b| sizes[b].cmp(&sizes[a]).then(tiebreak[a].cmp(&tiebreak[b])));
        for d in donors {
            let centroid = centroids[d * dim..(d + 1) * dim].to_vec();
            let far = assignment
                .par_iter()
                .enumerate()
                .filter(|(_, a)| **a as usize == d)
                .map(|(i, _)| ((kern.f32_l2sq)(&data[i * dim..(i + 1) * dim], &centroid), i))
                .reduce(|| (-1.0, usize::MAX), |a, b| if b.0 > a.0 || (b.0 == a.0 && b.1 < a.1) { b } else { a });
            if far.0 > 0.0 {
                let i = far.1;
                centroids[e * dim..(e + 1) * dim].copy_from_slice(&data[i * dim..(i + 1) * dim]);
                assignment[i] = e as u32;
                sizes[d] -= 1;
                sizes[e] = 1;
                tiebreak[e] = u64::MAX;
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_assignment_equals_full_assignment() {
        let mut rng = Rng::new(5);
        for (n, dim, k) in [(3000, 24, 50), (500, 100, 200), (64, 12, 3)] {
            let data: Vec<f32> = (0..n * dim).map(|_| rng.gaussian() as f32).collect();
            let centroids: Vec<f32> = (0..k * dim).map(|_| rng.gaussian() as f32).collect();
            for metric in [SimdMetric::L2sq, SimdMetric::InnerProduct] {
                let full = knn1(&data, &centroids, dim, metric).unwrap();
                // Previous centroids: the right one, an arbitrary one, the worst.
                let right: Vec<u32> = full.iter().map(|a| a.0).collect();
                let arbitrary: Vec<u32> = (0..n).map(|i| (i % k) as u32).collect();
                for previous in [right, arbitrary] {
                    assert_eq!(knn1_near(&data, &centroids, dim, metric, &previous).unwrap(), full, "{metric:?} {n}x{k}");
                }
            }
        }
    }

    #[test]
    fn block_sums_equal_member_sums() {
        let mut rng = Rng::new(3);
        for (n, dim, k) in [(40_000, 7, 13), (5, 3, 4), (UPDATE_BLOCK_ROWS + 1, 16, 64)] {
            let data: Vec<f32> = (0..n * dim).map(|_| rng.gaussian() as f32).collect();
            // Cluster 0 stays empty: it must keep its previous centroid.
            let assignment: Vec<u32> = (0..n).map(|_| 1 + rng.below(k as u64 - 1) as u32).collect();
            let before: Vec<f32> = (0..k * dim).map(|i| i as f32).collect();
            let (mut blocks, mut members) = (before.clone(), before.clone());
            update_centroids(&data, dim, k, &assignment, &mut blocks);
            update_centroids_by_members(&data, dim, k, &assignment, &mut members);
            assert_eq!(blocks[..dim], before[..dim]);
            for (a, b) in blocks.iter().zip(&members) {
                assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
            }
        }
    }
}
