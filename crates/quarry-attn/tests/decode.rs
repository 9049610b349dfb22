mod common;

use common::{Planted, Rng, masked_naive, max_head_err, planted};
use quarry_attn::*;

fn needle_data(heads: usize, kv_heads: usize, n: usize, d: usize, needle: usize, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut r = Rng(seed);
    let mut k = r.vec(kv_heads * n * d, 0.5);
    let v = r.vec(kv_heads * n * d, 1.0);
    let mut q = r.vec(heads * d, 0.5);
    // The needle: one key far back aligned with every query.
    let dir: Vec<f32> = r.vec(d, 1.0);
    let norm = dir.iter().map(|x| x * x).sum::<f32>().sqrt();
    for g in 0..kv_heads {
        for c in 0..d {
            k[(g * n + needle) * d + c] = dir[c] / norm * 6.0;
        }
    }
    for h in 0..heads {
        for c in 0..d {
            q[h * d + c] += dir[c] / norm * 6.0 * (d as f32).sqrt() / 6.0 * 2.0;
        }
    }
    (q, k, v)
}

#[test]
fn dense_decode_matches_naive_f32_and_f16() {
    let shape = AttnShape::decode(8, 2, 1000, 64);
    let mut r = Rng(1);
    let q = r.vec(shape.q_elems(), 1.0);
    let k = r.vec(shape.kv_elems(), 1.0);
    let v = r.vec(shape.kv_elems(), 1.0);
    let opts = AttnOptions::default();
    let want = naive_attention(&q, &k, &v, &shape, &opts).unwrap();
    for kernel in [KernelChoice::Auto, KernelChoice::Scalar] {
        let got = dense_decode(&q, &k, &v, &shape, &opts.with_kernel(kernel)).unwrap();
        assert!(max_head_err(&got.output, &want, 8) < 1e-5);
    }
    let kh: Vec<f16> = k.iter().map(|&x| f16::from_f32(x)).collect();
    let vh: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
    let want = naive_attention(&q, &kh, &vh, &shape, &opts).unwrap();
    let got = dense_decode(&q, &kh, &vh, &shape, &opts).unwrap();
    assert!(max_head_err(&got.output, &want, 8) < 1e-5);
    // Decode equals the last row of prefill.
    let dense = dense_attention(&q, &k, &v, &shape, &opts).unwrap();
    let dec = dense_decode(&q, &k, &v, &shape, &opts).unwrap();
    assert!(max_head_err(&dense.output, &dec.output, 8) < 1e-5);
}

#[test]
fn sparse_decode_matches_masked_reference_and_recall_is_mass() {
    let shape = AttnShape::decode(4, 2, 500, 32);
    let mut r = Rng(2);
    let q = r.vec(shape.q_elems(), 1.0);
    let k = r.vec(shape.kv_elems(), 1.0);
    let v = r.vec(shape.kv_elems(), 1.0);
    let per_head: Vec<Vec<u32>> = (0..4).map(|h| (0..100 + 50 * h).map(|_| r.below(500) as u32).collect()).collect();
    let sel = Selection::new(per_head, 500).unwrap();
    let opts = AttnOptions::default();
    let want = masked_naive(&q, &k, &v, &shape, &opts, |h, _, j| sel.head(h).binary_search(&(j as u32)).is_ok());
    let got = sparse_decode(&q, &k, &v, &shape, &opts, &sel).unwrap();
    assert!(max_head_err(&got.output, &want, 4) < 1e-5);
    assert!((got.density - sel.keys_touched() as f64 / 2000.0).abs() < 1e-12);
    let rec = decode_recall(&q, &k, &shape, &opts, &sel).unwrap();
    naive_probs(&q, &k, &shape, &opts, |h, _, p| {
        let m: f64 = sel.head(h).iter().map(|&j| p[j as usize]).sum();
        assert!((rec.per_head[h] - m).abs() < 1e-5, "{} vs {m}", rec.per_head[h]);
    })
    .unwrap();
    // Empty selection: zero output, zero recall.
    let empty = Selection::new(vec![Vec::new(); 4], 500).unwrap();
    let out = sparse_decode(&q, &k, &v, &shape, &opts, &empty).unwrap();
    assert!(out.output.iter().all(|&x| x == 0.0));
    assert_eq!(decode_recall(&q, &k, &shape, &opts, &empty).unwrap().mean, 0.0);
}

#[test]
fn selectors_at_full_budget_equal_dense() {
    let shape = AttnShape::decode(4, 2, 333, 16);
    let mut r = Rng(3);
    let q = r.vec(shape.q_elems(), 1.0);
    let k = r.vec(shape.kv_elems(), 1.0);
    let v = r.vec(shape.kv_elems(), 1.0);
    let opts = AttnOptions::default();
    let dense = dense_decode(&q, &k, &v, &shape, &opts).unwrap();
    let quest = QuestIndex::build(&k, &shape, 16).unwrap();
    let squeezed = SqueezedIndex::build(&k, &shape, 8, 5, 7).unwrap();
    let duo = DuoPolicy { retrieval: vec![true, true], sink: 4, window: 16, streaming_recall: vec![] };
    let sels = [
        quest.selector(333, 0, 0).select(&q, &shape).unwrap(),
        quest.selector(10_000, 4, 4).select(&q, &shape).unwrap(),
        squeezed.selector(333, 0, 0).select(&q, &shape).unwrap(),
        TopKSelector { k: (&k).into(), budget: 5000, sink: 0, recent: 0 }.select(&q, &shape).unwrap(),
        StreamingSelector { sink: 1000, recent: 0 }.select(&q, &shape).unwrap(),
        duo.select(&q, &shape).unwrap(),
    ];
    for (i, sel) in sels.iter().enumerate() {
        assert_eq!(sel.density(), 1.0, "selector {i}");
        let out = sparse_decode(&q, &k, &v, &shape, &opts, sel).unwrap();
        assert!(max_head_err(&out.output, &dense.output, 4) < 1e-5, "selector {i}");
    }
}

#[test]
fn quest_topk_and_squeezed_find_a_needle_far_back() {
    let n = 8192;
    let shape = AttnShape::decode(4, 2, n, 64);
    let (q, k, _) = needle_data(4, 2, n, 64, 300, 4);
    let opts = AttnOptions::default();
    // Without the needle the streaming pattern loses most of the mass.
    let stream = StreamingSelector { sink: 4, recent: 64 }.select(&q, &shape).unwrap();
    let base = decode_recall(&q, &k, &shape, &opts, &stream).unwrap().mean;
    assert!(base < 0.5, "streaming recall {base}");

    let quest = QuestIndex::build(&k, &shape, 16).unwrap();
    let sel = quest.selector(256, 4, 64).select(&q, &shape).unwrap();
    assert!((0..4).all(|h| sel.head(h).binary_search(&300).is_ok()));
    assert!(sel.density() < 0.05);
    let r = decode_recall(&q, &k, &shape, &opts, &sel).unwrap();
    assert!(r.mean >= 0.9 && r.min >= 0.85, "quest recall {r:?}");

    let sel = TopKSelector { k: (&k).into(), budget: 128, sink: 4, recent: 64 }.select(&q, &shape).unwrap();
    assert!(decode_recall(&q, &k, &shape, &opts, &sel).unwrap().min >= 0.9);

    let sq = SqueezedIndex::build(&k, &shape, 64, 8, 1).unwrap();
    let sel = sq.selector(400, 4, 64).select(&q, &shape).unwrap();
    assert!(sel.density() < 0.2, "squeezed density {}", sel.density());
    let r = decode_recall(&q, &k, &shape, &opts, &sel).unwrap();
    assert!(r.min >= 0.9, "squeezed recall {r:?}");
}

#[test]
fn squeezed_clustering_is_deterministic() {
    let shape = AttnShape::decode(2, 1, 700, 16);
    let mut r = Rng(5);
    let k = r.vec(shape.kv_elems(), 1.0);
    let a = SqueezedIndex::build(&k, &shape, 16, 6, 42).unwrap();
    let b = SqueezedIndex::build(&k, &shape, 16, 6, 42).unwrap();
    assert_eq!(a, b);
    let total: usize = (0..16).map(|c| a.members(0, c).len()).sum();
    assert_eq!(total, 700);
}

#[test]
fn duo_policy_separates_streaming_and_retrieval_heads() {
    let n = 1024;
    let (q0, k0, v0) = planted(1, n, 64, &Planted { columns: vec![0, 1, 2, 3], slashes: vec![0], strength: 10.0 }, 6);
    let (q1, k1, v1) = planted(1, n, 64, &Planted { columns: vec![0, 500], slashes: vec![0, 400], strength: 10.0 }, 7);
    let (q, k, v) = ([q0, q1].concat(), [k0, k1].concat(), [v0, v1].concat());
    let shape = AttnShape::prefill(2, 2, n, 64);
    let opts = AttnOptions::causal();
    let duo = DuoPolicy::calibrate(&q, &k, &shape, &opts, 64, 128, 0.9).unwrap();
    assert_eq!(duo.retrieval, vec![false, true], "{duo:?}");
    assert_eq!(duo.retrieval_fraction(), 0.5);
    let pats = duo.prefill_patterns(2);
    assert_eq!(pats[1], PrefillPattern::Dense);
    let idx = build_index_per_head(&q, &k, &shape, &opts, &pats).unwrap();
    let rec = prefill_recall(&q, &k, &shape, &opts, &idx).unwrap();
    assert!(rec.per_head[0] >= 0.9 && (rec.per_head[1] - 1.0).abs() < 1e-6);
    let out = sparse_attention(&q, &k, &v, &shape, &opts, &idx).unwrap();
    assert!(out.density < 1.0);
    // Decode: streaming head sees sinks + window only.
    let dshape = AttnShape::decode(2, 2, n, 64);
    let sel = duo.select(&q[n * 64 - 64..n * 64].repeat(2), &dshape).unwrap();
    assert_eq!(sel.head(0).len(), 64 + 128);
    assert_eq!(sel.head(1).len(), n);
}

#[test]
fn tidal_decode_reuses_selected_positions_in_later_layers() {
    let n = 4096;
    let shape = AttnShape::decode(4, 2, n, 64);
    let opts = AttnOptions::default();
    // Three layers whose keys share the needle position (correlated layers).
    let layers: Vec<_> = (0..3).map(|l| needle_data(4, 2, n, 64, 1234, 100 + l)).collect();
    let mut tidal = TidalDecode::new(vec![1], 128, 4, 64);
    let out0 = tidal.attend(0, &layers[0].0, &layers[0].1, &layers[0].2, &shape, &opts).unwrap();
    assert_eq!(out0.density, 1.0, "layers before the first selection layer are dense");
    let out1 = tidal.attend(1, &layers[1].0, &layers[1].1, &layers[1].2, &shape, &opts).unwrap();
    assert!(out1.density < 0.06);
    let sel = tidal.selection().unwrap().clone();
    let out2 = tidal.attend(2, &layers[2].0, &layers[2].1, &layers[2].2, &shape, &opts).unwrap();
    assert_eq!(out2.density, sel.density());
    assert_eq!(tidal.selection(), Some(&sel), "layer 2 reuses layer 1's positions");
    // The reused positions still hold the needle's mass in layer 2.
    let r = decode_recall(&layers[2].0, &layers[2].1, &shape, &opts, &sel).unwrap();
    assert!(r.min >= 0.9, "{r:?}");
    let dense2 = dense_decode(&layers[2].0, &layers[2].1, &layers[2].2, &shape, &opts).unwrap();
    assert!(max_head_err(&out2.output, &dense2.output, 4) < 0.2);
    tidal.reset();
    assert!(tidal.selection().is_none());
}
