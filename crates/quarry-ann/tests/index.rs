//! Index-level tests: every kind against brute-force search, filters,
//! mutations, persistence (owned and mapped) and corruption, bad input.

use std::collections::HashSet;
use std::sync::Arc;

use quarry_ann::{AnnError, Closure, Control, Filter, IndexConfig, Kind, Metric, NO_ID, SearchParams, VectorIndex};

/// splitmix64 stream for reproducible data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform().max(1e-7), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f32::consts::PI * v).cos()
    }
}

/// `n` points around `clusters` random centres (the shape real embeddings have).
fn clustered(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng(seed);
    let centres: Vec<f32> = (0..clusters * dim).map(|_| r.normal() * 3.0).collect();
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let c = (r.next() % clusters as u64) as usize;
        out.extend((0..dim).map(|j| centres[c * dim + j] + r.normal()));
    }
    out
}

fn key(metric: Metric, q: &[f32], v: &[f32]) -> f64 {
    match metric {
        Metric::L2 => q.iter().zip(v).map(|(a, b)| ((a - b) as f64).powi(2)).sum(),
        Metric::InnerProduct => -q.iter().zip(v).map(|(a, b)| (a * b) as f64).sum::<f64>(),
        Metric::Cosine => {
            let dot: f64 = q.iter().zip(v).map(|(a, b)| (a * b) as f64).sum();
            let nq: f64 = q.iter().map(|a| (a * a) as f64).sum::<f64>().sqrt();
            let nv: f64 = v.iter().map(|a| (a * a) as f64).sum::<f64>().sqrt();
            -dot / (nq * nv)
        }
    }
}

/// Exact top-k positions (ids = positions) among `allowed`.
fn brute(metric: Metric, base: &[f32], q: &[f32], dim: usize, k: usize, allowed: impl Fn(usize) -> bool) -> Vec<u64> {
    let mut all: Vec<(f64, usize)> =
        base.chunks_exact(dim).enumerate().filter(|(i, _)| allowed(*i)).map(|(i, v)| (key(metric, q, v), i)).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.into_iter().take(k).map(|(_, i)| i as u64).collect()
}

fn recall(index: &VectorIndex, metric: Metric, base: &[f32], queries: &[f32], dim: usize, params: &SearchParams) -> f64 {
    let r = index.search(queries, params).unwrap();
    let nq = queries.len() / dim;
    let mut hits = 0;
    for q in 0..nq {
        let truth: HashSet<u64> = brute(metric, base, &queries[q * dim..(q + 1) * dim], dim, params.k, |_| true).into_iter().collect();
        hits += r.ids[q * params.k..(q + 1) * params.k].iter().filter(|id| truth.contains(id)).count();
    }
    hits as f64 / (nq * params.k) as f64
}

fn config(dim: usize, metric: Metric, kind: Kind, nlist: usize) -> IndexConfig {
    let mut c = IndexConfig::new(dim, metric, kind);
    c.nlist = nlist;
    c
}

#[test]
fn flat_is_exact_for_every_metric() {
    let dim = 24;
    let base = clustered(600, dim, 8, 1);
    let queries = clustered(20, dim, 8, 2);
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        let index = VectorIndex::build(config(dim, metric, Kind::Flat, 1), &base, None, None, Control::none()).unwrap();
        let r = index.search(&queries, &SearchParams { k: 7, ..Default::default() }).unwrap();
        for q in 0..20 {
            let qv = &queries[q * dim..(q + 1) * dim];
            let want = brute(metric, &base, qv, dim, 7, |_| true);
            assert_eq!(&r.ids[q * 7..(q + 1) * 7], &want[..], "{metric:?} query {q}");
            for j in 0..7 {
                let exact = key(metric, qv, &base[want[j] as usize * dim..(want[j] as usize + 1) * dim]);
                let shown = if metric.is_similarity() { -r.distances[q * 7 + j] as f64 } else { r.distances[q * 7 + j] as f64 };
                assert!((exact - shown).abs() <= 1e-3 * exact.abs().max(1.0), "{metric:?} distance {exact} vs {shown}");
            }
        }
    }
}

#[test]
fn every_kind_reaches_its_recall_floor() {
    let dim = 32;
    let base = clustered(4000, dim, 40, 3);
    let queries = clustered(40, dim, 40, 4);
    // (kind, pq bits, binary levels, nprobe, rerank, floor)
    let cases: &[(Kind, u32, u32, usize, usize, f64)] = &[
        (Kind::IvfFlat, 4, 1, 16, 0, 0.95),
        (Kind::Sq8, 4, 1, 1, 0, 0.90),
        (Kind::IvfSq8, 4, 1, 16, 0, 0.85),
        (Kind::Pq, 8, 1, 1, 0, 0.70),
        (Kind::Pq, 4, 1, 1, 0, 0.30),
        (Kind::Pq, 4, 1, 1, 100, 0.88),
        (Kind::IvfPq, 8, 1, 16, 0, 0.55),
        (Kind::IvfPq, 4, 1, 16, 0, 0.40),
        (Kind::IvfPq, 4, 1, 16, 100, 0.93),
        (Kind::Binary, 4, 1, 1, 200, 0.65),
        (Kind::Binary, 4, 3, 1, 100, 0.90),
        (Kind::IvfBinary, 4, 2, 16, 200, 0.85),
    ];
    for metric in [Metric::L2, Metric::Cosine] {
        for &(kind, bits, levels, nprobe, rerank, floor) in cases {
            let mut c = config(dim, metric, kind, 32);
            c.pq_m = 16;
            c.pq_bits = bits;
            c.binary_levels = levels;
            let index = VectorIndex::build(c, &base, None, None, Control::none()).unwrap();
            let p = SearchParams { k: 10, nprobe, rerank, ..Default::default() };
            let rec = recall(&index, metric, &base, &queries, dim, &p);
            if std::env::var_os("QUARRY_PRINT_RECALL").is_some() {
                eprintln!("{} bits {bits} levels {levels} rerank {rerank} {metric:?}: {rec:.3}", kind.name());
            }
            assert!(rec >= floor || std::env::var_os("QUARRY_PRINT_RECALL").is_some(), "{} bits {bits} levels {levels} rerank {rerank} {metric:?}: recall {rec:.3} < {floor}", kind.name());
        }
    }
}

#[test]
fn opq_and_inner_product_work() {
    let dim = 32;
    // Correlated dimensions: OPQ's rotation has something to find.
    let mut base = clustered(3000, dim, 30, 5);
    for v in base.chunks_exact_mut(dim) {
        for j in 1..dim {
            v[j] += 0.8 * v[j - 1];
        }
    }
    let queries: Vec<f32> = base[..30 * dim].to_vec();
    for metric in [Metric::L2, Metric::InnerProduct] {
        let mut c = config(dim, metric, Kind::IvfPq, 16);
        c.pq_m = 8;
        c.pq_bits = 8;
        c.opq = true;
        c.opq_iterations = 4;
        let index = VectorIndex::build(c, &base, None, None, Control::none()).unwrap();
        let rec = recall(&index, metric, &base, &queries, dim, &SearchParams { k: 10, nprobe: 16, rerank: 100, ..Default::default() });
        assert!(rec >= 0.9, "OPQ {metric:?}: recall {rec}");
    }
}

#[test]
fn filters_apply_inside_the_scan() {
    let dim = 16;
    let n = 3000;
    let base = clustered(n, dim, 20, 6);
    let queries = clustered(20, dim, 20, 7);
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 100).collect();
    for kind in [Kind::Flat, Kind::IvfFlat, Kind::IvfPq] {
        let mut c = config(dim, Metric::L2, kind, 16);
        c.pq_m = 8;
        let index = VectorIndex::build(c, &base, None, Some(&labels), Control::none()).unwrap();
        // 1% selectivity by label, 10% by allow-list.
        let allow: Vec<u64> = (0..n as u64).filter(|i| i % 10 == 3).collect();
        for (filter, admitted) in [
            (Filter::Label(42), Box::new(|i: usize| i % 100 == 42) as Box<dyn Fn(usize) -> bool>),
            (Filter::AllowIds(&allow), Box::new(|i: usize| i % 10 == 3)),
        ] {
            let p = SearchParams { k: 10, nprobe: 16, rerank: 50, filter, ..Default::default() };
            let r = index.search(&queries, &p).unwrap();
            let mut hits = 0;
            for q in 0..20 {
                let got = &r.ids[q * 10..(q + 1) * 10];
                assert!(got.iter().all(|&id| id != NO_ID && admitted(id as usize)), "{}: a filtered-out id came back", kind.name());
                let truth: HashSet<u64> = brute(Metric::L2, &base, &queries[q * dim..(q + 1) * dim], dim, 10, &admitted).into_iter().collect();
                hits += got.iter().filter(|id| truth.contains(id)).count();
            }
            let rec = hits as f64 / 200.0;
            let floor = if kind == Kind::Flat { 1.0 } else { 0.9 };
            assert!(rec >= floor || std::env::var_os("QUARRY_PRINT_RECALL").is_some(), "{} filtered recall {rec}", kind.name());
        }
    }
}

#[test]
fn remove_add_and_compacting_save() {
    let dim = 8;
    let base = clustered(500, dim, 5, 8);
    let ids: Vec<u64> = (0..500u64).map(|i| i * 1_000_000_007).collect();
    let mut c = config(dim, Metric::L2, Kind::IvfSq8, 8);
    c.wide_ids = true;
    let index = VectorIndex::build(c, &base, Some(&ids), None, Control::none()).unwrap();
    let gone: Vec<u64> = ids.iter().copied().step_by(3).collect();
    assert_eq!(index.remove(&gone), gone.len());
    assert_eq!(index.remove(&gone), 0, "second removal finds nothing");
    assert_eq!(index.size(), 500 - gone.len());
    let p = SearchParams { k: 20, nprobe: 8, ..Default::default() };
    let r = index.search(&base[..10 * dim], &p).unwrap();
    let gone_set: HashSet<u64> = gone.iter().copied().collect();
    assert!(r.ids.iter().all(|id| !gone_set.contains(id)));

    // Re-adding a removed id is allowed; adding a live one is not.
    index.add(&base[..dim], Some(&[gone[0]]), None).unwrap();
    assert!(matches!(index.add(&base[..dim], Some(&[ids[1]]), None), Err(AnnError::InvalidArgument(_))));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.qann");
    index.save(&path).unwrap();
    for mmap in [false, true] {
        let reopened = VectorIndex::open(&path, mmap).unwrap();
        assert_eq!(reopened.size(), index.size());
        assert_eq!(reopened.search(&base[..10 * dim], &p).unwrap(), index.search(&base[..10 * dim], &p).unwrap());
        assert_eq!(reopened.bytes().1 > 0, mmap, "mapped bytes reported only with mmap");
    }
}

#[test]
fn persistence_round_trips_every_kind_and_rejects_damage() {
    let dim = 16;
    let base = clustered(1200, dim, 10, 9);
    let queries = clustered(10, dim, 10, 10);
    let labels: Vec<u32> = (0..1200).map(|i| i % 7).collect();
    let dir = tempfile::tempdir().unwrap();
    for kind in Kind::ALL {
        for bits in [4u32, 8] {
            if bits == 8 && !matches!(kind, Kind::Pq | Kind::IvfPq) {
                continue;
            }
            let mut c = config(dim, Metric::Cosine, kind, 8);
            c.pq_m = 8;
            c.pq_bits = bits;
            c.opq = matches!(kind, Kind::IvfPq) && bits == 4;
            c.opq_iterations = 2;
            let index = VectorIndex::build(c, &base, None, Some(&labels), Control::none()).unwrap();
            let path = dir.path().join(format!("{}-{bits}.qann", kind.name()));
            index.save(&path).unwrap();
            let p = SearchParams { k: 5, nprobe: 4, rerank: 20, filter: Filter::Label(3), ..Default::default() };
            let want = index.search(&queries, &p).unwrap();
            for mmap in [false, true] {
                let got = VectorIndex::open(&path, mmap).unwrap().search(&queries, &p).unwrap();
                assert_eq!(got, want, "{} bits {bits} mmap {mmap}", kind.name());
            }
            let bytes = std::fs::read(&path).unwrap();
            // Truncations and single-byte changes all over the file.
            let damaged = dir.path().join("damaged.qann");
            let step = (bytes.len() / 23).max(1);
            for cut in (0..bytes.len()).step_by(step) {
                std::fs::write(&damaged, &bytes[..cut]).unwrap();
                assert!(matches!(VectorIndex::open(&damaged, true), Err(AnnError::CorruptIndex(_))), "truncated at {cut}");
            }
            for at in (0..bytes.len()).step_by(step) {
                let mut b = bytes.clone();
                b[at] ^= 0x5a;
                std::fs::write(&damaged, &b).unwrap();
                let r = VectorIndex::open(&damaged, false);
                // Padding bytes between sections are not covered by a checksum.
                if let Ok(ix) = r {
                    assert_eq!(ix.search(&queries, &p).unwrap(), want, "{} byte {at} changed results undetected", kind.name());
                } else {
                    assert!(matches!(r, Err(AnnError::CorruptIndex(_))), "byte {at}");
                }
            }
        }
    }
}

#[test]
fn closure_pruning_and_balance() {
    let dim = 16;
    let base = clustered(3000, dim, 30, 11);
    let queries = clustered(30, dim, 30, 12);
    let mut c = config(dim, Metric::L2, Kind::IvfFlat, 32);
    c.closure = Some(Closure { max_copies: 2, ratio: 0.2 });
    c.balance = Some(1.5);
    let index = VectorIndex::build(c, &base, None, None, Control::none()).unwrap();
    // Closure duplicates entries across lists but never in results.
    let stored: usize = index.with_data(|d| d.lists.iter().map(|l| l.len()).sum());
    assert!(stored > 3000, "closure stored no copies");
    let biggest = index.with_data(|d| d.lists.iter().map(|l| l.len()).max().unwrap());
    assert!(biggest <= 2 * (3000f64 * 1.5 / 32.0).ceil() as usize, "balanced lists too large: {biggest}");
    let p = SearchParams { k: 10, nprobe: 4, ..Default::default() };
    let r = index.search(&queries, &p).unwrap();
    for row in r.ids.chunks(10) {
        let uniq: HashSet<_> = row.iter().filter(|&&id| id != NO_ID).collect();
        assert_eq!(uniq.len(), row.iter().filter(|&&id| id != NO_ID).count(), "duplicate id in a row");
    }
    let plain = recall(&index, Metric::L2, &base, &queries, dim, &p);
    let pruned = recall(&index, Metric::L2, &base, &queries, dim, &SearchParams { prune_eps: Some(10.0), ..p });
    assert!(pruned >= plain - 1e-9, "a huge epsilon prunes nothing: {pruned} vs {plain}");
    let tight = recall(&index, Metric::L2, &base, &queries, dim, &SearchParams { prune_eps: Some(0.0), ..p });
    assert!(tight <= plain + 1e-9 && tight > 0.3, "epsilon 0 scans the nearest list only: {tight}");
}

#[test]
fn bad_input_gives_typed_errors() {
    let dim = 8;
    let base = clustered(300, dim, 4, 13);
    let ok = |kind| config(dim, Metric::L2, kind, 4);
    let index = VectorIndex::build(ok(Kind::IvfFlat), &base, None, None, Control::none()).unwrap();
    let p = SearchParams { k: 3, nprobe: 2, ..Default::default() };
    assert!(matches!(index.search(&base[..7], &p), Err(AnnError::DimMismatch(_))));
    let mut nan = base[..dim].to_vec();
    nan[3] = f32::NAN;
    assert!(matches!(index.search(&nan, &p), Err(AnnError::InvalidInput(_))));
    assert!(matches!(index.add(&nan, None, None), Err(AnnError::InvalidInput(_))));
    assert!(matches!(index.search(&base[..dim], &SearchParams { k: 0, ..p }), Err(AnnError::InvalidArgument(_))));
    assert!(matches!(index.search(&base[..dim], &SearchParams { nprobe: 5, ..p }), Err(AnnError::InvalidArgument(_))));
    assert!(matches!(index.search(&base[..dim], &SearchParams { nprobe: 0, ..p }), Err(AnnError::InvalidArgument(_))));
    let mut pq = ok(Kind::Pq);
    pq.pq_m = 3;
    assert!(matches!(VectorIndex::build(pq, &base, None, None, Control::none()), Err(AnnError::InvalidArgument(_))));
    let mut pq = ok(Kind::Pq);
    pq.pq_m = 4;
    pq.pq_bits = 8;
    assert!(
        matches!(VectorIndex::build(pq, &base[..100 * dim], None, None, Control::none()), Err(AnnError::InvalidArgument(_))),
        "256 centroids need 256 training vectors"
    );
    assert!(matches!(VectorIndex::build(ok(Kind::IvfFlat), &base[..3 * dim], None, None, Control::none()), Err(AnnError::InvalidArgument(_))));
    let dup = vec![1u64; 300];
    assert!(matches!(VectorIndex::build(ok(Kind::Flat), &base, Some(&dup), None, Control::none()), Err(AnnError::InvalidArgument(_))));
    assert!(matches!(VectorIndex::build(ok(Kind::Flat), &base, Some(&[1, 2]), None, Control::none()), Err(AnnError::DimMismatch(_))));
    let mut c = ok(Kind::Sq8);
    c.store_vectors = false;
    let no_vectors = VectorIndex::build(c, &base, None, None, Control::none()).unwrap();
    assert!(matches!(no_vectors.search(&base[..dim], &SearchParams { rerank: 5, ..p }), Err(AnnError::InvalidArgument(_))));

    // An index with everything removed: documented padded rows, not an error.
    let all: Vec<u64> = (0..300).collect();
    index.remove(&all);
    let r = index.search(&base[..2 * dim], &p).unwrap();
    assert!(r.ids.iter().all(|&id| id == NO_ID) && r.distances.iter().all(|d| d.is_nan()));

    // Cancellation.
    let flag = std::sync::atomic::AtomicBool::new(true);
    let ctl = Control::new(None, Some(&flag));
    assert!(matches!(VectorIndex::build(ok(Kind::IvfPq), &base, None, None, ctl), Err(AnnError::Aborted)));
}

#[test]
fn searches_run_while_vectors_are_added_and_removed() {
    let dim = 16;
    let base = clustered(2000, dim, 10, 14);
    let mut c = config(dim, Metric::L2, Kind::IvfPq, 16);
    c.pq_m = 8;
    let index = Arc::new(VectorIndex::build(c, &base[..1000 * dim], None, None, Control::none()).unwrap());
    let base = &base;
    std::thread::scope(|s| {
        for t in 0..3 {
            let index = index.clone();
            s.spawn(move || {
                for i in 0..50 {
                    let q = &base[((t * 50 + i) % 1000) * dim..][..dim];
                    let r = index.search(q, &SearchParams { k: 5, nprobe: 4, ..Default::default() }).unwrap();
                    assert_eq!(r.ids.len(), 5);
                }
            });
        }
        let index = index.clone();
        s.spawn(move || {
            for chunk in 0..10 {
                let at = 1000 + chunk * 100;
                let ids: Vec<u64> = (at as u64..at as u64 + 100).collect();
                index.add(&base[at * dim..(at + 100) * dim], Some(&ids), None).unwrap();
                index.remove(&[chunk as u64]);
            }
        });
    });
    assert_eq!(index.size(), 2000 - 10);
}

#[test]
fn single_queries_and_batches_probe_the_same_lists() {
    // One query probes through the packed-centroid product, a batch through
    // the GEMM k-NN: the results must agree (up to float ties).
    let dim = 24;
    let base = clustered(4000, dim, 40, 41);
    let queries = clustered(40, dim, 40, 42);
    for (metric, kind) in [(Metric::L2, "ivf-flat"), (Metric::InnerProduct, "ivf-pq"), (Metric::Cosine, "ivf-sq8")] {
        let mut cfg = config(dim, metric, Kind::parse(kind).unwrap(), 37);
        cfg.pq_m = 12;
        let index = VectorIndex::build(cfg, &base, None, None, Control::none()).unwrap();
        let params = SearchParams { k: 10, nprobe: 5, rerank: 20, ..SearchParams::default() };
        let batch = index.search(&queries, &params).unwrap();
        let mut same = 0;
        for q in 0..40 {
            let one = index.search(&queries[q * dim..(q + 1) * dim], &params).unwrap();
            same += usize::from(one.ids == batch.ids[q * 10..(q + 1) * 10]);
        }
        assert!(same >= 39, "{kind} {metric:?}: {same}/40 queries agree");
    }
}

#[test]
fn list_major_batches_match_one_query_at_a_time() {
    // Batches of 64+ queries on IVF fast-scan are scanned list by list with
    // several queries per pass; each query must get what it gets alone (up
    // to float ties: one query probes by a matrix-vector product, a batch
    // by GEMM), with re-ranking, filters and tombstones.
    let dim = 16;
    let n = 6000;
    let base = clustered(n, dim, 30, 51);
    let nq = 200;
    let queries = clustered(nq, dim, 30, 52);
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 7).collect();
    for metric in [Metric::Cosine, Metric::InnerProduct, Metric::L2] {
        let mut cfg = config(dim, metric, Kind::IvfPq, 40);
        cfg.pq_m = 8;
        cfg.pq_bits = 4;
        let index = VectorIndex::build(cfg, &base, None, Some(&labels), Control::none()).unwrap();
        index.remove(&(0..n as u64).step_by(13).collect::<Vec<_>>());
        for (rerank, filter, filtered) in [(0, Filter::None, false), (40, Filter::None, false), (40, Filter::Label(3), true)] {
            let params = SearchParams { k: 10, nprobe: 6, rerank, filter, ..SearchParams::default() };
            let batch = index.search(&queries, &params).unwrap();
            let mut same = 0;
            for q in 0..nq {
                let one = index.search(&queries[q * dim..(q + 1) * dim], &params).unwrap();
                let got = &batch.ids[q * 10..(q + 1) * 10];
                assert!(got.iter().all(|&id| id == NO_ID || (id % 13 != 0 && (!filtered || id % 7 == 3))), "removed or filtered-out id");
                same += usize::from(one.ids == got);
            }
            assert!(same >= nq - 3, "{metric:?} rerank {rerank}: {same}/{nq} queries agree");
        }
    }
}

/// `build` prepares (normalises, rotates) the vectors once for training and
/// adding; the result must equal training and then adding them.
#[test]
fn build_equals_train_then_add() {
    let dim = 16;
    let base = clustered(3000, dim, 20, 41);
    let queries = clustered(40, dim, 20, 42);
    for opq in [false, true] {
        let mut cfg = config(dim, Metric::Cosine, Kind::IvfPq, 16);
        cfg.pq_m = 8;
        cfg.pq_bits = 4;
        cfg.opq = opq;
        let built = VectorIndex::build(cfg.clone(), &base, None, None, Control::none()).unwrap();
        let mut data = quarry_ann::index::IndexData::train(cfg, &base, Control::none()).unwrap();
        data.add(&base, None, None, Control::none()).unwrap();
        let added = VectorIndex::from_data(data);
        let params = SearchParams { k: 10, nprobe: 4, rerank: 30, ..SearchParams::default() };
        let (a, b) = (built.search(&queries, &params).unwrap(), added.search(&queries, &params).unwrap());
        assert_eq!(a.ids, b.ids, "opq {opq}");
        assert_eq!(a.distances, b.distances, "opq {opq}");
        built.with_data(|x| added.with_data(|y| assert_eq!(x.vectors[..], y.vectors[..])));
    }
}

/// A selective allow-set (under 1 in 32 vectors) lets fast-scan skip blocks
/// without an allowed vector; results must equal the same filter given as a
/// label (which scans every block), one query at a time and in list-major
/// batches, with tombstones too.
#[test]
fn selective_allow_sets_skip_blocks_without_changing_results() {
    let dim = 16;
    let n = 6000;
    let base = clustered(n, dim, 20, 51);
    let queries = clustered(80, dim, 20, 52);
    let allowed = |i: u64| i % 53 == 7 || i.is_multiple_of(97);
    let labels: Vec<u32> = (0..n as u64).map(|i| u32::from(allowed(i))).collect();
    let allow: Vec<u64> = (0..n as u64).filter(|&i| allowed(i)).collect();
    assert!(allow.len() * 32 < n);
    let mut c = config(dim, Metric::Cosine, Kind::IvfPq, 24);
    c.pq_m = 8;
    c.pq_bits = 4;
    let index = VectorIndex::build(c, &base, None, Some(&labels), Control::none()).unwrap();
    let tombstones: Vec<u64> = allow.iter().copied().step_by(5).collect();
    for round in 0..2 {
        if round == 1 {
            assert_eq!(index.remove(&tombstones), tombstones.len());
        }
        for (rerank, nq) in [(0, 1), (40, 1), (40, 80), (0, 80)] {
            let qs = &queries[..nq * dim];
            let by_ids = SearchParams { k: 10, nprobe: 8, rerank, filter: Filter::AllowIds(&allow), ..Default::default() };
            let by_label = SearchParams { filter: Filter::Label(1), ..by_ids };
            let (a, b) = (index.search(qs, &by_ids).unwrap(), index.search(qs, &by_label).unwrap());
            assert_eq!(a.ids, b.ids, "round {round} rerank {rerank} queries {nq}");
            assert_eq!(a.distances, b.distances, "round {round} rerank {rerank} queries {nq}");
            assert!(a.ids.iter().all(|&id| id == NO_ID || (allowed(id) && (round == 0 || !tombstones.contains(&id)))));
        }
    }
}
