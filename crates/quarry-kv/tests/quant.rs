//! Each quantizer's decode(encode(x)) error within its analytic bound.

mod common;
use common::{Rng, cfg, keys};
use half::f16;
use proptest::prelude::*;
use quarry_kv::quant::{self, pad32};
use quarry_kv::{KvCache, Method, pack};

fn vecs(n: std::ops::Range<usize>) -> impl Strategy<Value = Vec<f32>> {
    n.prop_flat_map(|len| {
        proptest::collection::vec(
            prop_oneof![
                8 => -10.0f32..10.0,
                1 => -2000.0f32..2000.0,
                1 => Just(0.0f32),
                1 => -1e-3f32..1e-3,
            ],
            len,
        )
    })
}

fn h(b: &[u8]) -> f32 {
    f16::from_le_bytes([b[0], b[1]]).to_f32()
}

fn slack(x: f32) -> f32 {
    1e-6 * x.abs() + 1e-30
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn pack_roundtrip(codes in proptest::collection::vec(any::<u8>(), 1..200), bi in 0usize..4) {
        let bits = pack::SUPPORTED_BITS[bi];
        let codes: Vec<u8> = codes.iter().map(|c| c & ((1u16 << bits) - 1) as u8).collect();
        let mut packed = vec![0u8; pack::row_bytes(bits, codes.len())];
        pack::pack(bits, &codes, &mut packed);
        let n = pad32(codes.len());
        let mut a = vec![0f32; n];
        let mut b = vec![0f32; n];
        pack::unpack_f32(bits, &packed, &mut a);
        pack::unpack_f32_scalar(bits, &packed, &mut b);
        prop_assert_eq!(&a, &b);
        for i in 0..n {
            prop_assert_eq!(a[i], if i < codes.len() { codes[i] as f32 } else { 0.0 });
            prop_assert_eq!(pack::code_at(bits, &packed, i) as f32, a[i]);
        }
    }

    #[test]
    fn f16_bound(x in vecs(1..100)) {
        let mut rec = vec![0u8; 2 * x.len()];
        quant::f16_encode(&x, &mut rec);
        let mut y = vec![0f32; x.len()];
        quant::f16_decode(&rec, &mut y);
        for (a, b) in x.iter().zip(&y) {
            prop_assert!((a - b).abs() <= a.abs() * 2f32.powi(-11) + 2f32.powi(-25));
        }
    }

    #[test]
    fn q8_0_bound(x in vecs(1..150)) {
        let mut rec = vec![0u8; quant::q8_0_bytes(x.len())];
        quant::q8_0_encode(&x, &mut rec);
        let mut y = vec![0f32; pad32(x.len())];
        quant::q8_0_decode(&rec, &mut y);
        for (i, a) in x.iter().enumerate() {
            let dlt = h(&rec[i / 32 * 34..]);
            prop_assert!((a - y[i]).abs() <= dlt * 0.5 * (1.0 + 1e-5) + slack(*a), "{} vs {} (Δ {})", a, y[i], dlt);
        }
    }

    #[test]
    fn q4_0_bound(x in vecs(1..150)) {
        let mut rec = vec![0u8; quant::q4_0_bytes(x.len())];
        quant::q4_0_encode(&x, &mut rec);
        let mut y = vec![0f32; pad32(x.len())];
        quant::q4_0_decode(&rec, &mut y);
        for (i, a) in x.iter().enumerate() {
            let dlt = h(&rec[i / 32 * 18..]).abs();
            prop_assert!((a - y[i]).abs() <= dlt * (1.0 + 1e-5) + slack(*a), "{} vs {} (Δ {})", a, y[i], dlt);
        }
    }

    #[test]
    fn token_asym_bound(x in vecs(1..5), groups in 1usize..5, gs in prop_oneof![Just(8usize), Just(16), Just(32)], bi in 0usize..4) {
        let bits = pack::SUPPORTED_BITS[bi];
        let d = groups * gs;
        let x: Vec<f32> = (0..d).map(|i| x[i % x.len()] * (1.0 + i as f32 * 0.37).sin()).collect();
        let mut rec = vec![0u8; quant::token_asym_bytes(d, gs, bits)];
        quant::token_asym_encode(&x, gs, bits, &mut rec);
        let mut y = vec![0f32; pad32(d)];
        quant::token_asym_decode(&rec, d, gs, bits, &mut y);
        for i in 0..d {
            let s = h(&rec[(i / gs) * 4 + 2..]);
            prop_assert!((x[i] - y[i]).abs() <= s * 0.5 * (1.0 + 1e-5) + slack(x[i]) + 1e-6 * h(&rec[(i / gs) * 4..]).abs());
        }
        prop_assert!(y[d..].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn token_asym_block_equals_rows(seed in any::<u64>(), t in 1usize..40, groups in 1usize..4, gs in prop_oneof![Just(8usize), Just(16), Just(32)], bi in 0usize..4) {
        // The parameters-first block decodes to exactly what `t` separate
        // rows decode to, and takes the same bytes.
        let bits = pack::SUPPORTED_BITS[bi];
        let d = groups * gs;
        let mut rng = Rng::new(seed);
        let x: Vec<f32> = (0..t * d).map(|i| rng.normal() * (1 + i % 7) as f32).collect();
        let bytes = quant::token_asym_block_bytes(t, d, gs, bits);
        prop_assert_eq!(bytes, t * quant::token_asym_bytes(d, gs, bits));
        let mut rec = vec![0u8; bytes];
        quant::token_asym_block_encode(&x, t, gs, bits, &mut rec);
        let dp = pad32(d);
        let mut y = vec![f32::NAN; t * dp];
        quant::token_asym_block_decode(&rec, t, d, gs, bits, &mut y);
        let mut row = vec![0u8; quant::token_asym_bytes(d, gs, bits)];
        let mut want = vec![0f32; dp];
        for r in 0..t {
            quant::token_asym_encode(&x[r * d..(r + 1) * d], gs, bits, &mut row);
            quant::token_asym_decode(&row, d, gs, bits, &mut want);
            prop_assert_eq!(&y[r * dp..(r + 1) * dp], &want[..]);
        }
    }

    #[test]
    fn channel_asym_bound(seed in any::<u64>(), t in 1usize..40, d in 1usize..70, bi in 0usize..4) {
        let bits = pack::SUPPORTED_BITS[bi];
        let mut rng = Rng::new(seed);
        let x: Vec<f32> = (0..t * d).map(|i| rng.normal() * (1 + i % d) as f32).collect();
        let mut rec = vec![0u8; quant::channel_asym_bytes(t, d, bits)];
        quant::channel_asym_encode(&x, t, d, bits, &mut rec);
        let dp = pad32(d);
        let (mut z, mut s) = (vec![0f32; dp], vec![0f32; dp]);
        quant::channel_asym_params(&rec, d, &mut z, &mut s);
        let mut y = vec![f32::NAN; t * dp];
        quant::channel_asym_decode(&rec, t, d, dp, bits, &mut y);
        for r in 0..t {
            for c in 0..d {
                let a = x[r * d + c];
                prop_assert!((a - y[r * dp + c]).abs() <= s[c] * 0.5 * (1.0 + 1e-5) + slack(a) + 1e-6 * z[c].abs());
            }
            prop_assert!(y[r * dp + d..(r + 1) * dp].iter().all(|&v| v == 0.0));
        }
    }

    #[test]
    fn codebook_bound(seed in any::<u64>(), bi in 0usize..4) {
        let bits = pack::SUPPORTED_BITS[bi];
        let mut rng = Rng::new(seed);
        let samples: Vec<f32> = (0..3000).map(|_| (rng.normal() * 0.4).clamp(-1.0, 1.0)).collect();
        let cb = quant::kmeans_1d(&samples, 1 << bits, 30);
        prop_assert!(cb.windows(2).all(|w| w[0] <= w[1]));
        let gap = quant::codebook_max_gap(&cb);
        for &u in samples.iter().chain([-1.0f32, 1.0, 0.0].iter()) {
            let c = quant::nearest_code(&cb, u) as usize;
            prop_assert!((u - cb[c]).abs() <= gap + 1e-6);
            // nearest really is nearest
            prop_assert!(cb.iter().all(|&q| (u - cb[c]).abs() <= (u - q).abs() + 1e-7));
        }
    }

    #[test]
    fn low_rank_never_increases_error(seed in any::<u64>(), t in 1usize..40, d in 1usize..40, r in 0usize..5) {
        let mut rng = Rng::new(seed);
        let e = rng.vec(t * d);
        let (a, b) = quant::low_rank(&e, t, d, r, 8);
        let mut res = 0f64;
        for i in 0..t {
            for j in 0..d {
                let approx: f32 = (0..r).map(|k| a[i * r + k] * b[j * r + k]).sum();
                res += ((e[i * d + j] - approx) as f64).powi(2);
            }
        }
        let tot: f64 = e.iter().map(|x| (*x as f64).powi(2)).sum();
        prop_assert!(res <= tot * (1.0 + 1e-5) + 1e-9);
    }

    #[test]
    fn fwht_is_orthonormal_and_self_inverse(x in vecs(64..65), bsel in 0usize..4) {
        let block = [8usize, 16, 32, 64][bsel];
        let mut y = x.clone();
        quant::fwht(&mut y, block);
        let n0: f64 = x.iter().map(|v| (*v as f64).powi(2)).sum();
        let n1: f64 = y.iter().map(|v| (*v as f64).powi(2)).sum();
        prop_assert!((n0 - n1).abs() <= 1e-5 * n0 + 1e-12);
        quant::fwht(&mut y, block);
        for (a, b) in x.iter().zip(&y) {
            prop_assert!((a - b).abs() <= 1e-5 * (1.0 + a.abs().max(100.0)));
        }
    }
}

#[test]
fn rope_rows_match_per_row_rope() {
    let mut rng = Rng::new(1);
    for style in [quarry_kv::RopeStyle::Half, quarry_kv::RopeStyle::Interleaved] {
        let rope = quarry_kv::Rope { theta: 10000.0, style };
        let (d, n, stride, p0) = (64, 64, 96, 5000);
        let rows = rng.vec(n * stride);
        let mut a = rows.clone();
        rope.apply_rows(&mut a, d, stride, p0, n);
        for r in 0..n {
            let mut b = rows[r * stride..r * stride + d].to_vec();
            rope.apply(&mut b, p0 + r);
            for c in 0..d {
                assert!((a[r * stride + c] - b[c]).abs() < 1e-5, "row {r} ch {c}");
            }
            assert_eq!(&a[r * stride + d..(r + 1) * stride], &rows[r * stride + d..(r + 1) * stride]);
        }
    }
}

/// KVQuant: outliers exact; every other element within
/// `scale·(gap + max(0, |u| - 1))` of the input, `u` its normalized value.
#[test]
fn kvquant_bound() {
    for bits in [2u8, 3, 4, 8] {
        let (kvh, n, d) = (2, 300, 64);
        let mut rng = Rng::new(bits as u64);
        let k = keys(&mut rng, kvh, n, d);
        let v: Vec<f32> = rng.vec(kvh * n * d).iter().enumerate().map(|(i, x)| if i % 97 == 0 { x * 30.0 } else { *x }).collect();
        let mut c = cfg(Method::KvQuant, 1, kvh, d);
        c.bits = bits;
        c.outlier_fraction = 0.03; // 2 per vector
        let mut cache = KvCache::new(c.clone()).unwrap();
        cache.append(0, &k, &v).unwrap();
        let cal = cache.calibration(0).unwrap().unwrap();
        let (dk, dv) = cache.dequantize(0).unwrap();
        let nout = c.outliers_per_vector();
        let (kgap, vgap) = (quant::codebook_max_gap(&cal.key_codebook), quant::codebook_max_gap(&cal.value_codebook));
        for hh in 0..kvh {
            for t in 0..n {
                let o = (hh * n + t) * d;
                let u: Vec<f32> = (0..d).map(|ch| (k[o + ch] - cal.key_zero[hh * d + ch]) / cal.key_scale[hh * d + ch]).collect();
                let out = quant::top_magnitudes(&u, nout);
                for ch in 0..d {
                    let err = (k[o + ch] - dk[o + ch]).abs();
                    if out.contains(&ch) {
                        assert_eq!(err, 0.0);
                    } else {
                        let s = cal.key_scale[hh * d + ch];
                        assert!(err <= s * (kgap + (u[ch].abs() - 1.0).max(0.0)) * 1.001 + 1e-5, "K bits {bits} err {err}");
                    }
                }
                let row = &v[o..o + d];
                let mean = row.iter().sum::<f32>() / d as f32;
                let dev: Vec<f32> = row.iter().map(|x| x - mean).collect();
                let out = quant::top_magnitudes(&dev, nout);
                let inl: Vec<f32> = (0..d).filter(|i| !out.contains(i)).map(|i| row[i]).collect();
                let (mn, mx) = quant::min_max(&inl);
                let z = f16::from_f32(0.5 * (mn + mx)).to_f32();
                let s = f16::from_f32((0.5 * (mx - mn)).max(1e-6)).to_f32();
                for ch in 0..d {
                    let err = (row[ch] - dv[o + ch]).abs();
                    if out.contains(&ch) {
                        assert_eq!(err, 0.0);
                    } else {
                        let uu = (row[ch] - z) / s;
                        assert!(err <= s * (vgap + (uu.abs() - 1.0).max(0.0)) * 1.001 + 1e-5, "V bits {bits} err {err}");
                    }
                }
            }
        }
    }
}

/// GEAR: the low-rank term never makes a chunk worse than the plain
/// uniform+outlier quantization (rank 0), and the per-vector outliers
/// (largest deviation from the row mean) are exact.
#[test]
fn gear_low_rank_only_helps() {
    let (kvh, n, d) = (1, 256, 64);
    let mut rng = Rng::new(9);
    // Correlated error structure: a rank-2 signal plus noise.
    let (a, b) = (rng.vec(n * 2), rng.vec(2 * d));
    let base: Vec<f32> = (0..n * d).map(|i| (0..2).map(|r| a[(i / d) * 2 + r] * b[r * d + i % d]).sum::<f32>() * 3.0).collect();
    let k: Vec<f32> = base.iter().zip(rng.vec(n * d)).map(|(x, e)| x + 0.3 * e).collect();
    let v = k.iter().rev().copied().collect::<Vec<_>>();
    for bits in [2u8, 4] {
        let mut errs = Vec::new();
        for rank in [0usize, 4] {
            let mut c = cfg(Method::Gear, 1, kvh, d);
            c.bits = bits;
            c.rank = rank;
            c.residual = 0;
            let mut cache = KvCache::new(c.clone()).unwrap();
            cache.append(0, &k, &v).unwrap();
            let (dk, dv) = cache.dequantize(0).unwrap();
            let mut e = 0f64;
            for chunk in 0..n / c.group_size {
                let r = chunk * c.group_size * d..(chunk + 1) * c.group_size * d;
                e += k[r.clone()].iter().zip(&dk[r.clone()]).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>();
                e += v[r.clone()].iter().zip(&dv[r]).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>();
            }
            for t in 0..n {
                let row = &k[t * d..(t + 1) * d];
                let mean = row.iter().sum::<f32>() / d as f32;
                let dev: Vec<f32> = row.iter().map(|x| x - mean).collect();
                for ch in quant::top_magnitudes(&dev, c.outliers_per_vector()) {
                    assert_eq!(row[ch], dk[t * d + ch]);
                }
            }
            errs.push(e.sqrt());
        }
        assert!(errs[1] <= errs[0] * 1.001, "bits {bits}: rank 4 {} vs rank 0 {}", errs[1], errs[0]);
        assert!(errs[1] < errs[0] * 0.9, "low rank should capture structured error: {errs:?}");
    }
}

/// RotateKV: the error in the original space equals the error in the
/// rotated space (orthonormal transform), bounded by `Σ (scale_g/2)²`.
#[test]
fn rotate_bound() {
    let (kvh, n, d) = (2, 100, 64);
    let mut rng = Rng::new(3);
    let k = keys(&mut rng, kvh, n, d);
    let v = rng.vec(kvh * n * d);
    for (bits, block) in [(2u8, 64usize), (4, 16), (3, 32)] {
        let mut c = cfg(Method::Rotate, 1, kvh, d);
        c.bits = bits;
        c.rotation_block = block;
        let mut cache = KvCache::new(c.clone()).unwrap();
        cache.append(0, &k, &v).unwrap();
        let cal = cache.calibration(0).unwrap().unwrap();
        let (dk, dv) = cache.dequantize(0).unwrap();
        for (x, y, perm) in [(&k, &dk, &cal.key_permutation), (&v, &dv, &cal.value_permutation)] {
            for hh in 0..kvh {
                for t in 0..n {
                    let o = (hh * n + t) * d;
                    if t < c.sinks {
                        assert_eq!(&x[o..o + d], &y[o..o + d]);
                        continue;
                    }
                    let mut r: Vec<f32> = (0..d).map(|i| x[o + perm[hh * d + i] as usize]).collect();
                    quant::fwht(&mut r, block);
                    let mut bound = 0f64;
                    for g in r.chunks(c.group_size) {
                        let (mn, mx) = quant::min_max(g);
                        let (_, s) = quant::asym_params(mn, mx, bits);
                        bound += c.group_size as f64 * (s.to_f32() as f64 / 2.0).powi(2);
                    }
                    let err: f64 = (0..d).map(|i| ((x[o + i] - y[o + i]) as f64).powi(2)).sum();
                    assert!(err.sqrt() <= bound.sqrt() * 1.001 + 1e-5, "bits {bits} block {block}: {} > {}", err.sqrt(), bound.sqrt());
                }
            }
        }
    }
}

/// KIVI through the cache: residual tokens are the f16 rounding of the
/// input (KIVI keeps its residual in half precision), quantized ones differ.
#[test]
fn kivi_residual_is_f16() {
    let (kvh, d) = (1, 64);
    let mut c = cfg(Method::Kivi, 1, kvh, d);
    c.residual = 20;
    c.group_size = 32;
    let mut cache = KvCache::new(c).unwrap();
    let mut rng = Rng::new(2);
    let k = rng.vec(100 * d);
    let v = rng.vec(100 * d);
    cache.append(0, &k, &v).unwrap();
    let (dk, dv) = cache.dequantize(0).unwrap();
    // 100 tokens, residual 20, groups of 32: 64 quantized, 36 in f16.
    let f16 = |x: &[f32]| x.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect::<Vec<f32>>();
    assert_eq!(&dk[64 * d..], &f16(&k[64 * d..])[..]);
    assert_eq!(&dv[64 * d..], &f16(&v[64 * d..])[..]);
    assert_ne!(&dk[64 * d..], &k[64 * d..]);
    assert_ne!(&dk[..64 * d], &f16(&k[..64 * d])[..]);
    // Exact accounting: 2 groups of 32 tokens (keys: 64 f16 zeros + 64 f16
    // scales + 32 rows of 16 code bytes; values: 32 rows of 2 (zero, scale)
    // pairs + 16 code bytes) and 36 f16 rows of keys and values.
    let quantized = 2 * ((4 * d + 32 * 16) + 32 * (2 * 4 + 16));
    assert_eq!(cache.bytes(), quantized + 36 * d * 2 * 2);
}
