//! Exact k-NN against a brute-force reference: every dtype × metric, every
//! runnable GEMM level, the blocked and naive paths, many shapes, chunking,
//! ties, zero vectors, NaN and infinities, thread-count invariance.
//!
//! # Tolerances
//!
//! The reference is `quarry_simd::reference` (f64 accumulation) with a full
//! sort (key, then id; NaN last). The GEMM path accumulates in f32 and, for
//! L2, uses `‖q‖² + ‖b‖² − 2 q·b`, so its distances carry rounding error
//! proportional to the magnitudes involved. Per query we allow
//! `TOL * (1 + scale)` with `TOL = 1e-5` and `scale` = `‖q‖² + max ‖b‖²` (L2),
//! `‖q‖ · max ‖b‖` (inner product) or 1 (cosine). A returned id may differ
//! from the reference's at the same rank only if its reference distance is
//! within twice that tolerance of the reference's (a swap among near-ties).
//! Integer-valued data (small integers in float types, and the integer
//! dtypes with L2 / inner product / Hamming) must match exactly, ids included,
//! which checks tie-breaking by id.

use proptest::prelude::*;
use quarry_simd::gemm::gemm_levels;
use quarry_simd::knn::{KnnOptions, KnnPath, knn_with};
use quarry_simd::{DType, Knn, Metric, SimdError, VectorsRef, bf16, f16, knn, knn_bounded, reference as r};

const TOL: f64 = 1e-5;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Debug)]
enum Data {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    I8(Vec<i8>),
    U8(Vec<u8>),
    Bits(Vec<u8>),
}

impl Data {
    /// `rows` random rows; `small_ints` draws floats from {-3..=3}.
    fn random(dtype: DType, rows: usize, dim: usize, small_ints: bool, rng: &mut Rng) -> Data {
        let n = rows * dim;
        let f = |rng: &mut Rng| if small_ints { rng.below(7) as f32 - 3.0 } else { rng.unit() };
        match dtype {
            DType::F32 => Data::F32((0..n).map(|_| f(rng)).collect()),
            DType::F16 => Data::F16((0..n).map(|_| f16::from_f32(f(rng))).collect()),
            DType::BF16 => Data::BF16((0..n).map(|_| bf16::from_f32(f(rng))).collect()),
            DType::I8 => Data::I8((0..n).map(|_| rng.next() as i8).collect()),
            DType::U8 => Data::U8((0..n).map(|_| rng.next() as u8).collect()),
            DType::Bits => Data::Bits((0..rows * dim / 8).map(|_| rng.next() as u8).collect()),
        }
    }

    fn as_ref(&self) -> VectorsRef<'_> {
        match self {
            Data::F32(v) => VectorsRef::F32(v),
            Data::F16(v) => VectorsRef::F16(v),
            Data::BF16(v) => VectorsRef::BF16(v),
            Data::I8(v) => VectorsRef::I8(v),
            Data::U8(v) => VectorsRef::U8(v),
            Data::Bits(v) => VectorsRef::Bits(v),
        }
    }

    fn dtype(&self) -> DType {
        self.as_ref().dtype()
    }

    /// Overwrites element `d` of row `row` (float dtypes only).
    fn set(&mut self, row: usize, dim: usize, d: usize, x: f32) {
        let i = row * dim + d;
        match self {
            Data::F32(v) => v[i] = x,
            Data::F16(v) => v[i] = f16::from_f32(x),
            Data::BF16(v) => v[i] = bf16::from_f32(x),
            _ => panic!("set on a non-float dtype"),
        }
    }

    /// Copies row `from` of `src` over row `to` of `self`.
    fn copy_row_from(&mut self, to: usize, src: &Data, from: usize, dim: usize) {
        let row = if self.dtype() == DType::Bits { dim / 8 } else { dim };
        let (t, f) = (to * row..(to + 1) * row, from * row..(from + 1) * row);
        match (self, src) {
            (Data::F32(d), Data::F32(s)) => d[t].copy_from_slice(&s[f]),
            (Data::F16(d), Data::F16(s)) => d[t].copy_from_slice(&s[f]),
            (Data::BF16(d), Data::BF16(s)) => d[t].copy_from_slice(&s[f]),
            (Data::I8(d), Data::I8(s)) => d[t].copy_from_slice(&s[f]),
            (Data::U8(d), Data::U8(s)) | (Data::Bits(d), Data::Bits(s)) => d[t].copy_from_slice(&s[f]),
            _ => panic!("dtypes differ"),
        }
    }

    /// Squared norm of a row (f64), for tolerances.
    fn norm(&self, row: usize, dim: usize) -> f64 {
        let sq = |x: f64| x * x;
        match self {
            Data::F32(v) => v[row * dim..(row + 1) * dim].iter().map(|&x| sq(x as f64)).sum(),
            Data::F16(v) => v[row * dim..(row + 1) * dim].iter().map(|&x| sq(x.to_f64())).sum(),
            Data::BF16(v) => v[row * dim..(row + 1) * dim].iter().map(|&x| sq(x.to_f64())).sum(),
            _ => 0.0,
        }
    }
}

/// Reference distance (similarity for the inner product) of query row `qi`
/// and base row `bi`.
fn ref_dist(metric: Metric, q: &Data, qi: usize, b: &Data, bi: usize, dim: usize) -> f64 {
    macro_rules! pick {
        ($qv:expr, $bv:expr, $row:expr, $dot:path, $l2:path, $cos:path) => {{
            let (x, y) = (&$qv[qi * $row..(qi + 1) * $row], &$bv[bi * $row..(bi + 1) * $row]);
            match metric {
                Metric::InnerProduct => $dot(x, y) as f64,
                Metric::L2sq => $l2(x, y) as f64,
                Metric::Cosine => $cos(x, y),
                _ => unreachable!(),
            }
        }};
    }
    match (q, b) {
        (Data::F32(qv), Data::F32(bv)) => pick!(qv, bv, dim, r::f32_dot, r::f32_l2sq, r::f32_cosine),
        (Data::F16(qv), Data::F16(bv)) => pick!(qv, bv, dim, r::f16_dot, r::f16_l2sq, r::f16_cosine),
        (Data::BF16(qv), Data::BF16(bv)) => pick!(qv, bv, dim, r::bf16_dot, r::bf16_l2sq, r::bf16_cosine),
        (Data::I8(qv), Data::I8(bv)) => pick!(qv, bv, dim, r::i8_dot, r::i8_l2sq, r::i8_cosine),
        (Data::U8(qv), Data::U8(bv)) => pick!(qv, bv, dim, r::u8_dot, r::u8_l2sq, r::u8_cosine),
        (Data::Bits(qv), Data::Bits(bv)) => {
            let row = dim / 8;
            let (x, y) = (&qv[qi * row..(qi + 1) * row], &bv[bi * row..(bi + 1) * row]);
            match metric {
                Metric::Hamming => r::bits_hamming(x, y) as f64,
                Metric::Jaccard => r::bits_jaccard(x, y),
                _ => unreachable!(),
            }
        }
        _ => unreachable!("dtypes agree"),
    }
}

/// Ranking order: smaller key first, NaN last, then smaller id.
fn rank_cmp(a: (f64, u32), b: (f64, u32)) -> std::cmp::Ordering {
    match (a.0.is_nan(), b.0.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => a.0.partial_cmp(&b.0).unwrap(),
    }
    .then(a.1.cmp(&b.1))
}

/// Brute-force answer for every query: all distances, the full ranking and
/// the per-query tolerance.
struct Reference {
    metric: Metric,
    /// `all[q][b]`: reference distance.
    all: Vec<Vec<f64>>,
    /// `sorted[q]`: (distance, id), best first.
    sorted: Vec<Vec<(f64, u32)>>,
    tol: Vec<f64>,
}

impl Reference {
    fn new(metric: Metric, q: &Data, b: &Data, dim: usize, exact: bool) -> Reference {
        let row = if q.dtype() == DType::Bits { dim / 8 } else { dim };
        let nq = q.as_ref().len() / row;
        let nb = b.as_ref().len() / row;
        let sign = if metric == Metric::InnerProduct { -1.0 } else { 1.0 };
        let max_bn = (0..nb).map(|i| b.norm(i, dim)).filter(|n| n.is_finite()).fold(0.0, f64::max);
        let mut all = Vec::new();
        let mut sorted = Vec::new();
        let mut tol = Vec::new();
        for qi in 0..nq {
            let d: Vec<f64> = (0..nb).map(|bi| ref_dist(metric, q, qi, b, bi, dim)).collect();
            let mut s: Vec<(f64, u32)> = d.iter().enumerate().map(|(i, &x)| (sign * x, i as u32)).collect();
            s.sort_by(|&a, &b| rank_cmp(a, b));
            sorted.push(s.into_iter().map(|(x, i)| (sign * x, i)).collect());
            all.push(d);
            let qn = q.norm(qi, dim);
            let qn = if qn.is_finite() { qn } else { 0.0 };
            tol.push(if exact {
                0.0
            } else {
                match (q.dtype(), metric) {
                    (DType::F32 | DType::F16 | DType::BF16, Metric::L2sq) => TOL * (1.0 + qn + max_bn),
                    (DType::F32 | DType::F16 | DType::BF16, Metric::InnerProduct) => TOL * (1.0 + (qn * max_bn).sqrt()),
                    (_, Metric::Cosine) => 2.0 * TOL,
                    _ => 1e-6,
                }
            });
        }
        Reference { metric, all, sorted, tol }
    }

    fn check(&self, got: &Knn, k: usize, what: &str) {
        let nq = self.sorted.len();
        assert_eq!(got.k, k, "{what}");
        assert_eq!(got.ids.len(), nq * k, "{what}");
        assert_eq!(got.distances.len(), nq * k, "{what}");
        let sign = if self.metric == Metric::InnerProduct { -1.0 } else { 1.0 };
        let close = |a: f64, b: f64, tol: f64| (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= tol;
        for q in 0..nq {
            let ids = &got.ids[q * k..(q + 1) * k];
            let ds = &got.distances[q * k..(q + 1) * k];
            let tol = self.tol[q];
            let mut seen = std::collections::HashSet::new();
            for j in 0..k {
                let (wd, wid) = self.sorted[q][j];
                let (gd, gid) = (ds[j] as f64, ids[j]);
                assert!(seen.insert(gid), "{what}: q{q} duplicate id {gid}");
                assert!((gid as usize) < self.all[q].len(), "{what}: q{q} id {gid} out of range");
                assert!(close(gd, wd, tol), "{what}: q{q} rank {j}: distance {gd} vs reference {wd} (tol {tol})");
                if tol == 0.0 {
                    assert_eq!(gid, wid, "{what}: q{q} rank {j}: id (distance {gd})");
                } else {
                    let rd = self.all[q][gid as usize];
                    assert!(
                        close(rd, wd, 2.0 * tol),
                        "{what}: q{q} rank {j}: id {gid} (reference distance {rd}) vs {wid} ({wd})"
                    );
                }
                if j > 0 {
                    let a = ((sign * ds[j - 1]) as f64, ids[j - 1]);
                    let b = ((sign * ds[j]) as f64, ids[j]);
                    assert!(rank_cmp(a, b).is_lt(), "{what}: q{q} ranks {} and {j} out of order: {a:?} {b:?}", j - 1);
                }
            }
        }
    }
}

/// Every path that applies to `dtype`, with the chunk sizes to try.
fn paths(dtype: DType) -> Vec<KnnOptions> {
    let mut v = vec![
        KnnOptions { path: KnnPath::Auto, chunk_rows: 0 },
        KnnOptions { path: KnnPath::Blocked, chunk_rows: 0 },
    ];
    if matches!(dtype, DType::F32 | DType::F16 | DType::BF16) {
        for level in gemm_levels() {
            v.push(KnnOptions { path: KnnPath::Gemm(level), chunk_rows: 0 });
            v.push(KnnOptions { path: KnnPath::Gemm(level), chunk_rows: 40 });
        }
    }
    v
}

fn metrics(dtype: DType) -> &'static [Metric] {
    if dtype == DType::Bits {
        &[Metric::Hamming, Metric::Jaccard]
    } else {
        &[Metric::InnerProduct, Metric::L2sq, Metric::Cosine]
    }
}

const ALL_DTYPES: [DType; 6] = [DType::F32, DType::F16, DType::BF16, DType::I8, DType::U8, DType::Bits];

/// Runs every path on one problem and checks each against the reference.
fn check_all(metric: Metric, q: &Data, b: &Data, dim: usize, ks: &[usize], exact: bool, what: &str) {
    let reference = Reference::new(metric, q, b, dim, exact);
    for opts in paths(q.dtype()) {
        for &k in ks {
            let got = knn_with(metric, q.as_ref(), b.as_ref(), dim, k, opts).unwrap();
            reference.check(&got, k, &format!("{what} {metric:?} {:?} k={k} {opts:?}", q.dtype()));
        }
    }
}

fn is_exact(dtype: DType, metric: Metric, small_ints: bool) -> bool {
    match dtype {
        DType::I8 | DType::U8 => metric != Metric::Cosine,
        DType::Bits => metric == Metric::Hamming,
        _ => small_ints && metric != Metric::Cosine,
    }
}

fn ks_for(nb: usize) -> Vec<usize> {
    let mut ks = vec![1, nb.min(7), nb];
    ks.dedup();
    ks
}

#[test]
fn every_dtype_metric_and_path_on_many_shapes() {
    let mut rng = Rng(1);
    // (nq, nb, dim): non-multiples of every MR/NR and of the test chunk (40).
    let shapes: [(usize, usize, usize); 8] = [(1, 1, 1), (2, 3, 8), (3, 17, 7), (7, 33, 16), (13, 95, 9), (5, 41, 130), (30, 121, 24), (70, 57, 3)];
    for dtype in ALL_DTYPES {
        for &(nq, nb, dim) in &shapes {
            let dim = if dtype == DType::Bits { dim.div_ceil(8) * 8 } else { dim };
            for small_ints in [false, true] {
                if small_ints && !matches!(dtype, DType::F32 | DType::BF16) {
                    continue;
                }
                let q = Data::random(dtype, nq, dim, small_ints, &mut rng);
                let b = Data::random(dtype, nb, dim, small_ints, &mut rng);
                for &metric in metrics(dtype) {
                    let exact = is_exact(dtype, metric, small_ints);
                    check_all(metric, &q, &b, dim, &ks_for(nb), exact, &format!("{nq}x{nb}x{dim} ints={small_ints}"));
                }
            }
        }
    }
}

#[test]
fn larger_f32_shapes_every_gemm_level() {
    let mut rng = Rng(2);
    for &(nq, nb, dim, small_ints) in &[(70, 600, 130, false), (64, 599, 33, true), (23, 317, 100, false)] {
        let q = Data::random(DType::F32, nq, dim, small_ints, &mut rng);
        let b = Data::random(DType::F32, nb, dim, small_ints, &mut rng);
        for metric in [Metric::InnerProduct, Metric::L2sq, Metric::Cosine] {
            let reference = Reference::new(metric, &q, &b, dim, is_exact(DType::F32, metric, small_ints));
            for level in gemm_levels() {
                for chunk_rows in [0, 100] {
                    for k in [1, 10] {
                        let opts = KnnOptions { path: KnnPath::Gemm(level), chunk_rows };
                        let got = knn_with(metric, q.as_ref(), b.as_ref(), dim, k, opts).unwrap();
                        reference.check(&got, k, &format!("{nq}x{nb}x{dim} {metric:?} k={k} {opts:?}"));
                    }
                }
            }
        }
    }
}

#[test]
fn duplicate_base_rows_tie_by_id() {
    let mut rng = Rng(3);
    for dtype in ALL_DTYPES {
        let dim = 16;
        let (nq, nb) = (9, 50);
        let mut q = Data::random(dtype, nq, dim, false, &mut rng);
        let mut b = Data::random(dtype, nb, dim, false, &mut rng);
        // Rows 3, 17, 18, 40 and 49 are copies of row 3; so are the even queries.
        for to in [17, 18, 40, 49] {
            let src = b.clone();
            b.copy_row_from(to, &src, 3, dim);
        }
        for i in (0..nq).step_by(2) {
            q.copy_row_from(i, &b, 3, dim);
        }
        for &metric in metrics(dtype) {
            for opts in paths(dtype) {
                let got = knn_with(metric, q.as_ref(), b.as_ref(), dim, 8, opts).unwrap();
                for qi in 0..nq {
                    let ids = &got.ids[qi * 8..(qi + 1) * 8];
                    let ds = &got.distances[qi * 8..(qi + 1) * 8];
                    // The five copies have bitwise-equal distances and appear in
                    // ascending id order (other rows may tie with them).
                    let pos: Vec<usize> = [3u32, 17, 18, 40, 49]
                        .iter()
                        .filter_map(|id| ids.iter().position(|x| x == id))
                        .collect();
                    if !pos.is_empty() {
                        for w in pos.windows(2) {
                            assert!(w[1] > w[0], "{dtype:?} {metric:?} {opts:?} q{qi}: {ids:?}");
                            assert_eq!(ds[w[0]].to_bits(), ds[w[1]].to_bits(), "{dtype:?} {metric:?} {opts:?}");
                        }
                    }
                    // A query equal to row 3 finds the copies first (except
                    // for the inner product, where larger rows may win).
                    if qi % 2 == 0 && metric != Metric::InnerProduct {
                        assert_eq!(&ids[..5], &[3, 17, 18, 40, 49], "{dtype:?} {metric:?} {opts:?} q{qi}: {ds:?}");
                    }
                }
            }
        }
    }
}

#[test]
fn zero_vectors_with_cosine() {
    let mut rng = Rng(4);
    for dtype in [DType::F32, DType::F16, DType::BF16, DType::I8, DType::U8] {
        let dim = 11;
        let (nq, nb) = (8, 45);
        let mut q = Data::random(dtype, nq, dim, false, &mut rng);
        let mut b = Data::random(dtype, nb, dim, false, &mut rng);
        let zero = |data: &mut Data, row: usize| match data {
            Data::F32(v) => v[row * dim..(row + 1) * dim].fill(0.0),
            Data::F16(v) => v[row * dim..(row + 1) * dim].fill(f16::ZERO),
            Data::BF16(v) => v[row * dim..(row + 1) * dim].fill(bf16::ZERO),
            Data::I8(v) => v[row * dim..(row + 1) * dim].fill(0),
            Data::U8(v) => v[row * dim..(row + 1) * dim].fill(0),
            Data::Bits(_) => unreachable!(),
        };
        for row in [0, 5] {
            zero(&mut q, row);
        }
        for row in [2, 16, 17, 44] {
            zero(&mut b, row);
        }
        if let Data::F32(v) = &mut b {
            v[30 * dim..31 * dim].fill(-0.0); // negative zeros are zero too
        }
        check_all(Metric::Cosine, &q, &b, dim, &[1, 6, nb], false, "zeros");
        // A zero query is at distance 0 from zero rows, 1 from all others.
        let got = knn_with(Metric::Cosine, q.as_ref(), b.as_ref(), dim, nb, KnnOptions::default()).unwrap();
        let row0 = &got.ids[..nb];
        let mut zeros = vec![2u32, 16, 17, 44];
        if dtype == DType::F32 {
            zeros = vec![2, 16, 17, 30, 44];
        }
        assert_eq!(&row0[..zeros.len()], &zeros[..]);
        assert!(got.distances[..zeros.len()].iter().all(|&d| d == 0.0));
        assert!(got.distances[zeros.len()..nb].iter().all(|&d| d == 1.0));
    }
}

#[test]
fn nan_and_inf_in_rows() {
    let mut rng = Rng(5);
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        for dim in [1, 7, 20] {
            let (nq, nb) = (10, 70);
            let mut q = Data::random(dtype, nq, dim, false, &mut rng);
            let mut b = Data::random(dtype, nb, dim, false, &mut rng);
            b.set(4, dim, dim - 1, f32::NAN);
            b.set(33, dim, 0, f32::NAN);
            b.set(10, dim, dim / 2, f32::INFINITY);
            b.set(60, dim, 0, f32::NEG_INFINITY);
            // Query 3 has a NaN (all its distances are NaN), query 7 an inf.
            q.set(3, dim, 0, f32::NAN);
            q.set(7, dim, dim - 1, f32::INFINITY);
            for metric in [Metric::InnerProduct, Metric::L2sq, Metric::Cosine] {
                check_all(metric, &q, &b, dim, &[1, 5, 69, nb], false, &format!("nan/inf dim {dim}"));
                // NaN rows rank last for every other query.
                let got = knn_with(metric, q.as_ref(), b.as_ref(), dim, nb, KnnOptions::default()).unwrap();
                // (For cosine, rows with an infinity are NaN too: inf / inf.)
                let last: &[u32] = if metric == Metric::Cosine { &[4, 10, 33, 60] } else { &[4, 33] };
                for qi in [0, 1, 9] {
                    let ids = &got.ids[qi * nb..(qi + 1) * nb];
                    assert_eq!(&ids[nb - last.len()..], last, "{dtype:?} {metric:?} dim {dim}");
                }
                let ids3 = &got.ids[3 * nb..4 * nb];
                assert!(ids3.iter().enumerate().all(|(i, &id)| id == i as u32), "NaN query keeps id order");
            }
        }
    }
}

#[test]
fn results_do_not_depend_on_thread_count() {
    let mut rng = Rng(6);
    let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
    let (p1, p2, p3) = (pool(1), pool(2), pool(3));
    let bits = |r: &Knn| (r.ids.clone(), r.distances.iter().map(|d| d.to_bits()).collect::<Vec<_>>());
    for dtype in [DType::F32, DType::BF16, DType::I8, DType::Bits] {
        for &(nq, nb, dim) in &[(1, 300, 24), (3, 260, 24), (50, 500, 40), (130, 90, 16)] {
            let q = Data::random(dtype, nq, dim, false, &mut rng);
            let b = Data::random(dtype, nb, dim, false, &mut rng);
            for &metric in metrics(dtype) {
                for opts in paths(dtype) {
                    let run = || knn_with(metric, q.as_ref(), b.as_ref(), dim, 10, opts).unwrap();
                    let (r1, r2, r3) = (p1.install(run), p2.install(run), p3.install(run));
                    assert_eq!(bits(&r1), bits(&r2), "{dtype:?} {metric:?} {nq}x{nb} {opts:?}");
                    assert_eq!(bits(&r1), bits(&r3), "{dtype:?} {metric:?} {nq}x{nb} {opts:?}");
                }
            }
        }
    }
}

#[test]
fn errors() {
    let q = [0f32; 8];
    let b = [0f32; 12];
    let qr = VectorsRef::F32(&q);
    let br = VectorsRef::F32(&b);
    let inv = |r: quarry_simd::Result<Knn>| matches!(r, Err(SimdError::InvalidArgument(_)));
    assert!(inv(knn(Metric::L2sq, qr, br, 4, 0)));
    assert!(inv(knn(Metric::L2sq, qr, br, 4, 4)));
    assert!(knn(Metric::L2sq, qr, br, 4, 3).is_ok());
    assert!(inv(knn(Metric::Hamming, qr, br, 4, 1)));
    assert!(inv(knn(Metric::L2sq, qr, br, 0, 1)));
    assert!(matches!(knn(Metric::L2sq, qr, br, 5, 1), Err(SimdError::DimMismatch(_))));
    let b16 = [f16::ZERO; 12];
    assert!(matches!(knn(Metric::L2sq, qr, VectorsRef::F16(&b16), 4, 1), Err(SimdError::DtypeMismatch(_))));
    // No queries: an empty answer.
    let none = knn(Metric::L2sq, VectorsRef::F32(&[]), br, 4, 2).unwrap();
    assert!(none.ids.is_empty() && none.distances.is_empty() && none.k == 2);
    // A level this CPU cannot run is refused, not run.
    for level in [quarry_simd::SimdLevel::Scalar, quarry_simd::SimdLevel::Neon, quarry_simd::SimdLevel::Avx2, quarry_simd::SimdLevel::Avx512] {
        let r = knn_with(Metric::L2sq, qr, br, 4, 1, KnnOptions { path: KnnPath::Gemm(level), chunk_rows: 0 });
        assert_eq!(r.is_ok(), gemm_levels().contains(&level), "{level:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random shapes, k, metric, level and chunk size; f32 and bf16.
    #[test]
    fn matches_reference(
        nq in 1usize..20,
        nb in 1usize..90,
        dim in 1usize..40,
        kf in 0.0f64..1.0,
        metric_i in 0usize..3,
        level_i in 0usize..8,
        chunk_rows in prop_oneof![Just(0usize), 1usize..64],
        seed in any::<u64>(),
        bf in any::<bool>(),
        small_ints in any::<bool>(),
    ) {
        let metric = [Metric::InnerProduct, Metric::L2sq, Metric::Cosine][metric_i];
        let levels = gemm_levels();
        let level = levels[level_i % levels.len()];
        let k = 1 + ((nb - 1) as f64 * kf) as usize;
        let dtype = if bf { DType::BF16 } else { DType::F32 };
        let mut rng = Rng(seed);
        let q = Data::random(dtype, nq, dim, small_ints, &mut rng);
        let b = Data::random(dtype, nb, dim, small_ints, &mut rng);
        let reference = Reference::new(metric, &q, &b, dim, is_exact(dtype, metric, small_ints));
        let opts = KnnOptions { path: KnnPath::Gemm(level), chunk_rows };
        let got = knn_with(metric, q.as_ref(), b.as_ref(), dim, k, opts).unwrap();
        reference.check(&got, k, &format!("{nq}x{nb}x{dim} {metric:?} k={k} {opts:?}"));
    }
}

/// Bounds that hold (the exact k-th value, widened a little, or no bound at
/// all) change nothing; a bound tighter than the k-th value may only drop
/// results (padded with `u32::MAX` / NaN), never return wrong ones.
#[test]
fn bounded_knn_equals_knn_when_bounds_hold() {
    let mut rng = Rng(17);
    let bits = |r: &Knn| (r.ids.clone(), r.distances.iter().map(|d| d.to_bits()).collect::<Vec<_>>());
    for &(nq, nb, dim) in &[(40, 300, 24), (200, 1000, 37), (9, 70, 8)] {
        let q = Data::random(DType::F32, nq, dim, false, &mut rng);
        let b = Data::random(DType::F32, nb, dim, false, &mut rng);
        for metric in [Metric::L2sq, Metric::InnerProduct, Metric::Cosine] {
            // Larger values are worse except for the inner product.
            let worse = if metric == Metric::InnerProduct { -1.0f32 } else { 1.0 };
            for k in [1, 5] {
                let full = knn(metric, q.as_ref(), b.as_ref(), dim, k).unwrap();
                let kth: Vec<f32> = full.distances.chunks(k).map(|d| d[k - 1]).collect();
                let widened: Vec<f32> = kth.iter().map(|&v| v + worse * (1e-3 + 1e-3 * v.abs())).collect();
                let none = vec![worse * f32::INFINITY; nq];
                for bounds in [&widened, &none] {
                    let got = knn_bounded(metric, q.as_ref(), b.as_ref(), dim, k, bounds).unwrap();
                    assert_eq!(bits(&got), bits(&full), "{metric:?} k {k} {nq}x{nb}");
                }
                // Too tight: halfway to the best one, so some results go.
                let tight: Vec<f32> = full.distances.chunks(k).map(|d| 0.5 * (d[0] + d[k - 1]) - worse * 1e-3).collect();
                let got = knn_bounded(metric, q.as_ref(), b.as_ref(), dim, k, &tight).unwrap();
                for qi in 0..nq {
                    for j in 0..k {
                        let id = got.ids[qi * k + j];
                        if id == u32::MAX {
                            assert!(got.distances[qi * k + j].is_nan());
                        } else {
                            // Every kept result is one of the true top-k, in order.
                            assert!(full.ids[qi * k..(qi + 1) * k].contains(&id), "{metric:?} k {k}");
                        }
                    }
                }
            }
        }
    }
    let q = Data::random(DType::F32, 10, 8, false, &mut rng);
    let err = knn_bounded(Metric::L2sq, q.as_ref(), q.as_ref(), 8, 1, &[0.0; 3]).unwrap_err();
    assert!(matches!(err, SimdError::InvalidArgument(_)));
}
