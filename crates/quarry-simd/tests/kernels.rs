//! Kernel tests: every SIMD level this CPU runs (Scalar included) against
//! the f64/i64 reference, plus the checked API in the crate root.
//!
//! # Tolerance rule
//!
//! Float kernels (f32, and f16/bf16 widened exactly to f32) accumulate in
//! f32; with `n` the vector length and `rel(n) = 1e-5 + n·2⁻²⁴`:
//!
//! * dot:    `|got - ref| <= rel(n) · Σ|aᵢ·bᵢ| + 1e-30`
//! * l2sq:   `|got - ref| <= rel(n) · Σ(aᵢ - bᵢ)² + 1e-30`
//! * cosine: `|got - ref| <= 2·rel(n) + 2⁻²³` (absolute; the distance is in [0, 2])
//!
//! NaN where the reference is NaN, the same infinity where it is infinite
//! (see `common::non_finite` for what NaN and ±inf inputs give, and
//! `common::extremes` for f32 overflow and underflow). Integer and bit
//! kernels are exact (cosine/Jaccard: the reference rounded to f32).
//! The checks themselves live in `tests/common/mod.rs`, shared with the
//! emulated AVX-512 and Neon tests.

mod common;

use common::{Rng, rel};
use half::{bf16, f16};
use quarry_simd::dispatch::level_supported;
use quarry_simd::{
    DType, Kernels, MAX_INT_DIM, Metric, SimdError, SimdLevel, VectorsRef, distance, kernels, kernels_for, one_to_many,
    one_to_many_into, reference, supported_levels,
};

fn tables() -> Vec<&'static Kernels> {
    supported_levels().into_iter().map(|l| kernels_for(l).expect("supported level has a table")).collect()
}

// ------------------------------------------------------------- dispatch --

#[test]
fn dispatch_tables_match_levels() {
    let levels = supported_levels();
    assert_eq!(levels[0], SimdLevel::Scalar);
    for level in [SimdLevel::Scalar, SimdLevel::Neon, SimdLevel::Avx2, SimdLevel::Avx512] {
        let table = kernels_for(level);
        if let Some(t) = table {
            assert_eq!(t.level, level);
            assert!(levels.contains(&level));
        }
        // Every level the CPU runs has a table in this build.
        #[cfg(target_arch = "x86_64")]
        if level != SimdLevel::Neon {
            assert_eq!(table.is_some(), level_supported(level), "{level:?}");
        }
        #[cfg(target_arch = "aarch64")]
        if matches!(level, SimdLevel::Scalar | SimdLevel::Neon) {
            assert_eq!(table.is_some(), level_supported(level), "{level:?}");
        }
    }
    if std::env::var_os("QUARRY_SIMD").is_none() {
        assert_eq!(kernels().level, *levels.last().unwrap());
    }
    eprintln!("levels on this CPU: {levels:?}; dispatched: {:?}", kernels().level);
}

// ------------------------------------------------ kernels vs reference --

#[test]
fn every_dim_1_to_257_at_unaligned_offsets() {
    for k in tables() {
        common::dims_and_offsets(k, 8);
    }
}

#[test]
fn zero_vectors() {
    for k in tables() {
        common::zeros(k);
    }
}

#[test]
fn nan_and_infinities() {
    for k in tables() {
        common::non_finite(k);
    }
}

#[test]
fn extreme_magnitudes() {
    for k in tables() {
        common::extremes(k);
    }
}

#[test]
fn integers_exact_at_max_dim() {
    for k in tables() {
        common::int_max_dim(k);
    }
}

#[test]
fn every_f16_and_bf16_value_widens_exactly() {
    for k in tables() {
        common::every_f16_and_bf16(k);
    }
}

#[test]
fn length_mismatch_panics() {
    for k in tables() {
        common::length_mismatch_panics(k);
    }
}

#[test]
fn proptest_random_lengths_values_offsets() {
    for k in tables() {
        common::proptest_table(k, 40);
    }
}

/// All levels agree with each other closely on long vectors (beyond the
/// 257 of the exhaustive test), where accumulation order matters most.
#[test]
fn long_vectors() {
    let mut rng = Rng::new(7);
    for n in [1000, 4099, 20000] {
        for k in tables() {
            let level = k.level.name();
            common::for_float_sets!(k, |s| {
                let a = s.random(&mut rng, n, 1.0);
                let b = s.random(&mut rng, n, 1.0);
                s.check_at(level, &a, &b, 3, 6, "long");
            });
            let mut bits = |n| (0..n).map(|_| rng.next_u64() as u8).collect::<Vec<u8>>();
            let (a, b) = (bits(n), bits(n));
            common::check_bits_at(k, &a, &b, 5, 1, "long");
        }
    }
}

// ------------------------------------------------------------ checked API --

fn f32s(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.signed() as f32).collect()
}

#[test]
fn distance_matches_reference() {
    let mut rng = Rng::new(8);
    let n = 301;
    let (a, b) = (f32s(&mut rng, n), f32s(&mut rng, n));
    let (ah, bh): (Vec<f16>, Vec<f16>) =
        (a.iter().map(|&x| f16::from_f32(x)).collect(), b.iter().map(|&x| f16::from_f32(x)).collect());
    let (ab, bb): (Vec<bf16>, Vec<bf16>) =
        (a.iter().map(|&x| bf16::from_f32(x)).collect(), b.iter().map(|&x| bf16::from_f32(x)).collect());
    let ai: Vec<i8> = (0..n).map(|_| rng.next_u64() as i8).collect();
    let bi: Vec<i8> = (0..n).map(|_| rng.next_u64() as i8).collect();
    let au: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
    let bu: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
    let sab: f64 = a.iter().zip(&b).map(|(x, y)| (x * y).abs() as f64).sum();
    let tol = |m: Metric| match m {
        Metric::InnerProduct => rel(n) * sab + 1e-30,
        Metric::L2sq => rel(n) * reference::f32_l2sq(&a, &b) + 1e-30,
        _ => 2.0 * rel(n) + 2f64.powi(-23),
    };
    for m in [Metric::L2sq, Metric::InnerProduct, Metric::Cosine] {
        let (rf, rh, rb) = match m {
            Metric::L2sq => {
                (reference::f32_l2sq(&a, &b), reference::f16_l2sq(&ah, &bh), reference::bf16_l2sq(&ab, &bb))
            }
            Metric::InnerProduct => {
                (reference::f32_dot(&a, &b), reference::f16_dot(&ah, &bh), reference::bf16_dot(&ab, &bb))
            }
            _ => (reference::f32_cosine(&a, &b), reference::f16_cosine(&ah, &bh), reference::bf16_cosine(&ab, &bb)),
        };
        let got = distance(m, VectorsRef::F32(&a), VectorsRef::F32(&b)).unwrap();
        assert!((got - rf).abs() <= tol(m), "f32 {m:?}: {got} vs {rf}");
        let got = distance(m, VectorsRef::F16(&ah), VectorsRef::F16(&bh)).unwrap();
        assert!((got - rh).abs() <= 2.0 * tol(m), "f16 {m:?}: {got} vs {rh}");
        let got = distance(m, VectorsRef::BF16(&ab), VectorsRef::BF16(&bb)).unwrap();
        assert!((got - rb).abs() <= 2.0 * tol(m), "bf16 {m:?}: {got} vs {rb}");
        let (ri, ru) = match m {
            Metric::L2sq => (reference::i8_l2sq(&ai, &bi) as f64, reference::u8_l2sq(&au, &bu) as f64),
            Metric::InnerProduct => (reference::i8_dot(&ai, &bi) as f64, reference::u8_dot(&au, &bu) as f64),
            _ => (reference::i8_cosine(&ai, &bi) as f32 as f64, reference::u8_cosine(&au, &bu) as f32 as f64),
        };
        assert_eq!(distance(m, VectorsRef::I8(&ai), VectorsRef::I8(&bi)).unwrap(), ri, "i8 {m:?}");
        assert_eq!(distance(m, VectorsRef::U8(&au), VectorsRef::U8(&bu)).unwrap(), ru, "u8 {m:?}");
    }
    assert_eq!(
        distance(Metric::Hamming, VectorsRef::Bits(&au), VectorsRef::Bits(&bu)).unwrap(),
        reference::bits_hamming(&au, &bu) as f64
    );
    assert_eq!(
        distance(Metric::Jaccard, VectorsRef::Bits(&au), VectorsRef::Bits(&bu)).unwrap(),
        reference::bits_jaccard(&au, &bu) as f32 as f64
    );
}

/// `one_to_many` against the per-row reference, for every dtype, on a small
/// matrix (one thread) and a large one (> 131072 elements: the rayon path).
#[test]
fn one_to_many_matches_reference() {
    let mut rng = Rng::new(9);
    for (dim, rows) in [(97usize, 37usize), (768, 250), (1000, 140)] {
        let q = f32s(&mut rng, dim);
        let m = f32s(&mut rng, dim * rows);
        for metric in [Metric::L2sq, Metric::InnerProduct, Metric::Cosine] {
            let out = one_to_many(metric, VectorsRef::F32(&q), VectorsRef::F32(&m), dim).unwrap();
            assert_eq!(out.len(), rows);
            for (r, &got) in m.chunks_exact(dim).zip(&out) {
                let (want, tol) = match metric {
                    Metric::L2sq => (reference::f32_l2sq(&q, r), rel(dim) * reference::f32_l2sq(&q, r) + 1e-30),
                    Metric::InnerProduct => {
                        let s: f64 = q.iter().zip(r).map(|(x, y)| (x * y).abs() as f64).sum();
                        (reference::f32_dot(&q, r), rel(dim) * s + 1e-6)
                    }
                    _ => (reference::f32_cosine(&q, r), 2.0 * rel(dim) + 2f64.powi(-23)),
                };
                assert!((got as f64 - want).abs() <= tol, "f32 {metric:?} dim {dim}: {got} vs {want}");
            }
            // f16 and bf16 rows.
            let qh: Vec<f16> = q.iter().map(|&x| f16::from_f32(x)).collect();
            let mh: Vec<f16> = m.iter().map(|&x| f16::from_f32(x)).collect();
            let out = one_to_many(metric, VectorsRef::F16(&qh), VectorsRef::F16(&mh), dim).unwrap();
            for (r, &got) in mh.chunks_exact(dim).zip(&out) {
                let want = match metric {
                    Metric::L2sq => reference::f16_l2sq(&qh, r),
                    Metric::InnerProduct => reference::f16_dot(&qh, r),
                    _ => reference::f16_cosine(&qh, r),
                };
                assert!((got as f64 - want).abs() <= 1e-3 * (1.0 + want.abs()), "f16 {metric:?}: {got} vs {want}");
            }
            let qb: Vec<bf16> = q.iter().map(|&x| bf16::from_f32(x)).collect();
            let mb: Vec<bf16> = m.iter().map(|&x| bf16::from_f32(x)).collect();
            let out = one_to_many(metric, VectorsRef::BF16(&qb), VectorsRef::BF16(&mb), dim).unwrap();
            for (r, &got) in mb.chunks_exact(dim).zip(&out) {
                let want = match metric {
                    Metric::L2sq => reference::bf16_l2sq(&qb, r),
                    Metric::InnerProduct => reference::bf16_dot(&qb, r),
                    _ => reference::bf16_cosine(&qb, r),
                };
                assert!((got as f64 - want).abs() <= 1e-3 * (1.0 + want.abs()), "bf16 {metric:?}: {got} vs {want}");
            }
        }
        // Integers: exact, then rounded to the f32 output.
        let qi: Vec<i8> = (0..dim).map(|_| rng.next_u64() as i8).collect();
        let mi: Vec<i8> = (0..dim * rows).map(|_| rng.next_u64() as i8).collect();
        let qu: Vec<u8> = qi.iter().map(|&x| x as u8).collect();
        let mu: Vec<u8> = mi.iter().map(|&x| x as u8).collect();
        for metric in [Metric::L2sq, Metric::InnerProduct, Metric::Cosine] {
            let out = one_to_many(metric, VectorsRef::I8(&qi), VectorsRef::I8(&mi), dim).unwrap();
            for (r, &got) in mi.chunks_exact(dim).zip(&out) {
                let want = match metric {
                    Metric::L2sq => reference::i8_l2sq(&qi, r) as f32,
                    Metric::InnerProduct => reference::i8_dot(&qi, r) as f32,
                    _ => reference::i8_cosine(&qi, r) as f32,
                };
                assert_eq!(got, want, "i8 {metric:?}");
            }
            let out = one_to_many(metric, VectorsRef::U8(&qu), VectorsRef::U8(&mu), dim).unwrap();
            for (r, &got) in mu.chunks_exact(dim).zip(&out) {
                let want = match metric {
                    Metric::L2sq => reference::u8_l2sq(&qu, r) as f32,
                    Metric::InnerProduct => reference::u8_dot(&qu, r) as f32,
                    _ => reference::u8_cosine(&qu, r) as f32,
                };
                assert_eq!(got, want, "u8 {metric:?}");
            }
        }
        // Bits: `dim` bits = dim / 8 bytes per row (dims above are not all
        // multiples of 8: use 8·dim bits, i.e. dim bytes).
        let bits = dim * 8;
        for metric in [Metric::Hamming, Metric::Jaccard] {
            let out = one_to_many(metric, VectorsRef::Bits(&qu), VectorsRef::Bits(&mu), bits).unwrap();
            for (r, &got) in mu.chunks_exact(dim).zip(&out) {
                let want = match metric {
                    Metric::Hamming => reference::bits_hamming(&qu, r) as f32,
                    _ => reference::bits_jaccard(&qu, r) as f32,
                };
                assert_eq!(got, want, "bits {metric:?}");
            }
        }
    }
}

#[test]
fn checked_api_errors() {
    let a = [1f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
    let b = [1f32, 2.0, 3.0];
    let bytes = [1u8; 8];
    let i = [1i8; 8];
    fn is_dim<T>(r: Result<T, SimdError>) -> bool {
        matches!(r, Err(SimdError::DimMismatch(_)))
    }
    fn is_dtype<T>(r: Result<T, SimdError>) -> bool {
        matches!(r, Err(SimdError::DtypeMismatch(_)))
    }
    fn is_invalid<T>(r: Result<T, SimdError>) -> bool {
        matches!(r, Err(SimdError::InvalidArgument(_)))
    }

    // Length mismatch.
    assert!(is_dim(distance(Metric::L2sq, VectorsRef::F32(&a), VectorsRef::F32(&b))));
    assert!(is_dim(distance(Metric::Hamming, VectorsRef::Bits(&bytes), VectorsRef::Bits(&bytes[..3]))));
    // Dtype mismatch.
    assert!(is_dtype(distance(Metric::L2sq, VectorsRef::F32(&a), VectorsRef::I8(&i))));
    assert!(is_dtype(distance(Metric::Hamming, VectorsRef::Bits(&bytes), VectorsRef::U8(&bytes))));
    assert!(is_dtype(one_to_many(Metric::L2sq, VectorsRef::F32(&a), VectorsRef::U8(&bytes), 8)));
    // Metric not defined for the dtype.
    for m in [Metric::Hamming, Metric::Jaccard] {
        assert!(is_invalid(distance(m, VectorsRef::F32(&a), VectorsRef::F32(&a))));
        assert!(is_invalid(distance(m, VectorsRef::U8(&bytes), VectorsRef::U8(&bytes))));
        assert!(is_invalid(one_to_many(m, VectorsRef::I8(&i), VectorsRef::I8(&i), 8)));
    }
    for m in [Metric::L2sq, Metric::InnerProduct, Metric::Cosine] {
        assert!(is_invalid(distance(m, VectorsRef::Bits(&bytes), VectorsRef::Bits(&bytes))));
    }
    // Empty vectors and dim 0.
    assert!(is_invalid(distance(Metric::L2sq, VectorsRef::F32(&[]), VectorsRef::F32(&[]))));
    assert!(is_invalid(one_to_many(Metric::L2sq, VectorsRef::F32(&a[..0]), VectorsRef::F32(&a), 0)));
    assert!(is_invalid(one_to_many(Metric::Hamming, VectorsRef::Bits(&[]), VectorsRef::Bits(&bytes), 0)));
    // Binary dim not a multiple of 8.
    assert!(is_invalid(one_to_many(Metric::Hamming, VectorsRef::Bits(&bytes[..1]), VectorsRef::Bits(&bytes), 12)));
    assert!(is_invalid(quarry_simd::stored_len(DType::Bits, 9)));
    // i8/u8 longer than MAX_INT_DIM.
    let long = vec![1i8; MAX_INT_DIM + 1];
    assert!(is_invalid(distance(Metric::InnerProduct, VectorsRef::I8(&long), VectorsRef::I8(&long))));
    assert!(distance(Metric::InnerProduct, VectorsRef::I8(&long[1..]), VectorsRef::I8(&long[1..])).is_ok());
    // Matrix / query / output shapes.
    assert!(is_dim(one_to_many(Metric::L2sq, VectorsRef::F32(&b), VectorsRef::F32(&a), 4)));
    assert!(is_dim(one_to_many(Metric::L2sq, VectorsRef::F32(&a[..3]), VectorsRef::F32(&a), 3)));
    let mut out = [0f32; 3];
    assert!(is_dim(one_to_many_into(Metric::L2sq, VectorsRef::F32(&a[..4]), VectorsRef::F32(&a), 4, &mut out)));
    let mut out = [0f32; 2];
    one_to_many_into(Metric::L2sq, VectorsRef::F32(&a[..4]), VectorsRef::F32(&a), 4, &mut out).unwrap();
    assert_eq!(out, [0.0, 64.0]);
}
