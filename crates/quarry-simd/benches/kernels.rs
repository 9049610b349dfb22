//! Criterion benches for the distance kernels.
//!
//! * `one_to_one/<dtype>_<metric>`: one pair of vectors at dims 100, 384, 768
//!   and 1536 (binary: that many bits, rounded up to whole bytes), for the
//!   dispatched level and for `scalar` side by side; throughput is the bytes
//!   of both operands.
//! * `one_to_many/<dtype>_<metric>_768/<rows>`: one query against 1,000 and
//!   200,000 rows of dim 768 (f32, i8, binary). `api` is the public
//!   [`one_to_many_into`] (dispatched kernels, rayon above 131,072
//!   elements); `serial-<level>` a plain single-threaded loop over the rows
//!   with that level's table, to compare levels on the same memory traffic.
//!
//! Each case measures for about a second: `cargo bench -p quarry-simd
//! --bench kernels -- f32_dot` runs a subset. `QUARRY_SIMD=scalar` forces the
//! dispatched level (and so `api`) down for comparison.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use quarry_simd::{
    Kernels, Metric, SimdLevel, VectorsRef, bf16, f16, kernels, kernels_for, one_to_many_into, supported_levels,
};
use std::hint::black_box;
use std::time::Duration;

const DIMS: [usize; 4] = [100, 384, 768, 1536];

/// The dispatched table, then Scalar (when it is not the dispatched one).
fn tables() -> Vec<&'static Kernels> {
    let mut t = vec![kernels()];
    if kernels().level != SimdLevel::Scalar {
        t.push(kernels_for(SimdLevel::Scalar).unwrap());
    }
    t
}

/// Deterministic pseudo-random values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn bytes(n: usize, seed: u64) -> Vec<u8> {
    values(n, seed).iter().map(|&x| (x * 127.5 + 127.5) as u8).collect()
}

/// One `one_to_one/<name>` group: each table's kernel (selected by `pick`)
/// at every dim, on operands made by `make`.
fn one_to_one<T, R>(
    c: &mut Criterion,
    name: &str,
    make: impl Fn(usize, u64) -> Vec<T>,
    elems: impl Fn(usize) -> usize,
    pick: impl Fn(&Kernels) -> fn(&[T], &[T]) -> R,
) {
    let mut g = c.benchmark_group(format!("one_to_one/{name}"));
    g.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1)).sample_size(20);
    for dim in DIMS {
        let n = elems(dim);
        let (a, b) = (make(n, 1), make(n, 2));
        g.throughput(Throughput::Bytes((2 * n * size_of::<T>()) as u64));
        for k in tables() {
            let f = pick(k);
            g.bench_with_input(BenchmarkId::new(k.level.name(), dim), &dim, |bench, _| {
                bench.iter(|| f(black_box(&a), black_box(&b)))
            });
        }
    }
    g.finish();
}

fn bench_one_to_one(c: &mut Criterion) {
    let f32s = |n, s| values(n, s);
    let f16s = |n, s| values(n, s).into_iter().map(f16::from_f32).collect::<Vec<_>>();
    let bf16s = |n, s| values(n, s).into_iter().map(bf16::from_f32).collect::<Vec<_>>();
    let i8s = |n, s| bytes(n, s).into_iter().map(|x| x as i8).collect::<Vec<_>>();
    let u8s = |n, s| bytes(n, s);
    let same = |d: usize| d;
    let bits = |d: usize| d.div_ceil(8);

    one_to_one(c, "f32_dot", f32s, same, |k| k.f32_dot);
    one_to_one(c, "f32_l2sq", f32s, same, |k| k.f32_l2sq);
    one_to_one(c, "f32_cosine", f32s, same, |k| k.f32_cosine);
    one_to_one(c, "f16_dot", f16s, same, |k| k.f16_dot);
    one_to_one(c, "f16_l2sq", f16s, same, |k| k.f16_l2sq);
    one_to_one(c, "f16_cosine", f16s, same, |k| k.f16_cosine);
    one_to_one(c, "bf16_dot", bf16s, same, |k| k.bf16_dot);
    one_to_one(c, "bf16_l2sq", bf16s, same, |k| k.bf16_l2sq);
    one_to_one(c, "bf16_cosine", bf16s, same, |k| k.bf16_cosine);
    one_to_one(c, "i8_dot", i8s, same, |k| k.i8_dot);
    one_to_one(c, "i8_l2sq", i8s, same, |k| k.i8_l2sq);
    one_to_one(c, "i8_cosine", i8s, same, |k| k.i8_cosine);
    one_to_one(c, "u8_dot", u8s, same, |k| k.u8_dot);
    one_to_one(c, "u8_l2sq", u8s, same, |k| k.u8_l2sq);
    one_to_one(c, "u8_cosine", u8s, same, |k| k.u8_cosine);
    one_to_one(c, "bits_hamming", u8s, bits, |k| k.bits_hamming);
    one_to_one(c, "bits_jaccard", u8s, bits, |k| k.bits_jaccard);
}

/// One `one_to_many/<name>` group over 1,000 and 200,000 rows of `dim`.
#[allow(clippy::too_many_arguments)]
fn one_to_many<T: Copy, R: Into<f64>>(
    c: &mut Criterion,
    name: &str,
    metric: Metric,
    dim: usize,
    row_len: usize,
    make: impl Fn(usize, u64) -> Vec<T>,
    wrap: impl for<'a> Fn(&'a [T]) -> VectorsRef<'a>,
    pick: impl Fn(&Kernels) -> fn(&[T], &[T]) -> R,
) {
    let mut g = c.benchmark_group(format!("one_to_many/{name}"));
    g.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2)).sample_size(10);
    let q = make(row_len, 3);
    for rows in [1_000usize, 200_000] {
        let m = make(row_len * rows, 4);
        let mut out = vec![0f32; rows];
        g.throughput(Throughput::Bytes((m.len() * size_of::<T>()) as u64));
        g.bench_function(BenchmarkId::new(format!("api-{}", kernels().level.name()), rows), |bench| {
            bench.iter(|| one_to_many_into(metric, wrap(&q), wrap(black_box(&m)), dim, &mut out).unwrap())
        });
        for k in tables() {
            let f = pick(k);
            g.bench_function(BenchmarkId::new(format!("serial-{}", k.level.name()), rows), |bench| {
                bench.iter(|| {
                    for (r, o) in black_box(&m).chunks_exact(row_len).zip(out.iter_mut()) {
                        *o = f(&q, r).into() as f32;
                    }
                })
            });
        }
    }
    g.finish();
}

fn bench_one_to_many(c: &mut Criterion) {
    let dim = 768;
    let f32s = |n, s| values(n, s);
    let i8s = |n, s| bytes(n, s).into_iter().map(|x| x as i8).collect::<Vec<_>>();
    let u8s = |n, s| bytes(n, s);
    one_to_many(c, "f32_l2sq_768", Metric::L2sq, dim, dim, f32s, |s| VectorsRef::F32(s), |k| k.f32_l2sq);
    one_to_many(c, "f32_dot_768", Metric::InnerProduct, dim, dim, f32s, |s| VectorsRef::F32(s), |k| k.f32_dot);
    one_to_many(c, "i8_dot_768", Metric::InnerProduct, dim, dim, i8s, |s| VectorsRef::I8(s), |k| k.i8_dot);
    one_to_many(c, "bits_hamming_768", Metric::Hamming, dim, dim / 8, u8s, |s| VectorsRef::Bits(s), |k| k.bits_hamming);
}

fn report_levels(_: &mut Criterion) {
    eprintln!("levels on this CPU: {:?}; dispatched: {:?}", supported_levels(), kernels().level);
}

criterion_group!(benches, report_levels, bench_one_to_one, bench_one_to_many);
criterion_main!(benches);
