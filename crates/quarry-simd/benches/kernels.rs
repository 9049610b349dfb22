//! Criterion benches for the distance kernels (filled in per kernel and dtype).
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let a: Vec<f32> = (0..768).map(|i| i as f32).collect();
    c.bench_function("f32_dot_768", |b| b.iter(|| quarry_simd::kernels().f32_dot.clone()(&a, &a)));
}

criterion_group!(benches, bench);
criterion_main!(benches);
