//! The `Scalar` dispatch level: plain Rust loops with several independent
//! accumulators so the compiler can pipeline (and, at the baseline target
//! features, auto-vectorise) them. Used where no SIMD level is available.

use crate::reference::{cosine_from_parts, jaccard_from_counts};
use half::{bf16, f16};

const LANES: usize = 8;

#[inline(always)]
fn fold3<T: Copy>(a: &[T], b: &[T], f: impl Fn(f32, f32) -> [f32; 3], conv: impl Fn(T) -> f32) -> [f32; 3] {
    assert_eq!(a.len(), b.len(), "vectors must have the same length");
    let mut acc = [[0f32; LANES]; 3];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..LANES {
            let r = f(conv(x[i]), conv(y[i]));
            acc[0][i] += r[0];
            acc[1][i] += r[1];
            acc[2][i] += r[2];
        }
    }
    let mut out = [0f32; 3];
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        let r = f(conv(*x), conv(*y));
        out[0] += r[0];
        out[1] += r[1];
        out[2] += r[2];
    }
    for j in 0..3 {
        out[j] += acc[j].iter().sum::<f32>();
    }
    out
}

macro_rules! portable_float {
    ($t:ty, $conv:expr, $dot:ident, $l2:ident, $cos:ident) => {
        pub fn $dot(a: &[$t], b: &[$t]) -> f32 {
            fold3(a, b, |x, y| [x * y, 0.0, 0.0], $conv)[0]
        }
        pub fn $l2(a: &[$t], b: &[$t]) -> f32 {
            fold3(a, b, |x, y| [(x - y) * (x - y), 0.0, 0.0], $conv)[0]
        }
        pub fn $cos(a: &[$t], b: &[$t]) -> f32 {
            let [ab, aa, bb] = fold3(a, b, |x, y| [x * y, x * x, y * y], $conv);
            cosine_from_parts(ab as f64, aa as f64, bb as f64) as f32
        }
    };
}

portable_float!(f32, |x: f32| x, f32_dot, f32_l2sq, f32_cosine);
portable_float!(f16, |x: f16| x.to_f32(), f16_dot, f16_l2sq, f16_cosine);
portable_float!(bf16, |x: bf16| x.to_f32(), bf16_dot, bf16_l2sq, bf16_cosine);

macro_rules! portable_int {
    ($t:ty, $dot:ident, $dot_t:ty, $l2:ident, $cos:ident) => {
        pub fn $dot(a: &[$t], b: &[$t]) -> $dot_t {
            assert_eq!(a.len(), b.len(), "vectors must have the same length");
            a.iter().zip(b).fold(0 as $dot_t, |s, (&x, &y)| s.wrapping_add((x as $dot_t) * (y as $dot_t)))
        }
        pub fn $l2(a: &[$t], b: &[$t]) -> u32 {
            assert_eq!(a.len(), b.len(), "vectors must have the same length");
            a.iter().zip(b).fold(0u32, |s, (&x, &y)| {
                let d = (x as i32 - y as i32).unsigned_abs();
                s.wrapping_add(d * d)
            })
        }
        pub fn $cos(a: &[$t], b: &[$t]) -> f32 {
            assert_eq!(a.len(), b.len(), "vectors must have the same length");
            let (mut ab, mut aa, mut bb) = (0i64, 0i64, 0i64);
            for (&x, &y) in a.iter().zip(b) {
                let (x, y) = (x as i64, y as i64);
                ab += x * y;
                aa += x * x;
                bb += y * y;
            }
            cosine_from_parts(ab as f64, aa as f64, bb as f64) as f32
        }
    };
}

portable_int!(i8, i8_dot, i32, i8_l2sq, i8_cosine);
portable_int!(u8, u8_dot, u32, u8_l2sq, u8_cosine);

pub fn bits_hamming(a: &[u8], b: &[u8]) -> u32 {
    assert_eq!(a.len(), b.len(), "vectors must have the same length");
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    let mut n = 0u32;
    for (x, y) in (&mut ca).zip(&mut cb) {
        let x = u64::from_le_bytes(x.try_into().unwrap());
        let y = u64::from_le_bytes(y.try_into().unwrap());
        n += (x ^ y).count_ones();
    }
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        n += (x ^ y).count_ones();
    }
    n
}

pub fn bits_jaccard(a: &[u8], b: &[u8]) -> f32 {
    assert_eq!(a.len(), b.len(), "vectors must have the same length");
    let (mut inter, mut union) = (0u64, 0u64);
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        let x = u64::from_le_bytes(x.try_into().unwrap());
        let y = u64::from_le_bytes(y.try_into().unwrap());
        inter += (x & y).count_ones() as u64;
        union += (x | y).count_ones() as u64;
    }
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        inter += (x & y).count_ones() as u64;
        union += (x | y).count_ones() as u64;
    }
    jaccard_from_counts(inter, union) as f32
}
