//! OPQ: an orthonormal rotation `R` learned so that product quantization of
//! `y = R x` loses less. Training alternates (a) PQ on the rotated data and
//! (b) the orthogonal Procrustes problem `min_R ‖X Rᵀ − Ŷ‖` for the decoded
//! codes `Ŷ`, solved by the SVD `Xᵀ Ŷ = U Σ Vᵀ`, `R = V Uᵀ` (nalgebra).
//! Starting from the identity, iteration 0 is plain PQ; the rotation with the
//! lowest reconstruction error seen is kept, then the final PQ is trained on
//! the data rotated by it.

use nalgebra::DMatrix;
use rayon::prelude::*;

use crate::control::Control;
use crate::error::{AnnError, Result, invalid};
use crate::kmeans::{Rng, gather_rows};
use crate::pq::ProductQuantizer;
use crate::check_finite;

/// A learned rotation.
#[derive(Debug, Clone, PartialEq)]
pub struct Opq {
    pub dim: usize,
    /// `dim × dim` orthonormal, row-major: `y = R x`.
    pub rotation: Vec<f32>,
}

/// Training vectors used by the alternating iterations (a seeded sub-sample).
const OPQ_MAX_TRAIN: usize = 65_536;
/// k-means iterations of the PQ inside each alternating iteration.
const OPQ_INNER_KMEANS_ITERATIONS: usize = 10;
const ROWS_PER_TASK: usize = 1024;

impl Opq {
    /// Learns a rotation and the PQ of the rotated data (`m` sub-spaces of
    /// `nbits` bits) from the `n × dim` rows of `data`, with `iterations`
    /// alternating steps (0 gives the identity and plain PQ).
    ///
    /// Errors: as [`ProductQuantizer::train`], and `Aborted` on cancellation.
    pub fn train(
        data: &[f32],
        dim: usize,
        m: usize,
        nbits: u32,
        iterations: usize,
        seed: u64,
        ctl: Control,
    ) -> Result<(Opq, ProductQuantizer)> {
        check_finite(data, dim)?;
        if m == 0 || !dim.is_multiple_of(m) {
            return Err(invalid(format!("PQ m = {m} must divide dim = {dim}")));
        }
        if nbits != 4 && nbits != 8 {
            return Err(invalid(format!("PQ supports 4- and 8-bit codes, got {nbits}")));
        }
        let n = data.len() / dim;
        if n < (1usize << nbits) {
            return Err(invalid(format!("too few training vectors: {n} for {} centroids per sub-space", 1 << nbits)));
        }
        let sample_storage;
        let x: &[f32] = if n > OPQ_MAX_TRAIN {
            let mut idx = Rng::new(seed ^ 0x004f_5051).sample_indices(n, OPQ_MAX_TRAIN);
            idx.sort_unstable();
            sample_storage = gather_rows(data, dim, &idx);
            &sample_storage
        } else {
            data
        };
        let mut opq = Opq { dim, rotation: identity(dim) };
        let mut best = (f64::INFINITY, opq.rotation.clone());
        let mut y = vec![0f32; x.len()];
        for it in 0..iterations {
            ctl.check()?;
            ctl.report("opq", it as f64 / (iterations + 1) as f64);
            opq.apply(x, &mut y)?;
            let pq = ProductQuantizer::train_with_iterations(&y, dim, m, nbits, seed, OPQ_INNER_KMEANS_ITERATIONS, ctl)?;
            let mut codes = vec![0u8; (x.len() / dim) * pq.code_size()];
            pq.encode(&y, &mut codes)?;
            let mut yhat = vec![0f32; y.len()];
            pq.decode(&codes, &mut yhat)?;
            let err = sq_error(&y, &yhat);
            if err < best.0 {
                best = (err, opq.rotation.clone());
            }
            match procrustes(x, &yhat, dim) {
                Some(r) => opq.rotation = r,
                None => break,
            }
        }
        if iterations > 0 {
            // The rotation after the last Procrustes step has not been scored yet.
            opq.apply(x, &mut y)?;
            let pq = ProductQuantizer::train_with_iterations(&y, dim, m, nbits, seed, OPQ_INNER_KMEANS_ITERATIONS, ctl)?;
            if pq.reconstruction_error(&y)? * (x.len() / dim) as f64 > best.0 {
                opq.rotation = best.1;
            }
        }
        ctl.report("opq", iterations as f64 / (iterations + 1) as f64);
        let mut rotated = vec![0f32; data.len()];
        opq.apply(data, &mut rotated)?;
        let pq = ProductQuantizer::train(&rotated, dim, m, nbits, seed, ctl)?;
        ctl.report("opq", 1.0);
        Ok((opq, pq))
    }

    /// Checks that the rotation is a finite `dim × dim` matrix.
    pub fn validate(&self) -> Result<()> {
        if self.dim == 0 || self.rotation.len() != self.dim * self.dim {
            return Err(AnnError::DimMismatch("OPQ rotation must be dim × dim".into()));
        }
        if self.rotation.iter().any(|x| !x.is_finite()) {
            return Err(invalid("OPQ rotation is not finite"));
        }
        Ok(())
    }

    /// `out = R x` for each row of `x` (`n × dim`).
    pub fn apply(&self, x: &[f32], out: &mut [f32]) -> Result<()> {
        self.transform(x, out, false)
    }

    /// `out = Rᵀ y` for each row of `y` (the inverse rotation).
    pub fn apply_inverse(&self, y: &[f32], out: &mut [f32]) -> Result<()> {
        self.transform(y, out, true)
    }

    fn transform(&self, x: &[f32], out: &mut [f32], transpose: bool) -> Result<()> {
        self.validate()?;
        let dim = self.dim;
        if !x.len().is_multiple_of(dim) || out.len() != x.len() {
            return Err(AnnError::DimMismatch(format!(
                "input of {} and output of {} values for dim {dim}",
                x.len(),
                out.len()
            )));
        }
        let r_t;
        let r: &[f32] = if transpose {
            r_t = transposed(&self.rotation, dim);
            &r_t
        } else {
            &self.rotation
        };
        let dot = quarry_simd::kernels().f32_dot;
        out.par_chunks_mut(ROWS_PER_TASK * dim).zip(x.par_chunks(ROWS_PER_TASK * dim)).for_each(|(oo, xx)| {
            for (o, v) in oo.chunks_exact_mut(dim).zip(xx.chunks_exact(dim)) {
                for (oi, row) in o.iter_mut().zip(r.chunks_exact(dim)) {
                    *oi = dot(row, v);
                }
            }
        });
        Ok(())
    }
}

fn identity(dim: usize) -> Vec<f32> {
    let mut r = vec![0f32; dim * dim];
    for i in 0..dim {
        r[i * dim + i] = 1.0;
    }
    r
}

fn transposed(r: &[f32], dim: usize) -> Vec<f32> {
    let mut t = vec![0f32; dim * dim];
    for i in 0..dim {
        for j in 0..dim {
            t[j * dim + i] = r[i * dim + j];
        }
    }
    t
}

/// Total squared difference (f64).
fn sq_error(a: &[f32], b: &[f32]) -> f64 {
    a.par_chunks(65_536)
        .zip(b.par_chunks(65_536))
        .map(|(a, b)| a.iter().zip(b).map(|(&x, &y)| ((x - y) as f64).powi(2)).sum::<f64>())
        .collect::<Vec<_>>()
        .iter()
        .sum()
}

/// Orthogonal `R` minimising `‖X Rᵀ − Ŷ‖_F`: `R = V Uᵀ` for `Xᵀ Ŷ = U Σ Vᵀ`.
/// `None` if the SVD does not converge.
fn procrustes(x: &[f32], yhat: &[f32], dim: usize) -> Option<Vec<f32>> {
    // Xᵀ Ŷ in f64, summed per fixed chunk and then in chunk order so the
    // result does not depend on the thread count.
    let partials: Vec<Vec<f64>> = x
        .par_chunks(ROWS_PER_TASK * dim)
        .zip(yhat.par_chunks(ROWS_PER_TASK * dim))
        .map(|(xx, yy)| {
            let mut acc = vec![0f64; dim * dim];
            for (xr, yr) in xx.chunks_exact(dim).zip(yy.chunks_exact(dim)) {
                for (i, &xi) in xr.iter().enumerate() {
                    let row = &mut acc[i * dim..(i + 1) * dim];
                    let xi = xi as f64;
                    for (a, &yj) in row.iter_mut().zip(yr) {
                        *a += xi * yj as f64;
                    }
                }
            }
            acc
        })
        .collect();
    let mut m = vec![0f64; dim * dim];
    for p in partials {
        for (a, b) in m.iter_mut().zip(p) {
            *a += b;
        }
    }
    let svd = DMatrix::from_row_slice(dim, dim, &m).try_svd(true, true, 1e-12, 10_000)?;
    let r = svd.v_t?.transpose() * svd.u?.transpose();
    let mut out = vec![0f32; dim * dim];
    for i in 0..dim {
        for j in 0..dim {
            out[i * dim + j] = r[(i, j)] as f32;
        }
    }
    Some(out)
}
