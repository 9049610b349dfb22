//! # quarry-simd
//!
//! Distance kernels for retrieval: squared L2, inner product and cosine over
//! `f32`, `f16`, `bf16`, `i8` and `u8` vectors, Hamming and Jaccard over packed
//! bits; one-to-one, one-to-many and exact many-to-many k-NN.
//!
//! * **Dispatch**: the best SIMD level the CPU has (AVX-512, AVX2+FMA, NEON, or
//!   portable scalar) is chosen once at first use ([`dispatch::kernels`]).
//! * **Accumulation**: f16/bf16 are widened to f32 and accumulated in f32; i8
//!   accumulates in i32, u8 in u32, both exact up to [`MAX_INT_DIM`] elements.
//! * **Results**: `l2sq` is the squared distance, `ip` the inner product (a
//!   similarity: larger is nearer), `cosine` the cosine *distance*
//!   `1 - cos` (see [`reference::cosine_from_parts`] for zero vectors),
//!   `hamming` the number of differing bits, `jaccard` the distance
//!   `1 - |a∧b|/|a∨b|`.
//!
//! The functions in this root module check their arguments and return
//! [`SimdError`]s; the raw kernel table in [`dispatch`] assumes valid input.

pub mod dispatch;
pub mod error;
pub mod gemm;
pub mod knn;
pub mod portable;
pub mod reference;
pub mod softmax;
pub mod topk;
mod util;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "aarch64")]
mod arm;

pub use dispatch::{Kernels, SimdLevel, kernels, kernels_for, simd_level, supported_levels};
pub use error::{Result, SimdError};
pub use half::{bf16, f16};
pub use knn::{Knn, knn, knn_bounded};

/// Longest i8/u8 vector the integer kernels accept: their i32/u32
/// accumulators cannot overflow below it.
pub const MAX_INT_DIM: usize = 1 << 16;

/// A distance or similarity function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Squared Euclidean distance.
    L2sq,
    /// Inner product (similarity: larger is nearer).
    InnerProduct,
    /// Cosine distance, `1 - cos(a, b)`.
    Cosine,
    /// Number of differing bits (packed bits only).
    Hamming,
    /// Jaccard distance over set bits (packed bits only).
    Jaccard,
}

impl Metric {
    /// Short name (`l2sq`, `ip`, `cosine`, `hamming`, `jaccard`).
    pub fn name(self) -> &'static str {
        match self {
            Metric::L2sq => "l2sq",
            Metric::InnerProduct => "ip",
            Metric::Cosine => "cosine",
            Metric::Hamming => "hamming",
            Metric::Jaccard => "jaccard",
        }
    }

    /// Parses a metric name; accepts the aliases `l2`, `dot` and `inner`.
    pub fn parse(s: &str) -> Result<Metric> {
        Ok(match s {
            "l2sq" | "l2" | "sqeuclidean" => Metric::L2sq,
            "ip" | "dot" | "inner" => Metric::InnerProduct,
            "cosine" | "cos" => Metric::Cosine,
            "hamming" => Metric::Hamming,
            "jaccard" => Metric::Jaccard,
            other => {
                return Err(SimdError::InvalidArgument(format!(
                    "unknown metric '{other}' (expected l2sq, ip, cosine, hamming or jaccard)"
                )));
            }
        })
    }

    /// Whether a larger value means nearer (true only for the inner product).
    pub fn higher_is_closer(self) -> bool {
        matches!(self, Metric::InnerProduct)
    }
}

/// Element type of a vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    BF16,
    I8,
    U8,
    /// Packed bits, 8 per byte (bit `i` of a vector is bit `i % 8` of byte `i / 8`).
    Bits,
}

impl DType {
    /// Short name (`f32`, `f16`, `bf16`, `i8`, `u8`, `binary`).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::I8 => "i8",
            DType::U8 => "u8",
            DType::Bits => "binary",
        }
    }
}

/// A borrowed, typed run of vector elements (one vector or a row-major matrix).
#[derive(Debug, Clone, Copy)]
pub enum VectorsRef<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    BF16(&'a [bf16]),
    I8(&'a [i8]),
    U8(&'a [u8]),
    /// Packed bits; the slice holds bytes.
    Bits(&'a [u8]),
}

impl VectorsRef<'_> {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            VectorsRef::F32(_) => DType::F32,
            VectorsRef::F16(_) => DType::F16,
            VectorsRef::BF16(_) => DType::BF16,
            VectorsRef::I8(_) => DType::I8,
            VectorsRef::U8(_) => DType::U8,
            VectorsRef::Bits(_) => DType::Bits,
        }
    }

    /// Number of stored elements (bytes for [`VectorsRef::Bits`]).
    pub fn len(&self) -> usize {
        match self {
            VectorsRef::F32(s) => s.len(),
            VectorsRef::F16(s) => s.len(),
            VectorsRef::BF16(s) => s.len(),
            VectorsRef::I8(s) => s.len(),
            VectorsRef::U8(s) | VectorsRef::Bits(s) => s.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Checks that `metric` is defined for `dtype`.
pub fn check_metric(metric: Metric, dtype: DType) -> Result<()> {
    let bit_metric = matches!(metric, Metric::Hamming | Metric::Jaccard);
    if bit_metric != (dtype == DType::Bits) {
        return Err(SimdError::InvalidArgument(format!(
            "metric '{}' is not defined for dtype '{}' (hamming and jaccard take packed bits; l2sq, ip and cosine take numbers)",
            metric.name(),
            dtype.name()
        )));
    }
    Ok(())
}

/// Number of stored elements (bytes for bits) in one vector of `dim`
/// dimensions (bits for bits, which must then be a multiple of 8).
pub fn stored_len(dtype: DType, dim: usize) -> Result<usize> {
    if dim == 0 {
        return Err(SimdError::InvalidArgument("dim must be at least 1".into()));
    }
    match dtype {
        DType::Bits if !dim.is_multiple_of(8) => Err(SimdError::InvalidArgument(format!(
            "binary vectors are packed 8 bits per byte: dim {dim} is not a multiple of 8"
        ))),
        DType::Bits => Ok(dim / 8),
        DType::I8 | DType::U8 if dim > MAX_INT_DIM => Err(SimdError::InvalidArgument(format!(
            "i8/u8 vectors are limited to {MAX_INT_DIM} dimensions, got {dim}"
        ))),
        _ => Ok(dim),
    }
}

fn check_same_dtype(a: &VectorsRef, b: &VectorsRef) -> Result<()> {
    if a.dtype() != b.dtype() {
        return Err(SimdError::DtypeMismatch(format!(
            "operands are {} and {}",
            a.dtype().name(),
            b.dtype().name()
        )));
    }
    Ok(())
}

/// A row kernel: distance between `a` and `b`, widened to f64.
pub(crate) type RowFn<'k, T> = Box<dyn Fn(&[T], &[T]) -> f64 + Sync + 'k>;

/// Calls `$body` with `$k` bound to a `Fn(&[T], &[T]) -> f64` for the metric
/// and the slices of both operands; keeps the per-dtype match in one place.
macro_rules! with_kernel {
    ($kern:expr, $metric:expr, $a:expr, $b:expr, |$x:ident, $y:ident, $k:ident| $body:expr) => {{
        let kt: &$crate::Kernels = $kern;
        match ($a, $b) {
            ($crate::VectorsRef::F32($x), $crate::VectorsRef::F32($y)) => {
                let f = match $metric {
                    $crate::Metric::L2sq => kt.f32_l2sq,
                    $crate::Metric::InnerProduct => kt.f32_dot,
                    _ => kt.f32_cosine,
                };
                let $k: $crate::RowFn<f32> = Box::new(move |p, q| f(p, q) as f64);
                $body
            }
            ($crate::VectorsRef::F16($x), $crate::VectorsRef::F16($y)) => {
                let f = match $metric {
                    $crate::Metric::L2sq => kt.f16_l2sq,
                    $crate::Metric::InnerProduct => kt.f16_dot,
                    _ => kt.f16_cosine,
                };
                let $k: $crate::RowFn<$crate::f16> = Box::new(move |p, q| f(p, q) as f64);
                $body
            }
            ($crate::VectorsRef::BF16($x), $crate::VectorsRef::BF16($y)) => {
                let f = match $metric {
                    $crate::Metric::L2sq => kt.bf16_l2sq,
                    $crate::Metric::InnerProduct => kt.bf16_dot,
                    _ => kt.bf16_cosine,
                };
                let $k: $crate::RowFn<$crate::bf16> = Box::new(move |p, q| f(p, q) as f64);
                $body
            }
            ($crate::VectorsRef::I8($x), $crate::VectorsRef::I8($y)) => {
                let $k: $crate::RowFn<i8> = match $metric {
                    $crate::Metric::L2sq => Box::new(move |p, q| (kt.i8_l2sq)(p, q) as f64),
                    $crate::Metric::InnerProduct => Box::new(move |p, q| (kt.i8_dot)(p, q) as f64),
                    _ => Box::new(move |p, q| (kt.i8_cosine)(p, q) as f64),
                };
                $body
            }
            ($crate::VectorsRef::U8($x), $crate::VectorsRef::U8($y)) => {
                let $k: $crate::RowFn<u8> = match $metric {
                    $crate::Metric::L2sq => Box::new(move |p, q| (kt.u8_l2sq)(p, q) as f64),
                    $crate::Metric::InnerProduct => Box::new(move |p, q| (kt.u8_dot)(p, q) as f64),
                    _ => Box::new(move |p, q| (kt.u8_cosine)(p, q) as f64),
                };
                $body
            }
            ($crate::VectorsRef::Bits($x), $crate::VectorsRef::Bits($y)) => {
                let $k: $crate::RowFn<u8> = match $metric {
                    $crate::Metric::Hamming => Box::new(move |p, q| (kt.bits_hamming)(p, q) as f64),
                    _ => Box::new(move |p, q| (kt.bits_jaccard)(p, q) as f64),
                };
                $body
            }
            _ => unreachable!("dtypes were checked to agree"),
        }
    }};
}
pub(crate) use with_kernel;

/// Distance (or, for [`Metric::InnerProduct`], similarity) between two vectors
/// of the same type and length, with the process's dispatched kernels.
pub fn distance(metric: Metric, a: VectorsRef, b: VectorsRef) -> Result<f64> {
    check_same_dtype(&a, &b)?;
    check_metric(metric, a.dtype())?;
    if a.len() != b.len() {
        return Err(SimdError::DimMismatch(format!("vectors have lengths {} and {}", a.len(), b.len())));
    }
    if a.is_empty() {
        return Err(SimdError::InvalidArgument("vectors are empty".into()));
    }
    let dim = if a.dtype() == DType::Bits { a.len() * 8 } else { a.len() };
    stored_len(a.dtype(), dim)?;
    Ok(with_kernel!(kernels(), metric, a, b, |x, y, k| k(x, y)))
}

/// Validates a row-major matrix of `dim`-dimensional vectors and returns
/// (stored elements per row, number of rows).
pub fn matrix_shape(m: &VectorsRef, dim: usize, what: &str) -> Result<(usize, usize)> {
    let row = stored_len(m.dtype(), dim)?;
    if !m.len().is_multiple_of(row) {
        return Err(SimdError::DimMismatch(format!(
            "{what} has {} elements, which dim {dim} does not divide",
            m.len()
        )));
    }
    Ok((row, m.len() / row))
}

/// Rows per parallel task in [`one_to_many_into`]; small inputs run on the
/// calling thread.
const ONE_TO_MANY_CHUNK_ROWS: usize = 2048;

/// Writes `f(q, row)` for every `row_len`-element row of `m` to `out`,
/// splitting large matrices over the rayon pool. `f` is called directly (one
/// indirect call per row, no boxed closure in between).
fn scan_rows<T: Sync, R: Into<f64>>(f: dispatch::Kernel<T, R>, q: &[T], m: &[T], row_len: usize, out: &mut [f32]) {
    use rayon::prelude::*;
    let scan = |rows: &[T], out: &mut [f32]| {
        for (r, o) in rows.chunks_exact(row_len).zip(out.iter_mut()) {
            *o = f(q, r).into() as f32;
        }
    };
    if m.len() < ONE_TO_MANY_CHUNK_ROWS * 64 || rayon::current_num_threads() == 1 {
        scan(m, out);
    } else {
        m.par_chunks(row_len * ONE_TO_MANY_CHUNK_ROWS)
            .zip(out.par_chunks_mut(ONE_TO_MANY_CHUNK_ROWS))
            .for_each(|(mc, oc)| scan(mc, oc));
    }
}

/// Distances from `query` to every row of the row-major `matrix`, written to
/// `out` (one value per row). Large matrices are split over the rayon pool.
pub fn one_to_many_into(metric: Metric, query: VectorsRef, matrix: VectorsRef, dim: usize, out: &mut [f32]) -> Result<()> {
    check_same_dtype(&query, &matrix)?;
    check_metric(metric, query.dtype())?;
    let (row, rows) = matrix_shape(&matrix, dim, "matrix")?;
    if query.len() != row {
        return Err(SimdError::DimMismatch(format!("query has {} elements, expected {row} for dim {dim}", query.len())));
    }
    if out.len() != rows {
        return Err(SimdError::DimMismatch(format!("output has {} slots for {rows} rows", out.len())));
    }
    let k = kernels();
    let (l2, ip) = (metric == Metric::L2sq, metric == Metric::InnerProduct);
    match (query, matrix) {
        (VectorsRef::F32(q), VectorsRef::F32(m)) => {
            scan_rows(if l2 { k.f32_l2sq } else if ip { k.f32_dot } else { k.f32_cosine }, q, m, row, out)
        }
        (VectorsRef::F16(q), VectorsRef::F16(m)) => {
            scan_rows(if l2 { k.f16_l2sq } else if ip { k.f16_dot } else { k.f16_cosine }, q, m, row, out)
        }
        (VectorsRef::BF16(q), VectorsRef::BF16(m)) => {
            scan_rows(if l2 { k.bf16_l2sq } else if ip { k.bf16_dot } else { k.bf16_cosine }, q, m, row, out)
        }
        (VectorsRef::I8(q), VectorsRef::I8(m)) => match metric {
            Metric::L2sq => scan_rows(k.i8_l2sq, q, m, row, out),
            Metric::InnerProduct => scan_rows(k.i8_dot, q, m, row, out),
            _ => scan_rows(k.i8_cosine, q, m, row, out),
        },
        (VectorsRef::U8(q), VectorsRef::U8(m)) => match metric {
            Metric::L2sq => scan_rows(k.u8_l2sq, q, m, row, out),
            Metric::InnerProduct => scan_rows(k.u8_dot, q, m, row, out),
            _ => scan_rows(k.u8_cosine, q, m, row, out),
        },
        (VectorsRef::Bits(q), VectorsRef::Bits(m)) => match metric {
            Metric::Hamming => scan_rows(k.bits_hamming, q, m, row, out),
            _ => scan_rows(k.bits_jaccard, q, m, row, out),
        },
        _ => unreachable!("dtypes were checked to agree"),
    }
    Ok(())
}

/// Allocating form of [`one_to_many_into`].
pub fn one_to_many(metric: Metric, query: VectorsRef, matrix: VectorsRef, dim: usize) -> Result<Vec<f32>> {
    let (_, rows) = matrix_shape(&matrix, dim, "matrix")?;
    let mut out = vec![0f32; rows];
    one_to_many_into(metric, query, matrix, dim, &mut out)?;
    Ok(out)
}
