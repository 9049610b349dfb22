//! `distance.*`: one-to-one, one-to-many and exact k-NN.

use crate::convert::Elements;
use crate::errors::{Result, coded, invalid_argument};
use crate::task::Job;
use napi::bindgen_prelude::{AsyncTask, Float32Array, TypedArray, Uint32Array};
use napi_derive::napi;
use quarry_simd::{Metric, knn, one_to_many};

/// Metrics by the numeric code the facade passes (its `METRIC_CODES`);
/// numbers, not names, keep the per-call cost of one-to-one calls low.
const METRICS: [Metric; 5] = [Metric::L2sq, Metric::InnerProduct, Metric::Cosine, Metric::Hamming, Metric::Jaccard];

fn metric(code: u32) -> Result<Metric> {
    METRICS.get(code as usize).copied().ok_or_else(|| invalid_argument(format!("unknown metric code {code}")))
}

fn usize_arg(name: &str, v: i64) -> Result<usize> {
    usize::try_from(v).map_err(|_| invalid_argument(format!("{name} must be a non-negative integer, got {v}")))
}

/// Distance between two vectors (codes: see `METRICS` and `convert::DTYPES`).
#[napi]
pub fn distance_pair(metric_code: u32, a: TypedArray, a_dtype: u32, b: TypedArray, b_dtype: u32) -> Result<f64> {
    let a = Elements::from_typed(&a, a_dtype)?;
    let b = Elements::from_typed(&b, b_dtype)?;
    quarry_simd::distance(metric(metric_code)?, a.view(), b.view()).map_err(coded)
}

/// Distances from one query to every row of a row-major matrix.
#[napi]
pub fn distance_one_to_many(
    metric_code: u32,
    query: TypedArray,
    query_dtype: u32,
    matrix: TypedArray,
    matrix_dtype: u32,
    dim: i64,
) -> Result<Float32Array> {
    let q = Elements::from_typed(&query, query_dtype)?;
    let m = Elements::from_typed(&matrix, matrix_dtype)?;
    let out = one_to_many(metric(metric_code)?, q.view(), m.view(), usize_arg("dim", dim)?).map_err(coded)?;
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
    metric_code: u32,
    queries: TypedArray,
    queries_dtype: u32,
    base: TypedArray,
    base_dtype: u32,
    dim: i64,
    k: i64,
) -> Result<KnnResult> {
    let q = Elements::from_typed(&queries, queries_dtype)?;
    let b = Elements::from_typed(&base, base_dtype)?;
    let r = knn(metric(metric_code)?, q.view(), b.view(), usize_arg("dim", dim)?, usize_arg("k", k)?).map_err(coded)?;
    Ok(knn_result(r))
}

/// Converts a core k-NN result to its JS shape.
fn knn_result(r: quarry_simd::Knn) -> KnnResult {
    KnnResult { ids: Uint32Array::new(r.ids), distances: Float32Array::new(r.distances) }
}

/// Inputs of the async twins, copied out of JS memory (they outlive the call).
fn owned_inputs(
    metric_code: u32,
    queries: &TypedArray,
    queries_dtype: u32,
    base: &TypedArray,
    base_dtype: u32,
    dim: i64,
) -> Result<(Metric, Elements<'static>, Elements<'static>, usize)> {
    Ok((
        metric(metric_code)?,
        Elements::from_typed(queries, queries_dtype)?.into_owned(),
        Elements::from_typed(base, base_dtype)?.into_owned(),
        usize_arg("dim", dim)?,
    ))
}

/// Async twin of [`distance_one_to_many`] (runs on the libuv pool).
#[napi(ts_return_type = "Promise<Float32Array>")]
pub fn distance_one_to_many_async(
    metric_code: u32,
    query: TypedArray,
    query_dtype: u32,
    matrix: TypedArray,
    matrix_dtype: u32,
    dim: i64,
) -> Result<AsyncTask<Job<Float32Array>>> {
    let (m, q, b, dim) = owned_inputs(metric_code, &query, query_dtype, &matrix, matrix_dtype, dim)?;
    Ok(AsyncTask::new(Job::new(move || {
        one_to_many(m, q.view(), b.view(), dim).map(Float32Array::new).map_err(coded)
    })))
}

/// Async twin of [`distance_knn`] (runs on the libuv pool).
#[napi(ts_return_type = "Promise<KnnResult>")]
pub fn distance_knn_async(
    metric_code: u32,
    queries: TypedArray,
    queries_dtype: u32,
    base: TypedArray,
    base_dtype: u32,
    dim: i64,
    k: i64,
) -> Result<AsyncTask<Job<KnnResult>>> {
    let (m, q, b, dim) = owned_inputs(metric_code, &queries, queries_dtype, &base, base_dtype, dim)?;
    let k = usize_arg("k", k)?;
    Ok(AsyncTask::new(Job::new(move || knn(m, q.view(), b.view(), dim, k).map(knn_result).map_err(coded))))
}
