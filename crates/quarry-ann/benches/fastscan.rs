//! Fast-scan kernel throughput: ns per vector for one query over n packed
//! vectors of m 4-bit codes, per level, against a plain f32 ADC table scan
//! over unpacked codes (Σ lut[s][code_s], the in-crate baseline).
//!
//! `cargo bench -p quarry-ann --bench fastscan`; criterion's "thrpt" line
//! is vectors per second (ns per vector = 1e9 / thrpt; for `batch3` it is
//! vector-query pairs per second). `quantize_lut` counts one table as n
//! elements only to share the group; read its time, not its throughput.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use quarry_ann::fastscan::{
    QuantizedLut, ScanLevel, TopKCollector, pack, scan_collect_batch_with_level, scan_collect_with_level,
    scan_with_level,
};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Plain asymmetric distance over unpacked codes, the baseline fast-scan replaces.
fn adc_f32(codes: &[u8], m: usize, lut: &[f32], out: &mut [f32]) {
    for (o, row) in out.iter_mut().zip(codes.chunks_exact(m)) {
        let mut s = 0.0f32;
        for (t, &c) in lut.chunks_exact(16).zip(row) {
            s += t[c as usize];
        }
        *o = s;
    }
}

fn bench(c: &mut Criterion) {
    let mut rng = Rng(42);
    for &n in &[300usize, 100_000] {
        for &m in &[16usize, 32, 50, 64] {
            let codes: Vec<u8> = (0..n * m).map(|_| (rng.next() & 15) as u8).collect();
            let lut_f32: Vec<f32> = (0..m * 16).map(|_| (rng.next() >> 40) as f32 / (1u64 << 24) as f32).collect();
            let lut = QuantizedLut::new(&lut_f32, m).unwrap();
            let batch: Vec<QuantizedLut> = (0..3)
                .map(|_| {
                    let t: Vec<f32> = (0..m * 16).map(|_| (rng.next() >> 40) as f32 / (1u64 << 24) as f32).collect();
                    QuantizedLut::new(&t, m).unwrap()
                })
                .collect();
            let batch: Vec<&QuantizedLut> = batch.iter().collect();
            let mut packed = Vec::new();
            pack(&codes, m, &mut packed).unwrap();
            let mut sums = vec![0u16; n];
            let mut dists = vec![0f32; n];

            let mut g = c.benchmark_group(format!("fastscan/n{n}/m{m}"));
            g.throughput(Throughput::Elements(n as u64));
            g.warm_up_time(std::time::Duration::from_millis(300));
            g.measurement_time(std::time::Duration::from_millis(1200));
            g.sample_size(20);
            g.bench_function("adc_f32", |b| b.iter(|| adc_f32(black_box(&codes), m, black_box(&lut_f32), &mut dists)));
            g.bench_function("quantize_lut", |b| b.iter(|| QuantizedLut::new(black_box(&lut_f32), m).unwrap()));
            for level in ScanLevel::all_available() {
                g.bench_with_input(BenchmarkId::new("scan", format!("{level:?}")), &level, |b, &level| {
                    b.iter(|| scan_with_level(level, black_box(&packed), n, &lut, &mut sums).unwrap())
                });
                g.bench_with_input(BenchmarkId::new("collect_top10", format!("{level:?}")), &level, |b, &level| {
                    b.iter(|| {
                        let mut top = TopKCollector::new(10);
                        scan_collect_with_level(level, black_box(&packed), n, &lut, &mut top).unwrap();
                        top.len()
                    })
                });
                // A collector already holding k results (as after the first
                // lists of an IVF probe): the steady state of scan + prune.
                let mut warm = TopKCollector::new(10);
                scan_collect_with_level(level, &packed, n, &lut, &mut warm).unwrap();
                g.bench_with_input(
                    BenchmarkId::new("collect_top10_warm", format!("{level:?}")),
                    &level,
                    |b, &level| {
                        b.iter(|| scan_collect_with_level(level, black_box(&packed), n, &lut, &mut warm).unwrap())
                    },
                );
            }
            // Three queries over the same list; throughput counts vectors × queries.
            g.throughput(Throughput::Elements(3 * n as u64));
            for level in ScanLevel::all_available() {
                g.bench_with_input(BenchmarkId::new("batch3_top10", format!("{level:?}")), &level, |b, &level| {
                    b.iter(|| {
                        let mut tops: Vec<TopKCollector> = (0..3).map(|_| TopKCollector::new(10)).collect();
                        scan_collect_batch_with_level(level, black_box(&packed), n, &batch, &mut tops).unwrap();
                        tops.len()
                    })
                });
            }
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
