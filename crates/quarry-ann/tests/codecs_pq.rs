//! PQ and OPQ: encode against brute force, decode, lookup tables, ADC scans
//! against naive sums and decode-then-exact distances, rotation properties,
//! reconstruction error, errors.

use proptest::prelude::*;
use quarry_ann::kmeans::Rng;
use quarry_ann::opq::Opq;
use quarry_ann::pq::ProductQuantizer;
use quarry_ann::{Control, Metric};

fn gaussian(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n * dim).map(|_| rng.gaussian() as f32).collect()
}

fn l2(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| ((x - y) as f64).powi(2)).sum()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// Sub-codes by exhaustive search in f64.
fn naive_codes(pq: &ProductQuantizer, x: &[f32]) -> Vec<u8> {
    let (ksub, dsub) = (pq.ksub(), pq.dsub());
    (0..pq.m)
        .map(|s| {
            let sub = &x[s * dsub..(s + 1) * dsub];
            (0..ksub)
                .map(|c| (c, l2(sub, &pq.centroids[(s * ksub + c) * dsub..(s * ksub + c + 1) * dsub])))
                .fold((0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a })
                .0 as u8
        })
        .collect()
}

fn unpack(pq: &ProductQuantizer, code: &[u8]) -> Vec<u8> {
    if pq.nbits == 8 {
        return code.to_vec();
    }
    (0..pq.m).map(|s| if s % 2 == 0 { code[s / 2] & 15 } else { code[s / 2] >> 4 }).collect()
}

#[test]
fn encode_matches_brute_force_and_decode_returns_centroids() {
    for (dim, m, nbits) in [(16, 4, 8), (16, 8, 4), (15, 5, 4), (12, 3, 8)] {
        let train = gaussian(1000, dim, 1);
        let pq = ProductQuantizer::train(&train, dim, m, nbits, 3, Control::none()).unwrap();
        assert_eq!(pq.centroids.len(), m * pq.ksub() * pq.dsub());
        assert_eq!(pq.code_size(), if nbits == 8 { m } else { m.div_ceil(2) });
        let data = gaussian(300, dim, 2);
        let mut codes = vec![0u8; 300 * pq.code_size()];
        pq.encode(&data, &mut codes).unwrap();
        let mut unpacked = vec![0u8; 300 * m];
        pq.codes_unpacked(&data, &mut unpacked).unwrap();
        let mut rec = vec![0f32; data.len()];
        pq.decode(&codes, &mut rec).unwrap();
        for i in 0..300 {
            let x = &data[i * dim..(i + 1) * dim];
            let code = &codes[i * pq.code_size()..(i + 1) * pq.code_size()];
            let want = naive_codes(&pq, x);
            assert_eq!(unpack(&pq, code), want, "({dim},{m},{nbits}) row {i}");
            assert_eq!(&unpacked[i * m..(i + 1) * m], &want[..]);
            if nbits == 4 && m % 2 == 1 {
                assert_eq!(code[m / 2] >> 4, 0, "unused high nibble is zero");
            }
            for s in 0..m {
                let c = want[s] as usize;
                let (k, d) = (pq.ksub(), pq.dsub());
                assert_eq!(&rec[i * dim + s * d..i * dim + (s + 1) * d], &pq.centroids[(s * k + c) * d..(s * k + c + 1) * d]);
            }
        }
    }
}

#[test]
fn reconstruction_error_is_bounded_and_improves_with_bits() {
    let dim = 32;
    let data = gaussian(4000, dim, 5);
    let variance: f64 = data.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / 4000.0;
    let e8 = ProductQuantizer::train(&data, dim, 8, 8, 1, Control::none()).unwrap().reconstruction_error(&data).unwrap();
    let e4 = ProductQuantizer::train(&data, dim, 8, 4, 1, Control::none()).unwrap().reconstruction_error(&data).unwrap();
    // 4-d Gaussian sub-spaces: 256 centroids leave well under half the energy, 16 under 70%.
    assert!(e8 < 0.45 * variance, "8-bit {e8} vs variance {variance}");
    assert!(e4 < 0.7 * variance, "4-bit {e4} vs variance {variance}");
    assert!(e8 < e4);
}

#[test]
fn lut_and_adc_match_naive_and_decoded_distances() {
    let mut rng = Rng::new(9);
    for (dim, m, nbits) in [(16, 4, 8), (16, 8, 4), (15, 5, 4), (24, 12, 4), (20, 5, 8)] {
        let train = gaussian(800, dim, 4);
        let pq = ProductQuantizer::train(&train, dim, m, nbits, 3, Control::none()).unwrap();
        let (ksub, dsub) = (pq.ksub(), pq.dsub());
        // Short and long lists (the 4-bit scan switches to byte tables at 512) and odd tails.
        for n in [0usize, 1, 3, 7, 513, 1030] {
            let data = gaussian(n, dim, rng.next_u64());
            let mut codes = vec![0u8; n * pq.code_size()];
            pq.encode(&data, &mut codes).unwrap();
            let mut rec = vec![0f32; data.len()];
            pq.decode(&codes, &mut rec).unwrap();
            let q = gaussian(1, dim, rng.next_u64());
            for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
                let mut lut = vec![0f32; m * ksub];
                pq.lut(&q, metric, &mut lut).unwrap();
                for s in 0..m {
                    for c in 0..ksub {
                        let cent = &pq.centroids[(s * ksub + c) * dsub..(s * ksub + c + 1) * dsub];
                        let sub = &q[s * dsub..(s + 1) * dsub];
                        let want = if metric == Metric::L2 { l2(sub, cent) } else { dot(sub, cent) };
                        assert!((lut[s * ksub + c] as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()));
                    }
                }
                let mut out = vec![f32::NAN; n];
                pq.adc_scan(&codes, &lut, &mut out).unwrap();
                for i in 0..n {
                    let code = unpack(&pq, &codes[i * pq.code_size()..(i + 1) * pq.code_size()]);
                    let naive: f64 = (0..m).map(|s| lut[s * ksub + code[s] as usize] as f64).sum();
                    let x = &rec[i * dim..(i + 1) * dim];
                    let exact = if metric == Metric::L2 { l2(&q, x) } else { dot(&q, x) };
                    let scale = 1.0 + (0..m).map(|s| (lut[s * ksub + code[s] as usize] as f64).abs()).sum::<f64>();
                    assert!((out[i] as f64 - naive).abs() <= 1e-5 * scale, "naive ({dim},{m},{nbits}) n {n} row {i}");
                    assert!((out[i] as f64 - exact).abs() <= 1e-4 * scale, "exact ({dim},{m},{nbits}) n {n} row {i}");
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn adc_scan_is_the_table_sum(m in 1usize..20, eight in any::<bool>(), n in 0usize..700, seed in any::<u64>()) {
        let nbits = if eight { 8 } else { 4 };
        let ksub = 1usize << nbits;
        let mut rng = Rng::new(seed);
        // Any table and any codes: the scan is a pure lookup-and-sum.
        let pq = ProductQuantizer { dim: m, m, nbits, centroids: vec![0.0; m * ksub] };
        let lut: Vec<f32> = (0..m * ksub).map(|_| (rng.gaussian() * 10.0) as f32).collect();
        let unpacked: Vec<u8> = (0..n * m).map(|_| rng.below(ksub as u64) as u8).collect();
        let mut codes = vec![0u8; n * pq.code_size()];
        for i in 0..n {
            let u = &unpacked[i * m..(i + 1) * m];
            if eight {
                codes[i * m..(i + 1) * m].copy_from_slice(u);
            } else {
                quarry_ann::pq::pack_nibbles(u, &mut codes[i * pq.code_size()..(i + 1) * pq.code_size()]);
            }
        }
        let mut out = vec![0f32; n];
        pq.adc_scan(&codes, &lut, &mut out).unwrap();
        for i in 0..n {
            let want: f64 = (0..m).map(|s| lut[s * ksub + unpacked[i * m + s] as usize] as f64).sum();
            let scale: f64 = 1.0 + (0..m).map(|s| (lut[s * ksub + unpacked[i * m + s] as usize] as f64).abs()).sum::<f64>();
            prop_assert!((out[i] as f64 - want).abs() <= 1e-5 * scale);
        }
    }
}

#[test]
fn pq_is_deterministic() {
    let data = gaussian(600, 8, 3);
    let a = ProductQuantizer::train(&data, 8, 4, 4, 11, Control::none()).unwrap();
    let b = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| ProductQuantizer::train(&data, 8, 4, 4, 11, Control::none()).unwrap());
    assert_eq!(a, b);
}

#[test]
fn pq_errors() {
    let data = gaussian(300, 8, 1);
    let code = |r: Result<ProductQuantizer, quarry_ann::AnnError>| r.unwrap_err().code();
    assert_eq!(code(ProductQuantizer::train(&data, 8, 3, 8, 0, Control::none())), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(code(ProductQuantizer::train(&data, 8, 0, 8, 0, Control::none())), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(code(ProductQuantizer::train(&data, 8, 4, 6, 0, Control::none())), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(code(ProductQuantizer::train(&data[..200 * 8], 8, 4, 8, 0, Control::none())), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(code(ProductQuantizer::train(&data[..7], 8, 4, 4, 0, Control::none())), "QUARRY_DIM_MISMATCH");
    let mut nan = data.clone();
    nan[33] = f32::NAN;
    assert_eq!(code(ProductQuantizer::train(&nan, 8, 4, 4, 0, Control::none())), "QUARRY_INVALID_INPUT");
    let cancel = std::sync::atomic::AtomicBool::new(true);
    assert_eq!(code(ProductQuantizer::train(&data, 8, 4, 4, 0, Control::new(None, Some(&cancel)))), "QUARRY_ABORTED");

    let pq = ProductQuantizer::train(&data, 8, 4, 4, 0, Control::none()).unwrap();
    let mut codes = vec![0u8; 10 * pq.code_size()];
    assert_eq!(pq.encode(&data[..80], &mut codes[..19]).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    assert_eq!(pq.encode(&data[..79], &mut codes).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    assert_eq!(pq.encode(&nan[..80], &mut codes).unwrap_err().code(), "QUARRY_INVALID_INPUT");
    pq.encode(&data[..80], &mut codes).unwrap();
    assert_eq!(pq.codes_unpacked(&data[..80], &mut codes).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    let mut out = vec![0f32; 80];
    assert_eq!(pq.decode(&codes[..19], &mut out).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    assert_eq!(pq.decode(&codes, &mut out[..70]).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    let mut lut = vec![0f32; 4 * 16];
    assert_eq!(pq.lut(&data[..7], Metric::L2, &mut lut).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    assert_eq!(pq.lut(&nan[32..40], Metric::L2, &mut lut).unwrap_err().code(), "QUARRY_INVALID_INPUT");
    assert_eq!(pq.lut(&data[..8], Metric::L2, &mut lut[..63]).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    pq.lut(&data[..8], Metric::L2, &mut lut).unwrap();
    let mut dist = vec![0f32; 10];
    assert_eq!(pq.adc_scan(&codes[..19], &lut, &mut dist).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    assert_eq!(pq.adc_scan(&codes, &lut[..60], &mut dist).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    assert_eq!(pq.adc_scan(&codes, &lut, &mut dist[..9]).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    let broken = ProductQuantizer { centroids: vec![0.0; 5], ..pq.clone() };
    assert_eq!(broken.encode(&data[..80], &mut codes).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    let bad_bits = ProductQuantizer { nbits: 5, ..pq.clone() };
    assert_eq!(bad_bits.adc_scan(&codes, &lut, &mut dist).unwrap_err().code(), "QUARRY_INVALID_ARGUMENT");
}

/// Data whose variance is concentrated in a few directions mixed across all
/// dimensions by a random rotation (correlated, unbalanced dimensions).
fn correlated(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    // Random orthogonal-ish mixing: Gram-Schmidt of a Gaussian matrix.
    let mut q: Vec<Vec<f64>> = Vec::new();
    while q.len() < dim {
        let mut v: Vec<f64> = (0..dim).map(|_| rng.gaussian()).collect();
        for u in &q {
            let p: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(u).for_each(|(a, b)| *a -= p * b);
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        v.iter_mut().for_each(|a| *a /= norm);
        q.push(v);
    }
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let z: Vec<f64> = (0..dim).map(|i| rng.gaussian() * 0.6f64.powi(i as i32) * 4.0).collect();
        for row in &q {
            out.push(row.iter().zip(&z).map(|(a, b)| a * b).sum::<f64>() as f32);
        }
    }
    out
}

#[test]
fn opq_rotation_is_orthonormal_and_beats_pq_on_correlated_data() {
    let (dim, m) = (16, 4);
    let data = correlated(3000, dim, 21);
    let (opq, pq) = Opq::train(&data, dim, m, 4, 6, 5, Control::none()).unwrap();
    let r = &opq.rotation;
    for i in 0..dim {
        for j in 0..dim {
            let d: f64 = (0..dim).map(|t| r[i * dim + t] as f64 * r[j * dim + t] as f64).sum();
            assert!((d - if i == j { 1.0 } else { 0.0 }).abs() < 1e-4, "R Rᵀ[{i}][{j}] = {d}");
        }
    }
    let mut y = vec![0f32; data.len()];
    opq.apply(&data, &mut y).unwrap();
    let mut back = vec![0f32; data.len()];
    opq.apply_inverse(&y, &mut back).unwrap();
    for (a, b) in data.iter().zip(&back) {
        assert!((a - b).abs() < 1e-4 * (1.0 + a.abs()));
    }
    // Errors measured in the original space (a rotation preserves L2).
    let opq_err = pq.reconstruction_error(&y).unwrap();
    let plain = ProductQuantizer::train(&data, dim, m, 4, 5, Control::none()).unwrap();
    let pq_err = plain.reconstruction_error(&data).unwrap();
    assert!(opq_err <= pq_err * 0.9, "OPQ {opq_err} vs PQ {pq_err}");
    // Zero iterations: identity and plain PQ.
    let (id, _) = Opq::train(&data, dim, m, 4, 0, 5, Control::none()).unwrap();
    for i in 0..dim {
        for j in 0..dim {
            assert_eq!(id.rotation[i * dim + j], if i == j { 1.0 } else { 0.0 });
        }
    }
}

#[test]
fn opq_errors() {
    let data = correlated(300, 8, 1);
    let err = |r: Result<(Opq, ProductQuantizer), quarry_ann::AnnError>| r.unwrap_err().code();
    assert_eq!(err(Opq::train(&data, 8, 3, 4, 2, 0, Control::none())), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(err(Opq::train(&data, 8, 4, 7, 2, 0, Control::none())), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(err(Opq::train(&data[..80], 8, 4, 4, 2, 0, Control::none())), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(err(Opq::train(&data[..81], 8, 4, 4, 2, 0, Control::none())), "QUARRY_DIM_MISMATCH");
    let cancel = std::sync::atomic::AtomicBool::new(true);
    assert_eq!(err(Opq::train(&data, 8, 4, 4, 2, 0, Control::new(None, Some(&cancel)))), "QUARRY_ABORTED");
    let opq = Opq { dim: 8, rotation: vec![0.0; 63] };
    let mut out = vec![0f32; 8];
    assert_eq!(opq.apply(&data[..8], &mut out).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    let opq = Opq { dim: 8, rotation: vec![0.0; 64] };
    assert_eq!(opq.apply(&data[..8], &mut out[..7]).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    assert_eq!(opq.apply_inverse(&data[..9], &mut out).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
}

#[test]
fn encode_breaks_ties_to_the_smaller_centroid() {
    // Centroids drawn from a handful of values: many exact duplicates and ties.
    let mut rng = Rng::new(12);
    for (m, nbits) in [(4usize, 8u32), (3, 4), (8, 4)] {
        let dim = m * 2;
        let ksub = 1usize << nbits;
        let centroids: Vec<f32> = (0..m * ksub * 2).map(|_| rng.below(3) as f32).collect();
        let pq = ProductQuantizer { dim, m, nbits, centroids };
        let data: Vec<f32> = (0..200 * dim).map(|_| rng.below(5) as f32 * 0.5).collect();
        let mut unpacked = vec![0u8; 200 * m];
        pq.codes_unpacked(&data, &mut unpacked).unwrap();
        for i in 0..200 {
            assert_eq!(&unpacked[i * m..(i + 1) * m], &naive_codes(&pq, &data[i * dim..(i + 1) * dim])[..], "row {i}");
        }
    }
}

#[test]
fn portable_nearest_centroid_matches_dispatched_encode() {
    let mut rng = Rng::new(77);
    for (dim, m, nbits) in [(16usize, 8usize, 8u32), (12, 4, 4), (8, 8, 4)] {
        let data = gaussian(600, dim, rng.next_u64());
        let pq = ProductQuantizer::train(&data, dim, m, nbits, 1, Control::none()).unwrap();
        let (ksub, dsub) = (pq.ksub(), pq.dsub());
        let mut unpacked = vec![0u8; 600 * m];
        pq.codes_unpacked(&data, &mut unpacked).unwrap();
        let mut scratch = vec![0f32; ksub];
        for s in 0..m {
            // Transposed sub-space table, as the encoder builds it.
            let mut t = vec![0f32; dsub * ksub];
            for c in 0..ksub {
                for d in 0..dsub {
                    t[d * ksub + c] = pq.centroids[(s * ksub + c) * dsub + d];
                }
            }
            for i in 0..600 {
                let sub = &data[i * dim + s * dsub..i * dim + (s + 1) * dsub];
                let want = quarry_ann::pq::nearest_centroid_portable(&t, sub, &mut scratch);
                assert_eq!(unpacked[i * m + s] as usize, want);
            }
        }
    }
}
