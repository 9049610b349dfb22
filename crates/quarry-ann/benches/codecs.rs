//! Criterion benches for the codecs (dim 100, the GloVe-100 shape):
//!
//! * `kmeans/train/k256`: k-means on 20,000 vectors, 10 iterations;
//!   throughput counts training vectors × iterations.
//! * `pq/encode/<bits>`: PQ with m = 50 (dsub = 2), 10,000 vectors.
//! * `pq/adc_scan/<bits>`: one lookup table against 100,000 codes.
//! * `sq8/scan/<metric>`: one prepared query against 100,000 SQ8 codes
//!   (`simd` = the dispatched scan, `portable` = the scalar loop).
//! * `binary/{hamming,asym}`: 100,000 two-level codes.
//!
//! Throughput is per vector (`elements`). `cargo bench -p quarry-ann --bench
//! codecs -- adc_scan` runs a subset.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use quarry_ann::binary::BinaryCodec;
use quarry_ann::kmeans::{self, KMeansConfig, Rng};
use quarry_ann::pq::ProductQuantizer;
use quarry_ann::sq8::Sq8;
use quarry_ann::{Control, Metric};
use std::hint::black_box;
use std::time::Duration;

const DIM: usize = 100;
const SCAN_ROWS: usize = 100_000;

/// Clustered Gaussian data (64 blobs), deterministic.
fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let centers: Vec<f32> = (0..64 * DIM).map(|_| rng.gaussian() as f32).collect();
    (0..n)
        .flat_map(|i| {
            let c = (i * 7919) % 64;
            (0..DIM).map(|d| centers[c * DIM + d] + 0.5 * rng.gaussian() as f32).collect::<Vec<_>>()
        })
        .collect()
}

fn bench_kmeans(c: &mut Criterion) {
    let train = data(20_000, 1);
    let mut g = c.benchmark_group("kmeans");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    let cfg = KMeansConfig { k: 256, iterations: 10, seed: 1, ..KMeansConfig::default() };
    g.throughput(Throughput::Elements((20_000 * cfg.iterations) as u64));
    g.bench_function("train/k256", |b| b.iter(|| kmeans::train(black_box(&train), DIM, &cfg, Control::none()).unwrap()));
    g.finish();
}

fn bench_pq(c: &mut Criterion) {
    let train = data(20_000, 2);
    let base = data(SCAN_ROWS, 3);
    let query = data(1, 4);
    let mut g = c.benchmark_group("pq");
    g.sample_size(10).measurement_time(Duration::from_secs(2));
    for nbits in [8u32, 4] {
        let pq = ProductQuantizer::train(&train, DIM, 50, nbits, 1, Control::none()).unwrap();
        let enc_rows = 10_000;
        let mut codes = vec![0u8; enc_rows * pq.code_size()];
        g.throughput(Throughput::Elements(enc_rows as u64));
        g.bench_function(BenchmarkId::new("encode", nbits), |b| {
            b.iter(|| pq.encode(black_box(&base[..enc_rows * DIM]), &mut codes).unwrap())
        });
        let mut codes = vec![0u8; SCAN_ROWS * pq.code_size()];
        pq.encode(&base, &mut codes).unwrap();
        let mut lut = vec![0f32; pq.m * pq.ksub()];
        pq.lut(&query, Metric::L2, &mut lut).unwrap();
        let mut out = vec![0f32; SCAN_ROWS];
        g.throughput(Throughput::Elements(SCAN_ROWS as u64));
        g.bench_function(BenchmarkId::new("adc_scan", nbits), |b| {
            b.iter(|| pq.adc_scan(black_box(&codes), black_box(&lut), &mut out).unwrap())
        });
    }
    g.finish();
}

fn bench_sq8(c: &mut Criterion) {
    let base = data(SCAN_ROWS, 5);
    let query = data(1, 6);
    let sq = Sq8::train(&base, DIM).unwrap();
    let mut codes = vec![0u8; base.len()];
    sq.encode(&base, &mut codes).unwrap();
    let mut out = vec![0f32; SCAN_ROWS];
    let mut g = c.benchmark_group("sq8");
    g.sample_size(10).measurement_time(Duration::from_secs(2)).throughput(Throughput::Elements(SCAN_ROWS as u64));
    for metric in [Metric::L2, Metric::InnerProduct] {
        let q = sq.prepare(&query, metric).unwrap();
        g.bench_function(BenchmarkId::new("scan/simd", metric.name()), |b| {
            b.iter(|| sq.scan(black_box(&q), black_box(&codes), &mut out).unwrap())
        });
        g.bench_function(BenchmarkId::new("scan/portable", metric.name()), |b| {
            b.iter(|| sq.scan_portable(black_box(&q), black_box(&codes), &mut out).unwrap())
        });
    }
    g.finish();
}

fn bench_binary(c: &mut Criterion) {
    let base = data(SCAN_ROWS, 7);
    let query = data(1, 8);
    let codec = BinaryCodec::train(&base[..20_000 * DIM], DIM, 2).unwrap();
    let mut codes = vec![0u8; SCAN_ROWS * codec.code_size()];
    codec.encode(&base, &mut codes).unwrap();
    let qbits = codec.encode_query_bits(&query).unwrap();
    let mut out = vec![0f32; SCAN_ROWS];
    let mut g = c.benchmark_group("binary");
    g.sample_size(10).measurement_time(Duration::from_secs(2)).throughput(Throughput::Elements(SCAN_ROWS as u64));
    g.bench_function("hamming", |b| b.iter(|| codec.hamming_scan(black_box(&qbits), black_box(&codes), &mut out).unwrap()));
    g.bench_function("asym/l2", |b| b.iter(|| codec.asym_scan(black_box(&query), Metric::L2, black_box(&codes), &mut out).unwrap()));
    g.finish();
}

criterion_group!(benches, bench_kmeans, bench_pq, bench_sq8, bench_binary);
criterion_main!(benches);
