#![allow(dead_code)]
//! Shared test data: deterministic pseudo-random K/V with outlier channels.

use quarry_kv::{KvConfig, Method};

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    pub fn normal(&mut self) -> f32 {
        let u = self.unit().max(1e-7);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f32::consts::PI * v).cos()
    }
    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.normal()).collect()
    }
}

/// `[heads, n, d]` keys with a few large-magnitude channels (as real keys have).
pub fn keys(rng: &mut Rng, heads: usize, n: usize, d: usize) -> Vec<f32> {
    let mut k = rng.vec(heads * n * d);
    for (i, x) in k.iter_mut().enumerate() {
        let c = i % d;
        if c % 17 == 3 {
            *x = *x * 4.0 + 6.0;
        }
    }
    k
}

pub fn cfg(method: Method, layers: usize, kv_heads: usize, d: usize) -> KvConfig {
    KvConfig::new(layers, kv_heads, d, method)
}
