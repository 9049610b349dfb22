//! Fast-scan: packing round trips, every scan level against the scalar
//! level, the scalar level against a layout-free reference and against the
//! exact f32 ADC sum within the documented bound, and the collectors
//! against brute force.

use proptest::prelude::*;
use quarry_ann::fastscan::{
    self, BLOCK, Collector, QuantizedLut, ScanLevel, TopKCollector, pack, packed_len, scan_collect_with_level,
    scan_with_level, unpack, unpack_all,
};

/// splitmix64: deterministic test data without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn codes(&mut self, n: usize, m: usize) -> Vec<u8> {
        (0..n * m).map(|_| (self.next() & 15) as u8).collect()
    }
    fn lut(&mut self, m: usize) -> Vec<f32> {
        (0..m * 16).map(|_| self.f32() * 4.0 - 1.0).collect()
    }
}

/// The quantised sums read straight from the unpacked codes and the
/// documented table layout, independent of the packed layout.
fn reference_sums(codes: &[u8], m: usize, lut: &QuantizedLut) -> Vec<u16> {
    let t = lut.tables();
    codes
        .chunks_exact(m)
        .map(|row| {
            let s: u32 = row.iter().enumerate().map(|(s, &c)| t[(s / 2) * 32 + (s % 2) * 16 + c as usize] as u32).sum();
            u16::try_from(s).expect("sum fits u16")
        })
        .collect()
}

fn exact_adc(codes: &[u8], m: usize, lut: &[f32]) -> Vec<f64> {
    codes
        .chunks_exact(m)
        .map(|row| row.iter().enumerate().map(|(s, &c)| lut[s * 16 + c as usize] as f64).sum())
        .collect()
}

fn packed(codes: &[u8], m: usize) -> Vec<u8> {
    let mut p = Vec::new();
    pack(codes, m, &mut p).unwrap();
    p
}

/// Every available level gives the scalar level's sums, which equal the
/// layout-free reference.
fn check_levels(codes: &[u8], m: usize, lut: &QuantizedLut) {
    let n = codes.len() / m;
    let p = packed(codes, m);
    let expect = reference_sums(codes, m, lut);
    for level in ScanLevel::all_available() {
        let mut out = vec![0xdead_u16; n + 3];
        scan_with_level(level, &p, n, lut, &mut out).unwrap();
        assert_eq!(&out[..n], &expect[..], "level {level:?}, n {n}, m {m}");
        assert!(out[n..].iter().all(|&x| x == 0xdead), "level {level:?} wrote past n");
    }
}

/// |to_f32(sum) − exact| within the documented bound plus f32 rounding.
fn check_bound(codes: &[u8], m: usize, lut_f32: &[f32], lut: &QuantizedLut) {
    let n = codes.len() / m;
    let mut out = vec![0u16; n];
    scan_with_level(ScanLevel::Scalar, &packed(codes, m), n, lut, &mut out).unwrap();
    let magnitude: f64 = lut_f32.iter().map(|x| x.abs() as f64).fold(0.0, f64::max) * m as f64;
    let slack =
        lut.error_bound() as f64 * (1.0 + 1e-6) + 4.0 * f32::EPSILON as f64 * (magnitude + lut.bias().abs() as f64);
    for (i, exact) in exact_adc(codes, m, lut_f32).into_iter().enumerate() {
        let approx = lut.to_f32(out[i]) as f64;
        assert!((approx - exact).abs() <= slack, "vector {i}: approx {approx}, exact {exact}, bound {slack} (m {m})");
    }
}

#[test]
fn layout_sizes() {
    assert_eq!(packed_len(0, 7), 0);
    assert_eq!(packed_len(1, 1), 32);
    assert_eq!(packed_len(32, 2), 32);
    assert_eq!(packed_len(33, 3), 2 * 64);
    assert_eq!(packed_len(300, 50), 10 * 25 * 32);
}

#[test]
fn bad_input_is_an_error() {
    let mut out = Vec::new();
    assert_eq!(pack(&[1, 2, 3], 0, &mut out).unwrap_err().code(), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(pack(&[1, 2, 3], 2, &mut out).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    assert_eq!(pack(&[1, 16], 2, &mut out).unwrap_err().code(), "QUARRY_INVALID_INPUT");
    let mut p = packed(&[1, 2], 2);
    assert_eq!(fastscan::append(&mut p, 40, 2, &[3, 4]).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    let mut codes = [0u8; 2];
    assert_eq!(unpack(&p, 1, 2, 1, &mut codes).unwrap_err().code(), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(unpack(&p, 40, 2, 1, &mut codes).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    assert_eq!(QuantizedLut::new(&[0.0; 16], 2).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    assert_eq!(QuantizedLut::new(&[], 0).unwrap_err().code(), "QUARRY_INVALID_ARGUMENT");
    let mut nan = vec![0.0f32; 32];
    nan[17] = f32::NAN;
    assert_eq!(QuantizedLut::new(&nan, 2).unwrap_err().code(), "QUARRY_INVALID_INPUT");
    nan[17] = f32::INFINITY;
    assert_eq!(QuantizedLut::new(&nan, 2).unwrap_err().code(), "QUARRY_INVALID_INPUT");
    let lut = QuantizedLut::new(&[0.0; 48], 3).unwrap();
    let mut sums = [0u16; 4];
    assert_eq!(fastscan::scan(&p, 40, &lut, &mut sums).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    let p3 = packed(&[0; 15], 3);
    assert_eq!(fastscan::scan(&p3, 5, &lut, &mut sums).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    // A level this CPU lacks is refused, not run.
    for level in [ScanLevel::Avx2, ScanLevel::Avx512, ScanLevel::Neon] {
        if !level.available() {
            let mut sums = [0u16; 5];
            assert_eq!(scan_with_level(level, &p3, 5, &lut, &mut sums).unwrap_err().code(), "QUARRY_UNSUPPORTED");
        }
    }
    assert!(ScanLevel::best().available());
    // Empty lists scan to nothing.
    fastscan::scan(&[], 0, &lut, &mut []).unwrap();
    let mut top = TopKCollector::new(3);
    fastscan::scan_collect(&[], 0, &lut, &mut top).unwrap();
    assert!(top.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn pack_unpack_append_round_trip(m in 1usize..40, n in 0usize..150, seed in any::<u64>(), cuts in proptest::collection::vec(0usize..150, 0..4)) {
        let mut rng = Rng(seed);
        let codes = rng.codes(n, m);
        let whole = packed(&codes, m);
        prop_assert_eq!(whole.len(), packed_len(n, m));
        prop_assert_eq!(unpack_all(&whole, n, m).unwrap(), codes.clone());
        let mut row = vec![0u8; m];
        for i in 0..n {
            unpack(&whole, n, m, i, &mut row).unwrap();
            prop_assert_eq!(&row[..], &codes[i * m..(i + 1) * m]);
        }
        // Appending in pieces gives byte for byte the same buffer.
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(n)).collect();
        cuts.sort_unstable();
        cuts.push(n);
        let mut grown = Vec::new();
        let mut done = 0;
        for cut in cuts {
            fastscan::append(&mut grown, done, m, &codes[done * m..cut * m]).unwrap();
            done = cut;
            prop_assert_eq!(grown.len(), packed_len(done, m));
        }
        prop_assert_eq!(grown, whole);
    }

    #[test]
    fn levels_match_reference(m in 1usize..70, n in 0usize..200, seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let codes = rng.codes(n, m);
        let lut_f32 = rng.lut(m);
        let lut = QuantizedLut::new(&lut_f32, m).unwrap();
        check_levels(&codes, m, &lut);
        check_bound(&codes, m, &lut_f32, &lut);
    }

    #[test]
    fn threshold_conversion_is_tight(m in 1usize..300, seed in any::<u64>(), t in -50.0f32..400.0, offset in prop::sample::select(vec![0.0f32, 1e4, 1e7])) {
        let mut rng = Rng(seed);
        // Large offsets make f32 merge many sums into one distance.
        let lut = QuantizedLut::new(&rng.lut(m), m).unwrap().with_offset(offset);
        let t = t + offset;
        let a = lut.from_f32_threshold(t);
        if lut.to_f32(0) <= t {
            prop_assert!(lut.to_f32(a) <= t);
        } else {
            prop_assert_eq!(a, 0);
        }
        prop_assert!(a == u16::MAX || lut.to_f32(a + 1) > t);
    }
}

#[test]
fn big_and_odd_m() {
    let mut rng = Rng(7);
    for &(m, n) in &[
        (1, 33),
        (2, 1),
        (3, 64),
        (63, 95),
        (199, 97),
        (200, 161),
        (256, 40),
        (257, 40),
        (300, 70),
        (1001, 33),
        (4096, 5),
    ] {
        let codes = rng.codes(n, m);
        let lut_f32 = rng.lut(m);
        let lut = QuantizedLut::new(&lut_f32, m).unwrap();
        check_levels(&codes, m, &lut);
        check_bound(&codes, m, &lut_f32, &lut);
    }
}

/// Every vector takes each table's maximum: the largest sums the u16
/// accumulators can see, for m on both sides of the 255-per-entry regime.
#[test]
fn worst_case_sums_do_not_overflow() {
    for &m in &[1usize, 2, 127, 255, 256, 257, 258, 400, 4096] {
        let lut_f32: Vec<f32> = (0..m * 16).map(|i| if i % 16 == 15 { 1.0 } else { 0.0 }).collect();
        let lut = QuantizedLut::new(&lut_f32, m).unwrap();
        let n = 40;
        let codes = vec![15u8; n * m];
        check_levels(&codes, m, &lut);
        check_bound(&codes, m, &lut_f32, &lut);
        let sums = reference_sums(&codes, m, &lut);
        if m <= 256 {
            assert_eq!(sums[0] as usize, 255 * m, "m {m} keeps full u8 precision");
        }
    }
}

#[test]
fn adversarial_tables() {
    let mut rng = Rng(11);
    let m = 13;
    let n = 77;
    let codes = rng.codes(n, m);
    let mut cases: Vec<Vec<f32>> = vec![
        vec![0.0; m * 16],
        vec![-3.5; m * 16],
        (0..m * 16).map(|i| (i % 16) as f32 * -1e-3 - 7.0).collect(),
        (0..m * 16).map(|_| -rng.f32() * 1e6).collect(),
        (0..m * 16).map(|i| if i.is_multiple_of(3) { 1e-30 } else { 0.0 }).collect(),
        (0..m * 16).map(|i| if i.is_multiple_of(2) { f32::MAX / 64.0 } else { -f32::MAX / 64.0 }).collect(),
        (0..m * 16).map(|i| if i % 16 < 8 { 2.0 } else { 2.0 + f32::EPSILON * 2.0 }).collect(),
    ];
    let mut huge = rng.lut(m);
    huge[37] = 1e30;
    cases.push(huge);
    let mut one_table = vec![0.0f32; m * 16];
    one_table[5 * 16 + 9] = -42.0;
    cases.push(one_table);
    for lut_f32 in &cases {
        let lut = QuantizedLut::new(lut_f32, m).unwrap();
        check_levels(&codes, m, &lut);
        check_bound(&codes, m, lut_f32, &lut);
    }
    // Tables whose sums leave the f32 range are refused.
    let overflow: Vec<f32> = (0..m * 16).map(|i| if i.is_multiple_of(2) { f32::MAX } else { -f32::MAX }).collect();
    assert_eq!(QuantizedLut::new(&overflow, m).unwrap_err().code(), "QUARRY_INVALID_INPUT");
    // Constant tables quantise to all zeros and give the exact constant.
    let lut = QuantizedLut::new(&vec![-3.5; m * 16], m).unwrap();
    let mut out = vec![1u16; n];
    fastscan::scan(&packed(&codes, m), n, &lut, &mut out).unwrap();
    assert!(out.iter().all(|&s| s == 0));
    assert_eq!(lut.to_f32(0), -3.5 * m as f32);
    // A caller offset moves every distance.
    let shifted = QuantizedLut::new(&vec![-3.5; m * 16], m).unwrap().with_offset(1.5);
    assert_eq!(shifted.to_f32(0), -3.5 * m as f32 + 1.5);
    let mut reset = shifted.clone();
    reset.set_offset(-2.0);
    assert_eq!(reset.to_f32(0), -3.5 * m as f32 - 2.0);
    assert_eq!(reset.tables(), shifted.tables());
}

/// Brute force: the k best (to_f32(sum), pos) among allowed positions.
fn brute_top_k(sums: &[u16], lut: &QuantizedLut, k: usize, allow: &dyn Fn(usize) -> bool) -> Vec<(f32, usize)> {
    let mut all: Vec<(f32, usize)> =
        sums.iter().enumerate().filter(|(i, _)| allow(*i)).map(|(i, &s)| (lut.to_f32(s), i)).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.truncate(k);
    all
}

#[test]
fn top_k_matches_brute_force() {
    let mut rng = Rng(3);
    for case in 0..120 {
        let m = 1 + rng.below(70);
        let n = rng.below(400);
        let k = [1, 5, 10, 50, 500][case % 5];
        let mut codes = rng.codes(n, m);
        // Duplicate rows make exact ties, which must go to the earlier position.
        for i in (1..n).step_by(3) {
            let (a, b) = codes.split_at_mut(i * m);
            b[..m].copy_from_slice(&a[(i - 1) * m..i * m]);
        }
        let lut_f32 = if case.is_multiple_of(7) { vec![1.0; m * 16] } else { rng.lut(m) };
        let lut = QuantizedLut::new(&lut_f32, m).unwrap();
        let p = packed(&codes, m);
        let sums = reference_sums(&codes, m, &lut);
        let modulus = 1 + case % 4;
        let allow = move |i: usize| i.is_multiple_of(modulus);
        let expect_all = brute_top_k(&sums, &lut, k, &|_| true);
        let expect_filtered = brute_top_k(&sums, &lut, k, &allow);
        for level in ScanLevel::all_available() {
            let mut top = TopKCollector::new(k);
            scan_collect_with_level(level, &p, n, &lut, &mut top).unwrap();
            assert_eq!(top.into_sorted(), expect_all, "level {level:?} case {case}");
            let mut top = TopKCollector::with_filter(k, &allow);
            scan_collect_with_level(level, &p, n, &lut, &mut top).unwrap();
            assert_eq!(top.into_sorted(), expect_filtered, "filtered, level {level:?} case {case}");
        }
    }
}

/// Records every offer under a fixed threshold.
struct Recorder {
    t: f32,
    offers: Vec<(usize, f32)>,
}
impl Collector for Recorder {
    fn threshold(&self) -> f32 {
        self.t
    }
    fn offer(&mut self, pos: usize, dist: f32) {
        self.offers.push((pos, dist));
    }
}

/// Pruning offers exactly the vectors whose f32 distance is within the
/// threshold (plus sum-0 vectors when even 0 is above it), in order.
#[test]
fn pruning_offers_exactly_the_survivors() {
    let mut rng = Rng(5);
    for case in 0..80 {
        let m = 1 + rng.below(64);
        let n = rng.below(300);
        let codes = rng.codes(n, m);
        let lut = QuantizedLut::new(&rng.lut(m), m).unwrap();
        let p = packed(&codes, m);
        let sums = reference_sums(&codes, m, &lut);
        let lo = lut.to_f32(0);
        let hi = lut.to_f32(sums.iter().copied().max().unwrap_or(0));
        let t = match case % 5 {
            0 => f32::INFINITY,
            1 => lo - 1.0,
            2 => lut.to_f32(sums.get(n / 2).copied().unwrap_or(0)),
            _ => lo + (hi - lo) * rng.f32(),
        };
        let expect: Vec<(usize, f32)> = sums
            .iter()
            .enumerate()
            .filter(|&(_, &s)| lut.to_f32(s) <= t || (s == 0 && lo > t))
            .map(|(i, &s)| (i, lut.to_f32(s)))
            .collect();
        for level in ScanLevel::all_available() {
            let mut rec = Recorder { t, offers: Vec::new() };
            scan_collect_with_level(level, &p, n, &lut, &mut rec).unwrap();
            assert_eq!(rec.offers, expect, "level {level:?} case {case} t {t}");
        }
    }
}

/// One collector across several lists (each with its own table, as IVF
/// residual tables are) equals brute force over the concatenation.
#[test]
fn collector_spans_lists() {
    let mut rng = Rng(9);
    let m = 25;
    let sizes = [70usize, 0, 33, 300, 1];
    let mut all = Vec::new();
    let mut top = TopKCollector::new(10);
    let mut base = 0;
    for &n in &sizes {
        let codes = rng.codes(n, m);
        let lut = QuantizedLut::new(&rng.lut(m), m).unwrap().with_offset(rng.f32());
        let sums = reference_sums(&codes, m, &lut);
        all.extend(sums.iter().enumerate().map(|(i, &s)| (lut.to_f32(s), base + i)));
        top.set_base(base);
        fastscan::scan_collect(&packed(&codes, m), n, &lut, &mut top).unwrap();
        base += n;
    }
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.truncate(10);
    assert_eq!(top.into_sorted(), all);
}

#[test]
fn k_zero_keeps_nothing() {
    let mut rng = Rng(1);
    let codes = rng.codes(50, 4);
    let lut = QuantizedLut::new(&rng.lut(4), 4).unwrap();
    let mut top = TopKCollector::new(0);
    fastscan::scan_collect(&packed(&codes, 4), 50, &lut, &mut top).unwrap();
    assert!(top.is_empty());
    assert_eq!(BLOCK, 32);
}

/// The batch scan gives each query exactly what its own scan gives, for
/// batch sizes that exercise the groups of 3 and 2 and a single remainder.
#[test]
fn batch_equals_single_queries() {
    let mut rng = Rng(21);
    for case in 0..40 {
        let m = 1 + rng.below(70);
        let n = rng.below(300);
        let queries = 1 + case % 7;
        let codes = rng.codes(n, m);
        let p = packed(&codes, m);
        let luts: Vec<QuantizedLut> =
            (0..queries).map(|q| QuantizedLut::new(&rng.lut(m), m).unwrap().with_offset(q as f32 * 0.1)).collect();
        let refs: Vec<&QuantizedLut> = luts.iter().collect();
        let allow = |i: usize| i % 3 != 1;
        let k = [1, 10, 40][case % 3];
        let expect: Vec<Vec<(f32, usize)>> = luts
            .iter()
            .map(|l| {
                let mut top = TopKCollector::with_filter(k, &allow);
                scan_collect_with_level(ScanLevel::Scalar, &p, n, l, &mut top).unwrap();
                top.into_sorted()
            })
            .collect();
        for level in ScanLevel::all_available() {
            let mut tops: Vec<TopKCollector> = (0..queries).map(|_| TopKCollector::with_filter(k, &allow)).collect();
            fastscan::scan_collect_batch_with_level(level, &p, n, &refs, &mut tops).unwrap();
            let got: Vec<Vec<(f32, usize)>> = tops.into_iter().map(|t| t.into_sorted()).collect();
            assert_eq!(got, expect, "level {level:?} case {case}");
        }
    }
    // Mismatched batches are errors, an empty batch is a no-op.
    let lut2 = QuantizedLut::new(&[0.0; 32], 2).unwrap();
    let lut3 = QuantizedLut::new(&[0.0; 48], 3).unwrap();
    let p = packed(&[0; 6], 2);
    let mut one = vec![TopKCollector::new(1)];
    assert_eq!(
        fastscan::scan_collect_batch(&p, 3, &[&lut2, &lut2], &mut one).unwrap_err().code(),
        "QUARRY_DIM_MISMATCH"
    );
    let mut two = vec![TopKCollector::new(1), TopKCollector::new(1)];
    assert_eq!(
        fastscan::scan_collect_batch(&p, 3, &[&lut2, &lut3], &mut two).unwrap_err().code(),
        "QUARRY_DIM_MISMATCH"
    );
    fastscan::scan_collect_batch::<TopKCollector>(&p, 3, &[], &mut []).unwrap();
}
