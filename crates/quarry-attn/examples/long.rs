//! Long-context prefill beyond the dumps' length: synthetic heads (sinks,
//! a rotary-like local code, a few far vertical columns, a needle key the
//! last queries attend to) at N tokens; dense vs vertical-slash (and
//! A-shape) with recall, output error, density and speedup.
//!
//! `cargo run -p quarry-attn --release --example long -- [TOKENS=65536] [HEADS=1]`

use quarry_attn::*;
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let n = args.first().copied().unwrap_or(65536);
    let heads = args.get(1).copied().unwrap_or(1);
    let d = 64;
    let shape = AttnShape::prefill(heads, heads, n, d);
    let (q, k, v) = data(heads, n, d);
    let opts = AttnOptions::causal();
    let t = Instant::now();
    let dense = dense_attention(&q, &k, &v, &shape, &opts).unwrap();
    let dense_s = t.elapsed().as_secs_f64();
    let flops = 4.0 * d as f64 * dense_pairs(&shape, true) as f64 * heads as f64;
    println!(
        "tokens {n}, heads {heads}, head_dim {d}, threads {}: dense {:.2} s ({:.1} GFLOP/s)",
        rayon::current_num_threads(),
        dense_s,
        flops / dense_s / 1e9
    );
    for (name, p) in [
        ("vertical-slash", PrefillPattern::VerticalSlash { vertical: 1000, slash: 2000, last_q: 64, spread_q: 0, slash_lines: false, segment: 0 }),
        ("a-shape", PrefillPattern::AShape { sink: 64, window: 4096 }),
        ("block-topk g0.9", PrefillPattern::BlockTopK { gamma: 0.9, estimate: ScoreEstimate::Pooled }),
    ] {
        let t = Instant::now();
        let out = sparse_prefill(&q, &k, &v, &shape, &opts, &p).unwrap();
        let s = t.elapsed().as_secs_f64();
        let rec = recall_from_lse(&out.lse, &dense.lse, heads, n);
        // The needle row set: the last 64 queries.
        let last: Vec<f32> = (0..heads).flat_map(|h| out.lse[h * n + n - 64..h * n + n].to_vec()).collect();
        let last_d: Vec<f32> = (0..heads).flat_map(|h| dense.lse[h * n + n - 64..h * n + n].to_vec()).collect();
        let rec_last = recall_from_lse(&last, &last_d, heads, 64);
        println!(
            "{name:<16} {s:>7.2} s  speedup {:>5.2}x  density {:.4}  recall {:.4} (min row {:.4}, last-64 rows {:.4})  out-err {:.2e}",
            dense_s / s,
            out.density,
            rec.mean,
            rec.min,
            rec_last.mean,
            relative_error(&out.output, &dense.output)
        );
    }
}

fn data(heads: usize, n: usize, d: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut s = 12345u64;
    let mut rnd = move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let mut q: Vec<f32> = (0..heads * n * d).map(|_| rnd() * 0.5).collect();
    let mut k: Vec<f32> = (0..heads * n * d).map(|_| rnd() * 0.5).collect();
    let v: Vec<f32> = (0..heads * n * d).map(|_| rnd()).collect();
    let needle = n / 10;
    for h in 0..heads {
        for i in 0..n {
            let r = &mut q[(h * n + i) * d..][..d];
            r[0] = 4.0;
            for f in 0..8 {
                let w = rope_freq(f);
                r[1 + 2 * f] = 3.0 * (i as f32 * w).cos();
                r[2 + 2 * f] = 3.0 * (i as f32 * w).sin();
            }
            if i >= n - 64 {
                r[20] = 10.0;
            }
        }
        for j in 0..n {
            let r = &mut k[(h * n + j) * d..][..d];
            r[0] = if j < 4 || j % 4099 == 0 { 4.0 } else { 0.0 };
            for f in 0..8 {
                let w = rope_freq(f);
                r[1 + 2 * f] = 3.0 * (j as f32 * w).cos();
                r[2 + 2 * f] = 3.0 * (j as f32 * w).sin();
            }
            r[20] = if j == needle { 10.0 } else { 0.0 };
        }
    }
    (q, k, v)
}

/// RoPE-like spectrum (base 10000 over 8 pairs): a sharp local peak with
/// slowly decaying long-range terms.
fn rope_freq(f: usize) -> f32 {
    10000f32.powf(-(f as f32) / 8.0)
}
