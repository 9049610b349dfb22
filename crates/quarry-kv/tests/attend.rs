//! Fused `attend` against naive attention over `dequantize()`, for every
//! method, with GQA, sinks, residual tails and partial chunks.

mod common;
use common::*;
use quarry_kv::reference::{attention, rel_error};
use quarry_kv::{KvCache, KvConfig, Method, Rope, RopeStyle};

fn check(cfg: KvConfig, q_heads: usize, appends: &[usize], seed: u64) {
    let mut rng = Rng::new(seed);
    let (kvh, d) = (cfg.kv_heads, cfg.head_dim);
    let mut cache = KvCache::new(cfg.clone()).unwrap();
    for (step, &n) in appends.iter().enumerate() {
        let k = keys(&mut rng, kvh, n, d);
        let v = rng.vec(kvh * n * d);
        for layer in 0..cfg.layers {
            cache.append(layer, &k, &v).unwrap();
        }
        let q = rng.vec(q_heads * d);
        for layer in 0..cfg.layers {
            // Reference first: MiKV/H2O attend updates importance (and so
            // later ageing), never the values already stored.
            let (dk, dv) = cache.dequantize(layer).unwrap();
            let keep = cache.retained(layer).unwrap();
            let mut dk = dk;
            if let Some(rope) = cfg.rope {
                let total = cache.tokens(layer).unwrap();
                for h in 0..kvh {
                    for t in 0..total {
                        rope.apply(&mut dk[(h * total + t) * d..(h * total + t + 1) * d], t);
                    }
                }
            }
            let scale = 1.0 / (d as f32).sqrt();
            let want = attention(&q, &dk, &dv, q_heads, kvh, d, scale, Some(&keep));
            let got = cache.attend(layer, &q, None).unwrap();
            let err = rel_error(&got, &want);
            assert!(
                err < 2e-5,
                "{:?} bits {} step {step} layer {layer}: rel err {err}",
                cfg.method,
                cfg.bits
            );
        }
    }
}

#[test]
fn every_method_matches_naive_attention_over_dequantize() {
    for &m in &Method::ALL {
        for &bits in m.supported_bits() {
            let mut c = cfg(m, 2, 2, 64);
            c.bits = bits;
            c.residual = c.residual.min(8);
            c.group_size = 16;
            if m == Method::KvQuant {
                c.rope = Some(Rope { theta: 10000.0, style: RopeStyle::Half });
            }
            check(c, 6, &[70, 1, 1, 33, 5, 300], 7 + bits as u64);
        }
    }
}

#[test]
fn odd_head_dim_pads_correctly() {
    for m in [Method::F32, Method::F16, Method::Q8_0, Method::Q4_0, Method::Kivi, Method::KvQuant, Method::Gear, Method::MiKv, Method::H2o] {
        let mut c = cfg(m, 1, 3, 40);
        c.group_size = if matches!(m, Method::Kivi | Method::Gear | Method::MiKv) { 20 } else { c.group_size };
        c.rank = 2;
        check(c, 9, &[45, 2, 100], 99);
    }
}

#[test]
fn long_cache_splits_into_parallel_jobs() {
    // > JOB_ROWS records per head, so the partial softmax merge is exercised.
    for m in [Method::F32, Method::Q4_0, Method::Kivi] {
        check(cfg(m, 1, 2, 64), 4, &[5000, 3], 3);
    }
}

#[test]
fn interleaved_rope_and_sinks() {
    let mut c = cfg(Method::KvQuant, 1, 1, 32);
    c.rope = Some(Rope { theta: 500000.0, style: RopeStyle::Interleaved });
    c.sinks = 3;
    c.residual = 5;
    check(c, 2, &[2, 40, 1, 1], 5);
    let mut c = cfg(Method::Rotate, 1, 2, 64);
    c.rotation_block = 16;
    check(c, 2, &[2, 40, 1, 1], 6);
}

#[test]
fn gqa_matches_expanded_multi_head_attention() {
    // Attending with g query heads per KV head equals plain MHA over KV heads
    // repeated g times (the f32 method reproduces the input exactly).
    let (kvh, g, d, n) = (3, 3, 64, 200);
    let mut rng = Rng::new(11);
    let k = rng.vec(kvh * n * d);
    let v = rng.vec(kvh * n * d);
    let q = rng.vec(kvh * g * d);
    let mut gqa = KvCache::new(cfg(Method::F32, 1, kvh, d)).unwrap();
    gqa.append(0, &k, &v).unwrap();
    let mut kx = Vec::new();
    let mut vx = Vec::new();
    for h in 0..kvh {
        for _ in 0..g {
            kx.extend_from_slice(&k[h * n * d..(h + 1) * n * d]);
            vx.extend_from_slice(&v[h * n * d..(h + 1) * n * d]);
        }
    }
    let mut mha = KvCache::new(cfg(Method::F32, 1, kvh * g, d)).unwrap();
    mha.append(0, &kx, &vx).unwrap();
    let a = gqa.attend(0, &q, None).unwrap();
    let b = mha.attend(0, &q, None).unwrap();
    assert!(rel_error(&a, &b) < 1e-6);
    let want = attention(&q, &k, &v, kvh * g, kvh, d, 1.0 / 8.0, None);
    assert!(rel_error(&a, &want) < 1e-5);
}

#[test]
fn quantized_attention_error_shrinks_with_bits() {
    // On random data the output norm is small (values average out), so the
    // relative errors are large; what must hold is that every method stays
    // far from noise (~1.0) at 4+ bits and gets better with more bits.
    let (kvh, d, n) = (2, 64, 600);
    let mut rng = Rng::new(21);
    let k = keys(&mut rng, kvh, n, d);
    let v = rng.vec(kvh * n * d);
    let q = rng.vec(2 * kvh * d);
    let exact = attention(&q, &k, &v, 2 * kvh, kvh, d, 0.125, None);
    let err = |m: Method, bits: u8| {
        let mut c = cfg(m, 1, kvh, d);
        c.bits = bits;
        let mut cache = KvCache::new(c).unwrap();
        cache.append(0, &k, &v).unwrap();
        rel_error(&cache.attend(0, &q, None).unwrap(), &exact)
    };
    assert!(err(Method::F16, 16) < 1e-3);
    assert!(err(Method::Q8_0, 8) < 0.03);
    assert!(err(Method::Q4_0, 4) < 0.5);
    for m in [Method::Kivi, Method::KvQuant, Method::Gear, Method::Rotate, Method::MiKv] {
        let (e2, e4, e8) = (err(m, 2), err(m, 4), err(m, 8));
        assert!(e8 < e4 && e4 < e2, "{m:?}: 2-bit {e2}, 4-bit {e4}, 8-bit {e8}");
        assert!(e4 < 0.35 && e8 < 0.05, "{m:?}: 4-bit {e4}, 8-bit {e8}");
    }
}

#[test]
fn h2o_evicts_and_mikv_keeps_low_precision() {
    let (kvh, d) = (1, 32);
    let mut rng = Rng::new(4);
    for m in [Method::H2o, Method::MiKv] {
        let mut c = cfg(m, 1, kvh, d);
        c.residual = 4;
        c.budget = 0.25;
        let mut cache = KvCache::new(c).unwrap();
        for _ in 0..64 {
            let k = rng.vec(d);
            let v = rng.vec(d);
            cache.append(0, &k, &v).unwrap();
            cache.attend(0, &rng.vec(2 * d), None).unwrap();
        }
        let kept = cache.retained(0).unwrap().iter().filter(|&&x| x).count();
        if m == Method::H2o {
            // 60 aged tokens, budget 25% → 15 heavy hitters + 4 recent.
            assert_eq!(kept, 15 + 4);
        } else {
            assert_eq!(kept, 64);
        }
    }
}

/// Methods and widths with a fused AVX2 kernel (`src/fused.rs`), used when
/// `head_dim` is a multiple of 32 and value groups are whole 32-channel
/// blocks; 3-bit KIVI and GEAR (no fused kernel) are here as controls.
const FUSED: [(Method, u8); 18] = [
    (Method::F32, 32),
    (Method::F16, 16),
    (Method::Q8_0, 8),
    (Method::Q4_0, 4),
    (Method::Kivi, 2),
    (Method::Kivi, 3),
    (Method::Kivi, 4),
    (Method::Kivi, 8),
    (Method::Rotate, 2),
    (Method::Rotate, 4),
    (Method::Rotate, 8),
    (Method::Gear, 2),
    (Method::Gear, 3),
    (Method::Gear, 4),
    (Method::Gear, 8),
    (Method::MiKv, 2),
    (Method::MiKv, 4),
    (Method::MiKv, 8),
];

#[test]
fn fused_kernels_match_naive_attention() {
    // Query-head groups of 1..7 (the kernels take 3 query heads at a time),
    // row counts that are not multiples of 4, caches long enough to split
    // into several parallel jobs, and 1, 2 and 4 blocks of 32 channels.
    for (i, &(m, bits)) in FUSED.iter().enumerate() {
        for (j, &(kvh, qh, d, gs)) in [(1, 1, 32, 32), (2, 4, 64, 32), (1, 3, 64, 64), (2, 10, 128, 32), (1, 7, 128, 128)].iter().enumerate() {
            let mut c = cfg(m, 1, kvh, d);
            c.bits = bits;
            c.group_size = gs;
            check(c, qh, &[2048 + 4 * 32 + 37, 1, 3], (100 * i + j) as u64);
        }
    }
    // H2O (f16 rows, evicted ones left out by `check`'s retained mask)
    for (j, &(kvh, qh, d)) in [(1, 1, 32), (2, 6, 64), (1, 7, 128)].iter().enumerate() {
        check(cfg(Method::H2o, 1, kvh, d), qh, &[2048 + 37, 1, 3], 900 + j as u64);
    }
}

#[test]
fn fused_kernels_on_adversarial_values() {
    // Large common offsets (the KIVI key bias folding must not lose them),
    // all-zero rows (zero scales), and a single huge channel.
    let (kvh, d, n) = (1, 64, 300);
    let mut rng = Rng::new(55);
    let base = rng.vec(kvh * n * d);
    let cases: Vec<(Vec<f32>, Vec<f32>)> = vec![
        (base.iter().map(|x| 3000.0 + x).collect(), base.iter().map(|x| -2000.0 + 0.5 * x).collect()),
        (vec![0.0; kvh * n * d], vec![0.0; kvh * n * d]),
        (base.iter().enumerate().map(|(i, x)| if i % d == 9 { 5e4 } else { *x }).collect(), base.clone()),
    ];
    for (ci, (k, v)) in cases.iter().enumerate() {
        for &(m, bits) in &FUSED {
            let mut c = cfg(m, 1, kvh, d);
            c.bits = bits;
            let mut cache = KvCache::new(c).unwrap();
            cache.append(0, k, v).unwrap();
            let q = rng.vec(3 * kvh * d).iter().map(|x| 0.01 * x).collect::<Vec<f32>>();
            let (dk, dv) = cache.dequantize(0).unwrap();
            let want = attention(&q, &dk, &dv, 3 * kvh, kvh, d, 0.125, None);
            let got = cache.attend(0, &q, None).unwrap();
            let err = rel_error(&got, &want);
            let tol = if ci == 1 { 0.0 } else { 2e-5 };
            assert!(err <= tol || (ci == 1 && got.iter().all(|x| *x == 0.0)), "case {ci} {m:?} {bits}: {err}");
        }
    }
}
