#![allow(dead_code)]
//! Test data: seeded random tensors and synthetic attention with planted
//! structure (sinks, vertical columns, slashes, a needle).

use quarry_attn::{AttnOptions, AttnShape, KvSlice};

pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    pub fn normal(&mut self) -> f32 {
        let u1 = self.uniform().max(1e-7);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.normal() * scale).collect()
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Reference attention restricted to the keys `keep(h, i, j)` says
/// (and the causal mask), f64.
pub fn masked_naive(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    shape: &AttnShape,
    opts: &AttnOptions,
    keep: impl Fn(usize, usize, usize) -> bool,
) -> Vec<f32> {
    let d = shape.head_dim;
    let scale = opts.scale.unwrap_or(1.0 / (d as f32).sqrt()) as f64;
    let mut out = vec![0.0f32; shape.q_elems()];
    for h in 0..shape.heads {
        let g = h / (shape.heads / shape.kv_heads);
        for i in 0..shape.q_len {
            let qi = &q[(h * shape.q_len + i) * d..][..d];
            let end = if opts.causal { shape.kv_len - shape.q_len + i + 1 } else { shape.kv_len };
            let js: Vec<usize> = (0..end).filter(|&j| keep(h, i, j)).collect();
            if js.is_empty() {
                continue;
            }
            let s: Vec<f64> = js
                .iter()
                .map(|&j| {
                    let kj = &k[(g * shape.kv_len + j) * d..][..d];
                    qi.iter().zip(kj).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>() * scale
                })
                .collect();
            let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let w: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
            let z: f64 = w.iter().sum();
            let o = &mut out[(h * shape.q_len + i) * d..][..d];
            for c in 0..d {
                let mut acc = 0.0;
                for (t, &j) in js.iter().enumerate() {
                    acc += w[t] * v[(g * shape.kv_len + j) * d + c] as f64;
                }
                o[c] = (acc / z) as f32;
            }
        }
    }
    out
}

/// Per-head max relative error (Frobenius) of `a` vs `b`.
pub fn max_head_err(a: &[f32], b: &[f32], heads: usize) -> f64 {
    quarry_attn::relative_error_per_head(a, b, heads).into_iter().fold(0.0, f64::max)
}

/// Planted structure for synthetic heads of width `d >= 40`.
pub struct Planted {
    /// Keys every query attends to strongly (sinks / vertical columns).
    pub columns: Vec<usize>,
    /// Diagonal offsets `pos - key` queries attend to (0 = local).
    pub slashes: Vec<usize>,
    /// Strength of columns and slashes (in logits after scaling).
    pub strength: f32,
}

/// Self-attention Q/K/V `[heads, n, d]` with `heads == kv_heads` where every
/// query attends to the planted columns and diagonals, over a noise floor.
pub fn planted(heads: usize, n: usize, d: usize, plant: &Planted, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert!(d >= 8 + 16 * plant.slashes.len().max(1));
    let mut r = Rng(seed);
    let mut q = r.vec(heads * n * d, 0.3);
    let mut k = r.vec(heads * n * d, 0.3);
    let v = r.vec(heads * n * d, 1.0);
    // Logit of a planted pair is about strength after the 1/sqrt(d) scale.
    let amp = (plant.strength * (d as f32).sqrt()).sqrt();
    let freqs: Vec<f32> = (0..8).map(|f| 0.05 + 0.35 * f as f32 + 0.1 * r.uniform()).collect();
    for h in 0..heads {
        for i in 0..n {
            let qi = &mut q[(h * n + i) * d..][..d];
            qi[0] = amp;
            for (s_idx, _) in plant.slashes.iter().enumerate() {
                for (f, &w) in freqs.iter().enumerate() {
                    let c = 8 + s_idx * 16 + 2 * f;
                    // Each group of 8 frequencies contributes amp² / 8 · Σcos.
                    qi[c] = amp / (8f32).sqrt() * (i as f32 * w).cos();
                    qi[c + 1] = amp / (8f32).sqrt() * (i as f32 * w).sin();
                }
            }
        }
        for j in 0..n {
            let kj = &mut k[(h * n + j) * d..][..d];
            kj[0] = if plant.columns.contains(&j) { amp } else { 0.0 };
            for (s_idx, &s) in plant.slashes.iter().enumerate() {
                let p = (j + s) as f32;
                for (f, &w) in freqs.iter().enumerate() {
                    let c = 8 + s_idx * 16 + 2 * f;
                    kj[c] = amp / (8f32).sqrt() * (p * w).cos();
                    kj[c + 1] = amp / (8f32).sqrt() * (p * w).sin();
                }
            }
        }
    }
    (q, k, v)
}

pub fn kv<'a>(x: &'a [f32]) -> KvSlice<'a> {
    KvSlice::F32(x)
}
