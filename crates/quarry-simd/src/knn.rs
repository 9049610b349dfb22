//! Exact many-to-many k-nearest-neighbour search.

use crate::topk::TopK;
use crate::{Metric, Result, SimdError, VectorsRef, check_metric, kernels, matrix_shape, with_kernel};
use rayon::prelude::*;

/// Result of [`knn`]: for each query, `k` neighbours best first, row-major
/// (`ids[q * k + j]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Knn {
    pub k: usize,
    pub ids: Vec<u32>,
    /// Distances (similarities for [`Metric::InnerProduct`], largest first).
    pub distances: Vec<f32>,
}

/// Exact k-NN of every query row among the base rows. Ties go to the smaller
/// id; NaN distances rank last.
pub fn knn(metric: Metric, queries: VectorsRef, base: VectorsRef, dim: usize, k: usize) -> Result<Knn> {
    if queries.dtype() != base.dtype() {
        return Err(SimdError::DtypeMismatch(format!(
            "queries are {} and base is {}",
            queries.dtype().name(),
            base.dtype().name()
        )));
    }
    check_metric(metric, base.dtype())?;
    let (row, nq) = matrix_shape(&queries, dim, "queries")?;
    let (_, nb) = matrix_shape(&base, dim, "base")?;
    if k == 0 || k > nb {
        return Err(SimdError::InvalidArgument(format!("k must be in 1..={nb} (the base size), got {k}")));
    }
    if nb > u32::MAX as usize {
        return Err(SimdError::InvalidArgument("base has more than 2^32 - 1 rows".into()));
    }
    let sign = if metric.higher_is_closer() { -1.0f32 } else { 1.0 };
    let mut ids = vec![0u32; nq * k];
    let mut distances = vec![0f32; nq * k];
    with_kernel!(kernels(), metric, queries, base, |qs, bs, kern| {
        ids.par_chunks_mut(k).zip(distances.par_chunks_mut(k)).enumerate().for_each(|(qi, (ids_q, d_q))| {
            let q = &qs[qi * row..(qi + 1) * row];
            let mut top = TopK::new(k);
            for (bi, b) in bs.chunks_exact(row).enumerate() {
                top.push(sign * kern(q, b) as f32, bi as u32);
            }
            for (j, (key, id)) in top.into_sorted().into_iter().enumerate() {
                ids_q[j] = id;
                d_q[j] = sign * key;
            }
        });
    });
    Ok(Knn { k, ids, distances })
}
