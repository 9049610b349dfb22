//! MUVERA fixed-dimensional encodings (FDE) for multi-vector retrieval.
//!
//! Each repetition draws `simhash_bits` Gaussian hyperplanes; the signs of a
//! vector against them pick one of `2^simhash_bits` partitions. A query's FDE
//! holds, per partition, the *sum* of its (optionally projected) vectors; a
//! document's FDE the *average* of its vectors in the partition, and for an
//! empty partition (if `fill_empty_partitions`) the vector whose sign pattern
//! is nearest in Hamming distance to the partition's. Repetitions are
//! concatenated; an optional final count-sketch projection shrinks the result.
//! `⟨FDE(q), FDE(d)⟩` approximates the Chamfer similarity `Σ_q max_d ⟨q, d⟩`,
//! so candidates come from any single-vector inner-product index and are then
//! re-ranked with [`chamfer`].

use crate::error::{AnnError, Result, invalid};
use crate::kmeans::Rng;

/// Options of [`Muvera::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct FdeConfig {
    /// Dimension of the input vectors.
    pub dim: usize,
    /// Hyperplanes per repetition: `2^simhash_bits` partitions (0..=16).
    pub simhash_bits: u32,
    /// Independent repetitions (concatenated).
    pub repetitions: usize,
    /// Project each vector to this many dimensions with a random ±1/√p
    /// matrix per repetition; `None` keeps the vectors as they are.
    pub projection_dim: Option<usize>,
    /// Count-sketch the concatenation down to this many dimensions; `None`
    /// keeps it (`repetitions × 2^simhash_bits × projection`).
    pub final_dim: Option<usize>,
    /// Fill a document's empty partitions from its nearest vector (Hamming
    /// distance of sign patterns).
    pub fill_empty_partitions: bool,
    pub seed: u64,
}

impl Default for FdeConfig {
    /// dim 128, 4 bits (16 partitions), 20 repetitions, no projections, fill on.
    fn default() -> Self {
        FdeConfig {
            dim: 128,
            simhash_bits: 4,
            repetitions: 20,
            projection_dim: None,
            final_dim: None,
            fill_empty_partitions: true,
            seed: 0,
        }
    }
}

/// Largest FDE (before the final projection) [`Muvera::new`] accepts.
pub const MAX_FDE_DIM: usize = 1 << 26;

/// A seeded FDE encoder.
#[derive(Debug, Clone)]
pub struct Muvera {
    cfg: FdeConfig,
    /// Per repetition, `simhash_bits × dim` Gaussian hyperplanes.
    hyperplanes: Vec<f32>,
    /// Per repetition, `proj × dim` entries of ±1/√proj (empty without projection).
    projections: Vec<f32>,
    /// Final count sketch: bucket and sign of each FDE coordinate.
    sketch: Option<(Vec<u32>, Vec<f32>)>,
    proj: usize,
}

impl Muvera {
    /// Draws the random hyperplanes and projections for `cfg`.
    /// Errors (`InvalidArgument`): `dim`, `repetitions`, `projection_dim` or
    /// `final_dim` of 0, `simhash_bits` above 16, an FDE larger than [`MAX_FDE_DIM`].
    pub fn new(cfg: FdeConfig) -> Result<Self> {
        if cfg.dim == 0 {
            return Err(invalid("MUVERA dim must be at least 1"));
        }
        if cfg.simhash_bits > 16 {
            return Err(invalid(format!("simhash_bits must be at most 16, got {}", cfg.simhash_bits)));
        }
        if cfg.repetitions == 0 {
            return Err(invalid("MUVERA needs at least one repetition"));
        }
        if cfg.projection_dim == Some(0) || cfg.final_dim == Some(0) {
            return Err(invalid("projection_dim and final_dim must be at least 1 when given"));
        }
        let proj = cfg.projection_dim.unwrap_or(cfg.dim);
        let full = cfg
            .repetitions
            .checked_mul(1usize << cfg.simhash_bits)
            .and_then(|x| x.checked_mul(proj))
            .filter(|&x| x <= MAX_FDE_DIM)
            .ok_or_else(|| invalid(format!("FDE would exceed {MAX_FDE_DIM} dimensions")))?;
        if cfg.final_dim.is_some_and(|f| f > MAX_FDE_DIM) {
            return Err(invalid(format!("final_dim must be at most {MAX_FDE_DIM}")));
        }
        let mut rng = Rng::new(cfg.seed);
        let bits = cfg.simhash_bits as usize;
        let hyperplanes = (0..cfg.repetitions * bits * cfg.dim).map(|_| rng.gaussian() as f32).collect();
        let projections = match cfg.projection_dim {
            Some(p) => {
                let s = 1.0 / (p as f32).sqrt();
                (0..cfg.repetitions * p * cfg.dim).map(|_| if rng.next_u64() >> 63 == 1 { s } else { -s }).collect()
            }
            None => Vec::new(),
        };
        let sketch = cfg.final_dim.map(|f| {
            let buckets = (0..full).map(|_| rng.below(f as u64) as u32).collect();
            let signs = (0..full).map(|_| if rng.next_u64() >> 63 == 1 { 1.0 } else { -1.0 }).collect();
            (buckets, signs)
        });
        Ok(Muvera { cfg, hyperplanes, projections, sketch, proj })
    }

    /// The configuration.
    pub fn config(&self) -> &FdeConfig {
        &self.cfg
    }

    /// Length of an encoding.
    pub fn output_dim(&self) -> usize {
        self.cfg.final_dim.unwrap_or(self.full_dim())
    }

    fn full_dim(&self) -> usize {
        self.cfg.repetitions * self.partitions() * self.proj
    }

    fn partitions(&self) -> usize {
        1usize << self.cfg.simhash_bits
    }

    /// Query FDE of `vectors` (`n × dim`, `n >= 1`): per partition the sum of
    /// the (projected) vectors that fall in it.
    pub fn encode_query(&self, vectors: &[f32]) -> Result<Vec<f32>> {
        self.check(vectors)?;
        let mut fde = vec![0f32; self.full_dim()];
        let mut buf = vec![0f32; self.proj];
        for rep in 0..self.cfg.repetitions {
            for x in vectors.chunks_exact(self.cfg.dim) {
                let part = self.partition(rep, x);
                self.project(rep, x, &mut buf);
                let block = self.block(rep, part);
                for (o, &v) in fde[block..block + self.proj].iter_mut().zip(&buf) {
                    *o += v;
                }
            }
        }
        Ok(self.finish(fde))
    }

    /// Document FDE of `vectors` (`n × dim`, `n >= 1`): per partition the
    /// average of its (projected) vectors; empty partitions stay zero, or with
    /// `fill_empty_partitions` take the vector whose sign pattern differs in
    /// the fewest bits (ties to the earlier vector).
    pub fn encode_document(&self, vectors: &[f32]) -> Result<Vec<f32>> {
        self.check(vectors)?;
        let dim = self.cfg.dim;
        let n = vectors.len() / dim;
        let parts = self.partitions();
        let mut fde = vec![0f32; self.full_dim()];
        let mut buf = vec![0f32; self.proj];
        let mut counts = vec![0u32; parts];
        let mut codes = vec![0u32; n];
        for rep in 0..self.cfg.repetitions {
            counts.fill(0);
            for (i, x) in vectors.chunks_exact(dim).enumerate() {
                let part = self.partition(rep, x);
                codes[i] = part as u32;
                counts[part] += 1;
                self.project(rep, x, &mut buf);
                let block = self.block(rep, part);
                for (o, &v) in fde[block..block + self.proj].iter_mut().zip(&buf) {
                    *o += v;
                }
            }
            for (part, &count) in counts.iter().enumerate() {
                let block = self.block(rep, part);
                if count > 0 {
                    let inv = 1.0 / count as f32;
                    fde[block..block + self.proj].iter_mut().for_each(|v| *v *= inv);
                } else if self.cfg.fill_empty_partitions {
                    let nearest = (0..n).min_by_key(|&i| ((codes[i] ^ part as u32).count_ones(), i)).unwrap_or(0);
                    self.project(rep, &vectors[nearest * dim..(nearest + 1) * dim], &mut buf);
                    fde[block..block + self.proj].copy_from_slice(&buf);
                }
            }
        }
        Ok(self.finish(fde))
    }

    fn check(&self, vectors: &[f32]) -> Result<()> {
        if !vectors.len().is_multiple_of(self.cfg.dim) {
            return Err(AnnError::DimMismatch(format!(
                "{} values do not divide into vectors of dim {}",
                vectors.len(),
                self.cfg.dim
            )));
        }
        if vectors.is_empty() {
            return Err(invalid("a multi-vector needs at least one vector"));
        }
        crate::check_finite(vectors, self.cfg.dim)
    }

    fn block(&self, rep: usize, part: usize) -> usize {
        (rep * self.partitions() + part) * self.proj
    }

    /// Partition of `x` in repetition `rep`: bit `k` set when `⟨g_k, x⟩ > 0`.
    fn partition(&self, rep: usize, x: &[f32]) -> usize {
        let dot = quarry_simd::kernels().f32_dot;
        let (bits, dim) = (self.cfg.simhash_bits as usize, self.cfg.dim);
        let planes = &self.hyperplanes[rep * bits * dim..(rep + 1) * bits * dim];
        planes.chunks_exact(dim).enumerate().fold(0, |acc, (k, g)| if dot(g, x) > 0.0 { acc | (1 << k) } else { acc })
    }

    fn project(&self, rep: usize, x: &[f32], out: &mut [f32]) {
        if self.cfg.projection_dim.is_none() {
            out.copy_from_slice(x);
            return;
        }
        let dot = quarry_simd::kernels().f32_dot;
        let dim = self.cfg.dim;
        let rows = &self.projections[rep * self.proj * dim..(rep + 1) * self.proj * dim];
        for (o, r) in out.iter_mut().zip(rows.chunks_exact(dim)) {
            *o = dot(r, x);
        }
    }

    fn finish(&self, fde: Vec<f32>) -> Vec<f32> {
        match (&self.sketch, self.cfg.final_dim) {
            (Some((buckets, signs)), Some(f)) => {
                let mut out = vec![0f32; f];
                for ((&v, &b), &s) in fde.iter().zip(buckets).zip(signs) {
                    out[b as usize] += s * v;
                }
                out
            }
            _ => fde,
        }
    }
}

/// Chamfer similarity `Σ_q max_d ⟨q, d⟩` (MaxSim) of two multi-vectors of
/// `dim`-dimensional rows: the exact score FDE candidates are re-ranked by.
/// NaN when `dim` is 0, either side is not a whole number of rows, or the
/// document is empty while the query is not; 0 for an empty query.
pub fn chamfer(query: &[f32], doc: &[f32], dim: usize) -> f32 {
    if dim == 0 || !query.len().is_multiple_of(dim) || !doc.len().is_multiple_of(dim) {
        return f32::NAN;
    }
    if query.is_empty() {
        return 0.0;
    }
    if doc.is_empty() {
        return f32::NAN;
    }
    let dot = quarry_simd::kernels().f32_dot;
    query
        .chunks_exact(dim)
        .map(|q| doc.chunks_exact(dim).map(|d| dot(q, d)).fold(f32::NEG_INFINITY, f32::max) as f64)
        .sum::<f64>() as f32
}
