//! RetrievalAttention selector: exactness at full budget, exact top-k with
//! bound-ordered probing, recall floors on a planted needle and on clustered
//! keys with out-of-distribution queries, coded kinds, bad input.

mod common;

use common::Rng;
use quarry_attn::*;

fn random(shape: &AttnShape, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut r = Rng(seed);
    (r.vec(shape.q_elems(), 1.0), r.vec(shape.kv_elems(), 1.0), r.vec(shape.kv_elems(), 1.0))
}

/// Brute-force top-`k` positions of query head `h` (union over its group).
fn exact_union(q: &[f32], k: &[f32], shape: &AttnShape, top_k: usize, g: usize) -> Vec<u32> {
    let grp = shape.group();
    let mut out: Vec<u32> = (g * grp..(g + 1) * grp).flat_map(|h| exact_top(q, k, shape, top_k, h)).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Exact top-`top_k` keys of query head `h` by inner product (f64), sorted.
fn exact_top(q: &[f32], k: &[f32], shape: &AttnShape, top_k: usize, h: usize) -> Vec<u32> {
    let d = shape.head_dim;
    let g = h / shape.group();
    let qh = &q[h * d..(h + 1) * d];
    let mut s: Vec<(f64, u32)> = (0..shape.kv_len)
        .map(|j| {
            let kj = &k[(g * shape.kv_len + j) * d..][..d];
            (qh.iter().zip(kj).map(|(&a, &b)| a as f64 * b as f64).sum(), j as u32)
        })
        .collect();
    s.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut out: Vec<u32> = s[..top_k].iter().map(|x| x.1).collect();
    out.sort_unstable();
    out
}

#[test]
fn full_budget_equals_dense_exactly() {
    let shape = AttnShape::decode(6, 2, 1500, 32);
    let (q, k, v) = random(&shape, 11);
    let opts = AttnOptions::default();
    let dense = dense_decode(&q, &k, &v, &shape, &opts).unwrap();
    for kind in [quarry_ann::Kind::Flat, quarry_ann::Kind::IvfFlat, quarry_ann::Kind::IvfSq8] {
        let params = RetrievalParams { kind, nlist: 24, ..RetrievalParams::default() };
        let ix = RetrievalIndex::build(&k, &shape, &params).unwrap();
        for order in [ProbeOrder::Centroid, ProbeOrder::Bound] {
            let sel = ix.selector(1500, 0, 0, ix.nlist()).with_order(order).select(&q, &shape).unwrap();
            assert_eq!(sel.density(), 1.0, "{kind:?} {order:?}");
            let out = sparse_decode(&q, &k, &v, &shape, &opts, &sel).unwrap();
            assert_eq!(out.output, dense.output, "{kind:?} {order:?}: not bit-identical to dense");
            assert_eq!(out.lse, dense.lse);
        }
    }
    // Sinks + recent covering everything also equal dense.
    let ix = RetrievalIndex::build(&k, &shape, &RetrievalParams::default()).unwrap();
    let sel = ix.selector(1, 1000, 1000, 1).select(&q, &shape).unwrap();
    assert_eq!(sparse_decode(&q, &k, &v, &shape, &opts, &sel).unwrap().output, dense.output);
}

#[test]
fn bound_order_with_all_lists_is_exact_top_k_and_stops_early() {
    let shape = AttnShape::decode(4, 2, 3000, 16);
    let (q, k, _) = random(&shape, 12);
    let ix = RetrievalIndex::build(&k, &shape, &RetrievalParams { nlist: 40, ..RetrievalParams::default() }).unwrap();
    for top_k in [1, 7, 50] {
        let (sel, stats) = ix.selector(top_k, 0, 0, ix.nlist()).with_order(ProbeOrder::Bound).select_with_stats(&q, &shape).unwrap();
        for g in 0..2 {
            let want = exact_union(&q, &k, &shape, top_k, g);
            for h in 2 * g..2 * g + 2 {
                assert_eq!(sel.head(h), &want[..], "top_k {top_k} head {h}");
            }
        }
        assert!(stats.probed_lists <= 4 * 40);
        assert_eq!(stats.centroids_scored, 4 * 40);
        // Without the group union each query head attends to its own exact top keys.
        let own = ix.selector(top_k, 0, 0, ix.nlist()).with_order(ProbeOrder::Bound).with_group_union(false).select(&q, &shape).unwrap();
        for h in 0..4 {
            assert_eq!(own.head(h), &exact_top(&q, &k, &shape, top_k, h)[..], "per-head top_k {top_k} head {h}");
        }
        assert!(own.keys_touched() <= sel.keys_touched());
    }
    // Exact flat index: same answer, every key scanned.
    let flat = RetrievalIndex::build(&k, &shape, &RetrievalParams { kind: quarry_ann::Kind::Flat, ..RetrievalParams::default() }).unwrap();
    let (sel, stats) = flat.selector(9, 0, 0, 1).select_with_stats(&q, &shape).unwrap();
    assert_eq!(stats.scanned_keys, 4 * 3000);
    assert_eq!(sel.head(0), &exact_union(&q, &k, &shape, 9, 0)[..]);
}

/// Keys around 64 cluster centres; each query head aims at one cluster plus
/// a large shared offset the keys do not have (queries out of the keys'
/// distribution, as in RetrievalAttention).
fn clustered(shape: &AttnShape, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut r = Rng(seed);
    let (n, d) = (shape.kv_len, shape.head_dim);
    let centres = r.vec(shape.kv_heads * 64 * d, 1.0);
    let mut k = vec![0.0f32; shape.kv_elems()];
    for g in 0..shape.kv_heads {
        for j in 0..n {
            let c = r.below(64);
            for x in 0..d {
                k[(g * n + j) * d + x] = centres[(g * 64 + c) * d + x] + 0.4 * r.normal();
            }
        }
    }
    let offset = r.vec(d, 3.0);
    let mut q = vec![0.0f32; shape.q_elems()];
    for h in 0..shape.heads {
        let g = h / shape.group();
        let c = r.below(64);
        for x in 0..d {
            q[h * d + x] = 3.0 * centres[(g * 64 + c) * d + x] + offset[x] + 0.3 * r.normal();
        }
    }
    let v = r.vec(shape.kv_elems(), 1.0);
    (q, k, v)
}

#[test]
fn recall_floor_on_clustered_keys_with_ood_queries() {
    let shape = AttnShape::decode(6, 2, 8192, 32);
    let (q, k, v) = clustered(&shape, 13);
    let opts = AttnOptions::default();
    let dense = dense_decode(&q, &k, &v, &shape, &opts).unwrap();
    let ix = RetrievalIndex::build(&k, &shape, &RetrievalParams::default()).unwrap();
    assert_eq!(ix.nlist(), 128);
    let top_k = 82; // 1% per query head
    let oracle = TopKSelector { k: (&k).into(), budget: top_k, sink: 4, recent: 64 }.select(&q, &shape).unwrap();
    let oracle_recall = decode_recall(&q, &k, &shape, &opts, &oracle).unwrap().mean;
    let (sel, stats) = ix.selector(top_k, 4, 64, 13).select_with_stats(&q, &shape).unwrap();
    let rec = decode_recall(&q, &k, &shape, &opts, &sel).unwrap();
    let out = sparse_decode(&q, &k, &v, &shape, &opts, &sel).unwrap();
    let err = relative_error(&out.output, &dense.output);
    assert!(sel.density() <= 0.05, "attended {}", sel.density());
    assert!(stats.scanned_keys < 6 * 8192 / 5, "scanned {}", stats.scanned_keys);
    assert!(rec.mean >= 0.9 && rec.mean >= oracle_recall - 0.03, "recall {} (oracle {oracle_recall})", rec.mean);
    assert!(err < 0.3, "output error {err}");
    // Probing a single list finds less than probing 10%.
    let one = ix.selector(top_k, 4, 64, 1).select(&q, &shape).unwrap();
    assert!(decode_recall(&q, &k, &shape, &opts, &one).unwrap().mean <= rec.mean + 1e-9);
}

#[test]
fn finds_a_planted_needle_far_back() {
    let (n, d) = (16384, 64);
    let shape = AttnShape::decode(4, 2, n, d);
    let mut r = Rng(14);
    let mut k = r.vec(shape.kv_elems(), 0.5);
    let mut q = r.vec(shape.q_elems(), 0.5);
    let dir = r.vec(d, 1.0);
    let norm = dir.iter().map(|x| x * x).sum::<f32>().sqrt();
    let needle = 123usize;
    for g in 0..2 {
        for c in 0..d {
            k[(g * n + needle) * d + c] = dir[c] / norm * 20.0;
        }
    }
    for h in 0..4 {
        for c in 0..d {
            q[h * d + c] += dir[c] / norm * 5.0;
        }
    }
    let opts = AttnOptions::default();
    let ix = RetrievalIndex::build(&k, &shape, &RetrievalParams::default()).unwrap();
    let stream = StreamingSelector { sink: 4, recent: 64 }.select(&q, &shape).unwrap();
    assert!(decode_recall(&q, &k, &shape, &opts, &stream).unwrap().mean < 0.1);
    let oracle = TopKSelector { k: (&k).into(), budget: 16, sink: 4, recent: 64 }.select(&q, &shape).unwrap();
    let oracle = decode_recall(&q, &k, &shape, &opts, &oracle).unwrap();
    assert!(oracle.min > 0.7, "{oracle:?}");
    for order in [ProbeOrder::Centroid, ProbeOrder::Bound, ProbeOrder::Weighted(0.5)] {
        let sel = ix.selector(16, 4, 64, 8).with_order(order).select(&q, &shape).unwrap();
        assert!((0..4).all(|h| sel.head(h).binary_search(&(needle as u32)).is_ok()), "{order:?}");
        assert!(sel.density() < 0.01);
        let rec = decode_recall(&q, &k, &shape, &opts, &sel).unwrap();
        assert!(rec.min >= 0.99 * oracle.min, "{order:?}: recall {rec:?}");
    }
    // Coded kinds (SQ8, PQ) with re-ranking find it too.
    for kind in [quarry_ann::Kind::IvfSq8, quarry_ann::Kind::IvfPq] {
        let params = RetrievalParams { kind, pq_m: 16, ..RetrievalParams::default() };
        let ix = RetrievalIndex::build(&k, &shape, &params).unwrap();
        let (sel, stats) = ix.selector(16, 4, 64, 8).select_with_stats(&q, &shape).unwrap();
        assert!((0..4).all(|h| sel.head(h).binary_search(&(needle as u32)).is_ok()), "{kind:?}");
        assert!(stats.scanned_keys > 0 && stats.scanned_keys < 4 * n);
    }
}

#[test]
fn f16_keys_and_small_caches() {
    let shape = AttnShape::decode(2, 1, 5, 8);
    let (q, k, v) = random(&shape, 15);
    let kh: Vec<f16> = k.iter().map(|&x| f16::from_f32(x)).collect();
    let ix = RetrievalIndex::build(&kh, &shape, &RetrievalParams { nlist: 100, ..RetrievalParams::default() }).unwrap();
    assert_eq!(ix.nlist(), 5); // clamped to kv_len
    let sel = ix.selector(100, 0, 0, 100).select(&q, &shape).unwrap();
    assert_eq!(sel.density(), 1.0);
    let opts = AttnOptions::default();
    let out = sparse_decode(&q, &kh, &v, &shape, &opts, &sel).unwrap();
    assert_eq!(out.output, dense_decode(&q, &kh, &v, &shape, &opts).unwrap().output);
    // top_k 0: only sinks and recent keys.
    let sel = ix.selector(0, 1, 1, 3).select(&q, &shape).unwrap();
    assert_eq!(sel.head(0), &[0, 4]);
}

#[test]
fn bad_input_is_an_error() {
    let shape = AttnShape::decode(4, 2, 100, 16);
    let (q, k, _) = random(&shape, 16);
    let p = RetrievalParams::default();
    let code = |r: Result<RetrievalIndex>| r.unwrap_err().code();
    assert_eq!(code(RetrievalIndex::build(&k[..10], &shape, &p)), "QUARRY_DIM_MISMATCH");
    assert_eq!(code(RetrievalIndex::build(&k, &AttnShape::decode(3, 2, 100, 16), &p)), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(code(RetrievalIndex::build(&[] as &[f32], &AttnShape::decode(4, 2, 0, 16), &p)), "QUARRY_INVALID_ARGUMENT");
    let mut bad = k.clone();
    bad[77] = f32::NAN;
    assert_eq!(code(RetrievalIndex::build(&bad, &shape, &p)), "QUARRY_INVALID_ARGUMENT");
    let pq = RetrievalParams { kind: quarry_ann::Kind::IvfPq, pq_m: 5, ..p.clone() };
    assert_eq!(code(RetrievalIndex::build(&k, &shape, &pq)), "QUARRY_INVALID_ARGUMENT");

    let ix = RetrievalIndex::build(&k, &shape, &p).unwrap();
    let s = ix.selector(10, 1, 1, 2);
    assert_eq!(s.select(&q[..8], &shape).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    assert_eq!(s.select(&q, &AttnShape::decode(4, 2, 99, 16)).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    assert_eq!(s.select(&q, &AttnShape::new(4, 2, 2, 100, 16)).unwrap_err().code(), "QUARRY_INVALID_ARGUMENT");
    // A NaN query does not panic: coded kinds reject it, flat ones rank it last.
    let mut nq = q.clone();
    nq[3] = f32::NAN;
    let _ = s.select(&nq, &shape);
    let sq = RetrievalIndex::build(&k, &shape, &RetrievalParams { kind: quarry_ann::Kind::IvfSq8, ..p }).unwrap();
    assert_eq!(sq.selector(10, 1, 1, 2).select(&nq, &shape).unwrap_err().code(), "QUARRY_INVALID_ARGUMENT");
}

#[test]
fn index_is_send_and_sync() {
    // The Node binding keeps an index behind an Arc across libuv threads.
    fn send_sync<T: Send + Sync>() {}
    send_sync::<RetrievalIndex>();
    send_sync::<RetrievalParams>();
}
