//! SQ8 and binary codes: encode/decode error bounds, asymmetric distances
//! against decode-then-exact, SIMD against portable, Hamming scans, errors.

use proptest::prelude::*;
use quarry_ann::Metric;
use quarry_ann::binary::BinaryCodec;
use quarry_ann::kmeans::Rng;
use quarry_ann::sq8::Sq8;

fn gaussian(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n * dim).map(|i| (rng.gaussian() * (1.0 + (i % dim) as f64 * 0.3) + (i % dim) as f64) as f32).collect()
}

fn l2(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| ((x - y) as f64).powi(2)).sum()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

#[test]
fn sq8_roundtrip_error_is_half_a_step() {
    for dim in [1usize, 7, 8, 16, 33, 100] {
        let data = gaussian(500, dim, dim as u64);
        let sq = Sq8::train(&data, dim).unwrap();
        let mut codes = vec![0u8; data.len()];
        sq.encode(&data, &mut codes).unwrap();
        let mut rec = vec![0f32; data.len()];
        sq.decode(&codes, &mut rec).unwrap();
        for (i, (&x, &y)) in data.iter().zip(&rec).enumerate() {
            let step = sq.vscale[i % dim];
            assert!((x - y).abs() <= step * 0.5 + 1e-5 * (1.0 + x.abs()), "dim {dim} i {i}: {x} vs {y}");
        }
        // Out-of-range values clamp to the end codes.
        let far: Vec<f32> = (0..dim).map(|d| if d % 2 == 0 { 1e6 } else { -1e6 }).collect();
        let mut c = vec![0u8; dim];
        sq.encode(&far, &mut c).unwrap();
        for (d, &code) in c.iter().enumerate() {
            assert_eq!(code, if d % 2 == 0 { 255 } else { 0 });
        }
    }
    // A constant dimension decodes exactly.
    let data = vec![3.5f32, 1.0, 3.5, 2.0, 3.5, 3.0];
    let sq = Sq8::train(&data, 2).unwrap();
    assert_eq!(sq.vscale[0], 0.0);
    let mut codes = vec![0u8; 6];
    sq.encode(&data, &mut codes).unwrap();
    let mut rec = vec![0f32; 6];
    sq.decode(&codes, &mut rec).unwrap();
    assert_eq!(rec[0], 3.5);
    assert_eq!(rec[2], 3.5);
}

fn check_sq8_scan(dim: usize, n: usize, seed: u64) {
    let data = gaussian(n.max(1), dim, seed);
    let sq = Sq8::train(&data, dim).unwrap();
    let mut codes = vec![0u8; n * dim];
    sq.encode(&data[..n * dim], &mut codes).unwrap();
    let mut rec = vec![0f32; n * dim];
    sq.decode(&codes, &mut rec).unwrap();
    let q = gaussian(1, dim, seed ^ 99);
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        let prepared = sq.prepare(&q, metric).unwrap();
        let mut fast = vec![f32::NAN; n];
        sq.scan(&prepared, &codes, &mut fast).unwrap();
        let mut portable = vec![f32::NAN; n];
        sq.scan_portable(&prepared, &codes, &mut portable).unwrap();
        for i in 0..n {
            let x = &rec[i * dim..(i + 1) * dim];
            let (exact, scale) = match metric {
                Metric::L2 => (l2(&q, x), l2(&q, x) + 1.0),
                _ => (dot(&q, x), q.iter().zip(x).map(|(&a, &b)| (a as f64 * b as f64).abs()).sum::<f64>() + 1.0),
            };
            assert!((fast[i] as f64 - exact).abs() <= 2e-5 * scale * (dim as f64).sqrt(), "simd dim {dim} {metric:?} row {i}: {} vs {exact}", fast[i]);
            assert!((portable[i] as f64 - exact).abs() <= 2e-5 * scale * (dim as f64).sqrt(), "portable dim {dim} {metric:?} row {i}");
        }
    }
}

#[test]
fn sq8_scan_matches_decode_then_distance() {
    for dim in [1usize, 5, 8, 15, 16, 17, 24, 100, 128] {
        check_sq8_scan(dim, 67, dim as u64 * 3 + 1);
    }
    check_sq8_scan(9, 0, 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]
    #[test]
    fn sq8_scan_proptest(dim in 1usize..70, n in 0usize..40, seed in any::<u64>()) {
        check_sq8_scan(dim, n, seed);
    }

    #[test]
    fn binary_asym_proptest(dim in 1usize..70, levels in 1u32..5, n in 1usize..30, seed in any::<u64>()) {
        check_binary(dim, levels, n, seed);
    }
}

#[test]
fn sq8_errors() {
    let data = gaussian(10, 4, 1);
    assert_eq!(Sq8::train(&data[..7], 4).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    assert_eq!(Sq8::train(&data, 0).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    assert_eq!(Sq8::train(&[], 4).unwrap_err().code(), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(Sq8::train(&[1.0, f32::NAN], 2).unwrap_err().code(), "QUARRY_INVALID_INPUT");
    assert_eq!(Sq8::train(&[f32::MAX, -f32::MAX], 1).unwrap_err().code(), "QUARRY_INVALID_INPUT");
    let sq = Sq8::train(&data, 4).unwrap();
    let mut codes = vec![0u8; 40];
    assert_eq!(sq.encode(&data, &mut codes[..36]).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    assert_eq!(sq.encode(&[f32::INFINITY; 4], &mut codes[..4]).unwrap_err().code(), "QUARRY_INVALID_INPUT");
    let mut out = [0f32; 40];
    assert_eq!(sq.decode(&codes[..39], &mut out[..39]).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    assert_eq!(sq.prepare(&data[..3], Metric::L2).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    assert_eq!(sq.prepare(&[f32::NAN; 4], Metric::L2).unwrap_err().code(), "QUARRY_INVALID_INPUT");
    let q = sq.prepare(&data[..4], Metric::L2).unwrap();
    assert_eq!(sq.scan(&q, &codes[..39], &mut out[..9]).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    assert_eq!(sq.scan(&q, &codes, &mut out[..9]).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    let other = Sq8::train(&gaussian(10, 5, 1), 5).unwrap();
    assert_eq!(other.scan(&q, &codes[..35], &mut out[..7]).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    let broken = Sq8 { vscale: vec![-1.0; 4], ..sq.clone() };
    assert_eq!(broken.encode(&data, &mut codes).unwrap_err().code(), "QUARRY_INVALID_ARGUMENT");
}

fn check_binary(dim: usize, levels: u32, n: usize, seed: u64) {
    let train = gaussian(200, dim, seed);
    let codec = BinaryCodec::train(&train, dim, levels).unwrap();
    assert_eq!(codec.code_size(), levels as usize * dim.div_ceil(8) + 4);
    let data = gaussian(n, dim, seed ^ 5);
    let mut codes = vec![0u8; n * codec.code_size()];
    codec.encode(&data, &mut codes).unwrap();
    let mut rec = vec![0f32; n * dim];
    codec.decode(&codes, &mut rec).unwrap();
    let q = gaussian(1, dim, seed ^ 7);
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        let mut out = vec![f32::NAN; n];
        codec.asym_scan(&q, metric, &codes, &mut out).unwrap();
        for i in 0..n {
            let x = &rec[i * dim..(i + 1) * dim];
            let exact = if metric == Metric::L2 { l2(&q, x) } else { dot(&q, x) };
            let scale = 1.0 + dot(&q, &q) + dot(x, x);
            assert!((out[i] as f64 - exact).abs() <= 1e-5 * scale * (1.0 + levels as f64), "dim {dim} L{levels} {metric:?} row {i}: {} vs {exact}", out[i]);
        }
    }
    // Level-0 query bits of a vector are the level-0 bits of its code; Hamming scan is a popcount.
    let nb = dim.div_ceil(8);
    let mut ham = vec![0f32; n];
    let qbits = codec.encode_query_bits(&q).unwrap();
    codec.hamming_scan(&qbits, &codes, &mut ham).unwrap();
    for i in 0..n {
        let x = &data[i * dim..(i + 1) * dim];
        let bits = codec.encode_query_bits(x).unwrap();
        assert_eq!(&bits[..], &codes[i * codec.code_size()..i * codec.code_size() + nb]);
        let want: u32 = qbits.iter().zip(&bits).map(|(a, b)| (a ^ b).count_ones()).sum();
        assert_eq!(ham[i], want as f32);
    }
}

#[test]
fn binary_asym_and_hamming_match_references() {
    for dim in [1usize, 7, 8, 9, 64, 100] {
        for levels in [1u32, 2, 3] {
            check_binary(dim, levels, 50, dim as u64 * 31 + levels as u64);
        }
    }
}

#[test]
fn binary_error_shrinks_with_levels_and_level_one_is_signs() {
    let dim = 64;
    let data = gaussian(2000, dim, 3);
    let mut last = f64::INFINITY;
    for levels in 1..=4u32 {
        let codec = BinaryCodec::train(&data, dim, levels).unwrap();
        let mut codes = vec![0u8; 2000 * codec.code_size()];
        codec.encode(&data, &mut codes).unwrap();
        let mut rec = vec![0f32; data.len()];
        codec.decode(&codes, &mut rec).unwrap();
        let err = l2(&data, &rec) / 2000.0;
        assert!(err < last * 0.7, "levels {levels}: {err} vs {last}");
        last = err;
        if levels == 1 {
            for (i, (&x, &y)) in data.iter().zip(&rec).enumerate() {
                let d = i % dim;
                let want = if x >= codec.mean[d] { codec.mean[d] + codec.alphas[d] } else { codec.mean[d] - codec.alphas[d] };
                assert!((y - want).abs() < 1e-5 * (1.0 + want.abs()));
            }
            // A Gaussian sign code keeps 1 − 2/π of the variance as error.
            let var: f64 = data.chunks_exact(dim).map(|x| l2(x, &codec.mean)).sum::<f64>() / 2000.0;
            assert!((err / var - (1.0 - 2.0 / std::f64::consts::PI)).abs() < 0.05, "{}", err / var);
        }
    }
}

#[test]
fn binary_errors() {
    let data = gaussian(20, 8, 1);
    assert_eq!(BinaryCodec::train(&data, 8, 0).unwrap_err().code(), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(BinaryCodec::train(&data, 8, 17).unwrap_err().code(), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(BinaryCodec::train(&[], 8, 1).unwrap_err().code(), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(BinaryCodec::train(&data[..9], 8, 1).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    assert_eq!(BinaryCodec::train(&[f32::NAN; 8], 8, 1).unwrap_err().code(), "QUARRY_INVALID_INPUT");
    let codec = BinaryCodec::train(&data, 8, 2).unwrap();
    let cs = codec.code_size();
    let mut codes = vec![0u8; 20 * cs];
    assert_eq!(codec.encode(&data, &mut codes[..cs]).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    assert_eq!(codec.encode(&[f32::NAN; 8], &mut codes[..cs]).unwrap_err().code(), "QUARRY_INVALID_INPUT");
    codec.encode(&data, &mut codes).unwrap();
    let mut out = vec![0f32; 160];
    assert_eq!(codec.decode(&codes[..cs + 1], &mut out[..8]).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    assert_eq!(codec.decode(&codes, &mut out[..150]).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    assert_eq!(codec.encode_query_bits(&data[..7]).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    assert_eq!(codec.encode_query_bits(&[f32::INFINITY; 8]).unwrap_err().code(), "QUARRY_INVALID_INPUT");
    let mut dist = vec![0f32; 20];
    assert_eq!(codec.hamming_scan(&[0u8; 2], &codes, &mut dist).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    assert_eq!(codec.hamming_scan(&[0u8; 1], &codes, &mut dist[..19]).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    assert_eq!(codec.asym_scan(&data[..8], Metric::L2, &codes[..cs - 1], &mut dist[..1]).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    assert_eq!(codec.asym_scan(&data[..7], Metric::L2, &codes, &mut dist).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    assert_eq!(codec.asym_scan(&[f32::NAN; 8], Metric::L2, &codes, &mut dist).unwrap_err().code(), "QUARRY_INVALID_INPUT");
    let broken = BinaryCodec { alphas: vec![1.0; 8], ..codec.clone() };
    assert_eq!(broken.encode(&data, &mut codes).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
}
