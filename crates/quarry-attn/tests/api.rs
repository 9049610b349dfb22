//! `sparse` / `recall` by method value: every method at full budget equals
//! dense attention, partial selections equal masked naive attention, and
//! decode methods refuse prefill shapes.

mod common;

use common::{Rng, masked_naive, max_head_err};
use quarry_attn::api::{dense, recall, sparse};
use quarry_attn::*;

fn data(shape: &AttnShape, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut r = Rng(seed);
    (r.vec(shape.q_elems(), 1.0), r.vec(shape.kv_elems(), 1.0), r.vec(shape.kv_elems(), 1.0))
}

#[test]
fn every_method_at_full_budget_is_dense() {
    let prefill = AttnShape::prefill(4, 2, 200, 32);
    let decode = AttnShape::decode(4, 2, 300, 32);
    let opts = AttnOptions::default();
    let full = 1 << 20;
    let prefill_methods = [
        SparseMethod::Prefill(PrefillPattern::AShape { sink: full, window: full }),
        SparseMethod::Prefill(PrefillPattern::VerticalSlash { vertical: full, slash: full, last_q: 64, spread_q: 0, slash_lines: false, segment: 0 }),
        SparseMethod::Prefill(PrefillPattern::BlockTopK { gamma: 1.0, estimate: ScoreEstimate::Pooled }),
        SparseMethod::PerHead(vec![PrefillPattern::Dense; 4]),
        SparseMethod::Duo(DuoPolicy { retrieval: vec![true; 2], sink: 4, window: 16, streaming_recall: vec![] }),
        SparseMethod::Keys(Selection::all(4, 200)),
    ];
    let decode_methods = [
        SparseMethod::Streaming { sink: full, recent: full },
        SparseMethod::Quest { page: 16, budget: full, sink: 0, recent: 0 },
        SparseMethod::Squeezed { clusters: 8, iterations: 4, budget: full, sink: 0, recent: 0, seed: 1 },
        SparseMethod::TopK { budget: full, sink: 0, recent: 0 },
        SparseMethod::Retrieval {
            params: RetrievalParams::default(),
            top_k: full,
            nprobe: Some(full),
            order: ProbeOrder::Bound,
            sink: 0,
            recent: 0,
            group_union: true,
        },
        SparseMethod::Retrieval { params: RetrievalParams::default(), top_k: full, nprobe: Some(full), order: ProbeOrder::Centroid, sink: 0, recent: 0, group_union: false },
        SparseMethod::Duo(DuoPolicy { retrieval: vec![true; 2], sink: 4, window: 16, streaming_recall: vec![] }),
        SparseMethod::Keys(Selection::all(4, 300)),
        SparseMethod::Prefill(PrefillPattern::AShape { sink: full, window: full }),
    ];
    for (shape, methods) in [(prefill, &prefill_methods[..]), (decode, &decode_methods[..])] {
        let (q, k, v) = data(&shape, 7);
        let want = naive_attention(&q, &k, &v, &shape, &opts).unwrap();
        for m in methods {
            let got = sparse(&q, &k, &v, &shape, &opts, m).unwrap();
            assert!(max_head_err(&got.attention.output, &want, shape.heads) < 1e-5, "{m:?}");
            assert!((got.attention.density - 1.0).abs() < 1e-9, "{m:?} density {}", got.attention.density);
            let r = recall(&q, &k, &shape, &opts, m).unwrap();
            assert!(r.min > 0.9999, "{m:?} recall {}", r.min);
        }
    }
}

#[test]
fn partial_selections_equal_masked_naive() {
    let opts = AttnOptions::default();
    // Decode: explicit keys, and a streaming head policy.
    let shape = AttnShape::decode(4, 2, 300, 32);
    let (q, k, v) = data(&shape, 11);
    let keys: Vec<Vec<u32>> = (0..4).map(|h| (0..300u32).filter(|j| (j + h) % 3 == 0).collect()).collect();
    let sel = Selection::new(keys.clone(), 300).unwrap();
    let got = sparse(&q, &k, &v, &shape, &opts, &SparseMethod::Keys(sel)).unwrap();
    let want = masked_naive(&q, &k, &v, &shape, &opts, |h, _, j| keys[h].contains(&(j as u32)));
    assert!(max_head_err(&got.attention.output, &want, 4) < 1e-5);
    assert!((got.attention.density - 400.0 / 1200.0).abs() < 1e-9);
    assert_eq!(got.selection.unwrap().head(1), &keys[1][..]);

    let duo = DuoPolicy { retrieval: vec![true, false], sink: 4, window: 16, streaming_recall: vec![] };
    let got = sparse(&q, &k, &v, &shape, &opts, &SparseMethod::Duo(duo)).unwrap();
    let want = masked_naive(&q, &k, &v, &shape, &opts, |h, _, j| h < 2 || !(4..300 - 16).contains(&j));
    assert!(max_head_err(&got.attention.output, &want, 4) < 1e-5);

    // Prefill: key columns per head, clipped by causality.
    let shape = AttnShape::prefill(2, 1, 150, 16);
    let (q, k, v) = data(&shape, 12);
    let cols: Vec<Vec<u32>> = vec![(0..150).step_by(7).collect(), vec![0, 1, 2, 149]];
    let sel = Selection::new(cols.clone(), 150).unwrap();
    let got = sparse(&q, &k, &v, &shape, &opts, &SparseMethod::Keys(sel)).unwrap();
    let want = masked_naive(&q, &k, &v, &shape, &opts, |h, _, j| cols[h].contains(&(j as u32)));
    // Rows that see no selected key output zeros in both.
    assert!(max_head_err(&got.attention.output, &want, 2) < 1e-5);
}

#[test]
fn decode_methods_reject_prefill_shapes_and_bad_input() {
    let opts = AttnOptions::default();
    let shape = AttnShape::prefill(2, 1, 64, 16);
    let (q, k, v) = data(&shape, 3);
    for m in [
        SparseMethod::Streaming { sink: 4, recent: 4 },
        SparseMethod::Quest { page: 16, budget: 32, sink: 0, recent: 0 },
        SparseMethod::Squeezed { clusters: 4, iterations: 2, budget: 32, sink: 0, recent: 0, seed: 0 },
        SparseMethod::TopK { budget: 8, sink: 0, recent: 0 },
        SparseMethod::Retrieval {
            params: RetrievalParams::default(),
            top_k: 8,
            nprobe: None,
            order: ProbeOrder::Centroid,
            sink: 0,
            recent: 0,
            group_union: true,
        },
    ] {
        let e = sparse(&q, &k, &v, &shape, &opts, &m).unwrap_err();
        assert_eq!(e.code(), "QUARRY_INVALID_ARGUMENT", "{m:?}");
    }
    // Wrong number of per-head patterns, wrong policy width, wrong selection shape.
    let e = sparse(&q, &k, &v, &shape, &opts, &SparseMethod::PerHead(vec![PrefillPattern::Dense])).unwrap_err();
    assert_eq!(e.code(), "QUARRY_DIM_MISMATCH");
    let duo = DuoPolicy { retrieval: vec![true; 3], sink: 1, window: 1, streaming_recall: vec![] };
    assert_eq!(sparse(&q, &k, &v, &shape, &opts, &SparseMethod::Duo(duo)).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    let sel = Selection::all(3, 64);
    assert_eq!(sparse(&q, &k, &v, &shape, &opts, &SparseMethod::Keys(sel)).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    // Quest page 0.
    let dshape = AttnShape::decode(2, 1, 64, 16);
    let (q, k, v) = data(&dshape, 4);
    let m = SparseMethod::Quest { page: 0, budget: 8, sink: 0, recent: 0 };
    assert_eq!(sparse(&q, &k, &v, &dshape, &opts, &m).unwrap_err().code(), "QUARRY_INVALID_ARGUMENT");
}

#[test]
fn dense_routes_decode_and_prefill_to_equal_results() {
    let opts = AttnOptions::default();
    for shape in [AttnShape::decode(6, 2, 333, 32), AttnShape::prefill(6, 2, 130, 32), AttnShape::new(6, 2, 5, 70, 32)] {
        let (q, k, v) = data(&shape, 21);
        let want = naive_attention(&q, &k, &v, &shape, &opts).unwrap();
        let got = dense(&q, &k, &v, &shape, &opts).unwrap();
        assert!(max_head_err(&got.output, &want, shape.heads) < 1e-5, "{shape:?}");
        assert_eq!(got.lse.len(), shape.heads * shape.q_len);
    }
}

#[test]
fn retrieval_by_value_finds_a_planted_needle() {
    // One far key aligned with every query: the default probing must find it.
    let shape = AttnShape::decode(4, 2, 2000, 32);
    let (mut q, mut k, v) = data(&shape, 31);
    let needle = 123;
    for g in 0..2 {
        for c in 0..32 {
            k[(g * 2000 + needle) * 32 + c] = if c % 2 == 0 { 3.0 } else { -3.0 };
        }
    }
    for h in 0..4 {
        for c in 0..32 {
            q[h * 32 + c] = if c % 2 == 0 { 2.0 } else { -2.0 };
        }
    }
    let opts = AttnOptions::default();
    let m = SparseMethod::Retrieval { params: RetrievalParams::default(), top_k: 32, nprobe: None, order: ProbeOrder::Bound, sink: 4, recent: 16, group_union: true };
    let got = sparse(&q, &k, &v, &shape, &opts, &m).unwrap();
    let sel = got.selection.unwrap();
    assert!((0..4).all(|h| sel.head(h).contains(&(needle as u32))));
    assert!(got.attention.density < 0.1);
    assert!(recall(&q, &k, &shape, &opts, &m).unwrap().mean > 0.9);
}
