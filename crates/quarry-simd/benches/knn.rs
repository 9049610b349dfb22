//! Exact k-NN throughput: f32, nb = 100k, dim = 100, nq = 1000, k = 10, inner
//! product and L2, in 1- and 2-thread rayon pools; the GEMM path (what `knn`
//! runs) against the naive per-query loop over the dispatched one-to-one
//! kernels.
//!
//! Throughput is reported in "elements" = floating-point operations
//! (`2 · nq · nb · dim` per call), so criterion's `Gelem/s` reads as GFLOP/s.
//! The naive loop runs only its first 50 queries (its throughput is per
//! operation, so the two stay comparable) to keep the bench short.
//!
//! `QUARRY_SIMD=scalar|avx2|...` caps the level, as for every kernel.
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use quarry_simd::knn::{KnnOptions, KnnPath, knn_with};
use quarry_simd::{Metric, VectorsRef};
use std::time::Duration;

const NB: usize = 100_000;
const DIM: usize = 100;
const NQ: usize = 1000;
const NQ_NAIVE: usize = 50;
const K: usize = 10;

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let base = random(NB * DIM, 0x9E37_79B9_7F4A_7C15);
    let queries = random(NQ * DIM, 0xD1B5_4A32_D192_ED03);
    let mut g = c.benchmark_group(format!("knn_f32_nb{NB}_d{DIM}_k{K}"));
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(8));
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        for metric in [Metric::InnerProduct, Metric::L2sq] {
            for (name, path, nq) in [("gemm", KnnPath::Auto, NQ), ("naive", KnnPath::Naive, NQ_NAIVE)] {
                let q = VectorsRef::F32(&queries[..nq * DIM]);
                let b = VectorsRef::F32(&base);
                let opts = KnnOptions { path, chunk_rows: 0 };
                g.throughput(Throughput::Elements((2 * nq * NB * DIM) as u64));
                let id = BenchmarkId::new(format!("{name}_{}_nq{nq}", metric.name()), format!("t{threads}"));
                g.bench_function(id, |bch| {
                    bch.iter(|| pool.install(|| knn_with(metric, q, b, DIM, K, opts).unwrap()));
                });
            }
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
