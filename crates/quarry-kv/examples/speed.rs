//! Decode-attention latency and quantize throughput for `npm run bench:kv`
//! (`benches/kv.mjs`), over SmolLM2-135M's shape (3 KV heads × 64 dims,
//! 9 query heads) filled with random keys/values (a uniform background plus
//! one large-offset channel, as real keys have).
//!
//! ```text
//! cargo run --release -p quarry-kv --example speed -- [--tokens 4096,32768,131072] [--threads 1,2]
//!     [--methods f32,f16,q8_0,q4_0,kivi-4,kivi-2,...] [--min-ms 300] [--json]
//!     [--interleave]
//! ```
//! Per size × method × thread count: the median and minimum of repeated
//! `attend` calls (one decode step of one layer, all 9 query heads), in ms,
//! plus bytes per token and the quantize (`append`) throughput in GB/s of
//! f32 input (keys + values) at 4096 tokens.

use quarry_kv::{KvCache, KvConfig, Method};
use std::hint::black_box;
use std::time::Instant;

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

fn parse_method(s: &str) -> (String, Method, u8) {
    let (name, bits) = match s.rsplit_once('-') {
        Some((n, b)) if b.parse::<u8>().is_ok() => (n, Some(b.parse::<u8>().unwrap())),
        _ => (s, None),
    };
    let m = Method::from_name(name).unwrap_or_else(|e| panic!("{s}: {e}"));
    let bits = bits.unwrap_or(KvConfig::new(1, 1, D, m).bits);
    (s.to_string(), m, bits)
}

fn cache_for(m: Method, bits: u8, k: &[f32], v: &[f32]) -> KvCache {
    let mut c = KvConfig::new(1, KV_HEADS, D, m);
    c.bits = bits;
    let mut cache = KvCache::new(c).unwrap();
    cache.append(0, k, v).unwrap();
    cache
}

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

unsafe extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}

/// CPU time of the whole process in ms (all threads): on a shared machine
/// it shows the work a step costs apart from time spent waiting for a core.
fn cpu_ms() -> f64 {
    const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: plain libc call writing into a valid timespec.
    unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.sec as f64 * 1e3 + ts.nsec as f64 * 1e-6
}

/// (median wall ms, min wall ms, mean process-CPU ms per call, calls).
fn time_it(min_ms: f64, mut f: impl FnMut()) -> (f64, f64, f64, usize) {
    f(); // warm-up
    let mut t = Vec::new();
    let start = Instant::now();
    let c0 = cpu_ms();
    while t.len() < 5 || (start.elapsed().as_secs_f64() * 1e3 < min_ms && t.len() < 2000) {
        let s = Instant::now();
        f();
        t.push(s.elapsed().as_secs_f64() * 1e3);
    }
    let cpu = (cpu_ms() - c0) / t.len() as f64;
    t.sort_by(f64::total_cmp);
    (t[t.len() / 2], t[0], cpu, t.len())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let list = |name: &str, def: &str| -> Vec<String> { arg(name).unwrap_or(def.to_string()).split(',').map(str::to_string).collect() };
    let sizes: Vec<usize> = list("--tokens", "4096,32768").iter().map(|s| s.parse().unwrap()).collect();
    let threads: Vec<usize> = list("--threads", "2").iter().map(|s| s.parse().unwrap()).collect();
    let methods: Vec<(String, Method, u8)> =
        list("--methods", "f32,f16,q8_0,q4_0,kivi-4,kivi-2,kvquant-4,kvquant-2,gear-4,gear-2,rotate-4,rotate-2,mikv-4,mikv-2,h2o")
            .iter()
            .map(|s| parse_method(s))
            .collect();
    let min_ms: f64 = arg("--min-ms").map(|s| s.parse().unwrap()).unwrap_or(300.0);
    let json = args.iter().any(|a| a == "--json");
    let q = data(Q_HEADS / KV_HEADS, 99);
    let f16_bpt = (KV_HEADS * D * 2 * 2) as f64;
    if args.iter().any(|a| a == "--interleave") {
        interleaved(&sizes, &threads, &methods, min_ms, &q, json);
        return;
    }
    if !json {
        println!("| tokens | method | threads | bytes/token | ×f16 | ms/step (median) | ms (min) | CPU ms/step | GB/s of cache |");
        println!("|---|---|---|---|---|---|---|---|---|");
    }
    for &n in &sizes {
        let (k, v) = (data(n, 1), data(n, 2));
        for (label, m, bits) in &methods {
            let mut cache = cache_for(*m, *bits, &k, &v);
            let bytes = cache.bytes();
            for &th in &threads {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(th).build().unwrap();
                let (med, min, cpu, reps) = pool.install(|| time_it(min_ms, || {
                    black_box(cache.attend(0, black_box(&q), None).unwrap());
                }));
                let gbs = bytes as f64 / (med * 1e-3) / 1e9;
                if json {
                    println!(
                        "{{\"kind\":\"attend\",\"tokens\":{n},\"method\":\"{label}\",\"threads\":{th},\"bytes\":{bytes},\"bytes_per_token\":{:.2},\"x_f16\":{:.4},\"ms_median\":{med:.4},\"ms_min\":{min:.4},\"cpu_ms\":{cpu:.4},\"reps\":{reps}}}",
                        bytes as f64 / n as f64,
                        bytes as f64 / n as f64 / f16_bpt
                    );
                } else {
                    println!(
                        "| {n} | {label} | {th} | {:.1} | {:.3} | {med:.3} | {min:.3} | {cpu:.3} | {gbs:.2} |",
                        bytes as f64 / n as f64,
                        bytes as f64 / n as f64 / f16_bpt
                    );
                }
            }
        }
    }
    if args.iter().any(|a| a == "--quantize") {
        let n = 4096;
        let (k, v) = (data(n, 3), data(n, 4));
        let input = (2 * k.len() * 4) as f64;
        for (label, m, bits) in &methods {
            for &th in &threads {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(th).build().unwrap();
                let (med, _, _, _) = pool.install(|| time_it(min_ms, || {
                    black_box(cache_for(*m, *bits, black_box(&k), black_box(&v)));
                }));
                let gbs = input / (med * 1e-3) / 1e9;
                if json {
                    println!("{{\"kind\":\"quantize\",\"tokens\":{n},\"method\":\"{label}\",\"threads\":{th},\"ms_median\":{med:.4},\"gb_per_s\":{gbs:.4}}}");
                } else {
                    println!("quantize {label} threads {th}: {med:.2} ms for {n} tokens = {gbs:.3} GB/s of f32 input");
                }
            }
        }
    }
}

/// `--interleave`: the methods' steps alternate within one process (one step
/// of each method per iteration, the order rotating), so every method runs
/// under the same background load, and each iteration gives a paired ratio
/// (first method's time / this method's time). A step then also starts with
/// its cache out of the CPU caches, as each layer's does in a real decode.
fn interleaved(sizes: &[usize], threads: &[usize], methods: &[(String, Method, u8)], min_ms: f64, q: &[f32], json: bool) {
    for &n in sizes {
        let (k, v) = (data(n, 1), data(n, 2));
        let mut caches: Vec<KvCache> = methods.iter().map(|(_, m, bits)| cache_for(*m, *bits, &k, &v)).collect();
        for &th in threads {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(th).build().unwrap();
            let mut t: Vec<Vec<f64>> = vec![Vec::new(); methods.len()];
            pool.install(|| {
                for c in caches.iter_mut() {
                    black_box(c.attend(0, black_box(q), None).unwrap()); // warm-up
                }
                let start = Instant::now();
                let mut it = 0;
                while it < 5 || (start.elapsed().as_secs_f64() * 1e3 < min_ms * methods.len() as f64 && it < 2000) {
                    for j in 0..methods.len() {
                        let i = (it + j) % methods.len();
                        let s = Instant::now();
                        black_box(caches[i].attend(0, black_box(q), None).unwrap());
                        t[i].push(s.elapsed().as_secs_f64() * 1e3);
                    }
                    it += 1;
                }
            });
            // (on copies: the step times must keep their iteration order for the pairing)
            let median = |x: &[f64]| {
                let mut x = x.to_vec();
                x.sort_by(f64::total_cmp);
                x[x.len() / 2]
            };
            for (i, (label, _, _)) in methods.iter().enumerate() {
                let ratios: Vec<f64> = t[0].iter().zip(&t[i]).map(|(a, b)| a / b).collect();
                let ratio = median(&ratios);
                let reps = t[i].len();
                let min = t[i].iter().cloned().fold(f64::INFINITY, f64::min);
                let med = median(&t[i]);
                if json {
                    println!("{{\"kind\":\"interleaved\",\"tokens\":{n},\"method\":\"{label}\",\"threads\":{th},\"ms_median\":{med:.4},\"ms_min\":{min:.4},\"paired_ratio\":{ratio:.4},\"reps\":{reps}}}");
                } else {
                    println!("{n} tokens, {th} threads, {label}: median {med:.3} ms, min {min:.3} ms, median paired ratio {} / {label} = {ratio:.3} ({reps} steps)", methods[0].0);
                }
            }
        }
    }
}
