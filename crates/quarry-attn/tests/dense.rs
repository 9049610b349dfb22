mod common;

use common::{Rng, max_head_err};
use proptest::prelude::*;
use quarry_attn::*;

fn check_dense(shape: AttnShape, opts: AttnOptions, qscale: f32, seed: u64) -> f64 {
    let mut r = Rng(seed);
    let q = r.vec(shape.q_elems(), qscale);
    let k = r.vec(shape.kv_elems(), 1.0);
    let v = r.vec(shape.kv_elems(), 1.0);
    let want = naive_attention(&q, &k, &v, &shape, &opts).unwrap();
    let got = dense_attention(&q, &k, &v, &shape, &opts).unwrap();
    assert!(got.output.iter().all(|x| x.is_finite()));
    let scalar = dense_attention(&q, &k, &v, &shape, &opts.with_kernel(KernelChoice::Scalar)).unwrap();
    let e1 = max_head_err(&got.output, &want, shape.heads);
    let e2 = max_head_err(&scalar.output, &want, shape.heads);
    e1.max(e2)
}

#[test]
fn dense_matches_naive_on_fixed_shapes() {
    for (i, &(h, kvh, ql, kl, d, causal, block)) in [
        (1, 1, 1, 1, 1, true, 64),
        (2, 1, 100, 100, 64, true, 64),
        (4, 2, 129, 129, 64, true, 64),
        (4, 4, 77, 200, 17, false, 32),
        (6, 2, 33, 150, 80, true, 16),
        (2, 2, 257, 257, 128, true, 64),
        (3, 1, 1, 300, 64, true, 64),
        (2, 1, 65, 65, 3, false, 64),
    ]
    .iter()
    .enumerate()
    {
        let shape = AttnShape::new(h, kvh, ql, kl, d);
        let opts = if causal { AttnOptions::causal() } else { AttnOptions::non_causal() }.with_block(block);
        let e = check_dense(shape, opts, 1.0, i as u64 + 1);
        assert!(e < 1e-5, "case {i}: rel err {e}");
    }
}

#[test]
fn dense_is_stable_for_large_logits() {
    // Logits in the hundreds: no overflow, the max-subtracted softmax stays
    // exact to f32 rounding of the logits themselves.
    let shape = AttnShape::prefill(2, 1, 150, 32);
    for causal in [true, false] {
        let opts = if causal { AttnOptions::causal() } else { AttnOptions::non_causal() };
        let e = check_dense(shape, opts, 30.0, 9);
        assert!(e < 1e-4, "rel err {e}");
    }
    // Huge magnitudes (logits ~1e5): still finite.
    let mut r = Rng(4);
    let q = r.vec(shape.q_elems(), 1e3);
    let k = r.vec(shape.kv_elems(), 1e2);
    let v = r.vec(shape.kv_elems(), 1.0);
    let out = dense_attention(&q, &k, &v, &shape, &AttnOptions::causal()).unwrap();
    assert!(out.output.iter().all(|x| x.is_finite()));
    assert!(out.lse.iter().all(|x| x.is_finite()));
}

#[test]
fn f16_kv_matches_naive_on_the_same_f16_values() {
    let shape = AttnShape::new(4, 2, 90, 90, 64);
    let mut r = Rng(5);
    let q = r.vec(shape.q_elems(), 1.0);
    let k: Vec<f16> = r.vec(shape.kv_elems(), 1.0).into_iter().map(f16::from_f32).collect();
    let v: Vec<f16> = r.vec(shape.kv_elems(), 1.0).into_iter().map(f16::from_f32).collect();
    for opts in [AttnOptions::causal(), AttnOptions::non_causal()] {
        let want = naive_attention(&q, &k, &v, &shape, &opts).unwrap();
        let got = dense_attention(&q, &k, &v, &shape, &opts).unwrap();
        assert!(max_head_err(&got.output, &want, 4) < 1e-5);
        // And the f32 path on the widened values gives the same result.
        let kf: Vec<f32> = k.iter().map(|x| x.to_f32()).collect();
        let vf: Vec<f32> = v.iter().map(|x| x.to_f32()).collect();
        let got32 = dense_attention(&q, &kf, &vf, &shape, &opts).unwrap();
        assert!(max_head_err(&got.output, &got32.output, 4) < 1e-6);
    }
}

#[test]
fn lse_matches_reference() {
    let shape = AttnShape::new(2, 1, 70, 100, 16);
    let mut r = Rng(6);
    let q = r.vec(shape.q_elems(), 1.0);
    let k = r.vec(shape.kv_elems(), 1.0);
    let opts = AttnOptions::causal().with_block(32);
    let lse = dense_lse(&q, &k, &shape, &opts).unwrap();
    let scale = 0.25f64;
    for h in 0..2 {
        for i in 0..70 {
            let end = 30 + i + 1;
            let s: Vec<f64> = (0..end)
                .map(|j| (0..16).map(|c| q[(h * 70 + i) * 16 + c] as f64 * k[j * 16 + c] as f64).sum::<f64>() * scale)
                .collect();
            let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let want = m + s.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
            assert!((lse[h * 70 + i] as f64 - want).abs() < 1e-5, "{} vs {want}", lse[h * 70 + i]);
        }
    }
}

#[test]
fn empty_queries_give_empty_output() {
    let shape = AttnShape::new(2, 1, 0, 10, 8);
    let k = vec![0.5f32; 80];
    let out = dense_attention(&[], &k, &k, &shape, &AttnOptions::causal()).unwrap();
    assert!(out.output.is_empty() && out.lse.is_empty());
    let shape = AttnShape::new(2, 1, 0, 0, 8);
    let out = dense_attention(&[], &[] as &[f32], &[] as &[f32], &shape, &AttnOptions::causal()).unwrap();
    assert!(out.output.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]
    #[test]
    fn dense_matches_naive_random(
        kvh in 1usize..3, grp in 1usize..4, ql in 1usize..140, extra in 0usize..60,
        d in prop::sample::select(vec![1usize, 4, 8, 15, 16, 33, 64]),
        causal in any::<bool>(), block in prop::sample::select(vec![16usize, 32, 64]), seed in any::<u64>(),
    ) {
        let shape = AttnShape::new(kvh * grp, kvh, ql, ql + extra, d);
        let opts = if causal { AttnOptions::causal() } else { AttnOptions::non_causal() }.with_block(block);
        let e = check_dense(shape, opts, 1.0, seed);
        prop_assert!(e < 1e-5, "rel err {}", e);
    }
}
