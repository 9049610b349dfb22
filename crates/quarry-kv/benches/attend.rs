//! Decode-attention throughput over a filled cache (SmolLM2-135M's shape:
//! 3 KV heads × 64 dims, 9 query heads) at 4k and 32k cached tokens (128k
//! with `QUARRY_KV_BENCH_128K=1`) for every method vs f32 dense and f16,
//! and quantize (append) throughput in GB/s of f32 input.
//!
//! `cargo bench -p quarry-kv --bench attend` (filter e.g. `-- attend/32768`).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use quarry_kv::{KvCache, KvConfig, Method};
use std::hint::black_box;
use std::time::Duration;

const KV_HEADS: usize = 3;
const Q_HEADS: usize = 9;
const D: usize = 64;

fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..KV_HEADS * n * D)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let x = (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            if i % D == 5 { 8.0 * x + 3.0 } else { 2.0 * x }
        })
        .collect()
}

/// (label, method, bits)
fn methods() -> Vec<(String, Method, u8)> {
    let mut v = vec![
        ("f32".to_string(), Method::F32, 32),
        ("f16".to_string(), Method::F16, 16),
        ("q8_0".to_string(), Method::Q8_0, 8),
        ("q4_0".to_string(), Method::Q4_0, 4),
    ];
    for m in [Method::Kivi, Method::KvQuant, Method::Gear, Method::Rotate, Method::MiKv] {
        for bits in [4u8, 2] {
            v.push((format!("{}-{bits}", m.name()), m, bits));
        }
    }
    v.push(("h2o".to_string(), Method::H2o, 16));
    v
}

fn cache_for(m: Method, bits: u8, k: &[f32], v: &[f32]) -> KvCache {
    let mut c = KvConfig::new(1, KV_HEADS, D, m);
    c.bits = bits;
    let mut cache = KvCache::new(c).unwrap();
    cache.append(0, k, v).unwrap();
    cache
}

fn attend(c: &mut Criterion) {
    let mut sizes = vec![4096usize, 32768];
    if std::env::var_os("QUARRY_KV_BENCH_128K").is_some() {
        sizes.push(131072);
    }
    let q = data(Q_HEADS / KV_HEADS, 99);
    for &n in &sizes {
        let (k, v) = (data(n, 1), data(n, 2));
        let mut g = c.benchmark_group(format!("attend/{n}"));
        g.sample_size(20).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
        g.throughput(Throughput::Elements(n as u64));
        for (label, m, bits) in methods() {
            let mut cache = cache_for(m, bits, &k, &v);
            let bpt = cache.bytes() as f64 / n as f64;
            eprintln!("{label}: {bpt:.1} bytes/token ({:.3}× f16)", bpt / (KV_HEADS * D * 2 * 2) as f64);
            g.bench_function(BenchmarkId::from_parameter(&label), |b| {
                b.iter(|| black_box(cache.attend(0, black_box(&q), None).unwrap()))
            });
        }
        g.finish();
    }
}

fn quantize(c: &mut Criterion) {
    let n = 4096;
    let (k, v) = (data(n, 3), data(n, 4));
    let mut g = c.benchmark_group("quantize/4096");
    g.sample_size(10).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(300));
    g.throughput(Throughput::Bytes((2 * k.len() * 4) as u64));
    for (label, m, bits) in methods() {
        g.bench_function(BenchmarkId::from_parameter(&label), |b| b.iter(|| black_box(cache_for(m, bits, &k, &v))));
    }
    g.finish();
}

criterion_group!(benches, attend, quantize);
criterion_main!(benches);
