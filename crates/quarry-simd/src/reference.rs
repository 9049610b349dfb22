//! Reference kernels: the simplest correct formulation of every metric,
//! accumulated in `f64` (floats) or `i64` (integers). Every fast path is
//! tested against these. They are public so other crates' tests can use them.

use half::{bf16, f16};

/// Cosine distance from a dot product and the two squared norms.
///
/// Defined as `1 - dot / sqrt(|a|² |b|²)`, clamped below at 0 (rounding can
/// push it slightly negative). Zero vectors: two zero vectors are at distance
/// 0 (identical); a zero vector and a non-zero one are at distance 1
/// (orthogonal), the convention SimSIMD also uses. NaN inputs give NaN.
#[inline]
pub fn cosine_from_parts(dot: f64, norm_a: f64, norm_b: f64) -> f64 {
    if norm_a == 0.0 && norm_b == 0.0 {
        return 0.0;
    }
    if norm_a == 0.0 || norm_b == 0.0 {
        return 1.0;
    }
    let d = 1.0 - dot / (norm_a * norm_b).sqrt();
    // `d < 0.0` is false for NaN, so NaN propagates.
    if d < 0.0 { 0.0 } else { d }
}

fn dot_by<T: Copy>(a: &[T], b: &[T], f: impl Fn(T) -> f64) -> f64 {
    assert_eq!(a.len(), b.len(), "vectors must have the same length");
    a.iter().zip(b).map(|(&x, &y)| f(x) * f(y)).sum()
}

fn l2sq_by<T: Copy>(a: &[T], b: &[T], f: impl Fn(T) -> f64) -> f64 {
    assert_eq!(a.len(), b.len(), "vectors must have the same length");
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = f(x) - f(y);
            d * d
        })
        .sum()
}

fn cosine_by<T: Copy>(a: &[T], b: &[T], f: impl Fn(T) -> f64 + Copy) -> f64 {
    cosine_from_parts(dot_by(a, b, f), dot_by(a, a, f), dot_by(b, b, f))
}

macro_rules! float_reference {
    ($t:ty, $conv:expr, $dot:ident, $l2:ident, $cos:ident) => {
        /// Inner product, accumulated in f64.
        pub fn $dot(a: &[$t], b: &[$t]) -> f64 {
            dot_by(a, b, $conv)
        }
        /// Squared Euclidean distance, accumulated in f64.
        pub fn $l2(a: &[$t], b: &[$t]) -> f64 {
            l2sq_by(a, b, $conv)
        }
        /// Cosine distance (see [`cosine_from_parts`]), accumulated in f64.
        pub fn $cos(a: &[$t], b: &[$t]) -> f64 {
            cosine_by(a, b, $conv)
        }
    };
}

float_reference!(f32, |x: f32| x as f64, f32_dot, f32_l2sq, f32_cosine);
float_reference!(f16, |x: f16| x.to_f64(), f16_dot, f16_l2sq, f16_cosine);
float_reference!(bf16, |x: bf16| x.to_f64(), bf16_dot, bf16_l2sq, bf16_cosine);

/// Inner product of i8 vectors (exact).
pub fn i8_dot(a: &[i8], b: &[i8]) -> i64 {
    dot_by(a, b, |x| x as f64) as i64
}
/// Squared Euclidean distance of i8 vectors (exact).
pub fn i8_l2sq(a: &[i8], b: &[i8]) -> i64 {
    l2sq_by(a, b, |x| x as f64) as i64
}
/// Cosine distance of i8 vectors.
pub fn i8_cosine(a: &[i8], b: &[i8]) -> f64 {
    cosine_by(a, b, |x| x as f64)
}
/// Inner product of u8 vectors (exact).
pub fn u8_dot(a: &[u8], b: &[u8]) -> i64 {
    dot_by(a, b, |x| x as f64) as i64
}
/// Squared Euclidean distance of u8 vectors (exact).
pub fn u8_l2sq(a: &[u8], b: &[u8]) -> i64 {
    l2sq_by(a, b, |x| x as f64) as i64
}
/// Cosine distance of u8 vectors.
pub fn u8_cosine(a: &[u8], b: &[u8]) -> f64 {
    cosine_by(a, b, |x| x as f64)
}

/// Number of differing bits between two packed bit vectors.
pub fn bits_hamming(a: &[u8], b: &[u8]) -> u64 {
    assert_eq!(a.len(), b.len(), "vectors must have the same length");
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones() as u64).sum()
}

/// Jaccard distance `1 - |a ∧ b| / |a ∨ b|` of two packed bit vectors.
/// Two all-zero vectors are at distance 0.
pub fn bits_jaccard(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len(), "vectors must have the same length");
    let inter: u64 = a.iter().zip(b).map(|(x, y)| (x & y).count_ones() as u64).sum();
    let union: u64 = a.iter().zip(b).map(|(x, y)| (x | y).count_ones() as u64).sum();
    jaccard_from_counts(inter, union)
}

/// Jaccard distance from intersection and union bit counts.
#[inline]
pub fn jaccard_from_counts(inter: u64, union: u64) -> f64 {
    if union == 0 { 0.0 } else { 1.0 - inter as f64 / union as f64 }
}
