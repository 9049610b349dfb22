//! Kernel benches: dense prefill at 4k/8k (head_dim 64, 4 heads, 2 KV heads),
//! each sparse pattern at 8k (index build + compute), and decode at 32k
//! (dense vs Quest). Data: synthetic heads with sinks, a local diagonal and a
//! few vertical columns (the structure sparse patterns exploit); the
//! real-model comparison is `examples/real.rs`.
//!
//! `cargo bench -p quarry-attn --bench attn`

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use quarry_attn::*;
use std::hint::black_box;

fn data(heads: usize, kv_heads: usize, n: usize, d: usize, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut s = seed;
    let mut rnd = move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let mut q: Vec<f32> = (0..heads * n * d).map(|_| rnd()).collect();
    let mut k: Vec<f32> = (0..kv_heads * n * d).map(|_| rnd()).collect();
    let v: Vec<f32> = (0..kv_heads * n * d).map(|_| rnd()).collect();
    // Planted structure: channel 0 links all queries to sink/vertical keys;
    // channels 1..9 carry a rotary-like position code (local diagonal).
    for h in 0..heads {
        for i in 0..n {
            let r = &mut q[(h * n + i) * d..][..d];
            r[0] = 4.0;
            for f in 0..4 {
                let w = 0.3 + 0.4 * f as f32;
                r[1 + 2 * f] = 2.0 * (i as f32 * w).cos();
                r[2 + 2 * f] = 2.0 * (i as f32 * w).sin();
            }
        }
    }
    for g in 0..kv_heads {
        for j in 0..n {
            let r = &mut k[(g * n + j) * d..][..d];
            r[0] = if j < 4 || j % 997 == 0 { 4.0 } else { 0.0 };
            for f in 0..4 {
                let w = 0.3 + 0.4 * f as f32;
                r[1 + 2 * f] = 2.0 * (j as f32 * w).cos();
                r[2 + 2 * f] = 2.0 * (j as f32 * w).sin();
            }
        }
    }
    (q, k, v)
}

fn dense_prefill(c: &mut Criterion) {
    let mut g = c.benchmark_group("dense_prefill");
    g.sample_size(10);
    for &n in &[4096usize, 8192] {
        let shape = AttnShape::prefill(4, 2, n, 64);
        let (q, k, v) = data(4, 2, n, 64, 1);
        let flops = 4.0 * 4.0 * 64.0 * (n as f64) * (n as f64) / 2.0;
        g.throughput(criterion::Throughput::Elements(flops as u64));
        g.bench_with_input(BenchmarkId::new("causal_f32", n), &n, |b, _| {
            b.iter(|| black_box(dense_attention(&q, &k, &v, &shape, &AttnOptions::causal()).unwrap()))
        });
    }
    let n = 4096;
    let shape = AttnShape::prefill(4, 2, n, 64);
    let (q, k, v) = data(4, 2, n, 64, 1);
    let kh: Vec<f16> = k.iter().map(|&x| f16::from_f32(x)).collect();
    let vh: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
    g.bench_function("causal_f16kv/4096", |b| {
        b.iter(|| black_box(dense_attention(&q, &kh, &vh, &shape, &AttnOptions::causal()).unwrap()))
    });
    g.finish();
}

fn sparse_prefill_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("sparse_prefill_8k");
    g.sample_size(10);
    let n = 8192;
    let shape = AttnShape::prefill(4, 2, n, 64);
    let (q, k, v) = data(4, 2, n, 64, 1);
    let opts = AttnOptions::causal();
    let patterns = [
        PrefillPattern::Dense,
        PrefillPattern::AShape { sink: 64, window: 1024 },
        PrefillPattern::VerticalSlash { vertical: 500, slash: 500, last_q: 64, spread_q: 0, slash_lines: false, segment: 0 },
        PrefillPattern::VerticalSlash { vertical: 500, slash: 500, last_q: 64, spread_q: 0, slash_lines: true, segment: 0 },
        PrefillPattern::BlockTopK { gamma: 0.9, estimate: ScoreEstimate::Pooled },
        PrefillPattern::BlockTopK { gamma: 0.9, estimate: ScoreEstimate::PooledI4 },
    ];
    for p in patterns {
        let idx = build_index(&q, &k, &shape, &opts, &p).unwrap();
        let variant = match p {
            PrefillPattern::BlockTopK { estimate, .. } => format!("-{estimate:?}"),
            PrefillPattern::VerticalSlash { slash_lines: true, .. } => "-lines".into(),
            _ => String::new(),
        };
        let id = format!("{}{variant}", p.name());
        eprintln!("{id}: density {:.3}", idx.density());
        g.bench_function(BenchmarkId::new("build+compute", &id), |b| {
            b.iter(|| black_box(sparse_prefill(&q, &k, &v, &shape, &opts, &p).unwrap()))
        });
    }
    g.finish();
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode_32k");
    let n = 32768;
    let shape = AttnShape::decode(8, 2, n, 64);
    let (_, k, v) = data(1, 2, n, 64, 2);
    let (q, _, _) = data(8, 1, 1, 64, 3);
    let opts = AttnOptions::default();
    g.bench_function("dense", |b| b.iter(|| black_box(dense_decode(&q, &k, &v, &shape, &opts).unwrap())));
    let quest = QuestIndex::build(&k, &shape, 16).unwrap();
    let sel = quest.selector(n / 16, 4, 64);
    g.bench_function("quest_select+attend_1/16", |b| {
        b.iter(|| {
            let s = sel.select(&q, &shape).unwrap();
            black_box(sparse_decode(&q, &k, &v, &shape, &opts, &s).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, dense_prefill, sparse_prefill_bench, decode);
criterion_main!(benches);
