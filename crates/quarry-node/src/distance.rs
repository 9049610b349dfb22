//! `distance.*`: one-to-one, one-to-many and exact k-NN.

use crate::convert::Elements;
use crate::errors::{Result, coded, invalid_argument};
use crate::task::Job;
use napi::bindgen_prelude::{AsyncTask, Float32Array, Uint8Array, Uint32Array};
use napi_derive::napi;
use quarry_simd::{Metric, knn, one_to_many};

fn metric(name: &str) -> Result<Metric> {
    Metric::parse(name).map_err(coded)
}

fn usize_arg(name: &str, v: i64) -> Result<usize> {
    usize::try_from(v).map_err(|_| invalid_argument(format!("{name} must be a non-negative integer, got {v}")))
}

/// Distance between two vectors (`metric`: l2sq, ip, cosine, hamming, jaccard).
#[napi]
pub fn distance_pair(metric_name: String, a: Uint8Array, a_dtype: String, b: Uint8Array, b_dtype: String) -> Result<f64> {
    let a = Elements::from_bytes(&a, &a_dtype)?;
    let b = Elements::from_bytes(&b, &b_dtype)?;
    quarry_simd::distance(metric(&metric_name)?, a.view(), b.view()).map_err(coded)
}

/// Distances from one query to every row of a row-major matrix.
#[napi]
pub fn distance_one_to_many(
    metric_name: String,
    query: Uint8Array,
    query_dtype: String,
    matrix: Uint8Array,
    matrix_dtype: String,
    dim: i64,
) -> Result<Float32Array> {
    let q = Elements::from_bytes(&query, &query_dtype)?;
    let m = Elements::from_bytes(&matrix, &matrix_dtype)?;
    let out = one_to_many(metric(&metric_name)?, q.view(), m.view(), usize_arg("dim", dim)?).map_err(coded)?;
    Ok(Float32Array::new(out))
}

/// Exact k-NN result: `k` ids and distances per query, best first.
#[napi(object)]
pub struct KnnResult {
    pub ids: Uint32Array,
    pub distances: Float32Array,
}

/// Exact k-NN of every query row among the base rows.
#[napi]
pub fn distance_knn(
    metric_name: String,
    queries: Uint8Array,
    queries_dtype: String,
    base: Uint8Array,
    base_dtype: String,
    dim: i64,
    k: i64,
) -> Result<KnnResult> {
    let q = Elements::from_bytes(&queries, &queries_dtype)?;
    let b = Elements::from_bytes(&base, &base_dtype)?;
    let r = knn(metric(&metric_name)?, q.view(), b.view(), usize_arg("dim", dim)?, usize_arg("k", k)?).map_err(coded)?;
    Ok(knn_result(r))
}

/// Converts a core k-NN result to its JS shape.
fn knn_result(r: quarry_simd::Knn) -> KnnResult {
    KnnResult { ids: Uint32Array::new(r.ids), distances: Float32Array::new(r.distances) }
}

/// Inputs of the async twins, copied out of JS memory (they outlive the call).
fn owned_inputs(
    metric_name: &str,
    queries: &[u8],
    queries_dtype: &str,
    base: &[u8],
    base_dtype: &str,
    dim: i64,
) -> Result<(Metric, Elements<'static>, Elements<'static>, usize)> {
    Ok((
        metric(metric_name)?,
        Elements::from_bytes(queries, queries_dtype)?.into_owned(),
        Elements::from_bytes(base, base_dtype)?.into_owned(),
        usize_arg("dim", dim)?,
    ))
}

/// Async twin of [`distance_one_to_many`] (runs on the libuv pool).
#[napi(ts_return_type = "Promise<Float32Array>")]
pub fn distance_one_to_many_async(
    metric_name: String,
    query: Uint8Array,
    query_dtype: String,
    matrix: Uint8Array,
    matrix_dtype: String,
    dim: i64,
) -> Result<AsyncTask<Job<Float32Array>>> {
    let (m, q, b, dim) = owned_inputs(&metric_name, &query, &query_dtype, &matrix, &matrix_dtype, dim)?;
    Ok(AsyncTask::new(Job::new(move || {
        one_to_many(m, q.view(), b.view(), dim).map(Float32Array::new).map_err(coded)
    })))
}

/// Async twin of [`distance_knn`] (runs on the libuv pool).
#[napi(ts_return_type = "Promise<KnnResult>")]
pub fn distance_knn_async(
    metric_name: String,
    queries: Uint8Array,
    queries_dtype: String,
    base: Uint8Array,
    base_dtype: String,
    dim: i64,
    k: i64,
) -> Result<AsyncTask<Job<KnnResult>>> {
    let (m, q, b, dim) = owned_inputs(&metric_name, &queries, &queries_dtype, &base, &base_dtype, dim)?;
    let k = usize_arg("k", k)?;
    Ok(AsyncTask::new(Job::new(move || knn(m, q.view(), b.view(), dim, k).map(knn_result).map_err(coded))))
}
