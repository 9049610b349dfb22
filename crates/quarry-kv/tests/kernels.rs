//! SIMD paths against their scalar twins.

use proptest::prelude::*;
use quarry_kv::kernels;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn exp_matches_scalar(x in proptest::collection::vec(-100.0f32..0.5, 0..80)) {
        let mut a = x.clone();
        let mut b = x.clone();
        kernels::exp_inplace(&mut a);
        kernels::exp_scalar(&mut b);
        for (p, q) in a.iter().zip(&b) {
            prop_assert!((p - q).abs() <= 4e-7 * q.abs() + 1e-37, "{} vs {}", p, q);
        }
    }

    #[test]
    fn axpy_matches_scalar(x in proptest::collection::vec(-1e3f32..1e3, 0..70), alpha in -10.0f32..10.0) {
        let mut a = x.iter().map(|v| v * 0.5 + 1.0).collect::<Vec<_>>();
        let mut b = a.clone();
        kernels::axpy(alpha, &x, &mut a);
        kernels::axpy_scalar(alpha, &x, &mut b);
        prop_assert_eq!(a, b);
    }
}

#[test]
fn exp_edge_cases() {
    let mut x = vec![0.0f32, -87.0, -88.0, -1000.0, f32::NEG_INFINITY, 1e-8, -1e-8, 0.5, -0.5, -20.0];
    let mut y = x.clone();
    kernels::exp_inplace(&mut x);
    kernels::exp_scalar(&mut y);
    assert_eq!(x[0], 1.0);
    assert_eq!(x[3], 0.0);
    assert_eq!(x[4], 0.0);
    for (p, q) in x.iter().zip(&y) {
        assert!((p - q).abs() <= 4e-7 * q.abs() + 1e-37, "{p} vs {q}");
    }
}

#[test]
fn f16_widening_matches_scalar() {
    let src: Vec<half::f16> = (0..1000u16).map(|i| half::f16::from_bits(i.wrapping_mul(65))).collect();
    let mut a = vec![0f32; src.len()];
    kernels::f16_to_f32(&src, &mut a);
    for (x, s) in a.iter().zip(&src) {
        let want = s.to_f32();
        assert!(x.to_bits() == want.to_bits() || (x.is_nan() && want.is_nan()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn tiles_match_scalar(seed in any::<u64>(), n in 1usize..70, g in 1usize..8, blocks in 1usize..4) {
        let dp = 32 * blocks;
        let mut s = seed | 1;
        let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0 };
        let q: Vec<f32> = (0..g * dp).map(|_| next()).collect();
        let k: Vec<f32> = (0..n * dp).map(|_| next()).collect();
        let mut a = vec![0f32; g * n];
        let mut b = vec![0f32; g * n];
        kernels::scores_tile(&q, &k, n, dp, g, 0.3, &mut a);
        kernels::scores_tile_scalar(&q, &k, n, dp, g, 0.3, &mut b);
        for (x, y) in a.iter().zip(&b) {
            prop_assert!((x - y).abs() <= 1e-5 * (1.0 + dp as f32));
        }
        let mut acc_a: Vec<f32> = (0..g * dp).map(|_| next()).collect();
        let mut acc_b = acc_a.clone();
        kernels::accum_tile(&a, &k, n, dp, g, &mut acc_a);
        kernels::accum_tile_scalar(&a, &k, n, dp, g, &mut acc_b);
        for (x, y) in acc_a.iter().zip(&acc_b) {
            prop_assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn max_and_exp_shift_sum_match_scalar(x in proptest::collection::vec(-90.0f32..30.0, 0..70)) {
        prop_assert_eq!(kernels::max_of(&x), kernels::max_of_scalar(&x));
        let m = kernels::max_of_scalar(&x);
        if !x.is_empty() {
            let mut a = x.clone();
            let mut b = x.clone();
            let sa = kernels::exp_shift_sum(&mut a, m);
            let sb = kernels::exp_shift_sum_scalar(&mut b, m);
            prop_assert!((sa - sb).abs() <= 1e-6 * sb.abs(), "{} vs {}", sa, sb);
            for (p, q) in a.iter().zip(&b) {
                prop_assert!((p - q).abs() <= 4e-7 * q.abs() + 1e-37, "{} vs {}", p, q);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn lut_matches_scalar(codes in proptest::collection::vec(0u32..300, 0..90), bits in 1u32..9) {
        let table: Vec<f32> = (0..1u32 << bits).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut a: Vec<f32> = codes.iter().map(|&c| c as f32).collect();
        let mut b = a.clone();
        kernels::lut(&mut a, &table);
        kernels::lut_scalar(&mut b, &table);
        prop_assert_eq!(&a, &b);
        for (x, &c) in a.iter().zip(&codes) {
            prop_assert_eq!(*x, table[(c as usize).min(table.len() - 1)]);
        }
    }
}

#[test]
fn lut_clamps_bad_codes() {
    let table = [10.0f32, 20.0, 30.0, 40.0];
    let x = vec![-1.0f32, f32::NAN, 2.9, 3.0, 4.0, 1e10, f32::INFINITY, f32::NEG_INFINITY, 0.5, 1.0, 2.0];
    let (mut a, mut b) = (x.clone(), x.clone());
    kernels::lut(&mut a, &table);
    kernels::lut_scalar(&mut b, &table);
    assert_eq!(a, b);
    assert_eq!(a, vec![10.0, 10.0, 30.0, 40.0, 40.0, 40.0, 40.0, 10.0, 10.0, 20.0, 30.0]);
}
